//! `zerobus-local`: a local Databricks Zerobus server for tests, demos and benchmarks.
//!
//! One port serves both the gRPC service (`databricks.zerobus.Zerobus/EphemeralStream`, h2c or
//! TLS) and plain HTTP/1.1 + HTTP/2 endpoints:
//! - `POST /oidc/v1/token`: OAuth client-credentials token endpoint.
//! - `/control/*`: JSON control API (register tables, inject faults, read stats, reset).
//!
//! Committed records are appended to `<data_dir>/<table>.jsonl`, one compact JSON object per
//! line, in commit order. A commit is what the durability ack acknowledges.
//!
//! ## Arrow Flight ingestion
//!
//! The same port also serves `arrow.flight.protocol.FlightService`; only `DoPut` is
//! implemented (every other method returns UNIMPLEMENTED). Same headers and auth rules as
//! `EphemeralStream`. One DoPut call is one stream on one table:
//! - first FlightData: `data_header` = Arrow IPC Schema message (flatbuffer bytes, no
//!   continuation marker), empty body. The table is named by the
//!   `x-databricks-zerobus-table-name` header (the official client sends no descriptor); an
//!   optional `flight_descriptor` PATH `[table]` must agree with it. Faults are taken at this
//!   point; errors: INVALID_ARGUMENT (no table / bad name / not a Schema),
//!   NOT_FOUND (unknown table unless `autoCreateTables`), UNAUTHENTICATED.
//! - the server answers a "ready" PutResult, app_metadata
//!   `{"ack_up_to_offset":-1,"ack_up_to_records":0,"close_stream_duration_ms":null}`.
//! - then DictionaryBatch messages (app_metadata ignored; delta dictionaries are applied) and
//!   RecordBatch messages with app_metadata `{"offset_id":N}`, N = 0, 1, 2, ... per stream.
//!   IPC bodies may be LZ4_FRAME or ZSTD compressed. A FlightData above 64 MiB (header + body),
//!   a wrong offset or an undecodable/mismatching batch commits and acks what came before,
//!   then ends the stream with INVALID_ARGUMENT naming the offset.
//! - each commit is acked with a PutResult, app_metadata
//!   `{"ack_up_to_offset":N,"ack_up_to_records":R,"close_stream_duration_ms":null}` (N = last
//!   committed offset, R = rows committed on this stream). The close-signal fault sends the
//!   current ack with `close_stream_duration_ms` set, then ends the stream (OK) after that time.
//!
//! Rows are appended to the same `<table>.jsonl` file as JSON objects (column names as keys,
//! explicit nulls; see `rows_json` for how each Arrow type is written). Row-count faults and `committedRecords` count rows.

mod admit;
mod faults;
mod flight;
mod http_api;
mod pipeline;
mod records;
mod request;
mod rows_json;
mod server;
mod state;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{FaultSpec, StatusSpec};

/// The part of Arrow Flight's protocol the server speaks (DoPut; generated, in the `zerobus-proto`
/// crate); the client half is for tests and tools.
pub use zerobus_proto::flight as flight_proto;

/// Server configuration. Deserializable from camelCase JSON (missing fields take defaults).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerConfig {
    /// Host/IP to bind (default "127.0.0.1").
    pub host: String,
    /// Port to bind; 0 = ephemeral.
    pub port: u16,
    /// Directory for the table files (default "./.zerobus-data").
    pub data_dir: PathBuf,
    /// Pre-registered tables (catalog.schema.table).
    pub tables: Vec<String>,
    /// When false (default), create_stream on an unknown table fails with NOT_FOUND.
    pub auto_create_tables: bool,
    /// Maximum size of one record in bytes (default 10 MiB).
    pub max_record_bytes: usize,
    /// fsync the table file before acking (default true).
    pub fsync: bool,
    /// Benchmark mode: acknowledge records after checking framing, offsets, size and record type,
    /// without converting or storing them (default false).
    pub discard: bool,
    /// PEM certificate chain file; with `tls_key_pem`, serve TLS instead of plaintext h2c.
    pub tls_cert_pem: Option<String>,
    /// PEM private key file.
    pub tls_key_pem: Option<String>,
    /// When set (with `client_secret`), the token endpoint checks HTTP basic auth and gRPC calls
    /// require `authorization: Bearer <issued token>`.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Largest FlightData message (data_header + data_body) accepted (default 4 MiB, gRPC's
    /// usual message limit); larger ones fail the DoPut with INVALID_ARGUMENT. Ephemeral-stream
    /// requests may be at most `max_record_bytes` + 64 KiB.
    pub max_message_bytes: usize,
    /// Lifetime of issued tokens in seconds (`expires_in`; default 3600). Streams opened with an
    /// expired token are refused with UNAUTHENTICATED.
    pub token_ttl_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_string(),
            port: 0,
            data_dir: PathBuf::from("./.zerobus-data"),
            tables: Vec::new(),
            auto_create_tables: false,
            max_record_bytes: 10 * 1024 * 1024,
            fsync: true,
            discard: false,
            tls_cert_pem: None,
            tls_key_pem: None,
            client_id: None,
            client_secret: None,
            token_ttl_secs: 3600,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A running server. Dropping it without calling [`LocalServer::shutdown`] also stops it
/// (abruptly).
pub struct LocalServer {
    addr: SocketAddr,
    url: String,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LocalServer {
    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:50051` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Graceful stop: stops accepting connections, ends open streams with UNAVAILABLE
    /// ("server shutting down", uncommitted records discarded), lets connections drain for up to
    /// 5 seconds, then closes everything.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Bind and start serving. Returns once the listener is bound.
pub async fn start(config: ServerConfig) -> Result<LocalServer, String> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(state::State::new(config.clone(), shutdown_rx.clone())?);
    let tls = match (&config.tls_cert_pem, &config.tls_key_pem) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err("tlsCertPem and tlsKeyPem must be set together".to_string()),
    };
    let bind_host = if config.host.contains(':') && !config.host.starts_with('[') {
        format!("[{}]", config.host)
    } else {
        config.host.clone()
    };
    let listener = tokio::net::TcpListener::bind(format!("{bind_host}:{}", config.port))
        .await
        .map_err(|e| format!("cannot bind {bind_host}:{}: {e}", config.port))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read bound address: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url_host = if addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            "127.0.0.1".to_string()
        } else {
            "[::1]".to_string()
        }
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let url = format!("{scheme}://{url_host}:{}", addr.port());
    let task = tokio::spawn(server::serve(listener, tls, state, shutdown_rx));
    Ok(LocalServer {
        addr,
        url,
        shutdown_tx,
        task: Some(task),
    })
}
