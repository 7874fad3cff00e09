//! Every rule's documented examples are its test: `bad` must produce the code, `good` must not.

use super::*;
use crate::load::{load_str, LoadOptions};
use crate::object::Source;

fn findings(code: &str, which: &str, text: &str) -> Vec<Diagnostic> {
    let source = Source::File(format!("{code}/{which}.yaml").into());
    let objects = load_str(text, source, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{code} {which}: {e}"));
    check(&Snapshot::new(objects))
}

#[test]
fn every_rule_fires_on_bad_and_not_on_good() {
    let mut failures = Vec::new();
    for rule in catalog() {
        if rule.bad.trim().is_empty() || rule.good.trim().is_empty() {
            failures.push(format!("{}: missing bad or good fixture", rule.code));
            continue;
        }
        let bad = findings(rule.code, "bad", rule.bad);
        if !bad.iter().any(|d| d.code == rule.code) {
            failures.push(format!(
                "{}: bad fixture does not produce it; got {:?}",
                rule.code,
                bad.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            ));
        }
        let good = findings(rule.code, "good", rule.good);
        if let Some(d) = good.iter().find(|d| d.code == rule.code) {
            failures.push(format!(
                "{}: good fixture still produces it: {d}",
                rule.code
            ));
        }
        // The fixed example should be clean of errors altogether, so it can be copied.
        if let Some(d) = good.iter().find(|d| d.level == Level::Error) {
            failures.push(format!("{}: good fixture has an error: {d}", rule.code));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn codes_and_names_are_unique_and_documented() {
    let mut codes = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for r in catalog() {
        assert!(codes.insert(r.code), "duplicate code {}", r.code);
        assert!(names.insert(r.name), "duplicate name {}", r.name);
        assert!(
            r.code.starts_with("MESH") && r.code.len() == 8,
            "{}",
            r.code
        );
        assert!(
            !r.doc.is_empty() && !r.hint.is_empty() && !r.title.is_empty(),
            "{}",
            r.code
        );
    }
    assert!(catalog().len() >= 45, "only {} rules", catalog().len());
}

#[test]
fn suppression_annotation_drops_codes() {
    let text = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata:\n  name: r\n  annotations:\n    kubectl-mesh.io/suppress: MESH9001\nspec: {}\n";
    let all = findings("x", "bad", &text.replace("MESH9001", "MESH0000"));
    assert!(all.iter().any(|d| d.code == "MESH9001"));
    let some = findings("x", "bad", text);
    assert!(!some.iter().any(|d| d.code == "MESH9001"));
}

#[test]
fn one_object_checks_like_the_whole_snapshot() {
    // The webhook checks the incoming object alone against the cluster's snapshot.
    let rule = find("MESH2104").unwrap();
    let objects = load_str(rule.bad, Source::Stdin, &LoadOptions::default()).unwrap();
    let snap = Snapshot::new(objects);
    let route = snap
        .objects()
        .iter()
        .find(|o| o.kind == "HTTPRoute")
        .unwrap();
    let alone = check_object(route, &snap);
    let all: Vec<_> = check(&snap)
        .into_iter()
        .filter(|d| d.resource == route.reference())
        .collect();
    assert_eq!(alone.len(), all.len());
    assert!(alone.iter().any(|d| d.code == "MESH2104"));
}

/// A version the targeted release no longer serves is an Error, not also an "older version" note.
#[test]
fn an_unserved_version_is_not_called_older() {
    let text = "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  rules: [{backendRefs: [{name: s, port: 50051}]}]\n";
    let codes: Vec<&str> = findings("versions", "grpc", text)
        .iter()
        .map(|d| d.code)
        .collect();
    assert!(codes.contains(&"MESH0003"), "{codes:?}");
    assert!(!codes.contains(&"MESH9001"), "{codes:?}");
}

/// Older means less mature than a served version, not "not the storage version": v1.6 serves
/// ReferenceGrant v1 but stores v1beta1.
#[test]
fn a_served_version_more_mature_than_storage_is_not_older() {
    let grant = |version: &str| {
        let text = format!("apiVersion: gateway.networking.k8s.io/{version}\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: a}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: b}}]\n  to: [{{group: \"\", kind: Service}}]\n");
        findings("versions", "grant", &text)
            .into_iter()
            .filter(|d| d.code == "MESH9001")
            .map(|d| d.message)
            .collect::<Vec<_>>()
    };
    assert!(grant("v1").is_empty());
    let older = grant("v1beta1");
    assert_eq!(older.len(), 1);
    assert!(
        older[0].contains("gateway.networking.k8s.io/v1 is served"),
        "{older:?}"
    );
}

/// The API server labels every Namespace `kubernetes.io/metadata.name: <name>`; a listener that
/// selects namespaces by that label admits routes from a Namespace written without it.
#[test]
fn namespaces_carry_their_name_label() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: infra}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: web\n    protocol: HTTP\n    port: 80\n    allowedRoutes:\n      namespaces:\n        from: Selector\n        selector: {matchLabels: {kubernetes.io/metadata.name: NS}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRefs: [{name: gw, namespace: infra}]\n";
    let not_allowed = |selected: &str| {
        findings("x", "ns", &text.replace("NS", selected))
            .iter()
            .any(|d| d.reason == Some("NotAllowedByListeners"))
    };
    assert!(!not_allowed("shop"));
    assert!(not_allowed("infra"));
}

/// A `ca.crt` that is there but empty is no CA bundle (the conformance suite blanks it and
/// expects the policy to lose its CA).
#[test]
fn an_empty_ca_bundle_is_no_bundle() {
    let rule = catalog().iter().find(|r| r.code == "MESH1141").unwrap();
    let with = |value: &str| {
        let text = rule.bad.replace(
            "  ca.pem: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n",
            &format!("  ca.crt: {value}\n"),
        );
        assert_ne!(text, rule.bad, "the fixture changed shape");
        findings("MESH1141", "edited", &text)
            .iter()
            .any(|d| d.code == "MESH1141")
    };
    assert!(with("\"\""));
    assert!(with("\" \\n\""));
    assert!(!with(
        "|\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----"
    ));
}
