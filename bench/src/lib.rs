//! Benchmarks of kubectl-mesh: `mesh-bench` (analyze at scale) and `webhook-bench`
//! (admission latency and throughput); method and figures in docs/benchmarks.md.

pub mod corpus;
