//! `zerobus-local`: run a local Zerobus server until SIGINT/SIGTERM.

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
  -h, --help";

fn parse_args() -> Result<ServerConfig, String> {
    let mut cfg = ServerConfig {
        port: 50051,
        ..ServerConfig::default()
    };
    let mut args = std::env::args().skip(1);
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
            "--port" => {
                cfg.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--data-dir" => cfg.data_dir = value("--data-dir")?.into(),
            "--table" => cfg.tables.push(value("--table")?),
            "--auto-create-tables" => cfg.auto_create_tables = true,
            "--no-fsync" => cfg.fsync = false,
            "--discard" => cfg.discard = true,
            "--max-record-bytes" => {
                cfg.max_record_bytes = value("--max-record-bytes")?
                    .parse()
                    .map_err(|e| format!("--max-record-bytes: {e}"))?
            }
            "--tls-cert" => cfg.tls_cert_pem = Some(value("--tls-cert")?),
            "--tls-key" => cfg.tls_key_pem = Some(value("--tls-key")?),
            "--client-id" => cfg.client_id = Some(value("--client-id")?),
            "--client-secret" => cfg.client_secret = Some(value("--client-secret")?),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerobus-local: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match zerobus_local::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerobus-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "zerobus-local listening on {}", server.url());
        let _ = out.flush();
    }
    wait_for_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}
