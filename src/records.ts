// Records on their way to the native library: what the SDK makes of a caller's record (text,
// its own bytes, or the caller's array), and the native calls that queue one record, a batch and
// a run of small records (pointer + length, with a release callback for bytes read in place).
import { ptr, type Pointer } from "bun:ffi";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { lib } from "./native.js";
import { InvalidArgumentError } from "./errors.js";
import { COPY_MAX, hold, releaseFn, stablePtr } from "./memory.js";
import { checkJsonText, jsonText } from "./json.js";
import { checkMessage } from "./validate.js";
import { arrowToIPC } from "./arrow-ipc.js";
import type { RecordType } from "./types.js";

/** What a native ingest call returns when the stream is at its in-flight limits. */
export const BACKPRESSURE = -4;
/** A NULL pointer argument: bun:ffi converts a number faster than `null`. */
export const NULL = 0 as unknown as Pointer;
/** Strings up to this size are encoded into a scratch buffer and copied by Rust; larger ones are pinned. */
const COPY_LIMIT = 16 * 1024;
const encoder = new TextEncoder();
const scratch = new Uint8Array(new ArrayBuffer(COPY_LIMIT * 3));
const scratchPtr = ptr(scratch);

/**
 * Bytes the SDK itself made (encoded text or messages, Arrow IPC written from a Table, copies of
 * the caller's arrays): nobody else holds them, so Rust may read them in place.
 */
export class Owned {
  constructor(readonly bytes: Uint8Array) {}
}
/** A copy of `bytes` in memory of its own (a Buffer's `slice()` would share the caller's). */
export function copyOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
/** Bytes the SDK made, as Rust should take them: small ones are copied during the call anyway. */
export function own(bytes: Uint8Array): Uint8Array | Owned {
  return bytes.byteLength <= COPY_MAX ? bytes : new Owned(bytes);
}
/** A record ready for the native call: text, the SDK's own bytes, or the caller's array. */
export type Prepared = Uint8Array | string | Owned;
export type PreparedBatch = Prepared[];

type Ingest = typeof lib.zerobus_ingest_proto_bytes;
type IngestBatch = typeof lib.zerobus_ingest_proto_bytes_batch;
type IngestPacked = typeof lib.zerobus_ingest_proto_bytes_packed;
type IngestEach = typeof lib.zerobus_ingest_proto_bytes_each;

/** What a stream makes of records, fixed when it is created: its kind, schema, native calls, and which arrays it reads in place. */
export interface Rules {
  json: boolean;
  arrow: boolean;
  schema: DescMessage | undefined;
  /** Caller arrays larger than this are read in place (zeroCopy); others are copied during the call. */
  inPlaceMin: number;
  one: Ingest;
  batch: IngestBatch;
  packed: IngestPacked;
  each: IngestEach;
}

export function rules(kind: RecordType | "arrow", schema: DescMessage | undefined, inPlaceMin: number): Rules {
  const json = kind === "json";
  const arrow = kind === "arrow";
  return {
    json,
    arrow,
    schema,
    inPlaceMin,
    one: arrow ? lib.zerobus_ingest_ipc_batch : json ? lib.zerobus_ingest_json_bytes : lib.zerobus_ingest_proto_bytes,
    // Arrow streams queue one call's batches at a time: the record forms below are JSON's or protobuf's.
    batch: json ? lib.zerobus_ingest_json_bytes_batch : lib.zerobus_ingest_proto_bytes_batch,
    packed: json ? lib.zerobus_ingest_json_bytes_packed : lib.zerobus_ingest_proto_bytes_packed,
    each: json ? lib.zerobus_ingest_json_bytes_each : lib.zerobus_ingest_proto_bytes_each,
  };
}

/** What the stream takes for `record`, or throws why it takes none. */
export function prepare(r: Rules, record: unknown): Prepared {
  if (record instanceof Uint8Array) {
    if (record.byteLength === 0 && (record.buffer as ArrayBuffer).detached) {
      throw new InvalidArgumentError("the record's ArrayBuffer is detached (transferred): it holds no bytes any more", "INVALID_ARGUMENT", false);
    }
    if (record.byteLength > r.inPlaceMin) {
      // A resizable buffer may shrink under the record, unmapping its memory: copied instead.
      const b = record.buffer as ArrayBuffer & { resizable?: boolean };
      if (b.resizable) return own(copyOf(record));
    }
    return record;
  }
  if (r.arrow) return own(arrowToIPC(record));
  if (r.json) return typeof record === "string" ? checkJsonText(record) : jsonText(record);
  if (r.schema && record !== null && typeof record === "object") {
    const schema = r.schema;
    checkMessage(schema, record);
    // Messages made with create(); plain init objects are accepted too.
    const msg = (record as { $typeName?: string }).$typeName === schema.typeName ? record : create(schema, record as never);
    return own(toBinary(schema, msg as MessageShape<DescMessage>));
  }
  throw new InvalidArgumentError(
    r.schema
      ? `a proto stream takes encoded bytes (Uint8Array) or ${r.schema.typeName} messages`
      : "a proto stream takes encoded bytes (Uint8Array); pass `schema` to createStream to ingest message objects",
    "INVALID_ARGUMENT",
    false,
  );
}

export function prepareBatch(r: Rules, records: readonly unknown[]): PreparedBatch {
  if (!Array.isArray(records)) throw new InvalidArgumentError("ingestBatch takes an array of records", "INVALID_ARGUMENT", false);
  if (records.length === 0) throw new InvalidArgumentError("a batch needs at least one record", "INVALID_ARGUMENT", false);
  const out: PreparedBatch = new Array(records.length);
  for (let i = 0; i < records.length; i++) {
    try {
      out[i] = prepare(r, records[i]);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`record ${i} of the batch: ${e.message}`, "INVALID_ARGUMENT", false);
      throw e;
    }
  }
  return out;
}

/**
 * What a JavaScript queue may hold until a native call takes it: a copy of a caller's array
 * the native call would have copied (the caller may reuse it as soon as ingest returns).
 */
export function keep(r: Rules, p: Prepared): Prepared {
  return p instanceof Uint8Array && p.byteLength <= r.inPlaceMin ? own(copyOf(p)) : p;
}

/** Queues one record on stream `h`: its offset, or a negative error code. */
export function submitOne(r: Rules, h: Pointer, p: Prepared): number {
  const fn = r.one;
  if (typeof p === "string") {
    if (p.length <= COPY_LIMIT) {
      const { written } = encoder.encodeInto(p, scratch);
      return fn(h, scratchPtr, written, NULL, NULL) as number;
    }
    p = own(encoder.encode(p));
  }
  // The SDK's own bytes, and the caller's large arrays with zeroCopy, are read in place (pinned
  // until Rust releases them); every other array is copied during the call.
  if (p instanceof Owned) return fn(h, stablePtr(p.bytes), p.bytes.byteLength, releaseFn, hold(p.bytes) as unknown as Pointer) as number;
  if (p.byteLength <= r.inPlaceMin) return fn(h, p.byteLength ? ptr(p) : NULL, p.byteLength, NULL, NULL) as number;
  return fn(h, stablePtr(p), p.byteLength, releaseFn, hold(p) as unknown as Pointer) as number;
}

/** Queues `records` on stream `h` as one batch request: its offset, or a negative error code. */
export function submitBatch(r: Rules, h: Pointer, records: PreparedBatch): number {
  // Strings are packed into one buffer (encoded once); byte arrays go by pointer.
  if (records.every((x) => typeof x === "string")) {
    let total = 0;
    for (const x of records as string[]) total += x.length * 3;
    const lens = new Uint32Array(records.length);
    // Fits the scratch buffer: Rust copies it during the call; else a fresh buffer, pinned.
    const buf = total <= scratch.byteLength ? scratch : new Uint8Array(new ArrayBuffer(total));
    let at = 0;
    for (let i = 0; i < records.length; i++) {
      const { written } = encoder.encodeInto(records[i] as string, buf.subarray(at));
      lens[i] = written;
      at += written;
    }
    // Copied as any array up to COPY_MAX is (in a Worker, every one: its heap may go while a
    // replay still needs the bytes).
    if (buf === scratch || at <= COPY_MAX) return r.packed(h, buf === scratch ? scratchPtr : ptr(buf), at, lens, records.length, NULL, NULL) as number;
    return r.packed(h, at ? stablePtr(buf) : null, at, lens, records.length, releaseFn, hold(buf) as unknown as Pointer) as number;
  }
  const items = records.map((x) => (typeof x === "string" ? own(encoder.encode(x)) : x));
  const arrays = items.map((x) => (x instanceof Owned ? x.bytes : x));
  // One release covers the batch: read in place only if every record may be (the SDK's own
  // bytes; the caller's large arrays with zeroCopy), else Rust copies them all during the call.
  const pin = items.every((x) => x instanceof Owned || x.byteLength > r.inPlaceMin);
  // `count` 8-byte pointers, written as pairs of 32-bit words (every target is 64-bit little-endian).
  const ptrs = new Uint32Array(arrays.length * 2);
  const lens = new Uint32Array(arrays.length);
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i]!;
    const p = a.byteLength === 0 ? 0 : ((pin ? stablePtr(a) : ptr(a)) as unknown as number);
    ptrs[2 * i] = p % 0x100000000;
    ptrs[2 * i + 1] = Math.floor(p / 0x100000000);
    lens[i] = a.byteLength;
  }
  if (!pin) return r.batch(h, ptrs, lens, arrays.length, NULL, NULL) as number;
  return r.batch(h, ptrs, lens, arrays.length, releaseFn, hold(arrays) as unknown as Pointer) as number;
}

/**
 * Single `ingest()` calls of small records made in one tick are gathered into a run and queued
 * by one native call (one lock, one copy, one wake-up of the sender for the lot), each still a
 * request of its own. The stream sends a run at the end of the tick (a microtask), when it is
 * full, and before anything else that queues records or reads offsets, so the order of calls is kept.
 */
const RUN_BYTES = 256 * 1024;
const RUN_RECORDS = 4096;
/** Strings up to this length join a run; byte arrays up to RUN_ARRAY_MAX that would be copied anyway. */
export const RUN_STRING_MAX = 4096;
export const RUN_ARRAY_MAX = 8192;

/** A run: records back to back in one buffer, their lengths beside. */
export class Run {
  #buf: Uint8Array | undefined;
  #ptr: Pointer = NULL;
  #lens: Uint32Array | undefined;
  /** Records in the run. */
  n = 0;
  /** Bytes in the run. */
  #at = 0;

  /** Adds `p` at the end of the run; false if it does not fit (nothing is added). */
  add(p: Uint8Array | string): boolean {
    if (!this.#buf) {
      this.#buf = new Uint8Array(new ArrayBuffer(RUN_BYTES)); // ArrayBuffer-backed: its pointer is stable
      this.#ptr = ptr(this.#buf);
      this.#lens = new Uint32Array(RUN_RECORDS);
    }
    if (this.n === RUN_RECORDS) return false;
    const at = this.#at;
    let len: number;
    if (typeof p === "string") {
      const w = encoder.encodeInto(p, this.#buf.subarray(at));
      if (w.read !== p.length) return false;
      len = w.written;
    } else {
      if (RUN_BYTES - at < p.byteLength) return false;
      this.#buf.set(p, at);
      len = p.byteLength;
    }
    this.#lens![this.n++] = len;
    this.#at += len;
    return true;
  }

  /** Queues the run on stream `h` by one native call: the last record's offset, or a negative error code. The run stays as it is. */
  send(r: Rules, h: Pointer): number {
    return r.each(h, this.#ptr, this.#at, this.#lens!, this.n) as number;
  }

  /** Copies of the run's records (the buffer is reused). */
  records(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0, at = 0; i < this.n; i++) out.push(this.#buf!.slice(at, (at += this.#lens![i]!)));
    return out;
  }

  clear(): void {
    this.n = 0;
    this.#at = 0;
  }
}
