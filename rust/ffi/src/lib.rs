//! C ABI of zerobus-bun. Every function catches panics; errors are returned as negative
//! [`ErrorCode`] values (or NULL handles) with the message kept per thread
//! (`zerobus_last_error_*`). NULL handles and NULL output pointers are refused, never read.
//!
//! Record memory: `ingest_*` functions take `pointer + length + release callback + context`.
//! The bytes are used in place (wrapped with `Bytes::from_owner`) until the last reference is
//! dropped — after the server acknowledged them, or the stream failed or was freed — and then
//! `release(ctx)` is called exactly once (from any thread, possibly before the ingest call returns
//! if it fails, including for bad arguments). Batch forms call `release` once for the whole batch.
//! A NULL `release` means the bytes are copied during the call and the caller keeps ownership.
//! `zerobus_sink_release_fn()` as `release` queues `ctx` as a token into the stream's release
//! sink instead of calling anything ([`sink`]).
//!
//! Progress: a stream calls `notify(userdata)` when its progress changes; the Bun SDK passes
//! `zerobus_waker_notify_fn()`, which wakes its event loop through a socket ([`waker`]) so no
//! JavaScript ever runs on a runtime thread.

#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use zerobus_core::{ErrorCode, ZerobusError};

// Modules that export `zerobus_*` functions are declared in the order of the C header (cbindgen
// lists functions in the order it reads them).
mod config;
mod headers;
mod notify;
mod records;
pub mod sink;
mod sdk;
mod open;
mod arrow;
mod reports;
mod ingest;
mod lifecycle;
pub mod waker;

pub use arrow::*;
pub use ingest::*;
pub use lifecycle::*;
pub use notify::ZerobusNotifyFn;
pub use open::*;
pub use records::ZerobusReleaseFn;
pub use reports::*;
pub use sdk::*;
pub use sink::*;
pub use waker::*;

// The batch ABI reads `count` 8-byte pointers; the SDK writes them as pairs of 32-bit words.
#[cfg(not(all(target_pointer_width = "64", target_endian = "little")))]
compile_error!("zerobus-bun supports 64-bit little-endian targets only");

// ---------------------------------------------------------------------------------------------
// runtime and errors

// Error codes; functions return them negated (offsets are >= 0).
pub const ZEROBUS_ERR_INVALID_ARGUMENT: i32 = 1;
pub const ZEROBUS_ERR_STREAM_FAILED: i32 = 2;
pub const ZEROBUS_ERR_STREAM_CLOSED: i32 = 3;
/// Too many records in flight: wait for acks and call again.
pub const ZEROBUS_ERR_BACKPRESSURE: i32 = 4;
pub const ZEROBUS_ERR_SERVER: i32 = 5;
pub const ZEROBUS_ERR_TRANSPORT: i32 = 6;
pub const ZEROBUS_ERR_AUTH: i32 = 7;
pub const ZEROBUS_ERR_TIMEOUT: i32 = 8;
pub const ZEROBUS_ERR_INTERNAL: i32 = 9;
pub const ZEROBUS_ERR_NOT_FOUND: i32 = 10;
const _: () = {
    assert!(ZEROBUS_ERR_INVALID_ARGUMENT == ErrorCode::InvalidArgument as i32);
    assert!(ZEROBUS_ERR_STREAM_FAILED == ErrorCode::StreamFailed as i32);
    assert!(ZEROBUS_ERR_STREAM_CLOSED == ErrorCode::StreamClosed as i32);
    assert!(ZEROBUS_ERR_BACKPRESSURE == ErrorCode::Backpressure as i32);
    assert!(ZEROBUS_ERR_SERVER == ErrorCode::Server as i32);
    assert!(ZEROBUS_ERR_TRANSPORT == ErrorCode::Transport as i32);
    assert!(ZEROBUS_ERR_AUTH == ErrorCode::Auth as i32);
    assert!(ZEROBUS_ERR_TIMEOUT == ErrorCode::Timeout as i32);
    assert!(ZEROBUS_ERR_INTERNAL == ErrorCode::Internal as i32);
    assert!(ZEROBUS_ERR_NOT_FOUND == ErrorCode::NotFound as i32);
};

/// The runtime's worker threads on a machine with `cores` cores: one per core the caller's own
/// thread (Bun's JavaScript thread, which prepares every record) leaves free, at least one and at
/// most four. More workers than free cores only take turns with that thread: on two cores, a
/// second worker cost 10-20% more CPU per record and no speed (the two workers woke each other
/// for every request, and each wake preempted the JavaScript thread).
fn default_threads(cores: usize) -> usize {
    cores.saturating_sub(1).clamp(1, 4)
}

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let threads = std::env::var("ZEROBUS_BUN_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| default_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("zerobus-bun")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

thread_local! {
    static LAST_ERROR: RefCell<Option<ZerobusError>> = const { RefCell::new(None) };
}

pub(crate) fn set_error(e: ZerobusError) {
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(e));
}

pub(crate) fn err_code(e: ZerobusError) -> i64 {
    let code = e.code as i64;
    set_error(e);
    -code
}

/// Runs `f`, turning a panic into an `Internal` error.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_error(ZerobusError::new(ErrorCode::Internal, format!("panic in zerobus-bun: {msg}")));
            on_panic
        }
    }
}

/// Copies `s` into `buf` (up to `cap` bytes); returns the full length of `s`.
pub(crate) unsafe fn write_str(s: &str, buf: *mut u8, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let n = s.len().min(cap);
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf, n);
    }
    s.len()
}

pub(crate) unsafe fn slice<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// Code of the last error on this thread (0 if none).
#[no_mangle]
pub extern "C" fn zerobus_last_error_code() -> i32 {
    LAST_ERROR.with(|l| l.borrow().as_ref().map(|e| e.code as i32).unwrap_or(0))
}

/// 1 if the last error on this thread may go away on a new stream, else 0.
#[no_mangle]
pub extern "C" fn zerobus_last_error_retryable() -> i32 {
    LAST_ERROR.with(|l| l.borrow().as_ref().map(|e| e.retryable as i32).unwrap_or(0))
}

/// Copies the last error message of this thread into `buf`; returns its full length in bytes.
#[no_mangle]
pub unsafe extern "C" fn zerobus_last_error_message(buf: *mut u8, cap: usize) -> usize {
    LAST_ERROR.with(|l| l.borrow().as_ref().map(|e| write_str(&e.message, buf, cap)).unwrap_or(0))
}

/// Version of this library, NUL-terminated.
#[no_mangle]
pub extern "C" fn zerobus_version() -> *const u8 {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_leaves_a_core_to_the_callers_thread() {
        assert_eq!([1, 2, 3, 4, 5, 64].map(super::default_threads), [1, 1, 2, 3, 4, 4]);
    }
}
