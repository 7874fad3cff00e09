//! mesh-agent on the bundled examples, with the results the reference articles observed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const GATEWAY: &str = "127.0.0.4";
/// examples/tls/passthrough.yaml: the TLSRoute's backend, which terminates TLS itself.
const PASSTHROUGH_BACKEND: &str = "127.0.0.15:8443";

/// The scenarios share fixed addresses (the examples' EndpointSlices, the Gateways' ports), so
/// they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Agent {
    child: Child,
    dir: PathBuf,
    outbound: u16,
    admin: u16,
    /// Every request any backend received.
    seen: Arc<Mutex<Vec<Value>>>,
    /// The backend (its `pod` name) listening at each endpoint `address:port`.
    pods: std::collections::BTreeMap<String, String>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Copy the clean examples, start a mesh-echo per endpoint (in this process) and the agent.
async fn start() -> Agent {
    let root = mesh_model::testing::examples_dir();
    let dir = std::env::temp_dir().join(format!("mesh-agent-scenarios-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in mesh_model::testing::CLEAN_EXAMPLES {
        copy_dir(&root.join(d), &dir.join(d));
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut pods = std::collections::BTreeMap::new();
    // The passthrough backend terminates TLS itself: the passthrough test runs it.
    for mut args in mesh_echo::backends_for(&mesh_model::testing::clean_examples_plan())
        .into_iter()
        .filter(|a| a.listen.to_string() != PASSTHROUGH_BACKEND)
    {
        pods.insert(args.listen.to_string(), args.pod.clone());
        args.seen = Some(seen.clone());
        let run = mesh_echo::serve(args).await.expect("backend address free");
        tokio::spawn(run);
    }
    let (outbound, admin) = (
        mesh_model::testing::free_port(),
        mesh_model::testing::free_port(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_mesh-agent"))
        .arg("--config-dir")
        .arg(&dir)
        .args([
            "--gateway-addr",
            GATEWAY,
            "--outbound-addr",
            &format!("127.0.0.1:{outbound}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
            "--reload-interval-ms",
            "20",
            // Destinations that are no Service are refused, never looked up: test traffic
            // stays on loopback.
            "--outbound-policy",
            "registry-only",
            // Nothing attached to the machine's cgroups (tests run as root).
            "--bpf",
            "off",
            "--bpf-pin-dir",
            "/nonexistent/mesh-test",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent {
        child,
        dir,
        outbound,
        admin,
        seen,
        pods,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{admin}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            // Listeners bind right after the first load.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mesh-agent never became ready");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn get(
    c: &reqwest::Client,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = c.get(url).header("host", host);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let (status, h) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (
        status,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The DER certificate the server presented (the client was built with `tls_info`).
fn peer_certificate(resp: &reqwest::Response) -> Option<Vec<u8>> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(|d| d.to_vec())
}

/// GETs a page of the agent's admin API.
async fn admin_text(c: &reqwest::Client, admin: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{admin}{path}");
    let resp = c.get(&url).send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.text().await.unwrap()
}

/// GETs a JSON document from the agent's admin API.
async fn admin_json(c: &reqwest::Client, admin: u16, path: &str) -> Value {
    serde_json::from_str(&admin_text(c, admin, path).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_scenarios_through_the_agent() {
    let _serial = SERIAL.lock().await;
    let a = start().await;
    let c = client();
    let gw = |port: u16, path: &str| format!("http://{GATEWAY}:{port}{path}");

    // Bookinfo: path, header + query + method routing; 404 when nothing matches.
    assert_eq!(
        get(&c, &gw(8080, "/details/1"), "bookinfo", &[]).await.2["pod"],
        "default/details"
    );
    assert_eq!(
        get(
            &c,
            &gw(8080, "/?great=example"),
            "bookinfo",
            &[("magic", "foo")]
        )
        .await
        .2["pod"],
        "default/productpage"
    );
    assert_eq!(
        get(&c, &gw(8080, "/"), "bookinfo", &[("magic", "foo")])
            .await
            .0,
        404
    );

    // ACME: product and careers answer, hr is not attached.
    assert_eq!(get(&c, &gw(8081, "/product"), "acme", &[]).await.0, 200);
    assert_eq!(get(&c, &gw(8081, "/careers"), "acme", &[]).await.0, 200);
    assert_eq!(get(&c, &gw(8081, "/hr"), "acme", &[]).await.0, 404);

    // Header modifiers: the backend sees the added request header; the client the response ones.
    let (_, _, body) = get(&c, &gw(8082, "/cilium-add-a-request-header"), "lab", &[]).await;
    assert_eq!(
        body["headers"]["my-cilium-header-name"][0],
        "my-cilium-header-value"
    );
    let (_, headers, body) = get(&c, &gw(8082, "/multiple"), "lab", &[]).await;
    for i in 1..=3 {
        assert_eq!(
            headers.get(format!("x-header-add-{i}")).unwrap(),
            &format!("header-add-{i}")
        );
    }
    assert!(
        body["headers"].get("x-header-add-1").is_none(),
        "a response modifier does not touch the request"
    );
    assert!(
        body["headers"]["x-forwarded-for"][0].is_string()
            && body["headers"]["x-request-id"][0].is_string()
    );

    // Rewrite: /prefix/one reaches the backend as /one.
    assert_eq!(
        get(&c, &gw(8082, "/prefix/one"), "lab", &[]).await.2["path"],
        "/one"
    );

    // Redirects: status and Location. With neither scheme nor port the listener's port is kept
    // (8082 here; the article's Gateway was on 80, which would be left out); a scheme change
    // to https uses 443, which is left out.
    for (path, code, location) in [
        (
            "/original-prefix",
            302,
            "http://lab:8082/replacement-prefix",
        ),
        (
            "/path-and-host",
            302,
            "http://example.org:8082/replacement-prefix",
        ),
        (
            "/path-and-status",
            301,
            "http://lab:8082/replacement-prefix",
        ),
        (
            "/scheme-and-host",
            302,
            "https://example.org/scheme-and-host",
        ),
    ] {
        let (status, headers, _) = get(&c, &gw(8082, path), "lab", &[]).await;
        assert_eq!(status, code, "{path}");
        assert_eq!(
            headers.get("location").unwrap().to_str().unwrap(),
            location,
            "{path}"
        );
    }

    // GAMMA through the outbound entry, and its timeouts against a slow backend.
    let out = |path: &str| format!("http://127.0.0.1:{}{path}", a.outbound);
    assert_eq!(
        get(&c, &out("/v1"), "echo", &[]).await.2["pod"],
        "gamma/echo-v1"
    );
    assert_eq!(
        get(&c, &out("/v2"), "echo.gamma.svc.cluster.local", &[])
            .await
            .2["pod"],
        "gamma/echo-v2"
    );
    let (status, _, body) = get(&c, &out("/v1?delay=1500"), "echo", &[]).await;
    assert_eq!(
        (status, body),
        (504, Value::String("upstream request timeout".into()))
    );
    // /v2's backendRequest (300 ms) is tighter than its request timeout (2 s).
    let (status, _, body) = get(&c, &out("/v2?delay=1000"), "echo", &[]).await;
    assert_eq!(
        (status, body),
        (504, Value::String("upstream request timeout".into()))
    );

    // Weighted splits over 500 requests: 50/50 and 90/10 within 5 points.
    for (path, v1_share) in [("/load-balancing", 0.5), ("/canary", 0.9)] {
        let mut v1 = 0;
        for _ in 0..500 {
            if get(&c, &out(path), "echo", &[]).await.2["pod"] == "gamma/echo-v1" {
                v1 += 1;
            }
        }
        let share = v1 as f64 / 500.0;
        assert!(
            (share - v1_share).abs() <= 0.05,
            "{path}: echo-v1 got {share}"
        );
    }

    // Mirror: infra-backend-v2 receives a copy; the client gets infra-backend-v1's answer, and
    // a slow mirror does not slow the client down.
    let before = a.seen.lock().unwrap().len();
    let started = std::time::Instant::now();
    let (status, _, body) = get(&c, &gw(8082, "/mirror"), "lab", &[]).await;
    assert_eq!(
        (status, body["pod"].as_str()),
        (200, Some("default/infra-backend-v1"))
    );
    let (_, _, body) = get(
        &c,
        &gw(8082, "/mirror"),
        "lab",
        &[("x-echo-delay", "default/infra-backend-v2=1500")],
    )
    .await;
    assert_eq!(body["pod"], "default/infra-backend-v1");
    assert!(started.elapsed() < Duration::from_millis(900));
    let mut mirrored = false;
    for _ in 0..50 {
        mirrored = a.seen.lock().unwrap()[before..]
            .iter()
            .any(|r| r["pod"] == "default/infra-backend-v2" && r["path"] == "/mirror");
        if mirrored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(mirrored, "the mirror received the request");

    // gRPC: the exact method is routed, another method of the service is not.
    let grpc = |m: &str| {
        c.post(format!(
            "http://{GATEWAY}:8083/hipstershop.CurrencyService/{m}"
        ))
        .header("host", "grpc")
        .send()
    };
    assert_eq!(grpc("GetSupportedCurrencies").await.unwrap().status(), 200);
    assert_eq!(grpc("Convert").await.unwrap().status(), 404);
    // A gRPC caller of the unrouted method gets gRPC's UNIMPLEMENTED, trailers-only.
    let unrouted = c
        .post(format!(
            "http://{GATEWAY}:8083/hipstershop.CurrencyService/Convert"
        ))
        .header("host", "grpc")
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 200);
    assert_eq!(unrouted.headers()["grpc-status"], "12");
    assert_eq!(unrouted.headers()["content-type"], "application/grpc");

    // HTTPS terminated by the agent with the Secret's certificate, chosen by SNI.
    let secret = std::fs::read_to_string(a.dir.join("tls/https.yaml")).unwrap();
    let crt_b64 = secret
        .lines()
        .find_map(|l| l.trim().strip_prefix("tls.crt: "))
        .unwrap();
    let crt = mesh_model::load::load_str(&format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\ntype: kubernetes.io/tls\ndata: {{tls.crt: {crt_b64}}}\n"), mesh_model::Source::Stdin, &Default::default()).unwrap();
    let mesh_model::resource::Resource::Secret(sec) = &crt[0].resource else {
        panic!()
    };
    let pem = sec.data.as_ref().unwrap()["tls.crt"].0.clone();
    // The example certificate is a self-signed CA, which webpki refuses as a leaf: accept it,
    // and check that the agent presented exactly the Secret's certificate.
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .resolve(
            "bookinfo.cilium.rocks",
            format!("{GATEWAY}:8443").parse().unwrap(),
        )
        .build()
        .unwrap();
    let resp = tls
        .get("https://bookinfo.cilium.rocks:8443/details/1")
        .send()
        .await
        .unwrap();
    let presented = peer_certificate(&resp).unwrap();
    let expected: Vec<u8> = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    assert_eq!(
        presented, expected,
        "the Secret's certificate, chosen by SNI"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["pod"], "default/details");
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");

    // The admin API.
    let info = admin_json(&c, a.admin, "/server_info").await;
    assert_eq!(info["state"], "LIVE");
    let dump = admin_json(&c, a.admin, "/config_dump").await;
    assert_eq!(
        dump["configs"][0]["@type"],
        "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
    );
    assert!(!dump.to_string().contains("PRIVATE KEY"));
    let clusters = admin_json(&c, a.admin, "/clusters?format=json").await;
    assert!(clusters["cluster_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "default/details:9080"));

    // Statistics under Envoy's Prometheus names: the timeouts above were counted as 504s of
    // their cluster, and every request was counted on its listener.
    let stats = admin_text(&c, a.admin, "/stats/prometheus").await;
    let value = |series: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{stats}"))
    };
    assert!(
        value("envoy_cluster_upstream_rq{envoy_response_code=\"504\",envoy_cluster_name=\"gamma/echo-v1:80\"}") >= 1
    );
    assert!(
        value("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"gamma/echo-v1:80\"}") >= 500
    );
    assert!(
        value("envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"gamma/echo-v1:80\"}")
            >= 500
    );
    assert!(
        value("envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"mesh_outbound\"}")
            >= 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_change_keeps_the_last_good_plan() {
    let _serial = SERIAL.lock().await;
    let a = start().await;
    let c = client();
    let url = format!("http://{GATEWAY}:8080/details/1");
    assert_eq!(get(&c, &url, "bookinfo", &[]).await.0, 200);
    let hash = admin_json(&c, a.admin, "/server_info").await["plan_hash"].clone();
    assert_eq!(hash.as_str().map(str::len), Some(64), "a SHA-256: {hash}");
    // A broken route: an Error finding, so the change is refused.
    std::fs::write(a.dir.join("bookinfo/broken.yaml"), "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: broken}\nspec:\n  parentRefs: [{name: my-gateway}]\n  rules: [{matches: [{path: {type: PathPrefix, value: nope}}]}]\n").unwrap();
    let ready = format!("http://127.0.0.1:{}/ready", a.admin);
    let mut said = String::new();
    for _ in 0..50 {
        said = c.get(&ready).send().await.unwrap().text().await.unwrap();
        if said.contains("rejected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(said.contains("MESH2001"), "{said}");
    assert_eq!(
        get(&c, &url, "bookinfo", &[]).await.0,
        200,
        "still served by the last good Plan"
    );
    let info = admin_json(&c, a.admin, "/server_info").await;
    assert_eq!(info["plan_hash"], hash, "the same Plan in force");
    assert!(info["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("MESH2001"));
}

/// 100 configuration changes while requests flow: every request is answered by a whole Plan
/// (the old or the new), none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let _serial = SERIAL.lock().await;
    let a = start().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match c
                    .get(format!("http://{GATEWAY}:8080/details/1"))
                    .header("host", "bookinfo")
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let info = format!("http://127.0.0.1:{}/server_info", a.admin);
    let c = client();
    let reloads = |v: Value| v["reloads"].as_u64().unwrap_or(0);
    let mut count = reloads(c.get(&info).send().await.unwrap().json().await.unwrap());
    let route = a.dir.join("bookinfo/changing.yaml");
    for i in 0..100 {
        // A change that matters: a route whose header value moves on every step.
        std::fs::write(&route, format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: changing}}\nspec:\n  parentRefs: [{{name: my-gateway}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /changing}}}}]\n    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x-step, value: '{i}'}}]}}}}]\n    backendRefs: [{{name: details, port: 9080}}]\n")).unwrap();
        let mut waited = 0;
        loop {
            let now = reloads(c.get(&info).send().await.unwrap().json().await.unwrap());
            if now > count {
                count = now;
                break;
            }
            waited += 1;
            assert!(waited < 500, "change {i} was never loaded");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (_, _, body) = get(
        &c,
        &format!("http://{GATEWAY}:8080/changing"),
        "bookinfo",
        &[],
    )
    .await;
    assert_eq!(
        body["headers"]["x-step"][0], "99",
        "the last change is in force"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for l in load {
        let (o, f) = l.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests were sent");
}

/// A backend that terminates TLS itself with its own certificate and answers one HTTP request.
async fn tls_backend(cert: rcgen::CertifiedKey<rcgen::KeyPair>) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(PASSTHROUGH_BACKEND)
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\npassthrough")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_reaches_the_backend_unterminated() {
    let _serial = SERIAL.lock().await;
    let cert = rcgen::generate_simple_self_signed(vec!["nginx.cilium.rocks".into()]).unwrap();
    let der = cert.cert.der().to_vec();
    let backend = tls_backend(cert).await;
    let a = start().await;
    let client = |host: &str| {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            .timeout(Duration::from_secs(5))
            .resolve(host, format!("{GATEWAY}:9443").parse().unwrap())
            .build()
            .unwrap()
    };
    let resp = client("nginx.cilium.rocks")
        .get("https://nginx.cilium.rocks:9443/")
        .send()
        .await
        .unwrap();
    let presented = peer_certificate(&resp);
    assert_eq!(
        presented,
        Some(der),
        "the backend's own certificate: not terminated"
    );
    assert_eq!(resp.text().await.unwrap(), "passthrough");
    // An SNI no TLSRoute names: the connection is closed, as Envoy does.
    let other = client("other.cilium.rocks")
        .get("https://other.cilium.rocks:9443/")
        .send()
        .await;
    assert!(other.is_err(), "{other:?}");
    backend.abort();
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_sharing_a_port_are_told_apart_by_hostname() {
    let _serial = SERIAL.lock().await;
    let a = start().await;
    let c = client();
    // Added while running: the new port is bound on reload, one socket for both listeners.
    std::fs::write(
        a.dir.join("bookinfo/shared-port.yaml"),
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared, namespace: default}
spec:
  gatewayClassName: cilium
  listeners:
  - {name: foo, protocol: HTTP, port: 8090, hostname: foo.example.com}
  - {name: wild, protocol: HTTP, port: 8090, hostname: "*.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-foo, namespace: default}
spec:
  parentRefs: [{name: shared, sectionName: foo}]
  rules: [{backendRefs: [{name: details, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-wild, namespace: default}
spec:
  parentRefs: [{name: shared, sectionName: wild}]
  rules: [{backendRefs: [{name: productpage, port: 9080}]}]
"#,
    )
    .unwrap();
    let url = format!("http://{GATEWAY}:8090/");
    let mut first = None;
    for _ in 0..50 {
        if let Ok(r) = c.get(&url).header("host", "foo.example.com").send().await {
            let text = r.text().await.unwrap();
            first = Some(serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("{text}")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        first.expect("the new port is served")["pod"],
        "default/details",
        "foo.example.com: the exact listener wins"
    );
    let (status, _, body) = get(&c, &url, "bar.example.com", &[]).await;
    assert_eq!(
        (status, &body["pod"]),
        (200, &Value::from("default/productpage"))
    );
    assert_eq!(get(&c, &url, "example.org", &[]).await.0, 404);
}

/// A gRPC call end to end over HTTP/2: the client speaks h2c to the agent, the GRPCRoute's
/// backend is reached over h2c too (gRPC runs on nothing else), and the backend's message and
/// trailers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_cross_the_agent_over_h2c() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    let _serial = SERIAL.lock().await;
    let _agent = start().await;
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let call = |method: &str| {
        let req = hyper::Request::post(format!(
            "http://{GATEWAY}:8083/hipstershop.CurrencyService/{method}"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(mesh_echo::grpc::frame(b""))))
        .unwrap();
        client.request(req)
    };

    let resp = call("GetSupportedCurrencies").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap();
    let trailers = body.trailers().cloned().expect("gRPC status in trailers");
    assert_eq!(trailers["grpc-status"], "0");
    let messages = mesh_echo::grpc::messages(&body.to_bytes()).unwrap();
    // Field 1 of the answer: the backend's JSON description, after its tag and length.
    let json = &messages[0][messages[0].iter().position(|b| *b == b'{').unwrap()..];
    let seen: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(seen["pod"], "default/currencyservice");
    assert_eq!(
        seen["path"],
        "/hipstershop.CurrencyService/GetSupportedCurrencies"
    );
    assert_eq!(seen["proto"], "HTTP/2.0", "the backend is reached over h2c");

    // The method the GRPCRoute does not name: UNIMPLEMENTED from the agent, trailers-only.
    let resp = call("Convert").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");
}

/// `explain` cannot disagree with the proxy: for a pseudo-random set of requests over the
/// examples' listeners, the agent's `/explain` predicts what the same request then gets (the
/// backend that answers, the redirect, or the local answer's status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_with_the_proxy() {
    use mesh_model::plan::explain::Explanation;

    let _serial = SERIAL.lock().await;
    let a = start().await;
    let c = client();
    let targets: Vec<(u16, &str)> = vec![
        (8080, "bookinfo"),
        (8081, "acme"),
        (8082, "lab"),
        (8082, "lab.example"),
        (8083, "grpc"),
        (8091, "foo.example.com"),
        (8091, "bar.example.com"),
        (8091, "quiet.example.com"),
        (a.outbound, "echo.gamma"),
        (a.outbound, "echo"),
        (a.outbound, "details.default"),
        (a.outbound, "nowhere.example"),
    ];
    let paths = [
        "/",
        "/details/1",
        "/detailsx",
        "/product",
        "/careers/jobs",
        "/hr",
        "/echo",
        "/cilium-add-a-request-header",
        "/multiple",
        "/prefix/one",
        "/original-prefix",
        "/path-and-status",
        "/scheme-and-host",
        "/v1",
        "/v2",
        "/v1/x",
        "/load-balancing",
        "/canary",
        "/?great=example",
        "/nothing",
    ];
    let mut next = mesh_model::testing::choices(0x5eed);
    let mut outcomes = BTreeSet::new();
    for _ in 0..200 {
        let (port, host) = targets[next(targets.len())];
        let path = paths[next(paths.len())];
        let header = (next(2) == 0).then_some(("magic", "foo"));
        let url = format!("http://{host}:{port}{path}");
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("url", &url);
        if let Some((k, v)) = header {
            q.append_pair("header", &format!("{k}: {v}"));
        }
        // The request below carries this Host: in the mesh it names the Service port (80).
        q.append_pair("header", &format!("Host: {host}"));
        let e: Explanation = c
            .get(format!(
                "http://127.0.0.1:{}/explain?{}",
                a.admin,
                q.finish()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let addr = if port == a.outbound {
            "127.0.0.1"
        } else {
            GATEWAY
        };
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let (status, response_headers, body) =
            get(&c, &format!("http://{addr}:{port}{path}"), host, &headers).await;
        let what = format!("{url} {header:?}: explained {e:?}");
        match e.outcome.as_str() {
            "forward" => {
                let pods: BTreeSet<&String> = e
                    .backends
                    .iter()
                    .filter(|b| b.weight > 0)
                    .flat_map(|b| &b.endpoints)
                    .filter_map(|ep| a.pods.get(ep))
                    .collect();
                assert_eq!(status, 200, "{what}");
                let pod = body["pod"].as_str().unwrap().to_string();
                assert!(pods.contains(&pod), "{what}: answered by {pod}");
            }
            "redirect" => {
                assert_eq!(Some(status), e.redirect_status, "{what}");
                assert_eq!(
                    response_headers
                        .get("location")
                        .and_then(|v| v.to_str().ok()),
                    e.location.as_deref(),
                    "{what}"
                );
            }
            other => {
                let code: u16 = other[..3].parse().unwrap();
                assert_eq!(status, code, "{what}");
            }
        }
        outcomes.insert(e.outcome[..3].to_string());
    }
    assert!(
        ["for", "red", "404"].iter().all(|o| outcomes.contains(*o)),
        "the requests cover forwards, redirects and misses: {outcomes:?}"
    );
}

/// `kubectl mesh proxy-status` compares an agent's Plan hash with the Plan compiled from files:
/// the agent's (loaded through the slim check) equals the full compile's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_hash_is_the_hash_of_the_files_plan() {
    let _serial = SERIAL.lock().await;
    let a = start().await;
    let info = admin_json(&client(), a.admin, "/server_info").await;
    let source = mesh_model::load::FileSource {
        inputs: vec![mesh_model::load::Input::Path(a.dir.clone())],
    };
    let (objects, _) = mesh_model::load::ObjectSource::objects(&source, &Default::default());
    let plan = mesh_model::plan::compile(&mesh_model::Snapshot::new(objects));
    assert_eq!(
        info["plan_hash"],
        mesh_model::plan::render::plan_hash(&plan)
    );
    assert!(info["last_reload"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));
}
