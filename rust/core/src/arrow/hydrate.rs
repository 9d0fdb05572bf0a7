//! Dictionary columns expanded ("hydrated") to their value type, as the official SDKs send them:
//! the wire schema of a stream whose batches have dictionary-encoded fields, and the batches
//! rewritten to it. Only batches of such a stream are decoded and re-encoded; a stream without
//! dictionaries keeps the zero-copy path. Dictionaries are found at any depth inside structs and
//! lists; other nestings of a dictionary are refused (send them as they are with
//! `keep_dictionaries`).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, LargeListArray, ListArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;

use super::{check_schema, count, invalid, StreamSchema, DECODE_PASSES};
use crate::error::Result;

fn has_dictionary(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(..) => true,
        DataType::Struct(fs) => fs.iter().any(|f| has_dictionary(f.data_type())),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::Map(f, _) | DataType::ListView(f) | DataType::LargeListView(f) => {
            has_dictionary(f.data_type())
        }
        DataType::Union(fs, _) => fs.iter().any(|(_, f)| has_dictionary(f.data_type())),
        DataType::RunEndEncoded(a, b) => has_dictionary(a.data_type()) || has_dictionary(b.data_type()),
        _ => false,
    }
}

fn hydrate_type(dt: &DataType, path: &str) -> Result<DataType> {
    Ok(match dt {
        DataType::Dictionary(_, values) => hydrate_type(values, path)?,
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| hydrate_field(f, path)).collect::<Result<Fields>>()?),
        DataType::List(f) => DataType::List(Arc::new(hydrate_field(f, path)?)),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(hydrate_field(f, path)?)),
        other if has_dictionary(other) => {
            return Err(invalid(format!(
                "field {path}: a dictionary inside {other} cannot be expanded here; send dictionaries as they are (keepDictionaries)"
            )))
        }
        other => other.clone(),
    })
}

fn hydrate_field(f: &Field, parent: &str) -> Result<Field> {
    let path = if parent.is_empty() { f.name().clone() } else { format!("{parent}.{}", f.name()) };
    Ok(f.clone().with_data_type(hydrate_type(f.data_type(), &path)?))
}

/// The schema with every dictionary field expanded to its value type; None when it has none.
pub fn hydrated_schema(schema: &Schema) -> Result<Option<Schema>> {
    if !schema.fields().iter().any(|f| has_dictionary(f.data_type())) {
        return Ok(None);
    }
    let fields = schema.fields().iter().map(|f| hydrate_field(f, "")).collect::<Result<Fields>>()?;
    Ok(Some(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// `a` with its dictionaries expanded, as `to` (from [`hydrated_schema`]) describes it.
fn hydrate_array(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    let fail = |e: arrow_schema::ArrowError| invalid(format!("cannot expand a dictionary column: {e}"));
    Ok(match (a.data_type(), to) {
        (DataType::Dictionary(..), _) => {
            let d = a.as_any_dictionary();
            let values = arrow_select::take::take(d.values().as_ref(), d.keys(), None).map_err(fail)?;
            hydrate_array(&values, to)?
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = a.as_struct();
            let columns = s.columns().iter().zip(fields.iter()).map(|(c, f)| hydrate_array(c, f.data_type())).collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(fields.clone(), columns, s.nulls().cloned()).map_err(fail)?)
        }
        (DataType::List(_), DataType::List(field)) => {
            let l = a.as_list::<i32>();
            let values = hydrate_array(l.values(), field.data_type())?;
            Arc::new(ListArray::try_new(field.clone(), l.offsets().clone(), values, l.nulls().cloned()).map_err(fail)?)
        }
        (DataType::LargeList(_), DataType::LargeList(field)) => {
            let l = a.as_list::<i64>();
            let values = hydrate_array(l.values(), field.data_type())?;
            Arc::new(LargeListArray::try_new(field.clone(), l.offsets().clone(), values, l.nulls().cloned()).map_err(fail)?)
        }
        (from, to) => return Err(invalid(format!("cannot expand a column of {from} to {to}"))),
    })
}

/// `batch` (of the stream's input schema) with its dictionary columns expanded to `wire`.
pub fn hydrate_batch(batch: &RecordBatch, wire: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(wire.fields().iter())
        .map(|(c, f)| hydrate_array(c, f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(wire.clone(), columns, &options).map_err(|e| invalid(format!("cannot expand dictionaries: {e}")))
}

/// `batch` as `stream` sends it: checked against the stream's input schema and its dictionary
/// columns expanded when the stream expands them, else as it is (checked when encoded).
pub fn wire_batch(batch: &RecordBatch, stream: &StreamSchema) -> Result<RecordBatch> {
    match &stream.input {
        Some(input) => {
            check_schema(batch.schema_ref(), input)?;
            hydrate_batch(batch, &stream.schema)
        }
        None => Ok(batch.clone()),
    }
}

/// The record batches of IPC stream bytes (one decode pass), after checking their schema
/// against `input`.
pub fn decode_ipc(ipc: &Bytes, input: &Schema) -> Result<Vec<RecordBatch>> {
    count(&DECODE_PASSES);
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc.as_ref()), None)
        .map_err(|e| invalid(format!("bad Arrow IPC stream: {e}")))?;
    check_schema(&reader.schema(), input)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| invalid(format!("bad Arrow IPC stream: {e}")))?;
    if batches.is_empty() {
        return Err(invalid("the Arrow IPC bytes hold no record batch"));
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, Int32Array};

    #[test]
    fn dictionary_columns_expand_at_any_depth_with_nulls_kept() {
        let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("b"), Some("a")].into_iter().collect();
        let dict: ArrayRef = Arc::new(dict);
        let list = {
            let inner: DictionaryArray<Int32Type> = vec![Some("x"), Some("y"), Some("x")].into_iter().collect();
            let f = Arc::new(Field::new("item", inner.data_type().clone(), true));
            let offsets = arrow_buffer::OffsetBuffer::new(vec![0, 1, 1, 3, 3].into());
            Arc::new(ListArray::try_new(f, offsets, Arc::new(inner), None).unwrap()) as ArrayRef
        };
        let ids: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3, 4]));
        let inner: DictionaryArray<Int32Type> = vec![Some("p"), Some("q"), None, Some("p")].into_iter().collect();
        let st: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("k", inner.data_type().clone(), true)),
            Arc::new(inner) as ArrayRef,
        )]));
        let b = RecordBatch::try_from_iter([("id", ids), ("d", dict), ("l", list), ("s", st)]).unwrap();
        let wire: SchemaRef = Arc::new(hydrated_schema(b.schema_ref()).unwrap().expect("has dictionaries"));
        assert_eq!(wire.field(1).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(2).data_type(), &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))));
        let h = hydrate_batch(&b, &wire).unwrap();
        let d: Vec<Option<&str>> = h.column(1).as_string::<i32>().iter().collect();
        assert_eq!(d, vec![Some("a"), None, Some("b"), Some("a")]);
        let l = h.column(2).as_list::<i32>();
        assert_eq!(l.value(2).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("y"), Some("x")]);
        let s = h.column(3).as_struct();
        assert_eq!(s.column(0).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("p"), Some("q"), None, Some("p")]);
        assert!(hydrated_schema(&Schema::new(vec![Field::new("s", DataType::Utf8, true)])).unwrap().is_none());
    }
}
