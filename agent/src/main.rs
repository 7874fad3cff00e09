//! `mesh-agent`: the node agent's L7 proxy, running the Plan compiled from Gateway API objects.
//!
//! Standalone mode (`--config-dir`): the YAML in a folder is loaded, checked with the rule
//! catalog and compiled; a change is compiled and swapped in whole, and a change with Error
//! findings (or unreadable YAML) keeps the last good Plan and says why in the log and in
//! `/ready`. Gateway listeners bind `--gateway-addr` on their own ports; GAMMA traffic enters at
//! `--outbound-addr`.

mod passthrough;
mod proxy;
mod stats;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_model::load::{FileSource, Input, LoadOptions};
use mesh_model::plan::{compile, render, Plan, Protocol, MESH_LISTENER};
use mesh_model::{rules, Level};

#[derive(Parser, Debug)]
#[command(
    name = "mesh-agent",
    version,
    about = "L7 proxy for Gateway API routes"
)]
struct Args {
    /// Run on the YAML in this folder (watched for changes).
    #[arg(long)]
    config_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15001")]
    outbound_addr: SocketAddr,
    /// Address the Gateway listeners bind, each on its own port.
    #[arg(long, default_value = "127.0.0.1")]
    gateway_addr: std::net::IpAddr,
    /// How often to look at the config dir for changes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    reload_interval_ms: u64,
    /// Worker threads, like Envoy's `--concurrency` (default: one per CPU the process may use).
    /// With 1 everything runs on one thread, without cross-thread hand-offs.
    #[arg(long)]
    concurrency: Option<usize>,
}

/// The outcome of the last load, for `/ready` and `/server_info`.
#[derive(Default, Clone)]
struct Status {
    loaded: bool,
    last_error: Option<String>,
    reloads: u64,
    /// When the Plan in force was loaded (RFC 3339), for the config dump.
    last_updated: String,
    /// When the folder was last loaded, successfully or not (RFC 3339).
    last_reload: String,
    /// SHA-256 of the Plan in force, rendered: equal hashes mean agents run the same config.
    plan_hash: String,
}

/// Load, check and compile the folder. Error findings or unreadable files refuse the change.
fn load(dir: &std::path::Path) -> Result<Plan, String> {
    let source = FileSource {
        inputs: vec![Input::Path(dir.to_path_buf())],
    };
    let (snap, findings, errors) = rules::check_slim(&source, &LoadOptions::default());
    if let Some(e) = errors.first() {
        return Err(format!("{e}"));
    }
    let findings: Vec<String> = findings
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .map(|d| d.to_string())
        .collect();
    if !findings.is_empty() {
        return Err(findings.join("\n"));
    }
    Ok(compile(&snap))
}

/// Serve HTTP/1.1 and h2c on `addr` for the listener named `name`; with `tls`, terminate TLS
/// first (HTTPS listeners).
async fn listen(
    addr: SocketAddr,
    name: String,
    proxy: Arc<proxy::Proxy>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, listener = %name, error = %e, "cannot listen");
            return;
        }
    };
    tracing::info!(%addr, listener = %name, tls = tls.is_some(), "listening");
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        proxy.stats.connection(&name);
        let (proxy, acceptor) = (proxy.clone(), acceptor.clone());
        let inbound = Arc::new(proxy::Inbound {
            mesh: name == MESH_LISTENER,
            socket: name.clone(),
            port: addr.port(),
            scheme: if acceptor.is_some() { "https" } else { "http" },
            peer,
        });
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (proxy, inbound) = (proxy.clone(), inbound.clone());
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(&inbound, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
}

async fn admin(
    addr: SocketAddr,
    status: Arc<Mutex<Status>>,
    proxy: Arc<proxy::Proxy>,
    render: render::RenderOptions,
) {
    let render = Arc::new(render);
    let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
        tracing::error!(%addr, "cannot listen for the admin API");
        return;
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (status, proxy, render) = (status.clone(), proxy.clone(), render.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let s = status.lock().map(|s| s.clone()).unwrap_or_default();
                let plan = proxy.current.plan();
                let proxy = proxy.clone();
                let render = render.clone();
                async move {
                    let (code, body) = match req.uri().path() {
                        "/ready" if s.loaded => (200, format!("LIVE\n{}", s.last_error.map(|e| format!("last change rejected:\n{e}\n")).unwrap_or_default())),
                        "/ready" => (503, format!("no configuration loaded\n{}\n", s.last_error.unwrap_or_default())),
                        "/server_info" => (
                            200,
                            serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "state": if s.loaded { "LIVE" } else { "INITIALIZING" }, "reloads": s.reloads, "plan_hash": s.plan_hash, "plan_loaded": s.last_updated, "last_reload": s.last_reload, "last_reload_error": s.last_error}).to_string(),
                        ),
                        "/config_dump" => (200, render::config_dump(&plan, &render, &s.last_updated).to_string()),
                        "/clusters" if req.uri().query() == Some("format=json") => (200, render::clusters_json(&plan).to_string()),
                        "/clusters" => (200, clusters_text(&plan)),
                        "/stats/prometheus" => (200, proxy.stats.prometheus()),
                        "/explain" => explain(&plan, req.uri().query().unwrap_or(""), render.outbound_port),
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
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn main() {
    let args = Args::parse();
    let workers = args
        .concurrency
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let current = Arc::new(proxy::Current::default());
    let status = Arc::new(Mutex::new(Status::default()));
    let proxy = Arc::new(proxy::Proxy::new(current.clone()));
    let certificates = Arc::new(tls::Certificates::default());
    let render = render::RenderOptions {
        gateway_address: args.gateway_addr.to_string(),
        outbound_address: args.outbound_addr.ip().to_string(),
        outbound_port: args.outbound_addr.port(),
        admin_port: args.admin_addr.port(),
    };
    tokio::spawn(admin(
        args.admin_addr,
        status.clone(),
        proxy.clone(),
        render.clone(),
    ));

    // One socket per address: listeners sharing a port share it (the proxy tells them apart by
    // hostname per request, TLS by SNI). Sockets stay bound across reloads.
    let mut bound: Vec<SocketAddr> = Vec::new();
    let mut seen: Option<Vec<u8>> = None;
    loop {
        // Reload when the folder's contents change (a fingerprint of every file's bytes).
        let fingerprint = fingerprint(&args.config_dir);
        if seen.as_ref() != Some(&fingerprint) {
            seen = Some(fingerprint);
            match load(&args.config_dir) {
                Ok(plan) => {
                    for l in &plan.listeners {
                        let addr = if l.name == MESH_LISTENER {
                            args.outbound_addr
                        } else {
                            SocketAddr::new(args.gateway_addr, l.port)
                        };
                        if bound.contains(&addr) {
                            continue;
                        }
                        let name = l.name.clone();
                        match l.protocol {
                            Protocol::Tls => {
                                tokio::spawn(passthrough::listen(addr, name, proxy.clone()));
                            }
                            Protocol::Https => {
                                let tls = tls::server_config(certificates.clone(), l.port);
                                tokio::spawn(listen(
                                    addr,
                                    name,
                                    proxy.clone(),
                                    Some(Arc::new(tls)),
                                ));
                            }
                            Protocol::Http => {
                                tokio::spawn(listen(addr, name, proxy.clone(), None));
                            }
                        }
                        bound.push(addr);
                    }
                    certificates.update(&plan);
                    let hash = render::plan_hash(&plan);
                    current.swap(plan);
                    if let Ok(mut s) = status.lock() {
                        s.loaded = true;
                        s.last_error = None;
                        s.reloads += 1;
                        s.last_updated = jiff::Timestamp::now().to_string();
                        s.last_reload = s.last_updated.clone();
                        s.plan_hash = hash;
                    }
                    tracing::info!("configuration loaded");
                    release_free_memory();
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration rejected; keeping the last good one");
                    if let Ok(mut s) = status.lock() {
                        s.last_error = Some(e);
                        s.last_reload = jiff::Timestamp::now().to_string();
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(args.reload_interval_ms)).await;
    }
}

/// Give the heap's free pages back to the system. Loading parses every object with its lines
/// for the checks, several times the size of the Plan that is kept; glibc keeps freed memory
/// for reuse, so without this the agent would hold its load-time peak for good.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Every file's path and bytes, in order: a change to any file changes it.
fn fingerprint(dir: &std::path::Path) -> Vec<u8> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(f.display().to_string().into_bytes());
        out.extend(std::fs::read(&f).unwrap_or_default());
    }
    out
}

/// `/explain?url=URL[&method=M][&header=Name:%20value]...[&sni=NAME]`: why the agent would
/// send that request where it does (JSON; `kubectl mesh explain --admin` prints it). The
/// listener is picked as for a real request: the outbound entry on its port, else the Gateway
/// listener of the port whose hostname fits best.
fn explain(plan: &Plan, query: &str, outbound_port: u16) -> (u16, String) {
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
            let e = mesh_model::plan::explain::explain(plan, listener, &q);
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
