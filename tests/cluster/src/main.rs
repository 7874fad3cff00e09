//! `mesh-cluster up|down`: the tests' control plane by hand (`make cluster-up`,
//! `make cluster-down`); `conformance`: the Gateway API conformance suite (`make conformance`,
//! see `mesh_cluster::conformance`); `client URL ...`: the mesh pods' client
//! (`mesh_echo::client`), which the conformance run's `kubectl exec` runs.
//!
//! `up` starts it (with kwok and the CRDs of the Gateway API channel `MESH_CLUSTER_CHANNEL`,
//! experimental unless said, and Cilium's Envoy-config CRDs), leaves it running, records it in the state file and prints
//! the admin kubeconfig's path; `down` stops what `up` started and removes its folder. The
//! state file is `$MESH_CLUSTER_STATE`, else `kubectl-mesh-cluster.json` in the temporary
//! folder.

use std::path::PathBuf;
use std::process::ExitCode;

use mesh_cluster::{Cluster, Options};

fn state_file() -> PathBuf {
    std::env::var_os("MESH_CLUSTER_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kubectl-mesh-cluster.json"))
}

fn up() -> Result<(), String> {
    let state = state_file();
    if state.exists() {
        return Err(format!(
            "a cluster is already up ({}); run `make cluster-down` first",
            state.display()
        ));
    }
    let cluster = Cluster::start(Options {
        kwok: true,
        detach: true,
        ..Options::default()
    })
    .map_err(|e| e.to_string())?;
    let kubeconfig = cluster.kubeconfig().map_err(|e| e.to_string())?;
    let channel = std::env::var("MESH_CLUSTER_CHANNEL").unwrap_or_else(|_| "experimental".into());
    cluster.install_crds(&channel).map_err(|e| e.to_string())?;
    let record = serde_json::json!({
        "dir": cluster.dir, "pids": cluster.pids(), "kubeconfig": kubeconfig, "server": cluster.server,
    });
    std::fs::write(&state, record.to_string())
        .map_err(|e| format!("cannot write {}: {e}", state.display()))?;
    eprintln!(
        "mesh-cluster: up at {} (logs in {}); stop it with `make cluster-down`",
        cluster.server,
        cluster.dir.display()
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    Ok(())
}

fn down() -> Result<(), String> {
    let state = state_file();
    let text = match std::fs::read_to_string(&state) {
        Ok(t) => t,
        Err(_) => {
            eprintln!("mesh-cluster: no cluster is up ({})", state.display());
            return Ok(());
        }
    };
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", state.display()))?;
    let pids = record["pids"].as_array().cloned().unwrap_or_default();
    // The last started first: etcd goes last.
    for pid in pids.iter().rev().filter_map(serde_json::Value::as_u64) {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    if let Some(dir) = record["dir"].as_str() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&state);
    eprintln!("mesh-cluster: stopped");
    Ok(())
}

/// `conformance [--profiles P] [--report FILE] [--logs DIR] [-- SUITE-FLAGS...]`.
fn conformance(args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut run = mesh_cluster::conformance::Run {
        agent: exe.with_file_name("mesh-agent"),
        profiles: "GATEWAY-HTTP,GATEWAY-TLS,GATEWAY-GRPC,MESH-HTTP,MESH-GRPC".into(),
        report: PathBuf::from("docs/conformance/report.yaml"),
        logs: std::env::temp_dir().join("mesh-conformance"),
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--profiles" => run.profiles = value()?,
            "--report" => run.report = PathBuf::from(value()?),
            "--logs" => run.logs = PathBuf::from(value()?),
            "--agent" => run.agent = PathBuf::from(value()?),
            "--" => {
                run.extra = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    match mesh_cluster::conformance::run(&run)? {
        true => Ok(()),
        false => Err(format!(
            "the suite failed; its output is {}",
            run.logs.join("suite.log").display()
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let result = match std::env::args().nth(1).as_deref() {
        Some("up") => up(),
        Some("down") => down(),
        Some("conformance") => conformance(&args),
        // The mesh pods' `client` (kwok runs it for `kubectl exec`; see mesh_cluster::pods).
        Some("client") => {
            let opts = match mesh_echo::client::parse(
                std::iter::once("client".to_string()).chain(args.iter().cloned()),
            ) {
                Ok(o) => o,
                Err(e) => e.exit(),
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(mesh_echo::client::run(opts)))
        }
        _ => Err("usage: mesh-cluster up|down|conformance|client".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
