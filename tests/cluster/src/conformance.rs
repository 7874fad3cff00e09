//! `mesh-cluster conformance`: the upstream Gateway API conformance suite against mesh-agent,
//! on the real control plane, in a network namespace of its own (`crate::netns`).
//!
//! kwok plays the node and gives the suite's pods IPs of the namespace's local range; the pods
//! of the suite's echo images are served by mesh-echo at those IPs (`crate::pods`); mesh-agent
//! runs in Kubernetes mode with the shipped RBAC and GatewayClass, each Gateway on an address
//! of its own from `GATEWAY_POOL`, its eBPF socket load balancer attached to a cgroup made for
//! the mesh pods; and the suite's test binary (`conformance/build.sh`) runs with the profiles
//! asked for, inferring the features to test from the GatewayClass's and the XMesh's
//! `status.supportedFeatures` as the agent writes them, and writes its report.
//!
//! The mesh tests send from inside a mesh pod (`kubectl exec POD -- client URL`): kwok runs
//! `mesh-cluster client` (this program, as `client` in a folder put first on kwok's PATH) with
//! the pod's environment, which joins the mesh cgroup, so its connects to ClusterIPs are
//! translated by the agent's programs as a pod's would be on a node running the agent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pods::Pods;
use crate::{Cluster, Options};

/// Where kwok takes pod IPs from (inside `netns::ENDPOINTS`).
pub const POD_CIDR: &str = "198.19.0.0/17";
/// Where mesh-agent takes each Gateway's address from (inside `netns::ENDPOINTS`).
pub const GATEWAY_POOL: &str = "198.19.255.0/24";

/// The XMesh the run creates for the agent (named as the GatewayClass).
const MESH: &str = "kubectl-mesh";

/// What to run.
pub struct Run {
    /// The mesh-agent binary.
    pub agent: PathBuf,
    /// Comma-separated conformance profiles (GATEWAY-HTTP, GATEWAY-TLS, GATEWAY-GRPC, ...).
    pub profiles: String,
    /// Where the report (the suite's YAML) goes.
    pub report: PathBuf,
    /// Where the logs of the run go (the suite's output, the agent's log).
    pub logs: PathBuf,
    /// Extra flags for the suite (`-run-test NAME`, `-supported-features ...`).
    pub extra: Vec<String>,
}

fn step(what: &str) {
    eprintln!("mesh-cluster conformance: {what}");
}

fn wait(within: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > within {
            return Err(format!("{what} not within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn apply_files(cluster: &Cluster, root: &Path, files: &[&str]) -> Result<(), String> {
    for f in files {
        let path = root.join(f).display().to_string();
        cluster
            .kubectl(&["apply", "--server-side", "-f", &path], "")
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A folder holding `client`: a script running this program's `client` (the mesh pods'
/// client, which the suite runs by `kubectl exec`).
fn client_folder(logs: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().map_err(|e| format!("finding mesh-cluster itself: {e}"))?;
    let dir = logs.join("exec");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = dir.join("client");
    let quoted = me.display().to_string().replace('\'', "'\\''");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec '{quoted}' client \"$@\"\n"),
    )
    .and_then(|()| std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)))
    .map_err(|e| format!("{}: {e}", script.display()))?;
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

/// Run the suite; Ok(true) when it passed. Must be called before the process starts any
/// other thread that should be inside the network namespace (it enters one).
pub fn run(run: &Run) -> Result<bool, String> {
    crate::netns::enter()?;
    let suite = {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/build.sh");
        let out = Command::new("sh")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed", script.display()));
        }
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    std::fs::create_dir_all(&run.logs).map_err(|e| format!("{}: {e}", run.logs.display()))?;
    let sandbox = mesh_bpf::testing::Sandbox::new("conformance")
        .ok_or("the mesh pods need a cgroup v2 of their own (run as root)")?;
    let exec = client_folder(&run.logs)?;
    step("starting the control plane (kwok playing one node)");
    let cluster = Cluster::start(Options {
        kwok: true,
        pod_cidr: Some(POD_CIDR.into()),
        exec_path: Some(exec),
        ..Options::default()
    })
    .map_err(|e| e.to_string())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    cluster
        .install_crds("experimental")
        .map_err(|e| e.to_string())?;
    apply_files(
        &cluster,
        &root,
        &[
            "manifests/webhook/00-namespace.yaml",
            "manifests/agent/10-serviceaccount.yaml",
            "manifests/agent/20-rbac.yaml",
            "manifests/agent/40-gatewayclass.yaml",
        ],
    )?;
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-0\n  annotations: {kwok.x-k8s.io/node: fake}\n  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux}\n";
    cluster
        .kubectl(&["apply", "-f", "-"], node)
        .map_err(|e| e.to_string())?;
    // The mesh the suite's mesh tests read the supported mesh features from (-mesh-name).
    let mesh = format!(
        "apiVersion: gateway.networking.x-k8s.io/v1alpha1\nkind: XMesh\nmetadata:\n  name: {MESH}\nspec:\n  controllerName: {}\n",
        mesh_model::controller::CONTROLLER_NAME
    );
    cluster
        .kubectl(&["apply", "-f", "-"], &mesh)
        .map_err(|e| e.to_string())?;
    let admin = cluster.kubeconfig().map_err(|e| e.to_string())?;
    let node = crate::pods::Node {
        cgroup: sandbox.cgroup.clone(),
        hosts: run.logs.join("hosts"),
        logs: run.logs.join("pods"),
    };
    let _pods = Pods::run(admin.clone(), Some(node)).map_err(|e| e.to_string())?;

    step("starting mesh-agent");
    let agent_log = run.logs.join("mesh-agent.log");
    let log =
        std::fs::File::create(&agent_log).map_err(|e| format!("{}: {e}", agent_log.display()))?;
    let kubeconfig = cluster
        .kubeconfig_for(&cluster.agent, "agent")
        .map_err(|e| e.to_string())?;
    let mut agent = Command::new(&run.agent)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--gateway-address-pool",
            GATEWAY_POOL,
            "--admin-addr",
            "127.0.0.1:15000",
            "--outbound-addr",
            "127.0.0.1:15001",
            "--bpf",
            "on",
        ])
        .arg("--cgroup")
        .arg(&sandbox.cgroup)
        .arg("--bpf-pin-dir")
        .arg(&sandbox.pins)
        .args(["--identity", "conformance"])
        .env(
            "RUST_LOG",
            std::env::var("MESH_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", run.agent.display()))?;
    let features = |kind: &str| {
        cluster
            .kubectl(
                &[
                    "get",
                    kind,
                    "kubectl-mesh",
                    "-o",
                    "jsonpath={.status.supportedFeatures}",
                ],
                "",
            )
            .unwrap_or_default()
    };
    let ready = wait(
        Duration::from_secs(60),
        "the GatewayClass's and XMesh's statuses",
        || features("gatewayclass").contains("HTTPRoute") && features("xmesh").contains("Mesh"),
    );
    if let Err(e) = ready {
        let _ = agent.kill();
        return Err(format!("{e}; see {}", agent_log.display()));
    }

    step(&format!(
        "running the suite ({}); its output: {}",
        run.profiles,
        run.logs.join("suite.log").display()
    ));
    let suite_log = run.logs.join("suite.log");
    let out =
        std::fs::File::create(&suite_log).map_err(|e| format!("{}: {e}", suite_log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let report = std::path::absolute(&run.report).map_err(|e| e.to_string())?;
    let status = Command::new(&suite)
        .args([
            "-test.v",
            "-test.timeout=90m",
            "-gateway-class=kubectl-mesh",
            &format!("-mesh-name={MESH}"),
            &format!("-conformance-profiles={}", run.profiles),
            &format!("-report-output={}", report.display()),
            "-organization=kubectl-mesh",
            "-project=kubectl-mesh",
            "-url=https://github.com/kubectl-mesh/kubectl-mesh",
            &format!("-version=v{}", env!("CARGO_PKG_VERSION")),
            "-contact=https://github.com/kubectl-mesh/kubectl-mesh/issues",
            "-cleanup-base-resources=false",
        ])
        .args(&run.extra)
        .env("KUBECONFIG", &admin)
        .current_dir(&run.logs)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("{}: {e}", suite.display()))?;
    let _ = agent.kill();
    let _ = agent.wait();
    Ok(status.success())
}
