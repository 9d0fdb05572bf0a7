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
//!
//! Here: the tests. The inputs come from `samples` (valid streams), `fields` and `messages`
//! (flatbuffers built field by field) and `mutate`; `oracle` checks the walker on each, `alloc`
//! measures what it allocates, `rng` is the seeded generator.

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

mod alloc;
mod fields;
mod messages;
mod mutate;
mod oracle;
mod rng;
mod samples;

use alloc::*;
use fields::*;
use messages::*;
use mutate::*;
use oracle::*;
use rng::*;
use samples::*;

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
