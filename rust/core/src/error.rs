//! Error type shared by the Rust API and the C ABI.

use std::fmt;

/// Stable error codes; the C ABI returns them negated (see `rust/ffi`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad argument from the caller (empty table name, oversize record, wrong record type ...).
    InvalidArgument = 1,
    /// The stream failed earlier with a non-retryable error or ran out of recovery attempts.
    StreamFailed = 2,
    /// The stream is closed (or closing) and takes no more records.
    StreamClosed = 3,
    /// Too many records in flight; wait for acks and retry.
    Backpressure = 4,
    /// The server rejected a request (gRPC status that is not retryable).
    Server = 5,
    /// Network / transport failure (retryable).
    Transport = 6,
    /// Authentication failed (token endpoint or UNAUTHENTICATED / PERMISSION_DENIED).
    Auth = 7,
    /// No ack within the configured ack timeout.
    Timeout = 8,
    /// A bug or unexpected state (including a caught panic).
    Internal = 9,
    /// The table does not exist.
    NotFound = 10,
}

impl ErrorCode {
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::StreamFailed => "STREAM_FAILED",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::Backpressure => "BACKPRESSURE",
            ErrorCode::Server => "SERVER_ERROR",
            ErrorCode::Transport => "TRANSPORT",
            ErrorCode::Auth => "AUTH",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::NotFound => "NOT_FOUND",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZerobusError {
    pub code: ErrorCode,
    pub message: String,
    /// Whether a new stream might succeed where this one failed.
    pub retryable: bool,
}

impl ZerobusError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retryable = matches!(code, ErrorCode::Transport | ErrorCode::Timeout | ErrorCode::Backpressure);
        ZerobusError { code, message: message.into(), retryable }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Maps a gRPC status to an error, deciding whether a new stream may help.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let msg = if status.message().is_empty() {
            format!("gRPC {:?}", status.code())
        } else {
            format!("gRPC {:?}: {}", status.code(), status.message())
        };
        let (code, retryable) = match status.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange | Code::AlreadyExists
            | Code::Unimplemented => (ErrorCode::Server, false),
            Code::NotFound => (ErrorCode::NotFound, false),
            Code::Unauthenticated | Code::PermissionDenied => (ErrorCode::Auth, false),
            Code::DeadlineExceeded => (ErrorCode::Timeout, true),
            Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown | Code::Internal
            | Code::ResourceExhausted | Code::DataLoss | Code::Ok => (ErrorCode::Transport, true),
        };
        ZerobusError { code, message: msg, retryable }
    }
}

impl fmt::Display for ZerobusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for ZerobusError {}

pub type Result<T, E = ZerobusError> = std::result::Result<T, E>;
