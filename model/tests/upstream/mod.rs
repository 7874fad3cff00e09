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
