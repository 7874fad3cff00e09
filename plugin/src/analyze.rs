//! `kubectl mesh analyze`: load, check, filter, report, and pick the exit code.

use std::io::IsTerminal;

use mesh_model::load::{FileSource, Input, LoadOptions, ObjectSource};
use mesh_model::{rules, Kind, Level, Snapshot};

use crate::cli::{AnalyzeArgs, ColorMode, Format, Global};
use crate::report;
use crate::suppress::Suppression;
use crate::{exit, print};

/// Whether to color stdout: only on a terminal, never with NO_COLOR (https://no-color.org).
pub fn use_color(mode: ColorMode, stream_is_tty: bool) -> bool {
    match mode {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => {
            stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

pub fn run(global: &Global, args: &AnalyzeArgs) -> u8 {
    let color = use_color(global.color, std::io::stdout().is_terminal());
    if args.list_rules {
        return print(&report::rules(args.output, color));
    }
    let mut suppressions = Vec::new();
    for s in &args.suppress {
        match Suppression::parse(s) {
            Ok(sup) => {
                if !sup.code().contains('*') && rules::find(sup.code()).is_none() {
                    eprintln!("warning: suppressed code {:?} is not a known rule and has no effect (see --list-rules)", sup.code());
                }
                suppressions.push(sup);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    if args.paths.is_empty() || args.use_kube {
        eprintln!("error: analyzing a live cluster needs the Kubernetes integration, which this build does not include yet.");
        eprintln!("Pass files or directories instead, e.g. `kubectl mesh analyze ./manifests`, or `-` to read stdin.");
        return exit::USAGE;
    }

    let source = FileSource {
        inputs: args.paths.iter().map(|p| Input::parse(p)).collect(),
    };
    let opts = LoadOptions {
        default_namespace: global.namespace.clone(),
        max_file_bytes: global.max_file_size,
        channel: global.channel,
    };
    let (objects, load_errors) = source.objects(&opts);
    for e in &load_errors {
        eprintln!("error: {e}");
    }
    let files: std::collections::BTreeSet<String> = objects
        .iter()
        .map(|o| o.origin.source.to_string())
        .collect();
    let snapshot = Snapshot::new(objects);
    let all = rules::check(&snapshot);
    let kept: Vec<_> = all
        .into_iter()
        .filter(|d| !suppressions.iter().any(|s| s.matches(d)))
        .collect();
    let shown: Vec<_> = kept
        .iter()
        .filter(|d| d.level.at_least(args.output_threshold))
        .cloned()
        .collect();

    let out = match args.output {
        Format::Text => report::text(&shown, color),
        Format::Json => report::json(&shown),
        Format::Yaml => report::yaml(&shown),
        Format::Sarif => report::sarif(&shown),
    };
    let status = print(&out);
    if status != exit::OK {
        return status;
    }
    summary(
        &snapshot,
        &kept,
        files.len(),
        use_color(global.color, std::io::stderr().is_terminal()),
    );

    // The process ends next: leave the snapshot to the OS instead of freeing it piece by
    // piece (a measurable share of the run time for large inputs).
    std::mem::forget(snapshot);
    if !load_errors.is_empty() {
        exit::BAD_INPUT
    } else if kept
        .iter()
        .any(|d| d.level.at_least(args.failure_threshold))
    {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// One line on stderr: counts, and which cross-object checks had nothing to check against.
fn summary(snap: &Snapshot, findings: &[mesh_model::Diagnostic], files: usize, color: bool) {
    let count = |l: Level| findings.iter().filter(|d| d.level == l).count();
    let (e, w, i) = (
        count(Level::Error),
        count(Level::Warning),
        count(Level::Info),
    );
    let objects = snap.objects().len();
    let line = if findings.is_empty() {
        format!(
            "No issues found in {} from {}.",
            plural(objects, "object"),
            plural(files, "file")
        )
    } else {
        format!(
            "{}, {}, {} in {} from {}.",
            plural(e, "error"),
            plural(w, "warning"),
            plural(i, "info"),
            plural(objects, "object"),
            plural(files, "file")
        )
    };
    let line = if color {
        let painted = if e > 0 {
            "\x1b[31m"
        } else if w > 0 {
            "\x1b[33m"
        } else {
            "\x1b[32m"
        };
        format!("{painted}{line}\x1b[0m")
    } else {
        line
    };
    eprintln!("{line}");
    let missing: Vec<&str> = [
        (Kind::Service, "backend and parent Service"),
        (Kind::Gateway, "parent Gateway"),
        (Kind::Secret, "certificate"),
        (Kind::Namespace, "namespace-selector"),
        (Kind::EndpointSlice, "endpoint"),
    ]
    .iter()
    .filter(|(k, _)| !snap.has_kind(*k))
    .map(|(_, what)| *what)
    .collect();
    if !missing.is_empty() && objects > 0 {
        eprintln!("note: the input has no objects for {} checks; they were skipped (add those objects, or analyze against a cluster).", missing.join(", "));
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
