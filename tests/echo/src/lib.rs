//! `mesh-echo`: the test and demo backend. Answers every request with JSON describing it
//! (`{path, host, method, proto, headers, namespace, pod}`, like the Gateway API conformance
//! echo server), so a test can see which backend it reached and what that backend received.
//! With `--tls-cert`/`--tls-key` it serves HTTPS instead and describes the connection under
//! `tls` (`version`, `serverName`, `negotiatedProtocol`, `peerCertificates`), as the
//! conformance echo server does. `?delay=<ms>` (or `?delay=1s`) delays the answer (for timeout tests), `x-echo-delay: <pod>=<ms>` delays only
//! the backend of that pod name (a slow mirror); every request is logged on stdout as
//! one JSON line (mirror tests read it). HTTP/1.1 and h2c (prior knowledge) on one port.
//!
//! `X-Echo-Set-Header: name:value,name2:value2` sets those headers on the answer (the
//! conformance echo server's way for tests of response header filters).
//!
//! `/retry/...?uuid=U&succeedAfter=N&responseCode=C` simulates a flaky backend as the
//! conformance echo server does: the first N requests with that uuid (per pod) answer C, later
//! ones the usual description. (Its other failure mode, a TCP reset when no responseCode is
//! given, is answered 400 here: hyper cannot reset a connection from a handler.)
//!
//! `/ws` with `Upgrade: websocket` is a WebSocket echo (see `ws`).
//!
//! gRPC (`content-type: application/grpc`): `grpc.health.v1.Health/Check` answers SERVING, and
//! every other method answers OK with one message whose field 1 (a string) is the same JSON
//! description, so GRPCRoute tests see which backend got which method (see `grpc`).
//!
//! `--protocol tcp` and `--protocol udp` speak the conformance echo server's TCP and UDP
//! protocols instead (see `l4`), for TCPRoute, TLSRoute and UDPRoute tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tower::ServiceExt;

pub mod advanced;
pub mod client;
pub mod grpc;
pub mod l4;
pub mod probe;
mod ws;

/// Who the backend says it is, and where it listens.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mesh-echo",
    about = "Answers with JSON describing the request it received"
)]
pub struct Args {
    /// Address to listen on, e.g. 127.0.0.11:9080.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Pod name to report.
    #[arg(long, default_value = "mesh-echo")]
    pub pod: String,
    /// Namespace to report.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Every request received, for tests that run the backend in-process.
    #[arg(skip)]
    pub seen: Option<Arc<std::sync::Mutex<Vec<serde_json::Value>>>>,
    /// Serve HTTPS with this certificate (PEM), as the conformance echo server does when
    /// given TLS_SERVER_CERT; answers then describe the connection under `tls`.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The same, in memory (for tests that run the backend in-process).
    #[arg(skip)]
    pub tls: Option<TlsIdentity>,
    /// Do not print each request on stdout (backends run in-process by the hundred).
    #[arg(skip)]
    pub quiet: bool,
    /// What the backend speaks: the JSON echo over HTTP, or the conformance echo server's TCP
    /// or UDP protocol (see [`l4`]).
    #[arg(long, value_enum, default_value_t = EchoProtocol::Http)]
    pub protocol: EchoProtocol,
    /// The Service name the TCP and UDP echoes report (the conformance pods' SERVICE_NAME).
    #[arg(long, default_value = "")]
    pub service: String,
    /// How HTTP and gRPC answers describe the request: mesh-echo's JSON (echo-basic's fields),
    /// or the `Key=value` lines of the mesh conformance tests' echo image (see [`advanced`]).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// The version an `echo-advanced` answer reports (`ServiceVersion`).
    #[arg(long, default_value = "")]
    pub service_version: String,
    /// Append a line per HTTP request to this file, in the container log format of the
    /// kubelet (CRI: `TIME stdout F LINE`), saying what echo-basic logs: `Echoing back request
    /// made to PATH to client (PEER)`; mirror tests read it as the pod's log.
    #[arg(long)]
    pub log_file: Option<std::path::PathBuf>,
    /// Report header names as Go's net/http keys them (`X-Forwarded-For`), as echo-basic does
    /// (the conformance suite reads some by that key), instead of as received (lower case in
    /// HTTP/2, hyper's in HTTP/1.1).
    #[arg(long)]
    pub go_header_names: bool,
}

/// How answers describe what was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `{path, host, method, proto, headers, namespace, pod, ...}` (echo-basic's fields).
    #[default]
    Json,
    /// The `Key=value` lines of `echo-advanced` (Istio's echo server).
    EchoAdvanced,
}

/// The protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EchoProtocol {
    /// The JSON echo over HTTP/1.1 and h2c (HTTPS with a certificate), gRPC included.
    #[default]
    Http,
    /// The conformance TCP echo: a welcome line, then PING, IS_TLS and TEST commands (over TLS
    /// with a certificate).
    Tcp,
    /// The conformance UDP echo: each datagram answered with a JSON envelope.
    Udp,
}

impl Args {
    /// An HTTP echo backend named `pod` in `namespace` on `listen`, without TLS.
    pub fn new(listen: SocketAddr, pod: impl Into<String>, namespace: impl Into<String>) -> Args {
        Args {
            listen,
            pod: pod.into(),
            namespace: namespace.into(),
            seen: None,
            tls_cert: None,
            tls_key: None,
            tls: None,
            quiet: false,
            protocol: EchoProtocol::Http,
            service: String::new(),
            format: Format::Json,
            service_version: String::new(),
            log_file: None,
            go_header_names: false,
        }
    }
}

/// A serving certificate and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// What a TLS client showed, as the conformance echo server reports it.
#[derive(Debug, Clone)]
struct TlsSeen(serde_json::Value);

fn tls_config(id: &TlsIdentity) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let certs: Vec<_> = rustls_pemfile::certs(&mut id.cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut id.key_pem.as_slice())
        .map_err(|e| bad(format!("key: {e}")))?
        .ok_or_else(|| bad("no private key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Client certificates are asked for and reported, not required (echo-basic's
    // VerifyClientCertIfGiven without a CA: any is shown).
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyClient(provider)))
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts whatever client certificate is shown (to report it), and none.
#[derive(Debug)]
struct AnyClient(Arc<rustls::crypto::CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClient {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The `tls` part of an answer: version, server name, ALPN, client certificates (PEM).
fn tls_seen(conn: &rustls::ServerConnection) -> TlsSeen {
    use std::fmt::Write;
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let peers: Vec<String> = conn
        .peer_certificates()
        .into_iter()
        .flatten()
        .map(|c| {
            let b64 = base64_encode(c.as_ref());
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                let _ = writeln!(pem, "{}", String::from_utf8_lossy(line));
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            pem
        })
        .collect();
    TlsSeen(json!({
        "version": version,
        "serverName": conn.server_name().unwrap_or(""),
        "negotiatedProtocol": conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
        "peerCertificates": peers,
    }))
}

/// Standard base64 (for PEM), without a dependency for one use.
fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(T[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn echo(
    State(args): State<Arc<Args>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<BTreeMap<String, String>>,
    req: Request<Body>,
) -> Response {
    if ws::wanted(&req) {
        return ws::accept(req);
    }
    let tls = req.extensions().get::<TlsSeen>().map(|t| t.0.clone());
    let req_delay = req
        .headers()
        .get("x-echo-delay")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.uri().path().starts_with("/retry/") {
        if let Some(failure) = retry_simulation(&args.pod, &query) {
            return failure;
        }
    }
    let set_headers: Vec<(String, String)> = req
        .headers()
        .get_all("x-echo-set-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        let name = if args.go_header_names {
            advanced::canonical(k.as_str())
        } else {
            k.as_str().to_string()
        };
        headers
            .entry(name)
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let body = json!({
        // The request URI, query included, as echo-basic reports it (Go's URL.RequestURI):
        // the conformance suite compares it with the path and query it sent.
        "path": req.uri().path_and_query().map_or(req.uri().path(), |pq| pq.as_str()),
        "query": req.uri().query().unwrap_or(""),
        "host": host,
        "method": req.method().as_str(),
        "proto": format!("{:?}", req.version()),
        "headers": headers,
        "namespace": args.namespace,
        "pod": args.pod,
        "service": args.service,
        "peer": peer.to_string(),
    });
    let mut body = body;
    if let Some(tls) = tls {
        body["tls"] = tls;
    }
    let record = |body: &serde_json::Value| {
        if !args.quiet {
            println!("{body}");
        }
        if let Some(file) = &args.log_file {
            log_line(file, body);
        }
        if let Some(seen) = &args.seen {
            if let Ok(mut v) = seen.lock() {
                v.push(body.clone());
            }
        }
    };
    if grpc::is_grpc(&req) {
        record(&body);
        if args.format == Format::EchoAdvanced {
            let text = advanced::text(&body, args.listen.port(), &args.service_version, 200);
            return grpc::answer_advanced(req.uri().path(), &text);
        }
        return grpc::answer(req.uri().path(), &body);
    }
    // The body's size (read to its end, bounded), for tests of what a proxy forwarded.
    let body_bytes = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .map_or(-1, |b| b.len() as i64);
    let mut body = body;
    body["body_bytes"] = json!(body_bytes);
    record(&body);
    // `x-echo-delay: <pod>=<ms>` delays only the named backend (a slow mirror, say).
    let header_delay = req_delay.and_then(|d| {
        d.split_once('=')
            .filter(|(pod, _)| *pod == args.pod)
            .and_then(|(_, ms)| ms.parse::<u64>().ok())
    });
    // `?delay=` in milliseconds or as a duration (`1s`, as the conformance echo server takes).
    if let Some(ms) = query
        .get("delay")
        .and_then(|d| {
            d.parse::<u64>()
                .ok()
                .or_else(|| mesh_model::validate::duration_ms(d))
        })
        .or(header_delay)
    {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let mut resp = match args.format {
        Format::Json => axum::Json(body).into_response(),
        Format::EchoAdvanced => (
            [("content-type", "text/plain; charset=utf-8")],
            advanced::text(&body, args.listen.port(), &args.service_version, 200),
        )
            .into_response(),
    };
    for (k, v) in set_headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// Append echo-basic's log line for a request to a container log file (CRI format); a file
/// that cannot be written loses the line, never the answer.
fn log_line(file: &std::path::Path, body: &serde_json::Value) {
    use std::io::Write;
    let line = format!(
        "{} stdout F Echoing back request made to {} to client ({})\n",
        jiff::Timestamp::now(),
        body["path"].as_str().unwrap_or(""),
        body["peer"].as_str().unwrap_or("")
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("mesh-echo: cannot log to {}: {e}", file.display());
    }
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Attempts seen per (pod, uuid) by the retry simulation.
static ATTEMPTS: std::sync::OnceLock<
    std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
> = std::sync::OnceLock::new();

/// The conformance echo server's retry simulation: the failing answer while a uuid has had
/// fewer than `succeedAfter` attempts, or `None` once it may succeed.
fn retry_simulation(pod: &str, query: &BTreeMap<String, String>) -> Option<Response> {
    use axum::http::StatusCode;
    let bad = |why: &str| Some((StatusCode::BAD_REQUEST, why.to_string()).into_response());
    let Some(uuid) = query.get("uuid") else {
        return bad("uuid is required");
    };
    let Some(succeed_after) = query
        .get("succeedAfter")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return bad("succeedAfter is required");
    };
    let Some(code) = query
        .get("responseCode")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    else {
        return bad("mesh-echo simulates failing answers only: give responseCode");
    };
    let mut attempts = ATTEMPTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let seen = attempts.entry((pod.to_string(), uuid.clone())).or_default();
    if *seen < succeed_after {
        *seen += 1;
        return Some(code.into_response());
    }
    None
}

/// Serve until the task is dropped; the listener is bound before this returns.
pub async fn serve(args: Args) -> std::io::Result<Running> {
    let mut args = args;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        args.tls = Some(TlsIdentity {
            cert_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
        });
    }
    let tls = args
        .tls
        .as_ref()
        .map(tls_config)
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    match args.protocol {
        EchoProtocol::Http => {}
        EchoProtocol::Tcp => return l4::tcp(args, tls).await.map(futures_boxed),
        EchoProtocol::Udp => return l4::udp(args).await.map(futures_boxed),
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let app = axum::Router::new()
        .fallback(echo)
        .with_state(Arc::new(args));
    Ok(futures_boxed(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let (app, tls) = (app.clone(), tls.clone());
            tokio::spawn(async move {
                let serve = |io, seen: Option<TlsSeen>| async move {
                    let service = TowerToHyperService::new(app.map_request(
                        move |mut r: Request<hyper::body::Incoming>| {
                            r.extensions_mut().insert(ConnectInfo(peer));
                            if let Some(t) = &seen {
                                r.extensions_mut().insert(t.clone());
                            }
                            r
                        },
                    ));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .await;
                };
                match tls {
                    None => serve(Box::new(tcp) as Box<dyn Io>, None).await,
                    Some(acceptor) => {
                        let Some(stream) = handshake(&acceptor, tcp).await else {
                            return;
                        };
                        let seen = tls_seen(stream.get_ref().1);
                        serve(Box::new(stream) as Box<dyn Io>, Some(seen)).await;
                    }
                }
            });
        }
    }))
}

/// A client's TLS handshake, given ten seconds; None when it fails or takes longer.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .ok()?
        .ok()
}

/// A running backend: its accept loop, to spawn.
/// Serve an echo backend named `pod` in `namespace` on `listen`, speaking `protocol`, as a
/// task of the current runtime (tests that run their backends in-process).
pub async fn spawn(
    listen: SocketAddr,
    pod: &str,
    namespace: &str,
    protocol: EchoProtocol,
) -> std::io::Result<()> {
    let mut args = Args::new(listen, pod, namespace);
    args.protocol = protocol;
    tokio::spawn(serve(args).await?);
    Ok(())
}

pub type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn futures_boxed(f: impl std::future::Future<Output = ()> + Send + 'static) -> Running {
    Box::pin(f)
}

/// One backend per endpoint of a compiled Plan, each address once, its pod name the Service its
/// cluster stands for (`namespace/name`): a test reads from an answer's `pod` which cluster the
/// proxy chose.
pub fn backends_for(plan: &mesh_model::plan::Plan) -> Vec<Args> {
    let mut out: Vec<Args> = Vec::new();
    for c in plan.clusters.values() {
        let service = c.name.rsplit_once(':').map_or(c.name.as_str(), |(s, _)| s);
        for e in &c.endpoints {
            let Ok(listen) = format!("{}:{}", e.address, e.port).parse() else {
                continue;
            };
            if !out.iter().any(|a| a.listen == listen) {
                out.push(Args::new(listen, service.to_string(), "default"));
            }
        }
    }
    out
}

/// One backend per ready endpoint of the EndpointSlices in `dir` (and below): the address and
/// port of the slice, the pod of its targetRef (or `<service>-<n>`), the slice's namespace.
pub fn endpoints_from(dir: &std::path::Path) -> Vec<Args> {
    use mesh_model::load::{FileSource, Input, ObjectSource};
    use mesh_model::resource::Resource;
    let source = FileSource {
        inputs: vec![Input::Path(dir.to_path_buf())],
    };
    let (objects, _) = source.objects(&Default::default());
    let mut out: Vec<Args> = Vec::new();
    for o in objects {
        let Resource::EndpointSlice(es) = &o.resource else {
            continue;
        };
        let service = es
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_else(|| o.name.clone());
        let ns = o.namespace.clone().unwrap_or_else(|| "default".into());
        for (port, udp) in es
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.port?, p.protocol.as_deref() == Some("UDP"))))
        {
            for (i, ep) in es
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .enumerate()
            {
                let pod = ep
                    .target_ref
                    .as_ref()
                    .and_then(|t| t.name.clone())
                    .unwrap_or_else(|| format!("{service}-{i}"));
                for addr in &ep.addresses {
                    let Ok(listen) = format!("{addr}:{port}").parse() else {
                        continue;
                    };
                    // A UDP port is its own socket beside a TCP one of the same number.
                    if !out
                        .iter()
                        .any(|a| a.listen == listen && (a.protocol == EchoProtocol::Udp) == udp)
                    {
                        let mut args = Args::new(listen, pod.clone(), ns.clone());
                        args.service = service.clone();
                        if udp {
                            args.protocol = EchoProtocol::Udp;
                        }
                        out.push(args);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header names as received, or keyed as Go's net/http keys them (echo-basic's JSON).
    #[tokio::test]
    async fn header_names_as_received_or_as_go_keys_them() {
        for go in [false, true] {
            let port = mesh_model::testing::free_port();
            let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut args = Args::new(listen, "pod", "ns");
            args.quiet = true;
            args.go_header_names = go;
            tokio::spawn(serve(args).await.unwrap());
            let body: serde_json::Value = reqwest::Client::new()
                .get(format!("http://{listen}/"))
                .header("x-backend-NAME", "v1")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let key = if go {
                "X-Backend-Name"
            } else {
                "x-backend-name"
            };
            assert_eq!(body["headers"][key][0], "v1", "{body}");
            assert_eq!(body["headers"].as_object().unwrap().len(), 3, "{body}");
        }
    }
}
