// A Zerobus ingestion stream over the native library: its state machine (open, recover, close,
// fail), the public ingest/submit/wait API, the JavaScript queue of records waiting for capacity,
// and polling. Records are marshalled by records.ts, waiters kept by waiters.ts, progress and
// reports read by progress.ts and reports.ts.
/// <reference lib="esnext.disposable" preserve="true" />
import type { Pointer } from "bun:ffi";
import type { DescMessage } from "@bufbuild/protobuf";
import { lib } from "./native.js";
import { closedError, closingError, codeName, errorClass, lastError, refusedRecord, InvalidArgumentError, ZerobusError } from "./errors.js";
import { COPY_MAX, drainReleased, sink } from "./memory.js";
import { activate, deactivate, notifyTarget, watch, type Pollable } from "./wake.js";
import { Progress } from "./progress.js";
import {
  BACKPRESSURE, RUN_ARRAY_MAX, RUN_STRING_MAX, Run, copyOf, keep, prepare, prepareBatch, rules, submitBatch, submitOne,
  type Prepared, type PreparedBatch, type Rules,
} from "./records.js";
import { emptyStats, emitLog, readErrorMessage, readStats, readStreamId, readUnacked } from "./reports.js";
import type { HeadersFunction, LogEvent, RecordType, StreamState, StreamStats, UnackedRecord } from "./types.js";
import { AckWaiters, type OtherWaiter } from "./waiters.js";
import { CapacityQueue } from "./queue.js";
import { callHeaders, replyHeaders } from "./headers.js";
import { BLOCK_SLICE_MS, waitForCapacity, type Blocked } from "./blocking.js";

export type { StreamState, HeadersFunction, RecordType, JsonObject, JsonRecord, StreamStats, UnackedRecord, LogEvent, LogLevel } from "./types.js";

/** Stream options applied in JavaScript (the rest go to the native stream). */
export interface LocalOptions {
  flushTimeoutMs?: number | undefined;
  submitTimeoutMs?: number | undefined;
  /** Caller arrays over COPY_MAX bytes are read in place (else every caller array is copied). */
  zeroCopy?: boolean;
}

const encoder = new TextEncoder();

/** Frees the native stream of a ZerobusStream that was dropped without close(). */
const dropped = new FinalizationRegistry<Pointer>((h) => {
  lib.zerobus_stream_free(h);
  drainReleased();
});

/**
 * A stream that takes records of type `T` besides encoded bytes (a `Uint8Array`, always taken):
 * a schema stream its message's init objects and messages (`MessageInitShape<S>`), a JSON stream
 * JSON objects (or the type given to `createStream<T>`) and JSON text, a proto stream without a
 * schema bytes only.
 */
export class ZerobusStream<T = unknown> implements AsyncDisposable {
  #h: Pointer | null;
  #progress = new Progress();
  #acked = -1;
  #last = -1;
  #streamsOpened = 0;
  #finalStats: StreamStats | undefined;
  #state: StreamState = "opening";
  /** close() was called: no more records are taken. */
  #closing = false;
  #error: ZerobusError | undefined;
  /** What the stream makes of records and the native calls that queue them. */
  #rules: Rules;
  /** The promises of ingest() calls, each waiting for its offset. */
  #waiters = new AckWaiters();
  /** Other waits (waitForOffset, flush, open, close). */
  #others: OtherWaiter[] = [];
  // Records waiting for capacity (max inflight reached), in call order.
  #queued = new CapacityQueue();
  /** Registered with the realm's waker while work is outstanding (that also keeps the process alive). */
  #pollable: Pollable = { poll: () => this.#poll() };
  #active = false;
  readonly table: string;
  #flushTimeoutMs: number;
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
  /** The run of small ingest() calls (records.ts). Its waiters are the last `run.n` ack waiters, with offset Infinity until queued. */
  #run = new Run();
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
    const inPlaceMin = local.zeroCopy ? COPY_MAX : Infinity;
    this.#runArrayMax = Math.min(inPlaceMin, RUN_ARRAY_MAX);
    this.#rules = rules(recordType, schema, inPlaceMin);
    const opts = encoder.encode(optionsJson);
    const d = descriptor && descriptor.byteLength > 0 ? descriptor : null;
    const open = this.#rules.arrow ? lib.zerobus_arrow_stream_open : lib.zerobus_stream_open;
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
      this.#progress.read(this.#h);
      this.#streamsOpened = this.#progress.streamsOpened;
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
    return readStats(h);
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
    return readUnacked(h);
  }

  /** @internal ZerobusSdk.recreateStream: a new stream like this one, with its unacknowledged requests queued first. */
  _recreate(sdk: Pointer): ZerobusStream<T> {
    if (this.#state !== "failed") {
      throw new InvalidArgumentError(`recreateStream takes a failed stream; this one is ${this.#state}`, "INVALID_ARGUMENT", false);
    }
    const b = this.#blueprint;
    const unacked = this.unackedRecords();
    const next = new ZerobusStream<T>(sdk, this.table, b.recordType, b.optionsJson, b.descriptor, this.#rules.schema, b.local, this.#headersFn, this.#logger);
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
    return this.#h ? readStreamId(this.#h) : undefined;
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
      const prepared = batch ? prepareBatch(this.#rules, input as readonly unknown[]) : prepare(this.#rules, input);
      if (!batch && !this.#rules.arrow && this.#queued.length === 0 && this.#h) {
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

  #submit(batch: boolean, input: unknown, wait = true): number {
    try {
      return this.#submitNow(batch, input, wait);
    } catch (e) {
      throw refusedRecord(e);
    }
  }

  /**
   * @internal Queues like `submit` when the stream has room and nothing waits before it;
   * returns -1 instead of blocking otherwise (zerobus-bun/compat waits asynchronously).
   */
  _offer(batch: boolean, input: unknown): number {
    return this.#submit(batch, input, false);
  }

  /** Queues now: waits (blocking, `wait`) for capacity, or returns -1 where it would wait. */
  #submitNow(batch: boolean, input: unknown, wait: boolean): number {
    if (this.#closing) throw this.#h ? closingError() : closedError();
    const prepared = batch ? prepareBatch(this.#rules, input as readonly unknown[]) : prepare(this.#rules, input);
    this.#flushRun();
    let deadline = 0; // set on the first wait: reading the clock per record costs
    if (this.#queued.length > 0) {
      if (!wait) return -1;
      this.#drainQueueBlocking((deadline = performance.now() + this.#submitTimeoutMs));
    }
    for (;;) {
      const r = this.#submitPrepared(batch, prepared);
      if (r >= 0) {
        this.#last = r;
        if (!this.#active) this.#arm();
        return r;
      }
      if (r !== BACKPRESSURE) throw lastError();
      if (!wait) return -1;
      this.#blockForCapacity((deadline ||= performance.now() + this.#submitTimeoutMs));
    }
  }

  /** One native ingest call: an offset, or a negative error code. */
  #submitPrepared(batch: boolean, prepared: Prepared | PreparedBatch): number {
    const h = this.#handle();
    return batch ? submitBatch(this.#rules, h, prepared as PreparedBatch) : submitOne(this.#rules, h, prepared as Prepared);
  }

  #handle(): Pointer {
    if (!this.#h) throw closedError();
    return this.#h;
  }

  /** Adds a small record to the run; its promise settles like any ingest()'s. */
  #joinRun(p: Uint8Array | string): Promise<number> {
    if (!this.#run.add(p)) {
      // Full: sent now (a run sent while records wait for capacity joins them: #flushRun).
      this.#flushRun();
      this.#run.add(p); // an empty run holds any record small enough to join one
    }
    if (this.#run.n === 1) queueMicrotask(this.#runTask); // a run's first record: sent at the end of the tick
    return this.#waiter(Infinity);
  }

  /** Queues the run: by one native call, or (refused as a whole) one record at a time. */
  #flushRun(): void {
    const run = this.#run;
    const n = run.n;
    if (n === 0) return;
    const start = this.#waiters.length - n;
    // Records already waiting for capacity go first: then the run waits behind them.
    if (this.#queued.length === 0) {
      // A run is dropped with its waiters (#settleAll) when the handle goes: #h is set here.
      const last = run.send(this.#rules, this.#h!);
      if (last >= 0) {
        run.clear();
        for (let i = 0, o = last - n + 1; i < n; i++, o++) this.#waiters.setOffset(start + i, o);
        if (last > this.#last) this.#last = last;
        return;
      }
    }
    // A record refused, or not enough capacity for all: the run's records join the queue, which
    // takes each as ingest() alone would (its own error; the rest wait for capacity). The run
    // buffer is reused, so they are copied out of it.
    const records = run.records();
    run.clear();
    const { resolve, reject } = this.#waiters.takeFrom(start);
    for (let i = 0; i < n; i++) this.#queued.push({ batch: false, prepared: records[i]!, resolve: resolve[i]!, reject: reject[i]! });
    this.#drainQueue();
    this.#arm();
  }

  #ackPromise(offset: number): Promise<number> {
    if (offset > this.#last) this.#last = offset;
    return this.#waiter(offset);
  }

  /** A promise that settles when `offset` is acknowledged (or the stream ends first). */
  #waiter(offset: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) => this.#waiters.add(offset, resolve, reject));
    if (!this.#active) this.#arm();
    return p;
  }

  #enqueue(batch: boolean, prepared: Prepared | PreparedBatch): Promise<number> {
    const kept = batch ? (prepared as PreparedBatch).map((r) => keep(this.#rules, r)) : keep(this.#rules, prepared as Prepared);
    const p = new Promise<number>((resolve, reject) => {
      this.#queued.push({ batch, prepared: kept, resolve, reject });
    });
    this.#arm();
    return p;
  }

  /** Submits queued records while there is capacity. */
  #drainQueue(): void {
    if (!this.#h) return;
    this.#queued.drain(
      (q) => this.#submitPrepared(q.batch, q.prepared),
      (r, q) => {
        if (r > this.#last) this.#last = r;
        this.#waiters.add(r, q.resolve, q.reject);
      },
      refusedRecord,
    );
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

  /** Blocks until an acknowledgement frees capacity (blocking.ts). */
  #blockForCapacity(deadline: number): void {
    const blocked: Blocked = {
      h: this.#handle(),
      progress: this.#progress,
      serveHeaders: () => {
        const wanted = this.#progress.headersWanted;
        if (this.#headersFn && wanted !== 0 && wanted !== this.#headersBusy) this.#serveHeaders(wanted);
      },
      failure: () => {
        this.#poll();
        return this.#error ?? lastError();
      },
    };
    waitForCapacity(blocked, deadline, this.#submitTimeoutMs);
  }

  /** Hands the native side's queued events to the logger. */
  #drainLog(): void {
    if (this.#h && this.#logger) emitLog(this.#h, this.#logger, this.table, () => this.streamId);
  }

  /** Calls the headers function for request `id` and answers it (at once, or when its promise settles). */
  #serveHeaders(id: number): void {
    this.#headersBusy = id;
    callHeaders(this.#headersFn!, this.table, (value, failed) => {
      if (this.#headersBusy === id) this.#headersBusy = 0;
      if (this.#h) replyHeaders(this.#h, id, value, failed);
    });
  }

  /** Reads progress, settles what it can, and keeps the stream active while work is outstanding. */
  #poll(): void {
    drainReleased();
    if (!this.#h) return;
    this.#flushRun();
    const pr = this.#progress;
    pr.read(this.#h);
    const acked = pr.acked;
    const last = pr.lastOffset;
    if (last > this.#last) this.#last = last;
    this.#streamsOpened = pr.streamsOpened;
    this.#state = pr.state;
    const wanted = pr.headersWanted;
    if (wanted !== 0 && wanted !== this.#headersBusy) this.#serveHeaders(wanted);
    if (pr.logPending && this.#logger) this.#drainLog();
    if (this.#state === "failed" && !this.#error) {
      const code = codeName(pr.errorCode);
      this.#error = new (errorClass(code))(readErrorMessage(this.#h), code, pr.errorRetryable, { first: acked + 1, last: this.#last });
    }
    if (acked > this.#acked) this.#acked = acked;
    this.#waiters.resolveUpTo(acked);
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
    this.#waiters.rejectAll(err);
    this.#run.clear();
    this.#queued.rejectAll(err);
    for (const w of this.#others) w.reject(err);
    this.#others = [];
  }

  /** Work outstanding: promises waiting, or records not yet acknowledged on a live stream. */
  #pending(): boolean {
    if (this.#waiters.pending || this.#queued.length > 0 || this.#others.length > 0) return true;
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
      this.#progress.read(this.#h!);
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
