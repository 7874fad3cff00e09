//! UDP listeners (UDPRoute): each client address is a flow, relayed to a backend chosen by
//! weight when its first datagram arrives, through a socket of its own so the backend's
//! replies come back to that client. A flow ends after `--udp-idle-timeout` without datagrams
//! either way (Envoy's udp_proxy idle_timeout); each holds a place in the connection budget
//! while it lives, so flows are bounded as connections are, and a datagram that would open a
//! flow over budget is dropped (counted as an overflow).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::proxy::Proxy;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// One client's flow: the socket to its backend, and when it last carried a datagram.
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
}

/// Milliseconds since `start`, for idle checks shared between tasks.
fn since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// What a listener socket needs to route and relay.
pub struct UdpListener {
    pub socket: Arc<UdpSocket>,
    pub address: Option<IpAddr>,
    pub port: u16,
    pub name: String,
    pub idle: Duration,
}

/// Serve a UDP listener's socket until the task is dropped.
pub async fn serve(l: UdpListener, proxy: Arc<Proxy>, permits: Arc<Semaphore>) {
    let start = Instant::now();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    let overflow = proxy.stats.overflow(&l.name);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            r = l.socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(listener = %l.name, error = %e, "UDP receive failed");
                    continue;
                }
            },
            Some(gone) = ended.recv() => {
                flows.remove(&gone);
                continue;
            }
        };
        if let Some(f) = flows.get(&client) {
            f.last.store(since(start), Ordering::Relaxed);
            let _ = f.upstream.send(&buf[..n]).await;
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            overflow.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %l.name, %client, "UDP flow over the connection budget: datagram dropped");
            continue;
        };
        let upstream = match open(&l, &proxy).await {
            Ok(u) => Arc::new(u),
            Err(why) => {
                tracing::debug!(listener = %l.name, %client, %why, "UDP datagram not relayed");
                continue;
            }
        };
        proxy.stats.connection(&l.name);
        let last = Arc::new(AtomicU64::new(since(start)));
        let _ = upstream.send(&buf[..n]).await;
        // Replies go back to the client from the listener's own address.
        let (socket, up, seen, idle, done) = (
            l.socket.clone(),
            upstream.clone(),
            last.clone(),
            l.idle,
            ended_tx.clone(),
        );
        tokio::spawn(async move {
            let mut reply = vec![0u8; MAX_DATAGRAM];
            loop {
                match tokio::time::timeout(idle, up.recv(&mut reply)).await {
                    Ok(Ok(m)) => {
                        seen.store(since(start), Ordering::Relaxed);
                        let _ = socket.send_to(&reply[..m], client).await;
                    }
                    // A refused datagram (ICMP) is not the flow's end.
                    Ok(Err(_)) => {}
                    Err(_) => {
                        let quiet = since(start).saturating_sub(seen.load(Ordering::Relaxed));
                        if quiet >= idle.as_millis() as u64 {
                            break;
                        }
                    }
                }
            }
            drop(permit);
            let _ = done.send(client);
        });
        flows.insert(client, Flow { upstream, last });
    }
}

/// A socket connected to the backend the listener's route picks for a new flow.
async fn open(l: &UdpListener, proxy: &Proxy) -> Result<UdpSocket, String> {
    let ep = crate::relay::endpoint_for(proxy, l.address, l.port, "", true)?;
    let target: SocketAddr = ep
        .authority()
        .parse()
        .map_err(|e| format!("{}:{}: {e}", ep.address, ep.port))?;
    let local: SocketAddr = if target.is_ipv6() {
        "[::]:0".parse().expect("an address")
    } else {
        "0.0.0.0:0".parse().expect("an address")
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(target).await.map_err(|e| e.to_string())?;
    Ok(socket)
}
