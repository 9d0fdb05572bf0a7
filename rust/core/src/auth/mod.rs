//! Request headers of each physical stream: OAuth client credentials with a token cache (the
//! default, [`oauth`]) or a caller-supplied provider.

mod oauth;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
pub use oauth::{workspace_id_from_endpoint, OAuthHeaders};

pub type Headers = Vec<(String, String)>;
pub type HeadersFuture = Pin<Box<dyn Future<Output = Result<Headers>> + Send>>;

/// Supplies the headers of each new physical stream (auth and any extra ones).
pub trait HeadersProvider: Send + Sync {
    fn headers(&self, table: &str) -> HeadersFuture;

    /// The server refused `refused` (UNAUTHENTICATED): forget them if cached. Returns true if
    /// asking again may give different headers (the open is then tried once more).
    fn invalidate(&self, _table: &str, _refused: &Headers) -> bool {
        false
    }

    /// Tokens this provider fetched from a token endpoint so far.
    fn tokens_fetched(&self) -> u64 {
        0
    }
}

/// Fixed headers, or a closure computing them.
pub struct FnHeaders<F>(pub F);

impl<F> HeadersProvider for FnHeaders<F>
where
    F: Fn(&str) -> Result<Headers> + Send + Sync,
{
    fn headers(&self, table: &str) -> HeadersFuture {
        let r = (self.0)(table);
        Box::pin(async move { r })
    }
}

pub type SharedHeadersProvider = Arc<dyn HeadersProvider>;
