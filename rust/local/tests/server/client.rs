//! A hand-built tonic client of the EphemeralStream RPC: opens a stream, sends records and
//! batches with consecutive offsets, waits for acks.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Client {
    pub(crate) tx: mpsc::Sender<EphemeralStreamRequest>,
    pub(crate) rx: Streaming<EphemeralStreamResponse>,
    pub(crate) next_offset: i64,
}

pub(crate) async fn open_with(
    endpoint: tonic::transport::Endpoint,
    table: &str,
    token: Option<&str>,
) -> Result<Client, Status> {
    let channel = endpoint.connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let (tx, rx) = mpsc::channel(10_000);
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("x-databricks-zerobus-table-name", table.parse().unwrap());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let resp = grpc
        .streaming(
            req,
            PathAndQuery::from_static("/databricks.zerobus.Zerobus/EphemeralStream"),
            tonic_prost::ProstCodec::<EphemeralStreamRequest, EphemeralStreamResponse>::default(),
        )
        .await?;
    Ok(Client {
        tx,
        rx: resp.into_inner(),
        next_offset: 0,
    })
}

pub(crate) async fn open(url: &str, table: &str) -> Client {
    open_with(tonic::transport::Endpoint::from_shared(url.to_string()).unwrap(), table, None)
        .await
        .expect("open")
}

impl Client {
    /// Sends a request. Once the server has ended the call, the request stream is gone and the
    /// request is dropped (the tests read the call's status instead): the server may end it
    /// while the test is still sending, e.g. with a fault after N records.
    pub(crate) async fn send(&self, p: ReqPayload) {
        let _ = self.tx.send(EphemeralStreamRequest { payload: Some(p) }).await;
    }

    /// Sends create_stream and returns the stream id or the error status.
    pub(crate) async fn create(&mut self, table: &str, record_type: RecordType, descriptor: Option<Vec<u8>>) -> Result<String, Status> {
        self.send(ReqPayload::CreateStream(CreateIngestStreamRequest {
            table_name: Some(table.to_string()),
            descriptor_proto: descriptor.map(Into::into),
            record_type: Some(record_type as i32),
        }))
        .await;
        match self.next().await? {
            Some(RespPayload::CreateStreamResponse(r)) => Ok(r.stream_id.unwrap()),
            other => panic!("unexpected response {other:?}"),
        }
    }

    pub(crate) async fn json(&mut self, s: &str) -> i64 {
        let off = self.next_offset;
        self.next_offset += 1;
        self.send(ReqPayload::IngestRecord(IngestRecordRequest {
            offset_id: Some(off),
            record: Some(Record::JsonRecord(s.to_string())),
        }))
        .await;
        off
    }

    pub(crate) async fn json_batch(&mut self, recs: &[&str]) -> i64 {
        let off = self.next_offset;
        self.next_offset += 1;
        self.send(ReqPayload::IngestRecordBatch(IngestRecordBatchRequest {
            offset_id: Some(off),
            batch: Some(Batch::JsonBatch(JsonRecordBatch {
                records: recs.iter().map(|s| s.to_string()).collect(),
            })),
        }))
        .await;
        off
    }

    pub(crate) async fn proto(&mut self, b: Vec<u8>) -> i64 {
        let off = self.next_offset;
        self.next_offset += 1;
        self.send(ReqPayload::IngestRecord(IngestRecordRequest {
            offset_id: Some(off),
            record: Some(Record::ProtoEncodedRecord(b.into())),
        }))
        .await;
        off
    }

    /// Next response payload; Ok(None) at clean end of stream.
    pub(crate) async fn next(&mut self) -> Result<Option<RespPayload>, Status> {
        match tokio::time::timeout(Duration::from_secs(5), self.rx.message()).await {
            Ok(Ok(Some(m))) => Ok(m.payload),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(s)) => Err(s),
            Err(_) => panic!("timed out waiting for a response"),
        }
    }

    /// Reads acks until `offset` is acked; panics on anything else.
    pub(crate) async fn wait_ack(&mut self, offset: i64) {
        loop {
            match self.next().await {
                Ok(Some(RespPayload::IngestRecordResponse(r))) => {
                    if r.durability_ack_up_to_offset.unwrap() >= offset {
                        return;
                    }
                }
                other => panic!("waiting for ack {offset}: got {other:?}"),
            }
        }
    }

    /// Reads until the stream ends; returns (highest ack, final status or None for OK).
    pub(crate) async fn drain(&mut self) -> (i64, Option<Status>) {
        let mut acked = -1;
        loop {
            match self.next().await {
                Ok(Some(RespPayload::IngestRecordResponse(r))) => {
                    acked = acked.max(r.durability_ack_up_to_offset.unwrap())
                }
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => return (acked, None),
                Err(s) => return (acked, Some(s)),
            }
        }
    }
}
