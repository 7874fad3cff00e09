//! BackendTLSPolicy in the Plan: which Service ports the proxy originates TLS to, with which
//! server name, trust and identity checks.
//!
//! A policy targets a Service (group `""`, kind `Service`) or one of its ports by
//! `sectionName` (the port's name). For a Service port, the policy that applies is one naming
//! the port before one naming the whole Service, and among equals the oldest
//! (creationTimestamp, then namespace/name), as GEP-713 settles policy conflicts; the others
//! are Conflicted (MESH1143, which uses the same order).

use crate::gateway_tls::usable_ca_bundle;
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
    let applies = |o: &Object| -> Option<bool> {
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
    let key = (
        svc.namespace.clone().unwrap_or_default(),
        String::new(),
        "Service".to_string(),
        svc.name.clone(),
    );
    // Oldest first: the first that names the port, else the first for the whole Service.
    let rivals = snap.index().backend_tls_by_target.get(&key)?;
    let mut policies = rivals.iter().map(|&i| &snap.objects()[i]);
    let policy = policies
        .clone()
        .find(|o| applies(o) == Some(true))
        .or_else(|| policies.find(|o| applies(o) == Some(false)))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Kind;
    use crate::load::{load_str, LoadOptions};
    use crate::object::Source;

    fn policy(name: &str, created: &str, section: Option<&str>) -> String {
        let section = section.map_or(String::new(), |s| format!(", sectionName: {s}"));
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: shop, creationTimestamp: '{created}'}}\nspec:\n  targetRefs: [{{group: '', kind: Service, name: api{section}}}]\n  validation: {{wellKnownCACertificates: System, hostname: {name}.example}}\n")
    }

    /// A policy naming the port comes before one naming the whole Service, and among equals
    /// the oldest; MESH1143 calls Conflicted exactly the policies that lose a target.
    #[test]
    fn the_port_policy_then_the_oldest_applies_and_the_others_conflict() {
        let yaml = [
            "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  ports: [{name: http, port: 80}, {name: admin, port: 9000}]\n".to_string(),
            policy("port-new", "2021-01-01T00:00:00Z", Some("http")),
            policy("whole", "2019-01-01T00:00:00Z", None),
            policy("port-old", "2020-01-01T00:00:00Z", Some("http")),
        ]
        .concat();
        let objects = load_str(
            &yaml,
            Source::File("p.yaml".into()),
            &LoadOptions::default(),
        )
        .unwrap();
        let snap = Snapshot::new(objects);
        let svc = snap.get(Kind::Service, Some("shop"), "api").unwrap();
        let applied = |port| for_service_port(&snap, svc, Some(port)).map(|t| t.policy);
        assert_eq!(applied("http").as_deref(), Some("shop/port-old"));
        assert_eq!(applied("admin").as_deref(), Some("shop/whole"));
        let conflicted: Vec<String> = crate::rules::check(&snap)
            .into_iter()
            .filter(|d| d.code == "MESH1143")
            .map(|d| format!("{} {}", d.resource.name, d.message))
            .collect();
        assert_eq!(conflicted.len(), 1, "{conflicted:?}");
        assert!(
            conflicted[0].contains("port-new") && conflicted[0].contains("port-old"),
            "{conflicted:?}"
        );
    }
}
