//! One gRPC call on the channel: our own request body ([`RequestBody`], so record bytes reach
//! HTTP/2 without being copied) and tonic's response decoding, as `tonic::client::Grpc` does it.

use std::future::poll_fn;

use tonic::codegen::http::{self, header, HeaderMap, HeaderValue};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tower_service::Service;

use super::sender::RequestBody;
use crate::net::transport::connect_error;
use crate::codec::{Incoming, ResponseDecoder};
use crate::error::ZerobusError;

/// Headers gRPC sets itself, dropped from a request's metadata as tonic does (a `user-agent` is
/// kept: the channel appends its own to it).
const RESERVED: [&str; 5] = ["te", "content-type", "grpc-message", "grpc-message-type", "grpc-status"];

/// Waits until the channel can take a call (connecting if needed).
pub(super) async fn ready(channel: &mut Channel) -> Result<(), ZerobusError> {
    poll_fn(|cx| channel.poll_ready(cx)).await.map_err(|e| connect_error(&e))
}

/// Starts a call to `path` with `metadata` and `body`; returns the server's messages once the
/// response headers arrived (a trailers-only error response is the error).
pub(super) async fn start(
    channel: &mut Channel,
    path: &'static str,
    metadata: MetadataMap,
    body: RequestBody,
    flight: bool,
) -> Result<Streaming<Incoming>, Status> {
    let mut headers: HeaderMap = metadata.into_headers();
    for h in RESERVED {
        headers.remove(h);
    }
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let mut request = http::Request::new(tonic::body::Body::new(body));
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::from_static(path); // the channel adds scheme and authority
    *request.headers_mut() = headers;

    let response = channel.call(request).await.map_err(|e| Status::from_error(Box::new(e)))?;
    // Nothing but identity is offered (no grpc-accept-encoding), so nothing else is accepted.
    if let Some(e) = response.headers().get("grpc-encoding").filter(|e| e.as_bytes() != b"identity") {
        return Err(Status::unimplemented(format!("the server compressed its response ({e:?}), which this client does not ask for")));
    }
    let decoder = ResponseDecoder { flight };
    match Status::from_header_map(response.headers()) {
        Some(s) if s.code() != Code::Ok => Err(s),
        Some(_) => Ok(Streaming::new_empty(decoder, response.into_body())),
        None => {
            let status = response.status();
            Ok(Streaming::new_response(decoder, response.into_body(), status, None, None))
        }
    }
}

/// A status the server sent (its trailers), rather than one made here from a local error (a
/// connection, HTTP/2 or decoding error carries its cause as the source).
pub(super) fn from_server(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_none()
}
