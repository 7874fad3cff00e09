use proptest::prelude::*;

use super::*;
use crate::load::{load_str, LoadOptions};
use crate::plan::Request;

fn examples() -> Plan {
    crate::testing::clean_examples_plan()
}

fn req<'a>(
    host: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    query: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request {
        host,
        path,
        method: "GET",
        headers,
        query,
    }
}

/// (route name, rule) and first backend cluster of a decision.
fn chosen(plan: &Plan, listener: &str, r: &Request<'_>) -> Option<(String, usize, Option<String>)> {
    let d = plan.decide(listener, r)?;
    let e = d.route?;
    let cluster = match &e.action {
        Action::Forward(b) => b.first().and_then(|b| b.cluster.clone()),
        Action::Redirect => Some("redirect".into()),
    };
    Some((e.source.name.clone(), e.source.rule, cluster))
}

#[test]
fn bookinfo_path_header_query_routing() {
    let plan = examples();
    let l = "default/my-gateway/web-gw";
    assert_eq!(
        chosen(&plan, l, &req("x", "/details/1", &[], &[])),
        Some(("http-app-1".into(), 0, Some("default/details:9080".into())))
    );
    let h = [("magic", "foo")];
    let q = [("great", "example")];
    assert_eq!(
        chosen(&plan, l, &req("x", "/", &h, &q)),
        Some((
            "http-app-1".into(),
            1,
            Some("default/productpage:9080".into())
        ))
    );
    assert_eq!(
        chosen(&plan, l, &req("x", "/", &h, &[])),
        None,
        "the query match is required: 404"
    );
    assert_eq!(
        chosen(&plan, l, &req("x", "/detailsx", &[], &[])),
        None,
        "whole segments"
    );
    let endpoints = &plan.clusters["default/details:9080"].endpoints;
    assert_eq!(
        endpoints,
        &vec![Endpoint {
            address: "127.0.0.11".into(),
            port: 9080
        }]
    );
}

#[test]
fn acme_hr_is_not_attached() {
    let plan = examples();
    let l = "infra-ns/shared-gateway/shared-http";
    assert_eq!(
        chosen(&plan, l, &req("x", "/product", &[], &[])).map(|c| c.2),
        Some(Some("product/echo-product:9080".into()))
    );
    assert_eq!(
        chosen(&plan, l, &req("x", "/careers", &[], &[])).map(|c| c.0),
        Some("cross-namespace".into())
    );
    assert_eq!(
        chosen(&plan, l, &req("x", "/hr", &[], &[])),
        None,
        "the hr route is NotAllowedByListeners: 404"
    );
}

#[test]
fn gamma_routes_on_the_mesh_entry() {
    let plan = examples();
    for host in [
        "echo",
        "echo.gamma",
        "echo.gamma.svc",
        "echo.gamma.svc.cluster.local",
    ] {
        assert_eq!(
            chosen(&plan, MESH_LISTENER, &req(host, "/v1", &[], &[])).map(|c| c.2),
            Some(Some("gamma/echo-v1:80".into())),
            "{host}"
        );
    }
    assert_eq!(
        chosen(&plan, MESH_LISTENER, &req("echo", "/v2", &[], &[])).map(|c| c.2),
        Some(Some("gamma/echo-v2:80".into()))
    );
    assert_eq!(
        chosen(&plan, MESH_LISTENER, &req("echo", "/v1/foo", &[], &[])),
        None,
        "Exact /v1 only"
    );
    let canary = plan
        .decide(MESH_LISTENER, &req("echo", "/canary", &[], &[]))
        .unwrap()
        .route
        .unwrap();
    let Action::Forward(b) = &canary.action else {
        panic!()
    };
    assert_eq!(b.iter().map(|b| b.weight).collect::<Vec<_>>(), [90, 10]);
    assert_eq!(
        plan.decide(MESH_LISTENER, &req("echo", "/v1", &[], &[]))
            .unwrap()
            .route
            .unwrap()
            .request_timeout_ms,
        Some(500)
    );
    // A Service without routes is reachable as it is.
    assert_eq!(
        chosen(
            &plan,
            MESH_LISTENER,
            &req("details.default:9080", "/any", &[], &[])
        )
        .map(|c| c.2),
        Some(Some("default/details:9080".into()))
    );
}

#[test]
fn redirects_rewrites_and_grpc() {
    let plan = examples();
    let l = "default/cilium-gw/http";
    assert_eq!(
        chosen(&plan, l, &req("x", "/original-prefix", &[], &[])).map(|c| c.2),
        Some(Some("redirect".into()))
    );
    assert_eq!(
        chosen(&plan, l, &req("x", "/prefix/one", &[], &[])).map(|c| c.0),
        Some("rewrite-path".into())
    );
    let g = "default/grpc-gw/grpc";
    let call = Request {
        host: "x",
        path: "/hipstershop.CurrencyService/GetSupportedCurrencies",
        method: "POST",
        headers: &[],
        query: &[],
    };
    assert_eq!(
        chosen(&plan, g, &call).map(|c| c.2),
        Some(Some("default/currencyservice:7000".into()))
    );
    let other = Request {
        path: "/hipstershop.CurrencyService/Convert",
        ..call.clone()
    };
    assert_eq!(chosen(&plan, g, &other), None, "exact method only");
}

use crate::testing::plan_of;

const GW: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 80}]\n";

fn route(name: &str, extra_meta: &str, hostnames: &str, matches: &str) -> String {
    format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}{extra_meta}}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: {hostnames}\n  rules:\n  - matches: {matches}\n")
}

#[test]
fn spec_precedence() {
    let yaml = [
        GW.to_string(),
        route("a-prefix", "", "[]", "[{path: {type: PathPrefix, value: /foo}}]"),
        route("b-longer", "", "[]", "[{path: {type: PathPrefix, value: /foo/bar}}]"),
        route("c-exact", "", "[]", "[{path: {type: Exact, value: /foo/bar}}]"),
        route("d-method", "", "[]", "[{path: {type: PathPrefix, value: /foo}, method: GET}]"),
        route("e-header", "", "[]", "[{path: {type: PathPrefix, value: /foo}, method: GET, headers: [{name: x, value: '1'}]}]"),
        route("z-old", ", creationTimestamp: '2020-01-01T00:00:00Z'", "[]", "[{path: {type: PathPrefix, value: /q}}]"),
        route("a-new", ", creationTimestamp: '2024-01-01T00:00:00Z'", "[]", "[{path: {type: PathPrefix, value: /q}}]"),
        route("host-exact", "", "[a.example.com]", "[{path: {type: PathPrefix, value: /}}]"),
        route("host-wild", "", "['*.example.com']", "[{path: {type: PathPrefix, value: /}}]"),
        route("host-wilder", "", "['*.b.example.com']", "[{path: {type: PathPrefix, value: /}}]"),
    ]
    .concat();
    let plan = plan_of(&yaml);
    let l = "default/gw/web";
    let name = |host: &str, path: &str, headers: &[(&str, &str)]| {
        plan.decide(l, &req(host, path, headers, &[]))
            .and_then(|d| d.route)
            .map(|r| r.source.name.clone())
    };
    assert_eq!(
        name("x", "/foo/bar", &[]).as_deref(),
        Some("c-exact"),
        "Exact over any prefix"
    );
    assert_eq!(
        name("x", "/foo/bar/baz", &[]).as_deref(),
        Some("b-longer"),
        "longest prefix"
    );
    assert_eq!(
        name("x", "/foo/x", &[]).as_deref(),
        Some("d-method"),
        "method match over none"
    );
    assert_eq!(
        name("x", "/foo/x", &[("x", "1")]).as_deref(),
        Some("e-header"),
        "more header matches"
    );
    assert_eq!(
        name("x", "/q", &[]).as_deref(),
        Some("z-old"),
        "the oldest route, whatever its name"
    );
    assert_eq!(
        name("a.example.com", "/q", &[]).as_deref(),
        Some("host-exact"),
        "exact host over wildcard and catch-all"
    );
    assert_eq!(
        name("c.b.example.com", "/", &[]).as_deref(),
        Some("host-wilder"),
        "longest wildcard"
    );
    assert_eq!(
        name("c.example.com", "/", &[]).as_deref(),
        Some("host-wild")
    );
    assert_eq!(
        name("example.com", "/q", &[]).as_deref(),
        Some("z-old"),
        "*.example.com does not cover example.com"
    );
}

// ---- decide agrees with the naive spec-ordered scan on random route sets

const PATHS: &[&str] = &["/", "/a", "/a/b", "/a/b/c", "/b", "/ab", "/a/", "/c/d"];

fn random_route() -> impl Strategy<Value = String> {
    (
        0usize..3,
        prop::sample::select(PATHS),
        prop::option::of(prop::sample::select(vec!["GET", "POST"])),
        prop::collection::vec(prop::sample::select(vec!["x", "y"]), 0..3),
        prop::collection::vec(prop::sample::select(vec!["q", "r"]), 0..2),
        prop::option::of(0u8..3),
        "[a-d]",
    )
        .prop_map(|(ty, path, method, headers, query, ts, name)| {
            let ty = ["Exact", "PathPrefix", "RegularExpression"][ty];
            let path = if ty == "RegularExpression" {
                format!("{path}.*")
            } else {
                path.to_string()
            };
            let mut m = format!("{{path: {{type: {ty}, value: '{path}'}}");
            if let Some(method) = method {
                m.push_str(&format!(", method: {method}"));
            }
            let mut hs: Vec<&str> = headers;
            hs.sort();
            hs.dedup();
            if !hs.is_empty() {
                m.push_str(&format!(
                    ", headers: [{}]",
                    hs.iter()
                        .map(|h| format!("{{name: '{h}', value: '1'}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let mut qs: Vec<&str> = query;
            qs.sort();
            qs.dedup();
            if !qs.is_empty() {
                m.push_str(&format!(
                    ", queryParams: [{}]",
                    qs.iter()
                        .map(|q| format!("{{name: '{q}', value: '1'}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            m.push('}');
            let meta = ts
                .map(|t| format!(", creationTimestamp: '202{t}-01-01T00:00:00Z'"))
                .unwrap_or_default();
            format!("{name}|{meta}|[{m}]")
        })
}

/// A request: path, method, headers, query parameters.
type RandomRequest = (
    String,
    String,
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, &'static str)>,
);

fn random_request() -> impl Strategy<Value = RandomRequest> {
    (
        prop::sample::select(vec![
            "/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/ab", "/a/", "/b/x", "/c/d", "//a", "/abc",
            "x",
        ]),
        prop::sample::select(vec!["GET", "POST", "PUT"]),
        prop::collection::vec(prop::sample::select(vec!["x", "y", "z"]), 0..3),
        prop::collection::vec(prop::sample::select(vec!["q", "r"]), 0..2),
    )
        .prop_map(|(p, m, h, q)| {
            (
                p.to_string(),
                m.to_string(),
                h.into_iter().map(|n| (n, "1")).collect(),
                q.into_iter().map(|n| (n, "1")).collect(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn decide_agrees_with_the_naive_scan(routes in prop::collection::vec(random_route(), 1..25), requests in prop::collection::vec(random_request(), 1..30)) {
        let mut yaml = GW.to_string();
        for (i, r) in routes.iter().enumerate() {
            let mut parts = r.splitn(3, '|');
            let (name, meta, matches) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            yaml.push_str(&route(&format!("{name}{i}"), meta, "[]", matches));
        }
        let plan = plan_of(&yaml);
        if plan.listeners[0].virtual_hosts.is_empty() {
            let objects = load_str(&yaml, crate::Source::Stdin, &LoadOptions::default()).unwrap();
            panic!("{yaml}\n{:?}", objects.iter().map(|o| (&o.name, &o.problems)).collect::<Vec<_>>());
        }
        let vh = &plan.listeners[0].virtual_hosts[0];
        for (path, method, headers, query) in &requests {
            let r = Request { host: "h", path, method, headers, query };
            let fast = plan.decide("default/gw/web", &r).and_then(|d| d.route).map(|e| e.source.clone());
            let slow = vh.scan(&r).map(|e| e.source.clone());
            prop_assert_eq!(fast, slow, "{} {}", method, path);
        }
    }
}

#[test]
fn the_tighter_timeout_is_the_deadline() {
    let plan = examples();
    let deadline = |name: &str, rule: usize| {
        plan.listeners
            .iter()
            .flat_map(|l| &l.virtual_hosts)
            .flat_map(|v| &v.routes)
            .find(|e| e.source.name == name && e.source.rule == rule)
            .map(|e| e.deadline_ms())
    };
    assert_eq!(deadline("gamma-route", 0), Some(Some(500)));
    assert_eq!(
        deadline("gamma-route", 1),
        Some(Some(300)),
        "backendRequest"
    );
    assert_eq!(deadline("load-balancing-route", 1), Some(None));
}

#[test]
fn route_status_agrees_with_what_is_served() {
    let plan = examples();
    let status = |ns: &str, name: &str| {
        plan.route_status
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .unwrap_or_else(|| panic!("no status for {ns}/{name}"))
    };
    let gw = "Gateway infra-ns/shared-gateway";
    let product = status("product", "cross-namespace");
    assert!(product.condition(gw, "Accepted").unwrap().status);
    assert!(product.condition(gw, "ResolvedRefs").unwrap().status);
    let tls = status("default", "nginx");
    assert_eq!(
        tls.condition("Gateway default/cilium-tls-gateway", "Accepted")
            .map(|c| c.reason),
        Some("Accepted")
    );

    let hr = plan_of(include_str!(
        "../../../../examples/broken/acme-hr-not-allowed.yaml"
    ));
    let hr = hr.route_status[0].condition(gw, "Accepted").unwrap();
    assert_eq!((hr.status, hr.reason), (false, "NotAllowedByListeners"));

    let broken =
        include_str!("../../../../examples/broken/cross-namespace-backend-without-grant.yaml");
    let plan = plan_of(&format!(
        "{}---\n{broken}",
        GW.replace("{name: gw}", "{name: my-gateway}")
    ));
    let refs = plan.route_status[0]
        .condition("Gateway default/my-gateway", "ResolvedRefs")
        .unwrap();
    assert_eq!((refs.status, refs.reason), (false, "RefNotPermitted"));
    assert!(
        refs.message.contains("backends/details"),
        "{}",
        refs.message
    );
}

#[test]
fn listeners_sharing_a_port_are_chosen_by_hostname() {
    let plan = plan_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  gatewayClassName: c\n  listeners:\n  - {name: any, protocol: HTTP, port: 80}\n  - {name: wild, protocol: HTTP, port: 80, hostname: '*.example.com'}\n  - {name: foo, protocol: HTTP, port: 80, hostname: foo.example.com}\n  - {name: other, protocol: HTTP, port: 81, hostname: foo.example.com}\n",
    );
    let on = |port: u16, host: &str| plan.listener_for(port, host).map(|l| l.name.clone());
    assert_eq!(on(80, "foo.example.com").as_deref(), Some("default/gw/foo"));
    assert_eq!(on(80, "FOO.example.com").as_deref(), Some("default/gw/foo"));
    assert_eq!(
        on(80, "bar.example.com").as_deref(),
        Some("default/gw/wild")
    );
    assert_eq!(on(80, "example.org").as_deref(), Some("default/gw/any"));
    assert_eq!(
        on(81, "bar.example.com"),
        None,
        "no listener on 81 takes it"
    );
    assert_eq!(on(82, "foo.example.com"), None);
}

#[test]
fn gateway_status_names_listener_problems_with_the_spec_reasons() {
    let plan = examples();
    let acme = plan
        .gateway_status
        .iter()
        .find(|g| g.name == "shared-gateway")
        .unwrap();
    assert!(acme.condition("Accepted").unwrap().status);
    assert!(acme.condition("Programmed").unwrap().status);
    let l = &acme.listeners[0];
    // product and careers attach; hr's namespace is not selected.
    assert_eq!(l.attached_routes, 2, "{l:?}");
    for (kind, status) in [
        ("Accepted", true),
        ("Conflicted", false),
        ("ResolvedRefs", true),
        ("Programmed", true),
    ] {
        assert_eq!(l.condition(kind).unwrap().status, status, "{kind}: {l:?}");
    }

    let gw = |listeners: &str| {
        plan_of(&format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\nspec:\n  gatewayClassName: c\n  listeners: {listeners}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: other, namespace: default}}\ntype: Opaque\n"
        ))
        .gateway_status
        .remove(0)
    };
    let status = gw("[{name: web, protocol: HTTP, port: 80}, {name: db, protocol: example.com/redis, port: 5432}, {name: term, protocol: TLS, port: 5433, hostname: db.example, tls: {mode: Terminate, certificateRefs: [{name: other}]}}, {name: a, protocol: HTTPS, port: 8443, hostname: x.example, tls: {certificateRefs: [{name: other}]}}, {name: b, protocol: TLS, port: 8443, hostname: x.example, tls: {mode: Passthrough}}, {name: tls, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: missing}]}}]");
    let reason = |l: &str, kind: &str| {
        let c = status.listener(l).unwrap().condition(kind).unwrap();
        (c.status, c.reason)
    };
    assert_eq!(reason("web", "Programmed"), (true, "Programmed"));
    assert_eq!(reason("db", "Accepted"), (false, "UnsupportedProtocol"));
    assert_eq!(reason("db", "Programmed"), (false, "Invalid"));
    // TLS Terminate is served; this one's certificate is no kubernetes.io/tls Secret.
    assert_eq!(reason("term", "Accepted"), (true, "Accepted"));
    assert_eq!(
        reason("term", "ResolvedRefs"),
        (false, "InvalidCertificateRef")
    );
    assert_eq!(reason("term", "Programmed"), (false, "Invalid"));
    // In conflict: not accepted, not programmed, for the conflict's reason.
    assert_eq!(reason("b", "Conflicted"), (true, "HostnameConflict"));
    assert_eq!(reason("b", "Accepted"), (false, "HostnameConflict"));
    assert_eq!(reason("b", "Programmed"), (false, "HostnameConflict"));
    assert_eq!(reason("web", "Conflicted"), (false, "NoConflicts"));
    assert_eq!(
        reason("tls", "ResolvedRefs"),
        (false, "InvalidCertificateRef")
    );
    assert_eq!(reason("tls", "Programmed"), (false, "Invalid"));
    // Some listeners cannot be served: the Gateway is accepted and says so.
    let accepted = status.condition("Accepted").unwrap();
    assert_eq!(
        (accepted.status, accepted.reason),
        (true, "ListenersNotValid")
    );
    assert!(status.condition("Programmed").unwrap().status);

    let none = gw("[{name: db, protocol: example.com/redis, port: 5432}]");
    let accepted = none.condition("Accepted").unwrap();
    assert_eq!(
        (accepted.status, accepted.reason),
        (false, "ListenersNotValid")
    );
    assert_eq!(none.condition("Programmed").unwrap().reason, "Invalid");
}

/// GEP-1713's precedence, as the conformance suite's ListenerSetProtocolConflict has it: the
/// Gateway's listeners first, then each ListenerSet's in order, a listener conflicting only
/// with earlier ones that were accepted; a ListenerSet with some listeners accepted is
/// Accepted and Programmed, one with none is neither (ListenersNotValid), and the Gateway
/// counts the accepted ones.
#[test]
fn listener_set_listeners_yield_to_those_that_take_precedence() {
    let plan = plan_of(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: c
  allowedListeners: {namespaces: {from: Same}}
  listeners:
  - {name: gw, port: 80, protocol: HTTP, hostname: gw.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: a, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRef: {name: gw}
  listeners:
  - {name: one, port: 80, protocol: HTTP, hostname: one.example}
  - {name: tcp, port: 80, protocol: TCP}
  - {name: two, port: 80, protocol: HTTP, hostname: two.example}
  - {name: same, port: 80, protocol: HTTP, hostname: gw.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: b, namespace: infra, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRef: {name: gw}
  listeners:
  - {name: tcp, port: 80, protocol: TCP}
"#,
    );
    let status = |name: &str| {
        plan.gateway_status
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .clone()
    };
    let a = status("a");
    let cond = |s: &crate::plan::status::GatewayStatus, l: &str, kind: &str| {
        let c = s.listener(l).unwrap().condition(kind).unwrap().clone();
        (c.status, c.reason)
    };
    assert_eq!(cond(&a, "one", "Accepted"), (true, "Accepted"));
    assert_eq!(cond(&a, "tcp", "Accepted"), (false, "ProtocolConflict"));
    assert_eq!(cond(&a, "tcp", "Programmed"), (false, "ProtocolConflict"));
    assert_eq!(cond(&a, "tcp", "Conflicted"), (true, "ProtocolConflict"));
    assert_eq!(
        cond(&a, "two", "Accepted"),
        (true, "Accepted"),
        "the rejected TCP listener does not take port 80 from it"
    );
    assert_eq!(cond(&a, "same", "Accepted"), (false, "HostnameConflict"));
    assert!(a.condition("Accepted").unwrap().status);
    assert!(a.condition("Programmed").unwrap().status);
    let b = status("b");
    for kind in ["Accepted", "Programmed"] {
        let c = b.condition(kind).unwrap();
        assert_eq!((c.status, c.reason), (false, "ListenersNotValid"), "{kind}");
    }
    assert_eq!(status("gw").attached_listener_sets, Some(1));
    assert_eq!(a.attached_listener_sets, None);
}

#[test]
fn listener_sets_serve_at_their_gateway_while_it_allows_them() {
    let yaml = |allowed: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: infra}}\nspec:\n  gatewayClassName: c\n  listeners: [{{name: web, protocol: HTTP, port: 80, hostname: gw.example}}]\n{allowed}---\napiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {{name: gw, namespace: infra}}\nspec:\n  parentRef: {{name: gw}}\n  listeners: [{{name: web, protocol: HTTP, port: 80, hostname: ls.example}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: infra}}\nspec:\n  parentRefs: [{{kind: ListenerSet, name: gw}}]\n  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]\n"
        )
    };
    let plan = plan_of(&yaml("  allowedListeners: {namespaces: {from: Same}}\n"));
    let ls = plan
        .listeners
        .iter()
        .find(|l| l.name == "infra/ListenerSet/gw/web")
        .expect("the ListenerSet's listener is served");
    assert_eq!(
        ls.gateway.as_deref(),
        Some("infra/gw"),
        "bound at its Gateway"
    );
    assert_eq!(ls.parent, "ListenerSet infra/gw");
    assert_eq!(ls.virtual_hosts.len(), 1, "the route on the ListenerSet");
    assert_eq!(
        plan.listener_for(80, "ls.example").map(|l| l.name.as_str()),
        Some("infra/ListenerSet/gw/web")
    );
    let gw = plan
        .listeners
        .iter()
        .find(|l| l.name == "infra/gw/web")
        .unwrap();
    assert!(
        gw.virtual_hosts.is_empty(),
        "a route on the ListenerSet is not on the Gateway's own listener (same names)"
    );
    let status = plan
        .gateway_status
        .iter()
        .find(|g| g.kind == "ListenerSet")
        .unwrap();
    assert_eq!(status.listeners[0].attached_routes, 1);

    // Without allowedListeners the Gateway accepts no ListenerSet: nothing of it serves.
    let plan = plan_of(&yaml(""));
    assert!(
        plan.listeners
            .iter()
            .all(|l| !l.name.contains("ListenerSet")),
        "{:?}",
        plan.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
    );
}

#[test]
fn named_rules_are_named_in_explain() {
    use crate::plan::explain::{explain, Question};
    let plan = plan_of(&format!(
        "{GW}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - name: checkout\n    matches: [{{path: {{type: PathPrefix, value: /pay}}}}]\n  - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n"
    ));
    let ask = |path: &str| {
        let q = Question::parse(&format!("http://shop.example{path}"), "GET", &[], None).unwrap();
        let l = plan
            .listener_for(80, "shop.example")
            .map(|l| l.name.clone());
        explain(&plan, l.as_deref(), &q).route.unwrap()
    };
    assert_eq!(ask("/pay").rule_name.as_deref(), Some("checkout"));
    assert_eq!(ask("/other").rule_name, None);
}

#[test]
fn gateways_ask_for_addresses_mesh_agent_can_bind() {
    let yaml = |addresses: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: g, namespace: d}}\nspec:\n  gatewayClassName: c\n  addresses: {addresses}\n  listeners: [{{name: http, port: 8080, protocol: HTTP}}]\n"
        )
    };
    // An address type mesh-agent cannot honour: not accepted, nothing served.
    let plan = plan_of(&yaml(
        "[{type: test/fake-invalid-type, value: 'fake'}, {value: 127.0.9.9}]",
    ));
    let accepted = plan.gateway_status[0].condition("Accepted").unwrap();
    assert_eq!(
        (accepted.status, accepted.reason),
        (false, "UnsupportedAddress")
    );
    assert!(plan.listeners.iter().all(|l| l.gateway() != Some("d/g")));
    // IP addresses: served, asking for them in order.
    let plan = plan_of(&yaml(
        "[{value: 127.0.9.9}, {type: IPAddress, value: '::1'}]",
    ));
    let l = plan
        .listeners
        .iter()
        .find(|l| l.gateway() == Some("d/g"))
        .expect("served");
    let want: Vec<std::net::IpAddr> = vec!["127.0.9.9".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(l.requested_addresses, want);
}

/// The socket load balancer's table: one frontend per ClusterIP Service port (53/UDP and
/// 53/TCP are two), none for headless or ExternalName Services, L7 only where a mesh route
/// is attached, backends in the port's cluster.
#[test]
fn service_table_lists_cluster_ip_frontends() {
    use crate::plan::services::Transport;
    let yaml = "
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, 'fd00::a']
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec: {clusterIP: None, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 9000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: admin, port: 9000}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}, {addresses: [10.0.0.2], conditions: {ready: false}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{group: '', kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";
    let plan = plan_of(yaml);
    let rows: Vec<(String, u16, Transport, bool, usize)> = plan
        .services
        .iter()
        .map(|f| {
            (
                f.service.clone(),
                f.port,
                f.transport,
                f.l7,
                f.addresses.len(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("kube-system/dns".to_string(), 53, Transport::Udp, false, 2),
            ("kube-system/dns".to_string(), 53, Transport::Tcp, false, 2),
            ("default/web".to_string(), 80, Transport::Tcp, true, 1),
            ("default/web".to_string(), 9000, Transport::Tcp, false, 1),
        ]
    );
    let web = plan
        .services
        .find("10.96.0.20:80".parse().unwrap(), Transport::Tcp)
        .unwrap();
    assert_eq!(web.authority(), "web.default.svc.cluster.local");
    let endpoints = &plan.clusters[&web.cluster].endpoints;
    assert_eq!(endpoints.len(), 1, "only the ready endpoint: {endpoints:?}");
    assert_eq!(
        (endpoints[0].address.as_str(), endpoints[0].port),
        ("10.0.0.1", 8080)
    );
    // An IPv4-mapped address finds the IPv4 frontend; the other transport does not.
    assert!(plan
        .services
        .find("[::ffff:10.96.0.10]:53".parse().unwrap(), Transport::Udp)
        .is_some());
    assert!(plan
        .services
        .find("10.96.0.20:80".parse().unwrap(), Transport::Udp)
        .is_none());
}

/// While no endpoint of a Service port is ready, its serving terminating endpoints are the
/// socket load balancer's backends (kube-proxy's fallback, KEP-1669); one ready endpoint ends
/// the fallback; a terminating endpoint that no longer serves is never one.
#[test]
fn service_table_falls_back_to_serving_terminating_endpoints() {
    let yaml = |second: &str| {
        format!(
            "
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{clusterIP: 10.96.0.20, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
- {{addresses: [10.0.0.1], conditions: {{ready: false, serving: true, terminating: true}}}}
- {{addresses: [10.0.0.2], conditions: {{ready: false, serving: false, terminating: true}}}}
- {{addresses: [10.0.0.3], conditions: {second}}}
"
        )
    };
    let all_terminating = plan_of(&yaml("{ready: false, serving: true, terminating: true}"));
    let web = all_terminating.services.iter().next().unwrap();
    assert!(all_terminating.clusters[&web.cluster].endpoints.is_empty());
    let fallback: Vec<&str> = web.terminating.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(fallback, ["10.0.0.1", "10.0.0.3"]);
    assert_eq!(web.terminating[0].port, 8080);

    let one_ready = plan_of(&yaml("{ready: true}"));
    let web = one_ready.services.iter().next().unwrap();
    assert!(web.terminating.is_empty());
    assert_eq!(one_ready.clusters[&web.cluster].endpoints.len(), 1);
}

/// Frontend validation problems are the listeners' of the port (ResolvedRefs names the
/// reference's problem, Accepted=False NoValidCACertificate when no CA is usable), and an
/// insecure fallback is said on the Gateway, as the conformance suite checks them.
#[test]
fn frontend_validation_problems_are_the_listeners() {
    let gw = |frontend: &str| {
        plan_of(&format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: c
  tls:
    frontend: {frontend}
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {{certificateRefs: [{{name: cert}}]}}
  - {{name: http, port: 80, protocol: HTTP}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca, namespace: infra}}
data: {{ca.crt: "-----BEGIN CERTIFICATE-----"}}
"#
        ))
        .gateway_status
        .remove(0)
    };
    let status = gw("{default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: missing}]}}}");
    let cond = |s: &crate::plan::status::GatewayStatus, l: &str, kind: &str| {
        let c = s.listener(l).unwrap().condition(kind).unwrap().clone();
        (c.status, c.reason)
    };
    assert_eq!(
        cond(&status, "https", "ResolvedRefs"),
        (false, "InvalidCACertificateRef")
    );
    assert_eq!(
        cond(&status, "https", "Accepted"),
        (false, "NoValidCACertificate")
    );
    assert!(!cond(&status, "https", "Programmed").0);
    assert_eq!(cond(&status, "http", "Accepted"), (true, "Accepted"));
    assert!(status.condition("InsecureFrontendValidationMode").is_none());
    let status = gw("{default: {validation: {mode: AllowInsecureFallback, caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}}}");
    let c = status.condition("InsecureFrontendValidationMode").unwrap();
    assert_eq!((c.status, c.reason), (true, "ConfigurationChanged"));
}
