//! MESH10xx (CEL rules of Gateway and GatewayClass) and MESH11xx (what CEL cannot see:
//! listener conflicts and certificates).

use std::collections::HashMap;

use gateway_api::apis::experimental::gateways::{
    GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
    GatewaySpec,
};

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::grants;
use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;
use crate::snapshot::Snapshot;

pub static RULES: &[&Rule] = &[
    &LISTENER_NAME_DUPLICATE,
    &LISTENER_NOT_UNIQUE,
    &TLS_NOT_ALLOWED,
    &TLS_MODE_INVALID,
    &CERTIFICATE_REFS_REQUIRED,
    &HOSTNAME_NOT_ALLOWED,
    &SELECTOR_MISSING,
    &ADDRESS_INVALID,
    &ADDRESS_TYPE_UNSUPPORTED,
    &ROUTE_KIND_INVALID,
    &PASSTHROUGH_CERTIFICATES,
    &CONTROLLER_NAME_INVALID,
    &PROTOCOL_INVALID,
    &NO_VALID_LISTENER,
    &GATEWAY_CLASS_NOT_FOUND,
    &PARAMETERS_REF_INVALID,
    &PARAMETERS_KIND_UNSUPPORTED,
    &PROTOCOL_CONFLICT,
    &HOSTNAME_CONFLICT,
    &CERTIFICATE_NOT_FOUND,
    &CERTIFICATE_WRONG_TYPE,
    &CERTIFICATE_INVALID,
    &CERTIFICATE_NOT_PERMITTED,
    &CERTIFICATE_MISMATCH,
];

/// Rules that read certificate and key material. The webhook's cache never holds Secret data,
/// so it leaves these to `analyze` and the agent.
pub const NEEDS_SECRET_DATA: &[&str] = &["MESH1106", "MESH1108"];

fn spec(o: &Object) -> Option<&GatewaySpec> {
    match &o.resource {
        Resource::Gateway(s) => Some(s),
        _ => None,
    }
}

/// The kinds with listeners: Gateways, and ListenerSets that add listeners to one.
const LISTENER_HOSTS: &[Kind] = &[Kind::Gateway, Kind::ListenerSet];

/// Run `f` for every listener of a typed Gateway or ListenerSet.
fn listeners(o: &Object, mut f: impl FnMut(usize, &GatewayListeners)) {
    for (i, l) in o.resource.listeners().into_iter().flatten().enumerate() {
        f(i, l);
    }
}

fn tls_mode(l: &GatewayListeners) -> Option<&GatewayListenersTlsMode> {
    l.tls.as_ref().and_then(|t| t.mode.as_ref())
}

pub static LISTENER_NAME_DUPLICATE: Rule = Rule {
    code: "MESH1001",
    name: "ListenerNameDuplicate",
    level: Level::Error,
    title: "Two listeners of a Gateway have the same name",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"Listener name must be unique within the Gateway\". Routes select listeners by name (`sectionName`), so names must be unique.",
    hint: "Rename one of the listeners.",
    bad: fixture!("MESH1001", "bad"),
    good: fixture!("MESH1001", "good"),
    check: |o, _, r| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        listeners(o, |i, l| {
            if let Some(first) = seen.insert(l.name.clone(), i) {
                r.at(format!("spec.listeners[{i}].name"), format!("listener name {:?} is already used by spec.listeners[{first}]", l.name));
            }
        });
    },
};

pub static LISTENER_NOT_UNIQUE: Rule = Rule {
    code: "MESH1002",
    name: "ListenerNotUnique",
    level: Level::Error,
    title: "Two listeners have the same port, protocol and hostname",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"Combination of port, protocol and hostname must be unique for each listener\". Two such listeners could never be told apart.",
    hint: "Give one listener another hostname or port, or merge the two.",
    bad: fixture!("MESH1002", "bad"),
    good: fixture!("MESH1002", "good"),
    check: |o, _, r| {
        let mut seen: HashMap<(i32, String, String), usize> = HashMap::new();
        listeners(o, |i, l| {
            if let Some(first) = seen.insert((l.port, l.protocol.clone(), l.hostname.clone().unwrap_or_default()), i) {
                r.at(
                    format!("spec.listeners[{i}]"),
                    format!("port {}, protocol {} and hostname {:?} are the same as spec.listeners[{first}]", l.port, l.protocol, l.hostname.as_deref().unwrap_or("")),
                );
            }
        });
    },
};

pub static TLS_NOT_ALLOWED: Rule = Rule {
    code: "MESH1003",
    name: "TlsNotAllowed",
    level: Level::Error,
    title: "tls is set on an HTTP, TCP or UDP listener",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']\". To terminate TLS use protocol HTTPS (or TLS with mode Terminate).",
    hint: "Change the protocol to HTTPS (terminate) or TLS (passthrough), or remove tls.",
    bad: fixture!("MESH1003", "bad"),
    good: fixture!("MESH1003", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            if l.tls.is_some() && matches!(l.protocol.as_str(), "HTTP" | "TCP" | "UDP") {
                r.at(format!("spec.listeners[{i}].tls"), format!("tls must not be set for protocol {}", l.protocol));
            }
        });
    },
};

pub static TLS_MODE_INVALID: Rule = Rule {
    code: "MESH1004",
    name: "TlsModeInvalid",
    level: Level::Error,
    title: "HTTPS needs tls mode Terminate; TLS needs a tls mode",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"tls mode must be Terminate for protocol HTTPS\" and \"tls mode must be set for protocol TLS\". HTTPS always terminates at the Gateway; passthrough is protocol TLS with mode Passthrough and TLSRoutes.",
    hint: "For passthrough use protocol TLS with tls.mode Passthrough; for HTTPS leave mode unset (Terminate) and add certificateRefs.",
    bad: fixture!("MESH1004", "bad"),
    good: fixture!("MESH1004", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| match l.protocol.as_str() {
            "HTTPS" if matches!(tls_mode(l), Some(GatewayListenersTlsMode::Passthrough)) => {
                r.at(format!("spec.listeners[{i}].tls.mode"), "tls mode must be Terminate for protocol HTTPS");
            }
            "HTTPS" if l.tls.is_none() => r.at(format!("spec.listeners[{i}]"), "protocol HTTPS needs tls with certificateRefs"),
            "TLS" if l.tls.is_none() || tls_mode(l).is_none() => r.at(format!("spec.listeners[{i}]"), "tls mode must be set for protocol TLS"),
            _ => {}
        });
    },
};

pub static CERTIFICATE_REFS_REQUIRED: Rule = Rule {
    code: "MESH1005",
    name: "CertificateRefsRequired",
    level: Level::Error,
    title: "A Terminate listener has no certificate",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"certificateRefs or options must be specified when mode is Terminate\". Without a certificate the listener cannot complete a TLS handshake.",
    hint: "Add tls.certificateRefs naming a kubernetes.io/tls Secret.",
    bad: fixture!("MESH1005", "bad"),
    good: fixture!("MESH1005", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            let Some(tls) = &l.tls else { return };
            let terminate = !matches!(tls.mode, Some(GatewayListenersTlsMode::Passthrough));
            let empty = tls.certificate_refs.as_ref().is_none_or(Vec::is_empty) && tls.options.as_ref().is_none_or(|m| m.is_empty());
            if terminate && empty && l.protocol != "HTTP" {
                r.at(format!("spec.listeners[{i}].tls"), "certificateRefs or options must be specified when mode is Terminate");
            }
        });
    },
};

pub static HOSTNAME_NOT_ALLOWED: Rule = Rule {
    code: "MESH1006",
    name: "HostnameNotAllowed",
    level: Level::Error,
    title: "A TCP or UDP listener has a hostname",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"hostname must not be specified for protocols ['TCP', 'UDP']\": plain TCP and UDP carry no name to match.",
    hint: "Remove the hostname, or use protocol TLS to route by SNI.",
    bad: fixture!("MESH1006", "bad"),
    good: fixture!("MESH1006", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            if l.hostname.is_some() && matches!(l.protocol.as_str(), "TCP" | "UDP") {
                r.at(format!("spec.listeners[{i}].hostname"), format!("hostname must not be set for protocol {}", l.protocol));
            }
        });
    },
};

pub static SELECTOR_MISSING: Rule = Rule {
    code: "MESH1007",
    name: "NamespaceSelectorMissing",
    level: Level::Error,
    title: "allowedRoutes from Selector without a selector",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "With `namespaces.from: Selector`, only Namespaces matching `namespaces.selector` may attach routes. Without a selector no route from any namespace is accepted.",
    hint: "Add namespaces.selector.matchLabels (e.g. shared-gateway-access: \"true\"), or use from: All or Same.",
    bad: fixture!("MESH1007", "bad"),
    good: fixture!("MESH1007", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            let ns = l.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
            if let Some(ns) = ns {
                if matches!(ns.from, Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector)) && ns.selector.is_none() {
                    r.at(format!("spec.listeners[{i}].allowedRoutes.namespaces"), "from is Selector but no selector is set, so no namespace may attach routes");
                }
            }
        });
    },
};

pub static ADDRESS_INVALID: Rule = Rule {
    code: "MESH1008",
    name: "AddressInvalid",
    level: Level::Error,
    title: "A Gateway address is not a valid IP or hostname, or is repeated",
    kinds: &[Kind::Gateway],
    scope: Scope::Object,
    reason: Some("UnsupportedAddress"),
    doc: "`spec.addresses` of type IPAddress must parse as an IPv4 or IPv6 address, of type Hostname must be a DNS name, and values must be unique. The CRD checks only uniqueness and the hostname pattern (the old webhook also parsed IPs); a bad IP leaves the Gateway unprogrammed.",
    hint: "Write a plain IP such as 192.0.2.10 (no port, no CIDR).",
    bad: fixture!("MESH1008", "bad"),
    good: fixture!("MESH1008", "good"),
    check: |o, _, r| {
        let Some(s) = spec(o) else { return };
        let mut seen = HashMap::new();
        for (i, a) in s.addresses.iter().flatten().enumerate() {
            let Some(v) = &a.value else { continue };
            let t = a.r#type.as_deref().unwrap_or("IPAddress");
            let field = format!("spec.addresses[{i}].value");
            match t {
                "IPAddress" if v.parse::<std::net::IpAddr>().is_err() => r.at(field.clone(), format!("{v:?} is not an IP address")),
                "Hostname" if !crate::validate::hostname(v) => r.at(field.clone(), format!("{v:?} is not a valid hostname")),
                _ => {}
            }
            if let Some(first) = seen.insert((t.to_string(), v.clone()), i) {
                r.at(field, format!("address {v:?} is repeated (spec.addresses[{first}])"));
            }
        }
    },
};

pub static ADDRESS_TYPE_UNSUPPORTED: Rule = Rule {
    code: "MESH1131",
    name: "AddressTypeUnsupported",
    level: Level::Warning,
    title: "mesh-agent cannot give a Gateway an address of this type",
    kinds: &[Kind::Gateway],
    scope: Scope::Object,
    reason: Some("UnsupportedAddress"),
    doc: "`spec.addresses` asks for the addresses a Gateway gets. mesh-agent binds IP addresses (type IPAddress, the default): it listens on the first one it can bind. A Hostname or an implementation-specific type (`example.com/pool`) is one it cannot honour, so the Gateway gets Accepted=False (UnsupportedAddress) from it, as the spec asks; another implementation may support the type, hence a warning.",
    hint: "Use type IPAddress with an address of the node, or leave spec.addresses out to take one from --gateway-address-pool.",
    bad: fixture!("MESH1131", "bad"),
    good: fixture!("MESH1131", "good"),
    check: |o, _, r| {
        let Some(s) = spec(o) else { return };
        for (i, a) in s.addresses.iter().flatten().enumerate() {
            let t = a.r#type.as_deref().unwrap_or("IPAddress");
            if t != "IPAddress" {
                r.at(format!("spec.addresses[{i}].type"), format!("mesh-agent binds IP addresses, not addresses of type {t}"));
            }
        }
    },
};

pub static ROUTE_KIND_INVALID: Rule = Rule {
    code: "MESH1009",
    name: "ListenerRouteKindInvalid",
    level: Level::Error,
    title: "allowedRoutes.kinds names a kind the listener's protocol cannot carry",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: Some("InvalidRouteKinds"),
    doc: "HTTP and HTTPS listeners carry HTTPRoute and GRPCRoute; TLS passthrough listeners carry TLSRoute; TCP carries TCPRoute; UDP carries UDPRoute. A listener that lists only kinds its protocol cannot carry accepts no route at all (ResolvedRefs=False, InvalidRouteKinds).",
    hint: "List route kinds that match the protocol, or change the protocol.",
    bad: fixture!("MESH1009", "bad"),
    good: fixture!("MESH1009", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            let supported = crate::attach::default_kinds(l);
            for (k, kind) in l.allowed_routes.iter().flat_map(|a| a.kinds.iter().flatten()).enumerate() {
                let group_ok = kind.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP;
                if !group_ok || !supported.contains(&kind.kind.as_str()) {
                    r.at(
                        format!("spec.listeners[{i}].allowedRoutes.kinds[{k}]"),
                        format!("a {} listener cannot carry {}; it carries {}", l.protocol, kind.kind, supported.join(", ")),
                    );
                }
            }
        });
    },
};

pub static PASSTHROUGH_CERTIFICATES: Rule = Rule {
    code: "MESH1010",
    name: "PassthroughCertificatesIgnored",
    level: Level::Warning,
    title: "A passthrough listener has certificateRefs",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: None,
    doc: "With tls.mode Passthrough the Gateway does not terminate TLS: the backend presents its own certificate and certificateRefs are ignored. Usually the author wanted termination (protocol HTTPS).",
    hint: "Remove certificateRefs, or terminate with protocol HTTPS and HTTPRoutes.",
    bad: fixture!("MESH1010", "bad"),
    good: fixture!("MESH1010", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            let refs = l.tls.as_ref().and_then(|t| t.certificate_refs.as_ref()).is_some_and(|c| !c.is_empty());
            if refs && matches!(tls_mode(l), Some(GatewayListenersTlsMode::Passthrough)) {
                r.at(format!("spec.listeners[{i}].tls.certificateRefs"), "certificateRefs are ignored with mode Passthrough");
            }
        });
    },
};

pub static CONTROLLER_NAME_INVALID: Rule = Rule {
    code: "MESH1011",
    name: "ControllerNameInvalid",
    level: Level::Error,
    title: "GatewayClass controllerName is not a domain-prefixed path",
    kinds: &[Kind::GatewayClass],
    scope: Scope::Object,
    reason: None,
    doc: "controllerName must look like `example.net/gateway-controller`: a domain, a slash and a path. No controller will ever claim a class with another form.",
    hint: "Use the controller name your implementation documents, e.g. io.cilium/gateway-controller.",
    bad: fixture!("MESH1011", "bad"),
    good: fixture!("MESH1011", "good"),
    check: |o, _, r| {
        let Resource::GatewayClass(s) = &o.resource else { return };
        let n = &s.controller_name;
        let ok = n.split_once('/').is_some_and(|(d, p)| crate::validate::dns_subdomain(d) && !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=:/".contains(c)));
        if !ok || n.len() > 253 {
            r.at("spec.controllerName", format!("{n:?} is not of the form domain/path"));
        }
    },
};

pub static GATEWAY_CLASS_NOT_FOUND: Rule = Rule {
    code: "MESH1101",
    name: "GatewayClassNotFound",
    level: Level::Error,
    title: "The Gateway's class does not exist",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: None,
    doc: "A Gateway whose gatewayClassName names no GatewayClass is never picked up by a controller: it gets no address and no status. Checked only when the input contains GatewayClasses.",
    hint: "Use the name of an installed GatewayClass (`kubectl get gatewayclass`).",
    bad: fixture!("MESH1101", "bad"),
    good: fixture!("MESH1101", "good"),
    check: |o, s, r| {
        let Some(spec) = spec(o) else { return };
        if s.has_kind(Kind::GatewayClass) && s.get(Kind::GatewayClass, None, &spec.gateway_class_name).is_none() {
            let known: Vec<String> = s.of_kind(Kind::GatewayClass).map(|c| c.name.clone()).collect();
            let hint = if known.is_empty() {
                "No GatewayClass exists: install your controller's (kubectl get gatewayclass lists them).".to_string()
            } else {
                format!("Known classes: {}.", known.join(", "))
            };
            r.at_hint("spec.gatewayClassName", format!("GatewayClass {:?} not found", spec.gateway_class_name), hint);
        }
    },
};

/// Listeners sharing a port must agree on how to read the first bytes: HTTP, TLS (HTTPS and
/// TLS share SNI), TCP; UDP has its own port space.
fn protocol_family(p: &str) -> &str {
    match p {
        "HTTPS" | "TLS" => "TLS",
        other => other,
    }
}

pub static PARAMETERS_REF_INVALID: Rule = Rule {
    code: "MESH1130",
    name: "InfrastructureParametersInvalid",
    level: Level::Error,
    title: "spec.infrastructure.parametersRef names an object that does not exist",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("InvalidParameters"),
    doc: "`spec.infrastructure.parametersRef` points at implementation-specific settings in the Gateway's namespace. When the object does not exist the Gateway is not accepted (Accepted=False, InvalidParameters). Checked when the input holds objects of the referenced kind (a ConfigMap, or an implementation's own kind); a kind the input has none of cannot be checked here.",
    hint: "Create the referenced object in the Gateway's namespace, or fix group, kind and name.",
    bad: fixture!("MESH1130", "bad"),
    good: fixture!("MESH1130", "good"),
    check: |o, s, r| {
        let Some(p) = spec(o).and_then(|g| g.infrastructure.as_ref()).and_then(|i| i.parameters_ref.as_ref()) else { return };
        let ns = o.namespace.as_deref().unwrap_or_default();
        let missing = match Kind::lookup(&p.group, &p.kind) {
            // A kind the model knows (a ConfigMap): the input (or the cluster) has all of them.
            Some(kind) => s.has_kind(kind) && s.get(kind, Some(ns), &p.name).is_none(),
            // An implementation's own kind: judged only when the input has some of that kind.
            None => {
                let group_of = |x: &Object| x.api_version.rsplit_once('/').map_or("", |(g, _)| g).to_string();
                let of_kind: Vec<&Object> = s.objects().iter().filter(|x| x.kind == p.kind && group_of(x) == p.group).collect();
                !of_kind.is_empty() && !of_kind.iter().any(|x| x.name == p.name && x.namespace.as_deref() == Some(ns))
            }
        };
        if missing {
            r.at("spec.infrastructure.parametersRef", format!("{} {ns}/{} does not exist", p.kind, p.name));
        }
    },
};

pub static NO_VALID_LISTENER: Rule = Rule {
    code: "MESH1013",
    name: "NoValidListener",
    level: Level::Error,
    title: "No listener of the Gateway (or ListenerSet) is valid",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("ListenersNotValid"),
    doc: "When every listener has an error that keeps it from being accepted (an unsupported protocol, a conflict, a bad certificate reference), the Gateway itself is not accepted: Accepted=False with ListenersNotValid, and nothing is served. With some listeners valid the Gateway is accepted and only those listeners are down. The same holds for a ListenerSet. Errors found in certificate contents (MESH1106) are not counted here: the webhook never holds Secret data, and this finding must be the same wherever it is computed.",
    hint: "Fix the listener errors reported on this Gateway.",
    bad: fixture!("MESH1013", "bad"),
    good: fixture!("MESH1013", "good"),
    check: |o, s, r| {
        let Some(all) = o.resource.listeners() else { return };
        if all.is_empty() {
            return;
        }
        // The listener errors of the other listener rules that set a status reason, by listener;
        // not those that read certificate bytes, which the agent's and the webhook's slim
        // objects no longer hold (the finding must not depend on where it is computed).
        let findings = super::check_object_where(o, s, |rule| {
            rule.code != NO_VALID_LISTENER.code && rule.level == Level::Error && rule.reason.is_some() && rule.kinds == LISTENER_HOSTS && !NEEDS_SECRET_DATA.contains(&rule.code)
        });
        // A listener is out when an error is on it, except an unsupported route kind while it
        // still lists a kind it can carry.
        let invalid = |i: usize| {
            let at = format!("spec.listeners[{i}]");
            let on = |d: &&crate::Diagnostic| d.field == at || d.field.starts_with(&format!("{at}."));
            let kinds = all[i].allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()).map_or(0, Vec::len);
            let bad_kinds = findings.iter().filter(on).filter(|d| d.reason == ROUTE_KIND_INVALID.reason).count();
            findings.iter().filter(on).any(|d| d.reason != ROUTE_KIND_INVALID.reason) || (kinds > 0 && bad_kinds >= kinds)
        };
        if (0..all.len()).all(invalid) {
            r.at("spec.listeners", format!("none of the {} listeners is valid, so the {} serves nothing", all.len(), o.kind));
        }
    },
};

pub static PARAMETERS_KIND_UNSUPPORTED: Rule = Rule {
    code: "MESH1132",
    name: "InfrastructureParametersUnsupported",
    level: Level::Warning,
    title: "spec.infrastructure.parametersRef names a kind mesh-agent does not read",
    kinds: &[Kind::Gateway],
    scope: Scope::Cluster,
    reason: Some("InvalidParameters"),
    doc: "An implementation that does not support the kind `parametersRef` names must not accept the Gateway (Accepted=False, InvalidParameters), as the spec says. mesh-agent reads none but ConfigMaps, so a Gateway naming another kind is not served by it; the implementation that owns the kind may accept it, hence a warning. (When the input holds objects of that kind, MESH1130 checks the reference exists.)",
    hint: "For mesh-agent leave spec.infrastructure.parametersRef out (or name a ConfigMap); keep it for the implementation whose kind it is.",
    bad: fixture!("MESH1132", "bad"),
    good: fixture!("MESH1132", "good"),
    check: |o, _, r| {
        let Some(p) = spec(o).and_then(|g| g.infrastructure.as_ref()).and_then(|i| i.parameters_ref.as_ref()) else { return };
        if Kind::lookup(&p.group, &p.kind) != Some(Kind::ConfigMap) {
            r.at("spec.infrastructure.parametersRef", format!("mesh-agent does not read {} (group {:?}) parameters", p.kind, p.group));
        }
    },
};

pub static PROTOCOL_CONFLICT: Rule = Rule {
    code: "MESH1102",
    name: "ListenerProtocolConflict",
    level: Level::Error,
    title: "Listeners on one port have conflicting protocols",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("ProtocolConflict"),
    doc: "Listeners sharing a port must be told apart by hostname, which only works within one protocol family: HTTP alone, or HTTPS and TLS together (by SNI). HTTP next to HTTPS on one port, or TCP next to anything, conflicts; the controller marks them Conflicted and does not program the port.",
    hint: "Move one listener to another port (HTTP on 80, HTTPS on 443).",
    bad: fixture!("MESH1102", "bad"),
    good: fixture!("MESH1102", "good"),
    check: |o, s, r| {
        let Some(own) = o.resource.listeners() else { return };
        if let Some(settled) = precedence(o, s) {
            for (i, c) in settled.iter().enumerate() {
                if let Some((Conflict::Protocol, owner, j, other)) = c {
                    let l = &own[i];
                    r.at(format!("spec.listeners[{i}].protocol"), format!("{} on port {} conflicts with {} of {} spec.listeners[{j}], which takes precedence", l.protocol, l.port, other.protocol, owner.reference()));
                }
            }
            return;
        }
        for (i, l) in own.iter().enumerate() {
            let field = format!("spec.listeners[{i}].protocol");
            if let Some((j, other)) = own.iter().enumerate().find(|(j, m)| *j != i && protocol_conflict(l, m)) {
                r.at(field, format!("{} on port {} conflicts with {} of spec.listeners[{j}]", l.protocol, l.port, other.protocol));
            }
        }
    },
};

/// Two listeners on one port that cannot share it: protocols of different families (HTTP and
/// HTTPS, TCP and anything), UDP apart.
fn protocol_conflict(l: &GatewayListeners, m: &GatewayListeners) -> bool {
    let udp = |p: &str| p == "UDP";
    m.port == l.port
        && udp(&m.protocol) == udp(&l.protocol)
        && protocol_family(&m.protocol) != protocol_family(&l.protocol)
}

/// Two listeners of one family on one port with the same hostname (none counts as one).
fn hostname_conflict(l: &GatewayListeners, m: &GatewayListeners) -> bool {
    m.port == l.port
        && protocol_family(&m.protocol) == protocol_family(&l.protocol)
        && m.hostname
            .as_deref()
            .unwrap_or("")
            .eq_ignore_ascii_case(l.hostname.as_deref().unwrap_or(""))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conflict {
    Protocol,
    Hostname,
}

/// A listener of a ListenerSet and the listener that takes precedence over it and it
/// conflicts with.
type Settled<'a> = Option<(Conflict, &'a Object, usize, &'a GatewayListeners)>;

/// How `l` fares against the listeners accepted before it: the first it has a protocol
/// conflict with, else the first it has a hostname conflict with, else none.
fn settle<'a>(
    accepted: &[(&'a Object, usize, &'a GatewayListeners)],
    l: &GatewayListeners,
) -> Settled<'a> {
    let against = |f: fn(&GatewayListeners, &GatewayListeners) -> bool| {
        accepted.iter().find(|(_, _, m)| f(l, m)).copied()
    };
    against(protocol_conflict)
        .map(|(a, b, c)| (Conflict::Protocol, a, b, c))
        .or_else(|| against(hostname_conflict).map(|(a, b, c)| (Conflict::Hostname, a, b, c)))
}

/// For a ListenerSet its Gateway accepts, how each of its listeners fares against those that
/// take precedence (GEP-1713): the Gateway's listeners, then the listeners of ListenerSets
/// before it and its own before it ([`crate::attach::merged_listeners`]), each conflicting
/// only with earlier listeners that were themselves accepted, so a listener rejected for a
/// conflict does not take its port from the ones after it. `None` for a Gateway (whose own
/// listeners conflict with each other, none first) and for a ListenerSet not (known to be)
/// accepted.
fn precedence<'a>(o: &'a Object, s: &'a Snapshot) -> Option<Vec<Settled<'a>>> {
    let gateway = (o.known == Some(Kind::ListenerSet))
        .then(|| crate::attach::listener_set_gateway(o, s))
        .flatten()?;
    let merged = crate::attach::merged_listeners(gateway, s);
    // By identity, not address: a review checks its own copy of the incoming object, whose
    // listeners are read from it, not from the snapshot's.
    let same = |x: &Object| x.kind == o.kind && x.namespace == o.namespace && x.name == o.name;
    let first = merged.iter().position(|(owner, _, _)| same(owner))?;
    let own = o.resource.listeners()?;
    let mut accepted: Vec<(&Object, usize, &GatewayListeners)> = Vec::new();
    for (i, &(owner, j, l)) in merged[..first].iter().enumerate() {
        let conflicted = if std::ptr::eq(owner, gateway) {
            // The Gateway's own, as the rules find them for the Gateway: every party to a
            // protocol conflict, the later of a hostname conflict.
            merged.iter().enumerate().any(|(k, &(other, _, m))| {
                k != i
                    && std::ptr::eq(other, gateway)
                    && (protocol_conflict(l, m)
                        || (k < i && m.protocol != l.protocol && hostname_conflict(l, m)))
            })
        } else {
            settle(&accepted, l).is_some()
        };
        if !conflicted {
            accepted.push((owner, j, l));
        }
    }
    let mut out = Vec::with_capacity(own.len());
    for (j, l) in own.iter().enumerate() {
        let settled = settle(&accepted, l);
        if settled.is_none() {
            accepted.push((o, j, l));
        }
        out.push(settled);
    }
    Some(out)
}

pub static HOSTNAME_CONFLICT: Rule = Rule {
    code: "MESH1103",
    name: "ListenerHostnameConflict",
    level: Level::Error,
    title: "Listeners on one port use the same hostname",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("HostnameConflict"),
    doc: "Two listeners of one protocol family on the same port with the same hostname (an HTTPS and a TLS listener for `example.com` on 443, or two without hostname) cannot be told apart. The listeners are marked Conflicted.",
    hint: "Give each listener on the port a distinct hostname.",
    bad: fixture!("MESH1103", "bad"),
    good: fixture!("MESH1103", "good"),
    check: |o, s, r| {
        let Some(own) = o.resource.listeners() else { return };
        if let Some(settled) = precedence(o, s) {
            for (i, c) in settled.iter().enumerate() {
                if let Some((Conflict::Hostname, owner, j, _)) = c {
                    let l = &own[i];
                    let host = l.hostname.as_deref().unwrap_or("");
                    r.at(format!("spec.listeners[{i}].hostname"), format!("hostname {host:?} on port {} is also used by {} spec.listeners[{j}], which takes precedence", l.port, owner.reference()));
                }
            }
            return;
        }
        for (i, l) in own.iter().enumerate() {
            let host = l.hostname.as_deref().unwrap_or("");
            let field = format!("spec.listeners[{i}].hostname");
            // Within one object the CRD already refuses two of one protocol; across objects
            // (a ListenerSet and its Gateway) the same protocol conflicts too.
            if let Some((j, _)) = own.iter().enumerate().take(i).find(|(_, m)| m.protocol != l.protocol && hostname_conflict(l, m)) {
                r.at(field, format!("hostname {host:?} on port {} is also used by spec.listeners[{j}]", l.port));
            }
        }
    },
};

/// Each certificateRef of a listener, resolved: (field, namespace, name, Secret if found).
fn certificate_refs<'a>(
    o: &'a Object,
    snap: &'a Snapshot,
    mut f: impl FnMut(String, &GatewayListeners, String, &str, Option<&'a Object>, bool),
) {
    let gw_ns = o.namespace.clone().unwrap_or_default();
    listeners(o, |i, l| {
        for (j, c) in l
            .tls
            .iter()
            .flat_map(|t| t.certificate_refs.iter().flatten())
            .enumerate()
        {
            let secret_kind = c.group.as_deref().unwrap_or("").is_empty()
                && c.kind.as_deref().unwrap_or("Secret") == "Secret";
            let ns = c.namespace.clone().unwrap_or_else(|| gw_ns.clone());
            let secret = snap.get(Kind::Secret, Some(&ns), &c.name);
            f(
                format!("spec.listeners[{i}].tls.certificateRefs[{j}]"),
                l,
                ns,
                &c.name,
                secret,
                secret_kind,
            );
        }
    });
}

pub static CERTIFICATE_NOT_FOUND: Rule = Rule {
    code: "MESH1104",
    name: "CertificateNotFound",
    level: Level::Error,
    title: "A listener's certificate Secret does not exist",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("InvalidCertificateRef"),
    doc: "The listener's ResolvedRefs becomes False (InvalidCertificateRef) and HTTPS on it fails the handshake. Checked when the input contains Secrets.",
    hint: "Create the Secret (kubectl create secret tls NAME --cert=... --key=...) or fix the reference.",
    bad: fixture!("MESH1104", "bad"),
    good: fixture!("MESH1104", "good"),
    check: |o, s, r| {
        if !s.has_kind(Kind::Secret) {
            return;
        }
        certificate_refs(o, s, |field, _, ns, name, secret, is_secret| {
            if is_secret && secret.is_none() {
                r.at(field, format!("Secret {ns}/{name} not found"));
            }
        });
    },
};

pub static CERTIFICATE_WRONG_TYPE: Rule = Rule {
    code: "MESH1105",
    name: "CertificateWrongType",
    level: Level::Error,
    title: "A certificate Secret is not of type kubernetes.io/tls",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("InvalidCertificateRef"),
    doc: "Gateway implementations read `tls.crt` and `tls.key` from Secrets of type `kubernetes.io/tls` only; an Opaque Secret with the same keys is refused (InvalidCertificateRef). Certificate refs to kinds other than core Secret are not supported.",
    hint: "Recreate it with `kubectl create secret tls` (type kubernetes.io/tls).",
    bad: fixture!("MESH1105", "bad"),
    good: fixture!("MESH1105", "good"),
    check: |o, s, r| {
        certificate_refs(o, s, |field, _, ns, name, secret, is_secret| {
            if !is_secret {
                r.at(field, "certificateRefs must point at core Secrets (group \"\", kind Secret)");
                return;
            }
            if let Some(Object { resource: Resource::Secret(sec), .. }) = secret {
                let t = sec.type_.as_deref().unwrap_or("Opaque");
                if t != "kubernetes.io/tls" {
                    r.at(field, format!("Secret {ns}/{name} has type {t}, not kubernetes.io/tls"));
                }
            }
        });
    },
};

pub static CERTIFICATE_INVALID: Rule = Rule {
    code: "MESH1106",
    name: "CertificateInvalid",
    level: Level::Error,
    title: "A certificate Secret does not hold a parseable certificate and key",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("InvalidCertificateRef"),
    doc: "tls.crt must hold a PEM X.509 certificate and tls.key a PEM private key; otherwise the proxy rejects the listener's TLS context (Envoy NACKs the listener, and in Cilium that stops all later updates).",
    hint: "Regenerate the Secret from the PEM files (kubectl create secret tls NAME --cert=tls.crt --key=tls.key).",
    bad: fixture!("MESH1106", "bad"),
    good: fixture!("MESH1106", "good"),
    check: |o, s, r| {
        certificate_refs(o, s, |field, _, ns, name, secret, _| {
            if let Some(Object { resource: Resource::Secret(sec), .. }) = secret {
                if sec.type_.as_deref() == Some("kubernetes.io/tls") {
                    if let Err(e) = crate::cert::read(sec) {
                        r.at(field, format!("Secret {ns}/{name} {e}"));
                    }
                }
            }
        });
    },
};

pub static CERTIFICATE_NOT_PERMITTED: Rule = Rule {
    code: "MESH1107",
    name: "CertificateRefNotPermitted",
    level: Level::Error,
    title: "A certificate in another namespace without a ReferenceGrant",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: Some("RefNotPermitted"),
    doc: "A Gateway may use a Secret of another namespace only if a ReferenceGrant in the Secret's namespace allows Gateways from the Gateway's namespace. Without one the listener's ResolvedRefs is False (RefNotPermitted).",
    hint: "Add a ReferenceGrant in the Secret's namespace: from {group: gateway.networking.k8s.io, kind: Gateway, namespace: <gateway ns>}, to {group: \"\", kind: Secret}.",
    bad: fixture!("MESH1107", "bad"),
    good: fixture!("MESH1107", "good"),
    check: |o, s, r| {
        let gw_ns = o.namespace.clone().unwrap_or_default();
        certificate_refs(o, s, |field, _, ns, name, _, is_secret| {
            let from = grants::From { group: GATEWAY_GROUP, kind: &o.kind, namespace: &gw_ns };
            let to = grants::To { group: "", kind: "Secret", namespace: &ns, name };
            if is_secret && !grants::permitted(s, &from, &to) {
                r.at(field, format!("no ReferenceGrant in namespace {ns} lets Gateways in {gw_ns} use Secret {name}"));
            }
        });
    },
};

/// Seconds since the epoch, for certificate expiry.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub static CERTIFICATE_MISMATCH: Rule = Rule {
    code: "MESH1108",
    name: "CertificateNotUsable",
    level: Level::Warning,
    title: "A listener's certificate is expired or does not cover its hostname",
    kinds: LISTENER_HOSTS,
    scope: Scope::Cluster,
    reason: None,
    doc: "Clients reject a certificate that has expired, is not yet valid, or whose names do not cover the listener hostname (`*.cilium.rocks` covers `bookinfo.cilium.rocks`, not `cilium.rocks`).",
    hint: "Issue a certificate for the listener's hostname (cert-manager renews it before expiry).",
    bad: fixture!("MESH1108", "bad"),
    good: fixture!("MESH1108", "good"),
    check: |o, s, r| {
        certificate_refs(o, s, |field, l, ns, name, secret, _| {
            let Some(Object { resource: Resource::Secret(sec), .. }) = secret else { return };
            let Ok(m) = crate::cert::read(sec) else { return };
            let t = now();
            if m.not_after < t {
                r.at(field.clone(), format!("the certificate in Secret {ns}/{name} expired"));
            } else if m.not_before > t {
                r.at(field.clone(), format!("the certificate in Secret {ns}/{name} is not valid yet"));
            }
            if let Some(h) = &l.hostname {
                if !m.names.iter().any(|n| n.eq_ignore_ascii_case(h) || crate::hostname::matches(n, h)) {
                    r.at(field, format!("the certificate in Secret {ns}/{name} covers {} but not {h}", m.names.join(", ")));
                }
            }
        });
    },
};

pub static PROTOCOL_INVALID: Rule = Rule {
    code: "MESH1012",
    name: "ListenerProtocolInvalid",
    level: Level::Error,
    title: "A listener protocol is not a valid protocol name",
    kinds: LISTENER_HOSTS,
    scope: Scope::Object,
    reason: Some("UnsupportedProtocol"),
    doc: "Listener protocols are HTTP, HTTPS, TLS, TCP or UDP, or an implementation-specific name with a domain prefix (`example.com/quic`). Protocols are case-sensitive: `http` or `Https` are rejected by the CRD pattern or left unsupported.",
    hint: "Use HTTP, HTTPS, TLS, TCP or UDP, in upper case.",
    bad: fixture!("MESH1012", "bad"),
    good: fixture!("MESH1012", "good"),
    check: |o, _, r| {
        listeners(o, |i, l| {
            let standard = ["HTTP", "HTTPS", "TLS", "TCP", "UDP"];
            if !crate::validate::protocol(&l.protocol) {
                r.at(format!("spec.listeners[{i}].protocol"), format!("{:?} is not a valid protocol name", l.protocol));
            } else if !l.protocol.contains('/') && !standard.contains(&l.protocol.as_str()) {
                let upper = l.protocol.to_ascii_uppercase();
                let hint = if standard.contains(&upper.as_str()) { format!("Protocols are case-sensitive: write {upper}.") } else { "Use HTTP, HTTPS, TLS, TCP or UDP, or a domain-prefixed name.".into() };
                r.at_hint(format!("spec.listeners[{i}].protocol"), format!("{:?} is not a standard protocol and has no domain prefix", l.protocol), hint);
            }
        });
    },
};
