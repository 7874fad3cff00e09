//! MESH21xx: what CEL cannot see about a route: whether its parents exist and accept it,
//! whether its backends exist and may be referenced. Each reports the status reason the route
//! would get. MESH30xx: ReferenceGrant itself.

use super::{fixture, Rule, Scope};
use crate::attach::{self, Parent, Rejection};
use crate::diagnostic::Level;
use crate::grants;
use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;
use crate::route::BackendRef;
use crate::snapshot::Snapshot;

pub static RULES: &[&Rule] = &[
    &PARENT_NOT_FOUND,
    &NO_MATCHING_LISTENER,
    &KIND_NOT_ALLOWED,
    &BACKEND_NOT_FOUND,
    &NAMESPACE_NOT_ALLOWED,
    &HOSTNAME_NO_MATCH,
    &BACKEND_NOT_PERMITTED,
    &GAMMA_GROUP_MISSING,
    &CONSUMER_ROUTE,
    &BACKEND_KIND_UNSUPPORTED,
    &GRANT_NAMESPACE_MISSING,
];

const ROUTES: &[Kind] = crate::kind::ROUTE_KINDS;

/// Call `f` for every parentRef of a route with its resolution.
fn parents<'a>(
    o: &'a Object,
    s: &'a Snapshot,
    mut f: impl FnMut(&crate::route::ParentRef, Parent<'a>),
) {
    if let Some(route) = o.resource.route() {
        for p in &route.parent_refs {
            f(p, attach::resolve(o, route, p, s));
        }
    }
}

pub static PARENT_NOT_FOUND: Rule = Rule {
    code: "MESH2101",
    name: "ParentNotFound",
    level: Level::Error,
    title: "A route's parent Gateway or Service does not exist",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some("NoMatchingParent"),
    doc: "A parentRef without `namespace` points into the route's own namespace; without `kind` it points at a Gateway. A route whose parent does not exist is attached to nothing and serves no traffic (requests get 404). Checked when the input contains objects of the parent's kind.",
    hint: "Fix the parentRef's name, or add namespace: when the Gateway lives elsewhere.",
    bad: fixture!("MESH2101", "bad"),
    good: fixture!("MESH2101", "good"),
    check: |o, s, r| {
        parents(o, s, |p, parent| {
            if !matches!(parent, Parent::NotFound) || !(p.is_gateway() || p.is_service()) {
                return;
            }
            let kind = if p.is_service() { Kind::Service } else { Kind::Gateway };
            let elsewhere: Vec<String> = s.of_kind(kind).filter(|g| g.name == p.name).filter_map(|g| g.namespace.clone()).collect();
            let hint = if elsewhere.is_empty() {
                r_hint(kind)
            } else {
                format!("A {} named {} exists in namespace {}: add `namespace: {}` to the parentRef.", kind.name(), p.name, elsewhere.join(", "), elsewhere[0])
            };
            r.at_hint(p.field.clone(), format!("{} {}/{} not found", kind.name(), p.namespace, p.name), hint);
        });
    },
};

fn r_hint(kind: Kind) -> String {
    format!(
        "Create the {} or correct the parentRef's name and namespace.",
        kind.name()
    )
}

pub static NO_MATCHING_LISTENER: Rule = Rule {
    code: "MESH2102",
    name: "NoMatchingListener",
    level: Level::Error,
    title: "sectionName or port matches no listener of the Gateway",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some(Rejection::NotSelected.reason()),
    doc: "A parentRef's sectionName selects a listener by name and its port by port. When neither matches a listener of the Gateway the route is not attached (NoMatchingParent).",
    hint: "Use a listener name from the Gateway's spec.listeners, or drop sectionName/port to attach to every listener.",
    bad: fixture!("MESH2102", "bad"),
    good: fixture!("MESH2102", "good"),
    check: |o, s, r| {
        parents(o, s, |p, parent| {
            if let (Some(Rejection::NotSelected), Parent::Gateway { defs, .. }) = (parent.rejection(), &parent) {
                let names: Vec<String> = defs.iter().map(|l| format!("{} (port {})", l.name, l.port)).collect();
                let what = match (&p.section_name, p.port) {
                    (Some(sn), Some(port)) => format!("sectionName {sn:?} and port {port}"),
                    (Some(sn), None) => format!("sectionName {sn:?}"),
                    (None, Some(port)) => format!("port {port}"),
                    (None, None) => "this parentRef".into(),
                };
                r.at_hint(p.field.clone(), format!("{what} matches no listener of {} {}/{}", p.kind, p.namespace, p.name), format!("Listeners: {}.", names.join(", ")));
            }
        });
    },
};

pub static KIND_NOT_ALLOWED: Rule = Rule {
    code: "MESH2103",
    name: "RouteKindNotAllowed",
    level: Level::Error,
    title: "No listener of the parent accepts this kind of route",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some(Rejection::Kind.reason()),
    doc: "HTTP/HTTPS listeners take HTTPRoute and GRPCRoute, TLS passthrough listeners take TLSRoute (`allowedRoutes.kinds` can narrow this). An HTTPRoute on a passthrough listener, or a TLSRoute on an HTTP listener, is never attached.",
    hint: "Attach the route to a listener of the matching protocol (sectionName), or use the matching route kind.",
    bad: fixture!("MESH2103", "bad"),
    good: fixture!("MESH2103", "good"),
    check: |o, s, r| {
        parents(o, s, |p, parent| {
            if let (Some(Rejection::Kind), Parent::Gateway { defs, .. }) = (parent.rejection(), &parent) {
                let protos: Vec<String> = defs.iter().map(|l| format!("{} ({})", l.name, l.protocol)).collect();
                r.at(p.field.clone(), format!("no listener of {} {}/{} accepts {}; listeners: {}", p.kind, p.namespace, p.name, o.kind, protos.join(", ")));
            }
        });
    },
};

/// Every backend a route references (backendRefs, mirror targets, authorization services).
fn backends(o: &Object) -> Vec<BackendRef> {
    let Some(route) = o.resource.route() else {
        return Vec::new();
    };
    let mut all: Vec<BackendRef> = route
        .rules
        .iter()
        .flat_map(|x| x.backend_refs.iter().cloned())
        .collect();
    all.extend(route.filter_refs(o.namespace.as_deref().unwrap_or("")));
    all
}

pub static BACKEND_NOT_FOUND: Rule = Rule {
    code: "MESH2104",
    name: "BackendNotFound",
    level: Level::Error,
    title: "A backend Service or its port does not exist",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some("BackendNotFound"),
    doc: "Requests that would go to a missing backend get HTTP 500 (its share of a weighted split fails); the route's ResolvedRefs is False (BackendNotFound). The port must be one of the Service's `spec.ports[].port` (not the targetPort). Checked when the input contains Services.",
    hint: "Create the Service, or correct the name, namespace or port.",
    bad: fixture!("MESH2104", "bad"),
    good: fixture!("MESH2104", "good"),
    check: |o, s, r| {
        if !s.has_kind(Kind::Service) {
            return;
        }
        for b in backends(o).iter().filter(|b| b.is_service()) {
            match s.get(Kind::Service, Some(&b.namespace), &b.name) {
                None => r.at(b.field.clone(), format!("Service {}/{} not found", b.namespace, b.name)),
                Some(Object { resource: Resource::Service(svc), .. }) => {
                    let ports: Vec<i32> = svc.spec.iter().flat_map(|sp| sp.ports.iter().flatten()).map(|p| p.port).collect();
                    if let Some(port) = b.port {
                        if !ports.contains(&port) {
                            let list = ports.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
                            r.at_hint(b.field.clone(), format!("Service {}/{} has no port {port}", b.namespace, b.name), format!("The Service's ports are: {list}. Use the Service port, not the targetPort."));
                        }
                    }
                }
                Some(_) => {}
            }
        }
    },
};

pub static NAMESPACE_NOT_ALLOWED: Rule = Rule {
    code: "MESH2105",
    name: "NamespaceNotAllowed",
    level: Level::Error,
    title: "The Gateway's allowedRoutes does not admit the route's namespace",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some(Rejection::Namespace.reason()),
    doc: "A listener admits routes from its own namespace unless `allowedRoutes.namespaces.from` says All or Selector (evaluated against the Namespace's labels). A route from another namespace is ignored and requests get 404: the ACME article's `hr` route. Selector checks need the Namespace objects in the input.",
    hint: "Label the route's namespace to match the listener's selector, or change allowedRoutes (from: All, or a Selector).",
    bad: fixture!("MESH2105", "bad"),
    good: fixture!("MESH2105", "good"),
    check: |o, s, r| {
        parents(o, s, |p, parent| {
            if parent.rejection() == Some(Rejection::Namespace) {
                r.at(p.field.clone(), format!("{} is not allowed to attach to Gateway {}/{}: no listener admits routes from namespace {}", o.kind, p.namespace, p.name, o.namespace.as_deref().unwrap_or("")));
            }
        });
    },
};

pub static HOSTNAME_NO_MATCH: Rule = Rule {
    code: "MESH2106",
    name: "NoMatchingListenerHostname",
    level: Level::Error,
    title: "No route hostname intersects the listener hostnames",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some(Rejection::Hostname.reason()),
    doc: "When both the listener and the route name hostnames, at least one must intersect (`*.example.com` covers `a.example.com`, not `example.com`). Otherwise the route is not attached and requests get 404.",
    hint: "Add a hostname the listener serves, or remove the route's hostnames to inherit the listener's.",
    bad: fixture!("MESH2106", "bad"),
    good: fixture!("MESH2106", "good"),
    check: |o, s, r| {
        parents(o, s, |p, parent| {
            if let (Some(Rejection::Hostname), Parent::Gateway { defs, .. }) = (parent.rejection(), &parent) {
                let hosts: Vec<&str> = defs.iter().filter_map(|l| l.hostname.as_deref()).collect();
                r.at(p.field.clone(), format!("route hostnames intersect none of the listener hostnames of {} {}/{} ({})", p.kind, p.namespace, p.name, hosts.join(", ")));
            }
        });
    },
};

pub static BACKEND_NOT_PERMITTED: Rule = Rule {
    code: "MESH2107",
    name: "BackendRefNotPermitted",
    level: Level::Error,
    title: "A cross-namespace backend without a ReferenceGrant",
    kinds: ROUTES,
    scope: Scope::Cluster,
    reason: Some("RefNotPermitted"),
    doc: "A route may send traffic to a Service in another namespace only when a ReferenceGrant in that namespace allows routes of this kind from the route's namespace. Without one, the route's ResolvedRefs is False (RefNotPermitted) and that backend's share of requests gets 500.",
    hint: "Add a ReferenceGrant in the Service's namespace: from {group: gateway.networking.k8s.io, kind: <route kind>, namespace: <route ns>}, to {group: \"\", kind: Service}.",
    bad: fixture!("MESH2107", "bad"),
    good: fixture!("MESH2107", "good"),
    check: |o, s, r| {
        let ns = o.namespace.clone().unwrap_or_default();
        for b in backends(o) {
            let from = grants::From { group: GATEWAY_GROUP, kind: &o.kind, namespace: &ns };
            let to = grants::To { group: &b.group, kind: &b.kind, namespace: &b.namespace, name: &b.name };
            if !grants::permitted(s, &from, &to) {
                r.at(b.field.clone(), format!("no ReferenceGrant in namespace {} allows {} from {ns} to reference {} {}", b.namespace, o.kind, b.kind, b.name));
            }
        }
    },
};

pub static GAMMA_GROUP_MISSING: Rule = Rule {
    code: "MESH2108",
    name: "ServiceParentGroupMissing",
    level: Level::Error,
    title: "parentRef kind Service without group \"\"",
    kinds: ROUTES,
    scope: Scope::Object,
    reason: Some("NoMatchingParent"),
    doc: "parentRef group defaults to gateway.networking.k8s.io, so `kind: Service` alone points at a `gateway.networking.k8s.io/Service`, which does not exist. A GAMMA (mesh) route must say `group: \"\"` and `kind: Service`. Checked by the group, written or defaulted: the API server stores the default before a webhook sees the route.",
    hint: "Add group: \"\" next to kind: Service.",
    bad: fixture!("MESH2108", "bad"),
    good: fixture!("MESH2108", "good"),
    check: |o, _, r| {
        let Some(route) = o.resource.route() else { return };
        for p in &route.parent_refs {
            // By group, not by whether it was written: an API server defaults the group
            // into the stored object before any webhook sees it.
            if p.kind == "Service" && p.group == GATEWAY_GROUP {
                r.at(p.field.clone(), format!("kind Service in group {GATEWAY_GROUP} (the group a parentRef gets when it names none) refers to {GATEWAY_GROUP}/Service, which does not exist"));
            }
        }
    },
};

pub static CONSUMER_ROUTE: Rule = Rule {
    code: "MESH2109",
    name: "ConsumerRoute",
    level: Level::Warning,
    title: "A mesh route's parent Service is in another namespace",
    kinds: ROUTES,
    scope: Scope::Object,
    reason: None,
    doc: "A route whose parent Service lives in another namespace is a GAMMA consumer route: it changes traffic only for clients in the route's namespace. Cilium (and mesh-agent) support producer routes only, which must live in the Service's namespace; a consumer route is ignored.",
    hint: "Move the route into the Service's namespace (a producer route).",
    bad: fixture!("MESH2109", "bad"),
    good: fixture!("MESH2109", "good"),
    check: |o, _, r| {
        let Some(route) = o.resource.route() else { return };
        let ns = o.namespace.as_deref().unwrap_or("");
        for p in route.parent_refs.iter().filter(|p| p.is_service() && p.namespace != ns) {
            r.at(p.field.clone(), format!("parent Service {}/{} is outside the route's namespace {ns}: a consumer route, which is not supported", p.namespace, p.name));
        }
    },
};

pub static BACKEND_KIND_UNSUPPORTED: Rule = Rule {
    code: "MESH2110",
    name: "BackendKindUnsupported",
    level: Level::Warning,
    title: "A backendRef points at a kind other than Service",
    kinds: ROUTES,
    scope: Scope::Object,
    reason: Some("InvalidKind"),
    doc: "Core Gateway API backends are Services (group \"\", kind Service). Other kinds (ServiceImport, custom backends) are implementation-specific: the API accepts them, and an implementation that supports the kind serves them. Cilium and mesh-agent resolve only Services, so there the route gets ResolvedRefs=False (InvalidKind) and its share of traffic fails with 500. A warning, not an error: the route is valid Gateway API.",
    hint: "Point the backendRef at a Service (omit group and kind).",
    bad: fixture!("MESH2110", "bad"),
    good: fixture!("MESH2110", "good"),
    check: |o, _, r| {
        for b in backends(o).iter().filter(|b| !b.is_service()) {
            let g = if b.group.is_empty() { "core".to_string() } else { b.group.clone() };
            r.at(b.field.clone(), format!("backend kind {} (group {g}) is not supported by mesh-agent, which resolves only Services: here the route gets ResolvedRefs=False (InvalidKind) and this backend's share answers 500", b.kind));
        }
    },
};

pub static GRANT_NAMESPACE_MISSING: Rule = Rule {
    code: "MESH3001",
    name: "ReferenceGrantFromNamespaceMissing",
    level: Level::Warning,
    title: "A ReferenceGrant trusts a namespace that does not exist",
    kinds: &[Kind::ReferenceGrant],
    scope: Scope::Cluster,
    reason: None,
    doc: "A grant whose `from.namespace` names no Namespace allows nothing today, and quietly allows whoever creates that namespace later. Usually a typo. Checked when the input contains Namespaces.",
    hint: "Correct the namespace name in spec.from.",
    bad: fixture!("MESH3001", "bad"),
    good: fixture!("MESH3001", "good"),
    check: |o, s, r| {
        let Resource::ReferenceGrant(g) = &o.resource else { return };
        if !s.has_kind(Kind::Namespace) {
            return;
        }
        for (i, f) in g.from.iter().enumerate() {
            if s.get(Kind::Namespace, None, &f.namespace).is_none() {
                r.at(format!("spec.from[{i}].namespace"), format!("Namespace {} not found", f.namespace));
            }
        }
    },
};
