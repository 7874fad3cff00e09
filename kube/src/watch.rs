//! One kube-rs watcher per kind the model reads, into a store of shared objects.
//!
//! Objects are watched as `DynamicObject` at the newest version the API server serves. A kind
//! whose CRD is not installed is skipped with one log line. Secrets and ConfigMaps keep what
//! [`Values`] says as each event arrives; the rest of their data is never cached. Consumers
//! wait for [`Cache::changed`] and take a [`View`] (pointers to the objects, not copies) when
//! they are ready to rebuild: how often is theirs to pace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use mesh_model::kind::{KindInfo, KINDS};
use mesh_model::{Kind, Object};
use tokio::sync::Notify;

use crate::resource::{served_version, to_object, Values};

type Key = (Kind, Option<String>, String);

#[derive(Default)]
struct Store {
    objects: HashMap<Key, Arc<Object>>,
    /// Kinds whose initial list is in (or that are not served at all).
    settled: HashSet<Kind>,
    /// Kinds actually watched: a view is complete for these.
    watched: Vec<Kind>,
}

/// The watched objects of every kind of the model.
pub struct Cache {
    store: Mutex<Store>,
    changed: Notify,
    values: Values,
}

/// The cache at one moment, once every kind has settled.
pub struct View {
    /// Shared with the store: a rebuild copies pointers, never objects.
    pub objects: Vec<Arc<Object>>,
    /// The kinds the API server serves and that are watched: an object of one of these that
    /// is missing from `objects` is missing from the cluster.
    pub watched: Vec<Kind>,
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

impl Cache {
    /// Start watching every kind of the model (one task per kind, on the current runtime).
    pub fn start(client: kube::Client, values: Values) -> Arc<Cache> {
        let cache = Arc::new(Cache {
            store: Mutex::new(Store::default()),
            changed: Notify::new(),
            values,
        });
        for info in KINDS {
            tokio::spawn(cache.clone().watch(client.clone(), info));
        }
        cache
    }

    /// Wait until something changed since the last call (a change made before this call
    /// counts: the wake-up is stored).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settle(&self, kind: Kind) {
        self.lock().settled.insert(kind);
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
        self.lock().watched.push(info.kind);
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut buffer: Vec<Arc<Object>> = Vec::new();
        let convert = |o| to_object(&ar, info.kind, o, self.values);
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(kind = info.name, error = %e, "watch failed; retrying");
                    continue;
                }
            };
            let mut store = self.lock();
            match event {
                watcher::Event::Init => buffer.clear(),
                watcher::Event::InitApply(o) => buffer.extend(convert(o).map(Arc::new)),
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
                    if let Some(o) = convert(o) {
                        if let Some(k) = key(&o) {
                            store.objects.insert(k, Arc::new(o));
                        }
                    }
                }
                watcher::Event::Delete(o) => {
                    if let Some(k) = convert(o).as_ref().and_then(key) {
                        store.objects.remove(&k);
                    }
                }
            }
            drop(store);
            self.changed.notify_one();
        }
    }

    /// The objects, once every kind has settled (its first list is in, or it is not served).
    pub fn view(&self) -> Option<View> {
        let store = self.lock();
        if store.settled.len() < KINDS.len() {
            return None;
        }
        Some(View {
            objects: store.objects.values().cloned().collect(),
            watched: store.watched.clone(),
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
    pub fn after(&self, took: Duration) -> Duration {
        let share = self.share.clamp(0.01, 1.0);
        self.debounce.max(took.mul_f64((1.0 - share) / share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
