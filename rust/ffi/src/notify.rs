//! Progress notifications to the caller: the `notify(userdata)` callback a stream calls from a
//! runtime thread, coalesced until the caller reads the progress again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zerobus_core::ProgressHook;

/// Called (from a runtime thread) when a stream's progress changed; at most once until the next
/// `zerobus_stream_progress` call re-arms it.
pub type ZerobusNotifyFn = Option<unsafe extern "C" fn(userdata: u64)>;

/// Coalesced progress notifications: `notify` runs at most once per re-arm, and never after the
/// handle is freed (the lock makes `zerobus_stream_free` wait for a call in progress).
pub(crate) struct Notifier {
    armed: AtomicBool,
    target: std::sync::Mutex<Option<(unsafe extern "C" fn(u64), u64)>>,
}

impl Notifier {
    pub(crate) fn fire(&self) {
        if self.armed.swap(false, Ordering::AcqRel) {
            let target = self.target.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((f, userdata)) = *target {
                unsafe { f(userdata) }
            }
        }
    }
    /// Lets the next progress change call `notify` again (the caller is reading the progress).
    pub(crate) fn rearm(&self) {
        self.armed.store(true, Ordering::Release);
    }
    pub(crate) fn disable(&self) {
        self.armed.store(false, Ordering::Release);
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A stream's notifier, and the progress hook that fires it (none without a `notify` callback).
pub(crate) fn notifier(notify: ZerobusNotifyFn, userdata: u64) -> (Arc<Notifier>, Option<ProgressHook>) {
    let notifier = Arc::new(Notifier {
        armed: AtomicBool::new(true),
        target: std::sync::Mutex::new(notify.map(|f| (f, userdata))),
    });
    let hook: Option<ProgressHook> = notify.map(|_| {
        let n = notifier.clone();
        Arc::new(move || n.fire()) as ProgressHook
    });
    (notifier, hook)
}
