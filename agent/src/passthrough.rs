//! TLS passthrough listeners: route a TLS connection by the SNI of its ClientHello to a
//! TLSRoute's backend and relay the bytes untouched. The agent never terminates: the backend
//! presents its own certificate, as `tls.mode: Passthrough` promises.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_model::plan::{Action, Request as RouteRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::Proxy;

/// A ClientHello larger than this is refused rather than buffered without end.
const MAX_HELLO: usize = 64 * 1024;
/// A client that has not sent its ClientHello by then is dropped.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn listen(addr: SocketAddr, name: String, proxy: Arc<Proxy>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, listener = %name, error = %e, "cannot listen");
            return;
        }
    };
    tracing::info!(%addr, listener = %name, "listening (TLS passthrough)");
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        proxy.stats.connection(&name);
        let (proxy, name) = (proxy.clone(), name.clone());
        tokio::spawn(async move {
            if let Err(why) = relay(tcp, addr.port(), &proxy).await {
                tracing::debug!(%peer, listener = %name, %why, "passthrough connection closed");
            }
        });
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

async fn relay(mut tcp: TcpStream, port: u16, proxy: &Proxy) -> Result<(), String> {
    let (hello, sni) = tokio::time::timeout(HELLO_TIMEOUT, client_hello(&mut tcp))
        .await
        .map_err(|_| "no ClientHello in time".to_string())??;
    let host = sni.unwrap_or_default();
    let plan = proxy.current.plan();
    let request = RouteRequest {
        host: &host,
        path: "/",
        method: "",
        headers: &[],
        query: &[],
    };
    // No listener or route for the SNI: close, as Envoy does when no filter chain matches.
    let listener = plan
        .listener_for(port, &host)
        .ok_or_else(|| format!("no listener for SNI {host:?}"))?;
    let entry = plan
        .decide(&listener.name, &request)
        .and_then(|d| d.route)
        .ok_or_else(|| format!("no TLSRoute for SNI {host:?}"))?;
    let Action::Forward(backends) = &entry.action else {
        return Err("a TLSRoute only forwards".into());
    };
    let (_, _, ep) = proxy
        .choose(&plan, backends)
        .map_err(|_| format!("no endpoint for SNI {host:?}"))?;
    let mut upstream = TcpStream::connect((ep.address.as_str(), ep.port))
        .await
        .map_err(|e| format!("connect {}:{}: {e}", ep.address, ep.port))?;
    upstream
        .write_all(&hello)
        .await
        .map_err(|e| e.to_string())?;
    tokio::io::copy_bidirectional(&mut tcp, &mut upstream)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
