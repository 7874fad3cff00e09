//! The install manifests say what the README promises (no cluster can run here to apply them).

use std::path::Path;

use serde_json::Value;

fn objects() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/webhook");
    let source = mesh_model::FileSource {
        inputs: vec![mesh_model::Input::Path(dir)],
    };
    let (objects, errors) = mesh_model::ObjectSource::objects(&source, &Default::default());
    assert!(errors.is_empty(), "{errors:?}");
    objects.into_iter().map(|o| o.raw).collect()
}

fn find<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn webhook_configurations() {
    let all = objects();
    // Every Gateway API and Cilium kind the model knows: a kind added there and not here would
    // go unreviewed (and, missing from the ClusterRole, keep the cache from ever settling).
    let covered: Vec<&str> = mesh_model::kind::KINDS
        .iter()
        .filter(|k| {
            k.group == mesh_model::kind::GATEWAY_GROUP || k.group == mesh_model::kind::CILIUM_GROUP
        })
        .map(|k| k.plural)
        .collect();
    // Deletions are only warned about: they have an entry of their own that fails open, so a
    // webhook that is down never blocks one (a namespace holding routes would stay Terminating).
    for (kind, entry, path, policy, operations) in [
        (
            "ValidatingWebhookConfiguration",
            0,
            "/validate",
            "Fail",
            &["CREATE", "UPDATE"][..],
        ),
        (
            "ValidatingWebhookConfiguration",
            1,
            "/validate",
            "Ignore",
            &["DELETE"][..],
        ),
        (
            "MutatingWebhookConfiguration",
            0,
            "/mutate",
            "Ignore",
            &["CREATE", "UPDATE"][..],
        ),
    ] {
        let cfg = find(&all, kind);
        assert_eq!(cfg.len(), 1, "{kind}");
        let w = &cfg[0]["webhooks"][entry];
        assert_eq!(w["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["matchPolicy"], "Equivalent");
        assert_eq!(w["timeoutSeconds"], 5);
        assert_eq!(w["failurePolicy"], policy, "{kind} entry {entry}");
        assert_eq!(w["clientConfig"]["service"]["path"], path);
        assert_eq!(w["clientConfig"]["service"]["name"], "mesh-webhook");
        for rule in w["rules"].as_array().unwrap() {
            assert_eq!(
                rule["operations"],
                serde_json::json!(operations),
                "{kind} entry {entry}"
            );
        }
        let excluded = &w["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(excluded["operator"], "NotIn");
        for ns in ["kube-system", "mesh-system"] {
            assert!(
                excluded["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == ns),
                "{kind} must exclude {ns}"
            );
        }
        let resources: Vec<&str> = w["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap())
            .map(|r| r.as_str().unwrap())
            .collect();
        for &r in &covered {
            assert!(resources.contains(&r), "{kind} does not cover {r}");
        }
    }
}

#[test]
fn least_privilege_and_hardened_deployment() {
    let all = objects();
    let role = find(&all, "ClusterRole")[0];
    for rule in role["rules"].as_array().unwrap() {
        for verb in rule["verbs"].as_array().unwrap() {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                "write verb {verb} in the ClusterRole"
            );
        }
    }
    // The cache watches every kind the model knows; one it may not list never settles.
    for k in mesh_model::kind::KINDS {
        let allowed = role["rules"].as_array().unwrap().iter().any(|rule| {
            rule["apiGroups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == k.group)
                && rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == k.plural)
        });
        assert!(
            allowed,
            "the ClusterRole does not let the cache list {}",
            k.plural
        );
    }
    let d = find(&all, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["requests"]["memory"].is_string()
    );
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&format!("--tls-cert={mount}/tls.crt").as_str()),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--tls-key={mount}/tls.key").as_str()),
        "{args:?}"
    );
    assert_eq!(
        find(&all, "PodDisruptionBudget")[0]["spec"]["minAvailable"],
        1
    );
    assert_eq!(find(&all, "Service")[0]["spec"]["ports"][0]["port"], 443);
}
