//! MESH111x: a Gateway's frontend client-certificate validation (`spec.tls.frontend`): the CA
//! certificates each HTTPS listener checks client certificates against.
//!
//! The configuration is the Gateway's, but the status is each listener's: a listener uses the
//! `perPort` entry of its port, or else `default`, and gets ResolvedRefs=False for a reference
//! it cannot use and Accepted=False (NoValidCACertificate) when none is usable. So findings are
//! reported on the listener, naming the reference.

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::gateway_tls::{ca_problem, Problem};
use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;
use crate::snapshot::Snapshot;

pub static RULES: &[&Rule] = &[&KIND_INVALID, &NOT_FOUND, &NOT_PERMITTED, &NONE_VALID];

/// One CA certificate reference as a listener uses it.
struct CaRef<'a> {
    /// The listener's index.
    listener: usize,
    /// Where the reference is written.
    field: String,
    group: &'a str,
    kind: &'a str,
    namespace: String,
    name: &'a str,
}

/// Every CA reference each terminating (HTTPS) listener of a Gateway validates clients with.
fn ca_refs(o: &Object) -> Vec<CaRef<'_>> {
    let Resource::Gateway(spec) = &o.resource else {
        return Vec::new();
    };
    let ns = o.namespace.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (i, l) in spec.listeners.iter().enumerate() {
        if l.protocol != "HTTPS" {
            continue;
        }
        for r in crate::gateway_tls::listener_ca_refs(spec, l.port) {
            out.push(CaRef {
                listener: i,
                field: r.field,
                group: r.group,
                kind: r.kind,
                namespace: r.namespace.unwrap_or(ns).to_string(),
                name: r.name,
            });
        }
    }
    out
}

fn problem(o: &Object, s: &Snapshot, c: &CaRef<'_>) -> Option<Problem> {
    ca_problem(o, s, c.group, c.kind, &c.namespace, c.name)
}

/// Report each reference with `which` problem on the listener that uses it.
fn report(
    o: &Object,
    s: &Snapshot,
    which: Problem,
    r: &mut super::Report<'_>,
    say: impl Fn(&CaRef<'_>) -> String,
) {
    for c in ca_refs(o) {
        if problem(o, s, &c) == Some(which) {
            r.at(
                format!("spec.listeners[{}].tls", c.listener),
                format!("{} ({})", say(&c), c.field),
            );
        }
    }
}

pub static KIND_INVALID: Rule = Rule {
    code: "MESH1110",
    name: "ClientCACertificateKindInvalid",
    level: Level::Error,
    title: "A client-certificate CA reference names a kind that holds no certificate",
    kinds: &[Kind::Gateway],
    scope: Scope::Object,
    reason: Some("InvalidCACertificateKind"),
    doc: "Frontend TLS validation reads CA certificates from a ConfigMap (the `ca.crt` key; core support) or, where the implementation supports it, a Secret. Any other kind (a Service, a Gateway API kind) gives the listener ResolvedRefs=False (InvalidCACertificateKind).",
    hint: "Reference a ConfigMap (group \"\", kind ConfigMap) holding the CA bundle under ca.crt.",
    bad: fixture!("MESH1110", "bad"),
    good: fixture!("MESH1110", "good"),
    check: |o, s, r| report(o, s, Problem::Kind, r, |c| format!("client certificates are validated against {} {}, which cannot hold CA certificates", c.kind, c.name)),
};

pub static NOT_FOUND: Rule = Rule {
    code: "MESH1111",
    name: "ClientCACertificateNotFound",
    level: Level::Error,
    title: "A client-certificate CA ConfigMap or Secret does not exist",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("InvalidCACertificateRef"),
    doc: "The listener cannot validate client certificates against a CA bundle that does not exist, or a ConfigMap without the `ca.crt` key: ResolvedRefs=False (InvalidCACertificateRef). Checked when the input contains objects of the referenced kind.",
    hint: "Create the ConfigMap with the CA bundle under ca.crt, or fix the name.",
    bad: fixture!("MESH1111", "bad"),
    good: fixture!("MESH1111", "good"),
    check: |o, s, r| report(o, s, Problem::NotFound, r, |c| format!("{} {}/{} does not exist or holds no ca.crt", c.kind, c.namespace, c.name)),
};

pub static NOT_PERMITTED: Rule = Rule {
    code: "MESH1112",
    name: "ClientCACertificateNotPermitted",
    level: Level::Error,
    title: "A client-certificate CA in another namespace without a ReferenceGrant",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("RefNotPermitted"),
    doc: "A Gateway may read a CA bundle of another namespace only if a ReferenceGrant there allows Gateways of its namespace. Without one the listener's ResolvedRefs is False (RefNotPermitted).",
    hint: "Add a ReferenceGrant in the CA's namespace: from {group: gateway.networking.k8s.io, kind: Gateway, namespace: <gateway ns>}, to {group: \"\", kind: ConfigMap}.",
    bad: fixture!("MESH1112", "bad"),
    good: fixture!("MESH1112", "good"),
    check: |o, s, r| report(o, s, Problem::NotPermitted, r, |c| format!("no ReferenceGrant in namespace {} lets Gateways in {} use {} {}", c.namespace, o.namespace.as_deref().unwrap_or_default(), c.kind, c.name)),
};

pub static NONE_VALID: Rule = Rule {
    code: "MESH1113",
    name: "NoValidClientCACertificate",
    level: Level::Error,
    title: "A listener that validates client certificates has no usable CA certificate",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("NoValidCACertificate"),
    doc: "When none of the CA references a listener validates client certificates with can be used, the listener cannot authenticate any client: it is not accepted (Accepted=False, NoValidCACertificate) and serves nothing, rather than falling back to no validation.",
    hint: "Fix the CA references reported on this listener.",
    bad: fixture!("MESH1113", "bad"),
    good: fixture!("MESH1113", "good"),
    check: |o, s, r| {
        let refs = ca_refs(o);
        let mut listeners: Vec<usize> = refs.iter().map(|c| c.listener).collect();
        listeners.dedup();
        for i in listeners {
            let mine: Vec<&CaRef<'_>> = refs.iter().filter(|c| c.listener == i).collect();
            if mine.iter().all(|c| problem(o, s, c).is_some()) {
                r.at(format!("spec.listeners[{i}]"), format!("none of its {} client-certificate CA references can be used", mine.len()));
            }
        }
    },
};
