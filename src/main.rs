//! The `whatsapp-operator` binary: a thin shell over the library.

use std::process::ExitCode;

use clap::Parser;
use whatsapp_operator::cli::{Cli, Command, RunArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match whatsapp_operator::crdgen::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => run(args).await,
        Command::Check(args) => ExitCode::from(whatsapp_operator::check::execute(&args)),
    }
}

async fn run(args: RunArgs) -> ExitCode {
    whatsapp_operator::telemetry::init(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client (KUBECONFIG or in-cluster config)");
            return ExitCode::FAILURE;
        }
    };
    let config = args.config();
    tracing::info!(namespace = ?config.namespace, twilio = %config.twilio.api_base_url, "starting whatsapp-operator");
    // The admission webhook decides from the controller's cache: built first, shared.
    let (cache, prepared) = whatsapp_operator::controller::prepare(client.clone(), config);
    let metrics = std::sync::Arc::new(whatsapp_operator::telemetry::Metrics::new());
    let mut prepared = prepared.with_metrics(metrics.clone());
    let mut leadership = whatsapp_operator::leader::Leadership::always();
    // Leader election: the Lease is given up only once the controller has drained, so that the
    // next leader never overlaps this one's last passes.
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let elector = match args.lease_config() {
        None => None,
        Some(lease) => {
            if let Err(e) = lease.validate() {
                tracing::error!(error = %e, "invalid leader-election settings");
                return ExitCode::FAILURE;
            }
            tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "leader election on");
            let (elected, task) = whatsapp_operator::leader::start(client.clone(), lease, async {
                let _ = drained_rx.await;
            });
            prepared = prepared.with_leadership(elected.clone());
            leadership = elected;
            Some(task)
        }
    };
    // /metrics, /healthz and /readyz, on every replica, until the process ends.
    let router = whatsapp_operator::telemetry::server::router(metrics, cache.clone(), leadership);
    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics_addr = args.metrics_addr;
    let server = tokio::spawn(async move {
        let stop = async {
            let _ = server_stop_rx.await;
        };
        if let Err(e) = whatsapp_operator::telemetry::server::serve(metrics_addr, router, stop).await {
            tracing::error!(addr = %metrics_addr, error = %e, "cannot serve /metrics, /healthz and /readyz");
        }
    });
    let controller = async move {
        let result = whatsapp_operator::controller::run_prepared(prepared, shutdown_signal()).await;
        let _ = drained_tx.send(());
        if let Some(task) = elector {
            let _ = task.await;
        }
        result
    };
    let result = match args.admission_config() {
        None => controller.await,
        Some(admission) => {
            match whatsapp_operator::admission::serve_alongside(client, cache, admission, controller).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!(error = %e, "the admission webhook failed");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let _ = server_stop_tx.send(());
    let _ = server.await;
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "the operator failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
