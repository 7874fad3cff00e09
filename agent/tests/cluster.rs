//! mesh-agent on a real control plane (`tests/cluster`): it serves what the API server holds,
//! with the least-privilege RBAC of `manifests/agent` (it runs as the agent's ServiceAccount),
//! writes statuses only when elected, and writes nothing when nothing changed.
//!
//! Runs in a network namespace of its own (`mesh_cluster::netns`), where the EndpointSlices'
//! 198.19.x.y addresses are local: the API server refuses loopback endpoints, and no packet can
//! leave the namespace. Skips with a line where that cannot be made (not root).

mod support;

use std::time::{Duration, Instant};

use mesh_cluster::{Cluster, Options};
use serde_json::Value;
use support::{backend, spawn_on_cluster};

const CONTROLLER: &str = "kubectl-mesh.io/gateway-controller";

/// Wait up to `within` for `check` to give a value; panic with its last complaint.
fn eventually<T>(within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > within => panic!("not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// GET `url` with Host `host`: the status and body, or 0 and why it failed.
async fn get(url: &str, host: &str) -> (u16, String) {
    match support::client().get(url).header("host", host).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn object(cluster: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl(&args, "").unwrap()).unwrap()
}

/// The condition `kind` of a conditions list: (status, reason).
fn condition(conditions: &Value, kind: &str) -> Option<(String, String)> {
    let c = conditions.as_array()?.iter().find(|c| c["type"] == kind)?;
    Some((c["status"].as_str()?.into(), c["reason"].as_str()?.into()))
}

fn ours(route: &Value) -> Option<&Value> {
    route["status"]["parents"]
        .as_array()?
        .iter()
        .find(|p| p["controllerName"] == CONTROLLER)
}

fn install(cluster: &Cluster) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    cluster.install_crds("experimental").unwrap();
    for f in [
        "manifests/webhook/00-namespace.yaml",
        "manifests/agent/10-serviceaccount.yaml",
        "manifests/agent/20-rbac.yaml",
        "manifests/agent/40-gatewayclass.yaml",
    ] {
        let path = root.join(f).display().to_string();
        cluster
            .kubectl(&["apply", "--server-side", "-f", &path], "")
            .unwrap();
    }
}

fn config(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: infra}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: app}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.net/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: infra}}
spec:
  gatewayClassName: kubectl-mesh
  listeners:
  - {{name: http, port: {port}, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: theirs, namespace: infra}}
spec:
  gatewayClassName: other
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: app}}
spec:
  parentRefs: [{{name: web, namespace: infra}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /shop}}}}]
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: app}}
spec:
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: app
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{{addresses: ['198.19.0.11'], conditions: {{ready: true}}}}]
"#
    )
}

#[test]
fn the_agent_serves_the_cluster_and_the_elected_one_writes_statuses() {
    if let Err(e) = mesh_cluster::netns::enter() {
        eprintln!("skipped: {e}");
        return;
    }
    // kwok plays a node with a mesh-agent pod whose port 15000 (its admin API, as the
    // DaemonSet has it) kwok forwards to agent-a's: `kubectl mesh ... pod/NAME` reaches it
    // through the API server's port-forward, as on a real node.
    let admin_a = mesh_model::testing::free_port();
    let forward = format!(
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterPortForward\nmetadata: {{name: mesh-agent-admin}}\nspec:\n  forwards: [{{ports: [15000], target: {{port: {admin_a}, address: 127.0.0.1}}}}]\n"
    );
    let cluster = Cluster::start(Options {
        kwok: true,
        kwok_config: Some(forward),
        ..Options::default()
    })
    .expect("the control plane starts");
    install(&cluster);
    let kubeconfig = cluster.kubeconfig_for(&cluster.agent, "agent").unwrap();
    let port = mesh_model::testing::free_port();
    cluster
        .kubectl(&["apply", "-f", "-"], &config(port))
        .unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let seen = runtime.block_on(backend("198.19.0.11:8080", "echo-0", "app"));
    let dir = support::folder("cluster-a");
    let lease = [
        "--lease-duration",
        "3s",
        "--lease-renew-deadline",
        "2s",
        "--lease-retry-period",
        "300ms",
    ];
    let admin_flag = format!("127.0.0.1:{admin_a}");
    let mut args = vec![
        "--gateway-addr",
        "127.0.0.1",
        "--identity",
        "agent-a",
        "--admin-addr",
        &admin_flag,
    ];
    args.extend(lease);
    let agent_a = runtime.block_on(spawn_on_cluster(&kubeconfig, &dir, &args));
    let url = format!("http://127.0.0.1:{port}/shop/cart");

    // Served: the route's backend answers, through the EndpointSlice's address.
    eventually(Duration::from_secs(60), || {
        let (code, body) = runtime.block_on(get(&url, "shop.example"));
        (code == 200).then_some(()).ok_or(format!("{code} {body}"))
    });
    assert!(!seen.lock().unwrap().is_empty());

    // Statuses, as `kubectl get -o yaml` shows them.
    let class = eventually(Duration::from_secs(30), || {
        let c = object(&cluster, &["gatewayclass", "kubectl-mesh"]);
        condition(&c["status"]["conditions"], "Accepted")
            .filter(|(s, _)| s == "True")
            .map(|_| c.clone())
            .ok_or(format!("{}", c["status"]))
    });
    let features: Vec<&str> = class["status"]["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        features.contains(&"HTTPRoute") && features.contains(&"Gateway"),
        "{features:?}"
    );
    let gw = eventually(Duration::from_secs(30), || {
        let g = object(&cluster, &["gateway", "-n", "infra", "web"]);
        let programmed = condition(&g["status"]["conditions"], "Programmed");
        (programmed == Some(("True".into(), "Programmed".into()))
            && g["status"]["listeners"][0]["attachedRoutes"] == 1)
            .then(|| g.clone())
            .ok_or(format!("{}", g["status"]))
    });
    assert_eq!(
        gw["status"]["addresses"],
        serde_json::json!([{"type": "IPAddress", "value": "127.0.0.1"}])
    );
    assert_eq!(
        gw["status"]["conditions"][0]["observedGeneration"],
        gw["metadata"]["generation"]
    );
    let with_fields = object(
        &cluster,
        &["gateway", "-n", "infra", "web", "--show-managed-fields"],
    );
    let managers: Vec<&str> = with_fields["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subresource"] == "status")
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["mesh-agent"]);
    let route = eventually(Duration::from_secs(30), || {
        let r = object(&cluster, &["httproute", "-n", "app", "shop"]);
        ours(&r)
            .filter(|p| condition(&p["conditions"], "ResolvedRefs").is_some())
            .map(|_| r.clone())
            .ok_or(format!("{}", r["status"]))
    });
    let parent = ours(&route).unwrap();
    assert_eq!(parent["parentRef"]["name"], "web");
    assert_eq!(parent["parentRef"]["namespace"], "infra");
    assert_eq!(
        condition(&parent["conditions"], "Accepted"),
        Some(("True".into(), "Accepted".into()))
    );
    assert_eq!(
        condition(&parent["conditions"], "ResolvedRefs"),
        Some(("True".into(), "ResolvedRefs".into()))
    );
    // Another controller's Gateway: not served (its port is not ours) and no status from us.
    let theirs = object(&cluster, &["gateway", "-n", "infra", "theirs"]);
    assert!(
        theirs["status"]["listeners"].is_null(),
        "{}",
        theirs["status"]
    );

    // The plugin reaches agent-a as pod/NAME and node/NAME through the API server, and
    // proxy-status compares every agent with the Plan compiled from the cluster.
    targets(&cluster, port, admin_a);

    // A change of spec: the route now sends to a Service that does not exist.
    cluster
        .kubectl(&["patch", "httproute", "-n", "app", "shop", "--type=json", "-p",
            r#"[{"op": "replace", "path": "/spec/rules/0/backendRefs/0/name", "value": "gone"}]"#], "")
        .unwrap();
    let route = eventually(Duration::from_secs(30), || {
        let r = object(&cluster, &["httproute", "-n", "app", "shop"]);
        let p = ours(&r).ok_or("no parent of ours")?;
        (condition(&p["conditions"], "ResolvedRefs")
            == Some(("False".into(), "BackendNotFound".into())))
        .then(|| r.clone())
        .ok_or(format!("{}", r["status"]))
    });
    assert_eq!(
        ours(&route).unwrap()["conditions"][0]["observedGeneration"],
        2
    );
    eventually(Duration::from_secs(30), || {
        let (code, body) = runtime.block_on(get(&url, "shop.example"));
        (code == 500).then_some(()).ok_or(format!("{code} {body}"))
    });

    // Nothing written when nothing changed: an unrelated change makes the agent rebuild (its
    // reload count moves) and leaves every status's resourceVersion as it was.
    let version = |what: &[&str]| object(&cluster, what)["metadata"]["resourceVersion"].clone();
    let (gw_before, route_before) = (
        version(&["gateway", "-n", "infra", "web"]),
        version(&["httproute", "-n", "app", "shop"]),
    );
    let reloads = |a: &support::Agent| {
        runtime.block_on(a.loaded())["reloads"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = reloads(&agent_a);
    cluster
        .kubectl(&["label", "namespace", "app", "touched=yes"], "")
        .unwrap();
    eventually(Duration::from_secs(30), || {
        (reloads(&agent_a) > before)
            .then_some(())
            .ok_or("no rebuild".to_string())
    });
    assert_eq!(version(&["gateway", "-n", "infra", "web"]), gw_before);
    assert_eq!(version(&["httproute", "-n", "app", "shop"]), route_before);

    // A second agent serves too, but does not write while the first holds the Lease; when
    // the first goes, it takes over and writes the next change.
    let dir_b = support::folder("cluster-b");
    let port_b_admin_args = {
        let mut a = vec!["--gateway-addr", "127.0.0.2", "--identity", "agent-b"];
        a.extend(lease);
        a
    };
    let agent_b = runtime.block_on(spawn_on_cluster(&kubeconfig, &dir_b, &port_b_admin_args));
    let url_b = format!("http://127.0.0.2:{port}/shop/cart");
    eventually(Duration::from_secs(60), || {
        let (code, body) = runtime.block_on(get(&url_b, "shop.example"));
        (code == 500).then_some(()).ok_or(format!("{code} {body}"))
    });
    let holder = |c: &Cluster| {
        object(c, &["lease", "-n", "mesh-system", "mesh-agent-status"])["spec"]["holderIdentity"]
            .clone()
    };
    assert_eq!(holder(&cluster), "agent-a");
    drop(agent_a);
    eventually(Duration::from_secs(30), || {
        let h = holder(&cluster);
        (h == "agent-b").then_some(()).ok_or(format!("held by {h}"))
    });
    cluster
        .kubectl(&["patch", "httproute", "-n", "app", "shop", "--type=json", "-p",
            r#"[{"op": "replace", "path": "/spec/rules/0/backendRefs/0/name", "value": "echo"}]"#], "")
        .unwrap();
    let route = eventually(Duration::from_secs(30), || {
        let r = object(&cluster, &["httproute", "-n", "app", "shop"]);
        let p = ours(&r).ok_or("no parent of ours")?;
        (condition(&p["conditions"], "ResolvedRefs")
            == Some(("True".into(), "ResolvedRefs".into())))
        .then(|| r.clone())
        .ok_or(format!("{}", r["status"]))
    });
    assert_eq!(
        ours(&route).unwrap()["conditions"][0]["observedGeneration"],
        3
    );
    assert_eq!(
        route["status"]["parents"].as_array().unwrap().len(),
        1,
        "one entry of ours, not one per agent"
    );
    // Each agent here binds its own --gateway-addr; the Gateway's status says the writer's.
    let gw = object(&cluster, &["gateway", "-n", "infra", "web"]);
    assert_eq!(gw["status"]["addresses"][0]["value"], "127.0.0.2");
    drop(agent_b);
}

const AGENT_POD: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
---
apiVersion: v1
kind: Pod
metadata:
  name: mesh-agent-x1
  namespace: mesh-system
  labels: {app.kubernetes.io/name: mesh-agent}
spec:
  nodeName: kwok-node-0
  containers:
  - name: mesh-agent
    image: kubectl-mesh/mesh-agent:0.1.0
    args: [--admin-addr=127.0.0.1:15000]
"#;

/// `kubectl-mesh ARGS` as the admin: exit code, stdout, stderr.
fn kubectl_mesh(cluster: &Cluster, args: &[&str]) -> (i32, String, String) {
    // Built with the workspace's binaries (`cargo test --workspace` builds them all).
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mesh-agent")).with_file_name("kubectl-mesh");
    if !bin.exists() {
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "kubectl-mesh"])
            .status()
            .unwrap();
        assert!(built.success(), "cargo build -p kubectl-mesh");
    }
    let out = std::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig().unwrap())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Relay connections to `listen` to `target` (the agent's admin API as the pod's IP serves it
/// on a node) until the test process ends.
fn relay(listen: &str, target: std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind(listen).expect("the pod's IP is local");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = std::net::TcpStream::connect(target) else {
                continue;
            };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c, mut u) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

fn targets(cluster: &Cluster, port: u16, admin: u16) {
    cluster.kubectl(&["apply", "-f", "-"], AGENT_POD).unwrap();
    cluster
        .kubectl(
            &[
                "-n",
                "mesh-system",
                "wait",
                "pod/mesh-agent-x1",
                "--for=condition=Ready",
                "--timeout=60s",
            ],
            "",
        )
        .unwrap();
    for target in ["pod/mesh-agent-x1", "node/kwok-node-0"] {
        let (code, out, err) = kubectl_mesh(
            cluster,
            &[
                "-n",
                "mesh-system",
                "proxy-config",
                "routes",
                target,
                "-o",
                "json",
            ],
        );
        assert_eq!(code, 0, "{target}: {err}");
        assert!(
            out.contains("/shop"),
            "{target}: the route's match is in what the agent runs: {out}"
        );
    }
    // --via direct: at the pod's IP (kwok's, local in the namespace), where a relay stands for the
    // agent's admin port.
    let ip = cluster
        .kubectl(
            &[
                "-n",
                "mesh-system",
                "get",
                "pod/mesh-agent-x1",
                "-o",
                "jsonpath={.status.podIP}",
            ],
            "",
        )
        .unwrap();
    relay(
        &format!("{}:15000", ip.trim()),
        format!("127.0.0.1:{admin}").parse().unwrap(),
    );
    let (code, out, err) = kubectl_mesh(
        cluster,
        &[
            "proxy-config",
            "routes",
            "pod/mesh-agent-x1",
            "--via",
            "direct",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "--via direct to {ip}: {err}");
    assert!(out.contains("/shop"), "{out}");
    // pod/NAME in the wrong namespace still finds the agent of that name.
    let (code, out, err) =
        kubectl_mesh(cluster, &["proxy-config", "clusters", "pod/mesh-agent-x1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("app/echo:80"), "{out}");
    let (code, out, err) = kubectl_mesh(
        cluster,
        &[
            "explain",
            &format!("http://shop.example:{port}/shop/cart"),
            "--admin",
            "node/kwok-node-0",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("app/echo"), "{out}");
    let (code, out, err) = kubectl_mesh(cluster, &["proxy-status", "-o", "json"]);
    assert_eq!(code, 0, "{out} {err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["agent"], "mesh-system/mesh-agent-x1");
    assert_eq!(rows[0]["status"], "SYNCED", "{rows}");
    // A node without an agent: exit 65 and what to look at.
    let (code, _, err) = kubectl_mesh(cluster, &["proxy-config", "routes", "node/nowhere"]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("no mesh-agent pod"), "{err}");
}
