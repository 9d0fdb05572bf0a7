//! Proves the zero-copy data path: 1 MiB records ingested through the C ABI (pointer + length +
//! release callback) reach the HTTP/2 layer without any copy of their bytes, the gRPC encoding
//! included — also records replayed after a forced recovery. A counting global allocator records
//! every allocation made by client threads (this thread and the SDK runtime); the local server
//! runs in its own runtime whose threads are not counted. A copy of a record would need a
//! record-sized allocation (or a share of a bigger one): there are none, and all client
//! allocations together stay under 1% of the record bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prost::Message;
use zerobus_bun::*;

const MIB: usize = 1024 * 1024;
/// Allocations at least this big are "record sized" (a record copy would be one).
const BIG: usize = MIB / 2;

struct Counting;
static ENABLED: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if !ENABLED.load(Ordering::Relaxed) || SERVER_THREAD.with(|s| s.get()) {
        return;
    }
    BYTES.fetch_add(size, Ordering::Relaxed);
    if size >= BIG {
        BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

static RELEASED: AtomicUsize = AtomicUsize::new(0);
unsafe extern "C" fn on_release(_ctx: *mut c_void) {
    RELEASED.fetch_add(1, Ordering::SeqCst);
}

fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 2"), "{method} {path}: {out}");
    out
}

fn progress(s: *const ZerobusStreamHandle) -> ZerobusProgress {
    let mut p = ZerobusProgress::default();
    assert_eq!(unsafe { zerobus_stream_progress(s, &mut p) }, 0);
    p
}

#[test]
fn one_mib_records_are_never_copied_on_the_client() {
    // Server in its own runtime, uncounted.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| SERVER_THREAD.with(|s| s.set(true)))
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("zerobus-zero-copy-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(dir.clone());
    let table = "main.default.big";
    let server = server_rt
        .block_on(async {
            let cfg: zerobus_local::ServerConfig = serde_json::from_value(serde_json::json!({
                "dataDir": dir, "tables": [table], "fsync": false
            }))
            .unwrap();
            tokio::spawn(zerobus_local::start(cfg)).await.unwrap()
        })
        .unwrap();
    let addr = server.addr();
    // Force one recovery: the first stream is dropped after 20 records, so everything it had not
    // acknowledged is replayed on a second stream.
    http(addr, "POST", "/control/faults", r#"{"dropAfterRecords": 20}"#);

    // message Big { optional bytes data = 1; }
    let descriptor = prost_types::DescriptorProto {
        name: Some("Big".into()),
        field: vec![prost_types::FieldDescriptorProto {
            name: Some("data".into()),
            number: Some(1),
            label: Some(prost_types::field_descriptor_proto::Label::Optional as i32),
            r#type: Some(prost_types::field_descriptor_proto::Type::Bytes as i32),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();

    let n = 48usize;
    let records: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut r = vec![0x0a, 0x80, 0x80, 0x40]; // field 1, length 1 MiB (varint 0x100000)
            r.resize(4 + MIB, b'a' + (i % 26) as u8);
            r
        })
        .collect();

    unsafe {
        let cfg = format!(r#"{{"endpoint": "http://{addr}"}}"#);
        let sdk = zerobus_sdk_new(cfg.as_ptr(), cfg.len());
        assert!(!sdk.is_null());
        let opts = format!(
            r#"{{"table": "{table}", "recordType": "proto", "headers": {{"authorization": "Bearer t"}}, "recoveryBackoffMs": 10}}"#
        );
        let s = zerobus_stream_open(sdk, opts.as_ptr(), opts.len(), descriptor.as_ptr(), descriptor.len(), std::ptr::null(), None, 0);
        assert!(!s.is_null());
        while progress(s).state == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(progress(s).state, 1, "stream did not open");

        ENABLED.store(true, Ordering::SeqCst);
        for (i, r) in records.iter().enumerate() {
            let off = zerobus_ingest_proto_bytes(s, r.as_ptr(), r.len(), Some(on_release), std::ptr::null_mut());
            assert_eq!(off, i as i64);
        }
        assert_eq!(zerobus_stream_wait_for_offset(s, n as i64 - 1, 60_000), 0);
        ENABLED.store(false, Ordering::SeqCst);

        let p = progress(s);
        assert!(p.streams_opened >= 2, "the fault should have forced a recovery (streams opened: {})", p.streams_opened);
        zerobus_stream_close(s);
        while progress(s).state != 4 {
            assert_ne!(progress(s).state, 5, "stream failed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        zerobus_stream_free(s);
        zerobus_sdk_free(sdk);
    }

    let record_bytes = n * MIB;
    let all = BYTES.load(Ordering::SeqCst);
    eprintln!(
        "{n} records x 1 MiB (replay included): client threads allocated {all} bytes ({:.2} bytes/record); record-sized allocations: {}",
        all as f64 / n as f64,
        BIG_ALLOCS.load(Ordering::SeqCst)
    );
    // Nothing on the client side allocates anything record sized, the gRPC encoding included
    // (large records go to HTTP/2 as their own chunks, not copied into frame buffers): 0 copies.
    assert_eq!(BIG_ALLOCS.load(Ordering::SeqCst), 0, "a record-sized allocation happened on the client");
    assert!(all < record_bytes / 100, "client allocated {all} bytes for {record_bytes} record bytes");
    assert_eq!(RELEASED.load(Ordering::SeqCst), n, "every record buffer is released exactly once");

    let file = std::fs::read_to_string(dir.join(format!("{table}.jsonl"))).unwrap();
    assert_eq!(file.lines().count(), n, "the server holds every record exactly once");
    server_rt.block_on(server.shutdown());
}

/// Removes the test's data directory even when an assertion fails.
struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
