//! `kubectl mesh proxy-config` against real Envoy 1.40, a saved Envoy dump, and mesh-agent's
//! dump of the examples; `proxy-config services` against eBPF maps loaded in the kernel. The golden tables were checked by hand against the fixture bootstrap;
//! the live test also checks them against what Envoy's own admin API holds.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use mesh_bpf::table::{Backend, Entry, Table};
use mesh_model::plan::services::Transport;
use serde_json::Value;

const SECTIONS: [&str; 5] = ["listeners", "routes", "clusters", "endpoints", "secrets"];

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn golden(section: &str) -> String {
    std::fs::read_to_string(here().join(format!("golden/envoy-{section}.txt"))).unwrap()
}

struct Envoy(Child, PathBuf);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Envoy on the fixture bootstrap; its admin address once it is live.
fn start_envoy() -> Option<(Envoy, String)> {
    let bin = mesh_model::testing::envoy_for_test()?;
    let dir = std::env::temp_dir().join(format!("proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let address_file = dir.join("admin");
    let bootstrap = here().join("fixtures/envoy-bootstrap.yaml");
    let child =
        mesh_model::testing::envoy_command(&bin, &bootstrap, std::process::id() % 50000 + 7)
            .arg("--admin-address-path")
            .arg(&address_file)
            .spawn()
            .unwrap();
    let envoy = Envoy(child, dir);
    for _ in 0..100 {
        if let Ok(addr) = std::fs::read_to_string(&address_file) {
            let url = format!("http://{}", addr.trim());
            if reqwest::blocking::get(format!("{url}/ready")).is_ok_and(|r| r.status() == 200) {
                return Some((envoy, url));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Envoy did not become ready");
}

#[test]
fn tables_show_what_a_live_envoy_runs() {
    let Some((_envoy, admin)) = start_envoy() else {
        return;
    };
    for section in SECTIONS {
        let table = stdout(&mesh(&["proxy-config", section, "--admin", &admin]));
        assert_eq!(table, golden(section), "{section} from {admin}");
    }
    // Checked against Envoy's own view: every cluster and host /clusters reports is a row, and
    // every route of the dump is a row.
    let hosts: Value = reqwest::blocking::get(format!("{admin}/clusters?format=json"))
        .unwrap()
        .json()
        .unwrap();
    let endpoints = golden("endpoints");
    let clusters = golden("clusters");
    for c in hosts["cluster_statuses"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(
            clusters.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}"
        );
        for h in c["host_statuses"].as_array().unwrap() {
            let addr = format!(
                "{}:{}",
                h["address"]["socket_address"]["address"].as_str().unwrap(),
                h["address"]["socket_address"]["port_value"]
            );
            let status = h["health_status"]["eds_health_status"].as_str().unwrap();
            assert!(
                endpoints
                    .lines()
                    .any(|l| l.starts_with(&addr) && l.contains(status) && l.ends_with(name)),
                "{addr} {status} {name}"
            );
        }
    }
    let dump: Value = reqwest::blocking::get(format!("{admin}/config_dump"))
        .unwrap()
        .json()
        .unwrap();
    let routes = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["@type"].as_str().unwrap().ends_with(".RoutesConfigDump"))
        .flat_map(|c| c["static_route_configs"].as_array().unwrap())
        .flat_map(|r| r["route_config"]["virtual_hosts"].as_array().unwrap())
        .map(|vh| vh["routes"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(
        golden("routes").lines().count(),
        routes + 1,
        "a row per route"
    );

    // Filters and formats.
    let only = stdout(&mesh(&[
        "proxy-config",
        "routes",
        "--admin",
        &admin,
        "--cluster",
        "reviews-v2",
    ]));
    assert_eq!(only.lines().count(), 2, "{only}");
    assert!(only.contains("reviews-v1 90%, reviews-v2 10%"));
    let short = stdout(&mesh(&[
        "proxy-config",
        "listeners",
        "--admin",
        &admin,
        "-o",
        "short",
    ]));
    assert_eq!(short, "http\ntls\n");
    let json: Value = serde_json::from_str(&stdout(&mesh(&[
        "proxy-config",
        "clusters",
        "--admin",
        &admin,
        "--name",
        "productpage",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!(json[0]["lb_policy"], "LEAST_REQUEST");
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn a_saved_dump_reads_like_the_live_proxy() {
    let file = here().join("fixtures/envoy-dump.json");
    let file = file.to_str().unwrap();
    for section in ["listeners", "routes", "clusters", "secrets"] {
        assert_eq!(
            stdout(&mesh(&["proxy-config", section, "--file", file])),
            golden(section),
            "{section}"
        );
    }
    // Endpoints come from the dump's EDS section (istioctl cannot show them from a file); the
    // outlier state is only known to a live proxy.
    let endpoints = stdout(&mesh(&["proxy-config", "endpoints", "--file", file]));
    assert!(
        endpoints.contains("127.0.0.12:9080   HEALTHY     -               3        productpage"),
        "{endpoints}"
    );
    assert_eq!(endpoints.lines().count(), 6);
    let all = stdout(&mesh(&["proxy-config", "all", "--file", file]));
    for title in ["LISTENERS", "ROUTES", "CLUSTERS", "ENDPOINTS", "SECRETS"] {
        assert!(all.contains(title), "{title}");
    }
    assert!(!all.contains("BEGIN PRIVATE KEY"));
}

#[test]
fn mesh_agent_routes_name_the_objects_they_came_from() {
    let plan = mesh_model::testing::clean_examples_plan();
    let dump = mesh_model::plan::render::config_dump(
        &plan,
        &mesh_model::plan::render::RenderOptions::default(),
        "2026-11-22T00:00:00Z",
    );
    let file = std::env::temp_dir().join(format!("agent-dump-{}.json", std::process::id()));
    std::fs::write(&file, dump.to_string()).unwrap();
    let file_arg = file.to_str().unwrap();
    let routes = stdout(&mesh(&[
        "proxy-config",
        "routes",
        "--file",
        file_arg,
        "--domain",
        "bookinfo",
        "--port",
        "8080",
    ]));
    std::fs::remove_file(&file).unwrap();
    assert!(
        routes.lines().any(|l| l.contains("segments /details")
            && l.contains("default/details:9080")
            && l.ends_with("HTTPRoute default/http-app-1 rule 0")),
        "{routes}"
    );
    assert!(
        routes
            .lines()
            .any(|l| l.contains("GET magic=foo ?great=example")),
        "header, query and method matches are shown, not /*: {routes}"
    );
}

#[test]
fn diff_names_what_changed_section_by_section() {
    let before = here().join("fixtures/envoy-dump.json");
    let mut dump: Value = serde_json::from_str(&std::fs::read_to_string(&before).unwrap()).unwrap();
    for section in dump["configs"].as_array_mut().unwrap() {
        if let Some(clusters) = section.get_mut("static_clusters") {
            let list = clusters.as_array_mut().unwrap();
            list.retain(|c| c["cluster"]["name"] != "reviews-v2");
            for c in list.iter_mut() {
                if c["cluster"]["name"] == "details" {
                    c["cluster"]["connect_timeout"] = "3s".into();
                }
            }
        }
    }
    let after = std::env::temp_dir().join(format!("dump-after-{}.json", std::process::id()));
    std::fs::write(&after, dump.to_string()).unwrap();
    let out = stdout(&mesh(&[
        "proxy-config",
        "diff",
        before.to_str().unwrap(),
        after.to_str().unwrap(),
    ]));
    std::fs::remove_file(&after).unwrap();
    assert!(out.contains("- cluster reviews-v2\n"), "{out}");
    assert!(
        out.contains("~ cluster details: connect_timeout\n"),
        "{out}"
    );
}

#[test]
fn bad_sources_say_what_to_do() {
    let none = mesh(&["proxy-config", "routes"]);
    assert_eq!(none.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--admin URL"));
    let missing = mesh(&["proxy-config", "routes", "--file", "no/such/dump.json"]);
    assert_eq!(missing.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/dump.json"));
    let not_dump = mesh(&[
        "proxy-config",
        "routes",
        "--file",
        here()
            .join("fixtures/envoy-bootstrap.yaml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(not_dump.status.code(), Some(65));
    let unreachable = mesh(&["proxy-config", "clusters", "--admin", "127.0.0.1:9"]);
    assert_eq!(unreachable.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("127.0.0.1:9"));
}

// `kubectl mesh proxy-config services`: read from the pinned maps of programs loaded on this
// kernel (`--bpf-pin`), and from a mesh-agent's admin API answer (`--admin`).

fn table() -> Table {
    let b = |a: &str, weight| Backend {
        addr: a.parse().unwrap(),
        weight,
    };
    Table {
        entries: vec![
            Entry {
                frontend: "127.10.3.1:80".parse().unwrap(),
                transport: Transport::Tcp,
                service: "lb/web".into(),
                l7: false,
                backends: vec![b("127.0.3.1:8080", 3), b("127.0.3.2:8080", 1)],
            },
            Entry {
                frontend: "127.10.3.2:53".parse().unwrap(),
                transport: Transport::Udp,
                service: "lb/dns".into(),
                l7: false,
                backends: vec![],
            },
        ],
        unrouted: vec![],
    }
}

#[cfg(target_os = "linux")]
#[test]
fn services_read_from_the_pinned_maps() {
    let Some(sandbox) = mesh_bpf::testing::Sandbox::new("plugin") else {
        return;
    };
    let mut dp = mesh_bpf::datapath::Datapath::load(&sandbox.pins, Default::default()).unwrap();
    let report = dp.sync(&table());
    assert_eq!(report.written, 2, "{report:?}");
    let pins = sandbox.pins.display().to_string();
    let out = mesh(&["proxy-config", "services", "--bpf-pin", &pins, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bpf"], "pinned");
    let web = &v["services"][0];
    assert_eq!(web["frontend"], "127.10.3.1:80");
    assert_eq!(web["protocol"], "TCP");
    assert_eq!(
        web["backends"][0],
        serde_json::json!({"address": "127.0.3.1:8080", "weight": 3})
    );
    assert_eq!(
        web["backends"][1],
        serde_json::json!({"address": "127.0.3.2:8080", "weight": 1})
    );
    assert_eq!(v["services"][1]["backends"], serde_json::json!([]));
    assert!(v["counters"]["mesh_bpf_connect_tcp_total"].is_u64(), "{v}");

    let out = mesh(&["proxy-config", "services", "--bpf-pin", &pins]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("FRONTEND"), "{text}");
    assert!(
        lines[1].contains("127.10.3.1:80")
            && lines[1].contains("127.0.3.1:8080")
            && lines[1].ends_with('3'),
        "{text}"
    );
    assert!(
        lines[3].contains("127.10.3.2:53")
            && lines[3].contains("UDP")
            && lines[3].contains("connects refused"),
        "{text}"
    );
    drop(dp);
}

#[test]
fn services_from_an_agent_admin_api_and_errors() {
    // One answer of a mesh-agent's /services, served on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body =
        serde_json::json!({"bpf": "on", "services": mesh_bpf::view::planned(&table(), 4096)})
            .to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
    });
    let out = mesh(&[
        "proxy-config",
        "services",
        "--admin",
        &addr.to_string(),
        "--service",
        "lb/web",
    ]);
    server.join().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().count(),
        3,
        "header and web's two backends: {text}"
    );
    assert!(
        text.contains("lb/web") && !text.contains("lb/dns"),
        "{text}"
    );

    // No source: a usage error saying what to pass; an unreadable one: exit 65 and why.
    let out = mesh(&["proxy-config", "services"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bpf-pin"));
    let out = mesh(&["proxy-config", "services", "--bpf-pin", "/nonexistent/pins"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pins"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
