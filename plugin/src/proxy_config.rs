//! `kubectl mesh proxy-config`: what a proxy is running, as tables (or its raw JSON).
//!
//! The tables follow istioctl's but say more: a route's MATCH shows every condition (path,
//! method, headers, query) instead of `/*`, its ACTION the clusters with weights, redirects,
//! rewrites, timeouts and retries, and SOURCE the object that produced it when the dump records
//! it (mesh-agent's `kubectl-mesh` metadata, Istio's `istio.config`, Envoy Gateway's resources).

use serde_json::Value;

use crate::dump::{self, Dump};
use crate::table::Table;

/// Which rows to keep.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub name: Option<String>,
    pub port: Option<u16>,
    pub domain: Option<String>,
    pub cluster: Option<String>,
}

fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn array<'v>(v: &'v Value, pointer: &str) -> impl Iterator<Item = &'v Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn names(v: &Value, pointer: &str) -> Vec<String> {
    array(v, pointer)
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// `cluster` or `weighted_clusters` of a route action or TCP proxy: `a` or `a 90%, b 10%`.
fn destination(action: &Value) -> (String, Vec<String>) {
    if let Some(c) = action.get("cluster").and_then(Value::as_str) {
        return (c.to_string(), vec![c.to_string()]);
    }
    let weighted: Vec<(String, f64)> = array(action, "/weighted_clusters/clusters")
        .map(|c| {
            (
                s(c, "/name"),
                c.get("weight").and_then(Value::as_f64).unwrap_or(1.0),
            )
        })
        .collect();
    if !weighted.is_empty() {
        let total: f64 = weighted.iter().map(|(_, w)| w).sum::<f64>().max(1.0);
        let text = weighted
            .iter()
            .map(|(n, w)| format!("{n} {}%", (w * 100.0 / total).round()))
            .collect::<Vec<_>>()
            .join(", ");
        return (text, weighted.into_iter().map(|(n, _)| n).collect());
    }
    if let Some(h) = action.get("cluster_header").and_then(Value::as_str) {
        return (format!("cluster from header {h}"), Vec::new());
    }
    (String::new(), Vec::new())
}

/// The port a listener binds.
fn port(l: &Value) -> Option<u16> {
    l.pointer("/address/socket_address/port_value")?
        .as_u64()
        .map(|p| p as u16)
}

pub fn listeners(d: &Dump, f: &Filters) -> Table {
    let mut t = Table::new(vec![
        "NAME",
        "ADDRESS",
        "PORT",
        "PROTOCOL/MATCH",
        "DESTINATION",
    ]);
    for l in &d.listeners {
        let name = s(l, "/name");
        if f.name.as_ref().is_some_and(|n| *n != name) || f.port.is_some_and(|p| Some(p) != port(l))
        {
            continue;
        }
        for chain in dump::chains(l) {
            let tls_terminated = chain.get("transport_socket").is_some();
            let mut matches = Vec::new();
            let sni = names(chain, "/filter_chain_match/server_names");
            if !sni.is_empty() {
                matches.push(format!("SNI={}", sni.join(",")));
            }
            let alpn = names(chain, "/filter_chain_match/application_protocols");
            if !alpn.is_empty() {
                matches.push(format!("ALPN={}", alpn.join(",")));
            }
            if let Some(p) = chain.pointer("/filter_chain_match/destination_port") {
                matches.push(format!("port={p}"));
            }
            let mut protocol = "TCP";
            let mut dest = String::new();
            for filter in array(chain, "/filters") {
                let ty = s(filter, "/typed_config/@type");
                let cfg = &filter["typed_config"];
                if ty.ends_with("HttpConnectionManager") {
                    protocol = if tls_terminated { "HTTPS" } else { "HTTP" };
                    let rc = s(cfg, "/rds/route_config_name");
                    let rc = if rc.is_empty() {
                        s(cfg, "/route_config/name")
                    } else {
                        rc
                    };
                    dest = format!("Route: {rc}");
                } else if ty.ends_with("TcpProxy") {
                    protocol = if !sni.is_empty() || tls_terminated {
                        "TLS"
                    } else {
                        "TCP"
                    };
                    dest = format!("Cluster: {}", destination(cfg).0);
                } else if dest.is_empty() {
                    dest = filter
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                }
            }
            let proto = if matches.is_empty() {
                protocol.to_string()
            } else {
                format!("{protocol} {}", matches.join(" "))
            };
            t.row(vec![
                name.clone(),
                s(l, "/address/socket_address/address"),
                port(l).map(|p| p.to_string()).unwrap_or_default(),
                proto,
                dest,
            ]);
        }
    }
    t
}

/// A string matcher as `=v`, `~regex`, `^=prefix`, `$=suffix`, `*=contains`.
fn string_match(m: &Value) -> String {
    for (key, op) in [
        ("exact", "="),
        ("safe_regex", "~"),
        ("prefix", "^="),
        ("suffix", "$="),
        ("contains", "*="),
    ] {
        if let Some(v) = m.get(key) {
            let v = if key == "safe_regex" {
                s(v, "/regex")
            } else {
                v.as_str().unwrap_or("").to_string()
            };
            return format!("{op}{v}");
        }
    }
    String::new()
}

/// Every condition of a route match, compactly: `prefix /a GET x-env=canary ?v=2`.
pub fn route_match(m: &Value) -> String {
    let mut parts = Vec::new();
    for (key, word) in [
        ("prefix", "prefix"),
        ("path", "exact"),
        ("path_separated_prefix", "segments"),
    ] {
        if let Some(v) = m.get(key).and_then(Value::as_str) {
            parts.push(format!("{word} {v}"));
        }
    }
    if let Some(r) = m.pointer("/safe_regex/regex").and_then(Value::as_str) {
        parts.push(format!("regex {r}"));
    }
    // The method first, as people read a request line.
    let method = |h: &&Value| s(h, "/name") == ":method" && h.get("invert_match").is_none();
    for h in array(m, "/headers").filter(method) {
        parts.push(
            h.get("string_match")
                .map(string_match)
                .unwrap_or_default()
                .trim_start_matches('=')
                .to_string(),
        );
    }
    for h in array(m, "/headers").filter(|h| !method(h)) {
        let name = s(h, "/name");
        let cond = h
            .get("string_match")
            .map(string_match)
            .or_else(|| {
                h.get("exact_match")
                    .map(|v| format!("={}", v.as_str().unwrap_or("")))
            })
            .or_else(|| {
                h.pointer("/safe_regex_match/regex")
                    .map(|v| format!("~{}", v.as_str().unwrap_or("")))
            })
            .unwrap_or_default();
        let not = if h.get("invert_match").and_then(Value::as_bool) == Some(true) {
            "!"
        } else {
            ""
        };
        if cond.is_empty() {
            parts.push(format!("{not}{name}"));
        } else {
            parts.push(format!("{not}{name}{cond}"));
        }
    }
    for q in array(m, "/query_parameters") {
        let cond = q.get("string_match").map(string_match).unwrap_or_default();
        parts.push(format!("?{}{cond}", s(q, "/name")));
    }
    if m.pointer("/grpc").is_some() {
        parts.push("grpc".into());
    }
    parts.join(" ")
}

fn redirect_code(code: &str) -> &str {
    match code {
        "FOUND" => "302",
        "SEE_OTHER" => "303",
        "TEMPORARY_REDIRECT" => "307",
        "PERMANENT_REDIRECT" => "308",
        _ => "301",
    }
}

/// What a route does: clusters with weights, or a redirect or direct response, with the
/// rewrites, timeout, retries and mirrors that apply. Also the clusters it names.
pub fn route_action(r: &Value) -> (String, Vec<String>) {
    if let Some(rd) = r.get("redirect") {
        let scheme = if rd.get("https_redirect").and_then(Value::as_bool) == Some(true) {
            "https".to_string()
        } else {
            s(rd, "/scheme_redirect")
        };
        let mut target = String::new();
        if !scheme.is_empty() {
            target.push_str(&format!("{scheme}://"));
        }
        target.push_str(&s(rd, "/host_redirect"));
        let port = s(rd, "/port_redirect");
        if !port.is_empty() {
            target.push_str(&format!(":{port}"));
        }
        for (key, word) in [
            ("path_redirect", ""),
            ("prefix_rewrite", "prefix "),
            ("regex_rewrite", "regex "),
        ] {
            if let Some(v) = rd.get(key) {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| s(v, "/pattern/regex"));
                target.push_str(&format!(" {word}{v}"));
            }
        }
        let code = redirect_code(
            rd.get("response_code")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        return (format!("redirect {code} {}", target.trim()), Vec::new());
    }
    if let Some(dr) = r.get("direct_response") {
        return (format!("direct {}", s(dr, "/status")), Vec::new());
    }
    let Some(a) = r.get("route") else {
        return (String::new(), Vec::new());
    };
    let (mut text, clusters) = destination(a);
    let mut extra = Vec::new();
    if let Some(p) = a.get("prefix_rewrite").and_then(Value::as_str) {
        extra.push(format!("rewrite prefix {p}"));
    }
    if let Some(p) = a
        .pointer("/regex_rewrite/substitution")
        .and_then(Value::as_str)
    {
        extra.push(
            format!("rewrite regex {}", s(a, "/regex_rewrite/pattern/regex")) + &format!(" -> {p}"),
        );
    }
    if let Some(h) = a.get("host_rewrite_literal").and_then(Value::as_str) {
        extra.push(format!("host {h}"));
    }
    if let Some(t) = a.get("timeout").and_then(Value::as_str) {
        extra.push(format!("timeout {t}"));
    }
    if let Some(n) = a.pointer("/retry_policy/num_retries") {
        let on = s(a, "/retry_policy/retry_on");
        extra.push(if on.is_empty() {
            format!("retries {n}")
        } else {
            format!("retries {n} ({on})")
        });
    }
    if let Some(t) = a
        .pointer("/retry_policy/per_try_timeout")
        .and_then(Value::as_str)
    {
        extra.push(format!("per-try {t}"));
    }
    for m in array(a, "/request_mirror_policies") {
        let pct = m
            .pointer("/runtime_fraction/default_value/numerator")
            .map(|n| format!(" {n}%"))
            .unwrap_or_default();
        extra.push(format!("mirror {}{pct}", s(m, "/cluster")));
    }
    if !extra.is_empty() {
        text = format!("{text}; {}", extra.join("; "));
    }
    (text, clusters)
}

/// The object a route came from, when the dump records it.
pub fn route_source(r: &Value) -> String {
    let m = &r["metadata"]["filter_metadata"];
    if let Some(src) = m.pointer("/kubectl-mesh/source").and_then(Value::as_str) {
        let rule = s(m, "/kubectl-mesh/rule");
        return if rule.is_empty() {
            src.to_string()
        } else {
            format!("{src} rule {rule}")
        };
    }
    if let Some(cfg) = m.pointer("/istio/config").and_then(Value::as_str) {
        // /apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME
        let parts: Vec<&str> = cfg.split('/').collect();
        if let [.., "namespaces", ns, kind, name] = parts.as_slice() {
            return format!("{kind} {ns}/{name}");
        }
        return cfg.to_string();
    }
    if let Some(res) = m.pointer("/envoy-gateway/resources/0") {
        return format!(
            "{} {}/{}",
            s(res, "/kind"),
            s(res, "/namespace"),
            s(res, "/name")
        );
    }
    String::new()
}

/// Whether a vhost domain pattern (`*`, `*.x`, `x.*`, `x`) covers a host.
fn domain_covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    pattern == "*"
        || pattern == host
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix) && host.len() > suffix.len())
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| host.starts_with(prefix) && host.len() > prefix.len())
}

pub fn routes(d: &Dump, f: &Filters) -> Table {
    let mut t = Table::new(vec![
        "ROUTE-CONFIG",
        "VHOST",
        "DOMAINS",
        "MATCH",
        "ACTION",
        "SOURCE",
    ]);
    // Route configurations served on the port, by name.
    let on_port: Option<Vec<String>> = f.port.map(|p| {
        d.listeners
            .iter()
            .filter(|l| port(l) == Some(p))
            .flat_map(dump::http_managers)
            .map(|h| {
                let rds = s(h, "/rds/route_config_name");
                if rds.is_empty() {
                    s(h, "/route_config/name")
                } else {
                    rds
                }
            })
            .collect()
    });
    for rc in &d.route_configs {
        let rc_name = s(rc, "/name");
        if f.name.as_ref().is_some_and(|n| *n != rc_name)
            || on_port
                .as_ref()
                .is_some_and(|names| !names.contains(&rc_name))
        {
            continue;
        }
        for vh in array(rc, "/virtual_hosts") {
            let domains = names(vh, "/domains");
            if f.domain
                .as_ref()
                .is_some_and(|host| !domains.iter().any(|d| domain_covers(d, host)))
            {
                continue;
            }
            for r in array(vh, "/routes") {
                let (action, clusters) = route_action(r);
                if f.cluster.as_ref().is_some_and(|c| !clusters.contains(c)) {
                    continue;
                }
                t.row(vec![
                    rc_name.clone(),
                    s(vh, "/name"),
                    domains.join(","),
                    route_match(&r["match"]),
                    action,
                    route_source(r),
                ]);
            }
        }
    }
    t
}

/// The lb_endpoints of a cluster, from the dump's endpoint section.
fn lb_endpoints<'d>(d: &'d Dump, cluster: &'d str) -> impl Iterator<Item = &'d Value> + 'd {
    d.endpoints
        .iter()
        .filter(move |e| e.get("cluster_name").and_then(Value::as_str) == Some(cluster))
        .flat_map(|e| array(e, "/endpoints"))
        .flat_map(|l| array(l, "/lb_endpoints"))
}

/// A live proxy's host statuses of a cluster (`/clusters?format=json`).
fn live_hosts<'d>(d: &'d Dump, cluster: &str) -> Option<Vec<&'d Value>> {
    let statuses = d.hosts.as_ref()?.get("cluster_statuses")?.as_array()?;
    let c = statuses
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(cluster))?;
    Some(array(c, "/host_statuses").collect())
}

fn duration(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub fn clusters(d: &Dump, f: &Filters) -> Table {
    let mut t = Table::new(vec![
        "NAME",
        "TYPE",
        "LB-POLICY",
        "ENDPOINTS",
        "CIRCUIT-BREAKERS",
        "OUTLIER-DETECTION",
    ]);
    for c in &d.clusters {
        let name = s(c, "/name");
        if f.name
            .as_ref()
            .or(f.cluster.as_ref())
            .is_some_and(|n| *n != name)
        {
            continue;
        }
        let ty = match s(c, "/type") {
            t if t.is_empty() => {
                let custom = s(c, "/cluster_type/name");
                if custom.is_empty() {
                    "EDS".into()
                } else {
                    custom
                }
            }
            t => t,
        };
        let lb = match s(c, "/lb_policy") {
            p if p.is_empty() => "ROUND_ROBIN".to_string(),
            p => p,
        };
        let endpoints = match live_hosts(d, &name) {
            Some(h) => h.len(),
            None => lb_endpoints(d, &name).count(),
        };
        let breakers = array(c, "/circuit_breakers/thresholds")
            .find(|t| {
                t.get("priority")
                    .and_then(Value::as_str)
                    .unwrap_or("DEFAULT")
                    == "DEFAULT"
            })
            .map(|t| {
                [
                    ("max_connections", "cx"),
                    ("max_pending_requests", "pending"),
                    ("max_requests", "rq"),
                    ("max_retries", "retries"),
                ]
                .iter()
                .filter_map(|(k, short)| t.get(*k).map(|v| format!("{short}={v}")))
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default();
        let outlier = c
            .get("outlier_detection")
            .map(|o| {
                let mut parts = Vec::new();
                if let Some(n) = o.get("consecutive_5xx") {
                    parts.push(format!("5xx={n}"));
                }
                if let Some(n) = o.get("consecutive_gateway_failure") {
                    parts.push(format!("gateway={n}"));
                }
                if let Some(v) = duration(o, "/interval") {
                    parts.push(format!("interval={v}"));
                }
                if let Some(v) = duration(o, "/base_ejection_time") {
                    parts.push(format!("eject={v}"));
                }
                if let Some(n) = o.get("max_ejection_percent") {
                    parts.push(format!("max={n}%"));
                }
                if parts.is_empty() {
                    "defaults".into()
                } else {
                    parts.join(" ")
                }
            })
            .unwrap_or_default();
        t.row(vec![name, ty, lb, endpoints.to_string(), breakers, outlier]);
    }
    t
}

fn socket(v: &Value) -> String {
    format!(
        "{}:{}",
        s(v, "/socket_address/address"),
        s(v, "/socket_address/port_value")
    )
}

pub fn endpoints(d: &Dump, f: &Filters) -> Table {
    let mut t = Table::new(vec![
        "ENDPOINT",
        "STATUS",
        "OUTLIER-CHECK",
        "WEIGHT",
        "CLUSTER",
    ]);
    t.status_column = Some(1);
    let mut clusters: Vec<String> = d.clusters.iter().map(|c| s(c, "/name")).collect();
    for e in &d.endpoints {
        let n = s(e, "/cluster_name");
        if !clusters.contains(&n) {
            clusters.push(n);
        }
    }
    for name in clusters {
        if f.cluster
            .as_ref()
            .or(f.name.as_ref())
            .is_some_and(|c| *c != name)
        {
            continue;
        }
        if let Some(hosts) = live_hosts(d, &name) {
            for h in hosts {
                let health = &h["health_status"];
                let failed = |k: &str| health.get(k).and_then(Value::as_bool) == Some(true);
                let status = if failed("failed_active_health_check")
                    || failed("failed_active_degraded_check")
                {
                    "UNHEALTHY".to_string()
                } else {
                    match s(health, "/eds_health_status") {
                        e if e.is_empty() => "HEALTHY".to_string(),
                        e => e,
                    }
                };
                let outlier = if failed("failed_outlier_check") {
                    "FAILED"
                } else {
                    "OK"
                };
                t.row(vec![
                    socket(&h["address"]),
                    status,
                    outlier.into(),
                    s(h, "/weight"),
                    name.clone(),
                ]);
            }
        } else {
            for e in lb_endpoints(d, &name) {
                let status = match s(e, "/health_status") {
                    h if h.is_empty() => "UNKNOWN".to_string(),
                    h => h,
                };
                let weight = match s(e, "/load_balancing_weight") {
                    w if w.is_empty() => "1".to_string(),
                    w => w,
                };
                // A saved dump has no outlier state: only a live proxy knows it.
                t.row(vec![
                    socket(&e["endpoint"]["address"]),
                    status,
                    String::new(),
                    weight,
                    name.clone(),
                ]);
            }
        }
    }
    t
}

/// A PEM held inline in an Envoy DataSource (`inline_string`, or base64 `inline_bytes`).
fn inline_pem(source: &Value) -> Option<Vec<u8>> {
    if let Some(text) = source.get("inline_string").and_then(Value::as_str) {
        return Some(text.as_bytes().to_vec());
    }
    let b64 = source.get("inline_bytes").and_then(Value::as_str)?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub fn secrets(d: &Dump, f: &Filters, now: i64) -> Table {
    let mut t = Table::new(vec![
        "NAME",
        "TYPE",
        "STATUS",
        "VALID-CERT",
        "SERIAL",
        "NOT-BEFORE",
        "NOT-AFTER",
    ]);
    t.status_column = Some(3);
    for sec in &d.secrets {
        if f.name.as_ref().is_some_and(|n| *n != sec.name) {
            continue;
        }
        let (ty, pem) = if let Some(tc) = sec.secret.get("tls_certificate") {
            (
                "Cert Chain",
                tc.get("certificate_chain").and_then(inline_pem),
            )
        } else if let Some(vc) = sec.secret.get("validation_context") {
            ("CA", vc.get("trusted_ca").and_then(inline_pem))
        } else if sec.secret.get("session_ticket_keys").is_some() {
            ("Session Ticket Keys", None)
        } else {
            ("Generic", None)
        };
        let cert = pem.and_then(|p| mesh_model::cert::certificate(&p).ok());
        let (valid, serial, before, after) = match cert {
            Some(c) => (
                (c.not_before <= now && now <= c.not_after).to_string(),
                c.serial,
                utc(c.not_before),
                utc(c.not_after),
            ),
            None => Default::default(),
        };
        t.row(vec![
            sec.name.clone(),
            ty.into(),
            sec.status.into(),
            valid,
            serial,
            before,
            after,
        ]);
    }
    t
}

/// Every section's rows, for `all`.
fn all_tables(d: &Dump, f: &Filters, now: i64) -> Vec<(&'static str, Table)> {
    vec![
        ("LISTENERS", listeners(d, f)),
        ("ROUTES", routes(d, f)),
        ("CLUSTERS", clusters(d, f)),
        ("ENDPOINTS", endpoints(d, f)),
        ("SECRETS", secrets(d, f, now)),
    ]
}

/// The raw resources a section shows, filtered like its table (`-o json|yaml`).
fn raw_section(d: &Dump, section: &str, f: &Filters) -> Value {
    let by_name = |list: &[Value], key: &str| -> Value {
        Value::Array(
            list.iter()
                .filter(|v| {
                    f.name
                        .as_ref()
                        .is_none_or(|n| v.get(key).and_then(Value::as_str) == Some(n))
                })
                .filter(|v| {
                    key != "cluster_name" && section != "clusters"
                        || f.cluster
                            .as_ref()
                            .is_none_or(|c| v.get(key).and_then(Value::as_str) == Some(c))
                })
                .cloned()
                .collect(),
        )
    };
    match section {
        "listeners" => Value::Array(
            d.listeners
                .iter()
                .filter(|l| f.name.as_ref().is_none_or(|n| s(l, "/name") == *n))
                .filter(|l| f.port.is_none_or(|p| port(l) == Some(p)))
                .cloned()
                .collect(),
        ),
        "routes" => by_name(&d.route_configs, "name"),
        "clusters" => by_name(&d.clusters, "name"),
        "endpoints" => by_name(&d.endpoints, "cluster_name"),
        "secrets" => Value::Array(
            d.secrets
                .iter()
                .filter(|x| f.name.as_ref().is_none_or(|n| x.name == *n))
                .map(
                    |x| serde_json::json!({"name": x.name, "status": x.status, "secret": x.secret}),
                )
                .collect(),
        ),
        _ => d.raw.clone(),
    }
}

/// What changed between two dumps, section by section: `+` added, `-` removed, `~` changed
/// (with the first fields that differ).
pub fn diff(before: &Dump, after: &Dump) -> String {
    fn keyed(list: &[Value], key: &str) -> std::collections::BTreeMap<String, Value> {
        list.iter()
            .map(|v| (s(v, &format!("/{key}")), v.clone()))
            .collect()
    }
    fn paths(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
        if out.len() >= 5 || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = Value::Null;
                    paths(
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        &format!("{at}.{k}"),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    paths(p, q, &format!("{at}[{i}]"), out);
                }
            }
            _ => out.push(at.trim_start_matches('.').to_string()),
        }
    }
    let mut out = String::new();
    for ((kind, key, a), (_, _, b)) in before.resources().into_iter().zip(after.resources()) {
        let (a, b) = (keyed(&a, key), keyed(&b, key));
        for (name, old) in &a {
            match b.get(name) {
                None => out.push_str(&format!("- {kind} {name}\n")),
                Some(new) if new != old => {
                    let mut changed = Vec::new();
                    paths(old, new, "", &mut changed);
                    out.push_str(&format!("~ {kind} {name}: {}\n", changed.join(", ")));
                }
                Some(_) => {}
            }
        }
        for name in b.keys().filter(|n| !a.contains_key(*n)) {
            out.push_str(&format!("+ {kind} {name}\n"));
        }
    }
    out
}

fn source_of(args: &crate::cli::ProxyConfigArgs) -> Result<dump::Source, String> {
    match (&args.target, &args.admin, &args.file) {
        (Some(t), _, _) if t.starts_with("pod/") || t.starts_with("node/") => Ok(dump::Source::Target(t.clone())),
        (Some(t), _, _) => Err(format!("{t:?}: a target is pod/NAME or node/NAME; for an admin API use --admin URL, for a saved dump --file PATH")),
        (None, Some(a), _) => Ok(dump::Source::Admin(dump::Source::admin_url(a))),
        (None, None, Some(f)) => Ok(dump::Source::File(f.clone())),
        (None, None, None) => Err("say which proxy: --admin URL (mesh-agent or any Envoy admin API), --file DUMP.json, or pod/NAME".into()),
    }
}

pub fn run(global: &crate::cli::Global, section: &crate::cli::ProxyConfigSection) -> u8 {
    use crate::cli::{ProxyConfigSection as S, TableFormat};
    use std::io::IsTerminal;
    let color = crate::analyze::use_color(global.color, std::io::stdout().is_terminal());
    let now = jiff::Timestamp::now().as_second();
    let (name, args) = match section {
        S::Diff { before, after } => {
            let load = |arg: &str| dump::load(&dump::Source::parse(arg), global);
            return match (load(before), load(after)) {
                (Ok(a), Ok(b)) => {
                    let text = diff(&a, &b);
                    if text.is_empty() {
                        eprintln!("no differences");
                    }
                    crate::print(&text)
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    crate::exit::BAD_INPUT
                }
            };
        }
        S::Listeners(a) => ("listeners", a),
        S::Routes(a) => ("routes", a),
        S::Clusters(a) => ("clusters", a),
        S::Endpoints(a) => ("endpoints", a),
        S::Secrets(a) => ("secrets", a),
        S::All(a) => ("all", a),
        S::Services(a) => return crate::services::run(global, a),
    };
    let source = match source_of(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::USAGE;
        }
    };
    let d = match dump::load(&source, global) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::BAD_INPUT;
        }
    };
    let f = Filters {
        name: args.name.clone(),
        port: args.port,
        domain: args.domain.clone(),
        cluster: args.cluster.clone(),
    };
    match args.output {
        TableFormat::Json => crate::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&raw_section(&d, name, &f)).unwrap_or_default()
        )),
        TableFormat::Yaml => {
            crate::print(&serde_yaml_ng::to_string(&raw_section(&d, name, &f)).unwrap_or_default())
        }
        format => {
            let tables = match name {
                "listeners" => vec![("", listeners(&d, &f))],
                "routes" => vec![("", routes(&d, &f))],
                "clusters" => vec![("", clusters(&d, &f))],
                "endpoints" => vec![("", endpoints(&d, &f))],
                "secrets" => vec![("", secrets(&d, &f, now))],
                _ => all_tables(&d, &f, now),
            };
            let text: Vec<String> = tables
                .iter()
                .map(|(title, t)| {
                    let body = if format == TableFormat::Short {
                        t.short()
                    } else {
                        t.render(color)
                    };
                    if title.is_empty() {
                        body
                    } else {
                        format!("{title}\n{body}")
                    }
                })
                .collect();
            crate::print(&text.join("\n"))
        }
    }
}
