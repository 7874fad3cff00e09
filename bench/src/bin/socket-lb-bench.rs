//! `socket-lb-bench`: what the eBPF socket load balancer costs, side by side in one run.
//!
//! * connect(): the time of one `connect()` to a Service with 1,000 Services configured,
//!   three ways, interleaved round by round: to the backend directly (no translation), to a
//!   ClusterIP through the programs (mesh-agent `--bpf on` wrote the maps), and to a ClusterIP
//!   through iptables DNAT rules laid out as kube-proxy's iptables mode lays them out (a
//!   KUBE-SERVICES-like chain with one rule per Service, a per-Service chain choosing an
//!   endpoint with `statistic`, a per-endpoint DNAT chain). The Service measured is the
//!   500th of the chain: the average position. The programs' way is measured twice: before
//!   any Service has a mesh route, and after one has (sock_ops then runs for every
//!   connection).
//! * requests/s through the L7 redirect: one HTTP/1.1 request per connection to a Service
//!   with a mesh route, dialled by ClusterIP (redirected to the agent, which looks up the
//!   original destination) against the same requests sent to the agent's outbound entry
//!   directly with the Service's name.
//!
//! Needs root (cgroup v2, bpf, iptables) and `make build` (target/release/mesh-agent). Every
//! address is on loopback: ClusterIPs in 127.12.0.0/16 (programs) and 127.13.0.0/16
//! (iptables), backends on 127.0.5.x. The bench moves itself into a cgroup of its own for the
//! programs' rounds and back out for the others. Method and figures: docs/benchmarks.md.

use mesh_bench::median;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICES: usize = 1000;
/// The Service measured: the middle of the iptables chain.
const MEASURED: usize = SERVICES / 2;
const CHAIN: &str = "MESH-BENCH-SERVICES";

struct Opts {
    rounds: usize,
    connects: usize,
    seconds: f64,
}

fn opts() -> Opts {
    let mut o = Opts {
        rounds: 15,
        connects: 2000,
        seconds: 3.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rounds" => o.rounds = value.parse().unwrap_or_else(|_| fail("--rounds N")),
            "--connects" => o.connects = value.parse().unwrap_or_else(|_| fail("--connects N")),
            "--seconds" => o.seconds = value.parse().unwrap_or_else(|_| fail("--seconds S")),
            other => fail(format!(
                "unknown argument {other}; usage: socket-lb-bench [--rounds 15] [--connects 2000] [--seconds 3]"
            )),
        }
        i += 2;
    }
    o
}

static CHILDREN: std::sync::Mutex<Vec<Child>> = std::sync::Mutex::new(Vec::new());
/// The bench's cgroup and pin folder, removed on every exit path (`fail` exits without
/// unwinding, so the sandbox's `Drop` alone would leave them).
static SANDBOX: std::sync::Mutex<Option<(PathBuf, PathBuf)>> = std::sync::Mutex::new(None);
/// The connecting children (some in the sandbox's cgroup, which cannot go while they live).
static CONNECTORS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Stop what was started and remove the iptables rules, on every exit path.
fn cleanup() {
    for mut c in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
    for pid in CONNECTORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        // SAFETY: a signal to a child of ours (a pid not yet reaped, so not reused).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(50));
    if let Some((cgroup, pins)) = SANDBOX.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = mesh_bpf::datapath::uninstall(&pins);
        let _ = std::fs::remove_dir(&cgroup);
    }
    let _ = Command::new("iptables")
        .args(["-t", "nat", "-D", "OUTPUT", "-j", CHAIN])
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            let mut text = String::from("*nat\n");
            for line in chains() {
                text.push_str(&format!("-F {line}\n-X {line}\n"));
            }
            text.push_str("COMMIT\n");
            c.stdin.take().expect("piped").write_all(text.as_bytes())?;
            c.wait()
        });
}

/// Ctrl-C or a TERM still removes the iptables rules, the agent and the programs: the
/// signals are taken by a thread of their own (blocked everywhere else, before any thread
/// starts; the children get them unblocked back).
fn on_interrupt_clean_up() {
    // SAFETY: signal-mask calls on a zeroed set; no thread exists yet.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waits for one of the blocked signals.
        unsafe { libc::sigwait(&set, &mut sig) };
        fail(format!(
            "interrupted (signal {sig}); iptables rules, the agent and the programs removed"
        ));
    });
}

/// Children start with the signals unblocked again.
fn unblocked(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only signal-mask syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Ok(())
        })
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    // One cleanup: a second failure (the interrupt thread's and the main thread's at once)
    // waits here until the first has cleaned up and exited.
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = ONCE.lock();
    cleanup();
    eprintln!("socket-lb-bench: {msg}");
    std::process::exit(1);
}

fn cluster_ip(base: u8, i: usize) -> String {
    format!("127.{base}.{}.{}", i / 250, i % 250 + 1)
}

/// Every chain the iptables layout makes.
fn chains() -> Vec<String> {
    let mut out = vec![CHAIN.to_string()];
    for i in 0..SERVICES {
        out.push(format!("MB-SVC-{i}"));
        out.push(format!("MB-SEP-{i}-0"));
        out.push(format!("MB-SEP-{i}-1"));
    }
    out
}

/// kube-proxy's iptables layout for the Services, to the same two backends.
fn iptables_rules(backends: &[SocketAddr; 2]) -> String {
    let mut t = String::from("*nat\n");
    for c in chains() {
        t.push_str(&format!(":{c} - [0:0]\n"));
    }
    for i in 0..SERVICES {
        t.push_str(&format!(
            "-A {CHAIN} -d {}/32 -p tcp -m tcp --dport 80 -j MB-SVC-{i}\n",
            cluster_ip(13, i)
        ));
        t.push_str(&format!(
            "-A MB-SVC-{i} -m statistic --mode random --probability 0.5 -j MB-SEP-{i}-0\n-A MB-SVC-{i} -j MB-SEP-{i}-1\n"
        ));
        for (k, b) in backends.iter().enumerate() {
            t.push_str(&format!(
                "-A MB-SEP-{i}-{k} -p tcp -m tcp -j DNAT --to-destination {b}\n"
            ));
        }
    }
    t.push_str("COMMIT\n");
    t
}

/// Put kube-proxy's jump from OUTPUT into the Services chain in place, or take it out: the
/// rounds of the other ways run without it, as a node without kube-proxy does.
fn jump(on: bool) {
    let op = if on { "-I" } else { "-D" };
    let ok = Command::new("iptables")
        .args(["-t", "nat", op, "OUTPUT", "-j", CHAIN])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail(format!("iptables -t nat {op} OUTPUT -j {CHAIN} failed"));
    }
}

fn service_yaml(name: &str, ip: &str, endpoints: &[SocketAddr]) -> String {
    let port = endpoints[0].port();
    let eps: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{{addresses: ['{}'], conditions: {{ready: true}}}}", e.ip()))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  clusterIP: {ip}\n  ports: [{{name: http, port: 80, targetPort: {port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: bench, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{}]\n---\n",
        eps.join(", ")
    )
}

/// A backend that accepts and drops connections, counting them.
fn acceptor(addr: SocketAddr) -> Arc<AtomicU64> {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| fail(format!("{addr}: {e}")));
    let n = Arc::new(AtomicU64::new(0));
    let count = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    n
}

/// A backend answering each HTTP/1.1 request with 200 and closing.
fn http_backend(addr: SocketAddr) {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| fail(format!("{addr}: {e}")));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve_http(s));
        }
    });
}

fn serve_http(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            return;
        }
    }
}

/// One `connect()`, timed alone (socket creation and close excluded); the connection is
/// reset on close so no TIME_WAIT piles up.
fn timed_connect(to: SocketAddrV4) -> Result<u64, std::io::Error> {
    // SAFETY: plain socket syscalls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: to.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*to.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let started = Instant::now();
        let r = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let elapsed = started.elapsed().as_nanos() as u64;
        let err = (r != 0).then(std::io::Error::last_os_error);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        libc::close(fd);
        match err {
            Some(e) => Err(e),
            None => Ok(elapsed),
        }
    }
}

/// Move this whole process into `cgroup`.
fn move_to(cgroup: &Path) {
    std::fs::write(cgroup.join("cgroup.procs"), "0")
        .unwrap_or_else(|e| fail(format!("moving into {}: {e}", cgroup.display())));
}

/// The cgroup v2 this process started in.
fn own_cgroup(root: &Path) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    root.join(path.trim_start_matches('/'))
}

/// Requests per second, one request per connection, for `seconds`.
fn http_rate(to: SocketAddr, host: &str, seconds: f64) -> f64 {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let mut s = TcpStream::connect(to).unwrap_or_else(|e| fail(format!("{to}: {e}")));
        s.write_all(request.as_bytes())
            .unwrap_or_else(|e| fail(format!("{to}: {e}")));
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        if !answer.starts_with(b"HTTP/1.1 200") {
            fail(format!(
                "{to} (Host {host}) answered {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(80)])
            ));
        }
        done += 1;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// A connecting child: for each byte read on stdin, one timed connect to the next address
/// of `to`; the time (ns) written as a line on stdout. Run as `socket-lb-bench
/// --connect-child ADDR[,ADDR]`, in the cgroup and on the core its parent chose.
fn connect_child(to: &str) -> ! {
    let to: Vec<SocketAddrV4> = to.split(',').filter_map(|a| a.parse().ok()).collect();
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut byte = [0u8; 1];
    let mut i = 0usize;
    while input.read_exact(&mut byte).is_ok() {
        let line = match timed_connect(to[i % to.len()]) {
            Ok(ns) => format!("{ns}\n"),
            Err(e) => format!("error {e}\n"),
        };
        i += 1;
        if out
            .write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            break;
        }
    }
    std::process::exit(0);
}

/// A connecting child process pinned to `core`, in `cgroup` when given.
struct Connector {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Connector {
    fn start(to: &[SocketAddrV4], core: usize, cgroup: Option<&Path>) -> Connector {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(e));
        let list: Vec<String> = to.iter().map(ToString::to_string).collect();
        let mut cmd = Command::new(exe);
        unblocked(&mut cmd);
        cmd.arg("--connect-child")
            .arg(list.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let procs = cgroup.map(|c| {
            std::ffi::CString::new(c.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .expect("no NUL")
        });
        // SAFETY: between fork and exec only raw syscalls on prepared data.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(core, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                if let Some(p) = &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| fail(format!("connect child: {e}")));
        CONNECTORS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let stdin = child.stdin.take().expect("piped");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Connector {
            child,
            stdin,
            stdout,
        }
    }

    /// One connect; its time in ns.
    fn once(&mut self) -> f64 {
        use std::io::BufRead;
        if self
            .stdin
            .write_all(b"x")
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            fail("a connect child died");
        }
        let mut line = String::new();
        if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
            fail("a connect child died");
        }
        line.trim()
            .parse()
            .unwrap_or_else(|_| fail(format!("connect failed: {}", line.trim())))
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        let pid = self.child.id();
        CONNECTORS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` connects of each connector in lockstep (a, b, a, b, ...), so whatever else the
/// machine does meets both alike: the median of b's and a's times, and the median of their
/// pairwise differences.
fn lockstep(a: &mut Connector, b: &mut Connector, n: usize) -> (f64, f64, f64) {
    let (mut ta, mut tb, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Alternate which goes first within a pair.
        let (x, y) = if i % 2 == 0 {
            let x = a.once();
            (x, b.once())
        } else {
            let y = b.once();
            (a.once(), y)
        };
        ta.push(x);
        tb.push(y);
        diff.push(y - x);
    }
    (median(ta), median(tb), median(diff))
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--connect-child") {
        connect_child(argv.get(2).map(String::as_str).unwrap_or(""));
    }
    let o = opts();
    on_interrupt_clean_up();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        fail("needs root (cgroup v2, eBPF programs, iptables rules)");
    }
    let agent_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("mesh-agent")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| fail("target/release/mesh-agent not found: run `make build` first"));
    let Some(sandbox) = mesh_bpf::testing::Sandbox::new("socket-lb-bench") else {
        fail("eBPF cgroup programs cannot run here (see above)");
    };
    *SANDBOX.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((sandbox.cgroup.clone(), sandbox.pins.clone()));
    let root = mesh_bpf::datapath::cgroup2_root().unwrap_or_else(|e| fail(e));
    let home = own_cgroup(&root);

    let port = mesh_model::testing::free_port();
    let backends: [SocketAddr; 2] = [
        format!("127.0.5.1:{port}").parse().unwrap(),
        format!("127.0.5.2:{port}").parse().unwrap(),
    ];
    let accepted: Vec<Arc<AtomicU64>> = backends.iter().map(|b| acceptor(*b)).collect();
    let http: SocketAddr = format!("127.0.5.3:{port}").parse().unwrap();
    http_backend(http);

    // mesh-agent with the programs on, over 1,000 Services and one with a mesh route.
    let dir = std::env::temp_dir().join(format!("socket-lb-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(e));
    let mut yaml = String::new();
    for i in 0..SERVICES {
        yaml.push_str(&service_yaml(
            &format!("svc-{i}"),
            &cluster_ip(12, i),
            &backends,
        ));
    }
    yaml.push_str(&service_yaml("routed", "127.12.200.1", &[http]));
    // The mesh route comes later: first the node has none, and sock_ops is not attached.
    std::fs::write(dir.join("services.yaml"), yaml).unwrap_or_else(|e| fail(e));
    let (admin, outbound) = (
        mesh_model::testing::free_port(),
        mesh_model::testing::free_port(),
    );
    let outbound_addr: SocketAddr = format!("127.0.0.1:{outbound}").parse().unwrap();
    let child = unblocked(&mut Command::new("taskset"))
        .args(["-c", "1"])
        .arg(&agent_bin)
        .arg("--config-dir")
        .arg(&dir)
        .args([
            "--concurrency",
            "1",
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--outbound-addr",
            &outbound_addr.to_string(),
            "--bpf",
            "on",
            "--cgroup",
        ])
        .arg(&sandbox.cgroup)
        .arg("--bpf-pin-dir")
        .arg(&sandbox.pins)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(format!("mesh-agent: {e}")));
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
    let ready = format!("http://127.0.0.1:{admin}/ready");
    let client = reqwest::blocking::Client::new();
    if !(0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        client.get(&ready).send().is_ok_and(|r| r.status() == 200)
    }) {
        fail(format!("{ready} never became ready"));
    }

    // kube-proxy's rules for the same Services on 127.13.0.0/16.
    let mut restore = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(format!("iptables-restore: {e} (apt-get install iptables)")));
    restore
        .stdin
        .take()
        .expect("piped")
        .write_all(iptables_rules(&backends).as_bytes())
        .unwrap_or_else(|e| fail(e));
    if !restore.wait().is_ok_and(|s| s.success()) {
        fail("iptables-restore refused the rules");
    }

    let v4 = |s: String| -> SocketAddrV4 { s.parse().unwrap() };
    let direct = [v4(backends[0].to_string()), v4(backends[1].to_string())];
    let through_bpf = [v4(format!("{}:80", cluster_ip(12, MEASURED)))];
    let through_iptables = [v4(format!("{}:80", cluster_ip(13, MEASURED)))];

    // Each way reaches a backend before anything is measured.
    let total = || {
        accepted
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let before = total();
    // The connecting processes share core 0; the agent runs on core 1.
    let mut plain = Connector::start(&direct, 0, None);
    let mut bpf = Connector::start(&through_bpf, 0, Some(&sandbox.cgroup));
    let mut ipt = Connector::start(&through_iptables, 0, None);
    let mut missed = Connector::start(&direct, 0, Some(&sandbox.cgroup));
    for _ in 0..10 {
        plain.once();
        bpf.once();
    }
    jump(true);
    for _ in 0..10 {
        ipt.once();
    }
    jump(false);
    std::thread::sleep(Duration::from_millis(100));
    if total() < before + 30 {
        fail("connects did not all reach the backends");
    }

    println!(
        "connect() with {SERVICES} Services: {} rounds x {} connect pairs, in lockstep",
        o.rounds, o.connects
    );
    let (mut d, mut b, mut added, mut i, mut t, mut added_ipt) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut m, mut added_miss) = (Vec::new(), Vec::new());
    for _ in 0..o.rounds {
        // A process in the balanced cgroup connecting to no Service: the programs run and
        // find nothing.
        let (_, y, diff) = lockstep(&mut plain, &mut missed, o.connects);
        m.push(y);
        added_miss.push(diff);
        // Without kube-proxy's rules: directly against through the programs.
        let (x, y, diff) = lockstep(&mut plain, &mut bpf, o.connects);
        d.push(x);
        b.push(y);
        added.push(diff);
        // With them: directly (every connect walks the chain) against through DNAT.
        jump(true);
        let (x, y, diff) = lockstep(&mut plain, &mut ipt, o.connects);
        jump(false);
        t.push(x);
        i.push(y);
        added_ipt.push(diff);
    }
    let (d, b, added) = (median(d), median(b), median(added));
    let (t, i, added_ipt) = (median(t), median(i), median(added_ipt));
    println!("| way | connect() median ns | added per connect (median of pairs) |");
    println!("| --- | ---: | ---: |");
    println!("| backend directly | {d:.0} | - |");
    println!(
        "| ClusterIP via eBPF (mesh-agent), no mesh route on the node | {b:.0} | {added:+.0} ns |"
    );
    println!(
        "| backend directly, from the balanced cgroup (programs run, no Service) | {:.0} | {:+.0} ns |",
        median(m),
        median(added_miss)
    );
    println!("| backend directly, kube-proxy's rules installed | {t:.0} | {:+.0} ns (vs directly without them) |", t - d);
    println!("| ClusterIP via iptables DNAT (kube-proxy layout) | {i:.0} | {:+.0} ns (vs directly without the rules; {added_ipt:+.0} ns vs directly with them) |", i - d);

    // A mesh route on the node: sock_ops is attached for the redirect, and runs for every TCP
    // connection of the cgroup.
    std::fs::write(
        dir.join("route.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: routed, namespace: bench}\nspec:\n  parentRefs: [{group: '', kind: Service, name: routed, port: 80}]\n  rules: [{backendRefs: [{name: routed, port: 80}]}]\n",
    )
    .unwrap_or_else(|e| fail(e));
    let services = format!("http://127.0.0.1:{admin}/services");
    if !(0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        client
            .get(&services)
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.contains("\"l7\":true"))
    }) {
        fail("the agent never redirected the routed Service");
    }
    let (mut b7, mut added7) = (Vec::new(), Vec::new());
    for _ in 0..o.rounds {
        let (_, y, diff) = lockstep(&mut plain, &mut bpf, o.connects);
        b7.push(y);
        added7.push(diff);
    }
    println!(
        "| ClusterIP via eBPF, a mesh route on the node (sock_ops attached) | {:.0} | {:+.0} ns |",
        median(b7),
        median(added7)
    );
    drop((plain, bpf, ipt, missed));

    // L7: one request per connection, by ClusterIP (redirected) or to the outbound entry.
    let routed: SocketAddr = "127.12.200.1:80".parse().unwrap();
    let (mut via, mut to_agent) = (Vec::new(), Vec::new());
    move_to(&sandbox.cgroup);
    for _ in 0..3 {
        via.push(http_rate(routed, "ignored.example", o.seconds));
        to_agent.push(http_rate(outbound_addr, "routed.bench", o.seconds));
    }
    move_to(&home);
    let (via, to_agent) = (median(via), median(to_agent));
    println!();
    println!(
        "requests/s, one request per connection, 3 rounds x {}s:",
        o.seconds
    );
    println!("| way | requests/s | ratio |");
    println!("| --- | ---: | ---: |");
    println!("| to the outbound entry directly (Host: routed.bench) | {to_agent:.0} | 1.00 |");
    println!(
        "| to the ClusterIP, redirected by eBPF, routed by original destination | {via:.0} | {:.2} |",
        via / to_agent
    );
    cleanup();
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&dir);
}
