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

/// The Zerobus messages and gRPC server trait (`src/proto/databricks.zerobus.rs`, generated).
pub mod proto {
    include!("proto/databricks.zerobus.rs");

    #[cfg(test)]
    mod tests {
        /// FNV-1a 64 of the .proto, as recorded in the generated file's header.
        fn fnv1a(data: &[u8]) -> String {
            let mut h: u64 = 0xcbf29ce484222325;
            for b in data {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x100000001b3);
            }
            format!("{h:016x}")
        }

        #[test]
        fn generated_code_matches_the_proto() {
            let proto = include_bytes!("../../../proto/zerobus_service.proto");
            let generated = include_str!("proto/databricks.zerobus.rs");
            let want = format!("(FNV-1a 64 {})", fnv1a(proto));
            assert!(
                generated.lines().next().is_some_and(|l| l.contains(&want)),
                "proto/zerobus_service.proto changed: regenerate with `cargo run --manifest-path rust/tools/protogen/Cargo.toml`"
            );
        }
    }
}

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
