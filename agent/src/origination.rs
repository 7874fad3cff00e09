//! TLS to backends (BackendTLSPolicy): the client configuration of a cluster whose Service
//! port a policy targets, and the check of the backend's certificate.
//!
//! The certificate must chain to the policy's CA bundles (or the system's roots with
//! `wellKnownCACertificates: System`) and carry the policy's `hostname`, or, when the policy
//! lists `subjectAltNames`, one of those instead (the hostname is then only the SNI). A policy
//! without usable CA certificates fails every connection: the proxy never falls back to
//! cleartext or to trusting whatever the backend shows.

use std::sync::{Arc, OnceLock};

use mesh_model::plan::upstream_tls::{SubjectAltName, UpstreamTls};
use mesh_model::plan::Certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read once (SSL_CERT_FILE / SSL_CERT_DIR, else the platform's).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "cannot read a system CA certificate");
        }
        found.certs
    })
}

/// Why a cluster's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("BackendTLSPolicy {0} has no usable CA certificate: connections to its backends fail")]
    NoTrust(String),
    #[error("BackendTLSPolicy {policy}: {hostname:?} is not a valid server name")]
    BadName { policy: String, hostname: String },
    #[error("the Gateway's client certificate (Secret {secret}) cannot be used: {why}")]
    BadClientCertificate { secret: String, why: String },
}

/// The rustls client configuration for a cluster's TLS, presenting `client_certificate` when
/// the backend asks for one, and the server name to send.
pub fn client_config(
    tls: &UpstreamTls,
    client_certificate: Option<&Certificate>,
) -> Result<(rustls::ClientConfig, ServerName<'static>), TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        rustls_pemfile::certs(&mut tls.ca_pem.as_slice()).filter_map(Result::ok),
    );
    if tls.system_roots {
        roots.add_parsable_certificates(system_roots().iter().cloned());
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|_| TlsSetupError::NoTrust(tls.policy.clone()))?;
    let name = ServerName::try_from(tls.sni.clone()).map_err(|_| TlsSetupError::BadName {
        policy: tls.policy.clone(),
        hostname: tls.sni.clone(),
    })?;
    // ALPN is the connector's to set, from the protocol (`http/1.1`, or `h2` for gRPC).
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(BackendVerifier {
            inner: verifier,
            subject_alt_names: tls.subject_alt_names.clone(),
        }));
    let config = match client_certificate {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let bad = |why: String| TlsSetupError::BadClientCertificate {
                secret: c.secret.clone(),
                why,
            };
            let chain: Vec<CertificateDer<'static>> =
                rustls_pemfile::certs(&mut c.cert_pem.as_slice())
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(format!("tls.crt: {e}")))?;
            let key = rustls_pemfile::private_key(&mut c.key_pem.as_slice())
                .map_err(|e| bad(format!("tls.key: {e}")))?
                .ok_or_else(|| bad("tls.key holds no private key".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(e.to_string()))?
        }
    };
    Ok((config, name))
}

/// The chain check of WebPKI, and the name check the policy asks for.
#[derive(Debug)]
struct BackendVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    subject_alt_names: Vec<SubjectAltName>,
}

/// Whether the certificate carries one of the wanted names (DNS names, wildcards as a
/// certificate writes them, or URIs exactly).
fn carries(end_entity: &CertificateDer<'_>, wanted: &[SubjectAltName]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(|g| {
        wanted.iter().any(|w| match (g, w) {
            (GeneralName::DNSName(d), SubjectAltName::Hostname(h)) => {
                mesh_model::hostname::matches(d, h)
            }
            (GeneralName::URI(u), SubjectAltName::Uri(want)) => u == want,
            _ => false,
        })
    })
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = self
            .inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now);
        if self.subject_alt_names.is_empty() {
            return chain;
        }
        match chain {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if carries(end_entity, &self.subject_alt_names) => {
                Ok(ServerCertVerified::assertion())
            }
            Ok(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            )),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
