//! Endpoint URLs, and what connection errors mean for recovery.

use std::error::Error as StdError;

use crate::error::{ErrorCode, Result, ZerobusError};

/// The endpoint as a URL: `http://` and `https://` are kept, a bare `host[:port]` means
/// `https://`, any other scheme is refused.
pub(crate) fn endpoint_url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    match e.split_once("://") {
        None if !e.is_empty() => Ok(format!("https://{e}")),
        Some((scheme, rest)) if !rest.is_empty() && (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) => {
            Ok(format!("{}://{rest}", scheme.to_ascii_lowercase()))
        }
        _ => Err(ZerobusError::invalid(format!(
            "endpoint must be https://host[:port], http://host[:port] (plaintext) or host[:port], got {endpoint:?}"
        ))),
    }
}

/// Describes a TLS certificate problem found anywhere in an error's source chain: retrying
/// cannot fix it, so the stream fails at once with this message.
pub(crate) fn tls_certificate_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = rustls_error(e) {
            if matches!(
                t,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertRevocationList(_)
            ) {
                return Some(format!("TLS certificate problem: {t}"));
            }
        }
        cur = e.source();
    }
    None
}

/// The rustls error `e` is, or holds inside (nested) `io::Error`s. An `io::Error`'s `source()`
/// skips the error it wraps (it returns that error's source), so the chain alone misses a
/// rustls error wrapped twice, as hyper-rustls wraps tokio-rustls' handshake error.
fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let inner: &'a (dyn StdError + 'static) = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// A failed gRPC call as an error, with certificate problems made non-retryable.
pub(crate) fn status_error(status: &tonic::Status) -> ZerobusError {
    match tls_certificate_problem(status) {
        Some(m) => ZerobusError::new(ErrorCode::Transport, m).retryable(false),
        None => ZerobusError::from_status(status),
    }
}

/// A connection failure as an error, with certificate problems made non-retryable.
pub(crate) fn connect_error(err: &(dyn StdError + 'static)) -> ZerobusError {
    match tls_certificate_problem(err) {
        Some(m) => ZerobusError::new(ErrorCode::Transport, m).retryable(false),
        None => ZerobusError::new(ErrorCode::Transport, format!("cannot connect: {}", chain(err))),
    }
}

/// An error and its sources, joined with ": " (tonic's own Display says only "transport error").
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint_url("https://a.b").unwrap(), "https://a.b");
        assert_eq!(endpoint_url("HTTP://127.0.0.1:5").unwrap(), "http://127.0.0.1:5");
        assert_eq!(endpoint_url("ws1.zerobus.example.com:443").unwrap(), "https://ws1.zerobus.example.com:443");
        for bad in ["ftp://x", "grpc://x", "https://", "", "  "] {
            assert_eq!(endpoint_url(bad).unwrap_err().code, ErrorCode::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn certificate_errors_are_found_in_the_chain() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let status = tonic::Status::from_error(Box::new(io));
        let e = status_error(&status);
        assert!(!e.retryable);
        assert!(e.message.contains("TLS certificate problem") && e.message.contains("UnknownIssuer"), "{}", e.message);
        let plain = tonic::Status::unavailable("down");
        assert!(status_error(&plain).retryable);
    }

    #[test]
    fn certificate_errors_wrapped_in_several_io_errors_are_found() {
        // hyper-rustls: io::Error::other(tokio-rustls' io::Error(rustls::Error)), inside the
        // HTTP client's connect error.
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let twice = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let wrapped: Box<dyn StdError + Send + Sync> = Box::new(twice);
        #[derive(Debug)]
        struct Connect(Box<dyn StdError + Send + Sync>);
        impl std::fmt::Display for Connect {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl StdError for Connect {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&*self.0)
            }
        }
        let m = tls_certificate_problem(&Connect(wrapped)).expect("found");
        assert!(m.contains("NotValidForName"), "{m}");
        assert!(tls_certificate_problem(&std::io::Error::other("no tls here")).is_none());
    }
}
