//! Arrow ingestion: Arrow IPC bytes forwarded as Flight data (DoPut).
//!
//! `ingest_ipc_batch` walks the IPC stream's message framing and reads only the flatbuffer
//! headers: the schema (checked against the stream's), dictionary batches, and each record batch's
//! row count. Headers and bodies are `Bytes` slices of the caller's buffer, sent as FlightData as
//! they are: no IPC decode or encode pass on this path (counted by [`ipc_passes`] for tests).
//! `ingest_batch(RecordBatch)` encodes the batch to IPC once, at ingest.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_ipc::MessageHeader;
use arrow_schema::Schema;
use bytes::Bytes;

use crate::error::{Result, ZerobusError};

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
    pub schema: Arc<Schema>,
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
        StreamSchema { schema, message, dict_ids, accepted: Mutex::new(None) }
    }

    /// The dictionary id map of an IPC schema message (this buffer's ids -> the stream's), after
    /// checking that it describes the stream's schema.
    fn accept(&self, header: &[u8], fb: arrow_ipc::Schema<'_>) -> Result<BTreeMap<i64, i64>> {
        let remembered = || self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = remembered().as_ref().filter(|a| a.header == header) {
            return Ok(a.id_map.clone());
        }
        check_schema(&fb_to_schema(fb)?, &self.schema)?;
        let id_map: BTreeMap<i64, i64> = dictionary_ids(fb.fields()).into_iter().zip(self.dict_ids.iter().copied()).collect();
        // A copy (a slice would keep the caller's whole buffer alive with the stream), and only
        // of a header of about the stream schema's size (padding or metadata can make it larger).
        if header.len() <= 4 * self.message.len() + 4096 {
            *remembered() = Some(AcceptedSchema { header: Bytes::copy_from_slice(header), id_map: id_map.clone() });
        }
        Ok(id_map)
    }
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

/// The same dictionary batch message with another dictionary id (the body is unchanged). Writers
/// number dictionaries independently (apache-arrow JS numbers them globally), so a buffer's ids
/// are mapped onto the stream's.
fn with_dictionary_id(header: &[u8], id: i64) -> Result<Bytes> {
    use arrow_ipc::{BodyCompressionBuilder, DictionaryBatchBuilder, MessageBuilder, RecordBatchBuilder};
    let msg = parse_message(header).map_err(|e| invalid(format!("bad IPC message: {e}")))?;
    let d = msg.header_as_dictionary_batch().ok_or_else(|| invalid("not a dictionary batch"))?;
    let rb = d.data().ok_or_else(|| invalid(format!("dictionary batch {} has no data", d.id())))?;
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let nodes: Vec<arrow_ipc::FieldNode> = rb.nodes().map(|v| v.iter().copied().collect()).unwrap_or_default();
    let buffers: Vec<arrow_ipc::Buffer> = rb.buffers().map(|v| v.iter().copied().collect()).unwrap_or_default();
    let nodes = fbb.create_vector(&nodes);
    let buffers = fbb.create_vector(&buffers);
    let variadic = rb.variadicBufferCounts().map(|v| {
        let counts: Vec<i64> = v.iter().collect();
        fbb.create_vector(&counts)
    });
    let compression = rb.compression().map(|c| {
        let mut b = BodyCompressionBuilder::new(&mut fbb);
        b.add_codec(c.codec());
        b.add_method(c.method());
        b.finish()
    });
    let mut r = RecordBatchBuilder::new(&mut fbb);
    r.add_length(rb.length());
    r.add_nodes(nodes);
    r.add_buffers(buffers);
    if let Some(c) = compression {
        r.add_compression(c);
    }
    if let Some(v) = variadic {
        r.add_variadicBufferCounts(v);
    }
    let data = r.finish();
    let mut db = DictionaryBatchBuilder::new(&mut fbb);
    db.add_id(id);
    db.add_data(data);
    db.add_isDelta(d.isDelta());
    let db = db.finish();
    let mut m = MessageBuilder::new(&mut fbb);
    m.add_version(msg.version());
    m.add_header_type(MessageHeader::DictionaryBatch);
    m.add_header(db.as_union_value());
    m.add_bodyLength(msg.bodyLength());
    let m = m.finish();
    fbb.finish(m, None);
    Ok(Bytes::copy_from_slice(fbb.finished_data()))
}

/// Reads the schema of an Arrow IPC stream (its first message). Used when a stream is created
/// from IPC bytes; decodes only the schema flatbuffer.
pub fn schema_from_ipc(bytes: &[u8]) -> Result<Schema> {
    count(&DECODE_PASSES);
    let mut at = 0;
    match next_message(bytes, &mut at)? {
        Some((_, msg, _)) => {
            let fb = msg
                .header_as_schema()
                .ok_or_else(|| invalid("the schema IPC bytes must start with a Schema message"))?;
            fb_to_schema(fb)
        }
        None => Err(invalid("the schema IPC bytes are empty")),
    }
}

fn invalid(msg: impl Into<String>) -> ZerobusError {
    ZerobusError::invalid(msg)
}

/// Verifies and opens an IPC message header. The flatbuffer verifier bounds the header's
/// "apparent" size (tables and strings counted each time they are referenced): by default 2 GiB
/// whatever the header's length, so a small header that references one long string many times
/// (e.g. as every field's name) would make the schema conversion allocate gigabytes. Writers do
/// not share tables or strings (an Arrow schema's apparent size is under twice its length), so
/// the bound here is proportional to the length.
fn parse_message(header: &[u8]) -> std::result::Result<arrow_ipc::Message<'_>, flatbuffers::InvalidFlatbuffer> {
    let opts = flatbuffers::VerifierOptions {
        max_apparent_size: header.len().saturating_mul(8).clamp(1 << 16, 1 << 31),
        ..Default::default()
    };
    arrow_ipc::root_as_message_with_opts(&opts, header)
}

/// `try_fb_to_schema`, after rejecting what it would panic on: a union without type ids gets
/// ids 0, 1, ... for its children, and arrow-schema panics past 128 of them.
fn fb_to_schema(fb: arrow_ipc::Schema<'_>) -> Result<Schema> {
    type FbFields<'a> = flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<arrow_ipc::Field<'a>>>;
    fn check(fields: Option<FbFields<'_>>) -> Result<()> {
        for f in fields.iter().flatten() {
            let children = f.children();
            if f.type_type() == arrow_ipc::Type::Union
                && f.type_as_union().is_some_and(|u| u.typeIds().is_none())
                && children.map_or(0, |c| c.len()) > 128
            {
                return Err(invalid("bad IPC schema: a union has more than 128 children"));
            }
            check(children)?;
        }
        Ok(())
    }
    check(fb.fields())?;
    arrow_ipc::convert::try_fb_to_schema(fb).map_err(|e| invalid(format!("bad IPC schema: {e}")))
}

/// Splits the next encapsulated message off an IPC stream: (flatbuffer header, the verified
/// message, body range).
/// Returns None at the end-of-stream marker or the end of the buffer.
fn next_message<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<(&'a [u8], arrow_ipc::Message<'a>, std::ops::Range<usize>)>> {
    let read_i32 = |p: usize| -> Option<i32> { buf.get(p..p + 4).map(|b| i32::from_le_bytes(b.try_into().unwrap())) };
    if *at >= buf.len() {
        return Ok(None);
    }
    let mut p = *at;
    let mut len = read_i32(p).ok_or_else(|| invalid(format!("truncated IPC stream at byte {p}")))?;
    p += 4;
    if len == -1 {
        // continuation marker, then the metadata length
        len = read_i32(p).ok_or_else(|| invalid(format!("truncated IPC stream at byte {p}")))?;
        p += 4;
    }
    if len == 0 {
        *at = buf.len();
        return Ok(None);
    }
    if len < 0 {
        return Err(invalid(format!("bad IPC message length {len} at byte {}", *at)));
    }
    let header_end = p + len as usize;
    let header = buf
        .get(p..header_end)
        .ok_or_else(|| invalid(format!("truncated IPC message header at byte {p}")))?;
    let msg = parse_message(header).map_err(|e| invalid(format!("bad IPC message at byte {p}: {e}")))?;
    let body_len = usize::try_from(msg.bodyLength()).map_err(|_| invalid("negative IPC body length"))?;
    let body = header_end..header_end + body_len;
    if body.end > buf.len() {
        return Err(invalid(format!(
            "truncated IPC message body: needs {body_len} bytes at byte {header_end}, buffer has {}",
            buf.len()
        )));
    }
    *at = body.end;
    Ok(Some((header, msg, body)))
}

/// Splits Arrow IPC stream bytes into one payload per record batch, without decoding data.
/// The stream's schema must equal `schema` (field names, types and nullability).
pub fn split_ipc_stream(ipc: &Bytes, stream: &StreamSchema) -> Result<Vec<ArrowPayload>> {
    let buf: &[u8] = ipc;
    let mut at = 0usize;
    let mut seen_schema = false;
    // Latest dictionary of each id; each batch carries the ones defined before it so that it can
    // be replayed on its own after a reconnect.
    let mut dictionaries: BTreeMap<i64, IpcMessage> = BTreeMap::new();
    // This buffer's dictionary ids -> the stream's.
    let mut id_map: BTreeMap<i64, i64> = BTreeMap::new();
    let mut out = Vec::new();
    // Message handles in `out`. Each batch carries every dictionary defined before it, so a
    // buffer of many dictionaries and many tiny batches would expand quadratically. A real batch
    // has a field node (16 bytes) per dictionary-encoded field (dictionaries nested in another
    // dictionary's values aside), hence at most one handle per 8 bytes of input.
    let mut handles = 0usize;
    let slice = |r: std::ops::Range<usize>| ipc.slice(r);
    while let Some((header, msg, body)) = next_message(buf, &mut at)? {
        let header_start = header.as_ptr() as usize - buf.as_ptr() as usize;
        let header_bytes = slice(header_start..header_start + header.len());
        match msg.header_type() {
            MessageHeader::Schema => {
                if seen_schema {
                    return Err(invalid("the IPC stream has a second Schema message"));
                }
                seen_schema = true;
                id_map = stream.accept(header, msg.header_as_schema().expect("schema header"))?;
            }
            MessageHeader::DictionaryBatch => {
                let d = msg.header_as_dictionary_batch().expect("dictionary header");
                if d.isDelta() {
                    return Err(invalid(format!(
                        "delta dictionary batches are not supported (dictionary id {}); write the IPC stream without delta dictionaries",
                        d.id()
                    )));
                }
                let id = *id_map
                    .get(&d.id())
                    .ok_or_else(|| invalid(format!("dictionary batch with id {} that the schema does not declare", d.id())))?;
                let header = if id == d.id() { header_bytes } else { with_dictionary_id(header, id)? };
                dictionaries.insert(id, IpcMessage { header, body: slice(body), shared: Some(SharedDictionary::new(id)) });
            }
            MessageHeader::RecordBatch => {
                if !seen_schema {
                    return Err(invalid("the IPC stream must start with a Schema message"));
                }
                let rb = msg.header_as_record_batch().expect("record batch header");
                let rows = usize::try_from(rb.length()).map_err(|_| invalid("negative row count in IPC record batch"))?;
                handles += dictionaries.len() + 1;
                if handles > buf.len() / 8 {
                    return Err(invalid(format!(
                        "the IPC stream's record batches (at byte {header_start}) carry more dictionaries than their field nodes describe"
                    )));
                }
                let mut messages: Vec<IpcMessage> = dictionaries.values().cloned().collect();
                messages.push(IpcMessage::new(header_bytes, slice(body)));
                out.push(ArrowPayload { messages: messages.into(), rows });
            }
            other => return Err(invalid(format!("unsupported IPC message type {other:?} in an Arrow stream"))),
        }
    }
    if !seen_schema {
        return Err(invalid("the IPC stream must start with a Schema message"));
    }
    if out.is_empty() {
        return Err(invalid("the IPC stream contains no record batch"));
    }
    Ok(out)
}

/// Encodes a RecordBatch to IPC messages (one encode pass), checking its schema first.
pub fn encode_batch(batch: &RecordBatch, stream: &StreamSchema) -> Result<ArrowPayload> {
    check_schema(batch.schema_ref(), &stream.schema)?;
    count(&ENCODE_PASSES);
    // The tracker learns the stream's dictionary ids from the schema first, as the stream's own
    // schema message was written.
    let mut tracker = DictionaryTracker::new(false);
    let gen = IpcDataGenerator::default();
    gen.schema_to_bytes_with_dictionary_tracker(&stream.schema, &mut tracker, &IpcWriteOptions::default());
    let (dicts, data) = gen
        .encode(batch, &mut tracker, &IpcWriteOptions::default(), &mut Default::default())
        .map_err(|e| invalid(format!("cannot encode the record batch: {e}")))?;
    let messages: Vec<IpcMessage> = dicts
        .into_iter()
        .chain(std::iter::once(data))
        .map(|d| IpcMessage::new(Bytes::from(d.ipc_message), Bytes::from(d.arrow_data)))
        .collect();
    Ok(ArrowPayload { messages: messages.into(), rows: batch.num_rows() })
}

/// Bytes of one FlightData message beyond its IPC header and body, at most (field tags,
/// lengths, the `{"offset_id":N}` app_metadata).
const FLIGHT_OVERHEAD: usize = 256;

fn fits(m: &IpcMessage, limit: usize) -> bool {
    m.header.len() + m.body.len() + FLIGHT_OVERHEAD <= limit
}

/// `payload` as requests whose FlightData messages each fit in `limit`: the payload itself when
/// they do (zero-copy); else its record batch is decoded once and re-encoded as row slices that
/// fit, each slice's top-level dictionaries reduced to the values it uses. A single row too big
/// for one message (with its dictionary values) is refused.
pub fn fit_message_limit(payload: ArrowPayload, stream: &StreamSchema, limit: usize) -> Result<Vec<ArrowPayload>> {
    if payload.messages.iter().all(|m| fits(m, limit)) {
        return Ok(vec![payload]);
    }
    count(&DECODE_PASSES);
    let ipc = ipc_stream_bytes(stream, &payload);
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .map_err(|e| invalid(format!("cannot decode the record batch to split it: {e}")))?;
    let size = payload.byte_len();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| invalid(format!("cannot decode the record batch to split it: {e}")))?;
        slice_within(&batch, size, stream, limit, &mut out)?;
    }
    Ok(out)
}

/// Encodes `batch` as one request, or as row slices when it is too big for one message.
pub fn encode_batch_within(batch: &RecordBatch, stream: &StreamSchema, limit: usize) -> Result<Vec<ArrowPayload>> {
    let mut out = Vec::new();
    // Far bigger than the limit by its buffers' size: slice before encoding the whole of it.
    let size = batch.get_array_memory_size();
    if batch.num_rows() > 1 && size > 4 * limit {
        slice_within(batch, size, stream, limit, &mut out)?;
    } else {
        encode_within(batch, stream, limit, &mut out)?;
    }
    Ok(out)
}

/// Encodes `batch`; if a message is over the limit, slices it (see [`slice_within`]).
fn encode_within(batch: &RecordBatch, stream: &StreamSchema, limit: usize, out: &mut Vec<ArrowPayload>) -> Result<()> {
    let p = encode_batch(batch, stream)?;
    if p.messages.iter().all(|m| fits(m, limit)) {
        out.push(p);
        return Ok(());
    }
    if batch.num_rows() <= 1 {
        return Err(invalid(format!(
            "a row of {} bytes (Arrow IPC, with its dictionary values) does not fit in one message of max_message_bytes ({limit})",
            p.byte_len()
        )));
    }
    slice_within(batch, p.byte_len(), stream, limit, out)
}

/// Cuts `batch` (about `size` bytes encoded) into row slices sized to fit with room to spare,
/// compacts their dictionaries, and encodes each (halving any that still does not fit).
fn slice_within(batch: &RecordBatch, size: usize, stream: &StreamSchema, limit: usize, out: &mut Vec<ArrowPayload>) -> Result<()> {
    let rows = batch.num_rows();
    let parts = (size / (limit - limit / 8).max(1) + 1).clamp(2, rows.max(2));
    let per = rows.div_ceil(parts).max(1);
    let mut at = 0;
    while at < rows {
        let n = per.min(rows - at);
        encode_within(&compact_dictionaries(&batch.slice(at, n))?, stream, limit, out)?;
        at += n;
    }
    Ok(())
}

/// A slice still refers to its whole dictionaries; keep only the values its keys use (top-level
/// dictionary columns).
fn compact_dictionaries(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow_array::cast::AsArray;
    if !batch.columns().iter().any(|c| c.as_any_dictionary_opt().is_some()) {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_any_dictionary_opt() {
            Some(_) => compact_dictionary(c),
            None => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| invalid(format!("cannot rebuild a sliced batch: {e}")))
}

/// One dictionary array with only the values its (valid) keys use, in their original order, and
/// its keys renumbered. Values are copied by runs with `MutableArrayData`, which handles every
/// value type without a kernel per type (arrow-select's would add ~0.5 MB to the library).
fn compact_dictionary(column: &arrow_array::ArrayRef) -> Result<arrow_array::ArrayRef> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_array::{Array, DictionaryArray};
    use arrow_buffer::ArrowNativeType;
    use arrow_schema::DataType;

    let dict = column.as_any_dictionary();
    let values = dict.values();
    if values.is_empty() {
        return Ok(column.clone()); // all keys null: nothing to compact (normalized_keys() asserts values)
    }
    let keys = dict.normalized_keys();
    let mut used = vec![false; values.len()];
    for (i, &k) in keys.iter().enumerate() {
        if dict.keys().is_valid(i) {
            if let Some(u) = used.get_mut(k) {
                *u = true;
            }
        }
    }
    // New index of each used value; runs of used values are copied at once.
    let mut remap = vec![0usize; values.len()];
    let source = values.to_data();
    let mut out = arrow_data::transform::MutableArrayData::new(vec![&source], false, used.iter().filter(|u| **u).count());
    let mut next = 0;
    let mut i = 0;
    while i < used.len() {
        if !used[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < used.len() && used[i] {
            remap[i] = next;
            next += 1;
            i += 1;
        }
        out.try_extend(0, start, i).map_err(|e| invalid(format!("cannot compact a dictionary to split the batch: {e}")))?;
    }
    let new_values = arrow_array::make_array(out.freeze());

    // A new key is never larger than the old one, so it fits the key type.
    fn rebuild<K: ArrowDictionaryKeyType>(column: &arrow_array::ArrayRef, values: arrow_array::ArrayRef, remap: &[usize]) -> Result<arrow_array::ArrayRef> {
        let d = column.as_dictionary::<K>();
        let keys = d.keys().unary::<_, K>(|k| K::Native::from_usize(remap.get(k.as_usize()).copied().unwrap_or(0)).unwrap_or_default());
        let out = DictionaryArray::<K>::try_new(keys, values).map_err(|e| invalid(format!("cannot compact a dictionary to split the batch: {e}")))?;
        Ok(Arc::new(out))
    }
    match dict.keys().data_type() {
        DataType::Int8 => rebuild::<Int8Type>(column, new_values, &remap),
        DataType::Int16 => rebuild::<Int16Type>(column, new_values, &remap),
        DataType::Int32 => rebuild::<Int32Type>(column, new_values, &remap),
        DataType::Int64 => rebuild::<Int64Type>(column, new_values, &remap),
        DataType::UInt8 => rebuild::<UInt8Type>(column, new_values, &remap),
        DataType::UInt16 => rebuild::<UInt16Type>(column, new_values, &remap),
        DataType::UInt32 => rebuild::<UInt32Type>(column, new_values, &remap),
        DataType::UInt64 => rebuild::<UInt64Type>(column, new_values, &remap),
        other => Err(invalid(format!("cannot compact a dictionary with {other} keys to split the batch"))),
    }
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
    use super::*;
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
        let writer = StreamSchema { schema, message: Bytes::from(sch.ipc_message), dict_ids: vec![], accepted: Mutex::new(None) };
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
    fn record_batches_are_encoded_once() {
        let b = batch(4);
        let before = ipc_passes().0;
        let p = encode_batch(&b, &StreamSchema::new(b.schema())).unwrap();
        assert_eq!(ipc_passes().0, before + 1);
        assert_eq!(p.rows, 4);
        assert_eq!(p.messages.len(), 1);
    }
}
