//! Which certificate authorities TLS connections trust: the built-in Mozilla roots (webpki-roots),
//! the operating system's store, and CA certificates the caller gives (PEM).
//!
//! The operating system's store, per platform:
//! - Linux and other Unix: `SSL_CERT_FILE` and/or `SSL_CERT_DIR` when set (they replace the
//!   distribution bundle, as with OpenSSL), else the distribution bundle and directory
//!   (`/etc/ssl/certs/ca-certificates.crt`, `/etc/pki/tls/certs/ca-bundle.crt`, ...).
//! - Windows: the system's "ROOT" store (certificates an administrator or group policy installed).
//! - macOS: the Security framework cannot be linked by the cross-built macOS library, so the
//!   keychains are read with `/usr/bin/security find-certificate` (System and system-roots
//!   keychains: where MDM and administrators install corporate CAs), plus `SSL_CERT_FILE`,
//!   `SSL_CERT_DIR` and `/etc/ssl/cert.pem`. Per-certificate trust settings are not evaluated.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::error::{Result, ZerobusError};

/// The trusted roots of one SDK, and where they came from (for logs and errors).
#[derive(Clone)]
pub struct Trust {
    pub roots: Arc<RootCertStore>,
    /// Certificates taken from the operating system's store.
    pub os_certificates: usize,
    /// Certificates taken from the caller's PEM.
    pub extra_certificates: usize,
}

impl Trust {
    /// Built-in roots + the OS store + `extra_pem` (PEM certificates; an error if it holds none
    /// or a malformed one).
    pub fn load(extra_pem: Option<&[u8]>) -> Result<Trust> {
        let mut store = RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let os = os_certificates();
        let (os_added, _) = store.add_parsable_certificates(os);
        let mut extra_added = 0;
        if let Some(pem) = extra_pem {
            let certs = parse_pem(pem)?;
            for c in certs {
                store.add(c).map_err(|e| ZerobusError::invalid(format!("caCertificates: unusable certificate: {e}")))?;
                extra_added += 1;
            }
        }
        Ok(Trust { roots: Arc::new(store), os_certificates: os_added, extra_certificates: extra_added })
    }

    /// A rustls client config trusting these roots (ring, TLS 1.2 and 1.3), offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ZerobusError::invalid(format!("TLS config: {e}")))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(cfg)
    }
}

/// Every certificate in `pem`; refuses input with none, or with a malformed one.
pub fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| ZerobusError::invalid(format!("caCertificates: not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ZerobusError::invalid(
            "caCertificates holds no certificate (expected PEM: -----BEGIN CERTIFICATE----- ...)",
        ));
    }
    Ok(certs)
}

#[cfg(not(target_os = "macos"))]
fn os_certificates() -> Vec<CertificateDer<'static>> {
    // Errors (an unreadable file, a bad certificate) leave out what could not be read; the
    // built-in roots and the caller's certificates still apply.
    rustls_native_certs::load_native_certs().certs
}

#[cfg(target_os = "macos")]
fn os_certificates() -> Vec<CertificateDer<'static>> {
    let mut out = Vec::new();
    let mut add_file = |path: &std::path::Path| {
        if let Ok(bytes) = std::fs::read(path) {
            out.extend(CertificateDer::pem_slice_iter(&bytes).filter_map(|c| c.ok()));
        }
    };
    let file = std::env::var_os("SSL_CERT_FILE");
    let dirs = std::env::var_os("SSL_CERT_DIR");
    if let Some(f) = &file {
        add_file(std::path::Path::new(f));
    }
    if let Some(d) = &dirs {
        for dir in std::env::split_paths(d) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    add_file(&e.path());
                }
            }
        }
    }
    if file.is_none() && dirs.is_none() {
        add_file(std::path::Path::new("/etc/ssl/cert.pem"));
        for keychain in [
            "/Library/Keychains/System.keychain",
            "/System/Library/Keychains/SystemRootCertificates.keychain",
        ] {
            let out_cmd = std::process::Command::new("/usr/bin/security")
                .args(["find-certificate", "-a", "-p", keychain])
                .stderr(std::process::Stdio::null())
                .output();
            if let Ok(o) = out_cmd {
                out.extend(CertificateDer::pem_slice_iter(&o.stdout).filter_map(|c| c.ok()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_refused_and_builtin_roots_are_always_there() {
        assert!(parse_pem(b"").is_err());
        assert!(parse_pem(b"hello").unwrap_err().message.contains("no certificate"));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem(broken).is_err());
        let t = Trust::load(None).unwrap();
        assert!(t.roots.len() >= webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(t.extra_certificates, 0);
    }
}
