//! Client-side gRPC codec. Requests are encoded straight from the landing-zone payloads
//! (`Bytes` handles), so the copy into the HTTP/2 frame buffer is the first and only copy
//! of record bytes. Responses are decoded with the prost-generated types.

use bytes::{BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use std::sync::Arc;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use crate::arrow::ArrowPayload;
use crate::proto::{ephemeral_stream_response, EphemeralStreamRequest, EphemeralStreamResponse};

/// Records of one request. Cloning is O(1) (refcounts only).
#[derive(Clone, Debug)]
pub enum Payload {
    Proto(Bytes),
    Json(Bytes),
    ProtoBatch(Arc<[Bytes]>),
    JsonBatch(Arc<[Bytes]>),
    /// One Arrow record batch (with the dictionaries it needs) as IPC messages.
    Arrow(ArrowPayload),
}

impl Payload {
    /// Records (rows, for Arrow) in the request.
    pub fn record_count(&self) -> usize {
        match self {
            Payload::Proto(_) | Payload::Json(_) => 1,
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.len(),
            Payload::Arrow(a) => a.rows,
        }
    }
    pub fn byte_len(&self) -> usize {
        match self {
            Payload::Proto(b) | Payload::Json(b) => b.len(),
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.iter().map(Bytes::len).sum(),
            Payload::Arrow(a) => a.byte_len(),
        }
    }
    /// The same request with its bytes copied into memory of its own (no caller buffer held).
    pub fn copied(&self) -> Payload {
        let copy = |b: &Bytes| Bytes::copy_from_slice(b);
        match self {
            Payload::Proto(b) => Payload::Proto(copy(b)),
            Payload::Json(b) => Payload::Json(copy(b)),
            Payload::ProtoBatch(r) => Payload::ProtoBatch(r.iter().map(copy).collect()),
            Payload::JsonBatch(r) => Payload::JsonBatch(r.iter().map(copy).collect()),
            Payload::Arrow(a) => Payload::Arrow(ArrowPayload {
                messages: a
                    .messages
                    .iter()
                    .map(|m| crate::arrow::IpcMessage { header: copy(&m.header), body: copy(&m.body) })
                    .collect(),
                rows: a.rows,
            }),
        }
    }

    /// Every record of a protobuf / JSON request, in order (empty for Arrow).
    pub fn records(&self) -> &[Bytes] {
        match self {
            Payload::Proto(b) | Payload::Json(b) => std::slice::from_ref(b),
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r,
            Payload::Arrow(_) => &[],
        }
    }
}

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
    Ack { offset: i64, close_after: Option<std::time::Duration> },
    /// CloseStreamSignal without an ack.
    Close(Option<std::time::Duration>),
    Other,
}

const REQ_INGEST_RECORD: u32 = 2;
const REQ_INGEST_BATCH: u32 = 3;

fn len_delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_len_delimited_header(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

impl OutRequest {
    /// Writes the wire form of this message (`EphemeralStreamRequest` or Flight `FlightData`).
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            OutRequest::Create(m) => m.encode_raw(buf),
            OutRequest::FlightStart { schema } => {
                // FlightData { 2: data_header }
                put_len_delimited_header(2, schema.len(), buf);
                buf.put_slice(schema);
            }
            OutRequest::FlightData { header, body, offset } => {
                // FlightData { 2: data_header, 3: app_metadata, 1000: data_body }
                put_len_delimited_header(2, header.len(), buf);
                buf.put_slice(header);
                if let Some(o) = offset {
                    let meta = format!("{{\"offset_id\":{o}}}");
                    put_len_delimited_header(3, meta.len(), buf);
                    buf.put_slice(meta.as_bytes());
                }
                if !body.is_empty() {
                    put_len_delimited_header(1000, body.len(), buf);
                    buf.put_slice(body);
                }
            }
            OutRequest::Records { offset, payload } => {
                let offset_len = key_len(1) + encoded_len_varint(*offset as u64);
                match payload {
                    Payload::Proto(b) | Payload::Json(b) => {
                        // IngestRecordRequest { 1: offset_id, 2: proto bytes | 3: json string }
                        let tag = if matches!(payload, Payload::Proto(_)) { 2 } else { 3 };
                        let inner = offset_len + len_delimited_len(tag, b.len());
                        put_len_delimited_header(REQ_INGEST_RECORD, inner, buf);
                        encode_key(1, WireType::Varint, buf);
                        encode_varint(*offset as u64, buf);
                        put_len_delimited_header(tag, b.len(), buf);
                        buf.put_slice(b);
                    }
                    Payload::ProtoBatch(recs) | Payload::JsonBatch(recs) => {
                        // IngestRecordBatchRequest { 1: offset_id, 2|3: { repeated 1: record } }
                        let tag = if matches!(payload, Payload::ProtoBatch(_)) { 2 } else { 3 };
                        let list: usize = recs.iter().map(|r| len_delimited_len(1, r.len())).sum();
                        let inner = offset_len + len_delimited_len(tag, list);
                        put_len_delimited_header(REQ_INGEST_BATCH, inner, buf);
                        encode_key(1, WireType::Varint, buf);
                        encode_varint(*offset as u64, buf);
                        put_len_delimited_header(tag, list, buf);
                        for r in recs.iter() {
                            put_len_delimited_header(1, r.len(), buf);
                            buf.put_slice(r);
                        }
                    }
                    Payload::Arrow(_) => unreachable!("Arrow payloads are sent as FlightData messages"),
                }
            }
        }
    }
}

/// The client codec; `flight` selects DoPut (FlightData / PutResult) over EphemeralStream.
#[derive(Clone, Copy, Default)]
pub struct ZerobusCodec {
    pub flight: bool,
}

pub struct RequestEncoder;
pub struct ResponseDecoder {
    flight: bool,
}

impl Codec for ZerobusCodec {
    type Encode = OutRequest;
    type Decode = Incoming;
    type Encoder = RequestEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RequestEncoder {
        RequestEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder { flight: self.flight }
    }
}

/// Test instrumentation: once [`probe::enable`] was called, [`probe::IN_ENCODER`] is true on a
/// thread while tonic encodes a message, from the moment the sender hands it over (tonic then
/// reserves its frame header and calls [`RequestEncoder::encode`]) until the encoder returns, so
/// allocation-counting tests can tell the encoder's (expected) copy from any other. Off, it costs
/// one relaxed load per message; it is not a feature flag so tests and the library share one build.
#[doc(hidden)]
pub mod probe {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    static ENABLED: AtomicBool = AtomicBool::new(false);
    thread_local! {
        pub static IN_ENCODER: Cell<bool> = const { Cell::new(false) };
    }
    pub fn enable() {
        ENABLED.store(true, Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn set(on: bool) {
        if ENABLED.load(Ordering::Relaxed) {
            IN_ENCODER.with(|f| f.set(on));
        }
    }
}

impl Encoder for RequestEncoder {
    type Item = OutRequest;
    type Error = Status;
    fn encode(&mut self, item: OutRequest, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst);
        probe::set(false);
        Ok(())
    }
    fn buffer_settings(&self) -> BufferSettings {
        // Bigger chunks than tonic's default (8 KiB / 32 KiB) mean fewer HTTP/2 DATA writes.
        BufferSettings::new(256 * 1024, 1024 * 1024)
    }
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
                Incoming::Ack { offset: ack.ack_up_to_offset, close_after }
            }));
        }
        use ephemeral_stream_response::Payload as P;
        let r = EphemeralStreamResponse::decode(src).map_err(|e| bad(e.to_string()))?;
        Ok(Some(match r.payload {
            Some(P::CreateStreamResponse(c)) => Incoming::Created(c.stream_id),
            Some(P::IngestRecordResponse(a)) => match a.durability_ack_up_to_offset {
                Some(offset) => Incoming::Ack { offset, close_after: None },
                None => Incoming::Other,
            },
            Some(P::CloseStreamSignal(s)) => Incoming::Close(s.duration.map(|d| {
                std::time::Duration::from_secs(d.seconds.max(0) as u64) + std::time::Duration::from_nanos(d.nanos.max(0) as u64)
            })),
            None => Incoming::Other,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ephemeral_stream_request, ingest_record_batch_request, ingest_record_request};

    fn roundtrip(req: &OutRequest) -> EphemeralStreamRequest {
        let mut buf = Vec::new();
        req.encode(&mut buf);
        EphemeralStreamRequest::decode(&buf[..]).unwrap()
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
        let j = roundtrip(&OutRequest::Records { offset: 7, payload: Payload::JsonBatch(recs.clone()) });
        let Some(ephemeral_stream_request::Payload::IngestRecordBatch(b)) = j.payload else { panic!() };
        assert_eq!(b.offset_id, Some(7));
        let Some(ingest_record_batch_request::Batch::JsonBatch(jb)) = b.batch else { panic!() };
        assert_eq!(jb.records.len(), 2);
        assert_eq!(jb.records[1].len(), 200);
        let p = roundtrip(&OutRequest::Records { offset: 8, payload: Payload::ProtoBatch(recs) });
        let Some(ephemeral_stream_request::Payload::IngestRecordBatch(b)) = p.payload else { panic!() };
        let Some(ingest_record_batch_request::Batch::ProtoEncodedBatch(pb)) = b.batch else { panic!() };
        assert_eq!(pb.records[0], Bytes::from_static(b"{}"));
    }
}
