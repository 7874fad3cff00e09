//! The HTTPS server: `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`.
//!
//! Every malformed input gets a 400 (or 413 for a body over the API server's own 3 MiB limit)
//! with a message saying what is wrong; nothing panics, hangs or loops on 500s. A request that
//! takes longer than the timeout gets 408, well inside the API server's `timeoutSeconds`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics::{EndpointLabels, Metrics, ReviewLabels};
use crate::review::{self, Answer, ClusterView};

/// The server's limits and timeouts, from `serve`'s flags (docs/operations.md).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (the API server's own limit is 3 MiB).
    pub max_body: usize,
    /// Per-request deadline; the webhook configurations give the API server 5 s.
    pub request_timeout: Duration,
    /// Time for a client to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time for a client to send a request head once its connection is ready for one.
    pub request_headers_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 3 * 1024 * 1024,
            request_timeout: Duration::from_secs(4),
            tls_handshake_timeout: Duration::from_secs(10),
            request_headers_timeout: Duration::from_secs(10),
        }
    }
}

pub struct AppState {
    pub cluster: RwLock<ClusterView>,
    /// `--channel`: given to every view of the cluster.
    pub channel: Option<mesh_model::crd::Channel>,
    pub ready: AtomicBool,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(ready: bool, channel: Option<mesh_model::crd::Channel>) -> Arc<AppState> {
        Arc::new(AppState {
            cluster: RwLock::new(ClusterView {
                channel,
                ..ClusterView::default()
            }),
            channel,
            ready: AtomicBool::new(ready),
            metrics: Metrics::new(),
        })
    }

    /// Swap in a new view of the cluster (reviews in flight keep the one they started with)
    /// and mark the webhook ready.
    pub fn set_cluster(&self, mut view: ClusterView) {
        view.channel = self.channel;
        let objects = view.cluster.as_ref().map_or(0, |c| c.len());
        self.metrics.cache_objects.set(objects as i64);
        if let Ok(mut slot) = self.cluster.write() {
            *slot = view;
        }
        self.ready.store(true, Ordering::Relaxed);
    }
}

pub fn router(state: Arc<AppState>, limits: &Limits) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ok\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster cache has not synced yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn validate(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    handle(&state, "validate", &body)
}

async fn mutate(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    handle(&state, "mutate", &body)
}

/// Parse, review, count, log, answer.
fn handle(state: &AppState, endpoint: &'static str, body: &[u8]) -> Response {
    let start = Instant::now();
    let req = match review::parse(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(endpoint, error = %e, "bad admission request");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let result: Result<Answer, _> = if endpoint == "validate" {
        let cluster = state.cluster.read().map(|c| c.clone()).unwrap_or_default();
        review::validate(&req, &cluster)
    } else {
        review::mutate(&req)
    };
    let answer = match result {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(endpoint, uid = %req.uid, error = %e, "bad admission request");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let elapsed = start.elapsed();
    let operation = serde_json::to_value(req.operation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    state
        .metrics
        .reviews
        .get_or_create(&ReviewLabels {
            endpoint,
            kind: answer.kind,
            operation: operation.clone(),
            verdict: answer.verdict.as_str(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&EndpointLabels { endpoint })
        .observe(elapsed.as_secs_f64());
    // One line per review; never the object itself (it may be a Secret).
    tracing::info!(
        endpoint,
        uid = %req.uid,
        kind = %answer.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = %req.name,
        operation = %operation,
        dry_run = req.dry_run.unwrap_or(false),
        verdict = answer.verdict.as_str(),
        latency_us = elapsed.as_micros() as u64,
        "review"
    );
    axum::Json(answer.body).into_response()
}

/// Accept TLS connections on `addr` until `shutdown` resolves, then let open connections
/// finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let open = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        let token = open.clone();
        tokio::spawn(async move {
            let _token = token;
            let tls = match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // A client trickling its request head (one byte a second) is cut off, as is one
            // that sends nothing after the handshake.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_headers_timeout);
            // ALPN has said which protocol: no sniffing phase, so HTTP/1's header timer runs
            // from the first moment.
            let builder = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                builder.http2_only()
            } else {
                builder.http1_only()
            };
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    let deadline = Instant::now() + grace;
    while Arc::strong_count(&open) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
