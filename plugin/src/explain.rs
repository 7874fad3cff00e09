//! `kubectl mesh explain`: why a request goes where it goes, from files compiled here or from a
//! running mesh-agent (`/explain`). Both use `Plan::decide`, the datapath's own function.

use mesh_model::load::{FileSource, Input};
use mesh_model::plan::explain::{explain, Explanation, Question};
use mesh_model::plan::{compile, Plan};

use crate::cli::{ExplainArgs, ExplainFormat, Global};
use crate::{exit, print};

/// The explanation as people read it.
pub fn text(e: &Explanation) -> String {
    let mut out = format!("{}\n", e.request);
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("  {name:<13}{value}\n"));
    };
    field(
        "listener",
        e.listener.clone().unwrap_or_else(|| "none".into()),
    );
    if let Some(vh) = &e.virtual_host {
        field("virtual host", vh.clone());
    }
    if let Some(r) = &e.route {
        field(
            "route",
            format!(
                "{} rule {}{} match {}: {}",
                r.source,
                r.rule,
                r.rule_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                r.matched,
                r.matcher
            ),
        );
    }
    for f in &e.filters {
        field("filter", f.clone());
    }
    if let Some(p) = &e.forwarded_path {
        let host = e
            .forwarded_host
            .as_ref()
            .map(|h| format!(" (Host: {h})"))
            .unwrap_or_default();
        field("forwarded as", format!("{p}{host}"));
    }
    for b in &e.backends {
        let endpoints = if b.endpoints.is_empty() {
            "no ready endpoints".to_string()
        } else {
            b.endpoints.join(", ")
        };
        field(
            "backend",
            format!(
                "{}  weight {} ({:.0}%)  {endpoints}  -> {}",
                b.cluster
                    .as_deref()
                    .unwrap_or("(invalid reference: its share gets 500)"),
                b.weight,
                b.share,
                b.outcome
            ),
        );
        for f in &b.filters {
            field("  filter", f.clone());
        }
    }
    if let (Some(code), Some(loc)) = (e.redirect_status, &e.location) {
        field("redirect", format!("{code} Location: {loc}"));
    }
    if let Some(ms) = e.timeout_ms {
        field("timeout", format!("{ms} ms (504 after)"));
    }
    if let Some(s) = &e.session {
        field("session", s.clone());
    }
    if let Some(a) = &e.authorization {
        field("authorization", a.clone());
    }
    field("outcome", e.outcome.clone());
    if !e.not_matched.is_empty() {
        out.push_str("  not matched:\n");
        for m in &e.not_matched {
            out.push_str(&format!(
                "    {} rule {} match {}: {}\n",
                m.source, m.rule, m.matched, m.reason
            ));
        }
    }
    out
}

fn from_agent(admin: &str, args: &ExplainArgs, global: &Global) -> Result<Explanation, String> {
    if admin.starts_with("pod/") || admin.starts_with("node/") {
        return crate::target::ask(global, admin, |url| from_agent(url, args, global));
    }
    let base = crate::dump::Source::admin_url(admin);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("url", &args.url);
    query.append_pair("method", &args.method);
    for h in &args.headers {
        query.append_pair("header", h);
    }
    if let Some(s) = &args.sni {
        query.append_pair("sni", s);
    }
    let url = format!("{base}/explain?{}", query.finish());
    let resp = reqwest::blocking::get(&url)
        .map_err(|e| format!("{base}: {e} (is mesh-agent's admin API listening there?)"))?;
    let status = resp.status();
    let body = resp.text().map_err(|e| format!("{base}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{base}/explain: HTTP {status}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("{base}/explain: not an explanation: {e}"))
}

/// The Plan of Gateway API files, as the agent compiles them (unreadable input is an error
/// naming the file; objects admission would refuse are left out, as the agent leaves them
/// out); `explain` and `proxy-status` read files through this.
pub fn plan_from_files(files: &[String], global: &Global) -> Result<Plan, String> {
    let source = FileSource {
        inputs: files.iter().map(|f| Input::parse(f)).collect(),
    };
    let opts = mesh_model::LoadOptions {
        default_namespace: global.namespace.clone(),
        max_file_bytes: global.max_file_size,
        channel: global.channel,
    };
    // As mesh-agent loads a folder: what admission would refuse is left out.
    let checked = mesh_model::rules::check_partial(
        &source,
        &opts,
        Some(&mesh_model::lastgood::LastGood::default()),
    );
    if let Some(e) = checked.errors.first() {
        return Err(format!("{e}"));
    }
    Ok(compile(&checked.snapshot))
}

fn from_files(args: &ExplainArgs, global: &Global) -> Result<Explanation, (u8, String)> {
    let q = Question::parse(&args.url, &args.method, &args.headers, args.sni.as_deref())
        .map_err(|e| (exit::USAGE, e))?;
    let plan = plan_from_files(&args.files, global).map_err(|e| (exit::BAD_INPUT, e))?;
    let listener = plan.entry_for(q.port, &q.host).map(|l| l.name.clone());
    Ok(explain(&plan, listener.as_deref(), &q))
}

pub fn run(global: &Global, args: &ExplainArgs) -> u8 {
    let result = match (&args.admin, args.files.is_empty()) {
        (Some(admin), _) => from_agent(admin, args, global).map_err(|e| (exit::BAD_INPUT, e)),
        (None, false) => from_files(args, global),
        (None, true) => Err((
            exit::USAGE,
            "say what to explain against: -f PATHS (Gateway API YAML) or --admin URL (a running mesh-agent)".into(),
        )),
    };
    match result {
        Ok(e) => match args.output {
            ExplainFormat::Text => print(&text(&e)),
            ExplainFormat::Json => print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&e).unwrap_or_default()
            )),
            ExplainFormat::Yaml => print(&serde_yaml_ng::to_string(&e).unwrap_or_default()),
        },
        Err((code, message)) => {
            eprintln!("error: {message}");
            code
        }
    }
}
