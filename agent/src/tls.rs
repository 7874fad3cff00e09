//! TLS termination for HTTPS listeners: the certificate is chosen per handshake by SNI among
//! the certificates of the port's listeners of the Plan in force (exact name, then wildcard), so a reload
//! with a renewed Secret takes effect on the next handshake.
//!
//! Client certificates are validated the same way, per handshake from the Plan in force: the
//! Gateway's `spec.tls.frontend` validation for the port (its CA bundles; `AllowValidOnly`
//! refuses a handshake without a valid client certificate, `AllowInsecureFallback` asks for
//! one and lets the connection through either way). A port without validation asks for none.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use mesh_model::plan::Plan;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::DistinguishedName;

/// A certificate with the DNS names it covers.
type Named = (Vec<String>, Arc<CertifiedKey>);

/// Where a socket is: its Gateway's own address (None when Gateways share one) and port.
type Socket = (Option<IpAddr>, u16);

/// Certificates per socket (listeners sharing an address and port share a socket), as rustls
/// keys, built when a Plan is swapped in.
#[derive(Debug, Default)]
pub struct Certificates {
    by_socket: RwLock<HashMap<Socket, Vec<Named>>>,
    /// Client-certificate validation per socket, where the Plan asks for it.
    validation: RwLock<HashMap<Socket, Arc<Validation>>>,
}

/// A socket's client-certificate validation, ready for handshakes.
#[derive(Debug)]
struct Validation {
    /// Verifies against the listener's CA bundles; None when none is usable (every client
    /// certificate is then invalid).
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    insecure_fallback: bool,
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
        let mut validation: HashMap<Socket, Arc<Validation>> = HashMap::new();
        for l in &plan.listeners {
            let Some(v) = &l.client_validation else {
                continue;
            };
            // Listeners of one Gateway on a port share its validation; Gateways sharing an
            // address (no --gateway-address-pool) share a socket, and the first one's applies.
            validation.entry((l.address, l.port)).or_insert_with(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(
                    rustls_pemfile::certs(&mut v.ca_pem.as_slice()).filter_map(Result::ok),
                );
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .ok();
                if verifier.is_none() {
                    tracing::warn!(listener = %l.name, "no usable CA certificate to validate clients with: every client certificate is refused");
                }
                Arc::new(Validation {
                    verifier,
                    insecure_fallback: v.insecure_fallback,
                })
            });
        }
        if let Ok(mut m) = self.validation.write() {
            *m = validation;
        }
    }

    fn validation(&self, socket: Socket) -> Option<Arc<Validation>> {
        self.validation.read().ok()?.get(&socket).cloned()
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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client-certificate check of a socket, as the Plan in force has it at each handshake.
#[derive(Debug)]
struct SocketVerifier {
    certificates: Arc<Certificates>,
    socket: Socket,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for SocketVerifier {
    fn offer_client_auth(&self) -> bool {
        self.certificates.validation(self.socket).is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.certificates
            .validation(self.socket)
            .is_some_and(|v| !v.insecure_fallback)
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let Some(v) = self.certificates.validation(self.socket) else {
            return Ok(ClientCertVerified::assertion());
        };
        let verdict = match &v.verifier {
            Some(w) => w.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "no usable CA certificate to validate client certificates with".into(),
            )),
        };
        match verdict {
            Err(e) if v.insecure_fallback => {
                tracing::debug!(error = %e, "invalid client certificate let through (AllowInsecureFallback)");
                Ok(ClientCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A server config for the HTTPS listeners of a socket (TLS 1.2 and 1.3; h2 and http/1.1 by
/// ALPN; client certificates as the Plan's frontend validation asks).
pub fn server_config(
    certificates: Arc<Certificates>,
    address: Option<IpAddr>,
    port: u16,
) -> rustls::ServerConfig {
    let provider = provider();
    let verifier = Arc::new(SocketVerifier {
        certificates: certificates.clone(),
        socket: (address, port),
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Resolver {
            certificates,
            socket: (address, port),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
