//! The admin API (Envoy's admin shape where Envoy has one): `/ready`, `/server_info`,
//! `/config_dump`, `/clusters`, `/stats/prometheus`, `/gateways` and `/explain`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::Request;
use mesh_model::lastgood::LeftOut;
use mesh_model::plan::{render, Plan, MESH_LISTENER};
use tokio::sync::Semaphore;

use crate::proxy::{OutboundPolicy, Proxy};
use crate::serve::{Acceptor, Limits, ADMIN_CONNECTIONS};

/// The outcome of the last load, for `/ready` and `/server_info`.
#[derive(Default, Clone)]
pub struct Status {
    pub loaded: bool,
    /// Why the last change was not taken whole (what was left out, or an emptied folder).
    pub last_error: Option<String>,
    /// What the Plan in force leaves out, and why.
    pub left_out: Vec<LeftOut>,
    /// Error and Warning findings of the configuration in force.
    pub errors: usize,
    pub warnings: usize,
    pub reloads: u64,
    /// When the Plan in force was loaded (RFC 3339), for the config dump.
    pub last_updated: String,
    /// When the last load began reading the folder (RFC 3339): a change written before it is
    /// in it.
    pub last_reload: String,
    /// SHA-256 of the Plan in force, rendered: equal hashes mean agents run the same config.
    pub plan_hash: String,
}

impl Status {
    /// `/ready`: 200 once a Plan serves (saying what the last change left out), else 503.
    fn ready(&self) -> (u16, String) {
        if !self.loaded {
            return (
                503,
                format!(
                    "no configuration loaded\n{}\n",
                    self.last_error.as_deref().unwrap_or_default()
                ),
            );
        }
        let mut out = String::from("LIVE\n");
        if let Some(e) = &self.last_error {
            out.push_str(&format!("last change rejected in part:\n{e}\n"));
        }
        (200, out)
    }

    fn server_info(&self) -> String {
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "state": if self.loaded { "LIVE" } else { "INITIALIZING" },
            "reloads": self.reloads,
            "plan_hash": self.plan_hash,
            "plan_loaded": self.last_updated,
            "last_reload": self.last_reload,
            "last_reload_error": self.last_error,
            "left_out": self.left_out,
            "findings": {"errors": self.errors, "warnings": self.warnings},
        })
        .to_string()
    }
}

pub async fn serve(
    addr: SocketAddr,
    status: Arc<Mutex<Status>>,
    proxy: Arc<Proxy>,
    render: render::RenderOptions,
    limits: Arc<Limits>,
    lb: Arc<crate::bpf::LoadBalancer>,
) {
    let render = Arc::new(render);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for the admin API");
            return;
        }
    };
    let acceptor = Acceptor::new(
        listener,
        Arc::new(Semaphore::new(ADMIN_CONNECTIONS)),
        Arc::default(),
    );
    loop {
        let (tcp, _, permit) = acceptor.next().await;
        let (status, proxy, render, limits, lb) = (
            status.clone(),
            proxy.clone(),
            render.clone(),
            limits.clone(),
            lb.clone(),
        );
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let s = status.lock().map(|s| s.clone()).unwrap_or_default();
                let plan = proxy.current.plan();
                let proxy = proxy.clone();
                let render = render.clone();
                let lb = lb.clone();
                async move {
                    let (code, body) = match req.uri().path() {
                        "/ready" => s.ready(),
                        "/server_info" => (200, s.server_info()),
                        "/config_dump" => (
                            200,
                            render::config_dump(&plan, &render, &s.last_updated).to_string(),
                        ),
                        "/clusters" if req.uri().query() == Some("format=json") => {
                            (200, render::clusters_json(&plan).to_string())
                        }
                        "/clusters" => (200, clusters_text(&plan)),
                        "/stats/prometheus" => (200, proxy.stats.prometheus() + &lb.prometheus()),
                        "/services" => (200, lb.services_json(&plan)),
                        "/gateways" => (200, gateways(&plan, &render).to_string()),
                        "/explain" => explain(
                            &plan,
                            req.uri().query().unwrap_or(""),
                            render.outbound_port,
                            proxy.settings.outbound_policy,
                        ),
                        _ => (404, "not found\n".into()),
                    };
                    let mut r = hyper::Response::new(http_body_util::Full::new(
                        hyper::body::Bytes::from(body),
                    ));
                    *r.status_mut() =
                        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.request_headers_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            // The admin API answers at once: a connection is done within the idle timeout.
            let _ = tokio::time::timeout(limits.idle_timeout, conn).await;
            drop(permit);
        });
    }
}

/// `/gateways`: where each Gateway of the Plan in force listens, in Plan order:
/// `[{"gateway": "ns/name", "address": "127.0.10.1", "listeners": [{"name", "port",
/// "protocol"}]}]` (its own address with `--gateway-address-pool`, else `--gateway-addr`).
fn gateways(plan: &Plan, opts: &render::RenderOptions) -> serde_json::Value {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for l in &plan.listeners {
        let Some(gw) = l.gateway() else { continue };
        let listener = serde_json::json!({
            "name": l.name.rsplit('/').next().unwrap_or_default(),
            "port": l.port,
            "protocol": format!("{:?}", l.protocol).to_uppercase(),
        });
        match out.iter_mut().find(|g| g["gateway"] == gw) {
            Some(g) => {
                if let Some(ls) = g["listeners"].as_array_mut() {
                    ls.push(listener);
                }
            }
            None => out.push(serde_json::json!({
                "gateway": gw,
                "address": render::gateway_address(l, opts),
                "listeners": [listener],
            })),
        }
    }
    serde_json::Value::Array(out)
}

/// `/explain?url=URL[&method=M][&header=Name:%20value]...[&sni=NAME]`: why the agent would
/// send that request where it does (JSON; `kubectl mesh explain --admin` prints it). The
/// listener is picked as for a real request: the outbound entry on its port, else the Gateway
/// listener of the port whose hostname fits best.
fn explain(plan: &Plan, query: &str, outbound_port: u16, policy: OutboundPolicy) -> (u16, String) {
    let mut url = None;
    let mut method = "GET".to_string();
    let mut headers = Vec::new();
    let mut sni = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "url" => url = Some(v.into_owned()),
            "method" => method = v.into_owned(),
            "header" => headers.push(v.into_owned()),
            "sni" => sni = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(url) = url else {
        return (
            400,
            "give the request as ?url=http://HOST:PORT/PATH[&method=GET][&header=Name:%20value]\n"
                .into(),
        );
    };
    match mesh_model::plan::explain::Question::parse(&url, &method, &headers, sni.as_deref()) {
        Ok(q) => {
            let listener = if q.port == outbound_port {
                Some(MESH_LISTENER)
            } else {
                plan.listener_for(q.port, &q.host).map(|l| l.name.as_str())
            };
            let mut e = mesh_model::plan::explain::explain(plan, listener, &q);
            if policy == OutboundPolicy::RegistryOnly
                && e.outcome
                    .starts_with(mesh_model::plan::explain::PASSTHROUGH)
            {
                e.outcome = "502 not a Service of the mesh (outbound policy registry-only)".into();
            }
            (200, serde_json::to_string(&e).unwrap_or_default())
        }
        Err(e) => (400, format!("{e}\n")),
    }
}

/// `/clusters` as Envoy prints it: `cluster::address:port::field::value` lines.
fn clusters_text(plan: &Plan) -> String {
    let mut out = String::new();
    for c in plan.clusters.values() {
        for e in &c.endpoints {
            out.push_str(&format!(
                "{}::{}:{}::health_flags::healthy\n{}::{}:{}::weight::1\n",
                c.name, e.address, e.port, c.name, e.address, e.port
            ));
        }
    }
    out
}
