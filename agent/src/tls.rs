//! TLS termination for HTTPS listeners: the certificate is chosen per handshake by SNI among
//! the certificates of the port's listeners of the Plan in force (exact name, then wildcard), so a reload
//! with a renewed Secret takes effect on the next handshake.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mesh_model::plan::Plan;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate with the DNS names it covers.
type Named = (Vec<String>, Arc<CertifiedKey>);

/// Certificates per port (listeners sharing a port share a socket), as rustls keys, built when a Plan is swapped in.
#[derive(Debug, Default)]
pub struct Certificates {
    by_port: RwLock<HashMap<u16, Vec<Named>>>,
}

impl Certificates {
    /// HTTPS listeners sharing a port share one socket, so their certificates are pooled per
    /// port; SNI picks among them.
    pub fn update(&self, plan: &Plan) {
        let mut map: HashMap<u16, Vec<Named>> = HashMap::new();
        for l in &plan.listeners {
            map.entry(l.port)
                .or_default()
                .extend(l.certificates.iter().filter_map(|c| {
                    let pair = mesh_model::cert::key_pair(&c.cert_pem, &c.key_pem).ok()?;
                    Some((c.names.clone(), Arc::new(pair)))
                }));
        }
        if let Ok(mut m) = self.by_port.write() {
            *m = map;
        }
    }

    /// The certificate for `sni` on `port`: an exact name, then a wildcard, then the first.
    fn choose(&self, port: u16, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let map = self.by_port.read().ok()?;
        let certs = map.get(&port)?;
        let by = |exact: bool| {
            certs.iter().find(|(names, _)| {
                sni.is_some_and(|s| {
                    names.iter().any(|n| {
                        if exact {
                            n.eq_ignore_ascii_case(s)
                        } else {
                            mesh_model::hostname::matches(n, s)
                        }
                    })
                })
            })
        };
        by(true)
            .or_else(|| by(false))
            .or(certs.first())
            .map(|(_, k)| k.clone())
    }
}

#[derive(Debug)]
struct Resolver {
    certificates: Arc<Certificates>,
    port: u16,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificates.choose(self.port, hello.server_name())
    }
}

/// A server config for the HTTPS listeners of a port (TLS 1.2 and 1.3; h2 and http/1.1 by ALPN).
pub fn server_config(certificates: Arc<Certificates>, port: u16) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { certificates, port }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
