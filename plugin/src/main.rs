//! `kubectl-mesh`: the kubectl plugin (`kubectl mesh ...`).
//!
//! Data goes to stdout, logs and summaries to stderr. Exit codes follow istioctl's sysexits
//! numbers so CI pipelines can move over: 0 clean, 79 findings at or above the failure
//! threshold, 65 unreadable input, 64 usage error, in every output format.

mod analyze;
mod cli;
mod cluster;
mod dump;
mod explain;
mod proxy_config;
mod proxy_status;
mod report;
mod services;
mod suppress;
mod table;
mod target;

/// analyze allocates a value, its line table and its typed form for every field of every
/// object; mimalloc does that about a fifth faster than glibc's allocator (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes shared by every subcommand.
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 64;
    pub const BAD_INPUT: u8 = 65;
    pub const FINDINGS: u8 = 79;
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(match cli.command {
        cli::Command::Analyze(args) => analyze::run(&cli.global, &args),
        cli::Command::ProxyConfig { section } => proxy_config::run(&cli.global, &section),
        cli::Command::Explain(args) => explain::run(&cli.global, &args),
        cli::Command::ProxyStatus(args) => proxy_status::run(&cli.global, &args),
        cli::Command::Version => print(&format!("kubectl-mesh {}\n", env!("CARGO_PKG_VERSION"))),
        cli::Command::Completion { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kubectl-mesh", &mut script);
            print(&String::from_utf8_lossy(&script))
        }
    })
}

/// Write data to stdout. A reader that goes away (`| head`) ends the output quietly: never a
/// panic, as `println!` would.
pub fn print(text: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            exit::BAD_INPUT
        }
    }
}
