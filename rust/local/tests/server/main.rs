//! Integration tests: a hand-built tonic client against zerobus-local.

use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use zerobus_proto::zerobus::ephemeral_stream_request::Payload as ReqPayload;
use zerobus_proto::zerobus::ephemeral_stream_response::Payload as RespPayload;
use zerobus_proto::zerobus::ingest_record_batch_request::Batch;
use zerobus_proto::zerobus::ingest_record_request::Record;
use zerobus_proto::zerobus::*;
#[path = "../common/mod.rs"]
mod common;
use common::*;

mod client;
use client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_round_trip() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let mut c = open(&srv.url(), TABLE).await;
    let id = c.create(TABLE, RecordType::Json, None).await.unwrap();
    assert!(id.starts_with("local-"));
    c.json(r#"{"id": 1, "msg": "hello world"}"#).await;
    c.json("{\n  \"id\" : 2,\n  \"nested\": {\"a\": [1, 2, 3]}\n}").await;
    let last = c.json_batch(&[r#"{"id":3}"#, r#" {"id": 4, "s": "a \" b"} "#]).await;
    c.wait_ack(last).await;
    assert_eq!(
        lines(&dir, TABLE),
        vec![
            r#"{"id":1,"msg":"hello world"}"#,
            r#"{"id":2,"nested":{"a":[1,2,3]}}"#,
            r#"{"id":3}"#,
            r#"{"id":4,"s":"a \" b"}"#,
        ]
    );
    // Client half-close: the server ends the stream OK.
    drop(c.tx);
    assert!(matches!(c.rx.message().await, Ok(None)));
    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["committedRecords"][TABLE], 4);
    assert_eq!(stats["streamsOpened"], 1);
    assert!(stats["lastUserAgent"].as_str().unwrap().contains("tonic"), "{stats}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_records_group_commit_and_concurrent_streams() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let mut tasks = Vec::new();
    for s in 0..4 {
        let url = srv.url();
        tasks.push(tokio::spawn(async move {
            let mut c = open(&url, TABLE).await;
            c.create(TABLE, RecordType::Json, None).await.unwrap();
            let mut last = 0;
            for i in 0..5000 {
                last = c.json(&format!(r#"{{"stream":{s},"i":{i},"pad":"{}"}}"#, "x".repeat(64))).await;
            }
            c.wait_ack(last).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let l = lines(&dir, TABLE);
    assert_eq!(l.len(), 20_000);
    let mut per_stream = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for line in &l {
        let v: Value = serde_json::from_str(line).unwrap();
        per_stream[v["stream"].as_u64().unwrap() as usize].push(v["i"].as_u64().unwrap());
    }
    for p in per_stream {
        assert_eq!(p, (0..5000).collect::<Vec<u64>>());
    }
    srv.shutdown().await;
}

#[derive(Clone, PartialEq, prost::Message)]
struct Nested {
    #[prost(bool, optional, tag = "1")]
    ok: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Rec {
    #[prost(int64, optional, tag = "1")]
    id: Option<i64>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(message, optional, tag = "3")]
    nested: Option<Nested>,
    #[prost(int32, repeated, packed = "false", tag = "4")]
    tags: Vec<i32>,
    #[prost(enumeration = "i32", optional, tag = "5")]
    color: Option<i32>,
}

fn rec_descriptor(nested_type_name: &str) -> Vec<u8> {
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto};
    let field = |name: &str, number: i32, label: Label, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
        name: Some(name.to_string()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(str::to_string),
        ..Default::default()
    };
    DescriptorProto {
        name: Some("Rec".to_string()),
        field: vec![
            field("id", 1, Label::Optional, Type::Int64, None),
            field("name", 2, Label::Optional, Type::String, None),
            field("nested", 3, Label::Optional, Type::Message, Some(nested_type_name)),
            field("tags", 4, Label::Repeated, Type::Int32, None),
            field("color", 5, Label::Optional, Type::Enum, Some(".my.pkg.Rec.Color")),
        ],
        nested_type: vec![DescriptorProto {
            name: Some("Nested".to_string()),
            field: vec![field("ok", 1, Label::Optional, Type::Bool, None)],
            ..Default::default()
        }],
        enum_type: vec![EnumDescriptorProto {
            name: Some("Color".to_string()),
            value: vec![
                EnumValueDescriptorProto { name: Some("RED".into()), number: Some(0), ..Default::default() },
                EnumValueDescriptorProto { name: Some("BLUE".into()), number: Some(1), ..Default::default() },
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proto_decodes_to_json() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Proto, Some(rec_descriptor(".my.pkg.Rec.Nested"))).await.unwrap();
    let r1 = Rec {
        id: Some(9_007_199_254_740_993),
        name: Some("x".into()),
        nested: Some(Nested { ok: Some(true) }),
        tags: vec![1, 2],
        color: Some(1),
    };
    c.proto(r1.encode_to_vec()).await;
    let last = c.proto(Rec { id: Some(2), ..Default::default() }.encode_to_vec()).await;
    c.wait_ack(last).await;
    assert_eq!(
        lines(&dir, TABLE),
        vec![
            r#"{"id":9007199254740993,"name":"x","nested":{"ok":true},"tags":[1,2],"color":"BLUE"}"#,
            r#"{"id":2,"tags":[]}"#,
        ]
    );
    // A JSON record on a PROTO stream is rejected.
    let off = c.json(r#"{"a":1}"#).await;
    let (_, st) = c.drain().await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains(&format!("record at offset {off}: record type mismatch")), "{st:?}");

    // Garbage bytes are a decode failure.
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Proto, Some(rec_descriptor("Nested"))).await.unwrap();
    c.proto(vec![0xff, 0xff, 0xff]).await;
    let (acked, st) = c.drain().await;
    assert_eq!(acked, -1);
    assert!(st.unwrap().message().contains("record at offset 0: cannot decode protobuf record"));

    // References outside the descriptor are rejected at create time.
    let mut c = open(&srv.url(), TABLE).await;
    let err = c
        .create(TABLE, RecordType::Proto, Some(rec_descriptor(".google.protobuf.Timestamp")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("self-contained"), "{err:?}");

    // PROTO without descriptor, UNSPECIFIED record type.
    let mut c = open(&srv.url(), TABLE).await;
    assert_eq!(c.create(TABLE, RecordType::Proto, None).await.unwrap_err().code(), Code::InvalidArgument);
    let mut c = open(&srv.url(), TABLE).await;
    assert_eq!(c.create(TABLE, RecordType::Unspecified, None).await.unwrap_err().code(), Code::InvalidArgument);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_errors() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |c| c.max_record_bytes = 100).await;

    // Wrong offset: earlier record committed, then INVALID_ARGUMENT.
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    c.json(r#"{"n":0}"#).await;
    c.next_offset = 5;
    c.json(r#"{"n":5}"#).await;
    let (acked, st) = c.drain().await;
    assert_eq!(acked, 0);
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("unexpected offset_id 5: expected 1"), "{st:?}");
    assert_eq!(lines(&dir, TABLE).len(), 1);

    // First message not create_stream.
    let mut c = open(&srv.url(), TABLE).await;
    c.json(r#"{"n":0}"#).await;
    assert_eq!(c.next().await.unwrap_err().code(), Code::InvalidArgument);

    // Unknown table.
    let mut c = open(&srv.url(), "main.default.nope").await;
    let err = c.create("main.default.nope", RecordType::Json, None).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Header / table_name mismatch.
    let mut c = open(&srv.url(), "main.default.other").await;
    let err = c.create(TABLE, RecordType::Json, None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Bad record: everything before it is committed and acked, the rest is not.
    let before = lines(&dir, TABLE).len();
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    for i in 0..5 {
        c.json(&format!(r#"{{"good":{i}}}"#)).await;
    }
    c.json_batch(&[r#"{"good":5}"#, "{\"good\":6}"]).await;
    c.json_batch(&[r#"{"bad":7}"#, "nope"]).await; // offset 6: whole batch rejected
    c.json(r#"{"after":1}"#).await;
    let (acked, st) = c.drain().await;
    assert_eq!(acked, 5);
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().starts_with("record at offset 6 (batch index 1): invalid JSON:"), "{st:?}");
    let l = lines(&dir, TABLE);
    assert_eq!(l.len() - before, 7);
    assert_eq!(l.last().unwrap(), r#"{"good":6}"#);

    // Non-object and oversize records.
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    c.json("[1,2]").await;
    let st = c.drain().await.1.unwrap();
    assert!(st.message().contains("record at offset 0: JSON record is not an object"), "{st:?}");
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    c.json(&format!(r#"{{"big":"{}"}}"#, "x".repeat(200))).await;
    let st = c.drain().await.1.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("exceeds the maximum record size of 100 bytes"), "{st:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_control_and_auto_create() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let (status, _) = http1(&srv, "POST", "/control/tables", &[], r#"{"name":"bad"}"#).await;
    assert_eq!(status, 400);
    let r = control(&srv, "POST", "/control/tables", json!({"name": "a.b.c"})).await;
    assert_eq!(r["created"], true);
    let mut c = open(&srv.url(), "a.b.c").await;
    c.create("a.b.c", RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"x":1}"#).await;
    c.wait_ack(o).await;
    assert_eq!(lines(&dir, "a.b.c"), vec![r#"{"x":1}"#]);
    srv.shutdown().await;

    let srv = server(&dir, |c| c.auto_create_tables = true).await;
    let mut c = open(&srv.url(), "x.y.z").await;
    c.create("x.y.z", RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"x":2}"#).await;
    c.wait_ack(o).await;
    assert_eq!(lines(&dir, "x.y.z"), vec![r#"{"x":2}"#]);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_drop_after_records_discards_uncommitted() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    control(&srv, "POST", "/control/faults", json!({"table": TABLE, "dropAfterRecords": 10})).await;
    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["faultsRemaining"].as_array().unwrap().len(), 1);
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    for i in 0..20 {
        c.json(&format!(r#"{{"i":{i}}}"#)).await;
    }
    let (acked, st) = c.drain().await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::Unavailable);
    assert_eq!(st.message(), "injected fault: stream dropped");
    assert!(acked < 10);
    // Exactly the acked records are in the file: a replay produces no duplicates.
    assert_eq!(lines(&dir, TABLE).len() as i64, acked + 1);

    // The fault is used up: the next stream works.
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let mut last = 0;
    for i in 0..20 {
        last = c.json(&format!(r#"{{"i":{i}}}"#)).await;
    }
    c.wait_ack(last).await;
    assert_eq!(lines(&dir, TABLE).len() as i64, acked + 1 + 20);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_close_signal() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    control(&srv, "POST", "/control/faults", json!({"closeSignalAfterRecords": {"records": 2, "durationMs": 300}})).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    c.json(r#"{"i":0}"#).await;
    c.json(r#"{"i":1}"#).await;
    let started = std::time::Instant::now();
    let mut got_signal = false;
    let mut acked = -1;
    let end = loop {
        match c.next().await {
            Ok(Some(RespPayload::CloseStreamSignal(s))) => {
                let d = s.duration.unwrap();
                assert_eq!((d.seconds, d.nanos), (0, 300_000_000));
                got_signal = true;
            }
            Ok(Some(RespPayload::IngestRecordResponse(r))) => acked = r.durability_ack_up_to_offset.unwrap(),
            Ok(Some(other)) => panic!("{other:?}"),
            Ok(None) => break None,
            Err(s) => break Some(s),
        }
    };
    assert!(got_signal);
    assert_eq!(acked, 1);
    assert!(end.is_none(), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_fail_create_fail_after_withhold_delay() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let (status, _) = http1(&srv, "POST", "/control/faults", &[], r#"{"failCreate":{"code":"NOPE"}}"#).await;
    assert_eq!(status, 400);
    control(&srv, "POST", "/control/faults", json!({"times": 2, "failCreate": {"code": "UNAVAILABLE", "message": "try later"}})).await;
    for _ in 0..2 {
        let mut c = open(&srv.url(), TABLE).await;
        let err = c.create(TABLE, RecordType::Json, None).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::Unavailable, "try later"));
    }

    control(&srv, "POST", "/control/faults", json!({"failAfterRecords": {"records": 3, "code": "INTERNAL", "message": "boom"}})).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    for i in 0..5 {
        c.json(&format!(r#"{{"i":{i}}}"#)).await;
    }
    let (acked, st) = c.drain().await;
    assert_eq!(acked, 2);
    assert_eq!(st.unwrap().code(), Code::Internal);
    assert_eq!(lines(&dir, TABLE).len(), 3);

    control(&srv, "POST", "/control/faults", json!({"withholdAcks": true})).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    c.json(r#"{"w":1}"#).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), c.rx.message()).await.is_err());
    drop(c);

    control(&srv, "POST", "/control/faults", json!({"ackDelayMs": 300})).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let t = std::time::Instant::now();
    let o = c.json(r#"{"d":1}"#).await;
    c.wait_ack(o).await;
    assert!(t.elapsed() >= Duration::from_millis(280));
    assert_eq!(lines(&dir, TABLE).len(), 4);

    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["faultsRemaining"], json!([]));
    control(&srv, "POST", "/control/faults", json!({"table": "x.y.z", "withholdAcks": true})).await;
    control(&srv, "DELETE", "/control/faults", Value::Null).await;
    control(&srv, "POST", "/control/reset", Value::Null).await;
    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["streamsOpened"], 0);
    assert_eq!(stats["committedRecords"][TABLE], 0);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_endpoint_and_auth() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |c| {
        c.client_id = Some("cid".into());
        c.client_secret = Some("secret".into());
    })
    .await;
    let form = "grant_type=client_credentials&scope=all-apis&authorization_details=%5B%7B%22type%22%3A%22unity_catalog_privileges%22%7D%5D";
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    let bad = format!("Basic {}", b64("cid:wrong"));
    let (status, _) = http1(&srv, "POST", "/oidc/v1/token", &[ct, ("Authorization", &bad)], form).await;
    assert_eq!(status, 401);
    let (status, _) = http1(&srv, "POST", "/oidc/v1/token", &[ct], form).await;
    assert_eq!(status, 401);
    let good = format!("Basic {}", b64("cid:secret"));
    let (status, body) = http1(&srv, "POST", "/oidc/v1/token", &[ct, ("Authorization", &good)], form).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let token = v["access_token"].as_str().unwrap().to_string();
    let stats = control(&srv, "GET", "/control/stats", Value::Null).await;
    assert_eq!(stats["lastAuthorizationDetails"], r#"[{"type":"unity_catalog_privileges"}]"#);

    let ep = || tonic::transport::Endpoint::from_shared(srv.url()).unwrap();
    let mut c = open_with(ep(), TABLE, None).await.unwrap();
    assert_eq!(c.create(TABLE, RecordType::Json, None).await.unwrap_err().code(), Code::Unauthenticated);
    let mut c = open_with(ep(), TABLE, Some("zbl_forged")).await.unwrap();
    assert_eq!(c.create(TABLE, RecordType::Json, None).await.unwrap_err().code(), Code::Unauthenticated);
    let mut c = open_with(ep(), TABLE, Some(&token)).await.unwrap();
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"ok":true}"#).await;
    c.wait_ack(o).await;
    srv.shutdown().await;
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_grpc_and_http1() {
    let dir = common::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let srv = server(&dir, |c| {
        c.tls_cert_pem = Some(cert_path.display().to_string());
        c.tls_key_pem = Some(key_path.display().to_string());
    })
    .await;
    assert!(srv.url().starts_with("https://127.0.0.1:"));

    // gRPC over TLS (h2 via ALPN).
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let ep = tonic::transport::Endpoint::from_shared(srv.url()).unwrap().tls_config(tls).unwrap();
    let mut c = open_with(ep, TABLE, None).await.unwrap();
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"tls":true}"#).await;
    c.wait_ack(o).await;

    // HTTP/1.1 over TLS (token endpoint).
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let s = connector
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (status, body) = http1_on(s, "POST", "/oidc/v1/token", &[], "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{body}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_open_streams() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"a":1}"#).await;
    c.wait_ack(o).await;
    let t = std::time::Instant::now();
    srv.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3));
    let (_, st) = c.drain().await;
    assert_eq!(st.unwrap().code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_the_server_cannot_decode_ends_the_call_with_its_error() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |c| c.max_record_bytes = 1024).await;
    let mut c = open(&srv.url(), TABLE).await;
    c.create(TABLE, RecordType::Json, None).await.unwrap();
    let o = c.json(r#"{"a":1}"#).await;
    c.wait_ack(o).await;
    // Over max_record_bytes + 64 KiB: tonic refuses to decode the message at all.
    c.json(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024))).await;
    let (_, status) = c.drain().await;
    let status = status.expect("the call ends with the decode error, not OK");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(lines(&dir, TABLE).len(), 1, "what was acknowledged stays");

    // The same as the first message of a call.
    let mut c = open(&srv.url(), TABLE).await;
    c.send(ReqPayload::CreateStream(CreateIngestStreamRequest {
        table_name: Some(format!("{}{}", TABLE, " ".repeat(100 * 1024))),
        record_type: Some(RecordType::Json as i32),
        ..Default::default()
    }))
    .await;
    let (_, status) = c.drain().await;
    assert_eq!(status.expect("an error, not OK").code(), Code::OutOfRange);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_zerobus_methods_are_unimplemented() {
    let dir = common::tempdir().unwrap();
    let srv = server(&dir, |_| {}).await;
    let channel = tonic::transport::Endpoint::from_shared(srv.url()).unwrap().connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let res: Result<tonic::Response<EphemeralStreamResponse>, Status> = grpc
        .unary(
            tonic::Request::new(EphemeralStreamRequest::default()),
            PathAndQuery::from_static("/databricks.zerobus.Zerobus/CreateIngestStream"),
            tonic_prost::ProstCodec::<EphemeralStreamRequest, EphemeralStreamResponse>::default(),
        )
        .await;
    assert_eq!(res.unwrap_err().code(), Code::Unimplemented);
    srv.shutdown().await;
}
