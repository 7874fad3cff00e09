//! Gateway API's tie-break between routes that claim the same traffic: the oldest
//! creationTimestamp wins, then `namespace/name` in alphabetical order. Files rarely carry
//! timestamps; then the names decide. One definition for the analyze rules and the compiler.

use std::cmp::Ordering;

use crate::object::Object;

/// `Less` when `a` takes precedence over `b`.
pub fn precedence(a: &Object, b: &Object) -> Ordering {
    let by_time = match (a.creation_timestamp(), b.creation_timestamp()) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_time.then_with(|| (a.namespace.as_deref(), &a.name).cmp(&(b.namespace.as_deref(), &b.name)))
}
