//! Upstream Gateway API material for the tests, from the Go module proxy at test time (`go` must
//! be on PATH; modules are cached in GOMODCACHE after the first run).

use std::path::PathBuf;
use std::process::Command;

/// The directory of `module` at the release the CRD catalog was generated from
/// (`sigs.k8s.io/gateway-api` or `sigs.k8s.io/gateway-api/conformance`), downloaded if needed.
pub fn module_dir(module: &str) -> PathBuf {
    let release = &mesh_model::crd::catalog().release;
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("{module}@{release}"))
        .env("GOFLAGS", "-mod=mod")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("`go` runs (install Go: the upstream material comes from the Go module proxy)");
    assert!(
        out.status.success(),
        "go mod download {module}@{release}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("go prints JSON");
    PathBuf::from(info["Dir"].as_str().expect("the module has a directory"))
}

/// The GatewayClass the conformance suite runs with here (the manifests name it through a
/// placeholder).
pub const CONFORMANCE_CLASS: &str = "kubectl-mesh";

/// What `scripts/gateway-api/conformance` extracts from the release's conformance tests (`args`
/// before the module directories: none for negative conditions, `-http` for HTTP exchanges),
/// as JSON.
#[allow(dead_code)]
pub fn conformance_extract<T: serde::de::DeserializeOwned>(args: &[&str]) -> T {
    let conformance = module_dir("sigs.k8s.io/gateway-api/conformance");
    let api = module_dir("sigs.k8s.io/gateway-api");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gateway-api/conformance");
    let out = Command::new("go")
        .arg("run")
        .arg(".")
        .args(args)
        .arg(conformance)
        .arg(api)
        .current_dir(&script)
        .output()
        .expect("`go` runs");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the extractor prints JSON")
}

/// A conformance test's objects as the suite applies them: the GatewayClass it runs with, the
/// base manifests (`base/manifests.yaml`, or `mesh/manifests.yaml` for mesh tests) and the
/// test's own, placeholders filled in.
#[allow(dead_code)]
pub fn conformance_manifests(base: &str, files: &[String]) -> String {
    let conformance = module_dir("sigs.k8s.io/gateway-api/conformance");
    let mut text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: {CONFORMANCE_CLASS}\nspec:\n  controllerName: kubectl-mesh.io/gateway-controller\n---\n"
    );
    for f in std::iter::once(base).chain(files.iter().map(String::as_str)) {
        let body = std::fs::read_to_string(conformance.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", conformance.join(f).display()));
        text.push_str(
            &body
                .replace("{GATEWAY_CLASS_NAME}", CONFORMANCE_CLASS)
                .replace(
                    "{GATEWAY_CONTROLLER_NAME}",
                    "kubectl-mesh.io/gateway-controller",
                ),
        );
        text.push_str("\n---\n");
    }
    text
}
