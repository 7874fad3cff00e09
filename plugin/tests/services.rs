//! `kubectl mesh proxy-config services`: read from the pinned maps of programs loaded on this
//! kernel (`--bpf-pin`), and from a mesh-agent's admin API answer (`--admin`).

use std::io::{Read, Write};
use std::process::{Command, Output};

use mesh_bpf::table::{Backend, Entry, Table};
use mesh_model::plan::services::Transport;
use serde_json::Value;

fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

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
