// The official SDK's stream classes over zerobus-bun streams: `ingestRecordOffset` resolves
// with a bigint offset once the record is queued (waiting without blocking the thread when the
// stream is at its in-flight limit, in call order), `ingestRecord` once it is acknowledged.
import type { ZerobusStream as Stream } from "../stream.js";
import type { ArrowBatch } from "../arrow.js";
import { InvalidArgumentError, ZerobusError } from "../errors.js";
import { ipcRowCounts } from "./ipc-rows.js";
import { asBuffer, record, type RecordBytes } from "./records.js";

const toOffset = (offset: unknown): number => {
  if (typeof offset === "bigint" || (typeof offset === "number" && Number.isInteger(offset))) return Number(offset);
  throw new InvalidArgumentError(`waitForOffset takes an offset (bigint), got ${typeof offset}`, "INVALID_ARGUMENT", false);
};

const closedError = () => new ZerobusError("Stream has been closed", "STREAM_CLOSED", false);

/**
 * Queues records on a zerobus-bun stream in call order, waiting asynchronously for room, and
 * gives both compat stream classes their waits and `close()` as the official SDK's: after
 * close(), flush and ingests reject; closing a stream that had failed before resolves (the
 * failure was reported where it happened; its records stay readable for recreateStream).
 */
class Queue {
  /** Settles after the last call that had to wait; undefined when none waits. */
  #tail: Promise<unknown> | undefined;
  /** close() was called. */
  closed = false;

  constructor(private readonly stream: Stream<any>) {}

  /**
   * Resolves with the record's (or batch's) offset once the stream holds it. A record the
   * stream refuses as it is (its JSON, its size) throws at once, as the official SDK throws what
   * it cannot serialize; other failures (a closed or failed stream) reject.
   */
  offer(batch: boolean, input: unknown): Promise<bigint> {
    if (!this.#tail) {
      try {
        const r = this.stream._offer(batch, input);
        if (r >= 0) return Promise.resolve(BigInt(r));
      } catch (e) {
        if (e instanceof InvalidArgumentError) throw e;
        return Promise.reject(e);
      }
    }
    return this.#after(async () => {
      for (;;) {
        const r = this.stream._offer(batch, input);
        if (r >= 0) return BigInt(r);
        await this.stream.waitForOffset(this.stream.ackedOffset + 1);
      }
    });
  }

  /** Runs `f` after every call still waiting (so records keep their call order). */
  #after<T>(f: () => Promise<T>): Promise<T> {
    const p = (this.#tail ?? Promise.resolve()).then(f);
    const t = p.then(
      () => {},
      () => {},
    );
    this.#tail = t;
    t.then(() => {
      if (this.#tail === t) this.#tail = undefined;
    });
    return p;
  }

  /** `f` now, or after the calls still waiting. */
  inOrder<T>(f: () => Promise<T>): Promise<T> {
    return this.#tail ? this.#after(f) : f();
  }

  waitForOffset(offsetId: unknown): Promise<void> {
    try {
      return this.stream.waitForOffset(toOffset(offsetId));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    return this.inOrder(() => this.stream.flush());
  }

  close(): Promise<void> {
    this.closed = true;
    const failedBefore = this.stream.state === "failed";
    return this.inOrder(() => this.stream.close()).catch((e: unknown) => {
      if (!failedBefore) throw e;
    });
  }
}


/** A JSON or protobuf stream, as the official SDK's `ZerobusStream`. */
export class ZerobusStream {
  readonly #queue: Queue;
  readonly #json: boolean;

  /** @internal made by `ZerobusSdk.createStream` */
  constructor(
    /** The zerobus-bun stream underneath (stats, state, zero-copy options). */
    readonly inner: Stream<any>,
    json: boolean,
  ) {
    this.#queue = new Queue(inner);
    this.#json = json;
  }

  /** @internal whether this is a JSON stream (else protobuf) */
  get _json(): boolean {
    return this.#json;
  }

  /**
   * Resolves with the record's offset once it is queued (not acknowledged: see `waitForOffset`).
   * Throws at once for a value that is no record (null, a number, JSON that cannot be written).
   */
  ingestRecordOffset(payload: unknown): Promise<bigint> {
    const r = record(payload, this.#json);
    if (r instanceof InvalidArgumentError) return Promise.reject(r);
    if (this.#queue.closed) return Promise.reject(closedError());
    return this.#queue.offer(false, r);
  }

  /** Queues the records as one batch; resolves with its offset once queued, null for none. */
  ingestRecordsOffset(payloads: unknown[]): Promise<bigint | null> {
    const records = this.#records(payloads);
    if (records instanceof InvalidArgumentError) return Promise.reject(records);
    if (this.#queue.closed) return Promise.reject(closedError());
    return records.length === 0 ? Promise.resolve(null) : this.#queue.offer(true, records);
  }

  /** @deprecated as in the official SDK: resolves once the record is acknowledged. Prefer `ingestRecordOffset`. */
  ingestRecord(payload: unknown): Promise<bigint> {
    const r = record(payload, this.#json);
    if (r instanceof InvalidArgumentError) return Promise.reject(r);
    if (this.#queue.closed) return Promise.reject(closedError());
    return this.#acked(this.#queue.offer(false, r));
  }

  /** @deprecated as in the official SDK: resolves once the batch is acknowledged. Prefer `ingestRecordsOffset`. */
  ingestRecords(payloads: unknown[]): Promise<bigint | null> {
    const records = this.#records(payloads);
    if (records instanceof InvalidArgumentError) return Promise.reject(records);
    if (this.#queue.closed) return Promise.reject(closedError());
    if (records.length === 0) return Promise.resolve(null);
    return this.#acked(this.#queue.offer(true, records));
  }

  /** Resolves once `offsetId` (and everything before it) is acknowledged. */
  waitForOffset(offsetId: bigint): Promise<void> {
    return this.#queue.waitForOffset(offsetId);
  }

  flush(): Promise<void> {
    return this.#queue.flush();
  }

  close(): Promise<void> {
    return this.#queue.close();
  }

  /** The records not acknowledged, as Buffers (JSON as UTF-8 text). */
  async getUnackedRecords(): Promise<RecordBytes[]> {
    return this.inner.unackedRecords().flatMap((u) => u.records.map(asBuffer));
  }

  /** The records not acknowledged, grouped as they were ingested (one call, one group). */
  async getUnackedBatches(): Promise<RecordBytes[][]> {
    return this.inner.unackedRecords().map((u) => u.records.map(asBuffer));
  }

  /** The offset `queued` resolves with, once it is acknowledged. */
  async #acked(queued: Promise<bigint>): Promise<bigint> {
    const offset = await queued;
    await this.inner.waitForOffset(Number(offset));
    return offset;
  }

  /** The records, converted (throws for what is no record), or the first one of the wrong kind. */
  #records(payloads: unknown[]): unknown[] | InvalidArgumentError {
    if (!Array.isArray(payloads)) throw new InvalidArgumentError("ingestRecords takes an array of records", "INVALID_ARGUMENT", false);
    const out = payloads.map((p) => record(p, this.#json));
    return out.find((r): r is InvalidArgumentError => r instanceof InvalidArgumentError) ?? out;
  }
}

/** An Arrow Flight stream, as the official SDK's `ZerobusArrowStream`. */
export class ZerobusArrowStream {
  readonly #queue: Queue;

  /** @internal made by `ZerobusSdk.createArrowStream` */
  constructor(
    /** The zerobus-bun stream underneath. */
    readonly inner: Stream<ArrowBatch>,
  ) {
    this.#queue = new Queue(inner);
  }

  get tableName(): string {
    return this.inner.table;
  }

  get isClosed(): boolean {
    return this.inner.state === "closed";
  }

  /**
   * Queues Arrow IPC stream bytes; resolves with the offset of its (last) record batch once
   * queued. A batch without rows is refused, as the official SDK does.
   */
  ingestBatch(ipcBuffer: ArrowBatch): Promise<bigint> {
    const bytes = ArrayBuffer.isView(ipcBuffer) ? new Uint8Array(ipcBuffer.buffer, ipcBuffer.byteOffset, ipcBuffer.byteLength) : ipcBuffer;
    try {
      const rows = bytes instanceof Uint8Array ? ipcRowCounts(bytes) : [BigInt((bytes as { numRows?: number }).numRows ?? 1)];
      if (rows.length === 0) throw new InvalidArgumentError("no record batch in these bytes (an Arrow IPC stream: tableToIPC(table, \"stream\"))", "INVALID_ARGUMENT", false);
      if (rows.includes(0n)) throw new InvalidArgumentError("cannot ingest a record batch with zero rows (check how its vectors were made)", "INVALID_ARGUMENT", false);
      if (this.#queue.closed) throw closedError();
      return this.#queue.offer(false, bytes);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  waitForOffset(offsetId: bigint): Promise<void> {
    return this.#queue.waitForOffset(offsetId);
  }

  flush(): Promise<void> {
    return this.#queue.flush();
  }

  close(): Promise<void> {
    return this.#queue.close();
  }

  /** The batches not acknowledged, each a self-contained Arrow IPC stream. */
  async getUnackedBatches(): Promise<RecordBytes[]> {
    return this.inner.unackedRecords().map((u) => asBuffer(u.records[0]!));
  }
}
