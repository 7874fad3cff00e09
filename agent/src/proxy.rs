//! The L7 proxy: one request, read as RFC 9110/9112 say (one valid Host, absolute-form by its
//! authority, the path normalised), routed by `Plan::decide`, then redirected, refused or
//! forwarded. Every decision comes from the Plan (listener, route, backend and its refusal,
//! mirrors, redirect target); this module only carries it out.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};
use mesh_model::plan::ext_auth::ExternalAuth;
use mesh_model::plan::services::Transport;
use mesh_model::plan::session::{SessionKind, SessionPersistence};
use mesh_model::plan::target::{self, Authority};
use mesh_model::plan::{
    cors, query_pairs, rewrite, Action, Certificate, Cluster, Endpoint, Mirror, Plan, Refusal,
    Request as RouteRequest, RouteEntry, UpstreamProtocol, WeightedBackend, MESH_LISTENER,
};
use mesh_model::route::Filter;

pub use crate::body::Body;
use crate::body::{buffer, full, Buffered, ClientBody, Deadline};
use crate::filters::{request_modifiers, response_modifiers};
use crate::headers::{forwarded, strip_hop_by_hop, wants_upgrade};
use crate::local_reply::{answer, is_grpc, to_grpc, LocalReply};
use crate::stats::{Keyed, Stats};
use crate::upstream::{UpstreamError, Upstreams};

/// The Plan in force, swapped whole on reload; requests keep the one they started with.
#[derive(Default)]
pub struct Current {
    pub plan: RwLock<Arc<Plan>>,
    /// Round-robin position per cluster.
    next: Keyed<AtomicUsize>,
    /// Requests seen per mirror (by the Plan's mirror id), for sampling.
    mirrored: RwLock<Arc<Vec<AtomicU64>>>,
}

impl Current {
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn swap(&self, plan: Arc<Plan>) {
        let counters: Vec<AtomicU64> = (0..plan.mirror_count).map(|_| AtomicU64::new(0)).collect();
        if let Ok(mut m) = self.mirrored.write() {
            *m = Arc::new(counters);
        }
        if let Ok(mut p) = self.plan.write() {
            *p = plan;
        }
    }

    /// The cluster's next endpoint, round robin (the cluster has at least one: see
    /// `Plan::backend_cluster` and `Plan::mirror_cluster`).
    pub fn endpoint<'p>(&self, c: &'p Cluster) -> &'p Endpoint {
        let n = self.next.get(&c.name).fetch_add(1, Ordering::Relaxed);
        &c.endpoints[n % c.endpoints.len()]
    }

    /// Whether this request is copied to `m`: each mirror samples its own requests.
    fn sample(&self, m: &Mirror) -> bool {
        let counters = self.mirrored.read().map(|c| c.clone()).unwrap_or_default();
        let n = counters
            .get(m.id)
            .map_or(0, |c| c.fetch_add(1, Ordering::Relaxed));
        m.samples(n)
    }
}

/// Where a request came in: the socket (the mesh entry, or a Gateway port whose listeners are
/// told apart per request by hostname), its scheme, the client.
pub struct Inbound {
    /// The outbound entry for GAMMA routes rather than a Gateway port.
    pub mesh: bool,
    /// The name statistics use when no listener of the port takes the request.
    pub socket: String,
    /// The Gateway address the socket is bound to when Gateways have their own (only that
    /// Gateway's listeners take its requests); None when they share one.
    pub address: Option<std::net::IpAddr>,
    pub port: u16,
    pub scheme: &'static str,
    pub peer: std::net::SocketAddr,
    /// The mesh entry: the Service address the client dialled before the eBPF programs
    /// redirected its connection here (recorded by sock_ops under the client's address).
    pub original_dst: Option<std::net::SocketAddr>,
    /// The server name a TLS client sent (set once its handshake is done): the listener it
    /// chose, which every request on the connection must be for (else 421).
    pub sni: std::sync::OnceLock<String>,
    /// The connection's place in the connection budget: held while anything uses the
    /// connection, an upgraded tunnel included.
    pub _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What the mesh entry does with a destination that is no Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutboundPolicy {
    /// Forward it to the address it names, unchanged (Istio's ALLOW_ANY).
    AllowAny,
    /// Refuse it with 502 (Istio's REGISTRY_ONLY).
    RegistryOnly,
}

/// How the proxy treats requests and upstreams, from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time to connect to an endpoint.
    pub connect_timeout: Duration,
    /// The deadline of routes that set no timeout.
    pub default_route_timeout: Option<Duration>,
    /// Trusted proxies in front of the Gateway listeners (Envoy's `xff_num_trusted_hops`):
    /// with any, their X-Forwarded-Proto and X-Request-Id are kept.
    pub xff_num_trusted_hops: u32,
    /// An upgraded connection (WebSocket) silent both ways this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Merge runs of `/` in paths (Envoy's `merge_slashes`).
    pub merge_slashes: bool,
    /// Largest request body held to copy to mirrors; a larger one is forwarded unmirrored.
    pub mirror_body_limit: usize,
    /// Largest request body held to send again on a retry; a larger one is tried once.
    pub retry_body_limit: usize,
    /// How long an ExternalAuth filter waits for its service before denying.
    pub external_auth_timeout: Duration,
    pub outbound_policy: OutboundPolicy,
}

pub struct Proxy {
    pub current: Arc<Current>,
    pub settings: Settings,
    pub upstreams: Arc<Upstreams>,
    requests: AtomicU64,
    pub stats: Stats,
}

/// The statistics name of traffic to destinations that are no Service (Istio's).
const PASSTHROUGH: &str = "PassthroughCluster";

/// A request, read and checked, with what routing needs.
struct Checked {
    req: Request<Incoming>,
    authority: Authority,
    /// The normalised path, what routes match and the backend receives.
    path: String,
}

impl Proxy {
    pub fn new(current: Arc<Current>, settings: Settings) -> Proxy {
        Proxy {
            current,
            upstreams: Arc::new(Upstreams::new(settings.connect_timeout)),
            settings,
            requests: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }

    /// The backend (by weight), its cluster and an endpoint (round robin) for a request or a
    /// connection: the load-balancing decision HTTP and TLS passthrough share.
    pub fn choose<'p>(
        &self,
        plan: &'p Plan,
        backends: &'p [WeightedBackend],
    ) -> Result<(&'p WeightedBackend, &'p Cluster, &'p Endpoint), (Refusal, Option<&'p str>)> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let backend = Plan::pick(backends, n).map_err(|r| (r, None))?;
        let c = plan
            .backend_cluster(backend)
            .map_err(|r| (r, backend.cluster.as_deref()))?;
        Ok((backend, c, self.current.endpoint(c)))
    }

    /// Serve one request arriving on a listener, counted in the listener's statistics.
    pub async fn handle(&self, inbound: &Arc<Inbound>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let grpc = is_grpc(req.headers());
        let plan = self.current.plan();
        let (mut resp, listener) = match self.read(req) {
            Err(e) => (
                answer(StatusCode::BAD_REQUEST, &format!("bad request: {e}\n")),
                None,
            ),
            Ok(incoming) => {
                let listener = if inbound.mesh {
                    Some(MESH_LISTENER)
                } else {
                    plan.listener_at(inbound.address, inbound.port, &incoming.authority.host)
                        .map(|l| l.name.as_str())
                };
                // A connection belongs to the listener its SNI chose: a request on it for a
                // host another listener (or none) serves is misdirected (RFC 9110 §15.5.20),
                // as when a client reuses one HTTP/2 connection for two names.
                let misdirected = inbound.sni.get().is_some_and(|sni| {
                    plan.listener_at(inbound.address, inbound.port, sni)
                        .map(|l| l.name.as_str())
                        != listener
                });
                let resp = match listener {
                    _ if misdirected => answer(
                        StatusCode::MISDIRECTED_REQUEST,
                        "misdirected request: this connection's TLS server name is for another listener\n",
                    ),
                    Some(listener) => self.route(&plan, listener, inbound, incoming).await,
                    None => answer(StatusCode::NOT_FOUND, "no listener for this hostname\n"),
                };
                (resp, listener)
            }
        };
        if grpc && resp.extensions().get::<LocalReply>().is_some() {
            resp = to_grpc(resp).await;
        }
        let status = resp.status().as_u16();
        self.stats.downstream(
            listener.unwrap_or(&inbound.socket),
            status,
            started.elapsed(),
        );
        resp
    }

    /// Check the request's target: exactly one valid authority (absolute-form first), and a
    /// path that normalises.
    fn read(&self, req: Request<Incoming>) -> Result<Checked, target::BadTarget> {
        let authority = target::request_authority(
            req.uri().authority().map(|a| a.as_str()),
            req.headers().get_all(HOST).iter().map(|v| v.as_bytes()),
        )?;
        let path =
            target::normalize_path(req.uri().path(), self.settings.merge_slashes)?.into_owned();
        Ok(Checked {
            req,
            authority,
            path,
        })
    }

    async fn route(
        &self,
        plan: &Arc<Plan>,
        listener: &str,
        inbound: &Arc<Inbound>,
        incoming: Checked,
    ) -> Response<Body> {
        let Checked {
            req,
            authority,
            path,
        } = incoming;
        let mesh = listener == MESH_LISTENER;
        // The mesh routes by Service name and port: of the Service the client dialled when
        // the eBPF programs redirected it here (whatever its Host says), else of the
        // absolute-form or Host authority. Gateway listeners route by host. A redirect in the
        // mesh keeps the Service port the client named.
        let dialled = inbound
            .original_dst
            .filter(|_| mesh)
            .and_then(|dst| plan.services.find(dst, Transport::Tcp));
        let (routing_host, port) = if let Some(service) = dialled {
            (std::borrow::Cow::Owned(service.authority()), service.port)
        } else if mesh {
            let port = authority.port_or(80);
            (target::mesh_host(&authority.host, port), port)
        } else {
            (
                std::borrow::Cow::Borrowed(authority.host.as_str()),
                inbound.port,
            )
        };
        let query_text = req.uri().query().map(str::to_string);
        let decision = {
            let headers: Vec<(&str, &str)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
                .collect();
            let query = query_text.as_deref().map(query_pairs).unwrap_or_default();
            let route_req = RouteRequest {
                host: &routing_host,
                path: &path,
                method: req.method().as_str(),
                headers: &headers,
                query: &query,
            };
            plan.decide(listener, &route_req)
        };
        let client_certificate = decision
            .as_ref()
            .and_then(|d| d.listener.backend_client_certificate.as_ref());
        let entry = match decision.map(|d| d.route) {
            Some(Some(entry)) => entry,
            Some(None) => return answer(StatusCode::NOT_FOUND, "no route\n"),
            // No Service of that name and port: the destination is outside the mesh.
            None if mesh => return self.passthrough(req, &authority, &path, inbound).await,
            None => return answer(StatusCode::NOT_FOUND, "no route\n"),
        };
        // CORS: a preflight is answered here; an actual request's response gets the headers.
        let cors = {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
            let rule_filters: Vec<&Filter> = entry.filters.iter().collect();
            cors::decide(
                &rule_filters,
                &cors::CorsRequest {
                    method: req.method().as_str(),
                    origin: header("origin"),
                    request_method: header("access-control-request-method"),
                    request_headers: header("access-control-request-headers"),
                },
            )
        };
        let add_cors = |mut r: Response<Body>, headers: &[(&'static str, String)]| {
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::try_from(value.as_str()) {
                    r.headers_mut().insert(*name, v);
                }
            }
            r
        };
        let cors_headers = match cors {
            cors::Cors::Preflight(headers) => {
                return add_cors(answer(StatusCode::OK, ""), &headers)
            }
            cors::Cors::Actual(headers) => headers,
            cors::Cors::None => Vec::new(),
        };
        let resp = 'act: {
            match &entry.action {
                Action::Redirect => {
                    let (code, loc) = rewrite::location(
                        entry,
                        inbound.scheme,
                        &authority.host,
                        port,
                        &path,
                        query_text.as_deref(),
                    );
                    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
                    let mut r = answer(code, "");
                    if let Ok(v) = HeaderValue::try_from(loc) {
                        r.headers_mut().insert(LOCATION, v);
                    }
                    r
                }
                Action::Forward(backends) => {
                    let started = Instant::now();
                    // A request of a persistent session goes where its session is pinned.
                    let pinned = entry.session.as_ref().and_then(|s| {
                        let token = session_token(s, req.headers())?;
                        let session = s.read(&token, unix_seconds())?;
                        plan.endpoint_among(backends, &session.endpoint)
                    });
                    let chosen = match pinned {
                        Some(chosen) => Ok(chosen),
                        None => self.choose(plan, backends),
                    };
                    let (backend, cluster, ep) = match chosen {
                        Ok(chosen) => chosen,
                        Err((refusal, cluster)) => {
                            if let (Refusal::NoEndpoints, Some(c)) = (refusal, cluster) {
                                self.stats.upstream(c, refusal.status(), started.elapsed());
                            }
                            let status = StatusCode::from_u16(refusal.status())
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            break 'act answer(status, &format!("{}\n", refusal.message()));
                        }
                    };
                    let filters: Vec<&Filter> =
                        entry.filters.iter().chain(&backend.filters).collect();
                    let mirrors: Vec<&Mirror> =
                        entry.mirrors.iter().chain(&backend.mirrors).collect();
                    let auth: Vec<&ExternalAuth> = entry
                        .external_auth
                        .iter()
                        .chain(&backend.external_auth)
                        .collect();
                    let asked = (!auth.is_empty()).then(|| crate::ext_auth::Asked {
                        method: req.method().to_string(),
                        path: req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_string(),
                        host: authority_text(&authority),
                        scheme: inbound.scheme,
                        headers: std::iter::once(("host".to_string(), authority_text(&authority)))
                            .chain(req.headers().iter().filter(|(k, _)| *k != HOST).map(
                                |(k, v)| {
                                    (
                                        k.as_str().to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                },
                            ))
                            .collect(),
                    });
                    let call = Call {
                        plan,
                        entry,
                        filters: &filters,
                        mirrors: &mirrors,
                        cluster,
                        ep,
                        client_certificate,
                        auth,
                        asked,
                        inbound,
                        trusted: mesh || self.settings.xff_num_trusted_hops > 0,
                        authority: &authority,
                        path: &path,
                        query: query_text.as_deref(),
                    };
                    let (mut resp, counted) = self.forward(req, call).await;
                    if counted {
                        self.stats.upstream(
                            &cluster.name,
                            resp.status().as_u16(),
                            started.elapsed(),
                        );
                    }
                    // A new session's token.
                    if let Some(s) = &entry.session {
                        if pinned.is_none() {
                            let token = s.write(&ep.authority(), unix_seconds());
                            let (name, value) = s.response_header(&token);
                            if let (Ok(n), Ok(v)) = (
                                hyper::header::HeaderName::try_from(name),
                                HeaderValue::try_from(value),
                            ) {
                                resp.headers_mut().append(n, v);
                            }
                        }
                    }
                    resp
                }
            }
        };
        add_cors(resp, &cors_headers)
    }

    /// Forward a request whose destination is no Service to the address it names, or refuse
    /// it (`--outbound-policy registry-only`).
    async fn passthrough(
        &self,
        req: Request<Incoming>,
        authority: &Authority,
        path: &str,
        inbound: &Arc<Inbound>,
    ) -> Response<Body> {
        if self.settings.outbound_policy == OutboundPolicy::RegistryOnly {
            return answer(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "{} is not a Service of the mesh (outbound policy registry-only)\n",
                    authority.host
                ),
            );
        }
        let started = Instant::now();
        let host = authority_text(authority);
        let port = authority.port_or(80);
        let ep = Endpoint {
            address: authority
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        };
        let query = req.uri().query().map(str::to_string);
        let outgoing = match Outgoing::of(req, &host, path, query.as_deref(), &[], inbound, true) {
            Ok(o) => o,
            Err(e) => return answer(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        };
        let upstream = Request::from_parts(outgoing.parts, outgoing.body);
        let result = self
            .upstreams
            .send(upstream, &ep, UpstreamProtocol::Http1, &host, None)
            .await;
        let resp = self.respond(
            result,
            &[],
            outgoing.client_upgrade,
            None,
            &outgoing.client_failed,
            inbound,
        );
        self.stats
            .upstream(PASSTHROUGH, resp.status().as_u16(), started.elapsed());
        resp
    }

    /// Send the request to the chosen endpoint (and copies to the mirrors), and make the
    /// client's response of the backend's. Returns whether the backend answered for the
    /// status (a client body error is the client's, not counted against the cluster).
    async fn forward(&self, req: Request<Incoming>, call: Call<'_>) -> (Response<Body>, bool) {
        let (new_path, new_host) =
            rewrite::rewritten(call.entry, call.filters.iter().copied(), call.path);
        // Host is the client's (or the rewrite's), whatever the upstream address: an HTTP/2
        // client's `:authority` becomes the upstream Host too.
        let host = new_host.unwrap_or_else(|| authority_text(call.authority));
        let Outgoing {
            parts,
            body,
            client_upgrade,
            client_failed,
        } = match Outgoing::of(
            req,
            &host,
            &new_path,
            call.query,
            call.filters,
            call.inbound,
            call.trusted,
        ) {
            Ok(o) => o,
            Err(e) => return (answer(StatusCode::BAD_REQUEST, &format!("{e}\n")), false),
        };
        let targets: Vec<(&Endpoint, &Cluster)> = call
            .mirrors
            .iter()
            .filter(|m| self.current.sample(m))
            .filter_map(|m| {
                let c = call.plan.mirror_cluster(m)?;
                Some((self.current.endpoint(c), c))
            })
            .collect();
        // An upgrade (WebSocket) is tried once: its bytes cannot be sent twice.
        let retry = call
            .entry
            .retry
            .as_ref()
            .filter(|_| client_upgrade.is_none());
        // The body ExternalAuth filters forward to their services (`forwardBody.maxSize`).
        let auth_body = call.auth.iter().map(|a| a.forward_body).max().unwrap_or(0);
        let limit = [
            (!targets.is_empty()).then_some(self.settings.mirror_body_limit),
            retry.map(|_| self.settings.retry_body_limit),
            (auth_body > 0).then_some(usize::try_from(auth_body).unwrap_or(usize::MAX)),
        ]
        .into_iter()
        .flatten()
        .max();
        // The body is held whole when copies, retries or authorization need it and it fits.
        let (held, body) = match limit {
            None => (None, body),
            Some(limit) => match buffer(body, limit).await {
                Ok(Buffered::Whole(bytes)) => (Some(bytes.clone()), full(bytes)),
                Ok(Buffered::Streaming(body)) => (None, body),
                Err(e) => return (answer(StatusCode::BAD_REQUEST, &format!("{e}\n")), false),
            },
        };
        // ExternalAuth: nothing is forwarded or copied before every filter allows it.
        let mut parts = parts;
        if let Some(asked) = &call.asked {
            for auth in &call.auth {
                let body = match (&held, auth.forward_body) {
                    (_, 0) => hyper::body::Bytes::new(),
                    (Some(b), max) if b.len() as u64 <= max => b.clone(),
                    // A body over forwardBody.maxSize is refused (the spec's 4xx; Envoy's 413).
                    _ => {
                        return (
                            answer(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "request body larger than the authorization service takes\n",
                            ),
                            false,
                        )
                    }
                };
                match crate::ext_auth::check(self, call.plan, auth, asked, body).await {
                    crate::ext_auth::Verdict::Allow(headers) => {
                        for (k, v) in headers {
                            parts.headers.insert(k, v);
                        }
                    }
                    crate::ext_auth::Verdict::Deny(resp) => return (resp, false),
                }
            }
        }
        match &held {
            Some(bytes) if bytes.len() <= self.settings.mirror_body_limit => {
                for (ep, cluster) in targets {
                    self.mirror(
                        Request::from_parts(parts.clone(), full(bytes.clone())),
                        ep,
                        cluster,
                        call.client_certificate,
                        &host,
                    );
                }
            }
            _ if !targets.is_empty() => {
                tracing::debug!("request body over --mirror-body-limit: not mirrored");
            }
            _ => {}
        }
        let replay = held.filter(|b| retry.is_some() && b.len() <= self.settings.retry_body_limit);
        let default_ms = self
            .settings
            .default_route_timeout
            .map(|d| d.as_millis() as u64);
        let now = tokio::time::Instant::now();
        let whole_deadline = call
            .entry
            .request_deadline_or(default_ms)
            .map(|ms| now + Duration::from_millis(ms));
        let per_try = call.entry.attempt_timeout_ms().map(Duration::from_millis);
        // The request head is kept for a retry only when one may follow (a copy per request
        // otherwise).
        let retry_parts = replay.as_ref().map(|_| parts.clone());
        let mut upstream = Request::from_parts(parts, body);
        let mut ep = call.ep;
        let mut attempt = 0u32;
        let (result, deadline) = loop {
            // Each attempt ends at its backendRequest timeout, and none after the request's.
            let deadline = [
                whole_deadline,
                per_try.map(|d| tokio::time::Instant::now() + d),
            ]
            .into_iter()
            .flatten()
            .min();
            let send = self.upstreams.send(
                upstream,
                ep,
                call.cluster.protocol,
                &host,
                origination(call.cluster, call.client_certificate),
            );
            let result = match deadline {
                Some(at) => tokio::time::timeout_at(at, send).await.ok(),
                None => Some(send.await),
            };
            let retryable = match (&result, retry) {
                (_, None) => false,
                _ if client_failed.load(Ordering::Relaxed) => false,
                // The attempt's own timeout; the request's ends everything.
                (None, Some(_)) => whole_deadline.is_none_or(|w| deadline != Some(w)),
                (Some(Ok(resp)), Some(r)) => r.codes.contains(&resp.status().as_u16()),
                (Some(Err(_)), Some(_)) => true,
            };
            let next = retry
                .zip(replay.as_ref().zip(retry_parts.as_ref()))
                .filter(|(r, _)| retryable && attempt < r.retries);
            let Some((r, (bytes, parts))) = next else {
                break (result, deadline);
            };
            attempt += 1;
            let wait = tokio::time::Instant::now() + Duration::from_millis(r.wait_ms(attempt));
            if whole_deadline.is_some_and(|w| wait >= w) {
                break (result, deadline);
            }
            tracing::debug!(attempt, cluster = %call.cluster.name, "retrying the request");
            self.stats.retry(&call.cluster.name);
            drop(result);
            tokio::time::sleep_until(wait).await;
            upstream = Request::from_parts(parts.clone(), full(bytes.clone()));
            ep = self.current.endpoint(call.cluster);
        };
        let Some(result) = result else {
            return (
                answer(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout"),
                true,
            );
        };
        let counted = !client_failed.load(Ordering::Relaxed);
        (
            self.respond(
                result,
                call.filters,
                client_upgrade,
                deadline,
                &client_failed,
                call.inbound,
            ),
            counted,
        )
    }

    /// The client's response of the backend's: hop-by-hop headers dropped, response filters
    /// applied, the deadline over the body, an upgrade joined; or the local reply for why
    /// there is none.
    fn respond(
        &self,
        result: Result<Response<Incoming>, UpstreamError>,
        filters: &[&Filter],
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        deadline: Option<tokio::time::Instant>,
        client_failed: &std::sync::atomic::AtomicBool,
        inbound: &Arc<Inbound>,
    ) -> Response<Body> {
        let mut resp = match result {
            Ok(resp) => resp,
            Err(_) if client_failed.load(Ordering::Relaxed) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                )
            }
            Err(e) => {
                tracing::debug!(error = %e, "upstream request failed");
                let text = match e {
                    UpstreamError::ConnectTimeout | UpstreamError::Connect(_) => {
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n"
                    }
                    _ => "upstream connect error or disconnect/reset before headers. reset reason: connection termination\n",
                };
                return answer(StatusCode::SERVICE_UNAVAILABLE, text);
            }
        };
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client)) = (switching, client_upgrade) {
            let backend = hyper::upgrade::on(&mut resp);
            crate::upgrade::tunnel(
                client,
                backend,
                inbound.clone(),
                self.settings.tunnel_idle_timeout,
            );
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, switching);
        response_modifiers(filters, &mut parts.headers);
        let body = match deadline {
            Some(at) if !switching => http_body_util::BodyExt::boxed(Deadline::new(body, at)),
            _ => http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
                body,
                |e| -> crate::body::BoxError { e.into() },
            )),
        };
        Response::from_parts(parts, body)
    }

    /// Send a copy; its answer, latency or failure never reach the client.
    fn mirror(
        &self,
        req: Request<Body>,
        ep: &Endpoint,
        cluster: &Cluster,
        client_certificate: Option<&Certificate>,
        host: &str,
    ) {
        let (ep, host) = (ep.clone(), host.to_string());
        let (cluster, client_certificate) = (cluster.clone(), client_certificate.cloned());
        let upstreams = self.upstreams.clone();
        tokio::spawn(async move {
            let tls = origination(&cluster, client_certificate.as_ref());
            if let Ok(resp) = upstreams.send(req, &ep, cluster.protocol, &host, tls).await {
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
        });
    }
}

/// Now, in Unix seconds (session tokens count in them).
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The session token a request carries for `s` (its cookie or header), if any.
fn session_token(s: &SessionPersistence, headers: &hyper::HeaderMap) -> Option<String> {
    let carrier = match s.kind {
        SessionKind::Cookie => "cookie",
        SessionKind::Header => s.name.as_str(),
    };
    let values: Vec<(&str, &str)> = headers
        .get_all(carrier)
        .iter()
        .filter_map(|v| Some((carrier, v.to_str().ok()?)))
        .collect();
    s.token(&values).map(str::to_string)
}

/// How the proxy connects to a cluster over TLS, when its Service port has a BackendTLSPolicy.
pub fn origination<'a>(
    cluster: &'a Cluster,
    client_certificate: Option<&'a Certificate>,
) -> Option<crate::upstream::Origination<'a>> {
    Some(crate::upstream::Origination {
        cluster: &cluster.name,
        tls: cluster.tls.as_ref()?,
        client_certificate,
    })
}

/// The rewritten path and query are no valid request target (answered 400).
#[derive(Debug, thiserror::Error)]
#[error("bad request path")]
struct BadPath;

/// A request as it leaves for upstream, with what the response needs back from it.
struct Outgoing {
    parts: hyper::http::request::Parts,
    body: Body,
    /// The client's side of an HTTP/1.1 upgrade, when it asked for one.
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// Set when reading the client's body failed (the client's error, not the backend's).
    client_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl Outgoing {
    /// The upstream request of `req`: hop-by-hop headers dropped (an HTTP/1.1 upgrade's kept),
    /// Host set to `host`, the request header filters applied, the forwarding headers written,
    /// the target `path?query`; 400 when that is no valid target.
    fn of(
        req: Request<Incoming>,
        host: &str,
        path: &str,
        query: Option<&str>,
        filters: &[&Filter],
        inbound: &Inbound,
        trusted: bool,
    ) -> Result<Outgoing, BadPath> {
        let (mut parts, body) = req.into_parts();
        let upgrade = wants_upgrade(&parts.headers) && parts.version == hyper::Version::HTTP_11;
        let client_upgrade = if upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Ok(v) = HeaderValue::try_from(host) {
            parts.headers.insert(HOST, v);
        }
        request_modifiers(filters, &mut parts.headers);
        forwarded(
            &mut parts.headers,
            inbound.peer.ip(),
            inbound.scheme,
            trusted,
        );
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        parts.uri = format!("{path}{query}").parse().map_err(|_| BadPath)?;
        let (body, client_failed) = ClientBody::new(body);
        Ok(Outgoing {
            parts,
            body: http_body_util::BodyExt::boxed(body),
            client_upgrade,
            client_failed,
        })
    }
}

/// `host[:port]` as the client wrote it.
fn authority_text(a: &Authority) -> String {
    match a.port {
        Some(p) => format!("{}:{p}", a.host),
        None => a.host.clone(),
    }
}

/// One forwarded request's decisions, from the Plan.
struct Call<'a> {
    plan: &'a Plan,
    entry: &'a RouteEntry,
    filters: &'a [&'a Filter],
    mirrors: &'a [&'a Mirror],
    cluster: &'a Cluster,
    ep: &'a Endpoint,
    /// The certificate the listener's Gateway shows backends it originates TLS to.
    client_certificate: Option<&'a Certificate>,
    /// The ExternalAuth filters to pass (the rule's, then the backend's), with the client's
    /// request as they see it.
    auth: Vec<&'a ExternalAuth>,
    asked: Option<crate::ext_auth::Asked>,
    inbound: &'a Arc<Inbound>,
    /// Whether the peer's forwarding headers are kept (see `headers::forwarded`).
    trusted: bool,
    authority: &'a Authority,
    path: &'a str,
    query: Option<&'a str>,
}
