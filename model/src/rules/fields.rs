//! MESH001x: field formats and limits shared by several kinds. For Gateway API kinds they are
//! the CRD's own (see [`crate::crd`]), filed here by what they constrain; the core kinds'
//! (Service ports, object names) are checked here.

use super::schema::problems;
use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;
use crate::resource::ProblemKind;
use crate::validate;
use crate::walk::each;

pub static RULES: &[&Rule] = &[
    &HOSTNAME_INVALID,
    &PORT_OUT_OF_RANGE,
    &LIST_TOO_LONG,
    &WEIGHT_OUT_OF_RANGE,
    &NAME_INVALID,
    &HEADER_NAME_INVALID,
    &REFERENCE_FIELD_INVALID,
];

pub static HOSTNAME_INVALID: Rule = Rule {
    code: "MESH0010",
    name: "HostnameInvalid",
    level: Level::Error,
    title: "A hostname is not a valid DNS name",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Listener and route hostnames must be lower-case RFC 1123 names, optionally starting with a whole `*.` label; they may not be IP addresses, carry a port, or put the wildcard anywhere else. Redirect and rewrite hostnames may not be wildcards at all.",
    hint: "Write a lower-case DNS name such as `shop.example.com` or `*.example.com`; match IPs with a listener address instead.",
    bad: fixture!("MESH0010", "bad"),
    good: fixture!("MESH0010", "good"),
    check: |o, s, r| {
        problems(ProblemKind::Hostname)(o, s, r);
        // The CRDs let an IP through where only the spec forbids it (HTTPRoute, Gateway).
        let pattern = match o.known {
            Some(Kind::Gateway) => "spec.listeners[*].hostname",
            Some(Kind::HttpRoute | Kind::GrpcRoute) => "spec.hostnames[*]",
            _ => return,
        };
        each(&o.raw, pattern, &mut |path, v| {
            let reported = o.problems.iter().any(|p| p.field == path || path.starts_with(&format!("{}[", p.field)));
            if let Some(h) = v.as_str().filter(|h| validate::is_ip(h) && !reported) {
                r.at(path, format!("hostname {h:?} is an IP address; hostnames must be DNS names"));
            }
        });
    },
};

pub static PORT_OUT_OF_RANGE: Rule = Rule {
    code: "MESH0011",
    name: "PortOutOfRange",
    level: Level::Error,
    title: "A port number is outside 1-65535",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Listener, parentRef, backendRef, redirect and Service ports are PortNumbers: 1 to 65535.",
    hint: "Use a port between 1 and 65535.",
    bad: fixture!("MESH0011", "bad"),
    good: fixture!("MESH0011", "good"),
    check: |o, s, r| {
        problems(ProblemKind::Port)(o, s, r);
        if o.known != Some(Kind::Service) {
            return;
        }
        for p in ["spec.ports[*].port", "spec.ports[*].nodePort"] {
            each(&o.raw, p, &mut |path, v| {
                if let Some(n) = v.as_i64() {
                    if !(1..=65535).contains(&n) {
                        r.at(path, format!("port {n} is outside 1-65535"));
                    }
                }
            });
        }
    },
};

pub static LIST_TOO_LONG: Rule = Rule {
    code: "MESH0012",
    name: "ListSizeInvalid",
    level: Level::Error,
    title: "A list has too many (or too few) entries",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "The Gateway API CRDs cap list sizes (16 hostnames and 16 rules per HTTPRoute, 64 matches per rule and fewer than 128 in the whole route, 64 listeners per Gateway, ...) and require some lists to be non-empty (a Gateway's listeners, a ReferenceGrant's from and to). Generated routes hit these limits and are rejected as a whole.",
    hint: "Split the object into several (routes can share a parent), or add the missing entries.",
    bad: fixture!("MESH0012", "bad"),
    good: fixture!("MESH0012", "good"),
    check: |o, s, r| problems(ProblemKind::ListSize)(o, s, r),
};

pub static WEIGHT_OUT_OF_RANGE: Rule = Rule {
    code: "MESH0013",
    name: "WeightOutOfRange",
    level: Level::Error,
    title: "A backend weight is outside 0-1000000",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "backendRef weights are integers from 0 to 1,000,000. They are proportions, not percentages: 90/10 is the same split as 9/1, and the sum need not be 100. A negative weight is rejected.",
    hint: "Use a weight between 0 and 1000000 (0 sends no traffic).",
    bad: fixture!("MESH0013", "bad"),
    good: fixture!("MESH0013", "good"),
    check: |o, s, r| problems(ProblemKind::Weight)(o, s, r),
};

pub static NAME_INVALID: Rule = Rule {
    code: "MESH0014",
    name: "NameInvalid",
    level: Level::Error,
    title: "An object or listener name is not a valid DNS name",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Object names are RFC 1123 subdomains (Services and Namespaces: RFC 1035/1123 labels of at most 63 characters). Listener names and parentRef sectionNames are SectionNames, also RFC 1123 subdomains: `https_1` or `Web` are rejected.",
    hint: "Use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit.",
    bad: fixture!("MESH0014", "bad"),
    good: fixture!("MESH0014", "good"),
    check: |o, s, r| {
        let gateway_api = o.group().starts_with("gateway.networking.");
        let name_ok = match o.known {
            None if !gateway_api => true,
            Some(Kind::Service) => validate::dns_label_1035(&o.name),
            Some(Kind::Namespace) => o.name.len() <= 63 && validate::dns_subdomain(&o.name) && !o.name.contains('.'),
            _ => validate::dns_subdomain(&o.name),
        };
        if !o.name.is_empty() && !name_ok {
            r.at("metadata.name", format!("name {:?} is not a valid {} name", o.name, o.kind));
        }
        problems(ProblemKind::Name)(o, s, r);
    },
};

pub static HEADER_NAME_INVALID: Rule = Rule {
    code: "MESH0015",
    name: "HeaderNameInvalid",
    level: Level::Error,
    title: "A header name or value is not valid HTTP",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "Header names in matches and header modifiers are RFC 7230 tokens (no spaces or ':'), 1-256 characters; values are at most 4096 characters and may not contain line breaks.",
    hint: "Remove spaces, colons and other separators from the name.",
    bad: fixture!("MESH0015", "bad"),
    good: fixture!("MESH0015", "good"),
    check: |o, s, r| problems(ProblemKind::Header)(o, s, r),
};

pub static REFERENCE_FIELD_INVALID: Rule = Rule {
    code: "MESH0016",
    name: "ReferenceFieldInvalid",
    level: Level::Error,
    title: "A reference's namespace, kind or group is malformed",
    kinds: &[],
    scope: Scope::Object,
    reason: None,
    doc: "In parentRefs, backendRefs, certificateRefs, allowedRoutes.kinds and ReferenceGrants, `namespace` is an RFC 1123 label (lower case, at most 63 characters), `kind` starts with a letter (`Service`, not `service.v1`), and `group` is empty for the core API or a DNS subdomain (`gateway.networking.k8s.io`, not `gateway.networking.k8s.io/v1`).",
    hint: "Write the namespace's name, the kind as in `kind:` of the object, and the API group without a version.",
    bad: fixture!("MESH0016", "bad"),
    good: fixture!("MESH0016", "good"),
    check: |o, s, r| problems(ProblemKind::Reference)(o, s, r),
};
