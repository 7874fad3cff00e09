//! Envoy as the oracle for the Plan: the bundled examples are compiled, every endpoint gets a
//! mesh-echo backend on its EndpointSlice address, real Envoy 1.40 runs the rendered bootstrap,
//! and every request must reach the backend `Plan::decide` predicts (or get the 404 or redirect
//! it predicts). What the backend received (rewritten path, added headers) is checked too.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh_model::plan::{query_pairs, render, Action, Plan, Request, MESH_LISTENER};
use serde_json::Value;

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn plan() -> Plan {
    mesh_model::testing::clean_examples_plan()
}

/// One request of the scenario list: listener, host, method, path, headers.
struct Case {
    listener: &'static str,
    host: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

fn case(
    listener: &'static str,
    host: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &[(&'static str, &'static str)],
) -> Case {
    Case {
        listener,
        host,
        method,
        path,
        headers: headers.to_vec(),
    }
}

#[test]
fn envoy_routes_every_request_where_decide_says() {
    let Some(envoy) = mesh_model::testing::envoy_for_test() else {
        return;
    };
    let plan = plan();
    let mut children = Killed(Vec::new());

    // A backend per endpoint; it reports the Service it stands for as its pod name.
    for b in mesh_echo::backends_for(&plan) {
        children.0.push(
            Command::new(env!("CARGO_BIN_EXE_mesh-echo"))
                .args(["--listen", &b.listen.to_string(), "--pod", &b.pod])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    // Envoy on the rendered bootstrap; Gateway listeners on 127.0.0.3 to stay clear of others.
    let opts = render::RenderOptions {
        gateway_address: "127.0.0.3".into(),
        outbound_address: "127.0.0.1".into(),
        outbound_port: mesh_model::testing::free_port(),
        admin_port: mesh_model::testing::free_port(),
    };
    let config = render::bootstrap(&plan, &opts);
    let file = std::env::temp_dir().join(format!("mesh-differential-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    children.0.push(
        mesh_model::testing::envoy_command(&envoy, &file, std::process::id() % 60000)
            .spawn()
            .unwrap(),
    );
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ready = format!("http://127.0.0.1:{}/ready", opts.admin_port);
    let mut live = false;
    for _ in 0..100 {
        if client.get(&ready).send().is_ok_and(|r| r.status() == 200) {
            live = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(live, "envoy did not become ready");

    let gw = |name: &str| {
        plan.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.port)
            .unwrap()
    };
    let cases = vec![
        case(
            "default/my-gateway/web-gw",
            "bookinfo",
            "GET",
            "/details/1",
            &[],
        ),
        case(
            "default/my-gateway/web-gw",
            "bookinfo",
            "GET",
            "/?great=example",
            &[("magic", "foo")],
        ),
        case(
            "default/my-gateway/web-gw",
            "bookinfo",
            "GET",
            "/",
            &[("magic", "foo")],
        ),
        case(
            "default/my-gateway/web-gw",
            "bookinfo",
            "POST",
            "/?great=example",
            &[("magic", "foo")],
        ),
        case(
            "default/my-gateway/web-gw",
            "bookinfo",
            "GET",
            "/detailsx",
            &[],
        ),
        case(
            "infra-ns/shared-gateway/shared-http",
            "acme",
            "GET",
            "/product",
            &[],
        ),
        case(
            "infra-ns/shared-gateway/shared-http",
            "acme",
            "GET",
            "/careers/jobs",
            &[],
        ),
        case(
            "infra-ns/shared-gateway/shared-http",
            "acme",
            "GET",
            "/hr",
            &[],
        ),
        case("default/cilium-gw/http", "lab", "GET", "/echo", &[]),
        case(
            "default/cilium-gw/http",
            "lab",
            "GET",
            "/cilium-add-a-request-header",
            &[],
        ),
        case("default/cilium-gw/http", "lab", "GET", "/multiple", &[]),
        case("default/cilium-gw/http", "lab", "GET", "/mirror", &[]),
        case("default/cilium-gw/http", "lab", "GET", "/prefix/one", &[]),
        case(
            "default/cilium-gw/http",
            "lab",
            "GET",
            "/original-prefix",
            &[],
        ),
        case(
            "default/cilium-gw/http",
            "lab",
            "GET",
            "/path-and-status",
            &[],
        ),
        case(
            "default/cilium-gw/http",
            "lab",
            "GET",
            "/scheme-and-host",
            &[],
        ),
        case(
            "default/grpc-gw/grpc",
            "grpc",
            "POST",
            "/hipstershop.CurrencyService/GetSupportedCurrencies",
            &[],
        ),
        case(
            "default/grpc-gw/grpc",
            "grpc",
            "POST",
            "/hipstershop.CurrencyService/Convert",
            &[],
        ),
        // Listeners sharing port 8091, merged into one Envoy listener.
        case(
            "default/shared-port/foo",
            "foo.example.com",
            "GET",
            "/",
            &[],
        ),
        case(
            "default/shared-port/foo",
            "bar.example.com",
            "GET",
            "/",
            &[],
        ),
        case(
            "default/shared-port/foo",
            "quiet.example.com",
            "GET",
            "/",
            &[],
        ),
        case("default/shared-port/foo", "example.org", "GET", "/", &[]),
        case(MESH_LISTENER, "echo.gamma", "GET", "/v1", &[]),
        case(
            MESH_LISTENER,
            "echo.gamma.svc.cluster.local",
            "GET",
            "/v2",
            &[],
        ),
        case(MESH_LISTENER, "echo", "GET", "/v1/x", &[]),
        case(
            MESH_LISTENER,
            "details.default:9080",
            "GET",
            "/anything",
            &[],
        ),
        // The Service has no port 80: no route, in Envoy as in the agent.
        case(MESH_LISTENER, "details.default", "GET", "/anything", &[]),
    ];
    let mut checked = 0;
    for c in &cases {
        let (path, query) = c.path.split_once('?').unwrap_or((c.path, ""));
        let query = query_pairs(query);
        let req = Request {
            host: c.host,
            path,
            method: c.method,
            headers: &c.headers,
            query: &query,
        };
        let port = if c.listener == MESH_LISTENER {
            opts.outbound_port
        } else {
            gw(c.listener)
        };
        // As the agent does: the listener of the port whose hostname fits best, then its routes.
        let listener = if c.listener == MESH_LISTENER {
            Some(MESH_LISTENER)
        } else {
            plan.listener_for(port, c.host).map(|l| l.name.as_str())
        };
        let route = listener
            .and_then(|l| plan.decide(l, &req))
            .and_then(|d| d.route);
        let mut r = client
            .request(
                c.method.parse().unwrap(),
                format!("http://127.0.0.3:{port}{}", c.path),
            )
            .header("host", c.host);
        if c.listener == MESH_LISTENER {
            r = client
                .request(
                    c.method.parse().unwrap(),
                    format!("http://127.0.0.1:{port}{}", c.path),
                )
                .header("host", c.host);
        }
        for (k, v) in &c.headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let response_headers = resp.headers().clone();
        let what = format!("{} {} {}{}", c.listener, c.method, c.host, c.path);
        match route.map(|e| (&e.action, e)) {
            None => assert_eq!(status, 404, "{what}: decide found no route"),
            Some((Action::Redirect, e)) => {
                let code = e
                    .filters
                    .iter()
                    .find_map(|f| f.request_redirect.as_ref())
                    .and_then(|r| r.status_code)
                    .unwrap_or(302);
                assert_eq!(status as i64, code, "{what}");
                assert!(
                    response_headers.get("location").is_some(),
                    "{what}: a Location"
                );
            }
            Some((Action::Forward(backends), e)) => {
                assert_eq!(status, 200, "{what}");
                let body: Value = resp.json().unwrap();
                let services: Vec<String> = backends
                    .iter()
                    .filter(|b| b.weight > 0)
                    .filter_map(|b| b.cluster.as_deref())
                    .map(|c| c.rsplit_once(':').unwrap().0.to_string())
                    .collect();
                assert!(
                    services.iter().any(|s| s == body["pod"].as_str().unwrap()),
                    "{what}: Envoy reached {} but decide chose {services:?}",
                    body["pod"]
                );
                // What the backend saw, as the filters say.
                for f in &e.filters {
                    if let Some(rw) = f
                        .url_rewrite
                        .as_ref()
                        .and_then(|r| r.path.as_ref())
                        .and_then(|p| p.replace_prefix_match.as_deref())
                    {
                        assert_eq!(body["path"], rw, "{what}: the rewritten path");
                    }
                    for h in f
                        .request_header_modifier
                        .iter()
                        .flat_map(|m| m.add.iter().flatten())
                    {
                        assert_eq!(
                            body["headers"][h.name.to_ascii_lowercase()][0],
                            h.value.as_str(),
                            "{what}: added request header"
                        );
                    }
                    for h in f
                        .response_header_modifier
                        .iter()
                        .flat_map(|m| m.add.iter().flatten())
                    {
                        assert_eq!(
                            response_headers
                                .get(h.name.as_str())
                                .and_then(|v| v.to_str().ok()),
                            Some(h.value.as_str()),
                            "{what}: added response header"
                        );
                    }
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, cases.len());

    // Timeouts: /v1's request timeout (500 ms) and /v2's backendRequest (300 ms) against a
    // backend that takes 1 s; Envoy answers 504 as the agent does, with the same body.
    for path in ["/v1?delay=1000", "/v2?delay=1000"] {
        let resp = client
            .get(format!("http://127.0.0.1:{}{path}", opts.outbound_port))
            .header("host", "echo.gamma")
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        assert_eq!(
            (status, resp.text().unwrap()),
            (504, "upstream request timeout".to_string()),
            "{path} through Envoy"
        );
    }
    // A gRPC request no route matches: Envoy answers UNIMPLEMENTED in gRPC form, as the agent does.
    let resp = client
        .post(format!(
            "http://127.0.0.3:{}/hipstershop.CurrencyService/Convert",
            gw("default/grpc-gw/grpc")
        ))
        .header("host", "grpc")
        .header("content-type", "application/grpc")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");
    let _ = std::fs::remove_file(file);
}
