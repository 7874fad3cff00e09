//! Partial validity: one bad object never takes the others down, and permission changes take
//! effect at the next reload (Gateway API's rules; the agent used to refuse a whole change).

mod support;

use support::{backend, get, service, spawn};

const GATEWAY: &str = "127.0.0.31";

fn namespaces(apps_label: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: gw, labels: {{kubernetes.io/metadata.name: gw, team: 'yes'}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: backend-ns, labels: {{kubernetes.io/metadata.name: backend-ns}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: apps, labels: {{kubernetes.io/metadata.name: apps, team: '{apps_label}'}}}}\n"
    )
}

fn gateway(from: &str) -> String {
    let allowed = match from {
        "Selector" => "{namespaces: {from: Selector, selector: {matchLabels: {team: 'yes'}}}}",
        other => return format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: gw}}\nspec:\n  gatewayClassName: mesh\n  listeners:\n  - {{name: http, port: 8080, protocol: HTTP, allowedRoutes: {{namespaces: {{from: {other}}}}}}}\n"),
    };
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: gw}}\nspec:\n  gatewayClassName: mesh\n  listeners:\n  - {{name: http, port: 8080, protocol: HTTP, allowedRoutes: {allowed}}}\n")
}

fn route(ns: &str, name: &str, path: &str, backend_ns: &str, backend: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: edge, namespace: gw}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]\n    backendRefs: [{{name: {backend}, namespace: {backend_ns}, port: 80}}]\n")
}

const GRANT: &str = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: allow-gw, namespace: backend-ns}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gw}]\n  to: [{group: '', kind: Service}]\n";

async fn status(path: &str) -> u16 {
    get(&format!("http://{GATEWAY}:8080{path}"), "example.com")
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_object_leaves_the_rest_serving_and_revocations_apply_at_once() {
    backend("127.0.1.31:9000", "a", "gw").await;
    backend("127.0.1.32:9000", "b", "backend-ns").await;
    backend("127.0.1.33:9000", "c", "apps").await;
    let dir = support::folder("partial");
    let files = [
        ("class.yaml", support::CLASS.to_string()),
        ("namespaces.yaml", namespaces("yes")),
        ("gateway.yaml", gateway("Selector")),
        (
            "services.yaml",
            [
                service("gw", "svc-a", 80, "127.0.1.31", 9000),
                service("backend-ns", "svc-b", 80, "127.0.1.32", 9000),
                service("apps", "svc-c", 80, "127.0.1.33", 9000),
            ]
            .join("---\n"),
        ),
        ("local.yaml", route("gw", "local", "/local", "gw", "svc-a")),
        (
            "cross.yaml",
            route("gw", "cross", "/cross", "backend-ns", "svc-b"),
        ),
        ("app.yaml", route("apps", "app", "/app", "apps", "svc-c")),
        ("grant.yaml", GRANT.to_string()),
    ];
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let agent = spawn(&dir, &["--gateway-addr", GATEWAY]).await;
    agent.loaded().await;
    for p in ["/local", "/cross", "/app"] {
        assert_eq!(status(p).await, 200, "{p}");
    }

    // A new route that admission would refuse (a path without its leading slash) and one
    // whose backend does not exist: the first is left out, the second gets its 500, and
    // nothing else changes.
    agent
        .write("bad.yaml", &route("gw", "bad", "nope", "gw", "svc-a"))
        .await;
    let info = agent
        .write(
            "dangling.yaml",
            &route("gw", "dangling", "/dangling", "gw", "missing"),
        )
        .await;
    for p in ["/local", "/cross", "/app"] {
        assert_eq!(status(p).await, 200, "{p} after a bad object was added");
    }
    assert_eq!(
        status("/dangling").await,
        500,
        "a missing backend's share is 500"
    );
    let left = info["left_out"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{info}");
    assert!(
        left[0]["what"]
            .as_str()
            .unwrap()
            .contains("HTTPRoute gw/bad"),
        "{info}"
    );
    assert!(
        left[0]["reason"].as_str().unwrap().contains("MESH2001"),
        "{info}"
    );
    assert_eq!(left[0]["kept_last_good"], false);
    let (code, ready) = agent.ready().await;
    assert_eq!(code, 200);
    assert!(
        ready.contains("HTTPRoute gw/bad") && ready.contains("not served"),
        "{ready}"
    );

    // A good route's new version that admission would refuse: its last good version serves.
    let info = agent
        .write(
            "local.yaml",
            &route("gw", "local", "local-v2", "gw", "svc-a"),
        )
        .await;
    assert_eq!(
        status("/local").await,
        200,
        "the last good version of gw/local serves"
    );
    assert!(
        info["left_out"]
            .to_string()
            .contains("its last good version serves")
            || info["left_out"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["kept_last_good"] == true),
        "{info}"
    );

    // A file that is no longer YAML: its objects keep their last good versions.
    let info = agent.write("app.yaml", "kind: [unclosed\n").await;
    assert_eq!(status("/app").await, 200, "{info}");
    agent
        .write("app.yaml", &route("apps", "app", "/app", "apps", "svc-c"))
        .await;

    // Revoking the ReferenceGrant revokes access at once: the cross-namespace share is 500.
    agent.remove("grant.yaml").await;
    assert_eq!(
        status("/cross").await,
        500,
        "the revoked grant is not honoured"
    );
    assert_eq!(status("/local").await, 200);

    // Relabelling the namespace detaches its routes from the Selector listener.
    agent.write("namespaces.yaml", &namespaces("no")).await;
    assert_eq!(
        status("/app").await,
        404,
        "apps no longer matches the selector"
    );
    agent.write("namespaces.yaml", &namespaces("yes")).await;
    assert_eq!(status("/app").await, 200);

    // Narrowing allowedRoutes to the Gateway's namespace detaches the apps route.
    agent.write("gateway.yaml", &gateway("Same")).await;
    assert_eq!(status("/app").await, 404, "allowedRoutes narrowed to Same");
    assert_eq!(status("/local").await, 200);

    // An emptied folder keeps the last good configuration and says so.
    let before = agent.server_info().await;
    let info = agent
        .change(|dir| {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                std::fs::remove_file(e.path()).unwrap();
            }
        })
        .await;
    assert!(
        info["last_reload_error"]
            .as_str()
            .unwrap_or("")
            .contains("no objects"),
        "{info}"
    );
    assert_eq!(info["plan_hash"], before["plan_hash"]);
    assert_eq!(status("/local").await, 200, "still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_at_start_is_not_ready_unless_allowed() {
    let dir = support::folder("empty");
    let agent = spawn(&dir, &["--gateway-addr", "127.0.0.32"]).await;
    agent.loaded().await;
    let (code, text) = agent.ready().await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("no objects"), "{text}");
    drop(agent);
    let dir = support::folder("empty-allowed");
    let agent = spawn(
        &dir,
        &["--gateway-addr", "127.0.0.32", "--allow-empty-config"],
    )
    .await;
    agent.loaded().await;
    assert_eq!(agent.ready().await.0, 200);
}
