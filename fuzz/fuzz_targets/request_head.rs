//! Any bytes as an HTTP/1.1 request head, read the way mesh-agent reads one: parsed (httparse,
//! hyper's parser), its authority and path checked (`plan::target`), then routed by
//! `Plan::decide` over the bundled examples. A request is refused (400) or routed; never a
//! panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mesh_model::plan::target::{mesh_host, normalize_path, request_authority};
use mesh_model::plan::{query_pairs, Plan, Request, MESH_LISTENER};

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(mesh_model::testing::clean_examples_plan)
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return;
    };
    // Absolute-form carries the authority; origin-form leaves it to Host.
    let (authority, path_and_query) = match target.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), "/"),
        },
        None => (None, target),
    };
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value);
    let Ok(authority) = request_authority(authority, hosts) else {
        return;
    };
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let Ok(path) = normalize_path(path, false) else {
        return;
    };
    assert!(path.starts_with('/'));
    let query = query_pairs(query);
    let pairs: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let plan = plan();
    let mesh = mesh_host(&authority.host, authority.port_or(80));
    for (listener, host) in [
        (plan.listener_for(authority.port_or(80), &authority.host).map(|l| l.name.as_str()), authority.host.as_str()),
        (Some(MESH_LISTENER), mesh.as_ref()),
    ] {
        let Some(listener) = listener else { continue };
        let r = Request { host, path: &path, method, headers: &pairs, query: &query };
        if let Some(d) = plan.decide(listener, &r) {
            if let Some(e) = d.route {
                let _ = mesh_model::plan::rewrite::rewritten(e, &e.filters, &path);
            }
        }
    }
});
