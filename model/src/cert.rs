//! Reading the certificate and key of a `kubernetes.io/tls` Secret.

use k8s_openapi::api::core::v1::Secret;

/// What a TLS Secret holds, as far as a listener cares.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsMaterial {
    /// DNS names the leaf certificate covers (SANs, or the CN when there are none).
    pub names: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
    pub not_before: i64,
    /// The serial number, in hex.
    pub serial: String,
}

fn field(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone().into_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
}

/// Parse `tls.crt` and `tls.key` and check that they make a serving key pair; the error says
/// which one is wrong and how.
pub fn read(secret: &Secret) -> Result<TlsMaterial, String> {
    let crt = field(secret, "tls.crt").ok_or("has no tls.crt")?;
    let key = field(secret, "tls.key").ok_or("has no tls.key")?;
    let material = certificate(&crt)?;
    key_pair(&crt, &key)?;
    Ok(material)
}

/// The key as the proxy will use it: parsed by the same TLS library (rustls), and matching the
/// leaf certificate's public key. A key that is garbage, zeroed, of an unsupported type, or
/// of another certificate would otherwise be swapped in and fail every handshake.
pub fn key_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::sign::CertifiedKey, String> {
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no PEM certificate".into());
    }
    let der = match rustls_pemfile::private_key(&mut &key_pem[..]) {
        Ok(Some(der)) => der,
        Ok(None) => return Err("tls.key holds no PEM private key".into()),
        Err(e) => return Err(format!("tls.key is not valid PEM: {e}")),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| {
        format!("tls.key is not a usable private key (RSA, ECDSA P-256/P-384 or Ed25519): {e}")
    })?;
    let pair = rustls::sign::CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        // Keys whose public half cannot be derived cannot be compared; rustls serves them.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(_) => Err(
            "tls.key does not belong to the certificate in tls.crt (their public keys differ)"
                .into(),
        ),
    }
}

/// Parse the first certificate of a PEM chain (a Secret's `tls.crt`, or an Envoy secret's
/// `certificate_chain`).
pub fn certificate(pem: &[u8]) -> Result<TlsMaterial, String> {
    let mut reader = pem;
    let der = match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => return Err(format!("tls.crt is not valid PEM: {e}")),
        None => return Err("tls.crt holds no PEM certificate".into()),
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("tls.crt is not a valid X.509 certificate: {e}"))?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    Ok(TlsMaterial {
        names,
        not_after: cert.validity().not_after.timestamp(),
        not_before: cert.validity().not_before.timestamp(),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}
