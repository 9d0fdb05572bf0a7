//! The request side of one physical stream: polled by the HTTP/2 body, it takes landing-zone
//! entries in chunks (cloning `Bytes` handles, never record bytes).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::Shared;
use crate::arrow::ArrowPayload;
use crate::codec::{OutRequest, Payload};

/// Entries the sender takes from the landing zone per lock.
const SEND_CHUNK: usize = 512;

pub(super) struct OutStream {
    pub shared: Arc<Shared>,
    pub generation: u64,
    pub create: Option<OutRequest>,
    pub buf: VecDeque<OutRequest>,
}

impl Stream for OutStream {
    type Item = OutRequest;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutRequest>> {
        let r = self.get_mut().next_request(cx);
        crate::codec::probe::set(matches!(r, Poll::Ready(Some(_))));
        r
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
