//! Flatbuffer Schema fields generated field by field: random types, names, metadata, and
//! the schema message holding them.

#[allow(unused_imports)]
use super::*;

pub(crate) const INTERESTING_I32: &[i32] = &[
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
pub(crate) const INTERESTING_I64: &[i64] = &[
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

pub(crate) fn rand_i32(rng: &mut Rng) -> i32 {
    if rng.chance(70) {
        *rng.pick(INTERESTING_I32)
    } else {
        rng.next() as i32
    }
}

pub(crate) fn rand_i64(rng: &mut Rng) -> i64 {
    if rng.chance(70) {
        *rng.pick(INTERESTING_I64)
    } else {
        rng.next() as i64
    }
}

pub(crate) fn rand_name(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => String::new(),
        1 => "é∂\u{1F600}".into(),
        2 => "x".repeat(rng.range(1..300)),
        _ => (*rng.pick(&["a", "b", "id", "name", "d", "item", "entries"])).into(),
    }
}

/// The type table of a field: usually the one its tag asks for, sometimes another.
pub(crate) fn type_table<'a>(
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

pub(crate) fn random_field<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng, depth: usize) -> WIPOffset<arrow_ipc::Field<'a>> {
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

pub(crate) fn random_metadata<'a>(
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
pub(crate) fn deep_field<'a>(fbb: &mut FlatBufferBuilder<'a>, depth: usize) -> WIPOffset<arrow_ipc::Field<'a>> {
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
pub(crate) fn simple_leaf<'a>(fbb: &mut FlatBufferBuilder<'a>, rng: &mut Rng) -> WIPOffset<arrow_ipc::Field<'a>> {
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

pub(crate) fn schema_message<'a>(mut fbb: FlatBufferBuilder<'a>, fields: &[WIPOffset<arrow_ipc::Field<'a>>]) -> Vec<u8> {
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
