//! Opens physical streams, reads their acks and recovers: on a retryable failure it reopens
//! after a backoff and replays the landing zone from its first entry, within a retry budget.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tonic::metadata::{MetadataKey, MetadataValue};

use super::sender::OutStream;
use super::transport::{connect_error, status_error};
use super::{Shared, StreamState, Wire};
use crate::codec::{Incoming, OutRequest, Payload, ZerobusCodec};
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::proto::{ephemeral_stream_request, CreateIngestStreamRequest, EphemeralStreamRequest};

/// Runs `task` on the runtime; if it panics, the stream fails with `Internal` instead of hanging.
pub(super) fn spawn_guarded(shared: Arc<Shared>, task: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            shared.fail(ZerobusError::new(ErrorCode::Internal, format!("panic in a zerobus-core task: {msg}")));
        }
    });
}

enum Outcome {
    /// Closed cleanly: everything acknowledged.
    Finished,
    /// CloseStreamSignal: move to a new stream.
    Handover,
    /// A retryable failure: reopen after a backoff, within `recovery_retries`.
    Broken(ZerobusError),
    /// A non-retryable failure.
    Fail(ZerobusError),
    /// The stream failed or was aborted meanwhile: stop (dropping the call resets it).
    Stopped,
}

/// Resolves once the stream has failed (or was aborted, which fails it).
async fn failed(shared: &Shared) {
    let mut rx = shared.progress.subscribe();
    let _ = rx.wait_for(|p| p.state == StreamState::Failed).await;
}

/// What one physical stream achieved.
#[derive(Default)]
struct Progress {
    /// It acknowledged something.
    acked_any: bool,
    /// It acknowledged everything that was waiting when it opened (or nothing was waiting).
    caught_up: bool,
}

fn gave_up(mut e: ZerobusError, attempts: u32) -> ZerobusError {
    if attempts > 1 {
        e.message = format!("{} (gave up after {attempts} attempts)", e.message);
    }
    e
}

pub(super) async fn supervise(shared: Arc<Shared>) {
    // Physical streams in a row that ended without catching up (failed opens included).
    let mut failures = 0u32;
    loop {
        let (broken, progress) = match open_physical(&shared).await {
            Err(e) => (e, Progress::default()),
            Ok(mut physical) => {
                let mut progress = Progress::default();
                let outcome = read_acks(&shared, &mut physical, &mut progress).await;
                let broken = match outcome {
                    Outcome::Finished => {
                        physical.cancel.0 = None; // ended cleanly: nothing to reset
                        shared.update(|p| p.state = StreamState::Closed);
                        return;
                    }
                    Outcome::Fail(e) => {
                        shared.fail(e);
                        return;
                    }
                    Outcome::Stopped => return,
                    Outcome::Handover if progress.caught_up => {
                        // Not a failure: move to the next stream, at once if this one made
                        // progress, else after the backoff (a server closing idle streams must
                        // not cause a reconnect loop).
                        if !abandon(&shared) {
                            return;
                        }
                        failures = 0;
                        if !progress.acked_any {
                            tokio::time::sleep(Duration::from_millis(shared.opts.recovery_backoff_ms)).await;
                        }
                        continue;
                    }
                    Outcome::Handover => ZerobusError::new(
                        ErrorCode::Transport,
                        "the server closed the stream (CloseStreamSignal) before acknowledging what was replayed to it",
                    ),
                    Outcome::Broken(e) => e,
                };
                if !abandon(&shared) {
                    return;
                }
                (broken, progress)
            }
        };
        if progress.caught_up {
            failures = 0;
        }
        failures += 1;
        if !broken.retryable || !shared.opts.recovery || failures > shared.opts.recovery_retries {
            let e = if broken.retryable { gave_up(broken, failures) } else { broken };
            shared.fail(e);
            return;
        }
        shared.update(|p| {
            if p.state != StreamState::Opening {
                p.state = StreamState::Recovering
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(shared.opts.recovery_backoff_ms)) => {}
            _ = failed(&shared) => return,
        }
    }
}

/// Retires the current physical stream (its request side stops; dropping it resets the call).
/// Returns false if the stream has failed meanwhile.
fn abandon(shared: &Arc<Shared>) -> bool {
    let mut st = shared.lock();
    if st.failed.is_some() {
        return false;
    }
    st.generation += 1;
    st.ready = false;
    true
}

type Responses = tonic::Streaming<Incoming>;

/// Resets the gRPC call (HTTP/2 RST_STREAM) when dropped, unless it ended cleanly.
struct CancelOnDrop(Option<tonic::CancellationHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.cancel();
        }
    }
}

/// One open physical stream: its responses, the handle that resets it when abandoned, and the
/// last logical offset that was waiting in the landing zone when it opened.
struct Physical {
    responses: Responses,
    cancel: CancelOnDrop,
    replay_end: Option<i64>,
}

const STAGES: [&str; 4] = ["getting the auth headers", "connecting", "waiting for the server to open the stream", ""];

/// Opens a physical stream within `recovery_timeout_ms` (auth headers, connection, create response).
async fn open_physical(shared: &Arc<Shared>) -> Result<Physical> {
    let timeout = Duration::from_millis(shared.opts.recovery_timeout_ms);
    let stage = AtomicU8::new(0);
    match tokio::time::timeout(timeout, open_within(shared, &stage)).await {
        Ok(r) => r,
        Err(_) => Err(ZerobusError::new(
            ErrorCode::Timeout,
            format!(
                "stream creation timed out after {timeout:?} ({})",
                STAGES[stage.load(Ordering::Relaxed) as usize % STAGES.len()]
            ),
        )),
    }
}

async fn open_within(shared: &Arc<Shared>, stage: &AtomicU8) -> Result<Physical> {
    let headers = shared.headers.headers(&shared.table.table_name).await?;
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
    let out = OutStream { shared: shared.clone(), generation, create: Some(create), buf: VecDeque::new() };
    let mut request = tonic::Request::new(out);
    let cancel = CancelOnDrop(Some(request.cancellation_handle()));
    let md = request.metadata_mut();
    for (k, v) in headers.iter() {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| ZerobusError::invalid(format!("invalid header name {k:?}")))?;
        let val = MetadataValue::try_from(v.as_str()).map_err(|_| ZerobusError::invalid(format!("invalid value for header {k:?}")))?;
        md.insert(key, val);
    }
    let table = MetadataValue::try_from(shared.table.table_name.as_str())
        .map_err(|_| ZerobusError::invalid("table name is not a valid header value"))?;
    md.insert("x-databricks-zerobus-table-name", table);

    let mut grpc = tonic::client::Grpc::new(shared.channel.clone());
    grpc.ready().await.map_err(|e| connect_error(&e))?;
    stage.store(2, Ordering::Relaxed);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let mut responses = grpc.streaming(request, path, ZerobusCodec { flight }).await.map_err(|s| status_error(&s))?.into_inner();
    let stream_id = match responses.message().await {
        Ok(Some(Incoming::Created(id))) => id.unwrap_or_default(),
        Ok(Some(other)) => {
            return Err(ZerobusError::new(ErrorCode::Server, format!("expected the stream to be confirmed first, got {other:?}")))
        }
        Ok(None) => return Err(ZerobusError::new(ErrorCode::Transport, "server closed the stream during creation")),
        Err(s) => return Err(status_error(&s)),
    };
    let (waker, replay_end) = {
        let mut st = shared.lock();
        if st.generation != generation {
            return Err(ZerobusError::new(ErrorCode::StreamFailed, "stream was stopped while opening"));
        }
        st.base = st.landing.front().map(|e| e.offset).unwrap_or(st.next_offset);
        st.restart_sending();
        st.ready = true;
        (st.sender_waker.take(), st.landing.back().map(|e| e.offset))
    };
    if let Some(w) = waker {
        w.wake();
    }
    shared.update(|p| {
        p.state = if p.state == StreamState::Closing { StreamState::Closing } else { StreamState::Open };
        p.stream_id = Some(stream_id);
        p.streams_opened += 1;
    });
    Ok(Physical { responses, cancel, replay_end })
}

async fn read_acks(shared: &Arc<Shared>, physical: &mut Physical, progress: &mut Progress) -> Outcome {
    let ack_timeout = Duration::from_millis(shared.opts.server_lack_of_ack_timeout_ms);
    progress.caught_up = physical.replay_end.is_none();
    let responses = &mut physical.responses;
    loop {
        // The ack timeout counts from the oldest request sent and not yet acknowledged; with
        // nothing outstanding there is no deadline until the sender sends again.
        let oldest = shared.lock().oldest_unacked_send();
        let msg = match oldest {
            Some(sent) => tokio::select! {
                m = responses.message() => m,
                _ = failed(shared) => return Outcome::Stopped,
                _ = tokio::time::sleep_until((sent + ack_timeout).into()) => {
                    if shared.lock().oldest_unacked_send().is_some_and(|t| t.elapsed() >= ack_timeout) {
                        return Outcome::Broken(ZerobusError::new(
                            ErrorCode::Timeout,
                            format!("no acknowledgement from the server within {ack_timeout:?} of sending"),
                        ));
                    }
                    continue;
                }
            },
            None => tokio::select! {
                m = responses.message() => m,
                _ = shared.sent.notified() => continue,
                _ = failed(shared) => return Outcome::Stopped,
            },
        };
        // Everything but a close announcement is handled in place.
        let close_after: Option<Duration> = match msg {
            Ok(Some(Incoming::Ack { offset, close_after })) => {
                if let Some(acked) = (offset >= 0).then(|| ack(shared, offset)).flatten() {
                    progress.acked_any = true;
                    if physical.replay_end.is_none_or(|end| acked >= end) {
                        progress.caught_up = true;
                    }
                }
                match close_after {
                    Some(d) => Some(d),
                    None => continue,
                }
            }
            Ok(Some(Incoming::Close(d))) => d,
            Ok(Some(Incoming::Created(_) | Incoming::Other)) => continue,
            Ok(None) => {
                let st = shared.lock();
                if st.finished && st.landing.is_empty() {
                    return Outcome::Finished;
                }
                return Outcome::Broken(ZerobusError::new(ErrorCode::Transport, "server ended the stream"));
            }
            Err(status) => {
                let e = status_error(&status);
                return if e.retryable { Outcome::Broken(e) } else { Outcome::Fail(e) };
            }
        };
        // The server will close this stream: hand over to a new one. Stop sending here, collect
        // the acks of what this stream already got (until it ends or the announced close time),
        // then reopen and replay the rest.
        shared.change_and_wake_sender(|st| st.draining = true);
        let grace = close_after.unwrap_or(ack_timeout).min(ack_timeout);
        let _ = tokio::time::timeout(grace, drain_acks(shared, responses, physical.replay_end, progress)).await;
        return Outcome::Handover;
    }
}

/// Applies acks until the (draining) stream ends.
async fn drain_acks(shared: &Arc<Shared>, responses: &mut Responses, replay_end: Option<i64>, progress: &mut Progress) {
    while let Ok(Some(resp)) = responses.message().await {
        if let Incoming::Ack { offset, .. } = resp {
            if let Some(acked) = (offset >= 0).then(|| ack(shared, offset)).flatten() {
                progress.acked_any = true;
                if replay_end.is_none_or(|end| acked >= end) {
                    progress.caught_up = true;
                }
            }
        }
    }
}

/// Applies a cumulative ack of physical offset `physical`. Returns the highest logical offset
/// it acknowledged, if any.
fn ack(shared: &Arc<Shared>, physical: i64) -> Option<i64> {
    let mut popped: Vec<Payload> = Vec::new();
    let acked = {
        let mut st = shared.lock();
        let upto = st.base + physical;
        st.pop_acked(upto, &mut popped)
    }?;
    // Releasing record buffers (possibly caller callbacks) happens outside the lock.
    drop(popped);
    shared.update(|p| p.acked = p.acked.max(acked));
    Some(acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::FnHeaders;
    use crate::stream::{landing::State, StreamOptions, TableProperties};
    use crate::RecordType;
    use std::sync::Mutex;
    use tokio::sync::{watch, Notify};

    fn shared() -> Arc<Shared> {
        let (progress, _) = watch::channel(super::super::Progress {
            acked: -1,
            state: StreamState::Open,
            error: None,
            stream_id: None,
            streams_opened: 1,
        });
        Arc::new(Shared {
            state: Mutex::new(State::new()),
            progress,
            sent: Notify::new(),
            hook: None,
            opts: StreamOptions::default(),
            table: TableProperties { table_name: "a.b.c".into(), record_type: RecordType::Json, descriptor_proto: None },
            wire: Wire::Ephemeral,
            channel: super::super::make_channel("http://127.0.0.1:1").unwrap(),
            headers: Arc::new(FnHeaders(|_: &str| Ok(vec![]))),
        })
    }

    #[tokio::test]
    async fn a_panicking_task_fails_the_stream_instead_of_leaving_it_hanging() {
        let shared = shared();
        shared.lock().push([Payload::Json(bytes::Bytes::from_static(b"{}"))], 1, 2);
        let mut rx = shared.progress.subscribe();
        spawn_guarded(shared.clone(), async { panic!("boom in a task") });
        let p = rx.wait_for(|p| p.state == StreamState::Failed).await.unwrap().clone();
        let e = p.error.unwrap();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(e.message.contains("boom in a task"), "{}", e.message);
        assert!(shared.lock().landing.is_empty(), "a failed stream frees its landing zone");
    }
}
