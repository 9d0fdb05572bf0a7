//! Ingesting protobuf and JSON records: one record, a batch of pointers, a packed batch, or
//! packed records each as a request of its own. The caller's memory is used in place until
//! released ([`crate::records`]).

use std::ffi::c_void;

use bytes::Bytes;
use zerobus_core::{ErrorCode, Payload, ZerobusError};

use crate::open::ZerobusStreamHandle;
use crate::records::{bytes_batch, bytes_each, bytes_packed, bytes_single, Release, ZerobusReleaseFn};
use crate::{err_code, guard};

/// Queues the payload `make` builds from the call's release (which it owns: on any error it is
/// dropped, so the caller's memory is released exactly once either way).
unsafe fn push(
    s: *const ZerobusStreamHandle,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
    make: impl FnOnce(Option<Release>) -> Result<Payload, ZerobusError>,
) -> i64 {
    let Some(s) = s.as_ref() else {
        // No stream to release into: a sink token is simply dropped, a callback still runs.
        let _ = Release::of(release, ctx, None);
        return err_code(ZerobusError::invalid("stream handle is NULL"));
    };
    let payload = Release::of(release, ctx, s.sink).and_then(make);
    match payload.and_then(|p| s.stream.try_push(p).map_err(|(e, _)| e)) {
        Ok(o) => o,
        Err(e) => err_code(e),
    }
}

/// Queues one protobuf-encoded record. Returns its logical offset, or a negative error code
/// (-4: too many records in flight; wait for acks, e.g. with `zerobus_stream_wait_for_offset`).
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || push(s, release, ctx, |r| Ok(Payload::Proto(bytes_single(data, len, r)?))))
}

/// Queues one JSON record (UTF-8 text of a JSON object). Same contract as the proto form.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_json_bytes(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || push(s, release, ctx, |r| Ok(Payload::Json(bytes_single(data, len, r)?))))
}

/// Queues `count` protobuf records as one batch request with one offset: `records` holds `count`
/// pointers (8 bytes each), `lens` their `count` lengths (`uint32_t`). `count` must be at least 1.
/// `release(ctx)` runs once, after the last record of the batch is released.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes_batch(
    s: *const ZerobusStreamHandle,
    records: *const *const u8,
    lens: *const u32,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, release, ctx, |r| Ok(Payload::ProtoBatch(bytes_batch(records, lens, count, r)?)))
    })
}

/// JSON form of `zerobus_ingest_proto_bytes_batch`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_json_bytes_batch(
    s: *const ZerobusStreamHandle,
    records: *const *const u8,
    lens: *const u32,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, release, ctx, |r| Ok(Payload::JsonBatch(bytes_batch(records, lens, count, r)?)))
    })
}

/// Queues `count` protobuf records stored back to back in `data` (lengths in `lens`) as one batch.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes_packed(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, release, ctx, |r| Ok(Payload::ProtoBatch(bytes_packed(data, len, lens, count, r)?)))
    })
}

/// JSON form of `zerobus_ingest_proto_bytes_packed`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_json_bytes_packed(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, release, ctx, |r| Ok(Payload::JsonBatch(bytes_packed(data, len, lens, count, r)?)))
    })
}

/// Queues `count` protobuf records stored back to back in `data` (lengths in `lens`), each as a
/// request of its own, with consecutive offsets. They are copied during the call. All or none:
/// when a record is refused, or the in-flight limits cannot take all of them (-4, also on an idle
/// stream), nothing is queued; queue them one at a time to learn which record failed or how many
/// fit. Returns the offset of the last.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes_each(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || push_each(s, data, len, lens, count, Payload::Proto))
}

/// JSON form of `zerobus_ingest_proto_bytes_each`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_json_bytes_each(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || push_each(s, data, len, lens, count, Payload::Json))
}

unsafe fn push_each(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
    payload: fn(Bytes) -> Payload,
) -> i64 {
    let Some(s) = s.as_ref() else {
        return err_code(ZerobusError::invalid("stream handle is NULL"));
    };
    let queued = bytes_each(data, len, lens, count)
        .and_then(|records| s.stream.try_push_each(records.into_iter().map(payload).collect()).map_err(|(e, _)| e));
    match queued {
        Ok(o) => o,
        Err(e) => err_code(e),
    }
}
