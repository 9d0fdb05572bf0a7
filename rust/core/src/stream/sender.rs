//! The request side of one physical stream: the HTTP/2 request body. It takes landing-zone
//! entries in chunks (cloning `Bytes` handles, never record bytes) and encodes them into
//! [`Frames`]: large records leave as their own chunks, small ones are gathered.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use http_body::Frame;
use tonic::Status;

use super::Shared;
use crate::arrow::ArrowPayload;
use crate::codec::{Frames, OutRequest, Payload, GATHER_LIMIT};

/// Entries the sender takes from the landing zone per lock.
const SEND_CHUNK: usize = 512;

pub(super) struct OutStream {
    pub shared: Arc<Shared>,
    pub generation: u64,
    pub create: Option<OutRequest>,
    pub buf: VecDeque<OutRequest>,
}

/// Resets a call: the request body fails (hyper then resets the HTTP/2 stream, RST_STREAM), so
/// the server discards what it did not acknowledge.
#[derive(Default)]
pub(super) struct Cancel {
    cancelled: AtomicBool,
    waker: AtomicWaker,
}

impl Cancel {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The body's error once the call is cancelled. hyper resets the HTTP/2 stream with the reason
/// found in the error's sources (INTERNAL_ERROR without one): CANCEL, as tonic's own cancellation
/// does, so the server sees a cancelled call, not a failed one.
fn abandoned() -> Status {
    let mut s = Status::cancelled("the stream was abandoned");
    s.set_source(Arc::new(h2::Error::from(h2::Reason::CANCEL)));
    s
}

/// The request body of one call: the sender's requests as gRPC messages.
pub(super) struct RequestBody {
    out: OutStream,
    frames: Frames,
    cancel: Arc<Cancel>,
    ended: bool,
}

impl RequestBody {
    pub fn new(out: OutStream, cancel: Arc<Cancel>) -> RequestBody {
        RequestBody { out, frames: Frames::default(), cancel, ended: false }
    }
}

impl http_body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<bytes::Bytes>, Status>>> {
        let me = self.get_mut();
        me.cancel.waker.register(cx.waker());
        if me.cancel.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(abandoned())));
        }
        // Gather what the sender has (up to GATHER_LIMIT), then hand on one chunk at a time.
        while !me.ended && me.frames.len() < GATHER_LIMIT {
            match me.out.next_request(cx) {
                Poll::Ready(Some(r)) => r.write(&mut me.frames)?,
                Poll::Ready(None) => me.ended = true,
                Poll::Pending => break,
            }
        }
        match me.frames.next_chunk() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None if me.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl OutStream {
    fn next_request(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutRequest>> {
        if let Some(c) = self.create.take() {
            return Poll::Ready(Some(c));
        }
        if let Some(r) = self.buf.pop_front() {
            return Poll::Ready(Some(r));
        }
        let mut st = self.shared.lock();
        if st.generation != self.generation {
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
                    Payload::Arrow(a) => push_flight(&mut self.buf, a, offset),
                    p => self.buf.push_back(OutRequest::Records { offset, payload: p.clone() }),
                }
            }
            let start_timer = st.mark_sent(end);
            drop(st);
            if start_timer {
                self.shared.sent.notify_one();
            }
            return Poll::Ready(self.buf.pop_front());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_call_is_reset_with_cancel() {
        // hyper takes the RST_STREAM reason from the first h2::Error among the error's sources.
        let s = abandoned();
        assert_eq!(s.code(), tonic::Code::Cancelled);
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&s);
        let mut reason = None;
        while let Some(e) = src {
            if let Some(h) = e.downcast_ref::<h2::Error>() {
                reason = h.reason();
                break;
            }
            src = e.source();
        }
        assert_eq!(reason, Some(h2::Reason::CANCEL));
    }
}
