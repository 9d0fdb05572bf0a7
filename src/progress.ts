// A named view over the native `ZerobusProgress` struct (rust/ffi/include/zerobus_bun.h), which
// `zerobus_stream_progress` fills: a stream's offsets, state, failure and pending requests.
import type { Pointer } from "bun:ffi";
import { lib } from "./native.js";

import type { StreamState } from "./types.js";

/** `ZerobusProgress.state` values, in order. */
const STATES: StreamState[] = ["opening", "open", "recovering", "closing", "closed", "failed"];

/**
 * The struct's memory and its fields: acked (i64), last_offset (i64), streams_opened (u64),
 * state, error_code, error_retryable (i32), headers_wanted, log_pending, reserved (u32).
 */
export class Progress {
  readonly #i64 = new BigInt64Array(6);
  readonly #i32 = new Int32Array(this.#i64.buffer);
  readonly #u32 = new Uint32Array(this.#i64.buffer);

  /** Fills the view from stream `h` (reading also re-arms the stream's change notification). */
  read(h: Pointer): void {
    lib.zerobus_stream_progress(h, this.#i64);
  }
  /** Highest acknowledged logical offset (-1: none). */
  get acked(): number {
    return Number(this.#i64[0]);
  }
  /** Highest logical offset handed out (-1: none). */
  get lastOffset(): number {
    return Number(this.#i64[1]);
  }
  /** Physical streams opened (1 + recoveries). */
  get streamsOpened(): number {
    return Number(this.#i64[2]);
  }
  get state(): StreamState {
    return STATES[this.#i32[6]!] ?? "failed";
  }
  /** The stream ended: failed or closed. */
  get ended(): boolean {
    const s = this.#i32[6];
    return s === 4 || s === 5;
  }
  /** The native error code of the failure (0 unless failed). */
  get errorCode(): number {
    return this.#i32[7]!;
  }
  get errorRetryable(): boolean {
    return this.#i32[8] === 1;
  }
  /** Nonzero: the id of a pending headers request, to answer with `zerobus_stream_headers_reply`. */
  get headersWanted(): number {
    return this.#u32[9]!;
  }
  /** Logger events wait for `zerobus_stream_log`. */
  get logPending(): boolean {
    return this.#u32[10] !== 0;
  }
}
