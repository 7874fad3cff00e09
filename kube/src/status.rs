//! Statuses written back to the cluster: what the Plan says of each GatewayClass, Gateway,
//! ListenerSet, route and BackendTLSPolicy of ours, as the Gateway API status fields, compared with what the
//! object already carries, and written by server-side apply to the status subresource only
//! where they differ.
//!
//! Conditions carry the object's `metadata.generation` as `observedGeneration`, and keep their
//! `lastTransitionTime` while their status is unchanged (as `meta.SetStatusCondition` does), so
//! a rebuild that changes nothing writes nothing. A route's `status.parents` (and a policy's
//! `status.ancestors`) is an atomic list shared with other controllers: their entries are kept, ours replaced, and the write is
//! conditional on the resourceVersion it was merged from, so another controller's concurrent
//! write is never lost (a conflict is retried on the next rebuild).

use std::collections::HashMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mesh_model::controller::Class;
use mesh_model::kind::{Kind, GATEWAY_GROUP};
use mesh_model::plan::status::{Condition, GatewayStatus, PolicyStatus, RouteStatus};
use mesh_model::plan::Plan;
use mesh_model::{Object, Snapshot};
use serde_json::{json, Value};

use crate::resource::api_resource;

/// What the statuses need besides the Plan.
pub struct Options<'a> {
    /// Our controllerName (`kubectl-mesh.io/gateway-controller`).
    pub controller: &'a str,
    /// The addresses of each Gateway (`namespace/name`), as clients reach it.
    pub addresses: &'a HashMap<String, Vec<std::net::IpAddr>>,
    /// Gateway API features this controller supports, for GatewayClass
    /// `status.supportedFeatures`.
    pub supported_features: &'a [&'a str],
    /// The mesh features, for XMesh `status.supportedFeatures`.
    pub mesh_features: &'a [&'a str],
    pub now: jiff::Timestamp,
}

/// One status to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub kind: Kind,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The object's resourceVersion the status was computed from.
    pub read_version: String,
    /// Written only if the object is still at `read_version` (routes: the list is merged with
    /// other controllers' entries read at that version).
    pub conditional: bool,
    pub status: Value,
}

impl Update {
    /// `HTTPRoute shop/cart`, for logs.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.name(), self.name),
            None => format!("{} {}", self.kind.name(), self.name),
        }
    }
}

fn generation(o: &Object) -> i64 {
    o.raw["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// A condition as the API wants it, with the transition time of `previous` (the conditions the
/// object carries) when its status did not change.
fn condition(c: &Condition, generation: i64, previous: &Value, now: &str) -> Value {
    let status = if c.status { "True" } else { "False" };
    let since = previous
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["type"] == c.kind && p["status"] == status)
        .and_then(|p| p["lastTransitionTime"].as_str())
        .unwrap_or(now);
    json!({
        "type": c.kind,
        "status": status,
        "reason": c.reason,
        "message": truncate(&c.message, 32768),
        "observedGeneration": generation,
        "lastTransitionTime": since,
    })
}

/// Messages are limited to 32,768 bytes by the schema; a longer one would make the write fail.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn conditions(list: &[Condition], generation: i64, previous: &Value, now: &str) -> Value {
    Value::Array(
        list.iter()
            .map(|c| condition(c, generation, previous, now))
            .collect(),
    )
}

/// A status with its lists in a canonical order, to compare what is with what should be.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        Value::Array(a) => {
            let mut items: Vec<Value> = a.iter().map(canonical).collect();
            // Conditions by type, listeners by name; other lists keep their order.
            if items
                .iter()
                .all(|i| i.get("type").is_some() && i.get("lastTransitionTime").is_some())
            {
                items.sort_by(|x, y| x["type"].as_str().cmp(&y["type"].as_str()));
            } else if items
                .iter()
                .all(|i| i.get("name").is_some() && i.get("attachedRoutes").is_some())
            {
                items.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// Whether `object`'s status already says what `status` says, field by field of ours.
fn unchanged(object: &Object, status: &Value) -> bool {
    let current = &object.raw["status"];
    status
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| canonical(&current[k]) == canonical(v))
}

fn update(object: &Object, status: Value, conditional: bool) -> Option<Update> {
    if unchanged(object, &status) {
        return None;
    }
    Some(Update {
        kind: object.known?,
        api_version: object.raw["apiVersion"].as_str()?.to_string(),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        read_version: object.raw["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        conditional,
        status,
    })
}

/// The statuses of our GatewayClasses, Gateways, ListenerSets and routes that differ from what
/// the objects carry. `snap` is what the Plan was compiled from.
pub fn updates(plan: &Plan, snap: &Snapshot, classes: &[Class], opts: &Options) -> Vec<Update> {
    let now = opts.now.to_string();
    let mut out = Vec::new();
    for class in classes {
        let Some(o) = snap.get(class.kind, None, &class.name) else {
            continue;
        };
        let g = generation(o);
        let previous = &o.raw["status"]["conditions"];
        let accepted = match &class.accepted {
            Ok(()) => Condition {
                kind: "Accepted",
                status: true,
                reason: "Accepted",
                message: String::new(),
            },
            Err((reason, message)) => Condition {
                kind: "Accepted",
                status: false,
                reason,
                message: message.clone(),
            },
        };
        let mut conditions = vec![condition(&accepted, g, previous, &now)];
        let mut features: Vec<&str> = if class.kind == Kind::XMesh {
            opts.mesh_features.to_vec()
        } else {
            // An XMesh has no SupportedVersion condition (its API defines Accepted only).
            let supported = Condition {
                kind: "SupportedVersion",
                status: true,
                reason: "SupportedVersion",
                message: String::new(),
            };
            conditions.push(condition(&supported, g, previous, &now));
            opts.supported_features.to_vec()
        };
        features.sort_unstable();
        let status = json!({
            "conditions": conditions,
            "supportedFeatures": features.iter().map(|f| json!({"name": f})).collect::<Vec<_>>(),
        });
        out.extend(update(o, status, false));
    }
    for gw in &plan.gateway_status {
        let kind = if gw.kind == "ListenerSet" {
            Kind::ListenerSet
        } else {
            Kind::Gateway
        };
        let Some(o) = snap.get(kind, Some(&gw.namespace), &gw.name) else {
            continue;
        };
        out.extend(update(o, gateway(gw, o, opts, &now), false));
    }
    for route in &plan.route_status {
        let Some(kind) = Kind::lookup(GATEWAY_GROUP, &route.kind) else {
            continue;
        };
        let Some(o) = snap.get(kind, Some(&route.namespace), &route.name) else {
            continue;
        };
        let parents = shared(o, "parents", "parentRef", &route_parents(route), opts, &now);
        out.extend(update(o, json!({ "parents": parents }), true));
    }
    for policy in &plan.policy_status {
        let Some(o) = snap.get(
            Kind::BackendTlsPolicy,
            Some(&policy.namespace),
            &policy.name,
        ) else {
            continue;
        };
        let ancestors = shared(
            o,
            "ancestors",
            "ancestorRef",
            &policy_ancestors(policy),
            opts,
            &now,
        );
        out.extend(update(o, json!({ "ancestors": ancestors }), true));
    }
    // Routes and policies that no longer have a parent of ours but still carry our entries.
    let described: std::collections::HashSet<(&str, &str, &str)> = plan
        .route_status
        .iter()
        .map(|r| (r.kind.as_str(), r.namespace.as_str(), r.name.as_str()))
        .chain(
            plan.policy_status
                .iter()
                .map(|p| ("BackendTLSPolicy", p.namespace.as_str(), p.name.as_str())),
        )
        .collect();
    let lists = mesh_model::kind::ROUTE_KINDS
        .iter()
        .map(|&k| (k, "parents", "parentRef"))
        .chain([(Kind::BackendTlsPolicy, "ancestors", "ancestorRef")]);
    for (kind, list, ref_field) in lists {
        for o in snap.of_kind(kind) {
            let ns = o.namespace.as_deref().unwrap_or_default();
            if described.contains(&(o.kind.as_str(), ns, o.name.as_str())) {
                continue;
            }
            let ours = o.raw["status"][list]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p["controllerName"] == opts.controller));
            if ours {
                let emptied = shared(o, list, ref_field, &[], opts, &now);
                out.extend(update(o, json!({ list: emptied }), true));
            }
        }
    }
    out
}

fn gateway(gw: &GatewayStatus, o: &Object, opts: &Options, now: &str) -> Value {
    let g = generation(o);
    let previous = &o.raw["status"];
    let listeners: Vec<Value> = gw
        .listeners
        .iter()
        .map(|l| {
            let before = previous["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == l.name.as_str())
                .map(|p| &p["conditions"])
                .unwrap_or(&Value::Null);
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds.iter().map(|k| json!({"group": GATEWAY_GROUP, "kind": k})).collect::<Vec<_>>(),
                "attachedRoutes": l.attached_routes,
                "conditions": conditions(&l.conditions, g, before, now),
            })
        })
        .collect();
    let mut status = json!({
        "conditions": conditions(&gw.conditions, g, &previous["conditions"], now),
        "listeners": listeners,
    });
    if gw.kind == "Gateway" {
        let key = format!("{}/{}", gw.namespace, gw.name);
        let addresses: Vec<Value> = opts
            .addresses
            .get(&key)
            .into_iter()
            .flatten()
            .map(|a| json!({"type": "IPAddress", "value": a.to_string()}))
            .collect();
        status["addresses"] = Value::Array(addresses);
    }
    if let Some(n) = gw.attached_listener_sets {
        status["attachedListenerSets"] = json!(n);
    }
    status
}

/// A shared status list (a route's `status.parents`, a policy's `status.ancestors`): other
/// controllers' entries as they are, then ours, one per `(reference, conditions)`, under
/// `ref_field` (`parentRef`, `ancestorRef`).
fn shared(
    o: &Object,
    list: &str,
    ref_field: &str,
    ours: &[(Value, &[Condition])],
    opts: &Options,
    now: &str,
) -> Value {
    let g = generation(o);
    let existing: Vec<&Value> = o.raw["status"][list]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut out: Vec<Value> = existing
        .iter()
        .filter(|p| p["controllerName"] != opts.controller)
        .map(|p| (*p).clone())
        .collect();
    for (reference, conds) in ours {
        let before = existing
            .iter()
            .find(|e| e["controllerName"] == opts.controller && same_ref(&e[ref_field], reference))
            .map(|e| &e["conditions"])
            .unwrap_or(&Value::Null);
        out.push(json!({
            ref_field: reference,
            "controllerName": opts.controller,
            "conditions": conditions(conds, g, before, now),
        }));
    }
    Value::Array(out)
}

/// A route's parentRefs of ours with their conditions.
fn route_parents(route: &RouteStatus) -> Vec<(Value, &[Condition])> {
    route
        .parents
        .iter()
        .map(|p| {
            let r = &p.reference;
            let mut reference =
                json!({"group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name});
            if let Some(s) = &r.section_name {
                reference["sectionName"] = json!(s);
            }
            if let Some(port) = r.port {
                reference["port"] = json!(port);
            }
            (reference, p.conditions.as_slice())
        })
        .collect()
}

/// A policy's ancestors (Gateways) with their conditions.
fn policy_ancestors(policy: &PolicyStatus) -> Vec<(Value, &[Condition])> {
    policy
        .ancestors
        .iter()
        .map(|a| {
            let reference = json!({"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": a.gateway_namespace, "name": a.gateway_name});
            (reference, a.conditions.as_slice())
        })
        .collect()
}

/// Two parentRefs naming the same parent (written with or without their defaults).
fn same_ref(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, k: &str, default: &str| v[k].as_str().unwrap_or(default).to_string();
    ["name", "namespace", "sectionName"]
        .iter()
        .all(|k| field(a, k, "") == field(b, k, ""))
        && field(a, "group", GATEWAY_GROUP) == field(b, "group", GATEWAY_GROUP)
        && field(a, "kind", "Gateway") == field(b, "kind", "Gateway")
        && a["port"] == b["port"]
}

/// Writes statuses by server-side apply under one field manager.
pub struct Writer {
    pub client: kube::Client,
    /// The field manager (`mesh-agent`): what `kubectl get -o yaml --show-managed-fields`
    /// says owns the statuses.
    pub manager: String,
}

/// Why a status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the status of {what}: {source}")]
pub struct WriteError {
    pub what: String,
    /// 409 Conflict: the object changed since it was read; the next rebuild writes again.
    pub conflict: bool,
    #[source]
    pub source: kube::Error,
}

impl Writer {
    /// Write each update; an object deleted meanwhile is skipped. Returns how many were
    /// written, and the errors of the others.
    pub async fn write(&self, updates: &[Update]) -> (usize, Vec<WriteError>) {
        let (mut written, mut errors) = (0, Vec::new());
        for u in updates {
            let version = u.api_version.rsplit('/').next().unwrap_or("v1");
            let ar = api_resource(u.kind.info(), version);
            let api: Api<DynamicObject> = match &u.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
                None => Api::all_with(self.client.clone(), &ar),
            };
            let mut metadata = json!({"name": u.name});
            if let Some(ns) = &u.namespace {
                metadata["namespace"] = json!(ns);
            }
            if u.conditional && !u.read_version.is_empty() {
                metadata["resourceVersion"] = json!(u.read_version);
            }
            let body = json!({"apiVersion": u.api_version, "kind": u.kind.name(), "metadata": metadata, "status": u.status});
            let params = PatchParams::apply(&self.manager).force();
            match api
                .patch_status(&u.name, &params, &Patch::Apply(&body))
                .await
            {
                Ok(_) => written += 1,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    let conflict = matches!(&e, kube::Error::Api(s) if s.code == 409);
                    errors.push(WriteError {
                        what: u.describe(),
                        conflict,
                        source: e,
                    });
                }
            }
        }
        (written, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::controller::{classes, CONTROLLER_NAME};
    use mesh_model::load::{load_str, LoadOptions};

    const INPUT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mesh, generation: 1}
spec: {controllerName: kubectl-mesh.io/gateway-controller}
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XMesh
metadata: {name: mesh, generation: 4}
spec: {controllerName: kubectl-mesh.io/gateway-controller}
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XMesh
metadata: {name: theirs, generation: 1}
spec: {controllerName: example.net/mesh-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra, generation: 3, resourceVersion: "10"}
spec:
  gatewayClassName: mesh
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: app, generation: 2, resourceVersion: "11"}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules: [{backendRefs: [{name: missing, port: 80}]}]
status:
  parents:
  - parentRef: {group: gateway.networking.k8s.io, kind: Gateway, namespace: other, name: theirs}
    controllerName: example.net/gateway-controller
    conditions: [{type: Accepted, status: "True", reason: Accepted, message: "", observedGeneration: 2, lastTransitionTime: "2026-01-01T00:00:00Z"}]
"#;

    fn snapshot(objects: Vec<Object>) -> Snapshot {
        Snapshot::new(objects)
    }

    fn run(snap: &Snapshot, at: &str) -> Vec<Update> {
        let plan = mesh_model::plan::compile(snap);
        let addresses: HashMap<String, Vec<std::net::IpAddr>> =
            [("infra/web".to_string(), vec!["127.0.10.1".parse().unwrap()])].into();
        let opts = Options {
            controller: CONTROLLER_NAME,
            addresses: &addresses,
            supported_features: &["HTTPRoute", "Gateway"],
            mesh_features: &["Mesh"],
            now: at.parse().unwrap(),
        };
        updates(
            &plan,
            snap,
            &classes(snap.objects(), CONTROLLER_NAME),
            &opts,
        )
    }

    /// The objects with the updates applied, as the API server would store them.
    fn applied(snap: &Snapshot, updates: &[Update]) -> Snapshot {
        let mut objects = snap.objects().to_vec();
        for u in updates {
            let o = objects
                .iter_mut()
                .find(|o| o.name == u.name && o.known == Some(u.kind))
                .unwrap();
            for (k, v) in u.status.as_object().unwrap() {
                o.raw["status"][k] = v.clone();
            }
        }
        snapshot(objects)
    }

    #[test]
    fn statuses_say_what_the_plan_says_and_are_written_once() {
        let snap =
            snapshot(load_str(INPUT, mesh_model::Source::Stdin, &LoadOptions::default()).unwrap());
        let first = run(&snap, "2026-11-30T10:00:00Z");
        let kinds: Vec<String> = first.iter().map(Update::describe).collect();
        assert_eq!(
            kinds,
            [
                "GatewayClass mesh",
                "XMesh mesh",
                "Gateway infra/web",
                "HTTPRoute app/shop"
            ]
        );
        let class = &first[0].status;
        assert_eq!(class["conditions"][0]["type"], "Accepted");
        assert_eq!(class["conditions"][0]["status"], "True");
        assert_eq!(class["conditions"][1]["type"], "SupportedVersion");
        assert_eq!(
            class["supportedFeatures"],
            json!([{"name": "Gateway"}, {"name": "HTTPRoute"}])
        );
        // The XMesh of ours: Accepted alone, the mesh features; theirs is left alone.
        let mesh = &first[1].status;
        assert_eq!(mesh["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(mesh["conditions"][0]["status"], "True");
        assert_eq!(mesh["conditions"][0]["observedGeneration"], 4);
        assert_eq!(mesh["supportedFeatures"], json!([{"name": "Mesh"}]));
        let gw = &first[2].status;
        assert_eq!(
            gw["addresses"],
            json!([{"type": "IPAddress", "value": "127.0.10.1"}])
        );
        assert_eq!(gw["listeners"][0]["attachedRoutes"], 1);
        assert_eq!(
            gw["listeners"][0]["supportedKinds"],
            json!([{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}, {"group": GATEWAY_GROUP, "kind": "GRPCRoute"}])
        );
        assert!(gw["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["observedGeneration"] == 3));
        assert!(!first[2].conditional, "a Gateway's status is all ours");
        let route = &first[3];
        assert_eq!(
            (route.conditional, route.read_version.as_str()),
            (true, "11"),
            "the merged list is written only over what it was merged from"
        );
        let parents = route.status["parents"].as_array().unwrap();
        assert_eq!(
            parents.len(),
            2,
            "the other controller's entry stays: {parents:?}"
        );
        assert_eq!(
            parents[0]["controllerName"],
            "example.net/gateway-controller"
        );
        assert_eq!(
            parents[1]["parentRef"],
            json!({"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "infra", "name": "web"})
        );
        let resolved = parents[1]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "ResolvedRefs")
            .unwrap();
        assert_eq!(
            (resolved["status"].as_str(), resolved["reason"].as_str()),
            (Some("False"), Some("BackendNotFound"))
        );

        // Stored, then rebuilt later with nothing changed: nothing to write.
        let stored = applied(&snap, &first);
        assert_eq!(run(&stored, "2026-11-30T10:05:00Z"), Vec::new());
    }

    #[test]
    fn a_changed_condition_moves_its_transition_time_and_only_its_own() {
        let snap =
            snapshot(load_str(INPUT, mesh_model::Source::Stdin, &LoadOptions::default()).unwrap());
        let stored = applied(&snap, &run(&snap, "2026-11-30T10:00:00Z"));
        // The missing backend appears.
        let mut objects = stored.objects().to_vec();
        objects.extend(load_str("apiVersion: v1\nkind: Service\nmetadata: {name: missing, namespace: app}\nspec: {ports: [{port: 80}]}\n", mesh_model::Source::Stdin, &LoadOptions::default()).unwrap());
        let later = run(&snapshot(objects), "2026-11-30T11:00:00Z");
        assert_eq!(later.len(), 1, "only the route changed: {later:?}");
        let ours = &later[0].status["parents"][1]["conditions"];
        let at = |t: &str| {
            ours.as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["lastTransitionTime"]
                .clone()
        };
        assert_eq!(at("ResolvedRefs"), "2026-11-30T11:00:00Z");
        assert_eq!(at("Accepted"), "2026-11-30T10:00:00Z");
    }

    #[test]
    fn our_entries_go_when_the_route_leaves_our_gateways() {
        let snap =
            snapshot(load_str(INPUT, mesh_model::Source::Stdin, &LoadOptions::default()).unwrap());
        let stored = applied(&snap, &run(&snap, "2026-11-30T10:00:00Z"));
        let objects: Vec<Object> = stored
            .objects()
            .iter()
            .filter(|o| o.kind != "Gateway")
            .cloned()
            .collect();
        let later = run(&snapshot(objects), "2026-11-30T11:00:00Z");
        let route = later
            .iter()
            .find(|u| u.kind == Kind::HttpRoute)
            .expect("the route is rewritten");
        let parents = route.status["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 1);
        assert_eq!(
            parents[0]["controllerName"],
            "example.net/gateway-controller"
        );
    }

    #[test]
    fn a_backend_tls_policy_gets_a_status_per_gateway_it_applies_through() {
        let policy = r#"
---
apiVersion: v1
kind: Service
metadata: {name: missing, namespace: app}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: tls, namespace: app, generation: 4}
spec:
  targetRefs: [{group: "", kind: Service, name: missing}]
  validation:
    hostname: missing.example
    caCertificateRefs: [{group: "", kind: Pod, name: ca}]
"#;
        let text = format!("{INPUT}{policy}");
        let snap =
            snapshot(load_str(&text, mesh_model::Source::Stdin, &LoadOptions::default()).unwrap());
        let updates = run(&snap, "2026-11-30T10:00:00Z");
        let u = updates
            .iter()
            .find(|u| u.kind == Kind::BackendTlsPolicy)
            .expect("the policy's status");
        assert!(u.conditional);
        let ancestor = &u.status["ancestors"][0];
        assert_eq!(
            ancestor["ancestorRef"],
            json!({"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "infra", "name": "web"})
        );
        assert_eq!(ancestor["controllerName"], CONTROLLER_NAME);
        let c = |t: &str| {
            ancestor["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            (
                c("Accepted")["status"].clone(),
                c("Accepted")["reason"].clone()
            ),
            (json!("False"), json!("NoValidCACertificate"))
        );
        assert_eq!(
            (
                c("ResolvedRefs")["status"].clone(),
                c("ResolvedRefs")["reason"].clone()
            ),
            (json!("False"), json!("InvalidKind"))
        );
        assert_eq!(c("Accepted")["observedGeneration"], 4);
        // Stored: nothing more to write.
        let stored = applied(&snap, &updates);
        assert_eq!(run(&stored, "2026-11-30T10:05:00Z"), Vec::new());
    }
}
