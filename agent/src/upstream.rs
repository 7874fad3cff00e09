//! Connections to upstream endpoints: an HTTP/1.1 pool (hyper-util's, per endpoint) and an
//! HTTP/2 (h2c) connection per endpoint, multiplexed, so a request carries its own
//! `:authority` (the client's host) while it is sent to the endpoint's address. A cluster a
//! BackendTLSPolicy covers is reached over TLS instead, through a pool of its own
//! (`origination`).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_model::plan::upstream_tls::UpstreamTls;
use mesh_model::plan::{Certificate, Endpoint, UpstreamProtocol};

use crate::body::Body;
use crate::stats::Keyed;

/// Why a request got no response from upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream connect error: {0}")]
    Connect(#[source] std::io::Error),
    #[error("upstream connect timeout")]
    ConnectTimeout,
    #[error("upstream request failed: {0}")]
    Http1(#[source] hyper_util::client::legacy::Error),
    #[error("upstream request failed: {0}")]
    Http2(#[source] hyper::Error),
    #[error("the endpoint address {0:?} is not a valid authority")]
    BadAddress(String),
    #[error("{0}")]
    Tls(#[from] crate::origination::TlsSetupError),
}

/// A TLS pool: the policy and client certificate it was made for, and the client.
type TlsPool = (
    UpstreamTls,
    Option<Certificate>,
    UpstreamProtocol,
    Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
);

/// TLS to a cluster's endpoints: the cluster, its policy (BackendTLSPolicy), and the client
/// certificate the Gateway shows (`spec.tls.backend.clientCertificateRef`), if any.
#[derive(Debug, Clone, Copy)]
pub struct Origination<'a> {
    pub cluster: &'a str,
    pub tls: &'a UpstreamTls,
    pub client_certificate: Option<&'a Certificate>,
}

/// An h2c connection to one endpoint, made on first use and again after it closes.
type H2 = tokio::sync::Mutex<Option<hyper::client::conn::http2::SendRequest<Body>>>;

pub struct Upstreams {
    http1: Client<HttpConnector, Body>,
    h2: Keyed<H2>,
    /// Per cluster with upstream TLS, one per client certificate shown (Gateways may show
    /// different ones to one cluster, so a cluster has few); replaced when the policy or the
    /// certificate changes. Looked up by reference: a request allocates nothing here.
    tls: std::sync::Mutex<std::collections::HashMap<String, Vec<TlsPool>>>,
    connect_timeout: Duration,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        Upstreams {
            http1: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_timer(TokioTimer::new())
                // The proxy sets Host itself: the client's, never the endpoint's address.
                .set_host(false)
                .build(connector),
            h2: Keyed::default(),
            tls: Default::default(),
            connect_timeout,
        }
    }

    /// The TLS client of a cluster, made (or remade, after its policy or the client
    /// certificate changed) on demand.
    fn tls_client(
        &self,
        to: &Origination<'_>,
        protocol: UpstreamProtocol,
    ) -> Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>, UpstreamError> {
        let secret = to.client_certificate.map(|c| c.secret.as_str());
        let same_identity = |p: &TlsPool| p.1.as_ref().map(|c| c.secret.as_str()) == secret;
        let mut pools = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, cert, p, c)) = pools
            .get(to.cluster)
            .and_then(|ps| ps.iter().find(|p| same_identity(p)))
        {
            if t == to.tls && cert.as_ref() == to.client_certificate && *p == protocol {
                return Ok(c.clone());
            }
        }
        let (config, name) = crate::origination::client_config(to.tls, to.client_certificate)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        let connector = match protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::H2c => builder.enable_http2().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .set_host(false)
            .build(connector);
        let made = (
            to.tls.clone(),
            to.client_certificate.cloned(),
            protocol,
            client.clone(),
        );
        let of_cluster = pools.entry(to.cluster.to_string()).or_default();
        match of_cluster.iter_mut().find(|p| same_identity(p)) {
            Some(old) => *old = made,
            None => of_cluster.push(made),
        }
        Ok(client)
    }

    /// Send `req` (origin-form path in its URI, Host set) to `ep` over `protocol`; over TLS
    /// when `tls` says so.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        ep: &Endpoint,
        protocol: UpstreamProtocol,
        host: &str,
        tls: Option<Origination<'_>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let target = ep.authority();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        if let Some(to) = tls {
            let client = self.tls_client(&to, protocol)?;
            *req.uri_mut() = format!("https://{target}{path}")
                .parse()
                .map_err(|_| UpstreamError::BadAddress(target.clone()))?;
            if protocol == UpstreamProtocol::H2c {
                // HTTP/2 over TLS: the client's host as `:authority`.
                *req.version_mut() = hyper::Version::HTTP_2;
                if let Ok(uri) = format!("https://{host}{path}").parse() {
                    *req.uri_mut() = uri;
                }
                req.headers_mut().remove(hyper::header::HOST);
            } else {
                *req.version_mut() = hyper::Version::HTTP_11;
            }
            return client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    connect_error(&e)
                } else {
                    UpstreamError::Http1(e)
                }
            });
        }
        match protocol {
            UpstreamProtocol::Http1 => {
                *req.uri_mut() = format!("http://{target}{path}")
                    .parse()
                    .map_err(|_| UpstreamError::BadAddress(target.clone()))?;
                *req.version_mut() = hyper::Version::HTTP_11;
                self.http1.request(req).await.map_err(|e| {
                    if e.is_connect() {
                        connect_error(&e)
                    } else {
                        UpstreamError::Http1(e)
                    }
                })
            }
            UpstreamProtocol::H2c => {
                // `:authority` is the client's host; the connection goes to the endpoint.
                *req.uri_mut() = format!("http://{host}{path}")
                    .parse()
                    .or_else(|_| format!("http://{target}{path}").parse())
                    .map_err(|_| UpstreamError::BadAddress(target.clone()))?;
                *req.version_mut() = hyper::Version::HTTP_2;
                req.headers_mut().remove(hyper::header::HOST);
                let mut sender = self.h2_sender(&target).await?;
                sender.ready().await.map_err(UpstreamError::Http2)?;
                sender.send_request(req).await.map_err(UpstreamError::Http2)
            }
        }
    }

    async fn h2_sender(
        &self,
        target: &str,
    ) -> Result<hyper::client::conn::http2::SendRequest<Body>, UpstreamError> {
        let slot: Arc<H2> = self.h2.get(target);
        let mut conn = slot.lock().await;
        if let Some(s) = conn.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let tcp =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(target))
                .await
                .map_err(|_| UpstreamError::ConnectTimeout)?
                .map_err(UpstreamError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (sender, driver) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(UpstreamError::Http2)?;
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        *conn = Some(sender.clone());
        Ok(sender)
    }
}

/// A connect failure of the HTTP/1.1 pool, typed by its cause.
fn connect_error(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return UpstreamError::ConnectTimeout;
            }
            return UpstreamError::Connect(std::io::Error::new(io.kind(), io.to_string()));
        }
        source = s.source();
    }
    UpstreamError::Connect(std::io::Error::other(e.to_string()))
}
