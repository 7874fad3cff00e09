//! The cluster cache: the watched objects of every kind the rules read (`mesh_kube::watch`,
//! Secrets and ConfigMaps with key names only), feeding the Cluster the reviews use.
//!
//! After the initial lists (readiness), changes are batched: the Cluster is rebuilt at most
//! once per `debounce` and swapped in for new reviews.

use std::sync::Arc;

use mesh_kube::watch::Cache;
pub use mesh_kube::watch::Pace;
use mesh_kube::Values;

use crate::cluster::Cluster;
use crate::review::ClusterView;
use crate::server::AppState;

/// The cluster view reviews read, once every kind has settled.
fn view(cache: &Cache) -> Option<ClusterView> {
    let view = cache.view()?;
    Some(ClusterView {
        cluster: Some(Arc::new(Cluster::new(view.objects, view.watched))),
        channel: None,
    })
}

/// Watch every kind and keep `state`'s cluster view current. Never returns.
///
/// A rebuild copies pointers to every object and rebuilds the indexes: linear in the cluster,
/// so it runs on the blocking pool (reviews keep the runtime's workers) and is paced so that a
/// cluster that never stops changing costs at most `pace.share` of a core.
pub async fn run(client: kube::Client, state: Arc<AppState>, pace: Pace) {
    let cache = Cache::start(client, Values::Names);
    let mut wait = pace.debounce;
    loop {
        cache.changed().await;
        tokio::time::sleep(wait).await;
        let started = std::time::Instant::now();
        let (cache2, state2) = (cache.clone(), state.clone());
        let rebuilt = tokio::task::spawn_blocking(move || {
            let view = view(&cache2)?;
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
