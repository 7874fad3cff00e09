//! HTTPRoute `retry`: retried status codes, connection failures, the request body sent again,
//! the body limit, and the retry counter. (Upstream's HTTPRouteRetry cases run in
//! `upstream_replay`.)

mod support;

use support::{backend, gateway_yaml, route_yaml as route, service, spawn, CLASS};

const GATEWAY: &str = "127.0.2.80";

fn config() -> String {
    // Two endpoints, the first with nothing listening: connecting to it fails at once.
    let flaky = "apiVersion: v1\nkind: Service\nmetadata: {name: flaky, namespace: default}\nspec:\n  ports: [{name: http, port: 80, targetPort: 9000}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: flaky-1, namespace: default, labels: {kubernetes.io/service-name: flaky}}\naddressType: IPv4\nports: [{name: http, port: 9000}]\nendpoints: [{addresses: ['127.0.2.81']}, {addresses: ['127.0.2.82']}]\n";
    [
        CLASS.to_string(),
        gateway_yaml(8080),
        flaky.to_string(),
        service("default", "sim", 80, "127.0.2.83", 9000),
        route("conn", "/conn", "    retry: {attempts: 1}\n    backendRefs: [{name: flaky, port: 80}]\n"),
        route("once", "/once", "    backendRefs: [{name: flaky, port: 80}]\n"),
        route("codes", "/retry", "    retry: {codes: [503], attempts: 2, backoff: 10ms}\n    backendRefs: [{name: sim, port: 80}]\n"),
    ]
    .join("---\n")
}

#[tokio::test]
async fn retries_failed_connections_and_listed_codes_with_the_body() {
    backend("127.0.2.82:9000", "live", "default").await;
    let sim = backend("127.0.2.83:9000", "sim", "default").await;
    let dir = support::folder("retry");
    std::fs::write(dir.join("config.yaml"), config()).unwrap();
    let agent = spawn(
        &dir,
        &["--gateway-addr", GATEWAY, "--retry-body-limit", "64"],
    )
    .await;
    agent.loaded().await;
    let c = support::client();
    let url = |path: &str| format!("http://{GATEWAY}:8080{path}");

    // Round robin meets the dead endpoint every other request: with a retry each one is
    // sent on to the live one; without, half fail.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.get(url("/conn")).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let once: Vec<u16> = futures_util::future::join_all(
        (0..6).map(|_| async { c.get(url("/once")).send().await.unwrap().status().as_u16() }),
    )
    .await;
    assert!(
        once.contains(&503),
        "without retry the dead endpoint shows: {once:?}"
    );
    let stats = agent.stats().await;
    assert!(
        stats.lines().any(|l| l.starts_with(
            "envoy_cluster_upstream_rq_retry{envoy_cluster_name=\"default/flaky:80\"}"
        ) && !l.ends_with(" 0")),
        "{stats}"
    );

    // Two 503s, then success: the third attempt carries the same body.
    let ask = |uuid: &str, body: &'static str| {
        c.post(url(&format!(
            "/retry/x?responseCode=503&succeedAfter=2&uuid={uuid}"
        )))
        .body(body)
        .send()
    };
    let r = ask("a", "twelve bytes").await.unwrap();
    assert_eq!(r.status(), 200);
    let answered: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answered["body_bytes"], 12, "{answered}");
    assert_eq!(
        sim.lock()
            .unwrap()
            .iter()
            .filter(|s| s["query"].as_str().is_some_and(|q| q.ends_with("uuid=a")))
            .count(),
        1,
        "the simulator records only the attempt it answers 200"
    );
    // A body over --retry-body-limit is tried once: the first 503 is the answer.
    let big = "x".repeat(100);
    let r = c
        .post(url("/retry/x?responseCode=503&succeedAfter=1&uuid=b"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // A code the policy does not list is not retried.
    let r = c
        .get(url("/retry/x?responseCode=500&succeedAfter=1&uuid=c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
}
