//! `zerobus-local`: run a local Zerobus server until SIGINT/SIGTERM (or, with
//! `--exit-on-stdin-close`, until its standard input closes: the parent that started it is gone).
//!
//! The TypeScript SDK's `startLocalServer` runs this executable with `--config <json>
//! --ready-file <path> --exit-on-stdin-close` and waits for the ready file, which holds
//! `{"url":..}` once the server listens, `{"error":..}` if it could not start, and
//! `{"stopped":true}` once a shutdown has finished.

use std::process::ExitCode;

use zerobus_local::ServerConfig;

const USAGE: &str = "usage: zerobus-local [options]
  --host HOST              bind address (default 127.0.0.1)
  --port PORT              port (default 50051; 0 = ephemeral)
  --data-dir DIR           table files directory (default ./.zerobus-data)
  --table NAME             pre-register table catalog.schema.table (repeatable)
  --auto-create-tables     accept streams for unknown tables
  --no-fsync               do not fsync before acking
  --discard                benchmark mode: acknowledge without converting or storing records
  --max-record-bytes N     maximum record size (default 10485760)
  --tls-cert FILE          PEM certificate chain (with --tls-key: serve https)
  --tls-key FILE           PEM private key
  --client-id ID           require OAuth client credentials (with --client-secret)
  --client-secret SECRET
  --max-message-bytes N    largest FlightData message accepted (default 4194304)
  --token-ttl-secs N       lifetime of issued tokens (default 3600)
  --config JSON            every option as camelCase JSON (as startLocalServer takes); flags after it override
  --ready-file FILE        write {\"url\":..} there once listening ({\"error\":..} on failure, {\"stopped\":true} at exit)
  --exit-on-stdin-close    stop when standard input reaches end of file (or on SIGTERM; interrupts
                           are ignored: the parent process decides)
  -h, --help";

/// What the command line asks for besides the server configuration.
#[derive(Default)]
struct Run {
    ready_file: Option<std::path::PathBuf>,
    exit_on_stdin_close: bool,
}

fn parse_args(run: &mut Run) -> Result<ServerConfig, String> {
    let mut cfg = ServerConfig {
        port: 50051,
        ..ServerConfig::default()
    };
    let mut args = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--host" => cfg.host = value("--host")?,
            "--port" => cfg.port = num("--port", value("--port")?)?,
            "--data-dir" => cfg.data_dir = value("--data-dir")?.into(),
            "--table" => cfg.tables.push(value("--table")?),
            "--auto-create-tables" => cfg.auto_create_tables = true,
            "--no-fsync" => cfg.fsync = false,
            "--discard" => cfg.discard = true,
            "--max-record-bytes" => cfg.max_record_bytes = num(&flag, value(&flag)?)?,
            "--max-message-bytes" => cfg.max_message_bytes = num(&flag, value(&flag)?)?,
            "--token-ttl-secs" => cfg.token_ttl_secs = num(&flag, value(&flag)?)?,
            "--config" => {
                cfg = serde_json::from_str(&value("--config")?).map_err(|e| format!("--config: {e}"))?
            }
            "--ready-file" => run.ready_file = Some(value("--ready-file")?.into()),
            "--exit-on-stdin-close" => run.exit_on_stdin_close = true,
            "--tls-cert" => cfg.tls_cert_pem = Some(value("--tls-cert")?),
            "--tls-key" => cfg.tls_key_pem = Some(value("--tls-key")?),
            "--client-id" => cfg.client_id = Some(value("--client-id")?),
            "--client-secret" => cfg.client_secret = Some(value("--client-secret")?),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

/// Writes the ready file atomically (a temporary file renamed over it), so a reader never sees
/// half of it.
fn write_ready(run: &Run, value: serde_json::Value) {
    if let Some(path) = &run.ready_file {
        write_ready_to(path, &value);
    }
}

fn write_ready_to(path: &std::path::Path, value: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, value.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// `--ready-file` found before anything else is parsed, so that every failure (bad arguments, a
/// config that does not deserialize, a panic while starting) is reported there.
fn ready_file_arg() -> Option<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--ready-file") {
        Some("") => args.get(i + 1).map(Into::into),
        Some(v) => v.strip_prefix('=').map(Into::into),
        None => None,
    })
}

/// Until the server listens, a panic is written to the ready file as the reason it did not start.
fn report_startup_panics(path: Option<std::path::PathBuf>, started: &'static std::sync::atomic::AtomicBool) {
    let Some(path) = path else { return };
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !started.load(std::sync::atomic::Ordering::Acquire) {
            write_ready_to(&path, &serde_json::json!({ "error": format!("panic: {info}") }));
        }
        default(info);
    }));
}

/// Listens for the signals that stop the server, from the moment it is called: the server says
/// it is ready only after, so a signal right after the ready line finds its handler, not the
/// default action. The future resolves on SIGTERM (Unix) or, when `interrupts`, Ctrl-C. Without
/// `interrupts` (started by a parent that stops it by closing standard input) an interrupt is
/// caught and ignored: Ctrl-C in the parent's terminal reaches the whole process group, and the
/// parent may still be flushing its streams.
fn stop_signal(interrupts: bool) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    #[cfg(windows)]
    let mut int = tokio::signal::windows::ctrl_c().ok();
    async move {
        let interrupted = async {
            while let Some(i) = int.as_mut() {
                if i.recv().await.is_none() {
                    break;
                }
                if interrupts {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        #[cfg(unix)]
        let terminated = async {
            if let Some(t) = term.as_mut() {
                if t.recv().await.is_some() {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<()>();
        tokio::select! {
            _ = interrupted => {}
            _ = terminated => {}
        }
    }
}

/// Resolves when standard input reaches end of file (or fails): the parent closed it or exited.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Keeps freed memory for reuse (glibc): the HTTP/2 read buffers are up to a frame (1 MiB) each,
/// and glibc gave them back to the system and took them again, a page fault and a page clear per
/// 4 KiB received (15% of the server's CPU under `perf` in `proto100-batch1000`). Allocations
/// under 4 MiB come from the heap, and up to 16 MiB free at the top of a heap is kept. Settings
/// made through glibc's environment variables are left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    let user = |name: &str| std::env::var_os(name).is_some();
    if user("MALLOC_MMAP_THRESHOLD_") || user("MALLOC_TRIM_THRESHOLD_") || user("GLIBC_TUNABLES") {
        return;
    }
    // SAFETY: mallopt only sets allocator tunables; called before any other thread starts. A
    // refused value (0) leaves glibc's default in place.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("cannot start the tokio runtime").block_on(serve())
}

async fn serve() -> ExitCode {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut run = Run { ready_file: ready_file_arg(), ..Run::default() };
    report_startup_panics(run.ready_file.clone(), &STARTED);
    let cfg = match parse_args(&mut run) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerobus-local: {e}");
            write_ready(&run, serde_json::json!({ "error": e }));
            return ExitCode::from(2);
        }
    };
    let data_dir = cfg.data_dir.clone();
    let server = match zerobus_local::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerobus-local: {e}");
            write_ready(&run, serde_json::json!({ "error": e }));
            return ExitCode::FAILURE;
        }
    };
    STARTED.store(true, std::sync::atomic::Ordering::Release);
    let stop = stop_signal(!run.exit_on_stdin_close);
    write_ready(&run, serde_json::json!({ "url": server.url(), "pid": std::process::id() }));
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "zerobus-local listening on {} (data in {})", server.url(), data_dir.display());
        let _ = out.flush();
    }
    if run.exit_on_stdin_close {
        tokio::select! {
            _ = stop => {}
            _ = stdin_closed() => {}
        }
    } else {
        stop.await;
    }
    server.shutdown().await;
    write_ready(&run, serde_json::json!({ "stopped": true }));
    ExitCode::SUCCESS
}
