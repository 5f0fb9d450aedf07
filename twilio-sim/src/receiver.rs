//! A webhook receiver for tests and the demo: a real HTTP server on 127.0.0.1 that checks
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
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts on `listen` (port 0: a free one), checking signatures with `tokens`.
    pub async fn start(listen: SocketAddr, tokens: TokenLookup) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (tokens, log) = (tokens.clone(), log.clone());
                let svc = service_fn(move |req| answer(req, tokens.clone(), log.clone()));
                tokio::spawn(async move {
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(Receiver { addr, received, task })
    }

    /// A receiver that knows these accounts' auth tokens.
    pub async fn with_tokens(tokens: HashMap<String, String>) -> std::io::Result<Receiver> {
        let tokens: TokenLookup = Arc::new(move |sid| tokens.get(sid).cloned());
        Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), tokens).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
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
    tokens: TokenLookup,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let url = format!("http://{host}{path_and_query}");
    let method = parts.method.as_str().to_string();
    let query: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (params, signed): (Vec<(String, String)>, Vec<(String, String)>) =
        if method == "GET" { (query, Vec::new()) } else { (form.clone(), form) };
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
