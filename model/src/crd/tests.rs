use serde_json::json;

use super::*;

fn problems(channel: Option<Channel>, object: Value) -> ChannelProblems {
    let api = object["apiVersion"].as_str().unwrap();
    let (group, version) = api.rsplit_once('/').unwrap();
    check(
        channel,
        group,
        object["kind"].as_str().unwrap(),
        version,
        &object,
        None,
    )
    .unwrap()
}

fn route(spec: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "r", "namespace": "default"}, "spec": spec})
}

#[test]
fn the_catalog_has_both_channels_of_the_release() {
    let cat = catalog();
    assert!(cat.release.starts_with("v1.6."), "{}", cat.release);
    assert!(cat.kind(Channel::Standard, GROUP, "TCPRoute").is_some());
    assert!(cat.kind(Channel::Standard, GROUP, "XMesh").is_none());
    assert!(cat
        .kind(
            Channel::Experimental,
            "gateway.networking.x-k8s.io",
            "XMesh"
        )
        .is_some());
}

const GROUP: &str = "gateway.networking.k8s.io";

#[test]
fn a_valid_route_has_no_findings_in_either_channel() {
    let r = route(json!({"parentRefs": [{"name": "gw"}],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/x"}}],
                   "backendRefs": [{"name": "svc", "port": 80, "weight": 1}]}]}));
    for channel in [Some(Channel::Standard), Some(Channel::Experimental), None] {
        let p = problems(channel, r.clone());
        assert!(
            p.refused.is_empty() && p.standard_only.is_empty(),
            "{channel:?}: {p:?}"
        );
    }
}

#[test]
fn structural_findings_read_like_the_api_servers() {
    let p = problems(
        Some(Channel::Standard),
        route(
            json!({"hostnames": ["Bad_Host"], "parentRefs": [{"name": "gw", "port": 99999999}],
            "rules": [{"backendRefs": [{"name": "svc", "port": 80, "weight": -1}]}], "bogus": 1}),
        ),
    );
    let by_field = |f: &str| {
        p.refused
            .iter()
            .filter(|v| v.field == f)
            .map(|v| v.message.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        by_field("spec.hostnames[0]")
            .contains("spec.hostnames[0] in body should match '^(\\*\\.)?[a-z0-9]"),
        "{p:?}"
    );
    assert_eq!(
        by_field("spec.parentRefs[0].port"),
        "Invalid value: 99999999: spec.parentRefs[0].port in body should be less than or equal to 65535"
    );
    assert_eq!(
        by_field("spec.rules[0].backendRefs[0].weight"),
        "Invalid value: -1: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0"
    );
    assert_eq!(by_field("spec.bogus"), "unknown field \"spec.bogus\"");
}

#[test]
fn cel_rules_run_on_defaulted_values() {
    // The path match type defaults to PathPrefix, whose rule wants a value starting with '/'.
    let p = problems(
        Some(Channel::Standard),
        route(json!({"rules": [{"matches": [{"path": {"value": "x"}}]}]})),
    );
    assert!(
        p.refused.iter().any(|v| v.constraint == Constraint::Rule
            && v.field == "spec.rules[0].matches[0].path"
            && v.message.contains("value must be an absolute path")),
        "{p:?}"
    );
    // TLSRoute hostnames may not be IPs (isIP).
    let tls = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute",
        "metadata": {"name": "t"}, "spec": {"hostnames": ["10.0.0.1"],
        "rules": [{"backendRefs": [{"name": "s", "port": 443}]}]}});
    let p = problems(Some(Channel::Standard), tls);
    assert!(
        p.refused
            .iter()
            .any(|v| v.message.contains("Hostnames cannot contain an IP")),
        "{p:?}"
    );
}

#[test]
fn experimental_fields_are_apart_until_the_channel_is_known() {
    let r = route(json!({"rules": [{"retry": {"attempts": 2}}]}));
    let unknown = problems(None, r.clone());
    assert!(unknown.refused.is_empty(), "{unknown:?}");
    assert_eq!(unknown.standard_only.len(), 1, "{unknown:?}");
    assert_eq!(unknown.standard_only[0].constraint, Constraint::Unknown);
    assert_eq!(
        problems(Some(Channel::Standard), r.clone()).refused.len(),
        1
    );
    assert!(problems(Some(Channel::Experimental), r).refused.is_empty());
}

#[test]
fn versions_only_the_experimental_channel_serves() {
    let mut r = json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
        "metadata": {"name": "t"}, "spec": {"rules": [{"backendRefs": [{"name": "s", "port": 443}]}]}});
    let p = problems(None, r.clone());
    assert!(p.refused.is_empty(), "{p:?}");
    assert_eq!(p.standard_only[0].field, "apiVersion");
    r["apiVersion"] = json!("gateway.networking.k8s.io/v1alpha9");
    let p = problems(Some(Channel::Experimental), r);
    assert!(
        p.refused[0]
            .message
            .contains("served versions: gateway.networking.k8s.io/v1"),
        "{p:?}"
    );
}

/// Every CEL rule of every kind and version of both channels.
fn catalog_rules() -> Vec<&'static cel::ValidationRule> {
    fn walk(s: &'static Schema, out: &mut Vec<&'static cel::ValidationRule>) {
        out.extend(&s.validations);
        s.properties.values().for_each(|p| walk(p, out));
        if let Some(i) = &s.items {
            walk(i, out);
        }
    }
    let mut out = Vec::new();
    for channel in [Channel::Standard, Channel::Experimental] {
        for k in catalog().kinds(channel) {
            for v in &k.versions {
                walk(&v.schema, &mut out);
            }
        }
    }
    out
}

#[test]
fn transition_rules_need_the_old_object() {
    assert!(catalog_rules().iter().any(|r| r.rule.contains("oldSelf")));
    // GatewayClass controllerName is immutable: said on an update that changes it, never on a
    // create.
    let class = |controller: &str| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "c"}, "spec": {"controllerName": controller}})
    };
    let (new, old) = (class("example.net/b"), class("example.net/a"));
    let check = |old: Option<&Value>| {
        super::check(
            Some(Channel::Standard),
            GROUP,
            "GatewayClass",
            "v1",
            &new,
            old,
        )
        .unwrap()
        .refused
    };
    assert!(check(None).is_empty());
    let update = check(Some(&old));
    assert!(
        update.iter().any(|v| v.constraint == Constraint::Rule
            && v.field == "spec.controllerName"
            && v.message.contains("Value is immutable")),
        "{update:?}"
    );
}

#[test]
fn every_rule_of_the_catalog_compiles() {
    let bad: Vec<&str> = catalog_rules()
        .into_iter()
        .filter(|r| !r.compiles())
        .map(|r| r.rule.as_str())
        .collect();
    assert!(bad.is_empty(), "rules that do not compile: {bad:#?}");
}

#[test]
fn kinds_only_the_experimental_channel_has() {
    let mesh = json!({"apiVersion": "gateway.networking.x-k8s.io/v1alpha1", "kind": "XMesh",
        "metadata": {"name": "m"}, "spec": {"controllerName": "example.net/mesh"}});
    let standard = problems(Some(Channel::Standard), mesh.clone());
    assert_eq!(standard.refused.len(), 1, "{standard:?}");
    assert_eq!(standard.refused[0].field, "kind");
    assert!(problems(Some(Channel::Experimental), mesh.clone())
        .refused
        .is_empty());
    let unknown = problems(None, mesh);
    assert!(unknown.refused.is_empty());
    assert_eq!(unknown.standard_only[0].field, "kind");
}

/// Kubernetes' CEL libraries as the catalog's rules call them: `matches` (patterns compiled once
/// and reused), `isIP`, and the format library's `format.dns1123Label().validate(s)`.
#[test]
fn kubernetes_cel_functions_decide_like_the_api_server() {
    let rule_failures = |object: Value| {
        problems(Some(Channel::Experimental), object)
            .refused
            .into_iter()
            .filter(|v| v.constraint == Constraint::Rule)
            .map(|v| v.field)
            .collect::<Vec<_>>()
    };
    let path = |value: &str| {
        route(json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": value}}]}]}))
    };
    for _ in 0..2 {
        assert!(rule_failures(path("/ok/~x")).is_empty());
        assert_eq!(
            rule_failures(path("/bad path")),
            ["spec.rules[0].matches[0].path"]
        );
    }
    let backend = |port: &str| {
        json!({"apiVersion": "gateway.networking.x-k8s.io/v1alpha1", "kind": "XBackend",
               "metadata": {"name": "b", "namespace": "default"},
               "spec": {"type": "ExternalHostname", "externalHostname": {"hostname": "example.com"},
                        "port": {"port": 443, "name": port}}})
    };
    assert!(rule_failures(backend("https")).is_empty());
    assert!(rule_failures(backend("")).is_empty());
    assert_eq!(rule_failures(backend("Not_A_Label")), ["spec.port.name"]);
    // A rule that cannot be evaluated (a key it reads without guarding it) refuses the object,
    // worded as the API server words it.
    let mut untyped = backend("https");
    untyped["spec"].as_object_mut().unwrap().remove("type");
    let refused = problems(Some(Channel::Experimental), untyped).refused;
    assert!(
        refused.iter().any(|v| v.field == "spec"
            && v.message
                == "Invalid value: \"object\": no such key: type evaluating rule: externalHostname must be set when type is ExternalHostname and must be unset otherwise"),
        "{refused:?}"
    );
}

/// Checking only where the channels differ finds what checking the whole standard schema finds
/// beyond the experimental check: on valid objects, experimental-only fields, errors in shared
/// nodes (CEL and structural) and type errors (which block CEL).
#[test]
fn the_standard_pass_over_differing_nodes_finds_what_a_full_pass_finds() {
    let cat = catalog();
    let objects = [
        route(json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/x"}}]}]})),
        route(json!({"rules": [{"retry": {"attempts": 2, "codes": [503]},
            "filters": [{"type": "CORS", "cors": {"allowOrigins": ["https://a.example"]}}],
            "matches": [{"path": {"type": "PathPrefix", "value": "bad"}}]}]})),
        route(
            json!({"hostnames": ["Bad_Host"], "rules": [{"backendRefs": [
            {"name": "s", "port": 99999999, "weight": -1,
             "filters": [{"type": "ExternalAuth", "externalAuth": {"protocol": "HTTP",
                "backendRef": {"name": "auth"}}}]}]}]}),
        ),
        route(json!({"rules": [{"timeouts": {"request": 5}, "matches": [{"path": "x"}]}]})),
        route(
            json!({"parentRefs": [{"name": "g", "sectionName": "x", "port": 80}],
            "rules": [{"name": "Not A Name", "sessionPersistence": {"type": "Cookie"}}]}),
        ),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "g", "namespace": "default"},
            "spec": {"gatewayClassName": "c", "allowedListeners": {"namespaces": {"from": "All"}},
                "listeners": [{"name": "a", "port": 80, "protocol": "HTTP"},
                    {"name": "a", "port": 80, "protocol": "HTTPS", "hostname": "x.example"}]}}),
    ];
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let got = problems(None, object.clone());
        let experimental: std::collections::HashSet<_> = got.refused.iter().cloned().collect();
        let version = cat
            .kind(Channel::Standard, "gateway.networking.k8s.io", kind)
            .and_then(|k| k.version("v1"))
            .unwrap();
        let mut full: Vec<Violation> = validate(version, &object, None)
            .into_iter()
            .filter(|v| !experimental.contains(v))
            .collect();
        let mut got = got.standard_only;
        full.sort_by(|a, b| (&a.field, &a.message).cmp(&(&b.field, &b.message)));
        got.sort_by(|a, b| (&a.field, &a.message).cmp(&(&b.field, &b.message)));
        assert_eq!(got, full, "{object}");
    }
}

#[test]
fn versions_sort_as_kubernetes_sorts_them() {
    let mut v = [
        "v1alpha1", "v1beta1", "v1", "v2beta1", "v1beta2", "v1alpha3", "x1", "v2",
    ];
    v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    assert_eq!(
        v,
        ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha3", "v1alpha1", "x1"]
    );
}

/// Remembered CEL verdicts (`memo`) change nothing that is found: every Gateway API object of
/// the rule fixtures and examples (most of them broken on purpose) gets the same findings with
/// every rule run and with verdicts remembered, on a cold table and a warm one.
#[test]
fn remembered_verdicts_find_what_running_every_rule_finds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["model/fixtures/rules", "examples"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    files.push(p);
                }
            }
        }
    }
    let mut objects = Vec::new();
    for f in &files {
        let Ok(docs) = crate::yaml::parse_documents(&std::fs::read_to_string(f).unwrap()) else {
            continue;
        };
        for d in docs {
            let api = d.value["apiVersion"].as_str().unwrap_or("");
            if api.starts_with("gateway.networking") && api.contains('/') {
                objects.push(d.value);
            }
        }
    }
    assert!(objects.len() > 200, "{} objects", objects.len());
    let all = |bypass: bool| {
        memo::BYPASS.set(bypass);
        let found: Vec<String> = objects
            .iter()
            .map(|o| {
                let api = o["apiVersion"].as_str().unwrap();
                let (group, version) = api.rsplit_once('/').unwrap();
                let kind = o["kind"].as_str().unwrap_or("");
                format!("{:?}", check(None, group, kind, version, o, None))
            })
            .collect();
        memo::BYPASS.set(false);
        found
    };
    let every_rule = all(true);
    assert!(
        every_rule.iter().filter(|f| f.contains("Rule")).count() > 20,
        "the corpus breaks CEL rules"
    );
    assert_eq!(all(false), every_rule, "cold table");
    assert_eq!(all(false), every_rule, "warm table");
}

/// Two filters of one type, one without the member its type needs: the verdict on the first
/// is not reused for the second, whichever comes first.
#[test]
fn a_remembered_verdict_is_not_reused_for_a_value_the_rule_tells_apart() {
    let good = json!({"type": "RequestHeaderModifier",
                      "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}});
    let bad = json!({"type": "RequestHeaderModifier"});
    for filters in [[&good, &bad], [&bad, &good]] {
        let rules: Vec<Value> = filters.iter().map(|f| json!({"filters": [f]})).collect();
        let p = problems(
            Some(Channel::Standard),
            route(json!({"parentRefs": [{"name": "gw"}], "rules": rules})),
        );
        assert_eq!(p.refused.len(), 1, "{filters:?}: {p:?}");
        let i = filters.iter().position(|f| *f == &bad).unwrap();
        assert_eq!(
            p.refused[0].field,
            format!("spec.rules[{i}].filters[0]"),
            "{:?}",
            p.refused
        );
    }
}
