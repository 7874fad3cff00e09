//! Session persistence (a route rule's `sessionPersistence`, GEP-1619): requests of one
//! session go to the endpoint its first request went to, while that endpoint still serves the
//! rule.
//!
//! The session is carried by the client, as Envoy's stateful-session filter carries it: the
//! proxy answers the first request with a token naming the endpoint (a cookie, or a header the
//! client sends back), and a request bearing a valid token goes to that endpoint. The token
//! also holds when the session began, so the absolute timeout is kept without state in the
//! proxy (for a session cookie too, which the browser alone would keep until it closes); a
//! client can only choose among the rule's own endpoints with it (affinity, not
//! authorization). An expired or unknown token starts a new session, as does a pinned endpoint
//! that is gone. (v1.6 has no `idleTimeout`.)

use base64::Engine;

/// How a session is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Cookie,
    Header,
}

/// A rule's session persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPersistence {
    /// The cookie's or header's name (`sessionName`, else [`SessionPersistence::DEFAULT_NAME`]).
    pub name: String,
    pub kind: SessionKind,
    /// `absoluteTimeout`: a session ends this long after it began.
    pub absolute_timeout_s: Option<u64>,
    /// `cookieConfig.lifetimeType: Permanent`: the cookie carries Max-Age (the absolute
    /// timeout); else it is a browser-session cookie.
    pub permanent: bool,
    /// The cookie's Path: the rule's path when it matches one path, else `/`.
    pub cookie_path: String,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The endpoint, as `address:port` (IPv6 in brackets).
    pub endpoint: String,
    /// Unix seconds when the session began.
    pub started: u64,
}

impl SessionPersistence {
    /// The session name when `sessionName` is unset.
    pub const DEFAULT_NAME: &'static str = "mesh-session";

    /// The token a request carries, if any: the cookie of the session's name, or the header.
    pub fn token<'a>(&self, headers: &[(&str, &'a str)]) -> Option<&'a str> {
        match self.kind {
            SessionKind::Header => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&self.name))
                .map(|(_, v)| v.trim()),
            SessionKind::Cookie => headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
                .flat_map(|(_, v)| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| *k == self.name)
                .map(|(_, v)| v.trim_matches('"')),
        }
    }

    /// The session a token names, if it is well-formed and its absolute timeout has not passed
    /// at `now` (Unix seconds).
    pub fn read(&self, token: &str, now: u64) -> Option<Session> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (endpoint, started) = text.rsplit_once(';')?;
        let started: u64 = started.parse().ok()?;
        if started > now
            || self
                .absolute_timeout_s
                .is_some_and(|limit| now - started >= limit)
        {
            return None;
        }
        Some(Session {
            endpoint: endpoint.to_string(),
            started,
        })
    }

    /// The token for a session with `endpoint` begun at `started`.
    pub fn write(&self, endpoint: &str, started: u64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{endpoint};{started}"))
    }

    /// The response header that hands a new session's client its token: `Set-Cookie`
    /// (HttpOnly, the rule's Path, and for a permanent cookie Max-Age: the absolute timeout),
    /// or the session header itself.
    pub fn response_header(&self, token: &str) -> (String, String) {
        match self.kind {
            SessionKind::Header => (self.name.clone(), token.to_string()),
            SessionKind::Cookie => {
                let mut cookie =
                    format!("{}={token}; Path={}; HttpOnly", self.name, self.cookie_path);
                if let (true, Some(limit)) = (self.permanent, self.absolute_timeout_s) {
                    cookie.push_str(&format!("; Max-Age={limit}"));
                }
                ("set-cookie".into(), cookie)
            }
        }
    }
}

impl std::fmt::Display for SessionPersistence {
    /// How explain says it: the carrier, its name, and the timeouts kept.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            SessionKind::Cookie => write!(
                f,
                "cookie {} (Path {}, {} lifetime)",
                self.name,
                self.cookie_path,
                if self.permanent {
                    "permanent"
                } else {
                    "session"
                }
            )?,
            SessionKind::Header => write!(f, "header {}", self.name)?,
        }
        if let Some(s) = self.absolute_timeout_s {
            write!(f, ", ends {s}s after it began")?;
        }
        write!(
            f,
            "; a request bearing it goes to the endpoint it names while that endpoint serves the rule"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(absolute: Option<u64>) -> SessionPersistence {
        SessionPersistence {
            name: "sticky".into(),
            kind: SessionKind::Cookie,
            absolute_timeout_s: absolute,
            permanent: true,
            cookie_path: "/app".into(),
        }
    }

    #[test]
    fn endpoints_are_named_as_uri_authorities() {
        let ep = |a: &str, port| crate::plan::Endpoint {
            address: a.into(),
            port,
        };
        assert_eq!(ep("::1", 8080).authority(), "[::1]:8080");
        assert_eq!(ep("127.0.0.1", 80).authority(), "127.0.0.1:80");
        assert_eq!(ep("backend.local", 80).authority(), "backend.local:80");
    }

    #[test]
    fn tokens_round_trip_until_the_absolute_timeout() {
        let s = cookie(Some(100));
        let t = s.write("[::1]:8080", 1000);
        let want = Session {
            endpoint: "[::1]:8080".into(),
            started: 1000,
        };
        assert_eq!(s.read(&t, 1099), Some(want));
        assert_eq!(s.read(&t, 1100), None, "100s since it began");
        assert_eq!(s.read(&t, 999), None, "begun in the future");
        assert_eq!(s.read("not a token", 0), None);
        assert!(cookie(None).read(&t, u64::MAX).is_some(), "no timeout");
    }

    #[test]
    fn the_token_is_found_among_cookies_or_in_its_header() {
        let s = cookie(None);
        let headers = [("Cookie", "a=1; sticky=abc; b=2")];
        assert_eq!(s.token(&headers), Some("abc"));
        assert_eq!(s.token(&[("cookie", "stickyx=1")]), None);
        let h = SessionPersistence {
            kind: SessionKind::Header,
            ..s.clone()
        };
        assert_eq!(h.token(&[("STICKY", " xyz ")]), Some("xyz"));
    }

    #[test]
    fn cookies_carry_the_path_and_a_permanent_lifetime() {
        let s = cookie(Some(3600));
        let (name, value) = s.response_header("T");
        assert_eq!(name, "set-cookie");
        assert_eq!(value, "sticky=T; Path=/app; HttpOnly; Max-Age=3600");
        let session = SessionPersistence {
            permanent: false,
            ..s
        };
        assert_eq!(
            session.response_header("T").1,
            "sticky=T; Path=/app; HttpOnly"
        );
    }
}
