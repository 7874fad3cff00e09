//! Answers the proxy makes itself (404, 500, 503, 504, 400), and the gRPC form a gRPC caller
//! gets them in: HTTP 200 with `grpc-status` and `grpc-message`, as Envoy sends them.

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use crate::body::{full, Body};

/// Marks a response the proxy made itself (not a backend's), so gRPC callers get it in gRPC form.
#[derive(Clone, Copy)]
pub struct LocalReply;

pub fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = status;
    r.extensions_mut().insert(LocalReply);
    r
}

/// A gRPC request: its answer must carry a `grpc-status`, not just an HTTP status.
pub fn is_grpc(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Rewrites a local reply to a gRPC request as a trailers-only gRPC response: HTTP 200 with
/// `grpc-status` and `grpc-message` and no body, the form gRPC clients read (and Envoy sends).
pub fn grpc_local_reply(http: StatusCode, message: &str) -> Response<Body> {
    let status = mesh_model::grpc::status_for_http(http.as_u16());
    let mut r = Response::new(full(Bytes::new()));
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(status));
    let encoded = percent_encode(message.trim_end());
    if let Ok(v) = HeaderValue::try_from(encoded) {
        headers.insert("grpc-message", v);
    }
    r
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays as is.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local reply to a gRPC caller, in gRPC form.
pub async fn to_grpc(resp: Response<Body>) -> Response<Body> {
    let http = resp.status();
    let message = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    grpc_local_reply(http, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("no route"), "no route");
        assert_eq!(percent_encode("100% é"), "100%25 %C3%A9");
        assert_eq!(mesh_model::grpc::status_for_http(404), 12);
        assert_eq!(mesh_model::grpc::status_for_http(504), 14);
    }
}
