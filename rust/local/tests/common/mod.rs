//! Setup shared by the local server's integration tests (each test file uses part of it).
#![allow(dead_code)]

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zerobus_local::{LocalServer, ServerConfig};

pub const TABLE: &str = "main.default.events";

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tempdir() -> std::io::Result<TempDir> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("zerobus-local-test-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}

/// A server on a free port with `TABLE`, no fsync; `f` adjusts the config.
pub async fn server(dir: &TempDir, f: impl FnOnce(&mut ServerConfig)) -> LocalServer {
    let mut cfg = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        tables: vec![TABLE.to_string()],
        fsync: false,
        ..Default::default()
    };
    f(&mut cfg);
    zerobus_local::start(cfg).await.expect("start")
}

/// The lines of a table's file.
pub fn lines(dir: &TempDir, table: &str) -> Vec<String> {
    let path = dir.path().join(format!("{table}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The rows of a table's file, parsed.
pub fn rows(dir: &TempDir, table: &str) -> Vec<Value> {
    lines(dir, table)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Minimal HTTP/1.1 client (Connection: close). Returns (status, body).
pub async fn http1_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8(out).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub async fn http1(srv: &LocalServer, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let s = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    http1_on(s, method, path, headers, body).await
}

/// A control API call that must answer 200 with JSON.
pub async fn control(srv: &LocalServer, method: &str, path: &str, body: Value) -> Value {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let (status, text) = http1(srv, method, path, &[("Content-Type", "application/json")], &body).await;
    assert_eq!(status, 200, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap()
}
