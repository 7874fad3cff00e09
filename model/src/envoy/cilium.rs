//! What Cilium adds around the Envoy resources of a CiliumEnvoyConfig: the names its own
//! bootstrap defines, and how it hands the resources to Envoy.
//!
//! Cilium's agent parses `spec.resources`, rejects unnamed and duplicate resources, runs the
//! protoc-gen-validate checks, qualifies names with the object's namespace and name, and sends
//! the result to its Envoy over ADS next to the static resources of its bootstrap. Two things
//! follow for a checker: the bootstrap's clusters (`envoy-admin`, `egress-cluster`, ...) are
//! valid references although no object defines them, and a route configuration delivered by
//! RDS is not checked for unknown clusters (`validate_clusters` defaults to false for RDS), so a
//! route to a cluster nobody defines is accepted and answers 503 at run time.
//!
//! [`static_bootstrap`] writes the same resources as one static Envoy bootstrap, the way
//! Cilium would feed them (routes of `rds` inlined with RDS's defaults, EDS clusters on ADS,
//! `backendServices` as EDS clusters, the bootstrap's clusters present), so that
//! `envoy --mode validate` can judge a CiliumEnvoyConfig: the oracle of the differential test.

use serde_json::{json, Map, Value};

use super::{EnvoyConfig, EnvoyKind};

/// Clusters every Cilium Envoy bootstrap defines (Cilium's `pkg/envoy` bootstrap): routes and
/// TcpProxy filters of any CiliumEnvoyConfig may send traffic to them.
pub const BOOTSTRAP_CLUSTERS: &[&str] = &[
    "envoy-admin",
    "egress-cluster",
    "egress-cluster-tls",
    "ingress-cluster",
    "ingress-cluster-tls",
    "xds-grpc-cilium",
];

/// Whether a cluster name is one Cilium's bootstrap defines.
pub fn is_bootstrap_cluster(name: &str) -> bool {
    BOOTSTRAP_CLUSTERS.contains(&name)
}

/// Cilium's own Envoy extensions (its proxy build registers them; upstream Envoy does not).
/// Their contents are not checked field by field; naming one is not an error.
pub const CILIUM_TYPES: &[&str] = &[
    "cilium.L7Policy",
    "cilium.NetworkFilter",
    "cilium.BpfMetadata",
    "cilium.TlsWrapperDownstream",
    "cilium.TlsWrapperUpstream",
];

/// How Cilium names the resources of one object: a name without `/` becomes
/// `namespace/object/name` (`namespace` empty for a CiliumClusterwideEnvoyConfig), a name with
/// `/` is taken as already qualified (Cilium's `ResourceQualifiedName`). References inside the
/// object (`rds.route_config_name`, route clusters, `services[].listener`) are qualified the
/// same way, so `lb_route` and `default/my-config/lb_route` name the same RouteConfiguration.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub namespace: &'a str,
    pub object: &'a str,
}

impl<'a> Names<'a> {
    pub fn of(o: &'a crate::object::Object) -> Names<'a> {
        Names {
            namespace: o.namespace.as_deref().unwrap_or(""),
            object: &o.name,
        }
    }

    pub fn qualify(&self, name: &str) -> String {
        if name.is_empty() || name.contains('/') {
            name.to_string()
        } else {
            format!("{}/{}/{name}", self.namespace, self.object)
        }
    }

    /// Whether two names written in this object name the same resource.
    pub fn same(&self, a: &str, b: &str) -> bool {
        a == b || self.qualify(a) == self.qualify(b)
    }
}

fn config_source() -> Value {
    json!({"ads": {}, "resource_api_version": "V3"})
}

/// The resources of `cfg` as one static Envoy bootstrap, as Cilium would feed them to Envoy.
/// `names` qualifies names as Cilium does. Resources that did not parse are written as they
/// are, so Envoy judges them too.
pub fn static_bootstrap(cfg: &EnvoyConfig, names: Names<'_>) -> Value {
    // `resources` were parsed from `spec.resources` one for one, in order.
    let written = cfg.spec.resources.iter().flatten();
    let bodies: Vec<(&super::EnvoyResource, Value)> = cfg
        .resources
        .iter()
        .zip(written)
        .map(|(r, as_written)| {
            let mut v = r.canonical.clone().unwrap_or_else(|| as_written.clone());
            if let Some(o) = v.as_object_mut() {
                o.remove("@type");
            }
            (r, v)
        })
        .collect();
    let of_kind = |kind: EnvoyKind| {
        bodies
            .iter()
            .filter(move |(r, _)| r.kind == Some(kind))
            .map(|(r, v)| (*r, v.clone()))
    };
    let routes: Vec<(Option<&str>, Value)> = of_kind(EnvoyKind::RouteConfiguration)
        .map(|(r, v)| (r.name.as_deref(), v))
        .collect();
    let mut used_routes = vec![false; routes.len()];
    let mut listeners = Vec::new();
    let mut port = 20000;
    for (_, mut l) in of_kind(EnvoyKind::Listener) {
        if let Some(o) = l.as_object_mut() {
            if !o.contains_key("address") && !o.contains_key("internal_listener") {
                // Cilium gives a listener without address a proxy port of its own.
                o.insert(
                    "address".into(),
                    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}}),
                );
                port += 1;
            }
        }
        inline_rds(&mut l, &routes, &mut used_routes, names);
        sds_from_cilium(&mut l);
        listeners.push(l);
    }
    // Route configurations no listener uses are still checked, on a listener of their own.
    for (i, (_, rc)) in routes.iter().enumerate() {
        if !used_routes[i] {
            let mut rc = rc.clone();
            rds_defaults(&mut rc);
            listeners.push(json!({
                "name": format!("unreferenced-route-{i}"),
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "unreferenced", "route_config": rc,
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]
            }));
            port += 1;
        }
    }
    let mut clusters: Vec<Value> = bootstrap_clusters();
    let mut defined: Vec<String> = Vec::new();
    for (r, mut c) in of_kind(EnvoyKind::Cluster) {
        eds_on_ads(&mut c);
        sds_from_cilium(&mut c);
        if let Some(n) = &r.name {
            defined.push(n.clone());
        }
        clusters.push(c);
    }
    let ns = if names.namespace.is_empty() {
        "default"
    } else {
        names.namespace
    };
    let services = cfg
        .spec
        .backend_services
        .iter()
        .flatten()
        .map(|s| (s.namespace.as_deref(), s.name.as_str()))
        .chain(
            cfg.spec
                .services
                .iter()
                .flatten()
                .map(|s| (s.namespace.as_deref(), s.name.as_str())),
        );
    for (sns, name) in services {
        let full = format!("{}/{name}", sns.unwrap_or(ns));
        if !defined.contains(&full) {
            clusters.push(json!({"name": full, "type": "EDS", "connect_timeout": "5s", "eds_cluster_config": {"eds_config": config_source()}}));
            defined.push(full);
        }
    }
    // A ClusterLoadAssignment reaches Envoy by EDS; checked here as the endpoints of a static
    // cluster of its own, which Envoy judges the same way (addresses must be IPs).
    for (i, (_, cla)) in of_kind(EnvoyKind::ClusterLoadAssignment).enumerate() {
        clusters.push(json!({"name": format!("endpoints-{i}"), "type": "STATIC", "connect_timeout": "5s", "load_assignment": cla}));
    }
    let secrets: Vec<Value> = of_kind(EnvoyKind::Secret).map(|(_, v)| v).collect();
    json!({
        "node": {"id": "host~127.0.0.1~cilium-envoy~local", "cluster": "ingress-cluster"},
        "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc-cilium"}}]}},
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets},
    })
}

/// The clusters of Cilium's bootstrap, with local stand-ins for its unix sockets.
fn bootstrap_clusters() -> Vec<Value> {
    let original_dst = |name: &str| json!({"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "2s"});
    let pipe = |name: &str, path: &str| {
        json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": path}}}}]}]}})
    };
    let mut xds = pipe("xds-grpc-cilium", "/var/run/cilium/envoy/sockets/xds.sock");
    xds["typed_extension_protocol_options"] = json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}});
    vec![
        pipe("envoy-admin", "/var/run/cilium/envoy/sockets/admin.sock"),
        original_dst("egress-cluster"),
        original_dst("egress-cluster-tls"),
        original_dst("ingress-cluster"),
        original_dst("ingress-cluster-tls"),
        xds,
    ]
}

/// A TLS context's SDS secret reference without a config source is served by Cilium's SDS
/// (Cilium fills in its own config source, so `name: namespace/secret` is enough).
fn sds_from_cilium(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let refs: Vec<&mut Value> = match (k.as_str(), &mut *child) {
                    ("tls_certificate_sds_secret_configs", Value::Array(list)) => {
                        list.iter_mut().collect()
                    }
                    (
                        "validation_context_sds_secret_config"
                        | "session_ticket_keys_sds_secret_config",
                        one,
                    ) => vec![one],
                    _ => Vec::new(),
                };
                let is_ref = !refs.is_empty();
                for r in refs {
                    if let Some(o) = r.as_object_mut() {
                        o.entry("sds_config").or_insert_with(config_source);
                    }
                }
                if !is_ref {
                    sds_from_cilium(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sds_from_cilium),
        _ => {}
    }
}

/// An EDS cluster without a config source gets Cilium's (ADS), as Cilium fills it in.
fn eds_on_ads(c: &mut Value) {
    let Some(o) = c.as_object_mut() else { return };
    if o.get("type").and_then(Value::as_str) != Some("EDS") {
        return;
    }
    let eds = o.entry("eds_cluster_config").or_insert_with(|| json!({}));
    if let Some(e) = eds.as_object_mut() {
        e.entry("eds_config").or_insert_with(config_source);
    }
}

/// RDS's default: clusters of a route configuration are not checked to exist.
fn rds_defaults(rc: &mut Value) {
    if let Some(o) = rc.as_object_mut() {
        o.entry("validate_clusters").or_insert(json!(false));
    }
}

/// Replace `rds` in every HttpConnectionManager of a listener with the named route
/// configuration, as RDS would deliver it; a name no resource has stays on ADS.
fn inline_rds(
    listener: &mut Value,
    routes: &[(Option<&str>, Value)],
    used: &mut [bool],
    names: Names<'_>,
) {
    let Some(l) = listener.as_object_mut() else {
        return;
    };
    let mut chains: Vec<&mut Value> = Vec::new();
    for (k, v) in l.iter_mut() {
        match (k.as_str(), v) {
            ("filter_chains", Value::Array(list)) => chains.extend(list.iter_mut()),
            ("default_filter_chain", chain) => chains.push(chain),
            _ => {}
        }
    }
    for chain in chains {
        let filters = chain
            .get_mut("filters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for f in filters {
            let Some(tc) = f.get_mut("typed_config").and_then(Value::as_object_mut) else {
                continue;
            };
            if !tc
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(".HttpConnectionManager"))
            {
                continue;
            }
            inline_one(tc, routes, used, names);
        }
    }
}

fn inline_one(
    hcm: &mut Map<String, Value>,
    routes: &[(Option<&str>, Value)],
    used: &mut [bool],
    names: Names<'_>,
) {
    let Some(name) = hcm
        .get("rds")
        .and_then(|r| r.get("route_config_name"))
        .and_then(Value::as_str)
    else {
        if let Some(rds) = hcm.get_mut("rds").and_then(Value::as_object_mut) {
            rds.entry("config_source").or_insert_with(config_source);
        }
        return;
    };
    // An `rds` with fields beyond these stays as written, so Envoy parses (and refuses) it.
    let plain = hcm.get("rds").and_then(Value::as_object).is_some_and(|r| {
        r.keys()
            .all(|k| k == "route_config_name" || k == "config_source")
    });
    match routes
        .iter()
        .position(|(n, _)| n.is_some_and(|n| names.same(n, name)))
        .filter(|_| plain)
    {
        Some(i) => {
            used[i] = true;
            let mut rc = routes[i].1.clone();
            rds_defaults(&mut rc);
            hcm.remove("rds");
            hcm.insert("route_config".into(), rc);
        }
        None => {
            if let Some(rds) = hcm.get_mut("rds").and_then(Value::as_object_mut) {
                rds.entry("config_source").or_insert_with(config_source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::EnvoyConfigSpec;

    #[test]
    fn bootstrap_is_what_cilium_would_feed_envoy() {
        let spec: EnvoyConfigSpec = serde_json::from_value(json!({
            "backendServices": [{"name": "web"}],
            "resources": [
                {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
                 "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "s", "rds": {"route_config_name": "shop/cfg/r"},
                    "http_filters": [{"name": "router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]},
                {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "r",
                 "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "shop/web"}}]}]},
                {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c", "type": "EDS", "connect_timeout": "1s"}
            ]
        }))
        .unwrap();
        let cfg = EnvoyConfig::parse(spec);
        let b = static_bootstrap(
            &cfg,
            Names {
                namespace: "shop",
                object: "cfg",
            },
        );
        let l = &b["static_resources"]["listeners"][0];
        // The qualified rds name found the RouteConfiguration, inlined with RDS's default.
        let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm.get("rds"), None);
        assert_eq!(hcm["route_config"]["validate_clusters"], json!(false));
        assert!(l["address"]["socket_address"]["port_value"].is_u64());
        assert_eq!(
            b["static_resources"]["listeners"].as_array().unwrap().len(),
            1
        );
        let clusters: Vec<&str> = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for name in BOOTSTRAP_CLUSTERS.iter().copied().chain(["c", "shop/web"]) {
            assert!(clusters.contains(&name), "{name} in {clusters:?}");
        }
        let c = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "c")
            .unwrap();
        assert_eq!(c["eds_cluster_config"]["eds_config"], config_source());
    }
}
