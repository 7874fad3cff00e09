//! The Kubernetes API as a source of the model, shared by mesh-webhook (its cluster cache),
//! mesh-agent (what it serves, and the statuses it writes) and kubectl-mesh (`analyze` on a
//! cluster).
//!
//! `mesh-model` stays free of I/O and tokio; this crate is where the model meets kube-rs:
//! objects are read as `DynamicObject` (raw JSON, so the model's loader sees every field, and
//! the kinds of any installed Gateway API release are read without typed bindings of their
//! own), watched into a [`watch::Cache`], and statuses go back by server-side apply.

pub mod client;
pub mod forward;
pub mod lease;
pub mod list;
pub mod resource;
pub mod served;
pub mod status;
pub mod watch;

pub use resource::Values;
