//! Running mesh-agent on a folder for a test: start, wait, ask, stop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running mesh-agent on its own folder; killed (and the folder removed) when dropped.
pub struct Agent {
    pub child: Child,
    pub dir: PathBuf,
    pub admin: u16,
    pub outbound: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("MESH_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh, empty folder for a test's configuration.
pub fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Start mesh-agent on `dir` with `args` (Gateway address, timeouts, ...). Returns once its
/// admin API answers (ready or not).
pub async fn spawn(dir: &Path, args: &[&str]) -> Agent {
    spawn_limited(dir, args, None).await
}

/// [`spawn`] with the open-file limit (soft and hard) set to `nofile`.
pub async fn spawn_limited(dir: &Path, args: &[&str], nofile: Option<u64>) -> Agent {
    let source = ["--config-dir".to_string(), dir.display().to_string()];
    start(&source, dir, args, nofile).await
}

/// Start mesh-agent on a cluster (`--kubeconfig`), `dir` being a folder of the test's for it.
pub async fn spawn_on_cluster(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Agent {
    let source = ["--kubeconfig".to_string(), kubeconfig.display().to_string()];
    start(&source, dir, args, None).await
}

async fn start(source: &[String], dir: &Path, args: &[&str], nofile: Option<u64>) -> Agent {
    use std::os::unix::process::CommandExt;
    // A test may choose the admin port itself (`--admin-addr` among `args`).
    let chosen = args
        .iter()
        .position(|a| *a == "--admin-addr")
        .and_then(|i| args.get(i + 1))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok());
    let (outbound, admin) = (
        mesh_model::testing::free_port(),
        chosen.unwrap_or_else(mesh_model::testing::free_port),
    );
    let own_admin = ["--admin-addr".to_string(), format!("127.0.0.1:{admin}")];
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-agent"));
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe and only changes the child's own limits.
        unsafe {
            command.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = command
        .args(source)
        .args([
            "--outbound-addr",
            &format!("127.0.0.1:{outbound}"),
            "--reload-delay-ms",
            "20",
        ])
        .args(if chosen.is_some() {
            &[][..]
        } else {
            &own_admin[..]
        })
        .args(args)
        // Tests run as root: without this the default (--bpf auto) would attach to the
        // machine's cgroup root. The eBPF tests pass their own --bpf and sandbox.
        .args(if args.contains(&"--bpf") {
            Vec::new()
        } else {
            vec!["--bpf", "off", "--bpf-pin-dir", "/nonexistent/mesh-test"]
        })
        .stderr(if std::env::var_os("MESH_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let agent = Agent {
        child,
        dir: dir.to_path_buf(),
        admin,
        outbound,
    };
    let c = client();
    for _ in 0..100 {
        if c.get(agent.url("/server_info")).send().await.is_ok() {
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mesh-agent's admin API never answered");
}

impl Agent {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    pub async fn server_info(&self) -> Value {
        self.admin_json("/server_info").await
    }

    /// An admin API answer, as JSON.
    pub async fn admin_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `/stats/prometheus`.
    pub async fn stats(&self) -> String {
        client()
            .get(self.url("/stats/prometheus"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn ready(&self) -> (u16, String) {
        let r = client().get(self.url("/ready")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Wait for a load that began reading the folder after `since`; returns the new
    /// server_info.
    pub async fn loaded_since(&self, since: jiff::Timestamp) -> Value {
        for _ in 0..400 {
            let now = self.server_info().await;
            let read_at = now["last_reload"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if read_at.is_some_and(|t| t >= since) {
                // Listeners bind right after a load.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return now;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no load since {since}");
    }

    /// Wait for the first load.
    pub async fn loaded(&self) -> Value {
        self.loaded_since(jiff::Timestamp::UNIX_EPOCH).await
    }

    /// Change the folder with `change` and wait until the agent has loaded it.
    pub async fn change(&self, change: impl FnOnce(&Path)) -> Value {
        let since = jiff::Timestamp::now();
        change(&self.dir);
        self.loaded_since(since).await
    }

    /// Write a file of the folder and wait until the agent has loaded the change. The file is
    /// replaced at once (written next to the folder, then renamed into it), as a ConfigMap
    /// volume or an editor's save does: a plain write is seen truncated first, and the load
    /// that triggers could be the one this waits for.
    pub async fn write(&self, name: &str, text: &str) -> Value {
        self.change(|dir| {
            let parent = dir.parent().expect("the agent's folder has a parent");
            let aside = parent.join(format!(".{}-{name}.tmp", std::process::id()));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, dir.join(name)).unwrap();
        })
        .await
    }

    pub async fn remove(&self, name: &str) -> Value {
        self.change(|dir| std::fs::remove_file(dir.join(name)).unwrap())
            .await
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}

/// GET `url` with a Host header: status and body.
pub async fn get(url: &str, host: &str) -> (u16, String) {
    let r = client().get(url).header("host", host).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Requests a backend received, as mesh-echo describes them.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// Start an in-process mesh-echo backend named `pod` on `addr`; returns what it receives.
pub async fn backend(addr: &str, pod: &str, namespace: &str) -> Seen {
    let seen = Seen::default();
    let run = mesh_echo::serve(mesh_echo::Args {
        seen: Some(seen.clone()),
        ..mesh_echo::Args::new(addr.parse().unwrap(), pod, namespace)
    })
    .await
    .expect("backend address free");
    tokio::spawn(run);
    seen
}

/// Whether GET `url` (with Host `host`) answers 200 within about `tries` tenths of a second.
pub async fn answers_200(url: &str, host: Option<&str>, tries: u32) -> bool {
    let c = client();
    for _ in 0..tries {
        let mut r = c.get(url);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        if r.send().await.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Send raw bytes to `addr` and read the answer until the server closes or `within` passes.
pub async fn raw(addr: &str, request: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A Service with one port and its EndpointSlice with one ready endpoint.
pub fn service(ns: &str, name: &str, port: u16, endpoint: &str, target: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports: [{{name: http, port: {port}, targetPort: {target}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {target}}}]\nendpoints: [{{addresses: ['{endpoint}'], conditions: {{ready: true}}}}]\n"
    )
}

/// The GatewayClass `mesh`, of mesh-agent's controller.
pub const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: mesh}\nspec: {controllerName: kubectl-mesh.io/gateway-controller}\n";

/// The Gateway `default/edge` of class `mesh` with one HTTP listener on `port`.
pub fn gateway_yaml(port: u16) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: default}}\nspec:\n  gatewayClassName: mesh\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n")
}

/// A minimal Gateway setup: class, one HTTP listener on `port`, a route for `/` to `svc`.
pub fn gateway_with_route(port: u16, endpoint: &str, target: u16) -> String {
    [
        CLASS.to_string(),
        gateway_yaml(port),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: all, namespace: default}\nspec:\n  parentRefs: [{name: edge}]\n  rules: [{backendRefs: [{name: svc, port: 80}]}]\n".to_string(),
        service("default", "svc", 80, endpoint, target),
    ]
    .join("---\n")
}

/// CPU time (user + system) the process has used, from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Whether the server closes `stream` within `within` (reads return 0 or an error).
pub async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// An HTTPRoute `default/NAME` on the Gateway `edge` for paths under `path`; `rest` continues
/// the rule (filters, backendRefs, more rules), indented as a rule's fields.
pub fn route_yaml(name: &str, path: &str, rest: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: edge}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]\n{rest}")
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kubernetes.io/tls` Secret in `default` holding a certificate and its key (PEM).
pub fn secret(name: &str, cert_pem: &str, key_pem: &[u8]) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(cert_pem.as_bytes()),
        b64(key_pem)
    )
}

/// A CA as a ConfigMap named `name`, and a serving certificate (cert, key) it issued for
/// `names` (DNS names, or `spiffe://` URIs).
pub fn ca_and_server(name: &str, names: &[&str]) -> (String, mesh_echo::TlsIdentity) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "backend");
    for n in names {
        leaf.subject_alt_names.push(if n.starts_with("spiffe://") {
            SanType::URI(n.to_string().try_into().unwrap())
        } else {
            SanType::DnsName(n.to_string().try_into().unwrap())
        });
    }
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let config_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata:\n  ca.crt: |\n    {}\n",
        ca.pem().trim_end().replace('\n', "\n    ")
    );
    (
        config_map,
        mesh_echo::TlsIdentity {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        },
    )
}

/// Build the Go program in `tests/NAME` (test infrastructure, e.g. the authorization service)
/// once per test binary, returning its path (`go` must be on PATH; modules come from the Go
/// module proxy and are cached after the first build).
pub fn go_program(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests")
        .join(name);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("go-{name}"));
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .env("GOFLAGS", "-mod=mod")
        .current_dir(&src)
        .status()
        .expect("`go` runs (install Go: the test services are built with it)");
    assert!(status.success(), "go build in {}", src.display());
    out
}
