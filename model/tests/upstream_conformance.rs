//! The negative status conditions upstream's conformance tests expect, measured with analyze.
//!
//! `scripts/gateway-api/conformance` reads the Go sources of the conformance tests of the
//! targeted release (module `sigs.k8s.io/gateway-api/conformance`) and lists every condition a
//! test expects to report a problem (ResolvedRefs False with RefNotPermitted on an HTTPRoute,
//! Conflicted True on a listener, ...), with the object it is expected on. Each test's manifests
//! are analyzed together with the suite's base manifests, as the suite applies them, and an
//! expectation is met when analyze reports a finding with that reason on that object (on that
//! listener, for a listener's condition); one that accepts any reason is met by any Warning or
//! Error there.
//!
//! Conditions a test asserts only after changing objects (deleting a ReferenceGrant, patching a
//! policy) are left out: the manifests alone do not produce them.
//!
//! The figure is printed per test; the test fails when it falls below the level reached so far
//! (`MET_AT_LEAST`), so a change that loses a reason shows here.

mod upstream;

use std::collections::BTreeMap;

use mesh_model::load::{load_str, LoadOptions};
use mesh_model::{rules, Diagnostic, Level, Snapshot, Source};
use serde::Deserialize;
use serde_json::Value;

/// Cases met on the release's conformance tests, of all extracted (raise it as analyze
/// learns more; the goal is 95%).
const MET_AT_LEAST: usize = 98;

#[derive(Debug, Deserialize)]
struct Expectation {
    test: String,
    manifests: Vec<String>,
    kind: String,
    namespace: String,
    name: String,
    #[serde(default)]
    listener: String,
    #[serde(rename = "type")]
    ty: String,
    status: String,
    reason: String,
    /// The change the test made before asserting (a ReferenceGrant deleted, a policy patched):
    /// not what its manifests produce, so not measured here.
    #[serde(default)]
    after: String,
    /// Features whose support ends the test before it asserts anything (the "NotSupported"
    /// tests).
    #[serde(default)]
    skip_when: Vec<String>,
}

/// The upstream features mesh-agent serves (`docs/features.md`, status "served"), named as
/// the conformance tests name them (`SupportTLSRouteModeTerminate`).
fn served_features() -> std::collections::HashSet<String> {
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/features.md"),
    )
    .expect("docs/features.md");
    table
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            cells
                .next()?
                .starts_with("served")
                .then(|| format!("Support{name}"))
        })
        .collect()
}

/// The field path of a named listener of an object (`spec.listeners[2]`).
fn listener_path(objects: &[mesh_model::Object], e: &Expectation) -> Option<String> {
    let o = objects.iter().find(|o| {
        o.kind == e.kind
            && o.name == e.name
            && o.namespace.as_deref().unwrap_or_default() == e.namespace
    })?;
    let listeners = o.raw.pointer("/spec/listeners")?.as_array()?;
    let i = listeners
        .iter()
        .position(|l| l.get("name").and_then(Value::as_str) == Some(e.listener.as_str()))?;
    Some(format!("spec.listeners[{i}]"))
}

fn met(e: &Expectation, objects: &[mesh_model::Object], findings: &[Diagnostic]) -> bool {
    let listener = (!e.listener.is_empty()).then(|| listener_path(objects, e));
    findings.iter().any(|d| {
        d.resource.kind == e.kind
            && d.resource.name == e.name
            && d.resource.namespace.as_deref().unwrap_or_default() == e.namespace
            && match &listener {
                None => true,
                Some(None) => false,
                Some(Some(path)) => {
                    d.field == *path
                        || d.field.starts_with(&format!("{path}."))
                        || d.field.starts_with(&format!("{path}["))
                }
            }
            && if e.reason.is_empty() {
                d.level.at_least(Level::Warning)
            } else {
                d.reason == Some(e.reason.as_str())
            }
    })
}

#[test]
fn analyze_reports_the_reasons_the_conformance_tests_expect() {
    // One case per reason on one object (or listener): a test often asserts the same reason
    // on Accepted, Programmed and Conflicted.
    let mut expected = upstream::conformance_extract::<Vec<Expectation>>(&[]);
    let mut seen = std::collections::HashSet::new();
    let changed = expected.iter().filter(|e| !e.after.is_empty()).count();
    expected.retain(|e| e.after.is_empty());
    // A test that returns at once for an implementation with a feature mesh-agent serves
    // expects nothing of it.
    let served = served_features();
    let not_applicable = expected
        .iter()
        .filter(|e| e.skip_when.iter().any(|f| served.contains(f)))
        .count();
    expected.retain(|e| !e.skip_when.iter().any(|f| served.contains(f)));
    expected.retain(|e| {
        seen.insert((
            e.test.clone(),
            e.kind.clone(),
            e.namespace.clone(),
            e.name.clone(),
            e.listener.clone(),
            e.reason.clone(),
        ))
    });
    assert!(
        expected.len() + not_applicable > 100,
        "the extractor found only {} expectations: has the tests' Go changed shape?",
        expected.len() + not_applicable
    );
    let mut by_test: BTreeMap<&str, Vec<&Expectation>> = BTreeMap::new();
    for e in &expected {
        by_test.entry(&e.test).or_default().push(e);
    }
    let (mut met_count, mut missed) = (0, Vec::new());
    for (test, cases) in &by_test {
        let text = upstream::conformance_manifests("base/manifests.yaml", &cases[0].manifests);
        let objects = load_str(
            &text,
            Source::File(format!("{test}.yaml").into()),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{test}: {e}"));
        let findings = rules::check(&Snapshot::new(objects.clone()));
        let mut test_met = 0;
        for e in cases {
            if met(e, &objects, &findings) {
                test_met += 1;
            } else {
                let on = if e.listener.is_empty() {
                    String::new()
                } else {
                    format!(" listener {}", e.listener)
                };
                let got: Vec<String> = findings
                    .iter()
                    .filter(|d| d.resource.kind == e.kind && d.resource.name == e.name)
                    .map(|d| format!("{} {} {:?}", d.code, d.field, d.reason))
                    .collect();
                missed.push(format!(
                    "{test}: {} {}/{}{on}: {}={} {:?} (got: {})",
                    e.kind,
                    e.namespace,
                    e.name,
                    e.ty,
                    e.status,
                    e.reason,
                    if got.is_empty() {
                        "nothing".into()
                    } else {
                        got.join("; ")
                    }
                ));
            }
        }
        met_count += test_met;
        println!("{test}: {test_met}/{}", cases.len());
    }
    println!(
        "\nmet {met_count} of {} expectations ({:.0}%) in {} tests ({changed} asserted after a change the test makes, not measured; {not_applicable} of tests that do not run for a feature mesh-agent serves); missed:\n{}",
        expected.len(),
        100.0 * met_count as f64 / expected.len() as f64,
        by_test.len(),
        missed.join("\n")
    );
    assert!(
        met_count >= MET_AT_LEAST,
        "analyze met {met_count} expectations, fewer than the {MET_AT_LEAST} it met before"
    );
}
