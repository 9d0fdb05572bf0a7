//! The ingestion stream: landing zone, sender, ack reader and recovery.
//!
//! Here: the stream handle ([`ZerobusStream`]), what it reports ([`Progress`], [`Stats`]), the
//! state its tasks share, and starting a stream. Ingesting and its checks are in [`ingest`];
//! waiting, flushing, closing and aborting in [`close`].
//!
//! Data path (records of 64 KiB or more reach the socket, or the TLS encryption, from the
//! caller's memory; smaller ones are copied once into the HTTP/2 chunk that gathers messages,
//! after the copy at ingest that records of 1 KiB or less need):
//! `ingest_*` pushes a [`Payload`](crate::payload::Payload) (`Bytes` handles) onto the landing
//! zone ([`landing`]) under one short lock and wakes the sender only when it is idle. The sender
//! ([`sender`], the HTTP/2 request body of each call ([`call`])) takes entries in chunks, cloning
//! handles (refcount increments), and encodes them into [`crate::codec::Frames`]. The supervisor
//! ([`supervisor`]) opens physical streams ([`physical`]), reads cumulative acks and pops
//! acknowledged entries; on a retryable failure it opens a new physical stream and replays the
//! landing zone from its first entry.

mod call;
mod close;
mod ingest;
mod landing;
mod log;
mod options;
mod physical;
mod sender;
mod supervisor;

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::auth::SharedHeadersProvider;
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

    /// Logical offset of the last queued request (-1 if none).
    pub fn last_offset(&self) -> i64 {
        self.shared.lock().next_offset - 1
    }

    /// The schema of an Arrow stream.
    pub fn arrow_schema(&self) -> Option<Arc<crate::arrow::StreamSchema>> {
        match &self.shared.wire {
            Wire::Flight(s) => Some(s.clone()),
            Wire::Ephemeral => None,
        }
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
    opts.validate()
}
