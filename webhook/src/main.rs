//! `mesh-webhook`: validating and mutating admission webhook for Gateway API objects and
//! Cilium Envoy configs, running the same rule catalog as `kubectl mesh analyze`.

use mesh_webhook::{cache, certs, review, server, tls};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mesh-webhook",
    version,
    about = "Admission webhook for Gateway API and Cilium Envoy configs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve POST /validate and /mutate over HTTPS, with /healthz, /readyz and /metrics.
    Serve {
        /// PEM certificate chain; reloaded when the file changes.
        #[arg(long)]
        tls_cert: PathBuf,
        /// PEM private key; reloaded when the file changes.
        #[arg(long)]
        tls_key: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8443")]
        addr: String,
        /// Run the rules about the object alone; do not watch the cluster.
        #[arg(long)]
        no_cluster: bool,
        /// The Gateway API channel whose CRDs the cluster runs (standard or experimental).
        /// Without it, objects are checked against the experimental channel and what only the
        /// standard channel refuses is a warning (MESH0008).
        #[arg(long)]
        channel: Option<mesh_model::crd::Channel>,
        /// How often to look for new certificate files.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        reload_interval: Duration,
        /// How long to batch cluster changes before the cache is rebuilt.
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        debounce: Duration,
        /// The most of one core rebuilding the cache's indexes may take while the cluster
        /// keeps changing (EndpointSlices churn): after a rebuild that took T, the next waits
        /// at least T×(1−share)/share. With 12,000 objects a rebuild takes tens of
        /// milliseconds, so under constant change the cache trails by a few hundred.
        #[arg(long, default_value = "0.1", value_parser = parse_share)]
        rebuild_share: f64,
        /// Deadline for answering one review (the API server waits at most the webhook
        /// configuration's timeoutSeconds, 5 s in manifests/webhook).
        #[arg(long, default_value = "4s", value_parser = parse_duration)]
        request_timeout: Duration,
        /// Time for a client to finish the TLS handshake.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        tls_handshake_timeout: Duration,
        /// Time for a client to send a complete request head (a trickling client is cut off).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        request_headers_timeout: Duration,
        /// Largest request body, in bytes or with Ki/Mi/Gi (the API server's own limit is 3Mi).
        #[arg(long, default_value = "3Mi", value_parser = mesh_model::load::parse_size)]
        max_body_size: u64,
    },
    /// Create a CA and a serving certificate for SERVICE.NAMESPACE.svc; prints the caBundle.
    Certs {
        /// The webhook's Service name.
        #[arg(long)]
        service: String,
        /// The webhook's namespace.
        #[arg(long)]
        namespace: String,
        /// Directory for ca.crt, ca.key, tls.crt and tls.key.
        #[arg(long)]
        out: PathBuf,
        /// Extra DNS names for the serving certificate (e.g. localhost for tests).
        #[arg(long = "san")]
        extra_names: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    mesh_model::validate::duration_ms(s)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is not a duration such as 500ms or 2s"))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a share of a core between 0 (excluded) and 1"
        )),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match cli.command {
        Command::Certs {
            service,
            namespace,
            out,
            extra_names,
            days,
        } => match certs::issue(&service, &namespace, &extra_names, &out, days) {
            Ok(issued) => {
                eprintln!(
                    "wrote {}/{{ca.crt,ca.key,tls.crt,tls.key}} for {service}.{namespace}.svc",
                    out.display()
                );
                println!("{}", issued.ca_bundle);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Serve {
            tls_cert,
            tls_key,
            addr,
            no_cluster,
            channel,
            reload_interval,
            debounce,
            rebuild_share,
            request_timeout,
            tls_handshake_timeout,
            request_headers_timeout,
            max_body_size,
        } => {
            let limits = server::Limits {
                max_body: usize::try_from(max_body_size).unwrap_or(usize::MAX),
                request_timeout,
                tls_handshake_timeout,
                request_headers_timeout,
            };
            tracing_subscriber::fmt()
                .json()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let cluster = if no_cluster {
                None
            } else {
                Some(cache::Pace {
                    debounce,
                    share: rebuild_share,
                })
            };
            match runtime.block_on(run(
                tls_cert,
                tls_key,
                addr,
                reload_interval,
                cluster,
                channel,
                limits,
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Serve; with `cluster` (how the cache's rebuilds are paced), watch the cluster through the usual kube
/// configuration (in-cluster, or KUBECONFIG / ~/.kube/config).
async fn run(
    cert: PathBuf,
    key: PathBuf,
    addr: String,
    reload: Duration,
    cluster: Option<cache::Pace>,
    channel: Option<mesh_model::crd::Channel>,
    limits: server::Limits,
) -> Result<(), String> {
    let pair = tls::load(&cert, &key).map_err(|e| e.to_string())?;
    let resolver = tls::Reloading::new(pair);
    tokio::spawn(resolver.clone().watch(cert, key, reload));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let state = server::AppState::new(false, channel);
    match cluster {
        // No cluster: the view is the empty one, and the webhook is ready at once.
        None => state.set_cluster(review::ClusterView::default()),
        // Ready once every kind's initial list is in.
        Some(pace) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                format!("cannot reach the Kubernetes API: {e} (use --no-cluster to run without it)")
            })?;
            tokio::spawn(cache::run(client, state.clone(), pace));
        }
    }
    tracing::info!(addr = %local, cluster = cluster.is_some(), "mesh-webhook serving");
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        tracing::info!("shutting down");
    };
    server::serve(
        listener,
        tls::server_config(resolver),
        server::router(state, &limits),
        shutdown,
        Duration::from_secs(5),
        limits,
    )
    .await
    .map_err(|e| e.to_string())
}
