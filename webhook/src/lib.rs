//! mesh-webhook: admission-time validation and defaulting of Gateway API objects and Cilium
//! Envoy configs, with the rule catalog of `kubectl mesh analyze`.

pub mod cache;
pub mod certs;
pub mod cluster;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;
