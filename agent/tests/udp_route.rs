//! UDPRoute: a UDP listener relays each client's datagrams to one backend chosen by weight for
//! its flow, the backend's replies come back to that client, and a flow idle past
//! `--udp-idle-timeout` ends (its next datagram opens a new one).

mod support;

use std::time::Duration;

use support::{service, spawn, CLASS};
use tokio::net::UdpSocket;

const GATEWAY: &str = "127.0.2.95";

/// A UDP server on `addr` answering each datagram with `name:` and the datagram.
async fn udp_backend(addr: &str, name: &'static str) {
    let socket = UdpSocket::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
}

/// Send `text` from `client` to the listener and read the reply.
async fn ask(client: &UdpSocket, text: &str) -> String {
    client
        .send_to(text.as_bytes(), (GATEWAY, 5353))
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), client.recv_from(&mut buf))
        .await
        .expect("a reply")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_routes_keep_a_flow_per_client() {
    udp_backend("127.0.2.96:5300", "a").await;
    udp_backend("127.0.2.97:5300", "b").await;
    let config = [
        CLASS.to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: dns, namespace: default}\nspec:\n  gatewayClassName: mesh\n  listeners: [{name: dns, port: 5353, protocol: UDP, allowedRoutes: {kinds: [{kind: UDPRoute}]}}]\n".to_string(),
        service("default", "a", 53, "127.0.2.96", 5300),
        service("default", "b", 53, "127.0.2.97", 5300),
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {name: dns, namespace: default}\nspec:\n  parentRefs: [{name: dns}]\n  rules: [{backendRefs: [{name: a, port: 53}, {name: b, port: 53}]}]\n".to_string(),
    ]
    .join("---\n");
    let dir = support::folder("udp-route");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(
        &dir,
        &["--gateway-addr", GATEWAY, "--udp-idle-timeout", "300ms"],
    )
    .await;
    agent.loaded().await;

    // One client: every datagram of its flow goes to the same backend, and comes back.
    let one = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let first = ask(&one, "q1").await;
    let backend = first.split(':').next().unwrap().to_string();
    assert!(first.ends_with(":q1"), "{first}");
    for q in ["q2", "q3", "q4"] {
        assert_eq!(
            ask(&one, q).await,
            format!("{backend}:{q}"),
            "a flow keeps its backend"
        );
    }
    // Clients spread over both backends (equal weights).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        seen.insert(ask(&c, "x").await.split(':').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Idle past the timeout: the flow ended, the next datagram opens a new one (and is
    // still answered).
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(ask(&one, "again").await.ends_with(":again"));
}
