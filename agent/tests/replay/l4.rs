//! The conformance suite's TCP and UDP checks (`tcp.MakeTCPRequestAndExpectEventuallyValidResponse`,
//! `tcp.ExpectEchoResponse`, `udp.ExpectEchoResponse*`), made the way its helpers make them
//! against the echo server's TCP and UDP protocols (mesh-echo's `l4`).

#![allow(dead_code)] // Each test crate that includes this uses part of it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// How long one check may take before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(5);

/// Upstream's probe datagram.
const UDP_PROBE: &str = "gateway-api-conformance-udp-echo";

/// A TCP check at `addr`: plain, or over TLS with `tls` (config and server name). `expected`
/// is a `tcp.ExpectedResponse` (Go field names); empty, any backend's answer will do
/// (`ExpectEchoResponse`, which sends only TEST). The answering pod, when it holds.
pub async fn tcp(
    addr: &str,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    expected: &Value,
) -> Result<String, String> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match tls {
            None => converse(tcp, expected).await,
            Some((config, name)) => {
                let server = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("{name}: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(server, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                converse(stream, expected).await
            }
        }
    };
    tokio::time::timeout(DEADLINE, connect)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    expected: &Value,
) -> Result<String, String> {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut ask = async |command: &str, line: &mut String| -> Result<(), String> {
        if !command.is_empty() {
            w.write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(|e| format!("write {command}: {e}"))?;
        }
        line.clear();
        r.read_line(line)
            .await
            .map_err(|e| format!("read after {command:?}: {e}"))?;
        Ok(())
    };
    ask("", &mut line).await?;
    if line != mesh_echo::l4::WELCOME {
        return Err(format!("welcome message {line:?}"));
    }
    let full = expected.as_object().is_some_and(|o| !o.is_empty());
    if full {
        ask("PING", &mut line).await?;
        if line != "PONG\n" {
            return Err(format!("PING answered {line:?}"));
        }
        ask("IS_TLS", &mut line).await?;
        let want = expected["BackendIsTLS"].as_bool().unwrap_or(false);
        if line.trim_end() != want.to_string() {
            return Err(format!(
                "IS_TLS answered {:?}, expected {want}",
                line.trim_end()
            ));
        }
    }
    ask("TEST", &mut line).await?;
    let got: Value =
        serde_json::from_str(&line).map_err(|e| format!("TEST answered {line:?}: {e}"))?;
    let pod = got["pod"].as_str().unwrap_or("");
    if pod.is_empty() {
        return Err(format!("TEST answer without a pod: {line:?}"));
    }
    if !full {
        return Ok(pod.to_string());
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if text(&got, "namespace") != text(expected, "Namespace") {
        return Err(format!(
            "namespace {:?}, expected {:?}",
            text(&got, "namespace"),
            text(expected, "Namespace")
        ));
    }
    let backend = text(expected, "Backend");
    if !pod.starts_with(&format!("{backend}-")) {
        return Err(format!("answered by pod {pod}, expected one of {backend}"));
    }
    let sni = got.pointer("/tls/serverName").and_then(Value::as_str);
    let hostname = text(expected, "Hostname");
    if !hostname.is_empty() && sni != Some(hostname.as_str()) {
        return Err(format!(
            "the backend saw server name {sni:?}, expected {hostname:?}"
        ));
    }
    Ok(pod.to_string())
}

/// A UDP check at `addr`: the probe datagram answered, by the expected Service and namespace
/// when `expected` (a `udp.ExpectedResponse`) names them. The answering pod (empty when the
/// answer is no JSON and nothing was expected of it).
pub async fn udp(addr: &str, expected: &Value) -> Result<String, String> {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| e.to_string())?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .send(UDP_PROBE.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .map_err(|_| "no answer within 2s".to_string())?
        .map_err(|e| format!("receive: {e}"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (service, namespace) = (text(expected, "Service"), text(expected, "Namespace"));
    let parsed: Result<Value, String> = serde_json::from_slice(&buf[..n])
        .map_err(|e| format!("answer {:?}: {e}", String::from_utf8_lossy(&buf[..n])));
    if service.is_empty() && namespace.is_empty() {
        return Ok(parsed.map(|v| text(&v, "pod")).unwrap_or_default());
    }
    let got = parsed?;
    for (field, want) in [("service", service), ("namespace", namespace)] {
        if !want.is_empty() && text(&got, field) != want {
            return Err(format!(
                "{field} {:?}, expected {want:?} (pod {})",
                text(&got, field),
                text(&got, "pod")
            ));
        }
    }
    Ok(text(&got, "pod"))
}
