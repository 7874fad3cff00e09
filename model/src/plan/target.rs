//! What a request targets, read the one way every face reads it: the authority (host and
//! port) and the path as routing sees it.
//!
//! The proxy routes by these, `explain` explains by them and the Envoy rendering is checked
//! against them, so the rules live here once: RFC 9112's choice between an absolute-form
//! target and the Host header, RFC 3986's dot-segment removal (what Envoy's `normalize_path`
//! does), and how a mesh destination names a Service port.

use std::borrow::Cow;

/// Why a request's authority or path cannot be routed: the proxy answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTarget {
    #[error("no Host header")]
    NoHost,
    #[error("more than one Host header")]
    TwoHosts,
    #[error("the Host header is empty")]
    EmptyHost,
    #[error("the Host header is not a valid host[:port]")]
    InvalidHost,
    #[error("the path does not start with '/'")]
    RelativePath,
    #[error("the path holds an invalid percent-encoding")]
    BadPercent,
}

/// A request's authority: host (lower-cased, IPv6 in brackets) and the port if written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: String,
    pub port: Option<u16>,
}

impl Authority {
    /// Parse `host[:port]` as a Host header or URI authority carries it. Userinfo (`a@b`),
    /// an empty host, a bad port and characters no host has are refused: a backend must never
    /// be told a Host the client did not send, and a Host with userinfo is an attack on
    /// whatever logs or re-parses it.
    pub fn parse(text: &str) -> Result<Authority, BadTarget> {
        if text.is_empty() {
            return Err(BadTarget::EmptyHost);
        }
        if text.contains('@') {
            return Err(BadTarget::InvalidHost);
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or(BadTarget::InvalidHost)?;
            inside
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| BadTarget::InvalidHost)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(BadTarget::InvalidHost)?),
            };
            (&text[..inside.len() + 2], port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().map_err(|_| BadTarget::InvalidHost)?)
            }
            Some(_) => return Err(BadTarget::InvalidHost),
        };
        // A registered name or IPv4 address; an IPv6 literal was checked above.
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if host.is_empty() || !(host.starts_with('[') || host.bytes().all(valid)) {
            return Err(BadTarget::InvalidHost);
        }
        Ok(Authority {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The port, or the scheme's default.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }
}

/// The authority a request targets, per RFC 9112 §3.2 and RFC 9113 §8.3.1: an absolute-form
/// (or HTTP/2 `:authority`) authority wins over Host; otherwise exactly one Host header.
pub fn request_authority<'a>(
    uri_authority: Option<&'a str>,
    mut hosts: impl Iterator<Item = &'a [u8]>,
) -> Result<Authority, BadTarget> {
    if let Some(a) = uri_authority {
        return Authority::parse(a);
    }
    let host = hosts.next().ok_or(BadTarget::NoHost)?;
    if hosts.next().is_some() {
        return Err(BadTarget::TwoHosts);
    }
    Authority::parse(std::str::from_utf8(host).map_err(|_| BadTarget::InvalidHost)?)
}

/// The name a mesh destination is looked up by: the host for the scheme's default port, else
/// `host:port` (a Service's virtual hosts in the mesh are named the same way, one set per
/// Service port, as Istio names its outbound domains).
pub fn mesh_host(host: &str, port: u16) -> Cow<'_, str> {
    if port == 80 {
        Cow::Borrowed(host)
    } else {
        Cow::Owned(format!("{host}:{port}"))
    }
}

/// The path as routing sees it and the backend receives it: percent-encoded unreserved
/// characters decoded and hex upper-cased (RFC 3986 §6.2.2), `.` and `..` segments removed
/// (§5.2.4), and with `merge_slashes` runs of `/` made one, as Envoy's `normalize_path` and
/// `merge_slashes` do. `%2F` stays encoded: decoding it would change which segments exist.
/// `/details/../raw` is `/raw`, so a route for `/details` does not see it.
pub fn normalize_path(path: &str, merge_slashes: bool) -> Result<Cow<'_, str>, BadTarget> {
    if !path.starts_with('/') {
        return Err(BadTarget::RelativePath);
    }
    let clean =
        !(path.contains('%') || path.contains("/.") || merge_slashes && path.contains("//"));
    if clean {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            "" if merge_slashes && i != last => {}
            s => out.push(s),
        }
    }
    Ok(Cow::Owned(format!("/{}", out.join("/"))))
}

/// Decode `%XX` of unreserved characters (ALPHA / DIGIT / `-._~`); upper-case the rest.
fn decode_unreserved(path: &str) -> Result<String, BadTarget> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).ok_or(BadTarget::BadPercent)?;
        let text = std::str::from_utf8(hex).map_err(|_| BadTarget::BadPercent)?;
        let value = u8::from_str_radix(text, 16).map_err(|_| BadTarget::BadPercent)?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(value as char);
        } else {
            out.push('%');
            out.push_str(&text.to_ascii_uppercase());
        }
        i += 3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encodings_are_normalised() {
        let n = |p| normalize_path(p, false).unwrap().into_owned();
        assert_eq!(n("/details/../raw/x"), "/raw/x");
        assert_eq!(n("/a/./b/."), "/a/b/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/%2e%2E/x"), "/x", "encoded dots are dots");
        assert_eq!(n("/a%2fb"), "/a%2Fb", "an encoded slash stays one");
        assert_eq!(n("/%7euser"), "/~user");
        assert_eq!(n("/plain/path"), "/plain/path");
        assert_eq!(n("/a//b"), "/a//b");
        assert_eq!(normalize_path("/a//b///c", true).unwrap(), "/a/b/c");
        assert_eq!(normalize_path("x", false), Err(BadTarget::RelativePath));
        assert_eq!(normalize_path("/%zz", false), Err(BadTarget::BadPercent));
        assert_eq!(normalize_path("/%4", false), Err(BadTarget::BadPercent));
    }

    #[test]
    fn authorities_are_checked() {
        let a = |t| Authority::parse(t);
        assert_eq!(
            a("Example.ORG:8080").unwrap(),
            Authority {
                host: "example.org".into(),
                port: Some(8080)
            }
        );
        assert_eq!(
            a("[::1]:80").unwrap(),
            Authority {
                host: "[::1]".into(),
                port: Some(80)
            }
        );
        assert_eq!(a("[::1]").unwrap().port, None);
        assert_eq!(a(""), Err(BadTarget::EmptyHost));
        for bad in [
            "user@host",
            "host:",
            "host:99999",
            "host:8x",
            "ho st",
            "[::1",
            "[zz]:80",
            ":80",
            "a:b:80",
        ] {
            assert!(a(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn absolute_form_wins_and_host_must_be_single() {
        let hosts: [&[u8]; 2] = [b"one", b"two"];
        assert_eq!(
            request_authority(Some("echo-v2"), hosts[..1].iter().copied())
                .unwrap()
                .host,
            "echo-v2"
        );
        assert_eq!(
            request_authority(None, hosts.iter().copied()),
            Err(BadTarget::TwoHosts)
        );
        assert_eq!(
            request_authority(None, std::iter::empty()),
            Err(BadTarget::NoHost)
        );
        assert_eq!(
            request_authority(None, hosts[1..].iter().copied())
                .unwrap()
                .host,
            "two"
        );
    }

    #[test]
    fn mesh_names_carry_non_default_ports() {
        assert_eq!(mesh_host("echo", 80), "echo");
        assert_eq!(mesh_host("echo", 8080), "echo:8080");
    }
}
