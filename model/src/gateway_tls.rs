//! The objects a Gateway's `spec.tls` refers to: the CA bundles its listeners validate client
//! certificates with (`frontend`, per port or by default) and the client certificate it shows
//! backends (`backend.clientCertificateRef`). Read once here for the rules that check them and
//! for the webhook, which must put the referents in a review's snapshot.

use gateway_api::apis::experimental::gateways::{
    GatewaySpec, GatewayTlsFrontend, GatewayTlsFrontendPerPort,
};

use crate::grants;
use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;
use crate::snapshot::Snapshot;

/// One reference, as written (no defaults applied but the kind's).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsRef<'a> {
    /// Where it is written.
    pub field: String,
    pub group: &'a str,
    pub kind: &'a str,
    /// `None`: the Gateway's namespace.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

fn default_refs(frontend: &GatewayTlsFrontend) -> Vec<TlsRef<'_>> {
    let refs = frontend
        .default
        .validation
        .iter()
        .flat_map(|v| &v.ca_certificate_refs);
    refs.enumerate()
        .map(|(j, c)| TlsRef {
            field: format!("spec.tls.frontend.default.validation.caCertificateRefs[{j}]"),
            group: &c.group,
            kind: &c.kind,
            namespace: c.namespace.as_deref(),
            name: &c.name,
        })
        .collect()
}

fn per_port_refs(k: usize, entry: &GatewayTlsFrontendPerPort) -> Vec<TlsRef<'_>> {
    let refs = entry
        .tls
        .validation
        .iter()
        .flat_map(|v| &v.ca_certificate_refs);
    refs.enumerate()
        .map(|(j, c)| TlsRef {
            field: format!("spec.tls.frontend.perPort[{k}].tls.validation.caCertificateRefs[{j}]"),
            group: &c.group,
            kind: &c.kind,
            namespace: c.namespace.as_deref(),
            name: &c.name,
        })
        .collect()
}

/// The frontend entry that applies to a listener on a port: the port's `perPort` entry (with
/// its index) when there is one, else `default`.
enum FrontendEntry<'a> {
    PerPort(usize, &'a GatewayTlsFrontendPerPort),
    Default(&'a GatewayTlsFrontend),
}

fn frontend_entry(spec: &GatewaySpec, port: i32) -> Option<FrontendEntry<'_>> {
    let frontend = spec.tls.as_ref()?.frontend.as_ref()?;
    let per_port = frontend
        .per_port
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, p)| p.port == port);
    Some(match per_port {
        Some((k, p)) => FrontendEntry::PerPort(k, p),
        None => FrontendEntry::Default(frontend),
    })
}

/// The CA references a listener on `port` validates client certificates with: its port's
/// `perPort` entry when there is one, else `default`.
pub fn listener_ca_refs(spec: &GatewaySpec, port: i32) -> Vec<TlsRef<'_>> {
    match frontend_entry(spec, port) {
        None => Vec::new(),
        Some(FrontendEntry::PerPort(k, p)) => per_port_refs(k, p),
        Some(FrontendEntry::Default(frontend)) => default_refs(frontend),
    }
}

/// Whether the frontend validation that applies to a listener on `port` is
/// `AllowInsecureFallback` (connections with a missing or invalid client certificate are let
/// through) rather than the default `AllowValidOnly`. None when no validation applies.
pub fn listener_insecure_fallback(spec: &GatewaySpec, port: i32) -> Option<bool> {
    use gateway_api::apis::experimental::gateways::{
        GatewayTlsFrontendDefaultValidationMode as D,
        GatewayTlsFrontendPerPortTlsValidationMode as P,
    };
    match frontend_entry(spec, port)? {
        FrontendEntry::PerPort(_, p) => p
            .tls
            .validation
            .as_ref()
            .map(|v| matches!(v.mode, Some(P::AllowInsecureFallback))),
        FrontendEntry::Default(frontend) => frontend
            .default
            .validation
            .as_ref()
            .map(|v| matches!(v.mode, Some(D::AllowInsecureFallback))),
    }
}

/// Whether any of the Gateway's frontend validations (its default, or one of a port) is
/// `AllowInsecureFallback`: the Gateway then says so (`InsecureFrontendValidationMode`).
pub fn any_insecure_fallback(spec: &GatewaySpec) -> bool {
    use gateway_api::apis::experimental::gateways::{
        GatewayTlsFrontendDefaultValidationMode as D,
        GatewayTlsFrontendPerPortTlsValidationMode as P,
    };
    let Some(frontend) = spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return false;
    };
    let default = frontend
        .default
        .validation
        .as_ref()
        .is_some_and(|v| matches!(v.mode, Some(D::AllowInsecureFallback)));
    let per_port = frontend.per_port.iter().flatten().any(|p| {
        p.tls
            .validation
            .as_ref()
            .is_some_and(|v| matches!(v.mode, Some(P::AllowInsecureFallback)))
    });
    default || per_port
}

/// The client certificate the Gateway presents to backends.
pub fn backend_client_certificate(spec: &GatewaySpec) -> Option<TlsRef<'_>> {
    let c = spec
        .tls
        .as_ref()?
        .backend
        .as_ref()?
        .client_certificate_ref
        .as_ref()?;
    Some(TlsRef {
        field: "spec.tls.backend.clientCertificateRef".into(),
        group: c.group.as_deref().unwrap_or(""),
        kind: c.kind.as_deref().unwrap_or("Secret"),
        namespace: c.namespace.as_deref(),
        name: &c.name,
    })
}

/// Every reference of `spec.tls`: all frontend CA references and the backend client
/// certificate.
pub fn references(spec: &GatewaySpec) -> Vec<TlsRef<'_>> {
    let mut out = Vec::new();
    if let Some(frontend) = spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) {
        out.extend(default_refs(frontend));
        for (k, p) in frontend.per_port.iter().flatten().enumerate() {
            out.extend(per_port_refs(k, p));
        }
    }
    out.extend(backend_client_certificate(spec));
    out
}

/// What is wrong with a CA certificate reference, if anything.
#[derive(Clone, Copy, PartialEq)]
pub enum Problem {
    /// Not a kind that holds CA certificates.
    Kind,
    /// No such object, or a ConfigMap without `ca.crt`.
    NotFound,
    /// In another namespace, and no ReferenceGrant allows it.
    NotPermitted,
}

/// What is wrong with a reference from `o` to a CA bundle (`group`, `kind`, `ns`, `name`).
pub fn ca_problem(
    o: &Object,
    s: &Snapshot,
    group: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Problem> {
    let k = match (group, kind) {
        ("", "ConfigMap") => Kind::ConfigMap,
        ("", "Secret") => Kind::Secret,
        _ => return Some(Problem::Kind),
    };
    let own_ns = o.namespace.as_deref().unwrap_or_default();
    if ns != own_ns {
        let from = grants::From {
            group: GATEWAY_GROUP,
            kind: &o.kind,
            namespace: own_ns,
        };
        let to = grants::To {
            group: "",
            kind,
            namespace: ns,
            name,
        };
        if !grants::permitted(s, &from, &to) {
            return Some(Problem::NotPermitted);
        }
    }
    // Checked only when the input has objects of the kind: a file set without ConfigMaps says
    // nothing about which exist. A ConfigMap holds its bundle under `ca.crt`; an empty one is
    // no bundle (as the conformance suite has it when it blanks the key).
    match s.get(k, Some(ns), name) {
        None => s.has_kind(k).then_some(Problem::NotFound),
        Some(Object {
            resource: Resource::ConfigMap(cm),
            ..
        }) => cm
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .is_none_or(|v| v.trim().is_empty())
            .then_some(Problem::NotFound),
        Some(_) => None,
    }
}

/// The CA bundle (PEM, `ca.crt` of a ConfigMap or Secret) a reference from `o` names, when
/// `ca_problem` finds nothing wrong with it; empty otherwise. Bundles of several references
/// concatenate (each ends with a newline).
pub fn usable_ca_bundle(
    o: &Object,
    s: &Snapshot,
    group: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Vec<u8> {
    if ca_problem(o, s, group, kind, ns, name).is_some() {
        return Vec::new();
    }
    let k = if kind == "Secret" {
        Kind::Secret
    } else {
        Kind::ConfigMap
    };
    let mut bundle = match s.get(k, Some(ns), name) {
        Some(Object {
            resource: Resource::ConfigMap(cm),
            ..
        }) => cm
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .map(|t| t.as_bytes().to_vec()),
        Some(Object {
            resource: Resource::Secret(secret),
            ..
        }) => secret
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .map(|b| b.0.clone()),
        _ => None,
    }
    .unwrap_or_default();
    if !bundle.is_empty() {
        bundle.push(b'\n');
    }
    bundle
}
