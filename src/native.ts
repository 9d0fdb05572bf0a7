// Loads the zerobus-bun native library (Rust cdylib) and declares its C ABI for bun:ffi.
import { dlopen, FFIType } from "bun:ffi";
import { findLibrary } from "./paths.js";

// usize is passed as u64: every supported target is 64-bit.
const T = FFIType;

/** @internal The C ABI, as bun:ffi declares it. */
export const symbols = {
  zerobus_version: { args: [], returns: T.cstring },
  zerobus_last_error_code: { args: [], returns: T.i32 },
  zerobus_last_error_retryable: { args: [], returns: T.i32 },
  zerobus_last_error_message: { args: [T.ptr, T.u64], returns: T.u64 },
  zerobus_sink_new: { args: [], returns: T.ptr },
  zerobus_sink_release_fn: { args: [], returns: T.ptr },
  zerobus_sink_drain: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_sink_push: { args: [T.ptr, T.u64], returns: T.void },
  zerobus_waker_new: { args: [T.u16], returns: T.ptr },
  zerobus_waker_local_port: { args: [T.ptr], returns: T.u16 },
  zerobus_waker_arm: { args: [T.ptr], returns: T.void },
  zerobus_waker_notify_fn: { args: [], returns: T.ptr },
  zerobus_sdk_new: { args: [T.ptr, T.u64], returns: T.ptr },
  zerobus_sdk_free: { args: [T.ptr], returns: T.void },
  zerobus_stream_open: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64, T.ptr, T.ptr, T.u64], returns: T.ptr },
  zerobus_arrow_stream_open: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64, T.ptr, T.ptr, T.u64], returns: T.ptr },
  zerobus_ingest_ipc_batch: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ipc_passes: { args: [T.ptr], returns: T.void },
  zerobus_stream_progress: { args: [T.ptr, T.ptr], returns: T.i32 },
  zerobus_stream_error_message: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_stream_id: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_stream_stats: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_stream_unacked: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_stream_log: { args: [T.ptr, T.ptr, T.u64], returns: T.u64 },
  zerobus_stream_headers_reply: { args: [T.ptr, T.u32, T.ptr, T.u64, T.i32], returns: T.i32 },
  zerobus_ingest_proto_bytes: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_json_bytes: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_proto_bytes_batch: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_json_bytes_batch: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_proto_bytes_packed: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_json_bytes_packed: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64, T.ptr, T.ptr], returns: T.i64_fast },
  zerobus_ingest_proto_bytes_each: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64], returns: T.i64_fast },
  zerobus_ingest_json_bytes_each: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64], returns: T.i64_fast },
  zerobus_stream_wait_for_offset: { args: [T.ptr, T.i64, T.u64], returns: T.i32 },
  zerobus_stream_close: { args: [T.ptr], returns: T.void },
  zerobus_stream_lift_limits: { args: [T.ptr], returns: T.void },
  zerobus_stream_free: { args: [T.ptr], returns: T.void },
} as const;

export { libraryFile, platformTag } from "./paths.js";

function load() {
  const { path, message } = findLibrary();
  if (!path) throw new Error(message);
  return { lib: dlopen(path, symbols), path };
}

const loaded = load();
/** @internal The native functions. */
export const lib = loaded.lib.symbols;
/** The native library this process loaded: its path, or its place inside a compiled executable. */
export const libraryPath = loaded.path;
