//! A client for the socket load balancer's tests and benchmarks, run as a child process
//! inside a test's cgroup (the eBPF programs act on the processes of a cgroup, so a test
//! cannot be the client itself without putting all its threads there).
//!
//! The test binary re-executes itself to run one test function, [`child_main`], with the
//! job in `MESH_PROBE`; [`run_in_cgroup`] starts it, moved into the cgroup before it runs,
//! and parses the `PROBE {json}` lines it prints: one per connection or datagram.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// What a child does.
#[derive(Debug, Clone)]
pub enum Job {
    /// `count` TCP connections to `addr`, each sending one HTTP/1.1 GET with `host` and
    /// reading the echo's answer.
    Http {
        addr: SocketAddr,
        host: String,
        count: usize,
    },
    /// The same, one connection after another until the file `stop` exists (at most
    /// `count`): load that lasts exactly as long as what the test does meanwhile.
    HttpUntil {
        addr: SocketAddr,
        host: String,
        count: usize,
        stop: std::path::PathBuf,
    },
    /// `count` datagrams to `addr` from one socket, each waiting for its reply.
    Udp { addr: SocketAddr, count: usize },
    /// The same from a socket connected to `addr` (as glibc's resolver does).
    UdpConnected { addr: SocketAddr, count: usize },
}

impl Job {
    fn to_json(&self) -> Value {
        match self {
            Job::Http { addr, host, count } => {
                json!({"kind": "http", "addr": addr.to_string(), "host": host, "count": count})
            }
            Job::HttpUntil {
                addr,
                host,
                count,
                stop,
            } => {
                json!({"kind": "http", "addr": addr.to_string(), "host": host, "count": count, "stop": stop})
            }
            Job::Udp { addr, count } => {
                json!({"kind": "udp", "addr": addr.to_string(), "count": count})
            }
            Job::UdpConnected { addr, count } => {
                json!({"kind": "udp", "connected": true, "addr": addr.to_string(), "count": count})
            }
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// One exchange: `peer` is what getpeername (TCP) or recvfrom (UDP) said, `pod` the echo
/// backend that answered, `error` what failed.
fn http_once(addr: SocketAddr, host: &str) -> Value {
    let mut s = match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(s) => s,
        Err(e) => return json!({"error": format!("connect: {e}")}),
    };
    let peer = s.peer_addr().map(|p| p.to_string()).unwrap_or_default();
    let local = s.local_addr().map(|p| p.to_string()).unwrap_or_default();
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let request = format!("GET /probe HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(request.as_bytes()) {
        return json!({"peer": peer, "error": format!("write: {e}")});
    }
    let mut answer = Vec::new();
    if let Err(e) = s.read_to_end(&mut answer) {
        return json!({"peer": peer, "error": format!("read: {e}")});
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).unwrap_or("").to_string();
    let body: Value = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    json!({"peer": peer, "local": local, "status": status, "pod": body["pod"], "host": body["host"]})
}

fn udp(addr: SocketAddr, count: usize, connected: bool) -> Vec<Value> {
    let bind = if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return vec![json!({"error": format!("bind: {e}")})],
    };
    let _ = socket.set_read_timeout(Some(TIMEOUT));
    if connected {
        if let Err(e) = socket.connect(addr) {
            return vec![json!({"error": format!("connect: {e}")})];
        }
    }
    (0..count)
        .map(|i| {
            let ping = format!("ping {i}");
            let sent = if connected {
                socket.send(ping.as_bytes())
            } else {
                socket.send_to(ping.as_bytes(), addr)
            };
            if let Err(e) = sent {
                return json!({"error": format!("send: {e}")});
            }
            let mut buf = [0u8; 4096];
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let body: Value = serde_json::from_slice(&buf[..n]).unwrap_or(Value::Null);
                    json!({"peer": from.to_string(), "pod": body["pod"]})
                }
                Err(e) => json!({"error": format!("recv: {e}")}),
            }
        })
        .collect()
}

/// The child's side: run the job in `MESH_PROBE` and print one `PROBE` line per exchange.
/// Does nothing when the variable is unset (the test harness runs it as a plain test too).
pub fn child_main() {
    let Ok(job) = std::env::var("MESH_PROBE") else {
        return;
    };
    let job: Value =
        serde_json::from_str(&job).expect("MESH_PROBE is the JSON run_in_cgroup wrote");
    let addr: SocketAddr = job["addr"].as_str().unwrap_or("").parse().expect("addr");
    let count = job["count"].as_u64().unwrap_or(1) as usize;
    let results = match job["kind"].as_str() {
        Some("udp") => udp(addr, count, job["connected"] == true),
        _ => {
            let host = job["host"].as_str().unwrap_or("").to_string();
            let stop = job["stop"].as_str().map(std::path::PathBuf::from);
            (0..count)
                .take_while(|_| !stop.as_ref().is_some_and(|s| s.exists()))
                .map(|_| http_once(addr, &host))
                .collect()
        }
    };
    let mut out = std::io::stdout().lock();
    for r in results {
        let _ = writeln!(out, "PROBE {r}");
    }
}

/// Run `job` in a child of the current test binary (test function `child_test`, which calls
/// [`child_main`]) placed in `cgroup` (`None`: where the test itself is); the results in order.
pub fn run_in_cgroup(cgroup: Option<&Path>, child_test: &str, job: &Job) -> Vec<Value> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([child_test, "--exact", "--nocapture", "--test-threads", "1"])
        .env("MESH_PROBE", job.to_json().to_string())
        .stdin(std::process::Stdio::null());
    if let Some(cgroup) = cgroup {
        let procs = cgroup.join("cgroup.procs");
        // SAFETY: between fork and exec the child only opens and writes a file with the
        // raw syscalls (no allocation: the path is prepared before the fork).
        let path = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()).expect("no NUL");
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc_open(&path)?;
                let written = libc::write(fd, b"0\n".as_ptr().cast(), 2);
                libc::close(fd);
                if written != 2 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("starting the probe child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        // libtest may print `test probe_child ... ` before the first line.
        .filter_map(|l| l.find("PROBE ").map(|i| &l[i + 6..]))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !results.is_empty(),
        "the probe child printed nothing: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

/// `open(path, O_WRONLY)`, async-signal-safe.
unsafe fn libc_open(path: &std::ffi::CStr) -> std::io::Result<i32> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}
