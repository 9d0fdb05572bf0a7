// What the native side reports about a stream, decoded: its running totals (JSON), the requests
// not acknowledged (a binary list), logger events (JSON), the physical stream's id and the
// failure's message.
import type { Pointer } from "bun:ffi";
import { lib } from "./native.js";
import { errorClass, type ErrorCode } from "./errors.js";
import type { LogEvent, LogLevel, StreamStats, UnackedRecord } from "./types.js";

const msgBuf = new Uint8Array(4096);
const decoder = new TextDecoder();

/**
 * The bytes a native `call(buf, cap)` writes; it returns the length it needs (writing only when
 * that fits, or a prefix). Called again with a buffer of that length until it fits; the result
 * may be a view of the shared `msgBuf`, valid until the next call.
 */
function readNative(call: (buf: Uint8Array, cap: number) => number | bigint): Uint8Array {
  let buf = msgBuf;
  let n: number;
  while ((n = Number(call(buf, buf.length))) > buf.length) buf = new Uint8Array(n);
  return buf.subarray(0, n);
}

export function emptyStats(): StreamStats {
  return {
    recordsIngested: 0, bytesIngested: 0, recordsSent: 0, bytesSent: 0, recordsAcked: 0, bytesAcked: 0,
    recordsInflight: 0, bytesInflight: 0, streamsOpened: 0, recoveries: 0, tokensFetched: 0,
  };
}

export function readStats(h: Pointer): StreamStats {
  const raw = JSON.parse(decoder.decode(readNative((buf, cap) => lib.zerobus_stream_stats(h, buf, cap))));
  const e = raw.lastError as { code: ErrorCode; message: string; retryable: boolean } | null;
  raw.lastError = e ? new (errorClass(e.code))(e.message, e.code, e.retryable) : undefined;
  return raw as StreamStats;
}

/** The requests not acknowledged: per request its offset (i64), kind (u32: 1 batch), count (u32), then each record's length (u32) and bytes. */
export function readUnacked(h: Pointer): UnackedRecord[] {
  const buf = readNative((b, cap) => lib.zerobus_stream_unacked(h, b, cap));
  const n = buf.byteLength;
  const view = new DataView(buf.buffer, buf.byteOffset, n);
  const out: UnackedRecord[] = [];
  for (let at = 0; at < n; ) {
    const offset = Number(view.getBigInt64(at, true));
    const kind = view.getUint32(at + 8, true);
    const count = view.getUint32(at + 12, true);
    at += 16;
    const records: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const len = view.getUint32(at, true);
      records.push(buf.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    out.push({ offset, batch: kind === 1, records });
  }
  return out;
}

/** Hands the logger events queued natively for stream `h` to `logger`, with the physical stream's id then (a logger that throws is ignored). */
export function emitLog(h: Pointer, logger: (e: LogEvent) => void, table: string, id: () => string | undefined): void {
  const bytes = readNative((buf, cap) => lib.zerobus_stream_log(h, buf, cap));
  if (bytes.byteLength === 0) return;
  const { dropped, events } = JSON.parse(decoder.decode(bytes)) as { dropped: number; events: { level: LogLevel; message: string }[] };
  const streamId = id(); // after parsing: the id is read into the same shared buffer
  const emit = (level: LogLevel, message: string) => {
    try {
      logger({ level, message, table, streamId });
    } catch {
      // a throwing logger must not break the stream
    }
  };
  if (dropped > 0) emit("warn", `${dropped} older log events were dropped (the logger fell behind)`);
  for (const e of events) emit(e.level, e.message);
}

/** The server's id of the current physical stream, if one is open. */
export function readStreamId(h: Pointer): string | undefined {
  const n = Number(lib.zerobus_stream_id(h, msgBuf, msgBuf.length));
  return n ? decoder.decode(msgBuf.subarray(0, n)) : undefined;
}

/** The failed stream's error message. */
export function readErrorMessage(h: Pointer): string {
  const n = Number(lib.zerobus_stream_error_message(h, msgBuf, msgBuf.length));
  return decoder.decode(msgBuf.subarray(0, Math.min(n, msgBuf.length)));
}
