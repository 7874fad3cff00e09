//! mesh-webhook behind a real kube-apiserver (tests/cluster): installed from
//! `manifests/webhook` (the one difference: a `url` clientConfig to the binary running here
//! instead of the in-cluster Service), watching with its ServiceAccount's identity under the
//! manifests' RBAC, and called by the API server on `kubectl apply`.

use std::time::Duration;

use mesh_cluster::{run, Cluster, Options};

mod support;

/// The webhook configurations of `manifests/webhook`, pointed at `url` and trusting `ca`.
fn configurations(url: &str, ca_bundle: &str) -> String {
    let text = std::fs::read_to_string(support::root().join("manifests/webhook/30-webhooks.yaml"))
        .unwrap();
    let mut out = text.replace("caBundle: \"\"", &format!("caBundle: \"{ca_bundle}\""));
    for path in ["/validate", "/mutate"] {
        let service = format!("service:\n      name: mesh-webhook\n      namespace: mesh-system\n      path: {path}\n      port: 443");
        assert!(
            out.contains(&service),
            "the manifests' clientConfig changed shape"
        );
        out = out.replace(&service, &format!("url: \"{url}{path}\""));
    }
    out
}

#[test]
#[ignore = "builds the control plane on first use (about 15 minutes); `cargo test -p mesh-webhook --test real_cluster -- --ignored` until make test runs it"]
fn the_api_server_calls_the_webhook_and_kubectl_shows_its_verdicts() {
    let cluster = Cluster::start(Options::default()).expect("the control plane starts");
    cluster.install_crds("experimental").unwrap();
    let manifests = support::root().join("manifests/webhook");
    for f in ["00-namespace.yaml", "10-rbac.yaml"] {
        let path = manifests.join(f).display().to_string();
        cluster
            .kubectl(&["apply", "--server-side", "-f", &path], "")
            .unwrap();
    }

    // The webhook, with its ServiceAccount's identity.
    let dir = support::tempdir("real-cluster");
    let ca_bundle = support::certs(&dir);
    let kubeconfig = cluster.kubeconfig_for(&cluster.webhook, "webhook").unwrap();
    let webhook = support::serve("real-cluster", dir, &[], &[("KUBECONFIG", &kubeconfig)]);
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(support::ca(&webhook.dir))
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let ready = (0..400).any(|_| {
        let ok = client
            .get(format!("{}/readyz", webhook.url))
            .send()
            .is_ok_and(|r| r.status() == 200);
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(ready, "the webhook never listed every kind under its RBAC");
    cluster
        .kubectl(
            &["apply", "--server-side", "-f", "-"],
            &configurations(&webhook.url, &ca_bundle),
        )
        .unwrap();

    // Its RBAC lets it read, not write.
    let write = run(
        cluster.kubectl_as(&cluster.webhook),
        &["create", "secret", "generic", "x", "-n", "default"],
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(write.contains("forbidden"), "{write}");

    // A broken route is denied with the webhook's finding; kubectl shows it.
    let broken = support::root()
        .join("examples/broken/backend-service-missing.yaml")
        .display()
        .to_string();
    // The namespaces the example's objects live in (a cluster has them already).
    let text = std::fs::read_to_string(&broken).unwrap();
    let mut namespaces: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("namespace: "))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        let _ = cluster.kubectl(&["create", "namespace", ns], "");
    }
    let mut last = String::new();
    let denied = (0..50)
        .find_map(|_| {
            let out = cluster.kubectl(&["apply", "-f", &broken], "");
            match out {
                Err(e) if e.to_string().contains("MESH2104") => Some(e.to_string()),
                other => {
                    last = format!("{other:?}");
                    std::thread::sleep(Duration::from_millis(200));
                    None
                }
            }
        })
        .unwrap_or_else(|| panic!("the webhook did not deny; kubectl said: {last}"));
    assert!(
        denied.contains("admission webhook \"validate.mesh.kubectl-mesh.io\" denied the request"),
        "{denied}"
    );

    // A route in a namespace, then the webhook stops: creating fails closed, deleting (its own
    // entry, failurePolicy Ignore) goes through, and the namespace is finalized.
    let route = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]\n";
    cluster.kubectl(&["apply", "-f", "-"], route).unwrap();
    drop(webhook);
    let refused = cluster
        .kubectl(
            &["apply", "-f", "-"],
            &route.replace("name: r,", "name: r2,"),
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("failed calling webhook"), "{refused}");
    cluster
        .kubectl(&["delete", "namespace", "shop", "--timeout=90s"], "")
        .expect("deleting is not blocked by a webhook that is down");
}
