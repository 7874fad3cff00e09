//! Defaulting: the values the Gateway API CRDs fill in, as an RFC 6902 JSON Patch.
//!
//! A cluster whose Gateway API CRDs are older than the objects (or a server that does not
//! default at all) stores objects without the spec's defaults; every consumer then has to
//! re-derive them, and `kubectl get -o yaml` shows something other than what runs. The webhook
//! adds them at admission. The patch is the difference between the object and its defaulted
//! form, so applying it twice changes nothing (an already defaulted object gets an empty
//! patch) and `status` is never touched.

use serde_json::{json, Map, Value};

use crate::kind::{Kind, GATEWAY_GROUP};

/// The JSON Patch that defaults `raw`, an object of `kind` (empty when nothing is missing).
pub fn patch(kind: Kind, raw: &Value) -> json_patch::Patch {
    let mut defaulted = raw.clone();
    apply(kind, &mut defaulted);
    json_patch::diff(raw, &defaulted)
}

/// Fill in the defaults of an object of `kind`, in place.
pub fn apply(kind: Kind, raw: &mut Value) {
    let namespace = raw
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(spec) = raw.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match kind {
        Kind::Gateway => gateway(spec),
        Kind::HttpRoute => {
            parent_refs(spec);
            if !spec.contains_key("rules") {
                spec.insert("rules".into(), json!([{}]));
            }
            for rule in array(spec, "rules") {
                let Some(rule) = rule.as_object_mut() else {
                    continue;
                };
                let matches = rule.entry("matches").or_insert_with(|| json!([{}]));
                if matches.as_array().is_some_and(Vec::is_empty) {
                    *matches = json!([{}]);
                }
                for m in matches.as_array_mut().into_iter().flatten() {
                    http_match(m);
                }
                http_filters(rule);
                backend_refs(rule);
            }
        }
        Kind::GrpcRoute => {
            parent_refs(spec);
            for rule in array(spec, "rules") {
                let Some(rule) = rule.as_object_mut() else {
                    continue;
                };
                for m in array(rule, "matches") {
                    if let Some(method) = m.get_mut("method").and_then(Value::as_object_mut) {
                        method.entry("type").or_insert_with(|| json!("Exact"));
                    }
                    header_types(m);
                }
                http_filters(rule);
                backend_refs(rule);
            }
        }
        Kind::TlsRoute | Kind::TcpRoute | Kind::UdpRoute => {
            parent_refs(spec);
            for rule in array(spec, "rules") {
                if let Some(rule) = rule.as_object_mut() {
                    backend_refs(rule);
                }
            }
        }
        Kind::CiliumEnvoyConfig => {
            // Cilium reads a missing namespace as the object's own (documented for
            // CiliumEnvoyConfig; a cluster-wide config has no namespace to default to).
            if let Some(ns) = namespace {
                for list in ["services", "backendServices"] {
                    for s in array(spec, list) {
                        if let Some(s) = s.as_object_mut() {
                            s.entry("namespace").or_insert_with(|| json!(ns));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// The array at `key` of `map`, mutably; nothing when absent or not an array.
fn array<'a>(map: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn values<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn gateway(spec: &mut Map<String, Value>) {
    for l in array(spec, "listeners") {
        let Some(l) = l.as_object_mut() else { continue };
        let allowed = l.entry("allowedRoutes").or_insert_with(|| json!({}));
        if let Some(allowed) = allowed.as_object_mut() {
            let ns = allowed.entry("namespaces").or_insert_with(|| json!({}));
            if let Some(ns) = ns.as_object_mut() {
                ns.entry("from").or_insert_with(|| json!("Same"));
            }
        }
        if let Some(tls) = l.get_mut("tls").and_then(Value::as_object_mut) {
            tls.entry("mode").or_insert_with(|| json!("Terminate"));
            for c in array(tls, "certificateRefs") {
                if let Some(c) = c.as_object_mut() {
                    c.entry("group").or_insert_with(|| json!(""));
                    c.entry("kind").or_insert_with(|| json!("Secret"));
                }
            }
        }
    }
}

fn parent_refs(spec: &mut Map<String, Value>) {
    for p in array(spec, "parentRefs") {
        if let Some(p) = p.as_object_mut() {
            p.entry("group").or_insert_with(|| json!(GATEWAY_GROUP));
            p.entry("kind").or_insert_with(|| json!("Gateway"));
        }
    }
}

/// BackendObjectReference defaults: the core group and kind Service.
fn backend_object(b: &mut Value) {
    if let Some(b) = b.as_object_mut() {
        b.entry("group").or_insert_with(|| json!(""));
        b.entry("kind").or_insert_with(|| json!("Service"));
    }
}

fn backend_refs(rule: &mut Map<String, Value>) {
    for b in array(rule, "backendRefs") {
        backend_object(b);
        if let Some(obj) = b.as_object_mut() {
            obj.entry("weight").or_insert_with(|| json!(1));
            http_filters(obj);
        }
    }
}

fn http_match(m: &mut Value) {
    let Some(obj) = m.as_object_mut() else { return };
    let path = obj.entry("path").or_insert_with(|| json!({}));
    if let Some(path) = path.as_object_mut() {
        path.entry("type").or_insert_with(|| json!("PathPrefix"));
        path.entry("value").or_insert_with(|| json!("/"));
    }
    header_types(m);
    for q in values(m, "queryParams") {
        if let Some(q) = q.as_object_mut() {
            q.entry("type").or_insert_with(|| json!("Exact"));
        }
    }
}

fn header_types(m: &mut Value) {
    for h in values(m, "headers") {
        if let Some(h) = h.as_object_mut() {
            h.entry("type").or_insert_with(|| json!("Exact"));
        }
    }
}

fn http_filters(owner: &mut Map<String, Value>) {
    for f in array(owner, "filters") {
        if let Some(r) = f.get_mut("requestRedirect").and_then(Value::as_object_mut) {
            r.entry("statusCode").or_insert_with(|| json!(302));
        }
        if let Some(b) = f.pointer_mut("/requestMirror/backendRef") {
            backend_object(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(kind: Kind, v: Value) -> Value {
        let p = patch(kind, &v);
        let mut out = v.clone();
        json_patch::patch(&mut out, &p).unwrap();
        out
    }

    #[test]
    fn httproute_defaults_like_the_crd() {
        let v = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "svc", "port": 80}],
            "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}]},
            "status": {"parents": []}});
        let out = applied(Kind::HttpRoute, v.clone());
        assert_eq!(
            out["spec"]["parentRefs"][0],
            json!({"name": "gw", "group": GATEWAY_GROUP, "kind": "Gateway"})
        );
        assert_eq!(
            out["spec"]["rules"][0]["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/"}}])
        );
        assert_eq!(
            out["spec"]["rules"][0]["backendRefs"][0],
            json!({"name": "svc", "port": 80, "group": "", "kind": "Service", "weight": 1})
        );
        assert_eq!(
            out["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"],
            302
        );
        assert_eq!(out["status"], v["status"], "status is never touched");
        let again = patch(Kind::HttpRoute, &out);
        assert!(again.0.is_empty(), "idempotent: {again:?}");
    }

    #[test]
    fn explicit_values_are_kept() {
        let v = json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "echo"}],
            "rules": [{"matches": [{"path": {"type": "Exact", "value": "/v1"}}], "backendRefs": [{"name": "a", "port": 80, "weight": 0}]}]}});
        let out = applied(Kind::HttpRoute, v.clone());
        assert_eq!(out["spec"]["parentRefs"][0], v["spec"]["parentRefs"][0]);
        assert_eq!(
            out["spec"]["rules"][0]["matches"],
            v["spec"]["rules"][0]["matches"]
        );
        assert_eq!(out["spec"]["rules"][0]["backendRefs"][0]["weight"], 0);
    }

    #[test]
    fn gateway_allowed_routes_default_to_same() {
        let v = json!({"spec": {"gatewayClassName": "c", "listeners": [{"name": "h", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "cert"}]}}]}});
        let out = applied(Kind::Gateway, v);
        let l = &out["spec"]["listeners"][0];
        assert_eq!(l["allowedRoutes"], json!({"namespaces": {"from": "Same"}}));
        assert_eq!(l["tls"]["mode"], "Terminate");
        assert_eq!(l["tls"]["certificateRefs"][0]["kind"], "Secret");
    }

    #[test]
    fn every_bundled_example_defaults_idempotently() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let source = crate::load::FileSource {
            inputs: vec![crate::load::Input::Path(root.into())],
        };
        let (objects, errors) = crate::load::ObjectSource::objects(&source, &Default::default());
        assert!(errors.is_empty());
        for o in objects {
            let Some(kind) = o.known else { continue };
            let mut once = o.raw.clone();
            json_patch::patch(&mut once, &patch(kind, &o.raw)).unwrap();
            assert!(patch(kind, &once).0.is_empty(), "{}", o.reference());
        }
    }
}
