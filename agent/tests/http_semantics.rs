//! RFC 9110/9112 behaviour at the edge and in the mesh: what the client may and may not make
//! the agent do, what the backend is told, and the Gateway API mesh semantics of targets,
//! ports and redirects. Each case failed on the agent before the hardening.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{backend, gateway_yaml, raw, route_yaml as route, service, spawn, Seen, CLASS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GATEWAY: &str = "127.0.0.71";

fn gamma(name: &str, parent: &str, port: Option<u16>, path: &str, rest: &str) -> String {
    let port = port.map(|p| format!(", port: {p}")).unwrap_or_default();
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: {parent}{port}}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]\n{rest}")
}

fn config() -> String {
    let multi = "apiVersion: v1\nkind: Service\nmetadata: {name: multi, namespace: default}\nspec:\n  ports: [{name: a, port: 80, targetPort: 9000}, {name: b, port: 8080, targetPort: 9000}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: multi-1, namespace: default, labels: {kubernetes.io/service-name: multi}}\naddressType: IPv4\nports: [{name: a, port: 9000}, {name: b, port: 9000}]\nendpoints: [{addresses: ['127.0.1.78']}]\n";
    [
        CLASS.to_string(),
        gateway_yaml(8080),
        service("default", "main", 80, "127.0.1.71", 9000),
        service("default", "mirror", 80, "127.0.1.72", 9000),
        service("default", "stall", 80, "127.0.1.74", 9000),
        service("default", "ws", 80, "127.0.1.75", 9000),
        service("default", "echo-v1", 80, "127.0.1.76", 9000),
        service("default", "echo-v2", 80, "127.0.1.77", 9000),
        multi.to_string(),
        route("all", "/", "    backendRefs: [{name: main, port: 80}]\n"),
        route("mirrored", "/mirrored", "    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}, fraction: {numerator: 1, denominator: 2}}}]\n    backendRefs: [{name: main, port: 80}]\n"),
        route("plain", "/plain", "    backendRefs: [{name: main, port: 80}]\n"),
        route("split", "/split", "    backendRefs: [{name: main, port: 80, weight: 50}, {name: missing, port: 80, weight: 50}]\n"),
        route("stall", "/stall", "    timeouts: {request: 1s}\n    backendRefs: [{name: stall, port: 80}]\n"),
        route("ws", "/ws", "    backendRefs: [{name: ws, port: 80}]\n"),
        gamma("only-8080", "multi", Some(8080), "/only", "    backendRefs: [{name: echo-v2, port: 80}]\n"),
        gamma("go", "echo-v1", None, "/go", "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /gone}}}]\n"),
        gamma("go-8080", "multi", Some(8080), "/go", "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /gone}}}]\n"),
    ]
    .join("---\n")
}

/// The tests share the Gateway address and the backends: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    agent: support::Agent,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

async fn setup(name: &str, extra: &[&str]) -> Setup {
    let serial = SERIAL.lock().await;
    let dir = support::folder(name);
    std::fs::write(dir.join("config.yaml"), config()).unwrap();
    let mut args = vec!["--gateway-addr", GATEWAY];
    args.extend_from_slice(extra);
    let agent = spawn(&dir, &args).await;
    agent.loaded().await;
    Setup {
        agent,
        _serial: serial,
    }
}

/// The backends, started once for every test of this file.
async fn backends() -> (Seen, Seen) {
    static STARTED: tokio::sync::OnceCell<(Seen, Seen)> = tokio::sync::OnceCell::const_new();
    STARTED
        .get_or_init(|| async {
            // Each test has its own runtime: the backends get one of their own that outlives
            // them all.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let main = backend("127.0.1.71:9000", "main", "default").await;
                    let mirror = backend("127.0.1.72:9000", "mirror", "default").await;
                    backend("127.0.1.76:9000", "echo-v1", "default").await;
                    backend("127.0.1.77:9000", "echo-v2", "default").await;
                    backend("127.0.1.78:9000", "multi", "default").await;
                    backend("127.0.1.79:9000", "outside", "default").await;
                    stalling_backend("127.0.1.74:9000").await;
                    websocket_backend("127.0.1.75:9000").await;
                    tx.send((main, mirror)).unwrap();
                    std::future::pending::<()>().await;
                });
            });
            rx.recv().unwrap()
        })
        .await
        .clone()
}

/// Sends its response head and part of the body, then stalls.
async fn stalling_backend(addr: &str) {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
                .await;
            held.push(s);
        }
    });
}

/// A WebSocket echo server (tokio-tungstenite).
async fn websocket_backend(addr: &str) {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                use futures_util::{SinkExt, StreamExt};
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
}

fn seen_with(seen: &Seen, key: &str, value: &str) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|v| v["headers"][key][0] == value)
        .cloned()
        .collect()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_head_is_checked_and_hop_by_hop_headers_stop_here() {
    let (main, _) = backends().await;
    let s = setup("head", &[]).await;
    let addr = format!("{GATEWAY}:8080");
    let within = Duration::from_secs(5);
    // Host: two, none, userinfo, empty.
    for (case, head) in [
        (
            "two hosts",
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        ),
        ("no host", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        (
            "userinfo",
            "GET / HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n",
        ),
        (
            "empty",
            "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        ),
    ] {
        let r = raw(&addr, head.as_bytes(), within).await;
        assert_eq!(status_of(&r), 400, "{case}: {r}");
    }
    // Hop-by-hop headers, and the forwarding headers a client must not choose.
    let head = "GET /plain HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, x-hop, close\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nX-Forwarded-Proto: https\r\nX-Request-Id: chosen-by-client\r\nX-Case: hop\r\n\r\n";
    let r = raw(&addr, head.as_bytes(), within).await;
    assert_eq!(status_of(&r), 200, "{r}");
    let got = seen_with(&main, "x-case", "hop");
    let h = &got.last().expect("reached the backend")["headers"];
    for name in ["x-hop", "keep-alive", "proxy-connection", "te"] {
        assert!(h.get(name).is_none(), "{name} was forwarded: {h}");
    }
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_ne!(h["x-request-id"][0], "chosen-by-client");
    assert_eq!(h["x-request-id"][0].as_str().unwrap().len(), 36, "a UUID");
    // Absolute-form: routed and forwarded by its authority, not the Host header.
    let head = "GET http://b.example/plain HTTP/1.1\r\nHost: a.example\r\nX-Case: absolute\r\nConnection: close\r\n\r\n";
    let r = raw(&addr, head.as_bytes(), within).await;
    assert_eq!(status_of(&r), 200, "{r}");
    let got = seen_with(&main, "x-case", "absolute");
    assert_eq!(got.last().unwrap()["host"], "b.example");
    // Dot-segments: normalised before matching, and what the backend receives.
    let head = "GET /mirrored/../plain/x HTTP/1.1\r\nHost: a.example\r\nX-Case: dots\r\nConnection: close\r\n\r\n";
    let r = raw(&addr, head.as_bytes(), within).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(
        seen_with(&main, "x-case", "dots").last().unwrap()["path"],
        "/plain/x"
    );
    // A client that half-closes after its request still gets the answer.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"GET /plain HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, c.read_to_end(&mut out)).await;
    assert_eq!(
        status_of(&String::from_utf8_lossy(&out)),
        200,
        "half-closed client got {} bytes",
        out.len()
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_body_is_the_clients_error_not_the_backends() {
    backends().await;
    let s = setup("body", &[]).await;
    let addr = format!("{GATEWAY}:8080");
    let within = Duration::from_secs(5);
    let bad_chunk = "POST /plain HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    let r = raw(&addr, bad_chunk.as_bytes(), within).await;
    assert_eq!(status_of(&r), 400, "{r}");
    // EOF before the declared length.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"POST /plain HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\nshort")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, c.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(status_of(&text) == 400 || out.is_empty(), "{text}");
    let stats = s.agent.stats().await;
    assert!(
        !stats
            .lines()
            .any(|l| l.starts_with("envoy_cluster_upstream_rq{")
                && l.contains("default/main:80")
                && (l.contains("\"503\"") || l.contains("\"400\""))),
        "a client's broken body was counted against the backend:\n{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_covers_the_whole_response() {
    backends().await;
    let _s = setup("stall", &[]).await;
    let c = support::client();
    let r = c
        .get(format!("http://{GATEWAY}:8080/stall"))
        .header("host", "a.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the head arrived in time");
    let body = r.bytes().await;
    assert!(
        body.is_err(),
        "the body never completed yet was delivered: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_sample_per_route_and_never_buffer_without_bound() {
    let (main, mirror) = backends().await;
    let s = setup("mirror", &["--mirror-body-limit", "1Ki"]).await;
    let c = support::client();
    let url = |p: &str| format!("http://{GATEWAY}:8080{p}");
    mirror.lock().unwrap().clear();
    // Two routes alternate; only /mirrored copies, half of its own requests.
    for i in 0..200 {
        let path = if i % 2 == 0 { "/mirrored" } else { "/plain" };
        let r = c
            .get(url(path))
            .header("host", "a.example")
            .header("x-case", "sample")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copies = seen_with(&mirror, "x-case", "sample").len();
    assert_eq!(copies, 50, "1/2 of the 100 /mirrored requests");
    // A body over the limit is forwarded whole and not copied.
    let big = vec![b'x'; 8 << 10];
    let r = c
        .post(url("/mirrored"))
        .header("host", "a.example")
        .header("x-case", "big")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = seen_with(&main, "x-case", "big");
    assert_eq!(seen.last().unwrap()["body_bytes"], 8 << 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen_with(&mirror, "x-case", "big").is_empty(),
        "a body over the limit was mirrored"
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled() {
    use futures_util::{SinkExt, StreamExt};
    backends().await;
    // One connection in the budget: the tunnel holds it for as long as it is open.
    let _s = setup(
        "ws",
        &["--max-connections", "1", "--stream-idle-timeout", "2s"],
    )
    .await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{GATEWAY}:8080/ws"),
    )
    .unwrap();
    req.headers_mut()
        .insert("host", "a.example".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the upgrade goes through");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "again"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    let plain = format!("http://{GATEWAY}:8080/plain");
    let c = support::client();
    assert!(
        c.get(&plain)
            .header("host", "a.example")
            .send()
            .await
            .is_err(),
        "an open tunnel counts against the connection budget"
    );
    // A tunnel silent both ways for the stream idle timeout is closed.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "a silent tunnel stays open");
    drop(ws);
    assert!(
        support::answers_200(&plain, Some("a.example"), 50).await,
        "the budget is given back when the tunnel closes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_keeps_its_authority_upstream() {
    let (main, _) = backends().await;
    let _s = setup("h2", &[]).await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let r = c
        .get(format!("http://{GATEWAY}:8080/plain"))
        .header("x-case", "h2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let got = seen_with(&main, "x-case", "h2");
    assert_eq!(
        got.last().unwrap()["host"],
        format!("{GATEWAY}:8080"),
        "not the endpoint's address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_on_a_split_with_an_invalid_backend() {
    backends().await;
    let s = setup("split", &[]).await;
    let c = support::client();
    let e: Value = c
        .get(s.agent.url("/explain?url=http://a.example:8080/split"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcome = e["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("forward for 50%") && outcome.contains("500 invalid backend for 50%"),
        "{e}"
    );
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let r = c
            .get(format!("http://{GATEWAY}:8080/split"))
            .header("host", "a.example")
            .send()
            .await
            .unwrap();
        *codes.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes[&200] >= 30 && codes[&500] >= 30, "{codes:?}");
}

/// GET through the outbound entry as an HTTP proxy client does: absolute-form.
async fn through_mesh(agent: &support::Agent, target: &str, host: &str) -> (u16, String) {
    let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let r = raw(
        &format!("127.0.0.1:{}", agent.outbound),
        head.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    (status_of(&r), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_routes_by_the_requests_target_and_port() {
    backends().await;
    let s = setup("mesh", &[]).await;
    let a = &s.agent;
    // The target, not the Host header, decides.
    let (code, r) = through_mesh(a, "http://echo-v2/", "echo-v1").await;
    assert_eq!(code, 200, "{r}");
    assert!(r.contains("\"pod\":\"echo-v2\""), "{r}");
    // A parentRef with a port applies to that Service port only.
    let (_, r) = through_mesh(a, "http://multi:8080/only", "multi:8080").await;
    assert!(
        r.contains("\"pod\":\"echo-v2\""),
        "port 8080 takes the route: {r}"
    );
    let (_, r) = through_mesh(a, "http://multi/only", "multi").await;
    assert!(r.contains("\"pod\":\"multi\""), "port 80 does not: {r}");
    // Redirects carry the Service's port, omitted when it is the scheme's default.
    let (code, r) = through_mesh(a, "http://echo-v1/go", "echo-v1").await;
    assert_eq!(code, 302, "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: http://echo-v1/gone\r\n"),
        "{r}"
    );
    let (code, r) = through_mesh(a, "http://multi:8080/go", "multi:8080").await;
    assert_eq!(code, 302, "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: http://multi:8080/gone\r\n"),
        "{r}"
    );
    // A destination that is no Service passes through (a loopback address here).
    let (code, r) = through_mesh(a, "http://127.0.1.79:9000/x", "127.0.1.79:9000").await;
    assert_eq!(code, 200, "{r}");
    assert!(r.contains("\"pod\":\"outside\""), "{r}");
    drop(s);
    // ... unless the registry-only policy refuses it.
    let s = setup("mesh-registry", &["--outbound-policy", "registry-only"]).await;
    let (code, r) = through_mesh(&s.agent, "http://127.0.1.79:9000/x", "127.0.1.79:9000").await;
    assert_eq!(code, 502, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_listeners_and_endpoints() {
    let _serial = SERIAL.lock().await;
    let port = 39_871;
    let run = mesh_echo::serve(mesh_echo::Args::new(
        format!("[::1]:{port}").parse().unwrap(),
        "v6",
        "default",
    ))
    .await
    .expect("[::1] port free");
    tokio::spawn(run);
    let dir = support::folder("ipv6");
    let slice = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: v6, namespace: default}}\nspec:\n  ports: [{{port: 80, targetPort: {port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: v6-1, namespace: default, labels: {{kubernetes.io/service-name: v6}}}}\naddressType: IPv6\nports: [{{port: {port}}}]\nendpoints: [{{addresses: ['::1']}}]\n");
    let text = [
        CLASS.to_string(),
        gateway_yaml(8086),
        slice,
        route("all", "/", "    backendRefs: [{name: v6, port: 80}]\n"),
    ]
    .join("---\n");
    std::fs::write(dir.join("config.yaml"), text).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", "::1"]).await;
    agent.loaded().await;
    let r = support::client()
        .get("http://[::1]:8086/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["pod"], "v6");
}
