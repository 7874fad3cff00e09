//! The krew manifest is a valid plugin manifest for linux and darwin on amd64 and arm64, and
//! the release script fills in each archive's real sha256.

use std::path::Path;
use std::process::Command;

use serde_yaml_ng::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn check(manifest: &Value, version: &str) {
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "mesh", "kubectl mesh");
    let spec = &manifest["spec"];
    assert_eq!(spec["version"].as_str().unwrap(), format!("v{version}"));
    assert!(spec["shortDescription"].as_str().unwrap().len() < 70);
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    let mut seen = Vec::new();
    for p in spec["platforms"].as_sequence().unwrap() {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        let uri = p["uri"].as_str().unwrap();
        assert!(uri.starts_with("https://"), "{uri}");
        assert!(uri.contains(&format!("/v{version}/")), "{uri}");
        assert!(
            uri.ends_with(&format!("kubectl-mesh-{os}-{arch}.tar.gz")),
            "{uri}"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "{sha}"
        );
        assert_eq!(p["bin"], "kubectl-mesh");
        seen.push(format!("{os}/{arch}"));
    }
    seen.sort();
    assert_eq!(
        seen,
        ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]
    );
}

#[test]
fn manifest_is_a_krew_plugin_for_every_platform() {
    let text = std::fs::read_to_string(root().join("krew/mesh.yaml")).unwrap();
    check(
        &serde_yaml_ng::from_str(&text).unwrap(),
        env!("CARGO_PKG_VERSION"),
    );
}

#[test]
fn release_script_fills_in_the_archives_checksums() {
    let tmp = std::env::temp_dir().join(format!("krew-release-{}", std::process::id()));
    let dist = tmp.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    for p in ["linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"] {
        std::fs::write(dist.join(format!("kubectl-mesh-{p}.tar.gz")), p).unwrap();
    }
    let manifest = tmp.join("mesh.yaml");
    std::fs::copy(root().join("krew/mesh.yaml"), &manifest).unwrap();
    let out = Command::new(root().join("scripts/release.sh"))
        .args(["9.8.7", "--skip-build"])
        .env("DIST", &dist)
        .env("MANIFEST", &manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filled: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    check(&filled, "9.8.7");
    // sha256("linux-amd64"), the stand-in archive's bytes.
    let linux = &filled["spec"]["platforms"][0];
    assert_eq!(
        linux["sha256"],
        "abb35c616421af72198ad7c2aeeef38516f08f6a7afb2a728cf0068a8a712ddc"
    );
    // A missing archive stops the script before the manifest is touched.
    std::fs::remove_file(dist.join("kubectl-mesh-darwin-arm64.tar.gz")).unwrap();
    let out = Command::new(root().join("scripts/release.sh"))
        .args(["9.8.8", "--skip-build"])
        .env("DIST", &dist)
        .env("MANIFEST", &manifest)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(std::fs::read_to_string(&manifest)
        .unwrap()
        .contains("v9.8.7"));
    std::fs::remove_dir_all(&tmp).unwrap();
}
