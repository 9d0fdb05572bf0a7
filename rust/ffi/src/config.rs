//! The JSON configuration of SDKs and streams: parsed, checked (numbers within each option's
//! range, one way to authenticate) and turned into the core crate's options.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use zerobus_core::{check_limit, Auth, LogLevel, NetOptions, ProxySetting, RecordType, StreamOptions, TableProperties, ZerobusError};

use crate::headers::JsHeaders;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SdkConfig {
    pub(crate) endpoint: String,
    #[serde(default)]
    pub(crate) unity_catalog_url: Option<String>,
    /// PEM CA certificates trusted besides the built-in roots and the OS store.
    #[serde(default)]
    ca_certificates: Option<String>,
    /// A proxy URL, `false` for none; absent: from the environment.
    #[serde(default)]
    proxy: Option<serde_json::Value>,
    #[serde(default)]
    application_name: Option<String>,
}

pub(crate) fn net_options(cfg: &SdkConfig) -> Result<NetOptions, ZerobusError> {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StreamConfig {
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
    pub(crate) headers_provider: bool,
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

pub(crate) fn stream_setup(
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
