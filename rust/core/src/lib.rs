//! zerobus-core: a zero-copy Databricks Zerobus ingestion client.
//!
//! Records are `bytes::Bytes` from ingest to the gRPC encoder: the landing zone kept for retry,
//! the sender and recovery replay all hold refcounted handles, never copies.

pub mod arrow;
pub mod auth;
pub mod codec;
pub mod error;
pub mod net;
pub mod sdk;
pub mod stream;

pub mod proto {
    tonic::include_proto!("databricks.zerobus");
}

pub use auth::{Headers, HeadersProvider};
pub use arrow_array::RecordBatch;
pub use arrow_schema::Schema as ArrowSchema;
pub use bytes::Bytes;
pub use codec::Payload;
pub use error::{ErrorCode, Result, ZerobusError};
pub use proto::RecordType;
pub use net::{NetOptions, ProxySetting};
pub use sdk::{Auth, ZerobusSdk};
pub use stream::{check_limit, Limit, LogEvent, LogLevel, Progress, ProgressHook, Stats, StreamOptions, StreamState, TableProperties, ZerobusStream, LIMITS};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const USER_AGENT: &str = concat!("zerobus-bun/", env!("CARGO_PKG_VERSION"));
