//! OAuth 2.0 client credentials against `{unity_catalog_url}/oidc/v1/token`, with a token cache.
//!
//! Tokens are cached per process, keyed by (token URL, workspace, table, client id, secret):
//! reconnects and other streams of the same table reuse one token until it nears its expiry
//! (`expires_in`, refreshed when a quarter of its lifetime or 5 minutes, whichever is less, is
//! left). Concurrent opens of the same key wait for one fetch. When the server answers
//! UNAUTHENTICATED the cached token is dropped and the next open fetches a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};

use super::{Headers, HeadersFuture, HeadersProvider};
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::net::Network;

/// OAuth 2.0 client credentials against `{unity_catalog_url}/oidc/v1/token`.
pub struct OAuthHeaders {
    pub unity_catalog_url: String,
    pub workspace_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub net: Arc<Network>,
    fetched: Arc<AtomicU64>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    url: String,
    workspace_id: String,
    table: String,
    client_id: String,
    client_secret: String,
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// One cache entry: the token (a std lock, never held across an await) and a lock that makes
/// concurrent opens wait for one fetch.
#[derive(Default)]
struct SlotInner {
    cached: Mutex<Option<Cached>>,
    fetch: tokio::sync::Mutex<()>,
}

type Slot = Arc<SlotInner>;

impl SlotInner {
    fn fresh(&self) -> Option<String> {
        let c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        c.as_ref().filter(|c| Instant::now() < c.refresh_at).map(|c| c.token.clone())
    }
}

fn cache() -> &'static Mutex<HashMap<Key, Slot>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Slot>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// When to fetch again a token valid for `expires_in`: a quarter of its lifetime early, at most 5 minutes.
fn refresh_after(expires_in: Duration) -> Duration {
    expires_in - (expires_in / 4).min(Duration::from_secs(300))
}

impl OAuthHeaders {
    pub fn new(unity_catalog_url: String, workspace_id: String, client_id: String, client_secret: String, net: Arc<Network>) -> OAuthHeaders {
        OAuthHeaders { unity_catalog_url, workspace_id, client_id, client_secret, net, fetched: Arc::new(AtomicU64::new(0)) }
    }

    fn key(&self, table: &str) -> Key {
        Key {
            url: self.token_url(),
            workspace_id: self.workspace_id.clone(),
            table: table.to_string(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        }
    }

    fn slot(&self, table: &str) -> Slot {
        let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
        c.entry(self.key(table)).or_default().clone()
    }

    fn token_url(&self) -> String {
        format!("{}/oidc/v1/token", self.unity_catalog_url.trim_end_matches('/'))
    }
}

impl HeadersProvider for OAuthHeaders {
    fn headers(&self, table: &str) -> HeadersFuture {
        let req = self.token_request(table);
        let slot = self.slot(table);
        let net = self.net.clone();
        let fetched = self.fetched.clone();
        Box::pin(async move {
            let req = req?;
            let token = match slot.fresh() {
                Some(t) => t,
                None => {
                    let _one_fetch = slot.fetch.lock().await;
                    // Another open may have fetched while this one waited.
                    match slot.fresh() {
                        Some(t) => t,
                        None => {
                            let (token, expires_in) = fetch_token(&net, req).await?;
                            fetched.fetch_add(1, Ordering::Relaxed);
                            let refresh_at = Instant::now() + refresh_after(expires_in);
                            *slot.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached { token: token.clone(), refresh_at });
                            token
                        }
                    }
                }
            };
            Ok(vec![("authorization".to_string(), format!("Bearer {token}"))])
        })
    }

    /// Drops the cached token if it is the one the server refused (another stream may already
    /// have replaced it); asking again then fetches a new one, or returns the replacement.
    fn invalidate(&self, table: &str, refused: &Headers) -> bool {
        let refused_token = refused
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "));
        let slot = self.slot(table);
        let mut c = slot.cached.lock().unwrap_or_else(|p| p.into_inner());
        if c.as_ref().is_some_and(|c| Some(c.token.as_str()) == refused_token) {
            *c = None;
        }
        true
    }

    fn tokens_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

/// The workspace id is the first DNS label of the Zerobus endpoint host.
pub fn workspace_id_from_endpoint(endpoint: &str) -> String {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.split('.').next().unwrap_or("").to_string()
}

pub(crate) struct TokenRequest {
    url: String,
    basic: String,
    body: String,
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl OAuthHeaders {
    /// `authorization_details` granting what ingestion into `table` needs.
    pub fn authorization_details(&self, table: &str) -> Result<String> {
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(ZerobusError::invalid(format!(
                "table name must have three parts (catalog.schema.table), got {table:?}"
            )));
        }
        let (catalog, schema) = (parts[0], format!("{}.{}", parts[0], parts[1]));
        let details = serde_json::json!([
            {"type": "unity_catalog_privileges", "privileges": ["USE CATALOG"],
             "object_type": "CATALOG", "object_full_path": catalog},
            {"type": "unity_catalog_privileges", "privileges": ["USE SCHEMA"],
             "object_type": "SCHEMA", "object_full_path": schema},
            {"type": "unity_catalog_privileges", "privileges": ["SELECT", "MODIFY"],
             "object_type": "TABLE", "object_full_path": table},
        ]);
        Ok(details.to_string())
    }

    fn token_request(&self, table: &str) -> Result<TokenRequest> {
        let details = self.authorization_details(table)?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.client_secret));
        let body = format!(
            "grant_type=client_credentials&scope=all-apis&resource={}&authorization_details={}",
            form_encode(&format!("api://databricks/workspaces/{}/zerobusDirectWriteApi", self.workspace_id)),
            form_encode(&details)
        );
        Ok(TokenRequest { url: self.token_url(), basic, body })
    }
}

/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// The body's first `limit` bytes at most, and whether that is all of it.
async fn read_limited(mut body: hyper::body::Incoming, limit: usize) -> std::result::Result<(bytes::Bytes, bool), hyper::Error> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                out.extend_from_slice(&data[..limit - out.len()]);
                return Ok((out.freeze(), false));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((out.freeze(), true))
}

/// Fetches a token; returns it with its lifetime (`expires_in`, 1 hour when absent). 429 and 5xx
/// answers and connection failures are retryable (the stream retries with backoff); other
/// answers fail with `AUTH` and the endpoint's message.
async fn fetch_token(net: &Network, req: TokenRequest) -> Result<(String, Duration)> {
    let auth_err = |m: String| ZerobusError::new(ErrorCode::Auth, m);
    // The connection (and proxy tunnel) has the network's connect timeout; the whole fetch runs
    // inside the stream's open timeout (`recovery_timeout_ms`), so an endpoint that accepts and
    // never answers cannot hang it.
    let client = net.https_client()?;
    let request = hyper::Request::post(&req.url)
        .header("authorization", format!("Basic {}", req.basic))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", net.user_agent())
        .body(Full::new(bytes::Bytes::from(req.body)))
        .map_err(|e| ZerobusError::invalid(format!("bad token URL {}: {e}", req.url)))?;
    let resp = client.request(request).await.map_err(|e| {
        match crate::net::tls_certificate_problem(&e) {
            Some(m) => ZerobusError::new(ErrorCode::Transport, format!("token request to {}: {m}", req.url)).retryable(false),
            None => ZerobusError::new(ErrorCode::Transport, format!("token request to {} failed: {}", req.url, crate::net::chain(&e))),
        }
    })?;
    let status = resp.status();
    // A token response is a few KB: a body is not read past the limit (an endpoint that streams
    // without end cannot fill the memory). An error answer is judged by its status, with what of
    // its body fits.
    let (body, whole) = read_limited(resp.into_body(), MAX_TOKEN_RESPONSE)
        .await
        .map_err(|e| ZerobusError::new(ErrorCode::Transport, format!("token response from {}: {e}", req.url)))?;
    if !whole && status.is_success() {
        return Err(ZerobusError::new(
            ErrorCode::Transport,
            format!("token response from {}: more than {} KiB, which no token response needs", req.url, MAX_TOKEN_RESPONSE / 1024),
        ));
    }
    if !status.is_success() {
        let err = auth_err(format!(
            "token endpoint {} answered {status}: {}",
            req.url,
            String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
        ));
        return Err(err.retryable(status.is_server_error() || status.as_u16() == 429));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| auth_err(format!("token endpoint {} returned invalid JSON: {e}", req.url)))?;
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| auth_err(format!("token endpoint {} returned no access_token", req.url)))?;
    let expires_in = v.get("expires_in").and_then(|e| e.as_f64().or_else(|| e.as_str().and_then(|s| s.parse().ok())));
    let lifetime = match expires_in {
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s.min(86_400.0 * 365.0)),
        _ => Duration::from_secs(3600),
    };
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn workspace_id() {
        assert_eq!(workspace_id_from_endpoint("https://1234.zerobus.us-west-2.cloud.databricks.com"), "1234");
        assert_eq!(workspace_id_from_endpoint("http://127.0.0.1:50051"), "127");
        assert_eq!(workspace_id_from_endpoint("ws9.example.com:443"), "ws9");
    }
    #[test]
    fn details_need_three_parts() {
        let net = Arc::new(Network::new(Default::default()).unwrap());
        let o = OAuthHeaders::new("u".into(), "w".into(), "c".into(), "s".into(), net);
        assert!(o.authorization_details("a.b").is_err());
        let d = o.authorization_details("c.s.t").unwrap();
        assert!(d.contains("\"c.s.t\"") && d.contains("MODIFY") && d.contains("USE SCHEMA"));
    }
    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        assert_eq!(refresh_after(Duration::from_secs(3600)), Duration::from_secs(3300));
        assert_eq!(refresh_after(Duration::from_secs(4)), Duration::from_secs(3));
        assert_eq!(refresh_after(Duration::from_secs(0)), Duration::ZERO);
    }
}
