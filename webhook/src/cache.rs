//! The cluster cache: one kube-rs watcher per kind the rules read, feeding the Cluster the
//! reviews use.
//!
//! Objects are watched as `DynamicObject` (raw JSON, so the model's loader sees every field)
//! at the newest version the API server serves. A kind whose CRD is not installed is skipped
//! with one log line. Secrets keep only metadata and type: their data is dropped as each event
//! arrives and never cached. After the initial lists (readiness), changes are batched: the
//! Cluster is rebuilt at most once per `debounce` and swapped in for new reviews.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::{watcher, WatchStreamExt};
use mesh_model::kind::{KindInfo, KINDS};
use mesh_model::load::{build, LoadOptions};
use mesh_model::yaml::Lines;
use mesh_model::{Kind, Object, Source};
use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::review::ClusterView;
use crate::server::AppState;

type Key = (Kind, Option<String>, String);

#[derive(Default)]
struct Store {
    objects: HashMap<Key, Arc<Object>>,
    /// Kinds whose initial list is in (or that are not served at all).
    settled: HashSet<Kind>,
    /// Kinds actually watched: the Cluster is complete for these.
    watched: Vec<Kind>,
}

#[derive(Default)]
struct Cache {
    store: Mutex<Store>,
    changed: Notify,
}

/// A model object of a watched object of `ar`; Secrets lose their data here.
///
/// The API server leaves `apiVersion` and `kind` out of the items of a list of built-in
/// kinds (Services, EndpointSlices, Namespaces, ConfigMaps: only custom resources carry them),
/// so they are put back from the resource watched: without them the model cannot tell what the
/// object is.
fn to_object(ar: &ApiResource, kind: Kind, mut obj: DynamicObject) -> Option<Object> {
    if obj.types.is_none() {
        obj.types = Some(kube::api::TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
    }
    // What each field manager owns: no rule reads it, and it is most of a stored object's
    // size (kubectl hides it too).
    obj.metadata.managed_fields = None;
    let mut raw = serde_json::to_value(obj).ok()?;
    // The rules need to know these exist, not what they hold: keys and CA bundles stay out
    // of the webhook's memory. A ConfigMap keeps the names of its keys (a CA bundle without
    // `ca.crt` is refused), with empty values.
    if matches!(kind, Kind::Secret | Kind::ConfigMap) {
        if let Some(map) = raw.as_object_mut() {
            let keys: serde_json::Map<String, serde_json::Value> = map
                .get("data")
                .and_then(serde_json::Value::as_object)
                .map(|d| d.keys().map(|k| (k.clone(), "".into())).collect())
                .unwrap_or_default();
            map.remove("data");
            map.remove("stringData");
            map.remove("binaryData");
            if kind == Kind::ConfigMap {
                map.insert("data".into(), keys.into());
            }
        }
    }
    let o = build(
        raw,
        Lines::flat(0),
        &Source::Cluster("cluster".into()),
        &LoadOptions::default(),
        Vec::new(),
    );
    Some(o)
}

/// The cache's key of an object; None (logged: never a silent drop) when the model does not
/// know it as the kind it was watched as.
fn key(o: &Object) -> Option<Key> {
    let key = o
        .known
        .map(|kind| (kind, o.namespace.clone(), o.name.clone()));
    if key.is_none() {
        tracing::warn!(
            api_version = o.raw["apiVersion"].as_str().unwrap_or(""),
            kind = o.raw["kind"].as_str().unwrap_or(""),
            name = %o.name,
            "watched object of an unknown kind; not cached"
        );
    }
    key
}

fn api_resource(info: &KindInfo, version: &str) -> ApiResource {
    ApiResource {
        group: info.group.to_string(),
        version: version.to_string(),
        api_version: if info.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", info.group)
        },
        kind: info.name.to_string(),
        plural: info.plural.to_string(),
    }
}

/// The newest served version of a kind, or None when its CRD is not installed.
async fn served_version(client: &kube::Client, info: &KindInfo) -> Option<ApiResource> {
    for version in info.served {
        let ar = api_resource(info, version);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => return Some(ar),
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(e) => {
                    tracing::warn!(kind = info.name, error = %e, "cannot list; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
    None
}

impl Cache {
    fn settle(&self, kind: Kind) {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .settled
            .insert(kind);
        self.changed.notify_one();
    }

    async fn watch(self: Arc<Self>, client: kube::Client, info: &'static KindInfo) {
        let Some(ar) = served_version(&client, info).await else {
            tracing::info!(
                kind = info.name,
                group = info.group,
                "not served (CRD not installed); not watched"
            );
            self.settle(info.kind);
            return;
        };
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watched
            .push(info.kind);
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut buffer: Vec<Arc<Object>> = Vec::new();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(kind = info.name, error = %e, "watch failed; retrying");
                    continue;
                }
            };
            let name = match &event {
                watcher::Event::Apply(o)
                | watcher::Event::Delete(o)
                | watcher::Event::InitApply(o) => o.metadata.name.clone().unwrap_or_default(),
                _ => String::new(),
            };
            tracing::debug!(kind = info.name, event = ?std::mem::discriminant(&event), name, "watch event");
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                watcher::Event::Init => buffer.clear(),
                watcher::Event::InitApply(o) => {
                    buffer.extend(to_object(&ar, info.kind, o).map(Arc::new))
                }
                watcher::Event::InitDone => {
                    store.objects.retain(|k, _| k.0 != info.kind);
                    for o in buffer.drain(..) {
                        if let Some(k) = key(&o) {
                            store.objects.insert(k, o);
                        }
                    }
                    store.settled.insert(info.kind);
                }
                watcher::Event::Apply(o) => {
                    if let Some(o) = to_object(&ar, info.kind, o) {
                        if let Some(k) = key(&o) {
                            store.objects.insert(k, Arc::new(o));
                        }
                    }
                }
                watcher::Event::Delete(o) => {
                    if let Some(k) = to_object(&ar, info.kind, o).as_ref().and_then(key) {
                        store.objects.remove(&k);
                    }
                }
            }
            drop(store);
            self.changed.notify_one();
        }
    }

    /// The Cluster, once every kind has settled.
    fn view(&self) -> Option<ClusterView> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if store.settled.len() < KINDS.len() {
            return None;
        }
        let objects: Vec<Arc<Object>> = store.objects.values().cloned().collect();
        Some(ClusterView {
            cluster: Some(Arc::new(Cluster::new(objects, store.watched.clone()))),
            channel: None,
        })
    }
}

/// How the cache's rebuilds are paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How long changes are batched before a rebuild.
    pub debounce: Duration,
    /// The most of one core rebuilds may take under constant change (0 < share ≤ 1).
    pub share: f64,
}

impl Pace {
    /// The wait before the next rebuild, after one that took `took`.
    fn after(&self, took: Duration) -> Duration {
        let share = self.share.clamp(0.01, 1.0);
        self.debounce.max(took.mul_f64((1.0 - share) / share))
    }
}

/// Watch every kind and keep `state`'s cluster view current. Never returns.
///
/// A rebuild copies pointers to every object and rebuilds the indexes: linear in the cluster,
/// so it runs on the blocking pool (reviews keep the runtime's workers) and is paced so that a
/// cluster that never stops changing costs at most `pace.share` of a core.
pub async fn run(client: kube::Client, state: Arc<AppState>, pace: Pace) {
    let cache = Arc::new(Cache::default());
    for info in KINDS {
        tokio::spawn(cache.clone().watch(client.clone(), info));
    }
    let mut wait = pace.debounce;
    loop {
        cache.changed.notified().await;
        tokio::time::sleep(wait).await;
        let started = std::time::Instant::now();
        let (cache2, state2) = (cache.clone(), state.clone());
        let rebuilt = tokio::task::spawn_blocking(move || {
            let view = cache2.view()?;
            let first = !state2.ready.load(std::sync::atomic::Ordering::Relaxed);
            let objects = view.cluster.as_ref().map_or(0, |c| c.len());
            state2.set_cluster(view);
            Some((first, objects))
        })
        .await;
        let took = started.elapsed();
        if let Ok(Some((first, objects))) = rebuilt {
            tracing::debug!(
                objects,
                took_ms = took.as_millis() as u64,
                "cluster cache rebuilt"
            );
            if first {
                tracing::info!(objects, "cluster cache synced; ready");
            }
        }
        wait = pace.after(took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lose_their_data_before_caching() {
        let raw = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "type": "kubernetes.io/tls", "data": {"tls.key": "c2VjcmV0"}, "stringData": {"x": "secret"}});
        let ar = api_resource(Kind::Secret.info(), "v1");
        let o = to_object(&ar, Kind::Secret, serde_json::from_value(raw).unwrap()).unwrap();
        assert!(o.raw.get("data").is_none() && o.raw.get("stringData").is_none());
        assert_eq!(
            o.raw["type"], "kubernetes.io/tls",
            "the type is kept for the rules"
        );
        assert!(
            !format!("{o:?}").contains("c2VjcmV0"),
            "not even in the typed form"
        );
    }

    /// A list of Services from the API server: items without apiVersion and kind.
    #[test]
    fn list_items_of_built_in_kinds_are_known_by_the_resource_watched() {
        let item = serde_json::json!({"metadata": {"name": "api", "namespace": "shop"},
            "spec": {"ports": [{"port": 80}]}});
        let ar = api_resource(Kind::Service.info(), "v1");
        let o = to_object(&ar, Kind::Service, serde_json::from_value(item).unwrap()).unwrap();
        assert_eq!(
            key(&o),
            Some((Kind::Service, Some("shop".into()), "api".into()))
        );
    }

    #[test]
    fn rebuilds_are_paced_to_their_share_of_a_core() {
        let pace = Pace {
            debounce: Duration::from_millis(100),
            share: 0.1,
        };
        assert_eq!(
            pace.after(Duration::from_millis(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            pace.after(Duration::from_millis(50)),
            Duration::from_millis(450)
        );
        let all = Pace { share: 1.0, ..pace };
        assert_eq!(
            all.after(Duration::from_millis(50)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn config_maps_keep_their_keys_not_their_values() {
        let raw = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": "n"},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}, "binaryData": {"x": "AAAA"}});
        let ar = api_resource(Kind::ConfigMap.info(), "v1");
        let o = to_object(&ar, Kind::ConfigMap, serde_json::from_value(raw).unwrap()).unwrap();
        assert_eq!(o.raw["data"], serde_json::json!({"ca.crt": ""}));
        assert!(o.raw.get("binaryData").is_none());
        assert!(!format!("{o:?}").contains("BEGIN"));
    }
}
