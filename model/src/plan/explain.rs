//! Why a request goes where it goes: the listener, virtual host and route `Plan::decide`
//! picks (the datapath's own function, so the explanation cannot disagree with the proxy), the
//! filters in order, the request the backend sees, the backends with their weights and
//! endpoints or the redirect, and for every other route the first reason it did not match.

use serde::{Deserialize, Serialize};

use super::{rewrite, Action, Plan, Request, MESH_LISTENER};

/// The outcome of a mesh request for a destination that is no Service: it leaves as
/// addressed (or is refused, under the agent's `--outbound-policy registry-only`).
pub const PASSTHROUGH: &str = "passthrough";

/// The request to explain.
#[derive(Debug, Clone, Default)]
pub struct Question {
    pub method: String,
    pub scheme: String,
    /// Host without port (the Host header, or the TLS SNI).
    pub host: String,
    /// The port the request is sent to (the URL's): which listener takes it.
    pub port: u16,
    /// The port the request names (the Host header's, else the URL's): the Service port a
    /// mesh request is for.
    pub target_port: u16,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Question {
    /// The request `curl -X METHOD -H 'Name: value' URL` would send; with `sni`, the TLS
    /// server name a passthrough listener routes by (and the host matched).
    pub fn parse(
        url: &str,
        method: &str,
        headers: &[String],
        sni: Option<&str>,
    ) -> Result<Question, String> {
        let u = url::Url::parse(url).map_err(|e| {
            format!("{url:?} is not a URL ({e}): give it as http://HOST[:PORT]/PATH")
        })?;
        let mut parsed = Vec::new();
        for h in headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?}: write it as 'Name: value'"))?;
            parsed.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let port = u.port_or_known_default().unwrap_or(80);
        let header = parsed
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| {
                super::target::Authority::parse(v).map_err(|e| format!("header Host: {v:?}: {e}"))
            })
            .transpose()?;
        // A Host without a port names the scheme's default port.
        let scheme_port = if u.scheme() == "https" { 443 } else { 80 };
        let target_port = header.as_ref().map_or(port, |a| a.port_or(scheme_port));
        let host = match (sni, header) {
            (Some(s), _) => s.to_string(),
            (None, Some(a)) => a.host,
            (None, None) => u
                .host_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{url:?} has no host"))?,
        };
        Ok(Question {
            method: method.to_ascii_uppercase(),
            scheme: u.scheme().to_string(),
            host,
            port,
            target_port,
            path: u.path().to_string(),
            query: u.query().map(str::to_string),
            headers: parsed,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route {
    /// `HTTPRoute namespace/name`.
    pub source: String,
    pub rule: usize,
    /// The rule's name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    #[serde(rename = "match")]
    pub matched: usize,
    pub matcher: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Backend {
    /// `namespace/name:port`, or `None` for a reference that does not resolve (its share
    /// gets 500).
    pub cluster: Option<String>,
    pub weight: u32,
    /// Share of requests, in percent.
    pub share: f64,
    pub endpoints: Vec<String>,
    /// The backendRef's own filters, applied after the rule's.
    pub filters: Vec<String>,
    /// What its share of requests gets: `forward`, or the local answer (`500 invalid
    /// backend`, `503 no healthy upstream`).
    #[serde(default)]
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Miss {
    pub source: String,
    pub rule: usize,
    #[serde(rename = "match")]
    pub matched: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Explanation {
    pub request: String,
    pub listener: Option<String>,
    pub virtual_host: Option<String>,
    pub route: Option<Route>,
    /// The rule's filters, in order.
    pub filters: Vec<String>,
    /// What happens: `forward`, `redirect`, or the local answer (`404 ...`, `500 ...`).
    pub outcome: String,
    /// The path and Host the backend sees (after URLRewrite).
    pub forwarded_path: Option<String>,
    pub forwarded_host: Option<String>,
    pub backends: Vec<Backend>,
    pub redirect_status: Option<u16>,
    pub location: Option<String>,
    pub timeout_ms: Option<u64>,
    /// The rule's session persistence, described ("cookie mesh-session, ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The rule's ExternalAuth filter, described: the request is forwarded only if its
    /// service allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Routes that did not take the request, and why.
    pub not_matched: Vec<Miss>,
}

/// A filter as `Type: {fields}`.
fn describe(f: &crate::route::Filter) -> String {
    let mut v = serde_json::to_value(f).unwrap_or_default();
    let ty = v
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    if let Some(map) = v.as_object_mut() {
        map.remove("type");
    }
    let body = v
        .as_object()
        .and_then(|m| m.values().next())
        .map(|x| x.to_string())
        .unwrap_or_default();
    format!("{ty}: {body}")
}

fn source(s: &super::Source) -> String {
    format!("{} {}/{}", s.kind, s.namespace, s.name)
}

impl Plan {
    /// The listener a request reaches offline: a Gateway listener on its port whose hostname
    /// fits, else the mesh entry when a Service of that name and port is in the mesh.
    pub fn entry_for(&self, port: u16, host: &str) -> Option<&super::Listener> {
        self.listener_for(port, host).or_else(|| {
            let name = super::target::mesh_host(host, port);
            self.listeners
                .iter()
                .find(|l| l.name == MESH_LISTENER && l.index.host(&name).is_some())
        })
    }
}

/// Explain `q` on `listener` (as the proxy would pick it; `None`: no listener takes it).
pub fn explain(plan: &Plan, listener: Option<&str>, q: &Question) -> Explanation {
    let query = q
        .query
        .as_deref()
        .map(super::query_pairs)
        .unwrap_or_default();
    let headers: Vec<(&str, &str)> = q
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let is_mesh = listener == Some(MESH_LISTENER);
    // The mesh routes by Service name and port; Gateway listeners by host.
    let routing_host = if is_mesh {
        super::target::mesh_host(&q.host, q.target_port)
    } else {
        std::borrow::Cow::Borrowed(q.host.as_str())
    };
    let path = match super::target::normalize_path(&q.path, false) {
        Ok(p) => p,
        Err(e) => {
            return Explanation {
                outcome: format!("400 {e}"),
                ..empty(q, listener)
            }
        }
    };
    let req = Request {
        host: &routing_host,
        path: &path,
        method: &q.method,
        headers: &headers,
        query: &query,
    };
    let mut out = empty(q, listener);
    let Some(l) = listener.and_then(|name| plan.listeners.iter().find(|l| l.name == name)) else {
        out.outcome = format!("404 no listener on port {} takes host {:?}", q.port, q.host);
        return out;
    };
    explain_on(plan, l, q, &req, out)
}

/// An explanation of `q` with nothing decided yet.
fn empty(q: &Question, listener: Option<&str>) -> Explanation {
    Explanation {
        request: format!(
            "{} {}://{}:{}{}{}",
            q.method,
            q.scheme,
            q.host,
            q.port,
            q.path,
            q.query
                .as_deref()
                .map(|x| format!("?{x}"))
                .unwrap_or_default()
        ),
        listener: listener.map(str::to_string),
        virtual_host: None,
        route: None,
        filters: Vec::new(),
        outcome: String::new(),
        forwarded_path: None,
        forwarded_host: None,
        backends: Vec::new(),
        redirect_status: None,
        location: None,
        timeout_ms: None,
        session: None,
        authorization: None,
        not_matched: Vec::new(),
    }
}

fn explain_on(
    plan: &Plan,
    l: &super::Listener,
    q: &Question,
    req: &Request<'_>,
    mut out: Explanation,
) -> Explanation {
    let decision = plan.decide(&l.name, req);
    let chosen = decision.as_ref().and_then(|d| d.route);
    out.virtual_host = decision.as_ref().map(|d| d.virtual_host.host.display());
    // Every other route of the listener, with the first reason it did not take the request
    // (a Service's own catch-all entry in the mesh is not a route, and is left out).
    let mut other_hosts: Vec<(&super::Source, Vec<String>)> = Vec::new();
    for vh in &l.virtual_hosts {
        let here = decision
            .as_ref()
            .is_some_and(|d| std::ptr::eq(d.virtual_host, vh));
        for e in vh.routes.iter().filter(|e| e.source.kind != "Service") {
            if chosen.is_some_and(|c| std::ptr::eq(c, e)) || (here && l.protocol.is_relayed()) {
                continue;
            }
            if !here {
                match other_hosts.iter_mut().find(|(s, _)| *s == &e.source) {
                    Some((_, hosts)) => hosts.push(vh.host.display()),
                    None => other_hosts.push((&e.source, vec![vh.host.display()])),
                }
                continue;
            }
            let reason = match e.matcher.mismatch(req) {
                Some(r) => r,
                None => format!(
                    "matches too, but {} takes precedence",
                    chosen.map(|c| source(&c.source)).unwrap_or_default()
                ),
            };
            out.not_matched.push(Miss {
                source: source(&e.source),
                rule: e.source.rule,
                matched: e.source.matched,
                reason,
            });
        }
    }
    // A route seen in the chosen virtual host is not "elsewhere" (GAMMA repeats each route
    // under every name of its Service).
    let seen_here = |s: &super::Source| {
        decision
            .as_ref()
            .is_some_and(|d| d.virtual_host.routes.iter().any(|e| e.source == *s))
    };
    for (s, hosts) in other_hosts.into_iter().filter(|(s, _)| !seen_here(s)) {
        out.not_matched.push(Miss {
            source: source(s),
            rule: s.rule,
            matched: s.matched,
            reason: format!("hostname: {} does not cover {:?}", hosts.join(", "), q.host),
        });
    }
    // Routes meant for this Gateway (or the mesh) that are not attached, and why.
    let parent = if l.name == MESH_LISTENER {
        "Service ".to_string()
    } else {
        l.parent.clone()
    };
    for r in &plan.route_status {
        for p in r.parents.iter().filter(|p| p.parent.starts_with(&parent)) {
            if let Some(c) = p
                .conditions
                .iter()
                .find(|c| c.kind == "Accepted" && !c.status)
            {
                out.not_matched.push(Miss {
                    source: format!("{} {}/{}", r.kind, r.namespace, r.name),
                    rule: 0,
                    matched: 0,
                    reason: format!("not attached to {}: {} ({})", p.parent, c.reason, c.message),
                });
            }
        }
    }
    let Some(e) = chosen else {
        out.outcome = if l.name == MESH_LISTENER && decision.is_none() {
            format!(
                "{PASSTHROUGH}: no Service {:?} port {} in the mesh; forwarded as addressed",
                q.host, q.target_port
            )
        } else {
            "404 no route matches".into()
        };
        return out;
    };
    out.route = Some(Route {
        source: source(&e.source),
        rule: e.source.rule,
        rule_name: e.source.rule_name.clone(),
        matched: e.source.matched,
        matcher: e.matcher.to_string(),
    });
    out.filters = e.filters.iter().map(describe).collect();
    out.timeout_ms = e.deadline_ms();
    out.session = e.session.as_ref().map(|s| s.to_string());
    out.authorization = e.external_auth.as_ref().map(|a| a.to_string());
    // A CORS preflight is answered by the proxy, whatever the action.
    let header = |name: &str| req.header(name);
    let (origin, acrm, acrh) = (
        header("origin"),
        header("access-control-request-method"),
        header("access-control-request-headers"),
    );
    let rule_filters: Vec<&crate::route::Filter> = e.filters.iter().collect();
    if let super::cors::Cors::Preflight(headers) = super::cors::decide(
        &rule_filters,
        &super::cors::CorsRequest {
            method: req.method,
            origin: origin.as_deref(),
            request_method: acrm.as_deref(),
            request_headers: acrh.as_deref(),
        },
    ) {
        out.outcome = if headers.is_empty() {
            "200 CORS preflight answered by the proxy, origin not allowed (no Access-Control-* headers)".into()
        } else {
            format!(
                "200 CORS preflight answered by the proxy: {}",
                headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        return out;
    }
    match &e.action {
        Action::Redirect => {
            // In the mesh the port is the Service's the client named, not the entry's.
            let port = if l.name == MESH_LISTENER {
                q.target_port
            } else {
                q.port
            };
            let (status, location) =
                rewrite::location(e, &q.scheme, &q.host, port, req.path, q.query.as_deref());
            out.outcome = "redirect".into();
            out.redirect_status = Some(status);
            out.location = Some(location);
        }
        Action::Forward(backends) => {
            // A relayed connection is forwarded as is: no path, no Host.
            if !l.protocol.is_relayed() {
                let (path, host) = rewrite::rewritten(e, &e.filters, req.path);
                out.forwarded_path = Some(path);
                out.forwarded_host = host;
            }
            let total: u32 = backends.iter().map(|b| b.weight).sum();
            let outcome = |b: &super::WeightedBackend| match plan.backend_cluster(b) {
                Ok(_) => "forward".to_string(),
                Err(r) => format!("{} {}", r.status(), r.message()),
            };
            out.backends = backends
                .iter()
                .map(|b| Backend {
                    cluster: b.cluster.clone(),
                    weight: b.weight,
                    share: if total == 0 {
                        0.0
                    } else {
                        f64::from(b.weight) * 100.0 / f64::from(total)
                    },
                    endpoints: b
                        .cluster
                        .as_ref()
                        .and_then(|c| plan.clusters.get(c))
                        .map(|c| {
                            c.endpoints
                                .iter()
                                .map(|ep| format!("{}:{}", ep.address, ep.port))
                                .collect()
                        })
                        .unwrap_or_default(),
                    filters: b.filters.iter().map(describe).collect(),
                    outcome: outcome(b),
                })
                .collect();
            // The outcome of every share, as the proxy's `Plan::pick` spreads requests.
            let mut shares: Vec<(String, f64)> = Vec::new();
            for b in out.backends.iter().filter(|b| b.weight > 0) {
                match shares.iter_mut().find(|(o, _)| *o == b.outcome) {
                    Some((_, s)) => *s += b.share,
                    None => shares.push((b.outcome.clone(), b.share)),
                }
            }
            out.outcome = match shares.as_slice() {
                [] => {
                    let r = super::Refusal::NoWeight;
                    format!("{} {}", r.status(), r.message())
                }
                [(one, _)] => one.clone(),
                many => many
                    .iter()
                    .map(|(o, s)| format!("{o} for {s:.0}%"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
        }
    }
    out
}
