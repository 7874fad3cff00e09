//! Gateway API header filters: RequestHeaderModifier and ResponseHeaderModifier, applied in
//! order as the spec defines `set`, `add` and `remove`.

use hyper::header::{HeaderName, HeaderValue};
use mesh_model::route::Filter;

/// Apply a header modifier's set, add and remove to a header map, as the spec defines them:
/// `set` replaces, `add` appends to an existing value with a comma, `remove` deletes.
fn modify<'f>(
    headers: &mut hyper::HeaderMap,
    set: impl Iterator<Item = (&'f str, &'f str)>,
    add: impl Iterator<Item = (&'f str, &'f str)>,
    remove: &[String],
) {
    for (k, v) in set {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            headers.insert(k, v);
        }
    }
    for (k, v) in add {
        let Ok(k) = HeaderName::try_from(k) else {
            continue;
        };
        let value = match headers.get(&k).and_then(|old| old.to_str().ok()) {
            Some(old) => HeaderValue::try_from(format!("{old},{v}")),
            None => HeaderValue::try_from(v),
        };
        if let Ok(v) = value {
            headers.insert(k, v);
        }
    }
    for k in remove {
        headers.remove(k.as_str());
    }
}

/// The generated types repeat per modifier, so each caller lists its pairs.
macro_rules! pairs {
    ($list:expr) => {
        $list
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()))
    };
}

pub fn request_modifiers(filters: &[&Filter], headers: &mut hyper::HeaderMap) {
    for m in filters
        .iter()
        .filter_map(|f| f.request_header_modifier.as_ref())
    {
        let remove = m.remove.as_deref().unwrap_or(&[]);
        modify(headers, pairs!(m.set), pairs!(m.add), remove);
    }
}

pub fn response_modifiers(filters: &[&Filter], headers: &mut hyper::HeaderMap) {
    for m in filters
        .iter()
        .filter_map(|f| f.response_header_modifier.as_ref())
    {
        let remove = m.remove.as_deref().unwrap_or(&[]);
        modify(headers, pairs!(m.set), pairs!(m.add), remove);
    }
}
