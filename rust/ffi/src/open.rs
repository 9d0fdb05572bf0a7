//! The stream handle and opening streams (protobuf/JSON and Arrow): the handle ties a core
//! stream to the caller's notify callback, release sink and headers provider.

use std::sync::Arc;

use bytes::Bytes;
use zerobus_core::{ProgressHook, ZerobusError, ZerobusSdk, ZerobusStream};

use crate::config::{parse_json, stream_setup, StreamConfig};
use crate::headers::JsHeaders;
use crate::notify::{notifier, Notifier, ZerobusNotifyFn};
use crate::sdk::ZerobusSdkHandle;
use crate::sink::{SinkQueue, ZerobusSink};
use crate::{guard, runtime, set_error, slice};

/// Opaque stream handle.
pub struct ZerobusStreamHandle {
    pub(crate) stream: ZerobusStream,
    pub(crate) notifier: Arc<Notifier>,
    /// Where records released with `zerobus_sink_release_fn()` queue their tokens.
    pub(crate) sink: Option<&'static SinkQueue>,
    /// Headers asked from the caller (`"headersProvider": true`).
    pub(crate) js_headers: Option<Arc<JsHeaders>>,
}

/// Opens a stream in the background and returns its handle at once (NULL on a config error).
/// `options_json`: `{"table", "recordType": "proto"|"json", "clientId", "clientSecret" | "headers": {..},
/// "maxInflightRecords", "maxInflightBytes", "recovery", "recoveryRetries", "recoveryBackoffMs", "recoveryTimeoutMs",
/// "serverLackOfAckTimeoutMs", "flushTimeoutMs", "submitTimeoutMs", "maxRecordBytes",
/// "streamPausedMaxWaitTimeMs", "maxMessageBytes", "headersProvider": bool, "logLevel"}` (numbers:
/// whole, within each option's range). `descriptor`: serialized DescriptorProto (PROTO streams;
/// copied). `sink` (may be NULL): where records ingested with `zerobus_sink_release_fn()` are
/// released. `notify(userdata)` is called when progress changes.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_open(
    sdk: *const ZerobusSdkHandle,
    options_json: *const u8,
    options_len: usize,
    descriptor: *const u8,
    descriptor_len: usize,
    sink: *const ZerobusSink,
    notify: ZerobusNotifyFn,
    userdata: u64,
) -> *mut ZerobusStreamHandle {
    open_stream(sdk, options_json, options_len, sink, notify, userdata, |sdk, cfg, hook, js| {
        let desc = (descriptor_len > 0).then(|| Bytes::copy_from_slice(slice(descriptor, descriptor_len)));
        let (table, auth, opts) = stream_setup(cfg, desc, false, js)?;
        sdk.start_stream(table, auth, opts, hook)
    })
}

/// The body of the `*_open` functions: checks the SDK handle and parses `options_json`, then
/// `start` opens the stream (inside the runtime) with the options and the progress hook.
unsafe fn open_stream(
    sdk: *const ZerobusSdkHandle,
    options_json: *const u8,
    options_len: usize,
    sink: *const ZerobusSink,
    notify: ZerobusNotifyFn,
    userdata: u64,
    start: impl FnOnce(&ZerobusSdk, StreamConfig, Option<ProgressHook>, Option<Arc<JsHeaders>>) -> Result<ZerobusStream, ZerobusError>,
) -> *mut ZerobusStreamHandle {
    guard(std::ptr::null_mut(), || {
        let result = (|| {
            let sdk = sdk.as_ref().ok_or_else(|| ZerobusError::invalid("sdk handle is NULL"))?;
            let cfg: StreamConfig = parse_json(slice(options_json, options_len), "stream options")?;
            let (notifier, hook) = notifier(notify, userdata);
            if cfg.headers_provider && hook.is_none() {
                return Err(ZerobusError::invalid("a headers provider needs a notify callback (it is how headers are asked for)"));
            }
            let js_headers = cfg.headers_provider.then(|| Arc::new(JsHeaders::new(notifier.clone())));
            let _enter = runtime().enter();
            let stream = start(&sdk.sdk, cfg, hook, js_headers.clone())?;
            let sink = sink.as_ref().map(|s| s.queue);
            Ok(Box::into_raw(Box::new(ZerobusStreamHandle { stream, notifier, sink, js_headers })))
        })();
        result.unwrap_or_else(|e| {
            set_error(e);
            std::ptr::null_mut()
        })
    })
}

/// Opens an Arrow stream (Arrow Flight DoPut) in the background and returns its handle at once
/// (NULL on a config error). `schema_ipc`: Arrow IPC stream bytes starting with the schema
/// message (e.g. an IPC stream of an empty table); copied. `options_json` as for
/// `zerobus_stream_open` without `recordType`; `maxInflightRecords` counts rows. The handle
/// works with every `zerobus_stream_*` function; ingest with `zerobus_ingest_ipc_batch`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_arrow_stream_open(
    sdk: *const ZerobusSdkHandle,
    options_json: *const u8,
    options_len: usize,
    schema_ipc: *const u8,
    schema_len: usize,
    sink: *const ZerobusSink,
    notify: ZerobusNotifyFn,
    userdata: u64,
) -> *mut ZerobusStreamHandle {
    open_stream(sdk, options_json, options_len, sink, notify, userdata, |sdk, cfg, hook, js| {
        let schema = zerobus_core::arrow::schema_from_ipc(slice(schema_ipc, schema_len))?;
        let (table, auth, opts) = stream_setup(cfg, None, true, js)?;
        sdk.start_arrow_stream(table.table_name, Arc::new(schema), auth, opts, hook)
    })
}
