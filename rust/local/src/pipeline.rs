//! The receiver and committer every stream runs once admitted (EphemeralStream and DoPut):
//!
//! - the receiver ([`run_receiver`], with a [`StreamReceiver`] per kind of stream) reads
//!   requests, checks offsets, converts records to JSON lines and groups everything already
//!   available (up to [`GROUP_MAX_MESSAGES`] / [`GROUP_MAX_BYTES`]) into one batch;
//! - the committer ([`run_committer`]) appends batches to the table file (one write per commit,
//!   fsync if configured) and then sends one cumulative ack per commit.
//!
//! Records received but not committed when a stream ends abnormally are discarded.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::faults::StreamFaults;
use crate::state::{State, Table};

/// Group commit caps: messages and bytes gathered into one commit.
pub(crate) const GROUP_MAX_MESSAGES: usize = 4096;
pub(crate) const GROUP_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Batches queued between receiver and committer.
pub(crate) const COMMIT_QUEUE: usize = 4;

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
