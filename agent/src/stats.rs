//! Request statistics, exposed at `/stats/prometheus` under Envoy's own Prometheus names
//! (`envoy_cluster_upstream_rq_total{envoy_cluster_name=..}`, `envoy_http_downstream_rq_xx`, ..)
//! so the Envoy dashboards and alerts platform teams already run work on the agent unchanged.
//!
//! The text is written here rather than through a metrics crate because Envoy's names do not
//! follow the OpenMetrics suffix rules those crates enforce (Envoy has both
//! `envoy_cluster_upstream_rq_total` and a labelled `envoy_cluster_upstream_rq`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Shared per-name state, created on first use: the read path takes only a read lock.
pub struct Keyed<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed(RwLock::default())
    }
}

impl<T: Default> Keyed<T> {
    pub fn get(&self, key: &str) -> Arc<T> {
        if let Some(v) = self.0.read().ok().and_then(|m| m.get(key).cloned()) {
            return v;
        }
        self.0
            .write()
            .map(|mut m| m.entry(key.to_string()).or_default().clone())
            .unwrap_or_default()
    }

    /// Every entry, sorted by name, for stable output.
    fn sorted(&self) -> Vec<(String, Arc<T>)> {
        let mut all: Vec<_> = self
            .0
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// Envoy's default histogram bucket bounds, in milliseconds.
const BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// A latency histogram in milliseconds with Envoy's buckets.
#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let slot = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_MS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Counts by response status: per code and per class (`2xx`..).
#[derive(Default)]
struct Codes {
    total: AtomicU64,
    classes: [AtomicU64; 5],
    codes: Mutex<BTreeMap<u16, u64>>,
    time: Histogram,
}

impl Codes {
    fn record(&self, status: u16, elapsed: Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            class.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut codes) = self.codes.lock() {
            *codes.entry(status).or_default() += 1;
        }
        self.time.observe(elapsed);
    }
}

/// Per listener: connections accepted and requests answered.
#[derive(Default)]
pub struct Listener {
    cx_total: AtomicU64,
    /// Connections closed at once because the connection budget was spent.
    cx_overflow: Arc<AtomicU64>,
    rq: Codes,
}

#[derive(Default)]
pub struct Stats {
    clusters: Keyed<Codes>,
    /// Retries sent per cluster (a route's `retry` policy), Envoy's `upstream_rq_retry`.
    retries: Keyed<AtomicU64>,
    listeners: Keyed<Listener>,
}

impl Stats {
    /// A request forwarded (or refused) on behalf of a cluster, with the status the client got.
    pub fn upstream(&self, cluster: &str, status: u16, elapsed: Duration) {
        self.clusters.get(cluster).record(status, elapsed);
    }

    /// A retry sent to a cluster.
    pub fn retry(&self, cluster: &str) {
        self.retries.get(cluster).fetch_add(1, Ordering::Relaxed);
    }

    /// A request answered on a listener, whatever answered it.
    pub fn downstream(&self, listener: &str, status: u16, elapsed: Duration) {
        self.listeners.get(listener).rq.record(status, elapsed);
    }

    /// The counter of connections a listener refused over budget (the acceptor adds to it).
    pub fn overflow(&self, listener: &str) -> Arc<AtomicU64> {
        self.listeners.get(listener).cx_overflow.clone()
    }

    pub fn connection(&self, listener: &str) {
        self.listeners
            .get(listener)
            .cx_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4), with Envoy's names and labels. Listener
    /// labels use the HTTP connection manager's stat prefix, as the rendered bootstrap does.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let clusters = self.clusters.sorted();
        let clusters: Vec<(&str, &Codes)> =
            clusters.iter().map(|(n, c)| (n.as_str(), &**c)).collect();
        let labels = |c: &str| format!("envoy_cluster_name=\"{}\"", escape(c));
        write_codes(&mut out, "envoy_cluster_upstream_rq", &clusters, labels);
        let _ = writeln!(out, "# TYPE envoy_cluster_upstream_rq_retry counter");
        for (name, n) in &self.retries.sorted() {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_retry{{{}}} {}",
                labels(name),
                n.load(Ordering::Relaxed)
            );
        }
        let listeners = self.listeners.sorted();
        let prefix = |l: &str| {
            format!(
                "envoy_http_conn_manager_prefix=\"{}\"",
                escape(&l.replace('/', "_"))
            )
        };
        let _ = writeln!(out, "# TYPE envoy_http_downstream_cx_total counter");
        for (name, l) in &listeners {
            let n = l.cx_total.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "envoy_http_downstream_cx_total{{{}}} {n}",
                prefix(name)
            );
        }
        let _ = writeln!(out, "# TYPE envoy_listener_downstream_cx_overflow counter");
        for (name, l) in &listeners {
            let n = l.cx_overflow.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "envoy_listener_downstream_cx_overflow{{{}}} {n}",
                prefix(name)
            );
        }
        let rq: Vec<(&str, &Codes)> = listeners.iter().map(|(n, l)| (n.as_str(), &l.rq)).collect();
        write_codes(&mut out, "envoy_http_downstream_rq", &rq, prefix);
        out
    }
}

/// `<base>_total`, `<base>_xx{envoy_response_code_class}`, `<base>{envoy_response_code}` and
/// the `<base>_time` histogram, one family after another as Prometheus requires.
fn write_codes(
    out: &mut String,
    base: &str,
    entries: &[(&str, &Codes)],
    labels: impl Fn(&str) -> String,
) {
    let _ = writeln!(out, "# TYPE {base}_total counter");
    for (name, c) in entries {
        let n = c.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{base}_total{{{}}} {n}", labels(name));
    }
    let _ = writeln!(out, "# TYPE {base}_xx counter");
    for (name, c) in entries {
        for (i, class) in c.classes.iter().enumerate() {
            let n = class.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "{base}_xx{{envoy_response_code_class=\"{}\",{}}} {n}",
                    i + 1,
                    labels(name)
                );
            }
        }
    }
    let _ = writeln!(out, "# TYPE {base} counter");
    for (name, c) in entries {
        let codes = c.codes.lock().map(|c| c.clone()).unwrap_or_default();
        for (code, n) in codes {
            let _ = writeln!(
                out,
                "{base}{{envoy_response_code=\"{code}\",{}}} {n}",
                labels(name)
            );
        }
    }
    let _ = writeln!(out, "# TYPE {base}_time histogram");
    for (name, c) in entries {
        c.time.write(out, &format!("{base}_time"), &labels(name));
    }
}

/// Escapes a label value as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_names_counts_and_cumulative_buckets() {
        let s = Stats::default();
        s.upstream("default/details:9080", 200, Duration::from_millis(3));
        s.upstream("default/details:9080", 200, Duration::from_millis(30));
        s.upstream("default/details:9080", 504, Duration::from_millis(600));
        s.downstream("default/gw/http", 404, Duration::from_micros(100));
        s.connection("default/gw/http");
        let text = s.prometheus();
        let c = "envoy_cluster_name=\"default/details:9080\"";
        for line in [
            format!("envoy_cluster_upstream_rq_total{{{c}}} 3"),
            format!("envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"2\",{c}}} 2"),
            format!("envoy_cluster_upstream_rq{{envoy_response_code=\"504\",{c}}} 1"),
            format!("envoy_cluster_upstream_rq_time_bucket{{{c},le=\"5\"}} 1"),
            format!("envoy_cluster_upstream_rq_time_bucket{{{c},le=\"50\"}} 2"),
            format!("envoy_cluster_upstream_rq_time_bucket{{{c},le=\"+Inf\"}} 3"),
            format!("envoy_cluster_upstream_rq_time_count{{{c}}} 3"),
            "envoy_http_downstream_cx_total{envoy_http_conn_manager_prefix=\"default_gw_http\"} 1"
                .into(),
            "envoy_http_downstream_rq_xx{envoy_response_code_class=\"4\",envoy_http_conn_manager_prefix=\"default_gw_http\"} 1".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
