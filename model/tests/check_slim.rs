//! `rules::check_slim` (the agent's load: object-scope rules per file, then slim objects) finds
//! exactly what `rules::check` finds on the full objects, on every rule fixture and example.

use std::path::{Path, PathBuf};

use mesh_model::load::{FileSource, Input, LoadOptions, ObjectSource};
use mesh_model::{rules, Snapshot};

fn findings_both_ways(path: &Path) -> (Vec<String>, Vec<String>) {
    let source = FileSource {
        inputs: vec![Input::Path(path.to_path_buf())],
    };
    let opts = LoadOptions::default();
    let (objects, _) = source.objects(&opts);
    let full: Vec<String> = rules::check(&Snapshot::new(objects))
        .iter()
        .map(ToString::to_string)
        .collect();
    let (_, slim, _) = rules::check_slim(&source, &opts);
    (full, slim.iter().map(ToString::to_string).collect())
}

#[test]
fn slim_checking_finds_what_full_checking_finds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs: Vec<PathBuf> = Vec::new();
    for rule in std::fs::read_dir(root.join("fixtures/rules")).unwrap() {
        let dir = rule.unwrap().path();
        inputs.push(dir.join("bad.yaml"));
        inputs.push(dir.join("good.yaml"));
    }
    for example in std::fs::read_dir(mesh_model::testing::examples_dir()).unwrap() {
        inputs.push(example.unwrap().path());
    }
    let mut compared = 0;
    for input in inputs.iter().filter(|p| p.exists()) {
        let (full, slim) = findings_both_ways(input);
        assert_eq!(full, slim, "{}", input.display());
        compared += full.len();
    }
    assert!(compared > 100, "the fixtures hold findings to compare");
}

/// Cross-object findings run on slim objects: the suppression annotation must survive slimming.
#[test]
fn suppressions_survive_slimming() {
    let dir = std::env::temp_dir().join(format!("check-slim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let route = |name: &str, suppress: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{kubectl-mesh.io/suppress: '{suppress}'}}\nspec:\n  parentRefs: [{{name: missing-gateway}}]\n  rules: [{{backendRefs: [{{name: missing-service, port: 80}}]}}]\n"
        )
    };
    std::fs::write(
        dir.join("routes.yaml"),
        format!(
            "{}---\n{}---\n{}",
            route("quiet", "*"),
            route("loud", "MESH0000"),
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec: {gatewayClassName: c, listeners: [{name: web, protocol: HTTP, port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: default}\nspec: {ports: [{port: 80}]}\n"
        ),
    )
    .unwrap();
    let (full, slim) = findings_both_ways(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(full, slim);
    assert!(full.iter().any(|f| f.contains("loud")), "{full:#?}");
    assert!(!full.iter().any(|f| f.contains("quiet")), "{full:?}");
}
