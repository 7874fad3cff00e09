//! Serving certificates, reloaded when their files change.
//!
//! cert-manager and Secret volume updates replace the files in place (through a symlink swap);
//! the webhook must pick the new pair up without a restart and without dropping connections.
//! The TLS config resolves the certificate per handshake from a slot that a watcher task
//! replaces; established connections keep the key they negotiated with. A pair that fails to
//! parse is logged and the last good one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn file_error(path: &Path, message: impl Into<String>) -> CertError {
    CertError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Read a PEM certificate chain and private key into a rustls key.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| file_error(cert, format!("cannot read: {e}")))?;
    let key_pem = std::fs::read(key).map_err(|e| file_error(key, format!("cannot read: {e}")))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no PEM certificate"));
    }
    let der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| file_error(key, format!("not PEM: {e}")))?
        .ok_or_else(|| file_error(key, "holds no PEM private key"))?;
    let signing =
        any_supported_type(&der).map_err(|e| file_error(key, format!("unsupported key: {e}")))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The current serving certificate, swapped on reload.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl Reloading {
    pub fn new(key: CertifiedKey) -> Arc<Reloading> {
        Arc::new(Reloading {
            current: RwLock::new(Arc::new(key)),
        })
    }

    fn set(&self, key: CertifiedKey) {
        if let Ok(mut slot) = self.current.write() {
            *slot = Arc::new(key);
        }
    }

    /// Poll the files every `every` and swap in a changed, valid pair. Polling (by content)
    /// sees Kubernetes' symlink swaps of mounted Secrets that file-event APIs can miss.
    pub async fn watch(self: Arc<Self>, cert: PathBuf, key: PathBuf, every: Duration) {
        let read = |p: &Path| std::fs::read(p).ok();
        let mut seen = (read(&cert), read(&key));
        loop {
            tokio::time::sleep(every).await;
            let now = (read(&cert), read(&key));
            if now == seen || now.0.is_none() || now.1.is_none() {
                continue;
            }
            match load(&cert, &key) {
                Ok(k) => {
                    self.set(k);
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                    seen = now;
                }
                Err(e) => {
                    tracing::error!(error = %e, "new certificate files rejected; keeping the current pair")
                }
            }
        }
    }
}

/// A rustls server config (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1) that asks `resolver`.
pub fn server_config(resolver: Arc<Reloading>) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
