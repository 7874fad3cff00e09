//! `mesh-cluster`: a real Kubernetes control plane on loopback, for tests and by hand.
//!
//! The binaries are the upstream ones, built once from the Go module proxy by `build.sh` (see
//! there for the versions and the cache). [`Cluster::start`] runs, in a folder of its own:
//!
//! * **etcd** on loopback ports, without fsync (test data);
//! * **kube-apiserver** on `127.0.0.1`, serving with a certificate of a CA made here, with
//!   **RBAC** authorization and a token file of identities ([`Identity`]): an admin
//!   (`system:masters`), and the ServiceAccounts of mesh-webhook and mesh-agent as the API
//!   server names a ServiceAccount (`system:serviceaccount:NS:NAME`, in its groups) so RBAC
//!   bindings to ServiceAccounts apply to them;
//! * **kube-controller-manager** (namespace deletion, garbage collection, EndpointSlices, ...)
//!   and **kube-scheduler**;
//! * optionally **kwok**, which plays the nodes and pods of a cluster.
//!
//! Service ClusterIPs come from 198.18.0.0/16 (RFC 2544's benchmarking range, which no network
//! routes): the control plane only allocates them; no test may send traffic to one.
//!
//! Dropping the [`Cluster`] stops every process it started and removes its folder
//! (`MESH_TEST_KEEP=1` keeps the folder, with each process's log). A test process that dies
//! takes its control plane with it (the kernel kills the children of a thread that exits), and
//! the next start removes the folders of processes that are gone.

pub mod conformance;
pub mod netns;
pub mod pods;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What can go wrong starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tests/cluster/build.sh failed ({0}); run it by hand to see why")]
    Build(String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot start {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("{0} did not become ready within {1:?}; its log is {2}")]
    NotReady(&'static str, Duration, PathBuf),
    #[error("cannot make the control plane's certificates: {0}")]
    Certificates(String),
    #[error("`{0}` failed: {1}")]
    Kubectl(String, String),
}

/// An identity the API server knows by its token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub token: String,
}

impl Identity {
    fn new(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token: token(),
        }
    }

    /// A ServiceAccount's identity, named and grouped as the API server names ServiceAccounts.
    fn service_account(namespace: &str, name: &str) -> Identity {
        Identity::new(
            &format!("system:serviceaccount:{namespace}:{name}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
                "system:authenticated",
            ],
        )
    }
}

/// A random bearer token (32 hex digits from the OS's randomness).
fn token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Options of [`Cluster::start`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run kwok too (simulated nodes and pods).
    pub kwok: bool,
    /// Keep running when dropped (`make cluster-up`): the processes are left to
    /// `mesh-cluster down`.
    pub detach: bool,
    /// The range kwok gives pod IPs from (default 127.80.0.0/16; in a [`netns`],
    /// a part of [`netns::ENDPOINTS`], so that EndpointSlices may hold them).
    pub pod_cidr: Option<String>,
    /// More kwok configuration (YAML documents: `ClusterPortForward`, `ClusterExec`, ...),
    /// read when kwok starts.
    pub kwok_config: Option<String>,
    /// `kubectl exec` and `kubectl logs` of kwok's pods: kwok follows the namespaced `Exec`
    /// and `Logs` objects (its CRDs, installed; one per pod: the exec's environment, the log
    /// file), looking the programs to exec up in this folder before its own PATH.
    pub exec_path: Option<PathBuf>,
}

/// A running control plane.
pub struct Cluster {
    /// The folder holding its certificates, kubeconfigs, data and logs.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    pub admin: Identity,
    /// mesh-webhook's ServiceAccount (`mesh-system/mesh-webhook`, as `manifests/webhook` names it).
    pub webhook: Identity,
    /// mesh-agent's ServiceAccount (`mesh-system/mesh-agent`).
    pub agent: Identity,
    children: Vec<(&'static str, Child)>,
    detach: bool,
}

/// The folder the control plane's binaries are in, built on first use (`build.sh`).
pub fn binaries() -> Result<PathBuf, Error> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build.sh");
        let out = Command::new("sh")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(out.status.to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .ok_or_else(|| "build.sh printed no folder".to_string())
    })
    .clone()
    .map_err(Error::Build)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Write(path.to_path_buf(), e))
}

/// The flags kube-controller-manager and kube-scheduler share: their identity's kubeconfig for
/// everything, no leader election, their health port on loopback.
fn component(kubeconfig: &Path) -> Vec<String> {
    let k = kubeconfig.display();
    vec![
        format!("--kubeconfig={k}"),
        format!("--authentication-kubeconfig={k}"),
        format!("--authorization-kubeconfig={k}"),
        "--leader-elect=false".to_string(),
        "--bind-address=127.0.0.1".to_string(),
        format!("--secure-port={}", free_port()),
    ]
}

/// The namespace the ServiceAccounts of kubectl-mesh live in (`manifests/`).
pub const SYSTEM_NAMESPACE: &str = "mesh-system";

impl Cluster {
    /// Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler (and kwok if
    /// asked), and wait until the API server is ready.
    pub fn start(options: Options) -> Result<Cluster, Error> {
        let bin = binaries()?;
        // Named for the test process, so a later start can tell the folder is stale; a
        // detached one outlives its process and is `make cluster-down`'s to remove.
        let owner = if options.detach {
            "up".to_string()
        } else {
            std::process::id().to_string()
        };
        let dir = std::env::temp_dir().join(format!(
            "mesh-cluster-{owner}-{}",
            token().get(..8).unwrap_or("0")
        ));
        std::fs::create_dir_all(dir.join("etcd")).map_err(|e| Error::Write(dir.clone(), e))?;
        // etcd wants its data folder private.
        {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o700);
            std::fs::set_permissions(dir.join("etcd"), private)
                .map_err(|e| Error::Write(dir.join("etcd"), e))?;
        }
        sweep_stale_folders();
        let mut cluster = Cluster {
            server: String::new(),
            admin: Identity::new("admin", &["system:masters", "system:authenticated"]),
            webhook: Identity::service_account(SYSTEM_NAMESPACE, "mesh-webhook"),
            agent: Identity::service_account(SYSTEM_NAMESPACE, "mesh-agent"),
            children: Vec::new(),
            detach: options.detach,
            dir,
        };
        cluster.certificates()?;
        let controllers = Identity::new(
            "system:kube-controller-manager",
            // The controllers run under one identity here (no per-controller ServiceAccount
            // credentials), so it needs what all of them need.
            &["system:masters", "system:authenticated"],
        );
        let scheduler = Identity::new("system:kube-scheduler", &["system:authenticated"]);
        let tokens: String = [
            &cluster.admin,
            &cluster.webhook,
            &cluster.agent,
            &controllers,
            &scheduler,
        ]
        .iter()
        .map(|i| {
            format!(
                "{},{},{},\"{}\"\n",
                i.token,
                i.user,
                i.user,
                i.groups.join(",")
            )
        })
        .collect();
        write(&cluster.dir.join("tokens.csv"), &tokens)?;

        let (client, peer) = (free_port(), free_port());
        let d = cluster.dir.display().to_string();
        cluster.spawn(
            &bin,
            "etcd",
            &[
                "--name=default",
                &format!("--data-dir={d}/etcd"),
                &format!("--listen-client-urls=http://127.0.0.1:{client}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )?;
        let port = free_port();
        cluster.server = format!("https://127.0.0.1:{port}");
        cluster.spawn(
            &bin,
            "kube-apiserver",
            &[
                &format!("--etcd-servers=http://127.0.0.1:{client}"),
                "--bind-address=127.0.0.1",
                &format!("--secure-port={port}"),
                &format!("--tls-cert-file={d}/tls.crt"),
                &format!("--tls-private-key-file={d}/tls.key"),
                &format!("--client-ca-file={d}/ca.crt"),
                &format!("--token-auth-file={d}/tokens.csv"),
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                &format!("--service-account-key-file={d}/sa.pub"),
                &format!("--service-account-signing-key-file={d}/sa.key"),
                "--service-cluster-ip-range=198.18.0.0/16",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
            ],
        )?;
        cluster.wait_ready("kube-apiserver", Duration::from_secs(60))?;
        let kcm = cluster.kubeconfig_for(&controllers, "controllers")?;
        let mut args = component(&kcm);
        args.extend([
            format!("--service-account-private-key-file={d}/sa.key"),
            format!("--root-ca-file={d}/ca.crt"),
            "--use-service-account-credentials=false".to_string(),
            "--controllers=*".to_string(),
        ]);
        cluster.spawn(&bin, "kube-controller-manager", &args)?;
        let sched = cluster.kubeconfig_for(&scheduler, "scheduler")?;
        cluster.spawn(&bin, "kube-scheduler", &component(&sched))?;
        if options.kwok {
            let admin = cluster.kubeconfig()?;
            let mut configs = vec![format!(
                "--config={}",
                bin.join("kwok-stages.yaml").display()
            )];
            if let Some(extra) = &options.kwok_config {
                let path = cluster.dir.join("kwok-extra.yaml");
                write(&path, extra)?;
                configs.push(format!("--config={}", path.display()));
            }
            let mut args = vec![
                format!("--kubeconfig={}", admin.display()),
                "--manage-all-nodes=false".to_string(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".to_string(),
                format!(
                    "--cidr={}",
                    options.pod_cidr.as_deref().unwrap_or("127.80.0.0/16")
                ),
                "--node-ip=127.0.0.1".to_string(),
                // Node leases renewed by kwok: without them the node lifecycle controller sees
                // no heartbeat for its grace period and marks every pod of the node not ready.
                "--node-lease-duration-seconds=40".to_string(),
            ];
            // The port kwok serves as the nodes' kubelet (exec, logs, port-forward): the
            // nodes' status says it, so the API server dials it.
            let kubelet = free_port();
            args.push(format!("--server-address=127.0.0.1:{kubelet}"));
            args.push(format!("--node-port={kubelet}"));
            args.extend(configs);
            let mut envs = Vec::new();
            if let Some(dir) = &options.exec_path {
                cluster.install_crd_sets(&["kwok"])?;
                args.push("--enable-crds=Exec,Logs".to_string());
                let mut path = dir.clone().into_os_string();
                path.push(":");
                path.push(std::env::var_os("PATH").unwrap_or_default());
                envs.push(("PATH", path));
            }
            cluster.spawn_with(&bin, "kwok", &args, &envs)?;
        }
        Ok(cluster)
    }

    /// The CA and the API server's serving certificate (issued as mesh-webhook issues its
    /// own: `ca.crt`, `tls.crt`, `tls.key`), and the ServiceAccount signing key.
    fn certificates(&self) -> Result<(), Error> {
        let extra = ["localhost".to_string(), "127.0.0.1".to_string()];
        mesh_webhook::certs::issue("kubernetes", "default", &extra, &self.dir, 30)
            .map_err(Error::Certificates)?;
        let sa = rcgen::KeyPair::generate().map_err(|e| Error::Certificates(e.to_string()))?;
        write(&self.dir.join("sa.key"), &sa.serialize_pem())?;
        write(&self.dir.join("sa.pub"), &sa.public_key_pem())?;
        Ok(())
    }

    fn spawn(
        &mut self,
        bin: &Path,
        name: &'static str,
        args: &[impl AsRef<std::ffi::OsStr>],
    ) -> Result<(), Error> {
        self.spawn_with(bin, name, args, &[])
    }

    fn spawn_with(
        &mut self,
        bin: &Path,
        name: &'static str,
        args: &[impl AsRef<std::ffi::OsStr>],
        envs: &[(&str, std::ffi::OsString)],
    ) -> Result<(), Error> {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| Error::Write(log_path, e))?;
        let err = log.try_clone().map_err(|e| Error::Spawn(name, e))?;
        let mut command = Command::new(bin.join(name));
        command
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        if !self.detach {
            // A test that panics, or is killed, must not leave an API server and etcd behind.
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().map_err(|e| Error::Spawn(name, e))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Wait until the API server answers `/readyz` to the admin.
    fn wait_ready(&self, name: &'static str, within: Duration) -> Result<(), Error> {
        let start = Instant::now();
        while start.elapsed() < within {
            let out = self
                .kubectl_as(&self.admin)
                .args(["get", "--raw", "/readyz"])
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(Error::NotReady(
            name,
            within,
            self.dir.join(format!("{name}.log")),
        ))
    }

    /// A kubeconfig file for `who`, written into the cluster's folder.
    pub fn kubeconfig_for(&self, who: &Identity, file: &str) -> Result<PathBuf, Error> {
        let path = self.dir.join(format!("{file}.kubeconfig"));
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "mesh",
            "clusters": [{"name": "mesh", "cluster": {
                "server": self.server,
                "certificate-authority": self.dir.join("ca.crt"),
            }}],
            "users": [{"name": who.user, "user": {"token": who.token}}],
            "contexts": [{"name": "mesh", "context": {"cluster": "mesh", "user": who.user}}],
        });
        write(&path, &config.to_string())?;
        Ok(path)
    }

    /// Install the Gateway API CRDs of the targeted release (`experimental` or `standard`
    /// channel, with its ValidatingAdmissionPolicy) and Cilium's CiliumEnvoyConfig and
    /// CiliumClusterwideEnvoyConfig CRDs, by server-side apply, and wait until they are served.
    pub fn install_crds(&self, channel: &str) -> Result<(), Error> {
        self.install_crd_sets(&[channel, "cilium"])
    }

    /// Install some of the CRD sets `build.sh` keeps (`standard`, `experimental`, `cilium`,
    /// `kwok`), and wait until they are served.
    pub fn install_crd_sets(&self, sets: &[&str]) -> Result<(), Error> {
        let crds = binaries()?.join("crds");
        for dir in sets {
            let path = crds.join(dir).display().to_string();
            self.kubectl(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=mesh-cluster",
                    "-f",
                    &path,
                ],
                "",
            )?;
        }
        self.kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ],
            "",
        )?;
        Ok(())
    }

    /// The namespace and RBAC of `manifests/webhook` (`00-namespace.yaml`, `10-rbac.yaml`),
    /// by server-side apply: what mesh-webhook's ServiceAccount ([`Cluster::webhook`]) may do.
    pub fn install_webhook_rbac(&self) -> Result<(), Error> {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/webhook");
        for f in ["00-namespace.yaml", "10-rbac.yaml"] {
            let path = manifests.join(f).display().to_string();
            self.kubectl(&["apply", "--server-side", "-f", &path], "")?;
        }
        Ok(())
    }

    /// The process ids of the control plane (for `mesh-cluster down`).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, c)| c.id()).collect()
    }

    /// The admin's kubeconfig.
    pub fn kubeconfig(&self) -> Result<PathBuf, Error> {
        self.kubeconfig_for(&self.admin, "admin")
    }

    /// The real kubectl (of the same release, built with the control plane) as `who`.
    pub fn kubectl_as(&self, who: &Identity) -> Command {
        let kubectl = binaries()
            .map(|b| b.join("kubectl"))
            .unwrap_or_else(|_| PathBuf::from("kubectl"));
        let mut c = Command::new(kubectl);
        c.args([
            &format!("--server={}", self.server),
            &format!(
                "--certificate-authority={}",
                self.dir.join("ca.crt").display()
            ),
            &format!("--token={}", who.token),
        ]);
        c
    }

    /// `kubectl ARGS` as the admin, with `stdin` fed to it; its stdout, or an error with its
    /// stderr.
    pub fn kubectl(&self, args: &[&str], stdin: &str) -> Result<String, Error> {
        run(self.kubectl_as(&self.admin), args, stdin)
    }

    /// `kubectl ARGS` as the admin, with what it printed on both streams (the API server's
    /// warnings are on stderr) whatever its outcome.
    pub fn kubectl_output(&self, args: &[&str], stdin: &str) -> Result<Output, Error> {
        output(self.kubectl_as(&self.admin), args, stdin)
    }
}

/// Move an EndpointSlice's loopback addresses (127.0.x.y, which the repository's examples and
/// corpora give so that mesh-agent can serve them on this machine) to 198.19.x.y: an API server
/// refuses loopback endpoint addresses, and 198.18.0.0/15 (RFC 2544) is routed nowhere, so no
/// traffic can reach it by mistake. Other objects are left as they are.
pub fn off_loopback(object: &mut serde_json::Value) {
    if object["kind"] != "EndpointSlice" {
        return;
    }
    for e in object["endpoints"].as_array_mut().into_iter().flatten() {
        for a in e["addresses"].as_array_mut().into_iter().flatten() {
            if let Some(rest) = a.as_str().and_then(|s| s.strip_prefix("127.0.")) {
                *a = serde_json::Value::String(format!("198.19.{rest}"));
            }
        }
    }
}

/// Run a kubectl command with `stdin`; stdout, or stderr as the error.
pub fn run(command: Command, args: &[&str], stdin: &str) -> Result<String, Error> {
    let shown = format!("kubectl {}", args.join(" "));
    let out = output(command, args, stdin)?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(Error::Kubectl(shown, out.stderr.trim().to_string()))
    }
}

/// What a kubectl command printed, and whether it succeeded.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    /// Errors, and the API server's warnings (`Warning: ...`, one per line).
    pub stderr: String,
}

impl Output {
    /// The warnings kubectl showed, without their `Warning: ` prefix.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("Warning: "))
            .collect()
    }

    /// Whether one of the warnings contains `text`.
    pub fn warned(&self, text: &str) -> bool {
        self.warnings().iter().any(|w| w.contains(text))
    }
}

/// Run a kubectl command with `stdin`, keeping stdout and stderr whatever its outcome.
pub fn output(mut command: Command, args: &[&str], stdin: &str) -> Result<Output, Error> {
    let shown = format!("kubectl {}", args.join(" "));
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Kubectl(shown.clone(), e.to_string()))?;
    // Fed from a thread of its own: kubectl prints while it reads, and a large input written
    // here while its output fills the pipe would leave both sides waiting.
    let feeder = child.stdin.take().map(|mut input| {
        let stdin = stdin.to_string();
        std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        })
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Kubectl(shown, e.to_string()))?;
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Remove the folders of control planes whose test process is gone (killed before it could
/// clean up).
fn sweep_stale_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mesh-cluster-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detach {
            return;
        }
        // The last started first: etcd goes last.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("MESH_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("mesh-cluster: kept {}", self.dir.display());
        }
    }
}
