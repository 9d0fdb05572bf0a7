//! Arrow ingestion: Arrow IPC bytes forwarded as Flight data (DoPut).
//!
//! `ingest_ipc_batch` walks the IPC stream's message framing and reads only the flatbuffer
//! headers: the schema (checked against the stream's), dictionary batches, and each record batch's
//! row count. Headers and bodies are `Bytes` slices of the caller's buffer, sent as FlightData as
//! they are: no IPC decode or encode pass on this path (counted by [`ipc_passes`] for tests).
//! `ingest_batch(RecordBatch)` encodes the batch to IPC once, at ingest.
//!
//! Here: the messages and payloads, a stream's schema. `read`: splitting IPC bytes.
//! `encode`: encoding record batches and fitting requests to the message size limit.
//! `hydrate`: expanding dictionary columns (a stream whose batches have them is decoded).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_schema::Schema;
use bytes::Bytes;

use crate::error::{Result, ZerobusError};

mod encode;
mod hydrate;
mod read;

pub use encode::{encode_batch, encode_batch_within, fit_message_limit};
pub use hydrate::{decode_ipc, hydrate_batch, hydrated_schema, wire_batch};
pub use read::{schema_from_ipc, split_ipc_stream};

thread_local! {
    static ENCODE_PASSES: Cell<u64> = const { Cell::new(0) };
    static DECODE_PASSES: Cell<u64> = const { Cell::new(0) };
}

/// (IPC encode passes, IPC decode passes) made on this thread so far. Ingest calls do their IPC
/// work on the calling thread, so a caller can check what its own calls cost.
pub fn ipc_passes() -> (u64, u64) {
    (ENCODE_PASSES.with(Cell::get), DECODE_PASSES.with(Cell::get))
}

fn count(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|c| c.set(c.get() + 1));
}

/// One IPC message: flatbuffer header and body, as sent in FlightData.
#[derive(Clone, Debug)]
pub struct IpcMessage {
    pub header: Bytes,
    pub body: Bytes,
    /// Set on a dictionary batch that several record batches of one ingest call may share. The
    /// sender does not send it again on a call where it was the last dictionary sent with its id
    /// (see `stream::sender`). Only [`split_ipc_stream`] assigns one; changing the header or body
    /// of a message that has one is not supported (the sender could skip the changed bytes).
    pub(crate) shared: Option<SharedDictionary>,
}

/// The stream's id of a dictionary batch, and a number no other dictionary message has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedDictionary {
    pub id: i64,
    pub number: u64,
}

impl SharedDictionary {
    fn new(id: i64) -> SharedDictionary {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        SharedDictionary { id, number: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }
    }
}

impl IpcMessage {
    pub fn new(header: Bytes, body: Bytes) -> IpcMessage {
        IpcMessage { header, body, shared: None }
    }
}

/// One record batch as Flight messages: the dictionaries it needs, then the batch itself.
#[derive(Clone, Debug)]
pub struct ArrowPayload {
    pub messages: Arc<[IpcMessage]>,
    pub rows: usize,
}

impl ArrowPayload {
    pub fn byte_len(&self) -> usize {
        self.messages.iter().map(|m| m.header.len() + m.body.len()).sum()
    }
}

/// One Arrow request as a self-contained IPC stream (schema, dictionaries, the batch, end marker),
/// e.g. to hand unacknowledged batches back to the caller.
pub fn ipc_stream_bytes(schema: &StreamSchema, payload: &ArrowPayload) -> Vec<u8> {
    fn message(out: &mut Vec<u8>, header: &[u8], body: &[u8]) {
        // continuation marker, metadata length (header padded so the body starts 8-aligned)
        let pad = (8 - (8 + header.len()) % 8) % 8;
        out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        out.extend_from_slice(&((header.len() + pad) as i32).to_le_bytes());
        out.extend_from_slice(header);
        out.resize(out.len() + pad, 0);
        out.extend_from_slice(body);
    }
    let mut out = Vec::with_capacity(schema.message.len() + payload.byte_len() + 64);
    message(&mut out, &schema.message, &[]);
    for m in payload.messages.iter() {
        message(&mut out, &m.header, &m.body);
    }
    out.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
    out
}

/// An Arrow stream's schema, its IPC schema message (sent first on each DoPut stream), and the
/// dictionary ids that message gives to dictionary-encoded fields (depth-first field order).
#[derive(Debug)]
pub struct StreamSchema {
    /// The schema sent on the wire.
    pub schema: Arc<Schema>,
    /// The schema of the caller's batches when it differs from the wire's: its dictionary
    /// columns are expanded (see [`StreamSchema::expanding`]).
    pub input: Option<Arc<Schema>>,
    /// IPC body compression of every batch sent (each is then encoded here).
    pub compression: Option<arrow_ipc::CompressionType>,
    pub message: Bytes,
    dict_ids: Vec<i64>,
    /// The last IPC schema message that passed [`split_ipc_stream`]'s check, with its dictionary
    /// id map: callers send the same schema message with every batch, and a byte-equal message
    /// is the same schema, so it is not converted and compared again.
    accepted: Mutex<Option<AcceptedSchema>>,
}

#[derive(Debug, Clone)]
struct AcceptedSchema {
    header: Bytes,
    id_map: BTreeMap<i64, i64>,
}

impl StreamSchema {
    pub fn new(schema: Arc<Schema>) -> StreamSchema {
        let mut tracker = DictionaryTracker::new(false);
        let data = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
            &schema,
            &mut tracker,
            &IpcWriteOptions::default(),
        );
        let message = Bytes::from(data.ipc_message);
        let dict_ids = arrow_ipc::root_as_message(&message)
            .ok()
            .and_then(|m| m.header_as_schema())
            .map(|s| dictionary_ids(s.fields()))
            .unwrap_or_default();
        StreamSchema { schema, input: None, compression: None, message, dict_ids, accepted: Mutex::new(None) }
    }

    /// A stream for batches of `input`: dictionary columns are expanded to their value type on
    /// the wire, unless `keep_dictionaries` (then, or without dictionaries, the wire schema is
    /// `input` itself).
    pub fn expanding(input: Arc<Schema>, keep_dictionaries: bool) -> Result<StreamSchema> {
        if keep_dictionaries {
            return Ok(StreamSchema::new(input));
        }
        Ok(match hydrated_schema(&input)? {
            None => StreamSchema::new(input),
            Some(wire) => StreamSchema { input: Some(input), ..StreamSchema::new(Arc::new(wire)) },
        })
    }

    /// The same, with every batch's IPC body compressed.
    pub fn compressed(self, compression: Option<arrow_ipc::CompressionType>) -> StreamSchema {
        StreamSchema { compression, ..self }
    }

    /// Whether batches are decoded and encoded again before sending (dictionaries to expand, or
    /// compression), instead of being forwarded as they are.
    pub fn reencodes(&self) -> bool {
        self.input.is_some() || self.compression.is_some()
    }

    /// The IPC options of the batches this stream encodes.
    pub(crate) fn write_options(&self) -> Result<IpcWriteOptions> {
        IpcWriteOptions::default()
            .try_with_compression(self.compression)
            .map_err(|e| invalid(format!("cannot compress Arrow IPC: {e}")))
    }

}

fn invalid(msg: impl Into<String>) -> ZerobusError {
    ZerobusError::invalid(msg)
}

/// Dictionary ids of the dictionary-encoded fields, depth-first.
fn dictionary_ids(fields: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<arrow_ipc::Field<'_>>>>) -> Vec<i64> {
    let mut out = Vec::new();
    fn walk(fields: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<arrow_ipc::Field<'_>>>>, out: &mut Vec<i64>) {
        for f in fields.iter().flatten() {
            if let Some(d) = f.dictionary() {
                out.push(d.id());
            }
            walk(f.children(), out);
        }
    }
    walk(fields, &mut out);
    out
}

/// Field names, types and nullability must match (metadata is ignored).
pub fn check_schema(got: &Schema, want: &Schema) -> Result<()> {
    let describe = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = got.fields().len() == want.fields().len()
        && got.fields().iter().zip(want.fields().iter()).all(|(a, b)| {
            a.name() == b.name() && a.data_type().equals_datatype(b.data_type()) && a.is_nullable() == b.is_nullable()
        });
    if same {
        Ok(())
    } else {
        Err(invalid(format!(
            "schema mismatch: the stream's schema is [{}], the batch's is [{}]",
            describe(want),
            describe(got)
        )))
    }
}


#[cfg(test)]
mod tests {
    use super::encode::{compact_dictionaries, fits};
    use super::read::with_dictionary_id;
    use super::*;
    use arrow_array::RecordBatch;
    use arrow_array::{ArrayRef, DictionaryArray, Int32Array, StringArray};
    use arrow_array::types::Int32Type;
    use arrow_ipc::writer::StreamWriter;
    use arrow_schema::{DataType, Field};

    fn ipc(batches: &[RecordBatch]) -> Bytes {
        let mut w = StreamWriter::try_new(Vec::new(), batches[0].schema_ref()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        Bytes::from(w.into_inner().unwrap())
    }

    fn batch(n: i32) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(0..n));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("r{i}"))));
        RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
    }

    #[test]
    fn record_batches_over_the_message_limit_are_sliced_to_fit() {
        let limit = 64 * 1024;
        let b = batch(50_000); // ~1 MB of IPC
        let stream = StreamSchema::new(b.schema());
        let parts = encode_batch_within(&b, &stream, limit).unwrap();
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.messages.iter().all(|m| fits(m, limit))));
        assert_eq!(parts.iter().map(|p| p.rows).sum::<usize>(), 50_000);
        // the same through IPC bytes: one decode, the same rows
        let (_, decodes) = ipc_passes();
        let whole = split_ipc_stream(&ipc(&[b]), &stream).unwrap().pop().unwrap();
        let sliced = fit_message_limit(whole, &stream, limit).unwrap();
        assert_eq!(ipc_passes().1 - decodes, 1);
        assert_eq!(sliced.iter().map(|p| p.rows).sum::<usize>(), 50_000);
        // a single row that cannot fit
        let big: ArrayRef = Arc::new(StringArray::from_iter_values(["x".repeat(100_000)]));
        let one = RecordBatch::try_from_iter([("name", big)]).unwrap();
        let e = encode_batch_within(&one, &StreamSchema::new(one.schema()), limit).unwrap_err();
        assert!(e.message.contains("max_message_bytes"), "{}", e.message);
    }

    #[test]
    fn sliced_dictionaries_keep_only_used_values_and_all_null_ones_are_kept() {
        // Slicing for the message limit compacts dictionaries: used values only, keys renumbered,
        // null keys kept; a dictionary with no values at all (every key null) is left as it is.
        let values: Vec<Option<String>> = (0..40_000).map(|i| if i % 7 == 0 { None } else { Some(format!("value-{i}")) }).collect();
        let dict: DictionaryArray<Int32Type> = values.iter().map(|v| v.as_deref()).collect();
        let empty: DictionaryArray<Int32Type> = DictionaryArray::try_new(
            arrow_array::Int32Array::new_null(40_000),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(0..40_000));
        let b = RecordBatch::try_from_iter([("id", ids), ("d", Arc::new(dict) as ArrayRef), ("none", Arc::new(empty) as ArrayRef)]).unwrap();
        let slice = compact_dictionaries(&b.slice(1_000, 10)).unwrap();
        let d = slice.column(1).as_any().downcast_ref::<DictionaryArray<Int32Type>>().unwrap();
        assert_eq!(d.values().len(), 8, "rows 1000..1010 use 8 values (1001 and 1008 are null)");
        let typed = d.downcast_dict::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = typed.into_iter().collect();
        let want: Vec<Option<&str>> = values[1_000..1_010].iter().map(|v| v.as_deref()).collect();
        assert_eq!(got, want);
        assert_eq!(slice.column(2).null_count(), 10);
        let limit = 64 * 1024;
        let parts = encode_batch_within(&b, &StreamSchema::new(b.schema()), limit).unwrap();
        assert_eq!(parts.iter().map(|p| p.rows).sum::<usize>(), 40_000);
    }

    #[test]
    fn splits_batches_without_decoding_and_reads_row_counts() {
        let b = ipc(&[batch(3), batch(5), batch(0)]);
        let before = ipc_passes();
        let parts = split_ipc_stream(&b, &StreamSchema::new(batch(1).schema())).unwrap();
        assert_eq!(ipc_passes(), before, "no IPC encode/decode pass");
        assert_eq!(parts.iter().map(|p| p.rows).collect::<Vec<_>>(), vec![3, 5, 0]);
        // headers and bodies are slices of the caller's buffer
        let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
        for p in &parts {
            for m in p.messages.iter() {
                assert!(range.contains(&(m.header.as_ptr() as usize)));
            }
        }
    }

    #[test]
    fn dictionaries_travel_with_each_batch() {
        let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new(
            "d",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        )]));
        let rb = RecordBatch::try_new(schema.clone(), vec![Arc::new(dict) as ArrayRef]).unwrap();
        let parts = split_ipc_stream(&ipc(&[rb.clone(), rb]), &StreamSchema::new(schema)).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.messages.len() == 2), "dictionary + batch in each request");
    }

    #[test]
    fn dictionary_ids_are_mapped_onto_the_streams() {
        let dict = |v: Vec<&str>| -> ArrayRef { Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>()) };
        let ty = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new("a", ty.clone(), true), Field::new("b", ty, true)]));
        let stream = StreamSchema::new(schema.clone());
        let rb = RecordBatch::try_new(schema, vec![dict(vec!["x", "y"]), dict(vec!["z", "z"])]).unwrap();
        // (The same ids as the stream's: see the test below for a buffer with ids of its own.)
        let bytes = ipc(&[rb]);
        // The second time, the schema message is the one accepted before.
        for _ in 0..2 {
            let parts = split_ipc_stream(&bytes, &stream).unwrap();
            let ids: Vec<i64> = parts[0].messages[..2]
                .iter()
                .map(|m| arrow_ipc::root_as_message(&m.header).unwrap().header_as_dictionary_batch().unwrap().id())
                .collect();
            assert_eq!(ids, stream.dict_ids);
        }
        let parts = split_ipc_stream(&bytes, &stream).unwrap();
        let rewritten = with_dictionary_id(&parts[0].messages[1].header, 42).unwrap();
        let m = arrow_ipc::root_as_message(&rewritten).unwrap();
        assert_eq!(m.header_as_dictionary_batch().unwrap().id(), 42);
        assert_eq!(m.bodyLength() as usize, parts[0].messages[1].body.len());
    }

    #[test]
    fn schema_mismatch_and_bad_input_are_clear_errors() {
        let other = arrow_schema::Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let s = StreamSchema::new(batch(1).schema());
        let e = split_ipc_stream(&ipc(&[batch(1)]), &StreamSchema::new(Arc::new(other))).unwrap_err();
        assert!(e.message.contains("schema mismatch"), "{e}");
        let b = ipc(&[batch(2)]);
        let e = split_ipc_stream(&b.slice(0..b.len() - 20), &s).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let e = split_ipc_stream(&Bytes::from_static(b"not arrow at all"), &s).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        let schema_only = {
            let w = StreamWriter::try_new(Vec::new(), batch(1).schema_ref()).unwrap();
            Bytes::from(w.into_inner().unwrap())
        };
        let e = split_ipc_stream(&schema_only, &s).unwrap_err();
        assert!(e.message.contains("no record batch"), "{e}");
    }

    #[test]
    fn a_schema_message_seen_before_is_not_converted_again_and_others_are_still_checked() {
        let s = StreamSchema::new(batch(1).schema());
        let ids: ArrayRef = Arc::new(arrow_array::Int64Array::from_iter_values(0..2));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(["a", "b"]));
        let wrong = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
        for _ in 0..2 {
            assert_eq!(split_ipc_stream(&ipc(&[batch(3)]), &s).unwrap()[0].rows, 3);
            let e = split_ipc_stream(&ipc(&[wrong.clone()]), &s).unwrap_err();
            assert!(e.message.contains("schema mismatch"), "{e}");
        }
        // The remembered message is a copy, not a slice of the caller's buffer, and it is what
        // the next byte-equal message is compared with (not converted again).
        let s = StreamSchema::new(batch(1).schema());
        let b = ipc(&[batch(2)]);
        split_ipc_stream(&b, &s).unwrap();
        let kept = s.accepted.lock().unwrap().as_ref().unwrap().header.clone();
        let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
        assert!(!range.contains(&(kept.as_ptr() as usize)));
        split_ipc_stream(&ipc(&[batch(5)]), &s).unwrap();
        assert_eq!(s.accepted.lock().unwrap().as_ref().unwrap().header.as_ptr(), kept.as_ptr());
    }

    #[test]
    fn a_remembered_schema_maps_the_buffers_dictionary_ids_onto_the_streams() {
        let ty = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new("a", ty.clone(), true), Field::new("b", ty.clone(), true)]));
        let stream = StreamSchema::new(schema.clone());
        assert_eq!(stream.dict_ids, vec![0, 1]);
        // A writer that numbered another dictionary first: this buffer's ids are 1 and 2.
        let opts = IpcWriteOptions::default();
        let gen = IpcDataGenerator::default();
        let mut tracker = DictionaryTracker::new(false);
        let other = arrow_schema::Schema::new(vec![Field::new("z", ty, true)]);
        gen.schema_to_bytes_with_dictionary_tracker(&other, &mut tracker, &opts);
        let sch = gen.schema_to_bytes_with_dictionary_tracker(&schema, &mut tracker, &opts);
        let dict = |v: Vec<&str>| -> ArrayRef { Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>()) };
        let rb = RecordBatch::try_new(schema.clone(), vec![dict(vec!["x"]), dict(vec!["y"])]).unwrap();
        let mut fresh = DictionaryTracker::new(false);
        gen.schema_to_bytes_with_dictionary_tracker(&schema, &mut fresh, &opts);
        let (dicts, data) = gen.encode(&rb, &mut fresh, &opts, &mut Default::default()).unwrap();
        // (The encoder numbers the batch's dictionaries 0, 1: renumbered as the schema says.)
        let messages: Vec<IpcMessage> = dicts
            .into_iter()
            .zip([1, 2])
            .map(|(d, id)| IpcMessage::new(with_dictionary_id(&d.ipc_message, id).unwrap(), Bytes::from(d.arrow_data)))
            .chain(std::iter::once(IpcMessage::new(Bytes::from(data.ipc_message), Bytes::from(data.arrow_data))))
            .collect();
        let writer = StreamSchema { schema, input: None, compression: None, message: Bytes::from(sch.ipc_message), dict_ids: vec![], accepted: Mutex::new(None) };
        let bytes = Bytes::from(ipc_stream_bytes(&writer, &ArrowPayload { messages: messages.into(), rows: 1 }));
        let id = |m: &IpcMessage| arrow_ipc::root_as_message(&m.header).unwrap().header_as_dictionary_batch().unwrap().id();
        for _ in 0..2 {
            let parts = split_ipc_stream(&bytes, &stream).unwrap();
            let p = &parts[0].messages;
            assert_eq!(p.len(), 3);
            assert_eq!([id(&p[0]), id(&p[1])], [0, 1]);
        }
        assert_eq!(stream.accepted.lock().unwrap().as_ref().unwrap().id_map, BTreeMap::from([(1, 0), (2, 1)]));
    }

    #[test]
    fn compressed_streams_compress_every_batch_body() {
        let ids: ArrayRef = Arc::new(Int32Array::from_iter_values((0..5_000).map(|i| i % 10)));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..5_000).map(|i| format!("device-{}", i % 10))));
        let b = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
        let plain = encode_batch(&b, &StreamSchema::new(b.schema())).unwrap();
        for codec in [arrow_ipc::CompressionType::LZ4_FRAME, arrow_ipc::CompressionType::ZSTD] {
            let stream = StreamSchema::new(b.schema()).compressed(Some(codec));
            assert!(stream.reencodes());
            let p = encode_batch(&b, &stream).unwrap();
            let m = &p.messages[p.messages.len() - 1];
            let rb = arrow_ipc::root_as_message(&m.header).unwrap().header_as_record_batch().unwrap();
            assert_eq!(rb.compression().map(|c| c.codec()), Some(codec));
            assert!(m.body.len() * 2 < plain.byte_len(), "{codec:?}: {} vs {}", m.body.len(), plain.byte_len());
            // It reads back as the same rows.
            let bytes = Bytes::from(ipc_stream_bytes(&stream, &p));
            assert_eq!(decode_ipc(&bytes, &b.schema()).unwrap()[0], b);
        }
    }

    #[test]
    fn record_batches_are_encoded_once() {
        let b = batch(4);
        let before = ipc_passes().0;
        let p = encode_batch(&b, &StreamSchema::new(b.schema())).unwrap();
        assert_eq!(ipc_passes().0, before + 1);
        assert_eq!(p.rows, 4);
        assert_eq!(p.messages.len(), 1);
    }
}
