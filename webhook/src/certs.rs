//! `mesh-webhook certs`: a CA and a serving certificate for `NAME.NS.svc`, and the caBundle
//! the webhook configurations need. For clusters without cert-manager; with it, use its CA
//! injector annotation instead (see manifests/webhook/README.md).

use std::path::Path;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The DNS names the API server may use to reach the Service, plus any extra ones.
pub fn names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    v.extend(extra.iter().cloned());
    v
}

/// The files written and the base64 caBundle.
pub struct Issued {
    pub ca_bundle: String,
}

/// Write `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `out` (keys mode 0600), valid for
/// `days` days.
pub fn issue(
    service: &str,
    namespace: &str,
    extra: &[String],
    out: &Path,
    days: u32,
) -> Result<Issued, String> {
    let err = |e: rcgen::Error| format!("cannot create the certificate: {e}");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Back-date an hour, so a node whose clock lags a little still accepts the certificate.
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::Duration::from_secs(secs.saturating_sub(3600));
    let until = now + std::time::Duration::from_secs(u64::from(days) * 86_400);

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("mesh-webhook CA ({namespace})"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now;
    ca.not_after = until;
    let issuer = rcgen::CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;

    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(names(service, namespace, extra)).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now;
    leaf.not_after = until;
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    std::fs::create_dir_all(out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let write = |name: &str, text: &str, secret: bool| -> Result<(), String> {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        if secret {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    };
    let ca_pem = issuer.pem();
    write("ca.crt", &ca_pem, false)?;
    write("ca.key", &issuer.key().serialize_pem(), true)?;
    write("tls.crt", &cert.pem(), false)?;
    write("tls.key", &key.serialize_pem(), true)?;
    Ok(Issued {
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_pem),
    })
}
