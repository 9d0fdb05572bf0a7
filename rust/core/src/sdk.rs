//! Entry point: an SDK bound to one Zerobus endpoint, creating streams.

use std::sync::Arc;

use crate::auth::{workspace_id_from_endpoint, FnHeaders, Headers, OAuthHeaders, SharedHeadersProvider};
use crate::error::{Result, ZerobusError};
use crate::net::{endpoint_url, NetOptions, Network};
use crate::stream::{Connect, ProgressHook, StreamOptions, TableProperties, Wire, ZerobusStream};
use crate::RecordType;

/// How streams authenticate.
#[derive(Clone)]
pub enum Auth {
    /// OAuth client credentials against the Unity Catalog URL (the default for Databricks).
    OAuth { client_id: String, client_secret: String },
    /// Caller-supplied headers for each new physical stream (e.g. a static bearer token).
    Headers(SharedHeadersProvider),
}

impl Auth {
    /// Static headers sent on every stream.
    pub fn static_headers(headers: Headers) -> Auth {
        Auth::Headers(Arc::new(FnHeaders(move |_: &str| Ok(headers.clone()))))
    }
}

pub struct ZerobusSdk {
    endpoint: String,
    unity_catalog_url: Option<String>,
    net: Arc<Network>,
}

impl ZerobusSdk {
    /// `endpoint`: the Zerobus gRPC endpoint (`https://<workspace-id>.zerobus.<region>...`, or
    /// `http://host:port` for plaintext). `unity_catalog_url`: the workspace URL, needed for OAuth.
    pub fn new(endpoint: impl Into<String>, unity_catalog_url: Option<String>) -> Result<ZerobusSdk> {
        Self::with_options(endpoint, unity_catalog_url, NetOptions::default())
    }

    /// As [`ZerobusSdk::new`], with connection options (CA certificates, proxy, application name).
    pub fn with_options(endpoint: impl Into<String>, unity_catalog_url: Option<String>, net: NetOptions) -> Result<ZerobusSdk> {
        let endpoint = endpoint.into();
        endpoint_url(&endpoint)?;
        if let Some(u) = &unity_catalog_url {
            let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) || u.split_once("://").is_some_and(|(_, r)| r.is_empty()) {
                return Err(ZerobusError::invalid(format!("unity_catalog_url must be an https:// (or http://) URL, got {u:?}")));
            }
        }
        let net = Arc::new(Network::new(net)?);
        // A proxy from the environment that cannot be used fails here, naming the variable,
        // rather than every connection later.
        for url in std::iter::once(endpoint.as_str()).chain(unity_catalog_url.as_deref()) {
            net.check_proxy_for(url)?;
        }
        Ok(ZerobusSdk { endpoint, unity_catalog_url, net })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The connection settings (user agent, trusted roots, proxy).
    pub fn network(&self) -> &Network {
        &self.net
    }

    fn provider(&self, auth: Auth) -> Result<SharedHeadersProvider> {
        Ok(match auth {
            Auth::Headers(p) => p,
            Auth::OAuth { client_id, client_secret } => {
                let url = self.unity_catalog_url.clone().ok_or_else(|| {
                    ZerobusError::invalid("OAuth needs unity_catalog_url (the workspace URL)")
                })?;
                if client_id.is_empty() || client_secret.is_empty() {
                    return Err(ZerobusError::invalid("OAuth needs client_id and client_secret"));
                }
                Arc::new(OAuthHeaders::new(url, workspace_id_from_endpoint(&self.endpoint), client_id, client_secret, self.net.clone()))
            }
        })
    }

    /// Starts a stream in the background and returns it at once (call inside a tokio runtime).
    /// `hook` is called on every progress change (acks, state, failure).
    pub fn start_stream(
        &self,
        table: TableProperties,
        auth: Auth,
        opts: StreamOptions,
        hook: Option<ProgressHook>,
    ) -> Result<ZerobusStream> {
        self.start(table, Wire::Ephemeral, auth, opts, hook)
    }

    fn start(&self, table: TableProperties, wire: Wire, auth: Auth, opts: StreamOptions, hook: Option<ProgressHook>) -> Result<ZerobusStream> {
        let provider = self.provider(auth)?;
        // Each physical stream makes its own channel; this one only checks the settings (TLS).
        self.net.channel(&self.endpoint, None, std::time::Duration::from_secs(60))?;
        let connect = Connect { net: self.net.clone(), endpoint: self.endpoint.clone() };
        ZerobusStream::start(connect, table, wire, provider, opts, hook)
    }

    /// Starts an Arrow stream (Arrow Flight `DoPut`) in the background and returns it at once.
    /// Batches must match `schema`. `opts.max_inflight_records` counts rows. Dictionary columns
    /// are sent expanded to their value type unless `opts.keep_dictionaries`.
    pub fn start_arrow_stream(
        &self,
        table_name: impl Into<String>,
        schema: Arc<arrow_schema::Schema>,
        auth: Auth,
        opts: StreamOptions,
        hook: Option<ProgressHook>,
    ) -> Result<ZerobusStream> {
        let table = TableProperties { table_name: table_name.into(), record_type: RecordType::Unspecified, descriptor_proto: None };
        let schema = Arc::new(crate::arrow::StreamSchema::expanding(schema, opts.keep_dictionaries)?.compressed(opts.arrow_compression));
        self.start(table, Wire::Flight(schema), auth, opts, hook)
    }

    /// Creates an Arrow stream and waits until the server accepted it.
    pub async fn create_arrow_stream(
        &self,
        table_name: impl Into<String>,
        schema: Arc<arrow_schema::Schema>,
        auth: Auth,
        opts: StreamOptions,
    ) -> Result<ZerobusStream> {
        let stream = self.start_arrow_stream(table_name, schema, auth, opts, None)?;
        stream.wait_open().await?;
        Ok(stream)
    }

    /// Creates a stream and waits until the server accepted it.
    pub async fn create_stream(&self, table: TableProperties, auth: Auth, opts: StreamOptions) -> Result<ZerobusStream> {
        let stream = self.start_stream(table, auth, opts, None)?;
        stream.wait_open().await?;
        Ok(stream)
    }
}
