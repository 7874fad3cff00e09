//! analyze's schema and CEL verdicts against the real API server's, object by object.
//!
//! Every Gateway API object of upstream's `hack/invalid-examples` and `examples`, of the rule
//! fixtures and of this project's examples is checked by the model against the release's CRDs
//! (`mesh_model::crd::check`, experimental channel) and sent to kube-apiserver with those CRDs
//! installed (`kubectl create --dry-run=server`). The two must agree: refused by both or by
//! neither. Each disagreement is printed with both reasons.

#[path = "../../../model/tests/upstream/mod.rs"]
mod upstream;

use std::path::{Path, PathBuf};

use mesh_cluster::{Cluster, Options};
use serde_json::Value;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn analyze_refuses_what_the_api_server_refuses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let gateway_api = upstream::module_dir("sigs.k8s.io/gateway-api");
    let mut files = Vec::new();
    for dir in [
        gateway_api.join("hack/invalid-examples"),
        gateway_api.join("examples"),
        root.join("model/fixtures/rules"),
        root.join("examples"),
    ] {
        yaml_files(&dir, &mut files);
    }
    files.sort();
    let cluster = Cluster::start(Options::default()).expect("the control plane starts");
    cluster.install_crds("experimental").unwrap();
    let (mut agree, mut total, mut disagreements) = (0, 0, Vec::new());
    let mut namespaces = std::collections::BTreeSet::new();
    for f in &files {
        let Ok(docs) = mesh_model::yaml::parse_documents(&std::fs::read_to_string(f).unwrap())
        else {
            continue;
        };
        for d in docs {
            let o = d.value;
            let api = o["apiVersion"].as_str().unwrap_or_default();
            let Some((group, version)) = api.rsplit_once('/') else {
                continue;
            };
            if !group.starts_with("gateway.networking") {
                continue;
            }
            let kind = o["kind"].as_str().unwrap_or_default();
            let Some(found) = mesh_model::crd::check(
                Some(mesh_model::crd::Channel::Experimental),
                group,
                kind,
                version,
                &o,
                None,
            ) else {
                continue;
            };
            if let Some(ns) = o.pointer("/metadata/namespace").and_then(Value::as_str) {
                if namespaces.insert(ns.to_string()) {
                    let _ = cluster.kubectl(&["create", "namespace", ns], "");
                }
            }
            let server = cluster.kubectl(
                &["create", "--dry-run=server", "-o", "name", "-f", "-"],
                &o.to_string(),
            );
            // analyze's own refusal beyond the CRD: a missing name (MESH0004).
            let unnamed = o.pointer("/metadata/name").is_none()
                && o.pointer("/metadata/generateName").is_none();
            let ours = !found.refused.is_empty() || unnamed;
            // The API server's refusals of the object itself: invalid, unknown fields (strict
            // decoding), a version it does not serve.
            let theirs = match &server {
                Ok(_) => false,
                Err(e) => {
                    let e = e.to_string();
                    [
                        "is invalid",
                        "Invalid value",
                        "strict decoding error",
                        "no matches for kind",
                    ]
                    .iter()
                    .any(|s| e.contains(s))
                }
            };
            total += 1;
            if ours == theirs {
                agree += 1;
            } else {
                disagreements.push(format!(
                    "{} {kind} {}: analyze {}, API server {}",
                    f.strip_prefix(&root).unwrap_or(f).display(),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    if ours {
                        format!("refuses ({:?})", found.refused.first().map(|v| &v.message))
                    } else {
                        "accepts".into()
                    },
                    match &server {
                        Ok(_) => "accepts".to_string(),
                        Err(e) => format!("refuses ({e})"),
                    },
                ));
            }
        }
    }
    println!("analyze and the API server agree on {agree} of {total} Gateway API objects");
    for d in &disagreements {
        println!("  {d}");
    }
    assert!(total > 300, "only {total} objects");
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
}
