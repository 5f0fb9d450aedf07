//! One webhook request and the error code its failure gets.
//!
//! Requests go to loopback hosts only ([`is_local`]): anything else fails as 11210 without a
//! lookup. Timeouts as Twilio documents them (twilio.com/docs/api/errors/11205): a TCP connection
//! within 5 s per attempt (two attempts), an HTTP response within 15 s in total; both are
//! settings here so tests stay fast. Failure codes: a 4xx/5xx answer 11200, no connection or
//! no answer in time 11205, a name that does not resolve 11210, too many redirects 11215,
//! a certificate Twilio cannot trust 11237 (11235 wrong name, 11236 expired), another TLS
//! failure 11220, an answer body over 64 KiB 11750.

use std::error::Error as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The largest answer body Twilio reads (TwiML over it is error 11750) [unverified size].
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How webhook requests are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// The whole request, connecting included (Twilio: 15 000 ms).
    pub timeout_ms: u64,
    /// One connection attempt (Twilio: 5 000 ms).
    pub connect_timeout_ms: u64,
    /// Attempts after a failed connection (Twilio: 1, "rc" in its connection overrides).
    pub connect_retries: u32,
    /// Extra trusted root certificates (PEM), besides the platform's.
    #[serde(default)]
    pub extra_roots_pem: Vec<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout_ms: 15_000,
            connect_timeout_ms: 5_000,
            connect_retries: 1,
            extra_roots_pem: Vec::new(),
        }
    }
}

/// One request the simulator made as Twilio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The URL requested (no fragment).
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// Whether this was the fallback URL.
    pub fallback: bool,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Twilio's error code when the request failed.
    pub error_code: Option<u32>,
    /// What failed, in words.
    pub error: Option<String>,
    /// The alert recorded for the failure (`NO...`).
    pub alert_sid: Option<String>,
    /// How long it took.
    pub elapsed_ms: u64,
}

/// What a request got.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// A failed request: Twilio's code, words, and the answer if there was one.
pub(crate) struct Failure {
    pub code: u32,
    pub message: String,
    pub answer: Option<Answer>,
    /// No connection could be made (retried once, as Twilio's default retry policy does).
    pub connect: bool,
}

fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Whether `url`'s host is this machine (127.0.0.0/8, `::1`, `localhost`): the only place the
/// simulator sends requests to. Any other host fails as a name that does not resolve (11210)
/// without a lookup, so a test or demo URL such as `https://crm.example.com/hook` never leaves
/// the machine.
pub(crate) fn is_local(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The failure of a request to a host other than this machine's.
pub(crate) fn not_local(url: &str) -> Failure {
    Failure {
        code: 11210,
        message: format!(
            "{url}: the simulator sends webhook requests to loopback hosts only (treated as a bad host name)"
        ),
        answer: None,
        connect: false,
    }
}

/// A client with the settings' timeouts, at most 10 redirects (on this machine only), the
/// platform's roots plus the extra ones.
pub(crate) fn client(settings: &WebhookSettings) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else if is_local(attempt.url()) {
            attempt.follow()
        } else {
            attempt.error("a redirect off this machine")
        }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms.max(1)))
        .redirect(redirects)
        .pool_max_idle_per_host(0)
        .user_agent("TwilioProxy/1.1");
    for pem in &settings.extra_roots_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("bad root certificate: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| format!("cannot build the webhook client: {e}"))
}

/// What a TLS failure in `err`'s chain means to Twilio, if there is one.
fn tls_code(err: &reqwest::Error) -> Option<u32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = cur {
        let rustls_err = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_err {
            return Some(match r {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }) => 11235,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. }) => 11236,
                rustls::Error::InvalidCertificate(_) => 11237,
                _ => 11220,
            });
        }
        cur = e.source();
    }
    let text = format!("{err:?}");
    if text.contains("InvalidCertificate") || text.contains("certificate") {
        return Some(11237);
    }
    None
}

fn is_dns(err: &reqwest::Error) -> bool {
    let text = format!("{err:?}").to_ascii_lowercase();
    text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
}

/// The error of a request that got no (complete) answer.
fn transport_failure(err: &reqwest::Error) -> Failure {
    let words = {
        let mut s = err.to_string();
        let mut cur = err.source();
        while let Some(e) = cur {
            s.push_str(": ");
            s.push_str(&e.to_string());
            cur = e.source();
        }
        s
    };
    let (code, connect) = if err.is_redirect() {
        (11215, false)
    } else if let Some(code) = tls_code(err) {
        (code, false)
    } else if is_dns(err) {
        (11210, false)
    } else if err.is_timeout() {
        (11205, err.is_connect())
    } else if err.is_connect() {
        (11205, true)
    } else {
        (11200, false)
    };
    Failure { code, message: words, answer: None, connect }
}

/// Sends one request: `POST` with the form, or `GET` with the parameters in the query (then
/// `url` already holds them). `Ok` for a 2xx answer read whole.
pub(crate) async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> Result<Answer, Failure> {
    if !reqwest::Url::parse(url).is_ok_and(|u| is_local(&u)) {
        return Err(not_local(url));
    }
    let builder = if method == "GET" { client.get(url) } else { client.post(url).form(params) };
    let resp = builder
        .header("X-Twilio-Signature", signature)
        .header("I-Twilio-Idempotency-Token", uuid_like(url, params))
        .send()
        .await
        .map_err(|e| transport_failure(&e))?;
    let status = resp.status().as_u16();
    let headers =
        resp.headers().iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect::<Vec<_>>().join("\n");
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER_BYTES {
                    let answer = Answer { status, headers, body: String::new() };
                    return Err(Failure {
                        code: 11750,
                        message: format!("the answer body is over {MAX_ANSWER_BYTES} bytes"),
                        answer: Some(answer),
                        connect: false,
                    });
                }
            }
            Ok(None) => break,
            Err(e) => return Err(transport_failure(&e)),
        }
    }
    let body = String::from_utf8_lossy(&body).chars().take(4096).collect::<String>();
    let answer = Answer { status, headers, body };
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        let message = format!("the receiver answered HTTP {status}");
        Err(Failure { code: 11200, message, answer: Some(answer), connect: false })
    }
}

/// A per-request token derived from what is sent (Twilio's is opaque).
fn uuid_like(url: &str, params: &[(String, String)]) -> String {
    let mut parts: Vec<&str> = vec![url];
    parts.extend(params.iter().map(|(_, v)| v.as_str()));
    crate::sid::derived_hex(&parts)
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
