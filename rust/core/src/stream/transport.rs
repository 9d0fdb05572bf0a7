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
        let tls = e
            .downcast_ref::<rustls::Error>()
            .or_else(|| e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref::<rustls::Error>()));
        if let Some(t) = tls {
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
}
