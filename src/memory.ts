// Keeps caller buffers alive while the native library references them in place.
//
// Pointers: JavaScriptCore keeps small typed arrays (up to 1,000 elements) inside its GC heap and
// moves their contents into a new ArrayBuffer the first time anything reads `.buffer` (the user,
// a library, `Buffer.from(a.buffer)`, `subarray`). A pointer taken before that move dangles. So:
// arrays up to COPY_MAX bytes are copied by Rust during the call (nothing is kept), and larger
// ones are pinned through their ArrayBuffer (`ptr(a.buffer, a.byteOffset)`), whose storage never
// moves.
//
// Releases: each pinned buffer gets a token; when Rust drops its last reference, the token is
// queued in this realm's release sink (native, one per JS realm: the main thread and every
// Worker have their own, so no realm ever frees another's buffers), and `drainReleased` forgets
// them in bulk — no JS callback per record.
//
// Collection: a forgotten buffer's memory comes back only when the garbage collector runs, which
// a tight loop of large submits outpaces. So every GC_AFTER bytes of forgotten pinned buffers the
// process's resident size is read, and if it grew by GC_AFTER since the last collection, a full
// collection runs (Bun.gc(true)). A program that reuses its buffers creates no garbage and its
// resident size stays put: it pays for no collection.
import { ptr, type Pointer } from "bun:ffi";
import { isMainThread } from "node:worker_threads";
import { lib } from "./native.js";

/**
 * Byte arrays up to this size are copied by Rust during the ingest call instead of pinned. In a
 * Worker every array is copied: a Worker can be terminated at any moment, and its heap goes with
 * it while the native side may still have to replay a record.
 */
export const COPY_MAX = isMainThread ? 1024 : Infinity;

/** This realm's release sink, given to every stream opened here. */
export const sink = lib.zerobus_sink_new() as Pointer;
/** The `release` that routes a token into the stream's sink. */
export const releaseFn = lib.zerobus_sink_release_fn() as Pointer;

// Held values by token: slots[i] holds token `base + i`. Tokens are handed out in order and
// mostly released in order, so a compacting array beats a Map by an order of magnitude.
let slots: unknown[] = [];
let base = 1;
let head = 0; // slots before `head` are all released
let live = 0;
let sinceDrain = 0;
// Tokens older than `base` still held (e.g. by a failed stream nobody closed): kept aside so they
// cannot stop the array from compacting.
const stragglers = new Map<number, unknown>();
const drainBuf = new BigUint64Array(4096);
/** Holds between drains when nothing else drains (a tight `submit` loop never yields). */
const DRAIN_EVERY = 1024;
/** Bytes of forgotten pinned buffers, and of growth of the resident size, that call for a collection. */
export const GC_AFTER = 128 << 20;
let forgotten = 0;
/** The resident size after the last collection (or the first check). */
let rssAfterGc = -1;

/** The bytes a held value pins: an array, or the arrays of a batch. */
function pinnedBytes(v: unknown): number {
  if (v instanceof Uint8Array) return v.byteLength;
  if (Array.isArray(v)) {
    let n = 0;
    for (const a of v) if (a instanceof Uint8Array) n += a.byteLength;
    return n;
  }
  return 0;
}

/** Holds `value` until the native side releases the returned token. */
export function hold(value: unknown): number {
  if (++sinceDrain >= DRAIN_EVERY) drainReleased();
  slots.push(value);
  live++;
  return base + slots.length - 1;
}

/** Forgets every value whose token the native library has released. */
export function drainReleased(): void {
  sinceDrain = 0;
  for (;;) {
    const n = Number(lib.zerobus_sink_drain(sink, drainBuf, drainBuf.length));
    for (let i = 0; i < n; i++) {
      const token = Number(drainBuf[i]);
      const at = token - base;
      if (at < 0) {
        const v = stragglers.get(token);
        if (stragglers.delete(token)) {
          forgotten += pinnedBytes(v);
          live--;
        }
      } else if (slots[at] !== undefined) {
        forgotten += pinnedBytes(slots[at]);
        slots[at] = undefined;
        live--;
      }
    }
    if (n < drainBuf.length) break;
  }
  if (forgotten >= GC_AFTER) {
    forgotten = 0;
    const rss = process.memoryUsage.rss();
    if (rssAfterGc < 0 || rss < rssAfterGc) rssAfterGc = rss;
    else if (rss - rssAfterGc >= GC_AFTER) {
      Bun.gc(true);
      rssAfterGc = process.memoryUsage.rss();
    }
  }
  while (head < slots.length && slots[head] === undefined) head++;
  if (head === slots.length) {
    base += slots.length;
    slots = [];
    head = 0;
  } else if (head > 4096 && head * 2 > slots.length) {
    slots = slots.slice(head);
    base += head;
    head = 0;
  } else if (slots.length > 1 << 20 && (live - stragglers.size) * 8 < slots.length) {
    // Mostly released but stuck behind old holders: move the holders aside, start afresh.
    for (let i = head; i < slots.length; i++) if (slots[i] !== undefined) stragglers.set(base + i, slots[i]);
    base += slots.length;
    slots = [];
    head = 0;
  }
}

/** Values currently held for the native library (for tests and diagnostics). */
export function heldCount(): number {
  return live;
}

/**
 * A pointer to `bytes` that stays valid for as long as the array is held: taken through the
 * ArrayBuffer, which first moves a small array's contents out of the GC heap.
 */
export function stablePtr(bytes: Uint8Array): Pointer | null {
  return bytes.byteLength === 0 ? null : ptr(bytes.buffer, bytes.byteOffset);
}
