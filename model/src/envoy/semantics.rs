//! What Envoy refuses beyond its declared constraints: the checks its config constructors run
//! (`RouteEntryImplBase`, `VirtualHostImpl`, `ListenerImpl`, `FilterChainManagerImpl`,
//! `ClusterInfoImpl`, `HeaderParser`, the factory registry). Each check is one entry of
//! [`CHECKS`] with the message Envoy prints, so docs/rules.md can list exactly what is covered.
//!
//! Checks run on a resource's canonical JSON (proto field names, `@type` inline in `Any`).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::constraints::Violation;
use super::{api, cilium, EnvoyConfig, EnvoyKind};
use crate::path::join_path;

/// One of Envoy's semantic checks.
#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    /// The resource or part it applies to.
    pub on: &'static str,
    /// Envoy's own error message (with placeholders), as `envoy --mode validate` prints it.
    pub envoy_says: &'static str,
}

macro_rules! checks {
    ($($name:ident = ($id:literal, $on:literal, $says:literal);)*) => {
        $(const $name: &Check = &Check { id: $id, on: $on, envoy_says: $says };)*
        /// Every semantic check, in the order docs/rules.md lists them.
        pub const CHECKS: &[&Check] = &[$($name),*];
    };
}

checks! {
    NO_FILTER_CHAINS = ("no-filter-chains", "Listener", "error adding listener '{address}': no filter chains specified");
    ADDRESS_NOT_IP = ("address-not-ip", "Listener, STATIC/EDS endpoints, CIDR ranges (filter chain matches, RBAC)", "malformed IP address: {address}");
    PARTIAL_WILDCARD = ("server-names-partial-wildcard", "Listener filter_chain_match", "partial wildcards are not supported in \"server_names\"");
    DUPLICATE_ADDRESS = ("duplicate-listener-address", "Listener", "error adding listener: '{name}' has duplicate address '{address}' as existing listener");
    SAME_CHAIN_MATCH = ("duplicate-filter-chain-match", "Listener", "filter chain '{a}' has the same matching rules defined as '{b}'");
    TERMINAL_NOT_LAST = ("terminal-filter-not-last", "Listener filter chain", "terminal filter named {name} of type {type} must be the last filter in a network filter chain");
    LAST_NOT_TERMINAL = ("last-filter-not-terminal", "Listener filter chain", "non-terminal filter named {name} of type {type} is the last filter in a network filter chain");
    UNREGISTERED = ("extension-not-registered", "filters, listener filters, access logs, transport sockets, protocol options", "Didn't find a registered implementation for '{name}' with type URL: '{type}'");
    HTTP3_ON_TCP = ("http3-codec-on-tcp", "HttpConnectionManager", "HTTP/3 codec configured on non-QUIC listener");
    NON_HTTP3_ON_QUIC = ("non-http3-codec-on-quic", "HttpConnectionManager", "Non-HTTP/3 codec configured on QUIC listener");
    DUPLICATE_DOMAIN = ("duplicate-domain", "RouteConfiguration", "Only unique values for domains are permitted. Duplicate entry of domain {domain} in route {route}");
    TWO_WILDCARDS = ("single-wildcard-domain", "RouteConfiguration", "Only a single wildcard domain is permitted in route {route}");
    REWRITE_EXCLUSIVE = ("one-path-rewrite", "Route", "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy");
    CLUSTER_OR_HEADER = ("weighted-cluster-name-or-header", "Route weighted_clusters", "Only one of name or cluster_header can be specified");
    MIRROR_CLUSTER = ("mirror-cluster-or-header", "Route request_mirror_policies", "Only one of cluster '{cluster}' or cluster_header '{header}' in request mirror policy can be specified");
    UNMODIFIABLE_HEADER = ("pseudo-or-host-header-modified", "headers to add", ":-prefixed or host headers may not be modified");
    UNREMOVABLE_HEADER = ("pseudo-or-host-header-removed", "headers to remove", ":-prefixed or host headers may not be removed");
    BACKOFF_ORDER = ("retry-backoff-order", "retry_policy", "retry_policy.max_interval must greater than or equal to the base_interval");
    FILL_INTERVAL = ("local-ratelimit-fill-interval", "LocalRateLimit", "local rate limit token bucket fill timer must be >= 50ms");
    LOGICAL_DNS_ONE_HOST = ("logical-dns-single-endpoint", "Cluster", "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint");
    ORIGINAL_DST_LB = ("original-dst-lb-policy", "Cluster", "cluster: LB policy {policy} is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'");
    EJECTION_TIMES = ("outlier-max-ejection-time", "Cluster outlier_detection", "outlier detector's max_ejection_time cannot be smaller than base_ejection_time");
    RESPONSE_HEADERS_KB = ("hcm-max-response-headers-kb", "HttpConnectionManager", "Error: max_response_headers_kb cannot be set on http_connection_manager.");
    HEADER_FIELD_KB = ("hcm-h2-header-field-size", "HttpConnectionManager", "max_header_field_size_kb must not exceed max_request_headers_kb");
    INLINE_TLS = ("inline-tls-material", "TLS contexts", "Failed to load certificate chain from <inline> / Failed to load private key from <inline> / Failed to load trusted CA certificates from <inline>");
    CLUSTER_PROVIDED_LB = ("cluster-provided-lb-policy", "Cluster", "cluster: LB policy CLUSTER_PROVIDED is not valid for Cluster type {type}. 'CLUSTER_PROVIDED' is allowed only with cluster type 'ORIGINAL_DST'");
}

struct Found<'a> {
    out: &'a mut Vec<(&'static Check, Violation)>,
}

impl Found<'_> {
    fn add(&mut self, check: &'static Check, path: String, message: String) {
        let kind = super::constraints::ViolationKind::Declared;
        self.out.push((
            check,
            Violation {
                path,
                message,
                kind,
            },
        ));
    }
}

/// Every semantic problem of the object's parsed resources, with full field paths.
pub fn check(cfg: &EnvoyConfig) -> Vec<(&'static Check, Violation)> {
    let mut out = Vec::new();
    let mut f = Found { out: &mut out };
    let mut addresses: HashMap<String, String> = HashMap::new();
    for res in &cfg.resources {
        let (Some(kind), Some(v)) = (res.kind, res.canonical.as_ref()) else {
            continue;
        };
        let at = res.field.as_str();
        match kind {
            EnvoyKind::Listener => {
                listener(v, at, &mut f);
                if let Some(addr) = socket_key(v.get("address")) {
                    let name = res.name.clone().unwrap_or_default();
                    if let Some(first) = addresses.get(&addr) {
                        f.add(DUPLICATE_ADDRESS, join_path(at, "address"), format!("listener {name:?} has the same address {addr} as listener {first:?}"));
                    } else {
                        addresses.insert(addr, name);
                    }
                }
            }
            EnvoyKind::RouteConfiguration => route_configuration(v, at, &mut f),
            EnvoyKind::Cluster => cluster(v, at, &mut f),
            EnvoyKind::ClusterLoadAssignment => endpoints_are_ips(v, at, &mut f),
            EnvoyKind::Secret => {}
        }
    }
    out
}

/// `ip:port/protocol` of a listener's socket address, for duplicate detection.
fn socket_key(addr: Option<&Value>) -> Option<String> {
    let sa = addr?.get("socket_address")?;
    let ip = sa.get("address")?.as_str()?;
    let port = sa.get("port_value").and_then(Value::as_u64).unwrap_or(0);
    let proto = sa.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
    Some(format!("{ip}:{port}/{proto}"))
}

/// The items of the list under `key` (none when it is absent or not a list).
fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The items of the list at a JSON pointer.
fn items_at<'v>(v: &'v Value, pointer: &str) -> impl Iterator<Item = &'v Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

fn socket_address_is_ip(addr: Option<&Value>, path: &str, f: &mut Found) {
    let Some(sa) = addr.and_then(|a| a.get("socket_address")) else {
        return;
    };
    if sa.get("resolver_name").is_some() {
        return;
    }
    let ip = sa.get("address").and_then(Value::as_str).unwrap_or("");
    if !ip.is_empty() && !is_ip(ip) {
        f.add(
            ADDRESS_NOT_IP,
            format!("{path}.socket_address.address"),
            format!("malformed IP address: {ip} (Envoy resolves no names here; use an IP address)"),
        );
    }
}

fn type_of(tc: &Value) -> Option<&str> {
    let url = tc.get("@type")?.as_str()?;
    let name = api::type_name(url);
    if name == "xds.type.v3.TypedStruct" || name == "udpa.type.v1.TypedStruct" {
        return tc
            .get("type_url")
            .and_then(Value::as_str)
            .map(api::type_name);
    }
    Some(name)
}

/// A `name` + `typed_config` extension must name a config type registered in `category`.
fn registered(ext: &Value, category: &str, path: &str, f: &mut Found) {
    let name = ext.get("name").and_then(Value::as_str).unwrap_or("");
    let ty = ext.get("typed_config").and_then(type_of).unwrap_or("");
    if cilium::CILIUM_TYPES.contains(&ty) {
        return;
    }
    if ext.get("is_optional").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if api::registry().by_type(category, ty).next().is_none() {
        let also = api::registry().categories_of(ty);
        let why = match (ty.is_empty(), also.is_empty()) {
            (true, _) => "it has no typed_config; Envoy finds extensions by the typed_config's @type, not by name".to_string(),
            (false, true) => format!("Envoy {} registers no extension with this type", api::ENVOY_VERSION),
            (false, false) => format!("this type configures {}, not {category}", also.join(", ")),
        };
        f.add(
            UNREGISTERED,
            join_path(path, "typed_config"),
            format!(
                "Didn't find a registered implementation for '{name}' with type URL: '{ty}': {why}"
            ),
        );
    }
}

/// A transport socket (`downstream` on a listener, `upstream` on a cluster): a registered type,
/// and TLS material that loads.
fn transport_socket(ts: &Value, side: &str, at: &str, f: &mut Found) {
    registered(ts, &format!("envoy.transport_sockets.{side}"), at, f);
    tls_material(ts, at, f);
}

/// Inline certificates, keys and CAs of a TLS transport socket must load, as Envoy loads them
/// when it builds the context.
fn tls_material(ts: &Value, at: &str, f: &mut Found) {
    let Some(tc) = ts.get("typed_config") else {
        return;
    };
    let Some(common) = tc.get("common_tls_context") else {
        return;
    };
    let inline = |ds: Option<&Value>| -> Option<Vec<u8>> {
        let ds = ds?;
        if let Some(s) = ds.get("inline_string").and_then(Value::as_str) {
            return Some(s.as_bytes().to_vec());
        }
        let b = ds.get("inline_bytes").and_then(Value::as_str)?;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b).ok()
    };
    let base = format!("{at}.typed_config.common_tls_context");
    for (i, c) in items(common, "tls_certificates").enumerate() {
        let here = format!("{base}.tls_certificates[{i}]");
        let chain = inline(c.get("certificate_chain"));
        let key = inline(c.get("private_key"));
        if let Some(chain) = &chain {
            if let Err(e) = crate::cert::certificate(chain) {
                f.add(
                    INLINE_TLS,
                    format!("{here}.certificate_chain"),
                    format!(
                        "Failed to load certificate chain from <inline>: {}",
                        e.replace("tls.crt", "the chain")
                    ),
                );
                continue;
            }
        }
        if let (Some(chain), Some(key)) = (&chain, &key) {
            if let Err(e) = crate::cert::key_pair(chain, key) {
                f.add(
                    INLINE_TLS,
                    format!("{here}.private_key"),
                    format!(
                        "Failed to load private key from <inline>: {}",
                        e.replace("tls.key", "the key")
                            .replace("tls.crt", "the chain")
                    ),
                );
            }
        }
    }
    let ca = common
        .get("validation_context")
        .or_else(|| common.pointer("/combined_validation_context/default_validation_context"))
        .and_then(|v| v.get("trusted_ca"));
    if let Some(ca) = inline(ca) {
        let ok = rustls_pemfile::certs(&mut &ca[..])
            .collect::<Result<Vec<_>, _>>()
            .is_ok_and(|c| !c.is_empty());
        if !ok {
            f.add(
                INLINE_TLS,
                format!("{base}.validation_context.trusted_ca"),
                "Failed to load trusted CA certificates from <inline>: no PEM certificate in it"
                    .into(),
            );
        }
    }
}

/// Network filters that end a filter chain (Envoy's `isTerminalFilterByProto`).
const TERMINAL_NETWORK: &[&str] = &[
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
    "envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy",
    "envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy",
    "envoy.extensions.filters.network.direct_response.v3.Config",
    "envoy.extensions.filters.network.echo.v3.Echo",
    "envoy.extensions.filters.network.generic_proxy.v3.GenericProxy",
    "envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter",
];

fn listener(l: &Value, at: &str, f: &mut Found) {
    let quic = l.pointer("/udp_listener_config/quic_options").is_some();
    let udp = l
        .pointer("/address/socket_address/protocol")
        .and_then(Value::as_str)
        == Some("UDP");
    let chains: Vec<(String, &Value)> = items(l, "filter_chains")
        .enumerate()
        .map(|(i, c)| (format!("{at}.filter_chains[{i}]"), c))
        .chain(
            l.get("default_filter_chain")
                .map(|c| (format!("{at}.default_filter_chain"), c)),
        )
        .collect();
    if chains.is_empty() && l.get("api_listener").is_none() && (!udp || quic) {
        f.add(
            NO_FILTER_CHAINS,
            at.to_string(),
            "the listener has no filter_chains and no default_filter_chain".into(),
        );
    }
    socket_address_is_ip(l.get("address"), &format!("{at}.address"), f);
    for (i, a) in items(l, "additional_addresses").enumerate() {
        socket_address_is_ip(
            a.get("address"),
            &format!("{at}.additional_addresses[{i}].address"),
            f,
        );
    }
    // A UDP listener's filters are UDP listener filters (udp_proxy, dns_filter).
    let category = if udp && !quic {
        "envoy.filters.udp_listener"
    } else {
        "envoy.filters.listener"
    };
    for (i, lf) in items(l, "listener_filters").enumerate() {
        registered(lf, category, &format!("{at}.listener_filters[{i}]"), f);
    }
    access_logs(l, at, f);
    // Two chains with the same match: compared with list order ignored, as Envoy's matcher
    // tree would reach the same leaf.
    let mut matches: Vec<(String, Value)> = Vec::new();
    for (path, chain) in chains
        .iter()
        .filter(|(p, _)| !p.ends_with("default_filter_chain"))
    {
        let m = normalized(
            chain
                .get("filter_chain_match")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if let Some((first, _)) = matches.iter().find(|(_, x)| *x == m) {
            f.add(
                SAME_CHAIN_MATCH,
                format!("{path}.filter_chain_match"),
                format!("this filter chain has the same filter_chain_match as {first}"),
            );
        } else {
            matches.push((path.clone(), m));
        }
    }
    for (path, chain) in &chains {
        for (i, sni) in items_at(chain, "/filter_chain_match/server_names").enumerate() {
            let sni = sni.as_str().unwrap_or("");
            let rest = sni.strip_prefix("*.").unwrap_or(sni);
            if rest.contains('*') {
                f.add(PARTIAL_WILDCARD, format!("{path}.filter_chain_match.server_names[{i}]"), format!("partial wildcards are not supported in \"server_names\" ({sni:?}: only a leading \"*.\" is)"));
            }
        }
        if let Some(ts) = chain.get("transport_socket") {
            transport_socket(ts, "downstream", &format!("{path}.transport_socket"), f);
        }
        let filters: Vec<&Value> = items(chain, "filters").collect();
        for (i, filter) in filters.iter().enumerate() {
            let here = format!("{path}.filters[{i}]");
            registered(filter, "envoy.filters.network", &here, f);
            let ty = filter.get("typed_config").and_then(type_of).unwrap_or("");
            let name = filter.get("name").and_then(Value::as_str).unwrap_or("");
            let terminal = TERMINAL_NETWORK.contains(&ty);
            let last = i + 1 == filters.len();
            if terminal && !last {
                f.add(TERMINAL_NOT_LAST, here.clone(), format!("terminal filter named {name} of type {ty} must be the last filter in a network filter chain"));
            }
            if last
                && !terminal
                && !ty.is_empty()
                && !cilium::CILIUM_TYPES.contains(&ty)
                && api::registry()
                    .by_type("envoy.filters.network", ty)
                    .next()
                    .is_some()
            {
                f.add(LAST_NOT_TERMINAL, here.clone(), format!("non-terminal filter named {name} of type {ty} is the last filter in a network filter chain"));
            }
            let Some(tc) = filter.get("typed_config") else {
                continue;
            };
            let tc_path = format!("{here}.typed_config");
            match ty {
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
                    let codec = tc.get("codec_type").and_then(Value::as_str).unwrap_or("AUTO");
                    if codec == "HTTP3" && !quic {
                        f.add(HTTP3_ON_TCP, format!("{tc_path}.codec_type"), "HTTP/3 codec configured on non-QUIC listener: HTTP/3 needs a UDP listener with udp_listener_config.quic_options".into());
                    }
                    if codec != "HTTP3" && quic {
                        f.add(NON_HTTP3_ON_QUIC, format!("{tc_path}.codec_type"), "Non-HTTP/3 codec configured on QUIC listener: set codec_type HTTP3".into());
                    }
                    if tc.pointer("/common_http_protocol_options/max_response_headers_kb").is_some() {
                        f.add(RESPONSE_HEADERS_KB, format!("{tc_path}.common_http_protocol_options.max_response_headers_kb"), "Error: max_response_headers_kb cannot be set on http_connection_manager (it limits upstream responses: set it on the cluster's protocol options)".into());
                    }
                    // Envoy's default max_request_headers_kb is 60.
                    let request_kb = tc.get("max_request_headers_kb").and_then(Value::as_u64).unwrap_or(60);
                    if let Some(field_kb) = tc.pointer("/http2_protocol_options/max_header_field_size_kb").and_then(Value::as_u64) {
                        if field_kb > request_kb {
                            f.add(HEADER_FIELD_KB, format!("{tc_path}.http2_protocol_options.max_header_field_size_kb"), format!("max_header_field_size_kb ({field_kb}) must not exceed max_request_headers_kb ({request_kb})"));
                        }
                    }
                    for (j, hf) in items(tc, "http_filters").enumerate() {
                        let hp = format!("{tc_path}.http_filters[{j}]");
                        registered(hf, "envoy.filters.http", &hp, f);
                        if let Some(cfg) = hf.get("typed_config") {
                            http_filter(cfg, &format!("{hp}.typed_config"), f);
                        }
                    }
                    access_logs(tc, &tc_path, f);
                    if let Some(rc) = tc.get("route_config") {
                        route_configuration(rc, &format!("{tc_path}.route_config"), f);
                    }
                }
                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy" => access_logs(tc, &tc_path, f),
                _ => {}
            }
        }
    }
}

fn access_logs(v: &Value, at: &str, f: &mut Found) {
    for (i, a) in items(v, "access_log").enumerate() {
        registered(
            a,
            "envoy.access_loggers",
            &format!("{at}.access_log[{i}]"),
            f,
        );
    }
}

/// Filter-specific checks Envoy's filter factories run.
fn http_filter(cfg: &Value, at: &str, f: &mut Found) {
    if type_of(cfg) == Some("envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit") {
        if let Some(d) = cfg
            .pointer("/token_bucket/fill_interval")
            .and_then(Value::as_str)
        {
            if crate::envoy::duration_nanos(d).is_some_and(|n| n < 50_000_000) {
                f.add(
                    FILL_INTERVAL,
                    format!("{at}.token_bucket.fill_interval"),
                    format!("local rate limit token bucket fill timer must be >= 50ms (it is {d})"),
                );
            }
        }
    }
}

/// Sort every list and drop empty values, so that equal matches compare equal.
fn normalized(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .map(|(k, v)| (k, normalized(v)))
                .filter(|(_, v)| !matches!(v, Value::Null) && v != &Value::Array(vec![]))
                .collect();
            if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            }
        }
        Value::Array(a) => {
            let mut items: Vec<Value> = a.into_iter().map(normalized).collect();
            items.sort_by_key(|x| x.to_string());
            Value::Array(items)
        }
        other => other,
    }
}

fn route_configuration(rc: &Value, at: &str, f: &mut Found) {
    let route_name = rc.get("name").and_then(Value::as_str).unwrap_or("");
    let mut domains: HashSet<String> = HashSet::new();
    let mut wildcard = false;
    headers(rc, at, f);
    for (i, vh) in items(rc, "virtual_hosts").enumerate() {
        let vp = format!("{at}.virtual_hosts[{i}]");
        for (j, d) in items(vh, "domains").enumerate() {
            let Some(d) = d.as_str() else { continue };
            let dp = format!("{vp}.domains[{j}]");
            if d == "*" {
                if wildcard {
                    f.add(
                        TWO_WILDCARDS,
                        dp,
                        format!("Only a single wildcard domain is permitted in route {route_name}"),
                    );
                }
                wildcard = true;
            } else if !domains.insert(d.to_ascii_lowercase()) {
                f.add(DUPLICATE_DOMAIN, dp, format!("Only unique values for domains are permitted. Duplicate entry of domain {} in route {route_name}", d.to_ascii_lowercase()));
            }
        }
        headers(vh, &vp, f);
        if let Some(rp) = vh.get("retry_policy") {
            retry_policy(rp, &format!("{vp}.retry_policy"), f);
        }
        for (j, r) in items(vh, "routes").enumerate() {
            route(r, &format!("{vp}.routes[{j}]"), f);
        }
    }
}

fn headers(v: &Value, at: &str, f: &mut Found) {
    for key in ["request_headers_to_add", "response_headers_to_add"] {
        for (i, h) in items(v, key).enumerate() {
            let name = h
                .pointer("/header/key")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                f.add(
                    UNMODIFIABLE_HEADER,
                    format!("{at}.{key}[{i}].header.key"),
                    format!(":-prefixed or host headers may not be modified ({name})"),
                );
            }
        }
    }
    for key in ["request_headers_to_remove", "response_headers_to_remove"] {
        for (i, h) in items(v, key).enumerate() {
            let name = h.as_str().unwrap_or("");
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                f.add(
                    UNREMOVABLE_HEADER,
                    format!("{at}.{key}[{i}]"),
                    format!(":-prefixed or host headers may not be removed ({name})"),
                );
            }
        }
    }
}

fn retry_policy(rp: &Value, at: &str, f: &mut Found) {
    let d = |k: &str| {
        rp.pointer(&format!("/retry_back_off/{k}"))
            .and_then(Value::as_str)
            .and_then(crate::envoy::duration_nanos)
    };
    if let (Some(base), Some(max)) = (d("base_interval"), d("max_interval")) {
        if max < base {
            f.add(
                BACKOFF_ORDER,
                format!("{at}.retry_back_off.max_interval"),
                "retry_policy.max_interval must greater than or equal to the base_interval".into(),
            );
        }
    }
}

fn route(r: &Value, at: &str, f: &mut Found) {
    headers(r, at, f);
    let Some(action) = r.get("route") else { return };
    let ap = format!("{at}.route");
    let rewrites: Vec<&str> = ["prefix_rewrite", "regex_rewrite", "path_rewrite_policy"]
        .into_iter()
        .filter(|k| action.get(*k).is_some_and(|v| v.as_str() != Some("")))
        .collect();
    if rewrites.len() > 1 {
        f.add(REWRITE_EXCLUSIVE, format!("{ap}.{}", rewrites[1]), format!("Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy (this route sets {})", rewrites.join(" and ")));
    }
    if let Some(rp) = action.get("retry_policy") {
        retry_policy(rp, &format!("{ap}.retry_policy"), f);
    }
    for (i, c) in items_at(action, "/weighted_clusters/clusters").enumerate() {
        if c.get("name").is_some() && c.get("cluster_header").is_some() {
            f.add(
                CLUSTER_OR_HEADER,
                format!("{ap}.weighted_clusters.clusters[{i}]"),
                "Only one of name or cluster_header can be specified".into(),
            );
        }
        headers(c, &format!("{ap}.weighted_clusters.clusters[{i}]"), f);
    }
    for (i, m) in items(action, "request_mirror_policies").enumerate() {
        if let (Some(c), Some(h)) = (
            m.get("cluster").and_then(Value::as_str),
            m.get("cluster_header").and_then(Value::as_str),
        ) {
            f.add(MIRROR_CLUSTER, format!("{ap}.request_mirror_policies[{i}]"), format!("Only one of cluster '{c}' or cluster_header '{h}' in request mirror policy can be specified"));
        }
    }
}

fn cluster(c: &Value, at: &str, f: &mut Found) {
    let ty = c.get("type").and_then(Value::as_str).unwrap_or("STATIC");
    let custom = c.get("cluster_type").is_some();
    let lb = c
        .get("lb_policy")
        .and_then(Value::as_str)
        .unwrap_or("ROUND_ROBIN");
    if !custom && c.get("load_balancing_policy").is_none() {
        if ty == "ORIGINAL_DST" && lb != "CLUSTER_PROVIDED" {
            f.add(ORIGINAL_DST_LB, format!("{at}.lb_policy"), format!("cluster: LB policy {lb} is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"));
        }
        if ty != "ORIGINAL_DST" && lb == "CLUSTER_PROVIDED" {
            f.add(CLUSTER_PROVIDED_LB, format!("{at}.lb_policy"), format!("cluster: LB policy CLUSTER_PROVIDED is not valid for Cluster type {ty}. 'CLUSTER_PROVIDED' is allowed only with cluster type 'ORIGINAL_DST'"));
        }
    }
    if let Some(la) = c.get("load_assignment") {
        let lap = format!("{at}.load_assignment");
        match ty {
            "STATIC" | "EDS" if !custom => endpoints_are_ips(la, &lap, f),
            "LOGICAL_DNS" if !custom => {
                let localities = la
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let hosts = la
                    .pointer("/endpoints/0/lb_endpoints")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if localities != 1 || hosts != 1 {
                    f.add(LOGICAL_DNS_ONE_HOST, lap, format!("LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint (this one has {localities} localities, {hosts} endpoints in the first)"));
                }
            }
            _ => {}
        }
    }
    if let Some(od) = c.get("outlier_detection") {
        // Envoy's defaults: base 30s, max 300s.
        let d = |k: &str, default: i128| {
            od.get(k)
                .and_then(Value::as_str)
                .and_then(crate::envoy::duration_nanos)
                .unwrap_or(default)
        };
        let base = d("base_ejection_time", 30_000_000_000);
        let max = d("max_ejection_time", 300_000_000_000);
        if max < base {
            f.add(EJECTION_TIMES, format!("{at}.outlier_detection.max_ejection_time"), "outlier detector's max_ejection_time cannot be smaller than base_ejection_time (defaults: 30s and 300s)".into());
        }
    }
    if let Some(ts) = c.get("transport_socket") {
        transport_socket(ts, "upstream", &format!("{at}.transport_socket"), f);
    }
    for (i, m) in items(c, "transport_socket_matches").enumerate() {
        if let Some(ts) = m.get("transport_socket") {
            let here = format!("{at}.transport_socket_matches[{i}].transport_socket");
            transport_socket(ts, "upstream", &here, f);
        }
    }
    // Protocol options are looked up by their key: the name of an upstream-options extension
    // or of a network or HTTP filter that takes protocol options.
    for name in c
        .get("typed_extension_protocol_options")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let known = [
            "envoy.upstream_options",
            "envoy.filters.network",
            "envoy.filters.http",
        ]
        .iter()
        .any(|cat| api::registry().has_name(cat, name));
        if !known {
            f.add(UNREGISTERED, crate::path::join(&format!("{at}.typed_extension_protocol_options"), name), format!("Didn't find a registered network or http filter or protocol options implementation for name: '{name}'"));
        }
    }
}

/// Every endpoint of a STATIC or EDS assignment is an IP address (Envoy resolves no names).
fn endpoints_are_ips(la: &Value, at: &str, f: &mut Found) {
    for (i, loc) in items(la, "endpoints").enumerate() {
        for (j, e) in items(loc, "lb_endpoints").enumerate() {
            socket_address_is_ip(
                e.pointer("/endpoint/address"),
                &format!("{at}.endpoints[{i}].lb_endpoints[{j}].endpoint.address"),
                f,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::envoy::EnvoyConfigSpec;

    const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
    const TCP: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

    fn found(resources: Vec<Value>) -> Vec<&'static str> {
        let cfg = EnvoyConfig::parse(EnvoyConfigSpec {
            resources: Some(resources),
            ..Default::default()
        });
        for r in &cfg.resources {
            assert_eq!(r.problem, None, "{}", r.field);
        }
        let mut ids: Vec<&str> = check(&cfg).into_iter().map(|(c, _)| c.id).collect();
        ids.extend(
            cfg.resources
                .iter()
                .flat_map(|r| &r.violations)
                .filter(|v| v.kind == super::super::constraints::ViolationKind::Semantic)
                .map(|_| ADDRESS_NOT_IP.id),
        );
        ids
    }

    fn listener(chains: Value, extra: Value) -> Value {
        let mut l = json!({"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 80}}, "filter_chains": chains});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        l
    }

    fn http(hcm: Value, route: Value) -> Value {
        let mut h = json!({"@type": HCM, "stat_prefix": "s",
            "route_config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["a"], "routes": [route]}]},
            "http_filters": [{"name": "router", "typed_config": {"@type": ROUTER}}]});
        for (k, v) in hcm.as_object().unwrap() {
            h[k] = v.clone();
        }
        listener(
            json!([{"filters": [{"name": "hcm", "typed_config": h}]}]),
            json!({}),
        )
    }

    fn cluster(extra: Value) -> Value {
        let mut c = json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c", "connect_timeout": "1s"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn endpoints(host: &str, n: usize) -> Value {
        let e = json!({"endpoint": {"address": {"socket_address": {"address": host, "port_value": 80}}}});
        json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": vec![e; n]}]})
    }

    /// One config per check that Envoy refuses for that reason (each confirmed against
    /// `envoy --mode validate` by the differential test), and a clean one.
    #[test]
    fn every_check_fires_on_its_mistake_and_not_on_a_clean_config() {
        let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}});
        let tcp = json!([{"filters": [{"name": "tcp", "typed_config": {"@type": TCP, "stat_prefix": "t", "cluster": "c"}}]}]);
        assert_eq!(
            found(vec![
                http(json!({}), route.clone()),
                cluster(json!({"load_assignment": endpoints("127.0.0.1", 1)}))
            ]),
            Vec::<&str>::new()
        );
        let cases: Vec<(&Check, Vec<Value>)> = vec![
            (NO_FILTER_CHAINS, vec![listener(json!([]), json!({}))]),
            (
                ADDRESS_NOT_IP,
                vec![listener(
                    tcp.clone(),
                    json!({"address": {"socket_address": {"address": "example.com", "port_value": 80}}}),
                )],
            ),
            (
                PARTIAL_WILDCARD,
                vec![listener(
                    json!([{"filter_chain_match": {"server_names": ["a.*.com"]}, "filters": tcp[0]["filters"]}]),
                    json!({}),
                )],
            ),
            (
                DUPLICATE_ADDRESS,
                vec![
                    listener(tcp.clone(), json!({})),
                    listener(tcp.clone(), json!({"name": "l2"})),
                ],
            ),
            (
                SAME_CHAIN_MATCH,
                vec![listener(json!([tcp[0], tcp[0]]), json!({}))],
            ),
            (
                TERMINAL_NOT_LAST,
                vec![listener(
                    json!([{"filters": [tcp[0]["filters"][0], tcp[0]["filters"][0]]}]),
                    json!({}),
                )],
            ),
            (
                LAST_NOT_TERMINAL,
                vec![listener(
                    json!([{"filters": [{"name": "rl", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit", "stat_prefix": "r", "token_bucket": {"max_tokens": 1, "fill_interval": "1s"}}}]}]),
                    json!({}),
                )],
            ),
            (
                UNREGISTERED,
                vec![http(
                    json!({"http_filters": [{"name": "envoy.filters.http.router"}]}),
                    route.clone(),
                )],
            ),
            (
                HTTP3_ON_TCP,
                vec![http(json!({"codec_type": "HTTP3"}), route.clone())],
            ),
            (
                DUPLICATE_DOMAIN,
                vec![http(
                    json!({"route_config": {"virtual_hosts": [{"name": "a", "domains": ["x", "X"], "routes": [route]}]}}),
                    route.clone(),
                )],
            ),
            (
                TWO_WILDCARDS,
                vec![http(
                    json!({"route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [route]}, {"name": "b", "domains": ["*"], "routes": [route]}]}}),
                    route.clone(),
                )],
            ),
            (
                REWRITE_EXCLUSIVE,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "prefix_rewrite": "/", "regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "b"}}}),
                )],
            ),
            (
                CLUSTER_OR_HEADER,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [{"name": "c", "cluster_header": "x", "weight": 1}]}}}),
                )],
            ),
            (
                MIRROR_CLUSTER,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "request_mirror_policies": [{"cluster": "c", "cluster_header": "x"}]}}),
                )],
            ),
            (
                UNMODIFIABLE_HEADER,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "request_headers_to_add": [{"header": {"key": "Host", "value": "x"}}]}),
                )],
            ),
            (
                UNREMOVABLE_HEADER,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "request_headers_to_remove": [":path"]}),
                )],
            ),
            (
                BACKOFF_ORDER,
                vec![http(
                    json!({}),
                    json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_back_off": {"base_interval": "2s", "max_interval": "1s"}}}}),
                )],
            ),
            (
                FILL_INTERVAL,
                vec![http(
                    json!({"http_filters": [{"name": "rl", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", "stat_prefix": "r", "token_bucket": {"max_tokens": 1, "fill_interval": "0.01s"}}}, {"name": "router", "typed_config": {"@type": ROUTER}}]}),
                    route.clone(),
                )],
            ),
            (
                RESPONSE_HEADERS_KB,
                vec![http(
                    json!({"common_http_protocol_options": {"max_response_headers_kb": 10}}),
                    route.clone(),
                )],
            ),
            (
                HEADER_FIELD_KB,
                vec![http(
                    json!({"http2_protocol_options": {"max_header_field_size_kb": 61}}),
                    route.clone(),
                )],
            ),
            (
                LOGICAL_DNS_ONE_HOST,
                vec![cluster(
                    json!({"type": "LOGICAL_DNS", "load_assignment": endpoints("a.example.com", 2)}),
                )],
            ),
            (
                ORIGINAL_DST_LB,
                vec![cluster(json!({"type": "ORIGINAL_DST"}))],
            ),
            (
                CLUSTER_PROVIDED_LB,
                vec![cluster(json!({"lb_policy": "CLUSTER_PROVIDED"}))],
            ),
            (
                EJECTION_TIMES,
                vec![cluster(
                    json!({"outlier_detection": {"base_ejection_time": "400s"}}),
                )],
            ),
            (
                INLINE_TLS,
                vec![cluster(
                    json!({"transport_socket": {"name": "tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "common_tls_context": {"validation_context": {"trusted_ca": {"inline_string": "garbage"}}}}}}),
                )],
            ),
        ];
        let covered: Vec<&str> = cases.iter().map(|(c, _)| c.id).collect();
        for c in CHECKS {
            assert!(
                covered.contains(&c.id) || c.id == NON_HTTP3_ON_QUIC.id,
                "no case for check {}",
                c.id
            );
        }
        for (check, resources) in cases {
            let ids = found(resources);
            assert!(ids.contains(&check.id), "{}: got {ids:?}", check.id);
        }
    }
}
