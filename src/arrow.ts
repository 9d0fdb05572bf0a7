// Arrow streams: record batches go to Zerobus over Arrow Flight, as IPC bytes the Rust core
// forwards without decoding.
/// <reference lib="esnext.disposable" preserve="true" />
import type { RecordBatch, Table } from "apache-arrow";
import type { ZerobusStream } from "./stream.js";

/** What an Arrow stream ingests: IPC stream bytes, or an apache-arrow Table / RecordBatch. */
export type ArrowBatch = Uint8Array | Table | RecordBatch;

export class ZerobusArrowStream implements AsyncDisposable {
  /** @internal use ZerobusSdk.createArrowStream */
  constructor(readonly inner: ZerobusStream<ArrowBatch>) {}

  get table(): string {
    return this.inner.table;
  }
  get state() {
    return this.inner.state;
  }
  get ackedOffset(): number {
    return this.inner.ackedOffset;
  }
  get lastOffset(): number {
    return this.inner.lastOffset;
  }
  get streamsOpened(): number {
    return this.inner.streamsOpened;
  }
  get error() {
    return this.inner.error;
  }
  /**
   * The batches not acknowledged, in order, each as a self-contained Arrow IPC stream (schema,
   * dictionaries, the batch) with its offset; after a failure, what the failure left behind (also
   * after `close()`). Read one with apache-arrow's `tableFromIPC(ipc)`.
   */
  unackedBatches(): { offset: number; ipc: Uint8Array }[] {
    return this.inner.unackedRecords().map((u) => ({ offset: u.offset, ipc: u.records[0]! }));
  }

  /** Running totals (records are rows); see `ZerobusStream.stats()`. */
  stats() {
    return this.inner.stats();
  }

  /**
   * Queues the record batches of `batch` and resolves with the offset of the last one once all
   * are durable. Each record batch takes one offset. IPC bytes are not decoded: they are copied
   * during the call, or with `zeroCopy` sent from your buffer (then do not modify, transfer or
   * resize it until the promise settles); a Table or RecordBatch is written to IPC once.
   */
  ingestBatch(batch: ArrowBatch): Promise<number> {
    return this.inner.ingest(batch);
  }

  /** Like `ingestBatch` without a promise: returns the offset of the last batch. */
  submitBatch(batch: ArrowBatch): number {
    return this.inner.submit(batch);
  }

  waitForOffset(offset: number): Promise<void> {
    return this.inner.waitForOffset(offset);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
