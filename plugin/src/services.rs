//! `kubectl mesh proxy-config services`: the eBPF socket load balancer's Services, from a
//! mesh-agent's admin API (`/services`, named from its Plan) or read straight from the
//! pinned maps on the node (`--bpf-pin`), as `cilium-dbg service list` and `cilium-dbg bpf lb
//! list` show Cilium's.

use mesh_bpf::view::ServiceView;
use serde_json::json;

use crate::cli::{ServicesArgs, TableFormat};
use crate::table::Table;

/// What was read: the services, whether the programs run, and their counters when read from
/// the pins.
struct Read {
    services: Vec<ServiceView>,
    bpf: String,
    counters: Vec<(String, u64)>,
}

fn from_admin(base: &str) -> Result<Read, String> {
    let url = format!("{}/services", crate::dump::Source::admin_url(base));
    let client = crate::dump::admin_client()?;
    let body = crate::dump::admin_json(&client, &url).map_err(|(status, e)| {
        if status == Some(reqwest::StatusCode::NOT_FOUND) {
            format!("{url}: not found: the admin API there has no Services (is it a mesh-agent? Envoy has no socket load balancer)")
        } else {
            e
        }
    })?;
    let services = serde_json::from_value(body["services"].clone())
        .map_err(|e| format!("{url}: unexpected answer: {e}"))?;
    Ok(Read {
        services,
        bpf: body["bpf"].as_str().unwrap_or("unknown").to_string(),
        counters: Vec::new(),
    })
}

#[cfg(target_os = "linux")]
fn from_pins(dir: &std::path::Path) -> Result<Read, String> {
    let (services, counters) = mesh_bpf::datapath::read_pinned(dir).map_err(|e| {
        format!("{e} (are the programs loaded on this node, and is this run as root? the agent's --bpf-pin-dir is the folder to pass)")
    })?;
    Ok(Read {
        services,
        bpf: "pinned".into(),
        counters: counters
            .into_iter()
            .map(|c| (c.name.to_string(), c.value))
            .collect(),
    })
}

#[cfg(not(target_os = "linux"))]
fn from_pins(dir: &std::path::Path) -> Result<Read, String> {
    Err(format!(
        "{}: pinned eBPF maps exist on a Linux node only; run this there, or use --admin",
        dir.display()
    ))
}

/// One row per backend: frontend, protocol, Service, mode, backend, weight. A frontend with
/// no backend gets one row saying connects to it are refused.
pub fn table(services: &[ServiceView]) -> Table {
    let mut t = Table::new(vec![
        "FRONTEND", "PROTOCOL", "SERVICE", "MODE", "BACKEND", "WEIGHT",
    ]);
    for s in services {
        let mode = if s.l7 { "L7" } else { "L4" };
        let service = s.service.clone().unwrap_or_default();
        if s.backends.is_empty() {
            t.row(vec![
                s.frontend.clone(),
                s.protocol.clone(),
                service.clone(),
                mode.into(),
                "(none: connects refused)".into(),
                String::new(),
            ]);
        }
        for b in &s.backends {
            t.row(vec![
                s.frontend.clone(),
                s.protocol.clone(),
                service.clone(),
                mode.into(),
                if s.l7 {
                    format!("{} (outbound entry)", b.address)
                } else {
                    b.address.clone()
                },
                b.weight.to_string(),
            ]);
        }
    }
    t
}

pub fn run(global: &crate::cli::Global, args: &ServicesArgs) -> u8 {
    use std::io::IsTerminal;
    let read = match (&args.target, &args.admin, &args.bpf_pin) {
        (Some(t), _, _) => crate::target::ask(global, t, from_admin),
        (None, Some(a), _) => from_admin(a),
        (None, None, Some(dir)) => from_pins(dir),
        (None, None, None) => {
            eprintln!("error: say which: --admin URL (a mesh-agent's admin API), --bpf-pin [PATH] (the pinned maps on this node), or pod/NAME");
            return crate::exit::USAGE;
        }
    };
    let mut read = match read {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::BAD_INPUT;
        }
    };
    if let Some(want) = &args.service {
        read.services
            .retain(|s| s.service.as_deref() == Some(want.as_str()));
    }
    if read.bpf == "off" {
        eprintln!("note: the agent's eBPF programs are not running (--bpf off, or not possible there: see its log); this is what they would hold");
    }
    let color = crate::analyze::use_color(global.color, std::io::stdout().is_terminal());
    match args.output {
        TableFormat::Json | TableFormat::Yaml => {
            let mut doc = json!({"bpf": read.bpf, "services": read.services});
            if !read.counters.is_empty() {
                doc["counters"] = read
                    .counters
                    .iter()
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
            }
            let text = if args.output == TableFormat::Json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                )
            } else {
                serde_yaml_ng::to_string(&doc).unwrap_or_default()
            };
            crate::print(&text)
        }
        TableFormat::Short => {
            let text: String = read
                .services
                .iter()
                .map(|s| format!("{}/{}\n", s.frontend, s.protocol))
                .collect();
            crate::print(&text)
        }
        TableFormat::Table => {
            let mut text = table(&read.services).render(color);
            if !read.counters.is_empty() {
                text.push('\n');
                for (name, value) in &read.counters {
                    text.push_str(&format!("{name} {value}\n"));
                }
            }
            crate::print(&text)
        }
    }
}
