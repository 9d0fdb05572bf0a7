//! The request side of one physical stream: the HTTP/2 request body. It takes landing-zone
//! entries in chunks (cloning `Bytes` handles, never record bytes) and encodes them into
//! [`Frames`]: large records leave as their own chunks, small ones are gathered.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use http_body::Frame;
use tonic::Status;

use super::Shared;
use crate::arrow::ArrowPayload;
use crate::codec::{Frames, OutRequest, GATHER_LIMIT};
use crate::payload::Payload;

/// Entries the sender takes from the landing zone per lock.
const SEND_CHUNK: usize = 512;

pub(super) struct OutStream {
    shared: Arc<Shared>,
    generation: u64,
    create: Option<OutRequest>,
    buf: VecDeque<OutRequest>,
    /// Arrow: what was last sent on this call for each dictionary id (the message's shared
    /// number, None for one without). The server keeps a dictionary until another with its id
    /// replaces it, so a batch whose shared dictionary was the last one sent with that id does
    /// not send it again. A new call starts empty: replayed batches carry their dictionaries.
    dictionaries: HashMap<i64, Option<u64>>,
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
    pub fn new(shared: Arc<Shared>, generation: u64, create: Option<OutRequest>) -> OutStream {
        OutStream { shared, generation, create, buf: VecDeque::new(), dictionaries: HashMap::new() }
    }

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
                    Payload::Arrow(a) => push_flight(&mut self.buf, &mut self.dictionaries, a, offset),
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

/// An Arrow request as FlightData messages: its dictionaries (those not already in place on
/// this call), then the batch with its offset.
fn push_flight(buf: &mut VecDeque<OutRequest>, sent: &mut HashMap<i64, Option<u64>>, a: &ArrowPayload, offset: i64) {
    let Some((batch, dictionaries)) = a.messages.split_last() else {
        debug_assert!(false, "an Arrow payload without its record batch");
        return;
    };
    for m in dictionaries {
        match m.shared {
            Some(d) if sent.get(&d.id) == Some(&Some(d.number)) => continue,
            Some(d) => {
                sent.insert(d.id, Some(d.number));
            }
            // A dictionary the core encoded: it replaces the one with its id on the server.
            None => match dictionary_id(&m.header) {
                Some(id) => {
                    sent.insert(id, None);
                }
                // Not readable (never the case for headers the core wrote): nothing sent
                // before is known to be in place any more.
                None => sent.clear(),
            },
        }
        buf.push_back(OutRequest::FlightData { header: m.header.clone(), body: m.body.clone(), offset: None });
    }
    buf.push_back(OutRequest::FlightData { header: batch.header.clone(), body: batch.body.clone(), offset: Some(offset) });
}

fn dictionary_id(header: &[u8]) -> Option<i64> {
    arrow_ipc::root_as_message(header).ok()?.header_as_dictionary_batch().map(|d| d.id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ZERO_COPY_MIN;
    use crate::proto::{ephemeral_stream_request, ingest_record_request, EphemeralStreamRequest};
    use bytes::Bytes;
    use prost::Message;

    fn poll(body: &mut RequestBody) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let waker = futures::task::noop_waker();
        http_body::Body::poll_frame(Pin::new(body), &mut Context::from_waker(&waker))
    }

    /// The body's chunks until it has nothing more for now (Pending) or ends (None).
    fn drain(body: &mut RequestBody) -> (Vec<Bytes>, Poll<()>) {
        let mut chunks = Vec::new();
        loop {
            match poll(body) {
                Poll::Ready(Some(Ok(f))) => chunks.push(f.into_data().unwrap()),
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
                Poll::Ready(None) => return (chunks, Poll::Ready(())),
                Poll::Pending => return (chunks, Poll::Pending),
            }
        }
    }

    fn messages(chunks: &[Bytes]) -> Vec<EphemeralStreamRequest> {
        crate::codec::grpc_messages(chunks).iter().map(|m| EphemeralStreamRequest::decode(&m[..]).unwrap()).collect()
    }

    #[tokio::test]
    async fn the_body_sends_what_lands_in_order_and_ends_only_when_the_stream_is_finished() {
        let shared = crate::stream::test_shared();
        let big = Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(ZERO_COPY_MIN)));
        {
            let mut st = shared.lock();
            st.generation = 1;
            st.ready = true;
            st.push([Payload::Json(Bytes::from_static(b"{\"a\":0}")), Payload::Json(big.clone())], 2, 0);
        }
        let out = OutStream::new(shared.clone(), 1, Some(OutRequest::Create(Default::default())));
        let mut body = RequestBody::new(out, Arc::new(Cancel::default()));
        let (chunks, state) = drain(&mut body);
        assert!(state.is_pending(), "nothing more to send, but the stream goes on");
        assert!(chunks.iter().any(|c| c.as_ptr() == big.as_ptr()), "the large record is its own chunk");
        let m = messages(&chunks);
        assert_eq!(m.len(), 3, "the create request, then both records");
        assert_eq!(m[0], EphemeralStreamRequest::default());
        for (msg, (offset, want)) in m[1..].iter().zip([(0, Bytes::from_static(b"{\"a\":0}")), (1, big)]) {
            let Some(ephemeral_stream_request::Payload::IngestRecord(r)) = &msg.payload else { panic!() };
            assert_eq!(r.offset_id, Some(offset));
            assert_eq!(r.record, Some(ingest_record_request::Record::JsonRecord(String::from_utf8(want.to_vec()).unwrap())));
        }
        // A record landing later is sent next; the end comes once the stream is finished.
        shared.lock().push([Payload::Json(Bytes::from_static(b"{\"a\":2}"))], 1, 0);
        let (chunks, state) = drain(&mut body);
        assert!(state.is_pending());
        assert_eq!(messages(&chunks).len(), 1);
        shared.lock().finished = true;
        let (chunks, state) = drain(&mut body);
        assert!(chunks.is_empty() && state.is_ready(), "half-closed");
    }

    #[tokio::test]
    async fn a_cancelled_body_fails_and_an_abandoned_generation_sends_nothing() {
        let shared = crate::stream::test_shared();
        {
            let mut st = shared.lock();
            st.generation = 2; // a newer physical stream took over
            st.ready = true;
            st.push([Payload::Json(Bytes::from_static(b"{}"))], 1, 0);
        }
        let out = OutStream::new(shared.clone(), 1, None);
        let cancel = Arc::new(Cancel::default());
        let mut body = RequestBody::new(out, cancel.clone());
        let (chunks, state) = drain(&mut body);
        assert!(chunks.is_empty() && state.is_pending(), "an old generation neither sends nor half-closes");
        cancel.cancel();
        match poll(&mut body) {
            Poll::Ready(Some(Err(e))) => assert_eq!(e.code(), tonic::Code::Cancelled),
            other => panic!("expected the cancellation error, got {:?}", other.map(|o| o.map(|r| r.is_ok()))),
        }
    }

    #[test]
    fn a_dictionary_shared_by_batches_is_sent_once_per_call() {
        use crate::arrow::{encode_batch, split_ipc_stream, StreamSchema};
        use arrow_array::{types::Int32Type, DictionaryArray, RecordBatch};
        use arrow_schema::{DataType, Field, Schema};
        let ty = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![Field::new("d", ty, true)]));
        let values: DictionaryArray<Int32Type> = ["a", "b", "a", "c", "b", "a"].into_iter().collect();
        let rb = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        // One dictionary message, then three record batches (slices share the dictionary).
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).unwrap();
        for i in 0..3 {
            w.write(&rb.slice(2 * i, 2)).unwrap();
        }
        let ipc = Bytes::from(w.into_inner().unwrap());
        let stream = StreamSchema::new(schema);
        let parts = split_ipc_stream(&ipc, &stream).unwrap();
        assert!(parts.iter().all(|p| p.messages.len() == 2), "each batch carries the dictionary");
        let kinds = |buf: &VecDeque<OutRequest>| -> String {
            buf.iter().map(|r| match r { OutRequest::FlightData { offset: None, .. } => 'D', _ => 'B' }).collect()
        };
        let (mut buf, mut sent) = (VecDeque::new(), HashMap::new());
        for (i, p) in parts.iter().enumerate() {
            push_flight(&mut buf, &mut sent, p, i as i64);
        }
        assert_eq!(kinds(&buf), "DBBB");
        // Another ingest's dictionary with the same id replaces it on the server: the first
        // ingest's is sent again after it. So does one the core encoded (not shared).
        let again = split_ipc_stream(&ipc, &stream).unwrap();
        let encoded = encode_batch(&rb.slice(0, 2), &stream).unwrap();
        assert_eq!(encoded.messages[0].shared, None);
        buf.clear();
        for (i, p) in [&again[0], &parts[1], &encoded, &parts[2], &parts[0]].into_iter().enumerate() {
            push_flight(&mut buf, &mut sent, p, 3 + i as i64);
        }
        assert_eq!(kinds(&buf), "DBDBDBDBB");
        // A new call knows nothing: its first batch sends the dictionary.
        buf.clear();
        let mut fresh = HashMap::new();
        push_flight(&mut buf, &mut fresh, &parts[1], 0);
        push_flight(&mut buf, &mut fresh, &parts[2], 1);
        assert_eq!(kinds(&buf), "DBB");
    }

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
