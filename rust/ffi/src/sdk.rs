//! The SDK handle: one endpoint (and Unity Catalog URL) with its network options, from which
//! streams are opened.

use zerobus_core::ZerobusSdk;

use crate::config::{net_options, parse_json, SdkConfig};
use crate::{guard, set_error, slice};

/// Opaque SDK handle.
pub struct ZerobusSdkHandle {
    pub(crate) sdk: ZerobusSdk,
}

/// Creates an SDK from JSON `{"endpoint": "...", "unityCatalogUrl": "...", "caCertificates": "<PEM>",
/// "proxy": "http://host:port" | false, "applicationName": "..."}` (all but endpoint optional;
/// proxy absent: from the environment). NULL on error.
#[no_mangle]
pub unsafe extern "C" fn zerobus_sdk_new(config_json: *const u8, len: usize) -> *mut ZerobusSdkHandle {
    guard(std::ptr::null_mut(), || {
        let cfg: SdkConfig = match parse_json(slice(config_json, len), "SDK config") {
            Ok(c) => c,
            Err(e) => {
                set_error(e);
                return std::ptr::null_mut();
            }
        };
        match net_options(&cfg).and_then(|net| ZerobusSdk::with_options(cfg.endpoint, cfg.unity_catalog_url, net)) {
            Ok(sdk) => Box::into_raw(Box::new(ZerobusSdkHandle { sdk })),
            Err(e) => {
                set_error(e);
                std::ptr::null_mut()
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn zerobus_sdk_free(sdk: *mut ZerobusSdkHandle) {
    if !sdk.is_null() {
        guard((), || drop(Box::from_raw(sdk)));
    }
}
