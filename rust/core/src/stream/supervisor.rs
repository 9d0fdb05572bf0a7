//! Runs a stream's physical streams one after another (each opened by [`super::physical`]),
//! reads their acks and recovers: on a retryable failure it reopens after a backoff and replays
//! the landing zone from its first entry, within a retry budget.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::call::from_server;
use super::physical::{open_physical, Physical, Responses};
use super::{LogLevel, Shared, StreamState};
use crate::codec::Incoming;
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::net::transport::status_error;
use crate::payload::Payload;

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

/// What the ack reader's timer is set for.
#[derive(Clone, Copy)]
enum Deadline {
    /// The oldest unacknowledged request's ack timeout.
    Ack(std::time::Instant),
    /// The server's time to end a finished call.
    Finish(std::time::Instant),
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

/// Resolves once the stream has failed (or was aborted, which fails it). `fail` leaves a permit
/// on `stop` for the supervisor, its only waiter, whatever it is doing at that moment.
async fn failed(shared: &Shared) {
    shared.stop.notified().await;
}

/// An idle stream (nothing to replay when it opened) must stay up this long for its end not to
/// count against the retry budget: a server that accepts streams and breaks them at once must not
/// cause an endless reconnect loop, even with nothing to send.
const IDLE_UPTIME: Duration = Duration::from_secs(10);

/// What one physical stream achieved, measured against the requests waiting when it opened
/// (its replay set, logical offsets `first..=last`).
struct Progress {
    replay: Option<(i64, i64)>,
    opened: tokio::time::Instant,
    /// Highest logical offset it acknowledged.
    acked: Option<i64>,
}

impl Progress {
    fn new(replay: Option<(i64, i64)>) -> Progress {
        Progress { replay, opened: tokio::time::Instant::now(), acked: None }
    }
    /// Nothing opened: no progress at all.
    fn none() -> Progress {
        Progress { replay: Some((0, 0)), opened: tokio::time::Instant::now(), acked: None }
    }
    fn ack(&mut self, acked: i64) {
        self.acked = Some(self.acked.map_or(acked, |a| a.max(acked)));
    }
    /// It acknowledged everything that was waiting when it opened.
    fn caught_up(&self) -> bool {
        match self.replay {
            Some((_, last)) => self.acked.is_some_and(|a| a >= last),
            None => true,
        }
    }
    /// Enough progress to reset the retry budget: at least half of its replay set acknowledged
    /// (so a stream working through a large backlog keeps going while storms that acknowledge
    /// little run out of attempts); with nothing to replay, an ack or a minimum uptime.
    fn progressed(&self) -> bool {
        match self.replay {
            Some((first, last)) => self.acked.is_some_and(|a| a >= first + (last - first) / 2),
            None => self.acked.is_some() || self.opened.elapsed() >= IDLE_UPTIME,
        }
    }
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
        if { let st = shared.lock(); st.finished && st.landing.is_empty() } {
            return; // closed: everything acknowledged, nothing to open a stream for
        }
        let (broken, progress) = match open_physical(&shared).await {
            Err(e) => (e, Progress::none()),
            Ok(mut physical) => {
                let mut progress = Progress::new(physical.replay);
                let outcome = read_acks(&shared, &mut physical, &mut progress).await;
                let broken = match outcome {
                    Outcome::Finished => {
                        // Ended cleanly: nothing to reset; the connection closes gracefully.
                        physical.cancel.0 = None;
                        physical.reset.0 = None;
                        shared.update(|p| {
                            if p.state != StreamState::Failed {
                                p.state = StreamState::Closed
                            }
                        });
                        return;
                    }
                    Outcome::Fail(e) => {
                        shared.fail(e);
                        return;
                    }
                    Outcome::Stopped => return,
                    Outcome::Handover if progress.caught_up() => {
                        shared.log(LogLevel::Info, || "moving to a new stream after the server's CloseStreamSignal".into());
                        // Not a failure: move to the next stream, at once if this one acknowledged
                        // something, else after the backoff (a server closing idle streams must
                        // not cause a reconnect loop).
                        if !abandon(&shared) {
                            return;
                        }
                        if progress.progressed() {
                            failures = 0;
                        }
                        if progress.acked.is_none() && !backoff(&shared).await {
                            return;
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
        {
            let mut st = shared.lock();
            if st.finished && st.landing.is_empty() {
                // Closed (everything acknowledged) while the call was ending: nothing to reopen for.
                return;
            }
            st.last_error = Some(broken.clone());
        }
        if progress.progressed() {
            failures = 0;
        }
        failures += 1;
        if !broken.retryable || !shared.opts.recovery || failures > shared.opts.recovery_retries {
            let e = if broken.retryable { gave_up(broken, failures) } else { broken };
            shared.fail(e);
            return;
        }
        shared.update(|p| {
            if !matches!(p.state, StreamState::Opening | StreamState::Failed) {
                p.state = StreamState::Recovering
            }
        });
        shared.log(LogLevel::Warn, || {
            format!(
                "physical stream ended: {broken}; reopening in {} ms (attempt {failures} of {})",
                shared.opts.recovery_backoff_ms,
                shared.opts.recovery_retries
            )
        });
        if !backoff(&shared).await {
            return;
        }
    }
}

/// Sleeps `recovery_backoff_ms`; false if the stream failed (or was aborted) meanwhile.
async fn backoff(shared: &Shared) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(shared.opts.recovery_backoff_ms)) => true,
        _ = failed(shared) => false,
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


async fn read_acks(shared: &Arc<Shared>, physical: &mut Physical, progress: &mut Progress) -> Outcome {
    let ack_timeout = Duration::from_millis(shared.opts.server_lack_of_ack_timeout_ms);
    let meter = physical.meter.clone();
    let responses = &mut physical.responses;
    // The connection is reset when the stream gives up on it (a timeout, a protocol violation);
    // after the server's own end of the call (a status, end of stream, a close signal) it
    // closes gracefully.
    let reset = &mut physical.reset;
    // Built once and polled again on every turn: acks arrive by the thousand, and a timer or
    // waiter registered per message would cost more than the ack itself.
    let stop = failed(shared);
    tokio::pin!(stop);
    let timer = tokio::time::sleep(ack_timeout);
    tokio::pin!(timer);
    // The ack timeout measures the server's silence, not the link's speed: while requests sent
    // on this stream wait for their acks, the stream is broken once, for `ack_timeout`, no ack
    // moved on and the connection took no more of the bytes that were waiting when the server
    // was last heard from (see `crate::net::Meter`). A slow link keeps taking those bytes and a
    // live server keeps acknowledging; a dead connection does neither, and a server that reads
    // everything but acknowledges nothing gets no credit for records sent after its last ack.
    // The timer is set to that deadline and, when it fires, checked against what happened
    // meanwhile and set again. With nothing outstanding there is no deadline until the sender
    // sends again. Once closing is done (all acknowledged, half-closed), the server gets that
    // long to end the call.
    let mut last_ack: Option<std::time::Instant> = None;
    // The outstanding period the meter's credit was last granted for.
    let mut credited: Option<std::time::Instant> = None;
    let credit = |st: &super::landing::State| {
        // What waits for acks, with room for the framing around it.
        let b = st.sent_unacked_bytes() as u64;
        meter.credit(b + b / 4 + 64 * 1024);
    };
    let mut deadline = |last_ack: Option<std::time::Instant>| -> (Option<std::time::Instant>, bool) {
        let st = shared.lock();
        let since = st.outstanding_since();
        if since.is_some() && since != credited {
            credited = since;
            credit(&st);
        }
        let since = since.map(|t| t.max(last_ack.unwrap_or(t)).max(meter.last_progress().unwrap_or(t)));
        (since.map(|t| t + ack_timeout), st.finished && st.landing.is_empty())
    };
    let mut armed: Option<Deadline> = None;
    loop {
        if armed.is_none() {
            armed = match deadline(last_ack) {
                (Some(at), _) => Some(Deadline::Ack(at)),
                (None, true) => Some(Deadline::Finish(std::time::Instant::now() + ack_timeout)),
                (None, false) => None,
            };
            if let Some(Deadline::Ack(at) | Deadline::Finish(at)) = armed {
                timer.as_mut().reset(at.into());
            }
        }
        let msg = tokio::select! {
            m = responses.message() => m,
            _ = &mut stop => return Outcome::Stopped,
            _ = &mut timer, if armed.is_some() => {
                let kind = armed.take();
                let (at, finished) = deadline(last_ack);
                if at.is_some_and(|at| at <= std::time::Instant::now()) {
                    let waiting = { let st = shared.lock(); st.sent };
                    return Outcome::Broken(ZerobusError::new(
                        ErrorCode::Timeout,
                        format!(
                            "no acknowledgement from the server for {ack_timeout:?} while {waiting} requests waited for one, and nothing showed the link still delivering them"
                        ),
                    ));
                }
                if matches!(kind, Some(Deadline::Finish(_))) && at.is_none() && finished {
                    return Outcome::Finished;
                }
                continue;
            }
            _ = shared.sent.notified(), if armed.is_none() => continue,
        };
        // Everything but a close announcement is handled in place.
        let close_after: Option<Duration> = match msg {
            Ok(Some(Incoming::Ack { offset, records, close_after })) => {
                match ack(shared, offset, records) {
                    Ok(Some(acked)) => {
                        progress.ack(acked);
                        last_ack = Some(std::time::Instant::now());
                        credit(&shared.lock());
                    }
                    Ok(None) => {}
                    Err(e) => return Outcome::Broken(e),
                }
                match close_after {
                    Some(d) => Some(d),
                    None => continue,
                }
            }
            Ok(Some(Incoming::Close(d))) => d,
            Ok(Some(Incoming::Created(_) | Incoming::Other)) => continue,
            Ok(None) => {
                reset.0 = None;
                let st = shared.lock();
                if st.finished && st.landing.is_empty() {
                    return Outcome::Finished;
                }
                return Outcome::Broken(ZerobusError::new(ErrorCode::Transport, "server ended the stream"));
            }
            Err(status) => {
                if from_server(&status) {
                    reset.0 = None;
                }
                let e = status_error(&status);
                return if e.retryable { Outcome::Broken(e) } else { Outcome::Fail(e) };
            }
        };
        // The server will close this stream: hand over to a new one. Stop sending here, collect
        // the acks of what this stream already got (until it ends or the announced close time),
        // then reopen and replay the rest.
        shared.log(LogLevel::Info, || format!("the server will close the stream (CloseStreamSignal, in {close_after:?})"));
        shared.change_and_wake_sender(|st| st.draining = true);
        let mut grace = close_after.unwrap_or(ack_timeout).min(ack_timeout);
        if let Some(max) = shared.opts.stream_paused_max_wait_time_ms {
            grace = grace.min(Duration::from_millis(max));
        }
        return match tokio::time::timeout(grace, drain_acks(shared, responses, progress)).await {
            Ok(Err(e)) => Outcome::Broken(e),
            // The server ended the call: the connection closes gracefully.
            Ok(Ok(())) => {
                reset.0 = None;
                Outcome::Handover
            }
            // The grace ran out: given up on, like a timeout.
            Err(_) => Outcome::Handover,
        };
    }
}

/// Applies acks until the (draining) stream ends; fails on an acknowledgement of what was never
/// sent.
async fn drain_acks(shared: &Arc<Shared>, responses: &mut Responses, progress: &mut Progress) -> Result<()> {
    while let Ok(Some(resp)) = responses.message().await {
        if let Incoming::Ack { offset, records, .. } = resp {
            if let Some(acked) = ack(shared, offset, records)? {
                progress.ack(acked);
            }
        }
    }
    Ok(())
}

/// Applies a cumulative ack of physical offset `physical` and, on Flight, of `records` (rows)
/// durable on this physical stream. Returns the highest logical offset it acknowledged, if any
/// (None for an ack of what was acknowledged before, and for negative offsets: a Flight stream's
/// first PutResult says -1). With `records`, durability is by records: a batch is acknowledged
/// once all its rows are counted (the offset is checked, not trusted). An ack beyond what was
/// sent on this physical stream (by offset or by records) is a protocol violation: it
/// acknowledges records the server never received, so it is not applied, and the stream is
/// treated as broken (what is not acknowledged is replayed on a new one).
fn ack(shared: &Arc<Shared>, physical: i64, records: Option<u64>) -> Result<Option<i64>> {
    if physical < 0 && records.is_none_or(|r| r == 0) {
        return Ok(None);
    }
    let violation = |what: String, sent: String| {
        ZerobusError::new(
            ErrorCode::Server,
            format!("the server acknowledged {what} of this stream, but {sent}: an acknowledgement of records it never received is not applied"),
        )
        .retryable(true)
    };
    let mut popped: Vec<Payload> = Vec::new();
    let acked = {
        let mut st = shared.lock();
        let upto = st.base.saturating_add(physical);
        match st.sent_upto() {
            _ if physical < 0 => {}
            Some(last) if upto <= last => {}
            last => {
                let sent = last.map_or_else(|| "nothing was sent on it".to_string(), |l| format!("the last offset sent on it is {}", l - st.base));
                return Err(violation(format!("offset {physical}"), sent));
            }
        }
        let upto = match records {
            None => upto,
            Some(r) => match st.upto_records(r) {
                Ok(Some(o)) => o,
                Ok(None) => return Ok(None),
                Err(sent) => return Err(violation(format!("{r} records"), format!("{sent} were sent on it"))),
            },
        };
        st.pop_acked(upto, &mut popped)
    };
    let Some(acked) = acked else { return Ok(None) };
    // Releasing record buffers (possibly caller callbacks) happens outside the lock.
    drop(popped);
    shared.update(|p| p.acked = p.acked.max(acked));
    Ok(Some(acked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_resets_the_budget_after_half_the_replay_set_or_an_idle_uptime() {
        let mut p = Progress::new(Some((100, 199)));
        assert!(!p.progressed() && !p.caught_up());
        p.ack(120);
        assert!(!p.progressed(), "a fifth of the backlog is not enough");
        p.ack(149);
        assert!(p.progressed() && !p.caught_up());
        p.ack(199);
        assert!(p.caught_up());
        assert!(!Progress::none().progressed() && !Progress::none().caught_up());
        let mut idle = Progress::new(None);
        assert!(idle.caught_up() && !idle.progressed(), "an idle stream that broke at once made no progress");
        idle.ack(5);
        assert!(idle.progressed());
    }

    #[tokio::test]
    async fn a_panicking_task_fails_the_stream_instead_of_leaving_it_hanging() {
        let shared = crate::stream::test_shared();
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

