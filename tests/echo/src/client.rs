//! `mesh-echo client URL`: the client of the mesh conformance tests' echo image, which the
//! suite runs in a mesh pod (`kubectl exec POD -- client URL [--method=M] [-H k:v]...
//! [--count=N]`) and whose output it reads back (`conformance/utils/echo`): per request `[i]
//! Url=`, `[i] StatusCode=`, `[i] ResponseHeader=Name:value` and the answer's lines as `[i
//! body] ...`, requests separated by a blank line. `http://` speaks HTTP/1.1, `grpc://` calls
//! `proto.EchoTestService/Echo` over h2c. Redirects are not followed.
//!
//! Where the pod's world is simulated (the conformance run: kwok plays the node), what the pod
//! would have comes from flags or the environment kwok's exec rule gives: the cluster DNS as a
//! hosts file and search domains (`--hosts`, `--search`; a name they do not hold is an error,
//! never a lookup elsewhere), the pod's IP as the source address (`--source`), and the pod's
//! cgroup, which the client joins first so that the eBPF datapath sees its connects
//! (`--cgroup`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The largest answer body read (the image's answers are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;
/// The most requests one call makes (`--count`).
const MAX_COUNT: usize = 10_000;

/// `mesh-echo client`'s flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// `http://HOST[:PORT][/PATH]` or `grpc://HOST:PORT`.
    pub url: String,
    /// The HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A request header (`Name:value`; `Host:` sets the Host); repeatable.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// How many requests to make, one after another, each on a connection of its own.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// How long each request may take, connect included (`5s`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A hosts file (`IP NAME...` lines) holding the names to resolve; without it the system
    /// resolver is asked.
    #[arg(long, env = "MESH_ECHO_HOSTS")]
    pub hosts: Option<PathBuf>,
    /// Search domains tried first for names with fewer than five dots (resolv.conf's
    /// `search` with `ndots:5`, as in a pod), space-separated.
    #[arg(long, env = "MESH_ECHO_SEARCH", default_value = "")]
    pub search: String,
    /// The source address of the connections (the pod's IP).
    #[arg(long, env = "MESH_ECHO_SOURCE")]
    pub source: Option<IpAddr>,
    /// A cgroup (v2) folder to join before connecting (the pod's).
    #[arg(long, env = "MESH_ECHO_CGROUP")]
    pub cgroup: Option<PathBuf>,
}

/// `mesh-echo client`'s command line alone, for programs that run the client as theirs.
#[derive(clap::Parser, Debug)]
#[command(name = "client")]
struct Cli {
    #[command(flatten)]
    options: Options,
}

/// Parse a command line (the program's name first) into the client's options; clap's error
/// (with its usage) when it is not one.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, clap::Error> {
    use clap::Parser;
    Cli::try_parse_from(args).map(|c| c.options)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    mesh_model::validate::duration_ms(s)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 5s, 500ms)"))
}

/// What a request is: HTTP/1.1, or a gRPC call over h2c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Grpc,
}

/// The parts of the URL the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    /// As written (`echo`, `echo-v1:8080`, `[fd00::1]:8080`): the Host header or :authority.
    authority: String,
    host: String,
    port: u16,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?}: give a URL (http://HOST/PATH or grpc://HOST:PORT)"))?;
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (Scheme::Http, 80),
        "grpc" => (Scheme::Grpc, 7070),
        other => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported (http, grpc)"
            ))
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse()
                .map_err(|_| format!("{url:?}: port {p:?} is not a number"))?,
        ),
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(Target {
        scheme,
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        path,
    })
}

/// `host`'s address from the hosts file, trying the search domains first as a pod's resolver
/// does; an IP literal is itself.
fn resolve_in(hosts: &str, search: &str, host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let searched = search
        .split_whitespace()
        .map(|d| format!("{host}.{}", d.trim_matches('.')));
    let names: Vec<String> = if host.matches('.').count() < 5 {
        searched.chain([host.clone()]).collect()
    } else {
        [host.clone()].into_iter().chain(searched).collect()
    };
    let table: Vec<(IpAddr, Vec<String>)> = hosts
        .lines()
        .filter_map(|l| {
            let l = l.split('#').next()?;
            let mut words = l.split_whitespace();
            let ip = words.next()?.parse().ok()?;
            Some((ip, words.map(str::to_ascii_lowercase).collect()))
        })
        .collect();
    names.iter().find_map(|n| {
        table
            .iter()
            .find(|(_, names)| names.contains(n))
            .map(|(ip, _)| *ip)
    })
}

async fn resolve(opts: &Options, t: &Target) -> Result<SocketAddr, String> {
    match &opts.hosts {
        Some(file) => {
            let hosts = std::fs::read_to_string(file)
                .map_err(|e| format!("reading the hosts file {}: {e}", file.display()))?;
            resolve_in(&hosts, &opts.search, &t.host)
                .map(|ip| SocketAddr::new(ip, t.port))
                .ok_or_else(|| {
                    format!(
                        "cannot resolve {:?}: not in {} (search: {:?})",
                        t.host,
                        file.display(),
                        opts.search
                    )
                })
        }
        None => tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("cannot resolve {:?}: {e}", t.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {:?}: no address", t.host)),
    }
}

/// Join the cgroup: write this process into its `cgroup.procs`.
fn join(cgroup: &Path) -> Result<(), String> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(|e| format!("joining the cgroup {}: {e}", cgroup.display()))
}

async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// What one request got.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    /// The answer's lines: the HTTP body, or the gRPC `EchoResponse.message`.
    text: String,
}

async fn http1(
    opts: &Options,
    extra: &[Header],
    t: &Target,
    addr: SocketAddr,
) -> Result<Answer, String> {
    let stream = connect(addr, opts.source)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(opts.method.as_str())
        .uri(t.path.as_str())
        .header("host", t.authority.as_str())
        .header("user-agent", "mesh-echo-client");
    for (k, v) in extra.iter().cloned() {
        let h = req.headers_mut().ok_or("bad request")?;
        if k == hyper::header::HOST {
            h.remove("host");
        }
        h.append(k, v);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("the request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn grpc(
    opts: &Options,
    extra: &[Header],
    t: &Target,
    addr: SocketAddr,
) -> Result<Answer, String> {
    let stream = connect(addr, opts.source)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}{}Echo",
            t.authority,
            crate::advanced::GRPC_SERVICE
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in extra.iter().cloned() {
        req.headers_mut().ok_or("bad request")?.append(k, v);
    }
    // EchoRequest{message: ""}: an empty message.
    let req = req
        .body(Full::new(Bytes::from(crate::grpc::frame(&[]))))
        .map_err(|e| format!("the request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let headers = resp.headers().clone();
    let collected = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status != "0" {
        let message = trailers
            .get("grpc-message")
            .or_else(|| headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(format!("gRPC status {status:?} {message}"));
    }
    let body = collected.to_bytes();
    let message = crate::grpc::messages(&body)
        .and_then(|m| m.into_iter().next())
        .ok_or("the answer holds no gRPC message")?;
    let text = crate::grpc::fields(&message)
        .and_then(|f| {
            f.into_iter()
                .find(|(n, _)| *n == 1)
                .map(|(_, v)| v.to_vec())
        })
        .unwrap_or_default();
    Ok(Answer {
        status: 200,
        headers,
        text: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// A request header given with `-H`.
type Header = (hyper::header::HeaderName, hyper::header::HeaderValue);

/// The `-H` headers, parsed (once per run: every request sends them).
fn headers(opts: &Options) -> Result<Vec<Header>, String> {
    opts.headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?}: write Name:value"))?;
            let name = hyper::header::HeaderName::try_from(k.trim())
                .map_err(|e| format!("header {h:?}: {e}"))?;
            let value = hyper::header::HeaderValue::try_from(v.trim())
                .map_err(|e| format!("header {h:?}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

/// One request's lines as the image's client prints them.
fn report(i: usize, url: &str, answer: &Answer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "[{i}] Url={url}");
    let _ = writeln!(out, "[{i}] StatusCode={}", answer.status);
    for (k, v) in &answer.headers {
        let _ = writeln!(
            out,
            "[{i}] ResponseHeader={}:{}",
            crate::advanced::canonical(k.as_str()),
            String::from_utf8_lossy(v.as_bytes())
        );
    }
    for line in answer.text.lines().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "[{i} body] {line}");
    }
    out
}

/// Run the client: print every answer on stdout; `Err` (to print and exit non-zero with)
/// when the URL is bad or any request fails.
pub async fn run(opts: Options) -> Result<(), String> {
    if let Some(cgroup) = &opts.cgroup {
        join(cgroup)?;
    }
    let t = target(&opts.url)?;
    if opts.count == 0 || opts.count > MAX_COUNT {
        return Err(format!("--count must be 1 to {MAX_COUNT}"));
    }
    let extra = headers(&opts)?;
    let mut failed = None;
    for i in 0..opts.count {
        let once = async {
            let addr = resolve(&opts, &t).await?;
            match t.scheme {
                Scheme::Http => http1(&opts, &extra, &t, addr).await,
                Scheme::Grpc => grpc(&opts, &extra, &t, addr).await,
            }
        };
        let answer = match tokio::time::timeout(opts.timeout, once).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                failed.get_or_insert(format!("request {i} to {}: {e}", opts.url));
                continue;
            }
            Err(_) => {
                failed.get_or_insert(format!(
                    "request {i} to {}: no answer within {:?}",
                    opts.url, opts.timeout
                ));
                continue;
            }
        };
        if i > 0 {
            println!();
        }
        print!("{}", report(i, &opts.url, &answer));
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = target("http://echo-v1:8080/v1?x=1").unwrap();
        assert_eq!(
            (
                t.scheme,
                t.authority.as_str(),
                t.host.as_str(),
                t.port,
                t.path.as_str()
            ),
            (Scheme::Http, "echo-v1:8080", "echo-v1", 8080, "/v1?x=1")
        );
        let t = target("http://echo").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = target("grpc://echo:7070").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Grpc, 7070));
        let t = target("http://[fd00::1]:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fd00::1", 8080));
        assert!(target("echo/v1").is_err());
        assert!(target("ftp://echo/").is_err());
        assert!(target("http://echo:x/").is_err());
    }

    #[test]
    fn names_resolve_through_the_search_domains_first() {
        let hosts = "# cluster\n198.18.0.10 echo.mesh.svc.cluster.local\n198.18.0.11 echo.other.svc.cluster.local echo.other\n198.18.0.12 echo\n";
        let search = "mesh.svc.cluster.local svc.cluster.local cluster.local";
        assert_eq!(
            resolve_in(hosts, search, "echo"),
            Some("198.18.0.10".parse().unwrap())
        );
        assert_eq!(
            resolve_in(hosts, search, "echo.other"),
            Some("198.18.0.11".parse().unwrap())
        );
        assert_eq!(
            resolve_in(hosts, "", "echo"),
            Some("198.18.0.12".parse().unwrap())
        );
        assert_eq!(resolve_in(hosts, search, "example.org"), None);
        assert_eq!(
            resolve_in(hosts, search, "198.19.0.4"),
            Some("198.19.0.4".parse().unwrap())
        );
    }

    /// Against a real echo-advanced server: HTTP with a header, no redirect followed, gRPC.
    #[tokio::test]
    async fn talks_to_echo_advanced() {
        let port = mesh_model::testing::free_port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut args = crate::Args::new(listen, "echo-v1-abc", "mesh");
        args.format = crate::Format::EchoAdvanced;
        args.service_version = "v1".into();
        args.quiet = true;
        let log = std::env::temp_dir().join(format!("mesh-echo-log-{port}"));
        args.log_file = Some(log.clone());
        tokio::spawn(crate::serve(args).await.unwrap());
        let hosts = std::env::temp_dir().join(format!("mesh-echo-hosts-{port}"));
        std::fs::write(&hosts, "127.0.0.1 echo.mesh.svc.cluster.local\n").unwrap();
        let opts = |url: &str| Options {
            url: url.into(),
            method: "GET".into(),
            headers: vec!["X-Test:one".into()],
            count: 1,
            timeout: Duration::from_secs(5),
            hosts: Some(hosts.clone()),
            search: "mesh.svc.cluster.local".into(),
            source: None,
            cgroup: None,
        };
        let o = opts(&format!("http://echo:{port}/v1"));
        let t = target(&o.url).unwrap();
        let addr = resolve(&o, &t).await.unwrap();
        let a = http1(&o, &headers(&o).unwrap(), &t, addr).await.unwrap();
        let out = report(0, &o.url, &a);
        assert!(out.contains("[0] StatusCode=200\n"), "{out}");
        assert!(out.contains("[0 body] Host=echo:"), "{out}");
        assert!(out.contains("[0 body] URL=/v1\n"), "{out}");
        assert!(out.contains("[0 body] RequestHeader=X-Test:one\n"), "{out}");
        assert!(out.contains("[0 body] Hostname=echo-v1-abc\n"), "{out}");
        assert!(out.contains("[0 body] ServiceVersion=v1\n"), "{out}");
        // The request in the pod's log, as echo-basic says it, in the kubelet's format.
        let logged = std::fs::read_to_string(&log).unwrap();
        let (time, rest) = logged.split_once(' ').unwrap();
        assert!(time.parse::<jiff::Timestamp>().is_ok(), "{logged}");
        assert!(
            rest.starts_with("stdout F Echoing back request made to /v1 to client (127.0.0.1:"),
            "{logged}"
        );
        std::fs::remove_file(&log).unwrap();
        let o = opts(&format!("grpc://echo:{port}"));
        let t = target(&o.url).unwrap();
        let a = grpc(&o, &headers(&o).unwrap(), &t, addr).await.unwrap();
        let out = report(0, &o.url, &a);
        assert!(out.contains("[0 body] Hostname=echo-v1-abc\n"), "{out}");
        assert!(out.contains("[0 body] Proto=HTTP/2.0\n"), "{out}");
        assert!(out.contains("[0 body] RequestHeader=X-Test:one\n"), "{out}");
        let o = opts(&format!("http://nowhere:{port}/"));
        let err = resolve(&o, &target(&o.url).unwrap()).await.unwrap_err();
        assert!(err.contains("cannot resolve \"nowhere\""), "{err}");
        std::fs::remove_file(&hosts).unwrap();
    }
}
