//! The client side of DoPut for the tests: opening a stream (with or without a descriptor,
//! token or table header), encoding schema, dictionaries and batches as FlightData, reading acks;
//! and the simple schema and batches most tests send.

#[allow(unused_imports)]
use super::*;

/// One PutResult's app_metadata.
#[derive(Debug, PartialEq)]
pub(crate) struct Ack {
    pub(crate) offset: i64,
    pub(crate) records: u64,
    pub(crate) close_ms: Option<u64>,
}

pub(crate) fn parse_ack(r: &PutResult) -> Ack {
    let v: Value = serde_json::from_slice(&r.app_metadata).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{v}");
    Ack {
        offset: v["ack_up_to_offset"].as_i64().unwrap(),
        records: v["ack_up_to_records"].as_u64().unwrap(),
        close_ms: v["close_stream_duration_ms"].as_u64(),
    }
}

/// Client-side encoder for one DoPut stream.
pub(crate) struct Put {
    pub(crate) tx: mpsc::Sender<FlightData>,
    pub(crate) rx: Streaming<PutResult>,
    pub(crate) opts: IpcWriteOptions,
    pub(crate) gen: IpcDataGenerator,
    pub(crate) tracker: DictionaryTracker,
    pub(crate) ctx: IpcWriteContext,
    pub(crate) next_offset: i64,
}

pub(crate) async fn client(url: &str) -> FlightServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.expect("connect");
    FlightServiceClient::new(channel)
}

pub(crate) async fn open_raw(url: &str, token: Option<&str>, header_table: Option<&str>) -> Result<(mpsc::Sender<FlightData>, Streaming<PutResult>), Status> {
    let mut client = client(url).await;
    let (tx, rx) = mpsc::channel(10_000);
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(t) = header_table {
        req.metadata_mut().insert("x-databricks-zerobus-table-name", t.parse().unwrap());
    }
    if let Some(t) = token {
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let resp = client.do_put(req).await?;
    Ok((tx, resp.into_inner()))
}

/// The first message with a flight_descriptor PATH [table] (optional on the wire).
pub(crate) fn schema_data(table: &str, schema: &Schema, opts: &IpcWriteOptions) -> FlightData {
    let mut fd = schema_data_with(schema, opts, &mut DictionaryTracker::new(false));
    fd.flight_descriptor = Some(path_descriptor(table));
    fd
}

pub(crate) fn path_descriptor(table: &str) -> FlightDescriptor {
    FlightDescriptor {
        r#type: zerobus_local::flight_proto::flight_descriptor::DescriptorType::Path as i32,
        path: vec![table.to_string()],
        ..Default::default()
    }
}

/// Encoded IPC data (a dictionary or a record batch) as FlightData.
pub(crate) fn flight_data(e: arrow_ipc::writer::EncodedData) -> FlightData {
    FlightData { data_header: e.ipc_message.into(), data_body: e.arrow_data.into(), ..Default::default() }
}

/// The schema message without a descriptor, as the official client sends it (the table comes
/// from the header); `tracker` learns the dictionary ids (it must be the one that encodes the
/// batches).
pub(crate) fn schema_data_with(schema: &Schema, opts: &IpcWriteOptions, tracker: &mut DictionaryTracker) -> FlightData {
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(schema, tracker, opts);
    FlightData { data_header: encoded.ipc_message.into(), ..Default::default() }
}

/// Opens a DoPut stream and sends the schema; returns the stream or the error status (the
/// ready message is checked).
pub(crate) async fn open_put(url: &str, table: &str, schema: SchemaRef, opts: IpcWriteOptions) -> Result<Put, Status> {
    let (tx, mut rx) = open_raw(url, None, Some(table)).await?;
    let mut tracker = DictionaryTracker::new(false);
    tx.send(schema_data_with(&schema, &opts, &mut tracker)).await.unwrap();
    match rx.message().await? {
        Some(r) => assert_eq!(
            parse_ack(&r),
            Ack { offset: -1, records: 0, close_ms: None }
        ),
        None => panic!("stream ended before the ready message"),
    }
    Ok(Put {
        tx,
        rx,
        opts,
        gen: IpcDataGenerator::default(),
        tracker,
        ctx: IpcWriteContext::default(),
        next_offset: 0,
    })
}

impl Put {
    pub(crate) fn encode(&mut self, batch: &RecordBatch, offset: i64) -> Vec<FlightData> {
        let (dicts, b) = self.gen.encode(batch, &mut self.tracker, &self.opts, &mut self.ctx).unwrap();
        let mut out: Vec<FlightData> = dicts.into_iter().map(flight_data).collect();
        let mut fd = flight_data(b);
        fd.app_metadata = format!(r#"{{"offset_id":{offset}}}"#).into();
        out.push(fd);
        out
    }

    pub(crate) async fn send_at(&mut self, batch: &RecordBatch, offset: i64) {
        for fd in self.encode(batch, offset) {
            // Fails only once the server has ended the call (e.g. an injected drop): the acks and
            // the status the test reads next say what happened.
            if self.tx.send(fd).await.is_err() {
                return;
            }
        }
    }

    pub(crate) async fn send(&mut self, batch: &RecordBatch) -> i64 {
        let off = self.next_offset;
        self.next_offset += 1;
        self.send_at(batch, off).await;
        off
    }

    /// Half-closes and reads every response: (acks, final status).
    pub(crate) async fn finish(self) -> (Vec<Ack>, Option<Status>) {
        let Put { tx, rx, .. } = self;
        drop(tx);
        drain(rx).await
    }
}

pub(crate) async fn drain(mut rx: Streaming<PutResult>) -> (Vec<Ack>, Option<Status>) {
    let mut acks = Vec::new();
    loop {
        match rx.message().await {
            Ok(Some(r)) => acks.push(parse_ack(&r)),
            Ok(None) => return (acks, None),
            Err(s) => return (acks, Some(s)),
        }
    }
}

pub(crate) fn check_monotonic(acks: &[Ack]) {
    for w in acks.windows(2) {
        assert!(w[0].offset <= w[1].offset && w[0].records <= w[1].records, "{acks:?}");
    }
}

pub(crate) fn simple_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

pub(crate) fn simple_batch(schema: &SchemaRef, start: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(names)) as ArrayRef,
        ],
    )
    .unwrap()
}
