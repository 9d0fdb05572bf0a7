//! Fault injection (`POST /control/faults`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// A gRPC status to inject: standard code name (e.g. "UNAVAILABLE") and optional message.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusSpec {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailAfterRecords {
    pub records: u64,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseSignalAfterRecords {
    pub records: u64,
    pub duration_ms: u64,
}

/// One fault, as posted to `/control/faults`. It applies to the next `times` streams opened
/// (successful create_stream validation) after it was added, optionally only for `table`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_records: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withhold_acks: bool,
    /// Commit what arrives but never send the acks, as if they were lost on the way back: a
    /// client that replays then writes those records again (at-least-once delivery).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lose_acks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_create: Option<StatusSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after_records: Option<FailAfterRecords>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_signal_after_records: Option<CloseSignalAfterRecords>,
    /// Once this many records arrived, acknowledge `offset` (beyond what the client sent: a
    /// protocol violation), then go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_beyond: Option<AckBeyond>,
    /// After every acknowledgement, acknowledge offset 0 again (an ack that goes backwards).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ack_backwards: bool,
    /// Acknowledge offset 0 before confirming the stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ack_before_create: bool,
    /// Arrow Flight: each commit holds back its last batch's rows, so an ack's
    /// `ack_up_to_records` stays behind its `ack_up_to_offset`; held rows are written with the
    /// next commit, and dropped if the stream ends first (they were never durable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rows_behind: bool,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AckBeyond {
    pub records: u64,
    pub offset: i64,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// Checks code names and numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.times == 0 {
            return Err("times must be >= 1".to_string());
        }
        if let Some(s) = &self.fail_create {
            parse_code(&s.code)?;
        }
        if let Some(s) = &self.fail_after_records {
            parse_code(&s.code)?;
        }
        Ok(())
    }
}

/// Parses a standard gRPC code name ("UNAVAILABLE", case-insensitive) or number.
pub fn parse_code(name: &str) -> Result<Code, String> {
    let code = match name.trim().to_ascii_uppercase().as_str() {
        "OK" => Code::Ok,
        "CANCELLED" | "CANCELED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        other => match other.parse::<i32>() {
            Ok(n) if (0..=16).contains(&n) => Code::from_i32(n),
            _ => return Err(format!("unknown gRPC code name: {name:?}")),
        },
    };
    Ok(code)
}

fn status(code: &str, message: &Option<String>, default_message: &str) -> Status {
    let code = parse_code(code).unwrap_or(Code::Unknown);
    Status::new(
        code,
        message.clone().unwrap_or_else(|| default_message.to_string()),
    )
}

/// The faults in effect for one stream (all matching faults merged).
#[derive(Debug, Default)]
pub(crate) struct StreamFaults {
    pub drop_after_records: Option<u64>,
    pub ack_delay: Option<Duration>,
    pub withhold_acks: bool,
    pub lose_acks: bool,
    pub fail_create: Option<Status>,
    pub fail_after_records: Option<(u64, Status)>,
    pub close_signal_after_records: Option<(u64, Duration)>,
    pub ack_beyond: Option<AckBeyond>,
    pub ack_backwards: bool,
    pub ack_before_create: bool,
    pub rows_behind: bool,
}

impl StreamFaults {
    pub fn merge(&mut self, f: &FaultSpec) {
        if let Some(n) = f.drop_after_records {
            self.drop_after_records = Some(self.drop_after_records.map_or(n, |m| m.min(n)));
        }
        if let Some(ms) = f.ack_delay_ms {
            self.ack_delay = Some(Duration::from_millis(ms));
        }
        self.withhold_acks |= f.withhold_acks;
        self.lose_acks |= f.lose_acks;
        self.ack_backwards |= f.ack_backwards;
        self.ack_before_create |= f.ack_before_create;
        self.rows_behind |= f.rows_behind;
        if self.ack_beyond.is_none() {
            self.ack_beyond = f.ack_beyond;
        }
        if let Some(s) = &f.fail_create {
            if self.fail_create.is_none() {
                self.fail_create = Some(status(&s.code, &s.message, "injected fault: create_stream failed"));
            }
        }
        if let Some(s) = &f.fail_after_records {
            if self.fail_after_records.is_none() {
                self.fail_after_records = Some((
                    s.records,
                    status(&s.code, &s.message, "injected fault: stream failed"),
                ));
            }
        }
        if let Some(c) = &f.close_signal_after_records {
            if self.close_signal_after_records.is_none() {
                self.close_signal_after_records =
                    Some((c.records, Duration::from_millis(c.duration_ms)));
            }
        }
    }
}

/// A fault with its remaining number of streams.
#[derive(Debug)]
pub(crate) struct FaultEntry {
    pub spec: FaultSpec,
    pub remaining: u32,
}

/// Takes (consumes one use of) every fault matching `table`.
pub(crate) fn take_for_stream(entries: &mut Vec<FaultEntry>, table: &str) -> StreamFaults {
    let mut out = StreamFaults::default();
    for e in entries.iter_mut() {
        if e.remaining == 0 {
            continue;
        }
        if let Some(t) = &e.spec.table {
            if t != table {
                continue;
            }
        }
        e.remaining -= 1;
        out.merge(&e.spec);
    }
    entries.retain(|e| e.remaining > 0);
    out
}

/// JSON view of the remaining faults (`times` = remaining uses).
pub(crate) fn remaining_json(entries: &[FaultEntry]) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut spec = e.spec.clone();
                spec.times = e.remaining;
                serde_json::to_value(spec).unwrap_or(serde_json::Value::Null)
            })
            .collect(),
    )
}
