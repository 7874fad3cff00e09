//! The status a controller would write on each route (per parentRef, `Accepted` and
//! `ResolvedRefs`) and on each Gateway (`Accepted`, `Programmed`; per listener `Accepted`,
//! `Conflicted`, `ResolvedRefs`, `Programmed` and `attachedRoutes`), with the spec's standard
//! reasons.
//!
//! The reasons come from the same functions the datapath and the analyze rules use
//! (`attach::resolve`, `Rejection::reason`, `compile::backend_service`), so what the status says
//! is what the agent serves: a route reported `NotAllowedByListeners` gets 404 from the agent.

use super::compile::{backend_service, served_protocol};
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
    /// The parentRef as the route wrote it (defaults filled in), which the status repeats.
    pub reference: crate::route::ParentRef,
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
    for &kind in crate::kind::ROUTE_KINDS {
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
                        reference: p.clone(),
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

/// The status of one Gateway listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub name: String,
    /// The route kinds the listener carries: those of `allowedRoutes.kinds` its protocol can
    /// carry, else its protocol's defaults.
    pub supported_kinds: Vec<&'static str>,
    /// Routes the listener accepts, of every kind.
    pub attached_routes: usize,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// `Gateway`, or `ListenerSet` (whose status has the same shape: conditions and listeners).
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
    /// A Gateway's `attachedListenerSets`: its ListenerSets that are Accepted (None for a
    /// ListenerSet).
    pub attached_listener_sets: Option<usize>,
}

impl GatewayStatus {
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    pub fn listener(&self, name: &str) -> Option<&ListenerStatus> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

impl ListenerStatus {
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// The listener a finding's field is about (`spec.listeners[2].tls...` is listener 2).
fn listener_index(field: &str) -> Option<usize> {
    field
        .strip_prefix("spec.listeners[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// Every Gateway's status; `attached(namespace, gateway, listener)` counts the routes a
/// listener accepts (the compiler's attachment, so the count is what is served).
pub fn gateways(
    snap: &Snapshot,
    attached: impl Fn(&str, &str, &str, &str) -> usize,
) -> Vec<GatewayStatus> {
    let mut out = Vec::new();
    // The Gateway (namespace, name) of each Accepted ListenerSet, for `attachedListenerSets`.
    let mut accepted_sets: Vec<(String, String)> = Vec::new();
    let owners = snap
        .of_kind(Kind::Gateway)
        .map(|o| (Kind::Gateway, o))
        .chain(
            snap.of_kind(Kind::ListenerSet)
                .map(|o| (Kind::ListenerSet, o)),
        );
    for (kind, gw) in owners {
        let Some(defs) = gw.resource.listeners() else {
            continue;
        };
        let ns = gw.namespace.clone().unwrap_or_default();
        let findings = crate::rules::check_object_where(gw, snap, |r| {
            r.reason.is_some() && r.kinds.contains(&kind)
        });
        let mut gateway_problem: Option<Condition> = None;
        // A reference of the Gateway's own (`spec.tls`: the backend client certificate, the
        // frontend CA bundles) that does not resolve: ResolvedRefs=False, the Gateway still
        // Accepted, as the spec has it.
        let mut unresolved: Option<Condition> = None;
        let mut per_listener: Vec<Vec<&crate::Diagnostic>> = vec![Vec::new(); defs.len()];
        for d in &findings {
            match (listener_index(&d.field), d.reason) {
                (Some(i), _) if i < per_listener.len() => per_listener[i].push(d),
                (_, Some(reason)) if d.field.starts_with("spec.tls.") => {
                    unresolved.get_or_insert(Condition {
                        message: d.message.clone(),
                        ..condition("ResolvedRefs", Err(reason))
                    });
                }
                (_, Some(reason)) => {
                    gateway_problem.get_or_insert(Condition {
                        message: d.message.clone(),
                        ..condition("Accepted", Err(reason))
                    });
                }
                _ => {}
            }
        }
        let listeners: Vec<ListenerStatus> = defs
            .iter()
            .zip(&per_listener)
            .map(|(l, found)| {
                let with = |reasons: &[&str]| {
                    found
                        .iter()
                        .find(|d| d.reason.is_some_and(|r| reasons.contains(&r)))
                };
                let accepted = match (with(&["UnsupportedProtocol"]), served_protocol(l)) {
                    (Some(d), _) => Condition {
                        message: d.message.clone(),
                        ..condition("Accepted", Err("UnsupportedProtocol"))
                    },
                    (None, None) => Condition {
                        message: format!("mesh-agent does not serve {} listeners", l.protocol),
                        ..condition("Accepted", Err("UnsupportedProtocol"))
                    },
                    // Frontend validation with no usable CA: the listener is not accepted.
                    (None, Some(_)) => match with(&["NoValidCACertificate"]) {
                        Some(d) => Condition {
                            message: d.message.clone(),
                            ..condition("Accepted", Err("NoValidCACertificate"))
                        },
                        None => condition("Accepted", Ok("Accepted")),
                    },
                };
                let conflict = with(&["ProtocolConflict", "HostnameConflict"]);
                let conflicted = match conflict {
                    // Conflicted is the one condition whose healthy state is False.
                    Some(d) => Condition {
                        status: true,
                        message: d.message.clone(),
                        ..condition("Conflicted", Err(d.reason.unwrap_or("ProtocolConflict")))
                    },
                    None => condition("Conflicted", Err("NoConflicts")),
                };
                // A listener in conflict is not accepted either, for the same reason (as the
                // conformance suite has it for ListenerSets and TLS modes on one port).
                let accepted = match conflict {
                    Some(d) if accepted.status => Condition {
                        message: d.message.clone(),
                        ..condition("Accepted", Err(conflicted.reason))
                    },
                    _ => accepted,
                };
                let resolved = match with(&[
                    "InvalidCertificateRef",
                    "RefNotPermitted",
                    "InvalidRouteKinds",
                    "InvalidCACertificateRef",
                    "InvalidCACertificateKind",
                ]) {
                    Some(d) => Condition {
                        message: d.message.clone(),
                        ..condition(
                            "ResolvedRefs",
                            Err(d.reason.unwrap_or("InvalidCertificateRef")),
                        )
                    },
                    None => condition("ResolvedRefs", Ok("ResolvedRefs")),
                };
                // Served unless refused, conflicted, or without a usable certificate (a wrong
                // route kind alone leaves the listener serving the kinds it can).
                let programmed = if accepted.status
                    && !conflicted.status
                    && (resolved.status || resolved.reason == "InvalidRouteKinds")
                {
                    condition("Programmed", Ok("Programmed"))
                } else if conflicted.status {
                    condition("Programmed", Err(conflicted.reason))
                } else {
                    condition("Programmed", Err("Invalid"))
                };
                ListenerStatus {
                    name: l.name.clone(),
                    supported_kinds: attach::supported_kinds(l),
                    attached_routes: attached(&gw.kind, &ns, &gw.name, &l.name),
                    conditions: vec![accepted, conflicted, resolved, programmed],
                }
            })
            .collect();
        let programmed = listeners
            .iter()
            .filter(|l| l.condition("Programmed").is_some_and(|c| c.status))
            .count();
        let accepted = match gateway_problem {
            Some(problem) => problem,
            None if programmed == 0 => Condition {
                message: "no listener can be served".into(),
                ..condition("Accepted", Err("ListenersNotValid"))
            },
            // Some listeners are invalid: the Gateway is accepted and says which.
            None if programmed < listeners.len() => Condition {
                status: true,
                message: format!(
                    "{} of {} listeners are not valid",
                    listeners.len() - programmed,
                    listeners.len()
                ),
                ..condition("Accepted", Err("ListenersNotValid"))
            },
            None => condition("Accepted", Ok("Accepted")),
        };
        let gateway_programmed = if accepted.status && programmed > 0 {
            condition("Programmed", Ok("Programmed"))
        } else if kind == Kind::ListenerSet && !accepted.status {
            // A ListenerSet not accepted is not programmed for the same reason
            // (ListenersNotValid, NotAllowed, ParentNotAccepted), as its API lists them.
            Condition {
                message: accepted.message.clone(),
                ..condition("Programmed", Err(accepted.reason))
            }
        } else {
            condition("Programmed", Err("Invalid"))
        };
        if kind == Kind::ListenerSet && accepted.status {
            if let Some(parent) = attach::listener_set_gateway(gw, snap) {
                accepted_sets.push((
                    parent.namespace.clone().unwrap_or_default(),
                    parent.name.clone(),
                ));
            }
        }
        let mut conditions = vec![
            accepted,
            gateway_programmed,
            unresolved.unwrap_or_else(|| condition("ResolvedRefs", Ok("ResolvedRefs"))),
        ];
        // Said while a frontend validation lets clients without a valid certificate through,
        // and gone when it no longer does.
        if let crate::resource::Resource::Gateway(spec) = &gw.resource {
            if crate::gateway_tls::any_insecure_fallback(spec) {
                conditions.push(Condition {
                    kind: "InsecureFrontendValidationMode",
                    status: true,
                    reason: "ConfigurationChanged",
                    message: "a frontend validation is AllowInsecureFallback: clients without a valid certificate are let through".into(),
                });
            }
        }
        out.push(GatewayStatus {
            kind: gw.kind.clone(),
            namespace: ns,
            name: gw.name.clone(),
            conditions,
            listeners,
            attached_listener_sets: (kind == Kind::Gateway).then_some(0),
        });
    }
    for s in out.iter_mut().filter(|s| s.kind == "Gateway") {
        s.attached_listener_sets = Some(
            accepted_sets
                .iter()
                .filter(|(ns, name)| *ns == s.namespace && *name == s.name)
                .count(),
        );
    }
    out
}

/// A BackendTLSPolicy's status for one ancestor: the Gateway through which a route reaches a
/// Service the policy targets (`status.ancestors`, GEP-713).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AncestorStatus {
    pub gateway_namespace: String,
    pub gateway_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub namespace: String,
    pub name: String,
    pub ancestors: Vec<AncestorStatus>,
}

/// The Gateways whose accepted routes send traffic to a Service in `namespace` named in
/// `targets`, in the order first met, each once.
fn ancestors_of(snap: &Snapshot, namespace: &str, targets: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for &kind in crate::kind::ROUTE_KINDS {
        for o in snap.of_kind(kind) {
            let Some(route) = o.resource.route() else {
                continue;
            };
            let sends = route.rules.iter().flat_map(|r| &r.backend_refs).any(|b| {
                b.is_service() && b.namespace == namespace && targets.contains(&b.name.as_str())
            });
            if !sends {
                continue;
            }
            for p in &route.parent_refs {
                let parent = attach::resolve(o, route, p, snap);
                let Parent::Gateway { gateway, .. } = &parent else {
                    continue;
                };
                if parent.rejection().is_some() {
                    continue;
                }
                // A ListenerSet's routes reach the Service through the ListenerSet's Gateway.
                let gateway = match gateway.known {
                    Some(Kind::ListenerSet) => match attach::listener_set_gateway(gateway, snap) {
                        Some(g) => g,
                        None => continue,
                    },
                    _ => *gateway,
                };
                let key = (
                    gateway.namespace.clone().unwrap_or_default(),
                    gateway.name.clone(),
                );
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
    }
    out
}

/// Every BackendTLSPolicy's status: for each Gateway through which it applies, `Accepted`
/// (False when another policy wins the target, `Conflicted`, or when it has no usable CA,
/// `NoValidCACertificate`) and `ResolvedRefs` (False for a CA reference of a wrong kind,
/// `InvalidKind`, or one that does not resolve, `InvalidCACertificateRef`), from the same rules
/// `analyze` reports.
pub fn backend_tls_policies(snap: &Snapshot) -> Vec<PolicyStatus> {
    let mut out = Vec::new();
    for o in snap.of_kind(Kind::BackendTlsPolicy) {
        let crate::resource::Resource::BackendTlsPolicy(spec) = &o.resource else {
            continue;
        };
        let ns = o.namespace.clone().unwrap_or_default();
        let targets: Vec<&str> = spec
            .target_refs
            .iter()
            .filter(|t| t.group.is_empty() && t.kind == "Service")
            .map(|t| t.name.as_str())
            .collect();
        let ancestors = ancestors_of(snap, &ns, &targets);
        if ancestors.is_empty() {
            continue;
        }
        let findings = crate::rules::check_object_where(o, snap, |r| {
            r.reason.is_some() && r.kinds.contains(&Kind::BackendTlsPolicy)
        });
        let with = |reason: &str| findings.iter().find(|d| d.reason == Some(reason));
        let accepted = match (
            with("Conflicted"),
            with("NoValidCACertificate").or(with("InvalidKind")),
        ) {
            (Some(d), _) => Condition {
                message: d.message.clone(),
                ..condition("Accepted", Err("Conflicted"))
            },
            (None, Some(d)) => Condition {
                message: d.message.clone(),
                ..condition("Accepted", Err("NoValidCACertificate"))
            },
            (None, None) => condition("Accepted", Ok("Accepted")),
        };
        let resolved = match with("InvalidKind").or(with("InvalidCACertificateRef")) {
            Some(d) => Condition {
                message: d.message.clone(),
                ..condition(
                    "ResolvedRefs",
                    Err(d.reason.unwrap_or("InvalidCACertificateRef")),
                )
            },
            None => condition("ResolvedRefs", Ok("ResolvedRefs")),
        };
        out.push(PolicyStatus {
            namespace: ns,
            name: o.name.clone(),
            ancestors: ancestors
                .into_iter()
                .map(|(gateway_namespace, gateway_name)| AncestorStatus {
                    gateway_namespace,
                    gateway_name,
                    conditions: vec![accepted.clone(), resolved.clone()],
                })
                .collect(),
        });
    }
    out
}
