//! Connections to the Zerobus endpoint and to the token endpoint: which certificate authorities
//! are trusted ([`tls`]), which proxy is used ([`proxy`]), the user agent, the endpoint's URL and
//! what connection errors mean ([`transport`]).

mod link;
mod proxy;
mod tls;
pub(crate) mod transport;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::error::{Result, ZerobusError};
pub use link::{Meter, ResetOnDrop, PROGRESS_BYTES};
pub use proxy::{no_proxy_matches, redact, Connector, Proxy, ProxySetting};
pub use tls::{parse_pem, Trust};
pub(crate) use transport::{chain, endpoint_url, tls_certificate_problem};

/// Silence from the server after which an HTTP/2 keepalive ping is sent.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How an SDK's connections are made.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// PEM CA certificates trusted in addition to the built-in roots and the OS store.
    pub ca_certificates_pem: Option<Vec<u8>>,
    pub proxy: ProxySetting,
    /// Appended to the user agent (`zerobus-bun/<version> <application name>`).
    pub application_name: Option<String>,
    /// Time allowed for a TCP connection (and proxy tunnel) to be established.
    pub connect_timeout: Duration,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions { ca_certificates_pem: None, proxy: ProxySetting::FromEnv, application_name: None, connect_timeout: Duration::from_secs(10) }
    }
}

/// The connection settings of one SDK; the trusted roots are loaded on the first TLS connection.
pub struct Network {
    extra_pem: Option<Vec<u8>>,
    trust: OnceLock<std::result::Result<Trust, ZerobusError>>,
    proxy: Arc<ProxySetting>,
    user_agent: Arc<str>,
    connect_timeout: Duration,
}

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<Connector>, Full<bytes::Bytes>>;

impl Network {
    /// Checks the options (CA PEM, proxy URL, application name) and keeps them.
    pub fn new(opts: NetOptions) -> Result<Network> {
        if let Some(pem) = &opts.ca_certificates_pem {
            parse_pem(pem)?;
        }
        if let ProxySetting::Url(u) = &opts.proxy {
            Proxy::parse(u)?;
        }
        let mut user_agent = crate::USER_AGENT.to_string();
        if let Some(name) = &opts.application_name {
            if name.is_empty() || name.len() > 200 || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(ZerobusError::invalid(format!(
                    "applicationName must be 1 to 200 printable ASCII characters, got {name:?}"
                )));
            }
            user_agent.push(' ');
            user_agent.push_str(name);
        }
        Ok(Network {
            extra_pem: opts.ca_certificates_pem,
            trust: OnceLock::new(),
            proxy: Arc::new(opts.proxy),
            user_agent: user_agent.into(),
            connect_timeout: opts.connect_timeout,
        })
    }

    /// Checks that the proxy `url` would use (if any) is usable.
    pub fn check_proxy_for(&self, url: &str) -> Result<()> {
        let uri: Option<hyper::Uri> = endpoint_url(url).ok().and_then(|u| u.parse().ok());
        match uri.as_ref().and_then(proxy::target) {
            Some((https, host, port)) => self.proxy.proxy_for(https, host, port).map(|_| ()),
            None => Ok(()), // the URL itself is checked elsewhere
        }
    }

    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Built-in roots + OS store + the caller's CAs (loaded once).
    pub fn trust(&self) -> Result<&Trust> {
        self.trust.get_or_init(|| Trust::load(self.extra_pem.as_deref())).as_ref().map_err(Clone::clone)
    }

    /// TCP connections, through the proxy when one applies, reporting to `meter`.
    pub fn connector(&self, meter: Option<Arc<Meter>>) -> Connector {
        Connector { proxy: self.proxy.clone(), connect_timeout: self.connect_timeout, user_agent: self.user_agent.clone(), meter }
    }

    /// An HTTP/2 channel to a Zerobus endpoint (connects lazily), whose socket reports to
    /// `meter`. Each physical stream has a channel, so a connection of its own: a stream that
    /// gives up on one (ack or creation timeout) reopens on a new connection, never on the dead
    /// one. HTTP/2 keepalive finds a dead connection within [`KEEPALIVE_INTERVAL`] +
    /// `keepalive_timeout`: a ping after that long without a frame from the server, and the
    /// connection closed when its answer does not come in time. A ping waits behind the bytes
    /// queued before it, so a stream passes its ack timeout here: keepalive never gives up on a
    /// slow link sooner than the ack timeout would.
    pub fn channel(&self, endpoint: &str, meter: Option<Arc<Meter>>, keepalive_timeout: Duration) -> Result<Channel> {
        let url = endpoint_url(endpoint)?;
        let mut ep = Endpoint::from_shared(url.clone())
            .map_err(|e| ZerobusError::invalid(format!("invalid endpoint {endpoint:?}: {e}")))?
            .user_agent(self.user_agent.as_ref())
            .map_err(|e| ZerobusError::invalid(format!("user agent: {e}")))?
            .initial_stream_window_size(Some(16 * 1024 * 1024))
            .initial_connection_window_size(Some(32 * 1024 * 1024))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(keepalive_timeout)
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let trust = self.trust()?;
            let tls = ClientTlsConfig::new().trust_anchors(trust.roots.roots.iter().cloned());
            ep = ep.tls_config(tls).map_err(|e| ZerobusError::invalid(format!("TLS config: {e}")))?;
        }
        Ok(ep.connect_with_connector_lazy(self.connector(meter)))
    }

    /// An HTTP/1.1 client (https or http) for the token endpoint.
    pub fn https_client(&self) -> Result<HttpsClient> {
        let tls = self.trust()?.client_config(&[])?; // hyper-rustls sets ALPN itself
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(self.connector(None));
        Ok(Client::builder(TokioExecutor::new()).build(https))
    }
}
