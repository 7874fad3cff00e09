//! Typed resources: raw JSON to the generated Gateway API, Kubernetes and Cilium types.
//!
//! A document that is valid YAML but does not fit its kind's schema is not a load failure: the
//! API server would reject it with a message naming the field, so the model records a
//! [`SchemaProblem`] and a rule reports it. Fields the schema does not know are found by
//! serializing the typed value back and comparing: whatever the types dropped is a field the
//! API server would reject (kubectl's default strict field validation) or prune.

use gateway_api::apis::experimental::{
    gatewayclasses, gateways, grpcroutes, httproutes, listenersets, referencegrants, tcproutes,
    tlsroutes, udproutes, xmeshes,
};
use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicySpec;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::crd::{Constraint, Violation};
use crate::envoy::{EnvoyConfig, EnvoyConfigSpec};
use crate::kind::Kind;
use crate::route::Route;

/// The typed form of an object.
#[derive(Debug, Clone)]
pub enum Resource {
    GatewayClass(Box<gatewayclasses::GatewayClassSpec>),
    Gateway(Box<gateways::GatewaySpec>),
    HttpRoute(Box<httproutes::HttpRouteSpec>, Box<Route>),
    GrpcRoute(Box<grpcroutes::GrpcRouteSpec>, Box<Route>),
    TlsRoute(Box<tlsroutes::TlsRouteSpec>, Box<Route>),
    TcpRoute(Box<tcproutes::TcpRouteSpec>, Box<Route>),
    UdpRoute(Box<udproutes::UdpRouteSpec>, Box<Route>),
    /// A ListenerSet, with its listeners in the Gateway's listener type (the same fields), so
    /// the listener rules and attachment read both alike.
    ListenerSet(
        Box<listenersets::ListenerSetSpec>,
        Vec<gateways::GatewayListeners>,
    ),
    BackendTlsPolicy(Box<BackendTlsPolicySpec>),
    ReferenceGrant(Box<referencegrants::ReferenceGrantSpec>),
    Namespace(Box<core::Namespace>),
    Service(Box<core::Service>),
    EndpointSlice(Box<discovery::EndpointSlice>),
    Secret(Box<core::Secret>),
    /// A ConfigMap: CA certificates for client and backend TLS validation.
    ConfigMap(Box<core::ConfigMap>),
    EnvoyConfig(Box<EnvoyConfig>),
    XMesh(Box<xmeshes::XMeshSpec>),
    /// A known kind whose object does not fit its schema (see the object's problems).
    Invalid(Kind),
    /// A kind the model does not check.
    Unknown,
}

impl Resource {
    /// The listeners of a Gateway or a ListenerSet.
    pub fn listeners(&self) -> Option<&[gateways::GatewayListeners]> {
        match self {
            Resource::Gateway(s) => Some(&s.listeners),
            Resource::ListenerSet(_, l) => Some(l),
            _ => None,
        }
    }

    /// The route view, for the route kinds ([`crate::kind::ROUTE_KINDS`]).
    pub fn route(&self) -> Option<&Route> {
        match self {
            Resource::HttpRoute(_, r)
            | Resource::GrpcRoute(_, r)
            | Resource::TlsRoute(_, r)
            | Resource::TcpRoute(_, r)
            | Resource::UdpRoute(_, r) => Some(r),
            _ => None,
        }
    }
}

/// Why an object does not fit its kind's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaProblem {
    pub kind: ProblemKind,
    pub field: String,
    pub message: String,
    /// Refused only by the standard channel's CRDs, while the cluster's channel is not known
    /// (see [`crate::crd`]): reported apart, as a warning.
    pub standard_only: bool,
}

impl SchemaProblem {
    /// A finding of the CRD validation, filed under the rule that explains it.
    pub fn of(v: &Violation, standard_only: bool) -> SchemaProblem {
        SchemaProblem {
            kind: ProblemKind::of(v),
            field: v.field.clone(),
            message: v.message.clone(),
            standard_only,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Wrong type, unknown enum value, missing required field.
    Invalid,
    /// A field the schema does not have.
    UnknownField,
    /// `apiVersion` names a version the API server does not serve.
    UnservedVersion,
    /// `metadata.name` missing or empty.
    MissingName,
    /// A mapping key written twice (the last one wins).
    DuplicateKey,
    /// A hostname's format (pattern, length).
    Hostname,
    /// A port outside 1-65535.
    Port,
    /// A list with too many or too few entries.
    ListSize,
    /// A backend weight out of range.
    Weight,
    /// A listener or section name's format.
    Name,
    /// A header name or value's format.
    Header,
    /// A reference's group, kind or namespace format.
    Reference,
    /// A CEL rule of the CRD (`x-kubernetes-validations`).
    Rule,
}

impl ProblemKind {
    /// The rule a CRD finding belongs to: by what was broken and where (the field's last name).
    fn of(v: &Violation) -> ProblemKind {
        use crate::path::Segment;
        let segments: Vec<Segment<'_>> = crate::path::segments(&v.field).collect();
        let keys: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Key(k) => Some(*k),
                Segment::Index(_) => None,
            })
            .collect();
        let last = keys.last().copied().unwrap_or("");
        let parent = keys.len().checked_sub(2).map_or("", |i| keys[i]);
        let item = matches!(segments.last(), Some(Segment::Index(_)));
        match v.constraint {
            Constraint::Unknown => ProblemKind::UnknownField,
            Constraint::Rule => ProblemKind::Rule,
            _ if v.field == "apiVersion" || v.field == "kind" => ProblemKind::UnservedVersion,
            Constraint::MaxItems | Constraint::MinItems => ProblemKind::ListSize,
            Constraint::Maximum | Constraint::Minimum if last == "port" => ProblemKind::Port,
            Constraint::Maximum | Constraint::Minimum if last == "weight" => ProblemKind::Weight,
            Constraint::Pattern | Constraint::MaxLength | Constraint::MinLength => {
                match (parent, last) {
                    (_, "hostname") => ProblemKind::Hostname,
                    (_, "hostnames") if item => ProblemKind::Hostname,
                    (_, "remove") if item => ProblemKind::Header,
                    ("headers" | "set" | "add", "name" | "value") => ProblemKind::Header,
                    ("listeners", "name") | (_, "sectionName") => ProblemKind::Name,
                    (_, "namespace" | "kind" | "group") => ProblemKind::Reference,
                    _ => ProblemKind::Invalid,
                }
            }
            _ => ProblemKind::Invalid,
        }
    }
}

/// Build the typed resource for an object of a known kind.
pub(crate) fn type_object(
    kind: Kind,
    raw: &Value,
    namespace: &str,
    crd_checked: bool,
    problems: &mut Vec<SchemaProblem>,
) -> Resource {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let spec = raw
        .get("spec")
        .unwrap_or_else(|| EMPTY.get_or_init(|| Value::Object(Default::default())));
    let result = match kind {
        Kind::GatewayClass => {
            typed_at::<gatewayclasses::GatewayClassSpec>(spec, "spec", !crd_checked, problems)
                .map(|s| Resource::GatewayClass(Box::new(s)))
        }
        Kind::Gateway => typed_at::<gateways::GatewaySpec>(spec, "spec", !crd_checked, problems)
            .map(|s| Resource::Gateway(Box::new(s))),
        Kind::HttpRoute => {
            typed_at::<httproutes::HttpRouteSpec>(spec, "spec", !crd_checked, problems).map(|s| {
                let r = Route::from_http(&s, namespace);
                Resource::HttpRoute(Box::new(s), Box::new(r))
            })
        }
        Kind::GrpcRoute => {
            typed_at::<grpcroutes::GrpcRouteSpec>(spec, "spec", !crd_checked, problems).map(|s| {
                let r = Route::from_grpc(&s, namespace);
                Resource::GrpcRoute(Box::new(s), Box::new(r))
            })
        }
        // v1alpha2 TLSRoutes may leave out hostnames (all SNI names), which v1 requires.
        Kind::TlsRoute => typed_at::<tlsroutes::TlsRouteSpec>(
            &with_hostnames(spec),
            "spec",
            !crd_checked,
            problems,
        )
        .map(|s| {
            let r = Route::from_tls(&s, namespace);
            Resource::TlsRoute(Box::new(s), Box::new(r))
        }),
        Kind::TcpRoute => typed_at::<tcproutes::TcpRouteSpec>(spec, "spec", !crd_checked, problems)
            .map(|s| {
                let r = Route::from_tcp(&s, namespace);
                Resource::TcpRoute(Box::new(s), Box::new(r))
            }),
        Kind::UdpRoute => typed_at::<udproutes::UdpRouteSpec>(spec, "spec", !crd_checked, problems)
            .map(|s| {
                let r = Route::from_udp(&s, namespace);
                Resource::UdpRoute(Box::new(s), Box::new(r))
            }),
        Kind::ListenerSet => {
            typed_at::<listenersets::ListenerSetSpec>(spec, "spec", !crd_checked, problems).map(
                |s| {
                    let listeners = s
                        .listeners
                        .iter()
                        .filter_map(crate::route::retype)
                        .collect();
                    Resource::ListenerSet(Box::new(s), listeners)
                },
            )
        }
        Kind::BackendTlsPolicy => {
            typed_at::<BackendTlsPolicySpec>(spec, "spec", !crd_checked, problems)
                .map(|s| Resource::BackendTlsPolicy(Box::new(s)))
        }
        Kind::ReferenceGrant => {
            typed_at::<referencegrants::ReferenceGrantSpec>(spec, "spec", !crd_checked, problems)
                .map(|s| Resource::ReferenceGrant(Box::new(s)))
        }
        Kind::Namespace => typed_at::<core::Namespace>(raw, "", true, problems)
            .map(|s| Resource::Namespace(Box::new(s))),
        Kind::Service => typed_at::<core::Service>(raw, "", true, problems)
            .map(|s| Resource::Service(Box::new(s))),
        Kind::EndpointSlice => typed_at::<discovery::EndpointSlice>(raw, "", true, problems)
            .map(|s| Resource::EndpointSlice(Box::new(s))),
        Kind::Secret => {
            typed_at::<core::Secret>(raw, "", true, problems).map(|s| Resource::Secret(Box::new(s)))
        }
        Kind::ConfigMap => typed_at::<core::ConfigMap>(raw, "", true, problems)
            .map(|s| Resource::ConfigMap(Box::new(s))),
        Kind::CiliumEnvoyConfig | Kind::CiliumClusterwideEnvoyConfig => {
            typed_at::<EnvoyConfigSpec>(spec, "spec", true, problems)
                .map(|s| Resource::EnvoyConfig(Box::new(EnvoyConfig::parse(s))))
        }
        Kind::XMesh => typed_at::<xmeshes::XMeshSpec>(spec, "spec", !crd_checked, problems)
            .map(|s| Resource::XMesh(Box::new(s))),
    };
    // Core kinds were typed whole; the CRD kinds only by spec, so check their metadata too.
    if !matches!(
        kind,
        Kind::Namespace | Kind::Service | Kind::EndpointSlice | Kind::Secret | Kind::ConfigMap
    ) {
        if let Some(meta) = raw.get("metadata") {
            typed_at::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                meta, "metadata", true, problems,
            );
        }
    }
    result.unwrap_or(Resource::Invalid(kind))
}

/// A route spec with `hostnames` (empty when not written).
fn with_hostnames(spec: &Value) -> std::borrow::Cow<'_, Value> {
    match spec {
        Value::Object(m) if !m.contains_key("hostnames") => {
            let mut m = m.clone();
            m.insert("hostnames".into(), Value::Array(Vec::new()));
            std::borrow::Cow::Owned(Value::Object(m))
        }
        _ => std::borrow::Cow::Borrowed(spec),
    }
}

/// Deserialize `value` (found at `base`) and record what does not fit.
/// With `unknown`, the fields the types do not have are reported too (for the kinds whose CRD
/// schema did not already check them).
fn typed_at<T: DeserializeOwned + Serialize>(
    value: &Value,
    base: &str,
    unknown: bool,
    problems: &mut Vec<SchemaProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => {
            if unknown {
                if let Ok(back) = serde_json::to_value(&t) {
                    unknown_fields(value, &back, base, problems);
                }
            }
            Some(t)
        }
        Err(e) => {
            let inner = e.path().to_string();
            let field = match (base.is_empty(), inner == ".") {
                (true, _) => inner,
                (false, true) => base.to_string(),
                (false, false) => format!("{base}.{inner}"),
            };
            problems.push(SchemaProblem {
                kind: ProblemKind::Invalid,
                field,
                message: e.inner().to_string(),
                standard_only: false,
            });
            None
        }
    }
}

/// Record every key of `input` that the typed round trip `back` dropped.
fn unknown_fields(input: &Value, back: &Value, path: &str, problems: &mut Vec<SchemaProblem>) {
    fn walk<'a>(
        input: &'a Value,
        back: &Value,
        base: &str,
        trail: &mut crate::path::Trail<'a>,
        problems: &mut Vec<SchemaProblem>,
    ) {
        match (input, back) {
            (Value::Object(i), Value::Object(b)) => {
                for (k, v) in i {
                    trail.key(k);
                    match b.get(k) {
                        None if !(v.is_null()
                            || base.is_empty() && trail_is_top(trail) && k == "status") =>
                        {
                            problems.push(SchemaProblem {
                                kind: ProblemKind::UnknownField,
                                field: trail.render(base),
                                message: format!("unknown field \"{k}\""),
                                standard_only: false,
                            })
                        }
                        Some(bv) => walk(v, bv, base, trail, problems),
                        None => {}
                    }
                    trail.pop();
                }
            }
            (Value::Array(i), Value::Array(b)) => {
                for (n, (iv, bv)) in i.iter().zip(b).enumerate() {
                    trail.index(n);
                    walk(iv, bv, base, trail, problems);
                    trail.pop();
                }
            }
            _ => {}
        }
    }
    walk(
        input,
        back,
        path,
        &mut crate::path::Trail::default(),
        problems,
    )
}

/// Whether the trail is one key deep (the key just pushed is at the top level).
fn trail_is_top(trail: &crate::path::Trail<'_>) -> bool {
    trail.depth() == 1
}
