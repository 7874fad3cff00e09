//! A loopback stand-in for the Kubernetes API server, for tests of code that lists and watches.
//!
//! No kube-apiserver can run on the machines this project is built on, so Kubernetes-facing code
//! (the webhook's cache, later the agent and `kubectl mesh analyze` against a cluster) is tested
//! against this: plain HTTP on 127.0.0.1, serving the list and watch endpoints of core and
//! custom resources the way kube-rs calls them, for objects the test provides. Objects added,
//! changed or deleted while it runs reach open watches as ADDED / MODIFIED / DELETED events.
//! A group can be marked as not installed (its resources answer 404, like a missing CRD).

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// One stored object and the resourceVersion of its last change.
type Key = (String, Option<String>, String); // (plural path "group/version/plural", namespace, name)

struct Event {
    rv: u64,
    kind: &'static str,
    resource: String,
    object: Value,
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    log: Vec<Event>,
    rv: u64,
    missing_groups: HashSet<String>,
}

pub struct ApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    _task: tokio::task::JoinHandle<()>,
}

/// `group/version/plural` of an object, from its apiVersion and kind (the plural is the
/// lower-cased kind plus "s", "es" after an s, "ies" for a y after a consonant: `gateways`,
/// `gatewayclasses`, `policies`).
pub fn resource_of(object: &Value) -> String {
    let api = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("").to_ascii_lowercase();
    let plural = if kind.ends_with('s') {
        format!("{kind}es")
    } else if let Some(stem) = kind
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    };
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    format!("{group}/{version}/{plural}")
}

fn key_of(object: &Value) -> Key {
    let meta = &object["metadata"];
    (
        resource_of(object),
        meta["namespace"].as_str().map(str::to_string),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

impl ApiServer {
    /// Serve `objects` on a free loopback port. Call from inside a tokio runtime.
    pub async fn start(objects: Vec<Value>) -> ApiServer {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(handle).with_state(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let server = ApiServer {
            addr,
            store,
            _task: task,
        };
        for o in objects {
            server.apply(o);
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context points at this server, as a file's text.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: test\n    namespace: default\ncurrent-context: stand-in\n",
            self.url()
        )
    }

    /// Make the resources of `group` answer 404, as when its CRDs are not installed.
    pub fn uninstall_group(&self, group: &str) {
        self.store
            .lock()
            .unwrap()
            .missing_groups
            .insert(group.to_string());
    }

    /// Create or replace an object; open watches see ADDED or MODIFIED.
    pub fn apply(&self, mut object: Value) {
        let mut store = self.store.lock().unwrap();
        store.rv += 1;
        let rv = store.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key_of(&object);
        let kind = if store.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store.log.push(Event {
            rv,
            kind,
            resource: key.0.clone(),
            object: object.clone(),
        });
        store.objects.insert(key, object);
    }

    /// Delete an object (matched by apiVersion, kind, namespace and name); watches see DELETED.
    pub fn delete(&self, object: &Value) {
        let mut store = self.store.lock().unwrap();
        let key = key_of(object);
        let Some(mut gone) = store.objects.remove(&key) else {
            return;
        };
        store.rv += 1;
        let rv = store.rv;
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        store.log.push(Event {
            rv,
            kind: "DELETED",
            resource: key.0,
            object: gone,
        });
    }
}

/// What a request path asks for: `group/version/plural` and an optional namespace.
fn parse_path(path: &str) -> Option<(String, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    match rest {
        [plural] => Some((
            group.to_string(),
            format!("{group}/{version}/{plural}"),
            None,
        )),
        ["namespaces", ns, plural] => Some((
            group.to_string(),
            format!("{group}/{version}/{plural}"),
            Some(ns.to_string()),
        )),
        _ => None,
    }
}

fn not_found(what: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("the server could not find the requested resource ({what})"), "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, axum::Json(status)).into_response()
}

type Shared = Arc<Mutex<Store>>;

/// Whether a stored object belongs to the requested resource (and namespace, if any).
fn selects(resource: &str, namespace: Option<&str>, res: &str, o: &Value) -> bool {
    res == resource && namespace.is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
}

/// Events after `since` for the resource, as watch lines.
fn events_after(
    store: &Store,
    resource: &str,
    namespace: Option<&str>,
    since: u64,
) -> Vec<(u64, Value)> {
    store
        .log
        .iter()
        .filter(|e| e.rv > since && selects(resource, namespace, &e.resource, &e.object))
        .map(|e| (e.rv, json!({"type": e.kind, "object": e.object})))
        .collect()
}

async fn handle(
    State(store): State<Shared>,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let Some((group, resource, namespace)) = parse_path(uri.path()) else {
        return not_found(uri.path());
    };
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if std::env::var_os("MESH_TESTAPI_LOG").is_some() {
        eprintln!("stand-in: GET {uri}");
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let guard = store.lock().unwrap();
    if guard.missing_groups.contains(&group) {
        return not_found(uri.path());
    }
    if !watching {
        let items: Vec<&Value> = guard
            .objects
            .iter()
            .filter(|(k, o)| selects(&resource, namespace.as_deref(), &k.0, o))
            .map(|(_, o)| o)
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": guard.rv.to_string()}, "items": items});
        return axum::Json(list).into_response();
    }
    drop(guard);
    // A watch: every change after resourceVersion, then changes as they happen (polled from
    // the event log), one JSON object per line, until the client's timeoutSeconds.
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures_util::stream::unfold(since, move |last| {
        let store = store.clone();
        let (resource, namespace) = (resource.clone(), namespace.clone());
        async move {
            loop {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                let fresh = events_after(
                    &store.lock().unwrap(),
                    &resource,
                    namespace.as_deref(),
                    last,
                );
                if let Some((rv, _)) = fresh.last() {
                    if std::env::var_os("MESH_TESTAPI_LOG").is_some() {
                        eprintln!(
                            "stand-in: watch {resource} delivers {} event(s) up to rv {rv}",
                            fresh.len()
                        );
                    }
                    let chunk: String = fresh.iter().map(|(_, v)| format!("{v}\n")).collect();
                    return Some((Ok::<_, Infallible>(Bytes::from(chunk)), *rv));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
