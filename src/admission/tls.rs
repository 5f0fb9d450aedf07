//! The webhook's serving certificate: PEM files (a Secret in a real cluster), or a CA and a
//! serving certificate generated at startup for local use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::AdmissionError;

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// A CA and a serving certificate generated at startup (kept in memory only), valid for
    /// `hosts` (DNS names or IP addresses) and for `127.0.0.1`, `::1` and `localhost`.
    SelfSigned {
        /// Extra names the certificate is valid for, e.g. the host of the advertised URL.
        hosts: Vec<String>,
    },
    /// PEM files: the certificate chain (leaf first) and its private key. Re-read when they
    /// change, so a rotated Secret takes effect without a restart.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// A generated CA and the serving certificate it signed. The key is redacted from `Debug`.
#[derive(Clone)]
pub struct SelfSigned {
    /// The CA certificate (PEM): the `caBundle` the API server trusts.
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl SelfSigned {
    /// Generates a CA (ECDSA P-256, valid one year) and a serving certificate it signs for
    /// `127.0.0.1`, `::1`, `localhost` and `hosts`.
    pub fn generate(hosts: &[String]) -> Result<Self, AdmissionError> {
        let ((y0, m0, d0), (y1, m1, d1)) = validity();
        let not_before = rcgen::date_time_ymd(y0, m0, d0);
        let not_after = rcgen::date_time_ymd(y1, m1, d1);
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, "whatsapp-operator admission CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec!["127.0.0.1".to_owned(), "::1".to_owned(), "localhost".to_owned()];
        for h in hosts {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, "whatsapp-operator admission webhook");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// From yesterday (clock skew) to a year from now, as (year, month, day).
fn validity() -> ((i32, u8, u8), (i32, u8, u8)) {
    use chrono::Datelike;
    // Month and day always fit a u8.
    let ymd = |d: chrono::DateTime<chrono::Utc>| (d.year(), d.month() as u8, d.day() as u8);
    let now = chrono::Utc::now();
    (ymd(now - chrono::Duration::days(1)), ymd(now + chrono::Duration::days(365)))
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, h2 and http/1.1) for a PEM
/// certificate chain and key.
pub(crate) fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &str,
) -> Result<Arc<ServerConfig>, AdmissionError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AdmissionError::Pem { what: format!("certificate {origin}"), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(AdmissionError::Pem {
            what: format!("certificate {origin}"),
            reason: "no CERTIFICATE block".into(),
        });
    }
    // The error of a key parse never echoes key material.
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| AdmissionError::Pem { what: format!("private key {origin}"), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration for generated certificates.
pub(crate) fn self_signed_config(generated: &SelfSigned) -> Result<Arc<ServerConfig>, AdmissionError> {
    server_config(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes(), "(generated)")
}

/// The PEM files' contents, read together.
pub(crate) async fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), AdmissionError> {
    let read = |p: &Path| {
        let p = p.to_owned();
        async move { tokio::fs::read(&p).await.map_err(|source| AdmissionError::ReadFile { path: p, source }) }
    };
    Ok((read(cert).await?, read(key).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_load_and_the_key_stays_out_of_debug() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let generated = SelfSigned::generate(&["webhook.example.svc".to_owned()]).expect("generate");
        assert!(generated.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(generated.ca_pem, generated.cert_pem);
        self_signed_config(&generated).expect("server config");
        let debug = format!("{generated:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("PRIVATE KEY"));
    }

    #[test]
    fn bad_pem_is_a_typed_error() {
        let err = server_config(b"not pem", b"not pem either", "(test)").expect_err("rejected");
        assert!(matches!(err, AdmissionError::Pem { .. }), "{err}");
    }
}
