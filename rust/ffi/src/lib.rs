//! C ABI of zerobus-bun. Every function catches panics; errors are returned as negative
//! [`ErrorCode`] values (or NULL handles) with the message kept per thread
//! (`zerobus_last_error_*`).
//!
//! Record memory: `ingest_*` functions take `pointer + length + release callback + context`.
//! The bytes are used in place (wrapped with `Bytes::from_owner`) until the last reference is
//! dropped — after the server acknowledged them, or the stream failed or was freed — and then
//! `release(ctx)` is called exactly once (from any thread, possibly before the ingest call returns
//! if it fails). Batch forms call `release` once for the whole batch. A NULL `release` means the
//! bytes are copied during the call and the caller keeps ownership.

#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use zerobus_core::{
    Auth, ErrorCode, Payload, ProgressHook, RecordType, StreamOptions, TableProperties, ZerobusError, ZerobusSdk,
    ZerobusStream,
};

/// Called with the context given at ingest when Rust no longer references the record memory.
pub type ZerobusReleaseFn = Option<unsafe extern "C" fn(ctx: *mut c_void)>;
/// Called (from a runtime thread) when a stream's progress changed; at most once until the next
/// `zerobus_stream_progress` call re-arms it.
pub type ZerobusNotifyFn = Option<unsafe extern "C" fn(userdata: u64)>;

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

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let threads = std::env::var("ZEROBUS_BUN_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(2));
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

fn set_error(e: ZerobusError) {
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(e));
}

fn err_code(e: ZerobusError) -> i64 {
    let code = e.code as i64;
    set_error(e);
    -code
}

/// Runs `f`, turning a panic into an `Internal` error.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
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
unsafe fn write_str(s: &str, buf: *mut u8, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let n = s.len().min(cap);
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf, n);
    }
    s.len()
}

unsafe fn slice<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
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

// ---------------------------------------------------------------------------------------------
// record memory

struct Release {
    f: unsafe extern "C" fn(*mut c_void),
    ctx: *mut c_void,
}
// SAFETY: the C contract says `release` may be called from any thread.
unsafe impl Send for Release {}
unsafe impl Sync for Release {}
impl Drop for Release {
    fn drop(&mut self) {
        unsafe { (self.f)(self.ctx) }
    }
}

/// Borrowed caller memory; `release` runs when the last `Bytes` handle to it is dropped.
struct Borrowed<R> {
    ptr: *const u8,
    len: usize,
    _release: R,
}
unsafe impl<R: Send> Send for Borrowed<R> {}
impl<R> AsRef<[u8]> for Borrowed<R> {
    fn as_ref(&self) -> &[u8] {
        unsafe { slice(self.ptr, self.len) }
    }
}

unsafe fn bytes_single(ptr: *const u8, len: usize, release: ZerobusReleaseFn, ctx: *mut c_void) -> Bytes {
    match release {
        None => Bytes::copy_from_slice(slice(ptr, len)),
        Some(f) => Bytes::from_owner(Borrowed { ptr, len, _release: Release { f, ctx } }),
    }
}

/// Records of a batch: pointer/length pairs sharing one release.
unsafe fn bytes_batch(
    ptrs: *const *const u8,
    lens: *const usize,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> Vec<Bytes> {
    let ptrs = std::slice::from_raw_parts(ptrs, count);
    let lens = std::slice::from_raw_parts(lens, count);
    match release {
        None => ptrs.iter().zip(lens).map(|(p, l)| Bytes::copy_from_slice(slice(*p, *l))).collect(),
        Some(f) => {
            let rel = Arc::new(Release { f, ctx });
            ptrs.iter()
                .zip(lens)
                .map(|(p, l)| Bytes::from_owner(Borrowed { ptr: *p, len: *l, _release: rel.clone() }))
                .collect()
        }
    }
}

/// Records packed back to back in one buffer, with their lengths; one release.
unsafe fn bytes_packed(
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> Result<Vec<Bytes>, ZerobusError> {
    let lens = std::slice::from_raw_parts(lens, count);
    let total: usize = lens.iter().map(|l| *l as usize).sum();
    let whole = bytes_single(data, len, release, ctx);
    if total != len {
        return Err(ZerobusError::invalid(format!(
            "packed record lengths add up to {total} bytes but the buffer has {len}"
        )));
    }
    let mut at = 0usize;
    Ok(lens
        .iter()
        .map(|l| {
            let b = whole.slice(at..at + *l as usize);
            at += *l as usize;
            b
        })
        .collect())
}

// Release sink for runtimes that cannot take a callback per record (the Bun SDK): pass
// `zerobus_release_token_fn()` as `release` and a token as `ctx`; released tokens are collected
// here and drained in bulk with `zerobus_drain_released`.
static RELEASED: crossbeam_queue::SegQueue<u64> = crossbeam_queue::SegQueue::new();

unsafe extern "C" fn release_token(ctx: *mut c_void) {
    RELEASED.push(ctx as u64);
}

/// The release callback that queues its `ctx` as a token for `zerobus_drain_released`.
#[no_mangle]
pub extern "C" fn zerobus_release_token_fn() -> *const c_void {
    release_token as *const c_void
}

/// Queues `token` as released, as if a record ingested with it had been dropped (for tests of
/// the token sink).
#[no_mangle]
pub extern "C" fn zerobus_debug_release_token(token: u64) {
    RELEASED.push(token);
}

/// Moves up to `cap` released tokens into `out`; returns how many were written.
#[no_mangle]
pub unsafe extern "C" fn zerobus_drain_released(out: *mut u64, cap: usize) -> usize {
    let mut n = 0;
    while n < cap {
        match RELEASED.pop() {
            Some(t) => {
                *out.add(n) = t;
                n += 1;
            }
            None => break,
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------
// SDK and streams

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
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, ZerobusError> {
    serde_json::from_slice(bytes).map_err(|e| ZerobusError::invalid(format!("invalid {what}: {e}")))
}

/// Creates an SDK from JSON `{"endpoint": "...", "unityCatalogUrl": "..."}`. NULL on error.
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
        match ZerobusSdk::new(cfg.endpoint, cfg.unity_catalog_url) {
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
}

/// Coalesced progress notifications: `notify` runs at most once per re-arm, and never after the
/// handle is freed (the lock makes `zerobus_stream_free` wait for a call in progress).
struct Notifier {
    armed: AtomicBool,
    target: std::sync::Mutex<Option<(unsafe extern "C" fn(u64), u64)>>,
}

impl Notifier {
    fn fire(&self) {
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
    max_inflight_records: Option<usize>,
    max_inflight_bytes: Option<usize>,
    recovery: Option<bool>,
    recovery_retries: Option<u32>,
    recovery_backoff_ms: Option<u64>,
    recovery_timeout_ms: Option<u64>,
    server_lack_of_ack_timeout_ms: Option<u64>,
    flush_timeout_ms: Option<u64>,
    max_record_bytes: Option<usize>,
}

fn stream_setup(
    cfg: StreamConfig,
    descriptor: Option<Bytes>,
    arrow: bool,
) -> Result<(TableProperties, Auth, StreamOptions), ZerobusError> {
    let record_type = match cfg.record_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("proto" | "protobuf") => RecordType::Proto,
        Some("json") => RecordType::Json,
        Some("arrow") | None if descriptor.is_none() && arrow => RecordType::Unspecified,
        other => {
            return Err(ZerobusError::invalid(format!("recordType must be \"proto\" or \"json\", got {other:?}")))
        }
    };
    let auth = match (cfg.client_id, cfg.client_secret, cfg.headers) {
        (Some(id), Some(secret), _) => Auth::OAuth { client_id: id, client_secret: secret },
        (None, None, Some(h)) => Auth::static_headers(h.into_iter().collect()),
        (None, None, None) => {
            return Err(ZerobusError::invalid("give clientId and clientSecret (OAuth) or headers"))
        }
        _ => return Err(ZerobusError::invalid("clientId and clientSecret go together")),
    };
    let d = StreamOptions::default();
    let opts = StreamOptions {
        max_inflight_records: cfg.max_inflight_records.unwrap_or(d.max_inflight_records),
        max_inflight_bytes: cfg.max_inflight_bytes.unwrap_or(d.max_inflight_bytes),
        recovery: cfg.recovery.unwrap_or(d.recovery),
        recovery_retries: cfg.recovery_retries.unwrap_or(d.recovery_retries),
        recovery_backoff_ms: cfg.recovery_backoff_ms.unwrap_or(d.recovery_backoff_ms),
        recovery_timeout_ms: cfg.recovery_timeout_ms.unwrap_or(d.recovery_timeout_ms),
        server_lack_of_ack_timeout_ms: cfg.server_lack_of_ack_timeout_ms.unwrap_or(d.server_lack_of_ack_timeout_ms),
        flush_timeout_ms: cfg.flush_timeout_ms.unwrap_or(d.flush_timeout_ms),
        max_record_bytes: cfg.max_record_bytes.unwrap_or(d.max_record_bytes),
    };
    let table = TableProperties { table_name: cfg.table, record_type, descriptor_proto: descriptor };
    Ok((table, auth, opts))
}

/// Opens a stream in the background and returns its handle at once (NULL on a config error).
/// `options_json`: `{"table", "recordType": "proto"|"json", "clientId", "clientSecret" | "headers": {..},
/// "maxInflightRecords", "maxInflightBytes", "recovery", "recoveryRetries", "recoveryBackoffMs", "recoveryTimeoutMs",
/// "serverLackOfAckTimeoutMs", "flushTimeoutMs", "maxRecordBytes"}`. `descriptor`: serialized
/// DescriptorProto (PROTO streams; copied). `notify(userdata)` is called when progress changes.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_open(
    sdk: *const ZerobusSdkHandle,
    options_json: *const u8,
    options_len: usize,
    descriptor: *const u8,
    descriptor_len: usize,
    notify: ZerobusNotifyFn,
    userdata: u64,
) -> *mut ZerobusStreamHandle {
    open_stream(sdk, options_json, options_len, notify, userdata, |sdk, cfg, hook| {
        let desc = (descriptor_len > 0).then(|| Bytes::copy_from_slice(slice(descriptor, descriptor_len)));
        let (table, auth, opts) = stream_setup(cfg, desc, false)?;
        sdk.start_stream(table, auth, opts, hook)
    })
}

/// The body of the `*_open` functions: checks the SDK handle and parses `options_json`, then
/// `start` opens the stream (inside the runtime) with the options and the progress hook.
unsafe fn open_stream(
    sdk: *const ZerobusSdkHandle,
    options_json: *const u8,
    options_len: usize,
    notify: ZerobusNotifyFn,
    userdata: u64,
    start: impl FnOnce(&ZerobusSdk, StreamConfig, Option<ProgressHook>) -> Result<ZerobusStream, ZerobusError>,
) -> *mut ZerobusStreamHandle {
    guard(std::ptr::null_mut(), || {
        let result = (|| {
            let sdk = sdk.as_ref().ok_or_else(|| ZerobusError::invalid("sdk handle is NULL"))?;
            let cfg: StreamConfig = parse_json(slice(options_json, options_len), "stream options")?;
            let (notifier, hook) = notifier(notify, userdata);
            let _enter = runtime().enter();
            let stream = start(&sdk.sdk, cfg, hook)?;
            Ok(Box::into_raw(Box::new(ZerobusStreamHandle { stream, notifier })))
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
    notify: ZerobusNotifyFn,
    userdata: u64,
) -> *mut ZerobusStreamHandle {
    open_stream(sdk, options_json, options_len, notify, userdata, |sdk, cfg, hook| {
        let schema = zerobus_core::arrow::schema_from_ipc(slice(schema_ipc, schema_len))?;
        let (table, auth, opts) = stream_setup(cfg, None, true)?;
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
        match s.stream.try_ingest_ipc_batch(bytes_single(data, len, release, ctx)) {
            Ok(o) => o,
            Err(e) => err_code(e),
        }
    })
}

/// IPC encode and decode passes made by the library on the calling thread (`out[0]` encode,
/// `out[1]` decode). For tests: ingesting IPC bytes makes none.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ipc_passes(out: *mut u64) {
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
    pub _reserved: i32,
}

/// Writes the stream's progress into `out` and re-arms the notify callback. Returns 0.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_progress(s: *const ZerobusStreamHandle, out: *mut ZerobusProgress) -> i32 {
    guard(-(ErrorCode::Internal as i32), || {
        let Some(s) = s.as_ref() else {
            set_error(ZerobusError::invalid("stream handle is NULL"));
            return -(ErrorCode::InvalidArgument as i32);
        };
        s.notifier.armed.store(true, Ordering::Release);
        let p = s.stream.progress();
        let o = &mut *out;
        o.acked = p.acked;
        o.last_offset = s.stream.last_offset();
        o.streams_opened = p.streams_opened;
        o.state = p.state as i32;
        o.error_code = p.error.as_ref().map(|e| e.code as i32).unwrap_or(0);
        o.error_retryable = p.error.as_ref().map(|e| e.retryable as i32).unwrap_or(0);
        0
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

/// Copies the id the server gave the current physical stream; returns its full length.
#[no_mangle]
pub unsafe extern "C" fn zerobus_stream_id(s: *const ZerobusStreamHandle, buf: *mut u8, cap: usize) -> usize {
    guard(0, || match s.as_ref().and_then(|s| s.stream.progress().stream_id) {
        Some(id) => write_str(&id, buf, cap),
        None => 0,
    })
}

fn push(s: *const ZerobusStreamHandle, payload: impl FnOnce() -> Result<Payload, ZerobusError>) -> i64 {
    let Some(s) = (unsafe { s.as_ref() }) else {
        return err_code(ZerobusError::invalid("stream handle is NULL"));
    };
    match payload().and_then(|p| s.stream.try_push(p).map_err(|(e, _)| e)) {
        Ok(o) => o,
        Err(e) => err_code(e),
    }
}

/// Queues one protobuf-encoded record. Returns its logical offset, or a negative error code
/// (-4: too many records in flight; wait for acks or call `zerobus_stream_wait_capacity`).
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes(
    s: *const ZerobusStreamHandle,
    data: *const u8,
    len: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || push(s, || Ok(Payload::Proto(bytes_single(data, len, release, ctx)))))
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
    guard(-(ErrorCode::Internal as i64), || push(s, || Ok(Payload::Json(bytes_single(data, len, release, ctx)))))
}

/// Queues `count` protobuf records (pointer/length arrays) as one batch request with one offset.
/// `release(ctx)` runs once, after the last record of the batch is released.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_proto_bytes_batch(
    s: *const ZerobusStreamHandle,
    records: *const *const u8,
    lens: *const usize,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, || Ok(Payload::ProtoBatch(bytes_batch(records, lens, count, release, ctx).into())))
    })
}

/// JSON form of `zerobus_ingest_proto_bytes_batch`.
#[no_mangle]
pub unsafe extern "C" fn zerobus_ingest_json_bytes_batch(
    s: *const ZerobusStreamHandle,
    records: *const *const u8,
    lens: *const usize,
    count: usize,
    release: ZerobusReleaseFn,
    ctx: *mut c_void,
) -> i64 {
    guard(-(ErrorCode::Internal as i64), || {
        push(s, || Ok(Payload::JsonBatch(bytes_batch(records, lens, count, release, ctx).into())))
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
        push(s, || Ok(Payload::ProtoBatch(bytes_packed(data, len, lens, count, release, ctx)?.into())))
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
        push(s, || Ok(Payload::JsonBatch(bytes_packed(data, len, lens, count, release, ctx)?.into())))
    })
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

// ---------------------------------------------------------------------------------------------
// local server

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
