//! The oracle: what the walker must do with any input (Ok or InvalidArgument, bounded
//! allocation, payloads that are slices of the input), and how a failure is reported.

#[allow(unused_imports)]
use super::*;

#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub(crate) cases: u64,
    pub(crate) schema_ok: u64,
    pub(crate) split_ok: u64,
    pub(crate) derived_split_ok: u64,
    pub(crate) payloads: u64,
    pub(crate) rewritten_headers: u64,
    /// Inputs rejected for one of the bugs fixed (see the regression tests).
    pub(crate) wide_unions: u64,
    pub(crate) expanding: u64,
}

pub(crate) fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn hex(b: &[u8]) -> String {
    let shown = &b[..b.len().min(4096)];
    let mut s: String = shown.iter().map(|x| format!("{x:02x}")).collect();
    if b.len() > shown.len() {
        s.push_str("...");
    }
    s
}

/// Checks the walker on one input; Err describes the violation.
pub(crate) fn check(input: &[u8], stream: &StreamSchema, stats: &mut Stats) -> Result<(), String> {
    stats.cases += 1;
    let budget = alloc_budget(input.len());

    let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| schema_from_ipc(input))));
    let schema = match r {
        Err(p) => return Err(format!("schema_from_ipc panicked: {}", panic_text(&*p))),
        Ok(r) => expect_invalid("schema_from_ipc", r, stats)?,
    };
    if peak > budget {
        return Err(format!("schema_from_ipc allocated {peak} bytes at peak for {} input bytes", input.len()));
    }

    let bytes = Bytes::copy_from_slice(input);
    let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| split_ipc_stream(&bytes, stream))));
    let parts = match r {
        Err(p) => return Err(format!("split_ipc_stream panicked: {}", panic_text(&*p))),
        Ok(r) => expect_invalid("split_ipc_stream", r, stats)?,
    };
    if peak > budget {
        return Err(format!("split_ipc_stream allocated {peak} bytes at peak for {} input bytes", input.len()));
    }
    if let Some(parts) = parts {
        stats.split_ok += 1;
        check_payloads(&bytes, stream, &parts, stats)
            .map_err(|e| format!("split_ipc_stream returned a bad payload: {e}"))?;
    }

    // As a stream is opened from IPC bytes: the schema read, a StreamSchema made of it, the same
    // bytes split against it.
    if let Some(schema) = schema {
        stats.schema_ok += 1;
        let derived = match catch_unwind(AssertUnwindSafe(|| StreamSchema::new(Arc::new(schema)))) {
            Ok(s) => s,
            Err(p) => return Err(format!("StreamSchema::new(schema_from_ipc(..)) panicked: {}", panic_text(&*p))),
        };
        let (r, peak) = peak_alloc(|| catch_unwind(AssertUnwindSafe(|| split_ipc_stream(&bytes, &derived))));
        let parts = match r {
            Err(p) => return Err(format!("split_ipc_stream (derived schema) panicked: {}", panic_text(&*p))),
            Ok(r) => expect_invalid("split_ipc_stream (derived schema)", r, stats)?,
        };
        if peak > budget {
            return Err(format!(
                "split_ipc_stream (derived schema) allocated {peak} bytes at peak for {} input bytes",
                input.len()
            ));
        }
        if let Some(parts) = parts {
            stats.derived_split_ok += 1;
            check_payloads(&bytes, &derived, &parts, stats)
                .map_err(|e| format!("split_ipc_stream (derived schema) returned a bad payload: {e}"))?;
        }
    }
    Ok(())
}

pub(crate) fn expect_invalid<T>(what: &str, r: ZResult<T>, stats: &mut Stats) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == ErrorCode::InvalidArgument => {
            if e.message.contains("more than 128 children") {
                stats.wide_unions += 1;
            } else if e.message.contains("Apparent size too large") || e.message.contains("carry more dictionaries") {
                stats.expanding += 1;
            }
            Ok(None)
        }
        Err(e) => Err(format!("{what} returned {:?} instead of InvalidArgument: {}", e.code, e.message)),
    }
}

/// A payload is the dictionaries its batch needs (the stream's ids, each once) and then the
/// batch; every body, and every header that was not rewritten, is a slice of the input; a
/// payload's slices do not overlap; the batches' slices add up to at most the input.
pub(crate) fn check_payloads(
    input: &Bytes,
    stream: &StreamSchema,
    parts: &[ArrowPayload],
    stats: &mut Stats,
) -> Result<(), String> {
    let base = input.as_ptr() as usize;
    let within = |b: &Bytes| -> Option<Range<usize>> {
        let p = b.as_ptr() as usize;
        (b.is_empty() || (p >= base && p + b.len() <= base + input.len())).then(|| {
            let s = p.wrapping_sub(base).min(input.len());
            s..s + b.len()
        })
    };
    let stream_ids = declared_dict_ids(&stream.message);
    if parts.is_empty() {
        return Err("Ok with no payload".into());
    }
    let mut batch_bytes = 0usize;
    for (pi, p) in parts.iter().enumerate() {
        stats.payloads += 1;
        let Some((batch, dicts)) = p.messages.split_last() else {
            return Err(format!("payload {pi} has no message"));
        };
        if dicts.len() > stream_ids.len() {
            return Err(format!(
                "payload {pi} carries {} dictionaries, the schema declares {}",
                dicts.len(),
                stream_ids.len()
            ));
        }
        let mut ranges = Vec::new();
        let mut seen_ids = Vec::new();
        for (mi, m) in p.messages.iter().enumerate() {
            let msg = arrow_ipc::root_as_message(&m.header)
                .map_err(|e| format!("payload {pi} message {mi}: header does not parse: {e}"))?;
            if usize::try_from(msg.bodyLength()).ok() != Some(m.body.len()) {
                return Err(format!(
                    "payload {pi} message {mi}: body of {} bytes, header says {}",
                    m.body.len(),
                    msg.bodyLength()
                ));
            }
            let body = within(&m.body)
                .ok_or_else(|| format!("payload {pi} message {mi}: body is not a slice of the input"))?;
            ranges.push(body);
            match within(&m.header) {
                Some(h) => ranges.push(h),
                None if mi + 1 < p.messages.len() => stats.rewritten_headers += 1,
                None => return Err(format!("payload {pi}: record batch header is not a slice of the input")),
            }
            if mi + 1 < p.messages.len() {
                let d = msg
                    .header_as_dictionary_batch()
                    .ok_or_else(|| format!("payload {pi} message {mi} is not a dictionary batch"))?;
                if d.isDelta() || !stream_ids.contains(&d.id()) || seen_ids.contains(&d.id()) {
                    return Err(format!(
                        "payload {pi} message {mi}: dictionary id {} (delta {}) vs stream ids {stream_ids:?}",
                        d.id(),
                        d.isDelta()
                    ));
                }
                seen_ids.push(d.id());
            }
        }
        let rb = arrow_ipc::root_as_message(&batch.header).unwrap();
        let rb =
            rb.header_as_record_batch().ok_or_else(|| format!("payload {pi}: last message is not a record batch"))?;
        if i64::try_from(p.rows).ok() != Some(rb.length()) {
            return Err(format!("payload {pi}: rows {} but the header says {}", p.rows, rb.length()));
        }
        ranges.sort_by_key(|r| r.start);
        if ranges.windows(2).any(|w| w[0].end > w[1].start) {
            return Err(format!("payload {pi}: overlapping slices {ranges:?}"));
        }
        let in_input: usize = ranges.iter().map(|r| r.len()).sum();
        if in_input > input.len() || p.byte_len() < in_input {
            return Err(format!(
                "payload {pi}: byte_len {} / {in_input} in the input, input is {}",
                p.byte_len(),
                input.len()
            ));
        }
        batch_bytes += batch.header.len() + batch.body.len();
    }
    if batch_bytes > input.len() {
        return Err(format!("record batches add up to {batch_bytes} bytes, input is {}", input.len()));
    }
    Ok(())
}

pub(crate) fn fail(seed: u64, case: &str, input: &[u8], err: &str) -> ! {
    panic!(
        "\nIPC fuzz failure (ZEROBUS_FUZZ_SEED={seed:#x}): {err}\ncase: {case}\ninput ({} bytes): {}\n",
        input.len(),
        hex(input)
    );
}
