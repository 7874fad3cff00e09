//! Field formats from the Gateway API and Kubernetes schemas, one function per format.

use std::sync::OnceLock;

use regex::Regex;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static pattern"))
}

/// Gateway API `Hostname`: RFC 1123 with an optional leading `*.` label, 1..253 characters.
pub fn hostname(h: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !h.is_empty()
        && h.len() <= 253
        && re(
            &R,
            r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        )
        .is_match(h)
}

/// Gateway API `PreciseHostname`: a hostname without a wildcard.
pub fn precise_hostname(h: &str) -> bool {
    !h.starts_with('*') && hostname(h)
}

/// Whether a string is an IPv4 or IPv6 address (hostnames may not be).
pub fn is_ip(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok()
}

/// Gateway API `HTTPHeaderName`: an RFC 7230 token of 1..256 characters.
pub fn header_name(h: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !h.is_empty() && h.len() <= 256 && re(&R, r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$").is_match(h)
}

/// RFC 1123 subdomain (object names, SectionName): lower-case, 1..253.
pub fn dns_subdomain(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !s.is_empty()
        && s.len() <= 253
        && re(
            &R,
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        )
        .is_match(s)
}

/// RFC 1035 label (Service names): starts with a letter, 1..63.
pub fn dns_label_1035(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !s.is_empty() && s.len() <= 63 && re(&R, r"^[a-z]([-a-z0-9]*[a-z0-9])?$").is_match(s)
}

/// Gateway API `Namespace`: an RFC 1123 label, 1..63.
pub fn namespace(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !s.is_empty() && s.len() <= 63 && re(&R, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").is_match(s)
}

/// Gateway API `Kind`: starts with a letter, 1..63.
pub fn kind(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    !s.is_empty() && s.len() <= 63 && re(&R, r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$").is_match(s)
}

/// Gateway API `Group`: empty (core) or a DNS subdomain.
pub fn group(s: &str) -> bool {
    s.is_empty() || dns_subdomain(s)
}

/// Gateway API `ProtocolType`: a standard name, or a domain-prefixed one (`example.com/proto`).
pub fn protocol(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 255
        && re(&R, r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]+$").is_match(s)
}

/// Why an Exact or PathPrefix path value would be rejected, following the CRD's CEL rules.
pub fn path_problem(value: &str) -> Option<String> {
    static CHARS: OnceLock<Regex> = OnceLock::new();
    if !value.starts_with('/') {
        return Some("must be an absolute path and start with '/'".into());
    }
    if value.len() > 1024 {
        return Some("must be at most 1024 characters".into());
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if value.contains(bad) {
            return Some(format!("must not contain '{bad}'"));
        }
    }
    for bad in ["/..", "/."] {
        if value.ends_with(bad) {
            return Some(format!("must not end with '{bad}'"));
        }
    }
    if !re(
        &CHARS,
        r"^(?:[A-Za-z0-9/\-._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$",
    )
    .is_match(value)
    {
        return Some(
            "must only contain valid characters (RFC 3986 pchar, '/' and %-escapes)".into(),
        );
    }
    None
}

/// A GEP-2257 duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`) in milliseconds.
pub fn duration_ms(s: &str) -> Option<u64> {
    static R: OnceLock<Regex> = OnceLock::new();
    static PART: OnceLock<Regex> = OnceLock::new();
    if !re(&R, r"^([0-9]{1,5}(h|m|s|ms)){1,4}$").is_match(s) {
        return None;
    }
    let mut total = 0u64;
    for cap in re(&PART, r"([0-9]{1,5})(ms|h|m|s)").captures_iter(s) {
        let n: u64 = cap[1].parse().ok()?;
        total += n * match &cap[2] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            _ => 1,
        };
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(hostname("*.example.com"));
        assert!(!hostname("Example.com"));
        assert!(!hostname("a.*.com"));
        assert!(precise_hostname("example.org"));
        assert!(!precise_hostname("*.example.org"));
        assert!(header_name("x-request-id"));
        assert!(!header_name("bad header"));
        assert_eq!(path_problem("/foo/bar"), None);
        assert!(path_problem("foo").is_some());
        assert!(path_problem("/a//b").is_some());
        assert!(path_problem("/a/..").is_some());
        assert!(path_problem("/a b").is_some());
        assert_eq!(duration_ms("10ms"), Some(10));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("1.5s"), None);
        assert_eq!(duration_ms("0s"), Some(0));
    }
}
