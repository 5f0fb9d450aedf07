//! A tiny scripted HTTP server for the client's tests: it records every request and answers
//! with canned replies in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::client::{TwilioClient, TwilioConfig};

pub(crate) const AC: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const SK: &str = "SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A canned reply.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self { status, headers: vec![("content-type", "application/json".into())], body: body.into() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One recorded request.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub user_agent: String,
    pub body: String,
}

impl Recorded {
    /// The decoded Basic credentials.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        use base64_decode::decode;
        let encoded = self.authorization.as_deref()?.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(decode(encoded)?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// The form body as ordered pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.body).unwrap()
    }

    /// The JSON body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    replies: Mutex<VecDeque<Reply>>,
}

/// The server.
pub(crate) struct MockServer {
    pub base: String,
    shared: Arc<Shared>,
}

impl MockServer {
    /// Starts a server on 127.0.0.1 that answers with `replies` in order (500 when empty).
    pub async fn start(replies: Vec<Reply>) -> Self {
        Self::start_on("127.0.0.1:0", replies).await
    }

    /// [`MockServer::start`] on `addr` (e.g. `127.0.0.2:0`, another loopback host).
    pub async fn start_on(addr: &str, replies: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared { requests: Mutex::default(), replies: Mutex::new(replies.into()) });
        let listener = TcpListener::bind(addr).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, shared }
    }

    /// A client whose both base URLs point here.
    pub fn client(&self) -> TwilioClient {
        TwilioClient::new(TwilioConfig::with_single_base_url(&self.base)).unwrap()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        content_type: header("content-type"),
        authorization: header("authorization"),
        user_agent: header("user-agent").unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = shared.replies.lock().unwrap().pop_front();
    let Some(reply) = reply else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no canned reply").into_response();
    };
    let mut response = reply.body.into_response();
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A server that reads one request and then closes the connection without answering.
pub(crate) async fn hang_up_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf)).await;
            let _ = socket.shutdown().await;
        }
    });
    base
}

/// A server that reads requests and never answers (for timeouts).
pub(crate) async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    base
}

/// A server that answers every request with `status` and a body of `total` bytes of `x`:
/// `Content-Length: total` when `announce`, else chunked. Returns its base URL and how many
/// body bytes it managed to write (the client stops reading: the count stays bounded).
pub(crate) async fn big_body_server(status: u16, total: u64, announce: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let framing =
                    if announce { format!("content-length: {total}") } else { "transfer-encoding: chunked".to_owned() };
                let head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{framing}\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                while sent < total {
                    let n = chunk.len().min(usize::try_from(total - sent).unwrap_or(usize::MAX));
                    let ok = if announce {
                        socket.write_all(&chunk[..n]).await.is_ok()
                    } else {
                        let mut framed = format!("{n:x}\r\n").into_bytes();
                        framed.extend_from_slice(&chunk[..n]);
                        framed.extend_from_slice(b"\r\n");
                        socket.write_all(&framed).await.is_ok()
                    };
                    if !ok {
                        return;
                    }
                    sent += n as u64;
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                }
                if !announce {
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    (base, written)
}

/// A loopback address with nothing listening.
pub(crate) async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    base
}

/// Minimal standard base64 decoding for the tests (no extra dependency).
mod base64_decode {
    pub fn decode(input: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = 0u32;
        let mut bits = 0;
        for c in input.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => break,
                _ => return None,
            };
            buf = (buf << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
                buf &= (1 << bits) - 1;
            }
        }
        Some(out)
    }
}
