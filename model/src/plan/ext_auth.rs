//! The ExternalAuth filter (GEP-1494) in the Plan: before a request is forwarded, the proxy
//! asks an authorization service, over HTTP or Envoy's ext_authz gRPC protocol, and forwards
//! only what it allows. Everything here is the filter's decisions (which headers go to the
//! service, which of its answer's headers go upstream); the agent makes the calls.
//!
//! The filter fails closed: a service that cannot be reached, answers late or answers
//! nonsense denies the request (403, Envoy's `status_on_error`), and so does a `backendRef`
//! that does not resolve.

/// How the proxy talks to the authorization service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// The client's request, its path behind `path_prefix`, answered 200 to allow.
    Http,
    /// `envoy.service.auth.v3.Authorization/Check`.
    Grpc,
}

/// A rule's ExternalAuth filter, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuth {
    /// The authorization service's cluster; None when the `backendRef` does not resolve or is
    /// not permitted (every request is then denied).
    pub cluster: Option<String>,
    pub protocol: AuthProtocol,
    /// HTTP: prepended to the client's path (`http.path`).
    pub path_prefix: String,
    /// Client headers sent to the service beyond those always sent (HTTP), or instead of all
    /// of them (gRPC; empty sends all). Lower-case.
    pub allowed_headers: Vec<String>,
    /// HTTP: the service's answer headers copied into the upstream request; empty copies all
    /// but Host and the hop-by-hop ones. Lower-case.
    pub allowed_response_headers: Vec<String>,
    /// `forwardBody.maxSize`: the most body bytes sent to the service (0: none). A larger body
    /// is refused with 413.
    pub forward_body: u64,
}

/// Headers an HTTP authorization request always carries (the spec's list; method and path are
/// in the request line).
const ALWAYS: [&str; 3] = ["host", "authorization", "content-length"];

/// Headers that belong to one connection and never cross a proxy.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl ExternalAuth {
    /// The client headers an HTTP authorization request carries: Host, Authorization and those
    /// `allowedHeaders` names (Content-Length is the authorization request's own).
    pub fn http_request_headers<'h>(
        &self,
        headers: &[(&'h str, &'h str)],
    ) -> Vec<(&'h str, &'h str)> {
        select(headers, |k| {
            k != "content-length"
                && (ALWAYS.contains(&k) || self.allowed_headers.iter().any(|a| a == k))
        })
    }

    /// The client headers a gRPC check carries: the allowed ones, or all when none are named.
    pub fn grpc_request_headers<'h>(
        &self,
        headers: &[(&'h str, &'h str)],
    ) -> Vec<(&'h str, &'h str)> {
        select(headers, |k| {
            self.allowed_headers.is_empty() || self.allowed_headers.iter().any(|a| a == k)
        })
    }

    /// The client headers the service's protocol sends it.
    pub fn request_headers<'h>(&self, headers: &[(&'h str, &'h str)]) -> Vec<(&'h str, &'h str)> {
        match self.protocol {
            AuthProtocol::Http => self.http_request_headers(headers),
            AuthProtocol::Grpc => self.grpc_request_headers(headers),
        }
    }

    /// Whether a header of an HTTP service's allowing answer is copied into the upstream
    /// request.
    pub fn copies_response_header(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if self.allowed_response_headers.is_empty() {
            !matches!(name.as_str(), "host" | ":authority" | "content-length")
                && !HOP_BY_HOP.contains(&name.as_str())
        } else {
            self.allowed_response_headers.contains(&name)
        }
    }

    /// The path (and query) an HTTP authorization request asks for.
    pub fn http_path(&self, path_and_query: &str) -> String {
        let prefix = self.path_prefix.trim_end_matches('/');
        format!("{prefix}{path_and_query}")
    }
}

/// The headers whose lower-cased name `keep` accepts.
fn select<'h>(
    headers: &[(&'h str, &'h str)],
    keep: impl Fn(&str) -> bool,
) -> Vec<(&'h str, &'h str)> {
    headers
        .iter()
        .filter(|(k, _)| keep(&k.to_ascii_lowercase()))
        .copied()
        .collect()
}

impl std::fmt::Display for ExternalAuth {
    /// How explain says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocol = match self.protocol {
            AuthProtocol::Http => "HTTP",
            AuthProtocol::Grpc => "gRPC ext_authz",
        };
        match &self.cluster {
            Some(c) => write!(
                f,
                "{protocol} authorization by {c}; denied unless it allows"
            ),
            None => write!(
                f,
                "{protocol} authorization service does not resolve: every request is denied (403)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(allowed: &[&str], response: &[&str]) -> ExternalAuth {
        ExternalAuth {
            cluster: Some("auth/ext:9000".into()),
            protocol: AuthProtocol::Http,
            path_prefix: "/check/".into(),
            allowed_headers: allowed.iter().map(|s| s.to_string()).collect(),
            allowed_response_headers: response.iter().map(|s| s.to_string()).collect(),
            forward_body: 0,
        }
    }

    #[test]
    fn http_checks_carry_the_required_and_allowed_headers() {
        let headers = [
            ("Host", "shop"),
            ("Authorization", "Bearer x"),
            ("Content-Length", "12"),
            ("X-Tenant", "a"),
            ("Cookie", "s=1"),
        ];
        let a = auth(&["x-tenant"], &[]);
        assert_eq!(
            a.http_request_headers(&headers),
            vec![
                ("Host", "shop"),
                ("Authorization", "Bearer x"),
                ("X-Tenant", "a")
            ]
        );
        assert_eq!(a.grpc_request_headers(&headers), vec![("X-Tenant", "a")]);
        assert_eq!(auth(&[], &[]).grpc_request_headers(&headers).len(), 5);
        assert_eq!(a.http_path("/cart?x=1"), "/check/cart?x=1");
    }

    #[test]
    fn answer_headers_go_upstream_as_allowed() {
        let all = auth(&[], &[]);
        assert!(all.copies_response_header("X-User"));
        assert!(!all.copies_response_header("Host"));
        assert!(!all.copies_response_header("Transfer-Encoding"));
        let some = auth(&[], &["x-user"]);
        assert!(some.copies_response_header("X-User"));
        assert!(!some.copies_response_header("X-Other"));
    }
}
