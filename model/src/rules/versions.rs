//! MESH90xx: versions and portability: fine today, worth knowing.

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;

pub static RULES: &[&Rule] = &[&OLDER_VERSION, &ENVOY_CONFIG_PORTABILITY];

pub static OLDER_VERSION: Rule = Rule {
    code: "MESH9001",
    name: "OlderApiVersion",
    level: Level::Info,
    title: "A v1beta1 or v1alpha version is used where v1 is served",
    kinds: &[Kind::GatewayClass, Kind::Gateway, Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute, Kind::TcpRoute, Kind::UdpRoute, Kind::ReferenceGrant],
    scope: Scope::Object,
    reason: None,
    doc: "Gateway API still serves older versions of some kinds, with the same schema, but they are not the storage version and will be removed (the articles mix v1beta1 and v1 HTTPRoutes in one lab). v1 is served for every standard kind since Gateway API v1.5.",
    hint: "Change apiVersion to gateway.networking.k8s.io/v1.",
    bad: fixture!("MESH9001", "bad"),
    good: fixture!("MESH9001", "good"),
    check: |o, _, r| {
        // The targeted release's CRDs say what is served (the experimental channel serves every
        // version the standard one does). A version is older when a more mature one is served,
        // not when it is not the storage version: v1.6 serves ReferenceGrant v1 but still stores
        // v1beta1, and v1 is the one to write.
        let cat = crate::crd::catalog();
        let Some(crd) = cat.kind(crate::crd::Channel::Experimental, o.group(), &o.kind) else { return };
        let Some(newest) = crd.versions.iter().map(|v| v.name.as_str()).max_by_key(|v| crate::crd::version_priority(v)) else { return };
        if crd.version(o.version()).is_some() && crate::crd::version_priority(o.version()) < crate::crd::version_priority(newest) {
            r.at("apiVersion", format!("{} is an older version of {}; {}/{newest} is served", o.api_version, o.kind, crd.group));
        }
    },
};

pub static ENVOY_CONFIG_PORTABILITY: Rule = Rule {
    code: "MESH9002",
    name: "EnvoyConfigHasRouteEquivalent",
    level: Level::Info,
    title: "A CiliumEnvoyConfig does only what an HTTPRoute can do",
    kinds: &[Kind::CiliumEnvoyConfig, Kind::CiliumClusterwideEnvoyConfig],
    scope: Scope::Object,
    reason: None,
    doc: "CiliumEnvoyConfig exposes raw Envoy configuration, gets minimal validation from Cilium, and is not portable. A weighted split between Services, a prefix rewrite or a timeout is expressed by a GAMMA HTTPRoute (parent: the Service) in standard Gateway API.",
    hint: "Consider an HTTPRoute with parentRefs [{group: \"\", kind: Service, name: <frontend>}] and weighted backendRefs.",
    bad: fixture!("MESH9002", "bad"),
    good: fixture!("MESH9002", "good"),
    check: |o, _, r| {
        let crate::resource::Resource::EnvoyConfig(cfg) = &o.resource else { return };
        let has_services = cfg.spec.services.as_ref().is_some_and(|s| !s.is_empty());
        let only_weights = cfg.of_kind(crate::envoy::EnvoyKind::RouteConfiguration).all(|(_, rc)| {
            crate::walk::collect(rc, "virtual_hosts[*].routes[*]").into_iter().all(|route| route.get("route").is_some_and(|a| a.get("weighted_clusters").is_some()) && route.pointer("/match/prefix").is_some_and(|p| p == "/"))
        });
        let clusters_plain = cfg.of_kind(crate::envoy::EnvoyKind::Cluster).all(|(_, c)| c.get("circuit_breakers").is_none() && c.get("outlier_detection").is_none());
        let any_routes = cfg.of_kind(crate::envoy::EnvoyKind::RouteConfiguration).count() > 0;
        if has_services && any_routes && only_weights && clusters_plain {
            r.at("spec.resources", "this weighted split could be a GAMMA HTTPRoute with weighted backendRefs");
        }
    },
};
