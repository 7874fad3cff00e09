//! MESH001x: field formats and limits shared by several kinds, each rule one table of places.

use serde_json::Value;

use super::{fixture, Report, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;
use crate::object::Object;
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

const ROUTES: &[Kind] = &[Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute];

/// Filter lists of HTTPRoute/GRPCRoute: rule level and backendRef level.
const FILTER_LISTS: &[&str] = &[
    "spec.rules[*].filters[*]",
    "spec.rules[*].backendRefs[*].filters[*]",
];

fn kind_of(o: &Object) -> Kind {
    o.known.expect("rules only run on their kinds")
}

pub static HOSTNAME_INVALID: Rule = Rule {
    code: "MESH0010",
    name: "HostnameInvalid",
    level: Level::Error,
    title: "A hostname is not a valid DNS name",
    kinds: &[Kind::Gateway, Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute],
    scope: Scope::Object,
    reason: None,
    doc: "Listener and route hostnames must be lower-case RFC 1123 names, optionally starting with a whole `*.` label; they may not be IP addresses, carry a port, or put the wildcard anywhere else. Redirect and rewrite hostnames may not be wildcards at all.",
    hint: "Write a lower-case DNS name such as `shop.example.com` or `*.example.com`; match IPs with a listener address instead.",
    bad: fixture!("MESH0010", "bad"),
    good: fixture!("MESH0010", "good"),
    check: |o, _, r| {
        let check = |pattern: &str, precise: bool, r: &mut Report<'_>| {
            each(&o.raw, pattern, &mut |path, v| {
                let Some(h) = v.as_str() else { return };
                let ok = if precise { validate::precise_hostname(h) } else { validate::hostname(h) };
                if validate::is_ip(h) {
                    r.at(path, format!("hostname {h:?} is an IP address; hostnames must be DNS names"));
                } else if !ok {
                    let what = if precise { "a DNS name without wildcard" } else { "a lower-case DNS name, optionally starting with '*.'" };
                    r.at(path, format!("hostname {h:?} is not {what}"));
                }
            });
        };
        match kind_of(o) {
            Kind::Gateway => check("spec.listeners[*].hostname", false, r),
            _ => {
                check("spec.hostnames[*]", false, r);
                for list in FILTER_LISTS {
                    check(&format!("{list}.requestRedirect.hostname"), true, r);
                    check(&format!("{list}.urlRewrite.hostname"), true, r);
                }
            }
        }
    },
};

pub static PORT_OUT_OF_RANGE: Rule = Rule {
    code: "MESH0011",
    name: "PortOutOfRange",
    level: Level::Error,
    title: "A port number is outside 1-65535",
    kinds: &[
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TlsRoute,
        Kind::Service,
    ],
    scope: Scope::Object,
    reason: None,
    doc: "Listener, parentRef, backendRef, redirect and Service ports are PortNumbers: 1 to 65535.",
    hint: "Use a port between 1 and 65535.",
    bad: fixture!("MESH0011", "bad"),
    good: fixture!("MESH0011", "good"),
    check: |o, _, r| {
        let patterns: &[&str] = match kind_of(o) {
            Kind::Gateway => &["spec.listeners[*].port"],
            Kind::Service => &["spec.ports[*].port", "spec.ports[*].nodePort"],
            _ => &[
                "spec.parentRefs[*].port",
                "spec.rules[*].backendRefs[*].port",
                "spec.rules[*].filters[*].requestRedirect.port",
                "spec.rules[*].filters[*].requestMirror.backendRef.port",
                "spec.rules[*].backendRefs[*].filters[*].requestRedirect.port",
                "spec.rules[*].backendRefs[*].filters[*].requestMirror.backendRef.port",
            ],
        };
        for p in patterns {
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

/// (kind, list, min, max) from the CRDs' MinItems/MaxItems.
const LIMITS: &[(Kind, &str, usize, usize)] = &[
    (Kind::Gateway, "spec.listeners", 1, 64),
    (Kind::Gateway, "spec.addresses", 0, 16),
    (
        Kind::Gateway,
        "spec.listeners[*].tls.certificateRefs",
        0,
        64,
    ),
    (Kind::Gateway, "spec.listeners[*].allowedRoutes.kinds", 0, 8),
    (Kind::ReferenceGrant, "spec.from", 1, 16),
    (Kind::ReferenceGrant, "spec.to", 1, 16),
    (Kind::TlsRoute, "spec.hostnames", 1, 1024),
    (Kind::TlsRoute, "spec.rules", 1, 1),
    (Kind::TlsRoute, "spec.parentRefs", 0, 32),
    (Kind::TlsRoute, "spec.rules[*].backendRefs", 1, 16),
    (Kind::HttpRoute, "spec.hostnames", 0, 16),
    (Kind::HttpRoute, "spec.parentRefs", 0, 32),
    (Kind::HttpRoute, "spec.rules", 0, 16),
    (Kind::HttpRoute, "spec.rules[*].matches", 0, 64),
    (Kind::HttpRoute, "spec.rules[*].matches[*].headers", 0, 16),
    (
        Kind::HttpRoute,
        "spec.rules[*].matches[*].queryParams",
        0,
        16,
    ),
    (Kind::HttpRoute, "spec.rules[*].filters", 0, 16),
    (Kind::HttpRoute, "spec.rules[*].backendRefs", 0, 16),
    (
        Kind::HttpRoute,
        "spec.rules[*].backendRefs[*].filters",
        0,
        16,
    ),
    (Kind::GrpcRoute, "spec.hostnames", 0, 16),
    (Kind::GrpcRoute, "spec.parentRefs", 0, 32),
    (Kind::GrpcRoute, "spec.rules", 0, 16),
    (Kind::GrpcRoute, "spec.rules[*].matches", 0, 64),
    (Kind::GrpcRoute, "spec.rules[*].matches[*].headers", 0, 16),
    (Kind::GrpcRoute, "spec.rules[*].filters", 0, 16),
    (Kind::GrpcRoute, "spec.rules[*].backendRefs", 0, 16),
];

pub static LIST_TOO_LONG: Rule = Rule {
    code: "MESH0012",
    name: "ListSizeInvalid",
    level: Level::Error,
    title: "A list has too many (or too few) entries",
    kinds: &[Kind::Gateway, Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute, Kind::ReferenceGrant],
    scope: Scope::Object,
    reason: None,
    doc: "The Gateway API CRDs cap list sizes (16 hostnames and 16 rules per HTTPRoute, 64 matches per rule and fewer than 128 in the whole route, 64 listeners per Gateway, ...) and require some lists to be non-empty (a Gateway's listeners, a ReferenceGrant's from and to). Generated routes hit these limits and are rejected as a whole.",
    hint: "Split the object into several (routes can share a parent), or add the missing entries.",
    bad: fixture!("MESH0012", "bad"),
    good: fixture!("MESH0012", "good"),
    check: |o, _, r| {
        let kind = kind_of(o);
        for (k, pattern, min, max) in LIMITS {
            if *k != kind {
                continue;
            }
            // A required list that is absent is the schema rule's business (missing field).
            each(&o.raw, pattern, &mut |path, v| {
                let Some(items) = v.as_array() else { return };
                if items.len() > *max {
                    r.at(path, format!("has {} entries; at most {max} are allowed", items.len()));
                } else if items.len() < *min {
                    r.at(path, format!("has {} entries; at least {min} required", items.len()));
                }
            });
        }
        if matches!(kind, Kind::HttpRoute | Kind::GrpcRoute) {
            let mut total = 0;
            each(&o.raw, "spec.rules[*].matches", &mut |_, v| total += v.as_array().map_or(0, Vec::len));
            if total > 128 {
                r.at("spec.rules", format!("has {total} matches in all; fewer than 128 are allowed across all rules"));
            }
        }
    },
};

pub static WEIGHT_OUT_OF_RANGE: Rule = Rule {
    code: "MESH0013",
    name: "WeightOutOfRange",
    level: Level::Error,
    title: "A backend weight is outside 0-1000000",
    kinds: ROUTES,
    scope: Scope::Object,
    reason: None,
    doc: "backendRef weights are integers from 0 to 1,000,000. They are proportions, not percentages: 90/10 is the same split as 9/1, and the sum need not be 100. A negative weight is rejected.",
    hint: "Use a weight between 0 and 1000000 (0 sends no traffic).",
    bad: fixture!("MESH0013", "bad"),
    good: fixture!("MESH0013", "good"),
    check: |o, _, r| {
        each(&o.raw, "spec.rules[*].backendRefs[*].weight", &mut |path, v| {
            if let Some(n) = v.as_i64() {
                if !(0..=1_000_000).contains(&n) {
                    r.at(path, format!("weight {n} is outside 0-1000000"));
                }
            }
        });
    },
};

pub static NAME_INVALID: Rule = Rule {
    code: "MESH0014",
    name: "NameInvalid",
    level: Level::Error,
    title: "An object or listener name is not a valid DNS name",
    kinds: &[Kind::Gateway, Kind::GatewayClass, Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute, Kind::ReferenceGrant, Kind::Service, Kind::Namespace, Kind::CiliumEnvoyConfig, Kind::CiliumClusterwideEnvoyConfig],
    scope: Scope::Object,
    reason: None,
    doc: "Object names are RFC 1123 subdomains (Services and Namespaces: RFC 1035/1123 labels of at most 63 characters). Listener names and parentRef sectionNames are SectionNames, also RFC 1123 subdomains: `https_1` or `Web` are rejected.",
    hint: "Use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit.",
    bad: fixture!("MESH0014", "bad"),
    good: fixture!("MESH0014", "good"),
    check: |o, _, r| {
        let name_ok = match kind_of(o) {
            Kind::Service => validate::dns_label_1035(&o.name),
            Kind::Namespace => o.name.len() <= 63 && validate::dns_subdomain(&o.name) && !o.name.contains('.'),
            _ => validate::dns_subdomain(&o.name),
        };
        if !o.name.is_empty() && !name_ok {
            r.at("metadata.name", format!("name {:?} is not a valid {} name", o.name, o.kind));
        }
        for pattern in ["spec.listeners[*].name", "spec.parentRefs[*].sectionName"] {
            each(&o.raw, pattern, &mut |path, v| {
                if let Some(s) = v.as_str() {
                    if !validate::dns_subdomain(s) {
                        r.at(path, format!("section name {s:?} is not a lower-case RFC 1123 name"));
                    }
                }
            });
        }
    },
};

pub static HEADER_NAME_INVALID: Rule = Rule {
    code: "MESH0015",
    name: "HeaderNameInvalid",
    level: Level::Error,
    title: "A header name or value is not valid HTTP",
    kinds: &[Kind::HttpRoute, Kind::GrpcRoute],
    scope: Scope::Object,
    reason: None,
    doc: "Header names in matches and header modifiers are RFC 7230 tokens (no spaces or ':'), 1-256 characters; values are at most 4096 characters and may not contain line breaks.",
    hint: "Remove spaces, colons and other separators from the name.",
    bad: fixture!("MESH0015", "bad"),
    good: fixture!("MESH0015", "good"),
    check: |o, _, r| {
        let mut names = vec!["spec.rules[*].matches[*].headers[*]".to_string()];
        for list in FILTER_LISTS {
            for m in ["requestHeaderModifier", "responseHeaderModifier"] {
                names.push(format!("{list}.{m}.set[*]"));
                names.push(format!("{list}.{m}.add[*]"));
            }
        }
        for pattern in &names {
            each(&o.raw, pattern, &mut |path, v| {
                if let Some(n) = v.get("name").and_then(Value::as_str) {
                    if !validate::header_name(n) {
                        r.at(format!("{path}.name"), format!("header name {n:?} is not an HTTP token"));
                    }
                }
                if let Some(val) = v.get("value").and_then(Value::as_str) {
                    if val.len() > 4096 || val.contains(['\r', '\n']) {
                        r.at(format!("{path}.value"), "header value must be at most 4096 characters without line breaks");
                    }
                }
            });
        }
        for list in FILTER_LISTS {
            for m in ["requestHeaderModifier", "responseHeaderModifier"] {
                each(&o.raw, &format!("{list}.{m}.remove[*]"), &mut |path, v| {
                    if let Some(n) = v.as_str() {
                        if !validate::header_name(n) {
                            r.at(path, format!("header name {n:?} is not an HTTP token"));
                        }
                    }
                });
            }
        }
    },
};

/// Object references in each kind: (kind, pattern of the reference objects).
const REFERENCES: &[(Kind, &str)] = &[
    (Kind::Gateway, "spec.listeners[*].tls.certificateRefs[*]"),
    (Kind::Gateway, "spec.listeners[*].allowedRoutes.kinds[*]"),
    (Kind::ReferenceGrant, "spec.from[*]"),
    (Kind::ReferenceGrant, "spec.to[*]"),
];

/// The same for the route kinds, which share their reference shapes.
const ROUTE_REFERENCES: &[&str] = &[
    "spec.parentRefs[*]",
    "spec.rules[*].backendRefs[*]",
    "spec.rules[*].filters[*].requestMirror.backendRef",
    "spec.rules[*].backendRefs[*].filters[*].requestMirror.backendRef",
];

/// A field of a reference, its format, and how to describe the format.
type FieldCheck = (&'static str, fn(&str) -> bool, &'static str);

pub static REFERENCE_FIELD_INVALID: Rule = Rule {
    code: "MESH0016",
    name: "ReferenceFieldInvalid",
    level: Level::Error,
    title: "A reference's namespace, kind or group is malformed",
    kinds: &[Kind::Gateway, Kind::HttpRoute, Kind::GrpcRoute, Kind::TlsRoute, Kind::ReferenceGrant],
    scope: Scope::Object,
    reason: None,
    doc: "In parentRefs, backendRefs, certificateRefs, allowedRoutes.kinds and ReferenceGrants, `namespace` is an RFC 1123 label (lower case, at most 63 characters), `kind` starts with a letter (`Service`, not `service.v1`), and `group` is empty for the core API or a DNS subdomain (`gateway.networking.k8s.io`, not `gateway.networking.k8s.io/v1`).",
    hint: "Write the namespace's name, the kind as in `kind:` of the object, and the API group without a version.",
    bad: fixture!("MESH0016", "bad"),
    good: fixture!("MESH0016", "good"),
    check: |o, _, r| {
        let kind = kind_of(o);
        let patterns: Vec<&str> = if ROUTES.contains(&kind) {
            ROUTE_REFERENCES.to_vec()
        } else {
            REFERENCES.iter().filter(|(k, _)| *k == kind).map(|(_, p)| *p).collect()
        };
        for pattern in patterns {
            each(&o.raw, pattern, &mut |path, v| {
                let checks: [FieldCheck; 3] = [
                    ("namespace", validate::namespace, "a lower-case RFC 1123 label"),
                    ("kind", validate::kind, "a kind name starting with a letter"),
                    ("group", validate::group, "empty (core) or an API group without version"),
                ];
                for (field, ok, what) in checks {
                    if let Some(x) = v.get(field).and_then(Value::as_str) {
                        if !ok(x) {
                            r.at(format!("{path}.{field}"), format!("{field} {x:?} is not {what}"));
                        }
                    }
                }
            });
        }
    },
};
