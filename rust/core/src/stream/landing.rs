//! The landing zone: every request not yet acknowledged, in logical-offset order, with the
//! counters that bound it and the bookkeeping of the current physical stream.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Instant;

use crate::payload::Payload;
use crate::error::ZerobusError;

pub(super) struct Entry {
    pub offset: i64,
    pub payload: Payload,
}

/// Running totals of one stream (see [`super::Stats`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub ingested_records: u64,
    pub ingested_bytes: u64,
    pub sent_records: u64,
    pub sent_bytes: u64,
    pub acked_records: u64,
    pub acked_bytes: u64,
}

pub(super) struct State {
    pub counters: Counters,
    /// The error that ended the last physical stream (also when it was recovered).
    pub last_error: Option<ZerobusError>,
    /// Unacknowledged requests in logical-offset order (contiguous offsets).
    pub landing: VecDeque<Entry>,
    pub next_offset: i64,
    /// The first `sent` landing entries were handed to the current physical stream.
    pub sent: usize,
    pub inflight_records: usize,
    pub inflight_bytes: usize,
    /// Logical offset that has physical offset 0 on the current physical stream.
    pub base: i64,
    /// Physical stream generation; a sender of an older generation ends itself.
    pub generation: u64,
    /// The current physical stream got its create response; records may flow.
    pub ready: bool,
    /// No more ingests (close was called).
    pub closing: bool,
    /// The in-flight limits refuse nothing (see `ZerobusStream::lift_limits`).
    pub limits_lifted: bool,
    /// Everything is acknowledged and the request stream should end.
    pub finished: bool,
    /// The server sent CloseStreamSignal: stop sending on this physical stream.
    pub draining: bool,
    pub failed: Option<ZerobusError>,
    /// What was not acknowledged when the stream failed, kept for `unacked` / recreating the
    /// stream until the stream is dropped (or aborted).
    pub kept: VecDeque<Entry>,
    pub sender_waker: Option<Waker>,
    /// Since when requests handed to the current physical stream wait for their ack without a
    /// break (None: none waits). The ack timeout counts from it, or from a later sign of life.
    outstanding_since: Option<Instant>,
    /// The last logical offset handed to the current physical stream (None: nothing yet). An
    /// acknowledgement beyond it acknowledges what the server never received.
    sent_upto: Option<i64>,
    /// Record bytes of the entries handed to the current physical stream and not acknowledged.
    sent_bytes: usize,
    /// Records (Arrow: rows) acknowledged on the current physical stream.
    acked_here: u64,
}

impl State {
    pub fn new() -> State {
        State {
            counters: Counters::default(),
            last_error: None,
            landing: VecDeque::new(),
            next_offset: 0,
            sent: 0,
            inflight_records: 0,
            inflight_bytes: 0,
            base: 0,
            generation: 0,
            ready: false,
            closing: false,
            limits_lifted: false,
            finished: false,
            draining: false,
            failed: None,
            kept: VecDeque::new(),
            sender_waker: None,
            outstanding_since: None,
            sent_upto: None,
            sent_bytes: 0,
            acked_here: 0,
        }
    }

    /// Appends requests with consecutive offsets; returns the last offset.
    pub fn push(&mut self, payloads: impl IntoIterator<Item = Payload>, records: usize, bytes: usize) -> i64 {
        self.inflight_records += records;
        self.inflight_bytes += bytes;
        self.counters.ingested_records += records as u64;
        self.counters.ingested_bytes += bytes as u64;
        for payload in payloads {
            let offset = self.next_offset;
            self.next_offset += 1;
            self.landing.push_back(Entry { offset, payload });
        }
        self.next_offset - 1
    }

    /// A new physical stream starts: nothing is sent on it yet.
    pub fn restart_sending(&mut self) {
        self.sent = 0;
        self.outstanding_since = None;
        self.sent_upto = None;
        self.sent_bytes = 0;
        self.acked_here = 0;
    }

    /// Records that the landing entries up to index `end` were handed to the physical stream now.
    /// Returns true if nothing was waiting for an ack before (the ack timer has to start).
    pub fn mark_sent(&mut self, end: usize) -> bool {
        let was_idle = self.sent == 0;
        for e in self.landing.range(self.sent..end) {
            let b = e.payload.byte_len();
            self.counters.sent_records += e.payload.record_count() as u64;
            self.counters.sent_bytes += b as u64;
            self.sent_bytes += b;
        }
        if end > self.sent {
            self.sent = end;
            self.sent_upto = Some(self.landing[end - 1].offset);
            if was_idle {
                self.outstanding_since = Some(Instant::now());
            }
        }
        was_idle
    }

    /// Since when requests sent on the current physical stream wait for an ack without a break.
    pub fn outstanding_since(&self) -> Option<Instant> {
        self.outstanding_since
    }

    /// The last logical offset handed to the current physical stream.
    pub fn sent_upto(&self) -> Option<i64> {
        self.sent_upto
    }

    /// Record bytes handed to the current physical stream and waiting for their ack.
    pub fn sent_unacked_bytes(&self) -> usize {
        self.sent_bytes
    }

    /// The last logical offset whose records all lie within the first `records` records of the
    /// current physical stream (a cumulative count, as Flight's `ack_up_to_records`): None if
    /// that covers nothing new. Err(records sent on it) when `records` exceeds what was sent.
    pub fn upto_records(&self, records: u64) -> Result<Option<i64>, u64> {
        let mut total = self.acked_here;
        let mut upto = None;
        let mut within = true;
        for e in self.landing.range(..self.sent) {
            total += e.payload.record_count() as u64;
            within &= total <= records;
            if within {
                upto = Some(e.offset);
            }
        }
        if records > total {
            return Err(total);
        }
        Ok(upto)
    }

    /// Takes the sent entries up to logical offset `upto` off the landing zone into `out`;
    /// returns the highest offset taken.
    pub fn pop_acked(&mut self, upto: i64, out: &mut Vec<Payload>) -> Option<i64> {
        let mut acked = None;
        while self.sent > 0 && self.landing.front().is_some_and(|e| e.offset <= upto) {
            let e = self.landing.pop_front().expect("front exists");
            self.sent -= 1;
            let (n, b) = (e.payload.record_count(), e.payload.byte_len());
            self.inflight_records -= n;
            self.inflight_bytes -= b;
            self.sent_bytes -= b;
            self.acked_here += n as u64;
            self.counters.acked_records += n as u64;
            self.counters.acked_bytes += b as u64;
            acked = Some(e.offset);
            out.push(e.payload);
        }
        if self.sent == 0 {
            self.outstanding_since = None;
        }
        acked
    }

    /// Empties the landing zone (the stream failed or was aborted); the caller drops the entries
    /// outside the lock, which releases the records' memory.
    pub fn take_all(&mut self) -> VecDeque<Entry> {
        self.sent = 0;
        self.sent_bytes = 0;
        self.outstanding_since = None;
        self.inflight_records = 0;
        self.inflight_bytes = 0;
        std::mem::take(&mut self.landing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn json(n: usize) -> Vec<Payload> {
        (0..n).map(|_| Payload::Json(Bytes::from_static(b"{}"))).collect()
    }

    #[test]
    fn the_ack_timer_runs_while_sent_requests_wait_for_their_ack() {
        let mut st = State::new();
        assert_eq!(st.push(json(3), 3, 6), 2);
        assert!(st.outstanding_since().is_none() && st.sent_upto().is_none(), "nothing sent yet");
        assert!(st.mark_sent(2), "first send starts the timer");
        let first = st.outstanding_since().unwrap();
        assert_eq!(st.sent_upto(), Some(1));
        assert!(!st.mark_sent(3));
        assert_eq!(st.sent_upto(), Some(2));
        let mut out = Vec::new();
        assert_eq!(st.pop_acked(0, &mut out), Some(0));
        assert_eq!(st.outstanding_since(), Some(first), "still waiting without a break");
        assert_eq!(st.pop_acked(2, &mut out), Some(2));
        assert!(st.outstanding_since().is_none(), "everything sent is acknowledged");
        assert_eq!(st.sent_upto(), Some(2), "what was sent stays known until the next physical stream");
        st.push(json(1), 1, 2);
        assert!(st.mark_sent(1), "a send after a break starts the timer again");
        assert!(st.outstanding_since().unwrap() >= first);
        assert_eq!((st.inflight_records, st.inflight_bytes, out.len()), (1, 2, 3));
        assert_eq!(st.sent_unacked_bytes(), 2);
        st.restart_sending();
        assert!(st.outstanding_since().is_none() && st.sent_upto().is_none());
        assert_eq!(st.sent_unacked_bytes(), 0);
    }

    fn arrow(rows: usize) -> Payload {
        Payload::Arrow(crate::arrow::ArrowPayload { messages: std::sync::Arc::from(Vec::new()), rows })
    }

    #[test]
    fn records_acknowledge_whole_batches_only() {
        let mut st = State::new();
        st.push([arrow(10), arrow(20), arrow(5)], 35, 0);
        st.mark_sent(2);
        assert_eq!(st.upto_records(0), Ok(None));
        assert_eq!(st.upto_records(9), Ok(None), "part of the first batch is not the batch");
        assert_eq!(st.upto_records(10), Ok(Some(0)));
        assert_eq!(st.upto_records(29), Ok(Some(0)));
        assert_eq!(st.upto_records(30), Ok(Some(1)));
        assert_eq!(st.upto_records(31), Err(30), "beyond what was sent (the third batch is not)");
        let mut out = Vec::new();
        st.pop_acked(0, &mut out);
        assert_eq!(st.upto_records(10), Ok(None), "counts are cumulative on the physical stream");
        assert_eq!(st.upto_records(30), Ok(Some(1)));
        st.restart_sending();
        st.mark_sent(2);
        assert_eq!(st.upto_records(20), Ok(Some(1)), "a new physical stream counts from 0");
    }

    #[test]
    fn unsent_entries_are_never_acknowledged() {
        let mut st = State::new();
        st.push(json(2), 2, 4);
        let mut out = Vec::new();
        assert_eq!(st.pop_acked(5, &mut out), None);
        st.mark_sent(1);
        assert_eq!(st.pop_acked(5, &mut out), Some(0));
        assert_eq!(st.landing.len(), 1);
        let rest = st.take_all();
        assert_eq!((rest.len(), st.inflight_records, st.sent), (1, 0, 0));
    }
}
