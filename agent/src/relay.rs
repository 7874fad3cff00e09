//! Relayed listeners: TCP connections relayed to a TCPRoute's backend, and the sockets of TLS
//! listeners, where HTTPS, TLS Passthrough and TLS Terminate listeners may share a port (one
//! protocol family, told apart by the SNI of the ClientHello).
//!
//! A Passthrough connection is relayed untouched: the backend presents its own certificate,
//! as `tls.mode: Passthrough` promises. A Terminate connection completes its handshake with
//! the listener's certificate and the plaintext is relayed to the route's backend. An HTTPS
//! one is served as HTTP.

use std::sync::Arc;

use mesh_model::plan::{Action, Endpoint, Protocol, Request as RouteRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::proxy::{Inbound, Proxy};
use crate::serve::Limits;

/// A ClientHello larger than this is refused rather than buffered without end.
const MAX_HELLO: usize = 64 * 1024;

/// Relay one TCP listener's connection to its route's backend until either side closes.
pub async fn tcp(tcp: TcpStream, inbound: Arc<Inbound>, proxy: &Proxy, limits: &Limits) {
    let outcome = match endpoint_for(proxy, inbound.address, inbound.port, "", false) {
        Ok(ep) => relay_to(tcp, &ep, proxy, limits).await,
        Err(why) => Err(why),
    };
    if let Err(why) = outcome {
        tracing::debug!(peer = %inbound.peer, listener = %inbound.socket, %why, "TCP connection closed");
    }
}

/// Serve one connection of a socket whose listeners speak TLS.
///
/// A socket of HTTPS listeners only is served as HTTP at once (rustls reads the ClientHello;
/// nothing is read twice). Otherwise the ClientHello is read first, kept byte for byte, and its
/// SNI picks the listener: Passthrough relays the bytes as they came, Terminate completes the
/// handshake and relays the plaintext, HTTPS is served as HTTP. A server name no listener
/// takes closes the connection without a handshake, as Envoy does when no filter chain
/// matches (an HTTPS listener on the socket takes it instead, and answers by Host).
pub async fn tls(
    mut tcp: TcpStream,
    inbound: Arc<Inbound>,
    proxy: Arc<Proxy>,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: Arc<Limits>,
) {
    let on_socket = |p: &dyn Fn(&Protocol) -> bool| {
        proxy.current.plan().listeners.iter().any(|l| {
            l.port == inbound.port
                && (inbound.address.is_none() || l.address == inbound.address)
                && p(&l.protocol)
        })
    };
    if !on_socket(&|p| matches!(p, Protocol::Tls | Protocol::TlsTerminate)) {
        crate::serve::http(tcp, inbound, proxy, Some(acceptor), limits).await;
        return;
    }
    let hello = tokio::time::timeout(limits.tls_handshake_timeout, client_hello(&mut tcp)).await;
    let (hello, sni) = match hello {
        Ok(Ok(read)) => read,
        Ok(Err(why)) => {
            tracing::debug!(peer = %inbound.peer, listener = %inbound.socket, %why, "TLS connection closed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %inbound.peer, listener = %inbound.socket, "no ClientHello in time");
            return;
        }
    };
    let host = sni.unwrap_or_default();
    let protocol = proxy
        .current
        .plan()
        .listener_at(inbound.address, inbound.port, &host)
        .map(|l| l.protocol.clone());
    let stream = Prefixed::new(hello, tcp);
    let outcome = match protocol {
        Some(Protocol::Tls) => {
            match endpoint_for(&proxy, inbound.address, inbound.port, &host, false) {
                Ok(ep) => relay_to(stream, &ep, &proxy, &limits).await,
                Err(why) => Err(why),
            }
        }
        Some(Protocol::TlsTerminate) => {
            terminate(stream, &inbound, &proxy, &acceptor, &limits, &host).await
        }
        _ if on_socket(&|p| *p == Protocol::Https) => {
            crate::serve::http(stream, inbound, proxy, Some(acceptor), limits).await;
            return;
        }
        _ => Err(format!("no listener for server name {host:?}")),
    };
    if let Err(why) = outcome {
        tracing::debug!(peer = %inbound.peer, listener = %inbound.socket, %why, "TLS connection closed");
    }
}

/// TLS Terminate: the backend of the route that takes the server name, the handshake with the
/// listener's certificate (chosen by SNI, as for HTTPS), then the plaintext relayed.
async fn terminate(
    stream: Prefixed<TcpStream>,
    inbound: &Inbound,
    proxy: &Proxy,
    acceptor: &tokio_rustls::TlsAcceptor,
    limits: &Limits,
    host: &str,
) -> Result<(), String> {
    // The route first: a server name no route takes is closed before any handshake, as
    // Envoy closes a connection no filter chain matches.
    let ep = endpoint_for(proxy, inbound.address, inbound.port, host, false)?;
    let tls = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    relay_to(tls, &ep, proxy, limits).await
}

/// Connect to `ep` and relay `client` to it until either side closes.
async fn relay_to<S: AsyncRead + AsyncWrite + Unpin>(
    client: S,
    ep: &Endpoint,
    proxy: &Proxy,
    limits: &Limits,
) -> Result<(), String> {
    let connect = TcpStream::connect((ep.address.as_str(), ep.port));
    let upstream = tokio::time::timeout(proxy.settings.connect_timeout, connect)
        .await
        .map_err(|_| format!("connect {}:{}: timed out", ep.address, ep.port))?
        .map_err(|e| format!("connect {}:{}: {e}", ep.address, ep.port))?;
    crate::serve::relay(client, upstream, limits.stream_idle_timeout)
        .await
        .map_err(|e| e.to_string())
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

/// The endpoint a relayed connection (or, with `udp`, a UDP flow) goes to: the route of the
/// listener at `address`/`port` that takes `host` (the SNI; empty for TCP and UDP), a backend
/// by weight, an endpoint of it. An error says why there is none (the connection is then
/// closed, as Envoy does when no filter chain matches).
pub fn endpoint_for(
    proxy: &Proxy,
    address: Option<std::net::IpAddr>,
    port: u16,
    host: &str,
    udp: bool,
) -> Result<Endpoint, String> {
    let plan = proxy.current.plan();
    let request = RouteRequest {
        host,
        path: "/",
        method: "",
        headers: &[],
        query: &[],
    };
    let listener = if udp {
        plan.udp_listener_at(address, port)
    } else {
        plan.listener_at(address, port, host)
    }
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

/// A stream that yields `prefix` (bytes already read from `inner`) before the rest of
/// `inner`: the ClientHello read to choose a listener, given back to the TLS acceptor or the
/// Passthrough backend.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            read: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_prefixed_stream_reads_the_prefix_then_the_rest() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"world").await.unwrap();
        drop(a);
        let mut s = Prefixed::new(b"hello ".to_vec(), b);
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
