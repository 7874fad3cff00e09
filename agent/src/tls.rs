//! TLS termination for HTTPS listeners: the certificate is chosen per handshake by SNI among
//! the listener's certificates of the Plan in force (exact name, then wildcard), so a reload
//! with a renewed Secret takes effect on the next handshake.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mesh_model::plan::Plan;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate with the DNS names it covers.
type Named = (Vec<String>, Arc<CertifiedKey>);

/// Certificates per listener, as rustls keys, built when a Plan is swapped in.
#[derive(Debug, Default)]
pub struct Certificates {
    by_listener: RwLock<HashMap<String, Vec<Named>>>,
}

fn key(cert_pem: &[u8], key_pem: &[u8]) -> Option<CertifiedKey> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .ok()?;
    let der = rustls_pemfile::private_key(&mut &key_pem[..]).ok()??;
    Some(CertifiedKey::new(chain, any_supported_type(&der).ok()?))
}

impl Certificates {
    pub fn update(&self, plan: &Plan) {
        let map = plan
            .listeners
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.certificates
                        .iter()
                        .filter_map(|c| {
                            Some((c.names.clone(), Arc::new(key(&c.cert_pem, &c.key_pem)?)))
                        })
                        .collect(),
                )
            })
            .collect();
        if let Ok(mut m) = self.by_listener.write() {
            *m = map;
        }
    }

    /// The certificate for `sni` on `listener`: an exact name, then a wildcard, then the first.
    fn choose(&self, listener: &str, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let map = self.by_listener.read().ok()?;
        let certs = map.get(listener)?;
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
    listener: String,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificates
            .choose(&self.listener, hello.server_name())
    }
}

/// A server config for one HTTPS listener (TLS 1.2 and 1.3; h2 and http/1.1 by ALPN).
pub fn server_config(certificates: Arc<Certificates>, listener: &str) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            certificates,
            listener: listener.to_string(),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
