// Typed errors of the SDK. Every error carries a stable `code` and whether retrying on a new
// stream may help (`retryable`).
import { lib } from "./native.js";

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "STREAM_FAILED"
  | "STREAM_CLOSED"
  | "BACKPRESSURE"
  | "SERVER_ERROR"
  | "TRANSPORT"
  | "AUTH"
  | "TIMEOUT"
  | "INTERNAL"
  | "NOT_FOUND";

const CODES: Record<number, ErrorCode> = {
  1: "INVALID_ARGUMENT",
  2: "STREAM_FAILED",
  3: "STREAM_CLOSED",
  4: "BACKPRESSURE",
  5: "SERVER_ERROR",
  6: "TRANSPORT",
  7: "AUTH",
  8: "TIMEOUT",
  9: "INTERNAL",
  10: "NOT_FOUND",
};

export class ZerobusError extends Error {
  override name = "ZerobusError";
  constructor(
    message: string,
    readonly code: ErrorCode,
    readonly retryable: boolean,
    /** Logical offsets this error concerns (first and last), when it fails ingested records. */
    readonly offsets?: { first: number; last: number },
  ) {
    super(message);
  }

  /** The official SDK's name for `retryable`. */
  get isRetryable(): boolean {
    return this.retryable;
  }
}

/** Bad input from the caller: fix the call, retrying will not help. */
export class InvalidArgumentError extends ZerobusError {
  override name = "InvalidArgumentError";
}

/** The stream failed (non-retryable server error, or recovery gave up). */
export class StreamFailedError extends ZerobusError {
  override name = "StreamFailedError";
}

export function errorClass(code: ErrorCode): typeof ZerobusError {
  if (code === "INVALID_ARGUMENT") return InvalidArgumentError;
  if (code === "STREAM_FAILED") return StreamFailedError;
  return ZerobusError;
}

export function codeName(code: number): ErrorCode {
  return CODES[Math.abs(code)] ?? "INTERNAL";
}

const msgBuf = new Uint8Array(4096);
const decoder = new TextDecoder();

/** The error the native library recorded for this thread's last failed call. */
export function lastError(context?: string): ZerobusError {
  const code = codeName(lib.zerobus_last_error_code());
  const retryable = lib.zerobus_last_error_retryable() === 1;
  const n = Number(lib.zerobus_last_error_message(msgBuf, msgBuf.length));
  const text = decoder.decode(msgBuf.subarray(0, Math.min(n, msgBuf.length)));
  const Cls = errorClass(code);
  return new Cls(context ? `${context}: ${text}` : text, code, retryable);
}

/** @internal */
export const closedError = () => new ZerobusError("stream is closed", "STREAM_CLOSED", false);
/**
 * @internal A record the SDK could not take, as a typed error: what encoding it threw (a message schema
 * refusing a value, JSON.stringify refusing a BigInt or a cycle, a detached ArrayBuffer).
 */
export function refusedRecord(e: unknown): ZerobusError {
  if (e instanceof ZerobusError) return e;
  const why = e instanceof Error ? e.message : String(e);
  const err = new InvalidArgumentError(`the record cannot be taken: ${why}`, "INVALID_ARGUMENT", false);
  (err as { cause?: unknown }).cause = e;
  return err;
}
/** @internal */
export const closingError = () =>
  new ZerobusError("stream is closing (close() was called): it takes no more records", "STREAM_CLOSED", false);
