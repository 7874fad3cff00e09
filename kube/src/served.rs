//! What mesh-agent serves of a cluster, decided once for the agent and for `kubectl mesh
//! proxy-status` (which compiles the same Plan to compare it with what agents run).
//!
//! From the objects read: partial validity (an object admission would refuse is left out, its
//! last accepted version serving in its place, unless Gateway API gives the problem a status
//! outcome: `rules::refused_on_cluster`), then what our GatewayClasses own
//! (`controller::owned`), then the Plan.

use std::collections::HashMap;
use std::sync::Arc;

use mesh_model::controller::{self, Class};
use mesh_model::lastgood::LeftOut;
use mesh_model::plan::{compile, Plan};
use mesh_model::rules::{self, Scope};
use mesh_model::{Kind, Level, Object, Snapshot};

/// Object key in the cache.
type Key = (Kind, Option<String>, String);

fn key(o: &Object) -> Option<Key> {
    Some((o.known?, o.namespace.clone(), o.name.clone()))
}

/// What an object's own rules found.
struct Verdict {
    /// Why admission would refuse it, if it would.
    refusal: Option<String>,
    errors: usize,
    warnings: usize,
}

/// Partial validity on a cluster: an object that admission would refuse (an object-scope
/// Error of ours the API server did not catch, as when mesh-webhook is not installed) is left
/// out and its last accepted version serves in its place, as in file mode, unless Gateway API
/// gives the problem a status outcome (`rules::refused_on_cluster`).
#[derive(Default)]
pub struct Validity {
    /// Per object: the version last judged (by pointer: the cache shares unchanged objects)
    /// and the verdict.
    judged: HashMap<Key, (Arc<Object>, Verdict)>,
    /// The last version of each object that was not refused.
    accepted: HashMap<Key, Arc<Object>>,
}

impl Validity {
    /// The objects to compile, what was left out, and the counts of the objects' own findings.
    pub fn apply(&mut self, objects: &[Arc<Object>]) -> Checked {
        let alone = Snapshot::new(Vec::new());
        let (mut kept, mut left_out, mut errors, mut warnings) = (Vec::new(), Vec::new(), 0, 0);
        let mut seen = std::collections::HashSet::new();
        for o in objects {
            let Some(k) = key(o) else { continue };
            seen.insert(k.clone());
            let fresh = !self
                .judged
                .get(&k)
                .is_some_and(|(prev, _)| Arc::ptr_eq(prev, o));
            if fresh {
                let found = rules::check_object_where(o, &alone, |r| r.scope == Scope::Object);
                let verdict = Verdict {
                    refusal: found
                        .iter()
                        .find(|d| rules::refused_on_cluster(d))
                        .map(|d| format!("[{}] {}: {}", d.code, d.field, d.message)),
                    errors: found.iter().filter(|d| d.level == Level::Error).count(),
                    warnings: found.iter().filter(|d| d.level == Level::Warning).count(),
                };
                self.judged.insert(k.clone(), (o.clone(), verdict));
            }
            let verdict = &self.judged[&k].1;
            errors += verdict.errors;
            warnings += verdict.warnings;
            match &verdict.refusal {
                None => {
                    self.accepted.insert(k, o.clone());
                    kept.push((**o).clone());
                }
                Some(reason) => {
                    let previous = self.accepted.get(&k);
                    left_out.push(mesh_model::lastgood::refused(
                        o,
                        reason.clone(),
                        previous.is_some(),
                    ));
                    kept.extend(previous.map(|p| (**p).clone()));
                }
            }
        }
        // Deleted objects are forgotten.
        self.judged.retain(|k, _| seen.contains(k));
        self.accepted.retain(|k, _| seen.contains(k));
        Checked {
            objects: kept,
            left_out,
            errors,
            warnings,
        }
    }
}

/// What [`Validity::apply`] keeps.
pub struct Checked {
    pub objects: Vec<Object>,
    pub left_out: Vec<LeftOut>,
    /// Errors and Warnings of the objects' own rules.
    pub errors: usize,
    pub warnings: usize,
}

/// A Plan compiled from a cluster, with what its statuses are computed from.
pub struct Served {
    pub plan: Plan,
    /// What the Plan was compiled from.
    pub snapshot: Snapshot,
    /// Our GatewayClasses, accepted or not.
    pub classes: Vec<Class>,
}

/// Compile what `controller` serves of `objects` (after [`Validity::apply`]); `served` are the
/// kinds the API server serves, complete in `objects`.
pub fn compile_served(objects: Vec<Object>, served: &[Kind], controller: &str) -> Served {
    let classes = controller::classes(&objects, controller);
    let objects = controller::owned(objects, controller);
    let snapshot = Snapshot::complete(objects, served);
    Served {
        plan: compile(&snapshot),
        snapshot,
        classes,
    }
}
