//! Encoding record batches to IPC, and fitting requests to the message size limit (row slices
//! with compacted dictionaries).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use bytes::Bytes;

use super::{check_schema, count, invalid, ipc_stream_bytes, ArrowPayload, IpcMessage, StreamSchema, DECODE_PASSES, ENCODE_PASSES};
use crate::error::Result;

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
        .encode(batch, &mut tracker, &stream.write_options()?, &mut Default::default())
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

pub(super) fn fits(m: &IpcMessage, limit: usize) -> bool {
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
pub(super) fn compact_dictionaries(batch: &RecordBatch) -> Result<RecordBatch> {
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
