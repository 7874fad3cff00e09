//! AdmissionReview in, AdmissionReview out: validation and defaulting of one request.
//!
//! The types are `admission.k8s.io/v1` as the API server sends them. They are declared here
//! rather than taken from kube's `AdmissionRequest<K>`, which types the object as a Kubernetes
//! resource and would drop the unknown fields the rules must see; the object stays raw JSON
//! and goes through the same loader as `kubectl mesh analyze`.

use std::sync::Arc;

use base64::Engine;
use mesh_model::load::{build_update, LoadOptions};
use mesh_model::rules::{self, Scope};
use mesh_model::yaml::Lines;
use mesh_model::{Diagnostic, Kind, Level, Snapshot, Source};

use crate::cluster::Cluster;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview as received, before its request is read: the version and kind are
/// checked first, so a wrong `admissionReviewVersions` gets a message about that. `request` is
/// optional in the schema; without it there is nothing to review (a 400).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub object: Option<Value>,
    /// The stored object an UPDATE replaces (null otherwise).
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// What happened to a review, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Warned,
    Denied,
    Patched,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Warned => "warned",
            Verdict::Denied => "denied",
            Verdict::Patched => "patched",
        }
    }
}

/// The answer: the AdmissionReview response body and its verdict.
#[derive(Debug)]
pub struct Answer {
    pub body: Value,
    pub verdict: Verdict,
    /// The kind, for metrics: a kind the model knows, else `other`. Never the request's own
    /// string, which a client could make unbounded.
    pub kind: &'static str,
}

/// The metrics label of a request's kind.
fn kind_label(gvk: &GroupVersionKind) -> &'static str {
    known_kind(gvk).map_or("other", |k| k.info().name)
}

/// Why a body is not an AdmissionReview the webhook can answer (a 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadReview {
    #[error("the body is not an AdmissionReview: {0}")]
    NotJson(String),
    #[error("apiVersion {0:?} is not supported: send admission.k8s.io/v1 (set admissionReviewVersions: [v1])")]
    Version(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview's request is malformed: {0}")]
    Request(String),
    #[error("{0} has no object")]
    NoObject(&'static str),
}

/// What the webhook knows about the cluster: its cached objects, or nothing (`--no-cluster`,
/// where only rules about the object alone run).
#[derive(Clone, Default)]
pub struct ClusterView {
    pub cluster: Option<Arc<Cluster>>,
    /// The Gateway API channel of the cluster's CRDs, when known (`--channel`).
    pub channel: Option<mesh_model::crd::Channel>,
}

/// Parse a request body.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, BadReview> {
    let review: Envelope =
        serde_json::from_slice(body).map_err(|e| BadReview::NotJson(e.to_string()))?;
    if review.api_version != API_VERSION {
        return Err(BadReview::Version(review.api_version));
    }
    if review.kind != "AdmissionReview" {
        return Err(BadReview::Kind(review.kind));
    }
    let request = review
        .request
        .filter(|r| !r.is_null())
        .ok_or(BadReview::NoRequest)?;
    serde_json::from_value(request).map_err(|e| BadReview::Request(e.to_string()))
}

fn respond(uid: &str, response: Value) -> Value {
    let mut response = response;
    response["uid"] = json!(uid);
    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})
}

/// The kind the request is about, when the model checks it.
fn known_kind(gvk: &GroupVersionKind) -> Option<Kind> {
    Kind::lookup(&gvk.group, &gvk.kind)
}

/// Make a model object of the request's object, namespaced as the request says.
fn object_of(
    req: &AdmissionRequest,
    raw: Value,
    channel: Option<mesh_model::crd::Channel>,
) -> mesh_model::Object {
    let opts = LoadOptions {
        default_namespace: req.namespace.clone().unwrap_or_else(|| "default".into()),
        channel,
        ..Default::default()
    };
    // An UPDATE is checked against the object it replaces (transition rules).
    let old = match req.operation {
        Operation::Update => req.old_object.as_ref().filter(|o| !o.is_null()),
        _ => None,
    };
    build_update(
        raw,
        old,
        Lines::flat(0),
        &Source::Cluster("admission".into()),
        &opts,
        Vec::new(),
    )
}

/// One finding as a line of a denial or a warning.
fn line(d: &Diagnostic) -> String {
    let field = if d.field.is_empty() {
        String::new()
    } else {
        format!(" {}", d.field)
    };
    format!("[{}]{}: {}", d.code, field, d.message)
}

/// Validate: Error findings deny (with every finding and its hint in the message), Warning
/// findings allow with warnings, Info is not sent.
pub fn validate(req: &AdmissionRequest, cluster: &ClusterView) -> Result<Answer, BadReview> {
    let kind_label = kind_label(&req.kind);
    let answer = |body, verdict| Answer {
        body,
        verdict,
        kind: kind_label,
    };
    if req.operation == Operation::Connect {
        return Ok(answer(
            respond(&req.uid, json!({"allowed": true})),
            Verdict::Allowed,
        ));
    }
    if req.operation == Operation::Delete {
        // Deleting is never blocked (that could wedge a namespace), but what still refers to
        // the object is named.
        let dependants = match (&cluster.cluster, known_kind(&req.kind)) {
            (Some(c), Some(kind)) => c.dependants(kind, req.namespace.as_deref(), &req.name),
            _ => Vec::new(),
        };
        if dependants.is_empty() {
            return Ok(answer(
                respond(&req.uid, json!({"allowed": true})),
                Verdict::Allowed,
            ));
        }
        let warning = format!(
            "{} {} is still referenced by {}; they will stop working",
            req.kind.kind,
            req.name,
            dependants.join(", ")
        );
        return Ok(answer(
            respond(&req.uid, json!({"allowed": true, "warnings": [warning]})),
            Verdict::Warned,
        ));
    }
    let Some(raw) = req.object.clone() else {
        return Err(BadReview::NoObject("CREATE and UPDATE requests"));
    };
    if known_kind(&req.kind).is_none() {
        let warning = format!(
            "mesh-webhook does not check {}/{} {}; check the webhook's rules (resources) in its configuration",
            req.kind.group, req.kind.version, req.kind.kind
        );
        return Ok(answer(
            respond(&req.uid, json!({"allowed": true, "warnings": [warning]})),
            Verdict::Warned,
        ));
    }
    let object = object_of(req, raw, cluster.channel);
    let reference = object.reference();
    let findings = match &cluster.cluster {
        Some(c) => {
            let snap = c.snapshot_for(object);
            let incoming = snap
                .objects()
                .last()
                .expect("the incoming object is in its snapshot");
            // Certificate contents are checked by analyze and the agent: the cache never
            // holds Secret data.
            rules::check_object_where(incoming, &snap, |r| !rules::needs_secret_data(r))
        }
        None => {
            let alone = Snapshot::new(Vec::new());
            rules::check_object_where(&object, &alone, |r| r.scope == Scope::Object)
        }
    };
    let errors: Vec<&Diagnostic> = findings
        .iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    let warnings: Vec<String> = findings
        .iter()
        .filter(|d| d.level == Level::Warning)
        .map(line)
        .collect();
    if !errors.is_empty() {
        let mut message = format!(
            "{reference} has {} problem(s) that would break it:",
            errors.len()
        );
        for d in &errors {
            message.push_str(&format!("\n{}\n  hint: {}", line(d), d.hint));
        }
        let body = respond(
            &req.uid,
            json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": message}, "warnings": warnings}),
        );
        return Ok(answer(body, Verdict::Denied));
    }
    let verdict = if warnings.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::Warned
    };
    let mut response = json!({"allowed": true});
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    Ok(answer(respond(&req.uid, response), verdict))
}

/// Mutate: allow, with the JSON Patch that adds the spec's defaults (none when present).
pub fn mutate(req: &AdmissionRequest) -> Result<Answer, BadReview> {
    let kind_label = kind_label(&req.kind);
    let allowed = |verdict| Answer {
        body: respond(&req.uid, json!({"allowed": true})),
        verdict,
        kind: kind_label,
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(allowed(Verdict::Allowed));
    }
    let Some(raw) = &req.object else {
        return Err(BadReview::NoObject("CREATE and UPDATE requests"));
    };
    let Some(kind) = known_kind(&req.kind) else {
        return Ok(allowed(Verdict::Allowed));
    };
    let patch = mesh_model::defaults::patch(kind, raw);
    if patch.0.is_empty() {
        return Ok(allowed(Verdict::Allowed));
    }
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&patch).unwrap_or_default());
    Ok(Answer {
        body: respond(
            &req.uid,
            json!({"allowed": true, "patchType": "JSONPatch", "patch": encoded}),
        ),
        verdict: Verdict::Patched,
        kind: kind_label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(op: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u-1", "kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "HTTPRoute"},
                "resource": {"group": "gateway.networking.k8s.io", "version": "v1", "resource": "httproutes"},
                "name": "r", "namespace": "shop", "operation": op, "userInfo": {"username": "me"},
                "object": object, "oldObject": null, "dryRun": false}
        }))
        .unwrap()
    }

    fn route(path: &str) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": "svc", "port": 80}]}]}})
    }

    /// Transition rules run on an UPDATE, against its `oldObject`: a GatewayClass's
    /// `controllerName` is immutable, as the API server enforces with the CRD's CEL.
    #[test]
    fn an_update_is_checked_against_the_object_it_replaces() {
        let class = |controller: &str| {
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                   "metadata": {"name": "mesh"}, "spec": {"controllerName": controller}})
        };
        let request = |op: &str, object: Value, old: Value| {
            let body = serde_json::to_vec(&json!({
                "apiVersion": API_VERSION, "kind": "AdmissionReview",
                "request": {"uid": "u-2", "kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "GatewayClass"},
                    "resource": {"group": "gateway.networking.k8s.io", "version": "v1", "resource": "gatewayclasses"},
                    "name": "mesh", "operation": op, "userInfo": {"username": "me"},
                    "object": object, "oldObject": old}
            }))
            .unwrap();
            validate(&parse(&body).unwrap(), &ClusterView::default()).unwrap()
        };
        let (new, old) = (class("example.net/b"), class("example.net/a"));
        assert_eq!(
            request("CREATE", new.clone(), Value::Null).verdict,
            Verdict::Allowed
        );
        assert_eq!(
            request("UPDATE", new.clone(), new.clone()).verdict,
            Verdict::Allowed
        );
        let changed = request("UPDATE", new, old);
        assert_eq!(changed.verdict, Verdict::Denied, "{}", changed.body);
        let message = changed.body["response"]["status"]["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("spec.controllerName") && message.contains("Value is immutable"),
            "{message}"
        );
    }

    #[test]
    fn errors_deny_with_field_and_hint() {
        let req = parse(&review("CREATE", route("details"))).unwrap();
        let a = validate(&req, &ClusterView::default()).unwrap();
        assert_eq!(a.verdict, Verdict::Denied);
        let r = &a.body["response"];
        assert_eq!(r["uid"], "u-1");
        assert_eq!(r["allowed"], false);
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(
            msg.contains("[MESH2001] spec.rules[0].matches[0].path.value"),
            "{msg}"
        );
        assert!(msg.contains("hint:"), "{msg}");
    }

    #[test]
    fn clean_objects_are_allowed_and_defaulted_once() {
        let req = parse(&review("CREATE", route("/details"))).unwrap();
        let a = validate(&req, &ClusterView::default()).unwrap();
        assert_eq!(
            (a.verdict, &a.body["response"]["allowed"]),
            (Verdict::Allowed, &json!(true))
        );
        let m = mutate(&req).unwrap();
        assert_eq!(m.verdict, Verdict::Patched);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(m.body["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        let mut obj = route("/details");
        json_patch::patch(&mut obj, &patch).unwrap();
        let again = parse(&review("UPDATE", obj)).unwrap();
        assert_eq!(
            mutate(&again).unwrap().verdict,
            Verdict::Allowed,
            "mutating a mutated object yields no patch"
        );
    }

    #[test]
    fn bad_bodies_are_named() {
        assert!(matches!(parse(b"{"), Err(BadReview::NotJson(_))));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            Err(BadReview::Version(_))
        ));
        assert_eq!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err(),
            BadReview::NoRequest
        );
        let req = parse(&review("CREATE", Value::Null)).unwrap();
        assert!(matches!(
            validate(&req, &ClusterView::default()),
            Err(BadReview::NoObject(_))
        ));
    }

    #[test]
    fn deletes_are_allowed() {
        let req = parse(&review("DELETE", Value::Null)).unwrap();
        assert_eq!(
            validate(&req, &ClusterView::default()).unwrap().verdict,
            Verdict::Allowed
        );
    }
}
