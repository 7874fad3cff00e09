//! mesh-webhook as the API server sees it: the real binary, real TLS on loopback, certificates
//! from its own `certs` command, AdmissionReview v1 bodies shaped like the API server's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

mod support;

use support::{certs, root, Running};

/// Start `mesh-webhook serve --no-cluster` on a free loopback port and wait for it.
fn start(name: &str) -> Running {
    let dir = support::tempdir(name);
    certs(&dir);
    support::serve(
        name,
        dir,
        &["--no-cluster", "--reload-interval", "200ms"],
        &[],
    )
}

fn client(ca_file: &Path) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The AdmissionReview the API server sends for `object`.
fn admission(uid: &str, operation: &str, object: &Value) -> Value {
    let api = object["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    let kind = object["kind"].as_str().unwrap_or("");
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "UPDATE" { "UpdateOptions" } else { "CreateOptions" }, "fieldManager": "kubectl-client-side-apply"}
        }
    })
}

fn get_text(c: &reqwest::blocking::Client, url: &str) -> String {
    c.get(url).send().unwrap().text().unwrap()
}

fn post(c: &reqwest::blocking::Client, url: &str, body: &Value) -> Value {
    let r = c.post(url).json(body).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().unwrap()
}

/// Documents of a YAML file, as JSON (through the model's loader, so YAML quirks match).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    mesh_model::load::load_str(&text, mesh_model::Source::Stdin, &Default::default())
        .unwrap()
        .into_iter()
        .map(|o| o.raw)
        .collect()
}

#[test]
fn broken_examples_are_denied_or_warned_with_the_field() {
    let w = start("broken");
    let c = client(&w.dir.join("ca.crt"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("examples/broken")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap()
            .to_string();
        let rule = mesh_model::rules::find(&code).unwrap();
        // Without a cluster the webhook runs the rules about the object alone.
        if rule.scope != mesh_model::rules::Scope::Object {
            continue;
        }
        let mut seen = false;
        for (i, obj) in documents(&path).iter().enumerate() {
            let uid = format!("{}-{i}", path.file_stem().unwrap().to_str().unwrap());
            let v = post(
                &c,
                &format!("{}/validate", w.url),
                &admission(&uid, "CREATE", obj),
            );
            let r = &v["response"];
            assert_eq!(r["uid"], uid.as_str(), "the response echoes the uid");
            let message = r["status"]["message"].as_str().unwrap_or("").to_string();
            let warnings: Vec<String> = r["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            let all = format!("{message}\n{}", warnings.join("\n"));
            if all.contains(&format!("[{code}]")) {
                seen = true;
                let denied = r["allowed"] == false;
                assert_eq!(
                    denied,
                    rule.level == mesh_model::Level::Error,
                    "{}: {all}",
                    path.display()
                );
                assert!(
                    all.contains(&format!("[{code}] spec."))
                        || all.contains(&format!("[{code}] metadata."))
                        || all.contains(&format!("[{code}] apiVersion")),
                    "the message names the field: {all}"
                );
            }
        }
        assert!(seen, "{}: {code} not reported", path.display());
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} object-scope broken examples");
}

#[test]
fn clean_examples_are_allowed_and_mutation_is_idempotent() {
    let w = start("clean");
    let c = client(&w.dir.join("ca.crt"));
    let mut patched = 0;
    for dir in [
        "bookinfo",
        "tls",
        "acme",
        "gateway-api-lab",
        "gamma",
        "cilium",
    ] {
        for entry in std::fs::read_dir(root().join("examples").join(dir)).unwrap() {
            for (i, obj) in documents(&entry.unwrap().path()).iter().enumerate() {
                let uid = format!("{dir}-{i}");
                let v = post(
                    &c,
                    &format!("{}/validate", w.url),
                    &admission(&uid, "CREATE", obj),
                );
                assert_eq!(v["response"]["allowed"], true, "{obj}\n{v}");
                assert_eq!(v["response"]["uid"], uid.as_str());
                let m = post(
                    &c,
                    &format!("{}/mutate", w.url),
                    &admission(&uid, "CREATE", obj),
                );
                let r = &m["response"];
                assert_eq!(r["allowed"], true);
                let Some(p) = r["patch"].as_str() else {
                    continue;
                };
                assert_eq!(r["patchType"], "JSONPatch");
                let patch: json_patch::Patch = serde_json::from_slice(
                    &base64::engine::general_purpose::STANDARD.decode(p).unwrap(),
                )
                .unwrap();
                let mut once = obj.clone();
                json_patch::patch(&mut once, &patch).unwrap();
                assert_eq!(
                    once.get("status"),
                    obj.get("status"),
                    "never touches status"
                );
                let again = post(
                    &c,
                    &format!("{}/mutate", w.url),
                    &admission(&uid, "UPDATE", &once),
                );
                assert!(
                    again["response"].get("patch").is_none(),
                    "mutating a mutated object yields no patch: {again}"
                );
                patched += 1;
            }
        }
    }
    assert!(patched >= 18, "only {patched} objects were defaulted");
}

#[test]
fn the_patch_adds_the_crd_defaults() {
    let w = start("defaults");
    let c = client(&w.dir.join("ca.crt"));
    let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "shop"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "cart", "port": 8080}]}]}});
    let m = post(
        &c,
        &format!("{}/mutate", w.url),
        &admission("d-1", "CREATE", &route),
    );
    let patch: json_patch::Patch = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(m["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut out = route.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    assert_eq!(
        out["spec"]["parentRefs"][0],
        json!({"name": "gw", "group": "gateway.networking.k8s.io", "kind": "Gateway"})
    );
    assert_eq!(
        out["spec"]["rules"][0]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        out["spec"]["rules"][0]["backendRefs"][0],
        json!({"name": "cart", "port": 8080, "group": "", "kind": "Service", "weight": 1})
    );
}

#[test]
fn malformed_input_gets_a_clear_400_or_413_never_a_500() {
    let w = start("malformed");
    let c = client(&w.dir.join("ca.crt"));
    let url = format!("{}/validate", w.url);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not an AdmissionReview"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#
                .to_vec(),
            400,
            "admissionReviewVersions",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(),
            400,
            "not AdmissionReview",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            400,
            "no request",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#
                .to_vec(),
            400,
            "request is malformed",
        ),
        (
            serde_json::to_vec(&admission("u", "CREATE", &Value::Null)).unwrap(),
            400,
            "has no object",
        ),
        (vec![b' '; 4 * 1024 * 1024], 413, ""),
    ];
    for (body, status, text) in cases {
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let t = r.text().unwrap();
        assert!(t.contains(text), "{t}");
    }
    // A kind the webhook does not check is allowed, with a warning saying so.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let v = post(&c, &url, &admission("p-1", "CREATE", &pod));
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("does not check"));
    // Health, readiness and metrics.
    assert_eq!(
        c.get(format!("{}/healthz", w.url)).send().unwrap().status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", w.url)).send().unwrap().status(),
        200
    );
    let metrics = get_text(&c, &format!("{}/metrics", w.url));
    assert!(metrics.contains("mesh_webhook_reviews_total{endpoint=\"validate\",kind=\"other\",operation=\"CREATE\",verdict=\"warned\"} 1"), "{metrics}");
    assert!(
        metrics.contains("mesh_webhook_review_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mesh_webhook_cache_objects 0"),
        "{metrics}"
    );
}

#[test]
fn certificates_reload_without_restart_or_dropped_connections() {
    let w = start("reload");
    let old_ca = w.dir.join("old-ca.crt");
    std::fs::copy(w.dir.join("ca.crt"), &old_ca).unwrap();
    let old = client(&old_ca);
    let health = format!("{}/healthz", w.url);
    assert_eq!(old.get(&health).send().unwrap().status(), 200);

    // Rotate: a new CA and serving pair written over the files, as a Secret update does.
    let fresh = w.dir.join("fresh");
    certs(&fresh);
    std::fs::copy(fresh.join("tls.key"), w.dir.join("tls.key")).unwrap();
    std::fs::copy(fresh.join("tls.crt"), w.dir.join("tls.crt")).unwrap();

    let new = client(&fresh.join("ca.crt"));
    let mut served_new = false;
    for _ in 0..50 {
        if new.get(&health).send().is_ok() {
            served_new = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served_new, "new handshakes get the new certificate");
    assert_eq!(
        old.get(&health).send().unwrap().status(),
        200,
        "the connection opened before the rotation still works"
    );
    assert!(
        client(&old_ca).get(&health).send().is_err(),
        "a new connection trusting only the old CA is refused"
    );
}

#[test]
fn metric_labels_come_only_from_known_kinds() {
    let w = start("metric-labels");
    let c = client(&w.dir.join("ca.crt"));
    for i in 0..200 {
        let object = json!({"apiVersion": "example.com/v1", "kind": format!("Made{i}"), "metadata": {"name": "x", "namespace": "default"}});
        post(
            &c,
            &format!("{}/validate", w.url),
            &admission(&format!("u{i}"), "CREATE", &object),
        );
    }
    let metrics = get_text(&c, &format!("{}/metrics", w.url));
    assert!(
        !metrics.contains("Made1"),
        "request kinds leaked into labels"
    );
    let other: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("kind=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "{metrics}");
    assert!(other[0].ends_with(" 200"), "{}", other[0]);
}

#[test]
fn a_client_trickling_its_request_head_is_cut_off() {
    use std::io::{Read, Write};
    let w = start("slowloris");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &std::fs::read(w.dir.join("ca.crt")).unwrap()[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = w.url.trim_start_matches("https://").to_string();
    let tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = b"POST /validate HTTP/1.1\r\nHost: webhook\r\nX-Slow: ";
    let started = std::time::Instant::now();
    let mut closed = false;
    for b in head.iter().cycle().take(60) {
        if tls.write_all(&[*b]).and_then(|_| tls.flush()).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !closed {
        let mut buf = [0u8; 64];
        closed = matches!(tls.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(closed, "still open after {:?}", started.elapsed());
}
