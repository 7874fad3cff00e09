//! Pods of the conformance suite's echo image, run as mesh-echo servers at their pod IPs.
//!
//! kwok plays the nodes: it schedules nothing but marks pods Running with an IP of its
//! `--cidr`. For traffic to reach a pod, something must listen at that IP: this runner watches
//! the pods (`kubectl get pods` every half second) and, for each running pod of
//! `registry.k8s.io/gateway-api/echo-basic`, serves mesh-echo on the pod's IP as the image
//! would (HTTP, h2c, gRPC and WebSocket on 3000, h2c also on 3001; HTTPS on 8443 when `TLS_SERVER_CERT` names a
//! file of a Secret volume; the TCP echo instead when `TCP_ECHO_SERVER` is set), named by its
//! `POD_NAME` and `NAMESPACE`. A pod that goes away stops being served. The pod IPs must be
//! local (`crate::netns`).
//!
//! Pods of the mesh tests' image (`registry.k8s.io/gateway-api/echo-advanced`, Istio's echo)
//! are served as its arguments say (`--port=N` HTTP, `--tls=N` making one of them HTTPS with a
//! certificate of the runner's, `--grpc=N` gRPC; the image's 8080 and 7070 without any),
//! answering in its `Key=value` format. The suite sends their traffic from inside them with
//! `kubectl exec POD -- client URL`: with a [`Node`], the runner writes each such pod a kwok
//! `Exec` rule running `mesh-echo client` (found by kwok as `client`) in the pod's world: the
//! cluster's Services as a hosts file with the pod's search domains, the pod's IP as source,
//! and the cgroup whose connects the eBPF datapath translates. It also writes every served pod
//! a kwok `Logs` rule: `kubectl logs` reads the file where its servers log each request as the
//! image does (mirror tests look for the mirrored request there).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

/// The running pods' servers; stopped when dropped.
pub struct Pods {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Pods {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `kubectl` with a kubeconfig, as a function of its arguments.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    fn json(&self, args: &[&str]) -> Option<Value> {
        let out = self
            .command()
            .args(args)
            .args(["-o", "json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Server-side apply one object (JSON).
    fn apply(&self, object: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = self
            .command()
            .args([
                "apply",
                "--server-side",
                "--field-manager=mesh-cluster",
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(object.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// What one pod's container serves.
#[derive(Debug, Clone, PartialEq)]
struct Echo {
    ip: IpAddr,
    pod: String,
    namespace: String,
    tcp: bool,
    tls: Option<mesh_echo::TlsIdentity>,
    /// A pod of echo-advanced: its ports and version instead of echo-basic's.
    advanced: Option<Advanced>,
}

/// The ports of an echo-advanced pod, from its arguments.
#[derive(Debug, Clone, PartialEq)]
struct Advanced {
    http: Vec<u16>,
    tls: Vec<u16>,
    grpc: Vec<u16>,
    /// The pod's `version` label (the image reports it as `ServiceVersion`).
    version: String,
}

/// What kwok's node gives its pods besides IPs: `kubectl exec` into mesh pods and `kubectl
/// logs` (kwok reading its `Exec` and `Logs` objects: `crate::Options::exec_path`).
#[derive(Debug, Clone)]
pub struct Node {
    /// The cgroup the commands join (where the agent's eBPF programs are attached).
    pub cgroup: PathBuf,
    /// The hosts file the runner keeps: every Service's ClusterIP under its cluster name.
    pub hosts: PathBuf,
    /// The folder of the pods' log files (`NAMESPACE_POD.log`).
    pub logs: PathBuf,
}

/// The value of a container's environment variable (literal, or the pod's name or namespace).
fn env(container: &Value, pod: &Value, name: &str) -> Option<String> {
    let e = container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?;
    if let Some(v) = e["value"].as_str() {
        return Some(v.to_string());
    }
    match e["valueFrom"]["fieldRef"]["fieldPath"].as_str()? {
        "metadata.name" => pod["metadata"]["name"].as_str().map(str::to_string),
        "metadata.namespace" => pod["metadata"]["namespace"].as_str().map(str::to_string),
        _ => None,
    }
}

/// The cluster's Secrets, listed once per look at the pods and only if a pod needs one.
struct Secrets<'a> {
    kubectl: &'a Kubectl,
    listed: Option<Value>,
}

impl Secrets<'_> {
    fn get(&mut self, namespace: &str, name: &str) -> Option<&Value> {
        let kubectl = self.kubectl;
        let list = self
            .listed
            .get_or_insert_with(|| kubectl.json(&["get", "secrets", "-A"]).unwrap_or_default());
        list["items"]
            .as_array()?
            .iter()
            .find(|s| s["metadata"]["namespace"] == namespace && s["metadata"]["name"] == name)
    }
}

/// The bytes of a file of a Secret volume that `path` names inside the container.
fn secret_file(
    secrets: &mut Secrets,
    container: &Value,
    pod: &Value,
    path: &str,
) -> Option<Vec<u8>> {
    let mount = container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"].as_str().is_some_and(|p| path.starts_with(p)))?;
    let file = path
        .strip_prefix(mount["mountPath"].as_str()?)?
        .trim_start_matches('/');
    let volume = pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let secret = &volume["secret"];
    let key = secret["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["path"] == file))
        .and_then(|i| i["key"].as_str())
        .unwrap_or(file);
    let ns = pod["metadata"]["namespace"].as_str()?;
    let s = secrets.get(ns, secret["secretName"].as_str()?)?;
    base64::engine::general_purpose::STANDARD
        .decode(s["data"][key].as_str()?)
        .ok()
}

/// echo-advanced's ports from its container's arguments (`--port=8080`, `--grpc 7070`).
fn advanced_of(container: &Value, pod: &Value) -> Advanced {
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut ports: HashMap<&str, Vec<u16>> = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        // `--flag=value`, or `--flag value` unless what follows is another flag.
        let (flag, value) = match args[i].split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => match args.get(i + 1).filter(|v| !v.starts_with('-')) {
                Some(v) => {
                    i += 1;
                    (args[i - 1], Some(*v))
                }
                None => (args[i], None),
            },
        };
        i += 1;
        let flag = flag.trim_start_matches('-');
        if let Some(port) = value.and_then(|v| v.parse().ok()) {
            ports.entry(flag).or_default().push(port);
        }
    }
    let mut take = |f: &str| ports.remove(f).unwrap_or_default();
    let (mut http, tls, mut grpc) = (take("port"), take("tls"), take("grpc"));
    if args.is_empty() {
        // The image's defaults.
        http = vec![8080];
        grpc = vec![7070];
    }
    Advanced {
        http,
        tls,
        grpc,
        version: pod["metadata"]["labels"]["version"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    }
}

/// What a running echo-basic or echo-advanced pod serves; None while it cannot be served yet
/// (no IP, its Secret not there).
fn echo_of(secrets: &mut Secrets, pod: &Value) -> Option<Echo> {
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ip: IpAddr = pod["status"]["podIP"].as_str()?.parse().ok()?;
    if let Some(container) = pod["spec"]["containers"].as_array()?.iter().find(|c| {
        c["image"]
            .as_str()
            .is_some_and(|i| i.contains("/echo-advanced:"))
    }) {
        return Some(Echo {
            ip,
            pod: pod["metadata"]["name"].as_str()?.to_string(),
            namespace: pod["metadata"]["namespace"].as_str()?.to_string(),
            tcp: false,
            tls: None,
            advanced: Some(advanced_of(container, pod)),
        });
    }
    let container = pod["spec"]["containers"].as_array()?.iter().find(|c| {
        c["image"]
            .as_str()
            .is_some_and(|i| i.contains("/echo-basic:"))
    })?;
    let cert = env(container, pod, "TLS_SERVER_CERT");
    let key = env(container, pod, "TLS_SERVER_PRIVKEY")
        .or_else(|| env(container, pod, "TLS_SERVER_PRIV_KEY"));
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some(mesh_echo::TlsIdentity {
            cert_pem: secret_file(secrets, container, pod, &c)?,
            key_pem: secret_file(secrets, container, pod, &k)?,
        }),
        _ => None,
    };
    Some(Echo {
        ip,
        pod: env(container, pod, "POD_NAME")
            .or_else(|| pod["metadata"]["name"].as_str().map(str::to_string))?,
        namespace: env(container, pod, "NAMESPACE").unwrap_or_default(),
        tcp: env(container, pod, "TCP_ECHO_SERVER").is_some(),
        tls,
        advanced: None,
    })
}

/// A certificate for echo-advanced's TLS ports (the image has one built in).
fn advanced_identity(pod: &str) -> std::io::Result<mesh_echo::TlsIdentity> {
    let cert = rcgen::generate_simple_self_signed(vec![pod.to_string()])
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(mesh_echo::TlsIdentity {
        cert_pem: cert.cert.pem().into_bytes(),
        key_pem: cert.signing_key.serialize_pem().into_bytes(),
    })
}

async fn serve_advanced(
    e: &Echo,
    a: &Advanced,
    log: Option<&PathBuf>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let mut ports = a.http.clone();
    ports.extend(a.grpc.iter().filter(|p| !a.http.contains(p)));
    for port in ports {
        let mut args = mesh_echo::Args::new(SocketAddr::new(e.ip, port), &e.pod, &e.namespace);
        args.format = mesh_echo::Format::EchoAdvanced;
        args.service_version = a.version.clone();
        args.quiet = true;
        args.log_file = log.cloned();
        if a.tls.contains(&port) {
            args.tls = Some(advanced_identity(&e.pod)?);
        }
        tasks.push(tokio::spawn(mesh_echo::serve(args).await?));
    }
    Ok(tasks)
}

/// Serve a pod, its requests logged to `log`.
async fn serve(
    e: &Echo,
    log: Option<PathBuf>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    if let Some(a) = &e.advanced {
        return serve_advanced(e, a, log.as_ref()).await;
    }
    let protocol = if e.tcp {
        mesh_echo::EchoProtocol::Tcp
    } else {
        mesh_echo::EchoProtocol::Http
    };
    let mut plain = mesh_echo::Args::new(SocketAddr::new(e.ip, 3000), &e.pod, &e.namespace);
    plain.protocol = protocol;
    plain.quiet = true;
    plain.go_header_names = true;
    plain.log_file = log.clone();
    let mut tasks = vec![tokio::spawn(mesh_echo::serve(plain).await?)];
    if !e.tcp {
        // echo-basic's h2c port (H2C_PORT), which the suite's Services name with appProtocol
        // kubernetes.io/h2c.
        let mut h2c = mesh_echo::Args::new(SocketAddr::new(e.ip, 3001), &e.pod, &e.namespace);
        h2c.quiet = true;
        h2c.go_header_names = true;
        h2c.log_file = log.clone();
        tasks.push(tokio::spawn(mesh_echo::serve(h2c).await?));
    }
    if let Some(tls) = &e.tls {
        let mut secure = mesh_echo::Args::new(SocketAddr::new(e.ip, 8443), &e.pod, &e.namespace);
        secure.protocol = protocol;
        secure.quiet = true;
        secure.go_header_names = true;
        secure.log_file = log.clone();
        secure.tls = Some(tls.clone());
        tasks.push(tokio::spawn(mesh_echo::serve(secure).await?));
    }
    Ok(tasks)
}

/// The hosts file of the cluster's DNS: each Service's ClusterIPs under
/// `NAME.NAMESPACE.svc.cluster.local` (headless ones have none).
fn hosts_of(services: &Value) -> String {
    let mut out = String::new();
    for svc in services["items"].as_array().into_iter().flatten() {
        let (Some(name), Some(ns)) = (
            svc["metadata"]["name"].as_str(),
            svc["metadata"]["namespace"].as_str(),
        ) else {
            continue;
        };
        for ip in svc["spec"]["clusterIPs"].as_array().into_iter().flatten() {
            if let Some(ip) = ip.as_str().filter(|ip| ip.parse::<IpAddr>().is_ok()) {
                out.push_str(&format!("{ip} {name}.{ns}.svc.cluster.local\n"));
            }
        }
    }
    out
}

/// A pod object's namespace and name (kwok's rules are named for it, whatever the pod's
/// servers report).
struct PodKey<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl PodKey<'_> {
    fn of(pod: &Value) -> Option<PodKey<'_>> {
        Some(PodKey {
            namespace: pod["metadata"]["namespace"].as_str()?,
            name: pod["metadata"]["name"].as_str()?,
        })
    }

    /// The pod's log file.
    fn log_file(&self, node: &Node) -> PathBuf {
        node.logs
            .join(format!("{}_{}.log", self.namespace, self.name))
    }

    /// The kwok `Logs` rule of the pod: `kubectl logs` reads its log file.
    fn logs_rule(&self, node: &Node) -> String {
        serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"logs": [{"logsFile": self.log_file(node)}]},
        })
        .to_string()
    }

    /// The kwok `Exec` rule of a mesh pod at `ip`: `kubectl exec` runs the command in the
    /// pod's world (see the module's documentation).
    fn exec_rule(&self, ip: IpAddr, node: &Node) -> String {
        let ns = self.namespace;
        serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Exec",
            "metadata": {"name": self.name, "namespace": ns},
            "spec": {"execs": [{"local": {"envs": [
                {"name": "MESH_ECHO_HOSTS", "value": node.hosts},
                {"name": "MESH_ECHO_SEARCH", "value": format!("{ns}.svc.cluster.local svc.cluster.local cluster.local")},
                {"name": "MESH_ECHO_SOURCE", "value": ip.to_string()},
                {"name": "MESH_ECHO_CGROUP", "value": node.cgroup},
            ]}}]},
        })
        .to_string()
    }
}

/// Serve a pod and, with `node`, write its kwok rules (a rule that cannot be written is said
/// and the pod served all the same); the servers' tasks.
fn start(
    runtime: &tokio::runtime::Runtime,
    kubectl: &Kubectl,
    node: Option<&Node>,
    at: &PodKey,
    echo: &Echo,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let tasks = runtime.block_on(serve(echo, node.map(|n| at.log_file(n))))?;
    if let Some(n) = node {
        let mut rules = vec![at.logs_rule(n)];
        if echo.advanced.is_some() {
            rules.push(at.exec_rule(echo.ip, n));
        }
        for rule in rules {
            if let Err(e) = kubectl.apply(&rule) {
                eprintln!(
                    "mesh-cluster pods: cannot write a kwok rule of {}/{}: {e}",
                    at.namespace, at.name
                );
            }
        }
    }
    Ok(tasks)
}

/// Rewrite the hosts file when the cluster's Services changed since `last`.
fn refresh_hosts(kubectl: &Kubectl, node: &Node, last: &mut Option<String>) {
    let Some(services) = kubectl.json(&["get", "services", "-A"]) else {
        return;
    };
    let text = hosts_of(&services);
    if last.as_ref() == Some(&text) {
        return;
    }
    if let Err(e) = replace(&node.hosts, &text) {
        eprintln!(
            "mesh-cluster pods: cannot write {}: {e}",
            node.hosts.display()
        );
    }
    *last = Some(text);
}

/// Write `text` to `path` through a file beside it, so a reader never sees half of it.
fn replace(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl Pods {
    /// Start serving the pods the API server behind `kubeconfig` runs (as its admin); with
    /// `node`, also `kubectl exec` into echo-advanced pods and `kubectl logs` of every pod.
    pub fn run(kubeconfig: PathBuf, node: Option<Node>) -> Result<Pods, crate::Error> {
        if let Some(n) = &node {
            std::fs::create_dir_all(&n.logs).map_err(|e| crate::Error::Write(n.logs.clone(), e))?;
        }
        let bin = crate::binaries()?.join("kubectl");
        let kubectl = Kubectl { bin, kubeconfig };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pods".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let mut running: HashMap<String, (Echo, Vec<tokio::task::JoinHandle<()>>)> =
                    HashMap::new();
                let mut hosts = None;
                while !stopped.load(Ordering::Relaxed) {
                    if let Some(n) = &node {
                        refresh_hosts(&kubectl, n, &mut hosts);
                    }
                    if let Some(list) = kubectl.json(&["get", "pods", "-A"]) {
                        let mut secrets = Secrets {
                            kubectl: &kubectl,
                            listed: None,
                        };
                        let mut seen = Vec::new();
                        for pod in list["items"].as_array().into_iter().flatten() {
                            let (Some(uid), Some(at)) =
                                (pod["metadata"]["uid"].as_str(), PodKey::of(pod))
                            else {
                                continue;
                            };
                            let Some(echo) = echo_of(&mut secrets, pod) else {
                                continue;
                            };
                            seen.push(uid.to_string());
                            if running.get(uid).is_some_and(|(e, _)| *e == echo) {
                                continue;
                            }
                            if let Some((_, tasks)) = running.remove(uid) {
                                tasks.iter().for_each(|t| t.abort());
                            }
                            match start(&runtime, &kubectl, node.as_ref(), &at, &echo) {
                                Ok(tasks) => {
                                    running.insert(uid.to_string(), (echo, tasks));
                                }
                                Err(e) => eprintln!(
                                    "mesh-cluster pods: cannot serve {} at {}: {e}",
                                    echo.pod, echo.ip
                                ),
                            }
                        }
                        running.retain(|uid, (_, tasks)| {
                            let keep = seen.contains(uid);
                            if !keep {
                                tasks.iter().for_each(|t| t.abort());
                            }
                            keep
                        });
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
            .map_err(|e| crate::Error::Spawn("pods", e))?;
        Ok(Pods {
            stop,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_advanced_ports_come_from_its_arguments() {
        let pod = serde_json::json!({"metadata": {"labels": {"version": "v2"}}});
        let container = serde_json::json!({"args": ["--tcp=9090", "--port=8080", "--grpc", "7070",
            "--verbose", "--port", "8443", "--tls=8443", "--crt=/cert.crt"]});
        let a = advanced_of(&container, &pod);
        assert_eq!(
            a,
            Advanced {
                http: vec![8080, 8443],
                tls: vec![8443],
                grpc: vec![7070],
                version: "v2".into()
            }
        );
        // Without arguments, the image's defaults.
        let a = advanced_of(&serde_json::json!({}), &serde_json::json!({}));
        assert_eq!((a.http, a.grpc), (vec![8080], vec![7070]));
    }

    #[test]
    fn the_hosts_file_names_every_cluster_ip() {
        let services = serde_json::json!({"items": [
            {"metadata": {"name": "echo", "namespace": "mesh"}, "spec": {"clusterIPs": ["198.18.0.10"]}},
            {"metadata": {"name": "headless", "namespace": "mesh"}, "spec": {"clusterIPs": ["None"]}},
        ]});
        assert_eq!(
            hosts_of(&services),
            "198.18.0.10 echo.mesh.svc.cluster.local\n"
        );
    }
}
