//! What a route's filters do to a request's URL: URLRewrite (path and hostname) and the
//! Location of a RequestRedirect, as the Gateway API specifies them. The agent applies these
//! and `kubectl mesh explain` shows them, from this one place.

use super::matcher::PathMatch;
use super::RouteEntry;
use crate::route::Filter;

/// The path after a ReplacePrefixMatch: the matched prefix replaced, the rest kept, with the
/// spec's table of cases (`/foo/bar` with `/foo` → `/xyz` is `/xyz/bar`; `/foo` → `/` is `/`).
pub fn replace_prefix(path: &str, matched: &str, replacement: &str) -> String {
    let rest = if matched == "/" {
        path
    } else {
        path.get(matched.len()..).unwrap_or("")
    };
    let rest = rest.trim_start_matches('/');
    let base = replacement.trim_end_matches('/');
    match (base.is_empty(), rest.is_empty()) {
        (true, true) => "/".to_string(),
        (true, false) => format!("/{rest}"),
        (false, true) => {
            if path.ends_with('/') && path != matched.trim_end_matches('/') && replacement != "/" {
                format!("{base}/")
            } else {
                base.to_string()
            }
        }
        (false, false) => format!("{base}/{rest}"),
    }
}

/// The prefix a ReplacePrefixMatch replaces: the entry's PathPrefix (`/` for other matches).
fn matched_prefix(e: &RouteEntry) -> &str {
    match &e.matcher.path {
        PathMatch::Prefix(p) => p,
        _ => "/",
    }
}

/// The path and Host header the backend sees after the URLRewrite filters, in order: the new
/// path, and the new hostname if a filter sets one.
pub fn rewritten<'f>(
    entry: &RouteEntry,
    filters: impl IntoIterator<Item = &'f Filter>,
    path: &str,
) -> (String, Option<String>) {
    let mut new_path = path.to_string();
    let mut host = None;
    for rw in filters.into_iter().filter_map(|f| f.url_rewrite.as_ref()) {
        if let Some(h) = &rw.hostname {
            host = Some(h.clone());
        }
        if let Some(p) = &rw.path {
            new_path = match (&p.replace_full_path, &p.replace_prefix_match) {
                (Some(full), _) => full.clone(),
                (None, Some(prefix)) => replace_prefix(path, matched_prefix(entry), prefix),
                _ => new_path,
            };
        }
    }
    (new_path, host)
}

/// The status and Location of a RequestRedirect: scheme, host and port from the filter or the
/// request; the default port of the scheme is left out, as the spec says.
pub fn location(
    e: &RouteEntry,
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    query: Option<&str>,
) -> (u16, String) {
    let Some(r) = e.filters.iter().find_map(|f| f.request_redirect.as_ref()) else {
        return (302, path.to_string());
    };
    let scheme = r
        .scheme
        .as_ref()
        .map(|s| format!("{s:?}").to_ascii_lowercase())
        .unwrap_or_else(|| scheme.to_string());
    let host = r.hostname.clone().unwrap_or_else(|| host.to_string());
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => p as u16,
        (None, Some(_)) => {
            if scheme == "https" {
                443
            } else {
                80
            }
        }
        (None, None) => port,
    };
    let path = match r.path.as_ref() {
        Some(p) if p.replace_full_path.is_some() => p.replace_full_path.clone().unwrap_or_default(),
        Some(p) => replace_prefix(
            path,
            matched_prefix(e),
            p.replace_prefix_match.as_deref().unwrap_or("/"),
        ),
        None => path.to_string(),
    };
    let default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
    let authority = if default_port {
        host
    } else {
        format!("{host}:{port}")
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let code = r.status_code.unwrap_or(302) as u16;
    (code, format!("{scheme}://{authority}{path}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_prefix_follows_the_spec_table() {
        assert_eq!(replace_prefix("/foo/bar", "/foo", "/xyz"), "/xyz/bar");
        assert_eq!(replace_prefix("/foo", "/foo", "/xyz"), "/xyz");
        assert_eq!(replace_prefix("/foo/", "/foo", "/xyz"), "/xyz/");
        assert_eq!(replace_prefix("/foo/bar", "/foo", ""), "/bar");
        assert_eq!(replace_prefix("/foo", "/foo", "/"), "/");
        assert_eq!(replace_prefix("/prefix/one", "/prefix/one", "/one"), "/one");
        assert_eq!(
            replace_prefix("/prefix/one/two", "/prefix/one", "/one"),
            "/one/two"
        );
    }
}
