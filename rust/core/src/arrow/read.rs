//! Reading Arrow IPC stream bytes without decoding data: message framing, header checks, the
//! schema check (remembered per stream), dictionary ids mapped onto the stream's, and the split
//! into one payload per record batch.

use std::collections::BTreeMap;

use arrow_ipc::MessageHeader;
use arrow_schema::Schema;
use bytes::Bytes;

use super::{check_schema, count, dictionary_ids, invalid, AcceptedSchema, ArrowPayload, IpcMessage, SharedDictionary, StreamSchema, DECODE_PASSES};
use crate::error::Result;

impl StreamSchema {
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

/// The same dictionary batch message with another dictionary id (the body is unchanged). Writers
/// number dictionaries independently (apache-arrow JS numbers them globally), so a buffer's ids
/// are mapped onto the stream's.
pub(super) fn with_dictionary_id(header: &[u8], id: i64) -> Result<Bytes> {
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
