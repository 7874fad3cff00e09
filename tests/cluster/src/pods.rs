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
    fn json(&self, args: &[&str]) -> Option<Value> {
        let out = std::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .args(["-o", "json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
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

/// What a running echo-basic pod serves; None while it cannot be served yet (no IP, its
/// Secret not there).
fn echo_of(secrets: &mut Secrets, pod: &Value) -> Option<Echo> {
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ip: IpAddr = pod["status"]["podIP"].as_str()?.parse().ok()?;
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
    })
}

async fn serve(e: &Echo) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let protocol = if e.tcp {
        mesh_echo::EchoProtocol::Tcp
    } else {
        mesh_echo::EchoProtocol::Http
    };
    let mut plain = mesh_echo::Args::new(SocketAddr::new(e.ip, 3000), &e.pod, &e.namespace);
    plain.protocol = protocol;
    plain.quiet = true;
    let mut tasks = vec![tokio::spawn(mesh_echo::serve(plain).await?)];
    if !e.tcp {
        // echo-basic's h2c port (H2C_PORT), which the suite's Services name with appProtocol
        // kubernetes.io/h2c.
        let mut h2c = mesh_echo::Args::new(SocketAddr::new(e.ip, 3001), &e.pod, &e.namespace);
        h2c.quiet = true;
        tasks.push(tokio::spawn(mesh_echo::serve(h2c).await?));
    }
    if let Some(tls) = &e.tls {
        let mut secure = mesh_echo::Args::new(SocketAddr::new(e.ip, 8443), &e.pod, &e.namespace);
        secure.protocol = protocol;
        secure.quiet = true;
        secure.tls = Some(tls.clone());
        tasks.push(tokio::spawn(mesh_echo::serve(secure).await?));
    }
    Ok(tasks)
}

impl Pods {
    /// Start serving the pods the API server behind `kubeconfig` runs (as its admin).
    pub fn run(kubeconfig: PathBuf) -> Result<Pods, crate::Error> {
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
                while !stopped.load(Ordering::Relaxed) {
                    if let Some(list) = kubectl.json(&["get", "pods", "-A"]) {
                        let mut secrets = Secrets {
                            kubectl: &kubectl,
                            listed: None,
                        };
                        let mut seen = Vec::new();
                        for pod in list["items"].as_array().into_iter().flatten() {
                            let Some(uid) = pod["metadata"]["uid"].as_str() else {
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
                            match runtime.block_on(serve(&echo)) {
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
