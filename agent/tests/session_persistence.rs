//! Session persistence (a rule's `sessionPersistence`): the first request of a session gets a
//! token (a cookie, or a header), and requests bearing it go to the same endpoint while that
//! endpoint serves the rule; an expired, forged or stale token starts a new session.

mod support;

use std::time::Duration;

use support::{spawn, CLASS};

const GATEWAY: &str = "127.0.2.110";
const PODS: [&str; 3] = ["127.0.2.111", "127.0.2.112", "127.0.2.113"];

fn slice(addresses: &[&str]) -> String {
    let endpoints: Vec<String> = addresses
        .iter()
        .map(|a| format!("{{addresses: ['{a}'], conditions: {{ready: true}}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: app-1\n  namespace: default\n  labels: {{kubernetes.io/service-name: app}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{}]\n",
        endpoints.join(", ")
    )
}

/// GET `path` with `headers`; the answering pod and the response's headers.
async fn get(path: &str, headers: &[(&str, &str)]) -> (String, reqwest::header::HeaderMap) {
    let mut req = support::client().get(format!("http://{GATEWAY}:8447{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let body: serde_json::Value = resp.json().await.unwrap();
    (body["pod"].as_str().unwrap_or("").to_string(), headers)
}

/// The `name=value` part of a Set-Cookie.
fn cookie_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let set = headers.get("set-cookie")?.to_str().ok()?;
    Some(set.split(';').next()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stick_to_their_endpoint() {
    for (i, addr) in PODS.iter().enumerate() {
        support::backend(&format!("{addr}:8080"), &format!("pod-{i}"), "default").await;
    }
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: app, namespace: default}\nspec:\n  parentRefs: [{name: edge}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /cookie}}]\n    sessionPersistence: {sessionName: sticky, absoluteTimeout: 1h, cookieConfig: {lifetimeType: Permanent}}\n    backendRefs: [{name: app, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /header}}]\n    sessionPersistence: {sessionName: x-session, type: Header, absoluteTimeout: 1s}\n    backendRefs: [{name: app, port: 80}]\n  - backendRefs: [{name: app, port: 80}]\n";
    let config = [
        CLASS.to_string(),
        support::gateway_yaml(8447),
        route.to_string(),
    ]
    .join("---\n");
    let dir = support::folder("session-persistence");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    std::fs::write(dir.join("app.yaml"), slice(&PODS)).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;

    // Without persistence, requests spread over the three pods.
    let mut spread = std::collections::BTreeSet::new();
    for _ in 0..6 {
        spread.insert(get("/other", &[]).await.0);
    }
    assert_eq!(spread.len(), 3, "{spread:?}");

    // A cookie session: the first answer sets it, later requests bearing it stay.
    let (first, headers) = get("/cookie/a", &[]).await;
    let set = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("sticky="), "{set}");
    assert!(set.contains("; Path=/cookie; HttpOnly; Max-Age="), "{set}");
    let cookie = cookie_of(&headers).unwrap();
    for _ in 0..6 {
        let with = format!("other=1; {cookie}");
        let (pod, headers) = get("/cookie/b", &[("cookie", &with)]).await;
        assert_eq!(pod, first, "the session's endpoint");
        assert!(
            headers.get("set-cookie").is_none(),
            "no idle timeout: no new token"
        );
    }
    // A forged token starts a new session.
    let (_, headers) = get("/cookie", &[("cookie", "sticky=forged")]).await;
    assert!(cookie_of(&headers).is_some_and(|c| c != "sticky=forged"));

    // The pinned endpoint leaves the Service: a new endpoint and a new session.
    let left: Vec<&str> = PODS
        .iter()
        .enumerate()
        .filter(|(i, _)| format!("pod-{i}") != first)
        .map(|(_, a)| *a)
        .collect();
    agent.write("app.yaml", &slice(&left)).await;
    let (moved, headers) = get("/cookie", &[("cookie", &cookie)]).await;
    assert_ne!(moved, first);
    let renewed = cookie_of(&headers).expect("a new session's cookie");
    assert_eq!(get("/cookie", &[("cookie", &renewed)]).await.0, moved);

    // A header session, which ends a second after it began.
    let (pinned, headers) = get("/header", &[]).await;
    let token = headers["x-session"].to_str().unwrap().to_string();
    let (pod, headers) = get("/header", &[("x-session", &token)]).await;
    assert_eq!(pod, pinned);
    assert!(headers.get("x-session").is_none(), "the session goes on");
    // Past the timeout the token no longer pins: whichever endpoint answers, the answer
    // carries a new session's token.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, headers) = get("/header", &[("x-session", &token)]).await;
    let fresh = headers["x-session"].to_str().unwrap().to_string();
    assert_ne!(fresh, token);
    // explain says the rule keeps sessions.
    let explained: serde_json::Value = agent
        .admin_json(&format!("/explain?url=http://{GATEWAY}:8447/cookie"))
        .await;
    assert!(
        explained["session"]
            .as_str()
            .is_some_and(|s| s.starts_with("cookie sticky (Path /cookie, permanent lifetime)")),
        "{explained}"
    );
}
