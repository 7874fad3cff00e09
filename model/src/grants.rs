//! ReferenceGrant: may an object in one namespace refer to an object in another?

use crate::resource::Resource;
use crate::snapshot::Snapshot;

/// The referring side.
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referent.
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether the reference is allowed: same namespace, or a ReferenceGrant in the referent's
/// namespace lists the referrer in `from` and the referent (by kind, optionally name) in `to`.
pub fn permitted(snap: &Snapshot, from: &From<'_>, to: &To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    let objects = snap.objects();
    snap.index()
        .grants_by_namespace
        .get(to.namespace)
        .into_iter()
        .flatten()
        .any(|&i| {
            let Resource::ReferenceGrant(g) = &objects[i].resource else {
                return false;
            };
            let from_ok = g.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            });
            let to_ok = g.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            });
            from_ok && to_ok
        })
}
