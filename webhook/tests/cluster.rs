//! mesh-webhook watching a cluster: the loopback API stand-in (tests/apiserver) serves list
//! and watch; the webhook binary connects through a kubeconfig, as it would to a real cluster.

use std::path::Path;
use std::time::Duration;

use mesh_testapi::ApiServer;
use serde_json::{json, Value};

mod support;

use support::root;

struct Webhook {
    running: support::Running,
    url: String,
    client: reqwest::Client,
}

/// Start the webhook in cluster mode against `api`, and wait until it is ready.
async fn start(api: &ApiServer, name: &str) -> Webhook {
    let dir = support::tempdir(&format!("cluster-{name}"));
    support::certs(&dir);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(support::ca(&dir))
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let running = support::serve(
        &format!("cluster-{name}"),
        dir,
        &["--debounce", "20ms"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let w = Webhook {
        url: running.url.clone(),
        running,
        client,
    };
    let ready = format!("{}/readyz", w.url);
    for _ in 0..200 {
        if w.client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return w;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the webhook never became ready (log: {})",
        w.running.dir.display()
    );
}

fn admission(operation: &str, object: &Value) -> Value {
    let api = object["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "uid-1", "kind": {"group": group, "version": version, "kind": object["kind"]},
        "resource": {"group": group, "version": version, "resource": "x"},
        "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
        "operation": operation, "userInfo": {"username": "test"},
        "object": if operation == "DELETE" { Value::Null } else { object.clone() },
        "oldObject": if operation == "CREATE" { Value::Null } else { object.clone() },
        "dryRun": false}})
}

async fn review(w: &Webhook, operation: &str, object: &Value) -> Value {
    let r = w
        .client
        .post(format!("{}/validate", w.url))
        .json(&admission(operation, object))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["response"].clone()
}

/// The response's denial message and warnings, as one text.
fn said(r: &Value) -> String {
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{}\n{}",
        r["status"]["message"].as_str().unwrap_or(""),
        warnings.join("\n")
    )
}

/// Review until the verdict changes to `allowed` (the cache catches up by watch).
async fn until_allowed(w: &Webhook, object: &Value, allowed: bool) -> Value {
    for _ in 0..100 {
        let r = review(w, "CREATE", object).await;
        if r["allowed"] == allowed {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("verdict never became allowed={allowed}");
}

fn objects_of(path: &Path) -> Vec<Value> {
    objects_of_text(&std::fs::read_to_string(path).unwrap())
}

fn objects_of_text(text: &str) -> Vec<Value> {
    mesh_model::load::load_str(text, mesh_model::Source::Stdin, &Default::default())
        .unwrap()
        .into_iter()
        .map(|mut o| {
            // Objects in a cluster always have a namespace, when namespaced.
            if let Some(ns) = &o.namespace {
                o.raw["metadata"]["namespace"] = json!(ns);
            }
            o.raw
        })
        .collect()
}

fn service(ns: &str, name: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": port}]}})
}

fn route(ns: &str, parent: &str, backend_ns: &str, backend: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "cart", "namespace": ns},
        "spec": {"parentRefs": [{"name": parent}], "rules": [{"backendRefs": [{"name": backend, "namespace": backend_ns, "port": 8080}]}]}})
}

fn gateway(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": "cilium", "listeners": [{"name": "web", "protocol": "HTTP", "port": 80}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_object_denials_and_objects_arriving_by_watch() {
    let api = ApiServer::start(vec![
        gateway("shop", "shop-gateway"),
        service("shop", "cart-v2", 8080),
        service("backends", "pricing", 8080),
    ])
    .await;
    let w = start(&api, "xobj").await;

    // Missing parent (NoMatchingParent), with the Gateway that does exist named.
    let r = review(
        &w,
        "CREATE",
        &route("shop", "shop-gatway", "shop", "cart-v2"),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        said(&r).contains("[MESH2101] spec.parentRefs[0]: Gateway shop/shop-gatway not found"),
        "{}",
        said(&r)
    );

    // A backend created after start-up arrives by watch and the verdict changes.
    let missing = route("shop", "shop-gateway", "shop", "cart-v3");
    let r = review(&w, "CREATE", &missing).await;
    assert!(
        said(&r)
            .contains("[MESH2104] spec.rules[0].backendRefs[0]: Service shop/cart-v3 not found"),
        "{}",
        said(&r)
    );
    api.apply(service("shop", "cart-v3", 8080));
    until_allowed(&w, &missing, true).await;

    // A cross-namespace backend needs a ReferenceGrant; one created later is seen by watch.
    let cross = route("shop", "shop-gateway", "backends", "pricing");
    let r = review(&w, "CREATE", &cross).await;
    assert!(said(&r).contains("[MESH2107]"), "{}", said(&r));
    api.apply(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ReferenceGrant", "metadata": {"name": "shop-routes", "namespace": "backends"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}], "to": [{"group": "", "kind": "Service"}]}}));
    until_allowed(&w, &cross, true).await;

    // Deleting the grant is allowed, with a warning naming the route that still needs it.
    api.apply(cross.clone());
    let grant = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ReferenceGrant", "metadata": {"name": "shop-routes", "namespace": "backends"}});
    let mut warned = Value::Null;
    for _ in 0..100 {
        warned = review(&w, "DELETE", &grant).await;
        if warned["warnings"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(warned["allowed"], true);
    assert!(said(&warned).contains("HTTPRoute shop/cart"), "{warned}");

    // Deleting a Gateway with attached routes warns too.
    let r = review(&w, "DELETE", &gateway("shop", "shop-gateway")).await;
    assert_eq!(r["allowed"], true);
    assert!(
        said(&r).contains("still referenced by HTTPRoute shop/cart"),
        "{r}"
    );

    // An object deleted from the cluster is gone from the cache.
    api.delete(&service("shop", "cart-v3", 8080));
    until_allowed(&w, &missing, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_claimed_twice_and_missing_crds() {
    let text =
        std::fs::read_to_string(root().join("examples/cilium/helloworld-traffic-shifting.yaml"))
            .unwrap();
    let mut cluster = objects_of_text(&text);
    let cec = cluster
        .iter()
        .find(|o| o["kind"] == "CiliumEnvoyConfig")
        .cloned()
        .unwrap();
    cluster.retain(|o| o["kind"] != "CiliumEnvoyConfig");
    cluster.push(cec.clone());
    let api = ApiServer::start(cluster).await;
    let w = start(&api, "cec").await;
    let mut canary = cec.clone();
    canary["metadata"]["name"] = json!("helloworld-canary");
    // Cilium accepts both objects, so the webhook warns rather than denies.
    let r = review(&w, "CREATE", &canary).await;
    assert_eq!(r["allowed"], true);
    assert!(said(&r).contains("[MESH5008] spec.services[0]: Service default/helloworld is also claimed by CiliumEnvoyConfig default/envoy-lb-listener"), "{}", said(&r));
    // The config itself, re-applied, is not its own rival.
    assert_eq!(review(&w, "UPDATE", &cec).await["allowed"], true);
    drop(w);

    // Without Cilium's CRDs the webhook still becomes ready, and still checks Gateway API.
    let api = ApiServer::start(vec![gateway("shop", "shop-gateway")]).await;
    api.uninstall_group("cilium.io");
    let w = start(&api, "nocilium").await;
    let r = review(&w, "CREATE", &route("shop", "nope", "shop", "cart")).await;
    assert!(said(&r).contains("[MESH2101]"), "{}", said(&r));
}

/// Every broken example, its objects as the cluster, each object reviewed: the expected code
/// denies (Error) or warns (Warning), naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_example_is_denied_or_warned() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("examples/broken")).unwrap() {
        let path = entry.unwrap().path();
        let code = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# expect: ").map(str::to_string))
            .unwrap();
        if mesh_model::rules::find(&code).is_some_and(mesh_model::rules::needs_secret_data) {
            continue;
        }
        let objects = objects_of(&path);
        let api = ApiServer::start(objects.clone()).await;
        let w = start(&api, path.file_stem().unwrap().to_str().unwrap()).await;
        let rule = mesh_model::rules::find(&code).unwrap();
        let mut seen = false;
        for o in &objects {
            let r = review(&w, "UPDATE", o).await;
            let text = said(&r);
            if text.contains(&format!("[{code}]")) {
                seen = true;
                // An Error denies, with the code in the message; a Warning is sent as a
                // warning (other, real errors of the same object may deny it too).
                let place = if rule.level == mesh_model::Level::Error {
                    assert_eq!(r["allowed"], false, "{}: {text}", path.display());
                    r["status"]["message"].as_str().unwrap_or("").to_string()
                } else {
                    r["warnings"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                assert!(
                    place.contains(&format!("[{code}] spec."))
                        || place.contains(&format!("[{code}] metadata.")),
                    "{}: the field is named: {text}",
                    path.display()
                );
            }
        }
        assert!(seen, "{}: {code} not reported", path.display());
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

/// Every clean example, with all of them as the cluster, is allowed: cluster mode adds no
/// false positives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_examples_are_allowed_against_the_cluster() {
    let mut objects = Vec::new();
    for dir in mesh_model::testing::CLEAN_EXAMPLES {
        for entry in std::fs::read_dir(root().join("examples").join(dir)).unwrap() {
            objects.extend(objects_of(&entry.unwrap().path()));
        }
    }
    let api = ApiServer::start(objects.clone()).await;
    let w = start(&api, "clean").await;
    for o in &objects {
        let r = review(&w, "UPDATE", o).await;
        assert_eq!(
            r["allowed"],
            true,
            "{}: {}",
            o["metadata"]["name"],
            said(&r)
        );
        assert!(
            r["warnings"].is_null(),
            "{}: {}",
            o["metadata"]["name"],
            said(&r)
        );
    }
    let metrics = w
        .client
        .get(format!("{}/metrics", w.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("mesh_webhook_cache_objects {}", objects.len())),
        "{metrics}"
    );
}

/// Until every kind's initial list is in, the webhook is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_cache_syncs() {
    let dir = support::tempdir("unsynced");
    support::certs(&dir);
    // An API server address where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://{closed}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(support::ca(&dir))
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let w = support::serve("unsynced", dir, &[], &[("KUBECONFIG", &kubeconfig)]);
    for _ in 0..5 {
        let r = client
            .get(format!("{}/readyz", w.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("not synced"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        client
            .get(format!("{}/healthz", w.url))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "alive, just not ready"
    );
}
