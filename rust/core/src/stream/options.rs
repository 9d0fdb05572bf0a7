//! Stream options, their documented defaults and the ranges they must lie in.

use std::ops::RangeInclusive;

use crate::error::{Result, ZerobusError};

/// Tuning and limits of one stream. `Default` gives the documented defaults; [`StreamOptions::validate`]
/// refuses values outside [`LIMITS`].
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Records sent but not yet acknowledged, at most (default 1,000,000).
    pub max_inflight_records: usize,
    /// Record bytes sent but not yet acknowledged, at most (default 256 MiB). Zero-copy means
    /// these bytes are the caller's buffers, kept alive until acknowledged; this bounds them.
    pub max_inflight_bytes: usize,
    /// Reconnect and replay on retryable failures (default true).
    pub recovery: bool,
    /// Physical streams in a row that may fail without progress before the stream fails (default 4).
    pub recovery_retries: u32,
    /// Pause between attempts (default 500 ms).
    pub recovery_backoff_ms: u64,
    /// Time allowed to open a stream: token, connection and create response (default 15 s).
    pub recovery_timeout_ms: u64,
    /// A request sent this long ago is still not acknowledged: the stream is treated as broken
    /// (default 60 s). Counted from the send of the oldest unacknowledged request.
    pub server_lack_of_ack_timeout_ms: u64,
    /// `flush` / `close` give up after this long (default 300 s).
    pub flush_timeout_ms: u64,
    /// An ingest that waits for capacity (in-flight limits reached) gives up after this long
    /// with `Timeout` (default 60 s).
    pub submit_timeout_ms: u64,
    /// Largest record accepted by `ingest_*` (default 10 MiB).
    pub max_record_bytes: usize,
    /// After a CloseStreamSignal, how long to keep collecting acks on the closing stream before
    /// moving to a new one: `None` (default) waits the duration the server announced, `Some(0)`
    /// moves at once (replaying everything unacknowledged), `Some(ms)` waits at most that. Never
    /// longer than `server_lack_of_ack_timeout_ms`.
    pub stream_paused_max_wait_time_ms: Option<u64>,
    /// Events at or above this level are queued for the caller's logger (`None`, the default:
    /// none are).
    pub log_level: Option<super::LogLevel>,
    /// Largest gRPC message sent (see [`StreamOptions::message_limit`]). `None`: 2 MiB for Arrow
    /// streams (what the official SDK sends), `max_record_bytes` + 64 KiB for JSON/protobuf.
    pub max_message_bytes: Option<usize>,
    /// Arrow streams: send dictionary-encoded columns as they are instead of expanded to their
    /// value type (the default, as the official SDKs do).
    pub keep_dictionaries: bool,
    /// Arrow streams: compress every batch's IPC body (LZ4 frame or ZSTD); batches are then
    /// encoded here, IPC bytes decoded first. None: sent as they come.
    pub arrow_compression: Option<arrow_ipc::CompressionType>,
}

/// Bytes of a request message that are not record bytes, at most: the request and batch
/// framing, and per record a field tag and length (JSON/protobuf), or FlightData fields and
/// app_metadata (Arrow).
pub(crate) const MESSAGE_OVERHEAD: usize = 1024;
pub(crate) const PER_RECORD_OVERHEAD: usize = 8;

impl StreamOptions {
    /// The largest message this stream sends: `max_message_bytes`, or its default by kind.
    pub fn message_limit(&self, arrow: bool) -> usize {
        self.max_message_bytes.unwrap_or(if arrow { 2 * 1024 * 1024 } else { self.max_record_bytes + 64 * 1024 })
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_inflight_records: 1_000_000,
            max_inflight_bytes: 256 * 1024 * 1024,
            recovery: true,
            recovery_retries: 4,
            recovery_backoff_ms: 500,
            recovery_timeout_ms: 15_000,
            server_lack_of_ack_timeout_ms: 60_000,
            flush_timeout_ms: 300_000,
            submit_timeout_ms: 60_000,
            max_record_bytes: 10 * 1024 * 1024,
            stream_paused_max_wait_time_ms: None,
            log_level: None,
            max_message_bytes: None,
            keep_dictionaries: false,
            arrow_compression: None,
        }
    }
}

/// One numeric option: its names (Rust, and camelCase as the SDKs spell it) and allowed range.
pub struct Limit {
    pub name: &'static str,
    pub camel: &'static str,
    pub range: RangeInclusive<u64>,
}

const MAX_MS: u64 = i32::MAX as u64;

/// Allowed ranges. Times are whole milliseconds up to 2^31-1 (what JavaScript timers take); the
/// minimums keep a stream from turning a slow server into a reconnect storm.
pub const LIMITS: [Limit; 11] = [
    Limit { name: "max_inflight_records", camel: "maxInflightRecords", range: 1..=MAX_MS },
    Limit { name: "max_inflight_bytes", camel: "maxInflightBytes", range: 1..=(1 << 40) },
    Limit { name: "recovery_retries", camel: "recoveryRetries", range: 0..=1000 },
    Limit { name: "recovery_backoff_ms", camel: "recoveryBackoffMs", range: 10..=MAX_MS },
    Limit { name: "recovery_timeout_ms", camel: "recoveryTimeoutMs", range: 100..=MAX_MS },
    Limit { name: "server_lack_of_ack_timeout_ms", camel: "serverLackOfAckTimeoutMs", range: 1000..=MAX_MS },
    Limit { name: "flush_timeout_ms", camel: "flushTimeoutMs", range: 100..=MAX_MS },
    Limit { name: "submit_timeout_ms", camel: "submitTimeoutMs", range: 100..=MAX_MS },
    Limit { name: "max_record_bytes", camel: "maxRecordBytes", range: 1..=MAX_MS },
    Limit { name: "stream_paused_max_wait_time_ms", camel: "streamPausedMaxWaitTimeMs", range: 0..=MAX_MS },
    Limit { name: "max_message_bytes", camel: "maxMessageBytes", range: 4096..=MAX_MS },
];

/// The limit of the option named `name` (Rust or camelCase spelling).
pub fn limit(name: &str) -> &'static Limit {
    LIMITS.iter().find(|l| l.name == name || l.camel == name).expect("known option")
}

/// Checks `value` against the option's range (a whole number within it) and returns it;
/// `camel` picks the spelling used in the message.
pub fn check_limit(name: &str, value: f64, camel: bool) -> Result<u64> {
    let l = limit(name);
    let (lo, hi) = (*l.range.start(), *l.range.end());
    if value.is_finite() && value.fract() == 0.0 && value >= lo as f64 && value <= hi as f64 {
        return Ok(value as u64);
    }
    Err(ZerobusError::invalid(format!(
        "{} must be a whole number from {lo} to {hi}, got {value}",
        if camel { l.camel } else { l.name }
    )))
}

impl StreamOptions {
    /// Refuses values outside [`LIMITS`].
    pub fn validate(&self) -> Result<()> {
        let values: [(&str, u64); 11] = [
            ("max_inflight_records", self.max_inflight_records as u64),
            ("max_inflight_bytes", self.max_inflight_bytes as u64),
            ("recovery_retries", self.recovery_retries as u64),
            ("recovery_backoff_ms", self.recovery_backoff_ms),
            ("recovery_timeout_ms", self.recovery_timeout_ms),
            ("server_lack_of_ack_timeout_ms", self.server_lack_of_ack_timeout_ms),
            ("flush_timeout_ms", self.flush_timeout_ms),
            ("submit_timeout_ms", self.submit_timeout_ms),
            ("max_record_bytes", self.max_record_bytes as u64),
            ("stream_paused_max_wait_time_ms", self.stream_paused_max_wait_time_ms.unwrap_or(0)),
            ("max_message_bytes", self.max_message_bytes.unwrap_or(4096) as u64),
        ];
        values.iter().try_for_each(|(name, v)| check_limit(name, *v as f64, false).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_refused() {
        StreamOptions::default().validate().unwrap();
        let bad = [
            StreamOptions { server_lack_of_ack_timeout_ms: 10, ..Default::default() },
            StreamOptions { server_lack_of_ack_timeout_ms: 0, ..Default::default() },
            StreamOptions { recovery_backoff_ms: 0, ..Default::default() },
            StreamOptions { flush_timeout_ms: 1 << 31, ..Default::default() },
            StreamOptions { max_inflight_records: 0, ..Default::default() },
            StreamOptions { max_inflight_bytes: 0, ..Default::default() },
        ];
        for o in bad {
            let e = o.validate().unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
            assert!(e.message.contains("must be a whole number"), "{}", e.message);
        }
        let e = check_limit("serverLackOfAckTimeoutMs", 10.0, true).unwrap_err();
        assert_eq!(e.message, "serverLackOfAckTimeoutMs must be a whole number from 1000 to 2147483647, got 10");
        for v in [f64::NAN, -1.0, 1500.5, 1e300] {
            assert!(check_limit("serverLackOfAckTimeoutMs", v, true).is_err(), "{v}");
        }
        assert_eq!(check_limit("recoveryRetries", 0.0, true).unwrap(), 0);
    }
}
