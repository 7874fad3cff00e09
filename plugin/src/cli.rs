//! Command-line interface, with kubectl's conventions (`-n`, `-A`, `--context`, `-o`).

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "kubectl-mesh", bin_name = "kubectl mesh", version, about = "Check, explain and inspect Gateway API and Envoy configuration", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes, as kubectl spells them.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Namespace of objects that do not name one (and, for a cluster, the namespace to read).
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    /// All namespaces (cluster mode).
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
    /// kubeconfig context (cluster mode).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (cluster mode).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,
    /// How `pod/NAME` and `node/NAME` targets reach an agent's admin API: through the API
    /// server (port-forward), or at the pod's IP (direct, from inside the cluster network).
    #[arg(long, global = true, value_enum, default_value_t = Via::PortForward)]
    pub via: Via,
    /// Color: auto (only on a terminal, never with NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
    /// Refuse input files larger than this (bytes, or with Ki/Mi/Gi), unread past the limit.
    #[arg(long, global = true, default_value = "64Mi", value_parser = mesh_model::load::parse_size)]
    pub max_file_size: u64,
    /// The Gateway API channel whose CRDs the cluster runs (standard or experimental). Without
    /// it, the channel is read from Gateway API CRDs among the inputs; failing that, objects are
    /// checked against the experimental channel and what only the standard channel refuses is
    /// a warning (MESH0008).
    #[arg(long, global = true)]
    pub channel: Option<mesh_model::crd::Channel>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Find what the API server would reject and what would silently break traffic.
    #[command(after_long_help = ANALYZE_HELP)]
    Analyze(AnalyzeArgs),
    /// Show what a proxy is running: listeners, routes, clusters, endpoints, secrets.
    #[command(name = "proxy-config", after_long_help = PROXY_CONFIG_HELP)]
    ProxyConfig {
        #[command(subcommand)]
        section: ProxyConfigSection,
    },
    /// Why a request goes where it goes: listener, route, filters, backends, or why not.
    #[command(after_long_help = EXPLAIN_HELP)]
    Explain(ExplainArgs),
    /// Whether each mesh-agent runs the configuration it should: SYNCED, STALE or ERROR.
    #[command(name = "proxy-status", after_long_help = PROXY_STATUS_HELP)]
    ProxyStatus(ProxyStatusArgs),
    /// Print the plugin's version.
    Version,
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const ANALYZE_HELP: &str = "Examples:
  kubectl mesh analyze ./manifests                 # every .yaml/.yml/.json below the folder
  kubectl mesh analyze route.yaml -o sarif > mesh.sarif
  helm template . | kubectl mesh analyze -
  kubectl mesh analyze . -S 'MESH2104=HTTPRoute shop/*' --failure-threshold warning
  kubectl mesh analyze -n shop                      # the live cluster: namespace shop (-A: all)
  kubectl mesh analyze --use-kube ./manifests       # what applying them would break

Exit codes: 0 nothing at or above the failure threshold, 79 findings, 65 unreadable input, 64 usage error.
Suppress in the object itself with the annotation kubectl-mesh.io/suppress: \"MESH2104,MESH9001\" (or \"*\").";

#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Files and directories (recursive: .yaml, .yml, .json); `-` reads stdin.
    pub paths: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Exit with 79 when a finding is at or above this level.
    #[arg(long, default_value = "error")]
    pub failure_threshold: mesh_model::Level,
    /// Report findings at or above this level.
    #[arg(long, default_value = "info")]
    pub output_threshold: mesh_model::Level,
    /// Suppress findings: 'CODE=Kind namespace/name' ('*' wildcards; cluster-scoped: 'CODE=Kind name').
    #[arg(short = 'S', long = "suppress")]
    pub suppress: Vec<String>,
    /// List the rules instead of analyzing.
    #[arg(long)]
    pub list_rules: bool,
    /// Layer the files over the live cluster and report what applying them would change:
    /// the findings the cluster does not have yet (`--all-findings`: every finding of the
    /// result).
    #[arg(long)]
    pub use_kube: bool,
    /// With --use-kube: report every finding of the cluster with the files applied, not only
    /// those the files bring.
    #[arg(long, requires = "use_kube")]
    pub all_findings: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    PortForward,
    Direct,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Yaml,
    Sarif,
}

const PROXY_CONFIG_HELP: &str = "Examples:
  kubectl mesh proxy-config routes --admin http://127.0.0.1:15000      # mesh-agent or any Envoy
  kubectl mesh proxy-config clusters --file dump.json                   # a saved /config_dump?include_eds
  kubectl mesh proxy-config routes --admin localhost:15000 --domain bookinfo -o json | jq .
  kubectl mesh proxy-config diff before.json --admin http://127.0.0.1:15000

Exit codes: 0 shown, 65 the proxy or file could not be read, 64 usage error.";

#[derive(Subcommand, Debug)]
pub enum ProxyConfigSection {
    /// Listeners, one row per filter chain: address, port, protocol and match, destination.
    Listeners(ProxyConfigArgs),
    /// Routes: route config, virtual host, domains, every match condition, action, source.
    Routes(ProxyConfigArgs),
    /// Clusters: type, load-balancing policy, endpoints, circuit breakers, outlier detection.
    Clusters(ProxyConfigArgs),
    /// Endpoints: address, health, outlier check (live proxies), weight, cluster.
    Endpoints(ProxyConfigArgs),
    /// Secrets: type, status, certificate validity, serial and dates.
    Secrets(ProxyConfigArgs),
    /// Every section.
    All(ProxyConfigArgs),
    /// The eBPF socket load balancer's Services: each ClusterIP frontend with its backends
    /// and weights, or the agent's outbound entry (L7), like `cilium-dbg service list`.
    Services(ServicesArgs),
    /// What changed between two configurations, section by section (each an admin URL or a
    /// dump file).
    Diff {
        /// The configuration before: an admin URL (http://host:port) or a dump file.
        before: String,
        /// The configuration after.
        after: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ProxyConfigArgs {
    /// `pod/NAME` or `node/NAME`: the mesh-agent there (needs cluster access).
    pub target: Option<String>,
    /// An Envoy-compatible admin API: mesh-agent, or Envoy as run by Cilium, Istio or Envoy Gateway.
    #[arg(long, conflicts_with_all = ["file", "target"])]
    pub admin: Option<String>,
    /// A saved `/config_dump` (take it with `?include_eds` to have endpoints).
    #[arg(long, conflicts_with = "target")]
    pub file: Option<String>,
    /// Output format: a table, names only, or the raw sections.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TableFormat::Table)]
    pub output: TableFormat,
    /// Only the listener, route configuration, cluster or secret of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only listeners on this port (and the routes they serve).
    #[arg(long)]
    pub port: Option<u16>,
    /// Only virtual hosts whose domains cover this host.
    #[arg(long)]
    pub domain: Option<String>,
    /// Only this cluster (its endpoints, and the routes that send to it).
    #[arg(long)]
    pub cluster: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServicesArgs {
    /// `pod/NAME` or `node/NAME`: the mesh-agent there (needs cluster access).
    pub target: Option<String>,
    /// A mesh-agent's admin API (`/services`).
    #[arg(long, conflicts_with_all = ["bpf_pin", "target"])]
    pub admin: Option<String>,
    /// Read the pinned maps under this folder directly (on the node, as root), like
    /// `cilium-dbg bpf lb list`: what the kernel balances even with no agent running.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/sys/fs/bpf/kubectl-mesh", conflicts_with = "target")]
    pub bpf_pin: Option<std::path::PathBuf>,
    /// Output format: a table, frontends only, or the raw list.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TableFormat::Table)]
    pub output: TableFormat,
    /// Only the frontends of this Service (`namespace/name`).
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Table,
    Short,
    Json,
    Yaml,
}

const EXPLAIN_HELP: &str = "Examples:
  kubectl mesh explain http://bookinfo:8080/details/1 -f examples/          # compiled from files
  kubectl mesh explain 'http://x:8080/?great=example' -H 'magic: foo' -f examples/
  kubectl mesh explain http://echo.gamma/v2 --admin http://127.0.0.1:15000   # a running mesh-agent
  kubectl mesh explain https://any:443/ --sni nginx.example.com -f examples/tls
  kubectl mesh explain http://shop.example/cart --admin node/worker-1      # the agent on a node

The URL's port picks the Gateway listener (the outbound entry for a mesh Service name); the
Host header, if given, replaces the URL's host. Exit codes: 0 explained, 65 unreadable input or
agent, 64 usage error.";

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    /// The request's URL, as curl takes it.
    pub url: String,
    /// Method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// A header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// TLS server name, for TLS passthrough listeners.
    #[arg(long)]
    pub sni: Option<String>,
    /// Files and directories of Gateway API objects to compile.
    #[arg(short = 'f', long = "filename", conflicts_with = "admin")]
    pub files: Vec<String>,
    /// A running mesh-agent: its admin API's URL, or `pod/NAME` / `node/NAME` on a cluster.
    #[arg(long)]
    pub admin: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ExplainFormat::Text)]
    pub output: ExplainFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainFormat {
    Text,
    Json,
    Yaml,
}

const PROXY_STATUS_HELP: &str = "Examples:
  kubectl mesh proxy-status --admin http://127.0.0.1:15000 -f examples/     # standalone agent vs files
  kubectl mesh proxy-status --admin node-a:15000 --admin node-b:15000 -f ./config
  kubectl mesh proxy-status                       # every agent of the cluster vs the cluster

STATUS is SYNCED when the agent's Plan hash equals the hash of the Plan compiled from -f, STALE
when it differs, ERROR when the agent cannot be reached or its last reload was refused. Without
-f the agents' own state is shown. Exit codes: 0 all SYNCED (or no -f), 79 some STALE or ERROR,
65 unreadable files, 64 usage error.";

#[derive(Args, Debug, Clone)]
pub struct ProxyStatusArgs {
    /// A mesh-agent: its admin API's URL, or `pod/NAME` / `node/NAME` (repeatable). Without
    /// it, every agent of the cluster (pods labelled app.kubernetes.io/name=mesh-agent).
    #[arg(long)]
    pub admin: Vec<String>,
    /// The configuration the agents should run: files and directories of Gateway API YAML
    /// (without it, on a cluster: the Plan compiled from the cluster as the agents compile it).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ExplainFormat::Text)]
    pub output: ExplainFormat,
}
