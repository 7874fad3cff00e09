//! The control plane itself: the API server answers its admin, refuses an identity RBAC gives
//! nothing, the controllers run (a deleted namespace is finalized and goes away), and kwok plays
//! a node on which the scheduler places a pod that then runs with a loopback address.

use mesh_cluster::{run, Cluster, Options};

#[test]
fn the_control_plane_serves_authorizes_and_finalizes() {
    let cluster = Cluster::start(Options {
        kwok: true,
        ..Options::default()
    })
    .expect("the control plane starts");
    let namespaces = cluster
        .kubectl(&["get", "namespaces", "-o", "name"], "")
        .unwrap();
    assert!(namespaces.contains("namespace/default"), "{namespaces}");

    // No binding names the webhook's ServiceAccount yet: RBAC refuses it.
    let refused = run(
        cluster.kubectl_as(&cluster.webhook),
        &["create", "namespace", "not-allowed"],
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("forbidden"), "{refused}");

    cluster
        .kubectl(&["create", "namespace", "doomed"], "")
        .unwrap();
    // Deleting waits for the namespace controller (kube-controller-manager) to finalize it.
    cluster
        .kubectl(&["delete", "namespace", "doomed", "--timeout=90s"], "")
        .unwrap();
    let gone = cluster.kubectl(&["get", "namespace", "doomed"], "");
    assert!(gone.is_err(), "{gone:?}");

    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-0\n  annotations: {kwok.x-k8s.io/node: fake}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: echo, namespace: default}\nspec:\n  containers: [{name: echo, image: registry.k8s.io/echo:fake}]\n";
    cluster.kubectl(&["apply", "-f", "-"], node).unwrap();
    cluster
        .kubectl(
            &["wait", "pod/echo", "--for=condition=Ready", "--timeout=60s"],
            "",
        )
        .unwrap();
    let ip = cluster
        .kubectl(
            &["get", "pod", "echo", "-o", "jsonpath={.status.podIP}"],
            "",
        )
        .unwrap();
    assert!(ip.starts_with("127.80."), "pod IP {ip}");

    // The agent's DaemonSet as shipped (host network, eBPF capabilities, bpffs and cgroup
    // mounts) passes the API server's validation and rolls out on the (kwok) node.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut manifests =
        std::fs::read_to_string(root.join("manifests/webhook/00-namespace.yaml")).unwrap();
    for file in [
        "10-serviceaccount.yaml",
        "20-rbac.yaml",
        "30-daemonset.yaml",
    ] {
        manifests.push_str("\n---\n");
        manifests
            .push_str(&std::fs::read_to_string(root.join("manifests/agent").join(file)).unwrap());
    }
    cluster.kubectl(&["apply", "-f", "-"], &manifests).unwrap();
    cluster
        .kubectl(
            &[
                "-n",
                "mesh-system",
                "rollout",
                "status",
                "ds/mesh-agent",
                "--timeout=90s",
            ],
            "",
        )
        .unwrap();

    // The Gateway API CRDs are served, with their schema and CEL rules enforced by the API
    // server: a PathPrefix value must start with '/'.
    cluster.install_crds("experimental").unwrap();
    let route = |path: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]}}]\n")
    };
    cluster
        .kubectl(&["apply", "--dry-run=server", "-f", "-"], &route("/ok"))
        .unwrap();
    let refused = cluster
        .kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            &route("no-slash"),
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("must be an absolute path"), "{refused}");

    // The agent's GatewayClass, once the CRDs are in.
    cluster
        .kubectl(
            &["apply", "-f", "-"],
            &std::fs::read_to_string(root.join("manifests/agent/40-gatewayclass.yaml")).unwrap(),
        )
        .unwrap();
}
