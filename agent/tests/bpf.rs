//! mesh-agent with its eBPF socket load balancer on this machine's kernel (`--bpf on`),
//! attached to a cgroup made for each test, with clients run as processes in it.
//!
//! No packet leaves loopback: every ClusterIP is in 127.10.0.0/16 and every backend a
//! mesh-echo on 127.0.x.y, so a program that fails to attach makes a connect fail here
//! (nothing listens on a ClusterIP), never reach another host. A process outside the cgroup
//! is never translated. Where the tests cannot run (not root, no cgroup v2) they say so and
//! pass.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mesh_bpf::testing::Sandbox;
use mesh_echo::probe::{self, Job};
use serde_json::Value;

/// The child side of `probe::run_in_cgroup`.
#[test]
fn probe_child() {
    probe::child_main();
}

const NS: &str = "lb";

/// A Service with a ClusterIP and its EndpointSlice.
fn service(
    name: &str,
    cluster_ip: &str,
    port: u16,
    protocol: &str,
    target: u16,
    endpoints: &[String],
) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{{addresses: ['{e}'], conditions: {{ready: true}}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  clusterIP: {cluster_ip}\n  clusterIPs: [{cluster_ip}]\n  ports: [{{name: p, port: {port}, protocol: {protocol}, targetPort: {target}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  namespace: {NS}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: p, port: {target}, protocol: {protocol}}}]\nendpoints: [{}]\n",
        endpoints.join(", ")
    )
}

fn tally(results: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in results {
        let key = match r.get("error") {
            Some(e) => format!("error: {e}"),
            None => r["pod"].as_str().unwrap_or("?").to_string(),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

async fn probe_in(sandbox: &Sandbox, job: Job) -> Vec<Value> {
    let cgroup = sandbox.cgroup.clone();
    tokio::task::spawn_blocking(move || probe::run_in_cgroup(Some(&cgroup), "probe_child", &job))
        .await
        .unwrap()
}

fn http(addr: &str, host: &str, count: usize) -> Job {
    Job::Http {
        addr: addr.parse().unwrap(),
        host: host.into(),
        count,
    }
}

/// Backends on 127.0.1.x at one port, each named `pod-x`.
async fn backends(port: u16, hosts: &[u8], protocol: mesh_echo::EchoProtocol) -> Vec<String> {
    let mut out = Vec::new();
    for h in hosts {
        let addr: SocketAddr = format!("127.0.1.{h}:{port}").parse().unwrap();
        mesh_echo::spawn(addr, &format!("pod-{h}"), NS, protocol)
            .await
            .expect("backend address free");
        out.push(format!("127.0.1.{h}"));
    }
    out
}

/// L4 balancing, UDP, getpeername, routing by original destination, the admin API and the
/// counters, on one agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_balanced_at_connect_and_routed_by_original_destination() {
    let Some(sandbox) = Sandbox::new("agent") else {
        return;
    };
    let port = mesh_model::testing::free_port();
    let web = backends(port, &[21, 22, 23], mesh_echo::EchoProtocol::Http).await;
    let dns = backends(port, &[31], mesh_echo::EchoProtocol::Udp).await;
    let routed = backends(port, &[41], mesh_echo::EchoProtocol::Http).await;
    let v2 = backends(port, &[42], mesh_echo::EchoProtocol::Http).await;
    let decoy = backends(port, &[51], mesh_echo::EchoProtocol::Http).await;
    let dir = support::folder("bpf-services");
    let config = [
        service("web", "127.10.1.1", 80, "TCP", port, &web),
        service("dns", "127.10.1.2", 53, "UDP", port, &dns),
        service("routed", "127.10.1.3", 80, "TCP", port, &routed),
        service("routed-v2", "127.10.1.5", 80, "TCP", port, &v2),
        service("decoy", "127.10.1.4", 80, "TCP", port, &decoy),
        service("empty", "127.10.1.6", 80, "TCP", port, &[]),
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: routed, namespace: {NS}}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: routed, port: 80}}]\n  rules:\n  - backendRefs: [{{name: routed-v2, port: 80}}]\n"),
    ]
    .join("---\n");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let cgroup = sandbox.cgroup.display().to_string();
    let pins = sandbox.pins.display().to_string();
    let agent = support::spawn(
        &dir,
        &["--bpf", "on", "--cgroup", &cgroup, "--bpf-pin-dir", &pins],
    )
    .await;
    agent.loaded().await;
    assert!(
        sandbox.pins.join("v1/links/mesh_sockops").exists(),
        "a Service has mesh routes: sock_ops is attached"
    );

    // Spread over the three endpoints, each connection's peer the ClusterIP it dialled.
    let results = probe_in(&sandbox, http("127.10.1.1:80", "web.lb", 300)).await;
    let pods = tally(&results);
    assert_eq!(
        pods.keys().collect::<Vec<_>>(),
        ["pod-21", "pod-22", "pod-23"],
        "{pods:?}"
    );
    assert!(pods.values().all(|n| (60..=140).contains(n)), "{pods:?}");
    assert!(
        results.iter().all(|r| r["peer"] == "127.10.1.1:80"),
        "{results:?}"
    );

    // A dual-stack (IPv6) socket dialling the IPv4-mapped ClusterIP goes through connect6
    // and getpeername6 to the same Service.
    let results = probe_in(&sandbox, http("[::ffff:127.10.1.1]:80", "web.lb", 30)).await;
    assert!(
        tally(&results).keys().all(|k| k.starts_with("pod-2")),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r["peer"] == "[::ffff:127.10.1.1]:80"),
        "{results:?}"
    );

    // UDP to a ClusterIP, from an unconnected socket (each datagram translated at sendmsg) and
    // from a connected one (connect4 once): the replies come from the ClusterIP.
    let addr: SocketAddr = "127.10.1.2:53".parse().unwrap();
    for job in [
        Job::Udp { addr, count: 5 },
        Job::UdpConnected { addr, count: 5 },
    ] {
        let results = probe_in(&sandbox, job).await;
        assert_eq!(
            tally(&results),
            BTreeMap::from([("pod-31".to_string(), 5)]),
            "{results:?}"
        );
        assert!(
            results.iter().all(|r| r["peer"] == "127.10.1.2:53"),
            "{results:?}"
        );
    }

    // A Service with a mesh route goes through the agent, routed by the address dialled:
    // the Host names another Service, and the route's backend still answers.
    let results = probe_in(&sandbox, http("127.10.1.3:80", "decoy.lb", 20)).await;
    assert_eq!(
        tally(&results),
        BTreeMap::from([("pod-42".to_string(), 20)]),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r["peer"] == "127.10.1.3:80" && r["host"] == "decoy.lb"),
        "{results:?}"
    );

    // A Service without endpoints refuses the connect (ECONNREFUSED, as kube-proxy's REJECT):
    // the program did it, as its counter says.
    let results = probe_in(&sandbox, http("127.10.1.6:80", "empty.lb", 1)).await;
    assert!(
        results[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{results:?}"
    );

    // A process outside the cgroup is untouched: nothing listens on a ClusterIP.
    assert!(std::net::TcpStream::connect("127.10.1.1:80").is_err());

    // What the kernel holds, named from the Plan; the counters.
    let services: Value = agent.admin_json("/services").await;
    assert_eq!(services["bpf"], "on");
    let list = services["services"].as_array().unwrap();
    let web_view = list
        .iter()
        .find(|s| s["frontend"] == "127.10.1.1:80")
        .unwrap();
    assert_eq!(web_view["service"], "lb/web");
    assert_eq!(web_view["backends"].as_array().unwrap().len(), 3);
    let routed_view = list
        .iter()
        .find(|s| s["frontend"] == "127.10.1.3:80")
        .unwrap();
    assert_eq!(routed_view["l7"], true);
    assert_eq!(
        routed_view["backends"][0]["address"],
        format!("127.0.0.1:{}", agent.outbound)
    );
    let stats = agent.stats().await;
    let counter = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(counter("mesh_bpf_connect_tcp_total") >= 300, "{stats}");
    assert!(counter("mesh_bpf_connect_udp_total") >= 6, "{stats}");
    assert_eq!(counter("mesh_bpf_redirect_l7_total"), 20, "{stats}");
    assert_eq!(counter("mesh_bpf_refused_no_backend_total"), 1, "{stats}");
}

/// A client in the sandbox connecting to 127.10.2.1:80 again and again until stopped.
struct Load {
    stop: std::path::PathBuf,
    task: tokio::task::JoinHandle<Vec<Value>>,
}

fn under_load(sandbox: &Sandbox, name: &str) -> Load {
    let stop = std::env::temp_dir().join(format!("mesh-bpf-{}-{name}.stop", std::process::id()));
    let _ = std::fs::remove_file(&stop);
    let cgroup = sandbox.cgroup.clone();
    let job = Job::HttpUntil {
        addr: "127.10.2.1:80".parse().unwrap(),
        host: "web".into(),
        count: 100_000,
        stop: stop.clone(),
    };
    let task = tokio::task::spawn_blocking(move || {
        probe::run_in_cgroup(Some(&cgroup), "probe_child", &job)
    });
    Load { stop, task }
}

impl Load {
    async fn stop(self) -> Vec<Value> {
        std::fs::write(&self.stop, "").unwrap();
        let results = self.task.await.unwrap();
        let _ = std::fs::remove_file(&self.stop);
        results
    }
}

/// Endpoints change under load: new connections meet the new endpoints, none fails; the
/// agent restarts under load: the pinned programs and maps keep balancing meanwhile; with
/// `--bpf off` everything is detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_restarts_lose_no_connect() {
    let Some(sandbox) = Sandbox::new("restart") else {
        return;
    };
    let port = mesh_model::testing::free_port();
    let web = backends(port, &[71, 72, 73], mesh_echo::EchoProtocol::Http).await;
    let dir = support::folder("bpf-restart");
    std::fs::write(
        dir.join("web.yaml"),
        service("web", "127.10.2.1", 80, "TCP", port, &web[..2]),
    )
    .unwrap();
    let cgroup = sandbox.cgroup.display().to_string();
    let pins = sandbox.pins.display().to_string();
    // Destinations that are no Service are refused, never looked up: traffic stays on loopback.
    let flags = [
        "--bpf",
        "on",
        "--cgroup",
        &cgroup,
        "--bpf-pin-dir",
        &pins,
        "--outbound-policy",
        "registry-only",
    ];
    let mut first = support::spawn(&dir, &flags).await;
    first.loaded().await;
    // No Service has mesh routes: sock_ops (five runs per TCP connection) is not attached.
    assert!(!sandbox.pins.join("v1/links/mesh_sockops").exists());
    assert!(sandbox.pins.join("v1/links/mesh_connect4").exists());

    // Swap 71 for 73 while a client connects again and again.
    let load = under_load(&sandbox, "change");
    tokio::time::sleep(Duration::from_millis(200)).await;
    first
        .write(
            "web.yaml",
            &service("web", "127.10.2.1", 80, "TCP", port, &web[1..]),
        )
        .await;
    let during = tally(&load.stop().await);
    eprintln!("connects during the change: {during:?}");
    assert!(
        during.keys().all(|k| k.starts_with("pod-")),
        "a connect failed during the change: {during:?}"
    );
    let after = tally(&probe_in(&sandbox, http("127.10.2.1:80", "web", 100)).await);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["pod-72", "pod-73"],
        "{after:?}"
    );

    // A mesh route appears: sock_ops is attached (before the frontend is redirected); it is
    // detached again when the route goes.
    let route = format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: web, namespace: {NS}}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: web, port: 80}}]\n  rules: [{{backendRefs: [{{name: web, port: 80}}]}}]\n");
    first.write("route.yaml", &route).await;
    assert!(sandbox.pins.join("v1/links/mesh_sockops").exists());
    let routed = tally(&probe_in(&sandbox, http("127.10.2.1:80", "nothing.example", 20)).await);
    assert!(
        routed.keys().all(|k| k.starts_with("pod-")),
        "routed by the address dialled: {routed:?}"
    );
    first.remove("route.yaml").await;
    assert!(!sandbox.pins.join("v1/links/mesh_sockops").exists());

    // Kill the agent while a client connects again and again, start another on the pins;
    // the client goes on until the new one has attached its programs and synced its maps.
    let load = under_load(&sandbox, "restart");
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = support::spawn(&dir, &flags).await;
    second.loaded().await;
    let across = tally(&load.stop().await);
    eprintln!("connects across the restart: {across:?}");
    assert!(
        across.keys().all(|k| k.starts_with("pod-")),
        "a connect failed across the restart: {across:?}"
    );
    assert_eq!(
        across.keys().collect::<Vec<_>>(),
        ["pod-72", "pod-73"],
        "{across:?}"
    );
    // The new agent carried on from the pinned generation rather than starting over: the
    // first, the endpoint change, the route's redirect and its end.
    let services: Value = second.admin_json("/services").await;
    assert_eq!(services["services"][0]["version"], 4, "{services}");
    drop(second);

    // --bpf off detaches what is pinned: the ClusterIP is a plain (unserved) address again.
    let off = support::spawn(&dir, &["--bpf", "off", "--bpf-pin-dir", &pins]).await;
    off.loaded().await;
    assert!(!sandbox.pins.exists(), "the pins are removed");
    let results = probe_in(&sandbox, http("127.10.2.1:80", "web", 1)).await;
    assert!(
        results[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{results:?}"
    );
    drop(first);
}

/// `--bpf on` where the programs cannot attach stops the agent and says why; `--bpf auto`
/// says why once and serves as a proxy alone; neither leaves anything pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_the_proxy_and_on_refuses() {
    let Some(sandbox) = Sandbox::new("modes") else {
        return;
    };
    let pins = sandbox.pins.display().to_string();
    let dir = support::folder("bpf-modes");
    std::fs::write(
        dir.join("web.yaml"),
        service("web", "127.10.3.1", 80, "TCP", 9, &[]),
    )
    .unwrap();
    // /proc is no cgroup v2 directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-agent"))
        .arg("--config-dir")
        .arg(&dir)
        .args(["--bpf", "on", "--cgroup", "/proc", "--bpf-pin-dir", &pins])
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--outbound-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/proc: not a cgroup v2 directory: pass --cgroup PATH"),
        "{stderr}"
    );
    assert!(!sandbox.pins.exists(), "nothing pinned");

    let agent = support::spawn(
        &dir,
        &["--bpf", "auto", "--cgroup", "/proc", "--bpf-pin-dir", &pins],
    )
    .await;
    agent.loaded().await;
    let services: Value = agent.admin_json("/services").await;
    assert_eq!(services["bpf"], "off", "{services}");
    assert_eq!(
        services["services"][0]["frontend"], "127.10.3.1:80",
        "what the maps would hold"
    );
    assert!(!sandbox.pins.exists(), "nothing pinned");
}
