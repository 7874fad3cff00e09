//! `mesh-bench`: how `kubectl mesh analyze` scales with the number of objects.
//!
//! Generates corpora of routes over many Gateways, Services with EndpointSlices,
//! ReferenceGrants and CiliumEnvoyConfigs, writes them as YAML files, and times loading plus
//! every rule (what `analyze` does, minus printing). Reports the median of several runs and
//! the cost per object, so growth that is not linear shows up as a rising per-object figure.
//!
//! `--sizes 1000,10000` picks the corpus sizes, `--runs N` the repetitions, `--shape mixed`
//! (the default, a realistic mix) or `--shape contended` (every route fighting for one
//! listener and one match: the worst case for the conflict rules).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mesh_model::load::{FileSource, Input, LoadOptions, ObjectSource};
use mesh_model::{rules, Snapshot};

/// One "unit": a Service, its EndpointSlice and two HTTPRoutes, plus, every few units, a
/// Gateway, a GRPCRoute, a ReferenceGrant or a CiliumEnvoyConfig. Roughly 4.4 objects.
fn unit(k: usize, out: &mut String) -> usize {
    let ns = format!("team-{}", k / 40);
    let gw = format!("gw-{}", k / 40);
    let mut n = 0;
    if k.is_multiple_of(40) {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {gw}\n  namespace: {ns}\nspec:\n  gatewayClassName: cilium\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: 80\n    hostname: \"*.{ns}.example.com\"\n  - name: https\n    protocol: HTTPS\n    port: 443\n    hostname: \"*.{ns}.example.com\"\n    tls:\n      certificateRefs:\n      - name: wildcard\n"
        );
        n += 2;
    }
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{k}\n  namespace: {ns}\nspec:\n  selector:\n    app: svc-{k}\n  ports:\n  - name: http\n    port: 8080\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{k}-abc\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: svc-{k}\naddressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n- addresses: [\"127.0.{}.{}\"]\n  conditions:\n    ready: true\n",
        (k / 250) % 250,
        k % 250 + 1
    );
    n += 2;
    for (suffix, path) in [("a", "api"), ("b", "web")] {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: route-{k}-{suffix}\n  namespace: {ns}\nspec:\n  parentRefs:\n  - name: {gw}\n    sectionName: http\n  hostnames:\n  - app-{k}.{ns}.example.com\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /{path}\n      headers:\n      - name: x-version\n        value: v{k}\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set:\n        - name: x-route\n          value: route-{k}\n    backendRefs:\n    - name: svc-{k}\n      port: 8080\n      weight: 90\n    - name: svc-{}\n      port: 8080\n      weight: 10\n    timeouts:\n      request: 2s\n",
            k - k % 40
        );
        n += 1;
    }
    if k.is_multiple_of(5) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: grpc-{k}\n  namespace: {ns}\nspec:\n  parentRefs:\n  - name: {gw}\n    sectionName: https\n  hostnames:\n  - grpc-{k}.{ns}.example.com\n  rules:\n  - matches:\n    - method:\n        service: pkg.Service{k}\n    backendRefs:\n    - name: svc-{k}\n      port: 8080\n"
        );
        n += 1;
    }
    if k.is_multiple_of(10) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata:\n  name: grant-{k}\n  namespace: {ns}\nspec:\n  from:\n  - group: gateway.networking.k8s.io\n    kind: HTTPRoute\n    namespace: team-0\n  to:\n  - group: \"\"\n    kind: Service\n"
        );
        n += 1;
    }
    if k.is_multiple_of(20) {
        let _ = write!(
            out,
            "---\napiVersion: cilium.io/v2\nkind: CiliumEnvoyConfig\nmetadata:\n  name: cec-{k}\n  namespace: {ns}\nspec:\n  services:\n  - name: svc-{k}\n  backendServices:\n  - name: svc-{k}\n  resources:\n  - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n    name: l\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: l\n          rds:\n            route_config_name: r\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n  - \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n    name: r\n    virtual_hosts:\n    - name: r\n      domains: [\"*\"]\n      routes:\n      - match:\n          prefix: /\n        route:\n          weighted_clusters:\n            clusters:\n            - name: {ns}/svc-{k}\n              weight: 100\n"
        );
        n += 1;
    }
    n
}

/// The adversarial shape: every route on one listener, without hostnames, with the same match
/// (all in one conflict group), plus one GRPCRoute per 100 routes competing for the listener.
/// A rule that compares routes pairwise is quadratic here.
fn contended_unit(k: usize, out: &mut String) -> usize {
    let mut n = 0;
    if k == 0 {
        out.push_str("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: shared\nspec:\n  gatewayClassName: cilium\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: 80\n");
        n += 1;
    }
    let _ = write!(
        out,
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: route-{k}\nspec:\n  parentRefs:\n  - name: shared\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /same\n    backendRefs:\n    - name: svc\n      port: 8080\n"
    );
    n += 1;
    if k.is_multiple_of(100) {
        let _ = write!(
            out,
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: grpc-{k}\nspec:\n  parentRefs:\n  - name: shared\n  hostnames:\n  - grpc-{k}.example.com\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 8080\n"
        );
        n += 1;
    }
    n
}

/// Write a corpus of about `size` objects into `dir`, 500 objects per file.
fn generate(size: usize, dir: &std::path::Path, unit: fn(usize, &mut String) -> usize) -> usize {
    std::fs::create_dir_all(dir).expect("bench dir");
    let (mut total, mut file, mut k, mut text) = (0, 0, 0, String::new());
    while total < size {
        total += unit(k, &mut text);
        k += 1;
        if text.len() > 200_000 || total >= size {
            std::fs::write(dir.join(format!("corpus-{file:04}.yaml")), &text)
                .expect("write corpus");
            text.clear();
            file += 1;
        }
    }
    total
}

fn run(dir: &std::path::Path) -> (Duration, usize, usize) {
    let start = Instant::now();
    let source = FileSource {
        inputs: vec![Input::Path(dir.to_path_buf())],
    };
    let (objects, errors) = source.objects(&LoadOptions::default());
    assert!(errors.is_empty(), "{errors:?}");
    let n = objects.len();
    let snap = Snapshot::new(objects);
    let findings = rules::check(&snap);
    (start.elapsed(), n, findings.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    let shape = args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or("mixed");
    let unit: fn(usize, &mut String) -> usize = match shape {
        "contended" => contended_unit,
        "mixed" => unit,
        other => {
            eprintln!("unknown --shape {other:?}: use mixed or contended");
            std::process::exit(64);
        }
    };
    println!("shape: {shape}\n");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let base = std::env::temp_dir().join(format!("mesh-bench-{}", std::process::id()));
    println!("| objects | files | findings | median (ms) | min (ms) | max (ms) | µs per object |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in sizes {
        let dir = base.join(size.to_string());
        generate(size, &dir, unit);
        let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let mut times = Vec::new();
        let (mut n, mut f) = (0, 0);
        for _ in 0..runs {
            let (t, objects, findings) = run(&dir);
            times.push(t);
            n = objects;
            f = findings;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[times.len() / 2];
        println!(
            "| {n} | {files} | {f} | {:.0} | {:.0} | {:.0} | {:.1} |",
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1]),
            median.as_secs_f64() * 1e6 / n as f64
        );
    }
    if std::env::var_os("MESH_BENCH_KEEP").is_some() {
        eprintln!("corpora kept in {}", base.display());
    } else {
        let _ = std::fs::remove_dir_all(&base);
    }
}
