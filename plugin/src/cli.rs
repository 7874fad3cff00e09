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
    /// Color: auto (only on a terminal, never with NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
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
    /// Layer the files over the live cluster (needs cluster access).
    #[arg(long)]
    pub use_kube: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Yaml,
    Sarif,
}
