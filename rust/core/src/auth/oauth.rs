//! Request headers: OAuth client credentials (the default) or a caller-supplied provider.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{ErrorCode, Result, ZerobusError};

pub type Headers = Vec<(String, String)>;
pub type HeadersFuture = Pin<Box<dyn Future<Output = Result<Headers>> + Send>>;

/// Supplies the headers of each new physical stream (auth and any extra ones).
pub trait HeadersProvider: Send + Sync {
    fn headers(&self, table: &str) -> HeadersFuture;
}

/// Fixed headers, or a closure computing them.
pub struct FnHeaders<F>(pub F);

impl<F> HeadersProvider for FnHeaders<F>
where
    F: Fn(&str) -> Result<Headers> + Send + Sync,
{
    fn headers(&self, table: &str) -> HeadersFuture {
        let r = (self.0)(table);
        Box::pin(async move { r })
    }
}

/// OAuth 2.0 client credentials against `{unity_catalog_url}/oidc/v1/token`.
pub struct OAuthHeaders {
    pub unity_catalog_url: String,
    pub workspace_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl HeadersProvider for OAuthHeaders {
    fn headers(&self, table: &str) -> HeadersFuture {
        let req = self.token_request(table);
        Box::pin(async move {
            let token = fetch_token(req?).await?;
            Ok(vec![("authorization".to_string(), format!("Bearer {token}"))])
        })
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
        Ok(TokenRequest { url: format!("{}/oidc/v1/token", self.unity_catalog_url.trim_end_matches('/')), basic, body })
    }
}

async fn fetch_token(req: TokenRequest) -> Result<String> {
    let auth_err = |m: String| ZerobusError::new(ErrorCode::Auth, m);
    // Connecting may take at most 10 s; the whole fetch runs inside the stream's open timeout
    // (`recovery_timeout_ms`), so an endpoint that accepts and never answers cannot hang it.
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = hyper::Request::post(&req.url)
        .header("authorization", format!("Basic {}", req.basic))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", crate::USER_AGENT)
        .body(Full::new(bytes::Bytes::from(req.body)))
        .map_err(|e| ZerobusError::invalid(format!("bad token URL {}: {e}", req.url)))?;
    let resp = client.request(request).await.map_err(|e| {
        ZerobusError::new(ErrorCode::Transport, format!("token request to {} failed: {e}", req.url))
    })?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ZerobusError::new(ErrorCode::Transport, format!("token response: {e}")))?
        .to_bytes();
    if !status.is_success() {
        let err = auth_err(format!(
            "token endpoint {} answered {status}: {}",
            req.url,
            String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
        ));
        return Err(err.retryable(status.is_server_error()));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| auth_err(format!("token endpoint {} returned invalid JSON: {e}", req.url)))?;
    v.get("access_token")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| auth_err(format!("token endpoint {} returned no access_token", req.url)))
}

pub type SharedHeadersProvider = Arc<dyn HeadersProvider>;

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
        let o = OAuthHeaders { unity_catalog_url: "u".into(), workspace_id: "w".into(), client_id: "c".into(), client_secret: "s".into() };
        assert!(o.authorization_details("a.b").is_err());
        let d = o.authorization_details("c.s.t").unwrap();
        assert!(d.contains("\"c.s.t\"") && d.contains("MODIFY") && d.contains("USE SCHEMA"));
    }
}
