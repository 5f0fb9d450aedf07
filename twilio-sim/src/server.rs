//! The HTTP listener: hyper HTTP/1.1 connections, each request run through the pipeline. A
//! pipeline `Drop` makes the service fail, which closes the connection without a response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::errors::ApiError;
use crate::http::{SimRequest, SimResponse};
use crate::pipeline::{self, Outcome};
use crate::shared::Shared;

/// How long shutdown waits for in-flight connections.
const GRACE: Duration = Duration::from_secs(5);

/// The service error that makes hyper drop the connection.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

fn to_hyper(resp: SimResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(resp.status);
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Full::new(Bytes::from(resp.body))).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

async fn serve_one(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.config.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let err = ApiError::new(413, 20001, "Request body too large or unreadable");
            let mut resp = SimResponse::error(&err);
            resp.headers.push(("Content-Type", "application/json".into()));
            return Ok(to_hyper(resp));
        }
    };
    let sim_req = SimRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    match pipeline::handle(shared, sim_req).await {
        Outcome::Respond(resp) => Ok(to_hyper(resp)),
        Outcome::Drop => Err(DropConnection),
    }
}

/// Accepts connections until `shutdown` fires, then waits (bounded) for open connections.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let shared = shared.clone();
                let svc = service_fn(move |req| serve_one(shared.clone(), req));
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => tracing::warn!("shutdown grace period elapsed"),
    }
}
