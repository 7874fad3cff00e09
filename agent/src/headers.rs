//! Headers the proxy owns: hop-by-hop headers (RFC 9110 §7.6.1) never cross it, and the
//! forwarding headers say who the client was, unless a trusted proxy in front already did.

use hyper::header::{HeaderName, HeaderValue, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
use hyper::HeaderMap;

/// Headers that describe one connection, not the message: RFC 9110's list plus the
/// pre-standard `Keep-Alive` and `Proxy-Connection`.
const HOP_BY_HOP: [&str; 4] = ["keep-alive", "proxy-connection", "te", "trailer"];

/// Remove hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE` (but `TE: trailers`, which gRPC needs end to end, as Envoy keeps
/// it), `Transfer-Encoding`, and `Upgrade` unless the request is being upgraded.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let te_trailers = headers.get_all(TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    for n in named {
        if keep_upgrade && n == UPGRADE {
            continue;
        }
        headers.remove(&n);
    }
    headers.remove(CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether a request asks for an HTTP/1.1 upgrade (WebSocket and the like): `Upgrade` set and
/// named by `Connection`.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// The forwarding headers of a request, Envoy's way (`use_remote_address`): the address the
/// proxy saw appended to `X-Forwarded-For`; `X-Forwarded-Proto` from the listener and a fresh
/// `X-Request-Id` (UUID v4) unless the peer is trusted (`trusted`: an edge with
/// `--xff-num-trusted-hops`, or the mesh entry, where callers are workloads), in which case
/// theirs are kept and only missing ones are added.
pub fn forwarded(
    headers: &mut HeaderMap,
    peer: std::net::IpAddr,
    scheme: &'static str,
    trusted: bool,
) {
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        // Appended, as Envoy does: what the client wrote stays visible, the last entry is
        // the address the proxy saw.
        Some(old) => format!("{old}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !trusted || !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    }
    if !trusted || !headers.contains_key("x-request-id") {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        if let Ok(v) = HeaderValue::try_from(id) {
            headers.insert("x-request-id", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip, trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "te"], "{h:?}");
        assert_eq!(h["te"], "trailers");
        let mut up = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&up));
        strip_hop_by_hop(&mut up, true);
        assert_eq!(up["upgrade"], "websocket");
        assert_eq!(up["connection"], "upgrade");
    }

    #[test]
    fn an_untrusted_client_cannot_choose_its_forwarding_headers() {
        let peer = "10.0.0.1".parse().unwrap();
        let mut h = map(&[
            ("x-forwarded-proto", "https"),
            ("x-request-id", "chosen"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        forwarded(&mut h, peer, "http", false);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_ne!(h["x-request-id"], "chosen");
        assert_eq!(h["x-request-id"].len(), 36);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        let mut t = map(&[
            ("x-forwarded-proto", "https"),
            ("x-request-id", "chosen"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        forwarded(&mut t, peer, "http", true);
        assert_eq!(t["x-forwarded-proto"], "https");
        assert_eq!(t["x-request-id"], "chosen");
        assert_eq!(t["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        let mut ids = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut h = HeaderMap::new();
            forwarded(&mut h, peer, "http", false);
            assert!(
                ids.insert(h["x-request-id"].clone()),
                "a request id repeated"
            );
        }
    }
}
