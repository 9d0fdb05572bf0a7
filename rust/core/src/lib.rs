//! zerobus-core: a zero-copy Databricks Zerobus ingestion client.
//!
//! Records are `bytes::Bytes` from ingest to the HTTP/2 layer: the landing zone kept for retry,
//! the sender and recovery replay all hold refcounted handles, never copies, and records of
//! 64 KiB or more are written to the socket from their own memory.

pub mod arrow;
pub mod auth;
pub mod batch;
pub mod codec;
pub mod error;
pub mod net;
pub mod payload;
pub mod pool;
pub mod sdk;
pub mod stream;

/// The Zerobus messages and gRPC server trait (generated, in the `zerobus-proto` crate).
pub use zerobus_proto::zerobus as proto;

pub use auth::{Headers, HeadersProvider};
pub use arrow_array::RecordBatch;
pub use arrow_schema::Schema as ArrowSchema;
pub use arrow_ipc;
pub use bytes::Bytes;
pub use batch::Batch;
pub use payload::Payload;
pub use error::{ErrorCode, Result, ZerobusError};
pub use proto::RecordType;
pub use net::{NetOptions, ProxySetting};
pub use sdk::{Auth, ZerobusSdk};
pub use stream::{check_limit, Limit, LogEvent, LogLevel, Progress, ProgressHook, Stats, StreamOptions, StreamState, TableProperties, ZerobusStream, LIMITS};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const USER_AGENT: &str = concat!("zerobus-bun/", env!("CARGO_PKG_VERSION"));
