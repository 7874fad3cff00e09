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
    let opts = LoadOptions {
        default_namespace: global.namespace.clone(),
        max_file_bytes: global.max_file_size,
        channel: global.channel,
    };
    let (files, load_errors) = if args.paths.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let source = FileSource {
            inputs: args.paths.iter().map(|p| Input::parse(p)).collect(),
        };
        source.objects(&opts)
    };
    for e in &load_errors {
        eprintln!("error: {e}");
    }
    let sources: std::collections::BTreeSet<String> =
        files.iter().map(|o| o.origin.source.to_string()).collect();
    let cluster = args.paths.is_empty() || args.use_kube;
    let (snapshot, all) = if !cluster {
        let snapshot = Snapshot::new(files);
        let all = rules::check(&snapshot);
        (snapshot, all)
    } else {
        let listed = match crate::cluster::read(global) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        };
        if args.use_kube {
            let before = rules::check(&Snapshot::complete(listed.objects.clone(), &listed.served));
            let after = Snapshot::complete(
                Snapshot::layered(listed.objects, files).into_objects(),
                &listed.served,
            );
            let mut all = rules::check(&after);
            if !args.all_findings {
                let known: std::collections::HashSet<_> = before.iter().map(finding_key).collect();
                all.retain(|d| !known.contains(&finding_key(d)));
            }
            (after, all)
        } else {
            let snapshot = Snapshot::complete(listed.objects, &listed.served);
            let mut all = rules::check(&snapshot);
            // The whole cluster is checked (a route's Gateway, grants and backends live in
            // other namespaces); the namespace asked for is what is reported.
            if !global.all_namespaces {
                all.retain(|d| d.resource.namespace.as_deref() == Some(global.namespace.as_str()));
            }
            (snapshot, all)
        }
    };
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
    let from = match (cluster, sources.len()) {
        (false, n) => plural(n, "file"),
        (true, 0) => "the cluster".to_string(),
        (true, n) => format!("the cluster and {}", plural(n, "file")),
    };
    summary(
        &snapshot,
        &kept,
        &from,
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

/// What makes a finding the same before and after the files are applied: rule, object, field
/// and message (not where the object stands: a file object's origin differs from the
/// cluster's).
fn finding_key(d: &mesh_model::Diagnostic) -> (&str, &mesh_model::ObjectRef, &str, &str) {
    (d.code, &d.resource, &d.field, &d.message)
}

/// One line on stderr: counts, and which cross-object checks had nothing to check against.
fn summary(snap: &Snapshot, findings: &[mesh_model::Diagnostic], from: &str, color: bool) {
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
            from
        )
    } else {
        format!(
            "{}, {}, {} in {} from {}.",
            plural(e, "error"),
            plural(w, "warning"),
            plural(i, "info"),
            plural(objects, "object"),
            from
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
