//! Headers from a JavaScript function: when a physical stream opens, the stream asks its JS side
//! (through the progress notification, never by calling into JS from a runtime thread) and waits
//! for `zerobus_stream_headers_reply`.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use zerobus_core::auth::{Headers, HeadersFuture, HeadersProvider};
use zerobus_core::{ErrorCode, ZerobusError};

use crate::notify::Notifier;

type Reply = std::result::Result<Headers, ZerobusError>;

/// The pending request (at most one: a stream opens one physical stream at a time).
#[derive(Default)]
struct Pending {
    last_id: u32,
    waiting: Option<(u32, oneshot::Sender<Reply>)>,
}

pub(crate) struct JsHeaders {
    pending: Mutex<Pending>,
    notifier: Arc<Notifier>,
}

impl JsHeaders {
    pub(crate) fn new(notifier: Arc<Notifier>) -> JsHeaders {
        JsHeaders { pending: Mutex::new(Pending::default()), notifier }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the request waiting for headers (0: none).
    pub(crate) fn wanted(&self) -> u32 {
        self.lock().waiting.as_ref().map_or(0, |(id, _)| *id)
    }

    /// Answers request `id`; false if it is not the one waiting (answered, timed out or replaced).
    pub(crate) fn reply(&self, id: u32, reply: Reply) -> bool {
        let mut p = self.lock();
        match p.waiting.take() {
            Some((want, tx)) if want == id => {
                let _ = tx.send(reply);
                true
            }
            other => {
                p.waiting = other;
                false
            }
        }
    }
}

impl HeadersProvider for JsHeaders {
    /// Refused headers: the function is asked once more (it may have rotated its token).
    fn invalidate(&self, _table: &str, _refused: &Headers) -> bool {
        true
    }

    fn headers(&self, _table: &str) -> HeadersFuture {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.lock();
            p.last_id = p.last_id.wrapping_add(1).max(1);
            let id = p.last_id;
            p.waiting = Some((id, tx)); // an older request's receiver is gone (its open timed out)
        }
        self.notifier.fire();
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(ZerobusError::new(ErrorCode::StreamClosed, "the stream was freed while waiting for headers")))
        })
    }
}

/// Parses the JS side's answer: a JSON object of string values.
pub(crate) fn parse_headers(json: &[u8]) -> Reply {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_slice(json)
        .map_err(|e| ZerobusError::invalid(format!("headers function must return an object of strings: {e}")))?;
    Ok(map.into_iter().collect())
}
