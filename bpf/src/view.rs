//! What `kubectl mesh proxy-config services` shows: each frontend with its backends and
//! weights, or the agent's outbound entry. The agent's admin API serves it as JSON
//! (`/services`), the plugin reads it from there or from the pinned maps.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// `ClusterIP:port`.
    pub frontend: String,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `namespace/name`, when known (not from pinned maps alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The frontend goes to the agent's outbound entry (the only backend listed).
    pub l7: bool,
    /// The generation of the backend slots in the kernel.
    pub version: u32,
    pub backends: Vec<BackendView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendView {
    pub address: String,
    /// The backend's share of the frontend's slots.
    pub weight: u32,
}
