//! `compile`: Snapshot -> Plan.
//!
//! Attachment is decided by `attach::resolve`, the same code behind the analyze rules, so a
//! route the rules call NotAllowedByListeners is a route the datapath does not serve.

use std::collections::BTreeMap;

use gateway_api::apis::experimental::gateways::GatewayListeners;
use gateway_api::apis::experimental::grpcroutes::{
    GrpcRouteRulesMatches, GrpcRouteRulesMatchesMethodType,
};
use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesFiltersType, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};

use super::matcher::{HeaderMatch, Matcher, PathMatch, Pattern, QueryMatch, ValueMatch};
use super::{
    Action, Cluster, Endpoint, HostMatch, Listener, Mirror, Plan, Protocol, RouteEntry, Source,
    UpstreamProtocol, VirtualHost, WeightedBackend, MESH_LISTENER,
};
use crate::attach::{self, Parent};
use crate::grants;
use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;
use crate::route::{BackendRef, Filter};
use crate::snapshot::Snapshot;

/// Virtual hosts under construction: host -> entries.
type Hosts = BTreeMap<HostMatch, Vec<RouteEntry>>;

/// A listener of a Gateway or ListenerSet: kind, namespace, name, listener name.
type ListenerKey = (String, String, String, String);

/// How the agent serves a Gateway listener, or `None` when it does not (a protocol of an
/// implementation's own).
pub fn served_protocol(l: &GatewayListeners) -> Option<Protocol> {
    match l.protocol.as_str() {
        "HTTP" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        "TLS" if crate::attach::is_passthrough(l) => Some(Protocol::Tls),
        "TLS" => Some(Protocol::TlsTerminate),
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

pub fn compile(snap: &Snapshot) -> Plan {
    let mut clusters = BTreeMap::new();
    let mut listeners = Vec::new();
    // Routes per listener (of a Gateway or a ListenerSet: kind, namespace, name, listener),
    // found once through the shared attachment logic.
    let mut attached: BTreeMap<ListenerKey, Vec<&Object>> = BTreeMap::new();
    let mut mesh: Hosts = BTreeMap::new();
    let mut mirrors = 0usize;
    for kind in [
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TlsRoute,
        Kind::TcpRoute,
        Kind::UdpRoute,
    ] {
        for o in snap.of_kind(kind) {
            let Some(route) = o.resource.route() else {
                continue;
            };
            for p in &route.parent_refs {
                match attach::resolve(o, route, p, snap) {
                    Parent::Gateway {
                        gateway,
                        defs,
                        listeners: ok,
                    } => {
                        for (l, accepted) in defs.iter().zip(ok) {
                            if accepted.is_ok() {
                                let key = (
                                    gateway.kind.clone(),
                                    gateway.namespace.clone().unwrap_or_default(),
                                    gateway.name.clone(),
                                    l.name.clone(),
                                );
                                let v = attached.entry(key).or_default();
                                if !v.iter().any(|x| std::ptr::eq(*x, o)) {
                                    v.push(o);
                                }
                            }
                        }
                    }
                    // GAMMA: producer routes only (the route lives in the Service's namespace).
                    // (TLSRoutes in the mesh would need an SNI-aware outbound entry; not yet.)
                    Parent::Service(svc)
                        if svc.namespace == o.namespace
                            && matches!(kind, Kind::HttpRoute | Kind::GrpcRoute) =>
                    {
                        // The route applies to the Service port its parentRef names, else to
                        // every port of the Service.
                        let names: Vec<String> = service_ports(svc)
                            .into_iter()
                            .filter(|port| p.port.is_none_or(|want| want == *port))
                            .flat_map(|port| mesh_names(svc, port))
                            .collect();
                        for e in entries(o, snap, &mut clusters, &mut mirrors) {
                            for n in &names {
                                mesh.entry(HostMatch::Exact(n.clone()))
                                    .or_default()
                                    .push(e.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // A listener is served when its status says Programmed: not when it conflicts with
    // another or has no usable certificate (partial validity: its Gateway's other listeners
    // serve on), and only while its Gateway (or ListenerSet) is Accepted.
    let gateway_status = super::status::gateways(snap, |kind, ns, gw, l| {
        attached
            .get(&(
                kind.to_string(),
                ns.to_string(),
                gw.to_string(),
                l.to_string(),
            ))
            .map_or(0, Vec::len)
    });
    let programmed = |owner: &Object, l: &str| {
        let ns = owner.namespace.as_deref().unwrap_or_default();
        gateway_status
            .iter()
            .find(|g| g.kind == owner.kind && g.namespace == ns && g.name == owner.name)
            // A Gateway or ListenerSet that is not Accepted serves nothing (an address type
            // mesh-agent cannot bind, a ListenerSet its Gateway does not allow).
            .filter(|g| g.condition("Accepted").is_some_and(|c| c.status))
            .and_then(|g| g.listener(l))
            .and_then(|l| l.condition("Programmed"))
            .is_some_and(|c| c.status)
    };
    for gw in snap.of_kind(Kind::Gateway) {
        let gw_key = format!(
            "{}/{}",
            gw.namespace.as_deref().unwrap_or_default(),
            gw.name
        );
        // Every listener's backends see the Gateway's client certificate, a ListenerSet's too.
        let client_certificate = backend_client_certificate(gw, snap);
        let requested: Vec<std::net::IpAddr> = match &gw.resource {
            Resource::Gateway(spec) => spec
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.r#type.as_deref().unwrap_or("IPAddress") == "IPAddress")
                .filter_map(|a| a.value.as_deref()?.parse().ok())
                .collect(),
            _ => Vec::new(),
        };
        // The Gateway's own listeners, then those of the ListenerSets it accepts, in the
        // order the spec settles conflicts (the earlier wins a tie between hostnames).
        for (owner, _, l) in attach::merged_listeners(gw, snap) {
            let Some(protocol) = served_protocol(l) else {
                continue;
            };
            if !programmed(owner, &l.name) {
                continue;
            }
            let ns = owner.namespace.clone().unwrap_or_default();
            let mut hosts: Hosts = BTreeMap::new();
            for o in attached
                .get(&(
                    owner.kind.clone(),
                    ns.clone(),
                    owner.name.clone(),
                    l.name.clone(),
                ))
                .into_iter()
                .flatten()
            {
                let route = o.resource.route().expect("attached objects are routes");
                let es = entries(o, snap, &mut clusters, &mut mirrors);
                for h in effective_hosts(l.hostname.as_deref(), &route.hostnames) {
                    hosts.entry(h).or_default().extend(es.iter().cloned());
                }
            }
            // `ns/gateway/listener`; a ListenerSet's `ns/ListenerSet/name/listener` (no Gateway
            // is named with capitals, so the two never meet).
            let name = if std::ptr::eq(owner, gw) {
                format!("{ns}/{}/{}", owner.name, l.name)
            } else {
                format!("{ns}/ListenerSet/{}/{}", owner.name, l.name)
            };
            let mut built = listener(name, l.port as u16, protocol, hosts);
            built.certificates = certificates(owner, l, snap);
            if built.protocol == Protocol::Https {
                built.client_validation = client_validation(gw, l.port, snap);
            }
            built.hostname = HostMatch::parse(l.hostname.as_deref());
            built.backend_client_certificate = client_certificate.clone();
            built.requested_addresses = requested.clone();
            built.gateway = Some(gw_key.clone());
            built.parent = format!("{} {ns}/{}", owner.kind, owner.name);
            listeners.push(built);
        }
    }
    // Every port of every Service is reachable through the mesh entry; one without routes
    // as it is.
    let mut services = Vec::new();
    for svc in snap.of_kind(Kind::Service) {
        let ns = svc.namespace.clone().unwrap_or_default();
        let addresses = super::services::cluster_ips(svc);
        for (index, port) in service_ports(svc).into_iter().enumerate() {
            let backend = BackendRef {
                field: String::new(),
                group: String::new(),
                kind: "Service".into(),
                namespace: ns.clone(),
                name: svc.name.clone(),
                port: Some(port),
                weight: 1,
                filters: Vec::new(),
            };
            let cluster = resolve_backend(&backend, svc, snap, &mut clusters);
            let names = mesh_names(svc, port);
            if let (false, Some(cluster), Some((number, name, transport))) = (
                addresses.is_empty(),
                cluster.as_ref(),
                service_port(svc, index),
            ) {
                // Routed when a mesh route (not the Service's own default) serves a name.
                let l7 = transport == super::services::Transport::Tcp
                    && names.iter().any(|n| {
                        mesh.get(&HostMatch::Exact(n.clone()))
                            .is_some_and(|l| l.iter().any(|e| e.source.kind != "Service"))
                    });
                services.push(super::services::ServiceFrontend {
                    service: format!("{ns}/{}", svc.name),
                    port_name: name,
                    addresses: addresses.clone(),
                    port: number,
                    transport,
                    cluster: cluster.clone(),
                    l7,
                    // The cluster holds the ready endpoints: fall back only without any.
                    terminating: if clusters[cluster].endpoints.is_empty() {
                        super::services::serving_terminating(snap, svc, index)
                    } else {
                        Vec::new()
                    },
                });
            }
            for n in names {
                let list = mesh.entry(HostMatch::Exact(n)).or_default();
                if list.is_empty() {
                    list.push(RouteEntry {
                        matcher: Matcher {
                            path: PathMatch::prefix("/"),
                            method: None,
                            headers: Vec::new(),
                            query: Vec::new(),
                        },
                        action: Action::Forward(vec![WeightedBackend {
                            cluster: cluster.clone(),
                            weight: 1,
                            filters: Vec::new(),
                            mirrors: Vec::new(),
                            external_auth: None,
                        }]),
                        filters: Vec::new(),
                        mirrors: Vec::new(),
                        source: Source {
                            kind: "Service".into(),
                            namespace: ns.clone(),
                            name: svc.name.clone(),
                            rule: 0,
                            matched: 0,
                            rule_name: None,
                        },
                        request_timeout_ms: None,
                        backend_timeout_ms: None,
                        retry: None,
                        session: None,
                        external_auth: None,
                        age: (None, ns.clone(), svc.name.clone()),
                    });
                }
            }
        }
    }
    listeners.push(listener(MESH_LISTENER.into(), 0, Protocol::Http, mesh));
    Plan {
        listeners,
        clusters,
        route_status: super::status::routes(snap),
        policy_status: super::status::backend_tls_policies(snap),
        gateway_status,
        mirror_count: mirrors,
        services: super::services::ServiceTable::new(services),
    }
}

/// The number, name and transport of a Service's `index`th port (53/UDP and 53/TCP are two),
/// when the socket load balancer serves it.
fn service_port(
    svc: &Object,
    index: usize,
) -> Option<(u16, Option<String>, super::services::Transport)> {
    let Resource::Service(s) = &svc.resource else {
        return None;
    };
    let sp = s.spec.as_ref()?.ports.as_ref()?.get(index)?;
    Some((
        u16::try_from(sp.port).ok()?,
        sp.name.clone(),
        super::services::transport(sp.protocol.as_deref())?,
    ))
}

/// The ports of a Service.
fn service_ports(svc: &Object) -> Vec<i32> {
    match &svc.resource {
        Resource::Service(s) => s
            .spec
            .iter()
            .flat_map(|sp| sp.ports.iter().flatten())
            .map(|p| p.port)
            .collect(),
        _ => Vec::new(),
    }
}

/// The mesh virtual host names of one Service port (`target::mesh_host` of each name).
fn mesh_names(svc: &Object, port: i32) -> Vec<String> {
    let port = u16::try_from(port).unwrap_or(0);
    service_names(&svc.name, svc.namespace.as_deref().unwrap_or(""))
        .iter()
        .map(|n| super::target::mesh_host(n, port).into_owned())
        .collect()
}

/// The names a client may use for a Service: `svc`, `svc.ns`, `svc.ns.svc`,
/// `svc.ns.svc.cluster.local`.
pub fn service_names(name: &str, ns: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ]
}

fn listener(name: String, port: u16, protocol: Protocol, hosts: Hosts) -> Listener {
    let virtual_hosts: Vec<VirtualHost> = hosts
        .into_iter()
        .map(|(host, mut routes)| {
            routes.sort_by(|a, b| {
                a.matcher
                    .precedence(&b.matcher)
                    .then_with(|| oldest_first(&a.age, &b.age))
                    .then_with(|| {
                        (a.source.rule, a.source.matched).cmp(&(b.source.rule, b.source.matched))
                    })
            });
            let index = super::decide::HostIndex::build(&routes);
            VirtualHost {
                host,
                routes,
                index,
            }
        })
        .collect();
    let index = super::decide::ListenerIndex::build(&virtual_hosts);
    Listener {
        name,
        port,
        protocol,
        virtual_hosts,
        certificates: Vec::new(),
        client_validation: None,
        backend_client_certificate: None,
        hostname: HostMatch::Any,
        gateway: None,
        parent: String::new(),
        address: None,
        requested_addresses: Vec::new(),
        index,
    }
}

/// The frontend validation of the Gateway's HTTPS listeners on `port` (a ListenerSet's
/// listeners take their Gateway's): the CA bundles of the references that resolve (a
/// ConfigMap's or Secret's `ca.crt`, across namespaces with a ReferenceGrant).
fn client_validation(gw: &Object, port: i32, snap: &Snapshot) -> Option<super::ClientValidation> {
    let Resource::Gateway(spec) = &gw.resource else {
        return None;
    };
    let insecure_fallback = crate::gateway_tls::listener_insecure_fallback(spec, port)?;
    let gw_ns = gw.namespace.clone().unwrap_or_default();
    let mut ca_pem = Vec::new();
    for r in crate::gateway_tls::listener_ca_refs(spec, port) {
        let ns = r.namespace.unwrap_or(&gw_ns);
        ca_pem.extend(crate::gateway_tls::usable_ca_bundle(
            gw, snap, r.group, r.kind, ns, r.name,
        ));
    }
    Some(super::ClientValidation {
        ca_pem,
        insecure_fallback,
    })
}

/// The usable certificates of a listener: core Secrets of type kubernetes.io/tls that exist,
/// may be referenced (ReferenceGrant across namespaces) and parse. (`gw` is the Gateway or
/// ListenerSet that declares the listener.)
fn certificates(
    gw: &Object,
    l: &gateway_api::apis::experimental::gateways::GatewayListeners,
    snap: &Snapshot,
) -> Vec<super::Certificate> {
    l.tls
        .iter()
        .flat_map(|t| t.certificate_refs.iter().flatten())
        .filter_map(|c| {
            tls_secret(
                gw,
                c.group.as_deref().unwrap_or(""),
                c.kind.as_deref().unwrap_or("Secret"),
                c.namespace.as_deref(),
                &c.name,
                snap,
            )
        })
        .collect()
}

/// The client certificate a Gateway presents to backends that ask for one
/// (`spec.tls.backend.clientCertificateRef`), when it is usable (MESH1120 and MESH1121 say
/// why not).
fn backend_client_certificate(gw: &Object, snap: &Snapshot) -> Option<super::Certificate> {
    let Resource::Gateway(spec) = &gw.resource else {
        return None;
    };
    let r = crate::gateway_tls::backend_client_certificate(spec)?;
    tls_secret(gw, r.group, r.kind, r.namespace, r.name, snap)
}

/// A `kubernetes.io/tls` Secret `owner` (a Gateway or ListenerSet) refers to, read as a
/// certificate and key, when the reference is to a core Secret, permitted (same namespace or a
/// ReferenceGrant for the owner's kind) and readable.
fn tls_secret(
    owner: &Object,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    snap: &Snapshot,
) -> Option<super::Certificate> {
    let owner_ns = owner.namespace.clone().unwrap_or_default();
    let ns = namespace.map_or_else(|| owner_ns.clone(), str::to_string);
    // A ListenerSet's references are granted to ListenerSets.
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: &owner.kind,
        namespace: &owner_ns,
    };
    let to = grants::To {
        group: "",
        kind: "Secret",
        namespace: &ns,
        name,
    };
    if !group.is_empty() || kind != "Secret" || !grants::permitted(snap, &from, &to) {
        return None;
    }
    let Some(Object {
        resource: Resource::Secret(secret),
        ..
    }) = snap.get(Kind::Secret, Some(&ns), name)
    else {
        return None;
    };
    let material = crate::cert::read(secret).ok()?;
    let field = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|s| s.clone().into_bytes())
            })
    };
    Some(super::Certificate {
        secret: format!("{ns}/{name}"),
        names: material.names,
        cert_pem: field("tls.crt")?,
        key_pem: field("tls.key")?,
    })
}

/// Route precedence between routes: the oldest creationTimestamp, then namespace/name (as in
/// `crate::precedence`, for objects already compiled).
fn oldest_first(
    a: &(Option<String>, String, String),
    b: &(Option<String>, String, String),
) -> std::cmp::Ordering {
    let by_time = match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    by_time.then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2)))
}

/// The hosts a route serves on a listener: its hostnames narrowed to the listener's, or the
/// listener's own when the route has none.
fn effective_hosts(listener: Option<&str>, route: &[String]) -> Vec<HostMatch> {
    if route.is_empty() {
        return vec![HostMatch::parse(listener)];
    }
    route
        .iter()
        .filter_map(|h| match listener {
            None => Some(HostMatch::parse(Some(h))),
            Some(l) if l.eq_ignore_ascii_case(h) || crate::hostname::matches(l, h) => {
                Some(HostMatch::parse(Some(h)))
            }
            Some(l) if crate::hostname::matches(h, l) => Some(HostMatch::parse(Some(l))),
            _ => None,
        })
        .collect()
}

/// The route entries of one route object: one per match of every rule.
fn entries(
    o: &Object,
    snap: &Snapshot,
    clusters: &mut BTreeMap<String, Cluster>,
    mirror_ids: &mut usize,
) -> Vec<RouteEntry> {
    let ns = o.namespace.clone().unwrap_or_default();
    let age = (
        o.creation_timestamp().map(str::to_string),
        ns.clone(),
        o.name.clone(),
    );
    let Some(route) = o.resource.route() else {
        return Vec::new();
    };
    let matchers: Vec<Vec<Matcher>> = match &o.resource {
        Resource::HttpRoute(spec, _) => spec
            .rules
            .iter()
            .flatten()
            .map(|r| match r.matches.as_deref() {
                Some(ms) if !ms.is_empty() => ms.iter().map(http_matcher).collect(),
                _ => vec![http_matcher(&HttpRouteRulesMatches::default())],
            })
            .collect(),
        Resource::GrpcRoute(spec, _) => spec
            .rules
            .iter()
            .flatten()
            .map(|r| match r.matches.as_deref() {
                Some(ms) if !ms.is_empty() => ms.iter().map(grpc_matcher).collect(),
                _ => vec![grpc_matcher(&GrpcRouteRulesMatches::default())],
            })
            .collect(),
        // TLSRoutes match by SNI only: the virtual host has chosen, every rule takes it all;
        // a TCPRoute's connections have nothing to match, its (one) rule takes them all.
        Resource::TlsRoute(..) | Resource::TcpRoute(..) | Resource::UdpRoute(..) => route
            .rules
            .iter()
            .map(|_| vec![http_matcher(&HttpRouteRulesMatches::default())])
            .collect(),
        _ => return Vec::new(),
    };
    let settings = rule_settings(o);
    // An ExternalAuth filter's service resolves like a backend; one that does not denies.
    let external_auth_of = |filters: &[(String, Filter)],
                            clusters: &mut BTreeMap<String, Cluster>|
     -> Option<super::ext_auth::ExternalAuth> {
        filters.iter().find_map(|(path, f)| {
            use gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersExternalAuthProtocol as P;
            let a = f.external_auth.as_ref()?;
            let lower = |v: Option<&Vec<String>>| -> Vec<String> {
                v.into_iter().flatten().map(|h| h.to_ascii_lowercase()).collect()
            };
            let grpc = matches!(a.protocol, P::Grpc);
            Some(super::ext_auth::ExternalAuth {
                cluster: crate::route::external_auth_ref(path, f, &ns)
                    .and_then(|target| permitted_backend(o, &target, snap, clusters)),
                protocol: if grpc {
                    super::ext_auth::AuthProtocol::Grpc
                } else {
                    super::ext_auth::AuthProtocol::Http
                },
                path_prefix: a.http.as_ref().and_then(|h| h.path.clone()).unwrap_or_default(),
                allowed_headers: if grpc {
                    lower(a.grpc.as_ref().and_then(|g| g.allowed_headers.as_ref()))
                } else {
                    lower(a.http.as_ref().and_then(|h| h.allowed_headers.as_ref()))
                },
                allowed_response_headers: lower(
                    a.http.as_ref().and_then(|h| h.allowed_response_headers.as_ref()),
                ),
                forward_body: a
                    .forward_body
                    .as_ref()
                    .and_then(|b| b.max_size)
                    .map_or(0, |n| n.max(0) as u64),
            })
        })
    };
    // Mirror targets resolve like backends (exist, have the port, are permitted); one that
    // does not is not copied to.
    let mirrors_of = |filters: &[(String, Filter)],
                      clusters: &mut BTreeMap<String, Cluster>,
                      mirror_ids: &mut usize|
     -> Vec<Mirror> {
        filters
            .iter()
            .filter_map(|(path, f)| {
                let m = f.request_mirror.as_ref()?;
                let target = crate::route::mirror_ref(path, f, &ns)?;
                let (numerator, denominator) = match (m.percent, &m.fraction) {
                    (Some(p), _) => (p.clamp(0, 100) as u64, 100),
                    (None, Some(fr)) => (
                        fr.numerator.max(0) as u64,
                        fr.denominator.unwrap_or(100).max(1) as u64,
                    ),
                    _ => (1, 1),
                };
                *mirror_ids += 1;
                Some(Mirror {
                    id: *mirror_ids - 1,
                    cluster: permitted_backend(o, &target, snap, clusters),
                    numerator,
                    denominator,
                })
            })
            .collect()
    };
    let mut out = Vec::new();
    for (i, (rule, ms)) in route.rules.iter().zip(matchers).enumerate() {
        let redirect = rule
            .filters
            .iter()
            .any(|(_, f)| matches!(f.r#type, HttpRouteRulesFiltersType::RequestRedirect));
        let rule_mirrors = mirrors_of(&rule.filters, clusters, mirror_ids);
        let action = if redirect {
            Action::Redirect
        } else {
            let mut backends = Vec::new();
            for b in &rule.backend_refs {
                let mirrors = mirrors_of(&b.filters, clusters, mirror_ids);
                backends.push(WeightedBackend {
                    cluster: permitted_backend(o, b, snap, clusters),
                    weight: b.weight.max(0) as u32,
                    filters: b.filters.iter().map(|(_, f)| f.clone()).collect(),
                    mirrors,
                    external_auth: external_auth_of(&b.filters, clusters),
                });
            }
            Action::Forward(backends)
        };
        let set = settings.get(i).cloned().unwrap_or_default();
        let rule_auth = external_auth_of(&rule.filters, clusters);
        for (j, m) in ms.into_iter().enumerate() {
            // The session cookie goes back on the requests this match takes.
            let session = set
                .session
                .clone()
                .map(|s| super::session::SessionPersistence {
                    cookie_path: match (&m.path, o.kind.as_str()) {
                        (PathMatch::Exact(p) | PathMatch::Prefix(p), "HTTPRoute") => p.clone(),
                        _ => "/".into(),
                    },
                    ..s
                });
            out.push(RouteEntry {
                matcher: m,
                action: action.clone(),
                filters: rule.filters.iter().map(|(_, f)| f.clone()).collect(),
                mirrors: rule_mirrors.clone(),
                source: Source {
                    kind: o.kind.clone(),
                    namespace: ns.clone(),
                    name: o.name.clone(),
                    rule: i,
                    matched: j,
                    rule_name: set.name.clone(),
                },
                request_timeout_ms: set.request_timeout_ms,
                backend_timeout_ms: set.backend_timeout_ms,
                retry: set.retry.clone(),
                session,
                external_auth: rule_auth.clone(),
                age: age.clone(),
            });
        }
    }
    out
}

/// What a route rule sets beyond matches, filters and backends.
#[derive(Debug, Clone, Default)]
struct RuleSettings {
    /// The rule's name (HTTPRoute and GRPCRoute rules), for statuses and explain.
    name: Option<String>,
    request_timeout_ms: Option<u64>,
    backend_timeout_ms: Option<u64>,
    retry: Option<super::Retry>,
    session: Option<super::session::SessionPersistence>,
}

/// A rule's `sessionPersistence`, read from its JSON form (HTTPRoute's and GRPCRoute's are
/// the same fields in types of their own); its cookie Path is left to each match.
fn session_of(p: &impl serde::Serialize) -> super::session::SessionPersistence {
    use super::session::{SessionKind, SessionPersistence};
    let v = serde_json::to_value(p).unwrap_or_default();
    let text = |path: &str| v.pointer(path).and_then(serde_json::Value::as_str);
    SessionPersistence {
        name: text("/sessionName")
            .unwrap_or(SessionPersistence::DEFAULT_NAME)
            .to_string(),
        kind: match text("/type") {
            Some("Header") => SessionKind::Header,
            _ => SessionKind::Cookie,
        },
        absolute_timeout_s: text("/absoluteTimeout")
            .and_then(crate::validate::duration_ms)
            .map(|ms| ms.div_ceil(1000)),
        permanent: text("/cookieConfig/lifetimeType") == Some("Permanent"),
        cookie_path: "/".into(),
    }
}

/// The settings of each rule of a route, by rule index (none for kinds without them).
fn rule_settings(o: &Object) -> Vec<RuleSettings> {
    let ms = |v: Option<&String>| v.and_then(|s| crate::validate::duration_ms(s));
    match &o.resource {
        Resource::HttpRoute(spec, _) => spec
            .rules
            .iter()
            .flatten()
            .map(|r| {
                let t = r.timeouts.as_ref();
                RuleSettings {
                    name: r.name.clone(),
                    request_timeout_ms: ms(t.and_then(|t| t.request.as_ref())),
                    backend_timeout_ms: ms(t.and_then(|t| t.backend_request.as_ref())),
                    retry: r.retry.as_ref().map(|r| super::Retry {
                        codes: r
                            .codes
                            .iter()
                            .flatten()
                            .filter_map(|c| u16::try_from(*c).ok())
                            .collect(),
                        retries: r
                            .attempts
                            .map_or(super::Retry::DEFAULT_RETRIES, |a| a.max(0) as u32),
                        backoff_ms: ms(r.backoff.as_ref())
                            .unwrap_or(super::Retry::DEFAULT_BACKOFF_MS),
                    }),
                    session: r.session_persistence.as_ref().map(session_of),
                }
            })
            .collect(),
        Resource::GrpcRoute(spec, _) => spec
            .rules
            .iter()
            .flatten()
            .map(|r| RuleSettings {
                name: r.name.clone(),
                session: r.session_persistence.as_ref().map(session_of),
                ..RuleSettings::default()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The cluster of a backendRef, if it is a Service that exists, has the port, and may be
/// referenced (ReferenceGrant); `None` otherwise (its share gets 500).
fn permitted_backend(
    route: &Object,
    b: &BackendRef,
    snap: &Snapshot,
    clusters: &mut BTreeMap<String, Cluster>,
) -> Option<String> {
    let svc = backend_service(route, b, snap).ok()?;
    let name = resolve_backend(b, svc, snap, clusters)?;
    if route.kind == "GRPCRoute" {
        if let Some(c) = clusters.get_mut(&name) {
            c.protocol = UpstreamProtocol::H2c;
        }
    }
    Some(name)
}

/// The Service a backendRef names, or the route's `ResolvedRefs=False` reason: InvalidKind for
/// anything but a core Service, RefNotPermitted across namespaces without a ReferenceGrant,
/// BackendNotFound for a missing Service or a port it does not have.
pub(crate) fn backend_service<'s>(
    route: &Object,
    b: &BackendRef,
    snap: &'s Snapshot,
) -> Result<&'s Object, &'static str> {
    if !b.is_service() {
        return Err("InvalidKind");
    }
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: &route.kind,
        namespace: route.namespace.as_deref().unwrap_or(""),
    };
    let to = grants::To {
        group: "",
        kind: "Service",
        namespace: &b.namespace,
        name: &b.name,
    };
    if !grants::permitted(snap, &from, &to) {
        return Err("RefNotPermitted");
    }
    let svc = snap
        .get(Kind::Service, Some(&b.namespace), &b.name)
        .ok_or("BackendNotFound")?;
    let Resource::Service(s) = &svc.resource else {
        return Err("BackendNotFound");
    };
    let has_port = s
        .spec
        .as_ref()
        .and_then(|sp| sp.ports.as_ref())
        .is_some_and(|ports| {
            b.port
                .is_some_and(|port| ports.iter().any(|p| p.port == port))
        });
    if has_port {
        Ok(svc)
    } else {
        Err("BackendNotFound")
    }
}

/// Make (or reuse) the cluster `namespace/name:port` with the Service's ready endpoints.
fn resolve_backend(
    b: &BackendRef,
    svc: &Object,
    snap: &Snapshot,
    clusters: &mut BTreeMap<String, Cluster>,
) -> Option<String> {
    let Resource::Service(s) = &svc.resource else {
        return None;
    };
    let port = b.port?;
    let sp = s
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == port)?;
    let name = format!("{}/{}:{port}", b.namespace, b.name);
    if !clusters.contains_key(&name) {
        let endpoints = slice_endpoints(snap, &b.namespace, &b.name, sp, |c| {
            c.and_then(|c| c.ready).unwrap_or(true)
        });
        clusters.insert(
            name.clone(),
            Cluster {
                name: name.clone(),
                endpoints,
                protocol: UpstreamProtocol::of_port(
                    sp.app_protocol.as_deref(),
                    sp.name.as_deref(),
                    false,
                ),
                tls: super::upstream_tls::for_service_port(snap, svc, sp.name.as_deref()),
            },
        );
    }
    Some(name)
}

/// The endpoints of a Service port, from the EndpointSlices labelled with the Service's name,
/// whose conditions `wanted` accepts; sorted, without repeats. The port is the slice port with
/// the Service port's name, else the numeric targetPort.
pub(crate) fn slice_endpoints(
    snap: &Snapshot,
    namespace: &str,
    service: &str,
    sp: &k8s_openapi::api::core::v1::ServicePort,
    wanted: impl Fn(Option<&k8s_openapi::api::discovery::v1::EndpointConditions>) -> bool,
) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    for es in snap
        .of_kind(Kind::EndpointSlice)
        .filter(|e| e.namespace.as_deref() == Some(namespace))
    {
        let Resource::EndpointSlice(slice) = &es.resource else {
            continue;
        };
        if slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map(String::as_str)
            != Some(service)
        {
            continue;
        }
        let declared = match &sp.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n,
            _ => sp.port,
        };
        let target = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name == sp.name)
            .and_then(|p| p.port)
            .unwrap_or(declared);
        for ep in slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| wanted(e.conditions.as_ref()))
        {
            for addr in &ep.addresses {
                endpoints.push(Endpoint {
                    address: addr.clone(),
                    port: target as u16,
                });
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

fn value(regex: bool, v: &str) -> Option<ValueMatch> {
    if regex {
        Pattern::new(v).map(ValueMatch::Regex)
    } else {
        Some(ValueMatch::Exact(v.to_string()))
    }
}

/// A match that cannot be compiled (a bad regex) matches nothing.
fn never() -> Matcher {
    Matcher {
        path: PathMatch::Exact("\u{0}".into()),
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
    }
}

fn http_matcher(m: &HttpRouteRulesMatches) -> Matcher {
    let path = match &m.path {
        None => PathMatch::prefix("/"),
        Some(p) => {
            let v = p.value.clone().unwrap_or_else(|| "/".into());
            match p.r#type {
                Some(HttpRouteRulesMatchesPathType::Exact) => PathMatch::Exact(v),
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => match Pattern::new(&v) {
                    Some(r) => PathMatch::Regex(r),
                    None => return never(),
                },
                _ => PathMatch::prefix(&v),
            }
        }
    };
    let mut headers = Vec::new();
    for h in m.headers.iter().flatten() {
        let Some(v) = value(
            matches!(
                h.r#type,
                Some(HttpRouteRulesMatchesHeadersType::RegularExpression)
            ),
            &h.value,
        ) else {
            return never();
        };
        headers.push(HeaderMatch {
            name: h.name.to_ascii_lowercase(),
            value: v,
        });
    }
    let mut query = Vec::new();
    for q in m.query_params.iter().flatten() {
        let Some(v) = value(
            matches!(
                q.r#type,
                Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression)
            ),
            &q.value,
        ) else {
            return never();
        };
        query.push(QueryMatch {
            name: q.name.clone(),
            value: v,
        });
    }
    let method = m
        .method
        .as_ref()
        .map(|x| format!("{x:?}").to_ascii_uppercase());
    Matcher {
        path,
        method,
        headers,
        query,
    }
}

/// gRPC calls are `POST /package.Service/Method`.
fn grpc_matcher(m: &GrpcRouteRulesMatches) -> Matcher {
    let path = match &m.method {
        None => PathMatch::prefix("/"),
        Some(mm) => {
            let regex = matches!(
                mm.r#type,
                Some(GrpcRouteRulesMatchesMethodType::RegularExpression)
            );
            match (mm.service.as_deref(), mm.method.as_deref(), regex) {
                (Some(s), Some(me), false) => PathMatch::Exact(format!("/{s}/{me}")),
                (Some(s), None, false) => PathMatch::prefix(&format!("/{s}")),
                (s, me, _) => match Pattern::new(&format!(
                    "/{}/{}",
                    s.unwrap_or("[^/]+"),
                    me.unwrap_or("[^/]+")
                )) {
                    Some(r) => PathMatch::Regex(r),
                    None => return never(),
                },
            }
        }
    };
    let mut headers = Vec::new();
    for h in m.headers.iter().flatten() {
        let regex = format!("{:?}", h.r#type).contains("RegularExpression");
        let Some(v) = value(regex, &h.value) else {
            return never();
        };
        headers.push(HeaderMatch {
            name: h.name.to_ascii_lowercase(),
            value: v,
        });
    }
    Matcher {
        path,
        method: Some("POST".into()),
        headers,
        query: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
