//! What the caller reads from a stream, and the headers it answers: the progress snapshot (a C
//! struct), the failure message and stream id (text), the stats and log events (JSON with the
//! TypeScript SDK's key names), and the unacknowledged requests (a packed binary layout).
//!
//! Each format fits how often it is read and what it carries: progress is read after every
//! notification, so it is a fixed struct the caller reuses; stats and log events are read
//! rarely and have named, optional fields, so JSON; unacknowledged requests are record bytes,
//! which JSON would have to re-encode, so length-prefixed binary.

use zerobus_core::{ErrorCode, LogEvent, Payload, Stats, ZerobusError, ZerobusStream};

use crate::headers::parse_headers;
use crate::open::ZerobusStreamHandle;
use crate::{err_code, guard, set_error, slice, write_str};

/// Progress snapshot written by `zerobus_stream_progress`.
#[repr(C)]
#[derive(Default)]
pub struct ZerobusProgress {
    /// Highest acknowledged logical offset (-1: none).
    pub acked: i64,
    /// Highest logical offset handed out (-1: none).
    pub last_offset: i64,
    /// Physical streams opened (1 + recoveries).
    pub streams_opened: u64,
    /// 0 opening, 1 open, 2 recovering, 3 closing, 4 closed, 5 failed.
    pub state: i32,
    /// Error code when failed (0 otherwise).
    pub error_code: i32,
    /// 1 if the failure was retryable.
    pub error_retryable: i32,
    /// Nonzero: the id of a pending headers request (headers-provider streams); answer it with
    /// `zerobus_stream_headers_reply`.
    pub headers_wanted: u32,
    /// 1 if logger events are waiting for `zerobus_stream_log`.
    pub log_pending: u32,
    pub _reserved: u32,
}

/// Writes the stream's progress into `out` and re-arms the notify callback. Returns 0.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_progress(s: *const ZerobusStreamHandle, out: *mut ZerobusProgress) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let Some(s) = s.as_ref() else {
            set_error(ZerobusError::invalid("stream handle is NULL"));
            return -(ErrorCode::InvalidArgument as i32);
        };
        if out.is_null() {
            set_error(ZerobusError::invalid("out is NULL"));
            return -(ErrorCode::InvalidArgument as i32);
        }
        s.notifier.rearm();
        let p = s.stream.progress();
        let o = &mut *out;
        o.acked = p.acked;
        o.last_offset = s.stream.last_offset();
        o.streams_opened = p.streams_opened;
        o.state = p.state as i32;
        o.error_code = p.error.as_ref().map(|e| e.code as i32).unwrap_or(0);
        o.error_retryable = p.error.as_ref().map(|e| e.retryable as i32).unwrap_or(0);
        o.headers_wanted = s.js_headers.as_ref().map_or(0, |h| h.wanted());
        o.log_pending = s.stream.has_log() as u32;
        0
    })
}

/// Answers headers request `id` (from `ZerobusProgress.headers_wanted`): `json` is a JSON object
/// of string values; with `is_error` 1 a UTF-8 message of the provider's failure (the open fails
/// with a retryable `AUTH` error naming it, retried within the stream's budget); with 2 a message
/// saying why its answer is unusable (the stream fails with `INVALID_ARGUMENT`). Returns 0, or a negative error code: `-INVALID_ARGUMENT` if `id` is not
/// the pending request (it timed out or the stream reopened meanwhile) or the JSON is malformed.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_headers_reply(
    s: *const ZerobusStreamHandle,
    id: u32,
    json: *const u8,
    len: usize,
    is_error: i32,
) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let r = (|| {
            let s = s.as_ref().ok_or_else(|| ZerobusError::invalid("stream handle is NULL"))?;
            let js = s.js_headers.as_ref().ok_or_else(|| ZerobusError::invalid("this stream has no headers provider"))?;
            let body = slice(json, len);
            let reply = match is_error {
                0 => parse_headers(body),
                2 => Err(ZerobusError::invalid(String::from_utf8_lossy(body).into_owned())),
                _ => Err(ZerobusError::new(ErrorCode::Auth, format!("headers function failed: {}", String::from_utf8_lossy(body)))
                    .retryable(true)),
            };
            let bad = reply.as_ref().err().filter(|e| e.code == ErrorCode::InvalidArgument).cloned();
            if !js.reply(id, reply) {
                return Err(ZerobusError::invalid(format!("headers request {id} is not pending")));
            }
            bad.map_or(Ok(()), Err)
        })();
        match r {
            Ok(()) => 0,
            Err(e) => err_code(e) as i32,
        }
    })
}

/// Copies the stream's failure message into `buf`; returns its full length (0 if none).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_error_message(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref().and_then(|s| s.stream.progress().error) {
        Some(e) => write_str(&e.message, buf, cap),
        None => 0,
    })
}

/// Copies the stream's running totals as a JSON object into `buf`; returns its full length (0 if
/// `s` is NULL): `{"recordsIngested", "bytesIngested", "recordsSent", "bytesSent", "recordsAcked",
/// "bytesAcked", "recordsInflight", "bytesInflight", "streamsOpened", "recoveries", "tokensFetched",
/// "lastError": null | {"code", "message", "retryable"}}`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_stats(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref() {
        Some(s) => write_str(&stats_json(s.stream.stats()), buf, cap),
        None => 0,
    })
}

/// Copies the requests not acknowledged (those of a live stream, or what a failed stream kept)
/// into `buf` if it holds them all; returns the bytes needed (0 if none or `s` is NULL). Packed,
/// little-endian, per request: `i64 offset, u32 kind (0 one record, 1 batch, 2 Arrow IPC stream),
/// u32 count`, then `count` items of `u32 length` + bytes (JSON records as UTF-8 text; an Arrow
/// request as one self-contained IPC stream: schema, dictionaries, the batch).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_unacked(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || {
        let Some(s) = s.as_ref() else { return 0 };
        let out = unacked_bytes(&s.stream);
        if !buf.is_null() && cap >= out.len() {
            std::ptr::copy_nonoverlapping(out.as_ptr(), buf, out.len());
        }
        out.len()
    })
}

/// Takes the stream's queued logger events as JSON `{"dropped": N, "events": [{"level":
/// "error"|"warn"|"info"|"debug", "message": "..."}]}` into `buf`; returns its length. If `buf`
/// is too small nothing is taken and the length needed is returned (call again).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_log(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || {
        let Some(s) = s.as_ref() else { return 0 };
        let (events, dropped) = s.stream.take_log();
        let json = log_json(&events, dropped);
        if json.len() > cap || buf.is_null() {
            s.stream.put_back_log(events, dropped);
            return json.len();
        }
        write_str(&json, buf, cap)
    })
}

/// Copies the id the server gave the current physical stream; returns its full length.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_id(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref().and_then(|s| s.stream.progress().stream_id) {
        Some(id) => write_str(&id, buf, cap),
        None => 0,
    })
}

/// The stats as JSON with the TypeScript SDK's key names.
fn stats_json(t: Stats) -> String {
    serde_json::json!({
        "recordsIngested": t.records_ingested,
        "bytesIngested": t.bytes_ingested,
        "recordsSent": t.records_sent,
        "bytesSent": t.bytes_sent,
        "recordsAcked": t.records_acked,
        "bytesAcked": t.bytes_acked,
        "recordsInflight": t.records_inflight,
        "bytesInflight": t.bytes_inflight,
        "streamsOpened": t.streams_opened,
        "recoveries": t.recoveries,
        "tokensFetched": t.tokens_fetched,
        "lastError": t.last_error.map(|e| serde_json::json!({
            "code": e.code.name(), "message": e.message, "retryable": e.retryable,
        })),
    })
    .to_string()
}

/// The unacknowledged requests in the packed layout `zerobus_stream_unacked` documents.
fn unacked_bytes(stream: &ZerobusStream) -> Vec<u8> {
    let schema = stream.arrow_schema();
    let mut out: Vec<u8> = Vec::new();
    for (offset, payload) in stream.unacked() {
        out.extend_from_slice(&offset.to_le_bytes());
        let item = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match (&payload, &schema) {
            (Payload::Arrow(a), Some(schema)) => {
                out.extend_from_slice(&2u32.to_le_bytes());
                out.extend_from_slice(&1u32.to_le_bytes());
                item(&mut out, &zerobus_core::arrow::ipc_stream_bytes(schema, a));
            }
            _ => {
                let records = payload.records();
                let kind: u32 = if matches!(payload, Payload::ProtoBatch(_) | Payload::JsonBatch(_)) { 1 } else { 0 };
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(&(records.len() as u32).to_le_bytes());
                for r in &records {
                    item(&mut out, r);
                }
            }
        }
    }
    out
}

/// Logger events as JSON `{"dropped": N, "events": [{"level", "message"}]}`.
fn log_json(events: &[LogEvent], dropped: u64) -> String {
    serde_json::json!({
        "dropped": dropped,
        "events": events.iter().map(|e| serde_json::json!({ "level": e.level.name(), "message": e.message })).collect::<Vec<_>>(),
    })
    .to_string()
}
