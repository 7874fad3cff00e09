//! `pod/NAME` and `node/NAME`: the mesh-agent a target names, and a URL of its admin API.
//!
//! Agents are found by their label (`app.kubernetes.io/name=mesh-agent`, as `manifests/agent`
//! sets it): `node/NAME` is the agent scheduled on that node, `pod/NAME` a pod of that name in
//! `-n`'s namespace, else the agent of that name in any namespace. The admin API is reached
//! through the API server (`kubectl port-forward`: it listens on the node's loopback) or, with
//! `--via direct`, at the pod's IP.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::cli::{Global, Via};

/// The label manifests/agent gives the agent's pods.
pub const AGENT_LABEL: &str = "app.kubernetes.io/name=mesh-agent";

/// One agent and the base URL of its admin API.
pub struct Agent {
    /// `namespace/name` of its pod.
    pub pod: String,
    pub node: String,
    pub url: String,
}

/// Agents reached; their port-forwards last as long as this does.
pub struct Agents {
    pub agents: Vec<Agent>,
    _runtime: tokio::runtime::Runtime,
}

/// The admin API's port from the pod's `--admin-addr` (15000 by default).
fn admin_port(pod: &Pod) -> u16 {
    let args = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.args.iter().flatten().chain(c.command.iter().flatten()));
    let mut next_is_addr = false;
    for a in args {
        let value = match a.strip_prefix("--admin-addr=") {
            Some(v) => Some(v),
            None if next_is_addr => Some(a.as_str()),
            None => None,
        };
        next_is_addr = a == "--admin-addr";
        if let Some(port) = value
            .and_then(|v| v.rsplit(':').next())
            .and_then(|p| p.parse().ok())
        {
            return port;
        }
    }
    15000
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    // Port-forwards are served in the background while the caller's blocking HTTP client
    // talks to them.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

async fn reach(client: &kube::Client, pod: &Pod, via: Via) -> Result<Agent, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let port = admin_port(pod);
    let url = match via {
        Via::PortForward => {
            let f = mesh_kube::forward::start(client.clone(), &ns, &name, port)
                .await
                .map_err(|e| format!("pod/{name}: cannot listen for the port-forward: {e}"))?;
            format!("http://{}", f.local)
        }
        Via::Direct => {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .ok_or(format!("pod/{name} has no IP yet"))?;
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            format!("http://{host}:{port}")
        }
    };
    Ok(Agent {
        pod: format!("{ns}/{name}"),
        node,
        url,
    })
}

/// The pods a target names: `pod/NAME` or `node/NAME`.
async fn pods_of(client: &kube::Client, global: &Global, target: &str) -> Result<Vec<Pod>, String> {
    let all: Api<Pod> = Api::all(client.clone());
    let agents = ListParams::default().labels(AGENT_LABEL);
    if let Some(node) = target.strip_prefix("node/") {
        let list = all
            .list(&agents.fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(|e| format!("{target}: cannot list mesh-agent pods: {e}"))?;
        if list.items.is_empty() {
            return Err(format!("{target}: no mesh-agent pod ({AGENT_LABEL}) runs on that node (kubectl get pods -A -l {AGENT_LABEL} -o wide)"));
        }
        return Ok(list.items);
    }
    let Some(name) = target.strip_prefix("pod/") else {
        return Err(format!("{target}: name a target as pod/NAME or node/NAME"));
    };
    let here: Api<Pod> = Api::namespaced(client.clone(), &global.namespace);
    if let Some(p) = here
        .get_opt(name)
        .await
        .map_err(|e| format!("{target}: {e}"))?
    {
        return Ok(vec![p]);
    }
    let list = all
        .list(&agents.fields(&format!("metadata.name={name}")))
        .await
        .map_err(|e| format!("{target}: cannot list mesh-agent pods: {e}"))?;
    if list.items.is_empty() {
        return Err(format!(
            "{target}: no such pod in namespace {} nor a mesh-agent of that name elsewhere (kubectl get pods -A -l {AGENT_LABEL})",
            global.namespace
        ));
    }
    Ok(list.items)
}

/// Reach the agents of the pods `find` lists (on a client of the cluster the flags name).
fn reach_all<F, Fut>(global: &Global, find: F) -> Result<Agents, String>
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Pod>, String>>,
{
    let runtime = runtime()?;
    let agents = runtime.block_on(async {
        let client = crate::cluster::client(global).await?;
        let mut out = Vec::new();
        for p in &find(client.clone()).await? {
            out.push(reach(&client, p, global.via).await?);
        }
        Ok::<_, String>(out)
    })?;
    Ok(Agents {
        agents,
        _runtime: runtime,
    })
}

/// The agent `target` names.
pub fn resolve(global: &Global, target: &str) -> Result<Agents, String> {
    reach_all(global, |client| async move {
        let mut pods = pods_of(&client, global, target).await?;
        pods.truncate(1);
        Ok(pods)
    })
}

/// Every agent of the cluster.
pub fn every(global: &Global) -> Result<Agents, String> {
    reach_all(global, |client| async move {
        Api::<Pod>::all(client)
            .list(&ListParams::default().labels(AGENT_LABEL))
            .await
            .map(|l| l.items)
            .map_err(|e| format!("cannot list mesh-agent pods ({AGENT_LABEL}): {e}"))
    })
}

/// Ask the agent `target` names through `ask` (given its admin API's URL); an error says which
/// pod and node it was.
pub fn ask<T>(
    global: &Global,
    target: &str,
    ask: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let reached = resolve(global, target)?;
    let agent = &reached.agents[0];
    ask(&agent.url).map_err(|e| {
        format!(
            "{target} (mesh-agent {} on node {}): {e}",
            agent.pod, agent.node
        )
    })
}
