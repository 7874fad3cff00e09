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

/// Backends with their weights, from a frontend's slots (a backend in w slots has weight w).
pub fn backends_of(slots: impl IntoIterator<Item = std::net::SocketAddr>) -> Vec<BackendView> {
    let mut backends: Vec<BackendView> = Vec::new();
    for s in slots {
        let address = s.to_string();
        match backends.iter_mut().find(|b| b.address == address) {
            Some(b) => b.weight += 1,
            None => backends.push(BackendView { address, weight: 1 }),
        }
    }
    backends
}

/// What the maps would hold for `table` (the view when the programs are not loaded).
pub fn planned(table: &crate::table::Table, slots_per_service: usize) -> Vec<ServiceView> {
    table
        .entries
        .iter()
        .map(|e| ServiceView {
            frontend: e.frontend.to_string(),
            protocol: e.transport.as_str().to_string(),
            service: Some(e.service.clone()),
            l7: e.l7,
            version: 0,
            backends: backends_of(crate::table::slots(&e.backends, slots_per_service)),
        })
        .collect()
}
