// What waits on a stream: the promises of ingest() calls, each for its offset to be acknowledged
// (offsets ascending, in parallel arrays with a moving head: a million waiters cost three
// arrays, not a million objects), and the other waits (waitForOffset, flush, open, close).
import type { StreamState } from "./types.js";

export class AckWaiters {
  #off: number[] = [];
  #res: ((o: number) => void)[] = [];
  #rej: ((e: unknown) => void)[] = [];
  #head = 0;

  /** Waiters not settled yet. */
  get pending(): boolean {
    return this.#head < this.#off.length;
  }
  /** Waiters added so far (settled ones included until compacted): the index the next one gets. */
  get length(): number {
    return this.#off.length;
  }

  add(offset: number, resolve: (o: number) => void, reject: (e: unknown) => void): void {
    this.#off.push(offset);
    this.#res.push(resolve);
    this.#rej.push(reject);
  }

  /** Gives waiter `i` (added with offset Infinity, in a run) its offset. */
  setOffset(i: number, offset: number): void {
    this.#off[i] = offset;
  }

  /** Removes the waiters from index `start` on (a run that was refused) and returns their callbacks. */
  takeFrom(start: number): { resolve: ((o: number) => void)[]; reject: ((e: unknown) => void)[] } {
    const resolve = this.#res.splice(start);
    const reject = this.#rej.splice(start);
    this.#off.length = start;
    return { resolve, reject };
  }

  /** Resolves every waiter up to `acked`, in offset order. */
  resolveUpTo(acked: number): void {
    let i = this.#head;
    const off = this.#off;
    while (i < off.length && off[i]! <= acked) {
      this.#res[i]!(off[i]!);
      i++;
    }
    if (i === this.#head) return;
    if (i === off.length) {
      this.#off = [];
      this.#res = [];
      this.#rej = [];
      i = 0;
    } else if (i > 4096 && i * 2 > off.length) {
      this.#off = off.slice(i);
      this.#res = this.#res.slice(i);
      this.#rej = this.#rej.slice(i);
      i = 0;
    }
    this.#head = i;
  }

  /** Rejects every waiter still pending with `err`, and forgets them all. */
  rejectAll(err: unknown): void {
    for (let i = this.#head; i < this.#off.length; i++) this.#rej[i]!(err);
    this.#off = [];
    this.#res = [];
    this.#rej = [];
    this.#head = 0;
  }
}

/** A wait for an offset to be acknowledged, or (`until`) for the stream to reach one of some states. */
export interface OtherWaiter {
  offset: number;
  until?: StreamState[];
  resolve: () => void;
  reject: (e: unknown) => void;
}
