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

/// The hash of the Plan the agents compile from the cluster (`mesh_kube::served`, with the
/// certificate values a proxy serves: they are part of what it runs).
fn cluster_hash(global: &Global) -> Result<String, String> {
    let listed = crate::cluster::block_on(async {
        let client = crate::cluster::client(global).await?;
        mesh_kube::list::all(&client, mesh_kube::Values::Serving)
            .await
            .map_err(|e| e.to_string())
    })??;
    let objects: Vec<std::sync::Arc<mesh_model::Object>> = listed
        .objects
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let checked = mesh_kube::served::Validity::default().apply(&objects);
    let served = mesh_kube::served::compile_served(
        checked.objects,
        &listed.served,
        mesh_model::controller::CONTROLLER_NAME,
    );
    Ok(render::plan_hash(&served.plan))
}

pub fn run(global: &Global, args: &ProxyStatusArgs) -> u8 {
    // Agents named by URL, by target, or every agent of the cluster; each with what it is.
    let mut reached = Vec::new();
    let mut agents: Vec<(String, String)> = Vec::new();
    let named: Vec<String> = if args.admin.is_empty() {
        match crate::target::every(global) {
            Ok(all) => {
                agents.extend(all.agents.iter().map(|a| (a.pod.clone(), a.url.clone())));
                reached.push(all);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
        Vec::new()
    } else {
        args.admin.clone()
    };
    for a in &named {
        if a.starts_with("pod/") || a.starts_with("node/") {
            match crate::target::resolve(global, a) {
                Ok(one) => {
                    agents.extend(one.agents.iter().map(|x| (x.pod.clone(), x.url.clone())));
                    reached.push(one);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::BAD_INPUT;
                }
            }
        } else {
            agents.push((Source::admin_url(a), a.clone()));
        }
    }
    let expected = if args.files.is_empty() && (args.admin.is_empty() || !reached.is_empty()) {
        cluster_hash(global).map(Some)
    } else {
        expected_hash(&args.files, global)
    };
    let expected = match expected {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let rows: Vec<Value> = agents
        .iter()
        .map(|(name, url)| {
            let mut row = status(url, expected.as_deref());
            row["agent"] = json!(name);
            row
        })
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
