//! MESH112x: TLS from the Gateway to its backends: the client certificate a Gateway presents
//! to backends (`spec.tls.backend.clientCertificateRef`).

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::grants;
use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;

pub static RULES: &[&Rule] = &[
    &CLIENT_CERTIFICATE_INVALID,
    &CLIENT_CERTIFICATE_NOT_PERMITTED,
];

const FIELD: &str = "spec.tls.backend.clientCertificateRef";

/// The Gateway's backend client certificate reference: (group, kind, namespace, name).
fn client_certificate(o: &Object) -> Option<(&str, &str, String, &str)> {
    let Resource::Gateway(spec) = &o.resource else {
        return None;
    };
    let c = crate::gateway_tls::backend_client_certificate(spec)?;
    let ns = c.namespace.or(o.namespace.as_deref()).unwrap_or_default();
    Some((c.group, c.kind, ns.to_string(), c.name))
}

pub static CLIENT_CERTIFICATE_INVALID: Rule = Rule {
    code: "MESH1120",
    name: "BackendClientCertificateInvalid",
    level: Level::Error,
    title: "The Gateway's backend client certificate is not a usable TLS Secret",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("InvalidClientCertificateRef"),
    doc: "`spec.tls.backend.clientCertificateRef` names the certificate the Gateway presents when a backend asks for one (BackendTLSPolicy with mutual TLS). It must be a core Secret of type kubernetes.io/tls; another kind or group, a Secret that does not exist (checked when the input has Secrets) or one of another type gives the Gateway ResolvedRefs=False (InvalidClientCertificateRef), and backends that require a client certificate refuse the connection.",
    hint: "Point it at a Secret of type kubernetes.io/tls with tls.crt and tls.key.",
    bad: fixture!("MESH1120", "bad"),
    good: fixture!("MESH1120", "good"),
    check: |o, s, r| {
        let Some((group, kind, ns, name)) = client_certificate(o) else { return };
        if !group.is_empty() || kind != "Secret" {
            r.at(FIELD, format!("{kind} in group {group:?} cannot hold a client certificate; use a core Secret"));
            return;
        }
        match s.get(Kind::Secret, Some(&ns), name) {
            None if s.has_kind(Kind::Secret) => r.at(FIELD, format!("Secret {ns}/{name} does not exist")),
            Some(Object { resource: Resource::Secret(sec), .. }) => {
                let t = sec.type_.as_deref().unwrap_or("Opaque");
                if t != "kubernetes.io/tls" {
                    r.at(FIELD, format!("Secret {ns}/{name} has type {t}, not kubernetes.io/tls"));
                }
            }
            _ => {}
        }
    },
};

pub static CLIENT_CERTIFICATE_NOT_PERMITTED: Rule = Rule {
    code: "MESH1121",
    name: "BackendClientCertificateNotPermitted",
    level: Level::Error,
    title: "The backend client certificate is in another namespace without a ReferenceGrant",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("RefNotPermitted"),
    doc: "A Gateway may use a client certificate Secret of another namespace only if a ReferenceGrant there allows Gateways of its namespace; without one the Gateway's ResolvedRefs is False (RefNotPermitted).",
    hint: "Add a ReferenceGrant in the Secret's namespace: from {group: gateway.networking.k8s.io, kind: Gateway, namespace: <gateway ns>}, to {group: \"\", kind: Secret}.",
    bad: fixture!("MESH1121", "bad"),
    good: fixture!("MESH1121", "good"),
    check: |o, s, r| {
        let Some((group, kind, ns, name)) = client_certificate(o) else { return };
        let gw_ns = o.namespace.as_deref().unwrap_or_default();
        if ns == gw_ns {
            return;
        }
        let from = grants::From { group: GATEWAY_GROUP, kind: "Gateway", namespace: gw_ns };
        let to = grants::To { group, kind, namespace: &ns, name };
        if !grants::permitted(s, &from, &to) {
            r.at(FIELD, format!("no ReferenceGrant in namespace {ns} lets Gateways in {gw_ns} use {kind} {name}"));
        }
    },
};
