//! Upstream's conformance tests' expectations, replayed against mesh-agent.
//!
//! `scripts/gateway-api/conformance -http` reads the Go sources of the conformance tests of the
//! targeted release and lists every exchange a test expects: HTTP and HTTPS
//! (`http.ExpectedResponse` values of Gateway tests and GAMMA mesh tests), gRPC calls to the
//! echo service (`grpc.ExpectedResponse`), TCP and TLS connections to the echo server's TCP
//! protocol (`tcp.ExpectedResponse`), UDP datagrams (`udp.ExpectedResponse`), WebSocket
//! sessions (`suite.WebSocketDialer.Dial`: a text and a binary message echoed), each with the
//! Gateway (and listener) it is sent to, and the objects the test deleted before it. For each test,
//! this runs what the suite would have on a cluster, on loopback: the suite's base manifests and
//! the test's in the agent's folder; each Deployment's pods as mesh-echo backends on addresses
//! of their own (speaking the conformance echo server's HTTP JSON, or its TCP or UDP echo when
//! the pod's environment asks for it), with the EndpointSlices a cluster's controller would
//! write for the Services that select them; every Gateway on an address of its own
//! (`--gateway-address-pool`), as a cluster's load balancer gives it. Each exchange is then
//! made and judged as upstream's helpers judge it (`CompareRoundTrip`: status, backend
//! request's path, host, method and headers, backend pod and namespace, response headers,
//! redirect target; the TCP helper: welcome, PING, IS_TLS, backend pod, server name the
//! backend saw), and must hold three times in a row.
//!
//! A test that deletes an object (a ReferenceGrant) before its next exchange has the object
//! taken out of the agent's folder at that point. Not replayed here, each counted and said:
//! exchanges a test makes after changing objects otherwise; those whose request is computed at
//! run time from what the cluster holds; a mesh client's gRPC exchange; mesh tests of
//! `SupportMeshClusterIPMatching`, which route by the address a client dialled (the eBPF
//! datapath's original destination). A weighted-distribution check repeats the test's request
//! 500 times and holds each backend's share within 5 points, as upstream's does. Mirror
//! checks (`MirroredTo`) read what the mirror backends received (see `mirror`). The figure
//! is printed per test; the test fails when it falls below the level reached so far
//! (`PASSED_AT_LEAST`).

#[path = "../../model/tests/upstream/mod.rs"]
mod upstream;

mod support;

#[path = "replay/l4.rs"]
mod l4;

#[path = "replay/grpc.rs"]
mod grpc;

#[path = "replay/websocket.rs"]
mod websocket;

#[path = "replay/mirror.rs"]
mod mirror;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mesh_model::load::{load_str, LoadOptions};
use mesh_model::Source;
use serde::Deserialize;
use serde_json::{json, Value};

/// Exchanges that pass, of those replayed (raise it as the agent learns more).
const PASSED_AT_LEAST: usize = 514;

/// The range Gateways take their addresses from; pods take theirs from `POD_NET`.
const GATEWAY_POOL: &str = "127.77.0.0/24";
const POD_NET: [u8; 2] = [127, 78];

#[derive(Debug, Deserialize, Clone)]
struct Exchange {
    test: String,
    manifests: Vec<String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    gateway: Option<GwAddr>,
    #[serde(default)]
    mesh: String,
    expected: Value,
    #[serde(default)]
    tls: Option<TlsClient>,
    #[serde(default)]
    after: String,
    /// Set for a weighted-distribution check: each backend's expected share of requests.
    #[serde(default)]
    weights: BTreeMap<String, f64>,
    /// "tcp", "udp" or "grpc" for the echo server's TCP, UDP and gRPC protocols; empty for
    /// HTTP.
    #[serde(default)]
    kind: String,
}

#[derive(Debug, Deserialize, Clone)]
struct GwAddr {
    namespace: String,
    name: String,
    #[serde(default)]
    listener: String,
    /// A port the test names itself.
    #[serde(default)]
    port: String,
}

/// How an HTTPS exchange connects (placeholders name the Secrets of `SuiteMaterial`).
#[derive(Debug, Deserialize, Clone)]
struct TlsClient {
    server_name: String,
    #[serde(default)]
    trust: String,
    #[serde(default)]
    client_cert: String,
    #[serde(default)]
    client_key: String,
    /// The request must fail (the handshake refused).
    #[serde(default)]
    fail: bool,
    /// The connection must be closed during the handshake (no listener or usable route for
    /// the server name).
    #[serde(default)]
    reject: bool,
}

/// The certificates the conformance suite creates when it starts (its `suite.Setup`): TLS
/// Secrets for listeners and backends, CA ConfigMaps, client certificates, each made here the
/// way the suite makes it (self-signed, or signed by the CA of its ConfigMap).
struct SuiteMaterial {
    /// Secrets and ConfigMaps, as YAML for the agent's folder.
    yaml: String,
    /// `{secret ns/name cert}` and `{secret ns/name key}` -> PEM.
    pem: HashMap<String, String>,
}

fn suite_material() -> SuiteMaterial {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let mut yaml = String::new();
    let mut pem = HashMap::new();
    let mut secret = |ns: &str, name: &str, cert: String, key: String| {
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            b64(&cert),
            b64(&key)
        ));
        pem.insert(format!("{{secret {ns}/{name} cert}}"), cert);
        pem.insert(format!("{{secret {ns}/{name} key}}"), key);
    };
    // Each certificate gets a subject of its own, so no certificate looks like another's
    // issuer (rcgen's default subject is the same for all).
    let serial = std::cell::Cell::new(0u32);
    let subject = || {
        serial.set(serial.get() + 1);
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            format!("conformance replay {}", serial.get()),
        );
        dn
    };
    let params = |hosts: &[&str]| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = subject();
        for h in hosts {
            p.subject_alt_names.push(match h.strip_prefix("spiffe://") {
                Some(_) => SanType::URI(h.to_string().try_into().unwrap()),
                None => SanType::DnsName(h.to_string().try_into().unwrap()),
            });
        }
        p
    };
    let self_signed = |hosts: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let cert = params(hosts).self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let ca = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = subject();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let signed = |issuer: &CertifiedIssuer<'_, KeyPair>, hosts: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let cert = params(hosts).signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let mut config_maps = String::new();
    let mut ca_pems = Vec::new();
    let mut ca_config_map = |ns: &str, name: &str, issuer: &CertifiedIssuer<'_, KeyPair>| {
        ca_pems.push((format!("{{configmap {ns}/{name} ca.crt}}"), issuer.pem()));
        let text = issuer.pem().replace('\n', "\n    ");
        config_maps.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  ca.crt: |\n    {}\n",
            text.trim_end()
        ));
    };
    const INFRA: &str = "gateway-conformance-infra";
    let (c, k) = self_signed(&["*.example"]);
    secret("gateway-conformance-web-backend", "certificate", c, k);
    let (c, k) = self_signed(&["*.org", "*.wildcard.org", "example.org"]);
    secret(INFRA, "tls-validity-checks-certificate", c, k);
    let web_ca = ca();
    ca_config_map("gateway-conformance-web-backend", "web-backend-cm", &web_ca);
    let default_ca = ca();
    ca_config_map(INFRA, "tls-validity-checks-ca-certificate", &default_ca);
    let (c, k) = signed(&default_ca, &[]);
    secret(INFRA, "tls-validity-checks-client-certificate", c, k);
    let per_port_ca = ca();
    ca_config_map(
        INFRA,
        "tls-validity-checks-per-port-ca-certificate",
        &per_port_ca,
    );
    let (c, k) = signed(&per_port_ca, &[]);
    secret(
        INFRA,
        "tls-validity-checks-per-port-client-certificate",
        c,
        k,
    );
    let checks_ca = ca();
    ca_config_map(INFRA, "tls-checks-ca-certificate", &checks_ca);
    let (c, k) = signed(
        &checks_ca,
        &[
            "abc.example.com",
            "spiffe://abc.example.com/test-identity",
            "other.example.com",
        ],
    );
    secret(INFRA, "tls-checks-certificate", c, k);
    let (c, k) = signed(&checks_ca, &[]);
    secret(INFRA, "tls-checks-client-certificate", c, k);
    let (c, k) = signed(&checks_ca, &["abc.example.com"]);
    secret(
        INFRA,
        "tls-passthrough-checks-certificate",
        c.clone(),
        k.clone(),
    );
    secret(
        "gateway-conformance-app-backend",
        "tls-passthrough-checks-certificate",
        c,
        k,
    );
    let (c, k) = signed(&checks_ca, &["tls.example.com"]);
    secret(INFRA, "tls-terminate-checks-certificate", c, k);
    ca_config_map(INFRA, "mismatch-ca-certificate", &ca());
    yaml.push_str(&config_maps);
    pem.extend(ca_pems);
    SuiteMaterial { yaml, pem }
}

/// A pod of a Deployment: its name, namespace, labels, address and named container ports.
struct Pod {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    address: String,
    ports: HashMap<String, i64>,
    /// The TLS Secret (`ns/name`) and port of a pod whose echo server serves TLS (its
    /// container's TLS_SERVER_CERT, from a Secret volume): HTTPS on HTTPS_PORT, or the TCP
    /// echo on TLS_PORT (8443 for either by default).
    tls: Option<(String, u16)>,
    /// The echo server's protocol: TCP_ECHO_SERVER or UDP_ECHO_SERVER set, else HTTP.
    protocol: mesh_echo::EchoProtocol,
    /// SERVICE_NAME, which the TCP and UDP echoes report.
    service: String,
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The pods the Deployments of `objects` would run, each on its own loopback address.
fn pods(objects: &[mesh_model::Object]) -> Vec<Pod> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| o.kind == "Deployment") {
        let replicas = o.raw.pointer("/spec/replicas").and_then(Value::as_u64);
        let template = o.raw.pointer("/spec/template").cloned().unwrap_or_default();
        let mut ports = HashMap::new();
        for c in template
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(n), Some(port)) = (
                    p.get("name").and_then(Value::as_str),
                    p.get("containerPort").and_then(Value::as_i64),
                ) {
                    ports.insert(n.to_string(), port);
                }
            }
        }
        let containers = template
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let env = |name: &str| {
            containers.iter().find_map(|c| {
                c.get("env")?
                    .as_array()?
                    .iter()
                    .find(|e| e["name"] == name)?
                    .get("value")?
                    .as_str()
                    .map(str::to_string)
            })
        };
        let secret_volume = template
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .and_then(|v| {
                v.iter()
                    .find_map(|v| v.pointer("/secret/secretName")?.as_str())
            });
        let ns = o.namespace.clone().unwrap_or_else(|| "default".into());
        let protocol = if env("TCP_ECHO_SERVER").is_some() {
            mesh_echo::EchoProtocol::Tcp
        } else if env("UDP_ECHO_SERVER").is_some() {
            mesh_echo::EchoProtocol::Udp
        } else {
            mesh_echo::EchoProtocol::Http
        };
        let tls_port = match protocol {
            mesh_echo::EchoProtocol::Tcp => env("TLS_PORT"),
            _ => env("HTTPS_PORT"),
        };
        let tls = match (env("TLS_SERVER_CERT"), secret_volume) {
            (Some(_), Some(secret)) => Some((
                format!("{ns}/{secret}"),
                tls_port.and_then(|p| p.parse().ok()).unwrap_or(8443),
            )),
            _ => None,
        };
        for i in 0..replicas.unwrap_or(1) {
            let n = out.len() + 1;
            out.push(Pod {
                name: format!("{}-replay-{i}", o.name),
                namespace: o.namespace.clone().unwrap_or_else(|| "default".into()),
                labels: str_map(template.pointer("/metadata/labels").unwrap_or(&Value::Null)),
                address: format!("{}.{}.{}.{}", POD_NET[0], POD_NET[1], n / 250, n % 250 + 1),
                ports: ports.clone(),
                tls: tls.clone(),
                protocol,
                service: env("SERVICE_NAME").unwrap_or_default(),
            });
        }
    }
    out
}

/// The EndpointSlices a cluster's controller would write for the Services that select pods.
fn endpoint_slices(objects: &[mesh_model::Object], pods: &[Pod]) -> String {
    let mut out = String::new();
    for svc in objects.iter().filter(|o| o.kind == "Service") {
        let ns = svc.namespace.clone().unwrap_or_else(|| "default".into());
        let selector = str_map(svc.raw.pointer("/spec/selector").unwrap_or(&Value::Null));
        if selector.is_empty() {
            continue;
        }
        let selected: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.namespace == ns && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .collect();
        let Some(first) = selected.first() else {
            continue;
        };
        let mut ports = Vec::new();
        for p in svc
            .raw
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let target = match p.get("targetPort") {
                Some(Value::Number(n)) => n.as_i64().unwrap_or(port),
                Some(Value::String(name)) => first.ports.get(name).copied().unwrap_or(port),
                _ => port,
            };
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let mut entry = json!({"port": target, "protocol": protocol});
            if let Some(n) = p.get("name") {
                entry["name"] = n.clone();
            }
            if let Some(a) = p.get("appProtocol") {
                entry["appProtocol"] = a.clone();
            }
            ports.push(entry);
        }
        let endpoints: Vec<Value> = selected
            .iter()
            .map(|p| json!({"addresses": [p.address], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace}}))
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": format!("{}-replay", svc.name), "namespace": ns, "labels": {"kubernetes.io/service-name": svc.name}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        });
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(&slice).unwrap());
        out.push('\n');
    }
    out
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

fn string_map(v: &Value, path: &str) -> Vec<(String, String)> {
    v.pointer(path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value, path: &str) -> Vec<String> {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What came back: status, headers (names lower-cased, values of one name joined by `,` as
/// Go's `strings.Join(values, ",")`), and the body.
struct Captured {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// The client for an exchange: plain, or HTTPS trusting the exchange's server certificate,
/// presenting its client certificate, and sending its server name (resolved to `addr`).
fn client_for(
    tls: Option<&TlsClient>,
    addr: &str,
    material: &SuiteMaterial,
) -> Result<reqwest::Client, String> {
    let Some(tls) = tls else {
        return Ok(support::client());
    };
    let mut config = tls_client_config(tls, material)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .use_preconfigured_tls(config)
        .resolve(
            &tls.server_name,
            addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        )
        .build()
        .map_err(|e| e.to_string())
}

/// The TLS side of an exchange's client: trusting the exchange's server certificate (as Go's
/// pool does, see `Pinned`) and presenting its client certificate, without ALPN.
fn tls_client_config(
    tls: &TlsClient,
    material: &SuiteMaterial,
) -> Result<rustls::ClientConfig, String> {
    let pem = |p: &str| {
        material
            .pem
            .get(p)
            .cloned()
            .ok_or(format!("no material {p}"))
    };
    let ders = |text: String| -> Vec<rustls::pki_types::CertificateDer<'static>> {
        rustls_pemfile::certs(&mut text.as_bytes())
            .filter_map(Result::ok)
            .collect()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let trusted = if tls.trust.is_empty() {
        Vec::new()
    } else {
        ders(pem(&tls.trust)?)
    };
    roots.add_parsable_certificates(trusted.clone());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(verifier, trusted)));
    let config = if tls.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let key = rustls_pemfile::private_key(&mut pem(&tls.client_key)?.as_bytes())
            .map_err(|e| e.to_string())?
            .ok_or("no private key")?;
        builder
            .with_client_auth_cert(ders(pem(&tls.client_cert)?), key)
            .map_err(|e| e.to_string())?
    };
    Ok(config)
}

/// The suite's client trusts the certificate it was given: the server's chain must verify to
/// it. (Go also checks the name against SANs such as `*.org`, which rustls's stricter rules
/// refuse; the name is not checked here, the agent's choice of certificate by SNI is what is
/// under test.)
#[derive(Debug)]
struct Pinned(
    Arc<rustls::client::WebPkiServerVerifier>,
    Vec<rustls::pki_types::CertificateDer<'static>>,
);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        // Go trusts a certificate that is itself in the pool, whoever issued it.
        if self.1.iter().any(|t| t.as_ref() == end_entity.as_ref()) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A TCP, UDP or gRPC check (the echo server's other protocols), over TLS when the exchange
/// says; the answering pod.
async fn l4_exchange(
    addr: &str,
    x: &Exchange,
    expected: &Value,
    material: &SuiteMaterial,
) -> Result<String, String> {
    match x.kind.as_str() {
        "udp" => return l4::udp(addr, expected).await,
        "grpc" => return grpc::call(addr, expected).await,
        "websocket" => return websocket::session(addr, expected, &x.test).await,
        _ => {}
    }
    let tls = match &x.tls {
        None => None,
        Some(t) => Some((
            Arc::new(tls_client_config(t, material)?),
            t.server_name.clone(),
        )),
    };
    l4::tcp(addr, tls, expected).await
}

/// One request of an exchange, as a weighted-distribution sender makes it: the pod that
/// answered.
async fn sample(
    addr: &str,
    x: &Exchange,
    mesh: bool,
    material: &SuiteMaterial,
) -> Result<String, String> {
    if !x.kind.is_empty() {
        return l4_exchange(addr, x, &x.expected, material).await;
    }
    let got = round_trip(addr, &x.expected, mesh, x.tls.as_ref(), material).await?;
    if mesh {
        compare_mesh(&x.expected, &got)?;
    } else {
        compare(&x.expected, addr, "http", &got)?;
    }
    let body: Value = serde_json::from_slice(&got.body).map_err(|e| e.to_string())?;
    Ok(text(&body, "/pod").to_string())
}

/// Upstream's weight.TestWeightedDistribution: 500 requests, 10 at a time, each backend's share
/// (the pod name without its last two parts) within 5 points of its weight, and only backends
/// with weight above 0 reached.
async fn distribution(
    addr: &str,
    x: &Exchange,
    mesh: bool,
    material: &SuiteMaterial,
) -> Result<(), String> {
    use futures_util::StreamExt;
    const TOTAL: usize = 500;
    let pods: Vec<Result<String, String>> = futures_util::stream::iter(0..TOTAL)
        .map(|_| sample(addr, x, mesh, material))
        .buffer_unordered(10)
        .collect()
        .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pod in pods {
        let pod = pod?;
        let parts: Vec<&str> = pod.split('-').collect();
        let backend = if parts.len() < 3 {
            pod.clone()
        } else {
            parts[..parts.len() - 2].join("-")
        };
        if !x.weights.contains_key(&backend) {
            return Err(format!("answered by an unexpected pod {pod}"));
        }
        *seen.entry(backend).or_default() += 1;
    }
    for (backend, want) in &x.weights {
        let got = *seen.get(backend).unwrap_or(&0) as f64 / TOTAL as f64;
        if (got - want).abs() > 0.05 || (*want == 0.0) != (got == 0.0) {
            return Err(format!(
                "{backend} got {got:.3} of requests, expected {want}"
            ));
        }
    }
    Ok(())
}

/// The mirror checks of an exchange that passed: each mirror backend without a percentage got
/// the request (ExpectMirroredRequest); one with a percentage got its share of 500 requests
/// (HTTPRouteRequestPercentageMirror), with five tries as upstream allows.
async fn mirrored(
    addr: &str,
    x: &Exchange,
    mesh: bool,
    material: &SuiteMaterial,
    seen: &std::sync::Mutex<Vec<Value>>,
) -> Result<(), String> {
    use futures_util::StreamExt;
    const TOTAL: usize = 500;
    let target = text(&x.expected, "/Request/Path").to_string();
    for m in mirror::mirrors(&x.expected) {
        let Some(percent) = m.percent.filter(|p| *p < 100.0) else {
            // Mirrors are sent alongside the answer: allow them a moment to arrive.
            let mut got = 0;
            for _ in 0..50 {
                got = mirror::count(&seen.lock().unwrap(), &m, &target);
                if got > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if got == 0 {
                return Err(format!(
                    "{}/{} never received {target}",
                    m.namespace, m.name
                ));
            }
            continue;
        };
        let mut last = Ok(());
        for _ in 0..5 {
            let id = uuid::Uuid::new_v4().to_string();
            let mut each = x.clone();
            each.expected = mirror::with_request_id(&x.expected, &id);
            let target = text(&each.expected, "/Request/Path").to_string();
            let answers: Vec<Result<String, String>> = futures_util::stream::iter(0..TOTAL)
                .map(|_| sample(addr, &each, mesh, material))
                .buffer_unordered(10)
                .collect()
                .await;
            if let Some(Err(e)) = answers.into_iter().find(Result::is_err) {
                return Err(e);
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let got = mirror::count(&seen.lock().unwrap(), &m, &target);
            last = mirror::within_band(got, TOTAL, percent);
            if last.is_ok() {
                break;
            }
        }
        last?;
    }
    Ok(())
}

/// Upstream's waitForTLSConnectionRejection: a TLS handshake with `sni` at `addr` is closed by
/// the server (end of stream or reset) rather than answered. An answer (a ServerHello, whose
/// certificate this client does not trust) counts as accepted.
async fn handshake_rejected(addr: &str, sni: &str, material: &SuiteMaterial) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let anchor = material
        .pem
        .get("{secret gateway-conformance-infra/tls-validity-checks-certificate cert}")
        .cloned()
        .unwrap_or_default();
    roots.add_parsable_certificates(
        rustls_pemfile::certs(&mut anchor.as_bytes()).filter_map(Result::ok),
    );
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())
        .map_err(|e| format!("{sni}: {e}"))?;
    let connect = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Err(_) => Err("the handshake neither completed nor was closed".into()),
        Ok(Ok(_)) => Err("the handshake completed: the connection was accepted".into()),
        Ok(Err(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        Ok(Err(e)) => Err(format!("the server answered the handshake ({e})")),
    }
}

/// Make the exchange's request at `addr` (`ip:port`); a mesh test's client names the Service
/// (`echo` unless the test says) as its host. An HTTPS exchange connects by its server name.
async fn round_trip(
    addr: &str,
    expected: &Value,
    mesh: bool,
    tls: Option<&TlsClient>,
    material: &SuiteMaterial,
) -> Result<Captured, String> {
    let method = match text(expected, "/Request/Method") {
        "" => "GET",
        m => m,
    };
    let path = match text(expected, "/Request/Path") {
        "" => "/",
        p => p,
    };
    let url = match tls {
        Some(t) => format!(
            "https://{}:{}{path}",
            t.server_name,
            addr.rsplit_once(':').map_or("443", |(_, p)| p)
        ),
        None => format!("http://{addr}{path}"),
    };
    let mut req = client_for(tls, addr, material)?.request(
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?,
        &url,
    );
    // CalculateHost: the port is left out when it is the scheme's default.
    let host = match text(expected, "/Request/Host") {
        "" if mesh => "echo".to_string(),
        "" => addr.strip_suffix(":80").unwrap_or(addr).to_string(),
        h if tls.is_some() => h.strip_suffix(":443").unwrap_or(h).to_string(),
        h => h.strip_suffix(":80").unwrap_or(h).to_string(),
    };
    req = req.header("host", host);
    for (k, v) in string_map(expected, "/Request/Headers") {
        req = req.header(k, v);
    }
    let set: Vec<String> = string_map(expected, "/BackendSetResponseHeaders")
        .into_iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    req = req.header("x-echo-set-header", set.join(","));
    let body = text(expected, "/Request/Body");
    if !body.is_empty() {
        req = req.body(body.to_string());
    }
    let resp = req.send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })?;
    let status = resp.status().as_u16();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in resp.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok(Captured {
        status,
        headers,
        body,
    })
}

/// The status codes an exchange accepts (200 when it names none).
fn status_codes(expected: &Value) -> Vec<u64> {
    let mut codes: Vec<u64> = expected
        .pointer("/Response/StatusCodes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if let Some(c) = expected
        .pointer("/Response/StatusCode")
        .and_then(Value::as_u64)
    {
        if c != 0 && !codes.contains(&c) {
            codes.push(c);
        }
    }
    if codes.is_empty() {
        codes.push(200);
    }
    codes
}

/// The request headers a backend describes, names lower-cased, values joined by `,`.
fn echoed_headers(captured: &Value) -> BTreeMap<String, String> {
    captured
        .get("headers")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let joined = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    (k.to_ascii_lowercase(), joined)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The mesh client's `compareRequest` (conformance utils/echo): status, the backend request's
/// headers, response headers (first value) and the backend pod; no path, method or namespace.
fn compare_mesh(expected: &Value, got: &Captured) -> Result<(), String> {
    let codes = status_codes(expected);
    if !codes.contains(&u64::from(got.status)) {
        return Err(format!("status {} (expected one of {codes:?})", got.status));
    }
    let captured: Value = serde_json::from_slice(&got.body).unwrap_or_default();
    let seen = echoed_headers(&captured);
    if expected
        .pointer("/ExpectedRequest/Request/Headers")
        .is_some_and(|h| !h.is_null())
    {
        for (k, v) in string_map(expected, "/ExpectedRequest/Request/Headers") {
            match seen.get(&k.to_ascii_lowercase()) {
                None => return Err(format!("backend did not get header {k}")),
                Some(g) if *g != v => {
                    return Err(format!("backend got {k}: {g:?}, expected {v:?}"))
                }
                _ => {}
            }
        }
    }
    for k in strings(expected, "/ExpectedRequest/AbsentHeaders") {
        if let Some(v) = seen.get(&k.to_ascii_lowercase()) {
            return Err(format!(
                "backend got header {k}: {v:?}, which should be absent"
            ));
        }
    }
    for k in strings(expected, "/Response/AbsentHeaders") {
        if let Some(v) = got.headers.get(&k.to_ascii_lowercase()) {
            return Err(format!("response header {k}: {v:?} should be absent"));
        }
    }
    for (k, v) in string_map(expected, "/Response/Headers") {
        let first = got
            .headers
            .get(&k.to_ascii_lowercase())
            .map(|g| g.split(',').next().unwrap_or("").to_string())
            .unwrap_or_default();
        if first != v {
            return Err(format!("response header {k}: {first:?}, expected {v:?}"));
        }
    }
    let pod = text(&captured, "/pod");
    if !pod.starts_with(text(expected, "/Backend")) {
        return Err(format!(
            "answered by pod {pod:?}, expected {:?}",
            text(expected, "/Backend")
        ));
    }
    Ok(())
}

/// Upstream's `CompareRoundTrip`, on what the exchange expects.
fn compare(expected: &Value, addr: &str, scheme: &str, got: &Captured) -> Result<(), String> {
    let codes = status_codes(expected);
    if !codes.contains(&u64::from(got.status)) {
        return Err(format!("status {} (expected one of {codes:?})", got.status));
    }
    let method = match text(expected, "/Request/Method") {
        "" => "GET",
        m => m,
    };
    if got.status == 200 || got.status == 204 {
        // The backend's description of what it received, when it answered (JSON).
        let captured: Value = if got
            .headers
            .get("content-type")
            .is_some_and(|c| c == "application/json")
        {
            serde_json::from_slice(&got.body).map_err(|e| format!("the answer is not JSON: {e}"))?
        } else {
            json!({"method": method})
        };
        let exp_req = expected
            .get("ExpectedRequest")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(
                || json!({"Request": expected.get("Request").cloned().unwrap_or_default()}),
            );
        let want_method = match text(&exp_req, "/Request/Method") {
            "" => "GET",
            m => m,
        };
        let want_host = text(&exp_req, "/Request/Host");
        let got_host = text(&captured, "/host");
        if !want_host.is_empty() && want_host != got_host {
            return Err(format!(
                "backend saw host {got_host:?}, expected {want_host:?}"
            ));
        }
        // The echo server reports the path with its query, as Go's URL.RequestURI.
        let got_path = text(&captured, "/path").to_string();
        let want_path = text(&exp_req, "/Request/Path");
        if want_path != got_path {
            return Err(format!(
                "backend saw path {got_path:?}, expected {want_path:?}"
            ));
        }
        if want_method != text(&captured, "/method") {
            return Err(format!(
                "backend saw method {:?}, expected {want_method:?}",
                text(&captured, "/method")
            ));
        }
        if text(expected, "/Namespace") != text(&captured, "/namespace") {
            return Err(format!(
                "backend in namespace {:?}, expected {:?}",
                text(&captured, "/namespace"),
                text(expected, "/Namespace")
            ));
        }
        let seen_headers = echoed_headers(&captured);
        if exp_req
            .pointer("/Request/Headers")
            .is_some_and(|h| !h.is_null())
        {
            for (k, v) in string_map(&exp_req, "/Request/Headers") {
                match seen_headers.get(&k.to_ascii_lowercase()) {
                    None => return Err(format!("backend did not get header {k}")),
                    Some(got) if *got != v => {
                        return Err(format!("backend got {k}: {got:?}, expected {v:?}"))
                    }
                    _ => {}
                }
            }
        }
        let ignore_ws = expected
            .pointer("/Response/IgnoreWhitespace")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let norm = |s: &str| {
            if ignore_ws {
                s.replace(' ', "")
            } else {
                s.to_string()
            }
        };
        if let Some(valid) = expected
            .pointer("/Response/ValidHeaderValues")
            .and_then(Value::as_object)
        {
            for (k, vals) in valid {
                let Some(got_v) = got.headers.get(&k.to_ascii_lowercase()) else {
                    return Err(format!("response has no header {k}"));
                };
                let vals: Vec<String> = vals
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(norm)
                    .collect();
                if !vals.contains(&norm(got_v)) {
                    return Err(format!(
                        "response header {k}: {got_v:?}, expected one of {vals:?}"
                    ));
                }
            }
        }
        for (k, v) in string_map(expected, "/Response/Headers") {
            match got.headers.get(&k.to_ascii_lowercase()) {
                None => return Err(format!("response has no header {k}")),
                Some(g) if norm(g) != norm(&v) => {
                    return Err(format!("response header {k}: {g:?}, expected {v:?}"))
                }
                _ => {}
            }
        }
        for k in strings(expected, "/Response/AbsentHeaders") {
            if let Some(v) = got.headers.get(&k.to_ascii_lowercase()) {
                return Err(format!("response header {k}: {v:?} should be absent"));
            }
        }
        for k in strings(&exp_req, "/AbsentHeaders") {
            if let Some(v) = seen_headers.get(&k.to_ascii_lowercase()) {
                return Err(format!(
                    "backend got header {k}: {v:?}, which should be absent"
                ));
            }
        }
        let pod = text(&captured, "/pod");
        if !pod.starts_with(text(expected, "/Backend")) {
            return Err(format!(
                "answered by pod {pod:?}, expected {:?}",
                text(expected, "/Backend")
            ));
        }
        // What the backend's TLS server saw (BackendTLSPolicy): the server name the proxy sent.
        let want_sni = text(&exp_req, "/Request/SNI");
        let got_sni = text(&captured, "/tls/serverName");
        if !want_sni.is_empty() && want_sni != got_sni {
            return Err(format!(
                "the backend saw TLS server name {got_sni:?}, expected {want_sni:?}"
            ));
        }
        // The client certificate the proxy showed the backend (the Gateway's
        // `spec.tls.backend.clientCertificateRef`), as PEM.
        let want_cert = text(&exp_req, "/Request/ClientCert");
        let shown = strings(&captured, "/tls/peerCertificates");
        let pem = |p: &str| p.replace("\r\n", "\n").trim().to_string();
        if !want_cert.is_empty() && !shown.iter().any(|c| pem(c) == pem(want_cert)) {
            return Err(format!(
                "the backend was not shown the expected client certificate ({} shown)",
                shown.len()
            ));
        }
    } else if matches!(got.status, 300..=399) {
        let Some(redirect) = expected.get("RedirectRequest").filter(|r| !r.is_null()) else {
            return Ok(());
        };
        let location = got
            .headers
            .get("location")
            .ok_or("a redirect without Location")?;
        let base = url::Url::parse(&format!("{scheme}://{addr}/")).map_err(|e| e.to_string())?;
        let to = base
            .join(location)
            .map_err(|e| format!("Location {location:?}: {e}"))?;
        let req_path = match text(expected, "/Request/Path") {
            "" => "/".to_string(),
            p => p.split('?').next().unwrap_or(p).to_string(),
        };
        let want_host = match text(redirect, "/Host") {
            "" => to.host_str().unwrap_or("").to_string(),
            h => h.to_string(),
        };
        if to.host_str().unwrap_or("") != want_host {
            return Err(format!(
                "redirected to host {:?}, expected {want_host:?}",
                to.host_str()
            ));
        }
        let got_port = to.port().map(|p| p.to_string()).unwrap_or_default();
        let want_port = text(redirect, "/Port");
        if want_port.is_empty() {
            let ok = match to.scheme() {
                "http" => got_port.is_empty() || got_port == "80",
                "https" => got_port.is_empty() || got_port == "443",
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "redirected to port {got_port:?} for {}",
                    to.scheme()
                ));
            }
        } else if want_port != got_port {
            return Err(format!(
                "redirected to port {got_port:?}, expected {want_port:?}"
            ));
        }
        let want_scheme = match text(redirect, "/Scheme") {
            "" => scheme,
            s => s,
        };
        if to.scheme() != want_scheme {
            return Err(format!(
                "redirected to scheme {}, expected {want_scheme}",
                to.scheme()
            ));
        }
        let want_path = match text(redirect, "/Path") {
            "" => req_path,
            p => p.to_string(),
        };
        if to.path() != want_path {
            return Err(format!(
                "redirected to path {}, expected {want_path}",
                to.path()
            ));
        }
    }
    Ok(())
}

/// Why an exchange cannot be replayed on a standalone agent, if it cannot.
fn not_replayable(x: &Exchange) -> Option<&'static str> {
    let request = x.expected.get("Request");
    if !x.after.is_empty() && deletions(&x.after).is_none() {
        return Some("asserted after the test changes objects (not only deletions)");
    }
    if ["Path", "Host"]
        .iter()
        .any(|f| request.and_then(|r| r.get(*f)).is_some_and(Value::is_null))
    {
        return Some("request computed at run time");
    }
    if text(&x.expected, "/Request/Protocol").eq_ignore_ascii_case("grpc") {
        return Some("gRPC");
    }
    if x.features
        .iter()
        .any(|f| f == "SupportMeshClusterIPMatching")
    {
        return Some("routes by the dialled address (eBPF datapath)");
    }
    None
}

/// The objects a test deleted before an exchange (`kind`, `namespace/name`), when every change
/// it made is a deletion of a known object (which the replay makes by taking the object out
/// of the agent's folder); None when a change is of another sort.
fn deletions(after: &str) -> Option<Vec<(&str, &str)>> {
    after
        .split("; ")
        .filter(|c| !c.is_empty())
        .map(|c| c.strip_prefix("Delete ")?.split_once(' '))
        .collect()
}

/// The manifests without the objects `deleted` names.
fn without(yaml: &str, deleted: &[(&str, &str)]) -> String {
    yaml.split("\n---")
        .filter(|doc| {
            let Ok(objects) = load_str(doc, Source::File("doc".into()), &LoadOptions::default())
            else {
                return true;
            };
            !objects.iter().any(|o| {
                let nn = format!("{}/{}", o.namespace.as_deref().unwrap_or("default"), o.name);
                deleted.iter().any(|(k, n)| o.kind == *k && nn == *n)
            })
        })
        .collect::<Vec<_>>()
        .join("\n---")
}

/// A route's hostname where the extractor left a placeholder for what the test reads from the
/// cluster ("{hostname 0 of TLSRoute ns/name}": the route's `spec.hostnames[0]`).
fn fill_hostnames(text: &str, objects: &[mesh_model::Object]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{hostname ") {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            break;
        };
        let inner = &rest[at + "{hostname ".len()..at + end];
        let found = inner.split_once(" of ").and_then(|(i, route)| {
            let (kind, nn) = route.split_once(' ')?;
            let (ns, name) = nn.split_once('/')?;
            let o = objects
                .iter()
                .find(|o| o.kind == kind && o.namespace.as_deref() == Some(ns) && o.name == name)?;
            let i: usize = i.parse().ok()?;
            o.raw.pointer(&format!("/spec/hostnames/{i}"))?.as_str()
        });
        match found {
            Some(h) => out.push_str(h),
            None => out.push_str(&rest[at..=at + end]),
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A pod's address where the extractor left a placeholder for it ("{address of app=echo,...}").
fn fill_addresses(expected: &mut Value, pods: &[Pod]) {
    let Some(host) = expected.pointer_mut("/Request/Host") else {
        return;
    };
    let Some(h) = host.as_str() else { return };
    let Some(rest) = h.strip_prefix("{address of ") else {
        return;
    };
    let Some((selector, port)) = rest.split_once('}') else {
        return;
    };
    let wanted: Vec<(&str, &str)> = selector
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if let Some(pod) = pods.iter().find(|p| {
        wanted
            .iter()
            .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
    }) {
        *host = Value::String(format!("{}{port}", pod.address));
    }
}

/// Where a test's request goes: the Gateway listener's address, or the mesh entry. A Host
/// with a port names the listener port (as HTTPRouteListenerPortMatching picks its address).
fn target(x: &Exchange, agent: &support::Agent, gateways: &[Value]) -> Result<String, String> {
    let Some(gw) = &x.gateway else {
        return Ok(format!("127.0.0.1:{}", agent.outbound));
    };
    let key = format!("{}/{}", gw.namespace, gw.name);
    let g = gateways
        .iter()
        .find(|g| g["gateway"] == key.as_str())
        .ok_or_else(|| format!("Gateway {key} is not served"))?;
    let listeners = g["listeners"].as_array().cloned().unwrap_or_default();
    let host_port = text(&x.expected, "/Request/Host")
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    if !gw.port.is_empty() {
        return Ok(format!("{}:{}", text(g, "/address"), gw.port));
    }
    let l = if let Some(l) = host_port.and_then(|p| listeners.iter().find(|l| l["port"] == p)) {
        Some(l)
    } else {
        // WaitForGatewayAddress: the named listener's port, else the first listener's.
        listeners
            .iter()
            .find(|l| l["name"] == gw.listener.as_str())
            .or(listeners.first())
    }
    .ok_or_else(|| format!("listener {:?} of {key} is not served", gw.listener))?;
    Ok(format!("{}:{}", text(g, "/address"), l["port"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_as_the_conformance_tests_expect() {
    let all: Vec<Exchange> = upstream::conformance_extract(&["-http"]);
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let mut replayed: Vec<&Exchange> = Vec::new();
    for x in &all {
        match not_replayable(x) {
            Some(why) => *skipped.entry(why).or_default() += 1,
            None => replayed.push(x),
        }
    }
    assert!(
        replayed.len() > 400,
        "the extractor found only {} exchanges: has the tests' Go changed shape?",
        replayed.len()
    );
    let mut by_test: BTreeMap<&str, Vec<&Exchange>> = BTreeMap::new();
    for x in &replayed {
        by_test.entry(&x.test).or_default().push(x);
    }
    let only = std::env::var("REPLAY_ONLY").ok();
    let material = suite_material();
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    // Per upstream feature (as the tests declare them): exchanges passed, replayed.
    let mut by_feature: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (test, cases) in &by_test {
        if only.as_deref().is_some_and(|o| !test.contains(o)) {
            continue;
        }
        let mesh = !cases[0].mesh.is_empty();
        let base = if mesh {
            "mesh/manifests.yaml"
        } else {
            "base/manifests.yaml"
        };
        let yaml = upstream::conformance_manifests(base, &cases[0].manifests);
        let objects = load_str(
            &yaml,
            Source::File(format!("{test}.yaml").into()),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{test}: {e}"));
        let pods = pods(&objects);
        let dir = support::folder(&format!("replay-{test}"));
        std::fs::write(dir.join("manifests.yaml"), &yaml).unwrap();
        std::fs::write(dir.join("endpoints.yaml"), endpoint_slices(&objects, &pods)).unwrap();
        std::fs::write(dir.join("suite-material.yaml"), &material.yaml).unwrap();
        let mut echoes = mesh_echo::endpoints_from(&dir);
        // What every backend received, for the mirror checks.
        let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
        for args in &mut echoes {
            args.seen = Some(seen.clone());
            let pod = pods
                .iter()
                .find(|p| p.address == args.listen.ip().to_string());
            if let Some(p) = pod {
                // The EndpointSlice says which ports are UDP; the pod's environment which
                // protocol its TCP ports speak, and the Service name it reports.
                if args.protocol == mesh_echo::EchoProtocol::Http {
                    args.protocol = p.protocol;
                }
                if !p.service.is_empty() {
                    args.service = p.service.clone();
                }
            }
            if let Some((secret, port)) = pod.and_then(|p| p.tls.as_ref()) {
                if *port == args.listen.port() && args.protocol != mesh_echo::EchoProtocol::Udp {
                    let pem = |part: &str| {
                        material
                            .pem
                            .get(&format!("{{secret {secret} {part}}}"))
                            .cloned()
                            .unwrap_or_default()
                            .into_bytes()
                    };
                    args.tls = Some(mesh_echo::TlsIdentity {
                        cert_pem: pem("cert"),
                        key_pem: pem("key"),
                    });
                }
            }
        }
        let backends: Vec<_> = futures_util::future::join_all(echoes.into_iter().map(|args| {
            let at = args.listen;
            async move { (at, mesh_echo::serve(args).await) }
        }))
        .await
        .into_iter()
        .map(|(at, served)| {
            let run = served.unwrap_or_else(|e| {
                panic!("{test}: backend {at}: {e} (is another replay running?)")
            });
            tokio::spawn(run)
        })
        .collect();
        let agent = support::spawn(&dir, &["--gateway-address-pool", GATEWAY_POOL]).await;
        agent.loaded().await;
        let gateways: Vec<Value> = agent.admin_json("/gateways").await;
        let mut test_passed = 0;
        // The changes made so far (the deletions of the exchanges' `after`).
        let mut applied = String::new();
        for x in cases {
            total += 1;
            if x.after != applied {
                let deleted = deletions(&x.after).expect("only deletions are replayed");
                agent
                    .write("manifests.yaml", &without(&yaml, &deleted))
                    .await;
                applied = x.after.clone();
            }
            let mut x = (*x).clone();
            fill_addresses(&mut x.expected, &pods);
            x.expected = serde_json::from_str(&fill_hostnames(&x.expected.to_string(), &objects))
                .expect("JSON stays JSON");
            if let Some(t) = &mut x.tls {
                t.server_name = fill_hostnames(&t.server_name, &objects);
            }
            // A certificate the test reads from a Secret the suite made.
            if let Some(cert) = x.expected.pointer_mut("/Request/ClientCert") {
                if let Some(pem) = cert.as_str().and_then(|p| material.pem.get(p)) {
                    *cert = Value::String(pem.clone());
                }
            }
            let x = &x;
            let outcome = match target(x, &agent, &gateways) {
                Err(e) => Err(e),
                Ok(addr) => {
                    // Three in a row, as the suite's RequiredConsecutiveSuccesses.
                    let mut last = Ok(());
                    for _ in 0..3 {
                        // A run-time value the test draws per request (the retry
                        // simulation's uuid) is drawn afresh each time.
                        let expected: Value = serde_json::from_str(
                            &x.expected
                                .to_string()
                                .replace("{uuid}", &uuid::Uuid::new_v4().to_string()),
                        )
                        .unwrap();
                        let tls = x.tls.as_ref();
                        // A weighted distribution is checked once (500 requests).
                        if !x.weights.is_empty() {
                            last = distribution(&addr, x, mesh, &material).await;
                            break;
                        }
                        if !x.kind.is_empty() {
                            last = l4_exchange(&addr, x, &expected, &material).await.map(drop);
                            if last.is_err() {
                                break;
                            }
                            continue;
                        }
                        if let Some(t) = tls.filter(|t| t.reject) {
                            last = handshake_rejected(&addr, &t.server_name, &material).await;
                            if last.is_err() {
                                break;
                            }
                            continue;
                        }
                        let got = round_trip(&addr, &expected, mesh, tls, &material).await;
                        last = match got {
                            Ok(got) if tls.is_some_and(|t| t.fail) => Err(format!(
                                "the request should fail (client certificate refused), got {}",
                                got.status
                            )),
                            Err(_) if tls.is_some_and(|t| t.fail) => Ok(()),
                            Ok(got) if mesh => compare_mesh(&expected, &got),
                            Ok(got) => {
                                let scheme = if tls.is_some() { "https" } else { "http" };
                                compare(&expected, &addr, scheme, &got)
                            }
                            Err(e) => Err(format!("request failed: {e}")),
                        };
                        if last.is_err() {
                            break;
                        }
                    }
                    if last.is_ok() && !mirror::mirrors(&x.expected).is_empty() {
                        last = mirrored(&addr, x, mesh, &material, &seen).await;
                    }
                    last
                }
            };
            for f in &x.features {
                let e = by_feature
                    .entry(f.trim_start_matches("Support").to_string())
                    .or_default();
                e.1 += 1;
                e.0 += usize::from(outcome.is_ok());
            }
            match outcome {
                Ok(()) => test_passed += 1,
                Err(why) if !x.kind.is_empty() => failures.push(format!(
                    "{test}: {} {}: {why}",
                    x.kind.to_uppercase(),
                    x.tls.as_ref().map_or("", |t| t.server_name.as_str()),
                )),
                Err(why) => failures.push(format!(
                    "{test}: {} {}{}: {why}",
                    match text(&x.expected, "/Request/Method") {
                        "" => "GET",
                        m => m,
                    },
                    text(&x.expected, "/Request/Host"),
                    text(&x.expected, "/Request/Path"),
                )),
            }
        }
        println!("{test}: {test_passed}/{}", cases.len());
        passed += test_passed;
        drop(agent);
        for b in backends {
            b.abort();
        }
    }
    println!("\nper feature (exchanges passed / replayed):");
    for (f, (p, t)) in &by_feature {
        println!("  {f}: {p}/{t}");
    }
    println!("\nexchanges passed: {passed} of {total}; not replayed: {skipped:?}");
    for f in &failures {
        println!("  failed: {f}");
    }
    if only.is_none() {
        assert!(
            passed >= PASSED_AT_LEAST,
            "{passed} exchanges passed, fewer than the {PASSED_AT_LEAST} reached before:\n{}",
            failures.join("\n")
        );
    }
}
