//! MESH114x: BackendTLSPolicy, how a Gateway verifies the backends it originates TLS to.

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::gateway_tls::{ca_problem, Problem};
use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;
use crate::snapshot::Snapshot;
use gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicySpec;

pub static RULES: &[&Rule] = &[&CA_KIND_INVALID, &CA_INVALID, &NO_VALID_CA, &CONFLICTED];

fn spec(o: &Object) -> Option<&BackendTlsPolicySpec> {
    match &o.resource {
        Resource::BackendTlsPolicy(s) => Some(s),
        _ => None,
    }
}

/// Each CA reference of the policy with what is wrong with it (references are local).
fn ca_refs<'a>(o: &'a Object, s: &Snapshot) -> Vec<(String, &'a str, &'a str, Option<Problem>)> {
    let Some(spec) = spec(o) else {
        return Vec::new();
    };
    let ns = o.namespace.as_deref().unwrap_or_default();
    spec.validation
        .ca_certificate_refs
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, c)| {
            (
                format!("spec.validation.caCertificateRefs[{j}]"),
                c.kind.as_str(),
                c.name.as_str(),
                ca_problem(o, s, &c.group, &c.kind, ns, &c.name),
            )
        })
        .collect()
}

pub static CA_KIND_INVALID: Rule = Rule {
    code: "MESH1140",
    name: "BackendTLSPolicyCAKindInvalid",
    level: Level::Error,
    title: "A BackendTLSPolicy CA reference names a kind that holds no certificate",
    kinds: &[Kind::BackendTlsPolicy],
    scope: Scope::Object,
    reason: Some("InvalidKind"),
    doc: "`spec.validation.caCertificateRefs` name ConfigMaps (core support) or Secrets holding the CA bundle under `ca.crt`. Another kind gives the policy ResolvedRefs=False (InvalidKind).",
    hint: "Reference a ConfigMap (group \"\", kind ConfigMap) with the CA bundle under ca.crt.",
    bad: fixture!("MESH1140", "bad"),
    good: fixture!("MESH1140", "good"),
    check: |o, s, r| {
        for (field, kind, name, p) in ca_refs(o, s) {
            if p == Some(Problem::Kind) {
                r.at(field, format!("{kind} {name} cannot hold CA certificates"));
            }
        }
    },
};

pub static CA_INVALID: Rule = Rule {
    code: "MESH1141",
    name: "BackendTLSPolicyCACertificateInvalid",
    level: Level::Error,
    title: "A BackendTLSPolicy CA ConfigMap does not exist or holds no ca.crt",
    kinds: &[Kind::BackendTlsPolicy],
    scope: Scope::Cluster,
    reason: Some("InvalidCACertificateRef"),
    doc: "The Gateway cannot verify the backend against a CA bundle that does not exist, or a ConfigMap without the `ca.crt` key: ResolvedRefs=False (InvalidCACertificateRef). Checked when the input contains objects of the referenced kind.",
    hint: "Create the ConfigMap with the backend's CA bundle under ca.crt, or fix the name.",
    bad: fixture!("MESH1141", "bad"),
    good: fixture!("MESH1141", "good"),
    check: |o, s, r| {
        for (field, kind, name, p) in ca_refs(o, s) {
            if p == Some(Problem::NotFound) {
                r.at(field, format!("{kind} {name} does not exist or holds no ca.crt"));
            }
        }
    },
};

pub static NO_VALID_CA: Rule = Rule {
    code: "MESH1142",
    name: "BackendTLSPolicyNoValidCACertificate",
    level: Level::Error,
    title: "A BackendTLSPolicy has no usable CA certificate",
    kinds: &[Kind::BackendTlsPolicy],
    scope: Scope::Cluster,
    reason: Some("NoValidCACertificate"),
    doc: "When none of the CA references can be used and `wellKnownCACertificates` is not set, the Gateway has nothing to verify the backend with: the policy is not accepted (Accepted=False, NoValidCACertificate) and requests to the backend fail rather than go unverified.",
    hint: "Fix the CA references, or set wellKnownCACertificates: System for a backend with a publicly trusted certificate.",
    bad: fixture!("MESH1142", "bad"),
    good: fixture!("MESH1142", "good"),
    check: |o, s, r| {
        let Some(spec) = spec(o) else { return };
        let refs = ca_refs(o, s);
        if spec.validation.well_known_ca_certificates.is_none() && !refs.is_empty() && refs.iter().all(|(_, _, _, p)| p.is_some()) {
            r.at("spec.validation", format!("none of its {} CA certificate references can be used", refs.len()));
        }
    },
};

pub static CONFLICTED: Rule = Rule {
    code: "MESH1143",
    name: "BackendTLSPolicyConflicted",
    level: Level::Error,
    title: "Another BackendTLSPolicy already targets the same Service port",
    kinds: &[Kind::BackendTlsPolicy],
    scope: Scope::Cluster,
    reason: Some("Conflicted"),
    doc: "One BackendTLSPolicy applies to a Service (or one of its ports, by sectionName). When two target the same one, the older wins (creationTimestamp, then namespace/name, as GEP-713 settles policy conflicts); the other gets Accepted=False (Conflicted) and does nothing for that target.",
    hint: "Merge the two policies, or target different ports with sectionName.",
    bad: fixture!("MESH1143", "bad"),
    good: fixture!("MESH1143", "good"),
    check: |o, s, r| {
        let Some(mine) = spec(o) else { return };
        let order = crate::plan::upstream_tls::precedence;
        // This policy's place, worked out once (it allocates) rather than per rival.
        let mine_order = order(o);
        let ns = o.namespace.clone().unwrap_or_default();
        for (i, t) in mine.target_refs.iter().enumerate() {
            let key = (ns.clone(), t.group.clone(), t.kind.clone(), t.name.clone());
            // Rivals come oldest first: the first older one naming the same section wins.
            let rivals = s.index().backend_tls_by_target.get(&key).into_iter().flatten().map(|&j| &s.objects()[j]);
            let winner = rivals.take_while(|x| order(x) < mine_order).find(|x| {
                spec(x).is_some_and(|other| other.target_refs.iter().any(|u| u.group == t.group && u.kind == t.kind && u.name == t.name && u.section_name == t.section_name))
            });
            if let Some(w) = winner {
                r.at(format!("spec.targetRefs[{i}]"), format!("{} {} is also targeted by the older {}, which takes precedence", t.kind, t.name, w.reference()));
            }
        }
    },
};
