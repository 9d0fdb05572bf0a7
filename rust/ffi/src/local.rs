//! A local Zerobus server running in this process (tests, demos).

use zerobus_core::{ErrorCode, ZerobusError};

use crate::streams::parse_json;
use crate::{guard, runtime, set_error, slice, write_str};

/// Opaque handle of a local Zerobus server running in this process.
pub struct ZerobusLocalHandle {
    server: Option<zerobus_local::LocalServer>,
    url: String,
}

/// Starts a local Zerobus server (config JSON as `zerobus_local::ServerConfig`, camelCase). NULL on error.
#[no_mangle]
pub unsafe extern "C" fn zerobus_local_start(config_json: *const u8, len: usize) -> *mut ZerobusLocalHandle {
    guard(std::ptr::null_mut(), || {
        let cfg: zerobus_local::ServerConfig = match parse_json(slice(config_json, len), "local server config") {
            Ok(c) => c,
            Err(e) => {
                set_error(e);
                return std::ptr::null_mut();
            }
        };
        match runtime().block_on(zerobus_local::start(cfg)) {
            Ok(server) => {
                let url = server.url();
                Box::into_raw(Box::new(ZerobusLocalHandle { server: Some(server), url }))
            }
            Err(e) => {
                set_error(ZerobusError::new(ErrorCode::Internal, format!("local server: {e}")));
                std::ptr::null_mut()
            }
        }
    })
}

/// Copies the server's URL (`http://127.0.0.1:PORT`) into `buf`; returns its full length.
#[no_mangle]
pub unsafe extern "C" fn zerobus_local_url(h: *const ZerobusLocalHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || h.as_ref().map(|h| write_str(&h.url, buf, cap)).unwrap_or(0))
}

/// Stops the server and frees the handle.
#[no_mangle]
pub unsafe extern "C" fn zerobus_local_stop(h: *mut ZerobusLocalHandle) {
    if h.is_null() {
        return;
    }
    guard((), || {
        let mut h = Box::from_raw(h);
        if let Some(s) = h.server.take() {
            runtime().block_on(s.shutdown());
        }
    })
}
