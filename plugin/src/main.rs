//! `kubectl-mesh`: the kubectl plugin (`kubectl mesh ...`).
//!
//! Data goes to stdout, logs and summaries to stderr. Exit codes follow istioctl's sysexits
//! numbers so CI pipelines can move over: 0 clean, 79 findings at or above the failure
//! threshold, 65 unreadable input, 64 usage error, in every output format.

mod analyze;
mod cli;
mod report;
mod suppress;

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
        cli::Command::Version => {
            println!("kubectl-mesh {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        cli::Command::Completion { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kubectl-mesh", &mut std::io::stdout());
            exit::OK
        }
    })
}
