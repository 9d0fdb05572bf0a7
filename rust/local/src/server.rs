//! Accept loop: one port, HTTP/1.1 + HTTP/2 (h2c or TLS with ALPN h2/http1.1), routing gRPC
//! requests (content-type application/grpc*) to the Zerobus service or, for paths under
//! `/arrow.flight.protocol.FlightService/`, to the Flight service; the rest goes to the HTTP API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tonic::codegen::Service;

use crate::flight_proto::flight_service_server::FlightServiceServer;

use crate::flight::FlightIngestService;
use crate::http_api::{self, Body};
use crate::state::State;

/// Loads a PEM cert chain + key and builds a rustls (ring) acceptor offering h2 and http/1.1.
pub(crate) fn tls_acceptor(cert_path: &str, key_path: &str) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("cannot read TLS certificate {cert_path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse TLS certificate {cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {cert_path}"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("cannot read TLS private key {key_path}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS config: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The gRPC services served on the port (the Zerobus service is [`crate::stream::serve_call`]).
#[derive(Clone)]
struct Grpc {
    flight: FlightServiceServer<FlightIngestService>,
}

const FLIGHT_PREFIX: &str = "/arrow.flight.protocol.FlightService/";

async fn dispatch(state: Arc<State>, mut grpc: Grpc, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let is_grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        if req.uri().path().starts_with(FLIGHT_PREFIX) {
            grpc.flight.call(req).await
        } else {
            crate::stream::serve_call(state, req).await
        }
    } else {
        Ok(http_api::handle(state, req).await)
    }
}

async fn serve_conn<I>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: I,
    state: Arc<State>,
    grpc: Grpc,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| dispatch(state.clone(), grpc.clone(), req));
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = crate::state::shutdown_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let grpc = Grpc {
        // FlightData above max_message_bytes is rejected by the service with INVALID_ARGUMENT;
        // this transport limit only bounds what gets buffered before that check.
        flight: FlightServiceServer::new(FlightIngestService::new(state.clone()))
            .max_decoding_message_size(4 * crate::flight::MAX_FLIGHT_DATA_BYTES)
            .max_encoding_message_size(usize::MAX),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .initial_stream_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(64 * 1024 * 1024)
        .max_frame_size(1024 * 1024)
        .max_send_buf_size(1024 * 1024)
        .max_concurrent_streams(10_000);
    let builder = Arc::new(builder);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = crate::state::shutdown_requested(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => {
                let (sock, _peer) = match res {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = sock.set_nodelay(true);
                let builder = builder.clone();
                let state = state.clone();
                let grpc = grpc.clone();
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            let accept = acceptor.accept(sock);
                            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), accept).await {
                                serve_conn(builder, TokioIo::new(stream), state, grpc, shutdown).await
                            }
                        }
                        None => serve_conn(builder, TokioIo::new(sock), state, grpc, shutdown).await,
                    }
                });
            }
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    conns.abort_all();
}
