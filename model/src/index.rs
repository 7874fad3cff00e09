//! Cross-object indexes, built once per Snapshot so rules about pairs of objects stay linear.

use std::collections::HashMap;

use std::cmp::Ordering;

use crate::attach::{self, Parent};
use crate::kind::Kind;
use crate::object::Object;
use crate::precedence::precedence;
use crate::resource::Resource;
use crate::snapshot::Snapshot;

/// A route rule's identity: object index and rule index.
pub type RuleAt = (usize, usize);

#[derive(Default)]
pub struct Index {
    /// ReferenceGrants by the namespace they grant access to.
    pub grants_by_namespace: HashMap<String, Vec<usize>>,
    /// Envoy-config objects by the Service frontends they claim (`spec.services`).
    pub frontends: HashMap<(String, String), Vec<usize>>,
    /// Routes of each kind accepted by each listener, so a rule about HTTPRoutes meeting
    /// GRPCRoutes looks only at the other kind, and only at routes whose hostnames can meet.
    pub listener_routes: HashMap<(ListenerKey, Kind), ListenerRoutes>,
    /// Rules by (parent, hostname, match): two entries under one key are identical matches.
    pub matches: HashMap<MatchKey, Vec<RuleAt>>,
    /// The reverse of `listener_routes`: the listeners that accept each route.
    pub route_listeners: HashMap<usize, Vec<ListenerKey>>,
    /// Ready endpoints per Service (namespace, name), from EndpointSlices.
    pub ready_endpoints: HashMap<(String, String), usize>,
    /// The reverse of `matches`: each route's match keys, with the rule that has it.
    pub route_matches: HashMap<usize, Vec<(MatchKey, usize)>>,
    /// The route that wins each match key by precedence.
    pub match_winner: HashMap<MatchKey, usize>,
    /// ListenerSets by the Gateway (namespace, name) their parentRef names.
    pub listener_sets_by_gateway: HashMap<(String, String), Vec<usize>>,
    /// BackendTLSPolicies by what they target (namespace, group, kind, name; any
    /// sectionName), oldest first (the order that settles conflicts): each Service port and
    /// each policy's conflict check looks only at its rivals.
    pub backend_tls_by_target: HashMap<TargetKey, Vec<usize>>,
}

/// (namespace, group, kind, name) of a policy's target.
pub type TargetKey = (String, String, String, String);

/// (gateway namespace, gateway name, listener name).
pub type ListenerKey = (String, String, String);
/// (parent, lower-cased hostname or "" for all, canonical match).
pub type MatchKey = (String, String, String);

impl Index {
    pub fn build(snap: &Snapshot) -> Index {
        let mut ix = Index::default();
        for o in snap.of_kind(Kind::EndpointSlice) {
            let Resource::EndpointSlice(es) = &o.resource else {
                continue;
            };
            let Some(svc) = es
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
            else {
                continue;
            };
            let ready = es
                .endpoints
                .iter()
                .flatten()
                .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .count();
            *ix.ready_endpoints
                .entry((o.namespace.clone().unwrap_or_default(), svc.clone()))
                .or_default() += ready;
        }
        for (i, o) in snap.indexed(Kind::ListenerSet) {
            if let Some(gateway) = attach::listener_set_gateway(o, snap) {
                ix.listener_sets_by_gateway
                    .entry((
                        gateway.namespace.clone().unwrap_or_default(),
                        gateway.name.clone(),
                    ))
                    .or_default()
                    .push(i);
            }
        }
        for (i, o) in snap.indexed(Kind::BackendTlsPolicy) {
            let Resource::BackendTlsPolicy(spec) = &o.resource else {
                continue;
            };
            let ns = o.namespace.clone().unwrap_or_default();
            for t in &spec.target_refs {
                let v = ix
                    .backend_tls_by_target
                    .entry((ns.clone(), t.group.clone(), t.kind.clone(), t.name.clone()))
                    .or_default();
                // Two targetRefs of one policy naming one object (two of its ports).
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        for v in ix.backend_tls_by_target.values_mut() {
            v.sort_by_cached_key(|&i| crate::plan::upstream_tls::precedence(&snap.objects()[i]));
        }
        for (i, o) in snap.indexed(Kind::ReferenceGrant) {
            ix.grants_by_namespace
                .entry(o.namespace.clone().unwrap_or_default())
                .or_default()
                .push(i);
        }
        for kind in [Kind::CiliumEnvoyConfig, Kind::CiliumClusterwideEnvoyConfig] {
            for (i, o) in snap.indexed(kind) {
                if let Resource::EnvoyConfig(cfg) = &o.resource {
                    let own_ns = o.namespace.clone().unwrap_or_else(|| "default".into());
                    for s in cfg.spec.services.iter().flatten() {
                        let key = (
                            s.namespace.clone().unwrap_or_else(|| own_ns.clone()),
                            s.name.clone(),
                        );
                        // Objects come in order, so a repeat can only be this object's own.
                        let v = ix.frontends.entry(key).or_default();
                        if v.last() != Some(&i) {
                            v.push(i);
                        }
                    }
                }
            }
        }
        for &kind in crate::kind::ROUTE_KINDS {
            for (i, o) in snap.indexed(kind) {
                let Some(route) = o.resource.route() else {
                    continue;
                };
                for p in &route.parent_refs {
                    let parent_key = format!(
                        "{}/{}/{}/{}/{}",
                        p.kind,
                        p.namespace,
                        p.name,
                        p.section_name.as_deref().unwrap_or(""),
                        p.port.unwrap_or(0)
                    );
                    let hosts: Vec<&str> = if route.hostnames.is_empty() {
                        vec![""]
                    } else {
                        route.hostnames.iter().map(String::as_str).collect()
                    };
                    for (ri, rule) in route.rules.iter().enumerate() {
                        for h in &hosts {
                            for m in &rule.match_keys {
                                let key = (
                                    parent_key.clone(),
                                    h.to_ascii_lowercase(),
                                    format!("{kind:?} {m}"),
                                );
                                let v = ix.matches.entry(key.clone()).or_default();
                                if v.last() != Some(&(i, ri)) {
                                    v.push((i, ri));
                                }
                                let mine = ix.route_matches.entry(i).or_default();
                                if !mine.iter().any(|(k, r)| *k == key && *r == ri) {
                                    mine.push((key, ri));
                                }
                            }
                        }
                    }
                    if let Parent::Gateway {
                        gateway,
                        defs,
                        listeners,
                    } = attach::resolve(o, route, p, snap)
                    {
                        for (l, ok) in defs.iter().zip(listeners) {
                            if ok.is_ok() {
                                let key = (
                                    gateway.namespace.clone().unwrap_or_default(),
                                    gateway.name.clone(),
                                    l.name.clone(),
                                );
                                let v = ix.listener_routes.entry((key.clone(), kind)).or_default();
                                if v.all.last() != Some(&i) {
                                    v.add(i, &route.hostnames);
                                    ix.route_listeners.entry(i).or_default().push(key);
                                }
                            }
                        }
                    }
                }
            }
        }
        let objects = snap.objects();
        for routes in ix.listener_routes.values_mut() {
            routes.sort(objects);
        }
        for (key, members) in &ix.matches {
            let winner = members
                .iter()
                .map(|(i, _)| *i)
                .min_by(|&a, &b| crate::precedence::precedence(&objects[a], &objects[b]));
            if let Some(w) = winner {
                ix.match_winner.insert(key.clone(), w);
            }
        }
        ix
    }
}

/// The routes of one kind accepted by one listener, in precedence order, indexed by hostname.
#[derive(Default)]
pub struct ListenerRoutes {
    /// Every route, best precedence first.
    pub all: Vec<usize>,
    /// Routes without hostnames: they intersect every name.
    catch_all: Vec<usize>,
    /// Routes by each exact (lower-cased) hostname.
    exact: HashMap<String, Vec<usize>>,
    /// Routes with a wildcard hostname.
    wildcard: Vec<usize>,
}

impl ListenerRoutes {
    fn add(&mut self, i: usize, hostnames: &[String]) {
        self.all.push(i);
        if hostnames.is_empty() {
            self.catch_all.push(i);
        }
        for h in hostnames {
            if h.starts_with('*') {
                if self.wildcard.last() != Some(&i) {
                    self.wildcard.push(i);
                }
            } else {
                self.exact
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push(i);
            }
        }
    }

    fn sort(&mut self, objects: &[Object]) {
        let by = |a: &usize, b: &usize| precedence(&objects[*a], &objects[*b]);
        self.all.sort_by(by);
        self.catch_all.sort_by(by);
        self.wildcard.sort_by(by);
        for v in self.exact.values_mut() {
            v.sort_by(by);
        }
    }

    /// The route of highest precedence that beats `me` and shares a hostname with
    /// `hostnames` (empty: all names). Each list is in precedence order, so a scan stops at the
    /// first route that does not beat `me`.
    pub fn best_intersecting(
        &self,
        objects: &[Object],
        me: usize,
        hostnames: &[String],
    ) -> Option<usize> {
        let beats = |j: &usize| precedence(&objects[*j], &objects[me]) == Ordering::Less;
        let meets = |j: usize| {
            let theirs = objects[j]
                .resource
                .route()
                .map(|r| r.hostnames.as_slice())
                .unwrap_or(&[]);
            crate::hostname::routes_intersect(hostnames, theirs)
        };
        let mut found: Vec<usize> = Vec::new();
        if hostnames.is_empty() || hostnames.iter().any(|h| h.starts_with('*')) {
            found.extend(
                self.all
                    .iter()
                    .copied()
                    .take_while(beats)
                    .find(|&j| meets(j)),
            );
        } else {
            found.extend(self.catch_all.iter().copied().take_while(beats).next());
            for h in hostnames {
                found.extend(
                    self.exact
                        .get(&h.to_ascii_lowercase())
                        .into_iter()
                        .flatten()
                        .copied()
                        .take_while(beats)
                        .next(),
                );
            }
            found.extend(
                self.wildcard
                    .iter()
                    .copied()
                    .take_while(beats)
                    .find(|&j| meets(j)),
            );
        }
        found
            .into_iter()
            .min_by(|a, b| precedence(&objects[*a], &objects[*b]))
    }
}
