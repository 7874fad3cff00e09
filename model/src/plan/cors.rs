//! The HTTPRoute CORS filter (`HTTPCORSFilter`): which requests are cross-origin, which origins
//! are allowed, and the `Access-Control-*` headers the proxy answers with.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
//! proxy itself and never reaches the backend, as Envoy's CORS filter does; an actual request
//! from an allowed origin is forwarded and its response gets the allow-origin, credentials and
//! expose headers. A request from an origin that is not allowed gets no CORS headers (a
//! preflight still gets 200: the browser then refuses, as the spec allows).
//!
//! Where the spec lets an implementation echo the request or send `*`, this echoes (that is
//! what `allowCredentials: true` requires, and it is valid without it).

use crate::route::Filter;

/// `maxAge` when the filter leaves it out (the spec's default).
pub const DEFAULT_MAX_AGE: i32 = 5;

/// The CORS-relevant parts of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorsRequest<'a> {
    pub method: &'a str,
    pub origin: Option<&'a str>,
    /// `Access-Control-Request-Method`.
    pub request_method: Option<&'a str>,
    /// `Access-Control-Request-Headers`, as sent.
    pub request_headers: Option<&'a str>,
}

/// What the CORS filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Not cross-origin (no `Origin`), or no CORS filter: nothing to do.
    None,
    /// A preflight: answer it here (200) with these headers (none when the origin is not
    /// allowed).
    Preflight(Vec<(&'static str, String)>),
    /// An actual cross-origin request: forward it and add these headers to the response.
    Actual(Vec<(&'static str, String)>),
}

/// The CORS decision for `req` under the first CORS filter of `filters`.
pub fn decide(filters: &[&Filter], req: &CorsRequest<'_>) -> Cors {
    let Some(cors) = filters.iter().find_map(|f| f.cors.as_ref()) else {
        return Cors::None;
    };
    let Some(origin) = req.origin else {
        return Cors::None;
    };
    let preflight = req.method == "OPTIONS" && req.request_method.is_some();
    let allowed = cors
        .allow_origins
        .iter()
        .flatten()
        .any(|pattern| origin_matches(pattern, origin));
    if !allowed {
        return if preflight {
            Cors::Preflight(Vec::new())
        } else {
            Cors::Actual(Vec::new())
        };
    }
    let credentials = cors.allow_credentials == Some(true);
    let list = |v: &Option<Vec<String>>| v.iter().flatten().cloned().collect::<Vec<_>>();
    let mut headers: Vec<(&'static str, String)> =
        vec![("access-control-allow-origin", origin.to_string())];
    if credentials {
        headers.push(("access-control-allow-credentials", "true".into()));
    }
    let expose = list(&cors.expose_headers);
    // A wildcard cannot be used with credentials; without them it may be sent as is.
    let wildcard_with_credentials = credentials && expose.iter().any(|h| h == "*");
    if !expose.is_empty() && !wildcard_with_credentials {
        headers.push(("access-control-expose-headers", expose.join(", ")));
    }
    if !preflight {
        return Cors::Actual(headers);
    }
    let methods = list(&cors.allow_methods);
    if methods.iter().any(|m| m == "*") {
        // Echo the requested method (`*` is not allowed with credentials).
        if let Some(m) = req.request_method {
            headers.push(("access-control-allow-methods", m.to_string()));
        }
    } else if !methods.is_empty() {
        headers.push(("access-control-allow-methods", methods.join(", ")));
    }
    let allow_headers = list(&cors.allow_headers);
    if allow_headers.iter().any(|h| h == "*") {
        match req.request_headers {
            Some(h) => headers.push(("access-control-allow-headers", h.to_string())),
            None if !credentials => headers.push(("access-control-allow-headers", "*".into())),
            None => {}
        }
    } else if !allow_headers.is_empty() {
        headers.push(("access-control-allow-headers", allow_headers.join(", ")));
    }
    headers.push((
        "access-control-max-age",
        cors.max_age.unwrap_or(DEFAULT_MAX_AGE).to_string(),
    ));
    Cors::Preflight(headers)
}

/// An origin split as the spec compares them: scheme, host, port (the scheme's default when
/// left out).
fn parts(origin: &str) -> Option<(&str, &str, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().ok()?)
        }
        _ => (rest, default),
    };
    Some((scheme, host, port))
}

/// Whether an `allowOrigins` entry admits `origin`: `*` admits all; a `*` in the host matches
/// greedily to the left (any number of labels, dots included); scheme and host ignore case,
/// and a port left out is the scheme's default.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (Some((ps, ph, pp)), Some((os, oh, op))) = (parts(pattern), parts(origin)) else {
        return false;
    };
    if !ps.eq_ignore_ascii_case(os) || pp != op {
        return false;
    }
    let (ph, oh) = (ph.to_ascii_lowercase(), oh.to_ascii_lowercase());
    match ph.split_once('*') {
        None => ph == oh,
        Some((before, after)) => {
            oh.len() >= before.len() + after.len() && oh.starts_with(before) && oh.ends_with(after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(cors: serde_json::Value) -> Filter {
        serde_json::from_value(serde_json::json!({"type": "CORS", "cors": cors})).unwrap()
    }

    fn full() -> Filter {
        filter(serde_json::json!({
            "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
            "allowMethods": ["GET", "OPTIONS"],
            "allowHeaders": ["x-header-1", "x-header-2"],
            "exposeHeaders": ["x-header-3"],
            "allowCredentials": true,
            "maxAge": 3600,
        }))
    }

    fn preflight<'a>(origin: &'a str, method: &'a str) -> CorsRequest<'a> {
        CorsRequest {
            method: "OPTIONS",
            origin: Some(origin),
            request_method: Some(method),
            request_headers: Some("x-header-1, x-header-2"),
        }
    }

    fn header(c: &Cors, name: &str) -> Option<String> {
        let (Cors::Preflight(h) | Cors::Actual(h)) = c else {
            return None;
        };
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn origins_match_as_the_spec_describes() {
        assert!(origin_matches("https://www.foo.com", "https://www.foo.com"));
        assert!(origin_matches(
            "https://www.foo.com",
            "https://www.foo.com:443"
        ));
        assert!(!origin_matches("https://www.foo.com", "http://www.foo.com"));
        assert!(!origin_matches(
            "https://www.foo.com",
            "https://www.foo.com:8443"
        ));
        assert!(origin_matches("https://*.bar.com", "https://www.bar.com"));
        assert!(origin_matches(
            "https://*.bar.com",
            "https://xpto.www.bar.com"
        ));
        assert!(!origin_matches("https://*.bar.com", "https://bar.com"));
        assert!(!origin_matches("https://*.bar.com", "https://foobar.com"));
        assert!(origin_matches("*", "https://foobar.com:12345"));
        assert!(!origin_matches("https://www.foo.com", "null"));
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_every_header() {
        let f = full();
        let c = decide(&[&f], &preflight("https://xpto.www.bar.com", "GET"));
        assert!(matches!(c, Cors::Preflight(_)), "{c:?}");
        assert_eq!(
            header(&c, "access-control-allow-origin").as_deref(),
            Some("https://xpto.www.bar.com")
        );
        assert_eq!(
            header(&c, "access-control-allow-methods").as_deref(),
            Some("GET, OPTIONS")
        );
        assert_eq!(
            header(&c, "access-control-allow-headers").as_deref(),
            Some("x-header-1, x-header-2")
        );
        assert_eq!(
            header(&c, "access-control-expose-headers").as_deref(),
            Some("x-header-3")
        );
        assert_eq!(
            header(&c, "access-control-max-age").as_deref(),
            Some("3600")
        );
        assert_eq!(
            header(&c, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn a_foreign_origin_gets_no_cors_headers() {
        let f = full();
        assert_eq!(
            decide(&[&f], &preflight("https://foobar.com", "GET")),
            Cors::Preflight(vec![])
        );
        let actual = CorsRequest {
            method: "GET",
            origin: Some("https://foobar.com"),
            ..Default::default()
        };
        assert_eq!(decide(&[&f], &actual), Cors::Actual(vec![]));
        let same_origin = CorsRequest {
            method: "GET",
            ..Default::default()
        };
        assert_eq!(decide(&[&f], &same_origin), Cors::None);
    }

    #[test]
    fn wildcards_echo_the_request_and_default_the_max_age() {
        let f = filter(serde_json::json!({
            "allowOrigins": ["*"],
            "allowMethods": ["*"],
            "allowHeaders": ["*"],
            "allowCredentials": true,
        }));
        let c = decide(&[&f], &preflight("https://other.foo.com", "PUT"));
        assert_eq!(
            header(&c, "access-control-allow-origin").as_deref(),
            Some("https://other.foo.com")
        );
        assert_eq!(
            header(&c, "access-control-allow-methods").as_deref(),
            Some("PUT")
        );
        assert_eq!(
            header(&c, "access-control-allow-headers").as_deref(),
            Some("x-header-1, x-header-2")
        );
        assert_eq!(header(&c, "access-control-max-age").as_deref(), Some("5"));
        // An actual request gets the origin and credentials, not the preflight's headers.
        let actual = CorsRequest {
            method: "PUT",
            origin: Some("https://other.foo.com"),
            ..Default::default()
        };
        let c = decide(&[&f], &actual);
        assert!(matches!(c, Cors::Actual(_)));
        assert_eq!(
            header(&c, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(header(&c, "access-control-allow-methods"), None);
    }

    #[test]
    fn explain_says_a_preflight_is_answered_by_the_proxy() {
        use crate::plan::explain::{explain, Question};
        let plan = crate::testing::plan_of(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - filters: [{type: CORS, cors: {allowOrigins: ['https://app.example'], allowMethods: [PUT]}}]\n    backendRefs: [{name: svc, port: 80}]\n",
        );
        let ask = |origin: &str| {
            let q = Question::parse(
                "http://api.example/items",
                "OPTIONS",
                &[
                    format!("origin: {origin}"),
                    "access-control-request-method: PUT".to_string(),
                ],
                None,
            )
            .unwrap();
            let listener = plan.listener_for(80, "api.example").map(|l| l.name.clone());
            explain(&plan, listener.as_deref(), &q).outcome
        };
        let allowed = ask("https://app.example");
        assert!(
            allowed.starts_with("200 CORS preflight answered by the proxy: ")
                && allowed.contains("access-control-allow-methods: PUT"),
            "{allowed}"
        );
        assert!(ask("https://evil.example").contains("origin not allowed"));
    }
}
