//! SDK and stream handles: opening, ingesting, progress, closing.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use zerobus_core::{
    check_limit, Auth, ErrorCode, LogLevel, NetOptions, Payload, ProxySetting, ProgressHook, RecordType, StreamOptions, TableProperties, ZerobusError,
    ZerobusSdk, ZerobusStream,
};

use crate::headers::{parse_headers, JsHeaders};
use crate::records::{bytes_batch, bytes_each, bytes_packed, bytes_single, Release, ZerobusReleaseFn};
use crate::sink::{SinkQueue, ZerobusSink};
use crate::{err_code, guard, runtime, set_error, slice, write_str};

/// Called (from a runtime thread) when a stream's progress changed; at most once until the next
/// `zerobus_stream_progress` call re-arms it.
pub type ZerobusNotifyFn = Option<unsafe extern "C" fn(userdata: u64)>;

/// Opaque SDK handle.
pub struct ZerobusSdkHandle {
    sdk: ZerobusSdk,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SdkConfig {
    endpoint: String,
    #[serde(default)]
    unity_catalog_url: Option<String>,
    /// PEM CA certificates trusted besides the built-in roots and the OS store.
    #[serde(default)]
    ca_certificates: Option<String>,
    /// A proxy URL, `false` for none; absent: from the environment.
    #[serde(default)]
    proxy: Option<serde_json::Value>,
    #[serde(default)]
    application_name: Option<String>,
}

fn net_options(cfg: &SdkConfig) -> Result<NetOptions, ZerobusError> {
    let proxy = match &cfg.proxy {
        None | Some(serde_json::Value::Null) => ProxySetting::FromEnv,
        Some(serde_json::Value::Bool(false)) => ProxySetting::Off,
        Some(serde_json::Value::String(u)) if !u.trim().is_empty() => ProxySetting::Url(u.clone()),
        // The value is not echoed: it may hold credentials.
        Some(other) => return Err(ZerobusError::invalid(format!("proxy must be a URL string or false, got {}", json_kind(other)))),
    };
    Ok(NetOptions {
        ca_certificates_pem: cfg.ca_certificates.as_ref().map(|p| p.as_bytes().to_vec()),
        proxy,
        application_name: cfg.application_name.clone(),
        ..NetOptions::default()
    })
}

/// What kind of JSON value `v` is (for messages that must not echo it).
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a blank string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub(crate) fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, ZerobusError> {
    serde_json::from_slice(bytes).map_err(|e| ZerobusError::invalid(format!("invalid {what}: {e}")))
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

/// Opaque stream handle.
pub struct ZerobusStreamHandle {
    stream: ZerobusStream,
    notifier: Arc<Notifier>,
    /// Where records released with `zerobus_sink_release_fn()` queue their tokens.
    sink: Option<&'static SinkQueue>,
    /// Headers asked from the caller (`"headersProvider": true`).
    js_headers: Option<Arc<JsHeaders>>,
}

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
    fn disable(&self) {
        self.armed.store(false, Ordering::Release);
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StreamConfig {
    table: String,
    #[serde(default)]
    record_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// The caller supplies headers at each physical stream open (`zerobus_stream_headers_reply`).
    #[serde(default)]
    headers_provider: bool,
    // Numbers are read as JSON numbers and checked here, so a fraction, a negative or an
    // out-of-range value gets a message that names the option and its range.
    max_inflight_records: Option<f64>,
    max_inflight_bytes: Option<f64>,
    recovery: Option<bool>,
    recovery_retries: Option<f64>,
    recovery_backoff_ms: Option<f64>,
    recovery_timeout_ms: Option<f64>,
    server_lack_of_ack_timeout_ms: Option<f64>,
    flush_timeout_ms: Option<f64>,
    submit_timeout_ms: Option<f64>,
    max_record_bytes: Option<f64>,
    stream_paused_max_wait_time_ms: Option<f64>,
    max_message_bytes: Option<f64>,
    /// Arrow streams: send dictionary columns as they are (default: expanded).
    keep_dictionaries: Option<bool>,
    /// Arrow streams: "lz4_frame" | "zstd" | "none" (default).
    compression: Option<String>,
    /// "error" | "warn" | "info" | "debug": events at or above it are queued for
    /// `zerobus_stream_log` (absent: none).
    log_level: Option<String>,
}

/// A numeric option: a whole number within the option's range, or the default when absent.
fn num(value: Option<f64>, camel: &str, default: u64) -> Result<u64, ZerobusError> {
    Ok(opt_num(value, camel)?.unwrap_or(default))
}

/// A numeric option without a fixed default: checked when present.
fn opt_num(value: Option<f64>, camel: &str) -> Result<Option<u64>, ZerobusError> {
    value.map(|v| check_limit(camel, v, true)).transpose()
}

fn stream_setup(
    cfg: StreamConfig,
    descriptor: Option<Bytes>,
    arrow: bool,
    js_headers: Option<Arc<JsHeaders>>,
) -> Result<(TableProperties, Auth, StreamOptions), ZerobusError> {
    let record_type = match cfg.record_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("proto" | "protobuf") => RecordType::Proto,
        Some("json") => RecordType::Json,
        Some("arrow") | None if descriptor.is_none() && arrow => RecordType::Unspecified,
        other => {
            return Err(ZerobusError::invalid(format!("recordType must be \"proto\" or \"json\", got {other:?}")))
        }
    };
    let auth = match (cfg.client_id, cfg.client_secret, cfg.headers, js_headers) {
        (Some(_), Some(_), _, Some(_)) | (None, None, Some(_), Some(_)) => {
            return Err(ZerobusError::invalid("give one of clientId/clientSecret, headers or a headers provider"))
        }
        (Some(id), Some(secret), _, None) => Auth::OAuth { client_id: id, client_secret: secret },
        (None, None, Some(h), None) => Auth::static_headers(h.into_iter().collect()),
        (None, None, None, Some(js)) => Auth::Headers(js),
        (None, None, None, None) => {
            return Err(ZerobusError::invalid("give clientId and clientSecret (OAuth) or headers"))
        }
        _ => return Err(ZerobusError::invalid("clientId and clientSecret go together")),
    };
    let d = StreamOptions::default();
    let opts = StreamOptions {
        max_inflight_records: num(cfg.max_inflight_records, "maxInflightRecords", d.max_inflight_records as u64)? as usize,
        max_inflight_bytes: num(cfg.max_inflight_bytes, "maxInflightBytes", d.max_inflight_bytes as u64)? as usize,
        recovery: cfg.recovery.unwrap_or(d.recovery),
        recovery_retries: num(cfg.recovery_retries, "recoveryRetries", d.recovery_retries as u64)? as u32,
        recovery_backoff_ms: num(cfg.recovery_backoff_ms, "recoveryBackoffMs", d.recovery_backoff_ms)?,
        recovery_timeout_ms: num(cfg.recovery_timeout_ms, "recoveryTimeoutMs", d.recovery_timeout_ms)?,
        server_lack_of_ack_timeout_ms: num(cfg.server_lack_of_ack_timeout_ms, "serverLackOfAckTimeoutMs", d.server_lack_of_ack_timeout_ms)?,
        flush_timeout_ms: num(cfg.flush_timeout_ms, "flushTimeoutMs", d.flush_timeout_ms)?,
        submit_timeout_ms: num(cfg.submit_timeout_ms, "submitTimeoutMs", d.submit_timeout_ms)?,
        max_record_bytes: num(cfg.max_record_bytes, "maxRecordBytes", d.max_record_bytes as u64)? as usize,
        stream_paused_max_wait_time_ms: opt_num(cfg.stream_paused_max_wait_time_ms, "streamPausedMaxWaitTimeMs")?,
        max_message_bytes: opt_num(cfg.max_message_bytes, "maxMessageBytes")?.map(|v| v as usize),
        keep_dictionaries: cfg.keep_dictionaries.unwrap_or(false),
        arrow_compression: match cfg.compression.as_deref() {
            None | Some("none") => None,
            Some("lz4_frame") if arrow => Some(zerobus_core::arrow_ipc::CompressionType::LZ4_FRAME),
            Some("zstd") if arrow => Some(zerobus_core::arrow_ipc::CompressionType::ZSTD),
            Some("lz4_frame" | "zstd") => return Err(ZerobusError::invalid("compression is for Arrow streams")),
            Some(other) => {
                return Err(ZerobusError::invalid(format!("compression must be \"lz4_frame\", \"zstd\" or \"none\", got {other:?}")))
            }
        },
        log_level: match cfg.log_level.as_deref() {
            None => None,
            Some(l) => Some(LogLevel::parse(l).ok_or_else(|| {
                ZerobusError::invalid(format!("logLevel must be \"error\", \"warn\", \"info\" or \"debug\", got {l:?}"))
            })?),
        },
    };
    let table = TableProperties { table_name: cfg.table, record_type, descriptor_proto: descriptor };
    Ok((table, auth, opts))
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

fn notifier(notify: ZerobusNotifyFn, userdata: u64) -> (Arc<Notifier>, Option<ProgressHook>) {
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

/// Progress snapshot written by `zerobus_stream_progress`.
#[repr(C)]
#[derive(Default)]
pub struct ZerobusProgress {
    /// Highest acknowledged logical offset (-1: none).
    pub acked: i64,
    /// Highest logical offset handed out (-1: none).
    pub last_offset: i64,
    /// Physical streams opened (1 + recoveries).
    pub streams_opened: u64,
    /// 0 opening, 1 open, 2 recovering, 3 closing, 4 closed, 5 failed.
    pub state: i32,
    /// Error code when failed (0 otherwise).
    pub error_code: i32,
    /// 1 if the failure was retryable.
    pub error_retryable: i32,
    /// Nonzero: the id of a pending headers request (headers-provider streams); answer it with
    /// `zerobus_stream_headers_reply`.
    pub headers_wanted: u32,
    /// 1 if logger events are waiting for `zerobus_stream_log`.
    pub log_pending: u32,
    pub _reserved: u32,
}

/// Writes the stream's progress into `out` and re-arms the notify callback. Returns 0.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_progress(s: *const ZerobusStreamHandle, out: *mut ZerobusProgress) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let Some(s) = s.as_ref() else {
            set_error(ZerobusError::invalid("stream handle is NULL"));
            return -(ErrorCode::InvalidArgument as i32);
        };
        if out.is_null() {
            set_error(ZerobusError::invalid("out is NULL"));
            return -(ErrorCode::InvalidArgument as i32);
        }
        s.notifier.armed.store(true, Ordering::Release);
        let p = s.stream.progress();
        let o = &mut *out;
        o.acked = p.acked;
        o.last_offset = s.stream.last_offset();
        o.streams_opened = p.streams_opened;
        o.state = p.state as i32;
        o.error_code = p.error.as_ref().map(|e| e.code as i32).unwrap_or(0);
        o.error_retryable = p.error.as_ref().map(|e| e.retryable as i32).unwrap_or(0);
        o.headers_wanted = s.js_headers.as_ref().map_or(0, |h| h.wanted());
        o.log_pending = s.stream.has_log() as u32;
        0
    })
}

/// Answers headers request `id` (from `ZerobusProgress.headers_wanted`): `json` is a JSON object
/// of string values; with `is_error` 1 a UTF-8 message of the provider's failure (the open fails
/// with a retryable `AUTH` error naming it, retried within the stream's budget); with 2 a message
/// saying why its answer is unusable (the stream fails with `INVALID_ARGUMENT`). Returns 0, or a negative error code: `-INVALID_ARGUMENT` if `id` is not
/// the pending request (it timed out or the stream reopened meanwhile) or the JSON is malformed.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_headers_reply(
    s: *const ZerobusStreamHandle,
    id: u32,
    json: *const u8,
    len: usize,
    is_error: i32,
) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let r = (|| {
            let s = s.as_ref().ok_or_else(|| ZerobusError::invalid("stream handle is NULL"))?;
            let js = s.js_headers.as_ref().ok_or_else(|| ZerobusError::invalid("this stream has no headers provider"))?;
            let body = slice(json, len);
            let reply = match is_error {
                0 => parse_headers(body),
                2 => Err(ZerobusError::invalid(String::from_utf8_lossy(body).into_owned())),
                _ => Err(ZerobusError::new(ErrorCode::Auth, format!("headers function failed: {}", String::from_utf8_lossy(body)))
                    .retryable(true)),
            };
            let bad = reply.as_ref().err().filter(|e| e.code == ErrorCode::InvalidArgument).cloned();
            if !js.reply(id, reply) {
                return Err(ZerobusError::invalid(format!("headers request {id} is not pending")));
            }
            bad.map_or(Ok(()), Err)
        })();
        match r {
            Ok(()) => 0,
            Err(e) => err_code(e) as i32,
        }
    })
}

/// Copies the stream's failure message into `buf`; returns its full length (0 if none).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_error_message(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref().and_then(|s| s.stream.progress().error) {
        Some(e) => write_str(&e.message, buf, cap),
        None => 0,
    })
}

/// Copies the stream's running totals as a JSON object into `buf`; returns its full length (0 if
/// `s` is NULL): `{"recordsIngested", "bytesIngested", "recordsSent", "bytesSent", "recordsAcked",
/// "bytesAcked", "recordsInflight", "bytesInflight", "streamsOpened", "recoveries", "tokensFetched",
/// "lastError": null | {"code", "message", "retryable"}}`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_stats(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref() {
        Some(s) => {
            let t = s.stream.stats();
            let json = serde_json::json!({
                "recordsIngested": t.records_ingested,
                "bytesIngested": t.bytes_ingested,
                "recordsSent": t.records_sent,
                "bytesSent": t.bytes_sent,
                "recordsAcked": t.records_acked,
                "bytesAcked": t.bytes_acked,
                "recordsInflight": t.records_inflight,
                "bytesInflight": t.bytes_inflight,
                "streamsOpened": t.streams_opened,
                "recoveries": t.recoveries,
                "tokensFetched": t.tokens_fetched,
                "lastError": t.last_error.map(|e| serde_json::json!({
                    "code": e.code.name(), "message": e.message, "retryable": e.retryable,
                })),
            });
            write_str(&json.to_string(), buf, cap)
        }
        None => 0,
    })
}

/// Copies the requests not acknowledged (those of a live stream, or what a failed stream kept)
/// into `buf` if it holds them all; returns the bytes needed (0 if none or `s` is NULL). Packed,
/// little-endian, per request: `i64 offset, u32 kind (0 one record, 1 batch, 2 Arrow IPC stream),
/// u32 count`, then `count` items of `u32 length` + bytes (JSON records as UTF-8 text; an Arrow
/// request as one self-contained IPC stream: schema, dictionaries, the batch).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_unacked(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || {
        let Some(s) = s.as_ref() else { return 0 };
        let schema = s.stream.arrow_schema();
        let mut out: Vec<u8> = Vec::new();
        for (offset, payload) in s.stream.unacked() {
            out.extend_from_slice(&offset.to_le_bytes());
            let item = |out: &mut Vec<u8>, b: &[u8]| {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            };
            match (&payload, &schema) {
                (Payload::Arrow(a), Some(schema)) => {
                    out.extend_from_slice(&2u32.to_le_bytes());
                    out.extend_from_slice(&1u32.to_le_bytes());
                    item(&mut out, &zerobus_core::arrow::ipc_stream_bytes(schema, a));
                }
                _ => {
                    let records = payload.records();
                    let kind: u32 = if matches!(payload, Payload::ProtoBatch(_) | Payload::JsonBatch(_)) { 1 } else { 0 };
                    out.extend_from_slice(&kind.to_le_bytes());
                    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
                    for r in &records {
                        item(&mut out, r);
                    }
                }
            }
        }
        if !buf.is_null() && cap >= out.len() {
            std::ptr::copy_nonoverlapping(out.as_ptr(), buf, out.len());
        }
        out.len()
    })
}

/// Takes the stream's queued logger events as JSON `{"dropped": N, "events": [{"level":
/// "error"|"warn"|"info"|"debug", "message": "..."}]}` into `buf`; returns its length. If `buf`
/// is too small nothing is taken and the length needed is returned (call again).
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_log(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || {
        let Some(s) = s.as_ref() else { return 0 };
        let (events, dropped) = s.stream.take_log();
        let json = serde_json::json!({
            "dropped": dropped,
            "events": events.iter().map(|e| serde_json::json!({ "level": e.level.name(), "message": e.message })).collect::<Vec<_>>(),
        })
        .to_string();
        if json.len() > cap || buf.is_null() {
            s.stream.put_back_log(events, dropped);
            return json.len();
        }
        write_str(&json, buf, cap)
    })
}

/// Copies the id the server gave the current physical stream; returns its full length.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_id(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref().and_then(|s| s.stream.progress().stream_id) {
        Some(id) => write_str(&id, buf, cap),
        None => 0,
    })
}

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

