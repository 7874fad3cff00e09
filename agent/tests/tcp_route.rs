//! TCPRoute: a TCP listener relays each connection to the route's backends by weight, bytes
//! untouched both ways; a listener without a route closes connections.

mod support;

use support::{service, spawn, CLASS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GATEWAY: &str = "127.0.2.90";

/// A TCP server on `addr` that greets with its name, then echoes what it reads.
async fn tcp_backend(addr: &str, name: &'static str) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// Connect to `port`, read the greeting, send `ping`, read it back.
async fn exchange(port: u16) -> Result<(String, String), String> {
    let mut s = tokio::net::TcpStream::connect((GATEWAY, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut buf))
        .await
        .map_err(|_| "no greeting".to_string())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed".into());
    }
    let greeting = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    Ok((greeting, String::from_utf8_lossy(&buf[..n]).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_routes_relay_by_weight() {
    tcp_backend("127.0.2.91:7000", "v1").await;
    tcp_backend("127.0.2.92:7000", "v2").await;
    let config = [
        CLASS.to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: tcp, namespace: default}\nspec:\n  gatewayClassName: mesh\n  listeners:\n  - {name: db, port: 5432, protocol: TCP, allowedRoutes: {kinds: [{kind: TCPRoute}]}}\n  - {name: idle, port: 5433, protocol: TCP, allowedRoutes: {kinds: [{kind: TCPRoute}]}}\n".to_string(),
        service("default", "v1", 7000, "127.0.2.91", 7000),
        service("default", "v2", 7000, "127.0.2.92", 7000),
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: db, namespace: default}\nspec:\n  parentRefs: [{name: tcp, sectionName: db}]\n  rules: [{backendRefs: [{name: v1, port: 7000, weight: 3}, {name: v2, port: 7000, weight: 1}]}]\n".to_string(),
    ]
    .join("---\n");
    let dir = support::folder("tcp-route");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;

    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (greeting, echoed) = exchange(5432).await.unwrap();
        assert_eq!(echoed, "ping", "bytes come back untouched");
        *counts.entry(greeting).or_insert(0) += 1;
    }
    // Weighted 3:1 (the proxy's weighted pick is deterministic per request count).
    assert_eq!(counts.get("v1"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("v2"), Some(&10), "{counts:?}");
    // A TCP listener without a route accepts and closes.
    assert!(exchange(5433).await.is_err());
}
