//! TLS passthrough and TCP listeners: route a TLS connection by the SNI of its ClientHello to a
//! TLSRoute's backend, or a TCP connection to its TCPRoute's, and relay the bytes untouched.
//! The agent never terminates: a TLS backend presents its own certificate, as `tls.mode:
//! Passthrough` promises.

use std::sync::Arc;

use mesh_model::plan::{Action, Endpoint, Request as RouteRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::{Inbound, Proxy};
use crate::serve::Limits;

/// A ClientHello larger than this is refused rather than buffered without end.
const MAX_HELLO: usize = 64 * 1024;

/// What a relayed listener routes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The SNI of the client's TLS ClientHello (TLSRoute).
    Sni,
    /// Nothing: the listener's route takes every connection (TCPRoute).
    Port,
}

/// Route one relayed connection and relay it until either side closes.
pub async fn relay(tcp: TcpStream, inbound: Arc<Inbound>, proxy: &Proxy, limits: &Limits, by: By) {
    if let Err(why) = route(tcp, inbound.address, inbound.port, proxy, limits, by).await {
        tracing::debug!(peer = %inbound.peer, listener = %inbound.socket, %why, "passthrough connection closed");
    }
}

/// Reads the ClientHello (parsed by rustls, which we already trust with TLS), keeping every
/// byte read so the backend receives the handshake exactly as the client sent it.
async fn client_hello(tcp: &mut TcpStream) -> Result<(Vec<u8>, Option<String>), String> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the ClientHello".into());
        }
        seen.extend_from_slice(&chunk[..n]);
        if seen.len() > MAX_HELLO {
            return Err("ClientHello too large".into());
        }
        acceptor
            .read_tls(&mut &chunk[..n])
            .map_err(|e| e.to_string())?;
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Ok((seen, sni));
            }
            Ok(None) => continue,
            Err((e, _)) => return Err(format!("not a TLS ClientHello: {e}")),
        }
    }
}

/// The endpoint a relayed connection (or UDP flow) goes to: the route of the listener at
/// `address`/`port` that takes `host` (the SNI; empty for TCP and UDP), a backend by weight,
/// an endpoint of it. An error says why there is none (the connection is then closed, as
/// Envoy does when no filter chain matches).
pub fn endpoint_for(
    proxy: &Proxy,
    address: Option<std::net::IpAddr>,
    port: u16,
    host: &str,
) -> Result<Endpoint, String> {
    let plan = proxy.current.plan();
    let request = RouteRequest {
        host,
        path: "/",
        method: "",
        headers: &[],
        query: &[],
    };
    let listener = plan
        .listener_at(address, port, host)
        .ok_or_else(|| format!("no listener for {host:?}"))?;
    let entry = plan
        .decide(&listener.name, &request)
        .and_then(|d| d.route)
        .ok_or_else(|| format!("no route for {host:?}"))?;
    let Action::Forward(backends) = &entry.action else {
        return Err("a TLSRoute, TCPRoute or UDPRoute only forwards".into());
    };
    let (_, _, ep) = proxy
        .choose(&plan, backends)
        .map_err(|(r, _)| format!("{} for {host:?}", r.message()))?;
    Ok(ep.clone())
}

async fn route(
    mut tcp: TcpStream,
    address: Option<std::net::IpAddr>,
    port: u16,
    proxy: &Proxy,
    limits: &Limits,
    by: By,
) -> Result<(), String> {
    let (hello, sni) = match by {
        By::Sni => tokio::time::timeout(limits.tls_handshake_timeout, client_hello(&mut tcp))
            .await
            .map_err(|_| "no ClientHello in time".to_string())??,
        By::Port => (Vec::new(), None),
    };
    let host = sni.unwrap_or_default();
    let ep = endpoint_for(proxy, address, port, &host)?;
    let connect = TcpStream::connect((ep.address.as_str(), ep.port));
    let mut upstream = tokio::time::timeout(proxy.settings.connect_timeout, connect)
        .await
        .map_err(|_| format!("connect {}:{}: timed out", ep.address, ep.port))?
        .map_err(|e| format!("connect {}:{}: {e}", ep.address, ep.port))?;
    if !hello.is_empty() {
        upstream
            .write_all(&hello)
            .await
            .map_err(|e| e.to_string())?;
    }
    crate::serve::relay(tcp, upstream, limits.stream_idle_timeout)
        .await
        .map_err(|e| e.to_string())
}
