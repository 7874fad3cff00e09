//! BackendTLSPolicy in the Plan: which Service ports the proxy originates TLS to, with which
//! server name, trust and identity checks.
//!
//! A policy targets a Service (group `""`, kind `Service`) or one of its ports by
//! `sectionName` (the port's name). For a Service port, the policy that applies is one naming
//! the port before one naming the whole Service, and among equals the oldest
//! (creationTimestamp, then namespace/name), as GEP-713 settles policy conflicts; the others
//! are Conflicted (MESH1143, which uses the same order).

use crate::gateway_tls::usable_ca_bundle;
use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;
use crate::snapshot::Snapshot;

/// How the proxy connects to a cluster's endpoints over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `namespace/name` of the BackendTLSPolicy.
    pub policy: String,
    /// The server name sent (SNI) and, without `subject_alt_names`, the name the backend's
    /// certificate must carry (`validation.hostname`).
    pub sni: String,
    /// CA certificates (PEM) from the usable `caCertificateRefs`; empty with none usable,
    /// which fails every connection rather than falling back to cleartext.
    pub ca_pem: Vec<u8>,
    /// `wellKnownCACertificates: System`: the system's trusted roots.
    pub system_roots: bool,
    /// When set, the certificate must carry one of these instead of `sni`.
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A `validation.subjectAltNames` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    Hostname(String),
    Uri(String),
}

/// The order among policies for one target: creationTimestamp, then namespace/name.
pub fn precedence(o: &Object) -> (Option<String>, Option<String>, String) {
    (
        o.raw
            .pointer("/metadata/creationTimestamp")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        o.namespace.clone(),
        o.name.clone(),
    )
}

/// The TLS the proxy originates to port `port_name` of the Service `svc`, if a policy says so.
pub fn for_service_port(
    snap: &Snapshot,
    svc: &Object,
    port_name: Option<&str>,
) -> Option<UpstreamTls> {
    let applies = |o: &&Object| -> Option<bool> {
        let Resource::BackendTlsPolicy(spec) = &o.resource else {
            return None;
        };
        // Some(true): names this port; Some(false): the whole Service.
        spec.target_refs
            .iter()
            .filter(|t| t.group.is_empty() && t.kind == "Service" && t.name == svc.name)
            .filter_map(|t| match &t.section_name {
                None => Some(false),
                Some(s) if Some(s.as_str()) == port_name => Some(true),
                Some(_) => None,
            })
            .max()
    };
    let policy = snap
        .of_kind(Kind::BackendTlsPolicy)
        .filter(|o| o.namespace == svc.namespace)
        .filter_map(|o| Some((applies(&o)?, o)))
        .min_by(|(a_port, a), (b_port, b)| {
            b_port
                .cmp(a_port)
                .then_with(|| precedence(a).cmp(&precedence(b)))
        })
        .map(|(_, o)| o)?;
    let Resource::BackendTlsPolicy(spec) = &policy.resource else {
        return None;
    };
    let ns = policy.namespace.as_deref().unwrap_or_default();
    let mut ca_pem = Vec::new();
    for c in spec.validation.ca_certificate_refs.iter().flatten() {
        ca_pem.extend(usable_ca_bundle(
            policy, snap, &c.group, &c.kind, ns, &c.name,
        ));
    }
    Some(UpstreamTls {
        policy: format!("{ns}/{}", policy.name),
        sni: spec.validation.hostname.clone(),
        ca_pem,
        system_roots: spec.validation.well_known_ca_certificates.as_deref() == Some("System"),
        subject_alt_names: spec
            .validation
            .subject_alt_names
            .iter()
            .flatten()
            .filter_map(|s| match (&s.hostname, &s.uri) {
                (Some(h), _) => Some(SubjectAltName::Hostname(h.clone())),
                (None, Some(u)) => Some(SubjectAltName::Uri(u.clone())),
                _ => None,
            })
            .collect(),
    })
}
