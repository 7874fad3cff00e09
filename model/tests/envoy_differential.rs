//! analyze against real Envoy 1.40 on CiliumEnvoyConfigs: the same verdict, config by config.
//!
//! The cases are seeds (the project's Cilium examples, the rule fixtures that are valid, and
//! the configs in `tests/envoy-seeds/`) and mutations of them: a generator walks each seed
//! resource together with Envoy's descriptors and, for every field that carries a
//! protoc-gen-validate annotation, writes one config that breaks the constraint and, for
//! bounds, one that meets it exactly; every duration is also made negative, and a field Envoy
//! does not know is added. A list of hand-written mutations covers what Envoy checks beyond the
//! annotations (duplicate domains, rewrite exclusivity, filter chains, HTTP/3 over TCP, ...).
//!
//! Each case is judged twice: by the rule catalog (`rules::check`; a verdict of "refused" is
//! any Error), and by `envoy --mode validate` on the static bootstrap Cilium's feeding amounts
//! to (`envoy::cilium::static_bootstrap`). The test fails below 98% agreement, on any case
//! analyze refuses that Envoy accepts, and on any disagreement not explained in
//! `mesh_model::envoy::parity::KNOWN`, which docs/rules.md lists.
//!
//! `MESH_DIFF_REPORT=FILE` writes every case and both verdicts as JSON lines.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mesh_model::diagnostic::Level;
use mesh_model::envoy::{api, cilium, constraints, parity};
use mesh_model::load::{load_str, LoadOptions};
use mesh_model::object::Source;
use mesh_model::resource::Resource;
use mesh_model::snapshot::Snapshot;
use prost_reflect::{Kind, MessageDescriptor, Value as PValue};
use serde_json::{json, Value};

/// analyze's Errors, and Envoy's refusal if it refused.
type Verdicts = (Vec<String>, Option<String>);

struct Case {
    id: String,
    doc: Value,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every CiliumEnvoyConfig of the seed files, as JSON documents.
fn seeds() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["examples/cilium", "model/tests/envoy-seeds"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for e in std::fs::read_dir(repo().join("model/fixtures/rules")).unwrap() {
        let p = e.unwrap().path().join("good.yaml");
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml_docs(&text) {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == "CiliumEnvoyConfig" || kind == "CiliumClusterwideEnvoyConfig" {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let stem = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
                out.push((format!("{stem}#{name}"), doc));
            }
        }
    }
    out
}

fn serde_yaml_docs(text: &str) -> Vec<Value> {
    let objects = load_str(
        text,
        Source::File("seed.yaml".into()),
        &LoadOptions::default(),
    )
    .unwrap();
    objects.into_iter().map(|o| o.raw).collect()
}

/// The seed's resources in canonical form (proto field names), `@type` kept: mutations are
/// written against one spelling.
fn canonical(doc: &Value) -> Value {
    let text = doc.to_string();
    let objects = load_str(
        &text,
        Source::File("seed.json".into()),
        &LoadOptions::default(),
    )
    .unwrap();
    let Resource::EnvoyConfig(cfg) = &objects[0].resource else {
        panic!("not an envoy config")
    };
    let mut out = doc.clone();
    let resources: Vec<Value> = cfg
        .resources
        .iter()
        .zip(doc["spec"]["resources"].as_array().unwrap())
        .map(|(r, raw)| match &r.canonical {
            Some(c) => {
                let mut c = c.clone();
                c.as_object_mut()
                    .unwrap()
                    .insert("@type".into(), raw["@type"].clone());
                c
            }
            None => raw.clone(),
        })
        .collect();
    out["spec"]["resources"] = Value::Array(resources);
    out
}

/// A mutation's place and kind, so the same constraint on the same message type is tested once.
type Key = (String, String, String);

struct Generator {
    seen: HashSet<Key>,
    cases: Vec<Case>,
}

impl Generator {
    fn add(&mut self, key: Key, seed: &str, path: &str, what: &str, doc: Value) {
        if self.seen.insert(key) {
            self.cases.push(Case {
                id: format!("{seed}:{path}:{what}"),
                doc,
            });
        }
    }
}

/// Follow a path of keys and indexes from the document root.
fn at<'a>(doc: &'a mut Value, path: &[Step]) -> &'a mut Value {
    let mut v = doc;
    for s in path {
        v = match s {
            Step::Key(k) => &mut v[k.as_str()],
            Step::Index(i) => &mut v[*i],
        };
    }
    v
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn show(path: &[Step]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn with(doc: &Value, path: &[Step], f: impl FnOnce(&mut Value)) -> Value {
    let mut d = doc.clone();
    f(at(&mut d, path));
    d
}

/// Walk one message of the seed (JSON `node` at `path`, of type `desc`) and generate.
fn walk(
    g: &mut Generator,
    seed: &str,
    doc: &Value,
    path: Vec<Step>,
    desc: MessageDescriptor,
    depth: usize,
) {
    if depth > 40 {
        return;
    }
    let node = {
        let mut d = doc.clone();
        at(&mut d, &path).clone()
    };
    let Some(obj) = node.as_object() else { return };
    let msg = desc.full_name().to_string();
    // A field Envoy does not know.
    g.add(
        (msg.clone(), "*".into(), "unknown-field".into()),
        seed,
        &show(&path),
        "unknown-field",
        with(doc, &path, |v| {
            v["bogus_field"] = json!(1);
        }),
    );
    for oneof in constraints::required_oneofs(&desc) {
        let present: Vec<_> = oneof
            .fields()
            .filter(|f| obj.contains_key(f.name()))
            .collect();
        if let Some(f) = present.first() {
            let name = f.name().to_string();
            g.add(
                (msg.clone(), oneof.name().into(), "oneof-required".into()),
                seed,
                &show(&path),
                &format!("no-{}", oneof.name()),
                with(doc, &path, |v| {
                    v.as_object_mut().unwrap().remove(&name);
                }),
            );
        }
    }
    for field in desc.fields() {
        let name = field.name().to_string();
        let mut here = path.clone();
        here.push(Step::Key(name.clone()));
        let present = obj.get(&name);
        if let Some(rules) = constraints::rules_of(&field) {
            mutate_by_rules(g, seed, doc, &path, &here, &msg, &field, &rules, present);
        }
        let Some(value) = present else { continue };
        let Kind::Message(sub) = field.kind() else {
            continue;
        };
        if sub.full_name() == "google.protobuf.Duration" && !field.is_list() && !field.is_map() {
            g.add(
                (msg.clone(), name.clone(), "negative-duration".into()),
                seed,
                &show(&here),
                "negative-duration",
                with(doc, &here, |v| *v = json!("-1s")),
            );
            continue;
        }
        if field.is_map() {
            let value_desc = match sub.map_entry_value_field().kind() {
                Kind::Message(m) => m,
                _ => continue,
            };
            for (k, _) in value.as_object().into_iter().flatten() {
                let mut p = here.clone();
                p.push(Step::Key(k.clone()));
                walk_message(g, seed, doc, p, value_desc.clone(), depth);
            }
        } else if field.is_list() {
            for i in 0..value.as_array().map_or(0, |a| a.len().min(3)) {
                let mut p = here.clone();
                p.push(Step::Index(i));
                walk_message(g, seed, doc, p, sub.clone(), depth);
            }
        } else {
            walk_message(g, seed, doc, here, sub, depth);
        }
    }
}

/// Enter a message value; an `Any` continues with the type it names.
fn walk_message(
    g: &mut Generator,
    seed: &str,
    doc: &Value,
    path: Vec<Step>,
    desc: MessageDescriptor,
    depth: usize,
) {
    if desc.full_name() == "google.protobuf.Any" {
        let mut d = doc.clone();
        let url = at(&mut d, &path)
            .get("@type")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(inner) = url.and_then(|u| api::message(&u)) {
            walk(g, seed, doc, path, inner, depth + 1);
        }
        return;
    }
    if desc.full_name().starts_with("google.protobuf.") {
        return;
    }
    walk(g, seed, doc, path, desc, depth + 1)
}

fn rule(rules: &prost_reflect::DynamicMessage, kind: &str, name: &str) -> Option<PValue> {
    let r = rules.get_field_by_name(kind)?;
    let r = r.as_message()?;
    let f = r.descriptor().get_field_by_name(name)?;
    r.has_field(&f).then(|| r.get_field(&f).into_owned())
}

use prost_reflect::ReflectMessage;

fn int(v: &PValue) -> Option<i128> {
    Some(match v {
        PValue::I32(n) => *n as i128,
        PValue::I64(n) => *n as i128,
        PValue::U32(n) => *n as i128,
        PValue::U64(n) => *n as i128,
        _ => return None,
    })
}

fn duration_nanos(v: &PValue) -> Option<i128> {
    let m = v.as_message()?;
    let s = m.get_field_by_name("seconds")?.as_i64()? as i128;
    let n = m.get_field_by_name("nanos")?.as_i32()? as i128;
    Some(s * 1_000_000_000 + n)
}

fn duration_json(nanos: i128) -> Value {
    let sign = if nanos < 0 { "-" } else { "" };
    let a = nanos.unsigned_abs();
    json!(format!(
        "{sign}{}.{:09}s",
        a / 1_000_000_000,
        a % 1_000_000_000
    ))
}

#[allow(clippy::too_many_arguments)]
fn mutate_by_rules(
    g: &mut Generator,
    seed: &str,
    doc: &Value,
    parent: &[Step],
    here: &[Step],
    msg: &str,
    field: &prost_reflect::FieldDescriptor,
    rules: &prost_reflect::DynamicMessage,
    present: Option<&Value>,
) {
    let name = field.name().to_string();
    let mut add = |what: &str, f: &dyn Fn(&mut Value)| {
        let d = with(doc, here, |v| f(v));
        g.add(
            (msg.to_string(), name.clone(), what.to_string()),
            seed,
            &show(here),
            what,
            d,
        );
    };
    let oneof = field.containing_oneof().filter(|o| !o.is_synthetic());
    let absent = present.is_none();
    if absent {
        // Setting an absent member of a oneof another member of which is set would write two
        // members: a parse error, not the constraint under test.
        let mut d = doc.clone();
        let parent_obj = at(&mut d, parent).clone();
        if oneof
            .as_ref()
            .is_some_and(|o| o.fields().any(|f| parent_obj.get(f.name()).is_some()))
        {
            return;
        }
        if field.is_list() || field.is_map() {
            return;
        }
    }
    // An absent proto3 string is "": breaking min_len by writing "" changes nothing, unless
    // the string is a oneof member (writing it selects it).
    let empty_changes = !absent || oneof.is_some();
    let remove = |v: &mut Value| *v = Value::Null;
    for (which, _) in rules.fields() {
        match which.name() {
            "message" | "duration" | "any" | "timestamp" => {
                let kind = which.name();
                if !absent && rule(rules, kind, "required").and_then(|v| v.as_bool()) == Some(true)
                {
                    add("required-removed", &remove);
                }
                if kind == "duration" {
                    for (b, delta, label) in [
                        ("gt", 0, "at-gt"),
                        ("gte", -1_000_000, "below-gte"),
                        ("lt", 0, "at-lt"),
                        ("lte", 1_000_000, "above-lte"),
                    ] {
                        if let Some(n) = rule(rules, kind, b).as_ref().and_then(duration_nanos) {
                            add(label, &|v| *v = duration_json(n + delta));
                            let ok = match b {
                                "gt" => n + 1_000_000,
                                "lt" => n - 1_000_000,
                                _ => n,
                            };
                            add(&format!("{label}-ok"), &|v| *v = duration_json(ok));
                        }
                    }
                }
            }
            "string" => {
                if let Some(n) = rule(rules, "string", "min_len")
                    .or(rule(rules, "string", "min_bytes"))
                    .as_ref()
                    .and_then(int)
                {
                    if n > 0 && empty_changes {
                        add("too-short", &|v| *v = json!(""));
                    }
                }
                if let Some(n) = rule(rules, "string", "max_len")
                    .or(rule(rules, "string", "max_bytes"))
                    .as_ref()
                    .and_then(int)
                {
                    add("too-long", &|v| *v = json!("a".repeat(n as usize + 1)));
                }
                if let Some(PValue::EnumNumber(k)) = rule(rules, "string", "well_known_regex") {
                    if k == 1 {
                        add("bad-header-name", &|v| *v = json!("bad header"));
                    } else {
                        add("bad-header-value", &|v| *v = json!("a\u{1}b"));
                    }
                }
                for wk in ["hostname", "ip", "ipv4", "ipv6", "address"] {
                    if rule(rules, "string", wk).and_then(|v| v.as_bool()) == Some(true) {
                        add(&format!("not-{wk}"), &|v| *v = json!("not a host!"));
                    }
                }
                if rule(rules, "string", "in").is_some() {
                    add("not-in-list", &|v| *v = json!("surely-not-listed"));
                }
            }
            "repeated" => {
                let len = present.and_then(Value::as_array).map_or(0, |a| a.len());
                if let Some(n) = rule(rules, "repeated", "min_items").as_ref().and_then(int) {
                    if n > 0 && len >= 1 {
                        add("too-few-items", &|v| *v = json!([]));
                    }
                }
                if let Some(n) = rule(rules, "repeated", "max_items").as_ref().and_then(int) {
                    if len >= 1 {
                        add("too-many-items", &|v| {
                            let first = v[0].clone();
                            *v = Value::Array(vec![first; n as usize + 1]);
                        });
                    }
                }
                if rule(rules, "repeated", "unique").and_then(|v| v.as_bool()) == Some(true)
                    && len >= 1
                {
                    add("duplicate-items", &|v| {
                        let first = v[0].clone();
                        v.as_array_mut().unwrap().push(first);
                    });
                }
                if let Some(PValue::Message(items)) = rule(rules, "repeated", "items") {
                    if len >= 1 {
                        if let Some(n) = rule(&items, "string", "min_len").as_ref().and_then(int) {
                            if n > 0 {
                                add("item-too-short", &|v| v[0] = json!(""));
                            }
                        }
                        if rule(&items, "string", "well_known_regex").is_some() {
                            add("item-bad-header", &|v| v[0] = json!("bad header"));
                        }
                    }
                }
            }
            "map" => {
                if let Some(n) = rule(rules, "map", "min_pairs").as_ref().and_then(int) {
                    if n > 0 {
                        add("too-few-pairs", &|v| *v = json!({}));
                    }
                }
            }
            "enum" => {
                if rule(rules, "enum", "defined_only").and_then(|v| v.as_bool()) == Some(true) {
                    add("undefined-enum", &|v| *v = json!(9999));
                }
            }
            "bool" => {}
            "bytes" => {}
            kind => {
                // Numbers, plain or wrapped.
                let float = matches!(kind, "float" | "double");
                let step = |n: i128, d: i128| -> Value {
                    if float {
                        json!((n + d) as f64)
                    } else {
                        json!(n + d)
                    }
                };
                let num = |name: &str| -> Option<i128> {
                    let v = rule(rules, kind, name)?;
                    match v {
                        PValue::F32(f) => Some(f as i128),
                        PValue::F64(f) => Some(f as i128),
                        other => int(&other),
                    }
                };
                let unsigned = matches!(kind, "uint32" | "uint64" | "fixed32" | "fixed64");
                if let Some(n) = num("gt") {
                    add("at-gt", &|v| *v = step(n, 0));
                    add("at-gt-ok", &|v| *v = step(n, 1));
                }
                if let Some(n) = num("gte") {
                    if !(unsigned && n == 0) {
                        add("below-gte", &|v| *v = step(n, -1));
                    }
                    add("at-gte-ok", &|v| *v = step(n, 0));
                }
                if let Some(n) = num("lt") {
                    add("at-lt", &|v| *v = step(n, 0));
                    add("at-lt-ok", &|v| *v = step(n, -1));
                }
                if let Some(n) = num("lte") {
                    add("above-lte", &|v| *v = step(n, 1));
                    add("at-lte-ok", &|v| *v = step(n, 0));
                }
            }
        }
    }
}

/// Mutations of what Envoy checks beyond its annotations: each finds its place in the seed
/// and returns the mutated document, or None when the seed has no such place.
/// A hand-written mutation: its name, and the function that applies it to a seed.
type Mutation = (&'static str, fn(&Value) -> Option<Value>);

fn semantic_mutations() -> Vec<Mutation> {
    vec![
        ("route-without-action", |d| {
            edit(d, "routes", |rs| {
                let r = rs.get_mut(0)?.as_object_mut()?;
                for k in [
                    "route",
                    "redirect",
                    "direct_response",
                    "filter_action",
                    "non_forwarding_action",
                ] {
                    r.remove(k);
                }
                Some(())
            })
        }),
        ("domain-twice-in-vhost", |d| repeat_first(d, "domains")),
        ("domain-in-two-vhosts", |d| {
            edit(d, "virtual_hosts", |vs| {
                let mut copy = vs.get(0)?.clone();
                copy["name"] = json!("copy-of-first");
                vs.as_array_mut()?.push(copy);
                Some(())
            })
        }),
        ("prefix-and-regex-rewrite", |d| {
            edit_route_action(d, |a| {
                a.insert("prefix_rewrite".into(), json!("/x"));
                a.insert(
                    "regex_rewrite".into(),
                    json!({"pattern": {"regex": "^/a"}, "substitution": "/b"}),
                );
            })
        }),
        ("no-filter-chains", |d| {
            edit(d, "filter_chains", |fc| {
                *fc = json!([]);
                Some(())
            })
        }),
        ("listener-address-not-ip", |d| {
            edit(d, "socket_address", |sa| {
                sa["address"] = json!("not-an-ip.example");
                Some(())
            })
        }),
        ("http3-codec-on-tcp", |d| {
            replace(d, "codec_type", json!("HTTP3"))
        }),
        ("router-without-typed-config", |d| {
            edit(d, "http_filters", |fs| {
                let last = fs.as_array_mut()?.last_mut()?.as_object_mut()?;
                last.remove("typed_config");
                Some(())
            })
        }),
        ("http-filter-of-wrong-category", |d| {
            edit(d, "http_filters", |fs| {
                let list = fs.as_array_mut()?;
                list.insert(0, json!({"name": "tcp", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "t", "cluster": "c"}}));
                Some(())
            })
        }),
        ("router-not-last", |d| {
            edit(d, "http_filters", |fs| {
                let list = fs.as_array_mut()?;
                let router = list.pop()?;
                list.insert(0, router);
                list.push(json!({"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}));
                Some(())
            })
        }),
        ("network-filter-after-terminal", |d| {
            repeat_first(d, "filters")
        }),
        ("duplicate-filter-chain-match", |d| {
            repeat_first(d, "filter_chains")
        }),
        ("weights-sum-zero", |d| {
            edit(d, "weighted_clusters", |w| {
                for c in w.get_mut("clusters")?.as_array_mut()? {
                    c["weight"] = json!(0);
                }
                Some(())
            })
        }),
        ("regex-does-not-compile", |d| {
            edit(d, "safe_regex", |r| {
                r["regex"] = json!("^/(items");
                Some(())
            })
        }),
        ("set-pseudo-header", |d| {
            edit(d, "request_headers_to_add", |h| {
                h[0]["header"]["key"] = json!(":path");
                Some(())
            })
        }),
        ("set-host-header", |d| {
            edit(d, "request_headers_to_add", |h| {
                h[0]["header"]["key"] = json!("host");
                Some(())
            })
        }),
        ("remove-pseudo-header", |d| {
            edit(d, "routes", |rs| {
                rs[0]["request_headers_to_remove"] = json!([":authority"]);
                Some(())
            })
        }),
        ("static-endpoint-hostname", |d| {
            edit(d, "load_assignment", |la| {
                la["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                    ["address"] = json!("db.example.com");
                Some(())
            })
        }),
        ("route-to-unknown-cluster", |d| {
            edit_route_action(d, |a| {
                a.remove("weighted_clusters");
                a.insert("cluster".into(), json!("nobody-defines-this"));
            })
        }),
        ("circuit-breaker-max-requests-zero", |d| {
            edit(d, "thresholds", |t| {
                t[0]["max_requests"] = json!(0);
                Some(())
            })
        }),
        ("duplicate-listener-address", |d| {
            let mut d = d.clone();
            let res = d.pointer_mut("/spec/resources")?.as_array_mut()?;
            let l = res
                .iter()
                .find(|r| {
                    r["@type"].as_str().is_some_and(|t| t.ends_with("Listener"))
                        && r.get("address").is_some()
                })?
                .clone();
            let mut copy = l;
            copy["name"] = json!("copy-of-listener");
            res.push(copy);
            Some(d)
        }),
        ("logical-dns-two-endpoints", |d| {
            edit(d, "load_assignment", |la| {
                let e = la["endpoints"][0]["lb_endpoints"][0].clone();
                la["endpoints"][0]["lb_endpoints"] = json!([e.clone(), e]);
                la["endpoints"][0]["lb_endpoints"][1]["endpoint"]["address"]["socket_address"]
                    ["port_value"] = json!(5433);
                Some(())
            })
            .map(|mut d| {
                if let Some(res) = d
                    .pointer_mut("/spec/resources")
                    .and_then(Value::as_array_mut)
                {
                    for r in res
                        .iter_mut()
                        .filter(|r| r.get("load_assignment").is_some())
                    {
                        r["type"] = json!("LOGICAL_DNS");
                    }
                }
                d
            })
        }),
        ("hash-policy-empty-header", |d| {
            edit(d, "hash_policy", |h| {
                h[0] = json!({"header": {"header_name": ""}});
                Some(())
            })
        }),
        ("two-wildcard-domains", |d| {
            edit(d, "virtual_hosts", |vs| {
                let mut copy = vs.get(0)?.clone();
                copy["name"] = json!("second-wildcard");
                copy["domains"] = json!(["*"]);
                let list = vs.as_array_mut()?;
                list[0]["domains"] = json!(["*"]);
                list.push(copy);
                Some(())
            })
        }),
        ("disallowed-deprecated-field", |d| {
            edit(d, "rate_limits", |c| {
                c[0]["actions"] = json!([{"dynamic_metadata": {"descriptor_key": "k", "metadata_key": {"key": "a", "path": [{"key": "b"}]}}}]);
                Some(())
            })
        }),
        ("disallowed-deprecated-enum", |d| {
            replace(
                d,
                "sds_config",
                json!({"api_config_source": {"api_type": "DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE", "transport_api_version": "V3", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc-cilium"}}]}, "resource_api_version": "V3"}),
            )
        }),
        ("http-filters-empty", |d| {
            replace(d, "http_filters", json!([]))
        }),
        ("router-removed", |d| {
            edit(d, "http_filters", |c| {
                let list = c.as_array_mut()?;
                list.pop();
                list.push(json!({"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}));
                Some(())
            })
        }),
        ("inline-certificate-garbage", |d| {
            replace(
                d,
                "certificate_chain",
                json!({"inline_string": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}),
            )
        }),
        ("inline-key-garbage", |d| {
            replace(d, "private_key", json!({"inline_string": "garbage"}))
        }),
        ("trusted-ca-garbage", |d| {
            replace(d, "trusted_ca", json!({"inline_string": "garbage"}))
        }),
        ("sds-secret-without-config-source", |d| {
            edit(d, "common_tls_context", |c| {
                c["tls_certificate_sds_secret_configs"] = json!([{"name": "shop/web-cert"}]);
                c.as_object_mut()?.remove("tls_certificates");
                Some(())
            })
        }),
        ("server-name-partial-wildcard", |d| {
            replace(d, "server_names", json!(["db.*.example.com"]))
        }),
        ("server-name-leading-wildcard", |d| {
            replace(d, "server_names", json!(["*.example.com"]))
        }),
        ("prefix-range-not-ip", |d| {
            edit(d, "filter_chains", |c| {
                c[0]["filter_chain_match"]["prefix_ranges"] =
                    json!([{"address_prefix": "10.0.0.x", "prefix_len": 8}]);
                Some(())
            })
        }),
        ("prefix-range-ok", |d| {
            edit(d, "filter_chains", |c| {
                c[0]["filter_chain_match"]["source_prefix_ranges"] =
                    json!([{"address_prefix": "10.0.0.0", "prefix_len": 40}]);
                Some(())
            })
        }),
        ("rds-name-qualified", |d| {
            let ns = d
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let obj = d
                .pointer("/metadata/name")
                .and_then(Value::as_str)?
                .to_string();
            edit(d, "rds", |c| {
                let n = c.get("route_config_name")?.as_str()?.to_string();
                if n.contains('/') {
                    return None;
                }
                c["route_config_name"] = json!(format!("{ns}/{obj}/{n}"));
                Some(())
            })
        }),
        ("ring-hash-without-config-on-least-request", |d| {
            replace(d, "least_request_lb_config", json!({"choice_count": 1}))
        }),
    ]
}

/// Replace the first value under key `key` anywhere in the document (depth first).
fn replace(d: &Value, key: &str, v: Value) -> Option<Value> {
    edit(d, key, |c| {
        *c = v;
        Some(())
    })
}

/// Append a copy of the first item of the first list under `key`.
fn repeat_first(d: &Value, key: &str) -> Option<Value> {
    edit(d, key, |list| {
        let first = list.get(0)?.clone();
        list.as_array_mut()?.push(first);
        Some(())
    })
}

/// Apply `f` to the first value under key `key` anywhere in the document (depth first).
fn edit(d: &Value, key: &str, f: impl FnOnce(&mut Value) -> Option<()>) -> Option<Value> {
    fn find<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
        match v {
            Value::Object(m) => {
                if m.contains_key(key) {
                    return m.get_mut(key);
                }
                m.values_mut().find_map(|c| find(c, key))
            }
            Value::Array(a) => a.iter_mut().find_map(|c| find(c, key)),
            _ => None,
        }
    }
    let mut d = d.clone();
    let spot = find(d.get_mut("spec")?.get_mut("resources")?, key)?;
    f(spot)?;
    Some(d)
}

fn edit_route_action(
    d: &Value,
    f: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Option<Value> {
    edit(d, "routes", |rs| {
        let r = rs
            .as_array_mut()?
            .iter_mut()
            .find(|r| r.get("route").is_some())?;
        f(r.get_mut("route")?.as_object_mut()?);
        Some(())
    })
}

fn cases() -> Vec<Case> {
    let mut g = Generator {
        seen: HashSet::new(),
        cases: Vec::new(),
    };
    for (seed, raw) in seeds() {
        let doc = canonical(&raw);
        g.cases.push(Case {
            id: seed.clone(),
            doc: doc.clone(),
        });
        let n = doc["spec"]["resources"].as_array().map_or(0, |a| a.len());
        for i in 0..n {
            let url = doc["spec"]["resources"][i]["@type"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let Some(desc) = api::message(&url) else {
                continue;
            };
            let path = vec![
                Step::Key("spec".into()),
                Step::Key("resources".into()),
                Step::Index(i),
            ];
            walk(&mut g, &seed, &doc, path, desc, 0);
        }
        for (what, m) in semantic_mutations() {
            if let Some(d) = m(&doc) {
                g.add(
                    ("semantic".into(), what.into(), seed.clone()),
                    &seed,
                    "",
                    what,
                    d,
                );
            }
        }
    }
    g.cases
}

/// analyze's verdict: the Errors the rule catalog reports on the object.
fn analyze(doc: &Value) -> Vec<String> {
    let text = doc.to_string();
    let objects = match load_str(
        &text,
        Source::File("case.json".into()),
        &LoadOptions::default(),
    ) {
        Ok(o) => o,
        Err(e) => return vec![format!("load: {e}")],
    };
    mesh_model::rules::check(&Snapshot::new(objects))
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .map(|d| format!("{} {}: {}", d.code, d.field, d.message))
        .collect()
}

/// Envoy's verdict: None when `envoy --mode validate` accepts the bootstrap, else its error.
fn envoy(envoy: &Path, doc: &Value, n: usize) -> Option<String> {
    let text = doc.to_string();
    let objects = load_str(
        &text,
        Source::File("case.json".into()),
        &LoadOptions::default(),
    )
    .unwrap();
    let Resource::EnvoyConfig(cfg) = &objects[0].resource else {
        panic!("not an envoy config")
    };
    let bootstrap = cilium::static_bootstrap(cfg, cilium::Names::of(&objects[0]));
    let file = std::env::temp_dir().join(format!("mesh-diff-{}-{n}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&bootstrap).unwrap()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "critical", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    match std::env::var_os("MESH_DIFF_KEEP") {
        Some(dir) => {
            let _ = std::fs::rename(&file, Path::new(&dir).join(format!("case-{n}.json")));
        }
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    if out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("error initializing configuration") || l.contains("critical"))
        .unwrap_or(text.lines().last().unwrap_or(""))
        .to_string();
    Some(
        line.split("] ")
            .last()
            .unwrap_or(&line)
            .chars()
            .take(400)
            .collect(),
    )
}

#[test]
fn analyze_agrees_with_envoy_on_cilium_envoy_configs() {
    let Some(bin) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let only = std::env::var("MESH_DIFF_ONLY").unwrap_or_default();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.id.contains(&only))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Verdicts>> = Mutex::new(BTreeMap::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let verdict = (analyze(&case.doc), envoy(&bin, &case.doc, i));
                results.lock().unwrap().insert(i, verdict);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut report =
        std::env::var_os("MESH_DIFF_REPORT").map(|f| std::fs::File::create(f).unwrap());
    let (mut agree, mut unexplained, mut false_rejections) = (0, Vec::new(), Vec::new());
    for (i, (ours, theirs)) in &results {
        let case = &cases[*i];
        let we_refuse = !ours.is_empty();
        let envoy_refuses = theirs.is_some();
        if let Some(f) = report.as_mut() {
            writeln!(
                f,
                "{}",
                json!({"id": case.id, "analyze": ours, "envoy": theirs})
            )
            .unwrap();
        }
        if we_refuse == envoy_refuses {
            agree += 1;
            continue;
        }
        let line = format!(
            "{}\n    analyze: {}\n    envoy:   {}",
            case.id,
            if ours.is_empty() {
                "accepts".to_string()
            } else {
                ours.join(" | ")
            },
            theirs.as_deref().unwrap_or("accepts")
        );
        let known = parity::KNOWN.iter().find(|k| case.id.contains(k.case));
        if known.is_none() {
            unexplained.push(line.clone());
        }
        if we_refuse && known.is_none_or(|k| !k.stricter) {
            false_rejections.push(line);
        }
    }
    let total = results.len();
    let share = agree as f64 * 100.0 / total as f64;
    eprintln!(
        "analyze and Envoy {} agree on {agree} of {total} configs ({share:.1}%)",
        api::ENVOY_VERSION
    );
    assert!(
        false_rejections.is_empty(),
        "analyze refuses what Envoy accepts:\n{}",
        false_rejections.join("\n")
    );
    assert!(
        unexplained.is_empty(),
        "disagreements not explained in envoy::parity::KNOWN:\n{}",
        unexplained.join("\n")
    );
    assert!(share >= 98.0, "agreement {share:.1}% is below 98%");
}
