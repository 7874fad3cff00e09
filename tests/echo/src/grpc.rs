//! The gRPC side of mesh-echo: unary calls answered by hand-framed messages, enough for
//! routing tests without a code generator. A gRPC message on the wire is a 5-byte prefix
//! (compressed flag, big-endian length) and the protobuf bytes; the call's status comes in the
//! trailers (`grpc-status`, `grpc-message`).
//!
//! The conformance echo service (`gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`, from
//! echo-basic's `grpcecho.proto`) is answered as echo-basic answers it: `Echo` and `EchoTwo`
//! with an `EchoResponse` whose `assertions` name the method, the request's headers and
//! authority, and the pod (`Context`); `EchoThree`, unimplemented on purpose, with
//! UNIMPLEMENTED.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::response::Response;
use http_body_util::BodyExt;

/// The health service's full method name.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// The conformance echo service's path prefix.
pub const CONFORMANCE_SERVICE: &str = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/";

/// gRPC's UNIMPLEMENTED status code.
pub const UNIMPLEMENTED: u8 = 12;

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
    field(1, bytes)
}

/// A length-delimited protobuf field (string, bytes or message) numbered `number`.
pub fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 6);
    varint(&mut out, u64::from(number) << 3 | 2);
    varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The length-delimited fields of a protobuf message, in order, as (number, bytes); varint
/// and fixed-width fields are skipped. `None` when the message is cut short or malformed.
pub fn fields(mut message: &[u8]) -> Option<Vec<(u32, &[u8])>> {
    fn read_varint(b: &mut &[u8]) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (first, rest) = b.split_first()?;
            *b = rest;
            n |= u64::from(first & 0x7f) << shift;
            if first & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !message.is_empty() {
        let key = read_varint(&mut message)?;
        let number = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                read_varint(&mut message)?;
            }
            1 => message = message.get(8..)?,
            5 => message = message.get(4..)?,
            2 => {
                let len = usize::try_from(read_varint(&mut message)?).ok()?;
                out.push((number, message.get(..len)?));
                message = &message[len..];
            }
            _ => return None,
        }
    }
    Some(out)
}

/// echo-basic's `EchoResponse` for a call described by `description` (mesh-echo's JSON):
/// `assertions` = {fully_qualified_method, headers, authority, context {namespace, ingress,
/// service_name, pod}}.
pub fn echo_response(description: &serde_json::Value) -> Vec<u8> {
    let text = |k: &str| description[k].as_str().unwrap_or("");
    let mut assertions = field(1, text("path").as_bytes());
    for (name, values) in description["headers"].as_object().into_iter().flatten() {
        // gRPC metadata keys are lower case, however the description spells them.
        let name = name.to_ascii_lowercase();
        for v in values.as_array().into_iter().flatten() {
            let header = [
                field(1, name.as_bytes()),
                field(2, v.as_str().unwrap_or("").as_bytes()),
            ]
            .concat();
            assertions.extend(field(2, &header));
        }
    }
    assertions.extend(field(3, text("host").as_bytes()));
    let context = [
        field(1, text("namespace").as_bytes()),
        field(3, text("service").as_bytes()),
        field(4, text("pod").as_bytes()),
    ]
    .concat();
    assertions.extend(field(4, &context));
    field(1, &assertions)
}

/// The answer to a unary call: HealthCheckResponse{status: SERVING} for the health check,
/// the conformance echo service's answers (see the module's documentation), else a message
/// whose field 1 is `description` as JSON; status OK in the trailers.
pub fn answer(path: &str, description: &serde_json::Value) -> Response {
    let message = if path == HEALTH_CHECK {
        // Field 1 (status), varint 1 = SERVING.
        vec![0x08, 0x01]
    } else if let Some(method) = path.strip_prefix(CONFORMANCE_SERVICE) {
        match method {
            "Echo" | "EchoTwo" => echo_response(description),
            _ => return status_only(UNIMPLEMENTED, &format!("method {method} not implemented")),
        }
    } else {
        field1(description.to_string().as_bytes())
    };
    ok(&message)
}

/// The answer of echo-advanced's gRPC port: `proto.EchoTestService/Echo` answers an
/// `EchoResponse` whose `message` (field 1) is the answer's lines (`text`); the service's other
/// methods, and other services, UNIMPLEMENTED.
pub fn answer_advanced(path: &str, text: &str) -> Response {
    if path == HEALTH_CHECK {
        return ok(&[0x08, 0x01]);
    }
    match path.strip_prefix(crate::advanced::GRPC_SERVICE) {
        Some("Echo") => ok(&field1(text.as_bytes())),
        _ => status_only(UNIMPLEMENTED, &format!("method {path} not implemented")),
    }
}

/// One message and status OK in the trailers.
fn ok(message: &[u8]) -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(axum::body::Bytes::from(frame(message)))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut r = Response::new(Body::new(body));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    r
}

/// A trailers-only answer: no message, the status in the headers.
fn status_only(code: u8, message: &str) -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
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

    #[test]
    fn echo_responses_read_back() {
        let description = serde_json::json!({"path": "/p.S/Echo", "host": "h:80", "namespace": "ns", "pod": "pod-1", "service": "svc", "headers": {"version": ["one"]}});
        let response = echo_response(&description);
        let top = fields(&response).unwrap();
        assert_eq!(top[0].0, 1, "assertions");
        let assertions = fields(top[0].1).unwrap();
        assert_eq!(assertions[0], (1, &b"/p.S/Echo"[..]));
        let header = fields(assertions[1].1).unwrap();
        assert_eq!(header, vec![(1, &b"version"[..]), (2, &b"one"[..])]);
        assert_eq!(assertions[2], (3, &b"h:80"[..]));
        let context = fields(assertions[3].1).unwrap();
        assert_eq!(
            context,
            vec![(1, &b"ns"[..]), (3, &b"svc"[..]), (4, &b"pod-1"[..])]
        );
        // A varint field is skipped; a cut message is refused.
        assert_eq!(fields(&[0x08, 0x96, 0x01]).unwrap(), vec![]);
        assert!(fields(&[0x0a, 0x05, b'a']).is_none());
    }
}
