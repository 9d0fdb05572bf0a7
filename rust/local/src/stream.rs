//! The `EphemeralStream` RPC.
//!
//! Each call runs two tasks:
//! - the receiver reads requests, checks offsets, converts records to JSON lines and groups
//!   everything already available (up to [`GROUP_MAX_MESSAGES`] / [`GROUP_MAX_BYTES`]) into one
//!   batch;
//! - the committer appends batches to the table file (one write per commit, fsync if
//!   configured) and then sends one cumulative ack per commit.
//!
//! Records received but not committed when a stream ends abnormally are discarded.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use zerobus_proto::zerobus::ephemeral_stream_response::Payload as RespPayload;
use zerobus_proto::zerobus::{
    CloseStreamSignal, CreateIngestStreamRequest, CreateIngestStreamResponse, EphemeralStreamResponse,
    IngestRecordResponse, RecordType,
};

use crate::faults::StreamFaults;
use crate::records::{self, RecordFormat};
use crate::request::{Kind, StreamRequest};
use crate::state::{validate_table_name, State, Table};

/// Group commit caps: messages and bytes gathered into one commit.
pub(crate) const GROUP_MAX_MESSAGES: usize = 4096;
pub(crate) const GROUP_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Batches queued between receiver and committer.
pub(crate) const COMMIT_QUEUE: usize = 4;

type RespTx = mpsc::Sender<Result<EphemeralStreamResponse, Status>>;

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

/// An `EphemeralStream` call: the stream runs in a task of its own; the response (whose
/// messages it sends) is returned at once, so tonic sends the initial metadata now.
pub(crate) fn ephemeral_stream(
    state: Arc<State>,
    request: Request<Streaming<StreamRequest>>,
) -> Response<ReceiverStream<Result<EphemeralStreamResponse, Status>>> {
    let headers = CallHeaders::read(&state, request.metadata());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run_stream(state, headers, request.into_inner(), tx));
    Response::new(ReceiverStream::new(rx))
}

pub(crate) fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

/// Everything decided at create_stream time.
struct StreamSetup {
    table: Arc<Table>,
    format: RecordFormat,
    faults: StreamFaults,
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

fn setup_stream(state: &State, headers: &CallHeaders, create: CreateIngestStreamRequest) -> Result<StreamSetup, Status> {
    check_auth(state, headers.authorization.as_deref())?;
    let table_name = create.table_name.clone().unwrap_or_default();
    if table_name.is_empty() {
        return Err(invalid("create_stream: table_name is required"));
    }
    validate_table_name(&table_name).map_err(invalid)?;
    check_table_header(headers.table_name.as_deref(), &table_name, "create_stream table_name")?;
    let table = resolve_table(state, &table_name)?;
    let format = match create.record_type.map(RecordType::try_from) {
        Some(Ok(RecordType::Json)) => RecordFormat::Json,
        Some(Ok(RecordType::Proto)) => {
            let bytes = create
                .descriptor_proto
                .as_ref()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("create_stream: descriptor_proto is required for record_type PROTO"))?;
            RecordFormat::Proto(records::build_descriptor(bytes).map_err(invalid)?)
        }
        Some(Ok(RecordType::Unspecified)) | None => {
            return Err(invalid("create_stream: record_type must be PROTO or JSON"))
        }
        Some(Err(_)) => return Err(invalid("create_stream: unknown record_type")),
    };
    let faults = state.take_faults(&table_name);
    if let Some(status) = faults.fail_create.clone() {
        return Err(status);
    }
    Ok(StreamSetup { table, format, faults })
}

/// Receiver → committer messages.
pub(crate) enum CommitMsg {
    /// Complete JSON lines for `records` records; ack up to `last_offset` once written.
    Batch { buf: Vec<u8>, records: u64, last_offset: i64 },
    /// Commit everything queued, then end the stream (with this status, or OK when None).
    Finish(Option<Status>),
    /// Discard everything not yet committed, then end the stream (status, or OK when None).
    Abort(Option<Status>),
}

/// How the receiver loop ended.
pub(crate) enum End {
    Finish(Option<Status>),
    Abort(Option<Status>),
}

/// What a stream's receiver has gathered for the next commit (both kinds of stream).
pub(crate) struct Pending {
    /// Offset the next record message must carry.
    pub expected_offset: i64,
    /// Records (rows, on a DoPut stream) received on this stream; faults count these.
    pub received: u64,
    /// JSON lines not yet handed to the committer.
    pub buf: Vec<u8>,
    pub buf_records: u64,
    pub last_offset: Option<i64>,
}

impl Pending {
    pub fn new() -> Self {
        Self { expected_offset: 0, received: 0, buf: Vec::with_capacity(64 * 1024), buf_records: 0, last_offset: None }
    }

    /// The message at `expected_offset` was accepted with `records` records, already in `buf`.
    pub fn accept(&mut self, records: u64) {
        self.buf_records += records;
        self.received += records;
        self.last_offset = Some(self.expected_offset);
        self.expected_offset += 1;
    }

    /// Everything gathered since the last call, as one commit.
    pub fn take_batch(&mut self) -> Option<CommitMsg> {
        let last_offset = self.last_offset.take()?;
        let cap = self.buf.len().clamp(4096, GROUP_MAX_BYTES + GROUP_MAX_BYTES / 4);
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
        let records = std::mem::take(&mut self.buf_records);
        Some(CommitMsg::Batch { buf, records, last_offset })
    }
}

/// One kind of stream's receiver (EphemeralStream or DoPut), driven by [`run_receiver`].
pub(crate) trait StreamReceiver {
    /// A client message.
    type Msg;
    /// A server message.
    type Out;
    /// Checks and converts one client message into [`Pending`]; on error nothing of it is kept.
    fn process(&mut self, msg: Self::Msg) -> Result<(), Status>;
    fn pending(&mut self) -> &mut Pending;
    /// The message telling the client that the server closes the stream in `dur`.
    fn close_signal(&self, dur: Duration) -> Self::Out;
    /// An acknowledgement of `offset` (`records` committed so far), for injected faults.
    fn ack(offset: i64, records: u64) -> Self::Out;
}

/// Receiver-side state of one EphemeralStream.
struct Receiver {
    format: RecordFormat,
    max_record_bytes: usize,
    /// Benchmark mode (`ServerConfig::discard`): check, acknowledge, store nothing.
    discard: bool,
    p: Pending,
}

impl Receiver {
    fn check_size(&self, len: usize) -> Result<(), String> {
        if len > self.max_record_bytes {
            Err(format!(
                "record of {len} bytes exceeds the maximum record size of {} bytes",
                self.max_record_bytes
            ))
        } else {
            Ok(())
        }
    }

    /// Checks one record and, unless discarding, appends it as a JSON line.
    fn append_record(&mut self, kind: Kind, rec: &[u8]) -> Result<(), String> {
        match (kind, &self.format) {
            (Kind::Json, RecordFormat::Json) => {
                self.check_size(rec.len())?;
                // Checked even when discarding: a JSON record is a protobuf string.
                let s = std::str::from_utf8(rec).map_err(|e| format!("JSON record is not valid UTF-8: {e}"))?;
                if self.discard {
                    return Ok(());
                }
                records::append_json(&mut self.p.buf, s)
            }
            (Kind::Proto, RecordFormat::Proto(desc)) => {
                self.check_size(rec.len())?;
                if self.discard {
                    return Ok(());
                }
                records::append_proto(&mut self.p.buf, desc, rec)
            }
            (Kind::Json, RecordFormat::Proto(_)) => Err("record type mismatch: json_record on a PROTO stream".to_string()),
            (Kind::Proto, RecordFormat::Json) => Err("record type mismatch: proto_encoded_record on a JSON stream".to_string()),
        }
    }

    fn check_offset(&self, offset: Option<i64>) -> Result<i64, Status> {
        match offset {
            Some(o) if o == self.p.expected_offset => Ok(o),
            Some(o) => Err(invalid(format!(
                "unexpected offset_id {o}: expected {}",
                self.p.expected_offset
            ))),
            None => Err(invalid(format!(
                "missing offset_id: expected {}",
                self.p.expected_offset
            ))),
        }
    }

}

impl StreamReceiver for Receiver {
    type Msg = StreamRequest;
    type Out = EphemeralStreamResponse;

    fn process(&mut self, req: StreamRequest) -> Result<(), Status> {
        let records = match req {
            StreamRequest::Record(r) => {
                let off = self.check_offset(r.offset_id)?;
                let mark = self.p.buf.len();
                let res = match r.record() {
                    Some((kind, rec)) => self.append_record(kind, rec),
                    None => Err("request has no record".to_string()),
                };
                if let Err(reason) = res {
                    self.p.buf.truncate(mark);
                    return Err(invalid(format!("record at offset {off}: {reason}")));
                }
                1
            }
            StreamRequest::Batch(b) => {
                let off = self.check_offset(b.offset_id)?;
                let mark = self.p.buf.len();
                let mut n = 0u64;
                let res = match &b.batch {
                    Some(batch) => batch.records().enumerate().try_for_each(|(i, rec)| {
                        n += 1;
                        let rec = rec.map_err(|e| (i, format!("malformed batch: {e}")))?;
                        self.append_record(batch.kind, rec).map_err(|e| (i, e))
                    }),
                    None => Err((0, "batch request has no batch".to_string())),
                };
                if let Err((i, reason)) = res {
                    self.p.buf.truncate(mark);
                    return Err(invalid(format!(
                        "record at offset {off} (batch index {i}): {reason}"
                    )));
                }
                n
            }
            StreamRequest::Create(_) => {
                return Err(invalid(format!(
                    "request at offset {}: create_stream sent twice on the same stream",
                    self.p.expected_offset
                )))
            }
            StreamRequest::Empty => {
                return Err(invalid(format!(
                    "request at offset {}: empty request",
                    self.p.expected_offset
                )))
            }
        };
        self.p.accept(records);
        Ok(())
    }

    fn pending(&mut self) -> &mut Pending {
        &mut self.p
    }

    fn ack(offset: i64, _records: u64) -> EphemeralStreamResponse {
        ephemeral_ack(offset)
    }

    fn close_signal(&self, dur: Duration) -> EphemeralStreamResponse {
        EphemeralStreamResponse {
            payload: Some(RespPayload::CloseStreamSignal(CloseStreamSignal {
                duration: Some(prost_types::Duration { seconds: dur.as_secs() as i64, nanos: dur.subsec_nanos() as i32 }),
            })),
        }
    }
}

fn ephemeral_ack(offset: i64) -> EphemeralStreamResponse {
    EphemeralStreamResponse {
        payload: Some(RespPayload::IngestRecordResponse(IngestRecordResponse { durability_ack_up_to_offset: Some(offset) })),
    }
}

async fn run_stream(
    state: Arc<State>,
    headers: CallHeaders,
    mut inbound: Streaming<StreamRequest>,
    tx: RespTx,
) {
    let Some(first) = first_message(&state, &mut inbound, &tx).await else { return };
    let create = match first {
        StreamRequest::Create(c) => *c,
        _ => return refuse(&state, &tx, invalid("the first message of a stream must be create_stream")).await,
    };
    let setup = match setup_stream(&state, &headers, create) {
        Ok(s) => s,
        Err(status) => return refuse(&state, &tx, status).await,
    };
    if setup.faults.ack_before_create && tx.send(Ok(ephemeral_ack(0))).await.is_err() {
        return;
    }
    let created = EphemeralStreamResponse {
        payload: Some(RespPayload::CreateStreamResponse(CreateIngestStreamResponse {
            stream_id: Some(state.next_stream_id()),
        })),
    };
    if !accept(&state, &tx, created).await {
        return;
    }

    let StreamSetup { table, format, faults } = setup;
    let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
    let committer = tokio::spawn(run_committer(
        state.clone(),
        table,
        crx,
        tx.clone(),
        AckFaults::of(&faults),
        |offset, _records| ephemeral_ack(offset),
    ));

    let rx = Receiver {
        format,
        max_record_bytes: state.config.max_record_bytes,
        discard: state.config.discard,
        p: Pending::new(),
    };
    run_receiver(&state, rx, inbound, faults, tx, ctx, committer).await;
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

/// The receive loop of a stream, after setup: reads client messages, groups everything already
/// available (up to [`GROUP_MAX_MESSAGES`] / [`GROUP_MAX_BYTES`]) into one commit, applies the
/// stream's faults, then ends the stream through [`finish_receiver`].
pub(crate) async fn run_receiver<R, S>(
    state: &State,
    mut rx: R,
    mut inbound: S,
    faults: StreamFaults,
    tx: mpsc::Sender<Result<R::Out, Status>>,
    ctx: mpsc::Sender<CommitMsg>,
    committer: tokio::task::JoinHandle<()>,
) where
    R: StreamReceiver,
    S: futures::Stream<Item = Result<R::Msg, Status>> + Unpin,
{
    let mut shutdown = state.shutdown.clone();
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let mut close_deadline: Option<Instant> = None;
    let mut ack_beyond = faults.ack_beyond;

    let end: End = 'outer: loop {
        let first = tokio::select! {
            biased;
            _ = crate::state::shutdown_requested(&mut shutdown) => {
                break End::Abort(Some(Status::unavailable("server shutting down")));
            }
            _ = tokio::time::sleep_until(close_deadline.unwrap_or(far_future)), if close_deadline.is_some() => {
                break End::Abort(None);
            }
            m = inbound.next() => m,
        };
        let mut next = match first {
            Some(Ok(msg)) => Some(msg),
            // Client half-closed: commit what we have, then end OK.
            None => break End::Finish(None),
            // A message the server cannot decode (too large, malformed), or the client went away
            // (then the status is not delivered): discard what is not committed.
            Some(Err(status)) => break End::Abort(Some(status)),
        };
        let mut pending_end: Option<End> = None;
        let mut n_msgs = 0usize;
        while let Some(msg) = next.take() {
            if let Err(status) = rx.process(msg) {
                pending_end = Some(End::Finish(Some(status)));
                break;
            }
            n_msgs += 1;
            let received = rx.pending().received;
            if let Some(a) = ack_beyond.filter(|a| received >= a.records) {
                ack_beyond = None;
                let _ = tx.send(Ok(R::ack(a.offset, received))).await;
            }
            if let Some(n) = faults.drop_after_records {
                if received >= n {
                    break 'outer End::Abort(Some(Status::unavailable("injected fault: stream dropped")));
                }
            }
            if let Some((n, status)) = &faults.fail_after_records {
                if received >= *n {
                    pending_end = Some(End::Finish(Some(status.clone())));
                    break;
                }
            }
            if let Some((n, dur)) = faults.close_signal_after_records {
                if close_deadline.is_none() && received >= n {
                    close_deadline = Some(Instant::now() + dur);
                    let _ = tx.send(Ok(rx.close_signal(dur))).await;
                }
            }
            if n_msgs >= GROUP_MAX_MESSAGES || rx.pending().buf.len() >= GROUP_MAX_BYTES {
                break;
            }
            next = match inbound.next().now_or_never() {
                Some(Some(Ok(msg))) => Some(msg),
                Some(None) => {
                    pending_end = Some(End::Finish(None));
                    None
                }
                Some(Some(Err(status))) => {
                    pending_end = Some(End::Abort(Some(status)));
                    None
                }
                None => None,
            };
        }
        if let Some(End::Abort(s)) = pending_end {
            break End::Abort(s);
        }
        let batch = rx.pending().take_batch();
        if !faults.withhold_acks {
            if let Some(batch) = batch {
                if ctx.send(batch).await.is_err() {
                    break End::Abort(None);
                }
            }
        }
        if let Some(e) = pending_end {
            break e;
        }
    };

    let last_batch = if faults.withhold_acks { None } else { rx.pending().take_batch() };
    drop(tx);
    drop(inbound);
    finish_receiver(state, end, last_batch, ctx, committer).await;
}

/// Drains whatever is queued without waiting. Returns true if the channel is closed.
pub(crate) fn drain(crx: &mut mpsc::Receiver<CommitMsg>, msgs: &mut Vec<CommitMsg>) -> bool {
    loop {
        match crx.try_recv() {
            Ok(m) => msgs.push(m),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}

/// Ends a stream's receiver (EphemeralStream or DoPut): on a finish, hands the last batch (none
/// when acks are withheld) and the end to the committer; on an abort, tells it to discard. Then
/// waits for the committer and updates the stream stats.
pub(crate) async fn finish_receiver(
    state: &State,
    end: End,
    last_batch: Option<CommitMsg>,
    ctx: mpsc::Sender<CommitMsg>,
    committer: tokio::task::JoinHandle<()>,
) {
    match end {
        End::Finish(status) => {
            if let Some(batch) = last_batch {
                let _ = ctx.send(batch).await;
            }
            if status.is_some() {
                state.streams_failed.fetch_add(1, Ordering::Relaxed);
            }
            let _ = ctx.send(CommitMsg::Finish(status)).await;
        }
        End::Abort(status) => {
            state.streams_failed.fetch_add(1, Ordering::Relaxed);
            let _ = ctx.send(CommitMsg::Abort(status)).await;
        }
    }
    drop(ctx);
    let _ = committer.await;
    state.streams_active.fetch_sub(1, Ordering::Relaxed);
}

/// What injected faults do to a committer's acknowledgements.
pub(crate) struct AckFaults {
    pub delay: Option<Duration>,
    /// Commit, but never send the acks.
    pub lose: bool,
    /// After every ack, acknowledge offset 0 again.
    pub backwards: bool,
    /// Hold back each commit's last batch until the next commit (Arrow Flight: rows behind offsets).
    pub rows_behind: bool,
}

impl AckFaults {
    pub fn of(f: &StreamFaults) -> AckFaults {
        AckFaults { delay: f.ack_delay, lose: f.lose_acks, backwards: f.ack_backwards, rows_behind: false }
    }
}

/// Commits batches (one write per commit) and sends one cumulative ack per commit, built by
/// `make_ack(last committed offset, records committed on this stream so far)`.
pub(crate) async fn run_committer<T: Send + 'static>(
    state: Arc<State>,
    table: Arc<Table>,
    mut crx: mpsc::Receiver<CommitMsg>,
    tx: mpsc::Sender<Result<T, Status>>,
    faults: AckFaults,
    mut make_ack: impl FnMut(i64, u64) -> T + Send,
) {
    let AckFaults { delay: ack_delay, lose: lose_acks, backwards, rows_behind } = faults;
    let fsync = state.config.fsync;
    let mut committed_records = 0u64;
    // rows_behind: the last batch of the previous commit, not written yet.
    let mut held: Option<(Vec<u8>, u64)> = None;
    let mut msgs: Vec<CommitMsg> = Vec::new();
    loop {
        let Some(m) = crx.recv().await else { return };
        msgs.push(m);
        drain(&mut crx, &mut msgs);
        if let Some(delay) = ack_delay {
            tokio::time::sleep(delay).await;
            drain(&mut crx, &mut msgs);
        }
        // An abort anywhere in the queue discards everything not yet committed.
        if let Some(pos) = msgs.iter().position(|m| matches!(m, CommitMsg::Abort(_))) {
            if let CommitMsg::Abort(Some(status)) = msgs.swap_remove(pos) {
                let _ = tx.send(Err(status)).await;
            }
            return;
        }
        let mut batches = Vec::with_capacity(msgs.len());
        let mut last_offset: Option<i64> = None;
        let mut finish: Option<Option<Status>> = None;
        for m in msgs.drain(..) {
            match m {
                CommitMsg::Batch { buf, records: r, last_offset: o } => {
                    batches.push((buf, r));
                    last_offset = Some(o);
                }
                CommitMsg::Finish(s) => finish = Some(s),
                CommitMsg::Abort(_) => unreachable!(),
            }
        }
        if let Some(offset) = last_offset {
            if rows_behind {
                let last = batches.pop().expect("a batch came");
                if let Some(h) = held.replace(last) {
                    batches.insert(0, h);
                }
            }
            let records: u64 = batches.iter().map(|b| b.1).sum();
            let bufs = batches.into_iter().map(|b| b.0).collect();
            let stored = if state.config.discard { Ok(()) } else { table.append(bufs, records, fsync).await };
            if let Err(e) = stored {
                let _ = tx
                    .send(Err(Status::internal(format!(
                        "cannot write table file {}: {e}",
                        table.path.display()
                    ))))
                    .await;
                return;
            }
            committed_records += records;
            let ack = make_ack(offset, committed_records);
            if !lose_acks && tx.send(Ok(ack)).await.is_err() {
                return;
            }
            if backwards && !lose_acks && offset > 0 && tx.send(Ok(make_ack(0, committed_records))).await.is_err() {
                return;
            }
        }
        if let Some(status) = finish {
            if let Some(status) = status {
                let _ = tx.send(Err(status)).await;
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(discard: bool) -> Receiver {
        Receiver { format: RecordFormat::Json, max_record_bytes: 1 << 20, discard, p: Pending::new() }
    }

    /// An EphemeralStreamRequest's bytes: an IngestRecordRequest (field 2) or, with `batch`, an
    /// IngestRecordBatchRequest with a JSON batch (field 3), carrying `record` at offset 0.
    /// Written by hand: prost's `String` fields cannot carry the invalid UTF-8 the test needs.
    fn request(batch: bool, record: &[u8]) -> StreamRequest {
        let mut inner = vec![0x08, 0x00]; // offset_id 0
        if batch {
            let mut list = vec![0x0a, record.len() as u8];
            list.extend_from_slice(record);
            inner.extend([0x1a, list.len() as u8]);
            inner.extend(list);
        } else {
            inner.extend([0x1a, record.len() as u8]);
            inner.extend_from_slice(record);
        }
        let mut msg = vec![if batch { 0x1a } else { 0x12 }, inner.len() as u8];
        msg.extend(inner);
        StreamRequest::decode(bytes::Bytes::from(msg)).unwrap()
    }

    #[test]
    fn json_records_must_be_utf8_even_when_discarded() {
        for discard in [true, false] {
            for batch in [false, true] {
                let mut rx = receiver(discard);
                let err = rx.process(request(batch, b"{\"a\":\"\xff\"}")).unwrap_err();
                assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
                assert!(err.message().contains("not valid UTF-8"), "{}", err.message());
                assert!(rx.process(request(batch, b"{\"a\":1}")).is_ok(), "the same offset, valid: accepted");
            }
        }
    }
}
