//! The gRPC side of mesh-echo: unary calls answered by hand-framed messages, enough for
//! routing tests without a code generator. A gRPC message on the wire is a 5-byte prefix
//! (compressed flag, big-endian length) and the protobuf bytes; the call's status comes in the
//! trailers (`grpc-status`, `grpc-message`).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::response::Response;
use http_body_util::BodyExt;

/// The health service's full method name.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

pub fn is_grpc(req: &Request<Body>) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// One length-prefixed, uncompressed gRPC message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The messages of a gRPC body, or `None` when the framing is cut short.
pub fn messages(mut body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
        out.push(body.get(5..5 + len)?.to_vec());
        body = &body[5 + len..];
    }
    Some(out)
}

/// Protobuf field 1 as a length-delimited value (a string or bytes field).
pub fn field1(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0a];
    let mut len = bytes.len();
    // Varint length.
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// The answer to a unary call: HealthCheckResponse{status: SERVING} for the health check,
/// else a message whose field 1 is `description` as JSON; status OK in the trailers.
pub fn answer(path: &str, description: &serde_json::Value) -> Response {
    let message = if path == HEALTH_CHECK {
        // Field 1 (status), varint 1 = SERVING.
        vec![0x08, 0x01]
    } else {
        field1(description.to_string().as_bytes())
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(axum::body::Bytes::from(frame(&message)))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut r = Response::new(Body::new(body));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let long = vec![7u8; 300];
        let body = [frame(b"ab"), frame(&field1(&long))].concat();
        let got = messages(&body).unwrap();
        assert_eq!(got[0], b"ab");
        // 300 = 0xac 0x02 as a varint.
        assert_eq!(&got[1][..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(&got[1][3..], &long[..]);
        assert!(messages(&[0, 0, 0, 0, 9, 1]).is_none());
    }
}
