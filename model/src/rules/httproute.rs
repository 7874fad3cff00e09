//! MESH20xx: HTTPRoute and GRPCRoute rules the CRDs (schema and CEL) enforce, plus the ones
//! the old Gateway API webhook enforced and CEL dropped (case-insensitive duplicates).

use std::collections::HashMap;

use gateway_api::apis::experimental::grpcroutes::GrpcRouteRulesMatchesMethodType;
use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesFiltersRequestRedirectPathType as RedirectPath,
    HttpRouteRulesFiltersType as FilterType,
    HttpRouteRulesFiltersUrlRewritePathType as RewritePath, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType, HttpRouteSpec,
};

use super::{fixture, Report, Rule, Scope};
use crate::diagnostic::Level;
use crate::kind::Kind;
use crate::object::Object;
use crate::resource::Resource;
use crate::route::{Filter, Route};
use crate::validate;

pub static RULES: &[&Rule] = &[
    &PATH_INVALID,
    &DUPLICATE_MATCH_KEY,
    &REDIRECT_WITH_REWRITE,
    &FILTER_REPEATED,
    &FILTER_FIELD_MISMATCH,
    &PATH_MODIFIER_MISMATCH,
    &REPLACE_PREFIX_NEEDS_PREFIX,
    &REDIRECT_WITH_BACKENDS,
    &HEADER_MODIFIER_CONFLICT,
    &TIMEOUT_INVALID,
    &TIMEOUT_TOO_SHORT,
    &BACKEND_PORT_MISSING,
    &REDIRECT_STATUS_INVALID,
    &MIRROR_INVALID,
    &PARENT_REFS_NOT_DISTINCT,
    &GRPC_METHOD_INVALID,
    &REGEX_INVALID,
    &RULE_NAME_DUPLICATE,
];

const HTTP_GRPC: &[Kind] = &[Kind::HttpRoute, Kind::GrpcRoute];

fn http(o: &Object) -> Option<&HttpRouteSpec> {
    match &o.resource {
        Resource::HttpRoute(s, _) => Some(s),
        _ => None,
    }
}

fn view(o: &Object) -> Option<&Route> {
    o.resource.route()
}

/// Every filter of every rule (rule level and backendRef level), with its rule index.
fn each_filter(o: &Object, mut f: impl FnMut(usize, &str, &Filter)) {
    if let Some(route) = view(o) {
        for (i, rule) in route.rules.iter().enumerate() {
            for (path, filter) in rule.all_filters() {
                f(i, path, filter);
            }
        }
    }
}

/// The field name that goes with each filter type.
fn field_for(t: &FilterType) -> &'static str {
    match t {
        FilterType::RequestHeaderModifier => "requestHeaderModifier",
        FilterType::ResponseHeaderModifier => "responseHeaderModifier",
        FilterType::RequestMirror => "requestMirror",
        FilterType::RequestRedirect => "requestRedirect",
        FilterType::UrlRewrite => "urlRewrite",
        FilterType::ExtensionRef => "extensionRef",
        FilterType::Cors => "cors",
        FilterType::ExternalAuth => "externalAuth",
    }
}

fn type_name(t: &FilterType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The filter fields that are set.
fn fields_set(f: &Filter) -> Vec<&'static str> {
    let mut v = Vec::new();
    if f.request_header_modifier.is_some() {
        v.push("requestHeaderModifier");
    }
    if f.response_header_modifier.is_some() {
        v.push("responseHeaderModifier");
    }
    if f.request_mirror.is_some() {
        v.push("requestMirror");
    }
    if f.request_redirect.is_some() {
        v.push("requestRedirect");
    }
    if f.url_rewrite.is_some() {
        v.push("urlRewrite");
    }
    if f.extension_ref.is_some() {
        v.push("extensionRef");
    }
    if f.cors.is_some() {
        v.push("cors");
    }
    if f.external_auth.is_some() {
        v.push("externalAuth");
    }
    v
}

pub static PATH_INVALID: Rule = Rule {
    code: "MESH2001",
    name: "PathInvalid",
    level: Level::Error,
    title: "A path match or path modifier is not a valid absolute path",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "Exact and PathPrefix values must start with '/', contain only URL path characters, and contain no `//`, `/./`, `/../`, `%2f` or `#` (CEL). Redirect and rewrite replacement paths must be absolute too. Paths are matched segment by segment: PathPrefix `/abc` matches `/abc/def` but not `/abcd`.",
    hint: "Write the path as it appears in the URL, starting with '/': `/details`, not `details` or `/details/../x`.",
    bad: fixture!("MESH2001", "bad"),
    good: fixture!("MESH2001", "good"),
    check: |o, _, r| {
        let Some(spec) = http(o) else { return };
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                let Some(p) = &m.path else { continue };
                let regex = matches!(p.r#type, Some(HttpRouteRulesMatchesPathType::RegularExpression));
                if let (false, Some(v)) = (regex, &p.value) {
                    if let Some(problem) = validate::path_problem(v) {
                        r.at(format!("spec.rules[{i}].matches[{j}].path.value"), format!("path {v:?} {problem}"));
                    }
                }
            }
        }
        each_filter(o, |_, path, f| {
            let modifiers = [
                ("requestRedirect", f.request_redirect.as_ref().and_then(|x| x.path.as_ref()).map(|p| (p.replace_full_path.as_deref(), p.replace_prefix_match.as_deref()))),
                ("urlRewrite", f.url_rewrite.as_ref().and_then(|x| x.path.as_ref()).map(|p| (p.replace_full_path.as_deref(), p.replace_prefix_match.as_deref()))),
            ];
            for (name, m) in modifiers {
                let Some((full, prefix)) = m else { continue };
                for (field, v) in [("replaceFullPath", full), ("replacePrefixMatch", prefix)] {
                    if let Some(v) = v {
                        if !v.is_empty() && !v.starts_with('/') {
                            r.at(format!("{path}.{name}.path.{field}"), format!("{v:?} must be an absolute path starting with '/'"));
                        }
                    }
                }
            }
        });
    },
};

pub static DUPLICATE_MATCH_KEY: Rule = Rule {
    code: "MESH2002",
    name: "DuplicateHeaderOrQueryMatch",
    level: Level::Error,
    title: "A match tests the same header (any case) or query parameter twice",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: None,
    doc: "\"Cannot match the same header multiple times in the same rule\": header names are case-insensitive, so `Magic` and `magic` are the same header. The CRD only catches exact duplicates; the old webhook, and implementations, treat case variants as duplicates too. Query parameter names are case-sensitive.",
    hint: "Keep one entry per header; to accept several values use a RegularExpression match.",
    bad: fixture!("MESH2002", "bad"),
    good: fixture!("MESH2002", "good"),
    check: |o, _, r| {
        let check = |base: String, names: Vec<String>, case_insensitive: bool, what: &str, r: &mut Report<'_>| {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (k, n) in names.into_iter().enumerate() {
                let key = if case_insensitive { n.to_ascii_lowercase() } else { n.clone() };
                if let Some(first) = seen.insert(key, k) {
                    r.at(format!("{base}[{k}].name"), format!("{what} {n:?} is already matched by {base}[{first}]"));
                }
            }
        };
        match &o.resource {
            Resource::HttpRoute(spec, _) => {
                for (i, rule) in spec.rules.iter().flatten().enumerate() {
                    for (j, m) in rule.matches.iter().flatten().enumerate() {
                        check(format!("spec.rules[{i}].matches[{j}].headers"), m.headers.iter().flatten().map(|h| h.name.clone()).collect(), true, "header", r);
                        check(format!("spec.rules[{i}].matches[{j}].queryParams"), m.query_params.iter().flatten().map(|h| h.name.clone()).collect(), false, "query parameter", r);
                    }
                }
            }
            Resource::GrpcRoute(spec, _) => {
                for (i, rule) in spec.rules.iter().flatten().enumerate() {
                    for (j, m) in rule.matches.iter().flatten().enumerate() {
                        check(format!("spec.rules[{i}].matches[{j}].headers"), m.headers.iter().flatten().map(|h| h.name.clone()).collect(), true, "header", r);
                    }
                }
            }
            _ => {}
        }
    },
};

pub static REDIRECT_WITH_REWRITE: Rule = Rule {
    code: "MESH2003",
    name: "RedirectWithRewrite",
    level: Level::Error,
    title: "A rule has both RequestRedirect and URLRewrite",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both\". A redirect answers the client; a rewrite changes the request sent to a backend: they cannot both happen.",
    hint: "Keep the redirect (the client goes elsewhere) or the rewrite (the backend sees another URL), not both.",
    bad: fixture!("MESH2003", "bad"),
    good: fixture!("MESH2003", "good"),
    check: |o, _, r| {
        let Some(route) = view(o) else { return };
        for rule in &route.rules {
            let lists = std::iter::once((rule.field.clone(), &rule.filters)).chain(rule.backend_refs.iter().map(|b| (b.field.clone(), &b.filters)));
            for (field, filters) in lists {
                let redirect = filters.iter().any(|(_, f)| matches!(f.r#type, FilterType::RequestRedirect));
                let rewrite = filters.iter().any(|(_, f)| matches!(f.r#type, FilterType::UrlRewrite));
                if redirect && rewrite {
                    r.at(format!("{field}.filters"), "RequestRedirect and URLRewrite cannot be used together");
                }
            }
        }
    },
};

pub static FILTER_REPEATED: Rule = Rule {
    code: "MESH2004",
    name: "FilterRepeated",
    level: Level::Error,
    title: "A filter type appears twice in one filter list",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite and CORS \"filter cannot be repeated\" within a rule (or a backendRef). Only RequestMirror and ExtensionRef may repeat.",
    hint: "Merge the two filters' set/add/remove lists into one filter.",
    bad: fixture!("MESH2004", "bad"),
    good: fixture!("MESH2004", "good"),
    check: |o, _, r| {
        let Some(route) = view(o) else { return };
        for rule in &route.rules {
            let lists = std::iter::once(&rule.filters).chain(rule.backend_refs.iter().map(|b| &b.filters));
            for filters in lists {
                let mut seen: HashMap<String, &str> = HashMap::new();
                for (path, f) in filters {
                    if matches!(f.r#type, FilterType::RequestMirror | FilterType::ExtensionRef) {
                        continue;
                    }
                    let t = type_name(&f.r#type);
                    if let Some(first) = seen.insert(t.clone(), path) {
                        r.at(path.clone(), format!("{t} filter is repeated (first at {first})"));
                    }
                }
            }
        }
    },
};

pub static FILTER_FIELD_MISMATCH: Rule = Rule {
    code: "MESH2005",
    name: "FilterFieldMismatch",
    level: Level::Error,
    title: "A filter's type and its configuration disagree",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"filter.requestMirror must be specified for RequestMirror filter.type\" and \"must be nil if the filter.type is not RequestMirror\" (and the same for every filter type). Uncommenting half of a filter block (the article's `#filters:` steps) leaves a `type:` without its configuration, or the reverse.",
    hint: "Set exactly the field named after the type: type RequestHeaderModifier goes with requestHeaderModifier.",
    bad: fixture!("MESH2005", "bad"),
    good: fixture!("MESH2005", "good"),
    check: |o, _, r| {
        each_filter(o, |_, path, f| {
            let want = field_for(&f.r#type);
            let set = fields_set(f);
            if !set.contains(&want) {
                r.at(path.to_string(), format!("filter type {} needs {want}", type_name(&f.r#type)));
            }
            for other in set.into_iter().filter(|s| *s != want) {
                r.at(format!("{path}.{other}"), format!("{other} must not be set for filter type {}", type_name(&f.r#type)));
            }
        });
    },
};

pub static PATH_MODIFIER_MISMATCH: Rule = Rule {
    code: "MESH2006",
    name: "PathModifierMismatch",
    level: Level::Error,
    title: "A path modifier's type and value field disagree",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "CEL: replaceFullPath must be set when type is ReplaceFullPath (and only then); replacePrefixMatch must be set when type is ReplacePrefixMatch (and only then).",
    hint: "type ReplacePrefixMatch goes with replacePrefixMatch; type ReplaceFullPath with replaceFullPath.",
    bad: fixture!("MESH2006", "bad"),
    good: fixture!("MESH2006", "good"),
    check: |o, _, r| {
        each_filter(o, |_, path, f| {
            let mods = [
                ("requestRedirect", f.request_redirect.as_ref().and_then(|x| x.path.as_ref()).map(|p| (matches!(p.r#type, RedirectPath::ReplaceFullPath), p.replace_full_path.is_some(), p.replace_prefix_match.is_some()))),
                ("urlRewrite", f.url_rewrite.as_ref().and_then(|x| x.path.as_ref()).map(|p| (matches!(p.r#type, RewritePath::ReplaceFullPath), p.replace_full_path.is_some(), p.replace_prefix_match.is_some()))),
            ];
            for (name, m) in mods {
                let Some((full_type, has_full, has_prefix)) = m else { continue };
                let field = format!("{path}.{name}.path");
                if full_type && (!has_full || has_prefix) {
                    r.at(field, "type ReplaceFullPath needs replaceFullPath and no replacePrefixMatch");
                } else if !full_type && (!has_prefix || has_full) {
                    r.at(field, "type ReplacePrefixMatch needs replacePrefixMatch and no replaceFullPath");
                }
            }
        });
    },
};

pub static REPLACE_PREFIX_NEEDS_PREFIX: Rule = Rule {
    code: "MESH2007",
    name: "ReplacePrefixNeedsPathPrefix",
    level: Level::Error,
    title: "ReplacePrefixMatch without exactly one PathPrefix match",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"When using RequestRedirect (or URLRewrite) filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified\". The prefix to replace is the matched prefix; with an Exact match, several matches or none there is no single prefix.",
    hint: "Give the rule a single PathPrefix match, or use ReplaceFullPath.",
    bad: fixture!("MESH2007", "bad"),
    good: fixture!("MESH2007", "good"),
    check: |o, _, r| {
        let Some(spec) = http(o) else { return };
        let route = view(o);
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let matches = rule.matches.as_deref().unwrap_or(&[]);
            let one_prefix = matches.len() == 1 && matches[0].path.as_ref().is_some_and(|p| matches!(p.r#type, Some(HttpRouteRulesMatchesPathType::PathPrefix) | None));
            let Some(rv) = route.and_then(|rt| rt.rules.get(i)) else { continue };
            for (path, f) in rv.all_filters() {
                let uses = f.request_redirect.as_ref().and_then(|x| x.path.as_ref()).is_some_and(|p| matches!(p.r#type, RedirectPath::ReplacePrefixMatch))
                    || f.url_rewrite.as_ref().and_then(|x| x.path.as_ref()).is_some_and(|p| matches!(p.r#type, RewritePath::ReplacePrefixMatch));
                if uses && !one_prefix {
                    r.at(path.to_string(), format!("ReplacePrefixMatch needs exactly one PathPrefix match in spec.rules[{i}], found {} match(es)", matches.len()));
                }
            }
        }
    },
};

pub static REDIRECT_WITH_BACKENDS: Rule = Rule {
    code: "MESH2008",
    name: "RedirectWithBackends",
    level: Level::Error,
    title: "A rule with RequestRedirect also has backendRefs",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"RequestRedirect filter must not be used together with backendRefs\". A redirect answers the client directly; no backend is called.",
    hint: "Remove the backendRefs of the redirecting rule, or put the redirect in a rule of its own.",
    bad: fixture!("MESH2008", "bad"),
    good: fixture!("MESH2008", "good"),
    check: |o, _, r| {
        let Some(route) = view(o) else { return };
        for rule in &route.rules {
            let redirect = rule.filters.iter().any(|(_, f)| matches!(f.r#type, FilterType::RequestRedirect));
            if redirect && !rule.backend_refs.is_empty() {
                r.at(format!("{}.backendRefs", rule.field), "backendRefs are not allowed with a RequestRedirect filter");
            }
        }
    },
};

pub static HEADER_MODIFIER_CONFLICT: Rule = Rule {
    code: "MESH2009",
    name: "HeaderModifierConflict",
    level: Level::Error,
    title: "A header modifier names one header in more than one action",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: None,
    doc: "Header names are case-insensitive. A header in both `set` and `add`, or in `remove` and `set`, or twice in one list (`X-Foo` and `x-foo`), has no defined result; the old Gateway API webhook rejected it (\"cannot specify multiple actions for header\") and CEL only catches exact duplicates within one list.",
    hint: "Name each header once per modifier: set replaces, add appends, remove deletes.",
    bad: fixture!("MESH2009", "bad"),
    good: fixture!("MESH2009", "good"),
    check: |o, _, r| {
        each_filter(o, |_, path, f| {
            let mods = [
                ("requestHeaderModifier", f.request_header_modifier.as_ref().map(|m| (m.set.iter().flatten().map(|h| h.name.clone()).collect::<Vec<_>>(), m.add.iter().flatten().map(|h| h.name.clone()).collect::<Vec<_>>(), m.remove.clone().unwrap_or_default()))),
                ("responseHeaderModifier", f.response_header_modifier.as_ref().map(|m| (m.set.iter().flatten().map(|h| h.name.clone()).collect::<Vec<_>>(), m.add.iter().flatten().map(|h| h.name.clone()).collect::<Vec<_>>(), m.remove.clone().unwrap_or_default()))),
            ];
            for (name, m) in mods {
                let Some((set, add, remove)) = m else { continue };
                let mut seen: HashMap<String, String> = HashMap::new();
                for (action, list) in [("set", set), ("add", add), ("remove", remove)] {
                    for (k, h) in list.iter().enumerate() {
                        let here = format!("{action}[{k}]");
                        if let Some(first) = seen.insert(h.to_ascii_lowercase(), here.clone()) {
                            r.at(format!("{path}.{name}.{here}"), format!("header {h:?} is already modified by {first}"));
                        }
                    }
                }
            }
        });
    },
};

pub static TIMEOUT_INVALID: Rule = Rule {
    code: "MESH2010",
    name: "TimeoutInvalid",
    level: Level::Error,
    title: "A timeout is not a valid duration, or backendRequest exceeds request",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "Timeouts are GEP-2257 durations (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`: `10ms`, `1h30m`; not `1.5s` or `500`). CEL: \"backendRequest timeout cannot be longer than request timeout\" (unless request is `0s`, which disables it).",
    hint: "Write durations like 500ms, 2s or 1m, with backendRequest at most request.",
    bad: fixture!("MESH2010", "bad"),
    good: fixture!("MESH2010", "good"),
    check: |o, _, r| {
        let Some(spec) = http(o) else { return };
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let Some(t) = &rule.timeouts else { continue };
            let base = format!("spec.rules[{i}].timeouts");
            let parse = |name: &str, v: &Option<String>, r: &mut Report<'_>| -> Option<u64> {
                let v = v.as_ref()?;
                let ms = validate::duration_ms(v);
                if ms.is_none() {
                    r.at(format!("{base}.{name}"), format!("{v:?} is not a duration such as 500ms, 10s or 1m"));
                }
                ms
            };
            let request = parse("request", &t.request, r);
            let backend = parse("backendRequest", &t.backend_request, r);
            if let (Some(req), Some(be)) = (request, backend) {
                if req != 0 && be > req {
                    r.at(format!("{base}.backendRequest"), format!("backendRequest ({be}ms) is longer than request ({req}ms)"));
                }
            }
        }
    },
};

/// Timeouts below this usually fire on healthy requests (the article's 1ms timeout failed
/// almost every request).
pub const TIMEOUT_FLOOR_MS: u64 = 100;

pub static TIMEOUT_TOO_SHORT: Rule = Rule {
    code: "MESH2011",
    name: "TimeoutTooShort",
    level: Level::Warning,
    title: "A request timeout is shorter than 100ms",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: None,
    doc: "A request timeout covers the whole exchange, including connection setup and any retries. Below about 100ms healthy requests start to fail with 504 `upstream request timeout` (in the Gateway API article, 10ms worked and 1ms failed most requests).",
    hint: "Set the timeout from the backend's measured latency (p99 plus margin), usually hundreds of milliseconds or more.",
    bad: fixture!("MESH2011", "bad"),
    good: fixture!("MESH2011", "good"),
    check: |o, _, r| {
        let Some(spec) = http(o) else { return };
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let Some(t) = &rule.timeouts else { continue };
            for (name, v) in [("request", &t.request), ("backendRequest", &t.backend_request)] {
                if let Some(ms) = v.as_deref().and_then(validate::duration_ms) {
                    if ms > 0 && ms < TIMEOUT_FLOOR_MS {
                        r.at(format!("spec.rules[{i}].timeouts.{name}"), format!("{name} timeout of {ms}ms is below {TIMEOUT_FLOOR_MS}ms and will fail healthy requests"));
                    }
                }
            }
        }
    },
};

pub static BACKEND_PORT_MISSING: Rule = Rule {
    code: "MESH2012",
    name: "BackendPortMissing",
    level: Level::Error,
    title: "A Service backendRef has no port",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"Must have port for Service reference\". A Service can expose several ports; the route must say which (the Service port, not the container's targetPort).",
    hint: "Add port: the Service's port number (kubectl get svc NAME shows it).",
    bad: fixture!("MESH2012", "bad"),
    good: fixture!("MESH2012", "good"),
    check: |o, _, r| {
        let Some(route) = view(o) else { return };
        let mirrors = route.filter_refs(o.namespace.as_deref().unwrap_or(""));
        for b in route.rules.iter().flat_map(|x| &x.backend_refs).chain(&mirrors) {
            if b.is_service() && b.port.is_none() {
                r.at(b.field.clone(), format!("Service {} needs a port", b.name));
            }
        }
    },
};

pub static REDIRECT_STATUS_INVALID: Rule = Rule {
    code: "MESH2013",
    name: "RedirectStatusInvalid",
    level: Level::Error,
    title: "A redirect status code is not 301, 302, 303, 307 or 308",
    kinds: &[Kind::HttpRoute],
    scope: Scope::Object,
    reason: Some("UnsupportedValue"),
    doc: "RequestRedirect statusCode is one of 301, 302 (the default), 303, 307 and 308; only 301 and 302 are Core. Others are rejected by the CRD enum.",
    hint: "Use 301 for a permanent move, 302 (default) for a temporary one, 307/308 to keep the method.",
    bad: fixture!("MESH2013", "bad"),
    good: fixture!("MESH2013", "good"),
    check: |o, _, r| {
        each_filter(o, |_, path, f| {
            if let Some(code) = f.request_redirect.as_ref().and_then(|x| x.status_code) {
                if ![301, 302, 303, 307, 308].contains(&code) {
                    r.at(format!("{path}.requestRedirect.statusCode"), format!("status code {code} is not a redirect code (301, 302, 303, 307, 308)"));
                }
            }
        });
    },
};

pub static MIRROR_INVALID: Rule = Rule {
    code: "MESH2014",
    name: "MirrorFractionInvalid",
    level: Level::Error,
    title: "A RequestMirror sets both percent and fraction, or an impossible share",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"Only one of percent or fraction may be specified in HTTPRequestMirrorFilter\"; percent is 0-100, fraction's numerator at most its denominator, and the denominator at least 1.",
    hint: "Use either percent: 10 or fraction: {numerator: 1, denominator: 10}.",
    bad: fixture!("MESH2014", "bad"),
    good: fixture!("MESH2014", "good"),
    check: |o, _, r| {
        each_filter(o, |_, path, f| {
            let Some(m) = &f.request_mirror else { return };
            let base = format!("{path}.requestMirror");
            if m.percent.is_some() && m.fraction.is_some() {
                r.at(base.clone(), "only one of percent or fraction may be set");
            }
            if let Some(p) = m.percent {
                if !(0..=100).contains(&p) {
                    r.at(format!("{base}.percent"), format!("percent {p} is outside 0-100"));
                }
            }
            if let Some(fr) = &m.fraction {
                let d = fr.denominator.unwrap_or(100);
                if d < 1 || fr.numerator < 0 || fr.numerator > d {
                    r.at(format!("{base}.fraction"), format!("fraction {}/{d} is not a share between 0 and 1", fr.numerator));
                }
            }
        });
    },
};

pub static PARENT_REFS_NOT_DISTINCT: Rule = Rule {
    code: "MESH2015",
    name: "ParentRefsNotDistinct",
    level: Level::Error,
    title: "Two parentRefs name the same parent without distinct sectionNames",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"sectionName must be specified when parentRefs includes 2 or more references to the same parent\" and \"sectionName must be unique when parentRefs includes 2 or more references to the same parent\".",
    hint: "Give each parentRef to the same Gateway its own sectionName (listener name), or keep one parentRef.",
    bad: fixture!("MESH2015", "bad"),
    good: fixture!("MESH2015", "good"),
    check: |o, _, r| {
        let Some(route) = view(o) else { return };
        let mut seen: HashMap<(String, String, String, String), (bool, usize)> = HashMap::new();
        for (i, p) in route.parent_refs.iter().enumerate() {
            let key = (p.group.clone(), p.kind.clone(), p.namespace.clone(), p.name.clone());
            let section = p.section_name.clone().unwrap_or_default();
            let entry = seen.entry(key.clone());
            if let std::collections::hash_map::Entry::Occupied(e) = &entry {
                let (first_has_section, first) = *e.get();
                let first_section = route.parent_refs[first].section_name.clone().unwrap_or_default();
                if section.is_empty() || !first_has_section {
                    r.at(p.field.clone(), format!("{} {} is referenced again (spec.parentRefs[{first}]) without sectionName", p.kind, p.name));
                } else if section == first_section {
                    r.at(p.field.clone(), format!("{} {} sectionName {section:?} is repeated (spec.parentRefs[{first}])", p.kind, p.name));
                }
            } else {
                seen.insert(key, (!section.is_empty(), i));
            }
        }
    },
};

pub static GRPC_METHOD_INVALID: Rule = Rule {
    code: "MESH2016",
    name: "GrpcMethodMatchInvalid",
    level: Level::Error,
    title: "A GRPCRoute method match names neither service nor method, or malformed ones",
    kinds: &[Kind::GrpcRoute],
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"One or both of 'service' or 'method' must be specified\". With type Exact, service must be a dotted proto name (`hipstershop.CurrencyService`, no leading '/') and method a proto identifier (`GetSupportedCurrencies`). Matching only a method of a service routes nothing else of that service: other methods get gRPC status Unimplemented.",
    hint: "Write service: pkg.Service and, optionally, method: Name; leave method out to route the whole service.",
    bad: fixture!("MESH2016", "bad"),
    good: fixture!("MESH2016", "good"),
    check: |o, _, r| {
        let Resource::GrpcRoute(spec, _) = &o.resource else { return };
        static SERVICE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        static METHOD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let service_re = SERVICE.get_or_init(|| regex::Regex::new(r"(?i)^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$").expect("static"));
        let method_re = METHOD.get_or_init(|| regex::Regex::new(r"^[A-Za-z_][A-Za-z_0-9]*$").expect("static"));
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                let Some(method) = &m.method else { continue };
                let field = format!("spec.rules[{i}].matches[{j}].method");
                if method.service.is_none() && method.method.is_none() {
                    r.at(field.clone(), "one or both of service or method must be specified");
                }
                let exact = !matches!(method.r#type, Some(GrpcRouteRulesMatchesMethodType::RegularExpression));
                if exact {
                    if let Some(s) = &method.service {
                        if !service_re.is_match(s) {
                            r.at(format!("{field}.service"), format!("service {s:?} is not a proto service name such as pkg.Service"));
                        }
                    }
                    if let Some(m) = &method.method {
                        if !method_re.is_match(m) {
                            r.at(format!("{field}.method"), format!("method {m:?} is not a proto method name"));
                        }
                    }
                }
            }
        }
    },
};

pub static REGEX_INVALID: Rule = Rule {
    code: "MESH2017",
    name: "RegexInvalid",
    level: Level::Error,
    title: "A RegularExpression match does not compile",
    kinds: HTTP_GRPC,
    scope: Scope::Object,
    reason: Some("UnsupportedValue"),
    doc: "RegularExpression path, header and query matches are compiled by the proxy (Envoy uses RE2). A pattern that does not compile makes the proxy reject the route configuration; RE2 has no look-around or back-references.",
    hint: "Fix the pattern; test it with an RE2-compatible engine. Prefer PathPrefix/Exact where they suffice.",
    bad: fixture!("MESH2017", "bad"),
    good: fixture!("MESH2017", "good"),
    check: |o, _, r| {
        let check = |field: String, pattern: &str, r: &mut Report<'_>| {
            if let Err(e) = regex::Regex::new(pattern) {
                let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
                r.at(field, format!("regular expression {pattern:?} does not compile: {first}"));
            }
        };
        match &o.resource {
            Resource::HttpRoute(spec, _) => {
                for (i, rule) in spec.rules.iter().flatten().enumerate() {
                    for (j, m) in rule.matches.iter().flatten().enumerate() {
                        let base = format!("spec.rules[{i}].matches[{j}]");
                        if let Some(p) = &m.path {
                            if let (Some(HttpRouteRulesMatchesPathType::RegularExpression), Some(v)) = (&p.r#type, &p.value) {
                                check(format!("{base}.path.value"), v, r);
                            }
                        }
                        for (k, h) in m.headers.iter().flatten().enumerate() {
                            if matches!(h.r#type, Some(HttpRouteRulesMatchesHeadersType::RegularExpression)) {
                                check(format!("{base}.headers[{k}].value"), &h.value, r);
                            }
                        }
                        for (k, q) in m.query_params.iter().flatten().enumerate() {
                            if matches!(q.r#type, Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression)) {
                                check(format!("{base}.queryParams[{k}].value"), &q.value, r);
                            }
                        }
                    }
                }
            }
            Resource::GrpcRoute(spec, _) => {
                for (i, rule) in spec.rules.iter().flatten().enumerate() {
                    for (j, m) in rule.matches.iter().flatten().enumerate() {
                        let Some(method) = &m.method else { continue };
                        if matches!(method.r#type, Some(GrpcRouteRulesMatchesMethodType::RegularExpression)) {
                            for (name, v) in [("service", &method.service), ("method", &method.method)] {
                                if let Some(v) = v {
                                    check(format!("spec.rules[{i}].matches[{j}].method.{name}"), v, r);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    },
};

pub static RULE_NAME_DUPLICATE: Rule = Rule {
    code: "MESH2018",
    name: "RuleNameDuplicate",
    level: Level::Error,
    title: "Two rules of a route have the same name",
    kinds: crate::kind::ROUTE_KINDS,
    scope: Scope::Object,
    reason: None,
    doc: "CEL: \"Rule name must be unique within the route\". Rule names identify a rule in status messages and in policies that target a single rule (sectionName).",
    hint: "Give every named rule its own name.",
    bad: fixture!("MESH2018", "bad"),
    good: fixture!("MESH2018", "good"),
    check: |o, _, r| {
        let mut seen: HashMap<String, String> = HashMap::new();
        crate::walk::each(&o.raw, "spec.rules[*].name", &mut |path, v| {
            if let Some(n) = v.as_str() {
                let rule = path.trim_end_matches(".name").to_string();
                if let Some(first) = seen.insert(n.to_string(), rule) {
                    r.at(path, format!("rule name {n:?} is already used by {first}"));
                }
            }
        });
    },
};
