//! TLS listeners sharing a port, told apart by the SNI of the ClientHello: an HTTPS listener
//! serves HTTP, a TLS Passthrough listener relays the handshake to a backend that terminates
//! it, a TLS Terminate listener completes the handshake with its own certificate and relays
//! the plaintext. A server name no TLS listener takes is closed without a handshake.

mod support;

#[path = "replay/l4.rs"]
mod l4;

use std::sync::Arc;

use mesh_echo::{Args, EchoProtocol};
use serde_json::json;
use support::{ca_and_server, secret, service, spawn, CLASS};

const GATEWAY: &str = "127.0.2.100";

/// The CA certificate of a `ca_and_server` ConfigMap.
fn ca_pem(config_map: &str) -> String {
    let start = config_map.find("-----BEGIN").expect("a certificate");
    let end = config_map
        .find("-----END CERTIFICATE-----")
        .expect("its end");
    config_map[start..end + "-----END CERTIFICATE-----".len()]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A client trusting only `ca` (PEM), sending no ALPN.
fn trusting(ca: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        rustls_pemfile::certs(&mut ca.as_bytes()).filter_map(Result::ok),
    );
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn echo(args: Args) {
    tokio::spawn(mesh_echo::serve(args).await.expect("backend address free"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_passthrough_and_terminate_share_a_port() {
    let (web_ca, web_cert) = ca_and_server("web-ca", &["web.example"]);
    let (term_ca, term_cert) = ca_and_server("term-ca", &["term.example", "only.example"]);
    let (pass_ca, pass_cert) = ca_and_server("pass-ca", &["pass.example"]);
    support::backend("127.0.2.101:8080", "web-0", "default").await;
    let mut pass = Args::new("127.0.2.102:8443".parse().unwrap(), "pass-0", "default");
    pass.protocol = EchoProtocol::Tcp;
    pass.tls = Some(pass_cert);
    echo(pass).await;
    let mut term = Args::new("127.0.2.103:3000".parse().unwrap(), "term-0", "default");
    term.protocol = EchoProtocol::Tcp;
    echo(term).await;

    let pem = |id: &mesh_echo::TlsIdentity| {
        (
            String::from_utf8(id.cert_pem.clone()).unwrap(),
            id.key_pem.clone(),
        )
    };
    let (web_crt, web_key) = pem(&web_cert);
    let (term_crt, term_key) = pem(&term_cert);
    let config = [
        CLASS.to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: default}\nspec:\n  gatewayClassName: mesh\n  listeners:\n  - {name: web, port: 8443, protocol: HTTPS, hostname: web.example, tls: {certificateRefs: [{name: web}]}}\n  - {name: pass, port: 8443, protocol: TLS, hostname: pass.example, tls: {mode: Passthrough}}\n  - {name: term, port: 8443, protocol: TLS, hostname: term.example, tls: {mode: Terminate, certificateRefs: [{name: term}]}}\n  - {name: only, port: 9443, protocol: TLS, hostname: only.example, tls: {mode: Terminate, certificateRefs: [{name: term}]}}\n".to_string(),
        secret("web", &web_crt, &web_key),
        secret("term", &term_crt, &term_key),
        service("default", "web", 80, "127.0.2.101", 8080),
        service("default", "pass", 8443, "127.0.2.102", 8443),
        service("default", "term", 3000, "127.0.2.103", 3000),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: default}\nspec:\n  parentRefs: [{name: edge, sectionName: web}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]\n".to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: pass, namespace: default}\nspec:\n  parentRefs: [{name: edge, sectionName: pass}]\n  hostnames: [pass.example]\n  rules: [{backendRefs: [{name: pass, port: 8443}]}]\n".to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: term, namespace: default}\nspec:\n  parentRefs: [{name: edge, sectionName: term}, {name: edge, sectionName: only}]\n  hostnames: [term.example, only.example]\n  rules: [{backendRefs: [{name: term, port: 3000}]}]\n".to_string(),
    ]
    .join("---\n");
    let dir = support::folder("tls-route");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;
    let addr = format!("{GATEWAY}:8443");

    // HTTPS: the listener's certificate, then HTTP routing.
    let https = reqwest::Client::builder()
        .use_preconfigured_tls((*trusting(&ca_pem(&web_ca))).clone())
        .resolve("web.example", addr.parse().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let answer: serde_json::Value = https
        .get("https://web.example:8443/")
        .send()
        .await
        .expect("the HTTPS listener answers")
        .json()
        .await
        .unwrap();
    assert_eq!(answer["pod"], "web-0");

    // Passthrough: the backend's own certificate, the backend sees the client's TLS.
    let passthrough = json!({"Backend": "pass", "Namespace": "default", "BackendIsTLS": true, "Hostname": "pass.example"});
    l4::tcp(
        &addr,
        Some((trusting(&ca_pem(&pass_ca)), "pass.example".into())),
        &passthrough,
    )
    .await
    .expect("passthrough reaches the TLS backend");

    // Terminate: the listener's certificate, the backend gets plaintext.
    let terminated = json!({"Backend": "term", "Namespace": "default", "BackendIsTLS": false});
    let term_client = trusting(&ca_pem(&term_ca));
    l4::tcp(
        &addr,
        Some((term_client.clone(), "term.example".into())),
        &terminated,
    )
    .await
    .expect("terminate reaches the plaintext backend");
    // Not the other way round: the gateway's certificate is not the passthrough backend's.
    assert!(l4::tcp(
        &addr,
        Some((term_client.clone(), "pass.example".into())),
        &passthrough
    )
    .await
    .is_err());

    // A port of TLS listeners only: their own name is served, another is closed unanswered.
    l4::tcp(
        &format!("{GATEWAY}:9443"),
        Some((term_client.clone(), "only.example".into())),
        &terminated,
    )
    .await
    .expect("the Terminate-only port serves its hostname");
    let err = l4::tcp(
        &format!("{GATEWAY}:9443"),
        Some((term_client, "term.example".into())),
        &terminated,
    )
    .await
    .expect_err("no listener of port 9443 takes term.example");
    assert!(
        err.contains("TLS handshake") && !err.contains("certificate"),
        "closed during the handshake, without a certificate: {err}"
    );
}
