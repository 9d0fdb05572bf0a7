//! Ingesting into a stream: the non-blocking `try_*` forms, the async forms that wait for
//! capacity, Arrow IPC and record batches, and the checks every request passes (record type,
//! sizes, JSON shape, in-flight limits) before it gets its offset in the landing zone.

use std::time::Duration;

use bytes::Bytes;

use super::{options, Wire, ZerobusStream};
use crate::batch::Batch;
use crate::error::{ErrorCode, Result, ZerobusError};
use crate::payload::Payload;
use crate::proto::RecordType;

impl ZerobusStream {
    // ---- ingestion: non-blocking forms ------------------------------------------------------

    /// Queues one protobuf-encoded record; returns its logical offset. Fails with
    /// `Backpressure` when `max_inflight_records` are in flight.
    pub fn try_ingest_proto_bytes(&self, record: Bytes) -> Result<i64> {
        self.try_push(Payload::Proto(record)).map_err(|(e, _)| e)
    }
    /// Queues one JSON record (UTF-8 text of one JSON object).
    pub fn try_ingest_json_bytes(&self, record: Bytes) -> Result<i64> {
        self.try_push(Payload::Json(record)).map_err(|(e, _)| e)
    }
    /// Queues protobuf records as one batch request (one logical offset for the batch; a batch
    /// too big for one message of `max_message_bytes` becomes several, one offset each).
    pub fn try_ingest_proto_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::ProtoBatch(records.into())).map_err(|(e, _)| e)
    }
    /// Queues JSON records as one batch request (split like protobuf batches).
    pub fn try_ingest_json_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.try_push(Payload::JsonBatch(records.into())).map_err(|(e, _)| e)
    }

    /// Queues an already built payload (any form); the non-blocking primitive behind the rest.
    pub fn try_push(&self, payload: Payload) -> std::result::Result<i64, (ZerobusError, Payload)> {
        if self.too_big(&payload) {
            let whole = payload.clone();
            return self.try_push_many(vec![payload]).map_err(|(e, _)| (e, whole));
        }
        // An array, not a Vec: no allocation per record on this hot path.
        self.enqueue([payload], Limits::Lenient).map_err(|(e, [p])| (e, p))
    }

    /// Queues single-record requests (consecutive offsets) all or none: every record is checked,
    /// and the in-flight limits hold for the whole lot, with no exception for an idle stream
    /// (callers fall back to one request at a time). Returns the last offset.
    pub fn try_push_each(&self, payloads: Vec<Payload>) -> std::result::Result<i64, (ZerobusError, Vec<Payload>)> {
        self.enqueue(payloads, Limits::Strict)
    }

    /// Queues several requests atomically (consecutive offsets); returns the last offset. A
    /// batch too big for one message becomes consecutive batch requests, each within the limit.
    pub fn try_push_many(&self, payloads: Vec<Payload>) -> std::result::Result<i64, (ZerobusError, Vec<Payload>)> {
        if payloads.iter().any(|p| self.too_big(p)) {
            let limit = self.shared.opts.message_limit(false);
            let fitted = payloads.iter().flat_map(|p| if self.too_big(p) { split_batch(p, limit) } else { vec![p.clone()] }).collect();
            return self.enqueue(fitted, Limits::Lenient);
        }
        self.enqueue(payloads, Limits::Lenient)
    }

    /// A JSON/protobuf batch whose request would exceed the message limit.
    fn too_big(&self, p: &Payload) -> bool {
        matches!(p, Payload::ProtoBatch(r) | Payload::JsonBatch(r) if batch_message_len(r) > self.shared.opts.message_limit(false))
    }

    /// The one enqueue path: checks, limits, offsets; gives the payloads back on failure.
    fn enqueue<C>(&self, payloads: C, limits: Limits) -> std::result::Result<i64, (ZerobusError, C)>
    where
        C: AsRef<[Payload]> + IntoIterator<Item = Payload>,
    {
        if payloads.as_ref().is_empty() {
            return Err((ZerobusError::invalid("nothing to ingest"), payloads));
        }
        for p in payloads.as_ref() {
            if let Err(e) = self.check(p) {
                return Err((e, payloads));
            }
        }
        let n: usize = payloads.as_ref().iter().map(Payload::record_count).sum();
        let bytes: usize = payloads.as_ref().iter().map(Payload::byte_len).sum();
        let mut st = self.shared.lock();
        if let Some(e) = &st.failed {
            let e = ZerobusError::new(ErrorCode::StreamFailed, format!("stream failed earlier: {e}"));
            return Err((e, payloads));
        }
        if st.closing {
            return Err((ZerobusError::new(ErrorCode::StreamClosed, "stream is closed"), payloads));
        }
        // A request larger than a limit is still accepted when nothing else is in flight.
        let opts = &self.shared.opts;
        if !st.limits_lifted
            && (st.inflight_records > 0 || limits == Limits::Strict)
            && (st.inflight_records + n > opts.max_inflight_records || st.inflight_bytes + bytes > opts.max_inflight_bytes)
        {
            let e = ZerobusError::new(
                ErrorCode::Backpressure,
                format!(
                    "{} records / {} bytes in flight (max_inflight_records {}, max_inflight_bytes {})",
                    st.inflight_records, st.inflight_bytes, opts.max_inflight_records, opts.max_inflight_bytes
                ),
            );
            return Err((e, payloads));
        }
        let offset = st.push(payloads, n, bytes);
        let waker = if st.ready { st.sender_waker.take() } else { None };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(offset)
    }

    fn check(&self, payload: &Payload) -> Result<()> {
        let flight = matches!(self.shared.wire, Wire::Flight(_));
        if flight != matches!(payload, Payload::Arrow(_)) {
            return Err(ZerobusError::invalid(if flight {
                "an Arrow stream takes Arrow record batches (ingest_ipc_batch / ingest_batch)"
            } else {
                "Arrow batches need an Arrow stream (create_arrow_stream)"
            }));
        }
        if let Payload::Arrow(a) = payload {
            return check_arrow(a, self.shared.opts.max_record_bytes);
        }
        let want_json = self.shared.table.record_type == RecordType::Json;
        let is_json = matches!(payload, Payload::Json(_) | Payload::JsonBatch(_));
        if want_json != is_json {
            return Err(ZerobusError::invalid(format!(
                "this stream takes {} records, got {}",
                if want_json { "JSON" } else { "protobuf" },
                if is_json { "JSON" } else { "protobuf" }
            )));
        }
        let max = self.shared.opts.max_record_bytes;
        let fit = self.shared.opts.message_limit(false).saturating_sub(options::MESSAGE_OVERHEAD + options::PER_RECORD_OVERHEAD);
        let count = payload.record_count();
        if count == 0 {
            return Err(ZerobusError::invalid("a batch needs at least one record"));
        }
        let which = |i: usize| if count > 1 { format!(" {i} of the batch") } else { String::new() };
        // The longest record decides; only a refusal looks for the record to name.
        if payload.longest_record() > max.min(fit) {
            for (i, r) in payload.record_slices().enumerate() {
                if r.len() > max {
                    return Err(ZerobusError::invalid(format!(
                        "record{} is {} bytes, more than max_record_bytes ({max})",
                        which(i),
                        r.len()
                    )));
                }
                if r.len() > fit {
                    return Err(ZerobusError::invalid(format!(
                        "record{} is {} bytes: it does not fit in one message of max_message_bytes ({})",
                        which(i),
                        r.len(),
                        self.shared.opts.message_limit(false)
                    )));
                }
            }
        }
        if is_json {
            for (i, r) in payload.record_slices().enumerate() {
                let Ok(text) = std::str::from_utf8(r) else {
                    return Err(ZerobusError::invalid(format!("JSON record{} is not valid UTF-8", which(i))));
                };
                if !is_json_object_text(text) {
                    let shown: String = text.chars().take(40).collect();
                    return Err(ZerobusError::invalid(format!(
                        "JSON record{} must be one JSON object ({{...}}), got {shown:?}{}",
                        which(i),
                        if text.chars().count() > 40 { "..." } else { "" }
                    )));
                }
            }
        }
        Ok(())
    }

    // ---- ingestion: async forms that wait for capacity ----------------------------------------

    /// Queues a payload, waiting while `max_inflight_records` are in flight. Returns the logical offset
    /// (the record is not yet acknowledged: see [`wait_for_offset`](Self::wait_for_offset)).
    pub async fn push(&self, payload: Payload) -> Result<i64> {
        self.push_many(vec![payload]).await
    }
    pub async fn ingest_proto_bytes(&self, record: Bytes) -> Result<i64> {
        self.push(Payload::Proto(record)).await
    }
    pub async fn ingest_json_bytes(&self, record: Bytes) -> Result<i64> {
        self.push(Payload::Json(record)).await
    }
    pub async fn ingest_proto_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.push(Payload::ProtoBatch(records.into())).await
    }
    pub async fn ingest_json_bytes_batch(&self, records: Vec<Bytes>) -> Result<i64> {
        self.push(Payload::JsonBatch(records.into())).await
    }

    // ---- Arrow ------------------------------------------------------------------------------

    /// Queues the record batches of Arrow IPC stream bytes (schema message first) without decoding
    /// them: one request per record batch. Returns the offset of the last batch. Waits while the
    /// in-flight limits are reached.
    pub async fn ingest_ipc_batch(&self, ipc: Bytes) -> Result<i64> {
        let payloads = self.split_ipc(&ipc)?;
        self.push_many(payloads).await
    }

    /// Non-blocking form of [`ingest_ipc_batch`](Self::ingest_ipc_batch).
    pub fn try_ingest_ipc_batch(&self, ipc: Bytes) -> Result<i64> {
        let payloads = self.split_ipc(&ipc)?;
        self.try_push_many(payloads).map_err(|(e, _)| e)
    }

    /// Queues a RecordBatch (encoded to IPC once, here). Returns its offset.
    pub async fn ingest_batch(&self, batch: &arrow_array::RecordBatch) -> Result<i64> {
        let Wire::Flight(stream) = &self.shared.wire else {
            return Err(ZerobusError::invalid("Arrow batches need an Arrow stream (create_arrow_stream)"));
        };
        let limit = self.shared.opts.message_limit(true);
        let payloads = crate::arrow::encode_batch_within(&crate::arrow::wire_batch(batch, stream)?, stream, limit)?;
        self.push_many(payloads.into_iter().map(Payload::Arrow).collect()).await
    }

    /// The IPC stream's record batches as requests; a batch with a message over the limit is
    /// decoded and sent as row slices that fit (see [`crate::arrow::fit_message_limit`]).
    fn split_ipc(&self, ipc: &Bytes) -> Result<Vec<Payload>> {
        let Wire::Flight(stream) = &self.shared.wire else {
            return Err(ZerobusError::invalid("Arrow batches need an Arrow stream (create_arrow_stream)"));
        };
        let limit = self.shared.opts.message_limit(true);
        let mut out = Vec::new();
        if stream.reencodes() {
            // Dictionary columns to expand, or compression: decoded and encoded again.
            for b in crate::arrow::decode_ipc(ipc, stream.input.as_deref().unwrap_or(&stream.schema))? {
                out.extend(crate::arrow::encode_batch_within(&crate::arrow::wire_batch(&b, stream)?, stream, limit)?.into_iter().map(Payload::Arrow));
            }
            return Ok(out);
        }
        for p in crate::arrow::split_ipc_stream(ipc, stream)? {
            out.extend(crate::arrow::fit_message_limit(p, stream, limit)?.into_iter().map(Payload::Arrow));
        }
        Ok(out)
    }

    /// Queues payloads, waiting for capacity up to `submit_timeout_ms`.
    async fn push_many(&self, mut payloads: Vec<Payload>) -> Result<i64> {
        let mut rx = self.shared.progress.subscribe();
        let limit = Duration::from_millis(self.shared.opts.submit_timeout_ms);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.try_push_many(payloads) {
                Ok(o) => return Ok(o),
                Err((e, p)) if e.code == ErrorCode::Backpressure => {
                    payloads = p;
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(r) => r.map_err(|_| ZerobusError::new(ErrorCode::Internal, "stream task ended"))?,
                        Err(_) => {
                            return Err(ZerobusError::new(
                                ErrorCode::Timeout,
                                format!("no capacity within {limit:?} (submit_timeout_ms): {}", e.message),
                            ))
                        }
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

/// An upper bound of the encoded size of one batch request holding `records`.
fn batch_message_len(records: &Batch) -> usize {
    records.byte_len() + records.len() * options::PER_RECORD_OVERHEAD + options::MESSAGE_OVERHEAD
}

/// Cuts a JSON/protobuf batch into consecutive batches whose messages fit in `limit` (each
/// record fits on its own: `check` refuses larger ones). Records are not copied: handles are
/// cloned, packed lists sliced.
fn split_batch(payload: &Payload, limit: usize) -> Vec<Payload> {
    let budget = limit.saturating_sub(options::MESSAGE_OVERHEAD);
    match payload {
        Payload::JsonBatch(b) => b.split(budget, options::PER_RECORD_OVERHEAD).into_iter().map(Payload::JsonBatch).collect(),
        Payload::ProtoBatch(b) => b.split(budget, options::PER_RECORD_OVERHEAD).into_iter().map(Payload::ProtoBatch).collect(),
        other => vec![other.clone()],
    }
}

/// An Arrow request ends with its record batch (the offset travels with it) and is at most
/// 64 MiB (or `max_record_bytes`, if larger).
fn check_arrow(a: &crate::arrow::ArrowPayload, max_record_bytes: usize) -> Result<()> {
    if a.messages.is_empty() {
        return Err(ZerobusError::invalid("an Arrow request needs its record batch message"));
    }
    if a.byte_len() > max_record_bytes.max(64 * 1024 * 1024) {
        return Err(ZerobusError::invalid(format!("Arrow batch of {} bytes is more than 64 MiB", a.byte_len())));
    }
    Ok(())
}

/// Cheap shape check of a JSON record: after white space it starts with `{` and ends with `}`.
/// (Full syntax is the server's to check; this catches empty text, arrays, strings and numbers,
/// which would otherwise fail the whole stream.)
fn is_json_object_text(text: &str) -> bool {
    let t = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    t.len() >= 2 && t.starts_with('{') && t.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::{check_arrow, is_json_object_text};

    #[test]
    fn an_arrow_request_without_messages_is_refused() {
        // It would never be acknowledged: its offset travels with its record batch.
        let empty = crate::arrow::ArrowPayload { messages: std::sync::Arc::from([]), rows: 0 };
        let e = check_arrow(&empty, 1024).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        let one = crate::arrow::IpcMessage::new(bytes::Bytes::from_static(b"h"), bytes::Bytes::new());
        let ok = crate::arrow::ArrowPayload { messages: std::sync::Arc::from([one]), rows: 1 };
        assert!(check_arrow(&ok, 1024).is_ok());
    }

    #[test]
    fn json_records_must_look_like_objects() {
        for ok in ["{}", " {\"a\":1}\n", "{\"a\":[1,2]}"] {
            assert!(is_json_object_text(ok), "{ok:?}");
        }
        for bad in ["", "  ", "42", "[1]", "\"x\"", "null", "{", "}", "[]"] {
            assert!(!is_json_object_text(bad), "{bad:?}");
        }
    }
}

/// How the in-flight limits apply to an enqueue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Limits {
    /// A request over a limit is still accepted while nothing else is in flight (so that it can
    /// be sent at all).
    Lenient,
    /// The limits hold for the whole lot, also on an idle stream.
    Strict,
}
