//! The Plan carries every decision, so its faces agree: for pseudo-random requests over routes
//! with invalid, weight-0 and endpoint-less backends, redirects and mirrors, `explain`'s
//! outcome is what mesh-agent answers and what real Envoy 1.40 answers on the rendered
//! bootstrap of the same Plan.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mesh_model::plan::explain::{explain, Question};
use mesh_model::plan::{compile, render};
use support::{backend, route_yaml, service, spawn, Seen};

const AGENT: &str = "127.0.0.81";
const ENVOY: &str = "127.0.0.82";

fn config() -> String {
    let r = |name: &str, path: &str, rest: &str| route_yaml(name, path, rest);
    [
        support::CLASS.to_string(),
        support::gateway_yaml(8080),
        service("default", "a", 80, "127.0.1.81", 9000),
        service("default", "b", 80, "127.0.1.82", 9000),
        service("default", "copy", 80, "127.0.1.83", 9000),
        // A Service whose only endpoint is not ready.
        "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\nspec:\n  ports: [{port: 80, targetPort: 9000}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: empty-1, namespace: default, labels: {kubernetes.io/service-name: empty}}\naddressType: IPv4\nports: [{port: 9000}]\nendpoints: [{addresses: ['127.0.1.84'], conditions: {ready: false}}]\n".to_string(),
        r("ok", "/ok", "    backendRefs: [{name: a, port: 80}]\n"),
        r("split", "/split", "    backendRefs: [{name: a, port: 80, weight: 1}, {name: missing, port: 80, weight: 1}]\n"),
        r("zero", "/zero", "    backendRefs: [{name: a, port: 80, weight: 0}, {name: b, port: 80, weight: 0}]\n"),
        r("some-zero", "/some-zero", "    backendRefs: [{name: a, port: 80, weight: 0}, {name: b, port: 80, weight: 3}]\n"),
        r("wrong-port", "/wrong-port", "    backendRefs: [{name: a, port: 81}]\n"),
        r("no-endpoints", "/no-endpoints", "    backendRefs: [{name: empty, port: 80}]\n"),
        r("mirrored", "/mirrored", "    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: copy, port: 80}}}]\n    backendRefs: [{name: a, port: 80}]\n"),
        r("mirror-missing", "/mirror-missing", "    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nowhere, port: 80}}}]\n    backendRefs: [{name: b, port: 80}]\n"),
        r("moved", "/moved", "    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example, statusCode: 301}}]\n"),
        r("by-header", "/by-header", "    backendRefs: [{name: b, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /by-header}, headers: [{name: x-pick, value: a}]}]\n    backendRefs: [{name: a, port: 80}]\n"),
    ]
    .join("---\n")
}

/// The statuses an explained outcome allows: `forward` is the backend's 200, a redirect its
/// status, a split every part's.
fn allowed(e: &mesh_model::plan::explain::Explanation) -> BTreeSet<u16> {
    e.outcome
        .split(", ")
        .map(|part| match part {
            p if p.starts_with("forward") => 200,
            "redirect" => e.redirect_status.unwrap_or(302),
            p => p[..3].parse().unwrap_or(0),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_the_agent_and_envoy_agree() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    backend("127.0.1.81:9000", "a", "default").await;
    backend("127.0.1.82:9000", "b", "default").await;
    let copies: Seen = backend("127.0.1.83:9000", "copy", "default").await;

    let dir = support::folder("three-faces");
    std::fs::write(dir.join("config.yaml"), config()).unwrap();
    let agent = spawn(&dir, &["--gateway-addr", AGENT]).await;
    agent.loaded().await;

    // The Plan as the agent compiles it, rendered for Envoy on its own address.
    let objects =
        mesh_model::load::load_str(&config(), mesh_model::Source::Stdin, &Default::default())
            .unwrap();
    let plan = compile(&mesh_model::Snapshot::new(objects));
    let opts = render::RenderOptions {
        gateway_address: ENVOY.into(),
        outbound_address: "127.0.0.1".into(),
        outbound_port: mesh_model::testing::free_port(),
        admin_port: mesh_model::testing::free_port(),
    };
    let file = dir.join("envoy.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&render::bootstrap(&plan, &opts)).unwrap(),
    )
    .unwrap();
    let mut envoy = support::Killed(
        mesh_model::testing::envoy_command(&envoy, &file, std::process::id() % 60000 + 1)
            .spawn()
            .unwrap(),
    );
    let ready = format!("http://127.0.0.1:{}/ready", opts.admin_port);
    assert!(
        support::answers_200(&ready, None, 100).await,
        "envoy did not become ready"
    );
    let c = support::client();

    let paths = [
        "/ok",
        "/split",
        "/zero",
        "/some-zero",
        "/wrong-port",
        "/no-endpoints",
        "/mirrored",
        "/mirror-missing",
        "/moved",
        "/by-header",
        "/nothing-here",
    ];
    let mut next = mesh_model::testing::choices(0x3fa);
    // Every status each face gave per path, to check splits reach both sides.
    let mut seen: BTreeMap<(&str, &str), BTreeSet<u16>> = BTreeMap::new();
    for i in 0..300 {
        let path = paths[next(paths.len())];
        let pick = ["a", "b", ""][next(3)];
        let headers: Vec<String> = if pick.is_empty() {
            vec![]
        } else {
            vec![format!("x-pick: {pick}")]
        };
        let q = Question::parse(
            &format!("http://a.example:8080{path}"),
            "GET",
            &headers,
            None,
        )
        .unwrap();
        let listener = plan.listener_for(8080, "a.example").map(|l| l.name.clone());
        let e = explain(&plan, listener.as_deref(), &q);
        let want = allowed(&e);
        for (face, addr) in [("agent", AGENT), ("envoy", ENVOY)] {
            let mut r = c
                .get(format!("http://{addr}:8080{path}"))
                .header("host", "a.example")
                .header("x-request", i.to_string());
            if !pick.is_empty() {
                r = r.header("x-pick", pick);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            assert!(
                want.contains(&status),
                "{face} answered {status} to {path} {headers:?}; explain: {} ({want:?})",
                e.outcome
            );
            if status == 200 {
                let body: serde_json::Value = resp.json().await.unwrap();
                let endpoints: Vec<&String> = e
                    .backends
                    .iter()
                    .filter(|b| b.weight > 0)
                    .flat_map(|b| &b.endpoints)
                    .collect();
                let peer_pod = body["pod"].as_str().unwrap();
                let expected: Vec<String> = e
                    .backends
                    .iter()
                    .filter(|b| b.weight > 0 && b.outcome == "forward")
                    .filter_map(|b| b.cluster.as_deref())
                    .map(|c| {
                        c.trim_start_matches("default/")
                            .trim_end_matches(":80")
                            .to_string()
                    })
                    .collect();
                assert!(
                    expected.iter().any(|p| p == peer_pod),
                    "{face}: {path} reached {peer_pod}, explain says {expected:?} ({endpoints:?})"
                );
            }
            seen.entry((face, path)).or_default().insert(status);
        }
    }
    for face in ["agent", "envoy"] {
        assert_eq!(
            seen.get(&(face, "/split")).cloned().unwrap_or_default(),
            BTreeSet::from([200, 500]),
            "{face}: both halves of the split"
        );
    }
    // Mirrors: both proxies copied /mirrored requests to `copy`, none of /mirror-missing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copied = copies.lock().unwrap().clone();
    assert!(
        copied.iter().all(|v| v["path"] == "/mirrored"),
        "{copied:?}"
    );
    let mirrored_requests = seen.keys().filter(|(_, p)| *p == "/mirrored").count();
    assert!(
        mirrored_requests == 0 || !copied.is_empty(),
        "no copies reached the mirror"
    );
    envoy.0.kill().ok();
}
