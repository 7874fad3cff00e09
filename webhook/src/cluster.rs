//! The cluster as the webhook sees it, indexed so that a review looks only at related objects.
//!
//! Building a Snapshot of the whole cache for every review would cost time in proportion to
//! the cluster. Instead each review gets a small snapshot of the objects its rules can look
//! at: the incoming object, its parents and the routes attached to them (conflicts), its
//! backends with their EndpointSlices, ReferenceGrants of the namespaces it refers into,
//! Namespaces, certificate Secrets, GatewayClasses, and the Envoy configs claiming the same
//! frontends. The snapshot is marked complete for every watched kind, so an object missing
//! from it is missing from the cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use mesh_model::resource::Resource;
use mesh_model::{Kind, Object, Snapshot};

type Key = (Kind, Option<String>, String);
/// (parent kind, namespace, name, route kind, hostname, canonical match).
type MatchKey = (String, String, String, Kind, String, String);

pub struct Cluster {
    /// Shared with the watch store and the previous views: a rebuild after a change copies
    /// pointers and rebuilds the indexes, never the objects.
    objects: Vec<Arc<Object>>,
    by_key: HashMap<Key, usize>,
    /// Routes by parent: ("Gateway" | "Service", namespace, name).
    routes_by_parent: HashMap<(String, String, String), Vec<usize>>,
    /// Routes by parent and route kind: an HTTPRoute meets the GRPCRoutes of its listeners.
    routes_by_parent_kind: HashMap<(String, String, String, Kind), Vec<usize>>,
    /// Routes by parent, hostname ("" for none) and canonical match: the only same-kind routes
    /// a route can conflict with.
    routes_by_match: HashMap<MatchKey, Vec<usize>>,
    /// Routes and Envoy configs by a Service they send traffic to: (namespace, name).
    by_backend: HashMap<(String, String), Vec<usize>>,
    /// Envoy configs by the Service frontends they claim.
    configs_by_frontend: HashMap<(String, String), Vec<usize>>,
    slices_by_service: HashMap<(String, String), Vec<usize>>,
    grants_by_namespace: HashMap<String, Vec<usize>>,
    /// Gateways by name, to say where a Gateway referenced in the wrong namespace lives.
    gateways_by_name: HashMap<String, Vec<usize>>,
    /// ListenerSets by their parent Gateway (namespace, name): the listeners they compete with.
    listener_sets_by_gateway: HashMap<(String, String), Vec<usize>>,
    /// BackendTLSPolicies by namespace: the policies one may conflict with.
    backend_tls_by_namespace: HashMap<String, Vec<usize>>,
    /// Routes and Envoy configs by the namespace of a Service they send traffic to.
    by_backend_namespace: HashMap<String, Vec<usize>>,
    /// Kinds the cache watches completely.
    complete: Vec<Kind>,
}

fn key_of(o: &Object) -> Option<Key> {
    Some((o.known?, o.namespace.clone(), o.name.clone()))
}

/// The conflict keys of a route on one parent: every hostname (or "" when it has none) with
/// every match of every rule.
fn match_keys(p: &mesh_model::route::ParentRef, route: &mesh_model::route::Route) -> Vec<MatchKey> {
    let hosts: Vec<String> = if route.hostnames.is_empty() {
        vec![String::new()]
    } else {
        route
            .hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    };
    let mut keys = Vec::new();
    for h in &hosts {
        for m in route.rules.iter().flat_map(|r| &r.match_keys) {
            keys.push((
                p.kind.clone(),
                p.namespace.clone(),
                p.name.clone(),
                route.kind,
                h.clone(),
                m.clone(),
            ));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A Service by namespace and name.
type ServiceKey = (String, String);

/// The Services an Envoy config claims as frontends, and those it uses as backends.
fn config_services(o: &Object) -> (Vec<ServiceKey>, Vec<ServiceKey>) {
    let Resource::EnvoyConfig(cfg) = &o.resource else {
        return (Vec::new(), Vec::new());
    };
    let own = o.namespace.clone().unwrap_or_else(|| "default".into());
    let key = |ns: &Option<String>, name: &String| {
        (ns.clone().unwrap_or_else(|| own.clone()), name.clone())
    };
    let frontends = cfg
        .spec
        .services
        .iter()
        .flatten()
        .map(|s| key(&s.namespace, &s.name))
        .collect();
    let backends = cfg
        .spec
        .backend_services
        .iter()
        .flatten()
        .map(|s| key(&s.namespace, &s.name))
        .collect();
    (frontends, backends)
}

impl Cluster {
    pub fn new(objects: Vec<Arc<Object>>, complete: Vec<Kind>) -> Cluster {
        let mut c = Cluster {
            objects,
            by_key: HashMap::new(),
            routes_by_parent: HashMap::new(),
            routes_by_parent_kind: HashMap::new(),
            routes_by_match: HashMap::new(),
            by_backend: HashMap::new(),
            configs_by_frontend: HashMap::new(),
            slices_by_service: HashMap::new(),
            grants_by_namespace: HashMap::new(),
            gateways_by_name: HashMap::new(),
            listener_sets_by_gateway: HashMap::new(),
            backend_tls_by_namespace: HashMap::new(),
            by_backend_namespace: HashMap::new(),
            complete,
        };
        for (i, o) in c.objects.iter().enumerate() {
            if let Some(k) = key_of(o) {
                c.by_key.insert(k, i);
            }
            let ns = o.namespace.clone().unwrap_or_default();
            match &o.resource {
                r if r.route().is_some() => {
                    let route = r.route().expect("checked");
                    for p in &route.parent_refs {
                        c.routes_by_parent
                            .entry((p.kind.clone(), p.namespace.clone(), p.name.clone()))
                            .or_default()
                            .push(i);
                        c.routes_by_parent_kind
                            .entry((
                                p.kind.clone(),
                                p.namespace.clone(),
                                p.name.clone(),
                                route.kind,
                            ))
                            .or_default()
                            .push(i);
                        for key in match_keys(p, route) {
                            c.routes_by_match.entry(key).or_default().push(i);
                        }
                    }
                    let mirrors = route.filter_refs(&ns);
                    for b in route
                        .rules
                        .iter()
                        .flat_map(|r| &r.backend_refs)
                        .chain(&mirrors)
                    {
                        c.by_backend
                            .entry((b.namespace.clone(), b.name.clone()))
                            .or_default()
                            .push(i);
                        c.by_backend_namespace
                            .entry(b.namespace.clone())
                            .or_default()
                            .push(i);
                    }
                }
                Resource::Gateway(_) => c
                    .gateways_by_name
                    .entry(o.name.clone())
                    .or_default()
                    .push(i),
                Resource::EnvoyConfig(_) => {
                    let (frontends, backends) = config_services(o);
                    for f in &frontends {
                        c.configs_by_frontend.entry(f.clone()).or_default().push(i);
                    }
                    for s in frontends.into_iter().chain(backends) {
                        c.by_backend_namespace
                            .entry(s.0.clone())
                            .or_default()
                            .push(i);
                        c.by_backend.entry(s).or_default().push(i);
                    }
                }
                Resource::EndpointSlice(es) => {
                    if let Some(svc) = es
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                    {
                        c.slices_by_service
                            .entry((ns, svc.clone()))
                            .or_default()
                            .push(i);
                    }
                }
                Resource::ReferenceGrant(_) => c.grants_by_namespace.entry(ns).or_default().push(i),
                Resource::BackendTlsPolicy(_) => {
                    c.backend_tls_by_namespace.entry(ns).or_default().push(i)
                }
                Resource::ListenerSet(spec, _) => {
                    let gw_ns = spec.parent_ref.namespace.clone().unwrap_or(ns);
                    c.listener_sets_by_gateway
                        .entry((gw_ns, spec.parent_ref.name.clone()))
                        .or_default()
                        .push(i);
                }
                _ => {}
            }
        }
        c
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn get(&self, kind: Kind, ns: Option<&str>, name: &str) -> Option<usize> {
        let ns = if kind.info().namespaced {
            ns.map(str::to_string)
        } else {
            None
        };
        self.by_key.get(&(kind, ns, name.to_string())).copied()
    }

    /// The objects the rules may consult for `incoming`, indices into the cache.
    fn related(&self, incoming: &Object) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let ns = incoming.namespace.clone().unwrap_or_default();
        let add_ns =
            |out: &mut BTreeSet<usize>, n: &str| out.extend(self.get(Kind::Namespace, None, n));
        add_ns(&mut out, &ns);
        let service = |out: &mut BTreeSet<usize>, sns: &str, name: &str| {
            out.extend(self.get(Kind::Service, Some(sns), name));
            out.extend(
                self.slices_by_service
                    .get(&(sns.to_string(), name.to_string()))
                    .into_iter()
                    .flatten(),
            );
            out.extend(self.grants_by_namespace.get(sns).into_iter().flatten());
        };
        match &incoming.resource {
            r if r.route().is_some() => {
                let route = r.route().expect("checked");
                for p in &route.parent_refs {
                    if p.is_service() {
                        service(&mut out, &p.namespace, &p.name);
                    } else if p.is_listener_set() {
                        out.extend(self.get(Kind::ListenerSet, Some(&p.namespace), &p.name));
                        add_ns(&mut out, &p.namespace);
                    } else if let Some(g) = self.get(Kind::Gateway, Some(&p.namespace), &p.name) {
                        out.insert(g);
                        add_ns(&mut out, &p.namespace);
                    } else {
                        // For "did you mean namespace X": Gateways of that name elsewhere.
                        out.extend(self.gateways_by_name.get(&p.name).into_iter().flatten());
                    }
                    // Conflicts: routes of the other kind on this parent (HTTPRoute vs
                    // GRPCRoute), and routes of this kind with the same hostname and match.
                    let other = match route.kind {
                        Kind::HttpRoute => Some(Kind::GrpcRoute),
                        Kind::GrpcRoute => Some(Kind::HttpRoute),
                        _ => None,
                    };
                    if let Some(other) = other {
                        out.extend(
                            self.routes_by_parent_kind
                                .get(&(p.kind.clone(), p.namespace.clone(), p.name.clone(), other))
                                .into_iter()
                                .flatten(),
                        );
                    }
                    for key in match_keys(p, route) {
                        out.extend(self.routes_by_match.get(&key).into_iter().flatten());
                    }
                }
                let mirrors = route.filter_refs(&ns);
                for b in route
                    .rules
                    .iter()
                    .flat_map(|r| &r.backend_refs)
                    .chain(&mirrors)
                {
                    service(&mut out, &b.namespace, &b.name);
                }
            }
            Resource::Gateway(spec) => {
                out.extend(self.get(Kind::GatewayClass, None, &spec.gateway_class_name));
                // A ConfigMap of infrastructure parameters, in the Gateway's namespace.
                if let Some(p) = spec
                    .infrastructure
                    .as_ref()
                    .and_then(|i| i.parameters_ref.as_ref())
                {
                    if let Some(kind) = Kind::lookup(&p.group, &p.kind) {
                        out.extend(self.get(kind, Some(&ns), &p.name));
                    }
                }
                // The CA bundles listeners validate clients with, the client certificate it
                // shows backends, and the grants that may let it read them across namespaces.
                for r in mesh_model::gateway_tls::references(spec) {
                    let rns = r.namespace.unwrap_or(&ns);
                    if let Some(kind) = Kind::lookup(r.group, r.kind) {
                        out.extend(self.get(kind, Some(rns), r.name));
                    }
                    out.extend(self.grants_by_namespace.get(rns).into_iter().flatten());
                }
            }
            Resource::BackendTlsPolicy(spec) => {
                // The policies it may conflict with, its target Services and its CA bundles.
                out.extend(self.backend_tls_by_namespace.get(&ns).into_iter().flatten());
                for t in &spec.target_refs {
                    if let Some(kind) = Kind::lookup(&t.group, &t.kind) {
                        out.extend(self.get(kind, Some(&ns), &t.name));
                    }
                }
                for c in spec.validation.ca_certificate_refs.iter().flatten() {
                    if let Some(kind) = Kind::lookup(&c.group, &c.kind) {
                        out.extend(self.get(kind, Some(&ns), &c.name));
                    }
                }
            }
            Resource::ListenerSet(spec, _) => {
                // Its Gateway, which allows it or not, and the other ListenerSets of that
                // Gateway, whose listeners may take precedence over its own.
                let gw_ns = spec
                    .parent_ref
                    .namespace
                    .clone()
                    .unwrap_or_else(|| ns.clone());
                if let Some(g) = self.get(Kind::Gateway, Some(&gw_ns), &spec.parent_ref.name) {
                    out.insert(g);
                    add_ns(&mut out, &gw_ns);
                }
                out.extend(
                    self.listener_sets_by_gateway
                        .get(&(gw_ns, spec.parent_ref.name.clone()))
                        .into_iter()
                        .flatten(),
                );
            }
            _ => {}
        }
        // Certificates of the listeners (a Gateway's or a ListenerSet's) and the grants that
        // may let them be read across namespaces.
        for l in incoming.resource.listeners().into_iter().flatten() {
            for c in l
                .tls
                .iter()
                .flat_map(|t| t.certificate_refs.iter().flatten())
            {
                let cns = c.namespace.clone().unwrap_or_else(|| ns.clone());
                out.extend(self.get(Kind::Secret, Some(&cns), &c.name));
                out.extend(self.grants_by_namespace.get(&cns).into_iter().flatten());
            }
        }
        match &incoming.resource {
            Resource::EnvoyConfig(_) => {
                let (frontends, backends) = config_services(incoming);
                for f in &frontends {
                    out.extend(self.configs_by_frontend.get(f).into_iter().flatten());
                }
                for (sns, name) in frontends.iter().chain(&backends) {
                    out.extend(self.get(Kind::Service, Some(sns), name));
                }
            }
            Resource::ReferenceGrant(g) => {
                for f in &g.from {
                    add_ns(&mut out, &f.namespace);
                }
            }
            _ => {}
        }
        // The incoming object replaces its stored version.
        if let Some(own) = key_of(incoming).and_then(|k| self.by_key.get(&k)) {
            out.remove(own);
        }
        out
    }

    /// A complete snapshot for reviewing `incoming`; the incoming object is its last object.
    pub fn snapshot_for(&self, incoming: Object) -> Snapshot {
        let mut objects: Vec<Object> = self
            .related(&incoming)
            .into_iter()
            .map(|i| Object::clone(&self.objects[i]))
            .collect();
        objects.push(incoming);
        Snapshot::complete(objects, &self.complete)
    }

    /// Objects that still refer to the object about to be deleted, as `Kind ns/name`.
    pub fn dependants(&self, kind: Kind, ns: Option<&str>, name: &str) -> Vec<String> {
        let ns = ns.unwrap_or("").to_string();
        let indices: Vec<usize> = match kind {
            Kind::Gateway => self
                .routes_by_parent
                .get(&("Gateway".into(), ns, name.into()))
                .cloned()
                .unwrap_or_default(),
            Kind::Service => {
                let mut v = self
                    .routes_by_parent
                    .get(&("Service".into(), ns.clone(), name.into()))
                    .cloned()
                    .unwrap_or_default();
                v.extend(
                    self.by_backend
                        .get(&(ns, name.into()))
                        .into_iter()
                        .flatten(),
                );
                v
            }
            Kind::ReferenceGrant => {
                // Routes in the namespaces the grant trusts that send traffic into its namespace.
                let Some(i) = self.get(Kind::ReferenceGrant, Some(&ns), name) else {
                    return Vec::new();
                };
                let Resource::ReferenceGrant(g) = &self.objects[i].resource else {
                    return Vec::new();
                };
                let from: Vec<&str> = g.from.iter().map(|f| f.namespace.as_str()).collect();
                self.by_backend_namespace
                    .get(&ns)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&r| from.contains(&self.objects[r].namespace.as_deref().unwrap_or("")))
                    .collect()
            }
            _ => Vec::new(),
        };
        let mut names: Vec<String> = indices
            .into_iter()
            .map(|i| self.objects[i].reference().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::load::{load_str, LoadOptions};

    fn cluster(text: &str) -> Cluster {
        let objects = load_str(
            text,
            mesh_model::Source::Cluster("test".into()),
            &LoadOptions::default(),
        )
        .unwrap();
        Cluster::new(
            objects.into_iter().map(Arc::new).collect(),
            mesh_model::kind::KINDS.iter().map(|k| k.kind).collect(),
        )
    }

    const STATE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec: {gatewayClassName: c, listeners: [{name: web, protocol: HTTP, port: 80}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: cart, namespace: shop}\nspec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: svc, port: 80}]}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: unrelated, namespace: other}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn dependants_of_a_gateway_and_a_service() {
        let c = cluster(STATE);
        assert_eq!(
            c.dependants(Kind::Gateway, Some("shop"), "gw"),
            vec!["HTTPRoute shop/cart".to_string()]
        );
        assert_eq!(
            c.dependants(Kind::Service, Some("shop"), "svc"),
            vec!["HTTPRoute shop/cart".to_string()]
        );
        assert!(c
            .dependants(Kind::Service, Some("other"), "unrelated")
            .is_empty());
    }

    #[test]
    fn dependants_of_a_reference_grant() {
        let c = cluster(&format!(
            "{STATE}---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: backends}}\nspec: {{from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}}], to: [{{group: '', kind: Service}}]}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: pricing, namespace: shop}}\nspec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: p, namespace: backends, port: 80}}]}}]}}\n"
        ));
        assert_eq!(
            c.dependants(Kind::ReferenceGrant, Some("backends"), "g"),
            vec!["HTTPRoute shop/pricing".to_string()]
        );
    }

    #[test]
    fn a_review_sees_related_objects_only() {
        let c = cluster(STATE);
        let incoming = load_str("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: cart, namespace: shop}\nspec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: svc, port: 80}]}]}\n", mesh_model::Source::Stdin, &LoadOptions::default()).unwrap().remove(0);
        let snap = c.snapshot_for(incoming);
        let names: Vec<String> = snap
            .objects()
            .iter()
            .map(|o| o.reference().to_string())
            .collect();
        assert_eq!(
            names,
            ["Gateway shop/gw", "Service shop/svc", "HTTPRoute shop/cart"],
            "the stored cart is replaced by the incoming one; the unrelated Service is left out"
        );
        assert!(
            snap.has_kind(Kind::ReferenceGrant),
            "a cluster snapshot is complete for watched kinds"
        );
    }

    /// What a review of `text` finds, and what analyze finds for the same object on the whole
    /// cluster (`state` plus the object): the review's snapshot must hold all it depends on.
    fn review_and_analyze(state: &str, text: &str) -> (Vec<String>, Vec<String>) {
        let codes = |d: Vec<mesh_model::Diagnostic>| {
            let mut v: Vec<String> = d
                .iter()
                .map(|d| format!("{} {}", d.code, d.resource))
                .collect();
            v.sort();
            v
        };
        let c = cluster(state);
        let o = load_str(text, mesh_model::Source::Stdin, &LoadOptions::default())
            .unwrap()
            .remove(0);
        let reference = o.reference();
        let review = codes(mesh_model::rules::check_object_where(
            &o,
            &c.snapshot_for(o.clone()),
            |_| true,
        ));
        let all = load_str(
            &format!("{state}---\n{text}"),
            mesh_model::Source::Stdin,
            &LoadOptions::default(),
        )
        .unwrap();
        let whole = codes(
            mesh_model::rules::check(&mesh_model::Snapshot::new(all))
                .into_iter()
                .filter(|d| d.resource == reference)
                .collect(),
        );
        (review, whole)
    }

    /// A review of a ListenerSet or of a route on one finds what analyze finds on the whole
    /// cluster: the parent Gateway, the ListenerSets it competes with, the ListenerSet a route
    /// names are all in its snapshot.
    #[test]
    fn listener_set_reviews_find_what_analyze_finds() {
        let state = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\nspec: {gatewayClassName: c, allowedListeners: {namespaces: {from: All}}, listeners: [{name: web, protocol: HTTP, port: 80, hostname: a.example.com}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {name: first, namespace: team}\nspec: {parentRef: {name: gw, namespace: infra}, listeners: [{name: b, protocol: HTTP, port: 80, hostname: b.example.com}]}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: infra}\n";
        // Same hostname as the earlier ListenerSet's listener: Conflicted.
        let (review, whole) = review_and_analyze(state, "apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {name: second, namespace: team}\nspec: {parentRef: {name: gw, namespace: infra}, listeners: [{name: b, protocol: HTTP, port: 80, hostname: b.example.com}]}\n");
        assert_eq!(review, whole);
        assert!(
            review.iter().any(|c| c.starts_with("MESH1103")),
            "{review:?}"
        );
        let (review, whole) = review_and_analyze(state, "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: team}\nspec: {parentRefs: [{kind: ListenerSet, name: first, sectionName: b}]}\n");
        assert_eq!(review, whole);
        assert!(
            !review.iter().any(|c| c.starts_with("MESH21")),
            "{review:?}"
        );
    }

    /// A Gateway's review holds the CA bundles its listeners validate clients with, the client
    /// certificate it shows backends, its infrastructure parameters, and the grants for them.
    #[test]
    fn gateway_reviews_see_their_certificates_and_grants() {
        let state = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\nspec: {controllerName: example.com/c}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: shop}\ntype: kubernetes.io/tls\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: params, namespace: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: pki}\ndata: {ca.crt: x}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: client, namespace: pki}\ntype: kubernetes.io/tls\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: pki}\nspec: {from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: shop}], to: [{group: '', kind: ConfigMap}, {group: '', kind: Secret}]}\n";
        let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec: {gatewayClassName: c, infrastructure: {parametersRef: {group: '', kind: ConfigMap, name: params}}, tls: {frontend: {default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca, namespace: pki}]}}}, backend: {clientCertificateRef: {name: client, namespace: pki}}}, listeners: [{name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: c}]}}]}\n";
        let (review, whole) = review_and_analyze(state, gateway);
        assert_eq!(review, whole);
        assert!(
            !review
                .iter()
                .any(|c| c.starts_with("MESH111") || c.starts_with("MESH112")),
            "{review:?}"
        );
    }

    /// A BackendTLSPolicy's review holds the policies it may conflict with and its CA bundles.
    #[test]
    fn backend_tls_policy_reviews_find_what_analyze_finds() {
        let state = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: shop}\ndata: {ca.crt: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: pay, namespace: shop}\nspec: {ports: [{port: 443}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: a, namespace: shop}\nspec: {targetRefs: [{group: '', kind: Service, name: pay}], validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], hostname: pay.shop}}\n";
        let (review, whole) = review_and_analyze(state, "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: b, namespace: shop}\nspec: {targetRefs: [{group: '', kind: Service, name: pay}], validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], hostname: pay.shop}}\n");
        assert_eq!(review, whole);
        assert_eq!(review, ["MESH1143 BackendTLSPolicy shop/b"]);
    }
}
