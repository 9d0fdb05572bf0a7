//! The ingestion stream: landing zone, sender, ack reader and recovery.
//!
//! Data path (records of 64 KiB or more reach the socket, or the TLS encryption, from the
//! caller's memory; smaller ones are copied once into the HTTP/2 chunk that gathers messages,
//! after the copy at ingest that records of 1 KiB or less need):
//! `ingest_*` pushes a [`Payload`] (`Bytes` handles) onto the landing zone ([`landing`]) under one
//! short lock and wakes the sender only when it is idle. The sender ([`sender`], the HTTP/2
//! request body of each call ([`call`])) takes entries in chunks, cloning handles (refcount
//! increments), and encodes them into [`crate::codec::Frames`]. The supervisor
//! ([`supervisor`]) opens physical streams, reads cumulative acks and pops acknowledged entries;
//! on a retryable failure it opens a new physical stream and replays the landing zone from its
//! first entry.

mod call;
mod landing;
mod log;
mod options;
mod sender;
mod supervisor;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::auth::SharedHeadersProvider;
use crate::batch::Batch;
use crate::payload::Payload;
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::proto::RecordType;
use landing::State;
pub use log::{LogEvent, LogLevel};
pub use options::{check_limit, Limit, StreamOptions, LIMITS};

/// What is ingested and where.
#[derive(Clone, Debug)]
pub struct TableProperties {
    pub table_name: String,
    pub record_type: RecordType,
    /// Serialized `google.protobuf.DescriptorProto` of the record message (PROTO only).
    pub descriptor_proto: Option<Bytes>,
}

/// Which RPC a stream speaks.
#[derive(Clone, Debug)]
pub(crate) enum Wire {
    /// `databricks.zerobus.Zerobus/EphemeralStream` with protobuf or JSON records.
    Ephemeral,
    /// Arrow Flight `DoPut`: the schema (checked on ingest) and its IPC schema message.
    Flight(Arc<crate::arrow::StreamSchema>),
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    Opening = 0,
    Open = 1,
    Recovering = 2,
    Closing = 3,
    Closed = 4,
    Failed = 5,
}

/// What waiters observe: highest acknowledged logical offset (-1: none yet) and the state.
#[derive(Clone, Debug)]
pub struct Progress {
    pub acked: i64,
    pub state: StreamState,
    pub error: Option<ZerobusError>,
    pub stream_id: Option<String>,
    /// Physical streams opened so far (1 + recoveries).
    pub streams_opened: u64,
}

/// What a stream did so far ([`ZerobusStream::stats`]). Records count rows of Arrow batches and
/// each record of a JSON/proto batch; bytes are record bytes (Arrow: IPC body and header bytes).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Accepted by `ingest_*`.
    pub records_ingested: u64,
    pub bytes_ingested: u64,
    /// Handed to a physical stream, replays included (so at least the acknowledged ones).
    pub records_sent: u64,
    pub bytes_sent: u64,
    pub records_acked: u64,
    pub bytes_acked: u64,
    /// Queued or sent and not yet acknowledged.
    pub records_inflight: u64,
    pub bytes_inflight: u64,
    /// Physical streams opened so far, and how many of them replaced a broken or closed one.
    pub streams_opened: u64,
    pub recoveries: u64,
    /// OAuth tokens fetched from the token endpoint for this stream (cached tokens not counted).
    pub tokens_fetched: u64,
    /// The error that ended the last physical stream, even when the stream recovered from it;
    /// the stream's own error once it failed.
    pub last_error: Option<ZerobusError>,
}

/// Called (from a runtime thread) whenever [`Progress`] changes: acks, state, failure.
pub type ProgressHook = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
    /// The sender handed requests to an idle physical stream: the ack timer starts.
    sent: Notify,
    /// The stream failed (or was aborted): a permit for the supervisor to stop.
    stop: Notify,
    hook: Option<ProgressHook>,
    log: Mutex<log::LogQueue>,
    opts: StreamOptions,
    table: TableProperties,
    wire: Wire,
    connect: Connect,
    headers: SharedHeadersProvider,
}

/// Where a stream's physical streams connect. Each opens a connection of its own
/// ([`crate::net::Network::channel`]), so a stream that gives up on a connection never reopens
/// on it.
pub(crate) struct Connect {
    pub net: Arc<crate::net::Network>,
    pub endpoint: String,
}

/// A stream's shared state for unit tests: a JSON stream, open, on a channel that never connects.
#[cfg(test)]
fn test_shared() -> Arc<Shared> {
    let (progress, _) = watch::channel(Progress { acked: -1, state: StreamState::Open, error: None, stream_id: None, streams_opened: 1 });
    Arc::new(Shared {
        state: Mutex::new(State::new()),
        progress,
        sent: Notify::new(),
        stop: Notify::new(),
        hook: None,
        log: Mutex::new(Default::default()),
        opts: StreamOptions::default(),
        table: TableProperties { table_name: "a.b.c".into(), record_type: RecordType::Json, descriptor_proto: None },
        wire: Wire::Ephemeral,
        connect: Connect { net: Arc::new(crate::net::Network::new(Default::default()).unwrap()), endpoint: "http://127.0.0.1:1".into() },
        headers: Arc::new(crate::auth::FnHeaders(|_: &str| Ok(vec![]))),
    })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in a way that matters
        // more than refusing all further work, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state under the lock, then wakes the sender (outside it) to act on the change.
    fn change_and_wake_sender(&self, f: impl FnOnce(&mut State)) {
        let waker = {
            let mut st = self.lock();
            f(&mut st);
            st.sender_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queues an event for the caller's logger if the stream reports `level`, and wakes the caller.
    fn log(&self, level: LogLevel, message: impl FnOnce() -> String) {
        if self.opts.log_level.is_some_and(|l| level <= l) {
            let e = LogEvent { level, message: message() };
            self.log.lock().unwrap_or_else(|p| p.into_inner()).push(e);
            if let Some(h) = &self.hook {
                h();
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(f);
        if let Some(h) = &self.hook {
            h();
        }
    }

    /// Fails the stream (the first error wins) and empties the landing zone: what is not
    /// acknowledged now never will be on this stream. Those requests are kept as copies (for
    /// [`ZerobusStream::unacked`], so the caller can send them again) until the stream is
    /// dropped, and the caller's buffers are released; with `release` (abort) nothing is kept.
    fn fail_with(&self, err: ZerobusError, release: bool) {
        let mut taken = None;
        let mut old_kept = None;
        self.change_and_wake_sender(|st| {
            if st.failed.is_none() {
                st.failed = Some(err.clone());
            }
            st.generation += 1;
            taken = Some(st.take_all());
            if release {
                old_kept = Some(std::mem::take(&mut st.kept));
            }
        });
        drop(old_kept);
        if let Some(entries) = taken.filter(|e| !release && !e.is_empty()) {
            // Kept as copies: the caller's buffers are released now (a rejected ingest's buffer is
            // the caller's again), while what they held stays available. Outside the lock.
            let copies: std::collections::VecDeque<landing::Entry> =
                entries.iter().map(|e| landing::Entry { offset: e.offset, payload: e.payload.copied() }).collect();
            drop(entries);
            let mut st = self.lock();
            if st.kept.is_empty() {
                st.kept = copies;
            }
        }
        self.stop.notify_one();
        if !release {
            self.log(LogLevel::Error, || format!("stream failed: {err}"));
        }
        self.update(|p| {
            if p.state != StreamState::Failed {
                p.state = StreamState::Failed;
                p.error = Some(err);
            }
        });
    }

    fn fail(&self, err: ZerobusError) {
        self.fail_with(err, false)
    }
}

/// A Zerobus ingestion stream. Cheap to clone; all clones drive the same stream.
#[derive(Clone)]
pub struct ZerobusStream {
    shared: Arc<Shared>,
}

impl ZerobusStream {
    /// Starts a stream in the background and returns at once (state `Opening`). Must be called
    /// inside a tokio runtime. Records ingested before the stream is open wait in the landing zone.
    pub(crate) fn start(
        connect: Connect,
        table: TableProperties,
        wire: Wire,
        headers: SharedHeadersProvider,
        opts: StreamOptions,
        hook: Option<ProgressHook>,
    ) -> Result<ZerobusStream> {
        validate(&table, &wire, &opts)?;
        let (progress, _) = watch::channel(Progress {
            acked: -1,
            state: StreamState::Opening,
            error: None,
            stream_id: None,
            streams_opened: 0,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            progress,
            sent: Notify::new(),
            stop: Notify::new(),
            hook,
            log: Mutex::new(log::LogQueue::default()),
            opts,
            table,
            wire,
            connect,
            headers,
        });
        supervisor::spawn_guarded(shared.clone(), supervisor::supervise(shared.clone()));
        Ok(ZerobusStream { shared })
    }

    pub fn table(&self) -> &TableProperties {
        &self.shared.table
    }

    pub fn options(&self) -> &StreamOptions {
        &self.shared.opts
    }

    /// Running totals: records and bytes ingested, sent, acknowledged and in flight, physical
    /// streams and recoveries, tokens fetched, the last error.
    pub fn stats(&self) -> Stats {
        let (c, inflight, last_error) = {
            let st = self.shared.lock();
            (st.counters, (st.inflight_records, st.inflight_bytes), st.failed.clone().or_else(|| st.last_error.clone()))
        };
        let opened = self.shared.progress.borrow().streams_opened;
        Stats {
            records_ingested: c.ingested_records,
            bytes_ingested: c.ingested_bytes,
            records_sent: c.sent_records,
            bytes_sent: c.sent_bytes,
            records_acked: c.acked_records,
            bytes_acked: c.acked_bytes,
            records_inflight: inflight.0 as u64,
            bytes_inflight: inflight.1 as u64,
            streams_opened: opened,
            recoveries: opened.saturating_sub(1),
            tokens_fetched: self.shared.headers.tokens_fetched(),
            last_error,
        }
    }

    /// Whether logger events are waiting ([`ZerobusStream::take_log`]).
    pub fn has_log(&self) -> bool {
        !self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).events.is_empty()
    }

    /// Takes the logger events queued so far, and how many older ones were dropped (the queue
    /// keeps the last 1,000).
    pub fn take_log(&self) -> (Vec<LogEvent>, u64) {
        let mut q = self.shared.log.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut q.dropped);
        (q.events.drain(..).collect(), dropped)
    }

    /// Puts taken events back in front (the caller could not take them after all).
    pub fn put_back_log(&self, events: Vec<LogEvent>, dropped: u64) {
        let mut q = self.shared.log.lock().unwrap_or_else(|p| p.into_inner());
        q.dropped += dropped;
        for e in events.into_iter().rev() {
            q.events.push_front(e);
        }
        q.trim();
    }

    /// Current progress (acked offset, state, error).
    pub fn progress(&self) -> Progress {
        self.shared.progress.borrow().clone()
    }

    /// Waits until the stream is open (or failed to open).
    pub async fn wait_open(&self) -> Result<()> {
        let mut rx = self.shared.progress.subscribe();
        let p = rx
            .wait_for(|p| p.state != StreamState::Opening)
            .await
            .map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?
            .clone();
        match p.state {
            StreamState::Failed => Err(p.error.unwrap_or_else(|| ZerobusError::new(ErrorCode::StreamFailed, "stream failed"))),
            _ => Ok(()),
        }
    }

    // ---- ingestion: non-blocking forms ------------------------------------------------------

    /// Queues one protobuf-encoded record; returns its logical offset. Fails with
    /// `Backpressure` when `max_inflight_records` are in flight.
    pub fn try_ingest_proto_bytes(&self, record: Bytes) -> Result<i64> {
        self.try_push(Payload::Proto(record)).map_err(|(e, _)| e)
    }
    /// Queues one JSON record (UTF-8 text of one JSON object).
    pub fn try_ingest_json_bytes(&self, record: Bytes) -> Result<i64> {
        self.try_push(Payload::Json(record)).map_err(|(e, _)| e)
    }
    /// Queues protobuf records as one batch request (one logical offset for the batch; a batch
    /// too big for one message of `max_message_bytes` becomes several, one offset each).
    pub fn try_ingest_proto_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::ProtoBatch(records.into())).map_err(|(e, _)| e)
    }
    /// Queues JSON records as one batch request (split like protobuf batches).
    pub fn try_ingest_json_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::JsonBatch(records.into())).map_err(|(e, _)| e)
    }

    /// Queues an already built payload (any form); the non-blocking primitive behind the rest.
    pub fn try_push(&self, payload: Payload) -> std::result::Result<i64, (ZerobusError, Payload)> {
        if self.too_big(&payload) {
            let whole = payload.clone();
            return self.try_push_many(vec![payload]).map_err(|(e, _)| (e, whole));
        }
        // An array, not a Vec: no allocation per record on this hot path.
        self.enqueue([payload], Limits::Lenient).map_err(|(e, [p])| (e, p))
    }

    /// Queues single-record requests (consecutive offsets) all or none: every record is checked,
    /// and the in-flight limits hold for the whole lot, with no exception for an idle stream
    /// (callers fall back to one request at a time). Returns the last offset.
    pub fn try_push_each(&self, payloads: Vec<Payload>) -> std::result::Result<i64, (ZerobusError, Vec<Payload>)> {
        self.enqueue(payloads, Limits::Strict)
    }

    /// Queues several requests atomically (consecutive offsets); returns the last offset. A
    /// batch too big for one message becomes consecutive batch requests, each within the limit.
    pub fn try_push_many(&self, payloads: Vec<Payload>) -> std::result::Result<i64, (ZerobusError, Vec<Payload>)> {
        if payloads.iter().any(|p| self.too_big(p)) {
            let limit = self.shared.opts.message_limit(false);
            let fitted = payloads.iter().flat_map(|p| if self.too_big(p) { split_batch(p, limit) } else { vec![p.clone()] }).collect();
            return self.enqueue(fitted, Limits::Lenient);
        }
        self.enqueue(payloads, Limits::Lenient)
    }

    /// A JSON/protobuf batch whose request would exceed the message limit.
    fn too_big(&self, p: &Payload) -> bool {
        matches!(p, Payload::ProtoBatch(r) | Payload::JsonBatch(r) if batch_message_len(r) > self.shared.opts.message_limit(false))
    }

    /// The one enqueue path: checks, limits, offsets; gives the payloads back on failure.
    fn enqueue<C>(&self, payloads: C, limits: Limits) -> std::result::Result<i64, (ZerobusError, C)>
    where
        C: AsRef<[Payload]> + IntoIterator<Item = Payload>,
    {
        if payloads.as_ref().is_empty() {
            return Err((ZerobusError::invalid("nothing to ingest"), payloads));
        }
        for p in payloads.as_ref() {
            if let Err(e) = self.check(p) {
                return Err((e, payloads));
            }
        }
        let n: usize = payloads.as_ref().iter().map(Payload::record_count).sum();
        let bytes: usize = payloads.as_ref().iter().map(Payload::byte_len).sum();
        let mut st = self.shared.lock();
        if let Some(e) = &st.failed {
            let e = ZerobusError::new(ErrorCode::StreamFailed, format!("stream failed earlier: {e}"));
            return Err((e, payloads));
        }
        if st.closing {
            return Err((ZerobusError::new(ErrorCode::StreamClosed, "stream is closed"), payloads));
        }
        // A request larger than a limit is still accepted when nothing else is in flight.
        let opts = &self.shared.opts;
        if !st.limits_lifted
            && (st.inflight_records > 0 || limits == Limits::Strict)
            && (st.inflight_records + n > opts.max_inflight_records || st.inflight_bytes + bytes > opts.max_inflight_bytes)
        {
            let e = ZerobusError::new(
                ErrorCode::Backpressure,
                format!(
                    "{} records / {} bytes in flight (max_inflight_records {}, max_inflight_bytes {})",
                    st.inflight_records, st.inflight_bytes, opts.max_inflight_records, opts.max_inflight_bytes
                ),
            );
            return Err((e, payloads));
        }
        let offset = st.push(payloads, n, bytes);
        let waker = if st.ready { st.sender_waker.take() } else { None };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(offset)
    }

    fn check(&self, payload: &Payload) -> Result<()> {
        let flight = matches!(self.shared.wire, Wire::Flight(_));
        if flight != matches!(payload, Payload::Arrow(_)) {
            return Err(ZerobusError::invalid(if flight {
                "an Arrow stream takes Arrow record batches (ingest_ipc_batch / ingest_batch)"
            } else {
                "Arrow batches need an Arrow stream (create_arrow_stream)"
            }));
        }
        if let Payload::Arrow(a) = payload {
            return check_arrow(a, self.shared.opts.max_record_bytes);
        }
        let want_json = self.shared.table.record_type == RecordType::Json;
        let is_json = matches!(payload, Payload::Json(_) | Payload::JsonBatch(_));
        if want_json != is_json {
            return Err(ZerobusError::invalid(format!(
                "this stream takes {} records, got {}",
                if want_json { "JSON" } else { "protobuf" },
                if is_json { "JSON" } else { "protobuf" }
            )));
        }
        let max = self.shared.opts.max_record_bytes;
        let fit = self.shared.opts.message_limit(false).saturating_sub(options::MESSAGE_OVERHEAD + options::PER_RECORD_OVERHEAD);
        let count = payload.record_count();
        if count == 0 {
            return Err(ZerobusError::invalid("a batch needs at least one record"));
        }
        let which = |i: usize| if count > 1 { format!(" {i} of the batch") } else { String::new() };
        // The longest record decides; only a refusal looks for the record to name.
        if payload.longest_record() > max.min(fit) {
            for (i, r) in payload.record_slices().enumerate() {
                if r.len() > max {
                    return Err(ZerobusError::invalid(format!(
                        "record{} is {} bytes, more than max_record_bytes ({max})",
                        which(i),
                        r.len()
                    )));
                }
                if r.len() > fit {
                    return Err(ZerobusError::invalid(format!(
                        "record{} is {} bytes: it does not fit in one message of max_message_bytes ({})",
                        which(i),
                        r.len(),
                        self.shared.opts.message_limit(false)
                    )));
                }
            }
        }
        if is_json {
            for (i, r) in payload.record_slices().enumerate() {
                let Ok(text) = std::str::from_utf8(r) else {
                    return Err(ZerobusError::invalid(format!("JSON record{} is not valid UTF-8", which(i))));
                };
                if !is_json_object_text(text) {
                    let shown: String = text.chars().take(40).collect();
                    return Err(ZerobusError::invalid(format!(
                        "JSON record{} must be one JSON object ({{...}}), got {shown:?}{}",
                        which(i),
                        if text.chars().count() > 40 { "..." } else { "" }
                    )));
                }
            }
        }
        Ok(())
    }

    // ---- ingestion: async forms that wait for capacity ----------------------------------------

    /// Queues a payload, waiting while `max_inflight_records` are in flight. Returns the logical offset
    /// (the record is not yet acknowledged: see [`wait_for_offset`](Self::wait_for_offset)).
    pub async fn push(&self, payload: Payload) -> Result<i64> {
        self.push_many(vec![payload]).await
    }
    pub async fn ingest_proto_bytes(&self, record: Bytes) -> Result<i64> {
        self.push(Payload::Proto(record)).await
    }
    pub async fn ingest_json_bytes(&self, record: Bytes) -> Result<i64> {
        self.push(Payload::Json(record)).await
    }
    pub async fn ingest_proto_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.push(Payload::ProtoBatch(records.into())).await
    }
    pub async fn ingest_json_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.push(Payload::JsonBatch(records.into())).await
    }

    // ---- Arrow ------------------------------------------------------------------------------

    /// Queues the record batches of Arrow IPC stream bytes (schema message first) without decoding
    /// them: one request per record batch. Returns the offset of the last batch. Waits while the
    /// in-flight limits are reached.
    pub async fn ingest_ipc_batch(&self, ipc: Bytes) -> Result<i64> {
        let payloads = self.split_ipc(&ipc)?;
        self.push_many(payloads).await
    }

    /// Non-blocking form of [`ingest_ipc_batch`](Self::ingest_ipc_batch).
    pub fn try_ingest_ipc_batch(&self, ipc: Bytes) -> Result<i64> {
        let payloads = self.split_ipc(&ipc)?;
        self.try_push_many(payloads).map_err(|(e, _)| e)
    }

    /// Queues a RecordBatch (encoded to IPC once, here). Returns its offset.
    pub async fn ingest_batch(&self, batch: &arrow_array::RecordBatch) -> Result<i64> {
        let Wire::Flight(stream) = &self.shared.wire else {
            return Err(ZerobusError::invalid("Arrow batches need an Arrow stream (create_arrow_stream)"));
        };
        let limit = self.shared.opts.message_limit(true);
        let payloads = crate::arrow::encode_batch_within(&crate::arrow::wire_batch(batch, stream)?, stream, limit)?;
        self.push_many(payloads.into_iter().map(Payload::Arrow).collect()).await
    }

    /// The IPC stream's record batches as requests; a batch with a message over the limit is
    /// decoded and sent as row slices that fit (see [`crate::arrow::fit_message_limit`]).
    fn split_ipc(&self, ipc: &Bytes) -> Result<Vec<Payload>> {
        let Wire::Flight(stream) = &self.shared.wire else {
            return Err(ZerobusError::invalid("Arrow batches need an Arrow stream (create_arrow_stream)"));
        };
        let limit = self.shared.opts.message_limit(true);
        let mut out = Vec::new();
        if stream.reencodes() {
            // Dictionary columns to expand, or compression: decoded and encoded again.
            for b in crate::arrow::decode_ipc(ipc, stream.input.as_deref().unwrap_or(&stream.schema))? {
                out.extend(crate::arrow::encode_batch_within(&crate::arrow::wire_batch(&b, stream)?, stream, limit)?.into_iter().map(Payload::Arrow));
            }
            return Ok(out);
        }
        for p in crate::arrow::split_ipc_stream(ipc, stream)? {
            out.extend(crate::arrow::fit_message_limit(p, stream, limit)?.into_iter().map(Payload::Arrow));
        }
        Ok(out)
    }

    /// Queues payloads, waiting for capacity up to `submit_timeout_ms`.
    async fn push_many(&self, mut payloads: Vec<Payload>) -> Result<i64> {
        let mut rx = self.shared.progress.subscribe();
        let limit = Duration::from_millis(self.shared.opts.submit_timeout_ms);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.try_push_many(payloads) {
                Ok(o) => return Ok(o),
                Err((e, p)) if e.code == ErrorCode::Backpressure => {
                    payloads = p;
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(r) => r.map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?,
                        Err(_) => {
                            return Err(ZerobusError::new(
                                ErrorCode::Timeout,
                                format!("no capacity within {limit:?} (submit_timeout_ms): {}", e.message),
                            ))
                        }
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits until `offset` is acknowledged as durable. Fails if the stream fails first.
    pub async fn wait_for_offset(&self, offset: i64) -> Result<()> {
        let last = self.last_offset();
        if offset > last {
            return Err(ZerobusError::invalid(format!(
                "offset {offset} was never handed out (the last offset is {last})"
            )));
        }
        let mut rx = self.shared.progress.subscribe();
        let p = rx
            .wait_for(|p| p.acked >= offset || matches!(p.state, StreamState::Failed | StreamState::Closed))
            .await
            .map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?
            .clone();
        if p.acked >= offset {
            return Ok(());
        }
        Err(match p.error {
            Some(e) => e,
            None => ZerobusError::new(ErrorCode::StreamClosed, format!("stream closed before offset {offset} was acknowledged")),
        })
    }

    /// Logical offset of the last queued request (-1 if none).
    pub fn last_offset(&self) -> i64 {
        self.shared.lock().next_offset - 1
    }

    /// Waits until every request queued so far is acknowledged, at most `flush_timeout_ms`.
    pub async fn flush(&self) -> Result<()> {
        self.flush_within(Duration::from_millis(self.shared.opts.flush_timeout_ms)).await
    }

    /// Waits until every request queued so far is acknowledged, at most `t`.
    pub async fn flush_within(&self, t: Duration) -> Result<()> {
        let last = self.last_offset();
        match tokio::time::timeout(t, self.wait_for_offset(last)).await {
            Ok(r) => r,
            Err(_) => {
                let acked = self.shared.progress.borrow().acked;
                Err(ZerobusError::new(
                    ErrorCode::Timeout,
                    format!("flush timed out after {t:?} (acknowledged through offset {acked} of {last})"),
                ))
            }
        }
    }

    /// From now on the in-flight limits refuse nothing. For a caller that is about to close the
    /// stream and holds records it accepted before (waiting for capacity on its side): they are
    /// handed over at once, so that closing covers them and, should it fail, [`unacked`]
    /// (Self::unacked) returns them with the rest.
    pub fn lift_limits(&self) {
        self.shared.lock().limits_lifted = true;
    }

    /// Starts closing: no more ingests; the stream ends once everything queued is acknowledged
    /// (within `flush_timeout_ms`, else it fails). Returns at once; `close` is the awaiting form.
    pub fn begin_close(&self) {
        let t = Duration::from_millis(self.shared.opts.flush_timeout_ms);
        self.shared.lock().closing = true;
        let shared = self.shared.clone();
        let this = self.clone();
        supervisor::spawn_guarded(self.shared.clone(), async move {
            if let Err(e) = this.flush_within(t).await {
                // What is not durable by now will not be: fail the stream with the reason.
                shared.fail(ZerobusError::new(e.code, format!("close: {}", e.message)));
                return;
            }
            // Everything is acknowledged: the stream is closed. The call ends in the background
            // (the request side half-closes and the server ends it, or the supervisor gives it
            // the ack timeout), and nothing reopens.
            shared.change_and_wake_sender(|st| st.finished = true);
            shared.update(|p| {
                if p.state != StreamState::Failed {
                    p.state = StreamState::Closed;
                }
            });
        });
    }

    /// Flushes and closes the stream. Errors if any record could not be made durable.
    pub async fn close(&self) -> Result<()> {
        self.begin_close();
        let mut rx = self.shared.progress.subscribe();
        let p = rx
            .wait_for(|p| matches!(p.state, StreamState::Failed | StreamState::Closed))
            .await
            .map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?
            .clone();
        match p.state {
            StreamState::Closed => Ok(()),
            _ => Err(p.error.unwrap_or_else(|| ZerobusError::new(ErrorCode::StreamFailed, "stream failed"))),
        }
    }

    /// Requests not acknowledged, in order, with their logical offsets: the landing zone of a live
    /// stream, or what was unacknowledged when the stream failed (kept until the stream is
    /// dropped; empty after an abort).
    pub fn unacked(&self) -> Vec<(i64, Payload)> {
        let st = self.shared.lock();
        let from = if st.failed.is_some() { &st.kept } else { &st.landing };
        from.iter().map(|e| (e.offset, e.payload.clone())).collect()
    }

    /// The schema of an Arrow stream.
    pub fn arrow_schema(&self) -> Option<Arc<crate::arrow::StreamSchema>> {
        match &self.shared.wire {
            Wire::Flight(s) => Some(s.clone()),
            Wire::Ephemeral => None,
        }
    }

    /// Stops the stream without waiting for acks; unacknowledged records are dropped (and their
    /// release callbacks run), including any kept after a failure. Used when a handle is freed
    /// without close.
    pub fn abort(&self) {
        self.shared.lock().closing = true;
        self.shared.fail_with(ZerobusError::new(ErrorCode::StreamClosed, "stream aborted"), true);
    }
}

/// An upper bound of the encoded size of one batch request holding `records`.
fn batch_message_len(records: &Batch) -> usize {
    records.byte_len() + records.len() * options::PER_RECORD_OVERHEAD + options::MESSAGE_OVERHEAD
}

/// Cuts a JSON/protobuf batch into consecutive batches whose messages fit in `limit` (each
/// record fits on its own: `check` refuses larger ones). Records are not copied: handles are
/// cloned, packed lists sliced.
fn split_batch(payload: &Payload, limit: usize) -> Vec<Payload> {
    let budget = limit.saturating_sub(options::MESSAGE_OVERHEAD);
    match payload {
        Payload::JsonBatch(b) => b.split(budget, options::PER_RECORD_OVERHEAD).into_iter().map(Payload::JsonBatch).collect(),
        Payload::ProtoBatch(b) => b.split(budget, options::PER_RECORD_OVERHEAD).into_iter().map(Payload::ProtoBatch).collect(),
        other => vec![other.clone()],
    }
}

/// An Arrow request ends with its record batch (the offset travels with it) and is at most
/// 64 MiB (or `max_record_bytes`, if larger).
fn check_arrow(a: &crate::arrow::ArrowPayload, max_record_bytes: usize) -> Result<()> {
    if a.messages.is_empty() {
        return Err(ZerobusError::invalid("an Arrow request needs its record batch message"));
    }
    if a.byte_len() > max_record_bytes.max(64 * 1024 * 1024) {
        return Err(ZerobusError::invalid(format!("Arrow batch of {} bytes is more than 64 MiB", a.byte_len())));
    }
    Ok(())
}

fn validate(table: &TableProperties, wire: &Wire, opts: &StreamOptions) -> Result<()> {
    let parts: Vec<&str> = table.table_name.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(ZerobusError::invalid(format!(
            "table name must have three parts (catalog.schema.table), got {:?}",
            table.table_name
        )));
    }
    match table.record_type {
        _ if matches!(wire, Wire::Flight(_)) => {}
        RecordType::Proto if table.descriptor_proto.as_ref().is_none_or(|d| d.is_empty()) => {
            return Err(ZerobusError::invalid("a PROTO stream needs descriptor_proto (a serialized DescriptorProto)"));
        }
        RecordType::Unspecified => return Err(ZerobusError::invalid("record_type must be PROTO or JSON")),
        _ => {}
    }
    opts.validate()
}


/// Cheap shape check of a JSON record: after white space it starts with `{` and ends with `}`.
/// (Full syntax is the server's to check; this catches empty text, arrays, strings and numbers,
/// which would otherwise fail the whole stream.)
fn is_json_object_text(text: &str) -> bool {
    let t = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    t.len() >= 2 && t.starts_with('{') && t.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::{check_arrow, is_json_object_text};

    #[test]
    fn an_arrow_request_without_messages_is_refused() {
        // It would never be acknowledged: its offset travels with its record batch.
        let empty = crate::arrow::ArrowPayload { messages: std::sync::Arc::from([]), rows: 0 };
        let e = check_arrow(&empty, 1024).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        let one = crate::arrow::IpcMessage::new(bytes::Bytes::from_static(b"h"), bytes::Bytes::new());
        let ok = crate::arrow::ArrowPayload { messages: std::sync::Arc::from([one]), rows: 1 };
        assert!(check_arrow(&ok, 1024).is_ok());
    }

    #[test]
    fn json_records_must_look_like_objects() {
        for ok in ["{}", " {\"a\":1}\n", "{\"a\":[1,2]}"] {
            assert!(is_json_object_text(ok), "{ok:?}");
        }
        for bad in ["", "  ", "42", "[1]", "\"x\"", "null", "{", "}", "[]"] {
            assert!(!is_json_object_text(bad), "{bad:?}");
        }
    }
}

/// How the in-flight limits apply to an enqueue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Limits {
    /// A request over a limit is still accepted while nothing else is in flight (so that it can
    /// be sent at all).
    Lenient,
    /// The limits hold for the whole lot, also on an idle stream.
    Strict,
}
