//! The status a controller would write on each route: per parentRef, `Accepted` and
//! `ResolvedRefs` with the spec's standard reasons.
//!
//! The reasons come from the same functions the datapath and the analyze rules use
//! (`attach::resolve`, `Rejection::reason`, `compile::backend_service`), so what the status says
//! is what the agent serves: a route reported `NotAllowedByListeners` gets 404 from the agent.

use super::compile::backend_service;
use crate::attach::{self, Parent};
use crate::kind::Kind;
use crate::snapshot::Snapshot;

/// One status condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `Accepted` or `ResolvedRefs`.
    pub kind: &'static str,
    pub status: bool,
    pub reason: &'static str,
    /// Which reference or listener the condition is about, for people; empty when all is well.
    pub message: String,
}

/// The status under one parentRef.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentStatus {
    /// `Gateway ns/name` or `Service ns/name`, with `/section` when the ref names a listener.
    pub parent: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub parents: Vec<ParentStatus>,
}

impl RouteStatus {
    /// The condition of `kind` under the parent whose name starts with `parent`.
    pub fn condition(&self, parent: &str, kind: &str) -> Option<&Condition> {
        self.parents
            .iter()
            .find(|p| p.parent.starts_with(parent))?
            .conditions
            .iter()
            .find(|c| c.kind == kind)
    }
}

/// Every route's status. Parents the input does not contain get no entry: no controller
/// would write one (the analyze rules report the dangling reference instead).
pub fn routes(snap: &Snapshot) -> Vec<RouteStatus> {
    let mut out = Vec::new();
    for kind in [Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute] {
        for o in snap.of_kind(kind) {
            let Some(route) = o.resource.route() else {
                continue;
            };
            let resolved = resolved_refs(o, route, snap);
            let parents = route
                .parent_refs
                .iter()
                .filter_map(|p| {
                    let accepted = match attach::resolve(o, route, p, snap) {
                        Parent::NotFound | Parent::Unknown => return None,
                        parent => match parent.rejection() {
                            None => condition("Accepted", Ok("Accepted")),
                            Some(r) => Condition {
                                message: format!(
                                    "no listener of {} {}/{} accepts the route",
                                    p.kind, p.namespace, p.name
                                ),
                                ..condition("Accepted", Err(r.reason()))
                            },
                        },
                    };
                    let section = p
                        .section_name
                        .as_deref()
                        .map(|s| format!("/{s}"))
                        .unwrap_or_default();
                    Some(ParentStatus {
                        parent: format!("{} {}/{}{section}", p.kind, p.namespace, p.name),
                        conditions: vec![accepted, resolved.clone()],
                    })
                })
                .collect();
            out.push(RouteStatus {
                kind: o.kind.clone(),
                namespace: o.namespace.clone().unwrap_or_default(),
                name: o.name.clone(),
                parents,
            });
        }
    }
    out
}

/// `ResolvedRefs`: True when every backendRef resolves, else False with the first problem.
fn resolved_refs(o: &crate::Object, route: &crate::route::Route, snap: &Snapshot) -> Condition {
    for b in route.rules.iter().flat_map(|r| &r.backend_refs) {
        if let Err(reason) = backend_service(o, b, snap) {
            return Condition {
                message: format!(
                    "{}: {} {}/{} port {:?}",
                    b.field, b.kind, b.namespace, b.name, b.port
                ),
                ..condition("ResolvedRefs", Err(reason))
            };
        }
    }
    condition("ResolvedRefs", Ok("ResolvedRefs"))
}

fn condition(kind: &'static str, outcome: Result<&'static str, &'static str>) -> Condition {
    let (status, reason) = match outcome {
        Ok(r) => (true, r),
        Err(r) => (false, r),
    };
    Condition {
        kind,
        status,
        reason,
        message: String::new(),
    }
}
