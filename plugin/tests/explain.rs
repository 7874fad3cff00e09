//! `kubectl mesh explain` on the bundled examples, compiled from files.

use std::process::{Command, Output};

use serde_json::Value;

fn explain(args: &[&str]) -> Output {
    let examples = mesh_model::testing::examples_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"));
    cmd.arg("explain").args(args);
    for d in mesh_model::testing::CLEAN_EXAMPLES {
        cmd.arg("-f").arg(examples.join(d));
    }
    cmd.env("NO_COLOR", "1").output().unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = explain(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn header_query_and_method_routing_is_explained() {
    let e = json(&["http://bookinfo:8080/?great=example", "-H", "magic: foo"]);
    assert_eq!(e["listener"], "default/my-gateway/web-gw");
    assert_eq!(e["route"]["source"], "HTTPRoute default/http-app-1");
    assert_eq!(e["route"]["rule"], 1);
    assert_eq!(e["backends"][0]["cluster"], "default/productpage:9080");
    assert_eq!(e["outcome"], "forward");
    // Without the query parameter the same rule fails on it, and nothing else matches.
    let e = json(&["http://bookinfo:8080/", "-H", "magic: foo"]);
    assert_eq!(e["outcome"], "404 no route matches");
    let reasons: Vec<&str> = e["not_matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("query: great")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("path: PathPrefix /details")),
        "{reasons:?}"
    );
    let e = json(&[
        "http://bookinfo:8080/?great=example",
        "-H",
        "magic: foo",
        "-X",
        "POST",
    ]);
    assert!(
        e["not_matched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reason"] == "method: wants GET, got POST"),
        "{e}"
    );
}

#[test]
fn rewrites_redirects_splits_and_timeouts_are_explained() {
    let e = json(&["http://lab:8082/prefix/one"]);
    assert_eq!(e["forwarded_path"], "/one");
    assert!(e["filters"][0].as_str().unwrap().starts_with("URLRewrite"));
    let e = json(&["http://lab.example:8082/path-and-status"]);
    assert_eq!(e["outcome"], "redirect");
    assert_eq!(e["redirect_status"], 301);
    let e = json(&["http://echo.gamma/load-balancing"]);
    assert_eq!(e["listener"], "mesh/outbound");
    let shares: Vec<f64> = e["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["share"].as_f64().unwrap())
        .collect();
    assert_eq!(shares, vec![50.0, 50.0]);
    let e = json(&["http://echo.gamma/v1"]);
    assert_eq!(e["timeout_ms"], 500);
    // TLS passthrough: chosen by SNI.
    let e = json(&["https://any:9443/", "--sni", "nginx.cilium.rocks"]);
    assert_eq!(e["route"]["source"], "TLSRoute default/nginx");
    assert_eq!(e["backends"][0]["endpoints"][0], "127.0.0.15:8443");
}

#[test]
fn text_output_and_errors() {
    let out = explain(&["http://lab:8082/prefix/one"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("  forwarded as /one\n"), "{text}");
    assert!(text.contains("  outcome      forward\n"), "{text}");
    let bad = explain(&["not a url"]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a URL"));
    let none = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .args(["explain", "http://x/"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(64));
}
