//! MESH12xx: ListenerSets, which add listeners to a Gateway that allows them.
//!
//! Their listeners are checked by the listener rules of `gateway.rs` (which read Gateways and
//! ListenerSets alike) and conflicts are settled in GEP-1713's order
//! ([`crate::attach::merged_listeners`]); here is what only a ListenerSet has: its parent.

use super::{fixture, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;

pub static RULES: &[&Rule] = &[&NOT_ALLOWED];

pub static NOT_ALLOWED: Rule = Rule {
    code: "MESH1201",
    name: "ListenerSetNotAllowed",
    level: Level::Error,
    title: "The parent Gateway does not allow ListenerSets from this namespace",
    kinds: &[Kind::ListenerSet],
    scope: Scope::Cluster,
    reason: Some("NotAllowed"),
    doc: "A Gateway takes listeners from ListenerSets only as its `spec.allowedListeners.namespaces.from` says: `None` (the default) takes none, `Same` those of its own namespace, `Selector` those of namespaces whose labels match, `All` any. A ListenerSet the Gateway does not allow gets Accepted=False and Programmed=False (NotAllowed), and none of its listeners is served.",
    hint: "Set the Gateway's spec.allowedListeners.namespaces.from (Same, Selector or All) to take this ListenerSet.",
    bad: fixture!("MESH1201", "bad"),
    good: fixture!("MESH1201", "good"),
    check: |o, s, r| {
        let Some(gateway) = crate::attach::listener_set_gateway(o, s) else { return };
        let ns = o.namespace.as_deref().unwrap_or("");
        if crate::attach::allows_listener_set(gateway, ns, s) == Some(false) {
            r.at("spec.parentRef", format!("{} does not allow ListenerSets from namespace {ns} (spec.allowedListeners)", gateway.reference()));
        }
    },
};
