//! The answers of the mesh conformance tests' echo image (`echo-advanced`, Istio's echo
//! server): `Key=value` lines instead of JSON, which the suite's client prints under
//! `[N body]` and the suite reads back with regular expressions (`conformance/utils/echo`).
//!
//! The fields and their order are the image's: `ServiceVersion`, `ServicePort`, `Host`, `URL`
//! (the request URI), `Method`, `Proto`, `IP` (the caller's), `Alpn` when TLS negotiated one,
//! one `RequestHeader=Name:value` per header value (names in Go's canonical form, `Host`
//! apart as Go keeps it), `Hostname` (the pod's name) and `StatusCode`. Over gRPC
//! (`proto.EchoTestService/Echo`) the same lines are the `message` of the `EchoResponse`.

use serde_json::Value;

/// The gRPC service of the image's gRPC port (its `echo.proto`).
pub const GRPC_SERVICE: &str = "/proto.EchoTestService/";

/// A header name as Go's `textproto.CanonicalMIMEHeaderKey` writes it: each dash-separated
/// word capitalised (`x-forwarded-for` → `X-Forwarded-For`).
pub fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The answer's lines for a request described by `description` (mesh-echo's JSON), received
/// on `port` by a backend of version `version`, answered with `status`.
pub fn text(description: &Value, port: u16, version: &str, status: u16) -> String {
    use std::fmt::Write;
    let s = |k: &str| description[k].as_str().unwrap_or("");
    let mut out = String::new();
    let _ = writeln!(out, "ServiceVersion={version}");
    let _ = writeln!(out, "ServicePort={port}");
    let _ = writeln!(out, "Host={}", s("host"));
    let _ = writeln!(out, "URL={}", s("path"));
    let _ = writeln!(out, "Method={}", s("method"));
    let _ = writeln!(out, "Proto={}", s("proto"));
    let ip = s("peer")
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "IP={ip}");
    if let Some(alpn) = description["tls"]["negotiatedProtocol"]
        .as_str()
        .filter(|a| !a.is_empty())
    {
        let _ = writeln!(out, "Alpn={alpn}");
    }
    let mut headers: Vec<(String, &Value)> = description["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "host" && !k.starts_with(':'))
        .map(|(k, v)| (canonical(k), v))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, values) in headers {
        for v in values.as_array().into_iter().flatten() {
            let _ = writeln!(out, "RequestHeader={name}:{}", v.as_str().unwrap_or(""));
        }
    }
    let _ = writeln!(out, "Hostname={}", s("pod"));
    let _ = writeln!(out, "StatusCode={status}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_the_image_writes_them() {
        let d = serde_json::json!({"host": "echo", "path": "/v1?x=1", "method": "GET",
            "proto": "HTTP/1.1", "peer": "198.19.0.3:41234", "pod": "echo-v1-abc",
            "headers": {"host": ["echo"], "x-b": ["2"], "user-agent": ["c"], "x-a": ["1", "3"]}});
        assert_eq!(
            text(&d, 8080, "v1", 200),
            "ServiceVersion=v1\nServicePort=8080\nHost=echo\nURL=/v1?x=1\nMethod=GET\n\
             Proto=HTTP/1.1\nIP=198.19.0.3\nRequestHeader=User-Agent:c\nRequestHeader=X-A:1\n\
             RequestHeader=X-A:3\nRequestHeader=X-B:2\nHostname=echo-v1-abc\nStatusCode=200\n"
        );
        assert_eq!(canonical("x-forwarded-FOR"), "X-Forwarded-For");
    }
}
