//! The conformance echo server's TCP and UDP protocols (echo-basic's `tcpserver` and
//! `udpechoserver`), so the upstream TCPRoute, TLSRoute and UDPRoute checks can be replayed
//! against mesh-agent with the answers they expect.
//!
//! TCP: on connect (after the TLS handshake when the backend has a certificate) the server
//! sends `Gateway API Test TCP Server\n`, then answers each line: `PING` with `PONG`, `IS_TLS`
//! with `true` or `false`, `TEST` with one line of JSON naming the pod, namespace and service
//! and, over TLS, the handshake (`tls.serverName`, `version`, `negotiatedProtocol`, ...).
//! Other lines are ignored, as upstream does.
//!
//! UDP: every datagram is answered with `{"request", "namespace", "ingress", "service", "pod"}`.

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::{Args, Running};

/// What a TCP echo connection sends first.
pub const WELCOME: &str = "Gateway API Test TCP Server\n";

/// A command line longer than this closes the connection rather than growing a buffer.
const MAX_LINE: u64 = 64 * 1024;

/// Serve the TCP echo on `args.listen` (over TLS when `tls` is given).
pub async fn tcp(args: Args, tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let args = Arc::new(args);
    Ok(Box::pin(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (args, tls) = (args.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => converse(tcp, &args, None).await,
                    Some(acceptor) => {
                        let Some(stream) = crate::handshake(&acceptor, tcp).await else {
                            return;
                        };
                        let seen = tls_assertions(stream.get_ref().1);
                        converse(stream, &args, Some(seen)).await;
                    }
                }
            });
        }
    }))
}

/// The `tls` object of a TEST answer, with Go's names for versions and cipher suites.
fn tls_assertions(conn: &rustls::ServerConnection) -> serde_json::Value {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "",
    };
    // rustls says TLS13_AES_128_GCM_SHA256 where Go says TLS_AES_128_GCM_SHA256.
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let name = format!("{:?}", s.suite());
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name,
            }
        })
        .unwrap_or_default();
    json!({
        "version": version,
        "serverName": conn.server_name().unwrap_or(""),
        "negotiatedProtocol": conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
        "cipherSuite": suite,
    })
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    args: &Args,
    tls: Option<serde_json::Value>,
) {
    let is_tls = tls.is_some();
    let mut test = json!({
        "namespace": args.namespace,
        "ingress": "",
        "service": args.service,
        "pod": args.pod,
        "tcpport": args.listen.port().to_string(),
        "isTLS": is_tls,
    });
    if let Some(t) = tls {
        test["tls"] = t;
    }
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read.take(u64::MAX));
    if write.write_all(WELCOME.as_bytes()).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let limited = lines.get_mut();
        limited.set_limit(MAX_LINE);
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") {
            // Cut short by the limit or by the end of the stream.
            return;
        }
        let command = String::from_utf8_lossy(&line);
        let answer = match command.trim_end_matches(['\n', '\r']) {
            "TEST" => format!("{test}\n"),
            "IS_TLS" => format!("{is_tls}\n"),
            "PING" => "PONG\n".to_string(),
            _ => continue,
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Serve the UDP echo on `args.listen`.
pub async fn udp(args: Args) -> std::io::Result<Running> {
    let socket = tokio::net::UdpSocket::bind(args.listen).await?;
    Ok(Box::pin(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let answer = json!({
                "request": String::from_utf8_lossy(&buf[..n]),
                "namespace": args.namespace,
                "ingress": "",
                "service": args.service,
                "pod": args.pod,
            });
            let _ = socket.send_to(answer.to_string().as_bytes(), from).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EchoProtocol;

    #[tokio::test]
    async fn tcp_echo_speaks_the_conformance_protocol() {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", mesh_model::testing::free_port())
            .parse()
            .unwrap();
        let mut args = Args::new(addr, "tcp-backend-0", "infra");
        args.protocol = EchoProtocol::Tcp;
        args.service = "tcp-backend".into();
        let run = crate::serve(args).await.unwrap();
        let task = tokio::spawn(run);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(line, WELCOME);
        for (ask, want) in [("PING", "PONG"), ("nonsense\nIS_TLS", "false")] {
            w.write_all(format!("{ask}\n").as_bytes()).await.unwrap();
            line.clear();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line.trim_end(), want);
        }
        w.write_all(b"TEST\n").await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["pod"], "tcp-backend-0");
        assert_eq!(v["namespace"], "infra");
        assert_eq!(v["isTLS"], false);
        task.abort();
    }

    #[tokio::test]
    async fn udp_echo_answers_each_datagram() {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", mesh_model::testing::free_port())
            .parse()
            .unwrap();
        let mut args = Args::new(addr, "udp-0", "infra");
        args.protocol = EchoProtocol::Udp;
        args.service = "udp-svc".into();
        let task = tokio::spawn(crate::serve(args).await.unwrap());
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(addr).await.unwrap();
        client.send(b"probe").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["request"], "probe");
        assert_eq!(v["service"], "udp-svc");
        assert_eq!(v["pod"], "udp-0");
        task.abort();
    }
}
