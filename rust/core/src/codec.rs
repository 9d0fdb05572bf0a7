//! Client-side gRPC codec. Requests are encoded straight from the landing-zone payloads
//! (`Bytes` handles) into [`Frames`]: message prefixes and field headers are written into a small
//! buffer and large record bodies follow as their own chunks, so record bytes are not copied in
//! user space before the socket (plaintext) or the TLS encryption. Responses are decoded with
//! the prost-generated types.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use std::collections::VecDeque;
use tonic::codec::{DecodeBuf, Decoder};
use tonic::Status;

pub use crate::batch::Batch;
pub use crate::payload::Payload;
use crate::proto::{ephemeral_stream_response, EphemeralStreamRequest, EphemeralStreamResponse};

/// One outgoing gRPC message: on the ephemeral stream, or on a Flight DoPut stream.
#[derive(Debug)]
pub enum OutRequest {
    Create(EphemeralStreamRequest),
    Records { offset: i64, payload: Payload },
    /// First DoPut message: the schema message. Like the official client, no flight_descriptor
    /// is sent: the table is named by the x-databricks-zerobus-table-name header.
    FlightStart { schema: Bytes },
    /// One IPC message; record batches carry their offset as `{"offset_id":N}` app_metadata.
    FlightData { header: Bytes, body: Bytes, offset: Option<i64> },
}

/// What the server said, on either kind of stream.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// The stream is open (create_stream_response, or the DoPut "ready" ack).
    Created(Option<String>),
    /// Everything up to this physical offset is durable; the server may also announce closing.
    /// Flight acks also carry the records (rows) durable on the stream, the durability boundary.
    Ack { offset: i64, records: Option<u64>, close_after: Option<std::time::Duration> },
    /// CloseStreamSignal without an ack.
    Close(Option<std::time::Duration>),
    Other,
}

const REQ_INGEST_RECORD: u32 = 2;
const REQ_INGEST_BATCH: u32 = 3;

/// Record bodies of at least this many bytes go to the HTTP/2 layer as their own `Bytes` (the
/// caller's memory); smaller ones are copied into the gather buffer with the message headers.
/// Each chunk becomes HTTP/2 DATA frames of its own (a chunk of headers before it too), which
/// costs both ends more than copying a small record (one bench pair at 8 KiB, 2026-11-26: 10 kB
/// records 137k -> 98k/s, the server's CPU per record 4.5 -> 9.4 us).
pub const ZERO_COPY_MIN: usize = 64 * 1024;
/// Gathered bytes at which [`Frames`] is handed on without waiting for more messages.
pub const GATHER_LIMIT: usize = 1024 * 1024;
/// The gather buffer's allocations. Bytes gathered are never moved: when the buffer is full, what
/// it holds becomes a chunk and the next bytes go to a new allocation (a growing buffer would copy
/// small records a second time). A chunk is one HTTP/2 DATA frame at most, and a server sees none
/// of the records in a frame until all of it has arrived: 64 KiB crosses a 100 KB/s link in under
/// a second, so acknowledgements keep coming on slow links (256 KiB cost the same CPU on fast ones).
const GATHER_ALLOC: usize = 64 * 1024;
/// Room kept for the field headers written between two records (each at most 11 bytes).
const HEADER_ROOM: usize = 64;

pub(crate) fn len_delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

pub(crate) fn put_len_delimited_header(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// Encoded gRPC messages as a sequence of chunks for the HTTP/2 body: prefixes, protobuf field
/// headers and small records are gathered into one buffer; large record bodies are queued as
/// they are (refcount handles), so their bytes are copied only by the socket (or TLS) write.
pub struct Frames {
    buf: BytesMut,
    queue: VecDeque<Bytes>,
    queued: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Frames { buf: BytesMut::new(), queue: VecDeque::new(), queued: 0 }
    }
}

impl Frames {
    /// Bytes encoded and not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len() + self.queued
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The next chunk to send: queued chunks first, then whatever is gathered.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.queue.pop_front() {
            self.queued -= b.len();
            return Some(b);
        }
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
    fn queue_chunk(&mut self, b: Bytes) {
        self.queued += b.len();
        self.queue.push_back(b);
    }
    /// What is gathered becomes a chunk of its own.
    fn seal(&mut self) {
        if !self.buf.is_empty() {
            let b = self.buf.split().freeze();
            self.queue_chunk(b);
        }
    }
    /// The gather buffer with room for `n` more bytes, without moving what it holds.
    fn room(&mut self, n: usize) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < n {
            self.seal();
            self.buf.reserve(n.max(GATHER_ALLOC));
        }
        &mut self.buf
    }
    /// The gather buffer, for field headers (at most [`HEADER_ROOM`] bytes at a time).
    fn header(&mut self) -> &mut BytesMut {
        self.room(HEADER_ROOM)
    }
    /// Starts a message of `len` protobuf bytes.
    fn prefix(&mut self, len: usize) -> Result<(), Status> {
        let len = u32::try_from(len).map_err(|_| Status::resource_exhausted(format!("a request of {len} bytes is too large for gRPC")))?;
        let buf = self.header();
        buf.put_u8(0);
        buf.put_u32(len);
        Ok(())
    }
    /// Starts an ingest request (`request`: single record or batch) of `len` bytes of records
    /// under `tag` (proto or JSON), up to where those bytes go.
    fn records_header(&mut self, request: u32, offset: i64, tag: u32, len: usize) -> Result<(), Status> {
        let inner = key_len(1) + encoded_len_varint(offset as u64) + len_delimited_len(tag, len);
        self.prefix(len_delimited_len(request, inner))?;
        let buf = self.header();
        put_len_delimited_header(request, inner, buf);
        encode_key(1, WireType::Varint, buf);
        encode_varint(offset as u64, buf);
        put_len_delimited_header(tag, len, buf);
        Ok(())
    }
    /// Record bytes: large ones as their own chunk, small ones copied.
    fn body(&mut self, b: &Bytes) {
        if b.len() >= ZERO_COPY_MIN {
            self.seal();
            self.queue_chunk(b.clone());
        } else {
            self.room(b.len()).extend_from_slice(b);
        }
    }
}

impl OutRequest {
    /// Appends this request as one gRPC message (`EphemeralStreamRequest` or Flight `FlightData`)
    /// to `out`.
    pub fn write(&self, out: &mut Frames) -> Result<(), Status> {
        match self {
            OutRequest::Create(m) => {
                let len = m.encoded_len();
                out.prefix(len)?;
                m.encode_raw(out.room(len));
            }
            OutRequest::FlightStart { schema } => {
                // FlightData { 2: data_header }
                out.prefix(len_delimited_len(2, schema.len()))?;
                put_len_delimited_header(2, schema.len(), out.header());
                out.body(schema);
            }
            OutRequest::FlightData { header, body, offset } => {
                // FlightData { 2: data_header, 3: app_metadata, 1000: data_body }
                let meta = offset.map(|o| format!("{{\"offset_id\":{o}}}"));
                let len = len_delimited_len(2, header.len())
                    + meta.as_ref().map_or(0, |m| len_delimited_len(3, m.len()))
                    + if body.is_empty() { 0 } else { len_delimited_len(1000, body.len()) };
                out.prefix(len)?;
                put_len_delimited_header(2, header.len(), out.header());
                out.body(header);
                if let Some(m) = meta {
                    put_len_delimited_header(3, m.len(), out.header());
                    out.room(m.len()).extend_from_slice(m.as_bytes());
                }
                if !body.is_empty() {
                    put_len_delimited_header(1000, body.len(), out.header());
                    out.body(body);
                }
            }
            OutRequest::Records { offset, payload } => {
                // EphemeralStreamRequest { 2: IngestRecordRequest | 3: IngestRecordBatchRequest },
                // each { 1: offset_id, 2: proto | 3: json } (a batch's 2|3: { repeated 1: record })
                let tag = if matches!(payload, Payload::Proto(_) | Payload::ProtoBatch(_)) { 2 } else { 3 };
                match payload {
                    Payload::Proto(b) | Payload::Json(b) => {
                        out.records_header(REQ_INGEST_RECORD, *offset, tag, b.len())?;
                        out.body(b);
                    }
                    Payload::ProtoBatch(recs) | Payload::JsonBatch(recs) => {
                        out.records_header(REQ_INGEST_BATCH, *offset, tag, recs.list_len())?;
                        match recs {
                            Batch::Handles(recs) => {
                                for r in recs.iter() {
                                    put_len_delimited_header(1, r.len(), out.header());
                                    out.body(r);
                                }
                            }
                            Batch::Packed(p) => out.body(p.list()),
                        }
                    }
                    Payload::Arrow(_) => unreachable!("Arrow payloads are sent as FlightData messages"),
                }
            }
        }
        Ok(())
    }
}

/// Decodes the server's messages; `flight` selects DoPut (PutResult) over EphemeralStream.
pub struct ResponseDecoder {
    pub flight: bool,
}

/// `PutResult { 1: app_metadata }` of a DoPut stream.
#[derive(Clone, PartialEq, prost::Message)]
struct PutResult {
    #[prost(bytes = "bytes", tag = "1")]
    app_metadata: Bytes,
}

/// JSON ack metadata of a DoPut stream.
#[derive(serde::Deserialize)]
struct FlightAck {
    ack_up_to_offset: i64,
    #[serde(default)]
    ack_up_to_records: Option<u64>,
    #[serde(default)]
    close_stream_duration_ms: Option<u64>,
}

impl Decoder for ResponseDecoder {
    type Item = Incoming;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Incoming>, Status> {
        let bad = |e: String| Status::internal(format!("cannot decode server response: {e}"));
        if self.flight {
            let r = PutResult::decode(src).map_err(|e| bad(e.to_string()))?;
            let ack: FlightAck = serde_json::from_slice(&r.app_metadata).map_err(|e| bad(format!("ack metadata: {e}")))?;
            let close_after = ack.close_stream_duration_ms.map(std::time::Duration::from_millis);
            return Ok(Some(if ack.ack_up_to_offset < 0 && close_after.is_none() {
                Incoming::Created(None)
            } else {
                Incoming::Ack { offset: ack.ack_up_to_offset, records: ack.ack_up_to_records, close_after }
            }));
        }
        use ephemeral_stream_response::Payload as P;
        let r = EphemeralStreamResponse::decode(src).map_err(|e| bad(e.to_string()))?;
        Ok(Some(match r.payload {
            Some(P::CreateStreamResponse(c)) => Incoming::Created(c.stream_id),
            Some(P::IngestRecordResponse(a)) => match a.durability_ack_up_to_offset {
                Some(offset) => Incoming::Ack { offset, records: None, close_after: None },
                None => Incoming::Other,
            },
            Some(P::CloseStreamSignal(s)) => Incoming::Close(s.duration.map(|d| {
                std::time::Duration::from_secs(d.seconds.max(0) as u64) + std::time::Duration::from_nanos(d.nanos.max(0) as u64)
            })),
            None => Incoming::Other,
        }))
    }
}

/// The gRPC messages in a body's chunks (5-byte prefixes checked and stripped), for tests.
#[cfg(test)]
pub(crate) fn grpc_messages(chunks: &[Bytes]) -> Vec<Vec<u8>> {
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let (mut rest, mut messages) = (&all[..], Vec::new());
    while !rest.is_empty() {
        assert_eq!(rest[0], 0, "uncompressed");
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        messages.push(rest[5..5 + len].to_vec());
        rest = &rest[5 + len..];
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use crate::proto::{ephemeral_stream_request, ingest_record_batch_request, ingest_record_request};

    /// The chunks of `reqs` and the gRPC messages they hold (prefixes checked and stripped).
    fn encode(reqs: &[OutRequest]) -> (Vec<Bytes>, Vec<Vec<u8>>) {
        let mut f = Frames::default();
        for r in reqs {
            r.write(&mut f).unwrap();
        }
        let chunks: Vec<Bytes> = std::iter::from_fn(|| f.next_chunk()).collect();
        assert!(f.is_empty());
        let messages = grpc_messages(&chunks);
        (chunks, messages)
    }

    fn roundtrip(req: &OutRequest) -> EphemeralStreamRequest {
        let (_, m) = encode(std::slice::from_ref(req));
        assert_eq!(m.len(), 1);
        EphemeralStreamRequest::decode(&m[0][..]).unwrap()
    }

    #[test]
    fn large_records_are_sent_from_their_own_memory() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        let small = Bytes::from(vec![8u8; 1000]);
        let reqs = [
            OutRequest::Records { offset: 0, payload: Payload::Proto(small.clone()) },
            OutRequest::Records { offset: 1, payload: Payload::Proto(big.clone()) },
            OutRequest::Records { offset: 2, payload: Payload::ProtoBatch(vec![small.clone(), big.clone(), small.clone()].into()) },
        ];
        // One byte under the threshold is copied.
        let under = Bytes::from(vec![9u8; ZERO_COPY_MIN - 1]);
        let (under_chunks, _) = encode(&[OutRequest::Records { offset: 0, payload: Payload::Proto(under.clone()) }]);
        assert!(under_chunks.iter().all(|c| c.as_ptr() != under.as_ptr()));
        let (chunks, messages) = encode(&reqs);
        // The large record is a chunk of its own, twice, pointing at the caller's memory.
        let own: Vec<&Bytes> = chunks.iter().filter(|c| c.as_ptr() == big.as_ptr()).collect();
        assert_eq!(own.len(), 2);
        assert!(own.iter().all(|c| c.len() == big.len()));
        // The small records were copied into the gathered chunks between them.
        assert_eq!(chunks.len(), 5, "small record and headers, big, headers and small, big, header and small");
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), messages.iter().map(|m| m.len() + 5).sum::<usize>());
        for (m, want) in messages.iter().zip([&small, &big]) {
            let Some(ephemeral_stream_request::Payload::IngestRecord(r)) = EphemeralStreamRequest::decode(&m[..]).unwrap().payload else {
                panic!()
            };
            assert_eq!(r.record, Some(ingest_record_request::Record::ProtoEncodedRecord(want.clone())));
        }
        let Some(ephemeral_stream_request::Payload::IngestRecordBatch(b)) = EphemeralStreamRequest::decode(&messages[2][..]).unwrap().payload
        else {
            panic!()
        };
        let Some(ingest_record_batch_request::Batch::ProtoEncodedBatch(pb)) = b.batch else { panic!() };
        assert_eq!(pb.records, vec![small.clone(), big, small]);
    }

    #[test]
    fn gathered_bytes_are_never_moved() {
        // A full gather buffer becomes a chunk and the next bytes go to a new one: what was
        // written stays where it was (a growing buffer would copy it again).
        let mut f = Frames::default();
        let rec = Bytes::from(vec![5u8; 1000]);
        let req = |offset| OutRequest::Records { offset, payload: Payload::Proto(rec.clone()) };
        req(0).write(&mut f).unwrap();
        let first = f.buf.as_ptr();
        for i in 1..2000 {
            req(i).write(&mut f).unwrap();
        }
        let chunks: Vec<Bytes> = std::iter::from_fn(|| f.next_chunk()).collect();
        assert_eq!(chunks[0].as_ptr(), first, "the first message was moved");
        assert!(chunks.len() >= 2_000_000 / GATHER_ALLOC, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= GATHER_ALLOC));
        let (_, messages) = encode(&(0..2000).map(req).collect::<Vec<_>>());
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), messages.iter().map(|m| m.len() + 5).sum::<usize>());
    }

    /// `FlightData` as the server reads it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct FlightData {
        #[prost(bytes = "bytes", tag = "2")]
        data_header: Bytes,
        #[prost(bytes = "bytes", tag = "3")]
        app_metadata: Bytes,
        #[prost(bytes = "bytes", tag = "1000")]
        data_body: Bytes,
    }

    #[test]
    fn flight_data_matches_prost() {
        let body = Bytes::from(vec![3u8; 3 * ZERO_COPY_MIN]);
        let reqs = [
            OutRequest::FlightStart { schema: Bytes::from_static(b"schema") },
            OutRequest::FlightData { header: Bytes::from_static(b"dict"), body: Bytes::from_static(b"dictbody"), offset: None },
            OutRequest::FlightData { header: Bytes::from_static(b"batch"), body: body.clone(), offset: Some(12) },
            OutRequest::FlightData { header: Bytes::from_static(b"empty"), body: Bytes::new(), offset: Some(13) },
        ];
        let (chunks, m) = encode(&reqs);
        assert!(chunks.iter().any(|c| c.as_ptr() == body.as_ptr()), "the IPC body is sent from its own memory");
        let d: Vec<FlightData> = m.iter().map(|m| FlightData::decode(&m[..]).unwrap()).collect();
        assert_eq!(d[0], FlightData { data_header: Bytes::from_static(b"schema"), ..Default::default() });
        assert_eq!(d[1], FlightData { data_header: Bytes::from_static(b"dict"), data_body: Bytes::from_static(b"dictbody"), ..Default::default() });
        assert_eq!(d[2], FlightData { data_header: Bytes::from_static(b"batch"), app_metadata: Bytes::from_static(b"{\"offset_id\":12}"), data_body: body });
        assert_eq!(d[3].app_metadata, Bytes::from_static(b"{\"offset_id\":13}"));
        assert!(d[3].data_body.is_empty());
    }

    #[test]
    fn single_records_match_prost() {
        let p = roundtrip(&OutRequest::Records { offset: 300, payload: Payload::Proto(Bytes::from_static(b"\x08\x01")) });
        let Some(ephemeral_stream_request::Payload::IngestRecord(r)) = p.payload else { panic!() };
        assert_eq!(r.offset_id, Some(300));
        assert_eq!(r.record, Some(ingest_record_request::Record::ProtoEncodedRecord(Bytes::from_static(b"\x08\x01"))));
        let j = roundtrip(&OutRequest::Records { offset: 0, payload: Payload::Json(Bytes::from_static(b"{\"a\":1}")) });
        let Some(ephemeral_stream_request::Payload::IngestRecord(r)) = j.payload else { panic!() };
        assert_eq!(r.record, Some(ingest_record_request::Record::JsonRecord("{\"a\":1}".into())));
    }

    #[test]
    fn batches_match_prost() {
        let recs: Arc<[Bytes]> = vec![Bytes::from_static(b"{}"), Bytes::from(vec![b'x'; 200])].into();
        let j = roundtrip(&OutRequest::Records { offset: 7, payload: Payload::JsonBatch(recs.clone().into()) });
        let Some(ephemeral_stream_request::Payload::IngestRecordBatch(b)) = j.payload else { panic!() };
        assert_eq!(b.offset_id, Some(7));
        let Some(ingest_record_batch_request::Batch::JsonBatch(jb)) = b.batch else { panic!() };
        assert_eq!(jb.records.len(), 2);
        assert_eq!(jb.records[1].len(), 200);
        let p = roundtrip(&OutRequest::Records { offset: 8, payload: Payload::ProtoBatch(recs.clone().into()) });
        let Some(ephemeral_stream_request::Payload::IngestRecordBatch(b)) = p.payload else { panic!() };
        let Some(ingest_record_batch_request::Batch::ProtoEncodedBatch(pb)) = b.batch else { panic!() };
        assert_eq!(pb.records[0], Bytes::from_static(b"{}"));
        // Packed, the same records encode to the same bytes.
        let packed = Batch::packed(recs.iter().map(|r| &r[..]));
        for (h, p) in [(Payload::ProtoBatch(recs.clone().into()), Payload::ProtoBatch(packed.clone())), (Payload::JsonBatch(recs.into()), Payload::JsonBatch(packed))] {
            let a = encode(&[OutRequest::Records { offset: 9, payload: h }]).1;
            let b = encode(&[OutRequest::Records { offset: 9, payload: p }]).1;
            assert_eq!(a, b);
        }
    }
}
