//! The operator's own HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the
//! process serves) and `/readyz` (the caches have listed the cluster once).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::controller::cache::Cache;
use crate::leader::Leadership;

use super::Metrics;

/// What the endpoints read.
#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    cache: Cache,
    leader: Leadership,
}

/// The router of the endpoints (served by [`serve`]; also usable in tests).
pub fn router(metrics: Arc<Metrics>, cache: Cache, leader: Leadership) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Shared { metrics, cache, leader })
}

async fn metrics_text(State(s): State<Shared>) -> impl IntoResponse {
    s.metrics.set_channels(s.cache.channels.state().iter().map(|c| c.phase.map_or("None", |p| p.as_str())));
    s.metrics.leader.set(i64::from(s.leader.is_leader()));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

async fn ready(State(s): State<Shared>) -> impl IntoResponse {
    if s.cache.ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

/// Serves the endpoints on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
