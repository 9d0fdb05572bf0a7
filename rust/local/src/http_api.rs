//! Plain HTTP endpoints: OAuth token endpoint and the JSON control API.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::faults::FaultSpec;
use crate::state::State;

pub(crate) type Body = tonic::body::Body;

const MAX_BODY: usize = 4 * 1024 * 1024;

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(Full::new(bytes)))
        .unwrap()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    respond(status, json!({ "error": msg.into() }))
}

#[allow(clippy::result_large_err)]
async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))),
    }
}

#[allow(clippy::result_large_err)]
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Response<Body>> {
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/');
    let result = match (&parts.method, path) {
        (&Method::POST, "/oidc/v1/token") => token(&state, &parts.headers, body).await,
        (&Method::GET, "/control/stats") => Ok(respond(StatusCode::OK, state.stats_json())),
        (&Method::GET, "/control/tables") => {
            Ok(respond(StatusCode::OK, json!({ "tables": state.table_names() })))
        }
        (&Method::POST, "/control/tables") => add_table(&state, body).await,
        (&Method::GET, "/control/faults") => {
            Ok(respond(StatusCode::OK, json!({ "faults": state.faults_json() })))
        }
        (&Method::POST, "/control/faults") => add_fault(&state, body).await,
        (&Method::POST, "/control/token-faults") => add_token_faults(&state, body).await,
        (&Method::DELETE, "/control/tokens") => {
            state.revoke_tokens();
            Ok(respond(StatusCode::OK, json!({ "ok": true })))
        }
        (&Method::DELETE, "/control/faults") => {
            state.clear_faults();
            Ok(respond(StatusCode::OK, json!({ "ok": true })))
        }
        (&Method::POST, "/control/reset") => {
            state.reset();
            Ok(respond(StatusCode::OK, json!({ "ok": true })))
        }
        (&Method::GET, "/healthz") | (&Method::GET, "") => {
            Ok(respond(StatusCode::OK, json!({ "ok": true, "service": "zerobus-local" })))
        }
        (_, "/oidc/v1/token" | "/control/stats" | "/control/tables" | "/control/faults" | "/control/token-faults" | "/control/tokens" | "/control/reset") => {
            Ok(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"))
        }
        _ => Ok(error(StatusCode::NOT_FOUND, format!("no route for {} {}", parts.method, parts.uri.path()))),
    };
    result.unwrap_or_else(|r| r)
}

async fn add_table(state: &State, body: Incoming) -> Result<Response<Body>, Response<Body>> {
    #[derive(serde::Deserialize)]
    struct AddTable {
        name: String,
    }
    let bytes = read_body(body).await?;
    let req: AddTable = parse_json(&bytes)?;
    match state.register_table(&req.name) {
        Ok((table, created)) => Ok(respond(
            StatusCode::OK,
            json!({ "name": table.name, "created": created, "path": table.path.display().to_string() }),
        )),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// `{"statuses": [503, 429, 401]}`: the next token requests answer with these HTTP statuses.
async fn add_token_faults(state: &State, body: Incoming) -> Result<Response<Body>, Response<Body>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TokenFaults {
        statuses: Vec<u16>,
    }
    let bytes = read_body(body).await?;
    let req: TokenFaults = parse_json(&bytes)?;
    if let Some(bad) = req.statuses.iter().find(|s| !(400..=599).contains(*s)) {
        return Err(error(StatusCode::BAD_REQUEST, format!("token fault statuses must be 400..599, got {bad}")));
    }
    state.add_token_errors(&req.statuses);
    Ok(respond(StatusCode::OK, json!({ "ok": true })))
}

async fn add_fault(state: &State, body: Incoming) -> Result<Response<Body>, Response<Body>> {
    let bytes = read_body(body).await?;
    let spec: FaultSpec = parse_json(&bytes)?;
    state.add_fault(spec).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok(respond(StatusCode::OK, json!({ "ok": true, "faults": state.faults_json() })))
}

fn unauthorized(msg: &str) -> Response<Body> {
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "invalid_client", "error_description": msg }),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"zerobus-local\""),
    );
    r
}

async fn token(
    state: &State,
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, Response<Body>> {
    let bytes = read_body(body).await?;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        respond(
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_request", "error_description": format!("bad form body: {e}") }),
        )
    })?;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(details) = field("authorization_details") {
        state.set_authorization_details(details.to_string());
    }
    if field("grant_type") != Some("client_credentials") {
        return Err(respond(
            StatusCode::BAD_REQUEST,
            json!({ "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials" }),
        ));
    }
    // Credentials from HTTP basic auth, else from the form.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    let creds = basic.or_else(|| {
        Some((field("client_id")?.to_string(), field("client_secret")?.to_string()))
    });
    if let (Some(id), Some(secret)) = (&state.config.client_id, &state.config.client_secret) {
        match &creds {
            None => return Err(unauthorized("missing client credentials (HTTP basic auth)")),
            Some((i, s)) if i != id || s != secret => {
                return Err(unauthorized("invalid client credentials"))
            }
            Some(_) => {}
        }
    }
    if let Some(status) = state.take_token_error() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        state.count_token_request();
        return Err(respond(status, json!({ "error": "injected", "error_description": format!("injected token fault {status}") })));
    }
    let token = state.issue_token();
    Ok(respond(
        StatusCode::OK,
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.config.token_ttl_secs,
            "scope": field("scope").unwrap_or("all-apis"),
        }),
    ))
}
