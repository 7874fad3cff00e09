//! Hostname matching as Gateway API defines it: `*.example.com` matches any name with at
//! least one more label in front of `example.com`, never `example.com` itself.

/// Whether the concrete or wildcard name `host` is covered by `pattern`.
pub fn matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix('*') {
        Some(suffix) => {
            h.len() > suffix.len() && h.ends_with(suffix) && !h[..h.len() - suffix.len()].is_empty()
        }
        None => p == h,
    }
}

/// Whether two hostnames (each possibly a wildcard) have a name in common. An absent hostname
/// (a listener or route without one) matches everything.
pub fn intersects(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) || matches(a, b) || matches(b, a),
    }
}

/// Whether any of a route's hostnames intersects the listener's (an empty list is all names).
pub fn route_intersects(listener: Option<&str>, route: &[String]) -> bool {
    route.is_empty() || route.iter().any(|h| intersects(listener, Some(h)))
}

/// Whether two routes' hostname lists share a name (an empty list is all names).
pub fn routes_intersect(a: &[String], b: &[String]) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.iter()
            .any(|x| b.iter().any(|y| intersects(Some(x), Some(y))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert!(matches("*.example.com", "test.example.com"));
        assert!(matches("*.example.com", "foo.test.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "test.example.net"));
        assert!(intersects(Some("test.example.com"), Some("*.example.com")));
        assert!(intersects(Some("*.example.com"), Some("*.foo.example.com")));
        assert!(!intersects(Some("a.example.com"), Some("b.example.com")));
        assert!(intersects(None, Some("x")));
        assert!(route_intersects(Some("x.io"), &[]));
    }
}
