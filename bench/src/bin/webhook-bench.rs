//! `webhook-bench`: admission latency and throughput of mesh-webhook with a populated cache.
//!
//! Starts the real control plane of `tests/cluster` (kube-apiserver, etcd, controllers; the
//! Gateway API and Cilium CRDs), creates a generated corpus in it (the realistic mix of
//! `mesh-bench`), starts the real `mesh-webhook` binary (next to this one) with its
//! ServiceAccount's identity under the manifests' RBAC, so that the API server's list and watch
//! feed its cache, waits for the cache to sync, then sends AdmissionReviews over TLS straight
//! to the webhook: HTTPRoute UPDATEs (the most
//! cross-object work: parents, listener conflicts, backends, grants) to `/validate` and to
//! `/mutate`. Latency is measured at the client, one request at a time; throughput with
//! several requests in flight. Sizes `--sizes 1000,10000` show whether a review's cost grows
//! with the number of unrelated objects in the cache.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_bench::corpus;
use mesh_cluster::{Cluster, Options};
use serde_json::{json, Value};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn review(object: &Value, uid: usize) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{uid}"),
        "kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "HTTPRoute"},
        "resource": {"group": "gateway.networking.k8s.io", "version": "v1", "resource": "httproutes"},
        "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
        "operation": "UPDATE", "userInfo": {"username": "bench"}, "object": object, "oldObject": object, "dryRun": false}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// `count` sequential requests for latency, then `count` with `inflight` concurrent clients
/// for throughput.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    count: usize,
    inflight: usize,
) -> Figures {
    let send = |i: usize| {
        let body = bodies[i % bodies.len()].clone();
        let req = client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.expect("review");
            assert!(r.status().is_success(), "{}", r.status());
            let v: Value = r.json().await.expect("json");
            assert!(v["response"]["uid"].is_string());
        }
    };
    for i in 0..200 {
        send(i).await; // warm up connections and caches
    }
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let start = Instant::now();
        send(i).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..inflight {
        let client = client.clone();
        let (url, bodies) = (url.to_string(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(inflight) {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await
                    .expect("review");
                assert!(r.status().is_success());
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    Figures {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        per_second: count as f64 / start.elapsed().as_secs_f64(),
    }
}

/// The CRDs and the webhook's RBAC (`manifests/webhook`), then the corpus: its namespaces, and
/// its objects by four kubectl processes at once. The corpus's EndpointSlices give loopback
/// addresses (for mesh-agent on this machine), which an API server refuses; here they move to
/// 198.19.0.0/16, which nothing routes (no traffic is sent to them).
fn populate(cluster: &Cluster, objects: &[Value]) {
    cluster.install_crds("experimental").expect("CRDs");
    cluster.install_webhook_rbac().expect("the webhook's RBAC");
    // The corpus's Namespaces (with their labels), and the others its objects live in.
    let (namespaces, objects): (Vec<&Value>, Vec<&Value>) =
        objects.iter().partition(|o| o["kind"] == "Namespace");
    let declared: std::collections::BTreeSet<&str> = namespaces
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let used: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .filter(|ns| !declared.contains(ns))
        .collect();
    let list: String = namespaces
        .iter()
        .map(|o| format!("{o}\n"))
        .chain(used.iter().map(|ns| {
            format!("{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{ns}\"}}}}\n")
        }))
        .collect();
    cluster
        .kubectl(&["apply", "-f", "-"], &list)
        .expect("namespaces");
    let text: Vec<String> = objects
        .iter()
        .map(|o| {
            let mut o = (*o).clone();
            mesh_cluster::off_loopback(&mut o);
            o.to_string()
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in text.chunks(text.len().div_ceil(4).max(1)) {
            let stdin = chunk.join("\n");
            scope.spawn(move || {
                cluster
                    .kubectl(&["create", "-o", "name", "-f", "-"], &stdin)
                    .expect("the corpus is accepted by the API server");
            });
        }
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = arg::<String>(&args, "--sizes")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let count: usize = arg(&args, "--requests").unwrap_or(5_000);
    let inflight: usize = arg(&args, "--inflight").unwrap_or(8);
    let binary = std::env::current_exe()
        .expect("own path")
        .with_file_name("mesh-webhook");
    assert!(
        binary.exists(),
        "{} not found: build it with cargo build --release -p mesh-webhook",
        binary.display()
    );

    println!(
        "| cached objects | endpoint | p50 (µs) | p99 (µs) | reviews/s ({inflight} in flight) |"
    );
    println!("| ---: | --- | ---: | ---: | ---: |");
    for size in sizes {
        let objects: Vec<Value> = mesh_model::load::load_str(
            &corpus::text(size, corpus::unit),
            mesh_model::Source::Stdin,
            &Default::default(),
        )
        .expect("corpus parses")
        .into_iter()
        .map(|mut o| {
            if let Some(ns) = &o.namespace {
                o.raw["metadata"]["namespace"] = json!(ns);
            }
            o.raw
        })
        .collect();
        let routes: Vec<Vec<u8>> = objects
            .iter()
            .filter(|o| o["kind"] == "HTTPRoute")
            .enumerate()
            .map(|(i, o)| serde_json::to_vec(&review(o, i)).unwrap())
            .collect();
        let n = objects.len();
        let cluster = Cluster::start(Options::default()).expect("the control plane starts");
        let loaded = Instant::now();
        populate(&cluster, &objects);
        eprintln!(
            "{n} objects created in the API server in {} s",
            loaded.elapsed().as_secs()
        );

        let dir = std::env::temp_dir().join(format!("webhook-bench-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        mesh_webhook::certs::issue("bench", "bench", &["127.0.0.1".to_string()], &dir, 1)
            .expect("certs");
        let kubeconfig = cluster
            .kubeconfig_for(&cluster.webhook, "webhook")
            .expect("kubeconfig");
        std::fs::copy(kubeconfig, dir.join("kubeconfig")).unwrap();
        let mut child = Command::new(&binary)
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .env("KUBECONFIG", dir.join("kubeconfig"))
            // Production logging: one JSON line per review.
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mesh-webhook");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("mesh-webhook exited").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(a) = v.pointer("/fields/addr").and_then(Value::as_str) {
                break a.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let base = format!("https://{addr}");
        let synced = Instant::now();
        while !client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                synced.elapsed() < Duration::from_secs(120),
                "cache never synced"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sync_time = synced.elapsed();
        // The controllers add objects of their own (an EndpointSlice per selecting Service):
        // measure once the cache has stopped growing.
        let (mut cached, mut steady) = (String::new(), 0);
        while steady < 4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let metrics = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let now = metrics
                .lines()
                .find_map(|l| l.strip_prefix("mesh_webhook_cache_objects "))
                .unwrap_or("?")
                .to_string();
            steady = if now == cached { steady + 1 } else { 0 };
            cached = now;
        }
        let bodies = Arc::new(routes);
        for endpoint in ["validate", "mutate"] {
            let f = measure(
                &client,
                &format!("{base}/{endpoint}"),
                &bodies,
                count,
                inflight,
            )
            .await;
            println!(
                "| {cached} | /{endpoint} | {} | {} | {:.0} |",
                f.p50.as_micros(),
                f.p99.as_micros(),
                f.per_second
            );
        }
        eprintln!(
            "{n} objects: cache synced in {} ms; {cached} cached once steady",
            sync_time.as_millis()
        );
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
