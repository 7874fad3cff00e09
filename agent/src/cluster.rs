//! Kubernetes mode (no `--config-dir`): the API server is the configuration.
//!
//! `mesh_kube::watch` keeps every kind the model reads; on change, a dedicated thread (loading is
//! CPU work, never on a serving thread) takes a view, applies partial validity and keeps what our
//! GatewayClasses own (`mesh_kube::served`), compiles, and hands the Plan to the serving side,
//! which swaps it in. Rebuilds are coalesced: a burst of
//! events is one rebuild, and under constant change rebuilds take at most `pace.share` of a core.
//!
//! Every agent serves; the one holding the Lease (`mesh_kube::lease`) also writes the statuses
//! of what was compiled (`mesh_kube::status`), after the Plan that they describe is in force.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mesh_kube::lease::Election;
use mesh_kube::served::{compile_served, Validity};
use mesh_kube::status::{self, Writer};
use mesh_kube::watch::{Cache, Pace};
use mesh_kube::Values;
use mesh_model::controller::Class;
use mesh_model::plan::Plan;
use mesh_model::{Kind, Snapshot};
use tokio::sync::watch;

use crate::config::Loaded;

/// How the agent runs on a cluster.
pub struct Options {
    /// Our GatewayClasses' controllerName.
    pub controller: String,
    /// None: never write statuses (`--status off`).
    pub election: Option<Election>,
    /// The field manager of status writes.
    pub manager: String,
    pub pace: Pace,
    /// What Gateways' `status.addresses` say when they have no address of their own.
    pub addresses: Vec<IpAddr>,
    /// Gateway API features the agent supports (GatewayClass `status.supportedFeatures`).
    pub features: &'static [&'static str],
}

/// What the status writer needs of one build.
struct Built {
    plan: Arc<Plan>,
    snapshot: Snapshot,
    classes: Vec<Class>,
}

/// Watch the cluster and serve it: `apply` takes each Plan (and returns it as it serves it,
/// addresses assigned, or None when it did not take it). Runs until the process ends.
pub async fn run(
    client: kube::Client,
    opts: Options,
    mut apply: impl FnMut(jiff::Timestamp, Loaded) -> Option<Arc<Plan>> + Send + 'static,
) {
    let cache = Cache::start(client.clone(), Values::Serving);
    let (wake, woken) = mpsc::channel::<()>();
    let (built_tx, built_rx) = watch::channel::<Option<Arc<Built>>>(None);
    let (pace, controller) = (opts.pace, opts.controller.clone());
    let view_cache = cache.clone();
    let loader = std::thread::Builder::new()
        .name("config-loader".into())
        .spawn(move || {
            let mut validity = Validity::default();
            let mut wait = pace.debounce;
            while woken.recv().is_ok() {
                std::thread::sleep(wait);
                while woken.try_recv().is_ok() {}
                let started = Instant::now();
                let Some(view) = view_cache.view() else {
                    continue;
                };
                let read_at = jiff::Timestamp::now();
                let checked = validity.apply(&view.objects);
                let served = compile_served(checked.objects, &view.watched, &controller);
                let (snapshot, classes) = (served.snapshot, served.classes);
                let loaded = Loaded::Plan {
                    plan: Box::new(served.plan),
                    left_out: checked.left_out,
                    errors: checked.errors,
                    warnings: checked.warnings,
                };
                if let Some(plan) = apply(read_at, loaded) {
                    built_tx.send_replace(Some(Arc::new(Built {
                        plan,
                        snapshot,
                        classes,
                    })));
                }
                wait = pace.after(started.elapsed());
            }
        });
    if let Err(e) = loader {
        tracing::error!(error = %e, "cannot start the configuration loader");
        std::process::exit(1);
    }
    if let Some(election) = opts.election {
        let (leading_tx, leading_rx) = watch::channel(false);
        tokio::spawn(election.run(client.clone(), leading_tx));
        let writer = Writer {
            client,
            manager: opts.manager.clone(),
        };
        tokio::spawn(write_statuses(
            writer,
            leading_rx,
            built_rx,
            opts.controller,
            opts.addresses,
            opts.features,
        ));
    }
    loop {
        cache.changed().await;
        if wake.send(()).is_err() {
            return;
        }
    }
}

/// The addresses of each Gateway as served: its own (`--gateway-address-pool`,
/// `spec.addresses`) or the node's.
fn gateway_addresses(plan: &Plan, default: &[IpAddr]) -> HashMap<String, Vec<IpAddr>> {
    let mut out: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for l in &plan.listeners {
        let Some(gw) = l.gateway() else { continue };
        let entry = out.entry(gw.to_string()).or_default();
        let own: Vec<IpAddr> = l.address.into_iter().collect();
        for a in if own.is_empty() { default } else { &own } {
            if !entry.contains(a) {
                entry.push(*a);
            }
        }
    }
    out
}

/// While leading, write the statuses of each new build (and retry failed writes).
async fn write_statuses(
    writer: Writer,
    mut leading: watch::Receiver<bool>,
    mut built: watch::Receiver<Option<Arc<Built>>>,
    controller: String,
    addresses: Vec<IpAddr>,
    features: &'static [&'static str],
) {
    let mut retry: Option<Duration> = None;
    // What was written, by object, with the version it was computed from: a build from a
    // snapshot that does not have our write yet computes the same update again, which is
    // skipped rather than sent to fail on the version it read.
    let mut written_from: HashMap<(Kind, Option<String>, String), (String, serde_json::Value)> =
        HashMap::new();
    loop {
        let timer = async {
            match retry {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = leading.changed() => if r.is_err() { return },
            r = built.changed() => if r.is_err() { return },
            _ = timer => {}
        }
        retry = None;
        if !*leading.borrow_and_update() {
            continue;
        }
        let Some(b) = built.borrow_and_update().clone() else {
            continue;
        };
        let by_gateway = gateway_addresses(&b.plan, &addresses);
        let opts = status::Options {
            controller: &controller,
            addresses: &by_gateway,
            supported_features: features,
            mesh_features: mesh_model::controller::MESH_SUPPORTED_FEATURES,
            now: jiff::Timestamp::now(),
        };
        // A memo is only of use while the snapshot still holds the version it was computed
        // from; once a newer one (ours, or anyone's) or a deletion arrives it goes, so the memo
        // holds only writes still on their way back through the watch.
        written_from.retain(|(kind, ns, name), (version, _)| {
            b.snapshot.get(*kind, ns.as_deref(), name).is_some_and(|o| {
                o.raw["metadata"]["resourceVersion"].as_str() == Some(version.as_str())
            })
        });
        let mut updates = status::updates(&b.plan, &b.snapshot, &b.classes, &opts);
        updates.retain(|u| {
            let key = (u.kind, u.namespace.clone(), u.name.clone());
            written_from.get(&key) != Some(&(u.read_version.clone(), u.status.clone()))
        });
        if updates.is_empty() {
            continue;
        }
        let (written, errors) = writer.write(&updates).await;
        for u in &updates {
            if !errors.iter().any(|e| e.what == u.describe()) {
                let key = (u.kind, u.namespace.clone(), u.name.clone());
                written_from.insert(key, (u.read_version.clone(), u.status.clone()));
            }
        }
        let conflicts = errors.iter().filter(|e| e.conflict).count();
        tracing::info!(
            written,
            conflicts,
            failed = errors.len() - conflicts,
            "statuses written"
        );
        for e in &errors {
            if e.conflict {
                tracing::debug!("{e}; written again once the change is seen");
            } else {
                tracing::warn!("{e}");
            }
        }
        // A conflict means a newer version is on its way through the watch; anything else
        // (the API server away, a refused write) is tried again in a while.
        if errors.iter().any(|e| !e.conflict) {
            retry = Some(Duration::from_secs(5));
        }
    }
}
