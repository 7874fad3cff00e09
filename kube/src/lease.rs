//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.
//!
//! Every agent runs the same Plan; only one writes statuses, or two agents would fight over
//! `lastTransitionTime` and the API server would see every change twice per node. The holder
//! renews the Lease every `retry`; another agent takes it over once it has seen the same
//! record (holder and renew time) unchanged for the Lease's duration, measured on its own
//! clock (clocks of different nodes are never compared). Writes are optimistic (the Lease's
//! resourceVersion), so two agents cannot both take it. A holder that cannot renew within
//! `renew_deadline` stops leading before another can start: status writes never overlap.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// How an election is run (mesh-agent's `--lease-*` flags).
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    /// Who this agent is (its pod name): what `holderIdentity` says.
    pub identity: String,
    /// How long a Lease not renewed stays held (client-go's default: 15 s).
    pub duration: Duration,
    /// How long the holder keeps leading without a successful renewal (10 s); less than
    /// `duration`.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew (2 s).
    pub retry: Duration,
}

/// What was last seen of the Lease held by another, and when (on our clock).
struct Observed {
    holder: Option<String>,
    renew: Option<jiff::Timestamp>,
    at: Instant,
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("held by {0}")]
    Held(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

impl Election {
    /// Run the election for good, telling `leading` whether this agent holds the Lease.
    pub async fn run(self, client: kube::Client, leading: watch::Sender<bool>) {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let mut observed: Option<Observed> = None;
        let mut renewed: Option<Instant> = None;
        loop {
            match self.try_acquire(&api, &mut observed).await {
                Ok(()) => {
                    renewed = Some(Instant::now());
                    if !*leading.borrow() {
                        tracing::info!(lease = %format!("{}/{}", self.namespace, self.name), identity = %self.identity, "leading: this agent writes statuses");
                    }
                    leading.send_replace(true);
                }
                Err(e) => {
                    let lost = renewed.is_none_or(|t| t.elapsed() >= self.renew_deadline);
                    if *leading.borrow() && lost {
                        tracing::warn!(error = %e, "could not renew the lease in time; no longer writing statuses");
                        leading.send_replace(false);
                        renewed = None;
                    } else if !matches!(e, Refused::Held(_)) {
                        tracing::warn!(error = %e, "lease not acquired or renewed; retrying");
                    }
                }
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    fn spec(
        &self,
        now: jiff::Timestamp,
        acquire: Option<MicroTime>,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: acquire.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    async fn try_acquire(
        &self,
        api: &Api<Lease>,
        observed: &mut Option<Observed>,
    ) -> Result<(), Refused> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            api.create(&PostParams::default(), &lease).await?;
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() {
            let renew = spec.renew_time.as_ref().map(|t| t.0);
            let changed = observed
                .as_ref()
                .is_none_or(|o| o.holder != holder || o.renew != renew);
            if changed {
                *observed = Some(Observed {
                    holder: holder.clone(),
                    renew,
                    at: Instant::now(),
                });
            }
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .unwrap_or(self.duration);
            let seen = observed.as_ref().map(|o| o.at).unwrap_or_else(Instant::now);
            if seen.elapsed() < duration {
                return Err(Refused::Held(holder.unwrap_or_default()));
            }
            tracing::info!(
                previous = holder.as_deref().unwrap_or(""),
                "the lease expired; taking it over"
            );
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquire = if ours {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquire, transitions));
        // The resourceVersion read above makes this a compare-and-swap: of two agents taking
        // an expired lease at once, one gets 409 Conflict.
        api.replace(&self.name, &PostParams::default(), &lease)
            .await?;
        *observed = None;
        Ok(())
    }
}
