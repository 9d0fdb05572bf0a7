//! The end of a stream's life: waiting for offsets, flushing, closing (with the in-flight limits
//! lifted for what the caller still holds), aborting, and what a failed stream leaves
//! unacknowledged.

use std::time::Duration;

use super::{supervisor, StreamState, ZerobusStream};
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::payload::Payload;

impl ZerobusStream {
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

    /// Stops the stream without waiting for acks; unacknowledged records are dropped (and their
    /// release callbacks run), including any kept after a failure. Used when a handle is freed
    /// without close.
    pub fn abort(&self) {
        self.shared.lock().closing = true;
        self.shared.fail_with(ZerobusError::new(ErrorCode::StreamClosed, "stream aborted"), true);
    }
}
