//! `decide-bench`: the cost of `Plan::decide` with many routes.
//!
//! Compiles a Plan of N HTTPRoutes spread over 50 hostnames (exact and wildcard) on one
//! listener; each route has a path prefix two segments deep and an Exact path three deep, a
//! quarter a method match and a quarter a header match. Then times `decide` for requests
//! derived from the routes (exact hits, deeper prefix hits, the bare prefix, and a quarter
//! misses), half with the matching header, one call at a
//! time (`Instant` around each call, whose own cost, about 20-30 ns, is included), and reports
//! p50, p99 and p99.9.

use std::time::Instant;

use mesh_model::load::{load_str, LoadOptions};
use mesh_model::plan::{compile, Request};
use mesh_model::{Snapshot, Source};

fn corpus(routes: usize) -> String {
    let mut out = String::from("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  gatewayClassName: c\n  listeners: [{name: web, protocol: HTTP, port: 80}]\n");
    for i in 0..routes {
        let host = if i % 5 == 0 {
            format!("'*.w{}.example.com'", i % 50)
        } else {
            format!("h{}.example.com", i % 50)
        };
        let extra = match i % 4 {
            0 => ", method: GET".to_string(),
            1 => ", headers: [{name: x-version, value: v2}]".to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [{host}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /svc{}/api{}}}{extra}}}, {{path: {{type: Exact, value: /svc{}/api{}/v{}}}}}]\n    backendRefs: [{{name: s, port: 80}}]\n",
            i % 97,
            i % 13,
            i % 97,
            i % 13,
            i % 7
        ));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let routes: usize = args
        .iter()
        .position(|a| a == "--routes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let calls: usize = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let objects =
        load_str(&corpus(routes), Source::Stdin, &LoadOptions::default()).expect("corpus");
    let start = Instant::now();
    let plan = compile(&Snapshot::new(objects));
    let compile_ms = start.elapsed().as_millis();
    let entries: usize = plan
        .listeners
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .map(|v| v.routes.len())
        .sum();

    let headers = [("x-version", "v2")];
    let none: [(&str, &str); 0] = [];
    // Requests derived from the routes: exact hits, deeper prefix hits, and misses.
    let mut reqs: Vec<(String, String)> = Vec::new();
    for k in (0..routes).step_by((routes / 512).max(1)) {
        let host = if k % 5 == 0 {
            format!("a.w{}.example.com", k % 50)
        } else {
            format!("h{}.example.com", k % 50)
        };
        let base = format!("/svc{}/api{}", k % 97, k % 13);
        reqs.push((host.clone(), format!("{base}/v{}", k % 7)));
        reqs.push((host.clone(), format!("{base}/items/{k}")));
        reqs.push((host.clone(), base));
        reqs.push((host, format!("/nothing/{k}")));
    }
    let mut times = Vec::with_capacity(calls);
    let mut matched = 0usize;
    for i in 0..calls {
        let (host, path) = &reqs[(i * 7919) % reqs.len()];
        let req = Request {
            host,
            path,
            method: "GET",
            headers: if i % 2 == 0 { &headers } else { &none },
            query: &[],
        };
        let t = Instant::now();
        let d = plan.decide("default/gw/web", &req);
        times.push(t.elapsed());
        matched += usize::from(d.and_then(|d| d.route).is_some());
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_nanos();
    println!("| routes | route entries | compile (ms) | calls | matched | p50 (ns) | p99 (ns) | p99.9 (ns) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {routes} | {entries} | {compile_ms} | {calls} | {matched} | {} | {} | {} |",
        at(0.5),
        at(0.99),
        at(0.999)
    );
}
