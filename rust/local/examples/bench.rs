//! Throughput benchmark: `cargo run --release -p zerobus-local --example bench -- \
//!   [--streams 1] [--record-bytes 100] [--batch 1000] [--total 2000000] [--proto] [--fsync]`
//! Starts an in-process server (tmp data dir), opens `streams` streams, sends JSON batch requests
//! (`batch` records each, 1 = single-record requests) without waiting for acks (bounded
//! in-flight), and reports records/s and MB/s from first send to last ack.

use std::time::Instant;

use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use zerobus_proto::zerobus::ephemeral_stream_request::Payload as ReqPayload;
use zerobus_proto::zerobus::ephemeral_stream_response::Payload as RespPayload;
use zerobus_proto::zerobus::ingest_record_batch_request::Batch;
use zerobus_proto::zerobus::ingest_record_request::Record;
use zerobus_proto::zerobus::*;

#[tokio::main]
async fn main() {
    let mut streams = 1usize;
    let mut record_bytes = 100usize;
    let mut batch = 1000usize;
    let mut total = 2_000_000usize;
    let mut fsync = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap().parse::<usize>().unwrap();
        match a.as_str() {
            "--streams" => streams = v(),
            "--record-bytes" => record_bytes = v(),
            "--batch" => batch = v(),
            "--total" => total = v(),
            "--fsync" => fsync = true,
            _ => panic!("unknown arg {a}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("zerobus-bench-{}", std::process::id()));
    let table = "bench.default.t";
    let srv = zerobus_local::start(zerobus_local::ServerConfig {
        data_dir: dir.clone(),
        tables: vec![table.into()],
        fsync,
        max_record_bytes: 64 << 20,
        ..Default::default()
    })
    .await
    .unwrap();
    let prefix = r#"{"id":123456,"name":"benchmark","value":3.25,"pad":""#;
    let pad = record_bytes.saturating_sub(prefix.len() + 2);
    let record = format!("{prefix}{}\"}}", "x".repeat(pad));
    let per_stream_requests = total / streams / batch;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let url = srv.url();
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(url).unwrap()
                .initial_stream_window_size(16 << 20).initial_connection_window_size(64 << 20)
                .connect().await.unwrap();
            let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX);
            grpc.ready().await.unwrap();
            let (tx, rx) = mpsc::channel::<EphemeralStreamRequest>(64);
            let resp = grpc.streaming(tonic::Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static("/databricks.zerobus.Zerobus/EphemeralStream"),
                tonic_prost::ProstCodec::<EphemeralStreamRequest, EphemeralStreamResponse>::default()).await.unwrap();
            let mut inbound = resp.into_inner();
            tx.send(EphemeralStreamRequest { payload: Some(ReqPayload::CreateStream(CreateIngestStreamRequest {
                table_name: Some(table.into()), descriptor_proto: None, record_type: Some(RecordType::Json as i32) })) }).await.unwrap();
            inbound.message().await.unwrap().unwrap();
            let reader = tokio::spawn(async move {
                let mut last = -1;
                while let Some(m) = inbound.message().await.unwrap() {
                    if let Some(RespPayload::IngestRecordResponse(r)) = m.payload {
                        last = r.durability_ack_up_to_offset.unwrap();
                        if last == per_stream_requests as i64 - 1 { break; }
                    }
                }
                last
            });
            let records: Vec<String> = vec![record; batch];
            for off in 0..per_stream_requests as i64 {
                let payload = if batch == 1 {
                    ReqPayload::IngestRecord(IngestRecordRequest { offset_id: Some(off), record: Some(Record::JsonRecord(records[0].clone())) })
                } else {
                    ReqPayload::IngestRecordBatch(IngestRecordBatchRequest { offset_id: Some(off),
                        batch: Some(Batch::JsonBatch(JsonRecordBatch { records: records.clone() })) })
                };
                tx.send(EphemeralStreamRequest { payload: Some(payload) }).await.unwrap();
            }
            let last = reader.await.unwrap();
            assert_eq!(last, per_stream_requests as i64 - 1);
            drop(tx);
        }));
    }
    for t in tasks { t.await.unwrap(); }
    let secs = start.elapsed().as_secs_f64();
    let n = per_stream_requests * batch * streams;
    let bytes = n * record.len();
    println!("{streams} stream(s), {n} records of {} bytes, batch {batch}, fsync {fsync}: {:.3}s, {:.0} records/s, {:.0} MB/s",
        record.len(), secs, n as f64 / secs, bytes as f64 / secs / 1e6);
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
