//! The Plan as Envoy v3 configuration: a static bootstrap real Envoy runs, so the same routes
//! can be served by Envoy and by mesh-agent for differential tests and side-by-side benchmarks.
//!
//! Route entries keep their order (Envoy takes the first matching route, and the Plan is
//! already in Gateway API precedence order); each route records the object and rule it came
//! from in `metadata.filter_metadata["kubectl-mesh"]`.

use serde_json::{json, Map, Value};

use super::matcher::{PathMatch, ValueMatch};
use super::{
    Action, HostMatch, Listener, Plan, Protocol, RouteEntry, UpstreamProtocol, VirtualHost,
    MESH_LISTENER,
};
use crate::route::Filter;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STATEFUL_SESSION: &str = "envoy.filters.http.stateful_session";
const EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";
/// The agent's `--external-auth-timeout` default (Envoy's ext_authz default too).
const EXT_AUTHZ_TIMEOUT: &str = "0.2s";
const TCP_PROXY: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const TLS_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
/// A backend that cannot be resolved: a cluster name that does not exist, which Envoy answers
/// with 500 (`cluster_not_found_response_code`; route validation is off for that), as the
/// spec asks for an invalid backend's share of requests.
const INVALID_BACKEND: &str = "kubectl-mesh/invalid-backend";

/// Where the rendered listeners bind.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Address the Gateway listeners bind (their own ports).
    pub gateway_address: String,
    /// Address and port of the mesh (outbound) entry.
    pub outbound_address: String,
    pub outbound_port: u16,
    pub admin_port: u16,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            gateway_address: "127.0.0.1".into(),
            outbound_address: "127.0.0.1".into(),
            outbound_port: 15001,
            admin_port: 15000,
        }
    }
}

/// A static bootstrap: listeners, route configurations inline, STATIC clusters.
pub fn bootstrap(plan: &Plan, opts: &RenderOptions) -> Value {
    let listeners: Vec<Value> = listeners(plan, opts).collect();
    let clusters: Vec<Value> = clusters(plan).collect();
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": opts.admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

/// The Envoy listeners of the Plan, one per address. Gateway listeners sharing an address and port become
/// one Envoy listener (Envoy binds an address once), to which each contributes the virtual
/// hosts (or SNI filter chains) of the hostnames it owns (see `owned`).
pub fn listeners<'p>(plan: &'p Plan, opts: &'p RenderOptions) -> impl Iterator<Item = Value> + 'p {
    let mut ports: Vec<Vec<&Listener>> = Vec::new();
    for l in &plan.listeners {
        let shared = ports.iter_mut().find(|g| {
            l.name != MESH_LISTENER
                && g[0].name != MESH_LISTENER
                && g[0].port == l.port
                && g[0].address == l.address
        });
        match shared {
            Some(group) => group.push(l),
            None => ports.push(vec![l]),
        }
    }
    ports.into_iter().filter_map(move |group| {
        // Terminating listeners would need the private keys, which renderings never hold.
        // The others on a port share one protocol (a conflict is an Error, never compiled).
        let served: Vec<&Listener> = group
            .into_iter()
            .filter(|l| !l.protocol.terminates_tls())
            .collect();
        match served.first()?.protocol {
            Protocol::Http => Some(listener(&served, plan, opts)),
            Protocol::Tls => passthrough_listener(&served, plan, opts, true),
            Protocol::Tcp => passthrough_listener(&served, plan, opts, false),
            Protocol::Udp => udp_listener(&served, opts),
            Protocol::Https | Protocol::TlsTerminate => None,
        }
    })
}

/// For listeners sharing a port, the virtual hosts each one owns: those whose hostname the
/// agent would send to that listener (`Plan::listener_for`, most specific listener hostname
/// first). Another listener's vhost for the same name never reaches Envoy, where domains must
/// be unique and would be matched across listeners.
fn owned<'l>(group: &[&'l Listener], plan: &Plan) -> Vec<(&'l Listener, Vec<&'l VirtualHost>)> {
    group
        .iter()
        .map(|l| {
            let hosts = l
                .virtual_hosts
                .iter()
                .filter(|vh| {
                    group.len() == 1
                        || plan
                            .listener_at(l.address, l.port, &vh.host.display())
                            .is_some_and(|owner| owner.name == l.name)
                })
                .collect();
            (*l, hosts)
        })
        .collect()
}

/// The Envoy clusters of the Plan (STATIC, endpoints inline), one at a time.
pub fn clusters(plan: &Plan) -> impl Iterator<Item = Value> + '_ {
    plan.clusters.values().map(|c| {
        // A BackendTLSPolicy without any usable CA connects nowhere (the agent refuses the
        // handshake): Envoy gets the cluster without endpoints, 503 alike.
        let unreachable = c.tls.as_ref().is_some_and(|t| t.ca_pem.is_empty() && !t.system_roots);
        let lb: Vec<Value> = c.endpoints.iter().filter(|_| !unreachable).map(|e| json!({"endpoint": {"address": {"socket_address": {"address": e.address, "port_value": e.port}}}})).collect();
        let mut cluster = json!({"name": c.name, "type": "STATIC", "connect_timeout": "5s", "load_assignment": {"cluster_name": c.name, "endpoints": [{"lb_endpoints": lb}]}});
        if let Some(t) = c.tls.as_ref().filter(|_| !unreachable) {
            cluster["transport_socket"] = upstream_tls_socket(t);
        }
        if c.protocol == UpstreamProtocol::H2c {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            });
        }
        cluster
    })
}

/// Envoy's UpstreamTlsContext for a BackendTLSPolicy: SNI, trusted CAs (inline, or the
/// system bundle), and the names the certificate must carry.
fn upstream_tls_socket(t: &super::upstream_tls::UpstreamTls) -> Value {
    use super::upstream_tls::SubjectAltName;
    let mut ca = String::from_utf8_lossy(&t.ca_pem).into_owned();
    if t.system_roots {
        // Envoy reads one bundle: the policy's CAs with the system's, as the agent trusts.
        if let Ok(system) = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt") {
            ca.push_str(&system);
        }
    }
    let sans: Vec<Value> = if t.subject_alt_names.is_empty() {
        vec![json!({"san_type": "DNS", "matcher": {"exact": t.sni}})]
    } else {
        t.subject_alt_names
            .iter()
            .map(|s| match s {
                SubjectAltName::Hostname(h) => json!({"san_type": "DNS", "matcher": {"exact": h}}),
                SubjectAltName::Uri(u) => json!({"san_type": "URI", "matcher": {"exact": u}}),
            })
            .collect()
    };
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": t.sni,
            "common_tls_context": {"validation_context": {
                "trusted_ca": {"inline_string": ca},
                "match_typed_subject_alt_names": sans,
            }},
        }
    })
}

/// The Plan's identity: SHA-256 over its Envoy rendering with the default addresses, so it
/// names what the Plan routes, not where an agent binds. Agents with equal hashes route alike,
/// and a Plan compiled from files can be compared with a running agent's. Streamed one
/// resource at a time: the rendering of a large Plan is never held whole.
pub fn plan_hash(plan: &Plan) -> String {
    struct Digest(ring::digest::Context);
    impl std::io::Write for Digest {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let opts = RenderOptions::default();
    let mut digest = Digest(ring::digest::Context::new(&ring::digest::SHA256));
    for resource in listeners(plan, &opts).chain(clusters(plan)) {
        // Writing to a digest cannot fail.
        let _ = serde_json::to_writer(&mut digest, &resource);
    }
    digest
        .0
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Envoy listener of an address's HTTP listeners (usually one).
fn listener(group: &[&Listener], plan: &Plan, opts: &RenderOptions) -> Value {
    let first = group[0];
    let (address, port) = if first.name == MESH_LISTENER {
        (opts.outbound_address.clone(), opts.outbound_port)
    } else {
        (gateway_address(first, opts), first.port)
    };
    // Envoy's ext_authz filter, where a route asks an authorization service: the filter's own
    // service is the first such route's (Envoy requires one); each route names its own
    // (`service_override`), and routes without ExternalAuth turn the filter off.
    let first_auth = group
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .flat_map(|vh| &vh.routes)
        .find_map(|e| e.external_auth.as_ref()?.cluster.as_deref());
    let mut hosts: Vec<Value> = Vec::new();
    for (l, owned) in owned(group, plan) {
        hosts.extend(
            owned
                .iter()
                .map(|vh| virtual_host(vh, plan, l.name == MESH_LISTENER, first_auth.is_some())),
        );
        // A listener's own hostname answers 404 when it has no route for it, rather than
        // falling to a less specific listener's wildcard vhost (as the agent does).
        if group.len() > 1
            && l.hostname != HostMatch::Any
            && !owned.iter().any(|vh| vh.host == l.hostname)
        {
            let name = l.hostname.display();
            hosts.push(json!({"name": name, "domains": [name], "routes": []}));
        }
    }
    let name = listener_name(group);
    // Envoy's stateful-session filter, configured per route, where a route keeps sessions.
    let sessions = group
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .flat_map(|vh| &vh.routes)
        .any(|e| e.session.is_some());
    let mut http_filters = Vec::new();
    if let Some(cluster) = first_auth {
        http_filters.push(json!({"name": EXT_AUTHZ, "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": EXT_AUTHZ_TIMEOUT},
            "transport_api_version": "V3",
        }}));
    }
    if sessions {
        http_filters.push(json!({"name": STATEFUL_SESSION, "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession"}}));
    }
    http_filters
        .push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}));
    json!({
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name.replace('/', "_"),
                // Gateway listeners route by host alone; the mesh entry by host and Service
                // port (`target::mesh_host`).
                "strip_any_host_port": first.name != MESH_LISTENER,
                // The agent routes by the normalised path (`target::normalize_path`).
                "normalize_path": true,
                "route_config": {"name": name, "virtual_hosts": hosts, "validate_clusters": false},
                "http_filters": http_filters
            }
        }]}]
    })
}

/// Where a Gateway listener binds: its Gateway's own address, else the shared one.
pub fn gateway_address(l: &Listener, opts: &RenderOptions) -> String {
    l.address
        .map_or_else(|| opts.gateway_address.clone(), |a| a.to_string())
}

/// The Plan listener's name, or the names of the listeners sharing the port, joined by `,`.
fn listener_name(group: &[&Listener]) -> String {
    group
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A TLS passthrough listener: the TLS inspector reads the SNI and a filter chain per hostname
/// proxies the still-encrypted bytes to the TLSRoute's backends; or (`tls` false) a TCP
/// listener, whose one chain proxies to the TCPRoute's backends. None without any route:
/// Envoy refuses a listener with no filter chain.
fn passthrough_listener(
    group: &[&Listener],
    plan: &Plan,
    opts: &RenderOptions,
    tls: bool,
) -> Option<Value> {
    let name = listener_name(group);
    let mut chains: Vec<Value> = Vec::new();
    for (_, owned) in owned(group, plan) {
        chains.extend(owned.into_iter().filter_map(|vh| {
            let Action::Forward(backends) = &vh.routes.first()?.action else {
                return None;
            };
            let live: Vec<&super::WeightedBackend> =
                backends.iter().filter(|b| b.weight > 0).collect();
            if live.is_empty() {
                return None;
            }
            let mut proxy = Map::new();
            proxy.insert("@type".into(), json!(TCP_PROXY));
            proxy.insert("stat_prefix".into(), json!(name.replace('/', "_")));
            let (key, value) = cluster_choice(&live);
            proxy.insert(key.into(), value);
            let mut chain = json!({"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]});
            if vh.host != HostMatch::Any {
                chain["filter_chain_match"] = json!({"server_names": [vh.host.display()]});
            }
            Some(chain)
        }));
    }
    if chains.is_empty() {
        return None;
    }
    let mut listener = json!({
        "name": name,
        "address": {"socket_address": {"address": gateway_address(group[0], opts), "port_value": group[0].port}},
        "filter_chains": chains,
    });
    if tls {
        listener["listener_filters"] = json!([{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}]);
    }
    Some(listener)
}

/// A UDP listener: Envoy's udp_proxy to the UDPRoute's backend. Envoy's UDP proxy routes to
/// one cluster, with no weights: a route splitting its datagrams over several backends is not
/// rendered (the agent serves it; the dump leaves the listener out rather than misstate it).
fn udp_listener(group: &[&Listener], opts: &RenderOptions) -> Option<Value> {
    let name = listener_name(group);
    let entry = group
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .find_map(|vh| vh.routes.first())?;
    let Action::Forward(backends) = &entry.action else {
        return None;
    };
    let live: Vec<&super::WeightedBackend> = backends.iter().filter(|b| b.weight > 0).collect();
    let [one] = live.as_slice() else {
        return None;
    };
    let cluster = one.cluster.clone().unwrap_or(INVALID_BACKEND.into());
    Some(json!({
        "name": name,
        "address": {"socket_address": {"protocol": "UDP", "address": gateway_address(group[0], opts), "port_value": group[0].port}},
        "listener_filters": [{"name": "envoy.filters.udp_listener.udp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
            "stat_prefix": name.replace('/', "_"),
            "matcher": {"on_no_match": {"action": {"name": "route", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route",
                "cluster": cluster,
            }}}},
        }}],
    }))
}

const EXT_AUTHZ_PER_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

/// A route's ExternalAuth as Envoy's per-route ext_authz settings: the service (gRPC, or HTTP
/// with the path prefix and header lists), and the body up to `forwardBody.maxSize`.
fn ext_authz_per_route(a: &super::ext_auth::ExternalAuth) -> Value {
    use super::ext_auth::AuthProtocol;
    let cluster = a.cluster.clone().unwrap_or_default();
    let patterns = |names: &[String]| -> Value {
        json!({"patterns": names.iter().map(|n| json!({"exact": n, "ignore_case": true})).collect::<Vec<_>>()})
    };
    let mut settings = match a.protocol {
        AuthProtocol::Grpc => {
            json!({"grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": EXT_AUTHZ_TIMEOUT}})
        }
        AuthProtocol::Http => {
            let mut http = json!({
                "server_uri": {"uri": format!("http://{cluster}"), "cluster": cluster, "timeout": EXT_AUTHZ_TIMEOUT},
                "path_prefix": a.path_prefix.trim_end_matches('/'),
            });
            if !a.allowed_headers.is_empty() {
                http["authorization_request"] =
                    json!({"allowed_headers": patterns(&a.allowed_headers)});
            }
            if !a.allowed_response_headers.is_empty() {
                http["authorization_response"] =
                    json!({"allowed_upstream_headers": patterns(&a.allowed_response_headers)});
            }
            json!({"http_service": http})
        }
    };
    if a.forward_body > 0 {
        settings["with_request_body"] =
            json!({"max_request_bytes": a.forward_body, "allow_partial_message": false});
    }
    json!({"@type": EXT_AUTHZ_PER_ROUTE, "check_settings": settings})
}

/// Envoy's session state for a rule's session persistence: a cookie (its name, the rule's
/// path, and the absolute timeout as its TTL when the cookie is permanent) or a header. Envoy
/// keeps the session's timeout in the cookie's own expiry; the agent also refuses tokens past
/// the absolute timeout of a session cookie.
fn session_state(s: &super::session::SessionPersistence) -> Value {
    use super::session::SessionKind;
    match s.kind {
        SessionKind::Cookie => {
            let mut cookie = json!({"name": s.name, "path": s.cookie_path});
            if let (true, Some(ttl)) = (s.permanent, s.absolute_timeout_s) {
                cookie["ttl"] = json!(format!("{ttl}s"));
            }
            json!({"name": "envoy.http.stateful_session.cookie", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState",
                "cookie": cookie,
            }})
        }
        SessionKind::Header => {
            json!({"name": "envoy.http.stateful_session.header", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.header.v3.HeaderBasedSessionState",
                "name": s.name,
            }})
        }
    }
}

/// The `cluster` or `weighted_clusters` field, as route actions and TCP proxies both spell it.
fn cluster_choice(live: &[&super::WeightedBackend]) -> (&'static str, Value) {
    let name = |b: &super::WeightedBackend| b.cluster.clone().unwrap_or(INVALID_BACKEND.into());
    if let [one] = live {
        return ("cluster", json!(name(one)));
    }
    let clusters: Vec<Value> = live
        .iter()
        .map(|b| json!({"name": name(b), "weight": b.weight}))
        .collect();
    ("weighted_clusters", json!({"clusters": clusters}))
}

fn virtual_host(vh: &VirtualHost, plan: &Plan, mesh: bool, auth_filter: bool) -> Value {
    let domains = match &vh.host {
        HostMatch::Any => vec!["*".to_string()],
        // A mesh name without a port is the Service's port 80, which a client may also write.
        HostMatch::Exact(name) if mesh && !name.contains(':') => {
            vec![name.clone(), format!("{name}:80")]
        }
        other => vec![other.display()],
    };
    json!({"name": vh.host.display(), "domains": domains, "routes": vh.routes.iter().map(|e| route(e, plan, auth_filter)).collect::<Vec<_>>()})
}

fn string_match(v: &ValueMatch) -> Value {
    match v {
        ValueMatch::Exact(s) => json!({"exact": s}),
        ValueMatch::Regex(r) => json!({"safe_regex": {"regex": r.0.as_str()}}),
    }
}

fn route_match(e: &RouteEntry) -> Value {
    let m = &e.matcher;
    let mut out = match &m.path {
        PathMatch::Exact(p) => json!({"path": p}),
        PathMatch::Prefix(p) if p == "/" => json!({"prefix": "/"}),
        PathMatch::Prefix(p) => json!({"path_separated_prefix": p}),
        PathMatch::Regex(r) => json!({"safe_regex": {"regex": r.0.as_str()}}),
    };
    let mut headers: Vec<Value> = m
        .headers
        .iter()
        .map(|h| json!({"name": h.name, "string_match": string_match(&h.value)}))
        .collect();
    if let Some(method) = &m.method {
        headers.push(json!({"name": ":method", "string_match": {"exact": method}}));
    }
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    if !m.query.is_empty() {
        out["query_parameters"] = json!(m
            .query
            .iter()
            .map(|q| json!({"name": q.name, "string_match": string_match(&q.value)}))
            .collect::<Vec<_>>());
    }
    out
}

/// Header modifiers of a filter list, as Envoy route fields.
fn header_modifiers(filters: &[Filter], out: &mut Map<String, Value>) {
    for f in filters {
        if let Some(m) = &f.request_header_modifier {
            let mut add: Vec<Value> = m.set.iter().flatten().map(|h| json!({"header": {"key": h.name, "value": h.value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})).collect();
            add.extend(m.add.iter().flatten().map(|h| json!({"header": {"key": h.name, "value": h.value}, "append_action": "APPEND_IF_EXISTS_OR_ADD"})));
            if !add.is_empty() {
                out.insert("request_headers_to_add".into(), json!(add));
            }
            if let Some(r) = m.remove.as_ref().filter(|r| !r.is_empty()) {
                out.insert("request_headers_to_remove".into(), json!(r));
            }
        }
        if let Some(m) = &f.response_header_modifier {
            let mut add: Vec<Value> = m.set.iter().flatten().map(|h| json!({"header": {"key": h.name, "value": h.value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})).collect();
            add.extend(m.add.iter().flatten().map(|h| json!({"header": {"key": h.name, "value": h.value}, "append_action": "APPEND_IF_EXISTS_OR_ADD"})));
            if !add.is_empty() {
                out.insert("response_headers_to_add".into(), json!(add));
            }
            if let Some(r) = m.remove.as_ref().filter(|r| !r.is_empty()) {
                out.insert("response_headers_to_remove".into(), json!(r));
            }
        }
    }
}

fn redirect(e: &RouteEntry) -> Value {
    let Some(r) = e.filters.iter().find_map(|f| f.request_redirect.as_ref()) else {
        return json!({});
    };
    let mut out = Map::new();
    if let Some(s) = &r.scheme {
        out.insert(
            "scheme_redirect".into(),
            json!(format!("{s:?}").to_ascii_lowercase()),
        );
    }
    if let Some(h) = &r.hostname {
        out.insert("host_redirect".into(), json!(h));
    }
    if let Some(p) = r.port {
        out.insert("port_redirect".into(), json!(p));
    }
    if let Some(p) = &r.path {
        if let Some(full) = &p.replace_full_path {
            out.insert("path_redirect".into(), json!(full));
        }
        if let Some(prefix) = &p.replace_prefix_match {
            out.insert("prefix_rewrite".into(), json!(prefix));
        }
    }
    let code = match r.status_code.unwrap_or(302) {
        301 => "MOVED_PERMANENTLY",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        _ => "FOUND",
    };
    out.insert("response_code".into(), json!(code));
    Value::Object(out)
}

/// A route entry as an Envoy route; `auth_filter`: the listener has the ext_authz filter, which
/// a route without ExternalAuth turns off.
fn route(e: &RouteEntry, plan: &Plan, auth_filter: bool) -> Value {
    let mut out = Map::new();
    out.insert("match".into(), route_match(e));
    out.insert(
        "metadata".into(),
        {
            let mut meta = json!({"source": format!("{} {}/{}", e.source.kind, e.source.namespace, e.source.name), "rule": e.source.rule, "match": e.source.matched});
            if let Some(n) = &e.source.rule_name {
                meta["rule_name"] = json!(n);
            }
            json!({"filter_metadata": {"kubectl-mesh": meta}})
        },
    );
    header_modifiers(&e.filters, &mut out);
    let mut per_filter = Map::new();
    if let Some(s) = &e.session {
        per_filter.insert(
            STATEFUL_SESSION.into(),
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSessionPerRoute",
                "stateful_session": {"session_state": session_state(s)},
            }),
        );
    }
    // ExternalAuth: the route's own service; none for a route without (where the listener
    // has the filter). A service that does not resolve, or ExternalAuth on a backendRef (not
    // rendered), denies every request, as the agent does for the former.
    let backend_auth =
        matches!(&e.action, Action::Forward(bs) if bs.iter().any(|b| b.external_auth.is_some()));
    if backend_auth
        || e.external_auth
            .as_ref()
            .is_some_and(|a| a.cluster.is_none())
    {
        out.insert("direct_response".into(), json!({"status": 403}));
        return Value::Object(out);
    }
    match &e.external_auth {
        Some(a) => {
            per_filter.insert(EXT_AUTHZ.into(), ext_authz_per_route(a));
        }
        None if auth_filter => {
            per_filter.insert(
                EXT_AUTHZ.into(),
                json!({"@type": EXT_AUTHZ_PER_ROUTE, "disabled": true}),
            );
        }
        None => {}
    }
    if !per_filter.is_empty() {
        out.insert("typed_per_filter_config".into(), Value::Object(per_filter));
    }
    match &e.action {
        Action::Redirect => {
            out.insert("redirect".into(), redirect(e));
        }
        Action::Forward(backends) => {
            let live: Vec<&super::WeightedBackend> =
                backends.iter().filter(|b| b.weight > 0).collect();
            if live.is_empty() {
                out.insert("direct_response".into(), json!({"status": 500}));
                return Value::Object(out);
            }
            let mut action = Map::new();
            let (key, value) = cluster_choice(&live);
            action.insert(key.into(), value);
            action.insert(
                "cluster_not_found_response_code".into(),
                json!("INTERNAL_SERVER_ERROR"),
            );
            if let Some(ms) = e.request_timeout_ms {
                action.insert("timeout".into(), json!(duration(ms)));
            }
            // Envoy's per-try timeout is the backendRequest timeout; it applies to the first
            // attempt too, and without a retry policy retrying nothing keeps the
            // single-attempt semantics.
            let mut policy = match &e.retry {
                Some(r) => json!({
                    "retry_on": "connect-failure,refused-stream,reset,retriable-status-codes",
                    "retriable_status_codes": r.codes,
                    "num_retries": r.retries,
                    // Envoy wants a base interval over 1 ms; a shorter backoff waits 2 ms.
                    "retry_back_off": {
                        "base_interval": duration(r.backoff_ms.max(2)),
                        "max_interval": duration(r.backoff_ms.max(2).saturating_mul(10)),
                    },
                }),
                None => json!({"retry_on": "", "num_retries": 0}),
            };
            if let Some(ms) = e.backend_timeout_ms.filter(|ms| *ms > 0) {
                policy["per_try_timeout"] = json!(duration(ms));
            }
            if e.retry.is_some() || policy.get("per_try_timeout").is_some() {
                action.insert("retry_policy".into(), policy);
            }
            for f in &e.filters {
                if let Some(rw) = &f.url_rewrite {
                    if let Some(h) = &rw.hostname {
                        action.insert("host_rewrite_literal".into(), json!(h));
                    }
                    if let Some(p) = &rw.path {
                        if let Some(prefix) = &p.replace_prefix_match {
                            action.insert("prefix_rewrite".into(), json!(prefix));
                        }
                        if let Some(full) = &p.replace_full_path {
                            action.insert(
                                "regex_rewrite".into(),
                                json!({"pattern": {"regex": "^.*$"}, "substitution": full}),
                            );
                        }
                    }
                }
            }
            // The mirrors the Plan resolved (a target that does not resolve copies nothing).
            for m in &e.mirrors {
                let Some(cluster) = m
                    .cluster
                    .as_deref()
                    .filter(|c| plan.clusters.contains_key(*c))
                else {
                    continue;
                };
                let mut policy = json!({"cluster": cluster});
                if m.numerator < m.denominator {
                    let (numerator, denominator) = if m.denominator == 100 {
                        (m.numerator, "HUNDRED")
                    } else {
                        (m.numerator * 1_000_000 / m.denominator.max(1), "MILLION")
                    };
                    policy["runtime_fraction"] = json!({"default_value": {"numerator": numerator, "denominator": denominator}});
                }
                action
                    .entry("request_mirror_policies")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("array")
                    .push(policy);
            }
            out.insert("route".into(), Value::Object(action));
        }
    }
    Value::Object(out)
}

const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Wraps each resource as a config-dump entry: `{<key>: {"@type": .., ..}, "last_updated": ..}`,
/// the shape Envoy's admin API gives static resources.
fn dump_entries(
    items: impl IntoIterator<Item = Value>,
    type_url: &str,
    key: &str,
    last_updated: &str,
) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut item| {
            item["@type"] = json!(type_url);
            json!({key: item, "last_updated": last_updated})
        })
        .collect()
}

/// `/config_dump` in Envoy's v3 admin shape: ListenersConfigDump, RoutesConfigDump (each
/// route's source object in its metadata), ClustersConfigDump and EndpointsConfigDump, so
/// tools written for Envoy (`kubectl mesh proxy-config`, istioctl, jq scripts) read the agent
/// too. Private keys never appear: certificates are referred to by their Secret only.
pub fn config_dump(plan: &Plan, opts: &RenderOptions, last_updated: &str) -> Value {
    let boot = bootstrap(plan, opts);
    let listeners: Vec<Value> = boot["static_resources"]["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let routes = dump_entries(
        listeners.iter().filter_map(|l| {
            l.pointer("/filter_chains/0/filters/0/typed_config/route_config")
                .cloned()
        }),
        ROUTE_TYPE,
        "route_config",
        last_updated,
    );
    let clusters: Vec<Value> = boot["static_resources"]["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let endpoints = dump_entries(
        clusters
            .iter()
            .filter_map(|c| c.get("load_assignment").cloned()),
        ENDPOINTS_TYPE,
        "endpoint_config",
        last_updated,
    );
    let static_listeners = dump_entries(listeners, LISTENER_TYPE, "listener", last_updated);
    let static_clusters = dump_entries(clusters, CLUSTER_TYPE, "cluster", last_updated);
    json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "static_listeners": static_listeners},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "static_route_configs": routes},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": static_clusters},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "static_endpoint_configs": endpoints},
    ]})
}

/// `/clusters?format=json` in Envoy's shape: every cluster's hosts with health and weight.
pub fn clusters_json(plan: &Plan) -> Value {
    let statuses: Vec<Value> = plan
        .clusters
        .values()
        .map(|c| {
            let hosts: Vec<Value> = c
                .endpoints
                .iter()
                .map(|e| json!({"address": {"socket_address": {"address": e.address, "port_value": e.port}}, "health_status": {"eds_health_status": "HEALTHY"}, "weight": 1}))
                .collect();
            json!({"name": c.name, "added_via_api": false, "host_statuses": hosts})
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

/// A protobuf JSON Duration (`"0.5s"`) from milliseconds.
fn duration(ms: u64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{FileSource, Input, LoadOptions, ObjectSource};

    fn plan() -> Plan {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let source = FileSource {
            inputs: ["gatewayclass", "bookinfo", "tls"]
                .iter()
                .map(|d| Input::Path(format!("{root}/{d}").into()))
                .collect(),
        };
        let (objects, _) = source.objects(&LoadOptions::default());
        crate::plan::compile(&crate::Snapshot::new(objects))
    }

    /// gRPC backends (GRPCRoute, or a Service port with `appProtocol: kubernetes.io/h2c`) are
    /// HTTP/2 upstream, in the agent and in the rendering; everything else HTTP/1.1.
    #[test]
    fn grpc_and_h2c_backends_are_http2_upstream() {
        let plan = crate::testing::clean_examples_plan();
        let grpc = &plan.clusters["default/currencyservice:7000"];
        assert_eq!(grpc.protocol, UpstreamProtocol::H2c);
        assert_eq!(
            plan.clusters["default/details:9080"].protocol,
            UpstreamProtocol::Http1
        );
        let rendered: Vec<Value> = clusters(&plan).collect();
        let options = |name: &str| {
            rendered.iter().find(|c| c["name"] == name).unwrap()["typed_extension_protocol_options"]
                .clone()
        };
        assert!(options("default/currencyservice:7000")
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
            .get("http2_protocol_options")
            .is_some());
        assert!(options("default/details:9080").is_null());
        for (app, name, grpc_route, want) in [
            (
                Some("kubernetes.io/h2c"),
                None,
                false,
                UpstreamProtocol::H2c,
            ),
            (Some("grpc"), None, false, UpstreamProtocol::H2c),
            (
                Some("http"),
                Some("grpc-web"),
                false,
                UpstreamProtocol::Http1,
            ),
            (None, Some("grpc-api"), false, UpstreamProtocol::H2c),
            (None, Some("http"), false, UpstreamProtocol::Http1),
            (None, None, true, UpstreamProtocol::H2c),
        ] {
            assert_eq!(
                UpstreamProtocol::of_port(app, name, grpc_route),
                want,
                "{app:?} {name:?}"
            );
        }
    }

    #[test]
    fn config_dump_has_envoys_admin_shape_and_no_keys() {
        let plan = plan();
        assert!(
            plan.listeners.iter().any(|l| !l.certificates.is_empty()),
            "the HTTPS listener has its certificate"
        );
        let dump = config_dump(&plan, &RenderOptions::default(), "2026-11-22T00:00:00Z");
        let types: Vec<&str> = dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["@type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
            ]
        );
        let route = &dump["configs"][1]["static_route_configs"][0]["route_config"];
        assert_eq!(route["@type"], ROUTE_TYPE);
        let sources: Vec<&str> = route["virtual_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| v["routes"].as_array().unwrap())
            .filter_map(|r| {
                r.pointer("/metadata/filter_metadata/kubectl-mesh/source")
                    .and_then(Value::as_str)
            })
            .collect();
        assert!(
            sources.contains(&"HTTPRoute default/http-app-1"),
            "{sources:?}"
        );
        let text = dump.to_string();
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("tls.key"),
            "no key material in the dump"
        );
        let clusters = clusters_json(&plan);
        assert_eq!(
            clusters["cluster_statuses"][0]["host_statuses"][0]["health_status"]
                ["eds_health_status"],
            "HEALTHY"
        );
    }
}
