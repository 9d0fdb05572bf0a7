//! The `EphemeralStream` RPC (the Zerobus service's only method): serving the gRPC call,
//! the create request (auth, table, record format, faults), and the receiver of protobuf and
//! JSON records; the receiver/committer pipeline it runs is [`crate::pipeline`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use zerobus_proto::zerobus::ephemeral_stream_response::Payload as RespPayload;
use zerobus_proto::zerobus::{
    CloseStreamSignal, CreateIngestStreamRequest, CreateIngestStreamResponse, EphemeralStreamResponse,
    IngestRecordResponse, RecordType,
};

use crate::admit::{accept, check_auth, check_table_header, first_message, invalid, refuse, resolve_table, CallHeaders};
use crate::faults::StreamFaults;
use crate::pipeline::{run_committer, run_receiver, AckFaults, Pending, StreamReceiver, COMMIT_QUEUE};
use crate::records::{self, RecordFormat};
use crate::request::{Kind, StreamCodec, StreamRequest, EPHEMERAL_STREAM_PATH};
use crate::state::{validate_table_name, State, Table};

type RespTx = mpsc::Sender<Result<EphemeralStreamResponse, Status>>;

/// An `EphemeralStream` call: the stream runs in a task of its own; the response (whose
/// messages it sends) is returned at once, so tonic sends the initial metadata now.
pub(crate) fn ephemeral_stream(
    state: Arc<State>,
    request: Request<Streaming<StreamRequest>>,
) -> Response<ReceiverStream<Result<EphemeralStreamResponse, Status>>> {
    let headers = CallHeaders::read(&state, request.metadata());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run_stream(state, headers, request.into_inner(), tx));
    Response::new(ReceiverStream::new(rx))
}

/// Everything decided at create_stream time.
struct StreamSetup {
    table: Arc<Table>,
    format: RecordFormat,
    faults: StreamFaults,
}

fn setup_stream(state: &State, headers: &CallHeaders, create: CreateIngestStreamRequest) -> Result<StreamSetup, Status> {
    check_auth(state, headers.authorization.as_deref())?;
    let table_name = create.table_name.clone().unwrap_or_default();
    if table_name.is_empty() {
        return Err(invalid("create_stream: table_name is required"));
    }
    validate_table_name(&table_name).map_err(invalid)?;
    check_table_header(headers.table_name.as_deref(), &table_name, "create_stream table_name")?;
    let table = resolve_table(state, &table_name)?;
    let format = match create.record_type.map(RecordType::try_from) {
        Some(Ok(RecordType::Json)) => RecordFormat::Json,
        Some(Ok(RecordType::Proto)) => {
            let bytes = create
                .descriptor_proto
                .as_ref()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("create_stream: descriptor_proto is required for record_type PROTO"))?;
            RecordFormat::Proto(records::build_descriptor(bytes).map_err(invalid)?)
        }
        Some(Ok(RecordType::Unspecified)) | None => {
            return Err(invalid("create_stream: record_type must be PROTO or JSON"))
        }
        Some(Err(_)) => return Err(invalid("create_stream: unknown record_type")),
    };
    let faults = state.take_faults(&table_name);
    if let Some(status) = faults.fail_create.clone() {
        return Err(status);
    }
    Ok(StreamSetup { table, format, faults })
}

/// Receiver-side state of one EphemeralStream.
struct Receiver {
    format: RecordFormat,
    max_record_bytes: usize,
    /// Benchmark mode (`ServerConfig::discard`): check, acknowledge, store nothing.
    discard: bool,
    p: Pending,
}

impl Receiver {
    fn check_size(&self, len: usize) -> Result<(), String> {
        if len > self.max_record_bytes {
            Err(format!(
                "record of {len} bytes exceeds the maximum record size of {} bytes",
                self.max_record_bytes
            ))
        } else {
            Ok(())
        }
    }

    /// Checks one record and, unless discarding, appends it as a JSON line.
    fn append_record(&mut self, kind: Kind, rec: &[u8]) -> Result<(), String> {
        match (kind, &self.format) {
            (Kind::Json, RecordFormat::Json) => {
                self.check_size(rec.len())?;
                // Checked even when discarding: a JSON record is a protobuf string.
                let s = std::str::from_utf8(rec).map_err(|e| format!("JSON record is not valid UTF-8: {e}"))?;
                if self.discard {
                    return Ok(());
                }
                records::append_json(&mut self.p.buf, s)
            }
            (Kind::Proto, RecordFormat::Proto(desc)) => {
                self.check_size(rec.len())?;
                if self.discard {
                    return Ok(());
                }
                records::append_proto(&mut self.p.buf, desc, rec)
            }
            (Kind::Json, RecordFormat::Proto(_)) => Err("record type mismatch: json_record on a PROTO stream".to_string()),
            (Kind::Proto, RecordFormat::Json) => Err("record type mismatch: proto_encoded_record on a JSON stream".to_string()),
        }
    }

    fn check_offset(&self, offset: Option<i64>) -> Result<i64, Status> {
        match offset {
            Some(o) if o == self.p.expected_offset => Ok(o),
            Some(o) => Err(invalid(format!(
                "unexpected offset_id {o}: expected {}",
                self.p.expected_offset
            ))),
            None => Err(invalid(format!(
                "missing offset_id: expected {}",
                self.p.expected_offset
            ))),
        }
    }

}

impl StreamReceiver for Receiver {
    type Msg = StreamRequest;
    type Out = EphemeralStreamResponse;

    fn process(&mut self, req: StreamRequest) -> Result<(), Status> {
        let records = match req {
            StreamRequest::Record(r) => {
                let off = self.check_offset(r.offset_id)?;
                let mark = self.p.buf.len();
                let res = match r.record() {
                    Some((kind, rec)) => self.append_record(kind, rec),
                    None => Err("request has no record".to_string()),
                };
                if let Err(reason) = res {
                    self.p.buf.truncate(mark);
                    return Err(invalid(format!("record at offset {off}: {reason}")));
                }
                1
            }
            StreamRequest::Batch(b) => {
                let off = self.check_offset(b.offset_id)?;
                let mark = self.p.buf.len();
                let mut n = 0u64;
                let res = match &b.batch {
                    Some(batch) => batch.records().enumerate().try_for_each(|(i, rec)| {
                        n += 1;
                        let rec = rec.map_err(|e| (i, format!("malformed batch: {e}")))?;
                        self.append_record(batch.kind, rec).map_err(|e| (i, e))
                    }),
                    None => Err((0, "batch request has no batch".to_string())),
                };
                if let Err((i, reason)) = res {
                    self.p.buf.truncate(mark);
                    return Err(invalid(format!(
                        "record at offset {off} (batch index {i}): {reason}"
                    )));
                }
                n
            }
            StreamRequest::Create(_) => {
                return Err(invalid(format!(
                    "request at offset {}: create_stream sent twice on the same stream",
                    self.p.expected_offset
                )))
            }
            StreamRequest::Empty => {
                return Err(invalid(format!(
                    "request at offset {}: empty request",
                    self.p.expected_offset
                )))
            }
        };
        self.p.accept(records);
        Ok(())
    }

    fn pending(&mut self) -> &mut Pending {
        &mut self.p
    }

    fn ack(offset: i64, _records: u64) -> EphemeralStreamResponse {
        ephemeral_ack(offset)
    }

    fn close_signal(&self, dur: Duration) -> EphemeralStreamResponse {
        EphemeralStreamResponse {
            payload: Some(RespPayload::CloseStreamSignal(CloseStreamSignal {
                duration: Some(prost_types::Duration { seconds: dur.as_secs() as i64, nanos: dur.subsec_nanos() as i32 }),
            })),
        }
    }
}

fn ephemeral_ack(offset: i64) -> EphemeralStreamResponse {
    EphemeralStreamResponse {
        payload: Some(RespPayload::IngestRecordResponse(IngestRecordResponse { durability_ack_up_to_offset: Some(offset) })),
    }
}

async fn run_stream(
    state: Arc<State>,
    headers: CallHeaders,
    mut inbound: Streaming<StreamRequest>,
    tx: RespTx,
) {
    let Some(first) = first_message(&state, &mut inbound, &tx).await else { return };
    let create = match first {
        StreamRequest::Create(c) => *c,
        _ => return refuse(&state, &tx, invalid("the first message of a stream must be create_stream")).await,
    };
    let setup = match setup_stream(&state, &headers, create) {
        Ok(s) => s,
        Err(status) => return refuse(&state, &tx, status).await,
    };
    if setup.faults.ack_before_create && tx.send(Ok(ephemeral_ack(0))).await.is_err() {
        return;
    }
    let created = EphemeralStreamResponse {
        payload: Some(RespPayload::CreateStreamResponse(CreateIngestStreamResponse {
            stream_id: Some(state.next_stream_id()),
        })),
    };
    if !accept(&state, &tx, created).await {
        return;
    }

    let StreamSetup { table, format, faults } = setup;
    let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
    let committer = tokio::spawn(run_committer(
        state.clone(),
        table,
        crx,
        tx.clone(),
        AckFaults::of(&faults),
        |offset, _records| ephemeral_ack(offset),
    ));

    let rx = Receiver {
        format,
        max_record_bytes: state.config.max_record_bytes,
        discard: state.config.discard,
        p: Pending::new(),
    };
    run_receiver(&state, rx, inbound, faults, tx, ctx, committer).await;
}

/// The `EphemeralStream` method (the Zerobus service's only one), for [`tonic::server::Grpc`].
struct Method(Arc<State>);

impl tonic::server::StreamingService<StreamRequest> for Method {
    type Response = EphemeralStreamResponse;
    type ResponseStream = ReceiverStream<Result<EphemeralStreamResponse, Status>>;
    type Future = BoxFuture<'static, Result<tonic::Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: tonic::Request<Streaming<StreamRequest>>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { Ok(ephemeral_stream(state, request)) })
    }
}

/// Serves a gRPC call to the Zerobus service: `EphemeralStream`, or UNIMPLEMENTED.
pub(crate) async fn serve_call(state: Arc<State>, req: http::Request<Incoming>) -> Result<http::Response<tonic::body::Body>, Infallible> {
    if req.uri().path() != EPHEMERAL_STREAM_PATH {
        return Ok(Status::unimplemented(format!("{} is not implemented", req.uri().path())).into_http());
    }
    let max_decoding = state.config.max_record_bytes + 64 * 1024;
    let mut grpc = tonic::server::Grpc::new(StreamCodec).apply_max_message_size_config(Some(max_decoding), Some(usize::MAX));
    Ok(grpc.streaming(Method(state), req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(discard: bool) -> Receiver {
        Receiver { format: RecordFormat::Json, max_record_bytes: 1 << 20, discard, p: Pending::new() }
    }

    /// An EphemeralStreamRequest's bytes: an IngestRecordRequest (field 2) or, with `batch`, an
    /// IngestRecordBatchRequest with a JSON batch (field 3), carrying `record` at offset 0.
    /// Written by hand: prost's `String` fields cannot carry the invalid UTF-8 the test needs.
    fn request(batch: bool, record: &[u8]) -> StreamRequest {
        let mut inner = vec![0x08, 0x00]; // offset_id 0
        if batch {
            let mut list = vec![0x0a, record.len() as u8];
            list.extend_from_slice(record);
            inner.extend([0x1a, list.len() as u8]);
            inner.extend(list);
        } else {
            inner.extend([0x1a, record.len() as u8]);
            inner.extend_from_slice(record);
        }
        let mut msg = vec![if batch { 0x1a } else { 0x12 }, inner.len() as u8];
        msg.extend(inner);
        StreamRequest::decode(bytes::Bytes::from(msg)).unwrap()
    }

    #[test]
    fn json_records_must_be_utf8_even_when_discarded() {
        for discard in [true, false] {
            for batch in [false, true] {
                let mut rx = receiver(discard);
                let err = rx.process(request(batch, b"{\"a\":\"\xff\"}")).unwrap_err();
                assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
                assert!(err.message().contains("not valid UTF-8"), "{}", err.message());
                assert!(rx.process(request(batch, b"{\"a\":1}")).is_ok(), "the same offset, valid: accepted");
            }
        }
    }
}
