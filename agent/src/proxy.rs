//! The L7 proxy: one request, routed by `Plan::decide`, then redirected, refused or forwarded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mesh_model::plan::rewrite;
use mesh_model::plan::{
    query_pairs, Action, Cluster, Endpoint, Plan, Request as RouteRequest, RouteEntry,
    UpstreamProtocol, WeightedBackend, MESH_LISTENER,
};
use mesh_model::route::Filter;

use crate::stats::{Keyed, Stats};

pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// The Plan in force, swapped whole on reload; requests keep the one they started with.
#[derive(Default)]
pub struct Current {
    pub plan: RwLock<Arc<Plan>>,
    /// Round-robin position per cluster.
    next: Keyed<AtomicUsize>,
}

impl Current {
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn swap(&self, plan: Plan) {
        if let Ok(mut p) = self.plan.write() {
            *p = Arc::new(plan);
        }
    }

    fn next_index(&self, cluster: &str, len: usize) -> usize {
        self.next.get(cluster).fetch_add(1, Ordering::Relaxed) % len
    }
}

/// Where a request came in: the socket (the mesh entry, or a Gateway port whose listeners are
/// told apart per request by hostname), its scheme, the client.
pub struct Inbound {
    /// The outbound entry for GAMMA routes rather than a Gateway port.
    pub mesh: bool,
    /// The name statistics use when no listener of the port takes the request.
    pub socket: String,
    pub port: u16,
    pub scheme: &'static str,
    pub peer: std::net::SocketAddr,
}

/// How the proxy treats upstreams, from the flags.
#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    /// Time to connect to an endpoint.
    pub connect_timeout: Duration,
    /// The deadline of routes that set no timeout.
    pub default_route_timeout: Option<Duration>,
}

pub struct Proxy {
    pub current: Arc<Current>,
    pub upstream: UpstreamLimits,
    /// Upstream connection pools (per endpoint, inside the client): HTTP/1.1 and h2c.
    http1: Client<HttpConnector, Body>,
    h2c: Client<HttpConnector, Body>,
    requests: AtomicUsize,
    pub stats: Stats,
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The request's host without port: the Host header, else the absolute-form URI's authority.
fn request_host(req: &Request<Incoming>) -> String {
    let header = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    match header.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => header,
    }
}

/// Marks a response the proxy made itself (not a backend's), so gRPC callers get it in gRPC form.
#[derive(Clone, Copy)]
struct LocalReply;

fn answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = status;
    r.extensions_mut().insert(LocalReply);
    r
}

/// A gRPC request: its answer must carry a `grpc-status`, not just an HTTP status.
fn is_grpc(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The gRPC status for an HTTP status, as gRPC's HTTP mapping (and Envoy) define it: a route
/// that does not exist is UNIMPLEMENTED, an unreachable or slow backend UNAVAILABLE.
fn grpc_status(http: StatusCode) -> u16 {
    match http.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// Rewrites a local reply to a gRPC request as a trailers-only gRPC response: HTTP 200 with
/// `grpc-status` and `grpc-message` and no body, the form gRPC clients read (and Envoy sends).
fn grpc_local_reply(http: StatusCode, message: &str) -> Response<Body> {
    let status = grpc_status(http);
    let mut r = Response::new(full(Bytes::new()));
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(status));
    let encoded = percent_encode(message.trim_end());
    if let Ok(v) = HeaderValue::try_from(encoded) {
        headers.insert("grpc-message", v);
    }
    r
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays as is.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why no endpoint could be chosen: 500 for the first two, 503 for the last (as the spec says).
pub enum Refusal<'p> {
    /// Every backend has weight 0.
    NoWeight,
    /// The chosen backend could not be resolved (its share of requests fails).
    Invalid,
    /// The cluster has no ready endpoint.
    NoEndpoints(&'p str),
}

/// Pick a backend by weight (weight 0 never), deterministically spread by a counter.
fn pick(backends: &[WeightedBackend], n: usize) -> Option<&WeightedBackend> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    // A multiplicative hash of the counter spreads consecutive requests across the weights.
    let mut point = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % total;
    for b in backends {
        if point < u64::from(b.weight) {
            return Some(b);
        }
        point -= u64::from(b.weight);
    }
    None
}

/// Apply a header modifier's set, add and remove to a header map, as the spec defines them:
/// `set` replaces, `add` appends to an existing value with a comma, `remove` deletes.
fn modify<'f>(
    headers: &mut hyper::HeaderMap,
    set: impl Iterator<Item = (&'f str, &'f str)>,
    add: impl Iterator<Item = (&'f str, &'f str)>,
    remove: &[String],
) {
    for (k, v) in set {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            headers.insert(k, v);
        }
    }
    for (k, v) in add {
        let Ok(k) = HeaderName::try_from(k) else {
            continue;
        };
        let value = match headers.get(&k).and_then(|old| old.to_str().ok()) {
            Some(old) => HeaderValue::try_from(format!("{old},{v}")),
            None => HeaderValue::try_from(v),
        };
        if let Ok(v) = value {
            headers.insert(k, v);
        }
    }
    for k in remove {
        headers.remove(k.as_str());
    }
}

/// The generated types repeat per modifier, so each caller lists its pairs.
macro_rules! pairs {
    ($list:expr) => {
        $list
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()))
    };
}

fn request_modifiers(filters: &[&Filter], headers: &mut hyper::HeaderMap) {
    for m in filters
        .iter()
        .filter_map(|f| f.request_header_modifier.as_ref())
    {
        let remove = m.remove.as_deref().unwrap_or(&[]);
        modify(headers, pairs!(m.set), pairs!(m.add), remove);
    }
}

fn response_modifiers(filters: &[&Filter], headers: &mut hyper::HeaderMap) {
    for m in filters
        .iter()
        .filter_map(|f| f.response_header_modifier.as_ref())
    {
        let remove = m.remove.as_deref().unwrap_or(&[]);
        modify(headers, pairs!(m.set), pairs!(m.add), remove);
    }
}

impl Proxy {
    /// The endpoints that get a copy of this request: one per RequestMirror filter whose
    /// backend resolves, sampled by its percent or fraction.
    fn mirror_targets<'p>(
        &self,
        plan: &'p Plan,
        entry: &RouteEntry,
        filters: &[&Filter],
    ) -> Vec<(&'p Endpoint, UpstreamProtocol)> {
        let n = self.requests.load(Ordering::Relaxed) as u64;
        filters
            .iter()
            .filter_map(|f| f.request_mirror.as_ref())
            .filter(|m| {
                let (num, den) = match (m.percent, &m.fraction) {
                    (Some(p), _) => (p.max(0) as u64, 100),
                    (None, Some(fr)) => (
                        fr.numerator.max(0) as u64,
                        fr.denominator.unwrap_or(100).max(1) as u64,
                    ),
                    _ => return true,
                };
                // Spread the sampled requests evenly: this one is mirrored if the running
                // share steps past an integer.
                (n + 1) * num / den > n * num / den
            })
            .filter_map(|m| {
                let b = &m.backend_ref;
                let cluster = format!(
                    "{}/{}:{}",
                    b.namespace.as_deref().unwrap_or(&entry.source.namespace),
                    b.name,
                    b.port.unwrap_or(0)
                );
                let c = plan
                    .clusters
                    .get(&cluster)
                    .filter(|c| !c.endpoints.is_empty())?;
                let ep = &c.endpoints[self.current.next_index(&cluster, c.endpoints.len())];
                Some((ep, c.protocol))
            })
            .collect()
    }

    /// The backend (by weight), its cluster and an endpoint (round robin) for a request or a
    /// connection: the load-balancing decision HTTP and TLS passthrough share.
    pub fn choose<'p>(
        &self,
        plan: &'p Plan,
        backends: &'p [WeightedBackend],
    ) -> Result<(&'p WeightedBackend, &'p Cluster, &'p Endpoint), Refusal<'p>> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let backend = pick(backends, n).ok_or(Refusal::NoWeight)?;
        let cluster = backend.cluster.as_deref().ok_or(Refusal::Invalid)?;
        let c = plan.clusters.get(cluster).ok_or(Refusal::Invalid)?;
        if c.endpoints.is_empty() {
            return Err(Refusal::NoEndpoints(cluster));
        }
        let ep = &c.endpoints[self.current.next_index(cluster, c.endpoints.len())];
        Ok((backend, c, ep))
    }

    /// The connection pool and HTTP version for a cluster's protocol.
    fn pool(&self, protocol: UpstreamProtocol) -> (&Client<HttpConnector, Body>, hyper::Version) {
        match protocol {
            UpstreamProtocol::Http1 => (&self.http1, hyper::Version::HTTP_11),
            UpstreamProtocol::H2c => (&self.h2c, hyper::Version::HTTP_2),
        }
    }

    pub fn new(current: Arc<Current>, upstream: UpstreamLimits) -> Proxy {
        let connect_timeout = upstream.connect_timeout;
        let pool = |h2: bool| {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(connect_timeout));
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .http2_only(h2)
                .build(connector)
        };
        Proxy {
            current,
            http1: pool(false),
            upstream,
            h2c: pool(true),
            requests: AtomicUsize::new(0),
            stats: Stats::default(),
        }
    }

    /// Serve one request arriving on a listener, counted in the listener's statistics.
    pub async fn handle(&self, inbound: &Inbound, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let grpc = is_grpc(req.headers());
        let host = request_host(&req);
        let plan = self.current.plan();
        let listener = if inbound.mesh {
            Some(MESH_LISTENER)
        } else {
            plan.listener_for(inbound.port, &host)
                .map(|l| l.name.as_str())
        };
        let mut resp = match listener {
            Some(listener) => self.route(&plan, listener, inbound, &host, req).await,
            None => answer(StatusCode::NOT_FOUND, "no listener for this hostname\n"),
        };
        if grpc && resp.extensions().get::<LocalReply>().is_some() {
            let http = resp.status();
            let message = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            resp = grpc_local_reply(http, &message);
        }
        let status = resp.status().as_u16();
        let name = listener.unwrap_or(&inbound.socket);
        self.stats.downstream(name, status, started.elapsed());
        resp
    }

    async fn route(
        &self,
        plan: &Arc<Plan>,
        listener: &str,
        inbound: &Inbound,
        host: &str,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let port = inbound.port;
        // The request's parts, borrowed for matching; copied only where the request is
        // rebuilt for the backend.
        let uri = req.uri().clone();
        let path = uri.path();
        let query_text = uri.query();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
            .collect();
        let query = query_text.map(query_pairs).unwrap_or_default();
        let route_req = RouteRequest {
            host,
            path,
            method: req.method().as_str(),
            headers: &headers,
            query: &query,
        };
        let Some(decision) = plan.decide(listener, &route_req) else {
            return answer(StatusCode::NOT_FOUND, "no route\n");
        };
        let Some(entry) = decision.route else {
            return answer(StatusCode::NOT_FOUND, "no route\n");
        };
        match &entry.action {
            Action::Redirect => {
                let (code, loc) =
                    rewrite::location(entry, inbound.scheme, host, port, path, query_text);
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
                let mut r = answer(code, "");
                if let Ok(v) = HeaderValue::try_from(loc) {
                    r.headers_mut().insert(LOCATION, v);
                }
                r
            }
            Action::Forward(backends) => {
                let started = Instant::now();
                let (backend, cluster, ep) = match self.choose(plan, backends) {
                    Ok(chosen) => chosen,
                    Err(Refusal::NoEndpoints(cluster)) => {
                        self.stats.upstream(cluster, 503, started.elapsed());
                        return answer(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n");
                    }
                    Err(Refusal::NoWeight) => {
                        return answer(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "no backend with a positive weight\n",
                        )
                    }
                    Err(Refusal::Invalid) => {
                        return answer(StatusCode::INTERNAL_SERVER_ERROR, "invalid backend\n")
                    }
                };
                let filters: Vec<&Filter> = entry.filters.iter().chain(&backend.filters).collect();
                let resp = self
                    .forward(
                        plan,
                        req,
                        entry,
                        &filters,
                        cluster.protocol,
                        ep,
                        inbound,
                        path,
                        query_text,
                    )
                    .await;
                let status = resp.status().as_u16();
                self.stats
                    .upstream(&cluster.name, status, started.elapsed());
                resp
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        plan: &Plan,
        req: Request<Incoming>,
        entry: &RouteEntry,
        filters: &[&Filter],
        protocol: UpstreamProtocol,
        ep: &Endpoint,
        inbound: &Inbound,
        path: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let (new_path, new_host) = rewrite::rewritten(entry, filters.iter().copied(), path);
        if let Some(v) = new_host.and_then(|h| HeaderValue::try_from(h).ok()) {
            parts.headers.insert(HOST, v);
        }
        request_modifiers(filters, &mut parts.headers);
        let xff = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(old) => format!("{old}, {}", inbound.peer.ip()),
            None => inbound.peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::try_from(xff) {
            parts.headers.insert("x-forwarded-for", v);
        }
        parts
            .headers
            .entry("x-forwarded-proto")
            .or_insert(HeaderValue::from_static(inbound.scheme));
        if !parts.headers.contains_key("x-request-id") {
            let id = format!(
                "{:016x}{:016x}",
                std::process::id() as u64 ^ 0x5eed,
                self.requests.load(Ordering::Relaxed) as u64
            );
            if let Ok(v) = HeaderValue::try_from(id) {
                parts.headers.insert("x-request-id", v);
            }
        }
        let uri = format!(
            "http://{}:{}{new_path}{}",
            ep.address,
            ep.port,
            query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        let Ok(uri) = uri.parse() else {
            return answer(StatusCode::BAD_REQUEST, "bad request path\n");
        };
        parts.uri = uri;
        let (client, version) = self.pool(protocol);
        parts.version = version;
        let mirrors = self.mirror_targets(plan, entry, filters);
        let upstream = if mirrors.is_empty() {
            Request::from_parts(parts, body.boxed())
        } else {
            // The body is read once and sent to the backend and to every mirror.
            let bytes = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return answer(StatusCode::BAD_REQUEST, "could not read the request body\n")
                }
            };
            for (mirror, protocol) in mirrors {
                let mut copy = Request::from_parts(parts.clone(), full(bytes.clone()));
                let target = format!(
                    "http://{}:{}{new_path}{}",
                    mirror.address,
                    mirror.port,
                    query.map(|q| format!("?{q}")).unwrap_or_default()
                );
                if let Ok(uri) = target.parse() {
                    *copy.uri_mut() = uri;
                    let (client, version) = self.pool(protocol);
                    let client = client.clone();
                    *copy.version_mut() = version;
                    // Fire and forget: the mirror's answer, latency or failure never reach
                    // the client.
                    tokio::spawn(async move {
                        if let Ok(resp) = client.request(copy).await {
                            let _ = resp.into_body().collect().await;
                        }
                    });
                }
            }
            Request::from_parts(parts, full(bytes))
        };
        let call = client.request(upstream);
        let default_ms = self
            .upstream
            .default_route_timeout
            .map(|d| d.as_millis() as u64);
        let result = match entry.deadline_or(default_ms) {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), call).await {
                Ok(r) => r,
                Err(_) => return answer(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout"),
            },
            None => call.await,
        };
        match result {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                response_modifiers(filters, &mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                tracing::debug!(error = %e, "upstream request failed");
                answer(StatusCode::SERVICE_UNAVAILABLE, "upstream connect error\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("no route"), "no route");
        assert_eq!(percent_encode("100% é"), "100%25 %C3%A9");
        assert_eq!(grpc_status(StatusCode::NOT_FOUND), 12);
        assert_eq!(grpc_status(StatusCode::GATEWAY_TIMEOUT), 14);
    }
}
