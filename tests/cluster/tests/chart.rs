//! The Helm chart (`charts/kubectl-mesh`) renders the objects of `manifests/` (with its default
//! values, in `mesh-system`), each certificate mode renders what it says, and the rendering is
//! accepted by the real API server (server-side apply).

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_cluster::{run, Cluster, Options};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// helm, built from its Go module once (`tests/cluster/helm/build.sh`).
fn helm() -> PathBuf {
    let out = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/build.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm template` of the chart into mesh-system with `sets`.
fn render(sets: &[&str]) -> String {
    let mut c = Command::new(helm());
    c.args(["template", "kubectl-mesh"])
        .arg(root().join("charts/kubectl-mesh"))
        .args(["--namespace", "mesh-system"]);
    for s in sets {
        c.args(["--set", s]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).ok()?;
            (!v.is_null()).then_some(v)
        })
        .collect()
}

fn key(o: &Value) -> String {
    format!(
        "{} {} {}/{}",
        o["apiVersion"].as_str().unwrap_or(""),
        o["kind"].as_str().unwrap_or(""),
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or("")
    )
}

fn manifests() -> Vec<Value> {
    let files = [
        "webhook/10-rbac.yaml",
        "webhook/20-deployment.yaml",
        "webhook/30-webhooks.yaml",
        "agent/10-serviceaccount.yaml",
        "agent/20-rbac.yaml",
        "agent/30-daemonset.yaml",
        "agent/40-gatewayclass.yaml",
    ];
    files
        .iter()
        .flat_map(|f| objects(&std::fs::read_to_string(root().join("manifests").join(f)).unwrap()))
        .collect()
}

#[test]
fn the_chart_renders_the_manifests_and_the_api_server_takes_it() {
    let rendered = render(&[]);
    let mut chart: Vec<Value> = objects(&rendered);
    let mut shipped = manifests();
    chart.sort_by_key(key);
    shipped.sort_by_key(key);
    let keys = |v: &[Value]| v.iter().map(key).collect::<Vec<_>>();
    assert_eq!(keys(&chart), keys(&shipped), "the same objects");
    for (c, m) in chart.iter().zip(&shipped) {
        assert_eq!(c, m, "{} differs from manifests/", key(c));
    }

    // Certificates made by the chart: a Secret with a CA whose bundle the webhooks carry, for
    // the Service's names; kept as is when the Secret exists (lookup, at install).
    let generated = objects(&render(&["webhook.certificate.mode=generate"]));
    let secret = generated
        .iter()
        .find(|o| o["kind"] == "Secret")
        .expect("a Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = secret["data"]["ca.crt"].as_str().unwrap();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let w = generated.iter().find(|o| o["kind"] == kind).unwrap();
        for hook in w["webhooks"].as_array().unwrap() {
            assert_eq!(hook["clientConfig"]["caBundle"], ca, "{kind}");
        }
    }
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = parsed.parse_x509().unwrap();
    let names = format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(names.contains("mesh-webhook.mesh-system.svc"), "{names}");
    // cert-manager: its Issuer and Certificate, for the same names.
    let managed = objects(&render(&["webhook.certificate.mode=certManager"]));
    let certificate = managed
        .iter()
        .find(|o| o["kind"] == "Certificate")
        .expect("a Certificate");
    assert_eq!(
        certificate["spec"]["dnsNames"][0],
        "mesh-webhook.mesh-system.svc"
    );
    assert!(managed.iter().any(|o| o["kind"] == "Issuer"));
    // A mode that does not exist is refused by name.
    let refused = Command::new(helm())
        .args(["template", "kubectl-mesh"])
        .arg(root().join("charts/kubectl-mesh"))
        .args(["--set", "webhook.certificate.mode=bogus"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("webhook.certificate.mode"));

    // The real API server takes the rendering (server-side apply, with the CRDs installed).
    // The webhook configurations make the API server call the webhook's Service, which runs
    // nowhere here: in a network namespace of the test's own that call cannot leave the
    // machine, and with failurePolicy Ignore it lets the objects after it through.
    if let Err(e) = mesh_cluster::netns::enter() {
        eprintln!("skipped the API server part: {e}");
        return;
    }
    let rendered = render(&["webhook.failurePolicy=Ignore"]);
    let cluster = Cluster::start(Options::default()).expect("the control plane starts");
    cluster.install_crds("experimental").unwrap();
    cluster
        .kubectl(&["create", "namespace", "mesh-system"], "")
        .unwrap();
    cluster
        .kubectl(
            &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
            &rendered,
        )
        .unwrap();
    let ds = run(
        cluster.kubectl_as(&cluster.admin),
        &["-n", "mesh-system", "get", "ds/mesh-agent", "-o", "name"],
        "",
    )
    .unwrap();
    assert_eq!(ds.trim(), "daemonset.apps/mesh-agent");
    cluster
        .kubectl(
            &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
            &render(&[
                "webhook.failurePolicy=Ignore",
                "webhook.certificate.mode=generate",
            ]),
        )
        .unwrap();
}
