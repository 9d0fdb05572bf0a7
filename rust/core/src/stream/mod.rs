//! The ingestion stream: landing zone, sender, ack reader and recovery.
//!
//! Data path (no record byte is copied until the gRPC encoder writes the frame):
//! `ingest_*` pushes a [`Payload`] (`Bytes` handles) onto the landing zone under one short lock and
//! wakes the sender only when it is idle. The sender ([`OutStream`], polled by the HTTP/2 body)
//! takes up to [`SEND_CHUNK`] entries per lock, cloning handles (refcount increments). The
//! supervisor task reads cumulative acks and pops acknowledged entries; on a retryable failure it
//! opens a new physical stream and replays the landing zone from its first entry.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use crate::arrow::ArrowPayload;
use crate::auth::SharedHeadersProvider;
use crate::codec::{Incoming, OutRequest, Payload, ZerobusCodec};
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::proto::{ephemeral_stream_request, CreateIngestStreamRequest, EphemeralStreamRequest, RecordType};

/// Entries the sender takes from the landing zone per lock.
const SEND_CHUNK: usize = 512;

/// Tuning and limits of one stream. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Records sent but not yet acknowledged, at most (default 1,000,000).
    pub max_inflight_records: usize,
    /// Record bytes sent but not yet acknowledged, at most (default 256 MiB). Zero-copy means
    /// these bytes are the caller's buffers, kept alive until acknowledged; this bounds them.
    pub max_inflight_bytes: usize,
    /// Reconnect and replay on retryable failures (default true).
    pub recovery: bool,
    /// Consecutive failed attempts to (re)open a stream before giving up (default 4).
    pub recovery_retries: u32,
    /// Pause between attempts (default 500 ms).
    pub recovery_backoff_ms: u64,
    /// Time allowed to open a stream and get its create response (default 15 s).
    pub recovery_timeout_ms: u64,
    /// Records are outstanding and no ack arrived for this long: the stream is treated as broken (default 60 s).
    pub server_lack_of_ack_timeout_ms: u64,
    /// `flush` / `close` give up after this long (default 300 s).
    pub flush_timeout_ms: u64,
    /// Largest record accepted by `ingest_*` (default 10 MiB).
    pub max_record_bytes: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_inflight_records: 1_000_000,
            max_inflight_bytes: 256 * 1024 * 1024,
            recovery: true,
            recovery_retries: 4,
            recovery_backoff_ms: 500,
            recovery_timeout_ms: 15_000,
            server_lack_of_ack_timeout_ms: 60_000,
            flush_timeout_ms: 300_000,
            max_record_bytes: 10 * 1024 * 1024,
        }
    }
}

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

/// Called (from a runtime thread) whenever [`Progress`] changes: acks, state, failure.
pub type ProgressHook = Arc<dyn Fn() + Send + Sync>;

struct Entry {
    offset: i64,
    payload: Payload,
}

struct State {
    /// Unacknowledged requests in logical-offset order (contiguous offsets).
    landing: VecDeque<Entry>,
    next_offset: i64,
    /// The first `sent` landing entries were handed to the current physical stream.
    sent: usize,
    inflight_records: usize,
    inflight_bytes: usize,
    /// Logical offset that has physical offset 0 on the current physical stream.
    base: i64,
    /// Physical stream generation; an [`OutStream`] of an older generation ends itself.
    generation: u64,
    /// The current physical stream got its create response; records may flow.
    ready: bool,
    /// No more ingests (close was called).
    closing: bool,
    /// Everything is acknowledged and the request stream should end.
    finished: bool,
    /// The server sent CloseStreamSignal: stop sending on this physical stream.
    draining: bool,
    failed: Option<ZerobusError>,
    sender_waker: Option<Waker>,
}

struct Shared {
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
    hook: Option<ProgressHook>,
    opts: StreamOptions,
    table: TableProperties,
    wire: Wire,
    channel: Channel,
    headers: SharedHeadersProvider,
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

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(f);
        if let Some(h) = &self.hook {
            h();
        }
    }

    fn fail(&self, err: ZerobusError) {
        self.change_and_wake_sender(|st| {
            if st.failed.is_none() {
                st.failed = Some(err.clone());
            }
            st.generation += 1;
        });
        self.update(|p| {
            p.state = StreamState::Failed;
            p.error = Some(err);
        });
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
        channel: Channel,
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
            state: Mutex::new(State {
                landing: VecDeque::new(),
                next_offset: 0,
                sent: 0,
                inflight_records: 0,
                inflight_bytes: 0,
                base: 0,
                generation: 0,
                ready: false,
                closing: false,
                finished: false,
                draining: false,
                failed: None,
                sender_waker: None,
            }),
            progress,
            hook,
            opts,
            table,
            wire,
            channel,
            headers,
        });
        tokio::spawn(supervise(shared.clone()));
        Ok(ZerobusStream { shared })
    }

    pub fn table(&self) -> &TableProperties {
        &self.shared.table
    }

    pub fn options(&self) -> &StreamOptions {
        &self.shared.opts
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
    /// Queues protobuf records as one batch request (one logical offset for the batch).
    pub fn try_ingest_proto_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::ProtoBatch(records.into())).map_err(|(e, _)| e)
    }
    /// Queues JSON records as one batch request (one logical offset for the batch).
    pub fn try_ingest_json_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::JsonBatch(records.into())).map_err(|(e, _)| e)
    }

    /// Queues an already built payload (any form); the non-blocking primitive behind the rest.
    pub fn try_push(&self, payload: Payload) -> std::result::Result<i64, (ZerobusError, Payload)> {
        // An array, not a Vec: no allocation per record on this hot path.
        self.enqueue([payload]).map_err(|(e, [p])| (e, p))
    }

    /// Queues several requests atomically (consecutive offsets); returns the last offset.
    pub fn try_push_many(&self, payloads: Vec<Payload>) -> std::result::Result<i64, (ZerobusError, Vec<Payload>)> {
        self.enqueue(payloads)
    }

    /// The one enqueue path: checks, limits, offsets; gives the payloads back on failure.
    fn enqueue<C>(&self, payloads: C) -> std::result::Result<i64, (ZerobusError, C)>
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
        if st.inflight_records > 0
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
        st.inflight_records += n;
        st.inflight_bytes += bytes;
        for payload in payloads {
            let offset = st.next_offset;
            st.next_offset += 1;
            st.landing.push_back(Entry { offset, payload });
        }
        let offset = st.next_offset - 1;
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
            if a.byte_len() > self.shared.opts.max_record_bytes.max(64 * 1024 * 1024) {
                return Err(ZerobusError::invalid(format!("Arrow batch of {} bytes is more than 64 MiB", a.byte_len())));
            }
            return Ok(());
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
        let records = payload.records();
        if records.is_empty() {
            return Err(ZerobusError::invalid("a batch needs at least one record"));
        }
        for (i, r) in records.iter().enumerate() {
            if r.len() > max {
                return Err(ZerobusError::invalid(format!(
                    "record{} is {} bytes, more than max_record_bytes ({max})",
                    if records.len() > 1 { format!(" {i} of the batch") } else { String::new() },
                    r.len()
                )));
            }
            if is_json && std::str::from_utf8(r).is_err() {
                return Err(ZerobusError::invalid("JSON record is not valid UTF-8"));
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
        let payload = crate::arrow::encode_batch(batch, stream)?;
        self.push_many(vec![Payload::Arrow(payload)]).await
    }

    fn split_ipc(&self, ipc: &Bytes) -> Result<Vec<Payload>> {
        let Wire::Flight(stream) = &self.shared.wire else {
            return Err(ZerobusError::invalid("Arrow batches need an Arrow stream (create_arrow_stream)"));
        };
        Ok(crate::arrow::split_ipc_stream(ipc, stream)?.into_iter().map(Payload::Arrow).collect())
    }

    async fn push_many(&self, mut payloads: Vec<Payload>) -> Result<i64> {
        let mut rx = self.shared.progress.subscribe();
        loop {
            match self.try_push_many(payloads) {
                Ok(o) => return Ok(o),
                Err((e, p)) if e.code == ErrorCode::Backpressure => {
                    payloads = p;
                    rx.changed().await.map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits until `offset` is acknowledged as durable. Fails if the stream fails first.
    pub async fn wait_for_offset(&self, offset: i64) -> Result<()> {
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

    /// Waits until every request queued so far is acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let last = self.last_offset();
        let t = Duration::from_millis(self.shared.opts.flush_timeout_ms);
        match tokio::time::timeout(t, self.wait_for_offset(last)).await {
            Ok(r) => r,
            Err(_) => Err(ZerobusError::new(ErrorCode::Timeout, format!("flush timed out after {t:?}"))),
        }
    }

    /// Starts closing: no more ingests; the stream ends once everything queued is acknowledged.
    /// Returns at once; `close` is the awaiting form.
    pub fn begin_close(&self) {
        self.shared.lock().closing = true;
        let shared = self.shared.clone();
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.flush().await {
                // What is not durable by now will not be: fail the stream with the reason.
                shared.fail(ZerobusError::new(e.code, format!("close: {}", e.message)));
                return;
            }
            shared.change_and_wake_sender(|st| st.finished = true);
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

    /// Requests not acknowledged (after a failure: what did not make it), in order.
    pub fn unacked(&self) -> Vec<(i64, Payload)> {
        self.shared.lock().landing.iter().map(|e| (e.offset, e.payload.clone())).collect()
    }

    /// Stops the stream without waiting for acks; unacknowledged records are dropped (and their
    /// release callbacks run). Used when a handle is freed without close.
    pub fn abort(&self) {
        let landing = {
            let mut st = self.shared.lock();
            st.closing = true;
            std::mem::take(&mut st.landing)
        };
        drop(landing);
        self.shared.fail(ZerobusError::new(ErrorCode::StreamClosed, "stream aborted"));
    }
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
    if opts.max_inflight_records == 0 || opts.max_inflight_bytes == 0 {
        return Err(ZerobusError::invalid("max_inflight_records and max_inflight_bytes must be at least 1"));
    }
    Ok(())
}

/// The request side of one physical stream.
struct OutStream {
    shared: Arc<Shared>,
    generation: u64,
    create: Option<OutRequest>,
    buf: VecDeque<OutRequest>,
}

impl Stream for OutStream {
    type Item = OutRequest;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutRequest>> {
        let r = self.get_mut().next_request(cx);
        #[cfg(feature = "alloc-probe")]
        crate::codec::probe::set(matches!(r, Poll::Ready(Some(_))));
        r
    }
}

impl OutStream {
    fn next_request(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutRequest>> {
        let this = self;
        if let Some(c) = this.create.take() {
            return Poll::Ready(Some(c));
        }
        if let Some(r) = this.buf.pop_front() {
            return Poll::Ready(Some(r));
        }
        let mut st = this.shared.lock();
        if st.generation != this.generation {
            // An abandoned physical stream: the supervisor resets it (RST_STREAM) rather than
            // half-closing it, so the server discards what it did not acknowledge.
            return Poll::Pending;
        }
        if st.draining {
            // CloseStreamSignal: send nothing more here; half-close so the server can finish.
            return Poll::Ready(None);
        }
        if st.ready && st.sent < st.landing.len() {
            let end = st.landing.len().min(st.sent + SEND_CHUNK);
            let base = st.base;
            for e in st.landing.range(st.sent..end) {
                let offset = e.offset - base;
                match &e.payload {
                    Payload::Arrow(a) => push_flight(&mut this.buf, a, offset),
                    p => this.buf.push_back(OutRequest::Records { offset, payload: p.clone() }),
                }
            }
            st.sent = end;
            drop(st);
            return Poll::Ready(this.buf.pop_front());
        }
        if st.finished && st.ready {
            // Closing and everything is sent (and acknowledged): half-close.
            return Poll::Ready(None);
        }
        match &st.sender_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.sender_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// An Arrow request as FlightData messages: its dictionaries, then the batch with its offset.
fn push_flight(buf: &mut VecDeque<OutRequest>, a: &ArrowPayload, offset: i64) {
    let last = a.messages.len() - 1;
    for (i, m) in a.messages.iter().enumerate() {
        buf.push_back(OutRequest::FlightData {
            header: m.header.clone(),
            body: m.body.clone(),
            offset: (i == last).then_some(offset),
        });
    }
}

enum Outcome {
    /// Closed cleanly: everything acknowledged.
    Finished,
    /// CloseStreamSignal: move to a new stream now (not a failure).
    Handover,
    /// A retryable failure: reopen after a backoff, within `recovery_retries`.
    Broken(ZerobusError),
    /// A non-retryable failure.
    Fail(ZerobusError),
}

fn gave_up(mut e: ZerobusError, attempts: u32) -> ZerobusError {
    if attempts > 1 {
        e.message = format!("{} (gave up after {attempts} attempts)", e.message);
    }
    e
}

async fn supervise(shared: Arc<Shared>) {
    // Consecutive failures without an acknowledgement in between.
    let mut failures = 0u32;
    loop {
        let broken = match open_physical(&shared).await {
            Err(e) => e,
            Ok(mut physical) => match read_acks(&shared, &mut physical.responses, &mut failures).await {
                Outcome::Finished => {
                    physical.cancel.0 = None; // ended cleanly: nothing to reset
                    shared.update(|p| p.state = StreamState::Closed);
                    return;
                }
                Outcome::Fail(e) => {
                    shared.fail(e);
                    return;
                }
                Outcome::Handover => {
                    if !abandon(&shared) {
                        return;
                    }
                    continue;
                }
                Outcome::Broken(e) => {
                    if !abandon(&shared) {
                        return;
                    }
                    e
                }
            },
        };
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
        tokio::time::sleep(Duration::from_millis(shared.opts.recovery_backoff_ms)).await;
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

async fn open_physical(shared: &Arc<Shared>) -> Result<Physical> {
    let headers = shared.headers.headers(&shared.table.table_name).await?;
    let generation = {
        let mut st = shared.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone().retryable(false));
        }
        st.generation += 1;
        st.ready = false;
        st.draining = false;
        st.sent = 0;
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

    let timeout = Duration::from_millis(shared.opts.recovery_timeout_ms);
    let open = async {
        let mut grpc = tonic::client::Grpc::new(shared.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| ZerobusError::new(ErrorCode::Transport, format!("cannot connect: {e}")))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        let mut responses = grpc
            .streaming(request, path, ZerobusCodec { flight })
            .await
            .map_err(|s| ZerobusError::from_status(&s))?
            .into_inner();
        match responses.message().await {
            Ok(Some(Incoming::Created(id))) => Ok((responses, id.unwrap_or_default())),
            Ok(Some(other)) => Err(ZerobusError::new(
                ErrorCode::Server,
                format!("expected the stream to be confirmed first, got {other:?}"),
            )),
            Ok(None) => Err(ZerobusError::new(ErrorCode::Transport, "server closed the stream during creation")),
            Err(s) => Err(ZerobusError::from_status(&s)),
        }
    };
    let (responses, stream_id) = match tokio::time::timeout(timeout, open).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ZerobusError::new(ErrorCode::Timeout, format!("stream creation timed out after {timeout:?}")))
        }
    };
    let waker = {
        let mut st = shared.lock();
        if st.generation != generation {
            return Err(ZerobusError::new(ErrorCode::StreamFailed, "stream was stopped while opening"));
        }
        st.base = st.landing.front().map(|e| e.offset).unwrap_or(st.next_offset);
        st.sent = 0;
        st.ready = true;
        st.sender_waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
    shared.update(|p| {
        p.state = if p.state == StreamState::Closing { StreamState::Closing } else { StreamState::Open };
        p.stream_id = Some(stream_id);
        p.streams_opened += 1;
    });
    Ok(Physical { responses, cancel })
}

/// Resets the gRPC call (HTTP/2 RST_STREAM) when dropped, unless it ended cleanly.
struct CancelOnDrop(Option<tonic::CancellationHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.cancel();
        }
    }
}

/// One open physical stream: its responses, and the handle that resets it when abandoned.
struct Physical {
    responses: Responses,
    cancel: CancelOnDrop,
}

async fn read_acks(shared: &Arc<Shared>, responses: &mut Responses, failures: &mut u32) -> Outcome {
    let ack_timeout = Duration::from_millis(shared.opts.server_lack_of_ack_timeout_ms);
    loop {
        let msg = match tokio::time::timeout(ack_timeout, responses.message()).await {
            Err(_) => {
                if shared.lock().sent > 0 {
                    return Outcome::Broken(ZerobusError::new(
                        ErrorCode::Timeout,
                        format!("no acknowledgement from the server for {ack_timeout:?}"),
                    ));
                }
                continue;
            }
            Ok(m) => m,
        };
        // Everything but a close announcement is handled in place.
        let close_after: Option<Duration> = match msg {
            Ok(Some(Incoming::Ack { offset, close_after })) => {
                if offset >= 0 && ack(shared, offset) {
                    *failures = 0;
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
                let e = ZerobusError::from_status(&status);
                return if e.retryable { Outcome::Broken(e) } else { Outcome::Fail(e) };
            }
        };
        // The server will close this stream: hand over to a new one. Stop sending here, collect
        // the acks of what this stream already got (until it ends or the announced close time),
        // then reopen and replay the rest.
        shared.change_and_wake_sender(|st| st.draining = true);
        let grace = close_after.unwrap_or(ack_timeout).min(ack_timeout);
        let _ = tokio::time::timeout(grace, drain_acks(shared, responses)).await;
        return Outcome::Handover;
    }
}

/// Applies acks until the (draining) stream ends.
async fn drain_acks(shared: &Arc<Shared>, responses: &mut Responses) {
    while let Ok(Some(resp)) = responses.message().await {
        if let Incoming::Ack { offset, .. } = resp {
            if offset >= 0 {
                ack(shared, offset);
            }
        }
    }
}

/// Applies a cumulative ack of physical offset `physical`. Returns true if anything was acknowledged.
fn ack(shared: &Arc<Shared>, physical: i64) -> bool {
    let mut popped: Vec<Payload> = Vec::new();
    let mut acked = -1;
    {
        let mut st = shared.lock();
        let upto = st.base + physical;
        while st.sent > 0 && st.landing.front().is_some_and(|e| e.offset <= upto) {
            let e = st.landing.pop_front().expect("front exists");
            st.sent -= 1;
            st.inflight_records -= e.payload.record_count();
            st.inflight_bytes -= e.payload.byte_len();
            acked = e.offset;
            popped.push(e.payload);
        }
    }
    if popped.is_empty() {
        return false;
    }
    // Releasing record buffers (possibly caller callbacks) happens outside the lock.
    drop(popped);
    shared.update(|p| p.acked = p.acked.max(acked));
    true
}

/// Builds the HTTP/2 channel for an endpoint (`https://` uses rustls with webpki roots).
pub(crate) fn make_channel(endpoint: &str) -> Result<Channel> {
    use tonic::transport::{ClientTlsConfig, Endpoint};
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("https://{endpoint}") };
    let mut ep = Endpoint::from_shared(url.clone())
        .map_err(|e| ZerobusError::invalid(format!("invalid endpoint {endpoint:?}: {e}")))?
        .user_agent(crate::USER_AGENT)
        .map_err(|e| ZerobusError::invalid(format!("user agent: {e}")))?
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(16 * 1024 * 1024))
        .initial_connection_window_size(Some(32 * 1024 * 1024))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_timeout(Duration::from_secs(15));
    if url.starts_with("https://") {
        ep = ep
            .tls_config(ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| ZerobusError::invalid(format!("TLS config: {e}")))?;
    }
    Ok(ep.connect_lazy())
}
