//! CiliumEnvoyConfig / CiliumClusterwideEnvoyConfig and the Envoy v3 resources inside them.
//!
//! Cilium's CRD keeps `spec.resources` as opaque JSON, so `kubectl apply` accepts anything and
//! the agent's protojson parse fails later, in its log. Here every resource is parsed the way
//! Envoy parses it: proto3 JSON against the descriptors of the Envoy release we target
//! ([`api`], read with `prost-reflect`), so an unknown field, a misspelt `@type` or a bad enum
//! value is found before it reaches a cluster. A parsed resource is kept as canonical JSON with proto field names, so
//! the rules need not care whether the author wrote `edsClusterConfig` or `eds_cluster_config`.

pub mod api;
pub mod cilium;
pub mod constraints;
pub mod parity;
pub mod semantics;

use cilium::CILIUM_TYPES;

use prost_reflect::{DynamicMessage, SerializeOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use api::TYPE_PREFIX;

/// The top-level resource types Cilium accepts in `spec.resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum EnvoyKind {
    Listener,
    RouteConfiguration,
    Cluster,
    ClusterLoadAssignment,
    Secret,
}

impl EnvoyKind {
    pub const ALL: [EnvoyKind; 5] = [
        EnvoyKind::Listener,
        EnvoyKind::RouteConfiguration,
        EnvoyKind::Cluster,
        EnvoyKind::ClusterLoadAssignment,
        EnvoyKind::Secret,
    ];

    pub fn message_name(self) -> &'static str {
        match self {
            EnvoyKind::Listener => "envoy.config.listener.v3.Listener",
            EnvoyKind::RouteConfiguration => "envoy.config.route.v3.RouteConfiguration",
            EnvoyKind::Cluster => "envoy.config.cluster.v3.Cluster",
            EnvoyKind::ClusterLoadAssignment => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            EnvoyKind::Secret => "envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    /// The field that names a resource of this type (`cluster_name` for endpoints).
    pub fn name_field(self) -> &'static str {
        match self {
            EnvoyKind::ClusterLoadAssignment => "cluster_name",
            _ => "name",
        }
    }

    fn from_type_url(url: &str) -> Option<EnvoyKind> {
        let name = url.strip_prefix(TYPE_PREFIX)?;
        EnvoyKind::ALL
            .into_iter()
            .find(|k| k.message_name() == name)
    }
}

/// `spec.services[]`: a Service whose traffic Cilium redirects to a listener of this object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceListener {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
}

/// `spec.backendServices[]`: a Service whose endpoints become the EDS cluster `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendService {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<Vec<String>>,
}

/// The CRD's spec (cilium.io/v2), as its structural schema defines it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvoyConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceListener>>,
    #[serde(
        default,
        rename = "backendServices",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_services: Option<Vec<BackendService>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Value>>,
    #[serde(
        default,
        rename = "nodeSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub node_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// A CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig with its resources parsed.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub spec: EnvoyConfigSpec,
    pub resources: Vec<EnvoyResource>,
}

/// One entry of `spec.resources`.
#[derive(Debug, Clone)]
pub struct EnvoyResource {
    /// `spec.resources[i]`.
    pub field: String,
    /// The `@type` as written.
    pub type_url: Option<String>,
    pub kind: Option<EnvoyKind>,
    /// The resource's name, read even when the rest does not parse.
    pub name: Option<String>,
    /// Canonical proto3 JSON with proto field names, when the resource parsed.
    pub canonical: Option<Value>,
    pub problem: Option<ResourceProblem>,
    /// The constraints Envoy declares that the parsed resource breaks, with full field paths
    /// (`spec.resources[0].virtual_hosts[0].domains`).
    pub violations: Vec<constraints::Violation>,
}

/// Why a resource would be rejected by Envoy's parser.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceProblem {
    /// `@type` missing, or not one of the five types Cilium accepts at the top level.
    UnsupportedType { suggestion: Option<String> },
    /// A nested `@type` that names no Envoy message.
    UnknownType {
        field: String,
        type_url: String,
        suggestion: Option<String>,
    },
    /// A field, value or enum that does not fit the message.
    Invalid { field: String, message: String },
}

impl EnvoyConfig {
    pub fn parse(spec: EnvoyConfigSpec) -> EnvoyConfig {
        let resources = spec
            .resources
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, v)| EnvoyResource::parse(format!("spec.resources[{i}]"), v))
            .collect();
        EnvoyConfig { spec, resources }
    }

    /// Parsed resources of one type, with their canonical JSON.
    pub fn of_kind(&self, kind: EnvoyKind) -> impl Iterator<Item = (&EnvoyResource, &Value)> {
        self.resources
            .iter()
            .filter(move |r| r.kind == Some(kind))
            .filter_map(|r| Some((r, r.canonical.as_ref()?)))
    }

    pub fn has_resource(&self, kind: EnvoyKind, name: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.kind == Some(kind) && r.name.as_deref() == Some(name))
    }
}

fn known_type(name: &str) -> bool {
    api::message(name).is_some() || CILIUM_TYPES.contains(&name)
}

/// A proto3 JSON duration (`"1.5s"`, `"-0.050s"`) in nanoseconds.
pub fn duration_nanos(text: &str) -> Option<i128> {
    let body = text.strip_suffix('s')?;
    let (neg, body) = match body.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = whole.parse().ok()?;
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let n = secs * 1_000_000_000 + nanos;
    Some(if neg { -n } else { n })
}

/// The closest known type name, for "did you mean".
fn suggest(name: &str) -> Option<String> {
    let candidates = api::pool()
        .all_messages()
        .map(|m| m.full_name().to_string())
        .filter(|n| n.starts_with("envoy."))
        .chain(CILIUM_TYPES.iter().map(|s| s.to_string()));
    crate::text::closest(name, candidates, name.len() / 4 + 2)
}

impl EnvoyResource {
    fn parse(field: String, value: &Value) -> EnvoyResource {
        let type_url = value
            .get("@type")
            .and_then(Value::as_str)
            .map(str::to_string);
        let kind = type_url.as_deref().and_then(EnvoyKind::from_type_url);
        let name = kind.and_then(|k| {
            let camel = crate::text::lower_camel(k.name_field());
            value
                .get(k.name_field())
                .or_else(|| value.get(&camel))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let mut res = EnvoyResource {
            field,
            type_url: type_url.clone(),
            kind,
            name,
            canonical: None,
            problem: None,
            violations: Vec::new(),
        };
        let Some(kind) = kind else {
            let suggestion = type_url.as_deref().and_then(|u| {
                let n = u.strip_prefix(TYPE_PREFIX).unwrap_or(u);
                crate::text::closest(
                    n,
                    EnvoyKind::ALL.iter().map(|k| k.message_name().to_string()),
                    n.len() / 4 + 2,
                )
            });
            res.problem = Some(ResourceProblem::UnsupportedType { suggestion });
            return res;
        };
        // Nested Any values of types we cannot check become opaque Structs, so the rest of the
        // resource is still checked; types nobody knows are reported.
        let mut body = value.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("@type");
        }
        if let Some((path, url)) = opaque_unknown_anys(&mut body, &res.field) {
            let n = url.strip_prefix(TYPE_PREFIX).unwrap_or(&url).to_string();
            res.problem = Some(ResourceProblem::UnknownType {
                field: path,
                suggestion: suggest(&n),
                type_url: url,
            });
            return res;
        }
        let desc = desc_for(kind);
        // Parse without tracking the path first (most resources are valid); only a failure is
        // parsed again, tracked, to say where it failed.
        let mut track = serde_path_to_error::Track::new();
        let parsed = DynamicMessage::deserialize(desc.clone(), &body).or_else(|_| {
            let de = serde_path_to_error::Deserializer::new(&body, &mut track);
            DynamicMessage::deserialize(desc, de)
        });
        match parsed {
            Ok(msg) => {
                let mut seen = std::collections::HashSet::new();
                res.violations = constraints::check(&msg)
                    .into_iter()
                    .filter(|v| seen.insert(v.path.clone()))
                    .map(|v| constraints::Violation {
                        path: crate::path::join_path(&res.field, &v.path),
                        ..v
                    })
                    .collect();
                let opts = SerializeOptions::new().use_proto_field_name(true);
                res.canonical = msg
                    .serialize_with_options(serde_json::value::Serializer, &opts)
                    .ok();
            }
            Err(e) => {
                // Built from the segments (serde_path_to_error's own text writes `?` for a
                // segment it cannot name, and does not quote map keys that hold dots).
                let mut inner = String::new();
                for seg in track.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            inner.push_str(&format!("[{index}]"))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            inner = crate::path::join(&inner, key)
                        }
                        serde_path_to_error::Segment::Enum { variant } => {
                            inner = crate::path::join(&inner, variant)
                        }
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let field = if inner.is_empty() {
                    res.field.clone()
                } else {
                    crate::path::join_path(&res.field, &inner)
                };
                let mut message = e
                    .to_string()
                    .trim_end_matches(" at line 0 column 0")
                    .to_string();
                if let Some(unknown) = message
                    .strip_prefix("unrecognized field name '")
                    .and_then(|m| m.strip_suffix('\''))
                {
                    if let Some(better) = suggest_field(desc_for(kind), &body, &inner, unknown) {
                        message.push_str(&format!("; did you mean '{better}'?"));
                    }
                }
                res.problem = Some(ResourceProblem::Invalid { field, message });
            }
        }
        res
    }
}

fn desc_for(kind: EnvoyKind) -> prost_reflect::MessageDescriptor {
    api::message(kind.message_name()).expect("top-level Envoy types are in the pool")
}

/// The field of the message at `path` (within `value`, of type `desc`) closest to `unknown`.
/// The message is found by walking the descriptor along the path; an `Any` continues with the
/// type named by its `@type`.
fn suggest_field(
    desc: prost_reflect::MessageDescriptor,
    value: &Value,
    path: &str,
    unknown: &str,
) -> Option<String> {
    let mut desc = desc;
    let mut node = value;
    for seg in crate::path::segments(path) {
        match seg {
            crate::path::Segment::Index(i) => node = node.get(i)?,
            crate::path::Segment::Key(k) => {
                node = node.get(k)?;
                let field = desc
                    .get_field_by_name(k)
                    .or_else(|| desc.get_field_by_json_name(k))?;
                desc = match field.kind() {
                    prost_reflect::Kind::Message(m) if m.full_name() == "google.protobuf.Any" => {
                        let url = node.get("@type")?.as_str()?;
                        api::message(url)?
                    }
                    prost_reflect::Kind::Message(m) => m,
                    _ => return None,
                };
            }
        }
    }
    let names = desc.fields().map(|f| f.name().to_string());
    crate::text::closest(unknown, names, unknown.len() / 3 + 1)
}

/// A step of the path to an unknown `@type`, collected leaf first on the way back up (the
/// path is written only when one is found).
enum Up {
    Key(String),
    Index(usize),
}

/// Replace every `{"@type": X, ...}` below `value` whose X is a known extension without a
/// descriptor with an equivalent `google.protobuf.Struct` Any. Returns the path (below
/// `base`) and URL of the first `@type` that names no known type at all.
fn opaque_unknown_anys(value: &mut Value, base: &str) -> Option<(String, String)> {
    let (steps, url) = unknown_any(value)?;
    let mut path = base.to_string();
    for s in steps.iter().rev() {
        match s {
            Up::Key(k) => path = crate::path::join(&path, k),
            Up::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    Some((path, url))
}

fn unknown_any(value: &mut Value) -> Option<(Vec<Up>, String)> {
    match value {
        Value::Object(map) => {
            if let Some(url) = map.get("@type").and_then(Value::as_str) {
                let name = url.strip_prefix(TYPE_PREFIX).unwrap_or(url);
                if api::message(name).is_none() {
                    if !known_type(name) {
                        return Some((vec![Up::Key("@type".into())], url.to_string()));
                    }
                    let mut rest: Map<String, Value> = std::mem::take(map);
                    rest.remove("@type");
                    map.insert(
                        "@type".into(),
                        Value::String(format!("{TYPE_PREFIX}google.protobuf.Struct")),
                    );
                    map.insert("value".into(), Value::Object(rest));
                    return None;
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some((mut steps, url)) = unknown_any(v) {
                    steps.push(Up::Key(k.clone()));
                    return Some((steps, url));
                }
            }
            None
        }
        Value::Array(items) => items.iter_mut().enumerate().find_map(|(i, v)| {
            let (mut steps, url) = unknown_any(v)?;
            steps.push(Up::Index(i));
            Some((steps, url))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> EnvoyResource {
        EnvoyResource::parse("spec.resources[0]".into(), &v)
    }

    #[test]
    fn listener_with_hcm_parses_and_normalizes_names() {
        let r = parse(json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "l",
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "statPrefix": "x", "rds": {"route_config_name": "lb_route"},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]
        }));
        assert_eq!(r.problem, None);
        let c = r.canonical.unwrap();
        assert_eq!(
            c.pointer("/filter_chains/0/filters/0/typed_config/stat_prefix"),
            Some(&json!("x"))
        );
    }

    #[test]
    fn unknown_field_has_a_path() {
        let r = parse(json!({
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": "r",
            "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"weighted_cluster": {}}}]}]
        }));
        match r.problem {
            Some(ResourceProblem::Invalid { field, message }) => {
                assert_eq!(field, "spec.resources[0].virtual_hosts[0].routes[0].route");
                assert!(
                    message.contains("did you mean 'weighted_clusters'"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn violations(v: Value) -> Vec<String> {
        let r = parse(v);
        assert_eq!(r.problem, None);
        r.violations
            .iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect()
    }

    fn listener_with(hcm_extra: Value, route: Value) -> Value {
        let mut hcm = json!({"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "s", "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [route]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]});
        for (k, v) in hcm_extra.as_object().unwrap() {
            hcm[k] = v.clone();
        }
        json!({"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
            "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}]})
    }

    #[test]
    fn declared_constraints_inside_typed_configs_are_enforced_with_pgv_wording() {
        let ok = json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "1s"}});
        assert_eq!(
            violations(listener_with(json!({}), ok.clone())),
            Vec::<String>::new()
        );
        let v = violations(listener_with(
            json!({"stat_prefix": ""}),
            json!({"match": {}, "route": {"cluster": "c", "timeout": "-2s"}}),
        ));
        let hcm = "spec.resources[0].filter_chains[0].filters[0].typed_config";
        assert!(
            v.contains(&format!(
                "{hcm}.stat_prefix: value length must be at least 1 runes"
            )),
            "{v:?}"
        );
        assert!(v.iter().any(|x| x.starts_with(&format!("{hcm}.route_config.virtual_hosts[0].routes[0].match.path_specifier: value is required"))), "{v:?}");
        assert!(v.contains(&format!("{hcm}.route_config.virtual_hosts[0].routes[0].route.timeout: Invalid duration: Expected positive duration: -2s")), "{v:?}");
        let v = violations(
            json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c",
            "connect_timeout": "0s", "outlier_detection": {"max_ejection_percent": 101},
            "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 70000}}}, "load_balancing_weight": 0}]}]}}),
        );
        assert!(
            v.contains(
                &"spec.resources[0].connect_timeout: value must be greater than 0s".to_string()
            ),
            "{v:?}"
        );
        assert!(v.contains(&"spec.resources[0].outlier_detection.max_ejection_percent: value must be less than or equal to 100".to_string()), "{v:?}");
        assert!(v.contains(&"spec.resources[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: value must be less than or equal to 65535".to_string()), "{v:?}");
        assert!(v.contains(&"spec.resources[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight: value must be greater than or equal to 1".to_string()), "{v:?}");
        // An undefined enum number is refused; a status outside Envoy's range too.
        let v = violations(listener_with(
            json!({"codec_type": 42}),
            json!({"match": {"prefix": "/", "headers": [{"name": "x", "present_match": true}]}, "direct_response": {"status": 99}}),
        ));
        assert!(
            v.iter()
                .any(|x| x.ends_with("codec_type: value must be one of the defined enum values")),
            "{v:?}"
        );
        // Envoy 1.40 declares its header names `strict: false`: a space passes, a newline not.
        let header = |name: &str| {
            violations(listener_with(
                json!({}),
                json!({"match": {"prefix": "/"}, "route": {"cluster_header": name}}),
            ))
        };
        assert_eq!(header("bad name"), Vec::<String>::new());
        assert!(header("bad\nname")
            .iter()
            .any(|x| x.contains("route.cluster_header: value does not match regex pattern")));
        assert!(
            v.iter()
                .any(|x| x
                    .ends_with("direct_response.status: value must be inside range [200, 600)")),
            "{v:?}"
        );
    }

    #[test]
    fn load_balancing_policy_payloads_are_not_validated_as_envoy_does_not() {
        let v = violations(
            json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c",
            "load_balancing_policy": {"policies": [{"typed_extension_config": {"name": "lr", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest", "choice_count": 1}}}]}}),
        );
        assert_eq!(v, Vec::<String>::new());
    }

    #[test]
    fn problem_paths_have_no_empty_segments_and_quote_dotted_keys() {
        let r = parse(json!({
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "c",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {"bogus": 1}}}}
        }));
        match r.problem {
            Some(ResourceProblem::Invalid { field, .. }) => {
                assert!(!field.contains(".."), "{field}");
                assert_eq!(field, "spec.resources[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"].explicit_http_config.http2_protocol_options");
            }
            other => panic!("{other:?}"),
        }
        let r = parse(
            json!({"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "bogus": 1}),
        );
        match r.problem {
            Some(ResourceProblem::Invalid { field, .. }) => assert_eq!(field, "spec.resources[0]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn misspelt_nested_type_is_found_with_suggestion() {
        let r = parse(json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "l",
            "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr"}}]}]
        }));
        match r.problem {
            Some(ResourceProblem::UnknownType { suggestion, .. }) => assert_eq!(
                suggestion.as_deref(),
                Some("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn known_extension_without_descriptor_is_accepted() {
        let r = parse(json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "l",
            "filter_chains": [{"filters": [{"name": "tcp", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "t", "cluster": "c"}}]}]
        }));
        assert_eq!(r.problem, None);
    }

    #[test]
    fn unsupported_top_level_type() {
        let r = parse(
            json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Clustr", "name": "c"}),
        );
        assert_eq!(
            r.problem,
            Some(ResourceProblem::UnsupportedType {
                suggestion: Some("envoy.config.cluster.v3.Cluster".into())
            })
        );
    }
}
