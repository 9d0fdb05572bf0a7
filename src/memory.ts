// Keeps caller buffers alive while the native library references them in place.
//
// Each pinned buffer gets a token; the native release callback (`zerobus_release_token_fn`)
// queues the token when Rust drops its last reference, and `drainReleased` frees them in bulk —
// no JS callback per record.
import { ptr, type Pointer } from "bun:ffi";
import { lib } from "./native";

export const releaseFn = lib.zerobus_release_token_fn() as Pointer;

const held = new Map<number, unknown>();
let nextToken = 1;
const drainBuf = new BigUint64Array(4096);

/** Holds `value` until the native side releases `token`; returns the token. */
export function hold(value: unknown): number {
  const token = nextToken++;
  held.set(token, value);
  return token;
}

/** Forgets every buffer whose token the native library has released. */
export function drainReleased(): void {
  for (;;) {
    const n = Number(lib.zerobus_drain_released(drainBuf, drainBuf.length));
    for (let i = 0; i < n; i++) held.delete(Number(drainBuf[i]));
    if (n < drainBuf.length) return;
  }
}

/** Buffers currently held for the native library (for tests and diagnostics). */
export function heldCount(): number {
  return held.size;
}

/** Pointer of a byte array, or null for an empty one (bun:ffi refuses empty views). */
export function bytesPtr(bytes: Uint8Array): Pointer | null {
  return bytes.byteLength === 0 ? null : ptr(bytes);
}
