//! Downstream connections: accepting within a budget, and the timeouts that keep idle, slow and
//! silent clients from holding the proxy (Envoy's edge-proxy guidance; every value is a flag,
//! listed in docs/operations.md).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::proxy::{Inbound, Proxy};

/// Downstream limits and timeouts, from the flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A client must send a complete request head within this, counted from when the
    /// connection is ready for a request (so it also bounds a keep-alive connection's wait).
    pub request_headers_timeout: Duration,
    /// A connection with no request in flight and no bytes either way is closed after this.
    pub idle_timeout: Duration,
    /// A request in flight with no bytes either way for this long is reset.
    pub stream_idle_timeout: Duration,
    /// A TLS client must finish its handshake (or send its ClientHello, for passthrough)
    /// within this.
    pub tls_handshake_timeout: Duration,
    /// Downstream connections open at once, over all Gateway listeners and the outbound entry;
    /// past it new connections are closed at once (Envoy's
    /// `max_active_downstream_connections`). The admin API has its own small budget.
    pub max_connections: usize,
}

/// Admin API connections open at once: its own budget, so a flood of proxy clients never
/// locks an operator out.
pub const ADMIN_CONNECTIONS: usize = 64;

/// Accepts connections within a budget; when the process is out of file descriptors it backs
/// off instead of spinning on `accept`.
pub struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// Connections closed because the budget was spent.
    overflow: Arc<AtomicU64>,
}

impl Acceptor {
    pub fn new(
        listener: TcpListener,
        permits: Arc<Semaphore>,
        overflow: Arc<AtomicU64>,
    ) -> Acceptor {
        Acceptor {
            listener,
            permits,
            overflow,
        }
    }

    /// The next connection that fits the budget, with its permit (released when dropped).
    pub async fn next(&self) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    backoff = Duration::from_millis(5);
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let _ = tcp.set_nodelay(true);
                            return (tcp, peer, permit);
                        }
                        Err(_) => {
                            // Closing now tells the client at once; leaving it in the backlog
                            // would look like a hang.
                            self.overflow.fetch_add(1, Ordering::Relaxed);
                            drop(tcp);
                        }
                    }
                }
                Err(e) if out_of_resources(&e) => {
                    if backoff == Duration::from_millis(5) {
                        tracing::warn!(error = %e, "cannot accept connections: out of file descriptors or memory; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                // A connection reset before it was accepted, and the like: the next one.
                Err(_) => {}
            }
        }
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail again.
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Raise the soft limit on open files to the hard limit, as Envoy's and Go's runtimes do: a
/// proxy holds two descriptors per proxied connection. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// The default connection budget for a file descriptor limit: two descriptors per proxied
/// connection (client and upstream), some kept for listeners, files and the admin API.
pub fn default_max_connections(fd_limit: u64) -> usize {
    let spare = 256 + ADMIN_CONNECTIONS as u64;
    (fd_limit.saturating_sub(spare) / 2).clamp(16, 1_000_000) as usize
}

/// Milliseconds since the process's first use of the clock: cheap to store in an atomic.
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a connection has done, for its idle timers.
#[derive(Default)]
pub struct Activity {
    /// When a byte last moved either way.
    last_ms: AtomicU64,
    /// Requests being served (until their response head is sent).
    in_flight: AtomicUsize,
    /// Requests ever started on the connection.
    started: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that records when bytes move.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Watched<T> {
        activity.touch();
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Relay bytes both ways between two streams until either closes, or until no byte has moved
/// either way for `idle` (Envoy's stream idle timeout, for TLS passthrough and upgraded
/// connections): a silent tunnel is not held forever.
pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity::default());
    let mut a = Watched::new(a, activity.clone());
    let mut b = Watched::new(b, activity.clone());
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    let limit = idle.as_millis() as u64;
    loop {
        let quiet = now_ms().saturating_sub(activity.last_ms.load(Ordering::Relaxed));
        if quiet >= limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no bytes either way within the stream idle timeout",
            ));
        }
        tokio::select! {
            r = &mut copy => return r.map(|_| ()),
            _ = tokio::time::sleep(Duration::from_millis(limit - quiet)) => {}
        }
    }
}

/// Why a connection's timers end it.
#[derive(Debug, PartialEq, Eq)]
enum Expired {
    /// No request head at all within the request-headers timeout.
    NoRequest,
    Idle,
    StreamIdle,
}

/// When the connection's timers next need a look, or why it is over.
fn check(activity: &Activity, opened: u64, now: u64, limits: &Limits) -> Result<Duration, Expired> {
    let quiet = now.saturating_sub(activity.last_ms.load(Ordering::Relaxed));
    let ms = |d: Duration| d.as_millis() as u64;
    if activity.started.load(Ordering::Relaxed) == 0 {
        // Covers the wait for the first bytes too, which HTTP/1's own header timer does not
        // see while the server is still telling HTTP/1 from HTTP/2.
        let age = now.saturating_sub(opened);
        if age >= ms(limits.request_headers_timeout) {
            return Err(Expired::NoRequest);
        }
    }
    let (limit, expired) = if activity.in_flight.load(Ordering::Relaxed) > 0 {
        (ms(limits.stream_idle_timeout), Expired::StreamIdle)
    } else {
        (ms(limits.idle_timeout), Expired::Idle)
    };
    if quiet >= limit {
        return Err(expired);
    }
    let next = (limit - quiet).min(ms(limits.request_headers_timeout));
    Ok(Duration::from_millis(next.max(10)))
}

/// A client stream, plain or TLS: one type, so one connection type serves both.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serve one HTTP connection (HTTP/1.1 or h2c, or either over TLS) until it ends or a timer
/// ends it: a graceful shutdown when idle (HTTP/2 gets a GOAWAY), a close when a stream or the
/// first request stalls.
pub async fn http<S: Io + 'static>(
    tcp: S,
    inbound: Arc<Inbound>,
    proxy: Arc<Proxy>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Arc<Limits>,
) {
    let activity = Arc::new(Activity::default());
    let opened = now_ms();
    let peer = inbound.peer;
    let watched = Watched::new(tcp, activity.clone());
    let io: Box<dyn Io> = match tls {
        None => Box::new(watched),
        Some(acceptor) => {
            match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(watched)).await
            {
                Ok(Ok(stream)) => {
                    if let Some(sni) = stream.get_ref().1.server_name() {
                        let _ = inbound.sni.set(sni.to_ascii_lowercase());
                    }
                    Box::new(stream)
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (proxy, inbound) = (proxy.clone(), inbound.clone());
            let guard = activity.request();
            async move {
                let resp = proxy.handle(&inbound, req).await;
                drop(guard);
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_headers_timeout)
        // A client may shut its side after sending the request and still read the answer.
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(100));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        let wait = match check(&activity, opened, now_ms(), &limits) {
            Ok(wait) => wait,
            Err(Expired::Idle) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
                return;
            }
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection closed by its timer");
                return;
            }
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request_headers_timeout: Duration::from_millis(1000),
            idle_timeout: Duration::from_millis(5000),
            stream_idle_timeout: Duration::from_millis(3000),
            tls_handshake_timeout: Duration::from_millis(1000),
            max_connections: 10,
        }
    }

    #[test]
    fn timers_pick_the_limit_for_the_connection_state() {
        let l = limits();
        let a = Activity::default();
        let now = 100_000;
        a.last_ms.store(now, Ordering::Relaxed);
        // Fresh: waits at most the header timeout.
        assert!(check(&a, now, now, &l).unwrap() <= Duration::from_millis(1000));
        // Opened long ago without a request.
        assert_eq!(check(&a, now - 2000, now, &l), Err(Expired::NoRequest));
        // A request in flight that has been quiet too long.
        a.started.store(1, Ordering::Relaxed);
        a.in_flight.store(1, Ordering::Relaxed);
        a.last_ms.store(now - 3500, Ordering::Relaxed);
        assert_eq!(check(&a, 0, now, &l), Err(Expired::StreamIdle));
        // The same quiet without a request in flight is within the idle timeout.
        a.in_flight.store(0, Ordering::Relaxed);
        assert!(check(&a, 0, now, &l).is_ok());
        a.last_ms.store(now - 6000, Ordering::Relaxed);
        assert_eq!(check(&a, 0, now, &l), Err(Expired::Idle));
    }

    #[tokio::test]
    async fn a_silent_relay_ends_and_a_busy_one_carries_bytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, near) = tokio::io::duplex(64);
        let (far, mut server) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(near, far, Duration::from_millis(200)));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // Then silence: the relay gives up on its own.
        let ended = tokio::time::timeout(Duration::from_secs(5), relay).await;
        let err = ended.expect("the relay ended").unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn connection_budget_follows_the_fd_limit() {
        assert_eq!(default_max_connections(1024), (1024 - 320) / 2);
        assert_eq!(default_max_connections(100), 16);
        assert_eq!(default_max_connections(1 << 20), (1_048_576 - 320) / 2);
    }
}
