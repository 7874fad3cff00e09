//! TLS material is checked when it is loaded: a Secret whose key is garbage, zeroed or of
//! another certificate takes its listener out of service (ResolvedRefs False,
//! InvalidCertificateRef), visibly, while the other listeners keep serving.

mod support;

use support::{backend, ca_and_server, secret, service, spawn};

const GATEWAY: &str = "127.0.0.51";

fn config() -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: mesh}}\nspec: {{controllerName: kubectl-mesh.io/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  listeners:\n  - {{name: good, port: 8443, protocol: HTTPS, hostname: good.example, tls: {{certificateRefs: [{{name: good}}]}}}}\n  - {{name: bad, port: 9443, protocol: HTTPS, hostname: bad.example, tls: {{certificateRefs: [{{name: bad}}]}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: all, namespace: default}}\nspec:\n  parentRefs: [{{name: edge}}]\n  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]\n---\n{}", service("default", "svc", 80, "127.0.1.51", 9000))
}

async fn https(port: u16, host: &str) -> Result<u16, String> {
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(host, format!("{GATEWAY}:{port}").parse().unwrap())
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    c.get(format!("https://{host}:{port}/"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_takes_only_its_listener_out_and_says_so() {
    backend("127.0.1.51:9000", "echo", "default").await;
    let good = rcgen::generate_simple_self_signed(vec!["good.example".into()]).unwrap();
    let bad = rcgen::generate_simple_self_signed(vec!["bad.example".into()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let dir = support::folder("tls-material");
    std::fs::write(dir.join("config.yaml"), config()).unwrap();
    std::fs::write(
        dir.join("good.yaml"),
        secret(
            "good",
            &good.cert.pem(),
            good.signing_key.serialize_pem().as_bytes(),
        ),
    )
    .unwrap();
    // The bad listener's key belongs to another certificate.
    std::fs::write(
        dir.join("bad.yaml"),
        secret("bad", &bad.cert.pem(), other.serialize_pem().as_bytes()),
    )
    .unwrap();
    let agent = spawn(
        &dir,
        &["--gateway-addr", GATEWAY, "--tls-handshake-timeout", "1s"],
    )
    .await;
    let info = agent.loaded().await;
    assert_eq!(https(8443, "good.example").await, Ok(200), "{info}");
    // A client that never sends its ClientHello is closed by the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect((GATEWAY, 8443))
        .await
        .unwrap();
    assert!(
        support::closed_within(&mut silent, std::time::Duration::from_secs(15)).await,
        "an HTTPS connection without a ClientHello stays open"
    );
    assert!(
        https(9443, "bad.example").await.is_err(),
        "a listener with a mismatched key serves"
    );
    assert!(info["findings"]["errors"].as_u64().unwrap() >= 1, "{info}");

    // Garbage and zeroed keys in the good Secret: that listener stops being programmed too,
    // and the agent says why instead of failing every handshake silently.
    for key in [
        b"-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n".to_vec(),
        vec![0u8; 241],
    ] {
        let info = agent
            .write("good.yaml", &secret("good", &good.cert.pem(), &key))
            .await;
        assert!(https(8443, "good.example").await.is_err(), "{info}");
        assert!(info["findings"]["errors"].as_u64().unwrap() >= 2, "{info}");
    }
    // Mended: served again.
    agent
        .write(
            "good.yaml",
            &secret(
                "good",
                &good.cert.pem(),
                good.signing_key.serialize_pem().as_bytes(),
            ),
        )
        .await;
    assert_eq!(https(8443, "good.example").await, Ok(200));
}

#[test]
fn analyze_reports_a_key_of_another_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let text = format!(
        "{}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  listeners: [{{name: a, port: 443, protocol: HTTPS, hostname: a.example, tls: {{certificateRefs: [{{name: s}}]}}}}]\n",
        secret("s", &cert.cert.pem(), other.serialize_pem().as_bytes())
    );
    let objects =
        mesh_model::load::load_str(&text, mesh_model::Source::Stdin, &Default::default()).unwrap();
    let snap = mesh_model::Snapshot::new(objects);
    let findings = mesh_model::rules::check(&snap);
    let f = findings
        .iter()
        .find(|d| d.code == "MESH1106")
        .expect("MESH1106");
    assert!(
        f.message.contains("does not belong to the certificate"),
        "{f}"
    );
    assert_eq!(f.reason, Some("InvalidCertificateRef"));
}

/// A CA as a ConfigMap of `ca.crt`, and a client certificate (PEM cert + key) it issued.
fn ca_and_client(name: &str) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["client.example".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata:\n  ca.crt: |\n    {}\n",
        ca.pem().trim_end().replace('\n', "\n    ")
    );
    (config_map, format!("{}{}", cert.pem(), key.serialize_pem()))
}

/// GET over TLS on `port` presenting `identity` (PEM cert + key), if any.
async fn https_as(port: u16, identity: Option<&str>) -> Result<u16, String> {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("good.example", format!("{GATEWAY}:{port}").parse().unwrap())
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy();
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build()
        .unwrap()
        .get(format!("https://good.example:{port}/"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_against_the_ca_in_force() {
    backend("127.0.1.52:9000", "echo", "default").await;
    let server = rcgen::generate_simple_self_signed(vec!["good.example".into()]).unwrap();
    let (ca1, client1) = ca_and_client("client-ca");
    let (ca2, client2) = ca_and_client("client-ca");
    let dir = support::folder("tls-mtls");
    let config = format!("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: mesh}}\nspec: {{controllerName: kubectl-mesh.io/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  tls:\n    frontend:\n      default:\n        validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: client-ca}}]}}\n      perPort:\n      - port: 9444\n        tls:\n          validation: {{mode: AllowInsecureFallback, caCertificateRefs: [{{group: '', kind: ConfigMap, name: client-ca}}]}}\n  listeners:\n  - {{name: strict, port: 8444, protocol: HTTPS, tls: {{certificateRefs: [{{name: good}}]}}}}\n  - {{name: lax, port: 9444, protocol: HTTPS, tls: {{certificateRefs: [{{name: good}}]}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: all, namespace: default}}\nspec:\n  parentRefs: [{{name: edge}}]\n  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]\n---\n{}---\n{}", service("default", "svc", 80, "127.0.1.52", 9000), secret("good", &server.cert.pem(), server.signing_key.serialize_pem().as_bytes()));
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    std::fs::write(dir.join("ca.yaml"), &ca1).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;

    // AllowValidOnly: a certificate of the CA passes; none, or another CA's, is refused.
    assert_eq!(https_as(8444, Some(&client1)).await, Ok(200));
    assert!(https_as(8444, None).await.is_err(), "no client certificate");
    assert!(
        https_as(8444, Some(&client2)).await.is_err(),
        "another CA's certificate"
    );
    // AllowInsecureFallback on the per-port entry: asked for, never required.
    assert_eq!(https_as(9444, None).await, Ok(200));
    assert_eq!(https_as(9444, Some(&client2)).await, Ok(200));

    // The CA is replaced: the old client is refused on its next handshake, the new one passes.
    agent.write("ca.yaml", &ca2).await;
    assert!(
        https_as(8444, Some(&client1)).await.is_err(),
        "a revoked CA still passes"
    );
    assert_eq!(https_as(8444, Some(&client2)).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policies_originate_tls_and_check_the_backend() {
    let (ca, identity) = ca_and_server(
        "backend-ca",
        &[
            "backend.example",
            "spiffe://cluster.local/ns/default/sa/backend",
        ],
    );
    let (other_ca, _) = ca_and_server("other-ca", &["backend.example"]);
    let run = mesh_echo::serve(mesh_echo::Args {
        tls: Some(identity),
        ..mesh_echo::Args::new("127.0.1.53:9443".parse().unwrap(), "tls-backend", "default")
    })
    .await
    .unwrap();
    tokio::spawn(run);
    let policy = |name: &str, svc: &str, ca: &str, validation: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  targetRefs: [{{group: '', kind: Service, name: {svc}}}]\n  validation:\n    caCertificateRefs: [{{group: '', kind: ConfigMap, name: {ca}}}]\n    {validation}\n")
    };
    let route = |path: &str, svc: &str| {
        support::route_yaml(
            path.trim_start_matches('/'),
            path,
            &format!("    backendRefs: [{{name: {svc}, port: 443}}]\n"),
        )
    };
    let config = [
        support::CLASS.to_string(),
        support::gateway_yaml(8445),
        ca.clone(),
        other_ca,
        service("default", "good", 443, "127.0.1.53", 9443),
        service("default", "by-uri", 443, "127.0.1.53", 9443),
        service("default", "wrong-name", 443, "127.0.1.53", 9443),
        service("default", "wrong-ca", 443, "127.0.1.53", 9443),
        policy("good", "good", "backend-ca", "hostname: backend.example"),
        policy("by-uri", "by-uri", "backend-ca", "hostname: other.example\n    subjectAltNames: [{type: URI, uri: 'spiffe://cluster.local/ns/default/sa/backend'}]"),
        policy("wrong-name", "wrong-name", "backend-ca", "hostname: elsewhere.example"),
        policy("wrong-ca", "wrong-ca", "other-ca", "hostname: backend.example"),
        route("/good", "good"),
        route("/by-uri", "by-uri"),
        route("/wrong-name", "wrong-name"),
        route("/wrong-ca", "wrong-ca"),
    ]
    .join("---\n");
    let dir = support::folder("backend-tls");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;
    let c = support::client();
    let get = |path: &str| {
        let c = c.clone();
        let url = format!("http://{GATEWAY}:8445{path}");
        async move { c.get(url).send().await.unwrap() }
    };
    let r = get("/good").await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["tls"]["serverName"], "backend.example", "{seen}");
    // subjectAltNames replace the hostname check; the hostname is still the SNI.
    let r = get("/by-uri").await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["tls"]["serverName"], "other.example", "{seen}");
    // A certificate without the policy's hostname, or of another CA: no connection, 503.
    assert_eq!(get("/wrong-name").await.status(), 503);
    assert_eq!(get("/wrong-ca").await.status(), 503);
}

/// The Gateway's `spec.tls.backend.clientCertificateRef` is shown to backends it originates
/// TLS to, and stops being shown at once when the ReferenceGrant that let the Gateway use a
/// Secret of another namespace is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_show_their_client_certificate_to_tls_backends() {
    let (ca, identity) = ca_and_server("backend-ca", &["backend.example"]);
    let (_, client) = ca_and_server("client-ca", &["gateway.example"]);
    let run = mesh_echo::serve(mesh_echo::Args {
        tls: Some(identity),
        ..mesh_echo::Args::new("127.0.1.54:9443".parse().unwrap(), "tls-backend", "default")
    })
    .await
    .unwrap();
    tokio::spawn(run);
    let client_pem = String::from_utf8(client.cert_pem.clone()).unwrap();
    let config = [
        support::CLASS.to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: default}\nspec:\n  gatewayClassName: mesh\n  listeners: [{name: http, port: 8446, protocol: HTTP}]\n  tls: {backend: {clientCertificateRef: {name: client, namespace: certs}}}\n".to_string(),
        ca,
        secret("client", &client_pem, &client.key_pem).replace("namespace: default", "namespace: certs"),
        service("default", "backend", 443, "127.0.1.54", 9443),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: backend, namespace: default}\nspec:\n  targetRefs: [{group: '', kind: Service, name: backend}]\n  validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: backend-ca}], hostname: backend.example}\n".to_string(),
        support::route_yaml("all", "/", "    backendRefs: [{name: backend, port: 443}]\n"),
    ]
    .join("---\n");
    let dir = support::folder("backend-client-cert");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    std::fs::write(
        dir.join("grant.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: gateways, namespace: certs}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]\n  to: [{group: '', kind: Secret}]\n",
    )
    .unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;
    let shown = || async {
        let r = support::client()
            .get(format!("http://{GATEWAY}:8446/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let seen: serde_json::Value = r.json().await.unwrap();
        seen["tls"]["peerCertificates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let certs = shown().await;
    assert_eq!(certs.len(), 1, "the Gateway's certificate is shown");
    assert_eq!(
        certs[0].as_str().unwrap().trim(),
        client_pem.replace("\r\n", "\n").trim()
    );
    agent.remove("grant.yaml").await;
    assert!(
        shown().await.is_empty(),
        "without the ReferenceGrant the Secret is not used"
    );
}
