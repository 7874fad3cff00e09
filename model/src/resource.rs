//! Typed resources: raw JSON to the generated Gateway API, Kubernetes and Cilium types.
//!
//! A document that is valid YAML but does not fit its kind's schema is not a load failure: the
//! API server would reject it with a message naming the field, so the model records a
//! [`SchemaProblem`] and a rule reports it. Fields the schema does not know are found by
//! serializing the typed value back and comparing: whatever the types dropped is a field the
//! API server would reject (kubectl's default strict field validation) or prune.

use gateway_api::apis::standard::{
    gatewayclasses, gateways, grpcroutes, httproutes, referencegrants, tlsroutes,
};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

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
    ReferenceGrant(Box<referencegrants::ReferenceGrantSpec>),
    Namespace(Box<core::Namespace>),
    Service(Box<core::Service>),
    EndpointSlice(Box<discovery::EndpointSlice>),
    Secret(Box<core::Secret>),
    EnvoyConfig(Box<EnvoyConfig>),
    /// A known kind whose object does not fit its schema (see the object's problems).
    Invalid(Kind),
    /// A kind the model does not check.
    Unknown,
}

impl Resource {
    /// The route view, for the three route kinds.
    pub fn route(&self) -> Option<&Route> {
        match self {
            Resource::HttpRoute(_, r) | Resource::GrpcRoute(_, r) | Resource::TlsRoute(_, r) => {
                Some(r)
            }
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
}

/// Build the typed resource for an object of a known kind.
pub(crate) fn type_object(
    kind: Kind,
    raw: &Value,
    namespace: &str,
    problems: &mut Vec<SchemaProblem>,
) -> Resource {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let spec = raw
        .get("spec")
        .unwrap_or_else(|| EMPTY.get_or_init(|| Value::Object(Default::default())));
    let result = match kind {
        Kind::GatewayClass => typed_at::<gatewayclasses::GatewayClassSpec>(spec, "spec", problems)
            .map(|s| Resource::GatewayClass(Box::new(s))),
        Kind::Gateway => typed_at::<gateways::GatewaySpec>(spec, "spec", problems)
            .map(|s| Resource::Gateway(Box::new(s))),
        Kind::HttpRoute => typed_at::<httproutes::HttpRouteSpec>(spec, "spec", problems).map(|s| {
            let r = Route::from_http(&s, namespace);
            Resource::HttpRoute(Box::new(s), Box::new(r))
        }),
        Kind::GrpcRoute => typed_at::<grpcroutes::GrpcRouteSpec>(spec, "spec", problems).map(|s| {
            let r = Route::from_grpc(&s, namespace);
            Resource::GrpcRoute(Box::new(s), Box::new(r))
        }),
        Kind::TlsRoute => typed_at::<tlsroutes::TlsRouteSpec>(spec, "spec", problems).map(|s| {
            let r = Route::from_tls(&s, namespace);
            Resource::TlsRoute(Box::new(s), Box::new(r))
        }),
        Kind::ReferenceGrant => {
            typed_at::<referencegrants::ReferenceGrantSpec>(spec, "spec", problems)
                .map(|s| Resource::ReferenceGrant(Box::new(s)))
        }
        Kind::Namespace => {
            typed_at::<core::Namespace>(raw, "", problems).map(|s| Resource::Namespace(Box::new(s)))
        }
        Kind::Service => {
            typed_at::<core::Service>(raw, "", problems).map(|s| Resource::Service(Box::new(s)))
        }
        Kind::EndpointSlice => typed_at::<discovery::EndpointSlice>(raw, "", problems)
            .map(|s| Resource::EndpointSlice(Box::new(s))),
        Kind::Secret => {
            typed_at::<core::Secret>(raw, "", problems).map(|s| Resource::Secret(Box::new(s)))
        }
        Kind::CiliumEnvoyConfig | Kind::CiliumClusterwideEnvoyConfig => {
            typed_at::<EnvoyConfigSpec>(spec, "spec", problems)
                .map(|s| Resource::EnvoyConfig(Box::new(EnvoyConfig::parse(s))))
        }
    };
    // Core kinds were typed whole; the CRD kinds only by spec, so check their metadata too.
    if !matches!(
        kind,
        Kind::Namespace | Kind::Service | Kind::EndpointSlice | Kind::Secret
    ) {
        if let Some(meta) = raw.get("metadata") {
            typed_at::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                meta, "metadata", problems,
            );
        }
    }
    result.unwrap_or(Resource::Invalid(kind))
}

/// Deserialize `value` (found at `base`) and record what does not fit.
fn typed_at<T: DeserializeOwned + Serialize>(
    value: &Value,
    base: &str,
    problems: &mut Vec<SchemaProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => {
            if let Ok(back) = serde_json::to_value(&t) {
                unknown_fields(value, &back, base, problems);
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
