//! `mesh-agent`: the node agent's L7 proxy, running the Plan compiled from Gateway API objects.
//!
//! Standalone mode (`--config-dir`): the YAML in a folder is loaded off the serving threads,
//! checked with the rule catalog and compiled with partial validity: an object that admission
//! would refuse keeps its last good version, a cross-object problem gives its object the spec's
//! outcome, and everything else serves. The folder is reloaded when the kernel reports a change.
//! Gateway listeners bind `--gateway-addr` on their own ports; GAMMA traffic enters at
//! `--outbound-addr`. Every limit and timeout is a flag (docs/operations.md).

mod addresses;
mod admin;
mod body;
mod bpf;
mod cluster;
mod config;
mod ext_auth;
mod filters;
mod headers;
mod local_reply;
mod origination;
mod proxy;
mod relay;
mod serve;
mod stats;
mod tls;
mod udp;
mod upgrade;
mod upstream;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use mesh_model::load::LoadOptions;
use mesh_model::plan::{render, Plan, Protocol, MESH_LISTENER};
use tokio::sync::Semaphore;

use crate::admin::Status;
use crate::config::Loaded;
use crate::serve::{Acceptor, Limits};
use mesh_bpf::datapath::Limits as BpfLimits;

/// A duration flag: `10s`, `500ms`, `1m`, `1h30m` (Gateway API's duration format).
fn duration(text: &str) -> Result<Duration, String> {
    mesh_model::validate::duration_ms(text)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration: write it like 10s, 500ms, 1m or 1h30m"))
}

#[derive(Parser, Debug)]
#[command(
    name = "mesh-agent",
    version,
    about = "L7 proxy for Gateway API routes"
)]
struct Args {
    /// Run on the YAML in this folder (watched for changes). Without it the agent runs on
    /// the Kubernetes API (in-cluster, or --kubeconfig): it serves the Gateways of the
    /// GatewayClasses naming --controller-name, the mesh routes and Envoy configs, and the
    /// elected agent writes their statuses.
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Kubernetes mode: the kubeconfig to use (default: in-cluster, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes mode: the controllerName of the GatewayClasses whose Gateways this agent
    /// serves.
    #[arg(long, default_value = mesh_model::controller::CONTROLLER_NAME)]
    controller_name: String,
    /// Kubernetes mode: never write statuses (another agent or a dry run does).
    #[arg(long)]
    no_status: bool,
    /// Kubernetes mode: the Lease that elects the one agent writing statuses lives in this
    /// namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-system")]
    lease_namespace: String,
    #[arg(long, default_value = "mesh-agent-status")]
    lease_name: String,
    /// Kubernetes mode: who this agent is in the Lease (default: the pod name, else the host
    /// name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long a Lease not renewed stays held (client-go's LeaseDuration).
    #[arg(long, default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// How long the status writer keeps leading without renewing (client-go's RenewDeadline).
    #[arg(long, default_value = "10s", value_parser = duration)]
    lease_renew_deadline: Duration,
    /// How often the Lease is renewed or tried (client-go's RetryPeriod).
    #[arg(long, default_value = "2s", value_parser = duration)]
    lease_retry_period: Duration,
    /// Kubernetes mode: what a Gateway's status.addresses says when it has no address of its
    /// own (repeat for several; default: --gateway-addr, or when that is 0.0.0.0 the
    /// InternalIP of the node --node-name names).
    #[arg(long = "status-address")]
    status_addresses: Vec<std::net::IpAddr>,
    /// Kubernetes mode: the node this agent runs on (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Kubernetes mode: the most of one core rebuilding the Plan may take while the cluster
    /// keeps changing: after a rebuild that took T, the next waits at least T×(1−share)/share
    /// (and never less than --reload-delay-ms).
    #[arg(long, default_value_t = 0.5)]
    rebuild_share: f64,
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15001")]
    outbound_addr: SocketAddr,
    /// Address the Gateway listeners bind, each on its own port.
    #[arg(long, default_value = "127.0.0.1")]
    gateway_addr: std::net::IpAddr,
    /// Give each Gateway an address of its own from this range (CIDR, e.g. 127.0.10.0/24),
    /// as a cluster's load balancer does, instead of all sharing --gateway-addr: two Gateways
    /// may then both listen on port 80 without hostnames. `/gateways` on the admin API says
    /// which Gateway got which address.
    #[arg(long)]
    gateway_address_pool: Option<ipnet::IpNet>,
    /// After a file change, wait this long for more changes before reloading (milliseconds).
    #[arg(long, default_value_t = 100, alias = "reload-interval-ms")]
    reload_delay_ms: u64,
    /// Serve an empty configuration when the folder holds no objects (by default an emptied
    /// folder keeps the last good configuration, and one empty from the start is not ready).
    #[arg(long)]
    allow_empty_config: bool,
    /// Refuse configuration files larger than this (bytes, or with Ki/Mi/Gi).
    #[arg(long, default_value = "64Mi", value_parser = mesh_model::load::parse_size)]
    max_file_size: u64,
    /// The Gateway API channel whose CRDs the configuration is written for (standard or
    /// experimental). Without it, objects are checked against the experimental channel and
    /// what only the standard channel refuses is a warning (MESH0008).
    #[arg(long)]
    channel: Option<mesh_model::crd::Channel>,
    /// Worker threads, like Envoy's `--concurrency` (default: one per CPU the process may use).
    /// With 1 everything runs on one thread, without cross-thread hand-offs.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Time for a client to send a complete request head, from when its connection is ready
    /// for a request (this also closes HTTP/1.1 connections idle between requests).
    #[arg(long, default_value = "10s", value_parser = duration)]
    request_headers_timeout: Duration,
    /// Close a downstream connection with no request in flight after this long without bytes.
    #[arg(long, default_value = "60s", value_parser = duration)]
    idle_timeout: Duration,
    /// Reset a request in flight, a TLS passthrough connection or an upgraded (WebSocket)
    /// connection after this long without bytes either way (Envoy's stream_idle_timeout).
    #[arg(long, default_value = "300s", value_parser = duration)]
    stream_idle_timeout: Duration,
    /// End a UDP flow (a client address of a UDPRoute's listener) after this long without
    /// datagrams either way (Envoy's udp_proxy idle_timeout).
    #[arg(long, default_value = "60s", value_parser = duration)]
    udp_idle_timeout: Duration,
    /// Time for a TLS client to complete its handshake (or send its ClientHello, for TLS
    /// passthrough).
    #[arg(long, default_value = "10s", value_parser = duration)]
    tls_handshake_timeout: Duration,
    /// Downstream connections open at once (default: half the file descriptor limit, less a
    /// reserve); more are closed at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Time to connect to an upstream endpoint (Envoy's cluster connect_timeout).
    #[arg(long, default_value = "5s", value_parser = duration)]
    connect_timeout: Duration,
    /// Deadline for the whole response of a route that sets no timeout (Envoy's route
    /// default); `0s` disables it.
    #[arg(long, default_value = "15s", value_parser = duration)]
    default_route_timeout: Duration,
    /// Trusted proxies in front of the Gateway listeners (Envoy's xff_num_trusted_hops): with
    /// 0, a client's X-Forwarded-Proto and X-Request-Id are replaced; with more, kept.
    #[arg(long, default_value_t = 0)]
    xff_num_trusted_hops: u32,
    /// Merge runs of slashes in request paths before matching (Envoy's merge_slashes).
    #[arg(long)]
    merge_slashes: bool,
    /// Largest request body held to copy to RequestMirror targets (bytes, or with Ki/Mi/Gi);
    /// a larger request is forwarded without its copies.
    #[arg(long, default_value = "1Mi", value_parser = mesh_model::load::parse_size)]
    mirror_body_limit: u64,
    /// Largest request body held to send again when a route's `retry` policy retries it
    /// (bytes, or with Ki/Mi/Gi); a larger request is tried once.
    #[arg(long, default_value = "1Mi", value_parser = mesh_model::load::parse_size)]
    retry_body_limit: u64,
    /// How long an ExternalAuth filter waits for its authorization service before denying the
    /// request with 403 (Envoy's ext_authz default, 200ms).
    #[arg(long, default_value = "200ms", value_parser = duration)]
    external_auth_timeout: Duration,
    /// What the outbound entry does with a destination that is no Service: forward it as
    /// addressed (allow-any, Istio's ALLOW_ANY) or refuse it with 502 (registry-only).
    #[arg(long, value_enum, default_value_t = proxy::OutboundPolicy::AllowAny)]
    outbound_policy: proxy::OutboundPolicy,
    /// eBPF socket load balancing of Service ClusterIPs (bpf/): auto turns it on when the
    /// kernel and privileges allow and otherwise says why once; off also detaches what a
    /// previous agent left pinned.
    #[arg(long, value_enum, default_value_t = bpf::Mode::Auto)]
    bpf: bpf::Mode,
    /// The cgroup (v2) whose processes, and those of every cgroup below it, are balanced
    /// (default: the cgroup v2 root, mounted at /run/kubectl-mesh/cgroupv2 when the host has
    /// none).
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// Where the programs' maps and links are pinned (a bpf filesystem; mounted on
    /// /sys/fs/bpf when missing), so balancing goes on while the agent restarts.
    #[arg(long, default_value = mesh_bpf::datapath::DEFAULT_PIN_DIR)]
    bpf_pin_dir: PathBuf,
    /// Where connections to a Service with mesh routes are redirected: the outbound entry as
    /// clients reach it (default: --outbound-addr; needed when that is 0.0.0.0, e.g. the
    /// node's address in a DaemonSet).
    #[arg(long)]
    bpf_redirect_addr: Option<SocketAddr>,
    /// Service frontends (ClusterIP, port, protocol) the maps hold.
    #[arg(long, default_value_t = BpfLimits::DEFAULT.services)]
    bpf_max_services: u32,
    /// Backend slots the maps hold, all Services together (two generations of a Service's
    /// slots live while it changes).
    #[arg(long, default_value_t = BpfLimits::DEFAULT.slots)]
    bpf_max_backend_slots: u32,
    /// Connected sockets remembered at once (what each dialled, for getpeername and the
    /// redirect; an entry goes when its socket is released), and the LRU entries for the
    /// replies of unconnected UDP sockets and for redirected connections not yet accepted.
    #[arg(long, default_value_t = BpfLimits::DEFAULT.sockets)]
    bpf_max_sockets: u32,
    /// Slots one Service port may take: weights are scaled down to fit, and past this many
    /// backends the rest are left out.
    #[arg(long, default_value_t = BpfLimits::DEFAULT.slots_per_service)]
    bpf_slots_per_service: usize,
    /// Detach the eBPF programs a previous agent pinned under --bpf-pin-dir, remove the
    /// pins, and exit: the node's uninstall step (the programs otherwise keep balancing with
    /// the last maps, as they do while an agent restarts).
    #[arg(long)]
    bpf_uninstall: bool,
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

/// Logs go to stderr, with colors only on a terminal and never with NO_COLOR.
fn init_logging() {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Everything a Plan swap touches: the Plan itself, certificates, sockets, status.
struct Serving {
    proxy: Arc<proxy::Proxy>,
    certificates: Arc<tls::Certificates>,
    status: Arc<Mutex<Status>>,
    limits: Arc<Limits>,
    /// The one connection budget all proxy sockets share.
    permits: Arc<Semaphore>,
    gateway_addr: std::net::IpAddr,
    /// Per-Gateway addresses, with `--gateway-address-pool`.
    pool: Option<addresses::Pool>,
    outbound_addr: SocketAddr,
    /// One socket per address (and transport: UDP listeners have their own): listeners sharing
    /// a port share it (the proxy tells them apart by hostname per request, TLS by SNI).
    /// Sockets stay bound across reloads.
    bound: Vec<(SocketAddr, bool)>,
    /// How long a UDP flow lives without datagrams.
    udp_idle_timeout: Duration,
    /// The eBPF socket load balancer, given each new Plan's Service table.
    lb: Arc<bpf::LoadBalancer>,
}

impl Serving {
    /// Bind what the Plan needs that is not bound yet.
    fn bind(&mut self, plan: &Plan, runtime: &tokio::runtime::Handle) {
        for l in &plan.listeners {
            let addr = if l.name == MESH_LISTENER {
                self.outbound_addr
            } else {
                SocketAddr::new(l.address.unwrap_or(self.gateway_addr), l.port)
            };
            let udp = l.protocol == Protocol::Udp;
            if self.bound.contains(&(addr, udp)) {
                continue;
            }
            if udp {
                let (name, gateway_address, idle) =
                    (l.name.clone(), l.address, self.udp_idle_timeout);
                let (proxy, permits) = (self.proxy.clone(), self.permits.clone());
                runtime.spawn(async move {
                    let socket = match tokio::net::UdpSocket::bind(addr).await {
                        Ok(s) => Arc::new(s),
                        Err(e) => {
                            tracing::error!(%addr, listener = %name, error = %e, "cannot listen (UDP)");
                            return;
                        }
                    };
                    tracing::info!(%addr, listener = %name, "listening (UDP)");
                    let listener = udp::UdpListener {
                        socket,
                        address: gateway_address,
                        port: addr.port(),
                        name,
                        idle,
                    };
                    udp::serve(listener, proxy, permits).await;
                });
                self.bound.push((addr, true));
                continue;
            }
            let tls = match l.protocol {
                Protocol::Https | Protocol::Tls | Protocol::TlsTerminate => Some(Arc::new(
                    tls::server_config(self.certificates.clone(), l.address, l.port),
                )),
                _ => None,
            };
            let mesh = l.name == MESH_LISTENER;
            runtime.spawn(listen(
                Socket {
                    addr,
                    gateway_address: l.address,
                    name: l.name.clone(),
                    protocol: l.protocol.clone(),
                    original_destinations: mesh.then(|| self.lb.original_destinations()).flatten(),
                },
                self.proxy.clone(),
                tls,
                self.limits.clone(),
                self.permits.clone(),
            ));
            self.bound.push((addr, false));
        }
    }

    /// Take a load that began reading its source at `read_at`; the Plan now served, if the
    /// load had one.
    fn apply(
        &mut self,
        read_at: jiff::Timestamp,
        loaded: Loaded,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Arc<Plan>> {
        let now = jiff::Timestamp::now().to_string();
        match loaded {
            Loaded::Empty => {
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                status.last_reload = read_at.to_string();
                let why = "the configuration folder holds no objects; the last good configuration \
                           stays (start with --allow-empty-config to serve nothing)";
                tracing::error!("{why}");
                status.last_error = Some(why.into());
                None
            }
            Loaded::Plan {
                plan,
                left_out,
                errors,
                warnings,
            } => {
                let mut plan = plan;
                // A Gateway none of whose spec.addresses this node has is not served: said
                // where what is left out is said (/ready, the log).
                let mut left_out = left_out;
                left_out.extend(
                    addresses::bind_requested(&mut plan, addresses::bindable)
                        .into_iter()
                        .map(|gw| mesh_model::lastgood::LeftOut {
                            what: format!("Gateway {gw}"),
                            origin: "spec.addresses".into(),
                            reason: "none of its addresses can be bound on this node \
                                     (AddressNotUsable)"
                                .into(),
                            kept_last_good: false,
                        }),
                );
                if let Some(pool) = &mut self.pool {
                    pool.assign(&mut plan);
                }
                self.certificates.update(&plan);
                let hash = render::plan_hash(&plan);
                // Bound after the swap: a new port's first request must meet the Plan that
                // has its listener.
                let plan = Arc::new(*plan);
                self.proxy.current.swap(plan.clone());
                self.bind(&plan, runtime);
                // New connections meet the new backends; the Plan that routes what the
                // programs redirect is already in force.
                self.lb.sync(&plan);
                // The load is reported (its time with its outcome, under one lock) only once
                // it serves: whoever sees this `last_reload` sees its Plan and findings.
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                status.last_reload = read_at.to_string();
                status.loaded = true;
                status.reloads += 1;
                status.last_updated = now;
                status.plan_hash = hash;
                status.errors = errors;
                status.warnings = warnings;
                status.last_error = if left_out.is_empty() {
                    None
                } else {
                    Some(
                        left_out
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                };
                if left_out.is_empty() {
                    tracing::info!(errors, warnings, "configuration loaded");
                } else {
                    let first = &left_out[0];
                    tracing::warn!(
                        errors,
                        warnings,
                        left_out = left_out.len(),
                        "configuration loaded without what is invalid ({first}{}); see /ready",
                        if left_out.len() > 1 { ", ..." } else { "" }
                    );
                }
                status.left_out = left_out;
                drop(status);
                release_free_memory();
                Some(plan)
            }
        }
    }
}

/// A socket to serve: where, for which listener (named for statistics), by which protocol.
struct Socket {
    addr: SocketAddr,
    /// Set when the socket is one Gateway's own address (`--gateway-address-pool`).
    gateway_address: Option<std::net::IpAddr>,
    name: String,
    protocol: Protocol,
    /// The mesh entry with the eBPF programs on: where redirected connections were going.
    original_destinations: Option<mesh_bpf::datapath::OriginalDestinations>,
}

/// Accept on the socket's address and serve each connection by its protocol.
async fn listen(
    socket: Socket,
    proxy: Arc<proxy::Proxy>,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Arc<Limits>,
    permits: Arc<Semaphore>,
) {
    let Socket {
        addr,
        gateway_address,
        name,
        protocol,
        original_destinations,
    } = socket;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, listener = %name, error = %e, "cannot listen");
            return;
        }
    };
    tracing::info!(%addr, listener = %name, ?protocol, "listening");
    let acceptor = Acceptor::new(listener, permits, proxy.stats.overflow(&name));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer, permit) = acceptor.next().await;
        proxy.stats.connection(&name);
        let (proxy, tls, limits) = (proxy.clone(), tls.clone(), limits.clone());
        let inbound = Arc::new(proxy::Inbound {
            mesh: name == MESH_LISTENER,
            socket: name.clone(),
            address: gateway_address,
            port: addr.port(),
            scheme: if tls.is_some() { "https" } else { "http" },
            peer,
            original_dst: original_destinations.as_ref().and_then(|o| o.take(peer)),
            sni: std::sync::OnceLock::new(),
            _permit: Some(permit),
        });
        let tcp_relay = protocol == Protocol::Tcp;
        tokio::spawn(async move {
            match tls {
                _ if tcp_relay => relay::tcp(tcp, inbound, &proxy, &limits).await,
                Some(tls) => relay::tls(tcp, inbound, proxy, tls, limits).await,
                None => serve::http(tcp, inbound, proxy, None, limits).await,
            }
        });
    }
}

async fn run(args: Args) {
    init_logging();
    if args.bpf_uninstall {
        match bpf::detach(&args.bpf_pin_dir) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(pins = %args.bpf_pin_dir.display(), "no eBPF programs pinned there; nothing to detach")
            }
            Err(e) => {
                tracing::error!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let config_dir = args.config_dir.clone();
    let fd_limit = serve::raise_fd_limit();
    let limits = Arc::new(Limits {
        request_headers_timeout: args.request_headers_timeout,
        idle_timeout: args.idle_timeout,
        stream_idle_timeout: args.stream_idle_timeout,
        tls_handshake_timeout: args.tls_handshake_timeout,
        max_connections: args
            .max_connections
            .unwrap_or_else(|| serve::default_max_connections(fd_limit)),
    });
    tracing::info!(fd_limit, max_connections = limits.max_connections, "limits");
    let settings = proxy::Settings {
        connect_timeout: args.connect_timeout,
        default_route_timeout: (!args.default_route_timeout.is_zero())
            .then_some(args.default_route_timeout),
        tunnel_idle_timeout: args.stream_idle_timeout,
        xff_num_trusted_hops: args.xff_num_trusted_hops,
        merge_slashes: args.merge_slashes,
        mirror_body_limit: usize::try_from(args.mirror_body_limit).unwrap_or(usize::MAX),
        retry_body_limit: usize::try_from(args.retry_body_limit).unwrap_or(usize::MAX),
        external_auth_timeout: args.external_auth_timeout,
        outbound_policy: args.outbound_policy,
    };
    let status = Arc::new(Mutex::new(Status::default()));
    let proxy = Arc::new(proxy::Proxy::new(
        Arc::new(proxy::Current::default()),
        settings,
    ));
    let redirect = args
        .bpf_redirect_addr
        .or_else(|| (!args.outbound_addr.ip().is_unspecified()).then_some(args.outbound_addr));
    let lb = match bpf::start(&bpf::Options {
        mode: args.bpf,
        cgroup: args.cgroup.clone(),
        pin_dir: args.bpf_pin_dir.clone(),
        redirect,
        limits: BpfLimits {
            services: args.bpf_max_services,
            slots: args.bpf_max_backend_slots,
            sockets: args.bpf_max_sockets,
            slots_per_service: args.bpf_slots_per_service,
        },
    }) {
        Ok(lb) => Arc::new(lb),
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    let render = render::RenderOptions {
        gateway_address: args.gateway_addr.to_string(),
        outbound_address: args.outbound_addr.ip().to_string(),
        outbound_port: args.outbound_addr.port(),
        admin_port: args.admin_addr.port(),
    };
    tokio::spawn(admin::serve(
        args.admin_addr,
        status.clone(),
        proxy.clone(),
        render,
        limits.clone(),
        lb.clone(),
    ));
    let mut serving = Serving {
        proxy,
        certificates: Arc::new(tls::Certificates::default()),
        status,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        gateway_addr: args.gateway_addr,
        pool: args.gateway_address_pool.map(addresses::Pool::new),
        outbound_addr: args.outbound_addr,
        bound: Vec::new(),
        udp_idle_timeout: args.udp_idle_timeout,
        lb,
    };
    let runtime = tokio::runtime::Handle::current();
    let Some(config_dir) = config_dir else {
        let client = match mesh_kube::client::connect(args.kubeconfig.as_deref(), None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}; or pass --config-dir DIR to run on a folder");
                std::process::exit(1);
            }
        };
        let addresses = status_addresses(&args, &client).await;
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let election = (!args.no_status).then(|| mesh_kube::lease::Election {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            duration: args.lease_duration,
            renew_deadline: args.lease_renew_deadline,
            retry: args.lease_retry_period,
        });
        let opts = cluster::Options {
            controller: args.controller_name.clone(),
            election,
            manager: "mesh-agent".into(),
            pace: mesh_kube::watch::Pace {
                debounce: Duration::from_millis(args.reload_delay_ms),
                share: args.rebuild_share,
            },
            addresses,
            features: mesh_model::controller::SUPPORTED_FEATURES,
        };
        cluster::run(client, opts, move |read_at, loaded| {
            serving.apply(read_at, loaded, &runtime)
        })
        .await;
        return;
    };
    let opts = LoadOptions {
        max_file_bytes: args.max_file_size,
        channel: args.channel,
        ..LoadOptions::default()
    };
    let (dir, settle, allow_empty) = (
        config_dir,
        Duration::from_millis(args.reload_delay_ms),
        args.allow_empty_config,
    );
    // Loading is CPU work: its own thread, never a serving one.
    let loader = std::thread::Builder::new()
        .name("config-loader".into())
        .spawn(move || {
            config::watch(dir, opts, settle, allow_empty, |read_at, loaded| {
                serving.apply(read_at, loaded, &runtime);
            })
        });
    if let Err(e) = loader {
        tracing::error!(error = %e, "cannot start the configuration loader");
        std::process::exit(1);
    }
    std::future::pending::<()>().await;
}

/// What Gateways' status.addresses say when they have no address of their own: the flag, else
/// --gateway-addr when it is one address, else the node's InternalIP.
async fn status_addresses(args: &Args, client: &kube::Client) -> Vec<std::net::IpAddr> {
    if !args.status_addresses.is_empty() {
        return args.status_addresses.clone();
    }
    if !args.gateway_addr.is_unspecified() {
        return vec![args.gateway_addr];
    }
    let Some(node) = &args.node_name else {
        tracing::warn!("--gateway-addr is 0.0.0.0 and neither --status-address nor --node-name is given: Gateways' status will have no address");
        return Vec::new();
    };
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    match nodes.get(node).await {
        Ok(n) => n
            .status
            .and_then(|s| s.addresses)
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect(),
        Err(e) => {
            tracing::warn!(node, error = %e, "cannot read the node's addresses (pass --status-address); Gateways' status will have no address");
            Vec::new()
        }
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
