// Records waiting in JavaScript for the stream's capacity (it is at its in-flight limits), in
// call order, each with its ingest() promise; handed to the native stream as room frees.
import { lastError, type ZerobusError } from "./errors.js";
import { BACKPRESSURE, type Prepared, type PreparedBatch } from "./records.js";

/** A record (or batch) waiting, with its ingest() promise. */
export interface Queued {
  batch: boolean;
  prepared: Prepared | PreparedBatch;
  resolve: (offset: number) => void;
  reject: (e: unknown) => void;
}

export class CapacityQueue {
  #items: Queued[] = [];

  get length(): number {
    return this.#items.length;
  }

  push(q: Queued): void {
    this.#items.push(q);
  }

  /**
   * Hands waiting records to `submit` (a native ingest call: an offset, BACKPRESSURE, or a
   * negative error code) in order while it finds room: a taken record's offset goes to `taken`;
   * one refused (`submit` throws, or an error code) is rejected with `refused`'s error.
   */
  drain(submit: (q: Queued) => number, taken: (offset: number, q: Queued) => void, refused: (e: unknown) => ZerobusError): void {
    while (this.#items.length > 0) {
      const q = this.#items[0]!;
      let r: number;
      try {
        r = submit(q);
      } catch (e) {
        this.#items.shift();
        q.reject(refused(e));
        continue;
      }
      if (r === BACKPRESSURE) return;
      this.#items.shift();
      if (r >= 0) taken(r, q);
      else q.reject(lastError());
    }
  }

  /** Rejects every waiting record with `err`. */
  rejectAll(err: unknown): void {
    for (const q of this.#items) q.reject(err);
    this.#items = [];
  }
}
