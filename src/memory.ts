// Keeps caller buffers alive while the native library references them in place.
//
// Each pinned buffer gets a token; the native release callback (`zerobus_release_token_fn`)
// queues the token when Rust drops its last reference, and `drainReleased` frees them in bulk —
// no JS callback per record.
import { ptr, type Pointer } from "bun:ffi";
import { lib } from "./native";

export const releaseFn = lib.zerobus_release_token_fn() as Pointer;

// Held values by token: slots[i] holds token `base + i`. Tokens are handed out in order and
// mostly released in order, so a compacting array beats a Map by an order of magnitude.
let slots: unknown[] = [];
let base = 1;
let head = 0; // slots before `head` are all released
let live = 0;
// Tokens older than `base` still held (e.g. by a failed stream nobody closed): kept aside so they
// cannot stop the array from compacting.
const stragglers = new Map<number, unknown>();
const drainBuf = new BigUint64Array(4096);

/** Holds `value` until the native side releases the returned token. */
export function hold(value: unknown): number {
  slots.push(value);
  live++;
  return base + slots.length - 1;
}

/** Forgets every value whose token the native library has released. */
export function drainReleased(): void {
  for (;;) {
    const n = Number(lib.zerobus_drain_released(drainBuf, drainBuf.length));
    for (let i = 0; i < n; i++) {
      const token = Number(drainBuf[i]);
      const at = token - base;
      if (at < 0) {
        if (stragglers.delete(token)) live--;
      } else if (slots[at] !== undefined) {
        slots[at] = undefined;
        live--;
      }
    }
    if (n < drainBuf.length) break;
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

/** Pointer of a byte array, or null for an empty one (bun:ffi refuses empty views). */
export function bytesPtr(bytes: Uint8Array): Pointer | null {
  return bytes.byteLength === 0 ? null : ptr(bytes);
}
