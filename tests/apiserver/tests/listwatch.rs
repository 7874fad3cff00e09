//! The stand-in serves list and watch as kube-rs calls them.

use mesh_testapi::ApiServer;
use serde_json::{json, Value};

fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": 80}]}})
}

async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn lists_all_and_per_namespace() {
    let api = ApiServer::start(vec![service("a", "x"), service("b", "y"), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "g", "namespace": "a"}, "spec": {}})]).await;
    let (code, body) = get(format!(
        "{}/api/v1/services?limit=500&resourceVersion=0",
        api.url()
    ))
    .await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = get(format!("{}/api/v1/namespaces/b/services", api.url())).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, body) = get(format!(
        "{}/apis/gateway.networking.k8s.io/v1/gateways",
        api.url()
    ))
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "g");
    api.uninstall_group("gateway.networking.k8s.io");
    assert_eq!(
        get(format!(
            "{}/apis/gateway.networking.k8s.io/v1/gateways",
            api.url()
        ))
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn watch_streams_changes_after_the_resource_version() {
    let api = ApiServer::start(vec![service("a", "x")]).await;
    let (_, body) = get(format!("{}/api/v1/services", api.url())).await;
    let rv = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/v1/services?watch=true&resourceVersion={rv}&timeoutSeconds=2&allowWatchBookmarks=true", api.url());
    let watch = tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    api.apply(service("a", "z"));
    api.apply(service("a", "x"));
    api.delete(&service("a", "z"));
    let text = watch.await.unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"], "{text}");
}

/// kube-rs's own watcher, pointed at the stand-in through a kubeconfig, sees the initial list
/// and later changes of a custom resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watcher_sees_changes() {
    use futures_util::StreamExt;
    use kube::api::{Api, ApiResource, DynamicObject};
    use kube::runtime::watcher;
    let api = ApiServer::start(vec![service("a", "x")]).await;
    let kubeconfig: kube::config::Kubeconfig =
        kube::config::Kubeconfig::from_yaml(&api.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let ar = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let routes: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut events = watcher(routes, watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "a"}, "spec": {}});
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(e)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), events.next()).await
        else {
            continue;
        };
        match e.unwrap() {
            watcher::Event::InitDone => {
                seen.push("InitDone".to_string());
                api.apply(route.clone());
            }
            watcher::Event::Apply(o) => {
                seen.push(format!("Apply {}", o.metadata.name.unwrap()));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["InitDone", "Apply r"]);
}

/// Many watches at once (the webhook opens one per kind), a change arriving a second later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watches_at_once() {
    use futures_util::StreamExt;
    use kube::api::{Api, ApiResource, DynamicObject};
    use kube::runtime::watcher;
    let api = ApiServer::start(vec![service("a", "x")]).await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&api.kubeconfig()).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for plural in [
        "a1s",
        "a2s",
        "a3s",
        "a4s",
        "a5s",
        "a6s",
        "a7s",
        "a8s",
        "a9s",
        "a10s",
        "a11s",
        "httproutes",
    ] {
        let ar = ApiResource {
            group: "gateway.networking.k8s.io".into(),
            version: "v1".into(),
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "X".into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(e)) = events.next().await {
                if let watcher::Event::Apply(o) = e {
                    let _ = tx.send(o.metadata.name.unwrap_or_default());
                }
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    api.apply(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "late", "namespace": "a"}, "spec": {}}));
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
    assert_eq!(got.ok().flatten().as_deref(), Some("late"));
}
