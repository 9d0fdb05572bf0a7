//! [`Payload`]: the records of one request, as ingest queues them and the landing zone keeps them
//! (one protobuf or JSON record, a batch of them, or one Arrow record batch as IPC messages).

use bytes::Bytes;

use crate::arrow::ArrowPayload;
use crate::batch::Batch;

/// Records of one request. Cloning is O(1) (refcounts only).
#[derive(Clone, Debug)]
pub enum Payload {
    Proto(Bytes),
    Json(Bytes),
    ProtoBatch(Batch),
    JsonBatch(Batch),
    /// One Arrow record batch (with the dictionaries it needs) as IPC messages.
    Arrow(ArrowPayload),
}

impl Payload {
    /// Records (rows, for Arrow) in the request.
    pub fn record_count(&self) -> usize {
        match self {
            Payload::Proto(_) | Payload::Json(_) => 1,
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.len(),
            Payload::Arrow(a) => a.rows,
        }
    }
    pub fn byte_len(&self) -> usize {
        match self {
            Payload::Proto(b) | Payload::Json(b) => b.len(),
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.byte_len(),
            Payload::Arrow(a) => a.byte_len(),
        }
    }
    /// The same request with its bytes copied into memory of its own (no caller buffer held).
    pub fn copied(&self) -> Payload {
        let copy = |b: &Bytes| Bytes::copy_from_slice(b);
        match self {
            Payload::Proto(b) => Payload::Proto(copy(b)),
            Payload::Json(b) => Payload::Json(copy(b)),
            Payload::ProtoBatch(r) => Payload::ProtoBatch(r.copied()),
            Payload::JsonBatch(r) => Payload::JsonBatch(r.copied()),
            Payload::Arrow(a) => Payload::Arrow(ArrowPayload {
                messages: a
                    .messages
                    .iter()
                    .map(|m| crate::arrow::IpcMessage { header: copy(&m.header), body: copy(&m.body), shared: m.shared })
                    .collect(),
                rows: a.rows,
            }),
        }
    }

    /// Every record of a protobuf / JSON request, in order (empty for Arrow), borrowed.
    pub fn record_slices(&self) -> crate::batch::Slices<'_> {
        match self {
            Payload::Proto(b) | Payload::Json(b) => crate::batch::Slices::Handles(std::slice::from_ref(b).iter()),
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.slices(),
            Payload::Arrow(_) => crate::batch::Slices::Handles([].iter()),
        }
    }

    /// The longest record's length (0 for Arrow).
    pub fn longest_record(&self) -> usize {
        match self {
            Payload::Proto(b) | Payload::Json(b) => b.len(),
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.longest(),
            Payload::Arrow(_) => 0,
        }
    }

    /// Every record of a protobuf / JSON request, in order (empty for Arrow), as handles.
    pub fn records(&self) -> Vec<Bytes> {
        match self {
            Payload::Proto(b) | Payload::Json(b) => vec![b.clone()],
            Payload::ProtoBatch(r) | Payload::JsonBatch(r) => r.to_vec(),
            Payload::Arrow(_) => Vec::new(),
        }
    }
}
