//! Valid streams to start from, written by arrow-ipc, and the message spans of a stream.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Sample {
    pub(crate) name: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) stream: StreamSchema,
    /// Record batches a correct split finds in the unmutated bytes (None: it must fail).
    pub(crate) batches: Option<usize>,
}

pub(crate) fn write_stream(schema: &SchemaRef, batches: &[RecordBatch], opts: IpcWriteOptions) -> Vec<u8> {
    let mut w = StreamWriter::try_new_with_options(Vec::new(), schema, opts).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    w.into_inner().unwrap()
}

pub(crate) fn dict<K: arrow_array::types::ArrowDictionaryKeyType>(v: &[&str]) -> ArrayRef {
    Arc::new(v.iter().copied().collect::<DictionaryArray<K>>())
}

pub(crate) fn dict_type(key: DataType) -> DataType {
    DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8))
}

pub(crate) fn plain_batch(schema: &SchemaRef, n: i32) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(0..n));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("r{i}"))));
    RecordBatch::try_new(schema.clone(), vec![ids, names]).unwrap()
}

/// A schema that uses most logical types (only its schema message is written).
pub(crate) fn rich_schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ])),
        false,
    );
    let union = UnionFields::try_new(
        vec![0, 3, 7],
        vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("l", DataType::List(item.clone()), true),
        ],
    )
    .unwrap();
    Arc::new(Schema::new(vec![
        Field::new("b", DataType::Boolean, true),
        Field::new("u8", DataType::UInt8, false),
        Field::new("f16", DataType::Float16, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())), true),
        Field::new("t32", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("d64", DataType::Date64, true),
        Field::new("dur", DataType::Duration(TimeUnit::Nanosecond), true),
        Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
        Field::new("dec", DataType::Decimal128(38, 9), true),
        Field::new("dec256", DataType::Decimal256(76, -3), true),
        Field::new("fsb", DataType::FixedSizeBinary(16), true),
        Field::new("lu", DataType::LargeUtf8, true),
        Field::new("bv", DataType::BinaryView, true),
        Field::new("fsl", DataType::FixedSizeList(item.clone(), 3), true),
        Field::new("ll", DataType::LargeList(item.clone()), true),
        Field::new("m", DataType::Map(Arc::new(entries), true), true),
        Field::new("un", DataType::Union(union, UnionMode::Dense), false),
        Field::new(
            "ree",
            DataType::RunEndEncoded(
                Arc::new(Field::new("run_ends", DataType::Int32, false)),
                Arc::new(Field::new("values", DataType::Utf8, true)),
            ),
            true,
        ),
        Field::new("ld", DataType::List(Arc::new(Field::new("item", dict_type(DataType::UInt16), true))), true),
    ]))
}

pub(crate) fn eos() -> [u8; 8] {
    [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]
}

pub(crate) fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let mut add = |name, schema: SchemaRef, bytes: Vec<u8>, batches| {
        out.push(Sample { name, bytes, stream: StreamSchema::new(schema), batches });
    };

    let plain: SchemaRef =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false), Field::new("name", DataType::Utf8, true)]));
    let b = [plain_batch(&plain, 3), plain_batch(&plain, 5), plain_batch(&plain, 0)];
    add("plain", plain.clone(), write_stream(&plain, &b, IpcWriteOptions::default()), Some(3));
    let legacy = IpcWriteOptions::try_new(8, true, arrow_ipc::MetadataVersion::V4).unwrap();
    add("plain-legacy", plain.clone(), write_stream(&plain, &b, legacy.clone()), Some(3));
    let many: Vec<RecordBatch> = (0..12).map(|i| plain_batch(&plain, i % 3)).collect();
    add("many-batches", plain.clone(), write_stream(&plain, &many, IpcWriteOptions::default()), Some(12));
    add("schema-only", plain.clone(), write_stream(&plain, &[], IpcWriteOptions::default()), None);

    let ds: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("d", dict_type(DataType::Int32), true),
        Field::new("n", DataType::Int64, false),
    ]));
    let db = |v: &[&str]| {
        let n: ArrayRef = Arc::new(Int64Array::from_iter_values(0..v.len() as i64));
        RecordBatch::try_new(ds.clone(), vec![dict::<Int32Type>(v), n]).unwrap()
    };
    let dbs = [db(&["a", "b", "a"]), db(&["c"]), db(&["a", "b", "c", "d"])];
    add("dict", ds.clone(), write_stream(&ds, &dbs, IpcWriteOptions::default()), Some(3));
    add("dict-legacy", ds.clone(), write_stream(&ds, &dbs, legacy), Some(3));
    let delta = IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta);
    add("dict-delta", ds.clone(), write_stream(&ds, &[db(&["a", "b"]), db(&["a", "b", "c"])], delta), None);

    let d2: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("x", dict_type(DataType::Int8), true),
        Field::new("y", dict_type(DataType::Int16), false),
        Field::new("f", DataType::Float64, true),
    ]));
    let d2b = |x: &[&str], y: &[&str]| {
        let f: ArrayRef = Arc::new(Float64Array::from_iter_values((0..x.len()).map(|i| i as f64)));
        RecordBatch::try_new(d2.clone(), vec![dict::<Int8Type>(x), dict::<Int16Type>(y), f]).unwrap()
    };
    let d2bs = [d2b(&["p", "q"], &["z", "z"]), d2b(&["q"], &["y"])];
    add("dict2", d2.clone(), write_stream(&d2, &d2bs, IpcWriteOptions::default()), Some(2));

    // The same batches, but the buffer numbers its dictionaries 5 and 6 (as another writer
    // might): split_ipc_stream maps them onto the stream's 0 and 1 by rewriting the headers.
    {
        let gen = IpcDataGenerator::default();
        let opts = IpcWriteOptions::default();
        let mut offset_tracker = DictionaryTracker::new(false);
        for _ in 0..5 {
            offset_tracker.next_dict_id();
        }
        let mut bytes = Vec::new();
        let schema_msg = gen.schema_to_bytes_with_dictionary_tracker(&d2, &mut offset_tracker, &opts);
        arrow_ipc::writer::write_message(&mut bytes, schema_msg, &opts).unwrap();
        let mut tracker = DictionaryTracker::new(false);
        gen.schema_to_bytes_with_dictionary_tracker(&d2, &mut tracker, &opts);
        for b in &d2bs {
            let (dicts, data) = gen.encode(b, &mut tracker, &opts, &mut Default::default()).unwrap();
            for d in dicts {
                let m = arrow_ipc::root_as_message(&d.ipc_message).unwrap();
                let id = m.header_as_dictionary_batch().unwrap().id();
                let ipc_message = reid_dictionary(&d.ipc_message, id + 5);
                arrow_ipc::writer::write_message(
                    &mut bytes,
                    EncodedData { ipc_message, arrow_data: d.arrow_data },
                    &opts,
                )
                .unwrap();
            }
            arrow_ipc::writer::write_message(&mut bytes, data, &opts).unwrap();
        }
        bytes.extend_from_slice(&eos());
        add("dict2-reid", d2.clone(), bytes, Some(2));
    }

    let inner =
        Fields::from(vec![Field::new("k", DataType::Int32, false), Field::new("d", dict_type(DataType::Int32), true)]);
    let nested: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Struct(inner.clone()), true),
        Field::new("l", DataType::List(Arc::new(Field::new("item", DataType::Int32, true))), true),
        Field::new("ok", DataType::Boolean, true),
    ]));
    let nb = |n: i32| {
        let s = StructArray::new(
            inner.clone(),
            vec![Arc::new(Int32Array::from_iter_values(0..n)) as ArrayRef, dict::<Int32Type>(&vec!["u"; n as usize])],
            None,
        );
        let l = ListArray::from_iter_primitive::<Int32Type, _, _>((0..n).map(|i| Some(vec![Some(i), None])));
        let ok = BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)));
        RecordBatch::try_new(nested.clone(), vec![Arc::new(s), Arc::new(l), Arc::new(ok)]).unwrap()
    };
    add("nested-dict", nested.clone(), write_stream(&nested, &[nb(2), nb(1)], IpcWriteOptions::default()), Some(2));

    let rich = rich_schema();
    add("rich-schema-only", rich.clone(), write_stream(&rich, &[], IpcWriteOptions::default()), None);
    out
}

/// A dictionary batch message with another id (test-side copy of what the walker does).
pub(crate) fn reid_dictionary(header: &[u8], id: i64) -> Vec<u8> {
    let msg = arrow_ipc::root_as_message(header).unwrap();
    let d = msg.header_as_dictionary_batch().unwrap();
    let rb = d.data().unwrap();
    let mut fbb = FlatBufferBuilder::new();
    let nodes: Vec<arrow_ipc::FieldNode> = rb.nodes().map(|v| v.iter().copied().collect()).unwrap_or_default();
    let buffers: Vec<arrow_ipc::Buffer> = rb.buffers().map(|v| v.iter().copied().collect()).unwrap_or_default();
    let nodes = fbb.create_vector(&nodes);
    let buffers = fbb.create_vector(&buffers);
    let mut r = arrow_ipc::RecordBatchBuilder::new(&mut fbb);
    r.add_length(rb.length());
    r.add_nodes(nodes);
    r.add_buffers(buffers);
    let data = r.finish();
    let mut db = arrow_ipc::DictionaryBatchBuilder::new(&mut fbb);
    db.add_id(id);
    db.add_data(data);
    db.add_isDelta(d.isDelta());
    let db = db.finish();
    let mut m = arrow_ipc::MessageBuilder::new(&mut fbb);
    m.add_version(msg.version());
    m.add_header_type(arrow_ipc::MessageHeader::DictionaryBatch);
    m.add_header(db.as_union_value());
    m.add_bodyLength(msg.bodyLength());
    let m = m.finish();
    fbb.finish(m, None);
    fbb.finished_data().to_vec()
}

/// Message spans (prefix, header, body) of a well-formed stream, end-of-stream marker included.
pub(crate) fn spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut p = 0;
    let word = |p: usize| i32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
    while p + 4 <= bytes.len() {
        let start = p;
        let mut len = word(p);
        p += 4;
        if len == -1 {
            len = word(p);
            p += 4;
        }
        if len == 0 {
            out.push(start..p);
            break;
        }
        let header = &bytes[p..p + len as usize];
        let body = arrow_ipc::root_as_message(header).unwrap().bodyLength() as usize;
        p += len as usize + body;
        out.push(start..p);
    }
    out
}
