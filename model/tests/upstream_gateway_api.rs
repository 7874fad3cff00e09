//! The Gateway API release's own examples, measured with the model: every invalid example
//! (`hack/invalid-examples`, which upstream's CI proves the API server refuses) is refused with
//! an Error, and no valid example (`examples/`) gets one.
//!
//! The material comes from the Go module `sigs.k8s.io/gateway-api` at the release the CRD
//! catalog was generated from, fetched through the Go module proxy at test time (`go` must be
//! on PATH; the module is cached in GOMODCACHE after the first run).

use std::path::{Path, PathBuf};

use mesh_model::crd::Channel;
use mesh_model::load::{load_str, LoadOptions};
use mesh_model::{rules, Diagnostic, Level, Snapshot, Source};

mod upstream;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What analyze reports for one file on its own, under `channel` (`None`: not known).
fn findings(file: &Path, channel: Option<Channel>) -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(file).unwrap();
    let opts = LoadOptions {
        channel,
        ..LoadOptions::default()
    };
    let objects = load_str(
        &text,
        Source::File(file.display().to_string().into()),
        &opts,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    rules::check(&Snapshot::new(objects))
}

/// The Errors among them.
fn errors(file: &Path, channel: Option<Channel>) -> Vec<Diagnostic> {
    findings(file, channel)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect()
}

fn channels() -> [(Channel, &'static str); 2] {
    [
        (Channel::Standard, "standard"),
        (Channel::Experimental, "experimental"),
    ]
}

#[test]
fn every_invalid_example_is_refused() {
    let root = upstream::module_dir("sigs.k8s.io/gateway-api").join("hack/invalid-examples");
    let mut missed = Vec::new();
    let mut count = 0;
    for (channel, dir) in channels() {
        for file in yaml_files(&root.join(dir)) {
            count += 1;
            let errs = errors(&file, Some(channel));
            if !errs.iter().any(rules::refuses) {
                missed.push(format!(
                    "{}: {:?}",
                    file.display(),
                    errs.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(
        count >= 30,
        "only {count} invalid examples found under {}",
        root.display()
    );
    assert!(
        missed.is_empty(),
        "{} of {count} invalid examples not refused:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[test]
fn no_valid_example_gets_an_error() {
    let root = upstream::module_dir("sigs.k8s.io/gateway-api").join("examples");
    let mut wrong = Vec::new();
    let mut count = 0;
    for (channel, dir) in channels() {
        for file in yaml_files(&root.join(dir)) {
            count += 1;
            wrong.extend(errors(&file, Some(channel)).iter().map(|d| d.to_string()));
        }
    }
    assert!(
        count >= 80,
        "only {count} examples found under {}",
        root.display()
    );
    assert!(
        wrong.is_empty(),
        "Errors on upstream's valid examples:\n{}",
        wrong.join("\n")
    );
}

/// Without a channel, the experimental examples are accepted (what only the experimental CRDs
/// serve is a warning), and the standard ones have no channel warning at all.
#[test]
fn without_a_channel_experimental_features_are_warnings() {
    let root = upstream::module_dir("sigs.k8s.io/gateway-api").join("examples");
    let mut warned = 0;
    for (channel, dir) in channels() {
        for file in yaml_files(&root.join(dir)) {
            let findings = findings(&file, None);
            let errs: Vec<String> = findings
                .iter()
                .filter(|d| d.level == Level::Error)
                .map(|d| d.to_string())
                .collect();
            assert!(errs.is_empty(), "{}: {errs:?}", file.display());
            let channel_warnings = findings.iter().filter(|d| d.code == "MESH0008").count();
            if channel == Channel::Standard {
                assert_eq!(channel_warnings, 0, "{}", file.display());
            }
            warned += channel_warnings;
        }
    }
    assert!(warned > 0, "no experimental example was told apart");
}

/// `docs/features.md` lists every feature the release names (`pkg/features`: the constants
/// `SupportX = "X"`), so a feature of a new release cannot go unmentioned.
#[test]
fn the_feature_table_lists_every_upstream_feature() {
    let dir = upstream::module_dir("sigs.k8s.io/gateway-api").join("pkg/features");
    let table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/features.md"))
            .expect("docs/features.md");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("pkg/features") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "go") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("Support") else {
                continue;
            };
            let Some((_, value)) = rest.split_once('=') else {
                continue;
            };
            if let Some(name) = value
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
            {
                names.push(name.to_string());
            }
        }
    }
    assert!(
        names.len() > 50,
        "found only {} feature names in {}",
        names.len(),
        dir.display()
    );
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !table.contains(&format!("| `{n}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/features.md does not list {missing:?}: add a row saying what mesh-agent does with each"
    );
}
