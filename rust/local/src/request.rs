//! `EphemeralStream` requests as the server reads them, and the codec the gRPC method reads them
//! with ([`StreamCodec`]).
//!
//! A batch's records stay in the request's bytes and are walked in place. prost's generated
//! decode gave each record a `Bytes` handle of its own (two atomic operations) or, for JSON, a
//! `String` (a copy): half of the server's CPU in the batch benchmarks, where the server shares
//! the machine with the client it measures.
//!
//! One difference from prost: a batch's record list (and a JSON record's UTF-8) is checked when
//! the receiver walks it, so a payload that a later one in the same message replaces (a oneof
//! field sent twice) is never checked. No client sends that.

use std::ops::Range;

use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::{DecodeError, Message};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use zerobus_proto::zerobus::{CreateIngestStreamRequest, EphemeralStreamResponse};

pub(crate) const EPHEMERAL_STREAM_PATH: &str = "/databricks.zerobus.Zerobus/EphemeralStream";

/// Bytes that are not the message they should be.
#[derive(Debug)]
pub(crate) struct Malformed(String);

impl From<DecodeError> for Malformed {
    fn from(e: DecodeError) -> Self {
        Malformed(e.to_string())
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `EphemeralStreamRequest`, by the `payload` it carries.
#[derive(Debug)]
pub(crate) enum StreamRequest {
    Create(Box<CreateIngestStreamRequest>),
    Record(RecordRequest),
    Batch(BatchRequest),
    /// No payload.
    Empty,
}

/// An `IngestRecordRequest`. It holds the request's bytes, where its record is: no handle of its
/// own (a `Bytes` per record made single-record requests cost the server 25% more CPU).
#[derive(Debug, Default)]
pub(crate) struct RecordRequest {
    pub offset_id: Option<i64>,
    record: Option<(Kind, Range<usize>)>,
    msg: Bytes,
}

impl RecordRequest {
    /// The record (`proto_encoded_record` or `json_record`), unchecked.
    pub fn record(&self) -> Option<(Kind, &[u8])> {
        self.record.as_ref().map(|(k, r)| (*k, &self.msg[r.clone()]))
    }
}

/// An `IngestRecordBatchRequest`.
#[derive(Debug, Default)]
pub(crate) struct BatchRequest {
    pub offset_id: Option<i64>,
    pub batch: Option<Batch>,
}

/// Which field a record came in: `proto_encoded_record` (`bytes`) or `json_record` (`string`,
/// not yet checked to be UTF-8), or the batch kind of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Proto,
    Json,
}

/// A `ProtoEncodedRecordBatch` or `JsonRecordBatch`, undecoded: its bytes (several parts when the
/// field came more than once, which protobuf merges).
#[derive(Debug)]
pub(crate) struct Batch {
    pub kind: Kind,
    parts: Vec<Bytes>,
}

impl Batch {
    /// The records (field 1 of the batch message), in order; other fields are skipped.
    pub fn records(&self) -> Records<'_> {
        Records { parts: &self.parts, cur: &[], next_part: 0 }
    }
}

/// The records of a [`Batch`]; an item is `Err` when the list is malformed (and the walk ends).
pub(crate) struct Records<'a> {
    parts: &'a [Bytes],
    cur: &'a [u8],
    next_part: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            while self.cur.is_empty() {
                let part = self.parts.get(self.next_part)?;
                self.next_part += 1;
                self.cur = part;
            }
            match next_field(&mut self.cur) {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => {}
                Err(e) => {
                    self.cur = &[];
                    self.next_part = self.parts.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Reads one field of a batch message: the record when it is field 1, None for a skipped field.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, Malformed> {
    let (tag, wire) = decode_key(buf)?;
    if tag != 1 {
        skip_field(wire, tag, buf, DecodeContext::default())?;
        return Ok(None);
    }
    let record = len_delimited(wire, buf)?;
    Ok(Some(record))
}

/// The body of a length-delimited field whose key was just read.
fn len_delimited<'a>(wire: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    if wire != WireType::LengthDelimited {
        return Err(Malformed(format!("invalid wire type {wire:?} for a length-delimited field")));
    }
    let len = decode_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(Malformed("a length-delimited field runs past the end".into()));
    }
    let (body, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(body)
}

impl StreamRequest {
    /// Decodes an `EphemeralStreamRequest`. As prost does: the last `payload` on the wire wins,
    /// a message field that comes twice is merged, unknown fields are skipped.
    pub fn decode(msg: Bytes) -> Result<StreamRequest, Malformed> {
        let mut out = StreamRequest::Empty;
        let mut buf: &[u8] = &msg;
        while !buf.is_empty() {
            let (tag, wire) = decode_key(&mut buf)?;
            if !(1..=3).contains(&tag) {
                skip_field(wire, tag, &mut buf, DecodeContext::default())?;
                continue;
            }
            let body = len_delimited(wire, &mut buf)?;
            // The same payload again merges into it; another one starts from its default.
            out = match tag {
                1 => {
                    let mut c = if let StreamRequest::Create(c) = out { c } else { Box::default() };
                    c.merge(body)?;
                    StreamRequest::Create(c)
                }
                2 => {
                    let mut r = if let StreamRequest::Record(r) = out { r } else { RecordRequest::default() };
                    r.merge(&msg, body)?;
                    StreamRequest::Record(r)
                }
                _ => {
                    let mut b = if let StreamRequest::Batch(b) = out { b } else { BatchRequest::default() };
                    b.merge(&msg, body)?;
                    StreamRequest::Batch(b)
                }
            };
        }
        if let StreamRequest::Record(r) = &mut out {
            r.msg = msg;
        }
        Ok(out)
    }
}

/// Where `part`, a slice of `msg`, lies in it.
fn range_in(msg: &[u8], part: &[u8]) -> Range<usize> {
    debug_assert!(msg.as_ptr_range().start <= part.as_ptr_range().start && part.as_ptr_range().end <= msg.as_ptr_range().end);
    let start = part.as_ptr() as usize - msg.as_ptr() as usize;
    start..start + part.len()
}

/// Reads an `IngestRecordRequest` or an `IngestRecordBatchRequest` (`body`): both are an
/// `offset_id` (field 1, int64) and a oneof of a protobuf (field 2) or JSON (field 3) payload,
/// length-delimited. Sets `offset_id`; hands each payload field, in wire order, to `payload`.
fn read_ingest<'a>(mut body: &'a [u8], offset_id: &mut Option<i64>, mut payload: impl FnMut(Kind, &'a [u8])) -> Result<(), Malformed> {
    while !body.is_empty() {
        let (tag, wire) = decode_key(&mut body)?;
        match tag {
            1 => {
                if wire != WireType::Varint {
                    return Err(Malformed(format!("invalid wire type {wire:?} for offset_id")));
                }
                *offset_id = Some(decode_varint(&mut body)? as i64);
            }
            2 | 3 => payload(if tag == 2 { Kind::Proto } else { Kind::Json }, len_delimited(wire, &mut body)?),
            _ => skip_field(wire, tag, &mut body, DecodeContext::default())?,
        }
    }
    Ok(())
}

impl RecordRequest {
    /// Merges an `IngestRecordRequest` (`body`, a slice of `msg`) into this one.
    fn merge(&mut self, msg: &Bytes, body: &[u8]) -> Result<(), Malformed> {
        read_ingest(body, &mut self.offset_id, |kind, record| self.record = Some((kind, range_in(msg, record))))
    }
}

impl BatchRequest {
    /// Merges an `IngestRecordBatchRequest` (`body`, a slice of `msg`) into this one.
    fn merge(&mut self, msg: &Bytes, body: &[u8]) -> Result<(), Malformed> {
        read_ingest(body, &mut self.offset_id, |kind, list| {
            let part = msg.slice_ref(list);
            match &mut self.batch {
                Some(b) if b.kind == kind => b.parts.push(part),
                _ => self.batch = Some(Batch { kind, parts: vec![part] }),
            }
        })
    }
}

/// The method's codec: requests as [`StreamRequest`], responses by prost.
#[derive(Clone, Copy, Default)]
pub(crate) struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = EphemeralStreamResponse;
    type Decode = StreamRequest;
    type Encoder = StreamCodec;
    type Decoder = StreamCodec;
    fn encoder(&mut self) -> Self::Encoder {
        StreamCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        StreamCodec
    }
}

impl Encoder for StreamCodec {
    type Item = EphemeralStreamResponse;
    type Error = Status;
    fn encode(&mut self, item: EphemeralStreamResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for StreamCodec {
    type Item = StreamRequest;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<StreamRequest>, Status> {
        // The whole message, without a copy (a slice of tonic's buffer).
        let msg = src.copy_to_bytes(src.remaining());
        StreamRequest::decode(msg).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerobus_proto::zerobus::ephemeral_stream_request::Payload;
    use zerobus_proto::zerobus::ingest_record_batch_request::Batch as PBatch;
    use zerobus_proto::zerobus::ingest_record_request::Record;
    use zerobus_proto::zerobus::{EphemeralStreamRequest, IngestRecordBatchRequest, IngestRecordRequest, JsonRecordBatch, ProtoEncodedRecordBatch};

    fn decode(m: &EphemeralStreamRequest) -> StreamRequest {
        StreamRequest::decode(Bytes::from(m.encode_to_vec())).unwrap()
    }

    fn records(b: &Batch) -> Vec<Vec<u8>> {
        b.records().map(|r| r.unwrap().to_vec()).collect()
    }

    #[test]
    fn every_payload_reads_as_prost_wrote_it() {
        let create = CreateIngestStreamRequest { table_name: Some("a.b.c".into()), ..Default::default() };
        let m = EphemeralStreamRequest { payload: Some(Payload::CreateStream(create.clone())) };
        assert!(matches!(decode(&m), StreamRequest::Create(c) if *c == create));

        let rec = IngestRecordRequest { offset_id: Some(7), record: Some(Record::JsonRecord("{}".into())) };
        let m = EphemeralStreamRequest { payload: Some(Payload::IngestRecord(rec)) };
        let StreamRequest::Record(r) = decode(&m) else { panic!() };
        assert_eq!((r.offset_id, r.record()), (Some(7), Some((Kind::Json, &b"{}"[..]))));
        let rec = IngestRecordRequest { offset_id: Some(-1), record: Some(Record::ProtoEncodedRecord(Bytes::from_static(b"\x08\x01"))) };
        let m = EphemeralStreamRequest { payload: Some(Payload::IngestRecord(rec)) };
        let StreamRequest::Record(r) = decode(&m) else { panic!() };
        assert_eq!((r.offset_id, r.record()), (Some(-1), Some((Kind::Proto, &b"\x08\x01"[..]))));
        let m = EphemeralStreamRequest { payload: Some(Payload::IngestRecord(IngestRecordRequest { offset_id: Some(3), record: None })) };
        let StreamRequest::Record(r) = decode(&m) else { panic!() };
        assert_eq!((r.offset_id, r.record()), (Some(3), None));

        let recs: Vec<Bytes> = vec![Bytes::from_static(b"a"), Bytes::new(), Bytes::from(vec![9u8; 300])];
        let batch = IngestRecordBatchRequest { offset_id: Some(1 << 40), batch: Some(PBatch::ProtoEncodedBatch(ProtoEncodedRecordBatch { records: recs.clone() })) };
        let m = EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(batch)) };
        let StreamRequest::Batch(b) = decode(&m) else { panic!() };
        assert_eq!(b.offset_id, Some(1 << 40));
        let batch = b.batch.unwrap();
        assert_eq!(batch.kind, Kind::Proto);
        assert_eq!(records(&batch), recs.iter().map(|r| r.to_vec()).collect::<Vec<_>>());

        let batch = IngestRecordBatchRequest { offset_id: Some(2), batch: Some(PBatch::JsonBatch(JsonRecordBatch { records: vec!["{\"a\":1}".into(), "ç".into()] })) };
        let m = EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(batch)) };
        let StreamRequest::Batch(b) = decode(&m) else { panic!() };
        let batch = b.batch.unwrap();
        assert_eq!(batch.kind, Kind::Json);
        assert_eq!(records(&batch), vec![b"{\"a\":1}".to_vec(), "ç".as_bytes().to_vec()]);

        assert!(matches!(decode(&EphemeralStreamRequest { payload: None }), StreamRequest::Empty));
        let empty_batch = EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(IngestRecordBatchRequest { offset_id: Some(0), batch: None })) };
        assert!(matches!(decode(&empty_batch), StreamRequest::Batch(BatchRequest { offset_id: Some(0), batch: None })));
    }

    #[test]
    fn repeated_fields_merge_the_last_payload_wins_and_unknown_fields_are_skipped() {
        let part = |recs: &[&'static [u8]], offset: i64| IngestRecordBatchRequest {
            offset_id: Some(offset),
            batch: Some(PBatch::ProtoEncodedBatch(ProtoEncodedRecordBatch { records: recs.iter().map(|r| Bytes::from_static(r)).collect() })),
        };
        // The same batch field twice: prost merges (records appended, the later offset kept).
        let mut wire = EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(part(&[b"a", b"b"], 1))) }.encode_to_vec();
        wire.extend([0x78, 0x05]); // field 15, varint 5: unknown
        wire.extend(EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(part(&[b"c"], 2))) }.encode_to_vec());
        let ours = StreamRequest::decode(Bytes::from(wire.clone())).unwrap();
        let prost = EphemeralStreamRequest::decode(&wire[..]).unwrap();
        let Some(Payload::IngestRecordBatch(IngestRecordBatchRequest { offset_id, batch: Some(PBatch::ProtoEncodedBatch(pb)) })) = prost.payload else { panic!() };
        let StreamRequest::Batch(b) = ours else { panic!() };
        assert_eq!(b.offset_id, offset_id);
        assert_eq!(records(b.batch.as_ref().unwrap()), pb.records.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
        assert_eq!(pb.records.len(), 3);

        // A record payload after a batch: the record wins.
        let rec = IngestRecordRequest { offset_id: Some(3), record: Some(Record::ProtoEncodedRecord(Bytes::from_static(b"x"))) };
        let mut wire = EphemeralStreamRequest { payload: Some(Payload::IngestRecordBatch(part(&[b"a"], 1))) }.encode_to_vec();
        wire.extend(EphemeralStreamRequest { payload: Some(Payload::IngestRecord(rec.clone())) }.encode_to_vec());
        let StreamRequest::Record(r) = StreamRequest::decode(Bytes::from(wire)).unwrap() else { panic!() };
        assert_eq!((r.offset_id, r.record()), (Some(3), Some((Kind::Proto, &b"x"[..]))));
    }

    #[test]
    fn malformed_bytes_are_errors() {
        // A batch payload whose length runs past the end.
        assert!(StreamRequest::decode(Bytes::from_static(&[0x1a, 0x05, 0x08])).is_err());
        // payload field 3 as a varint.
        assert!(StreamRequest::decode(Bytes::from_static(&[0x18, 0x01])).is_err());
        // A batch whose record list is cut short: found when the records are walked.
        let m = Bytes::from_static(&[0x1a, 0x04, 0x12, 0x02, 0x0a, 0x05]);
        let StreamRequest::Batch(b) = StreamRequest::decode(m).unwrap() else { panic!() };
        let mut it = b.batch.as_ref().unwrap().records();
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
