//! HTTP/1.1 upgrades (WebSocket): once the backend answers `101 Switching Protocols`, the
//! client's connection and the backend's are joined and bytes relayed both ways untouched.

use hyper::upgrade::OnUpgrade;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;

use crate::proxy::Inbound;

/// Relay between the client's and the backend's upgraded connections until either closes or
/// both are silent for `idle`; `inbound` (and its place in the connection budget) is held until
/// then.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade, inbound: Arc<Inbound>, idle: Duration) {
    tokio::spawn(async move {
        let _held = inbound;
        let (client, backend) = match tokio::join!(client, backend) {
            (Ok(c), Ok(b)) => (c, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let (client, backend) = (TokioIo::new(client), TokioIo::new(backend));
        if let Err(e) = crate::serve::relay(client, backend, idle).await {
            tracing::debug!(error = %e, "upgraded connection ended");
        }
    });
}
