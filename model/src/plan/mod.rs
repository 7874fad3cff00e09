//! The Plan: what the datapath serves, compiled from a Snapshot.
//!
//! Listeners (one per Gateway listener port, plus the mesh entry for GAMMA routes) hold
//! virtual hosts, which hold route entries in Gateway API precedence order; clusters are named
//! `namespace/name:port` and hold ready endpoints. `Plan::decide` is the one routing function:
//! the proxy calls it per request, `kubectl mesh explain` offline, so they cannot disagree.

pub mod compile;
pub mod cors;
pub mod decide;
pub mod explain;
pub mod ext_auth;
pub mod matcher;
pub mod render;
pub mod rewrite;
pub mod services;
pub mod session;
pub mod status;
pub mod target;
pub mod upstream_tls;

use std::collections::BTreeMap;

use crate::route::Filter;

pub use compile::compile;
pub use decide::{query_pairs, Decision, Request};
pub use matcher::{HeaderMatch, Matcher, PathMatch, QueryMatch};

/// The listener that carries GAMMA (Service-parent) routes: traffic to a Service's name.
pub const MESH_LISTENER: &str = "mesh/outbound";

/// An empty Plan serves nothing (every request 404s): what runs before a configuration loads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub listeners: Vec<Listener>,
    pub clusters: BTreeMap<String, Cluster>,
    /// The status each route would get (Accepted, ResolvedRefs), consistent with what is served.
    pub route_status: Vec<status::RouteStatus>,
    /// The status each Gateway and its listeners would get (Accepted, Programmed, Conflicted,
    /// ResolvedRefs, attachedRoutes).
    pub gateway_status: Vec<status::GatewayStatus>,
    /// The status each BackendTLSPolicy would get, per Gateway through which it applies.
    pub policy_status: Vec<status::PolicyStatus>,
    /// Mirrors in the Plan (ids run from 0).
    pub mirror_count: usize,
    /// Every ClusterIP frontend, for the socket-level load balancer, in Service order.
    pub services: services::ServiceTable,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Https,
    /// TLS Passthrough: routed by the ClientHello's SNI, relayed untouched.
    Tls,
    /// TLS Terminate (protocol TLS, `tls.mode: Terminate`): the listener completes the
    /// handshake with its certificate and relays the plaintext bytes to the TLSRoute's (or
    /// TCPRoute's) backend.
    TlsTerminate,
    /// TCP: relayed to the TCPRoute's backends, byte for byte.
    Tcp,
    /// UDP: datagrams relayed to the UDPRoute's backends, one flow per client address.
    Udp,
}

impl Protocol {
    /// Whether connections are relayed as byte streams (or datagrams) rather than served as
    /// HTTP: no path, no Host, the first route of the virtual host takes them.
    pub fn is_relayed(&self) -> bool {
        matches!(
            self,
            Protocol::Tls | Protocol::TlsTerminate | Protocol::Tcp | Protocol::Udp
        )
    }

    /// Whether the listener completes TLS handshakes itself (it holds private keys).
    pub fn terminates_tls(&self) -> bool {
        matches!(self, Protocol::Https | Protocol::TlsTerminate)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `namespace/gateway/listener`, or [`MESH_LISTENER`].
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    pub virtual_hosts: Vec<VirtualHost>,
    /// HTTPS and TLS Terminate: the certificates to terminate with, chosen by SNI.
    pub certificates: Vec<Certificate>,
    /// HTTPS: how client certificates are validated (the Gateway's `spec.tls.frontend` for
    /// the listener's port), if they are.
    pub client_validation: Option<ClientValidation>,
    /// The certificate the listener's Gateway presents to backends it originates TLS to
    /// (`spec.tls.backend.clientCertificateRef`), when usable.
    pub backend_client_certificate: Option<Certificate>,
    /// The Gateway listener's own hostname (Any when unset, and for the mesh entry): how a
    /// request picks among listeners that share a port.
    pub hostname: HostMatch,
    /// `namespace/name` of the Gateway whose address the listener binds: its own, or the
    /// parent of its ListenerSet. None for the mesh entry.
    pub gateway: Option<String>,
    /// The object that declares the listener, as route statuses name parents
    /// (`Gateway ns/name` or `ListenerSet ns/name`); empty for the mesh entry.
    pub parent: String,
    /// The address of the listener's Gateway when Gateways have addresses of their own (the
    /// agent's `--gateway-address-pool`, or the Gateway's `spec.addresses`): only requests to
    /// that address reach it, as each Gateway of a cluster gets its own. `None`: the address
    /// all Gateways share.
    pub address: Option<std::net::IpAddr>,
    /// The IP addresses the Gateway asks for (`spec.addresses` of type IPAddress), in order:
    /// the agent binds the first it can.
    pub requested_addresses: Vec<std::net::IpAddr>,
    pub(crate) index: decide::ListenerIndex,
}

impl Listener {
    /// `namespace/name` of the Gateway whose address the listener binds; None for the mesh
    /// entry.
    pub fn gateway(&self) -> Option<&str> {
        self.gateway.as_deref()
    }
}

/// A serving certificate of an HTTPS listener, from a `kubernetes.io/tls` Secret. The key is
/// held for the datapath only: renderings and dumps never include it.
#[derive(Clone, PartialEq)]
pub struct Certificate {
    /// `namespace/name` of the Secret.
    pub secret: String,
    /// DNS names the certificate covers (SANs, or the CN).
    pub names: Vec<String>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({} for {:?})", self.secret, self.names)
    }
}

/// Frontend client-certificate validation of an HTTPS listener (mutual TLS at the Gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientValidation {
    /// The CA certificates (PEM) a client certificate must chain to: every usable bundle the
    /// listener's `caCertificateRefs` name. Empty when none can be used, which refuses every
    /// client, as the spec asks of a listener whose CA references are all invalid.
    pub ca_pem: Vec<u8>,
    /// `AllowInsecureFallback`: a missing or invalid certificate does not refuse the
    /// connection.
    pub insecure_fallback: bool,
}

/// Which request hosts a virtual host serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com`, stored as the suffix `.example.com`.
    Wildcard(String),
    Any,
}

impl HostMatch {
    pub fn parse(h: Option<&str>) -> HostMatch {
        match h {
            None | Some("*") => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Wildcard(suffix.to_ascii_lowercase()),
                None => HostMatch::Exact(h.to_ascii_lowercase()),
            },
        }
    }

    pub fn display(&self) -> String {
        match self {
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Wildcard(s) => format!("*{s}"),
            HostMatch::Any => "*".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub host: HostMatch,
    /// Route entries in precedence order: the first whose matcher accepts a request wins.
    pub routes: Vec<RouteEntry>,
    pub(crate) index: decide::HostIndex,
}

/// Where a route entry came from, for status, explain and the config dump's metadata.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub rule: usize,
    pub matched: usize,
    /// The rule's `name`, when it has one (HTTPRoute and GRPCRoute rules).
    pub rule_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteEntry {
    pub matcher: Matcher,
    pub action: Action,
    /// Rule-level filters, applied in order.
    pub filters: Vec<Filter>,
    /// The rule's RequestMirror filters, resolved.
    pub mirrors: Vec<Mirror>,
    pub source: Source,
    /// `timeouts.request` and `timeouts.backendRequest`, in milliseconds (0 disables).
    pub request_timeout_ms: Option<u64>,
    pub backend_timeout_ms: Option<u64>,
    /// The rule's `retry` policy, when it has one.
    pub retry: Option<Retry>,
    /// The rule's `sessionPersistence`, when it has one.
    pub session: Option<session::SessionPersistence>,
    /// The rule's ExternalAuth filter, when it has one: asked before anything is forwarded.
    pub external_auth: Option<ext_auth::ExternalAuth>,
    /// Tie-break after the matcher's own precedence: creationTimestamp, then namespace/name.
    pub(crate) age: (Option<String>, String, String),
}

impl RouteEntry {
    /// How long the proxy waits for the backend's answer before replying 504, if at all.
    ///
    /// `timeouts.request` bounds the whole exchange and `timeouts.backendRequest` each attempt
    /// at the backend; with one attempt per request the tighter of the two is the deadline.
    /// Zero disables a timeout, as the spec says.
    pub fn deadline_ms(&self) -> Option<u64> {
        [self.request_timeout_ms, self.backend_timeout_ms]
            .into_iter()
            .flatten()
            .filter(|ms| *ms > 0)
            .min()
    }

    /// The deadline of the whole exchange, retries included: `timeouts.request`, or the
    /// proxy-wide default (Envoy's route timeout defaults to 15 s) for a route that sets no
    /// timeout at all. A route whose `timeouts.request` is `0s` has asked for no deadline and
    /// keeps none; one with only `timeouts.backendRequest` is bounded by its attempts.
    pub fn request_deadline_or(&self, default_ms: Option<u64>) -> Option<u64> {
        match self.request_timeout_ms {
            Some(0) => None,
            Some(ms) => Some(ms),
            None if self.attempt_timeout_ms().is_some() => None,
            None => default_ms,
        }
    }

    /// The deadline of each attempt at the backend (`timeouts.backendRequest`; `0s` is none).
    pub fn attempt_timeout_ms(&self) -> Option<u64> {
        self.backend_timeout_ms.filter(|ms| *ms > 0)
    }
}

/// An HTTPRoute rule's `retry`: which answers are retried, how often, how long to wait.
///
/// Connection failures (refused, reset, an attempt's `backendRequest` timeout) are retried
/// too, as the spec says implementations should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Response status codes that are retried.
    pub codes: Vec<u16>,
    /// Retries after the first attempt (the spec's `attempts`: "the maximum number of times
    /// an individual request ... should be retried"); Envoy's default of 1 when unset.
    pub retries: u32,
    /// The least wait before a retry (`backoff`; Envoy's base interval of 25 ms when unset).
    /// Later retries wait twice as long as the one before, up to ten times this, as Envoy's.
    pub backoff_ms: u64,
}

impl Retry {
    /// Retries when `attempts` is unset (Envoy's `num_retries` default).
    pub const DEFAULT_RETRIES: u32 = 1;
    /// Backoff when unset (Envoy's base interval).
    pub const DEFAULT_BACKOFF_MS: u64 = 25;

    /// The wait before retry number `n` (1 for the first retry): the backoff doubled per
    /// retry, at most ten times the backoff.
    pub fn wait_ms(&self, n: u32) -> u64 {
        let factor = 1u64 << n.saturating_sub(1).min(10);
        self.backoff_ms.saturating_mul(factor.min(10))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Forward to one of the backends, by weight.
    Forward(Vec<WeightedBackend>),
    /// Answer with a redirect (the rule's RequestRedirect filter).
    Redirect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedBackend {
    /// `namespace/name:port`, or `None` for a backend that could not be resolved (its share
    /// of requests gets 500).
    pub cluster: Option<String>,
    pub weight: u32,
    pub filters: Vec<Filter>,
    /// The backendRef's own RequestMirror filters.
    pub mirrors: Vec<Mirror>,
    /// The backendRef's own ExternalAuth filter, asked after the rule's.
    pub external_auth: Option<ext_auth::ExternalAuth>,
}

/// A RequestMirror filter, resolved: where copies go and which share of requests is copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// Unique in the Plan: the proxy keeps one sampling counter per mirror, so each route's
    /// fraction holds whatever other routes see.
    pub id: usize,
    /// `namespace/name:port`, or `None` when the target does not resolve (nothing is copied).
    pub cluster: Option<String>,
    /// Copied share: `numerator / denominator` (`percent` is `n/100`; unset is all).
    pub numerator: u64,
    pub denominator: u64,
}

impl Mirror {
    /// Whether the `n`-th request (from 0) through this mirror is copied: the copies are
    /// spread evenly, one each time the running share steps past a whole number.
    pub fn samples(&self, n: u64) -> bool {
        let (num, den) = (
            self.numerator.min(self.denominator),
            self.denominator.max(1),
        );
        (n + 1) * num / den > n * num / den
    }
}

/// Why a request cannot be forwarded, with the status Gateway API gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every backend has weight 0: 500.
    NoWeight,
    /// The chosen backend does not resolve (missing, not permitted, wrong kind): its share
    /// of requests gets 500.
    Invalid,
    /// The backend has no ready endpoint: 503.
    NoEndpoints,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoWeight | Refusal::Invalid => 500,
            Refusal::NoEndpoints => 503,
        }
    }

    /// The local reply's text.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoWeight => "no backend with a positive weight",
            Refusal::Invalid => "invalid backend",
            Refusal::NoEndpoints => "no healthy upstream",
        }
    }
}

impl Plan {
    /// The backend for the `n`-th request of a rule: by weight (weight 0 never), spread by a
    /// multiplicative hash of `n` so consecutive requests alternate across the weights.
    pub fn pick(backends: &[WeightedBackend], n: u64) -> Result<&WeightedBackend, Refusal> {
        let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return Err(Refusal::NoWeight);
        }
        let mut point = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % total;
        for b in backends {
            if point < u64::from(b.weight) {
                return Ok(b);
            }
            point -= u64::from(b.weight);
        }
        Err(Refusal::NoWeight)
    }

    /// Where a backend's share of requests goes: its cluster, or the refusal.
    pub fn backend_cluster(&self, b: &WeightedBackend) -> Result<&Cluster, Refusal> {
        let c = b
            .cluster
            .as_deref()
            .and_then(|name| self.clusters.get(name))
            .ok_or(Refusal::Invalid)?;
        if c.endpoints.is_empty() {
            return Err(Refusal::NoEndpoints);
        }
        Ok(c)
    }

    /// The backend, cluster and endpoint of `backends` (weight above 0) whose endpoint is
    /// `authority` (`address:port`): where a session pinned to that endpoint goes, while the
    /// rule still sends traffic there.
    pub fn endpoint_among<'p>(
        &'p self,
        backends: &'p [WeightedBackend],
        authority: &str,
    ) -> Option<(&'p WeightedBackend, &'p Cluster, &'p Endpoint)> {
        // Parsed once, compared per endpoint without building its authority.
        let (host, port) = authority.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<std::net::IpAddr>().ok();
        let same = |e: &Endpoint| {
            e.port == port
                && match ip {
                    Some(ip) => e.address.parse::<std::net::IpAddr>().ok() == Some(ip),
                    None => e.address == host,
                }
        };
        backends.iter().filter(|b| b.weight > 0).find_map(|b| {
            let c = self.backend_cluster(b).ok()?;
            let ep = c.endpoints.iter().find(|e| same(e))?;
            Some((b, c, ep))
        })
    }

    /// The cluster a mirror copies to, when it resolves and has endpoints.
    pub fn mirror_cluster(&self, m: &Mirror) -> Option<&Cluster> {
        m.cluster
            .as_deref()
            .and_then(|name| self.clusters.get(name))
            .filter(|c| !c.endpoints.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// How the proxy talks to the endpoints.
    pub protocol: UpstreamProtocol,
    /// TLS to the endpoints, when a BackendTLSPolicy targets the Service port.
    pub tls: Option<upstream_tls::UpstreamTls>,
}

/// The upstream protocol of a cluster: HTTP/1.1 unless the backend is known to speak HTTP/2
/// in cleartext (see `UpstreamProtocol::of_port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as gRPC backends serve it.
    H2c,
}

impl UpstreamProtocol {
    /// The protocol of a Service port: its `appProtocol` (`kubernetes.io/h2c` of GEP-1911, and
    /// the `grpc`/`http2`/`h2c` values Istio and Cilium also read), else Istio's port-name
    /// prefixes (`grpc-..`, `http2-..`); HTTP/1.1 when nothing says otherwise. A backend of a
    /// GRPCRoute is HTTP/2 whatever its port says (gRPC runs on nothing else).
    pub fn of_port(app_protocol: Option<&str>, port_name: Option<&str>, grpc_route: bool) -> Self {
        let h2 = |v: &str| {
            let v = v.to_ascii_lowercase();
            matches!(
                v.as_str(),
                "kubernetes.io/h2c" | "h2c" | "http2" | "grpc" | "grpc-web"
            ) || v.starts_with("grpc-")
                || v.starts_with("http2-")
        };
        if grpc_route
            || app_protocol.is_some_and(h2)
            || (app_protocol.is_none() && port_name.is_some_and(h2))
        {
            UpstreamProtocol::H2c
        } else {
            UpstreamProtocol::Http1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

impl Endpoint {
    /// `address:port` as a URI authority (an IPv6 address in brackets).
    pub fn authority(&self) -> String {
        match self.address.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, self.port).to_string(),
            Err(_) => format!("{}:{}", self.address, self.port),
        }
    }
}
