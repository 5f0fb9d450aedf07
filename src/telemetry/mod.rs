//! Telemetry: logging (tracing with an `RUST_LOG`-style filter, plain or JSON), Prometheus
//! [`metrics`], and the [`server`] for `/metrics`, `/healthz` and `/readyz`.

use tracing_subscriber::{fmt, EnvFilter};

/// The log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. The filter comes from `RUST_LOG` (default: `info`, with the
/// Kubernetes client's chatter at `warn`).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,hyper=warn,tower=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub mod kube_requests;
pub mod metrics;
pub mod server;

pub use metrics::Metrics;
