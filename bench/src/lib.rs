//! Benchmarks of kubectl-mesh: `mesh-bench` (analyze at scale) and `webhook-bench`
//! (admission latency and throughput); method and figures in docs/benchmarks.md.

pub mod corpus;

/// The median (the mean of the two middle values for an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
