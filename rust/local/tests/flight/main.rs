//! Integration tests: Arrow Flight DoPut ingestion against zerobus-local.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{ListBuilder, Int32Builder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    Int8Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray, UInt64Array,
};
use zerobus_local::flight_proto::flight_service_client::FlightServiceClient;
use zerobus_local::flight_proto::{Empty, FlightData, FlightDescriptor, PutResult};
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use arrow_ipc::CompressionType;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

#[path = "../common/mod.rs"]
mod common;
use common::{control, rows as lines, server, TABLE};

mod put;
use put::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_many_types() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let point = Field::new(
        "point",
        DataType::Struct(vec![Field::new("x", DataType::Int32, true), Field::new("label", DataType::Utf8, true)].into()),
        true,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("d", DataType::Date32, true),
        Field::new("tags", DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))), true),
        point.clone(),
    ]));
    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1), Some(2)]);
    list.append_null();
    list.append_value([Some(3), None]);
    let DataType::Struct(point_fields) = point.data_type().clone() else { unreachable!() };
    let structs = StructArray::try_new(
        point_fields,
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])) as ArrayRef,
        ],
        Some(vec![true, false, true].into()),
    )
    .unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int8Array::from(vec![Some(-8), None, Some(8)])),
            Arc::new(Int16Array::from(vec![Some(-16), Some(16), None])),
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(0), Some(i32::MAX)])),
            Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(9_007_199_254_740_993)])),
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), None])),
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
            Arc::new(Float64Array::from(vec![Some(3.25), Some(-1e300), None])),
            Arc::new(StringArray::from(vec![Some("héllo \"q\"\n"), None, Some("")])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(0)]).with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(vec![Some(19_000), None, Some(0)])),
            Arc::new(list.finish()),
            Arc::new(structs),
        ],
    )
    .unwrap();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&batch).await;
    p.send(&batch.slice(1, 2)).await;
    let (acks, st) = p.finish().await;
    assert!(st.is_none(), "{st:?}");
    check_monotonic(&acks);
    assert_eq!(acks.last().unwrap(), &Ack { offset: 1, records: 5, close_ms: None });

    let rows = lines(&dir, TABLE);
    assert_eq!(rows.len(), 5);
    let r0 = &rows[0];
    assert_eq!(r0["i8"], json!(-8));
    assert_eq!(r0["i16"], json!(-16));
    assert_eq!(r0["i32"], json!(i32::MIN));
    assert_eq!(r0["i64"], json!(i64::MIN));
    assert_eq!(r0["u64"], json!(u64::MAX));
    assert_eq!(r0["f32"], json!(1.5));
    assert_eq!(r0["f64"], json!(3.25));
    assert_eq!(r0["s"], json!("héllo \"q\"\n"));
    assert_eq!(r0["b"], json!(true));
    let ts = r0["ts"].as_str().unwrap();
    assert!(ts.starts_with("2023-11-14T22:13:20.123456"), "{ts}");
    assert_eq!(r0["d"], json!("2022-01-08"));
    assert_eq!(r0["tags"], json!([1, 2]));
    assert_eq!(r0["point"], json!({"x": 1, "label": "a"}));
    assert_eq!(r0.as_object().unwrap().len(), 13);
    // Nulls are explicit.
    let r1 = &rows[1];
    assert_eq!(r1["i8"], Value::Null);
    assert_eq!(r1["s"], Value::Null);
    assert_eq!(r1["tags"], Value::Null);
    assert_eq!(r1["point"], Value::Null);
    assert_eq!(r1.as_object().unwrap().len(), 13);
    let r2 = &rows[2];
    assert_eq!(r2["i64"], json!(9_007_199_254_740_993i64));
    assert_eq!(r2["tags"], json!([3, null]));
    assert_eq!(r2["point"], json!({"x": 3, "label": null}));
    assert_eq!(r2["s"], json!(""));
    // The second batch (a slice) repeats rows 1 and 2.
    assert_eq!(rows[3], rows[1]);
    assert_eq!(rows[4], rows[2]);

    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["committedRecords"][TABLE], json!(5));
    srv.shutdown().await;
}

fn dict_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int32, false),
        Field::new("color", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
    ]))
}

fn dict_batch(schema: &SchemaRef, start: i32, colors: &[Option<&str>]) -> RecordBatch {
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for c in colors {
        b.append_option(*c);
    }
    let n: Vec<i32> = (start..start + colors.len() as i32).collect();
    RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(n)), Arc::new(b.finish())]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dictionaries_and_compression() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let schema = dict_schema();
    let mut expected = Vec::new();
    for (i, compression) in [None, Some(CompressionType::LZ4_FRAME), Some(CompressionType::ZSTD)]
        .into_iter()
        .enumerate()
    {
        let opts = IpcWriteOptions::default().try_with_compression(compression).unwrap();
        let mut p = open_put(&srv.url(), TABLE, schema.clone(), opts).await.unwrap();
        let base = i as i32 * 100;
        // Two batches with different dictionaries (the second replaces the first).
        let a = [Some("red"), Some("green"), None, Some("red")];
        let b = [Some("blue"), Some("blue"), Some("yellow")];
        // A batch large enough that compression actually kicks in.
        let big: Vec<Option<&str>> = (0..2000).map(|k| Some(if k % 3 == 0 { "cyan" } else { "magenta" })).collect();
        p.send(&dict_batch(&schema, base, &a)).await;
        p.send(&dict_batch(&schema, base + 4, &b)).await;
        p.send(&dict_batch(&schema, base + 7, &big)).await;
        let (acks, st) = p.finish().await;
        assert!(st.is_none(), "{compression:?}: {st:?}");
        assert_eq!(acks.last().unwrap(), &Ack { offset: 2, records: 2007, close_ms: None });
        for (k, c) in a.iter().chain(b.iter()).chain(big.iter()).enumerate() {
            expected.push(json!({"n": base + k as i32, "color": c}));
        }
    }
    assert_eq!(lines(&dir, TABLE), expected);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_count_rows_and_group_commit() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let schema = simple_schema();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    // Batches are ready-to-go FlightData, sent back to back.
    let mut msgs = Vec::new();
    for k in 0..300 {
        msgs.extend(p.encode(&simple_batch(&schema, k * 20, 20), k));
    }
    for m in msgs {
        p.tx.send(m).await.unwrap();
    }
    // Wait for the ack of the last batch without half-closing.
    let mut acks = Vec::new();
    while acks.last().is_none_or(|a: &Ack| a.offset < 299) {
        let r = tokio::time::timeout(Duration::from_secs(10), p.rx.message())
            .await
            .expect("ack timeout")
            .unwrap()
            .unwrap();
        acks.push(parse_ack(&r));
    }
    check_monotonic(&acks);
    assert_eq!(acks.last().unwrap(), &Ack { offset: 299, records: 6000, close_ms: None });
    assert!(acks.len() < 300, "expected group commits, got {} acks", acks.len());
    let rows = lines(&dir, TABLE);
    assert_eq!(rows.len(), 6000);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r, &json!({"id": i, "name": format!("n{i}")}));
    }
    let (rest, st) = p.finish().await;
    assert!(st.is_none() && rest.is_empty(), "{rest:?} {st:?}");
    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["committedRecords"][TABLE], json!(6000));
    assert_eq!(stats["streamsOpened"], json!(1));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_batches_commit_what_came_before() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let schema = simple_schema();

    // Wrong offset.
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send_at(&simple_batch(&schema, 0, 3), 0).await;
    p.send_at(&simple_batch(&schema, 3, 3), 2).await;
    let (acks, st) = drain(p.rx).await;
    let st = st.expect("error status");
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(st.message(), "unexpected offset_id 2: expected 1");
    assert_eq!(acks.last().unwrap(), &Ack { offset: 0, records: 3, close_ms: None });
    assert_eq!(lines(&dir, TABLE).len(), 3);

    // Missing offset metadata.
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    let mut fds = p.encode(&simple_batch(&schema, 0, 1), 0);
    fds.last_mut().unwrap().app_metadata = Default::default();
    p.tx.send(fds.pop().unwrap()).await.unwrap();
    let (acks, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().starts_with("record batch at offset 0: missing app_metadata"), "{}", st.message());
    assert!(acks.is_empty());

    // Schema mismatch: a batch of another schema on the stream.
    let other = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("extra", DataType::Float64, true),
    ]));
    let other_batch = RecordBatch::try_new(
        other.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 2)).await;
    p.send(&other_batch).await;
    let (acks, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().starts_with("record batch at offset 1: schema mismatch"), "{}", st.message());
    assert_eq!(acks.last().unwrap(), &Ack { offset: 0, records: 2, close_ms: None });

    // Undecodable body (truncated).
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    let mut fds = p.encode(&simple_batch(&schema, 0, 50), 0);
    let mut fd = fds.pop().unwrap();
    fd.data_body = fd.data_body.slice(0..fd.data_body.len() / 2);
    p.tx.send(fd).await.unwrap();
    let (_, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().starts_with("record batch at offset 0: buffer"), "{}", st.message());

    // A different schema message mid-stream.
    let p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.tx.send(schema_data(TABLE, &other, &IpcWriteOptions::default())).await.unwrap();
    let (_, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("schema mismatch"), "{}", st.message());

    // FlightData above 64 MiB.
    let big_schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
    let mut p = open_put(&srv.url(), TABLE, big_schema.clone(), IpcWriteOptions::default()).await.unwrap();
    let small = RecordBatch::try_new(big_schema.clone(), vec![Arc::new(StringArray::from(vec!["ok"]))]).unwrap();
    let huge = RecordBatch::try_new(
        big_schema.clone(),
        vec![Arc::new(StringArray::from(vec!["x".repeat(64 * 1024 * 1024 + 1)]))],
    )
    .unwrap();
    p.send(&small).await;
    p.send(&huge).await;
    let (acks, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().starts_with("FlightData at offset 1: FlightData of"), "{}", st.message());
    assert_eq!(acks.last().unwrap(), &Ack { offset: 0, records: 1, close_ms: None });

    // 3 + 2 + 1 rows committed in all; everything else discarded.
    assert_eq!(lines(&dir, TABLE).len(), 6);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_setup_errors() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let schema = simple_schema();
    let opts = IpcWriteOptions::default();

    async fn first_status(url: &str, header: Option<&str>, token: Option<&str>, fd: FlightData) -> Status {
        let (tx, rx) = open_raw(url, token, header).await.unwrap();
        tx.send(fd).await.unwrap();
        let (acks, st) = drain(rx).await;
        assert!(acks.is_empty(), "{acks:?}");
        st.expect("error status")
    }

    let st = first_status(&srv.url(), None, None, schema_data("main.default.nope", &schema, &opts)).await;
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    assert_eq!(st.message(), "table main.default.nope not found");

    // No descriptor and no table header: nothing names the table.
    let mut fd = schema_data(TABLE, &schema, &opts);
    fd.flight_descriptor = None;
    let st = first_status(&srv.url(), None, None, fd).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("x-databricks-zerobus-table-name"), "{}", st.message());

    // A descriptor that agrees with the header is accepted.
    let (tx, mut rx) = open_raw(&srv.url(), None, Some(TABLE)).await.unwrap();
    tx.send(schema_data(TABLE, &schema, &opts)).await.unwrap();
    let ready = rx.message().await.unwrap().expect("ready message");
    assert_eq!(parse_ack(&ready), Ack { offset: -1, records: 0, close_ms: None });
    drop(tx);

    let mut fd = schema_data(TABLE, &schema, &opts);
    fd.flight_descriptor = Some(FlightDescriptor {
        r#type: zerobus_local::flight_proto::flight_descriptor::DescriptorType::Cmd as i32,
        cmd: TABLE.as_bytes().to_vec().into(),
        ..Default::default()
    });
    let st = first_status(&srv.url(), None, None, fd).await;
    assert_eq!(st.code(), Code::InvalidArgument);

    let st = first_status(&srv.url(), None, None, schema_data("nodots", &schema, &opts)).await;
    assert_eq!(st.code(), Code::InvalidArgument);

    let st = first_status(&srv.url(), Some("main.default.other"), None, schema_data(TABLE, &schema, &opts)).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("x-databricks-zerobus-table-name"), "{}", st.message());

    // First message is a record batch, not a schema.
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), opts.clone()).await.unwrap();
    let mut fd = p.encode(&simple_batch(&schema, 0, 1), 0).pop().unwrap();
    fd.flight_descriptor = Some(path_descriptor(TABLE));
    let st = first_status(&srv.url(), None, None, fd).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("must be an Arrow IPC Schema message, got RecordBatch"), "{}", st.message());
    drop(p.tx);

    // auto-create.
    let dir2 = common::tempdir().unwrap();
    let srv2 = server(&dir2, |c| c.auto_create_tables = true).await;
    let mut p = open_put(&srv2.url(), "a.b.c", schema.clone(), opts.clone()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 4)).await;
    let (acks, st) = p.finish().await;
    assert!(st.is_none());
    assert_eq!(acks.last().unwrap().records, 4);
    assert_eq!(lines(&dir2, "a.b.c").len(), 4);
    srv2.shutdown().await;

    // Other Flight methods are UNIMPLEMENTED.
    let mut client = client(&srv.url()).await;
    let st = client.list_actions(Empty {}).await.unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);

    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["createFailures"], json!(6));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_required() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |c| {
        c.client_id = Some("id".into());
        c.client_secret = Some("secret".into());
    })
    .await;
    let schema = simple_schema();
    let opts = IpcWriteOptions::default();
    for token in [None, Some("bogus")] {
        let (tx, rx) = open_raw(&srv.url(), token, Some(TABLE)).await.unwrap();
        tx.send(schema_data(TABLE, &schema, &opts)).await.unwrap();
        let (_, st) = drain(rx).await;
        assert_eq!(st.unwrap().code(), Code::Unauthenticated);
    }
    // With an issued token it works.
    let mut s = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let body = "grant_type=client_credentials&scope=all-apis";
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("id:secret");
    let req = format!(
        "POST /oidc/v1/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8(out).unwrap();
    let v: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    let token = v["access_token"].as_str().unwrap();
    let (tx, mut rx) = open_raw(&srv.url(), Some(token), Some(TABLE)).await.unwrap();
    tx.send(schema_data(TABLE, &schema, &opts)).await.unwrap();
    let ready = rx.message().await.unwrap().unwrap();
    assert_eq!(parse_ack(&ready), Ack { offset: -1, records: 0, close_ms: None });
    drop(tx);
    let (_, st) = drain(rx).await;
    assert!(st.is_none());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_drop_after_records_discards_uncommitted() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    control(&srv, "POST", "/control/faults", json!({"table": TABLE, "dropAfterRecords": 25})).await;
    let schema = simple_schema();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    for k in 0..5 {
        p.send(&simple_batch(&schema, k * 10, 10)).await;
    }
    let (acks, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::Unavailable);
    assert_eq!(st.message(), "injected fault: stream dropped");
    let acked = acks.last().map_or(0, |a| a.records);
    assert!(acked < 25, "{acks:?}");
    // Exactly the acked rows are in the file.
    assert_eq!(lines(&dir, TABLE).len() as u64, acked);

    // Used up: the next stream works.
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 30)).await;
    let (acks, st) = p.finish().await;
    assert!(st.is_none());
    assert_eq!(acks.last().unwrap(), &Ack { offset: 0, records: 30, close_ms: None });
    assert_eq!(lines(&dir, TABLE).len() as u64, acked + 30);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_close_signal_and_fail_after() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    control(&srv, "POST", "/control/faults", json!({"closeSignalAfterRecords": {"records": 10, "durationMs": 300}})).await;
    let schema = simple_schema();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 6)).await;
    p.send(&simple_batch(&schema, 6, 6)).await;
    let started = std::time::Instant::now();
    let Put { tx, rx, .. } = p;
    let (acks, st) = drain(rx).await;
    drop(tx);
    assert!(st.is_none(), "{st:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let signals: Vec<&Ack> = acks.iter().filter(|a| a.close_ms.is_some()).collect();
    assert_eq!(signals.len(), 1, "{acks:?}");
    assert_eq!(signals[0].close_ms, Some(300));
    assert!(signals[0].records <= 12);
    assert_eq!(acks.iter().map(|a| a.records).max(), Some(12));

    // failAfterRecords: commits what came before (including the batch that reached the count),
    // then ends with the injected status.
    control(&srv, "POST", "/control/faults", json!({"failAfterRecords": {"records": 5, "code": "UNAVAILABLE", "message": "boom"}})).await;
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 3)).await;
    p.send(&simple_batch(&schema, 3, 3)).await;
    let (acks, st) = drain(p.rx).await;
    let st = st.unwrap();
    assert_eq!((st.code(), st.message()), (Code::Unavailable, "boom"));
    assert_eq!(acks.last().unwrap().records, 6);

    // failCreate.
    control(&srv, "POST", "/control/faults", json!({"failCreate": {"code": "PERMISSION_DENIED"}})).await;
    let err = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.err().unwrap();
    assert_eq!(err.code(), Code::PermissionDenied);

    // withholdAcks: nothing is acked or stored.
    control(&srv, "POST", "/control/faults", json!({"withholdAcks": true})).await;
    let before = lines(&dir, TABLE).len();
    let mut p = open_put(&srv.url(), TABLE, schema.clone(), IpcWriteOptions::default()).await.unwrap();
    p.send(&simple_batch(&schema, 0, 3)).await;
    assert!(tokio::time::timeout(Duration::from_millis(200), p.rx.message()).await.is_err());
    let (acks, st) = p.finish().await;
    assert!(acks.is_empty() && st.is_none(), "{acks:?} {st:?}");
    assert_eq!(lines(&dir, TABLE).len(), before);
    srv.shutdown().await;
}
