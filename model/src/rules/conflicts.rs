//! MESH22xx: routes that are valid alone but collide with others, or cannot send traffic.

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;
use crate::object::Object;

pub static RULES: &[&Rule] = &[
    &HTTP_GRPC_CONFLICT,
    &DUPLICATE_MATCH,
    &ALL_WEIGHTS_ZERO,
    &SHADOWED_RULE,
    &NO_READY_ENDPOINTS,
];

fn label(o: &Object) -> String {
    format!(
        "{} {}/{}",
        o.kind,
        o.namespace.as_deref().unwrap_or(""),
        o.name
    )
}

pub static HTTP_GRPC_CONFLICT: Rule = Rule {
    code: "MESH2201",
    name: "HttpGrpcHostnameConflict",
    level: Level::Error,
    title: "An HTTPRoute and a GRPCRoute share a listener and a hostname",
    kinds: &[Kind::HttpRoute, Kind::GrpcRoute],
    scope: Scope::Cluster,
    reason: None,
    doc: "The spec: when an HTTPRoute and a GRPCRoute attach to the same listener with intersecting hostnames (no hostnames means all), the implementation MUST accept exactly one of them, the older (then alphabetical); the other gets Accepted=False. The article's hostname-less HTTPRoutes and GRPCRoutes on one listener are exactly this.",
    hint: "Give the gRPC and HTTP routes distinct hostnames (grpc.example.com), or separate listeners.",
    bad: fixture!("MESH2201", "bad"),
    good: fixture!("MESH2201", "good"),
    check: |o, s, r| {
        let Some(route) = o.resource.route() else { return };
        let other_kind = match route.kind {
            Kind::HttpRoute => Kind::GrpcRoute,
            Kind::GrpcRoute => Kind::HttpRoute,
            _ => return,
        };
        let objects = s.objects();
        let Some(me) = s.position(o) else { return };
        let ix = s.index();
        for key in ix.route_listeners.get(&me).into_iter().flatten() {
            let Some(routes) = ix.listener_routes.get(&(key.clone(), other_kind)) else { continue };
            if let Some(best) = routes.best_intersecting(objects, me, &route.hostnames) {
                r.at(
                    "spec.hostnames",
                    format!(
                        "{} on listener {}/{}/{} has intersecting hostnames and takes precedence; this route is not accepted there",
                        label(&objects[best]),
                        key.0,
                        key.1,
                        key.2
                    ),
                );
            }
        }
    },
};

pub static DUPLICATE_MATCH: Rule = Rule {
    code: "MESH2202",
    name: "DuplicateRouteMatch",
    level: Level::Warning,
    title: "Two routes on the same parent and hostname have an identical match",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Cluster,
    reason: None,
    doc: "When two routes attached to one parent have a rule with the same hostname and the same match, Gateway API precedence gives every request to the oldest route (then `namespace/name` alphabetically); the other rule never receives traffic and nothing reports it (gateway-api#4303).",
    hint: "Remove or change the losing rule's match; if the split was intended, put both backends in one rule with weights.",
    bad: fixture!("MESH2202", "bad"),
    good: fixture!("MESH2202", "good"),
    check: |o, s, r| {
        let Some(route) = o.resource.route() else { return };
        let Some(me) = s.position(o) else { return };
        let ix = s.index();
        let mut reported = std::collections::HashSet::new();
        for (key, ri) in ix.route_matches.get(&me).into_iter().flatten() {
            let winner = ix.match_winner[key];
            if winner == me || !reported.insert(*ri) {
                continue;
            }
            let host = if key.1.is_empty() { "any hostname".to_string() } else { key.1.clone() };
            r.at(
                route.rules[*ri].field.clone(),
                format!(
                    "{} has the same match for {host} on the same parent and wins by precedence (oldest, then namespace/name); this rule never receives traffic",
                    label(&s.objects()[winner])
                ),
            );
        }
    },
};

pub static ALL_WEIGHTS_ZERO: Rule = Rule {
    code: "MESH2203",
    name: "AllWeightsZero",
    level: Level::Error,
    title: "Every backend of a rule has weight 0",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Object,
    reason: None,
    doc: "Weight 0 means no traffic. When every backendRef of a rule has weight 0, no backend can be chosen and every matching request fails with 500.",
    hint: "Give at least one backend a positive weight (weights are proportions: 90/10 is 9/1).",
    bad: fixture!("MESH2203", "bad"),
    good: fixture!("MESH2203", "good"),
    check: |o, _, r| {
        let Some(route) = o.resource.route() else { return };
        for rule in &route.rules {
            if !rule.backend_refs.is_empty() && rule.backend_refs.iter().all(|b| b.weight == 0) {
                r.at(format!("{}.backendRefs", rule.field), "every backendRef has weight 0, so matching requests get 500");
            }
        }
    },
};

pub static SHADOWED_RULE: Rule = Rule {
    code: "MESH2204",
    name: "ShadowedRule",
    level: Level::Warning,
    title: "A rule repeats a match of an earlier rule of the same route",
    kinds: &[Kind::HttpRoute, Kind::GrpcRoute],
    scope: Scope::Object,
    reason: None,
    doc: "Within a route, identical matches resolve to the first rule: the later rule's match is never used (like istioctl's IST0130/IST0131).",
    hint: "Remove the repeated match, or merge the two rules.",
    bad: fixture!("MESH2204", "bad"),
    good: fixture!("MESH2204", "good"),
    check: |o, _, r| {
        let Some(route) = o.resource.route() else { return };
        let mut seen = std::collections::HashMap::new();
        for rule in &route.rules {
            for (j, key) in rule.match_keys.iter().enumerate() {
                match seen.get(key) {
                    Some(first) if *first != rule.field => {
                        r.at(format!("{}.matches[{j}]", rule.field), format!("the same match is in {first}, which takes all its requests"));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(key.clone(), rule.field.clone());
                    }
                }
            }
        }
    },
};

pub static NO_READY_ENDPOINTS: Rule = Rule {
    code: "MESH2205",
    name: "BackendNoReadyEndpoints",
    level: Level::Warning,
    title: "A backend Service has no ready endpoints",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Cluster,
    reason: None,
    doc: "A Service with no ready endpoints gets 503 for its share of requests. Checked when the input contains EndpointSlices (labelled kubernetes.io/service-name).",
    hint: "Check the Service's selector and the pods' readiness (kubectl get endpointslices -l kubernetes.io/service-name=NAME).",
    bad: fixture!("MESH2205", "bad"),
    good: fixture!("MESH2205", "good"),
    check: |o, s, r| {
        if !s.has_kind(Kind::EndpointSlice) {
            return;
        }
        let Some(route) = o.resource.route() else { return };
        for b in route.rules.iter().flat_map(|x| &x.backend_refs).filter(|b| b.is_service() && b.weight > 0) {
            if s.get(Kind::Service, Some(&b.namespace), &b.name).is_some() && s.index().ready_endpoints.get(&(b.namespace.clone(), b.name.clone())).copied().unwrap_or(0) == 0 {
                r.at(b.field.clone(), format!("Service {}/{} has no ready endpoints; its requests get 503", b.namespace, b.name));
            }
        }
    },
};
