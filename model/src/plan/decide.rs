//! `Plan::decide`: which virtual host and route entry a request gets.
//!
//! Never a scan of every route: each listener indexes its virtual hosts (exact names in a map,
//! wildcard suffixes by length), and each virtual host indexes its entries by path (exact paths
//! in a map, prefixes in a trie of path segments, regexes in a short list). A request walks its
//! own path segments down the trie, so the work is proportional to the path's depth and to the
//! entries sharing a path, not to the number of routes. Candidates are visited in precedence
//! order (exact, then longer prefixes before shorter, then regexes) and each list is already
//! sorted by the remaining precedence, so the first entry whose method, headers and query
//! match wins.

use std::borrow::Cow;
use std::collections::HashMap;

use super::matcher::PathMatch;
use super::{HostMatch, Listener, Plan, RouteEntry, VirtualHost};

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The Host header (or :authority) without a port.
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    pub method: &'a str,
    /// Header names lower-cased.
    pub headers: &'a [(&'a str, &'a str)],
    pub query: &'a [(&'a str, &'a str)],
}

impl Request<'_> {
    /// A header's value; repeated headers are joined with `,` as Envoy matches them (the
    /// common single value is borrowed, not copied).
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v);
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first},{second}");
                for v in values {
                    joined.push(',');
                    joined.push_str(v);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// A query string's `name=value` pairs as route matching reads them: split on `&`, not
/// decoded (the Gateway API matches the value as sent); a bare `name` has an empty value.
pub fn query_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// What `decide` chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'p> {
    pub listener: &'p Listener,
    pub virtual_host: &'p VirtualHost,
    /// `None`: no route matched (404).
    pub route: Option<&'p RouteEntry>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ListenerIndex {
    exact: HashMap<String, usize>,
    /// (suffix, virtual host), longest suffix first.
    wildcards: Vec<(String, usize)>,
    any: Option<usize>,
}

impl ListenerIndex {
    pub(crate) fn build(hosts: &[VirtualHost]) -> ListenerIndex {
        let mut ix = ListenerIndex::default();
        for (i, vh) in hosts.iter().enumerate() {
            match &vh.host {
                HostMatch::Exact(h) => {
                    ix.exact.insert(h.clone(), i);
                }
                HostMatch::Wildcard(s) => ix.wildcards.push((s.clone(), i)),
                HostMatch::Any => ix.any = Some(i),
            }
        }
        ix.wildcards
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        ix
    }

    /// Exact name first, then the longest wildcard, then the catch-all.
    pub(crate) fn host(&self, host: &str) -> Option<usize> {
        let host: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        if let Some(&i) = self.exact.get(host.as_ref()) {
            return Some(i);
        }
        self.wildcards
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
            .map(|(_, i)| *i)
            .or(self.any)
    }
}

/// A node of the prefix trie: entries whose prefix ends here, and children by segment.
#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    entries: Vec<usize>,
    children: HashMap<String, Node>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    prefixes: Node,
    regexes: Vec<usize>,
}

/// The segments after the leading `/`, empty ones included (`/a//b/` is `a`, ``, `b`, ``), so
/// the trie agrees with whole-segment prefix matching; nothing for `/` itself or a path that
/// does not start with `/` (only the `/` prefix covers those).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let rest = path.strip_prefix('/').filter(|r| !r.is_empty());
    rest.into_iter().flat_map(|r| r.split('/'))
}

impl HostIndex {
    /// Index entries already sorted in precedence order (so every list keeps that order).
    pub(crate) fn build(routes: &[RouteEntry]) -> HostIndex {
        let mut ix = HostIndex::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.matcher.path {
                PathMatch::Exact(p) => ix.exact.entry(p.clone()).or_default().push(i),
                PathMatch::Prefix(p) => {
                    let mut node = &mut ix.prefixes;
                    for seg in segments(p) {
                        node = node.children.entry(seg.to_string()).or_default();
                    }
                    node.entries.push(i);
                }
                PathMatch::Regex(_) => ix.regexes.push(i),
            }
        }
        ix
    }

    fn decide<'p>(&self, routes: &'p [RouteEntry], req: &Request<'_>) -> Option<&'p RouteEntry> {
        let first = |list: &[usize], check_path: bool| {
            list.iter().map(|&i| &routes[i]).find(|r| {
                if check_path {
                    r.matcher.accepts(req)
                } else {
                    r.matcher.accepts_rest(req)
                }
            })
        };
        if let Some(r) = self.exact.get(req.path).and_then(|l| first(l, false)) {
            return Some(r);
        }
        // Walk down the request's segments, remembering the nodes passed: deeper nodes are
        // longer prefixes and come first.
        let mut stack = vec![&self.prefixes];
        let mut node = &self.prefixes;
        for seg in segments(req.path) {
            match node.children.get(seg) {
                Some(child) => {
                    stack.push(child);
                    node = child;
                }
                None => break,
            }
        }
        for n in stack.iter().rev() {
            if let Some(r) = first(&n.entries, false) {
                return Some(r);
            }
        }
        first(&self.regexes, true)
    }
}

impl Plan {
    /// The Gateway listener on `port` that takes a request (or TLS connection) for `host`.
    ///
    /// Listeners may share a port when their hostnames differ; the spec sends a request to the
    /// one whose hostname matches most specifically (exact, then the longest wildcard, then a
    /// listener without hostname), and only that listener's routes apply. On a tie the earlier
    /// listener wins. None when no listener's hostname matches.
    pub fn listener_for(&self, port: u16, host: &str) -> Option<&Listener> {
        self.listener_at(None, port, host)
    }

    /// `listener_for` among the listeners bound at `address` (`None`: at any address, as
    /// when every Gateway shares one; `Some`: the listeners of the Gateway given that address).
    /// UDP listeners are not among them: they have sockets of their own ([`Plan::udp_listener_at`]).
    pub fn listener_at(
        &self,
        address: Option<std::net::IpAddr>,
        port: u16,
        host: &str,
    ) -> Option<&Listener> {
        self.listener_among(address, port, host, |l| l.protocol != super::Protocol::Udp)
    }

    /// The UDP listener bound at `address` and `port`, which a TCP listener may share.
    pub fn udp_listener_at(
        &self,
        address: Option<std::net::IpAddr>,
        port: u16,
    ) -> Option<&Listener> {
        self.listener_among(address, port, "", |l| l.protocol == super::Protocol::Udp)
    }

    fn listener_among(
        &self,
        address: Option<std::net::IpAddr>,
        port: u16,
        host: &str,
        transport: impl Fn(&Listener) -> bool,
    ) -> Option<&Listener> {
        self.listeners
            .iter()
            .rev()
            .filter(|l| l.port == port && l.name != super::MESH_LISTENER && transport(l))
            .filter(|l| address.is_none() || l.address == address)
            .filter_map(|l| Some((specificity(&l.hostname, host)?, l)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, l)| l)
    }

    /// The one routing function: the listener by name, then the virtual host by Host, then the
    /// route entry by precedence. `None` when the listener does not exist or no virtual host
    /// serves the host.
    pub fn decide<'p>(&'p self, listener: &str, req: &Request<'_>) -> Option<Decision<'p>> {
        let listener = self.listeners.iter().find(|l| l.name == listener)?;
        let vh = &listener.virtual_hosts[listener.index.host(req.host)?];
        Some(Decision {
            listener,
            virtual_host: vh,
            route: vh.index.decide(&vh.routes, req),
        })
    }
}

/// How specifically a listener hostname matches a host: None if not at all.
fn specificity(h: &HostMatch, host: &str) -> Option<(u8, usize)> {
    match h {
        HostMatch::Exact(e) if e.eq_ignore_ascii_case(host) => Some((2, e.len())),
        HostMatch::Wildcard(suffix) if crate::hostname::matches(&h.display(), host) => {
            Some((1, suffix.len()))
        }
        HostMatch::Any => Some((0, 0)),
        _ => None,
    }
}

impl VirtualHost {
    /// The reference scan: every entry in precedence order. `decide` must agree with it.
    pub fn scan<'p>(&'p self, req: &Request<'_>) -> Option<&'p RouteEntry> {
        self.routes.iter().find(|r| r.matcher.accepts(req))
    }
}
