//! One view of HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute.
//!
//! The generated Gateway API types give each route kind (and each nesting level) its own copy
//! of ParentReference, BackendRef and the filters. The rules that look across objects
//! (attachment, backends, ReferenceGrants, conflicts) are the same for every kind, so they work
//! on this view, built once per object at load time with the spec's defaults applied.

use gateway_api::apis::experimental::{grpcroutes, httproutes, tcproutes, tlsroutes, udproutes};

use crate::kind::{Kind, GATEWAY_GROUP};

/// The HTTP filter type, used for every filter list (GRPCRoute's filters are a subset of it).
pub type Filter = httproutes::HttpRouteRulesFilters;

#[derive(Debug, Clone)]
pub struct Route {
    pub kind: Kind,
    pub hostnames: Vec<String>,
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<RouteRule>,
}

/// A parentRef with the spec's defaults applied (group gateway.networking.k8s.io, kind
/// Gateway, the route's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub field: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentRef {
    pub fn is_gateway(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == "Gateway"
    }

    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }

    pub fn is_listener_set(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == "ListenerSet"
    }
}

#[derive(Debug, Clone)]
pub struct RouteRule {
    pub field: String,
    /// Canonical text of each match (or one "everything" match when the rule has none), for
    /// finding identical matches across routes.
    pub match_keys: Vec<String>,
    pub backend_refs: Vec<BackendRef>,
    /// Rule-level filters, each with its field path.
    pub filters: Vec<(String, Filter)>,
}

impl RouteRule {
    /// Every filter of the rule and of its backendRefs, with field paths.
    pub fn all_filters(&self) -> impl Iterator<Item = (&str, &Filter)> {
        self.filters.iter().map(|(p, f)| (p.as_str(), f)).chain(
            self.backend_refs
                .iter()
                .flat_map(|b| b.filters.iter().map(|(p, f)| (p.as_str(), f))),
        )
    }
}

/// A reference to a backend (a backendRef or a mirror's backendRef), defaults applied.
#[derive(Debug, Clone)]
pub struct BackendRef {
    pub field: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<i32>,
    pub weight: i32,
    pub filters: Vec<(String, Filter)>,
}

impl BackendRef {
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }
}

/// The spec's defaults applied to a parentRef: group gateway.networking.k8s.io, kind
/// Gateway, the route's namespace.
fn parent(field: String, ns: &str, p: &httproutes::HttpRouteParentRefs) -> ParentRef {
    ParentRef {
        field,
        group: p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_string()),
        kind: p.kind.clone().unwrap_or_else(|| "Gateway".to_string()),
        namespace: p.namespace.clone().unwrap_or_else(|| ns.to_string()),
        name: p.name.clone(),
        section_name: p.section_name.clone(),
        port: p.port,
    }
}

/// The spec's defaults applied to a backendRef: core group, kind Service, the route's
/// namespace, weight 1.
fn backend(field: String, ns: &str, b: &httproutes::HttpRouteRulesBackendRefs) -> BackendRef {
    let filters = filters(&field, &b.filters);
    BackendRef {
        group: b.group.clone().unwrap_or_default(),
        kind: b.kind.clone().unwrap_or_else(|| "Service".to_string()),
        namespace: b.namespace.clone().unwrap_or_else(|| ns.to_string()),
        name: b.name.clone(),
        port: b.port,
        weight: b.weight.unwrap_or(1),
        filters,
        field,
    }
}

/// Every parentRef of a route, whatever its kind, as the HTTP type (same JSON).
fn parents<T: serde::Serialize>(ns: &str, list: Option<&Vec<T>>) -> Vec<ParentRef> {
    list.into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, p)| Some(parent(format!("spec.parentRefs[{i}]"), ns, &retype(p)?)))
        .collect()
}

/// The backendRefs of rule `field`, whatever the route kind.
fn backends<T: serde::Serialize>(field: &str, ns: &str, list: Option<&Vec<T>>) -> Vec<BackendRef> {
    list.into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(j, b)| {
            Some(backend(
                format!("{field}.backendRefs[{j}]"),
                ns,
                &retype(b)?,
            ))
        })
        .collect()
}

/// Re-type a value of another nesting level or route kind: the generated types for
/// parentRefs, backendRefs and filters differ only in name, so their JSON is the same.
pub(crate) fn retype<T: serde::Serialize, U: serde::de::DeserializeOwned>(v: &T) -> Option<U> {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

fn filters<T: serde::Serialize>(base: &str, list: &Option<Vec<T>>) -> Vec<(String, Filter)> {
    list.iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, f)| Some((format!("{base}.filters[{i}]"), retype(f)?)))
        .collect()
}

/// The backend a RequestMirror filter at `path` copies requests to (weight 0: a mirror never
/// takes a share of the traffic).
pub fn mirror_ref(path: &str, f: &Filter, ns: &str) -> Option<BackendRef> {
    let b: httproutes::HttpRouteRulesBackendRefs = retype(&f.request_mirror.as_ref()?.backend_ref)?;
    Some(BackendRef {
        weight: 0,
        ..backend(format!("{path}.requestMirror.backendRef"), ns, &b)
    })
}

/// The authorization service an ExternalAuth filter at `path` asks (weight 0: it takes no
/// share of the traffic).
pub fn external_auth_ref(path: &str, f: &Filter, ns: &str) -> Option<BackendRef> {
    let b: httproutes::HttpRouteRulesBackendRefs = retype(&f.external_auth.as_ref()?.backend_ref)?;
    Some(BackendRef {
        weight: 0,
        ..backend(format!("{path}.externalAuth.backendRef"), ns, &b)
    })
}

impl Route {
    /// Every backend filters of every rule send requests to (mirror targets, authorization
    /// services): backends too, which must exist and be permitted. They carry weight 0 (they
    /// never take a share of the traffic).
    pub fn filter_refs(&self, ns: &str) -> Vec<BackendRef> {
        self.rules
            .iter()
            .flat_map(|r| r.all_filters())
            .filter_map(|(p, f)| mirror_ref(p, f, ns).or_else(|| external_auth_ref(p, f, ns)))
            .collect()
    }

    pub fn from_http(spec: &httproutes::HttpRouteSpec, ns: &str) -> Route {
        let rules = spec.rules.iter().flatten().map(|r| {
            let keys = match &r.matches {
                Some(m) if !m.is_empty() => m.iter().map(http_match_key).collect(),
                _ => vec![http_match_key(&httproutes::HttpRouteRulesMatches::default())],
            };
            (keys, r.backend_refs.as_ref(), &r.filters)
        });
        Route {
            kind: Kind::HttpRoute,
            hostnames: spec.hostnames.clone().unwrap_or_default(),
            parent_refs: parents(ns, spec.parent_refs.as_ref()),
            rules: rule_views(ns, rules),
        }
    }

    pub fn from_grpc(spec: &grpcroutes::GrpcRouteSpec, ns: &str) -> Route {
        let rules = spec.rules.iter().flatten().map(|r| {
            let keys = match &r.matches {
                Some(m) if !m.is_empty() => m.iter().map(grpc_match_key).collect(),
                _ => vec![grpc_match_key(&grpcroutes::GrpcRouteRulesMatches::default())],
            };
            (keys, r.backend_refs.as_ref(), &r.filters)
        });
        Route {
            kind: Kind::GrpcRoute,
            hostnames: spec.hostnames.clone().unwrap_or_default(),
            parent_refs: parents(ns, spec.parent_refs.as_ref()),
            rules: rule_views(ns, rules),
        }
    }

    pub fn from_tls(spec: &tlsroutes::TlsRouteSpec, ns: &str) -> Route {
        let backends = spec.rules.iter().map(|r| &r.backend_refs);
        let mut route = Route::without_matches(
            Kind::TlsRoute,
            "sni",
            ns,
            spec.parent_refs.as_ref(),
            backends,
        );
        route.hostnames = spec.hostnames.clone();
        route
    }

    /// A TCPRoute: its rule takes every connection of the listener.
    pub fn from_tcp(spec: &tcproutes::TcpRouteSpec, ns: &str) -> Route {
        let backends = spec.rules.iter().map(|r| &r.backend_refs);
        Route::without_matches(
            Kind::TcpRoute,
            "tcp",
            ns,
            spec.parent_refs.as_ref(),
            backends,
        )
    }

    /// A UDPRoute: its rule takes every datagram of the listener.
    pub fn from_udp(spec: &udproutes::UdpRouteSpec, ns: &str) -> Route {
        let backends = spec.rules.iter().map(|r| &r.backend_refs);
        Route::without_matches(
            Kind::UdpRoute,
            "udp",
            ns,
            spec.parent_refs.as_ref(),
            backends,
        )
    }

    /// A route whose rules have no matches or filters (TLS, TCP, UDP): each rule takes all the
    /// traffic the listener gives it, under one match key.
    fn without_matches<'a, P, B>(
        kind: Kind,
        key: &str,
        ns: &str,
        parent_refs: Option<&Vec<P>>,
        backends: impl Iterator<Item = &'a Vec<B>>,
    ) -> Route
    where
        P: serde::Serialize,
        B: serde::Serialize + 'a,
    {
        let no_filters: Option<Vec<Filter>> = None;
        let rules = backends.map(|b| (vec![key.to_string()], Some(b), &no_filters));
        Route {
            kind,
            hostnames: Vec::new(),
            parent_refs: parents(ns, parent_refs),
            rules: rule_views(ns, rules),
        }
    }
}

/// The rule views of any route kind, from each rule's match keys, backendRefs and filters.
fn rule_views<'a, B, F>(
    ns: &str,
    rules: impl Iterator<Item = (Vec<String>, Option<&'a Vec<B>>, &'a Option<Vec<F>>)>,
) -> Vec<RouteRule>
where
    B: serde::Serialize + 'a,
    F: serde::Serialize + 'a,
{
    rules
        .enumerate()
        .map(|(i, (match_keys, backend_refs, rule_filters))| {
            let field = format!("spec.rules[{i}]");
            RouteRule {
                backend_refs: backends(&field, ns, backend_refs),
                filters: filters(&field, rule_filters),
                field,
                match_keys,
            }
        })
        .collect()
}

/// A stable text for an enum value within one run (match keys are only compared, never shown).
fn to_text<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// A canonical text for an HTTP match: defaults applied (PathPrefix `/`), header names
/// lower-cased (they are case-insensitive), headers and query params sorted.
pub fn http_match_key(m: &httproutes::HttpRouteRulesMatches) -> String {
    let (ptype, pvalue) = match &m.path {
        Some(p) => (
            p.r#type
                .as_ref()
                .map(to_text)
                .unwrap_or_else(|| "PathPrefix".into()),
            p.value.clone().unwrap_or_else(|| "/".into()),
        ),
        None => ("PathPrefix".into(), "/".into()),
    };
    let mut headers: Vec<String> = m
        .headers
        .iter()
        .flatten()
        .map(|h| {
            format!(
                "{}:{}={}",
                h.name.to_ascii_lowercase(),
                h.r#type
                    .as_ref()
                    .map(to_text)
                    .unwrap_or_else(|| "Exact".into()),
                h.value
            )
        })
        .collect();
    headers.sort();
    let mut query: Vec<String> = m
        .query_params
        .iter()
        .flatten()
        .map(|q| {
            format!(
                "{}:{}={}",
                q.name,
                q.r#type
                    .as_ref()
                    .map(to_text)
                    .unwrap_or_else(|| "Exact".into()),
                q.value
            )
        })
        .collect();
    query.sort();
    let method = m.method.as_ref().map(to_text).unwrap_or_default();
    format!("path {ptype} {pvalue} method {method} headers {headers:?} query {query:?}")
}

fn grpc_match_key(m: &grpcroutes::GrpcRouteRulesMatches) -> String {
    let method = m.method.as_ref().map(to_text).unwrap_or_default();
    let mut headers: Vec<String> = m
        .headers
        .iter()
        .flatten()
        .map(|h| {
            format!(
                "{}:{}={}",
                h.name.to_ascii_lowercase(),
                h.r#type
                    .as_ref()
                    .map(to_text)
                    .unwrap_or_else(|| "Exact".into()),
                h.value
            )
        })
        .collect();
    headers.sort();
    format!("grpc {method} headers {headers:?}")
}
