//! `kubectl mesh` on a real control plane (`tests/cluster`): `analyze` reads the cluster, and
//! `--use-kube` reports what applying files would change.

use std::process::Command;

use mesh_cluster::{Cluster, Options};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: kubectl-mesh}
spec: {controllerName: kubectl-mesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: kubectl-mesh
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: shop}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules: [{backendRefs: [{name: cart, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stale, namespace: other}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules: [{backendRefs: [{name: gone, port: 80}]}]
"#;

/// The cart route fixed (port 80), and a new route whose backend does not exist.
const CHANGE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: shop}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules: [{backendRefs: [{name: cart, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: checkout, namespace: shop}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules: [{backendRefs: [{name: payments, port: 80}]}]
"#;

/// `kubectl-mesh ARGS -o json`: the exit code and the findings as (code, object).
fn analyze(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, Vec<(String, String)>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("analyze")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    let findings = report["diagnostics"]
        .as_array()
        .or_else(|| report.as_array())
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|d| {
            let r = &d["resource"];
            let object = format!(
                "{} {}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
            (d["code"].as_str().unwrap_or("").to_string(), object)
        })
        .collect();
    (out.status.code().unwrap_or(-1), findings, stderr)
}

fn objects(findings: &[(String, String)]) -> Vec<&str> {
    let mut o: Vec<&str> = findings.iter().map(|(_, o)| o.as_str()).collect();
    o.sort_unstable();
    o.dedup();
    o
}

#[test]
fn analyze_reads_the_cluster_and_reports_what_files_would_change() {
    let cluster = Cluster::start(Options::default()).expect("the control plane starts");
    cluster.install_crds("experimental").unwrap();
    cluster.kubectl(&["apply", "-f", "-"], CLUSTER).unwrap();
    let kubeconfig = cluster.kubeconfig().unwrap();

    // The namespace asked for, checked against the whole cluster (its Gateway is in infra).
    let (code, findings, stderr) = analyze(&kubeconfig, &["-n", "shop"]);
    assert_eq!(code, 79, "{findings:?} {stderr}");
    assert_eq!(objects(&findings), ["HTTPRoute shop/cart"], "{stderr}");
    assert!(stderr.contains("from the cluster"), "{stderr}");
    let (_, all, _) = analyze(&kubeconfig, &["-A"]);
    assert_eq!(
        objects(&all),
        ["HTTPRoute other/stale", "HTTPRoute shop/cart"]
    );

    // The files over the cluster: the cart fix removes a finding, the new route brings one;
    // only that one is reported (what applying them would break).
    let dir = std::env::temp_dir().join(format!("mesh-use-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("change.yaml");
    std::fs::write(&file, CHANGE).unwrap();
    let path = file.display().to_string();
    let (code, findings, stderr) = analyze(&kubeconfig, &["--use-kube", &path]);
    assert_eq!(code, 79, "{stderr}");
    assert_eq!(objects(&findings), ["HTTPRoute shop/checkout"], "{stderr}");
    assert!(stderr.contains("from the cluster and 1 file"), "{stderr}");
    let (_, everything, _) = analyze(&kubeconfig, &["--use-kube", "--all-findings", &path]);
    // Every finding of the result: the cart route's warnings (it and the stale route make the
    // same match on the Gateway; its Service has no endpoints) were there before.
    assert_eq!(
        objects(&everything),
        [
            "HTTPRoute other/stale",
            "HTTPRoute shop/cart",
            "HTTPRoute shop/checkout"
        ],
        "{everything:?}"
    );
    assert!(everything.contains(&("MESH2205".into(), "HTTPRoute shop/cart".into())));
    // A change that breaks nothing new passes.
    std::fs::write(&file, CHANGE.split("---").next().unwrap()).unwrap();
    let (code, findings, stderr) = analyze(&kubeconfig, &["--use-kube", &path]);
    assert_eq!((code, findings.len()), (0, 0), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);

    // No cluster to reach: exit 65 and what to do.
    let missing = dir.join("nope.kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .arg("--kubeconfig")
        .arg(&missing)
        .arg("analyze")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("nope.kubeconfig"), "{stderr}");
}
