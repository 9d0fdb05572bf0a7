//! Arrow streams' ingest (IPC stream bytes, used in place) and the IPC pass counters tests read.

use std::ffi::c_void;

use zerobus_core::{ErrorCode, ZerobusError};

use crate::open::ZerobusStreamHandle;
use crate::records::{bytes_single, Release, ZerobusReleaseFn};
use crate::{err_code, guard};

/// Queues the record batches of Arrow IPC stream bytes (schema message first, then dictionary
/// and record batch messages) without decoding them: each record batch becomes one request, sent
/// as Flight data straight from this memory. Returns the logical offset of the last batch, or a
/// negative error code. `release(ctx)` runs once when the memory is no longer referenced.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_ipc_batch(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        let Some(s) = s.as_ref() else {
            return err_code(ZerobusError::invalid("stream handle is NULL"));
        };
        let bytes = Release::of(release, ctx, s.sink).and_then(|r| bytes_single(data, len, r));
        match bytes.and_then(|b| s.stream.try_ingest_ipc_batch(b)) {
            Ok(o) => o,
            Err(e) => err_code(e),
        }
    })
}

/// IPC encode and decode passes made by the library on the calling thread (`out[0]` encode,
/// `out[1]` decode). For tests: ingesting IPC bytes makes none.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ipc_passes(out: *mut u64) {
    if out.is_null() {
        return;
    }
    let (e, d) = zerobus_core::arrow::ipc_passes();
    *out = e;
    *out.add(1) = d;
}
