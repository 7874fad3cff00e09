//! One HTTPRoute match, compiled: path, method, headers, query parameters.

use std::cmp::Ordering;

use regex::Regex;

/// A compiled regular expression, compared by its source text.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// The whole value must match (Gateway API regexes are anchored, as Envoy's safe_regex).
    pub fn new(source: &str) -> Option<Pattern> {
        Regex::new(&format!("^(?:{source})$")).ok().map(Pattern)
    }

    fn matches(&self, value: &str) -> bool {
        self.0.is_match(value)
    }

    /// The pattern as written in the route (without the anchors added here).
    pub fn source(&self) -> &str {
        let s = self.0.as_str();
        s.strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    Exact(String),
    /// Whole-segment prefix, without its trailing slash (`/` stays `/`): `/abc` matches
    /// `/abc`, `/abc/` and `/abc/def`, not `/abcd`.
    Prefix(String),
    Regex(Pattern),
}

impl PathMatch {
    pub fn prefix(value: &str) -> PathMatch {
        let trimmed = value.trim_end_matches('/');
        PathMatch::Prefix(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.to_string()
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Regex(r) => r.matches(path),
        }
    }
}

/// Whether the whole-segment prefix `prefix` (no trailing slash, or exactly `/`) covers `path`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatch {
    Exact(String),
    Regex(Pattern),
}

impl ValueMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(v) => v == value,
            ValueMatch::Regex(r) => r.matches(value),
        }
    }
}

impl std::fmt::Display for PathMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathMatch::Exact(p) => write!(f, "Exact {p}"),
            PathMatch::Prefix(p) => write!(f, "PathPrefix {p}"),
            PathMatch::Regex(r) => write!(f, "RegularExpression {}", r.source()),
        }
    }
}

impl std::fmt::Display for ValueMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueMatch::Exact(v) => write!(f, "= {v:?}"),
            ValueMatch::Regex(r) => write!(f, "~ {}", r.source()),
        }
    }
}

impl std::fmt::Display for Matcher {
    /// `PathPrefix /a, method GET, header x = "1", query v ~ 2.*`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(m) = &self.method {
            write!(f, ", method {m}")?;
        }
        for h in &self.headers {
            write!(f, ", header {} {}", h.name, h.value)?;
        }
        for q in &self.query {
            write!(f, ", query {} {}", q.name, q.value)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    /// Lower-cased: header names are case-insensitive.
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryMatch {
    /// Case-sensitive, as the spec says.
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

impl Matcher {
    /// Everything but the path (the index has already chosen by path).
    pub fn accepts_rest(&self, req: &super::Request<'_>) -> bool {
        self.method.as_deref().is_none_or(|m| m == req.method)
            && self
                .headers
                .iter()
                .all(|h| req.header(&h.name).is_some_and(|v| h.value.matches(&v)))
            && self
                .query
                .iter()
                .all(|q| req.query_param(&q.name).is_some_and(|v| q.value.matches(v)))
    }

    pub fn accepts(&self, req: &super::Request<'_>) -> bool {
        self.path.matches(req.path) && self.accepts_rest(req)
    }

    /// Why the match does not take a request: its first condition that fails, in the order
    /// path, method, headers, query (`kubectl mesh explain`). `None` when it accepts.
    pub fn mismatch(&self, req: &super::Request<'_>) -> Option<String> {
        if !self.path.matches(req.path) {
            return Some(format!("path: {} does not match {:?}", self.path, req.path));
        }
        if let Some(m) = self.method.as_deref().filter(|m| *m != req.method) {
            return Some(format!("method: wants {m}, got {}", req.method));
        }
        for h in &self.headers {
            match req.header(&h.name) {
                None => return Some(format!("header: {} {} is missing", h.name, h.value)),
                Some(v) if !h.value.matches(&v) => {
                    return Some(format!("header: {} {}, got {v:?}", h.name, h.value))
                }
                Some(_) => {}
            }
        }
        for q in &self.query {
            match req.query_param(&q.name) {
                None => return Some(format!("query: {} {} is missing", q.name, q.value)),
                Some(v) if !q.value.matches(v) => {
                    return Some(format!("query: {} {}, got {v:?}", q.name, q.value))
                }
                Some(_) => {}
            }
        }
        None
    }

    /// The spec's precedence between matches of one hostname, most specific first: Exact
    /// paths, then the longest prefix, then regexes (longest first, an implementation choice);
    /// then a method match, the most header matches, the most query matches.
    pub fn precedence(&self, other: &Matcher) -> Ordering {
        let rank = |m: &Matcher| match &m.path {
            PathMatch::Exact(p) => (0, usize::MAX - p.len()),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
            PathMatch::Regex(r) => (2, usize::MAX - r.0.as_str().len()),
        };
        rank(self)
            .cmp(&rank(other))
            .then_with(|| other.method.is_some().cmp(&self.method.is_some()))
            .then_with(|| other.headers.len().cmp(&self.headers.len()))
            .then_with(|| other.query.len().cmp(&self.query.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        let p = PathMatch::prefix("/abc/");
        assert!(p.matches("/abc") && p.matches("/abc/") && p.matches("/abc/def"));
        assert!(!p.matches("/abcd"));
        assert!(PathMatch::prefix("/").matches("/anything"));
        assert!(Pattern::new("/v[0-9]+").unwrap().matches("/v12"));
        assert!(
            !Pattern::new("/v[0-9]+").unwrap().matches("/v12/x"),
            "anchored"
        );
    }
}
