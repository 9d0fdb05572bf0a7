// A Zerobus ingestion stream over the native library.
/// <reference lib="esnext.disposable" preserve="true" />
import { ptr, type Pointer } from "bun:ffi";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { lib } from "./native.js";
import { codeName, errorClass, lastError, InvalidArgumentError, ZerobusError, type ErrorCode } from "./errors.js";
import { COPY_MAX, drainReleased, hold, releaseFn, sink, stablePtr } from "./memory.js";
import { activate, deactivate, notifyTarget, watch, type Pollable } from "./wake.js";
import { checkJsonText, jsonText } from "./json.js";
import { checkMessage } from "./validate.js";

export type RecordType = "json" | "proto";

export type StreamState = "opening" | "open" | "recovering" | "closing" | "closed" | "failed";
const STATES: StreamState[] = ["opening", "open", "recovering", "closing", "closed", "failed"];

/**
 * An object record for a JSON stream (serialized once with JSON.stringify): any object but a
 * protobuf message, which has no faithful JSON form here (use toJson, or a proto stream).
 */
export type JsonObject = { readonly $typeName?: never; readonly [field: string]: unknown } | (object & { readonly $typeName?: never });
/** A record for a JSON stream: an object, JSON text, or UTF-8 bytes. */
export type JsonRecord = JsonObject | string | Uint8Array;

const BACKPRESSURE = -4;
/** Progress states (`ZerobusProgress.state`) that end a stream. */
const CLOSED = 4;
const FAILED = 5;
/** Strings up to this size are encoded into a scratch buffer and copied by Rust; larger ones are pinned. */
const COPY_LIMIT = 16 * 1024;
const encoder = new TextEncoder();
const scratch = new Uint8Array(new ArrayBuffer(COPY_LIMIT * 3));
const scratchPtr = ptr(scratch);
const msgBuf = new Uint8Array(4096);
const decoder = new TextDecoder();
/**
 * Single `ingest()` calls of small records made in one tick are gathered into a run and queued
 * by one native call (one lock, one copy, one wake-up of the sender for the lot), each still a
 * request of its own. A run is sent at the end of the tick (a microtask), when it is full, and
 * before anything else that queues records or reads offsets, so the order of calls is kept.
 */
const RUN_BYTES = 256 * 1024;
const RUN_RECORDS = 4096;
/** Strings up to this length join a run; byte arrays up to RUN_ARRAY_MAX that would be copied anyway. */
const RUN_STRING_MAX = 4096;
const RUN_ARRAY_MAX = 8192;

/** A stream's running totals (`stream.stats()`). Arrow streams count rows as records. */
export interface StreamStats {
  recordsIngested: number;
  bytesIngested: number;
  /** Handed to a physical stream, replays included. */
  recordsSent: number;
  bytesSent: number;
  recordsAcked: number;
  bytesAcked: number;
  /** Queued or sent, not yet acknowledged. */
  recordsInflight: number;
  bytesInflight: number;
  /** Physical streams opened (1 + recoveries). */
  streamsOpened: number;
  /** Physical streams that replaced a broken or server-closed one. */
  recoveries: number;
  /** OAuth tokens fetched for this stream (cache hits not counted). */
  tokensFetched: number;
  /** The error that ended the last physical stream (even if recovered), or the stream's error once failed. */
  lastError?: ZerobusError;
}

/** How much the SDK reports to its logger. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** One event for the SDK's `logger`. */
export interface LogEvent {
  level: LogLevel;
  message: string;
  /** The stream's table. */
  table: string;
  /** The server's id of the current physical stream, once one is open. */
  streamId?: string | undefined;
}

/** A request not acknowledged (`stream.unackedRecords()`). */
export interface UnackedRecord {
  /** Its logical offset on the stream it came from. */
  offset: number;
  /** Whether it was one batch request (`ingestBatch`), else a single record. */
  batch: boolean;
  /** Its records' bytes: JSON as UTF-8 text, protobuf encoded; an Arrow batch as one IPC stream (schema, dictionaries, batch). */
  records: Uint8Array[];
}

/** Stream options applied in JavaScript (the rest go to the native stream). */
export interface LocalOptions {
  flushTimeoutMs?: number | undefined;
  submitTimeoutMs?: number | undefined;
  /** Caller arrays over COPY_MAX bytes are read in place (else every caller array is copied). */
  zeroCopy?: boolean;
}

/** The `headers` option as a function: called with the table name each time a physical stream opens. */
export type HeadersFunction = (table: string) => Record<string, string> | Promise<Record<string, string>>;

/** Why `value` is not a headers object (an object of string values), or undefined if it is. */
function headersProblem(value: unknown): string | undefined {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return `headers function must return an object of strings, got ${Array.isArray(value) ? "an array" : typeof value}`;
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") return `headers function returned a ${typeof v} for header ${JSON.stringify(k)} (values must be strings)`;
  }
  return undefined;
}

/**
 * The bytes a native `call(buf, cap)` writes; it returns the length it needs (writing only when
 * that fits, or a prefix). Called again with a buffer of that length until it fits; the result
 * may be a view of the shared `msgBuf`, valid until the next call.
 */
function readNative(call: (buf: Uint8Array, cap: number) => number | bigint): Uint8Array {
  let buf = msgBuf;
  let n: number;
  while ((n = Number(call(buf, buf.length))) > buf.length) buf = new Uint8Array(n);
  return buf.subarray(0, n);
}

function emptyStats(): StreamStats {
  return {
    recordsIngested: 0, bytesIngested: 0, recordsSent: 0, bytesSent: 0, recordsAcked: 0, bytesAcked: 0,
    recordsInflight: 0, bytesInflight: 0, streamsOpened: 0, recoveries: 0, tokensFetched: 0,
  };
}
/** A NULL pointer argument: bun:ffi converts a number faster than `null`. */
const NULL = 0 as unknown as Pointer;
/** How long one blocking native wait of `submit` lasts before JS looks again. */
const BLOCK_SLICE_MS = 100;

interface Queued {
  batch: boolean;
  prepared: Prepared | PreparedBatch;
  resolve: (offset: number) => void;
  reject: (e: unknown) => void;
}

/**
 * Bytes the SDK itself made (encoded text or messages, Arrow IPC written from a Table, copies of
 * the caller's arrays): nobody else holds them, so Rust may read them in place.
 */
class Owned {
  constructor(readonly bytes: Uint8Array) {}
}
/** A copy of `bytes` in memory of its own (a Buffer's `slice()` would share the caller's). */
function copyOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
/** Bytes the SDK made, as Rust should take them: small ones are copied during the call anyway. */
function own(bytes: Uint8Array): Uint8Array | Owned {
  return bytes.byteLength <= COPY_MAX ? bytes : new Owned(bytes);
}
/** A record ready for the native call: text, the SDK's own bytes, or the caller's array. */
type Prepared = Uint8Array | string | Owned;
type PreparedBatch = Prepared[];

/** Frees the native stream of a ZerobusStream that was dropped without close(). */
const dropped = new FinalizationRegistry<Pointer>((h) => {
  lib.zerobus_stream_free(h);
  drainReleased();
});

const closedError = () => new ZerobusError("stream is closed", "STREAM_CLOSED", false);
/**
 * A record the SDK could not take, as a typed error: what encoding it threw (a message schema
 * refusing a value, JSON.stringify refusing a BigInt or a cycle, a detached ArrayBuffer).
 */
function refusedRecord(e: unknown): ZerobusError {
  if (e instanceof ZerobusError) return e;
  const why = e instanceof Error ? e.message : String(e);
  const err = new InvalidArgumentError(`the record cannot be taken: ${why}`, "INVALID_ARGUMENT", false);
  (err as { cause?: unknown }).cause = e;
  return err;
}
const closingError = () =>
  new ZerobusError("stream is closing (close() was called): it takes no more records", "STREAM_CLOSED", false);

/**
 * A stream that takes records of type `T` besides encoded bytes (a `Uint8Array`, always taken):
 * a schema stream its message's init objects and messages (`MessageInitShape<S>`), a JSON stream
 * JSON objects (or the type given to `createStream<T>`) and JSON text, a proto stream without a
 * schema bytes only.
 */
export class ZerobusStream<T = unknown> implements AsyncDisposable {
  #h: Pointer | null;
  #progress = new BigInt64Array(6);
  #i32 = new Int32Array(this.#progress.buffer);
  #acked = -1;
  #last = -1;
  #streamsOpened = 0;
  #finalStats: StreamStats | undefined;
  #state: StreamState = "opening";
  /** close() was called: no more records are taken. */
  #closing = false;
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
  /** Registered with the realm's waker while work is outstanding (that also keeps the process alive). */
  #pollable: Pollable = { poll: () => this.#poll() };
  #active = false;
  readonly table: string;
  #flushTimeoutMs: number;
  /** Caller arrays larger than this are read in place (zeroCopy); others are copied during the call. */
  #inPlaceMin: number;
  /** Caller arrays up to this size join a run (they would be copied anyway). */
  #runArrayMax: number;
  #submitTimeoutMs: number;
  /** Supplies headers when a physical stream opens (the `headers` option as a function). */
  #headersFn: HeadersFunction | undefined;
  /** The headers request being answered (an async function may take a while). */
  #headersBusy = 0;
  #unwatch: (() => void) | undefined;
  /** Receives the native side's events (the SDK's `logger`). */
  #logger: ((e: LogEvent) => void) | undefined;
  /** What recreating this stream needs: the native SDK, options JSON, descriptor / Arrow schema, record type. */
  #blueprint: { recordType: RecordType | "arrow"; optionsJson: string; descriptor: Uint8Array | undefined; local: LocalOptions };
  /** Unacknowledged requests of a failed stream, read before its native handle was freed. */
  #finalUnacked: UnackedRecord[] | undefined;
  // The run (see RUN_BYTES): records back to back in #runBuf, their lengths in #runLens. Their
  // waiters are the last #runN entries of the ack waiters, with offset Infinity until queued.
  #runBuf: Uint8Array | undefined;
  #runPtr: Pointer = NULL;
  #runLens: Uint32Array | undefined;
  #runN = 0;
  #runAt = 0;
  #runTask = () => this.#flushRun();

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
    local: LocalOptions = {},
    headersFn?: HeadersFunction,
    logger?: (e: LogEvent) => void,
  ) {
    this.table = table;
    this.#headersFn = headersFn;
    this.#logger = logger;
    this.#blueprint = { recordType, optionsJson, descriptor: descriptor ? copyOf(descriptor) : undefined, local };
    this.#flushTimeoutMs = local.flushTimeoutMs ?? 300_000;
    this.#submitTimeoutMs = local.submitTimeoutMs ?? 60_000;
    this.#inPlaceMin = local.zeroCopy ? COPY_MAX : Infinity;
    this.#runArrayMax = Math.min(this.#inPlaceMin, RUN_ARRAY_MAX);
    this.#json = recordType === "json";
    this.#arrow = recordType === "arrow";
    this.#schema = schema;
    const opts = encoder.encode(optionsJson);
    const d = descriptor && descriptor.byteLength > 0 ? descriptor : null;
    const open = this.#arrow ? lib.zerobus_arrow_stream_open : lib.zerobus_stream_open;
    const [notify, userdata] = notifyTarget();
    this.#h = open(sdk, opts, opts.byteLength, d, d ? d.byteLength : 0, sink, notify, userdata) as Pointer | null;
    if (!this.#h) throw lastError("cannot create stream");
    dropped.register(this, this.#h, this);
    // Polled on every wake-up even while idle: a reconnect may ask for headers, and log events
    // should reach the logger when they happen.
    if (headersFn || logger) this.#unwatch = watch(this.#pollable);
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
    this.#flushRun();
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
  /**
   * Running totals: records and bytes ingested, sent (replays included), acknowledged and in
   * flight; physical streams opened and recoveries; OAuth tokens fetched; the last error (that
   * ended a physical stream, even if the stream recovered; the stream's own error once failed).
   * Still available after `close()`.
   */
  stats(): StreamStats {
    this.#flushRun();
    const h = this.#h;
    if (!h) return this.#finalStats ?? emptyStats();
    const raw = JSON.parse(decoder.decode(readNative((buf, cap) => lib.zerobus_stream_stats(h, buf, cap))));
    const e = raw.lastError as { code: ErrorCode; message: string; retryable: boolean } | null;
    raw.lastError = e ? new (errorClass(e.code))(e.message, e.code, e.retryable) : undefined;
    return raw as StreamStats;
  }

  /**
   * The requests not acknowledged, in order, each with its logical offset and its records as
   * bytes (JSON records as UTF-8 text; an Arrow batch as one IPC stream with its schema). On a
   * live stream: what is in flight now. After a failure: what the failure left unacknowledged,
   * also after `close()`. Copies; the stream keeps its own.
   */
  unackedRecords(): UnackedRecord[] {
    this.#flushRun();
    const h = this.#h;
    if (!h) return (this.#finalUnacked ?? []).map((u) => ({ offset: u.offset, batch: u.batch, records: u.records.map(copyOf) }));
    const buf = readNative((b, cap) => lib.zerobus_stream_unacked(h, b, cap));
    const n = buf.byteLength;
    const view = new DataView(buf.buffer, buf.byteOffset, n);
    const out: UnackedRecord[] = [];
    for (let at = 0; at < n; ) {
      const offset = Number(view.getBigInt64(at, true));
      const kind = view.getUint32(at + 8, true);
      const count = view.getUint32(at + 12, true);
      at += 16;
      const records: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const len = view.getUint32(at, true);
        records.push(buf.slice(at + 4, at + 4 + len));
        at += 4 + len;
      }
      out.push({ offset, batch: kind === 1, records });
    }
    return out;
  }

  /** @internal ZerobusSdk.recreateStream: a new stream like this one, with its unacknowledged requests queued first. */
  _recreate(sdk: Pointer): ZerobusStream<T> {
    if (this.#state !== "failed") {
      throw new InvalidArgumentError(`recreateStream takes a failed stream; this one is ${this.#state}`, "INVALID_ARGUMENT", false);
    }
    const b = this.#blueprint;
    const unacked = this.unackedRecords();
    const next = new ZerobusStream<T>(sdk, this.table, b.recordType, b.optionsJson, b.descriptor, this.#schema, b.local, this.#headersFn, this.#logger);
    // Their bytes are the copies just read: queued in order, each request as it was (a batch stays one batch).
    try {
      for (const u of unacked) {
        if (u.batch) next.submitBatch(u.records as unknown as T[]);
        else next.submit(u.records[0] as unknown as T);
      }
    } catch (e) {
      void next.close().catch(() => {});
      throw e;
    }
    return next;
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
   * take encoded bytes or, with a schema, message objects. A Uint8Array is copied during the call,
   * unless the stream has `zeroCopy` and it is larger than 1 KiB: then it is read in place and
   * must not be modified, transferred or resized until the promise settles.
   */
  ingest(record: T | Uint8Array): Promise<number> {
    return this.#ingest(false, record);
  }

  /** Queues records as one batch request (one logical offset); resolves when it is durable. */
  ingestBatch(records: readonly (T | Uint8Array)[]): Promise<number> {
    return this.#ingest(true, records);
  }

  /**
   * Queues one record without creating a promise and returns its logical offset (the fast path:
   * pair it with `waitForOffset` or `flush`). When the in-flight limit is reached it blocks the
   * thread until acknowledgements free capacity, for at most `submitTimeoutMs` (then it throws
   * a `TIMEOUT` error and the record is not queued). Arrays are copied as for `ingest`; with
   * `zeroCopy`, don't modify, transfer or resize one over 1 KiB until its offset is acknowledged
   * (`waitForOffset`, `flush`).
   */
  submit(record: T | Uint8Array): number {
    return this.#submit(false, record);
  }

  /** Batch form of `submit`. */
  submitBatch(records: readonly (T | Uint8Array)[]): number {
    return this.#submit(true, records);
  }

  /**
   * Resolves when `offset` is durable. Rejects at once for an offset this stream never handed
   * out, and when the stream failed or is closed before the offset was acknowledged.
   */
  waitForOffset(offset: number): Promise<void> {
    if (!Number.isInteger(offset)) {
      return Promise.reject(new InvalidArgumentError(`waitForOffset takes a whole number, got ${String(offset)}`, "INVALID_ARGUMENT", false));
    }
    if (offset <= this.#acked) return Promise.resolve();
    this.#poll();
    if (offset <= this.#acked) return Promise.resolve();
    if (this.#error) return Promise.reject(this.#error);
    if (!this.#h || this.#state === "closed") return Promise.reject(closedError());
    if (offset > this.#last) {
      return Promise.reject(
        new InvalidArgumentError(`offset ${offset} was never handed out (the last offset is ${this.#last})`, "INVALID_ARGUMENT", false),
      );
    }
    return new Promise((resolve, reject) => {
      this.#others.push({ offset, resolve, reject });
      this.#arm();
    });
  }

  /**
   * Resolves when every record queued so far is durable; rejects after `flushTimeoutMs`, and at
   * once if the stream failed (with its error) or is closed with records not acknowledged.
   */
  async flush(): Promise<void> {
    this.#poll();
    if (this.#error) throw this.#error;
    if (this.#queued.length === 0 && this.#last <= this.#acked) return;
    if (!this.#h) throw closedError();
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

  /**
   * Blocks the thread until every record queued so far is durable, the stream fails, or
   * `timeoutMs` passes. Returns the number of records still not acknowledged (0: all durable).
   * For exit handlers, where nothing asynchronous runs any more (see `ZerobusSdk.flushOnExit`).
   */
  flushSync(timeoutMs: number): number {
    const deadline = performance.now() + Math.max(0, timeoutMs);
    this.#poll();
    this.#handOverQueued(); // ingests still waiting for capacity go first
    this.#poll();
    // In slices, answering a sync headers function between them: a reconnect during the wait
    // may need headers.
    while (this.#h && this.#last > this.#acked && this.#state !== "failed" && this.#state !== "closed") {
      const left = deadline - performance.now();
      if (left <= 0) break;
      lib.zerobus_stream_wait_for_offset(this.#h, this.#last, Math.ceil(Math.min(left, BLOCK_SLICE_MS)));
      this.#poll();
    }
    return Math.max(0, this.#last - this.#acked) + this.#queued.length;
  }

  /**
   * Stops taking records at once (later `ingest`/`submit` calls fail with `STREAM_CLOSED`), then
   * waits until everything taken before is durable and closes the stream. Settles within
   * `flushTimeoutMs`: it rejects if any record could not be made durable by then (the stream then
   * fails with the reason).
   */
  async close(): Promise<void> {
    if (!this.#h) {
      if (this.#error) throw this.#error;
      return;
    }
    this.#closing = true;
    this.#poll();
    if (this.#state === "failed") {
      this.#free();
      throw this.#error;
    }
    // Ingests taken before close() and still waiting for capacity are handed over at once (the
    // limits no longer refuse them), so the native close covers them within flushTimeoutMs and,
    // should it fail, unackedRecords() has them with the rest.
    this.#flushRun(); // the run of ingest() calls made before close()
    this.#handOverQueued();
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
    try {
      if (this.#closing) throw this.#h ? closingError() : closedError();
      const prepared = batch ? this.#prepareBatch(input as readonly unknown[]) : this.#prepare(input);
      if (!batch && !this.#arrow && this.#queued.length === 0 && this.#h) {
        const p = prepared as Prepared;
        if (typeof p === "string" ? p.length <= RUN_STRING_MAX : p instanceof Uint8Array && p.byteLength <= this.#runArrayMax) return this.#joinRun(p as Uint8Array | string);
      }
      this.#flushRun();
      if (this.#queued.length === 0) {
        const r = this.#submitPrepared(batch, prepared);
        if (r >= 0) return this.#ackPromise(r);
        if (r !== BACKPRESSURE) return Promise.reject(lastError());
      }
      return this.#enqueue(batch, prepared);
    } catch (e) {
      return Promise.reject(refusedRecord(e));
    }
  }

  #submit(batch: boolean, input: unknown): number {
    try {
      return this.#submitNow(batch, input);
    } catch (e) {
      throw refusedRecord(e);
    }
  }

  /**
   * @internal Queues like `submit` when the stream has room and nothing waits before it;
   * returns -1 instead of blocking otherwise (zerobus-bun/compat waits asynchronously).
   */
  _offer(batch: boolean, input: unknown): number {
    try {
      if (this.#closing) throw this.#h ? closingError() : closedError();
      const prepared = batch ? this.#prepareBatch(input as readonly unknown[]) : this.#prepare(input);
      this.#flushRun();
      if (this.#queued.length > 0) return -1;
      const r = this.#submitPrepared(batch, prepared);
      if (r === BACKPRESSURE) return -1;
      if (r < 0) throw lastError();
      this.#last = r;
      if (!this.#active) this.#arm();
      return r;
    } catch (e) {
      throw refusedRecord(e);
    }
  }

  #submitNow(batch: boolean, input: unknown): number {
    if (this.#closing) throw this.#h ? closingError() : closedError();
    const prepared = batch ? this.#prepareBatch(input as readonly unknown[]) : this.#prepare(input);
    this.#flushRun();
    let deadline = 0; // set on the first wait: reading the clock per record costs
    if (this.#queued.length > 0) this.#drainQueueBlocking((deadline = performance.now() + this.#submitTimeoutMs));
    for (;;) {
      const r = this.#submitPrepared(batch, prepared);
      if (r >= 0) {
        this.#last = r;
        if (!this.#active) this.#arm();
        return r;
      }
      if (r !== BACKPRESSURE) throw lastError();
      this.#blockForCapacity((deadline ||= performance.now() + this.#submitTimeoutMs));
    }
  }

  /** One native ingest call: an offset, or a negative error code. */
  #submitPrepared(batch: boolean, prepared: Prepared | PreparedBatch): number {
    return batch ? this.#submitBatch(prepared as PreparedBatch) : this.#submitOne(prepared as Prepared);
  }

  #prepare(record: unknown): Prepared {
    if (record instanceof Uint8Array) {
      if (record.byteLength === 0 && (record.buffer as ArrayBuffer).detached) {
        throw new InvalidArgumentError("the record's ArrayBuffer is detached (transferred): it holds no bytes any more", "INVALID_ARGUMENT", false);
      }
      if (record.byteLength > this.#inPlaceMin) {
        // A resizable buffer may shrink under the record, unmapping its memory: copied instead.
        const b = record.buffer as ArrayBuffer & { resizable?: boolean };
        if (b.resizable) return own(copyOf(record));
      }
      return record;
    }
    if (this.#arrow) return own(arrowToIPC(record));
    if (this.#json) return typeof record === "string" ? checkJsonText(record) : jsonText(record);
    if (this.#schema && record !== null && typeof record === "object") {
      const schema = this.#schema;
      checkMessage(schema, record);
      // Messages made with create(); plain init objects are accepted too.
      const msg = (record as { $typeName?: string }).$typeName === schema.typeName ? record : create(schema, record as never);
      return own(toBinary(schema, msg as MessageShape<DescMessage>));
    }
    throw new InvalidArgumentError(
      this.#schema
        ? `a proto stream takes encoded bytes (Uint8Array) or ${this.#schema.typeName} messages`
        : "a proto stream takes encoded bytes (Uint8Array); pass `schema` to createStream to ingest message objects",
      "INVALID_ARGUMENT",
      false,
    );
  }

  /**
   * What the JavaScript queue may hold until a native call takes it: a copy of a caller's array
   * the native call would have copied (the caller may reuse it as soon as ingest returns).
   */
  #keep(p: Prepared): Prepared {
    return p instanceof Uint8Array && p.byteLength <= this.#inPlaceMin ? own(copyOf(p)) : p;
  }

  #prepareBatch(records: readonly unknown[]): PreparedBatch {
    if (!Array.isArray(records)) throw new InvalidArgumentError("ingestBatch takes an array of records", "INVALID_ARGUMENT", false);
    if (records.length === 0) throw new InvalidArgumentError("a batch needs at least one record", "INVALID_ARGUMENT", false);
    const out: PreparedBatch = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      try {
        out[i] = this.#prepare(records[i]);
      } catch (e) {
        if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`record ${i} of the batch: ${e.message}`, "INVALID_ARGUMENT", false);
        throw e;
      }
    }
    return out;
  }

  #handle(): Pointer {
    if (!this.#h) throw closedError();
    return this.#h;
  }

  #submitOne(p: Prepared): number {
    const h = this.#handle();
    const fn = this.#arrow ? lib.zerobus_ingest_ipc_batch : this.#json ? lib.zerobus_ingest_json_bytes : lib.zerobus_ingest_proto_bytes;
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
    if (p.byteLength <= this.#inPlaceMin) return fn(h, p.byteLength ? ptr(p) : NULL, p.byteLength, NULL, NULL) as number;
    return fn(h, stablePtr(p), p.byteLength, releaseFn, hold(p) as unknown as Pointer) as number;
  }

  #submitBatch(records: PreparedBatch): number {
    const h = this.#handle();
    // Strings are packed into one buffer (encoded once); byte arrays go by pointer.
    if (records.every((r) => typeof r === "string")) {
      let total = 0;
      for (const r of records as string[]) total += r.length * 3;
      const fn = this.#json ? lib.zerobus_ingest_json_bytes_packed : lib.zerobus_ingest_proto_bytes_packed;
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
      if (buf === scratch || at <= COPY_MAX) return fn(h, buf === scratch ? scratchPtr : ptr(buf), at, lens, records.length, NULL, NULL) as number;
      return fn(h, at ? stablePtr(buf) : null, at, lens, records.length, releaseFn, hold(buf) as unknown as Pointer) as number;
    }
    const items = records.map((r) => (typeof r === "string" ? own(encoder.encode(r)) : r));
    const arrays = items.map((r) => (r instanceof Owned ? r.bytes : r));
    // One release covers the batch: read in place only if every record may be (the SDK's own
    // bytes; the caller's large arrays with zeroCopy), else Rust copies them all during the call.
    const pin = items.every((r) => r instanceof Owned || r.byteLength > this.#inPlaceMin);
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
    const fn = this.#json ? lib.zerobus_ingest_json_bytes_batch : lib.zerobus_ingest_proto_bytes_batch;
    if (!pin) return fn(h, ptrs, lens, arrays.length, NULL, NULL) as number;
    return fn(h, ptrs, lens, arrays.length, releaseFn, hold(arrays) as unknown as Pointer) as number;
  }

  /** Adds a small record to the run; its promise settles like any ingest()'s. */
  #joinRun(p: Uint8Array | string): Promise<number> {
    if (!this.#runBuf) {
      this.#runBuf = new Uint8Array(new ArrayBuffer(RUN_BYTES)); // ArrayBuffer-backed: its pointer is stable
      this.#runPtr = ptr(this.#runBuf);
      this.#runLens = new Uint32Array(RUN_RECORDS);
    }
    let n = this.#runN === RUN_RECORDS ? -1 : this.#fitRun(p);
    if (n < 0) {
      // Full: sent now (a run sent while records wait for capacity joins them: #flushRun).
      this.#flushRun();
      n = this.#fitRun(p); // an empty run holds any record small enough to join one
    }
    this.#runLens![this.#runN++] = n;
    this.#runAt += n;
    if (this.#runN === 1) queueMicrotask(this.#runTask); // a run's first record: sent at the end of the tick
    return this.#waiter(Infinity);
  }

  /** Writes `p` at the end of the run; its length, or -1 if it does not fit (nothing is added). */
  #fitRun(p: Uint8Array | string): number {
    const buf = this.#runBuf!;
    const at = this.#runAt;
    if (typeof p === "string") {
      const r = encoder.encodeInto(p, buf.subarray(at));
      return r.read === p.length ? r.written : -1;
    }
    if (RUN_BYTES - at < p.byteLength) return -1;
    buf.set(p, at);
    return p.byteLength;
  }

  /** Queues the run: by one native call, or (refused as a whole) one record at a time. */
  #flushRun(): void {
    const n = this.#runN;
    if (n === 0) return;
    const bytes = this.#runAt;
    this.#runN = 0;
    this.#runAt = 0;
    const start = this.#wOff.length - n;
    // Records already waiting for capacity go first: then the run waits behind them.
    if (this.#queued.length === 0) {
      // A run is dropped with its waiters (#settleAll) when the handle goes: #h is set here.
      const fn = this.#json ? lib.zerobus_ingest_json_bytes_each : lib.zerobus_ingest_proto_bytes_each;
      const last = fn(this.#h!, this.#runPtr, bytes, this.#runLens!, n) as number;
      if (last >= 0) {
        for (let i = 0, o = last - n + 1; i < n; i++, o++) this.#wOff[start + i] = o;
        if (last > this.#last) this.#last = last;
        return;
      }
    }
    // A record refused, or not enough capacity for all: the run's records join the queue, which
    // takes each as ingest() alone would (its own error; the rest wait for capacity). The run
    // buffer is reused, so they are copied out of it.
    const res = this.#wRes.splice(start);
    const rej = this.#wRej.splice(start);
    this.#wOff.length = start;
    for (let i = 0, at = 0; i < n; i++) {
      const record = this.#runBuf!.slice(at, (at += this.#runLens![i]!));
      this.#queued.push({ batch: false, prepared: record, resolve: res[i]!, reject: rej[i]! });
    }
    this.#drainQueue();
    this.#arm();
  }

  #ackPromise(offset: number): Promise<number> {
    if (offset > this.#last) this.#last = offset;
    return this.#waiter(offset);
  }

  /** A promise that settles when `offset` is acknowledged (or the stream ends first). */
  #waiter(offset: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) => this.#addWaiter(offset, resolve, reject));
    if (!this.#active) this.#arm();
    return p;
  }

  #addWaiter(offset: number, resolve: (o: number) => void, reject: (e: unknown) => void): void {
    this.#wOff.push(offset);
    this.#wRes.push(resolve);
    this.#wRej.push(reject);
  }

  #enqueue(batch: boolean, prepared: Prepared | PreparedBatch): Promise<number> {
    const kept = batch ? (prepared as PreparedBatch).map((r) => this.#keep(r)) : this.#keep(prepared as Prepared);
    const p = new Promise<number>((resolve, reject) => {
      this.#queued.push({ batch, prepared: kept, resolve, reject });
    });
    this.#arm();
    return p;
  }

  /** Submits queued records while there is capacity. */
  #drainQueue(): void {
    while (this.#queued.length > 0 && this.#h) {
      const q = this.#queued[0]!;
      let r: number;
      try {
        r = this.#submitPrepared(q.batch, q.prepared);
      } catch (e) {
        this.#queued.shift();
        q.reject(refusedRecord(e));
        continue;
      }
      if (r === BACKPRESSURE) return;
      this.#queued.shift();
      if (r >= 0) {
        if (r > this.#last) this.#last = r;
        this.#addWaiter(r, q.resolve, q.reject);
      } else {
        q.reject(lastError());
      }
    }
  }

  /** Hands every ingest still waiting for capacity to the native stream, past its limits (closing). */
  #handOverQueued(): void {
    if (this.#queued.length === 0 || !this.#h) return;
    lib.zerobus_stream_lift_limits(this.#h);
    this.#drainQueue();
  }

  #drainQueueBlocking(deadline: number): void {
    while (this.#queued.length > 0) {
      this.#drainQueue();
      if (this.#queued.length > 0) this.#blockForCapacity(deadline);
    }
  }

  /**
   * Blocks until an acknowledgement frees capacity, the stream fails, or `deadline` passes
   * (then throws TIMEOUT). Released buffers are forgotten while waiting, so a tight submit loop
   * holds no more than the in-flight limits.
   */
  #blockForCapacity(deadline: number): void {
    const h = this.#handle();
    const acked = this.#nativeAcked();
    for (;;) {
      drainReleased();
      // A reconnect may be waiting for headers: a sync headers function is answered from here
      // (an async one cannot run while this thread blocks).
      if (this.#headersFn && this.#i32[9] !== 0 && this.#i32[9] !== this.#headersBusy) this.#serveHeaders(this.#i32[9]!);
      const last = Number(this.#progress[1]);
      if (last <= acked) return; // everything acknowledged meanwhile
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new ZerobusError(
          `submit waited ${this.#submitTimeoutMs} ms (submitTimeoutMs) for capacity: records ${acked + 1} to ${last} are still not acknowledged`,
          "TIMEOUT",
          true,
        );
      }
      const rc = lib.zerobus_stream_wait_for_offset(h, acked + 1, Math.ceil(Math.min(left, BLOCK_SLICE_MS)));
      if (rc === 0) {
        drainReleased();
        return;
      }
      const now = this.#nativeAcked();
      if (this.#i32[6] === FAILED || this.#i32[6] === CLOSED || codeName(rc) !== "TIMEOUT") {
        // The stream's own failure (which may also be a TIMEOUT), not the end of this wait.
        this.#poll();
        throw this.#error ?? lastError();
      }
      if (now > acked) return;
    }
  }

  /** Hands the native side's queued events to the logger. */
  #drainLog(): void {
    const h = this.#h;
    if (!h || !this.#logger) return;
    const bytes = readNative((buf, cap) => lib.zerobus_stream_log(h, buf, cap));
    if (bytes.byteLength === 0) return;
    const { dropped, events } = JSON.parse(decoder.decode(bytes)) as { dropped: number; events: { level: LogLevel; message: string }[] };
    const streamId = this.streamId;
    const emit = (level: LogLevel, message: string) => {
      try {
        this.#logger!({ level, message, table: this.table, streamId });
      } catch {
        // a throwing logger must not break the stream
      }
    };
    if (dropped > 0) emit("warn", `${dropped} older log events were dropped (the logger fell behind)`);
    for (const e of events) emit(e.level, e.message);
  }

  /** Calls the headers function for request `id` and answers it (at once, or when its promise settles). */
  #serveHeaders(id: number): void {
    this.#headersBusy = id;
    const answer = (value: unknown, failed: boolean) => {
      if (this.#headersBusy === id) this.#headersBusy = 0;
      if (!this.#h) return;
      let text: string;
      let isError = failed ? 1 : 0;
      if (failed) text = value instanceof Error ? value.message : String(value);
      else {
        const bad = headersProblem(value);
        text = bad ?? JSON.stringify(value);
        if (bad) isError = 2;
      }
      const bytes = encoder.encode(text);
      lib.zerobus_stream_headers_reply(this.#h, id, bytes, bytes.byteLength, isError);
    };
    try {
      const r = this.#headersFn!(this.table);
      if (r && typeof (r as Promise<unknown>).then === "function") {
        (r as Promise<unknown>).then((v) => answer(v, false), (e) => answer(e, true));
      } else answer(r, false);
    } catch (e) {
      answer(e, true);
    }
  }

  #nativeAcked(): number {
    if (!this.#h) return this.#acked;
    lib.zerobus_stream_progress(this.#h, this.#progress);
    return Number(this.#progress[0]);
  }

  /** Reads progress, settles what it can, and keeps the stream active while work is outstanding. */
  #poll(): void {
    drainReleased();
    if (!this.#h) return;
    this.#flushRun();
    lib.zerobus_stream_progress(this.#h, this.#progress);
    const acked = Number(this.#progress[0]);
    const last = Number(this.#progress[1]);
    if (last > this.#last) this.#last = last;
    this.#streamsOpened = Number(this.#progress[2]);
    this.#state = STATES[this.#i32[6]!] ?? "failed";
    const wanted = this.#i32[9]!;
    if (wanted !== 0 && wanted !== this.#headersBusy) this.#serveHeaders(wanted);
    if (this.#i32[10] !== 0 && this.#logger) this.#drainLog();
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
    this.#runN = 0;
    this.#runAt = 0;
    this.#wOff = [];
    this.#wRes = [];
    this.#wRej = [];
    this.#wHead = 0;
    for (const q of this.#queued) q.reject(err);
    this.#queued = [];
    for (const w of this.#others) w.reject(err);
    this.#others = [];
  }

  /** Work outstanding: promises waiting, or records not yet acknowledged on a live stream. */
  #pending(): boolean {
    if (this.#wHead < this.#wOff.length || this.#queued.length > 0 || this.#others.length > 0) return true;
    return this.#last > this.#acked && this.#state !== "failed" && this.#state !== "closed";
  }

  /** Registers the stream with the realm's waker (and keep-alive timer) exactly while it has work. */
  #arm(): void {
    const want = this.#h !== null && this.#pending();
    if (want === this.#active) return;
    this.#active = want;
    if (want) {
      // Reading progress re-arms the native notification, which fires once per read: a change
      // while the stream was idle would otherwise leave it waiting for the fallback timer.
      lib.zerobus_stream_progress(this.#h!, this.#progress);
      activate(this.#pollable);
    } else deactivate(this.#pollable);
  }

  #waitState(states: StreamState[]): Promise<void> {
    this.#poll();
    if (states.includes(this.#state)) return Promise.resolve();
    if (this.#state === "failed") return Promise.reject(this.#error);
    if (!this.#h) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.#others.push({ offset: Infinity, until: states, resolve, reject });
      this.#arm();
    });
  }

  #free(): void {
    if (this.#h) {
      this.#drainLog();
      this.#finalStats = this.stats();
      if (this.#state === "failed") this.#finalUnacked = this.unackedRecords();
      dropped.unregister(this);
      this.#unwatch?.();
      lib.zerobus_stream_free(this.#h);
      this.#h = null;
    }
    this.#settleAll();
    this.#arm();
    drainReleased();
  }
}

type ArrowModule = typeof import("apache-arrow");
let arrowModule: ArrowModule | undefined;

/**
 * @internal Loads apache-arrow (an optional peer dependency) as an ES module: the same module instance as
 * the application's own `import`, so its Tables are recognised by its writer (a `require` would
 * load a second copy). Undefined when it is not installed. The import sits inside try/catch so
 * that bundlers (`bun build`, `--compile`) accept its absence and include it when present.
 */
export async function loadArrow(): Promise<ArrowModule | undefined> {
  if (arrowModule) return arrowModule;
  try {
    arrowModule = await import("apache-arrow");
  } catch {
    return undefined;
  }
  return arrowModule;
}

/**
 * `value` was made by this copy of apache-arrow. Its classes answer `instanceof` for objects of any
 * copy (they check a marker), but only its own objects can be written as IPC by it.
 */
export function ownInstance(cls: Function, value: unknown): boolean {
  return Function.prototype[Symbol.hasInstance].call(cls, value);
}

/** An error for an apache-arrow object made by a different copy of apache-arrow. */
export function foreignArrow(what: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${what} comes from a different copy of apache-arrow than the one zerobus-bun loads ` +
      `(${import.meta.resolve?.("apache-arrow") ?? "apache-arrow"}), so it cannot be written as Arrow IPC here: ` +
      "make your project resolve a single apache-arrow, or pass Arrow IPC stream bytes (tableToIPC(table, \"stream\"))",
    "INVALID_ARGUMENT",
    false,
  );
}

/** An apache-arrow Table or RecordBatch as Arrow IPC stream bytes (one encode pass, in JS). */
export function arrowToIPC(value: unknown): Uint8Array {
  const v = value as { schema?: unknown; batches?: unknown; numRows?: unknown; data?: unknown } | null;
  if (v && typeof v === "object" && v.schema && (Array.isArray(v.batches) || (typeof v.numRows === "number" && v.data))) {
    const arrow = arrowModule;
    if (!arrow) throw new InvalidArgumentError("an apache-arrow Table or RecordBatch needs the apache-arrow package installed (npm install apache-arrow); or pass Arrow IPC stream bytes", "INVALID_ARGUMENT", false);
    if (ownInstance(arrow.Table, v)) return arrow.tableToIPC(v as import("apache-arrow").Table, "stream");
    if (ownInstance(arrow.RecordBatch, v)) return arrow.tableToIPC(new arrow.Table(v as import("apache-arrow").RecordBatch), "stream");
    throw foreignArrow(Array.isArray(v.batches) ? "this Table" : "this RecordBatch");
  }
  throw new InvalidArgumentError(
    "an Arrow stream takes Arrow IPC stream bytes (Uint8Array) or an apache-arrow Table / RecordBatch",
    "INVALID_ARGUMENT",
    false,
  );
}
