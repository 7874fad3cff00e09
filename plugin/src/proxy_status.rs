//! `kubectl mesh proxy-status`: does each mesh-agent run the configuration it should?
//!
//! An agent reports the SHA-256 of its Plan at `/server_info` (`plan_hash`); the Plan compiled
//! here from the same files has the same hash when, and only when, it routes the same way
//! (`plan::render::plan_hash` hashes the Envoy rendering, independent of bind addresses).

use mesh_model::plan::render;
use serde_json::{json, Value};

use crate::cli::{ExplainFormat, Global, ProxyStatusArgs};
use crate::dump::Source;
use crate::table::Table;
use crate::{exit, print};

/// One agent's state, and its verdict against the expected Plan.
fn status(admin: &str, expected: Option<&str>) -> Value {
    let base = Source::admin_url(admin);
    let info: Result<Value, String> = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())
        .and_then(|c| {
            c.get(format!("{base}/server_info"))
                .send()
                .map_err(|e| e.to_string())
        })
        .and_then(|r| r.json().map_err(|e| e.to_string()));
    let info = match info {
        Ok(i) => i,
        Err(e) => {
            return json!({"agent": base, "status": "ERROR", "error": format!("unreachable: {e}")})
        }
    };
    let hash = info["plan_hash"].as_str().unwrap_or("");
    let error = info["last_reload_error"].as_str();
    let verdict = match (expected, error) {
        (Some(want), _) if want == hash => "SYNCED",
        (_, Some(_)) => "ERROR",
        (Some(_), None) => "STALE",
        (None, None) => "-",
    };
    json!({
        "agent": base,
        "version": info["version"],
        "plan_hash": hash,
        "expected_hash": expected,
        "status": verdict,
        "last_reload": info["last_reload"],
        "error": error,
    })
}

fn expected_hash(files: &[String], global: &Global) -> Result<Option<String>, String> {
    if files.is_empty() {
        return Ok(None);
    }
    let plan = crate::explain::plan_from_files(files, global)?;
    Ok(Some(render::plan_hash(&plan)))
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

pub fn run(global: &Global, args: &ProxyStatusArgs) -> u8 {
    if args.admin.is_empty() {
        eprintln!("error: finding every node's mesh-agent needs cluster access, which this build does not have yet; name agents with --admin URL (kubectl port-forward POD 15000 for one in a cluster)");
        return exit::USAGE;
    }
    let expected = match expected_hash(&args.files, global) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let rows: Vec<Value> = args
        .admin
        .iter()
        .map(|a| status(a, expected.as_deref()))
        .collect();
    let code = if rows
        .iter()
        .any(|r| r["status"] == "STALE" || r["status"] == "ERROR")
    {
        exit::FINDINGS
    } else {
        exit::OK
    };
    let printed = match args.output {
        ExplainFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        )),
        ExplainFormat::Yaml => print(&serde_yaml_ng::to_string(&rows).unwrap_or_default()),
        ExplainFormat::Text => {
            use std::io::IsTerminal;
            let color = crate::analyze::use_color(global.color, std::io::stdout().is_terminal());
            let mut t = Table::new(vec![
                "AGENT",
                "VERSION",
                "PLAN",
                "EXPECTED",
                "STATUS",
                "LAST-RELOAD",
                "ERROR",
            ]);
            t.status_column = Some(4);
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            for r in &rows {
                t.row(vec![
                    s(&r["agent"]),
                    s(&r["version"]),
                    short(&s(&r["plan_hash"])),
                    short(&s(&r["expected_hash"])),
                    s(&r["status"]),
                    s(&r["last_reload"]),
                    s(&r["error"]).lines().next().unwrap_or("").to_string(),
                ]);
            }
            print(&t.render(color))
        }
    };
    if printed != exit::OK {
        return printed;
    }
    code
}
