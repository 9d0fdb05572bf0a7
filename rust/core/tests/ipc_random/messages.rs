//! Flatbuffer messages generated field by field: hostile schemas (wide unions, shared names,
//! dictionary-heavy streams), random schema and batch messages, and their framing.

#[allow(unused_imports)]
use super::*;

/// A Schema message of one sparse union (no type ids) whose `children` are all the same Null
/// field table.
pub(crate) fn union_schema_message(children: usize) -> Vec<u8> {
    use arrow_ipc::*;
    let mut fbb = FlatBufferBuilder::new();
    let null = NullBuilder::new(&mut fbb).finish().as_union_value();
    let mut child = FieldBuilder::new(&mut fbb);
    child.add_type_type(Type::Null);
    child.add_type_(null);
    let child = child.finish();
    let kids = fbb.create_vector(&vec![child; children]);
    let union = {
        let mut b = UnionBuilder::new(&mut fbb);
        b.add_mode(arrow_ipc::UnionMode::Sparse);
        b.finish().as_union_value()
    };
    let mut f = FieldBuilder::new(&mut fbb);
    f.add_type_type(Type::Union);
    f.add_type_(union);
    f.add_children(kids);
    let f = f.finish();
    schema_message(fbb, &[f])
}

/// A Schema message of `n` Utf8 fields that all reference one name string of `name_len` bytes,
/// each field its own table (dictionary-encoded with ids 0.., when `dict`), or, when `shared`,
/// all `n` the same table: a flatbuffer DAG no writer produces, much larger read as a tree.
pub(crate) fn wide_schema_message(n: usize, name_len: usize, dict: bool, shared: bool) -> Vec<u8> {
    use arrow_ipc::*;
    fn field<'a>(
        fbb: &mut FlatBufferBuilder<'a>,
        name: WIPOffset<&'a str>,
        dict: Option<i64>,
    ) -> WIPOffset<arrow_ipc::Field<'a>> {
        let t = NullBuilder::new(fbb).finish().as_union_value();
        let d = dict.map(|id| {
            let mut ix = IntBuilder::new(fbb);
            ix.add_bitWidth(32);
            ix.add_is_signed(true);
            let ix = ix.finish();
            let mut b = DictionaryEncodingBuilder::new(fbb);
            b.add_id(id);
            b.add_indexType(ix);
            b.finish()
        });
        let mut f = FieldBuilder::new(fbb);
        f.add_name(name);
        f.add_nullable(true);
        f.add_type_type(Type::Utf8);
        f.add_type_(t);
        if let Some(d) = d {
            f.add_dictionary(d);
        }
        f.finish()
    }
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string(&"n".repeat(name_len));
    let fields: Vec<_> = if shared {
        let one = field(&mut fbb, name, dict.then_some(0));
        vec![one; n]
    } else {
        (0..n).map(|i| field(&mut fbb, name, dict.then_some(i as i64))).collect()
    };
    schema_message(fbb, &fields)
}

/// A DictionaryBatch (with `dict_id`) or RecordBatch message without nodes, buffers or body.
pub(crate) fn empty_batch_message(dict_id: Option<i64>) -> Vec<u8> {
    use arrow_ipc::*;
    let mut fbb = FlatBufferBuilder::new();
    let rb = RecordBatchBuilder::new(&mut fbb).finish();
    let (ty, h) = match dict_id {
        Some(id) => {
            let mut d = DictionaryBatchBuilder::new(&mut fbb);
            d.add_id(id);
            d.add_data(rb);
            (MessageHeader::DictionaryBatch, d.finish().as_union_value())
        }
        None => (MessageHeader::RecordBatch, rb.as_union_value()),
    };
    let mut m = MessageBuilder::new(&mut fbb);
    m.add_version(MetadataVersion::V5);
    m.add_header_type(ty);
    m.add_header(h);
    let m = m.finish();
    fbb.finish(m, None);
    fbb.finished_data().to_vec()
}

/// `d` dictionary-encoded fields, their `d` dictionaries, then `m` record batches without field
/// nodes: each batch would carry all `d` dictionaries.
pub(crate) fn dictionary_heavy_stream(d: usize, m: usize) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, &wide_schema_message(d, 1, true, false), &[], false);
    for i in 0..d {
        frame(&mut out, &empty_batch_message(Some(i as i64)), &[], false);
    }
    let batch = empty_batch_message(None);
    for _ in 0..m {
        frame(&mut out, &batch, &[], false);
    }
    out.extend_from_slice(&eos());
    out
}

/// A random Schema message (flatbuffer header only).
pub(crate) fn random_schema_message(rng: &mut Rng) -> Vec<u8> {
    use arrow_ipc::*;
    let mut fbb = FlatBufferBuilder::new();
    let fields = rng.chance(97).then(|| {
        let fields: Vec<_> = if rng.chance(3) {
            vec![deep_field(&mut fbb, rng.range(20..80))]
        } else {
            (0..rng.range(0..6)).map(|_| random_field(&mut fbb, rng, 3)).collect()
        };
        fbb.create_vector(&fields)
    });
    let metadata = rng.chance(10).then(|| random_metadata(&mut fbb, rng));
    let features = rng.chance(5).then(|| {
        let f: Vec<Feature> = (0..rng.range(0..3)).map(|_| Feature(rand_i64(rng))).collect();
        fbb.create_vector(&f)
    });
    let mut s = SchemaBuilder::new(&mut fbb);
    if let Some(f) = fields {
        s.add_fields(f);
    }
    if rng.chance(10) {
        s.add_endianness(Endianness(rng.range(0..3) as i16));
    }
    if let Some(m) = metadata {
        s.add_custom_metadata(m);
    }
    if let Some(f) = features {
        s.add_features(f);
    }
    let s = s.finish();
    finish_message(fbb, rng, MessageHeader::Schema, s.as_union_value(), 0)
}

pub(crate) fn finish_message(
    mut fbb: FlatBufferBuilder<'_>,
    rng: &mut Rng,
    header_type: arrow_ipc::MessageHeader,
    header: WIPOffset<flatbuffers::UnionWIPOffset>,
    body_len: i64,
) -> Vec<u8> {
    let metadata = rng.chance(5).then(|| random_metadata(&mut fbb, rng));
    let mut m = arrow_ipc::MessageBuilder::new(&mut fbb);
    m.add_version(if rng.chance(90) {
        arrow_ipc::MetadataVersion::V5
    } else {
        arrow_ipc::MetadataVersion(rng.range(0..10) as i16 - 1)
    });
    if rng.chance(95) {
        m.add_header_type(header_type);
    }
    if rng.chance(98) {
        m.add_header(header);
    }
    m.add_bodyLength(if rng.chance(90) { body_len } else { rand_i64(rng) });
    if let Some(md) = metadata {
        m.add_custom_metadata(md);
    }
    let m = m.finish();
    fbb.finish(m, None);
    fbb.finished_data().to_vec()
}

pub(crate) fn random_record_batch<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng) -> WIPOffset<arrow_ipc::RecordBatch<'a>> {
    use arrow_ipc::*;
    let small = |rng: &mut Rng| if rng.chance(80) { rng.range(0..64) as i64 } else { rand_i64(rng) };
    let nodes: Vec<FieldNode> = (0..rng.range(0..5)).map(|_| FieldNode::new(small(rng), small(rng))).collect();
    let buffers: Vec<Buffer> = (0..rng.range(0..7)).map(|_| Buffer::new(small(rng), small(rng))).collect();
    let nodes = rng.chance(95).then(|| fbb.create_vector(&nodes));
    let buffers = rng.chance(95).then(|| fbb.create_vector(&buffers));
    let variadic = rng.chance(10).then(|| {
        let v: Vec<i64> = (0..rng.range(0..3)).map(|_| small(rng)).collect();
        fbb.create_vector(&v)
    });
    let compression = rng.chance(10).then(|| {
        let mut b = BodyCompressionBuilder::new(fbb);
        b.add_codec(CompressionType(rng.range(0..4) as i8 - 1));
        b.add_method(BodyCompressionMethod(rng.range(0..3) as i8 - 1));
        b.finish()
    });
    let mut r = RecordBatchBuilder::new(fbb);
    r.add_length(small(rng));
    if let Some(n) = nodes {
        r.add_nodes(n);
    }
    if let Some(b) = buffers {
        r.add_buffers(b);
    }
    if let Some(v) = variadic {
        r.add_variadicBufferCounts(v);
    }
    if let Some(c) = compression {
        r.add_compression(c);
    }
    r.finish()
}

/// A random RecordBatch, DictionaryBatch or other message, framed, with a body.
pub(crate) fn random_data_message(rng: &mut Rng, out: &mut Vec<u8>, dict_ids: &[i64], legacy: bool) {
    use arrow_ipc::*;
    let body_len = *rng.pick(&[0, 0, 8, 16, 24, 64]);
    let body = rng.bytes(body_len);
    let mut fbb = FlatBufferBuilder::new();
    let (ty, header) = match rng.below(10) {
        0..=4 => (MessageHeader::RecordBatch, random_record_batch(&mut fbb, rng).as_union_value()),
        5..=8 => {
            let data = rng.chance(95).then(|| random_record_batch(&mut fbb, rng));
            let mut d = DictionaryBatchBuilder::new(&mut fbb);
            let id = if !dict_ids.is_empty() && rng.chance(80) { *rng.pick(dict_ids) } else { rand_i64(rng) };
            d.add_id(id);
            if let Some(data) = data {
                d.add_data(data);
            }
            if rng.chance(10) {
                d.add_isDelta(true);
            }
            (MessageHeader::DictionaryBatch, d.finish().as_union_value())
        }
        _ => (MessageHeader(rng.range(0..8) as u8), NullBuilder::new(&mut fbb).finish().as_union_value()),
    };
    let header = finish_message(fbb, rng, ty, header, body.len() as i64);
    frame(out, &header, &body, legacy);
}

/// Appends one encapsulated message: [continuation] length, header padded to 8, body.
pub(crate) fn frame(out: &mut Vec<u8>, header: &[u8], body: &[u8], legacy: bool) {
    let prefix = if legacy { 4 } else { 8 };
    let padded = (prefix + header.len()).div_ceil(8) * 8 - prefix;
    if !legacy {
        out.extend_from_slice(&(-1i32).to_le_bytes());
    }
    out.extend_from_slice(&(padded as i32).to_le_bytes());
    out.extend_from_slice(header);
    out.resize(out.len() + padded - header.len(), 0);
    out.extend_from_slice(body);
}

/// Dictionary ids declared by a Schema message, depth first (as the walker reads them).
pub(crate) fn declared_dict_ids(header: &[u8]) -> Vec<i64> {
    fn walk(
        fields: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<arrow_ipc::Field<'_>>>>,
        out: &mut Vec<i64>,
    ) {
        for f in fields.iter().flatten() {
            if let Some(d) = f.dictionary() {
                out.push(d.id());
            }
            walk(f.children(), out);
        }
    }
    let mut out = Vec::new();
    if let Some(s) = arrow_ipc::root_as_message(header).ok().and_then(|m| m.header_as_schema()) {
        walk(s.fields(), &mut out);
    }
    out
}
