//! Opening one physical stream within `recovery_timeout_ms`: the auth headers (asked again once
//! when the server refuses cached ones), the connection, the call, and the create request (or the
//! DoPut schema) with the landing zone's replay set, until the server says the stream is open.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::call::{self, from_server};
use super::sender::{Cancel, OutStream, RequestBody};
use super::{LogLevel, Shared, StreamState, Wire};
use crate::codec::{Incoming, OutRequest};
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::net::transport::status_error;
use crate::net::{Meter, ResetOnDrop};
use crate::proto::{ephemeral_stream_request, CreateIngestStreamRequest, EphemeralStreamRequest};

pub(super) type Responses = tonic::Streaming<Incoming>;

/// Resets the gRPC call (HTTP/2 RST_STREAM) when dropped, unless it ended cleanly.
pub(super) struct CancelOnDrop(pub(super) Option<Arc<Cancel>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.cancel();
        }
    }
}

/// One open physical stream: its responses, the handles that reset the call and its connection
/// when it is abandoned, its connection's meter, and the logical offsets that were waiting in the
/// landing zone when it opened (its replay set).
pub(super) struct Physical {
    pub(super) responses: Responses,
    pub(super) cancel: CancelOnDrop,
    pub(super) meter: Arc<Meter>,
    /// Resets the connection when the physical stream is dropped, unless disarmed (both signals
    /// are asynchronous: the call's RST_STREAM may or may not reach the socket before the RST).
    pub(super) reset: ResetOnDrop,
    /// The channel of this physical stream alone (its connection lives as long as it does).
    pub(super) _channel: tonic::transport::Channel,
    pub(super) replay: Option<(i64, i64)>,
}

const STAGES: [&str; 4] = ["getting the auth headers", "connecting", "waiting for the server to open the stream", ""];

/// Opens a physical stream within `recovery_timeout_ms` (auth headers, connection, create
/// response). When the server refuses the credentials (UNAUTHENTICATED) and the headers came
/// from a cache, the cached token is dropped and the open is tried once more with a fresh one.
pub(super) async fn open_physical(shared: &Arc<Shared>) -> Result<Physical> {
    let refused = Refused::default();
    let r = open_timed(shared, &refused).await;
    let refused = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let (Err(_), Some(headers)) = (&r, refused) {
        if shared.headers.invalidate(&shared.table.table_name, &headers) {
            shared.log(LogLevel::Warn, || "the server refused the credentials (UNAUTHENTICATED): asking for new ones".into());
            return open_timed(shared, &Refused::default()).await;
        }
    }
    r
}

/// The headers the server refused with UNAUTHENTICATED, if it did.
type Refused = std::sync::Mutex<Option<crate::auth::Headers>>;

async fn open_timed(shared: &Arc<Shared>, refused: &Refused) -> Result<Physical> {
    let timeout = Duration::from_millis(shared.opts.recovery_timeout_ms);
    let stage = AtomicU8::new(0);
    // The connection's meter: it also tells whether the TCP connection was made, since the
    // channel connects inside the call.
    let meter = Meter::new();
    match tokio::time::timeout(timeout, open_within(shared, &stage, refused, meter.clone())).await {
        Ok(r) => r,
        Err(_) => {
            let stage = match stage.load(Ordering::Relaxed) {
                2 if !meter.connected() => 1,
                s => s,
            };
            Err(ZerobusError::new(
                ErrorCode::Timeout,
                format!("stream creation timed out after {timeout:?} ({})", STAGES[stage as usize % STAGES.len()]),
            ))
        }
    }
}

async fn open_within(shared: &Arc<Shared>, stage: &AtomicU8, refused_headers: &Refused, meter: Arc<Meter>) -> Result<Physical> {
    let fetched = shared.headers.tokens_fetched();
    let headers = shared.headers.headers(&shared.table.table_name).await?;
    if shared.headers.tokens_fetched() > fetched {
        shared.log(LogLevel::Info, || "fetched an OAuth token".into());
    }
    stage.store(1, Ordering::Relaxed);
    let generation = {
        let mut st = shared.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone().retryable(false));
        }
        st.generation += 1;
        st.ready = false;
        st.draining = false;
        st.restart_sending();
        st.generation
    };
    let (create, path, flight) = match &shared.wire {
        Wire::Ephemeral => (
            OutRequest::Create(EphemeralStreamRequest {
                payload: Some(ephemeral_stream_request::Payload::CreateStream(CreateIngestStreamRequest {
                    table_name: Some(shared.table.table_name.clone()),
                    descriptor_proto: shared.table.descriptor_proto.clone(),
                    record_type: Some(shared.table.record_type as i32),
                })),
            }),
            "/databricks.zerobus.Zerobus/EphemeralStream",
            false,
        ),
        Wire::Flight(stream) => (
            OutRequest::FlightStart { schema: stream.message.clone() },
            "/arrow.flight.protocol.FlightService/DoPut",
            true,
        ),
    };
    let out = OutStream::new(shared.clone(), generation, Some(create));
    let cancel = Arc::new(Cancel::default());
    let body = RequestBody::new(out, cancel.clone());
    let cancel = CancelOnDrop(Some(cancel));
    let mut md = MetadataMap::new();
    for (k, v) in headers.iter() {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| ZerobusError::invalid(format!("invalid header name {k:?}")))?;
        let val = MetadataValue::try_from(v.as_str()).map_err(|_| ZerobusError::invalid(format!("invalid value for header {k:?}")))?;
        md.insert(key, val);
    }
    let table = MetadataValue::try_from(shared.table.table_name.as_str())
        .map_err(|_| ZerobusError::invalid("table name is not a valid header value"))?;
    md.insert("x-databricks-zerobus-table-name", table);

    // A connection of its own (see `Connect`), reset if the open fails or times out.
    let reset = ResetOnDrop(Some(meter.clone()));
    let ack_timeout = Duration::from_millis(shared.opts.server_lack_of_ack_timeout_ms);
    let mut channel = shared.connect.net.channel(&shared.connect.endpoint, Some(meter.clone()), ack_timeout)?;
    call::ready(&mut channel).await?;
    stage.store(2, Ordering::Relaxed);
    let refused = |s: &tonic::Status| {
        if s.code() == tonic::Code::Unauthenticated {
            *refused_headers.lock().unwrap_or_else(|p| p.into_inner()) = Some(headers.clone());
        }
        status_error(s)
    };
    // A server's answer (an error status, the end of the call) leaves the connection to close
    // gracefully; a timeout or a broken protocol resets it (`reset` is armed).
    let mut reset = reset;
    let mut responses = match call::start(&mut channel, path, md, body, flight).await {
        Ok(r) => r,
        Err(s) => {
            if from_server(&s) {
                reset.0 = None;
            }
            return Err(refused(&s));
        }
    };
    let stream_id = match responses.message().await {
        Ok(Some(Incoming::Created(id))) => id.unwrap_or_default(),
        Ok(Some(other)) => {
            // A server that breaks the protocol once may not the next time: retryable, within
            // the retry budget.
            return Err(ZerobusError::new(ErrorCode::Server, format!("expected the stream to be confirmed first, got {other:?}"))
                .retryable(true));
        }
        Ok(None) => {
            reset.0 = None;
            return Err(ZerobusError::new(ErrorCode::Transport, "server closed the stream during creation"));
        }
        Err(s) => {
            if from_server(&s) {
                reset.0 = None;
            }
            return Err(refused(&s));
        }
    };
    let (waker, replay) = {
        let mut st = shared.lock();
        if st.generation != generation {
            return Err(ZerobusError::new(ErrorCode::StreamFailed, "stream was stopped while opening"));
        }
        st.base = st.landing.front().map(|e| e.offset).unwrap_or(st.next_offset);
        st.restart_sending();
        st.ready = true;
        let replay = st.landing.front().zip(st.landing.back()).map(|(a, b)| (a.offset, b.offset));
        (st.sender_waker.take(), replay)
    };
    if let Some(w) = waker {
        w.wake();
    }
    shared.update(|p| {
        if matches!(p.state, StreamState::Failed | StreamState::Closed) {
            return; // failed or closed meanwhile: the supervisor stops at its next step
        }
        p.state = if p.state == StreamState::Closing { StreamState::Closing } else { StreamState::Open };
        p.stream_id = Some(stream_id.clone());
        p.streams_opened += 1;
    });
    shared.log(LogLevel::Info, || {
        let n = replay.map_or(0, |(a, b)| b - a + 1);
        format!("physical stream opened (id {stream_id}), replaying {n} requests")
    });
    Ok(Physical { responses, cancel, meter, reset, _channel: channel, replay })
}
