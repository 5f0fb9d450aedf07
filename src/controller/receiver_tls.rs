//! The receiver certificate watch (`--receiver-tls-check`): a TLS handshake with the host of
//! `spec.webhook.url`, and nothing else — no HTTP request is ever sent to the receiver. The
//! handshake verifies the chain against the platform's roots (plus `--receiver-tls-ca`) and the
//! host name; the leaf certificate's expiry is read from it. One handshake per receiver
//! `host:port` and `--receiver-tls-interval`, shared by every channel with that receiver.
//!
//! The URL comes from a channel's spec, so the outbound rules apply as to the identity server
//! ([`crate::twilio::OutboundPolicy`]): the host and every address it resolves to are checked
//! before connecting (link-local and metadata addresses refused, the `--outbound-allow` list),
//! and the connection goes to exactly the addresses checked.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::verification::SharedChecks;
use crate::twilio::OutboundPolicy;

/// What one handshake with a receiver found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverTls {
    /// Chain and host name verified; the leaf certificate is valid until `not_after`.
    Verified {
        /// The leaf certificate's `notAfter`.
        not_after: DateTime<Utc>,
    },
    /// The certificate was refused (chain, host name, expiry, or no TLS at all).
    Refused {
        /// Why, as a sentence fragment (`expired`, `not valid for host x`, …).
        why: String,
        /// The leaf certificate's `notAfter`, when one was presented.
        not_after: Option<DateTime<Utc>>,
    },
    /// No TCP connection or no answer in time (the name did not resolve, refused, timed out).
    Unreachable(String),
    /// The outbound rules refuse the host or its addresses: nothing was sent.
    NotAllowed(String),
}

/// Settings of the watch.
#[derive(Clone, Debug)]
pub struct ReceiverTlsConfig {
    /// Warn this long before the certificate expires (`--receiver-tls-warn-days`).
    pub warn_before: Duration,
    /// How long one handshake's result stands per `host:port` (`--receiver-tls-interval`).
    pub interval: Duration,
    /// Roots trusted in addition to the platform's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// A PEM bundle of more such roots (`--receiver-tls-ca`), read when the watch starts.
    pub ca_file: Option<String>,
    /// Connection plus handshake time limit.
    pub timeout: Duration,
}

impl ReceiverTlsConfig {
    /// The defaults: warn 14 days ahead, one handshake per receiver and hour, 10 s to answer.
    pub fn new(extra_roots: Vec<CertificateDer<'static>>) -> Self {
        Self {
            warn_before: Duration::from_secs(14 * 86_400),
            interval: Duration::from_secs(3600),
            extra_roots,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why the watch could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverTlsError {
    /// The platform's root store (or an extra root) could not be loaded.
    #[error("cannot build the receiver TLS verifier: {0}")]
    Verifier(rustls::Error),
    /// `--receiver-tls-ca` could not be read or holds no certificate.
    #[error("--receiver-tls-ca {path}: {why}")]
    Roots {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Reads a PEM bundle of CA certificates (`--receiver-tls-ca`).
pub fn read_roots(path: &str) -> Result<Vec<CertificateDer<'static>>, ReceiverTlsError> {
    use rustls::pki_types::pem::PemObject;
    let err = |why: String| ReceiverTlsError::Roots { path: path.to_owned(), why };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let roots: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| err(e.to_string()))?;
    if roots.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(roots)
}

/// The shared receiver checks: one handshake per `host:port` and interval (single-flight:
/// channels that need the same receiver at once wait for one handshake).
pub struct ReceiverTlsChecks {
    config: ReceiverTlsConfig,
    policy: Arc<OutboundPolicy>,
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    checks: SharedChecks<ReceiverTls>,
}

impl std::fmt::Debug for ReceiverTlsChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverTlsChecks").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ReceiverTlsChecks {
    /// The watch with `config`, under the outbound `policy`.
    pub fn new(config: ReceiverTlsConfig, policy: OutboundPolicy) -> Result<Self, ReceiverTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = config.extra_roots.clone();
        if let Some(path) = &config.ca_file {
            roots.extend(read_roots(path)?);
        }
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
            .map_err(ReceiverTlsError::Verifier)?;
        Ok(Self {
            config,
            policy: Arc::new(policy),
            verifier: Arc::new(verifier),
            provider,
            checks: SharedChecks::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ReceiverTlsConfig {
        &self.config
    }

    /// The receiver of `webhook_url`: its last handshake's result while younger than the
    /// interval, else a new handshake. Returns the result and whether a handshake ran now.
    pub async fn check(&self, webhook_url: &str) -> (ReceiverTls, bool) {
        let Ok(url) = Url::parse(webhook_url) else {
            return (ReceiverTls::NotAllowed("the webhook URL does not parse".into()), false);
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let interval = self.config.interval;
        self.checks.get(format!("{host}:{port}"), || self.handshake(url, host.clone(), port), |_| Some(interval)).await
    }

    async fn handshake(&self, url: Url, host: String, port: u16) -> ReceiverTls {
        if let Err(refusal) = self.policy.check_url(&url) {
            return ReceiverTls::NotAllowed(refusal.to_string());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                match tokio::time::timeout(self.config.timeout, tokio::net::lookup_host((bare.as_str(), port))).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    Ok(Err(e)) => return ReceiverTls::Unreachable(format!("{host} does not resolve: {e}")),
                    Err(_) => return ReceiverTls::Unreachable(format!("resolving {host} timed out")),
                }
            }
        };
        if let Err(refusal) = self.policy.check_addresses(&host, &addrs) {
            return ReceiverTls::NotAllowed(refusal.to_string());
        }
        let Ok(name) = ServerName::try_from(bare.clone()) else {
            return ReceiverTls::NotAllowed(format!("{host} is not a valid TLS server name"));
        };
        let attempt = tokio::time::timeout(self.config.timeout, self.connect_checked(&addrs, port, name));
        match attempt.await {
            Ok(outcome) => outcome,
            Err(_) => ReceiverTls::Unreachable(format!(
                "{host}:{port} did not complete a TLS handshake in {:?}",
                self.config.timeout
            )),
        }
    }

    /// Connects to the first of the checked `addrs` that answers and shakes hands.
    async fn connect_checked(&self, addrs: &[IpAddr], port: u16, name: ServerName<'static>) -> ReceiverTls {
        let mut last = String::from("no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(SocketAddr::new(*addr, port)).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr} port {port}: {e}"),
            }
        }
        let Some(stream) = stream else {
            return ReceiverTls::Unreachable(format!("cannot connect to {last}"));
        };
        let seen = Arc::new(Mutex::new(None));
        let capture = Arc::new(Capture { inner: self.verifier.clone(), leaf: seen.clone() });
        let config = match rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b.dangerous().with_custom_certificate_verifier(capture).with_no_client_auth(),
            Err(e) => return ReceiverTls::Refused { why: format!("no TLS configuration: {e}"), not_after: None },
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let result = connector.connect(name, stream).await;
        let not_after = seen.lock().unwrap_or_else(|e| e.into_inner()).as_deref().and_then(not_after);
        match result {
            Ok(mut tls) => {
                // Done: close without sending a byte of application data.
                use tokio::io::AsyncWriteExt;
                let _ = tls.shutdown().await;
                match not_after {
                    Some(not_after) => ReceiverTls::Verified { not_after },
                    None => ReceiverTls::Refused { why: "its certificate's validity cannot be read".into(), not_after },
                }
            }
            Err(e) => ReceiverTls::Refused { why: describe(&e), not_after },
        }
    }
}

/// Why a handshake failed, from rustls' error inside the I/O error.
fn describe(e: &std::io::Error) -> String {
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "the certificate has expired".into(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the certificate is not valid for the host name".into()
            }
            CertificateError::UnknownIssuer => "the certificate chain does not lead to a trusted root".into(),
            CertificateError::Revoked => "the certificate is revoked".into(),
            other => format!("the certificate is invalid ({other:?})"),
        },
        Some(other) => format!("the TLS handshake failed: {other}"),
        None => format!("the TLS handshake failed: {e}"),
    }
}

/// A verifier that remembers the leaf certificate, then lets `inner` decide.
#[derive(Debug)]
struct Capture {
    inner: Arc<dyn ServerCertVerifier>,
    leaf: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.to_vec());
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: its tag, its content and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let (bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
            (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
        }
        _ => return None,
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The `notAfter` of an X.509 certificate (DER): `Certificate ::= SEQUENCE { tbsCertificate
/// SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
/// notBefore, notAfter }, … } … }` (RFC 5280, 4.1).
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = element(der)? else { return None };
    let (SEQUENCE, tbs, _) = element(cert)? else { return None };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        // The explicit version: the serial number follows.
        (_, _, rest) = element(rest)?;
    }
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (_, _, rest) = element(rest)?; // issuer
    let (SEQUENCE, validity, _) = element(rest)? else { return None };
    let (_, _, after) = element(validity)?; // notBefore
    let (tag, time, _) = element(after)?;
    parse_time(tag, std::str::from_utf8(time).ok()?)
}

/// `UTCTime` (`YYMMDDHHMMSSZ`, years 1950–2049) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &str) -> Option<DateTime<Utc>> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let part = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(year, part(0)?, part(2)?)?;
    Some(date.and_hms_opt(part(4)?, part(6)?, part(8)?)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn certificate(not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["receiver.example.com".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().to_vec()
    }

    #[test]
    fn the_expiry_is_read_from_the_certificate() {
        // UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5).
        let t = not_after(&certificate((2027, 3, 4))).expect("notAfter");
        assert_eq!(t, Utc.with_ymd_and_hms(2027, 3, 4, 0, 0, 0).single().expect("time"));
        let t = not_after(&certificate((2051, 1, 2))).expect("notAfter");
        assert_eq!(t, Utc.with_ymd_and_hms(2051, 1, 2, 0, 0, 0).single().expect("time"));
    }

    #[test]
    fn broken_certificates_have_no_expiry() {
        let good = certificate((2027, 3, 4));
        for cut in [0, 1, 5, 40, good.len() / 2] {
            assert_eq!(not_after(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(not_after(b"not DER"), None);
        assert_eq!(parse_time(0x17, "2701010000Z"), None, "too short");
        assert_eq!(parse_time(0x17, "271301000000Z"), None, "month 13");
        assert_eq!(parse_time(0x18, "20270101000000"), None, "no Z");
        assert_eq!(parse_time(0x17, "490101000000Z").map(|t| t.to_rfc3339()), Some("2049-01-01T00:00:00+00:00".into()));
        assert_eq!(parse_time(0x17, "500101000000Z").map(|t| t.to_rfc3339()), Some("1950-01-01T00:00:00+00:00".into()));
    }
}
