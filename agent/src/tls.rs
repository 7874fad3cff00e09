//! TLS termination for HTTPS listeners: the certificate is chosen per handshake by SNI among
//! the certificates of the port's listeners of the Plan in force (exact name, then wildcard), so a reload
//! with a renewed Secret takes effect on the next handshake.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use mesh_model::plan::Plan;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate with the DNS names it covers.
type Named = (Vec<String>, Arc<CertifiedKey>);

/// Where a socket is: its Gateway's own address (None when Gateways share one) and port.
type Socket = (Option<IpAddr>, u16);

/// Certificates per socket (listeners sharing an address and port share a socket), as rustls
/// keys, built when a Plan is swapped in.
#[derive(Debug, Default)]
pub struct Certificates {
    by_socket: RwLock<HashMap<Socket, Vec<Named>>>,
}

impl Certificates {
    /// HTTPS listeners sharing a socket have their certificates pooled; SNI picks among them.
    pub fn update(&self, plan: &Plan) {
        let mut map: HashMap<Socket, Vec<Named>> = HashMap::new();
        for l in &plan.listeners {
            map.entry((l.address, l.port))
                .or_default()
                .extend(l.certificates.iter().filter_map(|c| {
                    let pair = mesh_model::cert::key_pair(&c.cert_pem, &c.key_pem).ok()?;
                    Some((c.names.clone(), Arc::new(pair)))
                }));
        }
        if let Ok(mut m) = self.by_socket.write() {
            *m = map;
        }
    }

    /// The certificate for `sni` on a socket: an exact name, then a wildcard, then the first.
    fn choose(&self, socket: Socket, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let map = self.by_socket.read().ok()?;
        let certs = map.get(&socket)?;
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
    socket: Socket,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificates.choose(self.socket, hello.server_name())
    }
}

/// A server config for the HTTPS listeners of a socket (TLS 1.2 and 1.3; h2 and http/1.1 by
/// ALPN).
pub fn server_config(
    certificates: Arc<Certificates>,
    address: Option<IpAddr>,
    port: u16,
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            certificates,
            socket: (address, port),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
