//! Arrow Flight `DoPut` ingestion (`arrow.flight.protocol.FlightService/DoPut`).
//!
//! Wire protocol (one DoPut call = one stream on one table):
//! 1. First FlightData: `data_header` = an Arrow IPC Schema message (flatbuffer `Message` bytes,
//!    no continuation marker/length prefix), empty body. The table comes from the
//!    `x-databricks-zerobus-table-name` header, as the official client sends no
//!    `flight_descriptor`; a descriptor PATH [table], if sent, must agree with the header.
//!    Faults are taken here (as for create_stream).
//! 2. The server answers with a "ready" PutResult whose app_metadata is
//!    `{"ack_up_to_offset":-1,"ack_up_to_records":0,"close_stream_duration_ms":null}`.
//! 3. Then DictionaryBatch messages (app_metadata ignored) and RecordBatch messages whose
//!    app_metadata is `{"offset_id":N}`, N = 0, 1, 2, ... (one offset per RecordBatch message).
//! 4. Each commit (group commit, one write per commit) is acknowledged with a PutResult whose
//!    app_metadata is `{"ack_up_to_offset":N,"ack_up_to_records":R,"close_stream_duration_ms":null}`:
//!    N = last committed offset, R = rows committed on this stream.
//!
//! Rows are stored as JSON lines (see `rows_json`, explicit nulls) in the same table file as the
//! gRPC path. The same two-task design as `stream.rs` is used (receiver + committer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use crate::flight_proto::flight_descriptor::DescriptorType;
use crate::flight_proto::flight_service_server::FlightService;
use crate::flight_proto::{ActionType, Empty, FlightData, PutResult};
use arrow_ipc::{MessageHeader, MetadataVersion};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::faults::StreamFaults;
use crate::state::{validate_table_name, State, Table};
use crate::admit::{accept, check_auth, check_table_header, first_message, invalid, refuse, resolve_table, CallHeaders};
use crate::pipeline::{run_committer, run_receiver, AckFaults, Pending, StreamReceiver, COMMIT_QUEUE};

/// Upper bound of the FlightData the transport buffers before the size check (`max_message_bytes`
/// is the real limit).
pub(crate) const MAX_FLIGHT_DATA_BYTES: usize = 64 * 1024 * 1024;

type PutTx = mpsc::Sender<Result<PutResult, Status>>;

pub(crate) struct FlightIngestService {
    state: Arc<State>,
}

impl FlightIngestService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

fn unimplemented<T>(method: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{method} is not implemented by the local Zerobus server (only DoPut)"
    )))
}

/// `{"ack_up_to_offset":N,"ack_up_to_records":R,"close_stream_duration_ms":D|null}`
pub(crate) fn ack_json(offset: i64, records: u64, close_ms: Option<u64>) -> String {
    let close = close_ms.map_or_else(|| "null".to_string(), |d| d.to_string());
    format!(r#"{{"ack_up_to_offset":{offset},"ack_up_to_records":{records},"close_stream_duration_ms":{close}}}"#)
}

fn put_result(offset: i64, records: u64, close_ms: Option<u64>) -> PutResult {
    PutResult {
        app_metadata: ack_json(offset, records, close_ms).into(),
    }
}

#[tonic::async_trait]
impl FlightService for FlightIngestService {
    type DoPutStream = ReceiverStream<Result<PutResult, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let headers = CallHeaders::read(&self.state, request.metadata());
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(run_put(state, headers, request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        unimplemented("ListActions")
    }
}

struct PutSetup {
    table: Arc<Table>,
    schema: SchemaRef,
    faults: StreamFaults,
}

fn check_size(fd: &FlightData, max: usize) -> Result<(), String> {
    let len = fd.data_header.len() + fd.data_body.len();
    if len > max {
        Err(format!(
            "FlightData of {len} bytes (header + body) exceeds the maximum of {max} bytes (max_message_bytes)"
        ))
    } else {
        Ok(())
    }
}

fn setup_put(state: &State, headers: &CallHeaders, first: &FlightData) -> Result<PutSetup, Status> {
    check_auth(state, headers.authorization.as_deref())?;
    let table_header = headers.table_name.as_deref();
    // The table is named by the x-databricks-zerobus-table-name header (the official client sends
    // no flight_descriptor); a descriptor, when present, must be PATH [table] and agree with it.
    let table_name = match first.flight_descriptor.as_ref() {
        None => match table_header {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => {
                return Err(invalid(
                    "DoPut: no table: send the x-databricks-zerobus-table-name header (or a flight_descriptor PATH [table_name])",
                ))
            }
        },
        Some(desc) => {
            if desc.r#type != DescriptorType::Path as i32 {
                return Err(invalid("DoPut: flight_descriptor must be of type PATH with path [table_name]"));
            }
            let t = match desc.path.as_slice() {
                [t] if !t.is_empty() => t.clone(),
                [] => return Err(invalid("DoPut: flight_descriptor path is empty; expected [table_name]")),
                _ => {
                    return Err(invalid(format!(
                        "DoPut: flight_descriptor path must have exactly one element (the table name), got {:?}",
                        desc.path
                    )))
                }
            };
            check_table_header(table_header, &t, "flight_descriptor path")?;
            t
        }
    };
    validate_table_name(&table_name).map_err(invalid)?;
    check_size(first, state.config.max_message_bytes).map_err(invalid)?;
    let schema = decode_schema(&first.data_header).map_err(|e| invalid(format!("DoPut: first FlightData: {e}")))?;
    let table = resolve_table(state, &table_name)?;
    let faults = state.take_faults(&table_name);
    if let Some(status) = faults.fail_create.clone() {
        return Err(status);
    }
    Ok(PutSetup {
        table,
        schema,
        faults,
    })
}

fn decode_schema(header: &[u8]) -> Result<SchemaRef, String> {
    if header.is_empty() {
        return Err("data_header is empty; expected an Arrow IPC Schema message".to_string());
    }
    let msg = arrow_ipc::root_as_message(header)
        .map_err(|e| format!("data_header is not an Arrow IPC message: {e}"))?;
    let ipc_schema = msg.header_as_schema().ok_or_else(|| {
        format!(
            "data_header must be an Arrow IPC Schema message, got {}",
            header_name(msg.header_type())
        )
    })?;
    let schema = arrow_ipc::convert::try_fb_to_schema(ipc_schema).map_err(|e| format!("invalid Arrow schema: {e}"))?;
    Ok(Arc::new(schema))
}

fn header_name(h: MessageHeader) -> String {
    match h {
        MessageHeader::Schema => "Schema".to_string(),
        MessageHeader::DictionaryBatch => "DictionaryBatch".to_string(),
        MessageHeader::RecordBatch => "RecordBatch".to_string(),
        MessageHeader::Tensor => "Tensor".to_string(),
        MessageHeader::SparseTensor => "SparseTensor".to_string(),
        MessageHeader::NONE => "no header".to_string(),
        other => format!("{other:?}"),
    }
}

/// Checks that every buffer of an IPC batch lies within the body (the arrow-ipc decoder
/// panics otherwise).
fn check_buffers(batch: &arrow_ipc::RecordBatch<'_>, body_len: usize) -> Result<(), String> {
    if batch.length() < 0 {
        return Err(format!("negative row count {}", batch.length()));
    }
    let buffers = batch
        .buffers()
        .ok_or_else(|| "IPC RecordBatch has no buffers vector".to_string())?;
    for (i, b) in buffers.iter().enumerate() {
        let (off, len) = (b.offset(), b.length());
        let end = off.checked_add(len);
        if off < 0 || len < 0 || end.is_none_or(|e| e as u64 > body_len as u64) {
            return Err(format!(
                "buffer {i} (offset {off}, length {len}) lies outside the body of {body_len} bytes"
            ));
        }
    }
    if let Some(nodes) = batch.nodes() {
        for n in nodes.iter() {
            if n.length() < 0 || n.null_count() < 0 {
                return Err("negative field node length or null count".to_string());
            }
        }
    }
    Ok(())
}

/// Number of field nodes and buffers an IPC batch of `fields` must have (None = cannot tell).
fn expected_layout(fields: &[Arc<Field>], variadic: &mut std::collections::VecDeque<i64>) -> Option<(usize, usize)> {
    let mut nodes = 0usize;
    let mut buffers = 0usize;
    fn walk(
        dt: &DataType,
        nodes: &mut usize,
        buffers: &mut usize,
        variadic: &mut std::collections::VecDeque<i64>,
    ) -> Option<()> {
        use DataType::*;
        *nodes += 1;
        match dt {
            Null => {}
            Utf8 | Binary | LargeBinary | LargeUtf8 => *buffers += 3,
            Utf8View | BinaryView => {
                let n = usize::try_from(variadic.pop_front()?).ok()?;
                *buffers += 2 + n;
            }
            List(f) | LargeList(f) | Map(f, _) => {
                *buffers += 2;
                walk(f.data_type(), nodes, buffers, variadic)?;
            }
            ListView(f) | LargeListView(f) => {
                *buffers += 3;
                walk(f.data_type(), nodes, buffers, variadic)?;
            }
            FixedSizeList(f, _) => {
                *buffers += 1;
                walk(f.data_type(), nodes, buffers, variadic)?;
            }
            Struct(fs) => {
                *buffers += 1;
                for f in fs {
                    walk(f.data_type(), nodes, buffers, variadic)?;
                }
            }
            RunEndEncoded(a, b) => {
                *nodes -= 1;
                walk(a.data_type(), nodes, buffers, variadic)?;
                walk(b.data_type(), nodes, buffers, variadic)?;
            }
            Dictionary(_, _) => *buffers += 2,
            Union(_, _) => return None,
            _ => *buffers += 2,
        }
        Some(())
    }
    for f in fields {
        walk(f.data_type(), &mut nodes, &mut buffers, variadic)?;
    }
    Some((nodes, buffers))
}

/// Checks that the batch's structure (field nodes, buffers, variadic counts) matches `schema`.
fn check_layout(batch: &arrow_ipc::RecordBatch<'_>, schema: &Schema) -> Result<(), String> {
    let mut variadic: std::collections::VecDeque<i64> =
        batch.variadicBufferCounts().into_iter().flatten().collect();
    let Some((nodes, buffers)) = expected_layout(schema.fields(), &mut variadic) else {
        return Ok(());
    };
    let got_nodes = batch.nodes().map_or(0, |n| n.len());
    let got_buffers = batch.buffers().map_or(0, |b| b.len());
    if got_nodes != nodes || got_buffers != buffers || !variadic.is_empty() {
        return Err(format!(
            "schema mismatch: the batch has {got_nodes} field nodes and {got_buffers} buffers, \
             the stream schema ({} columns) needs {nodes} field nodes and {buffers} buffers",
            schema.fields().len()
        ));
    }
    Ok(())
}

/// Runs `f`, turning a panic inside the arrow decoder into an error.
fn no_panic<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "decoder panic".to_string());
            Err(format!("cannot decode: {msg}"))
        }
    }
}

fn parse_offset(app_metadata: &[u8]) -> Result<i64, String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        offset_id: Option<i64>,
    }
    if app_metadata.is_empty() {
        return Err(r#"missing app_metadata: expected JSON {"offset_id":N}"#.to_string());
    }
    let m: Meta = serde_json::from_slice(app_metadata)
        .map_err(|e| format!(r#"app_metadata is not JSON {{"offset_id":N}}: {e}"#))?;
    m.offset_id
        .ok_or_else(|| r#"app_metadata has no offset_id: expected JSON {"offset_id":N}"#.to_string())
}

/// Receiver-side state of one DoPut stream.
struct PutReceiver {
    state: Arc<State>,
    schema: SchemaRef,
    dictionaries: HashMap<i64, ArrayRef>,
    discard: bool,
    /// Rows (not messages) are the records here.
    p: Pending,
    /// What the committer acked last, announced with a close signal.
    acked: Arc<Acked>,
    max_message_bytes: usize,
}

impl PutReceiver {
    fn decode_batch(&self, fd: &FlightData, msg: &arrow_ipc::Message<'_>) -> Result<RecordBatch, String> {
        let batch = msg
            .header_as_record_batch()
            .ok_or_else(|| "invalid RecordBatch header".to_string())?;
        check_buffers(&batch, fd.data_body.len())?;
        check_layout(&batch, &self.schema)?;
        let body = Buffer::from(fd.data_body.clone());
        let version: MetadataVersion = msg.version();
        no_panic(|| {
            arrow_ipc::reader::RecordBatchDecoder::try_new(&body, batch, self.schema.clone(), &self.dictionaries, &version)
                .and_then(|d| d.with_require_alignment(false).read_record_batch())
                .map_err(|e| format!("cannot decode record batch: {e}"))
        })
    }

    fn read_dictionary(&mut self, fd: &FlightData, msg: &arrow_ipc::Message<'_>) -> Result<(), String> {
        let dict = msg
            .header_as_dictionary_batch()
            .ok_or_else(|| "invalid DictionaryBatch header".to_string())?;
        let data = dict.data().ok_or_else(|| "DictionaryBatch has no data".to_string())?;
        check_buffers(&data, fd.data_body.len())?;
        let body = Buffer::from(fd.data_body.clone());
        let version: MetadataVersion = msg.version();
        let schema = self.schema.clone();
        let dictionaries = &mut self.dictionaries;
        no_panic(|| {
            arrow_ipc::reader::read_dictionary(&body, dict, &schema, dictionaries, &version)
                .map_err(|e| format!("cannot decode dictionary batch (id {}): {e}", dict.id()))
        })
    }

}

impl StreamReceiver for PutReceiver {
    type Msg = FlightData;
    type Out = PutResult;

    fn process(&mut self, fd: FlightData) -> Result<(), Status> {
        let at = self.p.expected_offset;
        check_size(&fd, self.max_message_bytes).map_err(|e| invalid(format!("FlightData at offset {at}: {e}")))?;
        if fd.data_header.is_empty() {
            return Err(invalid(format!(
                "FlightData at offset {at}: empty data_header (expected a RecordBatch or DictionaryBatch IPC message)"
            )));
        }
        let msg = arrow_ipc::root_as_message(&fd.data_header)
            .map_err(|e| invalid(format!("FlightData at offset {at}: data_header is not an Arrow IPC message: {e}")))?;
        match msg.header_type() {
            MessageHeader::RecordBatch => {}
            MessageHeader::DictionaryBatch => {
                self.read_dictionary(&fd, &msg)
                    .map_err(|e| invalid(format!("dictionary batch before offset {at}: {e}")))?;
                self.state.dictionary_batches.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            MessageHeader::Schema => {
                // A repeated identical schema is harmless; a different one is not supported.
                let schema = decode_schema(&fd.data_header)
                    .map_err(|e| invalid(format!("FlightData at offset {at}: {e}")))?;
                if schema.fields() != self.schema.fields() {
                    return Err(invalid(format!(
                        "FlightData at offset {at}: schema mismatch: a DoPut stream has one schema \
                         (stream: {}; new: {})",
                        self.schema, schema
                    )));
                }
                return Ok(());
            }
            other => {
                return Err(invalid(format!(
                    "FlightData at offset {at}: unsupported IPC message {}",
                    header_name(other)
                )))
            }
        }
        let off = parse_offset(&fd.app_metadata)
            .map_err(|e| invalid(format!("record batch at offset {at}: {e}")))?;
        if off != at {
            return Err(invalid(format!("unexpected offset_id {off}: expected {at}")));
        }
        let batch = self
            .decode_batch(&fd, &msg)
            .map_err(|e| invalid(format!("record batch at offset {off}: {e}")))?;
        let rows = batch.num_rows() as u64;
        if !self.discard {
            let mark = self.p.buf.len();
            let buf = &mut self.p.buf;
            let res = no_panic(|| crate::rows_json::write_rows(&batch, buf).map_err(|e| format!("cannot convert rows to JSON: {e}")));
            if let Err(e) = res {
                self.p.buf.truncate(mark);
                return Err(invalid(format!("record batch at offset {off}: {e}")));
            }
        }
        self.p.accept(rows);
        Ok(())
    }

    fn pending(&mut self) -> &mut Pending {
        &mut self.p
    }

    fn ack(offset: i64, records: u64) -> PutResult {
        put_result(offset, records, None)
    }

    fn close_signal(&self, dur: Duration) -> PutResult {
        put_result(
            self.acked.offset.load(Ordering::Acquire),
            self.acked.rows.load(Ordering::Acquire),
            Some(dur.as_millis() as u64),
        )
    }
}

/// Acked state shared by the committer (writer) and the receiver (close signal).
struct Acked {
    offset: AtomicI64,
    rows: AtomicU64,
}

async fn run_put(state: Arc<State>, headers: CallHeaders, mut inbound: Streaming<FlightData>, tx: PutTx) {
    let Some(first) = first_message(&state, &mut inbound, &tx).await else { return };
    let setup = match setup_put(&state, &headers, &first) {
        Ok(s) => s,
        Err(status) => return refuse(&state, &tx, status).await,
    };
    drop(first);
    if setup.faults.ack_before_create && tx.send(Ok(put_result(0, 1, None))).await.is_err() {
        return;
    }
    if !accept(&state, &tx, put_result(-1, 0, None)).await {
        return;
    }

    let PutSetup { table, schema, faults } = setup;
    let acked = Arc::new(Acked {
        offset: AtomicI64::new(-1),
        rows: AtomicU64::new(0),
    });
    let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
    let committer = {
        let acked = acked.clone();
        tokio::spawn(run_committer(
            state.clone(),
            table,
            crx,
            tx.clone(),
            AckFaults { rows_behind: faults.rows_behind, ..AckFaults::of(&faults) },
            move |offset, rows| {
                acked.offset.store(offset, Ordering::Release);
                acked.rows.store(rows, Ordering::Release);
                put_result(offset, rows, None)
            },
        ))
    };

    let rx = PutReceiver {
        state: state.clone(),
        schema,
        dictionaries: HashMap::new(),
        discard: state.config.discard,
        p: Pending::new(),
        acked,
        max_message_bytes: state.config.max_message_bytes,
    };
    run_receiver(&state, rx, inbound, faults, tx, ctx, committer).await;
}
