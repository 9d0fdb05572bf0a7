//! Randomized robustness tests of the Arrow IPC header walker (`zerobus_core::arrow`).
//!
//! `schema_from_ipc` and `split_ipc_stream` parse untrusted bytes handed over the C ABI. On any
//! input they must return `Ok` or an `InvalidArgument` error: no panic, no out-of-bounds slice,
//! no endless loop, no allocation out of proportion to the input. The inputs are mutations of
//! valid streams written by arrow-ipc's `StreamWriter` (truncations, bit flips, byte overwrites,
//! forged length prefixes, dropped / duplicated / reordered messages, concatenations), random
//! garbage, and flatbuffer messages generated field by field (random schemas, record batch and
//! dictionary batch headers with random values).
//!
//! Reproducible: `ZEROBUS_FUZZ_SEED` (decimal or 0x-hex) and `ZEROBUS_FUZZ_ITERS` select the run
//! (`scripts/fuzz-ipc.ts` loops over seeds); a failure prints the seed, the case and its bytes,
//! `ZEROBUS_FUZZ_CASE=i` reruns case i alone, `ZEROBUS_FUZZ_TRACE=1` prints each case before it
//! runs (to find one that crashes the process).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::types::{Int16Type, Int32Type, Int8Type};
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_ipc::writer::{
    DictionaryHandling, DictionaryTracker, EncodedData, IpcDataGenerator, IpcWriteOptions, StreamWriter,
};
use arrow_schema::{DataType, Field, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit, UnionFields, UnionMode};
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use zerobus_core::arrow::{schema_from_ipc, split_ipc_stream, ArrowPayload, StreamSchema};
use zerobus_core::{Bytes, ErrorCode, Result as ZResult};

// ---------------------------------------------------------------------------------------------
// Allocation accounting: live bytes and peak of the current thread (tests run on their own
// threads, so parallel tests do not disturb each other's numbers).

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the most bytes it had allocated at once on this thread.
fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(Cell::get) - base).max(0) as usize)
}

/// The most a call may allocate for an input of `len` bytes: generous for what the parser keeps
/// (schema objects, payload lists, rewritten dictionary headers), far below a forged length.
fn alloc_budget(len: usize) -> usize {
    64 * len + (4 << 20)
}

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG (splitmix64 seeding, xorshift64* stream).

#[derive(Clone)]
struct Rng(u64);

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut s = seed;
        let v = splitmix64(&mut s);
        Rng(if v == 0 { 0x1234_5678_9ABC_DEF1 } else { v })
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) % n as u64) as usize
    }
    fn range(&mut self, r: Range<usize>) -> usize {
        r.start + self.below(r.end - r.start)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Valid streams to start from.

struct Sample {
    name: &'static str,
    bytes: Vec<u8>,
    stream: StreamSchema,
    /// Record batches a correct split finds in the unmutated bytes (None: it must fail).
    batches: Option<usize>,
}

fn write_stream(schema: &SchemaRef, batches: &[RecordBatch], opts: IpcWriteOptions) -> Vec<u8> {
    let mut w = StreamWriter::try_new_with_options(Vec::new(), schema, opts).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    w.into_inner().unwrap()
}

fn dict<K: arrow_array::types::ArrowDictionaryKeyType>(v: &[&str]) -> ArrayRef {
    Arc::new(v.iter().copied().collect::<DictionaryArray<K>>())
}

fn dict_type(key: DataType) -> DataType {
    DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8))
}

fn plain_batch(schema: &SchemaRef, n: i32) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(0..n));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("r{i}"))));
    RecordBatch::try_new(schema.clone(), vec![ids, names]).unwrap()
}

/// A schema that uses most logical types (only its schema message is written).
fn rich_schema() -> SchemaRef {
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

fn eos() -> [u8; 8] {
    [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]
}

fn samples() -> Vec<Sample> {
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
fn reid_dictionary(header: &[u8], id: i64) -> Vec<u8> {
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
fn spans(bytes: &[u8]) -> Vec<Range<usize>> {
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

// ---------------------------------------------------------------------------------------------
// Flatbuffer messages generated field by field.

const INTERESTING_I32: &[i32] = &[
    0,
    1,
    -1,
    2,
    4,
    7,
    8,
    16,
    127,
    128,
    255,
    256,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFF0,
    0x7FFF_FFF8,
    i32::MAX,
    i32::MIN,
    -8,
    -2,
    0x4000_0000,
    0x0100_0000,
];
const INTERESTING_I64: &[i64] = &[
    0,
    1,
    -1,
    8,
    64,
    1 << 31,
    (1 << 31) - 1,
    1 << 32,
    1 << 62,
    i64::MAX,
    i64::MIN,
    -8,
    i32::MAX as i64,
    0x7FFF_FFFF_FFFF_FFF8,
];

fn rand_i32(rng: &mut Rng) -> i32 {
    if rng.chance(70) {
        *rng.pick(INTERESTING_I32)
    } else {
        rng.next() as i32
    }
}

fn rand_i64(rng: &mut Rng) -> i64 {
    if rng.chance(70) {
        *rng.pick(INTERESTING_I64)
    } else {
        rng.next() as i64
    }
}

fn rand_name(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => String::new(),
        1 => "é∂\u{1F600}".into(),
        2 => "x".repeat(rng.range(1..300)),
        _ => (*rng.pick(&["a", "b", "id", "name", "d", "item", "entries"])).into(),
    }
}

/// The type table of a field: usually the one its tag asks for, sometimes another.
fn type_table<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    rng: &mut Rng,
    ty: arrow_ipc::Type,
) -> WIPOffset<flatbuffers::UnionWIPOffset> {
    use arrow_ipc::*;
    let ty = if rng.chance(5) { Type(rng.below(30) as u8) } else { ty };
    let time_unit = |rng: &mut Rng| arrow_ipc::TimeUnit(rng.range(0..6) as i16 - 1);
    match ty {
        Type::Int => {
            let mut b = IntBuilder::new(fbb);
            b.add_bitWidth(if rng.chance(80) { *rng.pick(&[8, 16, 32, 64]) } else { rand_i32(rng) });
            b.add_is_signed(rng.chance(50));
            b.finish().as_union_value()
        }
        Type::FloatingPoint => {
            let mut b = FloatingPointBuilder::new(fbb);
            b.add_precision(Precision(rng.range(0..5) as i16 - 1));
            b.finish().as_union_value()
        }
        Type::FixedSizeBinary => {
            let mut b = FixedSizeBinaryBuilder::new(fbb);
            b.add_byteWidth(rand_i32(rng));
            b.finish().as_union_value()
        }
        Type::Decimal => {
            let mut b = DecimalBuilder::new(fbb);
            b.add_precision(if rng.chance(50) { rng.range(0..80) as i32 } else { rand_i32(rng) });
            b.add_scale(if rng.chance(50) { rng.range(0..80) as i32 - 40 } else { rand_i32(rng) });
            b.add_bitWidth(if rng.chance(70) { *rng.pick(&[32, 64, 128, 256]) } else { rand_i32(rng) });
            b.finish().as_union_value()
        }
        Type::Date => {
            let mut b = DateBuilder::new(fbb);
            b.add_unit(DateUnit(rng.range(0..4) as i16 - 1));
            b.finish().as_union_value()
        }
        Type::Time => {
            let unit = time_unit(rng);
            let mut b = TimeBuilder::new(fbb);
            b.add_unit(unit);
            b.add_bitWidth(*rng.pick(&[32, 64, 0, 16, -1]));
            b.finish().as_union_value()
        }
        Type::Timestamp => {
            let tz = rng.chance(50).then(|| {
                let s = match rng.below(4) {
                    0 => "UTC".to_string(),
                    1 => "+01:00".to_string(),
                    2 => "No/SuchZone".to_string(),
                    _ => rand_name(rng),
                };
                fbb.create_string(&s)
            });
            let unit = time_unit(rng);
            let mut b = TimestampBuilder::new(fbb);
            b.add_unit(unit);
            if let Some(tz) = tz {
                b.add_timezone(tz);
            }
            b.finish().as_union_value()
        }
        Type::Interval => {
            let mut b = IntervalBuilder::new(fbb);
            b.add_unit(arrow_ipc::IntervalUnit(rng.range(0..5) as i16 - 1));
            b.finish().as_union_value()
        }
        Type::Duration => {
            let unit = time_unit(rng);
            let mut b = DurationBuilder::new(fbb);
            b.add_unit(unit);
            b.finish().as_union_value()
        }
        Type::FixedSizeList => {
            let mut b = FixedSizeListBuilder::new(fbb);
            b.add_listSize(rand_i32(rng));
            b.finish().as_union_value()
        }
        Type::Map => {
            let mut b = MapBuilder::new(fbb);
            b.add_keysSorted(rng.chance(50));
            b.finish().as_union_value()
        }
        Type::Union => {
            let ids = rng.chance(60).then(|| {
                let n = rng.range(0..6);
                let ids: Vec<i32> = (0..n).map(|i| if rng.chance(70) { i as i32 } else { rand_i32(rng) }).collect();
                fbb.create_vector(&ids)
            });
            let mut b = UnionBuilder::new(fbb);
            b.add_mode(arrow_ipc::UnionMode(rng.range(0..4) as i16 - 1));
            if let Some(ids) = ids {
                b.add_typeIds(ids);
            }
            b.finish().as_union_value()
        }
        // Null, Bool, (Large)Binary, (Large)Utf8, views, lists, Struct_, RunEndEncoded: empty tables.
        _ => NullBuilder::new(fbb).finish().as_union_value(),
    }
}

fn random_field<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng, depth: usize) -> WIPOffset<arrow_ipc::Field<'a>> {
    use arrow_ipc::*;
    let nested = [
        Type::List,
        Type::LargeList,
        Type::ListView,
        Type::LargeListView,
        Type::FixedSizeList,
        Type::Struct_,
        Type::Map,
        Type::Union,
        Type::RunEndEncoded,
    ];
    let ty = if depth > 0 && rng.chance(35) {
        *rng.pick(&nested)
    } else if rng.chance(97) {
        *rng.pick(Type::ENUM_VALUES)
    } else {
        Type(rng.range(27..256) as u8)
    };
    // depth 0: a leaf (possibly a nested type without children)
    let children = if depth > 0 && (nested.contains(&ty) || rng.chance(3)) {
        let n = match rng.below(20) {
            0 => *rng.pick(&[127, 128, 129, 200]),
            1..=5 => 1,
            6..=9 => 2,
            10..=11 => 0,
            _ => rng.range(1..5),
        };
        // wide levels get leaf children only, so that a case stays small
        let child_depth = if n > 8 { 0 } else { depth - 1 };
        let kids: Vec<_> = (0..n)
            .map(|_| if n > 8 && rng.chance(97) { simple_leaf(fbb, rng) } else { random_field(fbb, rng, child_depth) })
            .collect();
        Some(fbb.create_vector(&kids))
    } else {
        None
    };
    let type_ = (!rng.chance(3)).then(|| type_table(fbb, rng, ty));
    let dictionary = rng.chance(20).then(|| {
        let index = rng.chance(90).then(|| {
            let mut b = IntBuilder::new(fbb);
            b.add_bitWidth(if rng.chance(80) { *rng.pick(&[8, 16, 32, 64]) } else { rand_i32(rng) });
            b.add_is_signed(rng.chance(70));
            b.finish()
        });
        let mut b = DictionaryEncodingBuilder::new(fbb);
        b.add_id(if rng.chance(70) { rng.range(0..4) as i64 } else { rand_i64(rng) });
        if let Some(index) = index {
            b.add_indexType(index);
        }
        b.add_isOrdered(rng.chance(30));
        if rng.chance(10) {
            b.add_dictionaryKind(DictionaryKind(rng.below(3) as i16));
        }
        b.finish()
    });
    let name = rng.chance(90).then(|| {
        let s = rand_name(rng);
        fbb.create_string(&s)
    });
    let metadata = rng.chance(10).then(|| random_metadata(fbb, rng));
    let mut f = FieldBuilder::new(fbb);
    if let Some(name) = name {
        f.add_name(name);
    }
    f.add_nullable(rng.chance(60));
    if !rng.chance(2) {
        f.add_type_type(ty);
    }
    if let Some(t) = type_ {
        f.add_type_(t);
    }
    if let Some(d) = dictionary {
        f.add_dictionary(d);
    }
    if let Some(c) = children {
        f.add_children(c);
    }
    if let Some(m) = metadata {
        f.add_custom_metadata(m);
    }
    f.finish()
}

fn random_metadata<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    rng: &mut Rng,
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<arrow_ipc::KeyValue<'a>>>> {
    let kvs: Vec<_> = (0..rng.range(0..4))
        .map(|_| {
            let k = rng.chance(90).then(|| {
                let s = rand_name(rng);
                fbb.create_string(&s)
            });
            let v = rng.chance(90).then(|| {
                let s = rand_name(rng);
                fbb.create_string(&s)
            });
            let mut b = arrow_ipc::KeyValueBuilder::new(fbb);
            if let Some(k) = k {
                b.add_key(k);
            }
            if let Some(v) = v {
                b.add_value(v);
            }
            b.finish()
        })
        .collect();
    fbb.create_vector(&kvs)
}

/// A deep chain of single-child lists (around the verifier's depth limit).
fn deep_field<'a>(fbb: &mut FlatBufferBuilder<'a>, depth: usize) -> WIPOffset<arrow_ipc::Field<'a>> {
    use arrow_ipc::*;
    let children = (depth > 0).then(|| {
        let c = deep_field(fbb, depth - 1);
        fbb.create_vector(&[c])
    });
    let name = fbb.create_string("item");
    let ty = if depth > 0 { Type::List } else { Type::Int };
    let table = if depth > 0 {
        NullBuilder::new(fbb).finish().as_union_value()
    } else {
        let mut b = IntBuilder::new(fbb);
        b.add_bitWidth(32);
        b.add_is_signed(true);
        b.finish().as_union_value()
    };
    let mut f = FieldBuilder::new(fbb);
    f.add_name(name);
    f.add_nullable(true);
    f.add_type_type(ty);
    f.add_type_(table);
    if let Some(c) = children {
        f.add_children(c);
    }
    f.finish()
}

/// A valid leaf field of a simple type.
fn simple_leaf<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng) -> WIPOffset<arrow_ipc::Field<'a>> {
    use arrow_ipc::*;
    let name = fbb.create_string(&format!("c{}", rng.below(1000)));
    let (ty, table) = match rng.below(3) {
        0 => {
            let mut b = IntBuilder::new(fbb);
            b.add_bitWidth(32);
            b.add_is_signed(true);
            (Type::Int, b.finish().as_union_value())
        }
        1 => (Type::Utf8, NullBuilder::new(fbb).finish().as_union_value()),
        _ => (Type::Bool, NullBuilder::new(fbb).finish().as_union_value()),
    };
    let mut f = FieldBuilder::new(fbb);
    f.add_name(name);
    f.add_nullable(true);
    f.add_type_type(ty);
    f.add_type_(table);
    f.finish()
}

fn schema_message<'a>(mut fbb: FlatBufferBuilder<'a>, fields: &[WIPOffset<arrow_ipc::Field<'a>>]) -> Vec<u8> {
    use arrow_ipc::*;
    let fields = fbb.create_vector(fields);
    let mut s = SchemaBuilder::new(&mut fbb);
    s.add_fields(fields);
    let s = s.finish();
    let mut m = MessageBuilder::new(&mut fbb);
    m.add_version(MetadataVersion::V5);
    m.add_header_type(MessageHeader::Schema);
    m.add_header(s.as_union_value());
    let m = m.finish();
    fbb.finish(m, None);
    fbb.finished_data().to_vec()
}

/// A Schema message of one sparse union (no type ids) whose `children` are all the same Null
/// field table.
fn union_schema_message(children: usize) -> Vec<u8> {
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
fn wide_schema_message(n: usize, name_len: usize, dict: bool, shared: bool) -> Vec<u8> {
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
fn empty_batch_message(dict_id: Option<i64>) -> Vec<u8> {
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
fn dictionary_heavy_stream(d: usize, m: usize) -> Vec<u8> {
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
fn random_schema_message(rng: &mut Rng) -> Vec<u8> {
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

fn finish_message(
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

fn random_record_batch<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng) -> WIPOffset<arrow_ipc::RecordBatch<'a>> {
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
fn random_data_message(rng: &mut Rng, out: &mut Vec<u8>, dict_ids: &[i64], legacy: bool) {
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
fn frame(out: &mut Vec<u8>, header: &[u8], body: &[u8], legacy: bool) {
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
fn declared_dict_ids(header: &[u8]) -> Vec<i64> {
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

// ---------------------------------------------------------------------------------------------
// Mutations.

fn mutate_bytes(rng: &mut Rng, buf: &mut Vec<u8>, log: &mut String, other: &[u8]) {
    let n = buf.len();
    match rng.below(11) {
        0 => {
            let at = rng.range(0..n + 1);
            buf.truncate(at);
            let _ = write!(log, " truncate@{at}");
        }
        1 => {
            for _ in 0..rng.range(1..9) {
                if n > 0 {
                    let at = rng.below(n);
                    let bit = rng.below(8);
                    buf[at] ^= 1 << bit;
                    let _ = write!(log, " flip@{at}.{bit}");
                }
            }
        }
        2 => {
            for _ in 0..rng.range(1..9) {
                if n > 0 {
                    let at = rng.below(n);
                    buf[at] = rng.next() as u8;
                    let _ = write!(log, " byte@{at}={:#x}", buf[at]);
                }
            }
        }
        3 | 4 => {
            if n >= 4 {
                let at = if rng.chance(70) { rng.below(n / 4) * 4 } else { rng.below(n - 3) };
                let v = rand_i32(rng);
                buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " i32@{at}={v}");
            }
        }
        5 => {
            if n >= 8 {
                let at = if rng.chance(70) { rng.below(n / 8) * 8 } else { rng.below(n - 7) };
                let v = rand_i64(rng);
                buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " i64@{at}={v}");
            }
        }
        6 => {
            let at = rng.range(0..n + 1);
            let len = rng.range(1..33);
            let junk = rng.bytes(len);
            buf.splice(at..at, junk);
            let _ = write!(log, " insert@{at}+{len}");
        }
        7 => {
            if n > 0 {
                let a = rng.below(n);
                let b = (a + rng.range(1..65)).min(n);
                buf.drain(a..b);
                let _ = write!(log, " delete@{a}..{b}");
            }
        }
        8 => {
            if n > 0 {
                let a = rng.below(n);
                let b = (a + rng.range(1..129)).min(n);
                let chunk = buf[a..b].to_vec();
                let at = rng.range(0..n + 1);
                buf.splice(at..at, chunk);
                let _ = write!(log, " dup{a}..{b}@{at}");
            }
        }
        9 => {
            if !other.is_empty() {
                let a = rng.below(other.len());
                let b = (a + rng.range(1..257)).min(other.len());
                let at = rng.range(0..n + 1);
                buf.splice(at..at, other[a..b].iter().copied());
                let _ = write!(log, " splice-other{a}..{b}@{at}");
            }
        }
        _ => {
            let len = rng.range(1..33);
            buf.extend(rng.bytes(len));
            let _ = write!(log, " append+{len}");
        }
    }
}

/// Message-level edits of a well-formed stream.
fn mutate_messages(rng: &mut Rng, s: &Sample, other: &Sample, log: &mut String) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = spans(&s.bytes).into_iter().map(|r| s.bytes[r].to_vec()).collect();
    let other_parts: Vec<Vec<u8>> = spans(&other.bytes).into_iter().map(|r| other.bytes[r].to_vec()).collect();
    for _ in 0..rng.range(1..4) {
        let n = parts.len();
        if n == 0 {
            break;
        }
        match rng.below(9) {
            0 => {
                let i = rng.below(n);
                parts.remove(i);
                let _ = write!(log, " drop#{i}");
            }
            1 => {
                let i = rng.below(n);
                let at = rng.range(0..n + 1);
                let p = parts[i].clone();
                parts.insert(at, p);
                let _ = write!(log, " dup#{i}@{at}");
            }
            2 => {
                let (i, j) = (rng.below(n), rng.below(n));
                parts.swap(i, j);
                let _ = write!(log, " swap#{i}#{j}");
            }
            3 => {
                parts.reverse();
                let _ = write!(log, " reverse");
            }
            4 => {
                let i = rng.below(other_parts.len());
                let at = rng.range(0..n + 1);
                parts.insert(at, other_parts[i].clone());
                let _ = write!(log, " insert-{}#{i}@{at}", other.name);
            }
            5 => {
                // forge the length prefix (with or without continuation marker)
                let i = rng.below(n);
                let p = &mut parts[i];
                let off = if p.len() >= 8 && p[..4] == [0xFF; 4] { 4 } else { 0 };
                if p.len() < off + 4 {
                    continue;
                }
                let orig = i32::from_le_bytes(p[off..off + 4].try_into().unwrap());
                let v = if rng.chance(50) { rand_i32(rng) } else { orig.wrapping_add(rng.range(0..17) as i32 - 8) };
                p[off..off + 4].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " len#{i}={v}");
            }
            6 => {
                // toggle legacy / continuation framing
                let i = rng.below(n);
                let p = &mut parts[i];
                if p.len() >= 8 && p[..4] == [0xFF; 4] {
                    p.drain(..4);
                } else {
                    p.splice(..0, [0xFF; 4]);
                }
                let _ = write!(log, " reframe#{i}");
            }
            7 => {
                let i = rng.below(n);
                let cut = rng.range(1..parts[i].len().max(2));
                parts[i].truncate(cut);
                let _ = write!(log, " cut#{i}@{cut}");
            }
            _ => {
                let i = rng.below(n);
                let at = rng.range(0..n + 1);
                let junk_len = rng.range(1..24);
                let junk = if rng.chance(50) { eos().to_vec() } else { rng.bytes(junk_len) };
                parts.insert(at, junk);
                let _ = write!(log, " junk#{i}@{at}");
            }
        }
    }
    parts.concat()
}

/// One generated case: (input bytes, index of the sample whose StreamSchema to split with).
fn generate(rng: &mut Rng, samples: &[Sample], log: &mut String) -> (Vec<u8>, usize) {
    let si = rng.below(samples.len());
    let s = &samples[si];
    let other = &samples[rng.below(samples.len())];
    let mut plain_sample = false;
    let mut buf = match rng.below(21) {
        0 => {
            let _ = write!(log, "empty");
            Vec::new()
        }
        1 => {
            let n = rng.range(0..512);
            let _ = write!(log, "garbage[{n}]");
            rng.bytes(n)
        }
        2 => {
            // forged length prefix, with or without the continuation marker
            let v = rand_i32(rng);
            let legacy = rng.chance(40);
            let _ = write!(log, "prefix{}={v}", if legacy { "(legacy)" } else { "" });
            let mut b = if legacy { Vec::new() } else { vec![0xFF; 4] };
            b.extend_from_slice(&v.to_le_bytes());
            let tail_len = rng.range(0..64);
            let tail = if rng.chance(50) { s.bytes[rng.below(s.bytes.len())..].to_vec() } else { rng.bytes(tail_len) };
            b.extend(tail);
            b
        }
        3 | 4 => {
            let _ = write!(log, "concat {}+{}", s.name, other.name);
            let mut b = s.bytes.clone();
            if rng.chance(50) {
                // without the first stream's end-of-stream marker
                b.truncate(b.len() - if b.ends_with(&eos()) { 8 } else { 4 });
            }
            b.extend_from_slice(&other.bytes);
            b
        }
        5..=7 => {
            let _ = write!(log, "messages {}:", s.name);
            mutate_messages(rng, s, other, log)
        }
        8..=10 => {
            // a random schema, then random data messages
            let legacy = rng.chance(20);
            let header = random_schema_message(rng);
            let ids = declared_dict_ids(&header);
            let _ = write!(log, "random-schema ids={ids:?} legacy={legacy}");
            let mut b = Vec::new();
            frame(&mut b, &header, &[], legacy);
            for _ in 0..rng.range(0..6) {
                random_data_message(rng, &mut b, &ids, legacy);
            }
            if rng.chance(50) {
                b.extend_from_slice(&eos());
            }
            b
        }
        20 => {
            // inputs that expand: a union of ~128 children, one name string shared by many
            // fields, many dictionaries times many batches
            let mut b = Vec::new();
            match rng.below(3) {
                0 => {
                    let n = rng.range(120..140);
                    let _ = write!(log, "union of {n}");
                    frame(&mut b, &union_schema_message(n), &[], false);
                    frame(&mut b, &empty_batch_message(None), &[], false);
                }
                1 => {
                    let (n, len) = (rng.range(1..3000), rng.range(1..(32 << 10)));
                    let _ = write!(log, "shared name: {n} fields x {len} bytes");
                    frame(&mut b, &wide_schema_message(n, len, rng.chance(50), true), &[], false);
                    frame(&mut b, &empty_batch_message(None), &[], false);
                }
                _ => {
                    let (d, m) = (rng.range(1..300), rng.range(1..2000));
                    let _ = write!(log, "{d} dictionaries x {m} batches");
                    b = dictionary_heavy_stream(d, m);
                }
            }
            b
        }
        11..=13 => {
            // a valid schema message, then random data messages
            let sp = spans(&s.bytes);
            let legacy = s.bytes[..4] != [0xFF; 4];
            let mut b = s.bytes[sp[0].clone()].to_vec();
            let hdr_start = if legacy { 4 } else { 8 };
            let ids = declared_dict_ids(&s.bytes[hdr_start..sp[0].end]);
            let _ = write!(log, "{} schema + random messages ids={ids:?}", s.name);
            for _ in 0..rng.range(1..8) {
                if rng.chance(30) {
                    // a real message of the sample in between
                    b.extend_from_slice(&s.bytes[sp[rng.below(sp.len())].clone()]);
                } else {
                    random_data_message(rng, &mut b, &ids, legacy);
                }
            }
            b
        }
        _ => {
            let _ = write!(log, "{}:", s.name);
            plain_sample = true;
            s.bytes.clone()
        }
    };
    let rounds = if plain_sample {
        rng.range(1..4)
    } else if rng.chance(30) {
        rng.range(1..3)
    } else {
        0
    };
    for _ in 0..rounds {
        mutate_bytes(rng, &mut buf, log, &other.bytes);
    }
    (buf, si)
}

// ---------------------------------------------------------------------------------------------
// The oracle.

#[derive(Default, Debug)]
struct Stats {
    cases: u64,
    schema_ok: u64,
    split_ok: u64,
    derived_split_ok: u64,
    payloads: u64,
    rewritten_headers: u64,
    /// Inputs rejected for one of the bugs fixed (see the regression tests).
    wide_unions: u64,
    expanding: u64,
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".into())
}

fn hex(b: &[u8]) -> String {
    let shown = &b[..b.len().min(4096)];
    let mut s: String = shown.iter().map(|x| format!("{x:02x}")).collect();
    if b.len() > shown.len() {
        s.push_str("...");
    }
    s
}

/// Checks the walker on one input; Err describes the violation.
fn check(input: &[u8], stream: &StreamSchema, stats: &mut Stats) -> Result<(), String> {
    stats.cases += 1;
    let budget = alloc_budget(input.len());

    let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| schema_from_ipc(input))));
    let schema = match r {
        Err(p) => return Err(format!("schema_from_ipc panicked: {}", panic_text(&*p))),
        Ok(r) => expect_invalid("schema_from_ipc", r, stats)?,
    };
    if peak > budget {
        return Err(format!("schema_from_ipc allocated {peak} bytes at peak for {} input bytes", input.len()));
    }

    let bytes = Bytes::copy_from_slice(input);
    let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| split_ipc_stream(&bytes, stream))));
    let parts = match r {
        Err(p) => return Err(format!("split_ipc_stream panicked: {}", panic_text(&*p))),
        Ok(r) => expect_invalid("split_ipc_stream", r, stats)?,
    };
    if peak > budget {
        return Err(format!("split_ipc_stream allocated {peak} bytes at peak for {} input bytes", input.len()));
    }
    if let Some(parts) = parts {
        stats.split_ok += 1;
        check_payloads(&bytes, stream, &parts, stats)
            .map_err(|e| format!("split_ipc_stream returned a bad payload: {e}"))?;
    }

    // As a stream is opened from IPC bytes: the schema read, a StreamSchema made of it, the same
    // bytes split against it.
    if let Some(schema) = schema {
        stats.schema_ok += 1;
        let derived = match catch_unwind(AssertUnwindSafe(|| StreamSchema::new(Arc::new(schema)))) {
            Ok(s) => s,
            Err(p) => return Err(format!("StreamSchema::new(schema_from_ipc(..)) panicked: {}", panic_text(&*p))),
        };
        let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| split_ipc_stream(&bytes, &derived))));
        let parts = match r {
            Err(p) => return Err(format!("split_ipc_stream (derived schema) panicked: {}", panic_text(&*p))),
            Ok(r) => expect_invalid("split_ipc_stream (derived schema)", r, stats)?,
        };
        if peak > budget {
            return Err(format!(
                "split_ipc_stream (derived schema) allocated {peak} bytes at peak for {} input bytes",
                input.len()
            ));
        }
        if let Some(parts) = parts {
            stats.derived_split_ok += 1;
            check_payloads(&bytes, &derived, &parts, stats)
                .map_err(|e| format!("split_ipc_stream (derived schema) returned a bad payload: {e}"))?;
        }
    }
    Ok(())
}

fn expect_invalid<T>(what: &str, r: ZResult<T>, stats: &mut Stats) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == ErrorCode::InvalidArgument => {
            if e.message.contains("more than 128 children") {
                stats.wide_unions += 1;
            } else if e.message.contains("Apparent size too large") || e.message.contains("carry more dictionaries") {
                stats.expanding += 1;
            }
            Ok(None)
        }
        Err(e) => Err(format!("{what} returned {:?} instead of InvalidArgument: {}", e.code, e.message)),
    }
}

/// A payload is the dictionaries its batch needs (the stream's ids, each once) and then the
/// batch; every body, and every header that was not rewritten, is a slice of the input; a
/// payload's slices do not overlap; the batches' slices add up to at most the input.
fn check_payloads(
    input: &Bytes,
    stream: &StreamSchema,
    parts: &[ArrowPayload],
    stats: &mut Stats,
) -> Result<(), String> {
    let base = input.as_ptr() as usize;
    let within = |b: &Bytes| -> Option<Range<usize>> {
        let p = b.as_ptr() as usize;
        (b.is_empty() || (p >= base && p + b.len() <= base + input.len())).then(|| {
            let s = p.wrapping_sub(base).min(input.len());
            s..s + b.len()
        })
    };
    let stream_ids = declared_dict_ids(&stream.message);
    if parts.is_empty() {
        return Err("Ok with no payload".into());
    }
    let mut batch_bytes = 0usize;
    for (pi, p) in parts.iter().enumerate() {
        stats.payloads += 1;
        let Some((batch, dicts)) = p.messages.split_last() else {
            return Err(format!("payload {pi} has no message"));
        };
        if dicts.len() > stream_ids.len() {
            return Err(format!(
                "payload {pi} carries {} dictionaries, the schema declares {}",
                dicts.len(),
                stream_ids.len()
            ));
        }
        let mut ranges = Vec::new();
        let mut seen_ids = Vec::new();
        for (mi, m) in p.messages.iter().enumerate() {
            let msg = arrow_ipc::root_as_message(&m.header)
                .map_err(|e| format!("payload {pi} message {mi}: header does not parse: {e}"))?;
            if usize::try_from(msg.bodyLength()).ok() != Some(m.body.len()) {
                return Err(format!(
                    "payload {pi} message {mi}: body of {} bytes, header says {}",
                    m.body.len(),
                    msg.bodyLength()
                ));
            }
            let body = within(&m.body)
                .ok_or_else(|| format!("payload {pi} message {mi}: body is not a slice of the input"))?;
            ranges.push(body);
            match within(&m.header) {
                Some(h) => ranges.push(h),
                None if mi + 1 < p.messages.len() => stats.rewritten_headers += 1,
                None => return Err(format!("payload {pi}: record batch header is not a slice of the input")),
            }
            if mi + 1 < p.messages.len() {
                let d = msg
                    .header_as_dictionary_batch()
                    .ok_or_else(|| format!("payload {pi} message {mi} is not a dictionary batch"))?;
                if d.isDelta() || !stream_ids.contains(&d.id()) || seen_ids.contains(&d.id()) {
                    return Err(format!(
                        "payload {pi} message {mi}: dictionary id {} (delta {}) vs stream ids {stream_ids:?}",
                        d.id(),
                        d.isDelta()
                    ));
                }
                seen_ids.push(d.id());
            }
        }
        let rb = arrow_ipc::root_as_message(&batch.header).unwrap();
        let rb =
            rb.header_as_record_batch().ok_or_else(|| format!("payload {pi}: last message is not a record batch"))?;
        if i64::try_from(p.rows).ok() != Some(rb.length()) {
            return Err(format!("payload {pi}: rows {} but the header says {}", p.rows, rb.length()));
        }
        ranges.sort_by_key(|r| r.start);
        if ranges.windows(2).any(|w| w[0].end > w[1].start) {
            return Err(format!("payload {pi}: overlapping slices {ranges:?}"));
        }
        let in_input: usize = ranges.iter().map(|r| r.len()).sum();
        if in_input > input.len() || p.byte_len() < in_input {
            return Err(format!(
                "payload {pi}: byte_len {} / {in_input} in the input, input is {}",
                p.byte_len(),
                input.len()
            ));
        }
        batch_bytes += batch.header.len() + batch.body.len();
    }
    if batch_bytes > input.len() {
        return Err(format!("record batches add up to {batch_bytes} bytes, input is {}", input.len()));
    }
    Ok(())
}

fn fail(seed: u64, case: &str, input: &[u8], err: &str) -> ! {
    panic!(
        "\nIPC fuzz failure (ZEROBUS_FUZZ_SEED={seed:#x}): {err}\ncase: {case}\ninput ({} bytes): {}\n",
        input.len(),
        hex(input)
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// The unmutated samples parse as expected (so that the fuzzing starts from valid streams).
#[test]
fn samples_are_valid_streams() {
    for s in samples() {
        let schema = schema_from_ipc(&s.bytes).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(schema.fields(), s.stream.schema.fields(), "{}", s.name);
        let r = split_ipc_stream(&Bytes::from(s.bytes.clone()), &s.stream);
        match (s.batches, r) {
            (Some(n), Ok(parts)) => assert_eq!(parts.len(), n, "{}", s.name),
            (None, Err(e)) => assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", s.name),
            (want, got) => panic!("{}: expected {want:?} batches, got {got:?}", s.name),
        }
        let mut stats = Stats::default();
        check(&s.bytes, &s.stream, &mut stats).unwrap_or_else(|e| fail(0, s.name, &s.bytes, &e));
        if s.name == "dict2-reid" {
            assert!(stats.rewritten_headers > 0, "dictionary ids were rewritten");
        }
    }
}

/// Every prefix of every sample, and every sample with one byte cut out.
#[test]
fn truncation_and_deletion_at_every_byte() {
    let mut stats = Stats::default();
    for s in samples() {
        for end in 0..=s.bytes.len() {
            let input = &s.bytes[..end];
            check(input, &s.stream, &mut stats)
                .unwrap_or_else(|e| fail(0, &format!("{} truncated at {end}", s.name), input, &e));
        }
        for at in (0..s.bytes.len()).step_by(3) {
            let mut input = s.bytes.clone();
            input.remove(at);
            check(&input, &s.stream, &mut stats)
                .unwrap_or_else(|e| fail(0, &format!("{} without byte {at}", s.name), &input, &e));
        }
    }
}

/// Forged length prefixes on each message of each sample, with and without the continuation
/// marker: never trusted for an allocation, and always an InvalidArgument (or a shorter stream).
#[test]
fn forged_length_prefixes() {
    let mut stats = Stats::default();
    let samples = samples();
    for s in &samples {
        for (i, span) in spans(&s.bytes).into_iter().enumerate() {
            let off = span.start + if s.bytes[span.start..span.start + 4] == [0xFF; 4] { 4 } else { 0 };
            let orig = i32::from_le_bytes(s.bytes[off..off + 4].try_into().unwrap());
            let around = (-9..=9).map(|d| orig.wrapping_add(d));
            for v in INTERESTING_I32.iter().copied().chain(around) {
                let mut input = s.bytes.clone();
                input[off..off + 4].copy_from_slice(&v.to_le_bytes());
                check(&input, &s.stream, &mut stats)
                    .unwrap_or_else(|e| fail(0, &format!("{} message {i} length {v}", s.name), &input, &e));
            }
        }
    }
    let stream = &samples[0].stream;
    for v in INTERESTING_I32.iter().copied() {
        for prefix in [&[0xFF, 0xFF, 0xFF, 0xFF][..], &[]] {
            for tail in [&[][..], &[0u8; 3][..], &[0u8; 64][..]] {
                let input = [prefix, &v.to_le_bytes()[..], tail].concat();
                check(&input, stream, &mut stats).unwrap_or_else(|e| fail(0, "forged prefix", &input, &e));
            }
        }
    }
}

#[test]
fn empty_and_tiny_inputs() {
    let samples = samples();
    let mut stats = Stats::default();
    for len in 0..=9usize {
        for fill in [0x00u8, 0xFF, 0x7F, 0x80, 0x08] {
            let input = vec![fill; len];
            let e = split_ipc_stream(&Bytes::from(input.clone()), &samples[0].stream).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{input:?}");
            assert_eq!(schema_from_ipc(&input).unwrap_err().code, ErrorCode::InvalidArgument, "{input:?}");
            check(&input, &samples[0].stream, &mut stats).unwrap_or_else(|e| fail(0, "tiny", &input, &e));
        }
    }
}

/// The randomized run: ZEROBUS_FUZZ_SEED / ZEROBUS_FUZZ_ITERS (default: a fixed seed, a count
/// that takes about a second in release mode).
#[test]
fn random_mutations_are_rejected_cleanly() {
    let seed = env_u64("ZEROBUS_FUZZ_SEED").unwrap_or(0x5EED_0001);
    let iters = env_u64("ZEROBUS_FUZZ_ITERS").unwrap_or(if cfg!(debug_assertions) { 2_000 } else { 25_000 });
    let samples = samples();
    let mut stats = Stats::default();
    let started = Instant::now();
    // ZEROBUS_FUZZ_CASE=i runs case i of the seed alone (to reproduce a failure).
    let cases = match env_u64("ZEROBUS_FUZZ_CASE") {
        Some(i) => i..i + 1,
        None => 0..iters,
    };
    for i in cases {
        // Each case has its own generator, so a case reproduces from (seed, i) alone.
        let mut rng = Rng::new(seed ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let mut log = String::new();
        let (input, si) = generate(&mut rng, &samples, &mut log);
        if std::env::var_os("ZEROBUS_FUZZ_TRACE").is_some() {
            eprintln!("#{i} {log} [{}] {}", input.len(), hex(&input));
        }
        if let Err(e) = check(&input, &samples[si].stream, &mut stats) {
            fail(seed, &format!("#{i} ({log}) split against {}", samples[si].name), &input, &e);
        }
    }
    println!("ipc fuzz: seed={seed:#x} iters={iters} elapsed={:.2}s {stats:?}", started.elapsed().as_secs_f64());
    // The generator must reach the success paths too, not only early errors.
    let iters = stats.cases;
    assert!(
        iters < 1000
            || stats.split_ok * 50 > iters
                && stats.schema_ok * 5 > iters
                && stats.rewritten_headers > 0
                && stats.wide_unions > 0
                && stats.expanding > 0,
        "{stats:?}"
    );
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Found by the random run: a union field without type ids and more than 128 children made
/// arrow-schema panic ("UnionFields cannot contain more than 128 fields") inside
/// `schema_from_ipc` (through the C ABI: an Internal "panic in zerobus-bun" error).
#[test]
fn regression_union_with_129_children() {
    const INPUT: &str = "
        ffffffff800200001000000000000a000c000a00090004000a0000001000000000010400080008000000040008000000
        04000000010000001400000010001000000000000f000800000004001000000010000000080000000000000edcfdffff
        81000000100200000c020000080200000402000000020000fc010000f8010000f4010000f0010000ec010000e8010000
        e4010000e0010000dc010000d8010000d4010000d0010000cc010000c8010000c4010000c0010000bc010000b8010000
        b4010000b0010000ac010000a8010000a4010000a00100009c0100009801000094010000900100008c01000088010000
        84010000800100007c0100007801000074010000700100006c0100006801000064010000600100005c01000058010000
        54010000500100004c0100004801000044010000400100003c0100003801000034010000300100002c01000028010000
        24010000200100001c0100001801000014010000100100000c010000080100000401000000010000fc000000f8000000
        f4000000f0000000ec000000e8000000e4000000e0000000dc000000d8000000d4000000d0000000cc000000c8000000
        c4000000c0000000bc000000b8000000b4000000b0000000ac000000a8000000a4000000a00000009c00000098000000
        94000000900000008c0000008800000084000000800000007c0000007800000074000000700000006c00000068000000
        64000000600000005c0000005800000054000000500000004c0000004800000044000000400000003c00000038000000
        34000000300000002c0000002800000024000000200000001c0000001800000014000000100000000c000c0000000000
        0b0004000c0000000c000000000000010400040004000000
    ";
    let input = unhex(INPUT);
    let mut built = Vec::new();
    frame(&mut built, &union_schema_message(129), &[], false);
    assert_eq!(input, built);
    let e = catch_unwind(|| schema_from_ipc(&input)).expect("no panic").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(e.message.contains("128"), "{e}");
    let stream = StreamSchema::new(Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)])));
    let e = catch_unwind(|| split_ipc_stream(&Bytes::from(input.clone()), &stream)).expect("no panic").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    // 128 children still get ids 0..=127
    let mut ok = Vec::new();
    frame(&mut ok, &union_schema_message(128), &[], false);
    let DataType::Union(fields, _) = schema_from_ipc(&ok).unwrap().field(0).data_type().clone() else { panic!() };
    assert_eq!(fields.len(), 128);
}

/// Found while writing the allocation check: the flatbuffer verifier bounds a header's size read
/// as a tree at 2 GiB whatever its length, so ~280 KB naming 4000 fields with one shared 256 KiB
/// string made `schema_from_ipc` allocate 1 GB. (Smaller here: 4000 x 16 KiB, 64 MB before.)
#[test]
fn regression_shared_name_string_is_not_expanded() {
    let mut input = Vec::new();
    frame(&mut input, &wide_schema_message(4000, 16 << 10, false, true), &[], false);
    let (r, peak) = peak_alloc(|| schema_from_ipc(&input));
    let e = r.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(peak < alloc_budget(input.len()), "{peak} bytes allocated for {} input bytes", input.len());
    // fields written out one by one (as writers do) are fine, even wide ones
    for n in [1, 300, 3000] {
        let mut input = Vec::new();
        frame(&mut input, &wide_schema_message(n, 16, n == 300, false), &[], false);
        assert_eq!(schema_from_ipc(&input).unwrap().fields().len(), n);
    }
}

/// Found while writing the allocation check: each payload carries every dictionary defined
/// before its batch, so d dictionaries and m record batches without field nodes made d x m
/// message handles (744 KB for 2000 x 10000 allocated 1.2 GB; quadratic in the input).
#[test]
fn regression_dictionaries_times_batches_is_bounded() {
    let input = Bytes::from(dictionary_heavy_stream(200, 2000));
    let stream = StreamSchema::new(Arc::new(schema_from_ipc(&input).unwrap()));
    let (r, peak) = peak_alloc(|| split_ipc_stream(&input, &stream));
    let e = r.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(peak < alloc_budget(input.len()), "{peak} bytes allocated for {} input bytes", input.len());
    // A real stream with many dictionary columns and many one-row batches is split as before.
    let fields: Vec<Field> = (0..40).map(|i| Field::new(format!("d{i}"), dict_type(DataType::Int8), true)).collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batches: Vec<RecordBatch> = (0..300)
        .map(|i| {
            let cols = (0..40).map(|c| dict::<Int8Type>(&[if (i + c) % 7 == 0 { "x" } else { "y" }])).collect();
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        })
        .collect();
    let bytes = Bytes::from(write_stream(&schema, &batches, IpcWriteOptions::default()));
    let parts = split_ipc_stream(&bytes, &StreamSchema::new(schema)).unwrap();
    assert_eq!(parts.len(), 300);
    assert!(parts.iter().all(|p| p.messages.len() == 41));
}
