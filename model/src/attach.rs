//! Route attachment: which listeners of a parent accept a route, and if none, why.
//!
//! This is the logic behind a route's `Accepted` condition (NoMatchingParent,
//! NotAllowedByListeners, NoMatchingListenerHostname). The analyze rules report it; the
//! compiler will use it to decide what the datapath serves, so the two cannot disagree.

use gateway_api::apis::experimental::gateways::{
    GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
    GatewayListenersAllowedRoutesNamespacesSelector as NamespaceSelector,
};

use crate::kind::{Kind, GATEWAY_GROUP};
use crate::object::Object;
use crate::resource::Resource;
use crate::route::{ParentRef, Route};
use crate::selector;
use crate::snapshot::Snapshot;

/// Why one listener does not take a route, in the order the spec checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// The parentRef's sectionName or port names another listener.
    NotSelected,
    /// The listener does not accept this route kind.
    Kind,
    /// `allowedRoutes.namespaces` leaves out the route's namespace.
    Namespace,
    /// No route hostname intersects the listener's.
    Hostname,
}

impl Rejection {
    /// The route's `Accepted=False` reason, as the spec names it.
    pub const fn reason(self) -> &'static str {
        match self {
            Rejection::NotSelected => "NoMatchingParent",
            Rejection::Kind | Rejection::Namespace => "NotAllowedByListeners",
            Rejection::Hostname => "NoMatchingListenerHostname",
        }
    }
}

#[derive(Debug)]
pub enum Parent<'a> {
    /// No such Gateway or Service (or an unknown parent kind).
    NotFound,
    /// The referent kind is not in the input at all: nothing can be said.
    Unknown,
    Service(&'a Object),
    /// A Gateway, or a ListenerSet (whose listeners a route names with `kind: ListenerSet`).
    Gateway {
        gateway: &'a Object,
        /// Its listeners.
        defs: &'a [GatewayListeners],
        /// Per listener: Ok when it accepts the route.
        listeners: Vec<Result<(), Rejection>>,
    },
}

impl Parent<'_> {
    /// The rejection that explains why no listener took the route: the furthest any listener
    /// got, since that is the one a person needs to fix. `None` if some listener accepts it,
    /// or the parent is not a Gateway.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Parent::Gateway { listeners, .. } => {
                if listeners.iter().any(Result::is_ok) {
                    return None;
                }
                listeners.iter().filter_map(|r| r.err()).max()
            }
            _ => None,
        }
    }
}

/// Whether the listener hands TLS connections to the backend unterminated (`tls.mode: Passthrough`).
pub fn is_passthrough(listener: &GatewayListeners) -> bool {
    listener
        .tls
        .as_ref()
        .and_then(|t| t.mode.as_ref())
        .is_some_and(|m| {
            matches!(
                m,
                gateway_api::apis::experimental::gateways::GatewayListenersTlsMode::Passthrough
            )
        })
}

/// The route kinds a listener accepts by default, from its protocol.
pub fn default_kinds(listener: &GatewayListeners) -> &'static [&'static str] {
    let passthrough = is_passthrough(listener);
    match listener.protocol.as_str() {
        "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
        "TLS" if passthrough => &["TLSRoute"],
        "TLS" => &["TLSRoute", "TCPRoute"],
        "TCP" => &["TCPRoute"],
        "UDP" => &["UDPRoute"],
        _ => &[],
    }
}

/// The route kinds a listener carries: those `allowedRoutes.kinds` lists that its protocol
/// can carry (in the listed order), else its protocol's defaults.
pub fn supported_kinds(listener: &GatewayListeners) -> Vec<&'static str> {
    let defaults = default_kinds(listener);
    match listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
    {
        Some(kinds) if !kinds.is_empty() => {
            let mut out: Vec<&'static str> = Vec::new();
            for k in kinds {
                let ours = k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP;
                if let Some(d) = defaults.iter().find(|d| ours && **d == k.kind) {
                    if !out.contains(d) {
                        out.push(d);
                    }
                }
            }
            out
        }
        _ => defaults.to_vec(),
    }
}

/// Whether the listener accepts routes of `kind`.
pub fn allows_kind(listener: &GatewayListeners, kind: Kind) -> bool {
    let name = kind.name();
    match listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
    {
        Some(kinds) if !kinds.is_empty() => kinds.iter().any(|k| {
            k.kind == name && k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
        }),
        _ => default_kinds(listener).contains(&name),
    }
}

/// Whether the listener of a Gateway in `gw_ns` accepts routes from `route_ns`. `None` when it
/// depends on Namespace labels the input does not have.
pub fn allows_namespace(
    listener: &GatewayListeners,
    gw_ns: &str,
    route_ns: &str,
    snap: &Snapshot,
) -> Option<bool> {
    let ns = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_ref()).unwrap_or(&From::Same) {
        From::Same => Some(gw_ns == route_ns),
        From::All => Some(true),
        From::Selector => selects(ns.and_then(|n| n.selector.as_ref()), route_ns, snap),
    }
}

/// Whether a namespace selector (of a listener's allowedRoutes, or a Gateway's
/// allowedListeners, which has the same fields) selects namespace `ns`; `None` when the input
/// does not have the Namespace. No selector selects nothing.
fn selects(sel: Option<&NamespaceSelector>, ns: &str, snap: &Snapshot) -> Option<bool> {
    let labels = snap.namespace_labels(ns)?;
    Some(sel.is_some_and(|s| {
        let exprs: Vec<selector::Expression> = s
            .match_expressions
            .iter()
            .flatten()
            .map(|e| selector::Expression {
                key: &e.key,
                operator: &e.operator,
                values: e.values.as_deref().unwrap_or(&[]),
            })
            .collect();
        selector::matches(s.match_labels.as_ref(), &exprs, &labels)
    }))
}

/// Resolve one parentRef of a route.
pub fn resolve<'a>(
    route_obj: &'a Object,
    route: &Route,
    parent: &ParentRef,
    snap: &'a Snapshot,
) -> Parent<'a> {
    let route_ns = route_obj.namespace.as_deref().unwrap_or("");
    if parent.is_service() {
        if !snap.has_kind(Kind::Service) {
            return Parent::Unknown;
        }
        return match snap.get(Kind::Service, Some(&parent.namespace), &parent.name) {
            Some(s) => Parent::Service(s),
            None => Parent::NotFound,
        };
    }
    let kind = match (parent.is_gateway(), parent.is_listener_set()) {
        (true, _) => Kind::Gateway,
        (_, true) => Kind::ListenerSet,
        _ => return Parent::NotFound,
    };
    if !snap.has_kind(kind) {
        return Parent::Unknown;
    }
    let Some(gateway) = snap.get(kind, Some(&parent.namespace), &parent.name) else {
        return Parent::NotFound;
    };
    let Some(defs) = gateway.resource.listeners() else {
        return Parent::Unknown;
    };
    // A ListenerSet's listeners admit routes by the ListenerSet's namespace (`Same`).
    let gw_ns = gateway.namespace.as_deref().unwrap_or("");
    let listeners = defs
        .iter()
        .map(|l| {
            let selected = parent.section_name.as_deref().is_none_or(|s| s == l.name)
                && parent.port.is_none_or(|p| p == l.port);
            if !selected {
                return Err(Rejection::NotSelected);
            }
            if !allows_kind(l, route.kind) {
                return Err(Rejection::Kind);
            }
            if allows_namespace(l, gw_ns, route_ns, snap) == Some(false) {
                return Err(Rejection::Namespace);
            }
            if !crate::hostname::route_intersects(l.hostname.as_deref(), &route.hostnames) {
                return Err(Rejection::Hostname);
            }
            Ok(())
        })
        .collect();
    Parent::Gateway {
        gateway,
        defs,
        listeners,
    }
}

/// The Gateway a ListenerSet names as its parent, when the input has it.
pub fn listener_set_gateway<'a>(set: &Object, snap: &'a Snapshot) -> Option<&'a Object> {
    let Resource::ListenerSet(spec, _) = &set.resource else {
        return None;
    };
    let p = &spec.parent_ref;
    let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let kind = p.kind.as_deref().unwrap_or("Gateway");
    if group != GATEWAY_GROUP || kind != "Gateway" {
        return None;
    }
    let ns = p
        .namespace
        .as_deref()
        .or(set.namespace.as_deref())
        .unwrap_or_default();
    snap.get(Kind::Gateway, Some(ns), &p.name)
}

/// Whether `gateway`'s `allowedListeners` lets a ListenerSet of `set_ns` attach (none by
/// default). `None` when it depends on Namespace labels the input does not have.
pub fn allows_listener_set(gateway: &Object, set_ns: &str, snap: &Snapshot) -> Option<bool> {
    use gateway_api::apis::experimental::gateways::GatewayAllowedListenersNamespacesFrom as SetFrom;
    let Resource::Gateway(spec) = &gateway.resource else {
        return Some(false);
    };
    let ns = spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_ref()) {
        None | Some(SetFrom::None) => Some(false),
        Some(SetFrom::Same) => Some(gateway.namespace.as_deref() == Some(set_ns)),
        Some(SetFrom::All) => Some(true),
        Some(SetFrom::Selector) => {
            let sel: Option<NamespaceSelector> = ns
                .and_then(|n| n.selector.as_ref())
                .and_then(crate::route::retype);
            selects(sel.as_ref(), set_ns, snap)
        }
    }
}

/// Every listener a Gateway serves, its own and those of the ListenerSets it accepts, in the
/// order conflicts are settled: the Gateway's first, then ListenerSets oldest first (by
/// creationTimestamp, then namespace/name, as GEP-1713 orders them).
pub fn merged_listeners<'a>(
    gateway: &'a Object,
    snap: &'a Snapshot,
) -> Vec<(&'a Object, usize, &'a GatewayListeners)> {
    let mut out: Vec<(&Object, usize, &GatewayListeners)> = gateway
        .resource
        .listeners()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, l)| (gateway, i, l))
        .collect();
    let key = (
        gateway.namespace.clone().unwrap_or_default(),
        gateway.name.clone(),
    );
    let objects = snap.objects();
    let mut sets: Vec<&Object> = snap
        .index()
        .listener_sets_by_gateway
        .get(&key)
        .into_iter()
        .flatten()
        .map(|&i| &objects[i])
        .filter(|set| {
            allows_listener_set(gateway, set.namespace.as_deref().unwrap_or(""), snap)
                != Some(false)
        })
        .collect();
    let created = |o: &Object| {
        o.raw
            .pointer("/metadata/creationTimestamp")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    // Objects without a creationTimestamp (files) are ordered by name alone.
    sets.sort_by_key(|o| (created(o), o.namespace.clone(), o.name.clone()));
    for set in sets {
        for (i, l) in set.resource.listeners().into_iter().flatten().enumerate() {
            out.push((set, i, l));
        }
    }
    out
}
