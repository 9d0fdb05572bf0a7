//! The end of a stream: waiting for an offset (C callers), closing, lifting the in-flight limits
//! for a close, and freeing the handle.

use zerobus_core::{ErrorCode, ZerobusError};

use crate::open::ZerobusStreamHandle;
use crate::{err_code, guard, runtime};

/// Blocks until `offset` is acknowledged (0), the stream fails (negative code) or `timeout_ms`
/// passes (-8). For C callers; the Bun SDK waits asynchronously on notifications instead.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_wait_for_offset(s: *const ZerobusStreamHandle, offset: i64, timeout_ms: u64) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let Some(s) = s.as_ref() else {
            return err_code(ZerobusError::invalid("stream handle is NULL")) as i32;
        };
        let stream = s.stream.clone();
        let r = runtime().block_on(async move {
            tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), stream.wait_for_offset(offset)).await
        });
        match r {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => err_code(e) as i32,
            Err(_) => err_code(ZerobusError::new(ErrorCode::Timeout, format!("offset {offset} not acknowledged within {timeout_ms} ms"))) as i32,
        }
    })
}

/// Starts closing the stream (no more ingests; ends once all is acknowledged). Returns at once;
/// completion is reported through progress (state 4 closed, or 5 failed).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_close(s: *const ZerobusStreamHandle) {
    guard((), || {
        if let Some(s) = s.as_ref() {
            let _enter = runtime().enter();
            s.stream.begin_close();
        }
    })
}

/// From now on the stream's in-flight limits refuse nothing: records a caller accepted before
/// closing (and kept waiting for capacity) can all be handed over, so that closing covers them
/// and `zerobus_stream_unacked` returns them should it fail.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_lift_limits(s: *const ZerobusStreamHandle) {
    guard((), || {
        if let Some(s) = s.as_ref() {
            s.stream.lift_limits();
        }
    })
}

/// Frees a stream handle. A stream that is not closed is aborted: unacknowledged records are
/// dropped and their release callbacks run. After this returns, `notify` is never called again.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_free(s: *mut ZerobusStreamHandle) {
    if s.is_null() {
        return;
    }
    guard((), || {
        let h = Box::from_raw(s);
        h.notifier.disable();
        let p = h.stream.progress();
        if !matches!(p.state, zerobus_core::StreamState::Closed | zerobus_core::StreamState::Failed) {
            let _enter = runtime().enter();
            h.stream.abort();
        }
        drop(h);
    })
}
