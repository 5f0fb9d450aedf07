//! A webhook receiver for tests and the demo: a real HTTP(S) server on 127.0.0.1 that checks
//! each request's `X-Twilio-Signature` with the account's auth token, logs what it got, and
//! answers by path:
//!
//! - `/status/{code}`: that HTTP status (e.g. `/status/502`);
//! - `/slow/{ms}`: `200` after `ms` milliseconds;
//! - `/big`: `200` with a body over Twilio's 64 KiB limit;
//! - anything else: `200` with an empty TwiML `<Response/>`; `403` when the signature is wrong.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::shared::lock;
use crate::webhook::verify_webhook_signature;

/// The auth token of an account (`AccountSid` of the request), if known.
pub type TokenLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The form (POST) or query (GET) parameters.
    pub params: Vec<(String, String)>,
    /// Whether `X-Twilio-Signature` matched the account's auth token.
    pub signature_valid: bool,
    /// The status answered.
    pub status: u16,
}

impl Received {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
    /// HTTPS: the CA (PEM) that signed the serving certificate.
    ca_pem: Option<String>,
}

/// A CA and a serving certificate it signed for `127.0.0.1`, `::1` and `localhost`.
struct Generated {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn generate() -> Result<Generated, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(DnType::CommonName, "twilio-sim receiver CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "::1".to_owned(), "localhost".to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, "twilio-sim receiver");
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Generated { ca_pem: ca_cert.pem(), cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
}

fn acceptor(g: &Generated) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(g.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(g.key_der.clone())),
        )
        .map_err(std::io::Error::other)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts plain HTTP on `listen` (port 0: a free one), checking signatures with `tokens`.
    pub async fn start(listen: SocketAddr, tokens: TokenLookup) -> std::io::Result<Receiver> {
        Self::serve(listen, tokens, None).await
    }

    /// Starts HTTPS on `listen` with a certificate from a CA generated for it
    /// ([`Receiver::ca_pem`]: trust it, or not, to test Twilio's certificate check).
    pub async fn start_tls(listen: SocketAddr, tokens: TokenLookup) -> std::io::Result<Receiver> {
        let generated = generate().map_err(std::io::Error::other)?;
        Self::serve(listen, tokens, Some(generated)).await
    }

    async fn serve(listen: SocketAddr, tokens: TokenLookup, tls: Option<Generated>) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let acceptor = tls.as_ref().map(acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (tokens, log, acceptor) = (tokens.clone(), log.clone(), acceptor.clone());
                let svc = service_fn(move |req| answer(req, scheme, tokens.clone(), log.clone()));
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Ok(Receiver { addr, received, task, ca_pem: tls.map(|g| g.ca_pem) })
    }

    /// HTTPS only: the PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A receiver that knows these accounts' auth tokens.
    pub async fn with_tokens(tokens: HashMap<String, String>) -> std::io::Result<Receiver> {
        let tokens: TokenLookup = Arc::new(move |sid| tokens.get(sid).cloned());
        Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), tokens).await
    }

    /// `http://127.0.0.1:<port>` (`https://` for [`Receiver::start_tls`]).
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/xml"));
    r
}

async fn answer(
    req: Request<Incoming>,
    scheme: &'static str,
    tokens: TokenLookup,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let url = format!("{scheme}://{host}{path_and_query}");
    let method = parts.method.as_str().to_string();
    let query: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    type Pairs = Vec<(String, String)>;
    let (params, signed): (Pairs, Pairs) = if method == "GET" { (query, Vec::new()) } else { (form.clone(), form) };
    let signature = parts.headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let account = params.iter().find(|(k, _)| k == "AccountSid").map(|(_, v)| v.clone()).unwrap_or_default();
    let valid = tokens(&account).is_some_and(|t| verify_webhook_signature(&t, &url, &signed, signature));
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resp = match segs.as_slice() {
        ["status", code] => reply(code.parse().unwrap_or(500), ""),
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
            reply(200, "<Response/>")
        }
        ["big"] => reply(200, vec![b' '; 70 * 1024]),
        _ if !valid => reply(403, "bad signature"),
        _ => reply(200, "<Response/>"),
    };
    let status = resp.status().as_u16();
    tracing::info!(
        method = %method,
        path = %path_and_query,
        from = params.iter().find(|(k, _)| k == "From").map(|(_, v)| v.as_str()).unwrap_or("-"),
        body = params.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.as_str()).unwrap_or("-"),
        signature_valid = valid,
        status,
        "receiver got a webhook"
    );
    lock(&log).push(Received { method, path: path_and_query, params, signature_valid: valid, status });
    Ok(resp)
}
