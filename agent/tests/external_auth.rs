//! ExternalAuth against a real authorization service (`tests/authz`: Envoy's ext_authz gRPC
//! service from Envoy's Go API, and its HTTP counterpart): allowed requests reach the backend
//! with the service's headers, denied ones get the service's answer, the body goes to the
//! service up to `forwardBody.maxSize`, and a service that cannot be reached denies (fail
//! closed).

mod support;

use std::io::BufRead;

use support::{spawn, CLASS};

const GATEWAY: &str = "127.0.2.120";
const AUTHZ: &str = "127.0.2.121";
const BACKEND: &str = "127.0.2.122";

fn service(name: &str, port: u16, address: &str, target: u16) -> String {
    support::service("default", name, port, address, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pass_only_what_the_authorization_service_allows() {
    let authz = support::go_program("authz");
    let mut child = std::process::Command::new(authz)
        .args([format!("{AUTHZ}:9001"), format!("{AUTHZ}:9002")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the authorization service starts");
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let _authz = support::Killed(child);
    let seen = support::backend(&format!("{BACKEND}:8080"), "app-0", "default").await;

    let rule = |path: &str, auth: &str| {
        format!("  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    filters: [{{type: ExternalAuth, externalAuth: {auth}}}]\n    backendRefs: [{{name: app, port: 80}}]\n")
    };
    let route = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: app, namespace: default}}\nspec:\n  parentRefs: [{{name: edge}}]\n  rules:\n{}{}{}{}",
        rule("/http", "{protocol: HTTP, backendRef: {name: authz-http, port: 80}, http: {path: /check, allowedHeaders: [x-tenant], allowedResponseHeaders: [x-user, x-auth-path]}}"),
        rule("/grpc", "{protocol: GRPC, backendRef: {name: authz-grpc, port: 9000}, grpc: {}}"),
        rule("/body", "{protocol: HTTP, backendRef: {name: authz-http, port: 80}, http: {}, forwardBody: {maxSize: 16}}"),
        rule("/down", "{protocol: GRPC, backendRef: {name: authz-down, port: 9000}, grpc: {}}"),
    );
    let config = [
        CLASS.to_string(),
        support::gateway_yaml(8448),
        route,
        service("app", 80, BACKEND, 8080),
        service("authz-http", 80, AUTHZ, 9001),
        service("authz-grpc", 9000, AUTHZ, 9002),
        // Nothing listens there.
        service("authz-down", 9000, AUTHZ, 9003),
    ]
    .join("---\n");
    let dir = support::folder("external-auth");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;
    let c = support::client();
    let send = |path: &str, token: Option<&str>, body: Option<&str>| {
        let mut req = c
            .post(format!("http://{GATEWAY}:8448{path}"))
            .header("x-tenant", "t1");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("x-auth-body", b).body(b.to_string());
        }
        async move { req.send().await.unwrap() }
    };

    for path in ["/http/x?y=1", "/grpc/x?y=1"] {
        // Denied: the service's own answer, and the backend never sees the request.
        let before = seen.lock().unwrap().len();
        let r = send(path, Some("bad"), None).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["x-denied-by"], "authz", "{path}");
        assert_eq!(r.text().await.unwrap(), "denied by authz", "{path}");
        assert_eq!(
            seen.lock().unwrap().len(),
            before,
            "{path}: nothing forwarded"
        );
        // Allowed: forwarded with the service's headers.
        let r = send(path, Some("good"), None).await;
        assert_eq!(r.status(), 200, "{path}");
        let got: serde_json::Value = r.json().await.unwrap();
        assert_eq!(got["headers"]["x-user"][0], "alice", "{path}: {got}");
    }
    // The HTTP service was asked for the client's path behind the filter's prefix.
    let got: serde_json::Value = send("/http/x?y=1", Some("good"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["headers"]["x-auth-path"][0], "/check/http/x?y=1");
    // The gRPC service saw the method's path as the client sent it.
    let got: serde_json::Value = send("/grpc/x?y=1", Some("good"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["headers"]["x-auth-path"][0], "/grpc/x?y=1");

    // The body goes to the service (it allows only when it received what x-auth-body says);
    // one over forwardBody.maxSize is refused.
    assert_eq!(
        send("/body", Some("good"), Some("hello")).await.status(),
        200
    );
    assert_eq!(
        send("/body", Some("good"), Some("far more than sixteen bytes"))
            .await
            .status(),
        413
    );
    // A service that cannot be reached denies.
    assert_eq!(send("/down", Some("good"), None).await.status(), 403);
    // explain says the rule asks the service.
    let explained: serde_json::Value = agent
        .admin_json(&format!("/explain?url=http://{GATEWAY}:8448/grpc"))
        .await;
    assert_eq!(
        explained["authorization"],
        "gRPC ext_authz authorization by default/authz-grpc:9000; denied unless it allows",
        "{explained}"
    );
}
