//! MESH50xx: CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig.
//!
//! Cilium's docs: these resources "are not validated by K8s at all", `kubectl apply` succeeds,
//! and errors surface only in the agent log (or as Envoy NACKs that stop later updates). These
//! rules move Cilium's own parse checks, and the references it never checks, to before apply.

use std::collections::HashMap;

use serde_json::Value;

use super::{fixture, Report, Rule, Scope};
use crate::diagnostic::Level;
use crate::envoy::cilium::Names;
use crate::envoy::constraints::ViolationKind;
use crate::envoy::{EnvoyConfig, EnvoyKind, ResourceProblem};
use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;
use crate::walk::{collect, each};

pub static RULES: &[&Rule] = &[
    &TYPE_UNKNOWN,
    &RESOURCE_INVALID,
    &NAME_MISSING,
    &NAME_DUPLICATE,
    &ROUTE_CONFIG_MISSING,
    &CLUSTER_NOT_FOUND,
    &SERVICE_NOT_FOUND,
    &FRONTEND_CLAIMED_TWICE,
    &LISTENER_UNBOUND,
    &WEIGHTS_ZERO,
    &REGEX_INVALID,
    &CIRCUIT_BREAKER_ZERO,
    &RETRIES_EXCEED_MAX_REQUESTS,
    &SERVICE_LISTENER_MISSING,
    &ROUTER_NOT_LAST,
    &CLUSTER_NO_ENDPOINTS,
    &CONSTRAINT_VIOLATED,
    &ENVOY_REJECTS,
    &RDS_CLUSTER_NOT_FOUND,
];

const CONFIGS: &[Kind] = &[Kind::CiliumEnvoyConfig, Kind::CiliumClusterwideEnvoyConfig];

fn config(o: &Object) -> Option<&EnvoyConfig> {
    match &o.resource {
        Resource::EnvoyConfig(c) => Some(c),
        _ => None,
    }
}

/// The namespace a `services`/`backendServices` entry without one refers to.
fn own_namespace(o: &Object) -> String {
    o.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Every HttpConnectionManager of the object's Listeners: (field, hcm).
fn connection_managers(cfg: &EnvoyConfig) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (res, l) in cfg.of_kind(EnvoyKind::Listener) {
        each(
            l,
            "filter_chains[*].filters[*].typed_config",
            &mut |path, tc| {
                if tc
                    .get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("HttpConnectionManager"))
                {
                    out.push((format!("{}.{path}", res.field), tc));
                }
            },
        );
    }
    out
}

/// Every route of every RouteConfiguration, including those inline in an HCM: (field, route).
fn routes(cfg: &EnvoyConfig) -> Vec<(String, &Value)> {
    route_sets(cfg)
        .into_iter()
        .flat_map(|set| set.routes)
        .collect()
}

/// The routes of one route configuration, and whether Envoy checks that the clusters they
/// name exist when it loads them (`validate_clusters`: true by default for a route
/// configuration inline in a connection manager, false for one delivered by RDS, which is how
/// Cilium delivers the RouteConfigurations of `spec.resources`).
struct RouteSet<'a> {
    routes: Vec<(String, &'a Value)>,
    clusters_checked: bool,
}

fn route_set<'a>(rc: &'a Value, field: &str, default: bool) -> RouteSet<'a> {
    let mut routes = Vec::new();
    each(rc, "virtual_hosts[*].routes[*]", &mut |path, v| {
        routes.push((format!("{field}.{path}"), v))
    });
    let clusters_checked = rc
        .get("validate_clusters")
        .and_then(Value::as_bool)
        .unwrap_or(default);
    RouteSet {
        routes,
        clusters_checked,
    }
}

fn route_sets(cfg: &EnvoyConfig) -> Vec<RouteSet<'_>> {
    let mut out = Vec::new();
    for (res, rc) in cfg.of_kind(EnvoyKind::RouteConfiguration) {
        out.push(route_set(rc, &res.field, false));
    }
    for (field, hcm) in connection_managers(cfg) {
        if let Some(rc) = hcm.get("route_config") {
            out.push(route_set(rc, &format!("{field}.route_config"), true));
        }
    }
    out
}

pub static TYPE_UNKNOWN: Rule = Rule {
    code: "MESH5001",
    name: "EnvoyTypeUnknown",
    level: Level::Error,
    title: "An Envoy resource or nested config has an unknown or unsupported @type",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Each entry of spec.resources needs an `@type` of Listener, RouteConfiguration, Cluster, ClusterLoadAssignment or Secret (v3), and every nested `typed_config` must name a real Envoy type. Cilium logs `Ignoring invalid CiliumEnvoyConfig JSON (... unable to resolve ...)` and drops the whole object, while `kubectl apply` reported success.",
    hint: "Use the full type URL, e.g. type.googleapis.com/envoy.config.listener.v3.Listener.",
    bad: fixture!("MESH5001", "bad"),
    good: fixture!("MESH5001", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            let mean = |s: &Option<String>| s.as_ref().map(|x| format!(" (did you mean type.googleapis.com/{x}?)")).unwrap_or_default();
            match &res.problem {
                Some(ResourceProblem::UnsupportedType { suggestion }) => {
                    let what = res.type_url.as_deref().map(|t| format!("@type {t:?} is not a resource type Cilium accepts")).unwrap_or_else(|| "resource has no @type".into());
                    r.at(format!("{}[\"@type\"]", res.field), format!("{what}{}", mean(suggestion)));
                }
                Some(ResourceProblem::UnknownType { field, type_url, suggestion }) => {
                    r.at(field.clone(), format!("@type {type_url:?} names no Envoy type{}", mean(suggestion)));
                }
                _ => {}
            }
        }
    },
};

pub static RESOURCE_INVALID: Rule = Rule {
    code: "MESH5002",
    name: "EnvoyResourceInvalid",
    level: Level::Error,
    title: "An Envoy resource has an unknown field or a value of the wrong type",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Resources are parsed as proto3 JSON against Envoy's v3 descriptors, as Cilium parses them: an unknown field (`weighted_cluster` for `weighted_clusters`), a wrong type or an unknown enum value (`ROUND_ROBINN`) makes Cilium drop the whole object. Both snake_case and lowerCamelCase field names are accepted.",
    hint: "Fix the field as the message says; the Envoy API reference lists each message's fields.",
    bad: fixture!("MESH5002", "bad"),
    good: fixture!("MESH5002", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            if let Some(ResourceProblem::Invalid { field, message }) = &res.problem {
                r.at(field.clone(), message.clone());
            }
        }
    },
};

pub static NAME_MISSING: Rule = Rule {
    code: "MESH5003",
    name: "EnvoyResourceNameMissing",
    level: Level::Error,
    title: "An Envoy resource has no name",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Cilium rejects a Listener, RouteConfiguration, Cluster or Secret without `name` (`unspecified Listener name`) and a ClusterLoadAssignment without `cluster_name`, dropping the whole object.",
    hint: "Name the resource; other resources refer to it by that name.",
    bad: fixture!("MESH5003", "bad"),
    good: fixture!("MESH5003", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            if let (Some(kind), None) = (res.kind, res.name.as_deref().filter(|n| !n.is_empty())) {
                r.at(res.field.clone(), format!("{kind:?} has no {}", kind.name_field()));
            }
        }
    },
};

pub static NAME_DUPLICATE: Rule = Rule {
    code: "MESH5004",
    name: "EnvoyResourceNameDuplicate",
    level: Level::Error,
    title: "Two Envoy resources of one type share a name",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Within one object, names are unique per resource type; Cilium rejects duplicates (`duplicate Listener name`) and drops the object.",
    hint: "Rename one of the resources.",
    bad: fixture!("MESH5004", "bad"),
    good: fixture!("MESH5004", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        let names = Names::of(o);
        let mut seen: HashMap<(EnvoyKind, String), &str> = HashMap::new();
        for res in &cfg.resources {
            if let (Some(kind), Some(name)) = (res.kind, res.name.as_deref()) {
                if let Some(first) = seen.insert((kind, names.qualify(name)), &res.field) {
                    r.at(res.field.clone(), format!("{kind:?} name {name:?} is already used by {first}"));
                }
            }
        }
    },
};

pub static ROUTE_CONFIG_MISSING: Rule = Rule {
    code: "MESH5005",
    name: "EnvoyRouteConfigMissing",
    level: Level::Warning,
    title: "An HTTP connection manager's route config is not in the object",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "`rds.route_config_name` must name a RouteConfiguration of the same object (Cilium qualifies names with the object's namespace/name, so another object's routes are not found). Envoy accepts the listener and waits for routes that never come: every request gets 404. (A connection manager with neither `rds` nor `route_config` is refused by Envoy: MESH5017.)",
    hint: "Set rds.route_config_name to the name of a RouteConfiguration in spec.resources.",
    bad: fixture!("MESH5005", "bad"),
    good: fixture!("MESH5005", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for (field, hcm) in connection_managers(cfg) {
            match (hcm.pointer("/rds/route_config_name").and_then(Value::as_str), hcm.get("route_config")) {
                (Some(name), _) if !cfg.resources.iter().any(|x| x.kind == Some(EnvoyKind::RouteConfiguration) && x.name.as_deref().is_some_and(|n| Names::of(o).same(n, name))) => {
                    let known: Vec<&str> = cfg.resources.iter().filter(|x| x.kind == Some(EnvoyKind::RouteConfiguration)).filter_map(|x| x.name.as_deref()).collect();
                    r.at_hint(format!("{field}.rds.route_config_name"), format!("RouteConfiguration {name:?} is not in this object"), format!("RouteConfigurations here: {}.", if known.is_empty() { "none".into() } else { known.join(", ") }));
                }
                _ => {}
            }
        }
    },
};

/// The cluster names a route sends traffic to: (field, name).
fn route_clusters<'a>(field: &str, route: &'a Value) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    if let Some(c) = route.pointer("/route/cluster").and_then(Value::as_str) {
        out.push((format!("{field}.route.cluster"), c));
    }
    each(
        route,
        "route.weighted_clusters.clusters[*].name",
        &mut |p, v| {
            if let Some(c) = v.as_str() {
                out.push((format!("{field}.{p}"), c));
            }
        },
    );
    each(
        route,
        "route.request_mirror_policies[*].cluster",
        &mut |p, v| {
            if let Some(c) = v.as_str() {
                out.push((format!("{field}.{p}"), c));
            }
        },
    );
    out
}

/// The clusters a route of this object may name: its Clusters, `namespace/name` of its
/// `backendServices` and `services` (Cilium's EDS clusters), and Cilium's bootstrap clusters.
fn known_clusters(o: &Object, cfg: &EnvoyConfig) -> Vec<String> {
    let mut known: Vec<String> = cfg
        .resources
        .iter()
        .filter(|x| x.kind == Some(EnvoyKind::Cluster))
        .filter_map(|x| x.name.clone())
        .collect();
    known.extend(eds_services(o, cfg));
    known
}

/// `namespace/name` of each Service of `backendServices` and `services`: the EDS clusters
/// Cilium serves for the object.
fn eds_services(o: &Object, cfg: &EnvoyConfig) -> Vec<String> {
    let ns = own_namespace(o);
    let backends = cfg
        .spec
        .backend_services
        .iter()
        .flatten()
        .map(|s| (&s.namespace, &s.name));
    let frontends = cfg
        .spec
        .services
        .iter()
        .flatten()
        .map(|s| (&s.namespace, &s.name));
    backends
        .chain(frontends)
        .map(|(n, name)| format!("{}/{name}", n.as_deref().unwrap_or(&ns)))
        .collect()
}

/// Routes naming a cluster nobody defines, split by whether Envoy checks it at load time.
fn unknown_clusters(o: &Object, cfg: &EnvoyConfig, checked: bool, r: &mut Report<'_>) {
    let known = known_clusters(o, cfg);
    for set in route_sets(cfg)
        .into_iter()
        .filter(|s| s.clusters_checked == checked)
    {
        for (field, route) in set.routes {
            for (f, c) in route_clusters(&field, route) {
                if !known.iter().any(|k| Names::of(o).same(k, c))
                    && !crate::envoy::cilium::is_bootstrap_cluster(c)
                {
                    r.at_hint(f, format!("cluster {c:?} is neither a Cluster here, a namespace/name of backendServices, nor a cluster of Cilium's bootstrap"), format!("Known clusters: {}.", if known.is_empty() { "none".into() } else { known.join(", ") }));
                }
            }
        }
    }
}

pub static CLUSTER_NOT_FOUND: Rule = Rule {
    code: "MESH5006",
    name: "EnvoyClusterNotFound",
    level: Level::Error,
    title: "An inline route configuration sends traffic to a cluster that is not defined",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "A route configuration written inline in a connection manager (`route_config`) is checked by Envoy when the listener loads: `validate_clusters` defaults to true there, and a route to an unknown cluster makes Envoy refuse the listener. Known clusters are the Clusters of the same object, `namespace/name` of each Service in `backendServices` (or `services`), which Cilium turns into EDS clusters, and the clusters of Cilium's own bootstrap (`envoy-admin`, `egress-cluster`, `ingress-cluster` and their `-tls` variants). RouteConfigurations delivered by RDS are not checked by Envoy: see MESH5019.",
    hint: "Add the Service to backendServices (namespace/name), or define a Cluster with that exact name.",
    bad: fixture!("MESH5006", "bad"),
    good: fixture!("MESH5006", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        unknown_clusters(o, cfg, true, r);
    },
};

pub static RDS_CLUSTER_NOT_FOUND: Rule = Rule {
    code: "MESH5019",
    name: "EnvoyRdsClusterNotFound",
    level: Level::Warning,
    title: "A route sends traffic to a cluster that is not defined",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "A RouteConfiguration of `spec.resources` reaches Envoy by RDS, where `validate_clusters` defaults to false: Envoy accepts a route to a cluster nobody defines, and every request it matches gets 503 (`cluster not found`). The traffic-shifting article depends on `default/helloworld-v1` matching a backendServices entry. Known clusters are as for MESH5006.",
    hint: "Add the Service to backendServices (namespace/name), or define a Cluster with that exact name.",
    bad: fixture!("MESH5019", "bad"),
    good: fixture!("MESH5019", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        unknown_clusters(o, cfg, false, r);
    },
};

pub static SERVICE_NOT_FOUND: Rule = Rule {
    code: "MESH5007",
    name: "EnvoyServiceNotFound",
    level: Level::Warning,
    title: "services or backendServices names a missing Service or port",
    kinds: CONFIGS,
    scope: Scope::Cluster,
    reason: None,
    doc: "A frontend in `services` that does not exist redirects nothing; a `backendServices` entry that does not exist yields an empty EDS cluster (503). Ports must be the Service's ports. Checked when the input contains Services. A Warning: Cilium and Envoy accept the object, and the traffic fails.",
    hint: "Correct the Service name, namespace or port (kubectl get svc -n NS).",
    bad: fixture!("MESH5007", "bad"),
    good: fixture!("MESH5007", "good"),
    check: |o, s, r| {
        let Some(cfg) = config(o) else { return };
        if !s.has_kind(Kind::Service) {
            return;
        }
        let ns = own_namespace(o);
        let check = |field: String, svc_ns: &str, name: &str, ports: Vec<String>, r: &mut Report<'_>| match s.get(Kind::Service, Some(svc_ns), name) {
            None => r.at(field, format!("Service {svc_ns}/{name} not found")),
            Some(Object { resource: Resource::Service(svc), .. }) => {
                let have: Vec<(String, String)> = svc.spec.iter().flat_map(|sp| sp.ports.iter().flatten()).map(|p| (p.port.to_string(), p.name.clone().unwrap_or_default())).collect();
                for p in ports {
                    if !have.iter().any(|(n, nm)| *n == p || *nm == p) {
                        r.at(field.clone(), format!("Service {svc_ns}/{name} has no port {p}"));
                    }
                }
            }
            Some(_) => {}
        };
        for (i, sv) in cfg.spec.services.iter().flatten().enumerate() {
            let ports = sv.ports.iter().flatten().map(u16::to_string).collect();
            check(format!("spec.services[{i}]"), sv.namespace.as_deref().unwrap_or(&ns), &sv.name, ports, r);
        }
        for (i, b) in cfg.spec.backend_services.iter().flatten().enumerate() {
            check(format!("spec.backendServices[{i}]"), b.namespace.as_deref().unwrap_or(&ns), &b.name, b.number.clone().unwrap_or_default(), r);
        }
    },
};

/// How many rival objects a finding names before it counts the rest.
const NAMED: usize = 5;

pub static FRONTEND_CLAIMED_TWICE: Rule = Rule {
    code: "MESH5008",
    name: "EnvoyFrontendClaimedTwice",
    level: Level::Warning,
    title: "A Service frontend is claimed by more than one Envoy config",
    kinds: CONFIGS,
    scope: Scope::Cluster,
    reason: None,
    doc: "Cilium redirects a Service frontend to one L7 proxy port only. When two CiliumEnvoyConfig/CiliumClusterwideEnvoyConfig objects list the same Service in `services`, which one gets the traffic is undefined (the articles left an earlier CCEC in place while applying the next one). A Warning: Cilium accepts both objects.",
    hint: "Keep one Envoy config per Service frontend; delete the leftover one (kubectl get cec,ccec -A).",
    bad: fixture!("MESH5008", "bad"),
    good: fixture!("MESH5008", "good"),
    check: |o, s, r| {
        let Some(cfg) = config(o) else { return };
        let Some(me) = s.position(o) else { return };
        let ns = own_namespace(o);
        for (i, sv) in cfg.spec.services.iter().flatten().enumerate() {
            let key = (sv.namespace.clone().unwrap_or_else(|| ns.clone()), sv.name.clone());
            // Name a few rivals and count the rest: with many claimers, listing all of them in
            // every finding would make the rule quadratic.
            let claimers = s.index().frontends.get(&key).map_or(&[][..], Vec::as_slice);
            let named: Vec<String> = claimers.iter().filter(|&&j| j != me).take(NAMED).map(|&j| s.objects()[j].reference().to_string()).collect();
            if !named.is_empty() {
                let total = claimers.len().saturating_sub(1);
                let more = if total > named.len() { format!(" and {} more", total - named.len()) } else { String::new() };
                r.at(format!("spec.services[{i}]"), format!("Service {}/{} is also claimed by {}{more}", key.0, key.1, named.join(", ")));
            }
        }
    },
};

pub static LISTENER_UNBOUND: Rule = Rule {
    code: "MESH5009",
    name: "EnvoyListenerUnbound",
    level: Level::Warning,
    title: "A Listener has no address and the object redirects no Service",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Listeners without an address receive traffic only through Cilium's redirection of the Services in `spec.services`. With neither an address nor services, the listener never sees a connection.",
    hint: "List the frontend Service in spec.services, or give the Listener an address (socket_address with port_value).",
    bad: fixture!("MESH5009", "bad"),
    good: fixture!("MESH5009", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        if cfg.spec.services.as_ref().is_some_and(|s| !s.is_empty()) {
            return;
        }
        for (res, l) in cfg.of_kind(EnvoyKind::Listener) {
            if l.get("address").is_none() && l.get("additional_addresses").is_none() {
                r.at(res.field.clone(), format!("Listener {:?} has no address and spec.services is empty", res.name.as_deref().unwrap_or("")));
            }
        }
    },
};

pub static WEIGHTS_ZERO: Rule = Rule {
    code: "MESH5010",
    name: "EnvoyWeightsZero",
    level: Level::Error,
    title: "weighted_clusters weights sum to 0",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Envoy rejects a weighted_clusters route whose weights add up to 0 (\"Sum of weights in the weighted_cluster must be greater than 0\"), and the listener's update is NACKed.",
    hint: "Give at least one cluster a positive weight.",
    bad: fixture!("MESH5010", "bad"),
    good: fixture!("MESH5010", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for (field, route) in routes(cfg) {
            let Some(list) = route.pointer("/route/weighted_clusters/clusters").and_then(Value::as_array) else { continue };
            let sum: u64 = list.iter().map(|c| c.get("weight").and_then(Value::as_u64).unwrap_or(0)).sum();
            if sum == 0 {
                r.at(format!("{field}.route.weighted_clusters"), "the weights of weighted_clusters sum to 0");
            }
        }
    },
};

pub static REGEX_INVALID: Rule = Rule {
    code: "MESH5011",
    name: "EnvoyRegexInvalid",
    level: Level::Error,
    title: "A safe_regex does not compile",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Envoy compiles every regex matcher (route `safe_regex`, header, query-parameter and string matchers, `regex_rewrite`, CORS origins, in routes and in every filter) with RE2 and rejects the whole resource when one does not compile.",
    hint: "Fix the pattern (RE2 has no look-around or back-references).",
    bad: fixture!("MESH5011", "bad"),
    good: fixture!("MESH5011", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            for v in res.violations.iter().filter(|v| v.kind == ViolationKind::Regex) {
                r.at(v.path.clone(), v.message.clone());
            }
        }
    },
};

const THRESHOLDS: [&str; 4] = [
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
];

pub static CIRCUIT_BREAKER_ZERO: Rule = Rule {
    code: "MESH5012",
    name: "EnvoyCircuitBreakerZero",
    level: Level::Warning,
    title: "A circuit-breaker threshold is 0",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Circuit-breaker thresholds are upper bounds on concurrent connections, pending requests, requests and retries. Envoy accepts a threshold of 0, and it opens the breaker for every request: all traffic to the cluster gets 503. (`max_requests` bounds concurrent requests, not connections, despite the article's comment.)",
    hint: "Set thresholds to at least 1, sized from the expected concurrency; omit one to keep Envoy's default (1024).",
    bad: fixture!("MESH5012", "bad"),
    good: fixture!("MESH5012", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for (res, c) in cfg.of_kind(EnvoyKind::Cluster) {
            each(c, "circuit_breakers.thresholds[*]", &mut |p, t| {
                for k in THRESHOLDS {
                    if t.get(k).and_then(Value::as_u64) == Some(0) {
                        r.at(format!("{}.{p}.{k}", res.field), format!("{k} is 0, so every request to cluster {:?} is rejected with 503", res.name.as_deref().unwrap_or("")));
                    }
                }
            });
        }
    },
};

pub static RETRIES_EXCEED_MAX_REQUESTS: Rule = Rule {
    code: "MESH5013",
    name: "EnvoyRetriesExceedMaxRequests",
    level: Level::Warning,
    title: "A cluster's max_requests is below the retries sent to it",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "A route with `num_retries: 3` can keep up to four requests in flight per client request. When the cluster's `max_requests` is lower, retries themselves trip the circuit breaker and turn recoverable errors into 503s.",
    hint: "Raise max_requests above num_retries (and the expected concurrency), or lower num_retries.",
    bad: fixture!("MESH5013", "bad"),
    good: fixture!("MESH5013", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        let limits: HashMap<&str, (String, u64)> = cfg
            .of_kind(EnvoyKind::Cluster)
            .filter_map(|(res, c)| {
                let m = collect(c, "circuit_breakers.thresholds[*].max_requests").into_iter().filter_map(Value::as_u64).min()?;
                Some((res.name.as_deref()?, (res.field.clone(), m)))
            })
            .collect();
        for (field, route) in routes(cfg) {
            let Some(retries) = route.pointer("/route/retry_policy/num_retries").and_then(Value::as_u64) else { continue };
            for (_, c) in route_clusters(&field, route) {
                if let Some((cf, max)) = limits.get(c) {
                    if *max < retries {
                        r.at(format!("{field}.route.retry_policy.num_retries"), format!("{retries} retries exceed max_requests {max} of cluster {c:?} ({cf})"));
                    }
                }
            }
        }
    },
};

pub static SERVICE_LISTENER_MISSING: Rule = Rule {
    code: "MESH5014",
    name: "EnvoyServiceListenerMissing",
    level: Level::Error,
    title: "services[].listener names a Listener that is not in the object",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "`services[].listener` picks which Listener of the object receives the Service's traffic. When it names no Listener here (or the object has no Listener at all), Cilium has nowhere to redirect the frontend.",
    hint: "Use the name of a Listener in spec.resources, or omit listener when there is exactly one.",
    bad: fixture!("MESH5014", "bad"),
    good: fixture!("MESH5014", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        let listeners: Vec<&str> = cfg.resources.iter().filter(|x| x.kind == Some(EnvoyKind::Listener)).filter_map(|x| x.name.as_deref()).collect();
        for (i, sv) in cfg.spec.services.iter().flatten().enumerate() {
            match &sv.listener {
                Some(l) if !l.is_empty() && !listeners.iter().any(|n| Names::of(o).same(n, l)) => r.at(format!("spec.services[{i}].listener"), format!("Listener {l:?} is not in this object")),
                _ if listeners.is_empty() && !cfg.resources.is_empty() => r.at(format!("spec.services[{i}]"), "the object has no Listener to redirect this Service to"),
                _ => {}
            }
        }
    },
};

pub static ROUTER_NOT_LAST: Rule = Rule {
    code: "MESH5015",
    name: "EnvoyRouterNotLast",
    level: Level::Error,
    title: "The router filter is missing or not the last HTTP filter",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "`envoy.filters.http.router` is a terminal filter: Envoy rejects a connection manager whose router is not the last HTTP filter (\"terminal filter ... must be the last filter in a http filter chain\"), and one whose last filter is another, non-terminal one (\"non-terminal filter ... is the last filter\"). An empty list is accepted. Cilium inserts its own `cilium.l7policy` filter just before the router.",
    hint: "Make envoy.filters.http.router (typed_config Router) the last entry of http_filters.",
    bad: fixture!("MESH5015", "bad"),
    good: fixture!("MESH5015", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for (field, hcm) in connection_managers(cfg) {
            let filters = collect(hcm, "http_filters[*]");
            let is_router = |f: &Value| {
                f.get("name").and_then(Value::as_str) == Some("envoy.filters.http.router")
                    || f.pointer("/typed_config/@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("router.v3.Router"))
            };
            match filters.iter().position(|f| is_router(f)) {
                // An empty list is accepted by Envoy (which then serves with its default router).
                None if filters.is_empty() => {}
                None => r.at(
                    format!("{field}.http_filters[{}]", filters.len() - 1),
                    "no envoy.filters.http.router filter, and the last HTTP filter is not terminal: Envoy refuses the chain (\"non-terminal filter ... is the last filter in a http filter chain\")",
                ),
                Some(i) if i + 1 != filters.len() => r.at(
                    format!("{field}.http_filters[{i}]"),
                    format!("the router filter is entry {i} of {}; it must be the last", filters.len()),
                ),
                Some(_) => {}
            }
        }
    },
};

pub static CLUSTER_NO_ENDPOINTS: Rule = Rule {
    code: "MESH5016",
    name: "EnvoyClusterNoEndpoints",
    level: Level::Warning,
    title: "A Cluster has no source of endpoints",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Cilium serves endpoints (EDS) only for the Services listed in `services` and `backendServices`, under the name `namespace/name` (or the cluster's `eds_cluster_config.service_name`). An EDS cluster with another name, or a STATIC/STRICT_DNS cluster without `load_assignment`, has no hosts: every request to it gets 503 `no healthy upstream`.",
    hint: "Name the cluster namespace/service and list that Service in backendServices, or give it a load_assignment.",
    bad: fixture!("MESH5016", "bad"),
    good: fixture!("MESH5016", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        let served = eds_services(o, cfg);
        for (res, c) in cfg.of_kind(EnvoyKind::Cluster) {
            let name = res.name.as_deref().unwrap_or("");
            let typ = c.get("type").and_then(Value::as_str).unwrap_or("STATIC");
            let has_cla = cfg.has_resource(EnvoyKind::ClusterLoadAssignment, name);
            let empty = match typ {
                "EDS" => {
                    let service = c.pointer("/eds_cluster_config/service_name").and_then(Value::as_str).unwrap_or(name);
                    !has_cla && !served.iter().any(|s| s == service)
                }
                "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" => c.get("load_assignment").is_none() && !has_cla,
                _ => false,
            };
            if empty && c.get("cluster_type").is_none() && name != "envoy-admin" {
                r.at(res.field.clone(), format!("{typ} cluster {name:?} has no endpoints: it is not a namespace/name of services or backendServices and has no load_assignment"));
            }
        }
    },
};

pub static CONSTRAINT_VIOLATED: Rule = Rule {
    code: "MESH5017",
    name: "EnvoyConstraintViolated",
    level: Level::Error,
    title: "A field breaks a constraint Envoy declares on it",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Envoy's API annotates its fields with protoc-gen-validate rules (required fields and oneofs, string lengths, header-name formats, numeric and duration bounds, defined enum values, list sizes) and refuses a configuration that breaks one, in every resource and in every `typed_config` it unpacks (filters, TcpProxy, transport sockets, access logs). Cilium validates the top-level resources the same way. Each rule is read from the descriptors of Envoy 1.40, so every extension is covered; a negative duration and a field Envoy disallows by default are refused too.",
    hint: "Change the field as the message says; the Envoy API reference shows each field's constraints.",
    bad: fixture!("MESH5017", "bad"),
    good: fixture!("MESH5017", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            for v in res.violations.iter().filter(|v| v.kind == ViolationKind::Declared) {
                r.at(v.path.clone(), v.message.clone());
            }
        }
    },
};

pub static ENVOY_REJECTS: Rule = Rule {
    code: "MESH5018",
    name: "EnvoyRejectsResource",
    level: Level::Error,
    title: "Envoy refuses the resource when it builds it",
    kinds: CONFIGS,
    scope: Scope::Object,
    reason: None,
    doc: "Beyond its declared constraints, Envoy checks a configuration as it builds listeners, routes and clusters, and refuses it (a NACK in Cilium, `error initializing configuration` from `envoy --mode validate`): a listener without filter chains, an address that is not an IP, two listeners on one address, two filter chains with the same match, a terminal network filter that is not last, an extension whose `typed_config` type Envoy 1.40 does not register in that place, HTTP/3 on a TCP listener, a domain twice in a route configuration, two rewrites in one route, `:`-prefixed or `host` headers added or removed, and more; the list of checks is below.",
    hint: "Change the resource as the message says; the message is Envoy's own for the same mistake.",
    bad: fixture!("MESH5018", "bad"),
    good: fixture!("MESH5018", "good"),
    check: |o, _, r| {
        let Some(cfg) = config(o) else { return };
        for res in &cfg.resources {
            for v in res.violations.iter().filter(|v| v.kind == ViolationKind::Semantic) {
                r.at(v.path.clone(), v.message.clone());
            }
        }
        for (_, v) in crate::envoy::semantics::check(cfg) {
            r.at(v.path, v.message);
        }
    },
};
