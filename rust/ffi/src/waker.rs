//! Waking an event loop without running its code on a foreign thread: the waker is a loopback
//! TCP connection to a socket the event loop listens on (Bun: `Bun.listen`). When a stream's
//! progress changes, a runtime thread writes one byte; the event loop sees the socket readable
//! and polls its streams on its own thread. Writes are coalesced: after one byte, nothing more is
//! written until the event loop re-arms the waker (`zerobus_waker_arm`) before it polls.

use std::ffi::c_void;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use zerobus_core::{ErrorCode, ZerobusError};

use crate::{guard, set_error};

/// Opaque waker.
pub struct ZerobusWaker {
    sock: TcpStream,
    armed: AtomicBool,
}

impl ZerobusWaker {
    pub(crate) fn fire(&self) {
        if self.armed.swap(false, Ordering::AcqRel) {
            // WouldBlock means bytes are already waiting to be read: the loop will wake. Any
            // other error means the listener is gone; its streams are polled by their timers.
            let _ = (&self.sock).write(&[1]);
        }
    }
}

/// Connects a waker to `127.0.0.1:port`, where the event loop listens. NULL on error.
#[no_mangle]
pub extern "C" fn zerobus_waker_new(port: u16) -> *mut ZerobusWaker {
    guard(std::ptr::null_mut(), || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).and_then(|s| {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            Ok(s)
        });
        match sock {
            Ok(sock) => Box::into_raw(Box::new(ZerobusWaker { sock, armed: AtomicBool::new(true) })),
            Err(e) => {
                set_error(ZerobusError::new(ErrorCode::Transport, format!("waker: cannot connect to {addr}: {e}")));
                std::ptr::null_mut()
            }
        }
    })
}

/// The local port of the waker's connection (to tell it apart from other connections), 0 on error.
#[no_mangle]
pub unsafe extern "C" fn zerobus_waker_local_port(w: *const ZerobusWaker) -> u16 {
    w.as_ref().and_then(|w| w.sock.local_addr().ok()).map(|a| a.port()).unwrap_or(0)
}

/// Re-arms the waker: the next progress change writes a byte again. Call it before polling.
#[no_mangle]
pub unsafe extern "C" fn zerobus_waker_arm(w: *const ZerobusWaker) {
    if let Some(w) = w.as_ref() {
        w.armed.store(true, Ordering::Release);
    }
}

unsafe extern "C" fn waker_notify(userdata: u64) {
    if let Some(w) = (userdata as usize as *const ZerobusWaker).as_ref() {
        w.fire();
    }
}

/// A `notify` for `zerobus_stream_open`: pass it with the waker's address as `userdata`.
#[no_mangle]
pub extern "C" fn zerobus_waker_notify_fn() -> *const c_void {
    waker_notify as *const c_void
}

/// Frees a waker. Only after every stream notifying it was freed.
#[no_mangle]
pub unsafe extern "C" fn zerobus_waker_free(w: *mut ZerobusWaker) {
    if !w.is_null() {
        guard((), || drop(Box::from_raw(w)));
    }
}
