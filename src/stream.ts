// A Zerobus ingestion stream over the native library.
import { JSCallback, FFIType, ptr, type Pointer } from "bun:ffi";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { lib } from "./native";
import { codeName, errorClass, lastError, InvalidArgumentError, ZerobusError } from "./errors";
import { bytesPtr, drainReleased, hold, releaseFn } from "./memory";

export type RecordType = "json" | "proto";

export type StreamState = "opening" | "open" | "recovering" | "closing" | "closed" | "failed";
const STATES: StreamState[] = ["opening", "open", "recovering", "closing", "closed", "failed"];

/** A record for a JSON stream: an object (serialized once with JSON.stringify), JSON text, or UTF-8 bytes. */
export type JsonRecord = Record<string, unknown> | string | Uint8Array;

const BACKPRESSURE = -4;
/** Strings up to this size are encoded into a scratch buffer and copied by Rust; larger ones are pinned. */
const COPY_LIMIT = 16 * 1024;
const encoder = new TextEncoder();
const scratch = new Uint8Array(COPY_LIMIT * 3);
const scratchPtr = ptr(scratch);
const msgBuf = new Uint8Array(4096);
const decoder = new TextDecoder();

interface Queued {
  batch: boolean;
  prepared: Prepared | PreparedBatch;
  resolve: (offset: number) => void;
  reject: (e: unknown) => void;
}

/** A record ready for the native call. */
type Prepared = Uint8Array | string;
type PreparedBatch = Prepared[];

export class ZerobusStream<T = unknown> implements AsyncDisposable {
  #h: Pointer | null;
  #cb: JSCallback;
  #progress = new BigInt64Array(5);
  #i32 = new Int32Array(this.#progress.buffer);
  #acked = -1;
  #last = -1;
  #streamsOpened = 0;
  #state: StreamState = "opening";
  #error: ZerobusError | undefined;
  #json: boolean;
  #arrow: boolean;
  #schema: DescMessage | undefined;
  // Ack waiters of ingest(): offsets ascending, parallel arrays with a moving head.
  #wOff: number[] = [];
  #wRes: ((o: number) => void)[] = [];
  #wRej: ((e: unknown) => void)[] = [];
  #wHead = 0;
  // Other waiters (waitForOffset, flush, open, close).
  #others: { offset: number; until?: StreamState[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  // Records waiting for capacity (max inflight reached), in call order.
  #queued: Queued[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly table: string;
  #flushTimeoutMs: number;

  /** @internal use ZerobusSdk.createStream */
  /**
   * @internal use ZerobusSdk.createStream / createArrowStream. For `"arrow"`, `descriptor` is
   * the Arrow IPC schema.
   */
  constructor(
    sdk: Pointer,
    table: string,
    recordType: RecordType | "arrow",
    optionsJson: string,
    descriptor?: Uint8Array,
    schema?: DescMessage,
    flushTimeoutMs = 300_000,
  ) {
    this.table = table;
    this.#flushTimeoutMs = flushTimeoutMs;
    this.#json = recordType === "json";
    this.#arrow = recordType === "arrow";
    this.#schema = schema;
    this.#cb = new JSCallback(() => this.#poll(), { args: [FFIType.u64], returns: FFIType.void, threadsafe: true });
    const opts = encoder.encode(optionsJson);
    const d = descriptor && descriptor.byteLength > 0 ? descriptor : null;
    const open = this.#arrow ? lib.zerobus_arrow_stream_open : lib.zerobus_stream_open;
    this.#h = open(sdk, opts, opts.byteLength, d, d ? d.byteLength : 0, this.#cb.ptr, 0) as Pointer | null;
    if (!this.#h) {
      this.#cb.close();
      throw lastError("cannot create stream");
    }
    this.#arm();
  }

  /** Resolves once the server accepted the stream; rejects if it could not be opened. */
  opened(): Promise<void> {
    return this.#waitState(["open", "recovering", "closing", "closed"]);
  }

  get state(): StreamState {
    return this.#state;
  }
  /** Highest logical offset acknowledged as durable (-1: none). */
  get ackedOffset(): number {
    return this.#acked;
  }
  /** Highest logical offset handed out (-1: none). */
  get lastOffset(): number {
    return this.#last;
  }
  /** Physical streams opened so far (1 + recoveries). */
  get streamsOpened(): number {
    if (this.#h) {
      lib.zerobus_stream_progress(this.#h, this.#progress);
      this.#streamsOpened = Number(this.#progress[2]);
    }
    return this.#streamsOpened;
  }
  /** The failure, once the stream failed. */
  get error(): ZerobusError | undefined {
    return this.#error;
  }
  /** The server's id of the current physical stream. */
  get streamId(): string | undefined {
    if (!this.#h) return undefined;
    const n = Number(lib.zerobus_stream_id(this.#h, msgBuf, msgBuf.length));
    return n ? decoder.decode(msgBuf.subarray(0, n)) : undefined;
  }

  // ---- ingestion ---------------------------------------------------------------------------

  /**
   * Queues one record and resolves with its logical offset once the server acknowledged it as
   * durable. JSON streams take objects (serialized once), JSON text or UTF-8 bytes; proto streams
   * take encoded bytes or, with a schema, message objects. Uint8Array input is used in place
   * (zero-copy) and must not be modified until the promise settles.
   */
  ingest(record: T | JsonRecord | Uint8Array): Promise<number> {
    return this.#ingest(false, record);
  }

  /** Queues records as one batch request (one logical offset); resolves when it is durable. */
  ingestBatch(records: readonly (T | JsonRecord | Uint8Array)[]): Promise<number> {
    return this.#ingest(true, records);
  }

  /**
   * Queues one record without creating a promise and returns its logical offset (the fast path:
   * pair it with `waitForOffset` or `flush`). When the in-flight limit is reached it blocks the
   * thread until acknowledgements free capacity.
   */
  submit(record: T | JsonRecord | Uint8Array): number {
    return this.#submit(false, record);
  }

  /** Batch form of `submit`. */
  submitBatch(records: readonly (T | JsonRecord | Uint8Array)[]): number {
    return this.#submit(true, records);
  }

  /** Resolves when `offset` is durable; rejects if the stream fails or closes first. */
  waitForOffset(offset: number): Promise<void> {
    if (offset <= this.#acked) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#others.push({ offset, resolve, reject });
      this.#poll();
    });
  }

  /** Resolves when every record queued so far is durable; rejects after `flushTimeoutMs`. */
  async flush(): Promise<void> {
    this.#poll();
    const ms = this.#flushTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ZerobusError(`flush timed out after ${ms} ms (acknowledged through ${this.#acked} of ${this.#last})`, "TIMEOUT", true)),
        ms,
      );
    });
    const done = (async () => {
      while (this.#queued.length > 0) await this.waitForOffset(this.#acked + 1);
      await this.waitForOffset(this.#last);
    })();
    try {
      await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
      done.catch(() => {});
    }
  }

  /** Flushes, then closes the stream. Rejects if any record could not be made durable. */
  async close(): Promise<void> {
    if (!this.#h) return;
    if (this.#state === "failed") {
      this.#free();
      throw this.#error;
    }
    await this.flush().catch(() => {});
    if (this.#h) lib.zerobus_stream_close(this.#h);
    try {
      await this.#waitState(["closed"]);
    } finally {
      this.#free();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  #ingest(batch: boolean, input: unknown): Promise<number> {
    let prepared: Prepared | PreparedBatch;
    try {
      prepared = batch ? this.#prepareBatch(input as readonly unknown[]) : this.#prepare(input);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#queued.length === 0) {
      const r = this.#submitPrepared(batch, prepared);
      if (r >= 0) return this.#ackPromise(r);
      if (r !== BACKPRESSURE) return Promise.reject(lastError());
    }
    return this.#enqueue(batch, prepared);
  }

  #submit(batch: boolean, input: unknown): number {
    const prepared = batch ? this.#prepareBatch(input as readonly unknown[]) : this.#prepare(input);
    this.#drainQueueBlocking();
    for (;;) {
      const r = this.#submitPrepared(batch, prepared);
      if (r >= 0) return (this.#last = r);
      if (r !== BACKPRESSURE) throw lastError();
      this.#blockForCapacity();
    }
  }

  /** One native ingest call: an offset, or a negative error code. */
  #submitPrepared(batch: boolean, prepared: Prepared | PreparedBatch): number {
    return batch ? this.#submitBatch(prepared as PreparedBatch) : this.#submitOne(prepared as Prepared);
  }

  #prepare(record: unknown): Prepared {
    if (record instanceof Uint8Array) return record;
    if (this.#arrow) return arrowToIPC(record);
    if (this.#json) {
      if (typeof record === "string") return record;
      if (record !== null && typeof record === "object") {
        const text = JSON.stringify(record);
        if (text === undefined) throw new InvalidArgumentError("record cannot be serialized to JSON", "INVALID_ARGUMENT", false);
        return text;
      }
      throw new InvalidArgumentError(
        `a JSON stream takes objects, JSON strings or Uint8Array, got ${record === null ? "null" : typeof record}`,
        "INVALID_ARGUMENT",
        false,
      );
    }
    if (this.#schema && record !== null && typeof record === "object") {
      const schema = this.#schema;
      // Messages made with create(); plain init objects are accepted too.
      const msg = (record as { $typeName?: string }).$typeName === schema.typeName ? record : create(schema, record as never);
      return toBinary(schema, msg as MessageShape<DescMessage>);
    }
    throw new InvalidArgumentError(
      this.#schema
        ? `a proto stream takes encoded bytes (Uint8Array) or ${this.#schema.typeName} messages`
        : "a proto stream takes encoded bytes (Uint8Array); pass `schema` to createStream to ingest message objects",
      "INVALID_ARGUMENT",
      false,
    );
  }

  #prepareBatch(records: readonly unknown[]): PreparedBatch {
    if (!Array.isArray(records)) throw new InvalidArgumentError("ingestBatch takes an array of records", "INVALID_ARGUMENT", false);
    if (records.length === 0) throw new InvalidArgumentError("a batch needs at least one record", "INVALID_ARGUMENT", false);
    return records.map((r) => this.#prepare(r));
  }

  #handle(): Pointer {
    if (!this.#h) throw new ZerobusError("stream is closed", "STREAM_CLOSED", false);
    return this.#h;
  }

  #submitOne(p: Prepared): number {
    const h = this.#handle();
    if (this.#arrow) {
      const ipc = p as Uint8Array;
      return lib.zerobus_ingest_ipc_batch(h, bytesPtr(ipc), ipc.byteLength, releaseFn, hold(ipc) as unknown as Pointer) as number;
    }
    const fn = this.#json ? lib.zerobus_ingest_json_bytes : lib.zerobus_ingest_proto_bytes;
    if (typeof p === "string") {
      if (p.length <= COPY_LIMIT) {
        const { written } = encoder.encodeInto(p, scratch);
        return fn(h, scratchPtr, written, null, null) as number;
      }
      p = encoder.encode(p);
    }
    if (p.byteLength === 0) return fn(h, null, 0, null, null) as number;
    return fn(h, ptr(p), p.byteLength, releaseFn, hold(p) as unknown as Pointer) as number;
  }

  #submitBatch(records: PreparedBatch): number {
    const h = this.#handle();
    // Strings are packed into one buffer (encoded once); byte arrays go by pointer, in place.
    if (records.every((r) => typeof r === "string")) {
      const lens = new Uint32Array(records.length);
      let total = 0;
      for (const r of records as string[]) total += r.length * 3;
      const buf = new Uint8Array(total);
      let at = 0;
      for (let i = 0; i < records.length; i++) {
        const { written } = encoder.encodeInto(records[i] as string, buf.subarray(at));
        lens[i] = written;
        at += written;
      }
      const fn = this.#json ? lib.zerobus_ingest_json_bytes_packed : lib.zerobus_ingest_proto_bytes_packed;
      return fn(h, at ? ptr(buf) : null, at, lens, records.length, releaseFn, hold(buf) as unknown as Pointer) as number;
    }
    const arrays = records.map((r) => (typeof r === "string" ? encoder.encode(r) : r));
    const ptrs = new Uint32Array(arrays.length * 2);
    const lens = new Uint32Array(arrays.length * 2);
    for (let i = 0; i < arrays.length; i++) {
      const a = arrays[i]!;
      const p = a.byteLength ? (ptr(a) as unknown as number) : 0;
      ptrs[2 * i] = p % 0x100000000;
      ptrs[2 * i + 1] = Math.floor(p / 0x100000000);
      lens[2 * i] = a.byteLength;
    }
    const fn = this.#json ? lib.zerobus_ingest_json_bytes_batch : lib.zerobus_ingest_proto_bytes_batch;
    return fn(h, ptrs, lens, arrays.length, releaseFn, hold(arrays) as unknown as Pointer) as number;
  }

  #ackPromise(offset: number): Promise<number> {
    if (offset > this.#last) this.#last = offset;
    const p = new Promise<number>((resolve, reject) => {
      this.#wOff.push(offset);
      this.#wRes.push(resolve);
      this.#wRej.push(reject);
    });
    this.#arm();
    return p;
  }

  #enqueue(batch: boolean, prepared: Prepared | PreparedBatch): Promise<number> {
    const p = new Promise<number>((resolve, reject) => {
      this.#queued.push({ batch, prepared, resolve, reject });
    });
    this.#arm();
    return p;
  }

  /** Submits queued records while there is capacity. */
  #drainQueue(): void {
    while (this.#queued.length > 0 && this.#h) {
      const q = this.#queued[0]!;
      const r = this.#submitPrepared(q.batch, q.prepared);
      if (r === BACKPRESSURE) return;
      this.#queued.shift();
      if (r >= 0) {
        if (r > this.#last) this.#last = r;
        this.#wOff.push(r);
        this.#wRes.push(q.resolve);
        this.#wRej.push(q.reject);
      } else {
        q.reject(lastError());
      }
    }
  }

  #drainQueueBlocking(): void {
    while (this.#queued.length > 0) {
      this.#drainQueue();
      if (this.#queued.length > 0) this.#blockForCapacity();
    }
  }

  #blockForCapacity(): void {
    const h = this.#handle();
    const rc = lib.zerobus_stream_wait_for_offset(h, this.#nativeAcked() + 1, 600_000);
    if (rc < 0 && codeName(rc) !== "TIMEOUT") throw lastError();
  }

  #nativeAcked(): number {
    if (!this.#h) return this.#acked;
    lib.zerobus_stream_progress(this.#h, this.#progress);
    return Number(this.#progress[0]);
  }

  /** Reads progress, settles what it can, and keeps a timer alive while work is outstanding. */
  #poll(): void {
    drainReleased();
    if (!this.#h) return;
    lib.zerobus_stream_progress(this.#h, this.#progress);
    const acked = Number(this.#progress[0]);
    const last = Number(this.#progress[1]);
    if (last > this.#last) this.#last = last;
    this.#streamsOpened = Number(this.#progress[2]);
    this.#state = STATES[this.#i32[6]!] ?? "failed";
    if (this.#state === "failed" && !this.#error) {
      const code = codeName(this.#i32[7]!);
      const n = Number(lib.zerobus_stream_error_message(this.#h, msgBuf, msgBuf.length));
      const text = decoder.decode(msgBuf.subarray(0, Math.min(n, msgBuf.length)));
      const Cls = errorClass(code);
      this.#error = new Cls(text, code, this.#i32[8] === 1, { first: acked + 1, last: this.#last });
    }
    if (acked > this.#acked) this.#acked = acked;
    // Ack waiters, in offset order.
    let i = this.#wHead;
    const off = this.#wOff;
    while (i < off.length && off[i]! <= acked) {
      this.#wRes[i]!(off[i]!);
      i++;
    }
    if (i > this.#wHead) {
      if (i === off.length) {
        this.#wOff = [];
        this.#wRes = [];
        this.#wRej = [];
        i = 0;
      } else if (i > 4096 && i * 2 > off.length) {
        this.#wOff = off.slice(i);
        this.#wRes = this.#wRes.slice(i);
        this.#wRej = this.#wRej.slice(i);
        i = 0;
      }
      this.#wHead = i;
    }
    if (this.#queued.length > 0) this.#drainQueue();
    if (this.#others.length > 0) {
      this.#others = this.#others.filter((w) => {
        if (w.until ? w.until.includes(this.#state) : w.offset <= acked) {
          w.resolve();
          return false;
        }
        return true;
      });
    }
    if (this.#state === "failed" || this.#state === "closed") this.#settleAll();
    this.#arm();
  }

  /** Rejects everything still waiting (the stream failed or closed). */
  #settleAll(): void {
    const err =
      this.#error ?? new ZerobusError("stream closed before the record was acknowledged", "STREAM_CLOSED", false);
    for (let i = this.#wHead; i < this.#wOff.length; i++) this.#wRej[i]!(err);
    this.#wOff = [];
    this.#wRes = [];
    this.#wRej = [];
    this.#wHead = 0;
    for (const q of this.#queued) q.reject(err);
    this.#queued = [];
    for (const w of this.#others) w.reject(err);
    this.#others = [];
  }

  #pending(): boolean {
    return this.#wHead < this.#wOff.length || this.#queued.length > 0 || this.#others.length > 0;
  }

  /** A ref'd interval keeps the process alive while promises wait on native progress (and polls as a fallback). */
  #arm(): void {
    if (this.#pending() && this.#h) {
      this.#timer ??= setInterval(() => this.#poll(), 50);
    } else if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #waitState(states: StreamState[]): Promise<void> {
    this.#poll();
    if (states.includes(this.#state)) return Promise.resolve();
    if (this.#state === "failed") return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#others.push({ offset: Infinity, until: states, resolve, reject });
      this.#arm();
    });
  }

  #free(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#h) {
      lib.zerobus_stream_free(this.#h);
      this.#h = null;
    }
    this.#cb.close();
    drainReleased();
  }
}

type ArrowModule = typeof import("apache-arrow");
let arrowModule: ArrowModule | undefined;

/**
 * Loads apache-arrow as an ES module: the same module instance as the application's own
 * `import`, so its Tables are recognised by its writer (a `require` would load a second copy).
 */
export async function loadArrow(): Promise<ArrowModule> {
  arrowModule ??= await import("apache-arrow");
  return arrowModule;
}

/** An apache-arrow Table or RecordBatch as Arrow IPC stream bytes (one encode pass, in JS). */
export function arrowToIPC(value: unknown): Uint8Array {
  const v = value as { schema?: unknown; batches?: unknown; numRows?: unknown; data?: unknown } | null;
  if (v && typeof v === "object" && v.schema && (Array.isArray(v.batches) || (typeof v.numRows === "number" && v.data))) {
    const arrow = arrowModule;
    if (!arrow) throw new InvalidArgumentError("apache-arrow is not loaded (create the stream with createArrowStream)", "INVALID_ARGUMENT", false);
    const table = Array.isArray(v.batches) ? (v as import("apache-arrow").Table) : new arrow.Table(v as import("apache-arrow").RecordBatch);
    return arrow.tableToIPC(table, "stream");
  }
  throw new InvalidArgumentError(
    "an Arrow stream takes Arrow IPC stream bytes (Uint8Array) or an apache-arrow Table / RecordBatch",
    "INVALID_ARGUMENT",
    false,
  );
}
