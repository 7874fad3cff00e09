//! `kubectl mesh proxy-status` against stand-in agents that report a Plan hash: SYNCED when it
//! is the hash of the Plan compiled from the files, STALE when not, ERROR when unreachable or
//! refusing its last change. (The agent's side, that its hash is that of the files' Plan, is
//! tested in agent/tests/scenarios.rs.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::{json, Value};

/// Serve `/server_info` with `body` until the process ends; the address.
fn agent(body: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let text = body.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    addr
}

fn files_hash() -> String {
    mesh_model::plan::render::plan_hash(&mesh_model::testing::clean_examples_plan())
}

#[test]
fn synced_stale_and_error_agents() {
    let synced = agent(
        json!({"version": "0.1.0", "plan_hash": files_hash(), "last_reload": "2026-11-22T00:00:00Z"}),
    );
    let stale = agent(
        json!({"version": "0.1.0", "plan_hash": "0123456789abcdef", "last_reload": "2026-11-22T00:00:00Z"}),
    );
    let refused = agent(
        json!({"version": "0.1.0", "plan_hash": "0123456789abcdef", "last_reload_error": "MESH2104 ...\nmore"}),
    );
    let examples = mesh_model::testing::examples_dir();
    let run = |admins: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"));
        cmd.args(["proxy-status", "-o", "json"]);
        for a in admins {
            cmd.args(["--admin", a]);
        }
        for d in mesh_model::testing::CLEAN_EXAMPLES {
            cmd.arg("-f").arg(examples.join(d));
        }
        let out = cmd.output().unwrap();
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), rows)
    };
    let (code, rows) = run(&[&synced]);
    assert_eq!(code, Some(0));
    assert_eq!(rows[0]["status"], "SYNCED");
    let (code, rows) = run(&[&synced, &stale, &refused, "127.0.0.1:9"]);
    assert_eq!(code, Some(79));
    let statuses: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["SYNCED", "STALE", "ERROR", "ERROR"]);
    assert!(rows[3]["error"]
        .as_str()
        .unwrap()
        .starts_with("unreachable"));

    let table = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .args(["proxy-status", "--admin", &refused])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("AGENT"), "{text}");
    assert!(
        text.contains("ERROR") && text.contains("MESH2104 ...") && !text.contains("more"),
        "{text}"
    );
}
