//! Admitting a stream (EphemeralStream and DoPut alike): the call's headers, the bearer token,
//! the table header and the table itself, the first message, and counting the stream as refused
//! or opened.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::state::{State, Table};

/// Headers of the call that matter to us (EphemeralStream and DoPut).
pub(crate) struct CallHeaders {
    pub table_name: Option<String>,
    pub authorization: Option<String>,
}

impl CallHeaders {
    /// Reads them from a call, and records its user-agent.
    pub fn read(state: &State, md: &tonic::metadata::MetadataMap) -> Self {
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        state.set_user_agent(get("user-agent"));
        CallHeaders { table_name: get("x-databricks-zerobus-table-name"), authorization: get("authorization") }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

/// Checks the bearer token when auth is configured.
pub(crate) fn check_auth(state: &State, authorization: Option<&str>) -> Result<(), Status> {
    if state.auth_required() {
        let token = authorization.and_then(|v| {
            let (scheme, tok) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim())
        });
        match token {
            None => return Err(Status::unauthenticated("missing bearer token (authorization header)")),
            Some(t) => state.check_token(t).map_err(Status::unauthenticated)?,
        }
    }
    Ok(())
}

/// Checks the x-databricks-zerobus-table-name header against the requested table.
pub(crate) fn check_table_header(header: Option<&str>, table_name: &str, what: &str) -> Result<(), Status> {
    if let Some(h) = header {
        if h != table_name {
            return Err(invalid(format!(
                "header x-databricks-zerobus-table-name ({h}) does not match {what} ({table_name})"
            )));
        }
    }
    Ok(())
}

/// Looks a table up (NOT_FOUND unless auto-create is on).
pub(crate) fn resolve_table(state: &State, table_name: &str) -> Result<Arc<Table>, Status> {
    match state.table(table_name) {
        Some(t) => Ok(t),
        None if state.config.auto_create_tables => Ok(state.register_table(table_name).map_err(Status::internal)?.0),
        None => Err(Status::not_found(format!("table {table_name} not found"))),
    }
}

/// A stream's first message; None when the client went away or ended, or when the server shuts
/// down first (then the client is told).
pub(crate) async fn first_message<M, O>(
    state: &State,
    inbound: &mut Streaming<M>,
    tx: &mpsc::Sender<Result<O, Status>>,
) -> Option<M> {
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        m = inbound.next() => match m? {
            Ok(m) => Some(m),
            // A message the server cannot decode (or the transport failed): the client is told
            // why, when it is still there to hear it.
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                None
            }
        },
        _ = crate::state::shutdown_requested(&mut shutdown) => {
            let _ = tx.send(Err(Status::unavailable("server shutting down"))).await;
            None
        }
    }
}

/// Refuses a stream at setup.
pub(crate) async fn refuse<O>(state: &State, tx: &mpsc::Sender<Result<O, Status>>, status: Status) {
    state.create_failures.fetch_add(1, Ordering::Relaxed);
    let _ = tx.send(Err(status)).await;
}

/// Counts a stream as opened and sends the message that accepts it; false (no longer active) when
/// the client is gone.
pub(crate) async fn accept<O>(state: &State, tx: &mpsc::Sender<Result<O, Status>>, msg: O) -> bool {
    state.streams_opened.fetch_add(1, Ordering::Relaxed);
    state.streams_active.fetch_add(1, Ordering::Relaxed);
    if tx.send(Ok(msg)).await.is_err() {
        state.streams_active.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    true
}
