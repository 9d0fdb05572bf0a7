// Waiting with the JavaScript thread blocked: `submit` at the stream's in-flight limits waits
// for an acknowledgement that frees capacity, in slices, serving a synchronous headers function
// between them (a reconnect during the wait may need headers; an async one cannot run).
import type { Pointer } from "bun:ffi";
import { lib } from "./native.js";
import { codeName, ZerobusError } from "./errors.js";
import { drainReleased } from "./memory.js";
import type { Progress } from "./progress.js";

/** How long one blocking native wait lasts before JavaScript looks again. */
export const BLOCK_SLICE_MS = 100;

/** The stream a blocking wait is on. */
export interface Blocked {
  h: Pointer;
  progress: Progress;
  /** Answers a pending headers request if the headers function can (synchronously). */
  serveHeaders(): void;
  /** The stream's failure, once the wait ended because the stream did. */
  failure(): ZerobusError;
}

/**
 * Blocks until an acknowledgement frees capacity (or everything is acknowledged), the stream
 * fails (throws its failure), or `deadline` passes (throws TIMEOUT naming `timeoutMs`). Released
 * buffers are forgotten while waiting, so a tight submit loop holds no more than the limits.
 */
export function waitForCapacity(b: Blocked, deadline: number, timeoutMs: number): void {
  b.progress.read(b.h);
  const acked = b.progress.acked;
  for (;;) {
    drainReleased();
    b.serveHeaders();
    const last = b.progress.lastOffset;
    if (last <= acked) return; // everything acknowledged meanwhile
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new ZerobusError(
        `submit waited ${timeoutMs} ms (submitTimeoutMs) for capacity: records ${acked + 1} to ${last} are still not acknowledged`,
        "TIMEOUT",
        true,
      );
    }
    const rc = lib.zerobus_stream_wait_for_offset(b.h, acked + 1, Math.ceil(Math.min(left, BLOCK_SLICE_MS)));
    if (rc === 0) {
      drainReleased();
      return;
    }
    b.progress.read(b.h);
    // The stream's own failure (which may also be a TIMEOUT), not the end of this wait.
    if (b.progress.ended || codeName(rc) !== "TIMEOUT") throw b.failure();
    if (b.progress.acked > acked) return;
  }
}
