//! Release sinks: for runtimes that cannot take a callback per record (the Bun SDK). Records
//! ingested with `zerobus_sink_release_fn()` as `release` and a token as `ctx` are released by
//! queueing the token into the sink their stream was opened with; the runtime drains tokens in
//! bulk with `zerobus_sink_drain`. Each JavaScript realm (main thread, every Worker) has its own
//! sink, so no realm ever sees another's tokens.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::guard;

pub(crate) type SinkQueue = crossbeam_queue::SegQueue<u64>;

/// Opaque release sink. Its queue is never freed: records may be released into it long after
/// its streams and its handle are gone (the HTTP/2 layer still holding a record), and a `'static` queue
/// needs no reference count per record (one per realm: a few hundred bytes).
pub struct ZerobusSink {
    pub(crate) queue: &'static SinkQueue,
}

// The marker `release`. It is never called through a stream (which routes its tokens into the
// sink instead); a direct call is counted, which also gives it a body of its own.
static MARKER_CALLS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn sink_release(_ctx: *mut c_void) {
    MARKER_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// The marker's address, always taken here: Rust does not promise one address per function
/// (each codegen unit may take its own), so every comparison uses this one.
#[inline(never)]
fn marker() -> usize {
    sink_release as *const () as usize
}

pub(crate) fn is_sink_release(f: unsafe extern "C" fn(*mut c_void)) -> bool {
    f as *const () as usize == marker()
}

/// The `release` to pass with a token as `ctx`: the token goes to the stream's sink.
#[no_mangle]
pub extern "C" fn zerobus_sink_release_fn() -> *const c_void {
    marker() as *const c_void
}

/// Creates a release sink. Free it with `zerobus_sink_free`.
#[no_mangle]
pub extern "C" fn zerobus_sink_new() -> *mut ZerobusSink {
    Box::into_raw(Box::new(ZerobusSink { queue: Box::leak(Box::new(SinkQueue::new())) }))
}

/// Moves up to `cap` released tokens into `out`; returns how many were written (0 when `sink`
/// or `out` is NULL).
#[no_mangle]
pub unsafe extern "C" fn zerobus_sink_drain(sink: *const ZerobusSink, out: *mut u64, cap: usize) -> usize {
    let Some(sink) = sink.as_ref() else { return 0 };
    if out.is_null() {
        return 0;
    }
    let mut n = 0;
    while n < cap {
        match sink.queue.pop() {
            Some(t) => {
                *out.add(n) = t;
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// Queues `token` as released, as if a record ingested with it had been dropped (lets a caller
/// route its own releases through the sink).
#[no_mangle]
pub unsafe extern "C" fn zerobus_sink_push(sink: *const ZerobusSink, token: u64) {
    if let Some(sink) = sink.as_ref() {
        sink.queue.push(token);
    }
}

/// Frees the sink handle. Its queue stays allocated (records of its streams may still be
/// released into it); tokens released after this are never drained.
#[no_mangle]
pub unsafe extern "C" fn zerobus_sink_free(sink: *mut ZerobusSink) {
    if !sink.is_null() {
        guard((), || drop(Box::from_raw(sink)));
    }
}
