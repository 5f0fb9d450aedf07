//! The `whatsapp-operator` binary: a thin shell over the library.

use std::process::ExitCode;

use clap::Parser;
use whatsapp_operator::cli::{Cli, Command, RunArgs};

fn main() -> ExitCode {
    tune_malloc();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread that allocates while another does an arena of its own (up to eight
/// per core) and keeps each arena's freed memory: with tokio's workers and the blocking threads
/// of name resolution, that multiplies the resident memory of a process that mostly waits on
/// the network. Two arenas are plenty here (see README "Benchmarks" for the figures).
///
/// A fixed mmap threshold, too: glibc raises its threshold to the size of each large block
/// freed, so after the first pages of a listing (a few hundred KiB to MiB each) every later one
/// is carved from the heap, where its freed space stays resident; below a fixed threshold they
/// are mapped and unmapped.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first in `main`, before any other thread exists; mallopt only sets
    // parameters of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn async_main() -> ExitCode {
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
        Command::Status(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            ExitCode::from(whatsapp_operator::status::execute(&args).await)
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let shutdown = shutdown_signal();
    whatsapp_operator::telemetry::init(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = std::sync::Arc::new(whatsapp_operator::telemetry::Metrics::new());
    let client = match kube_client(&metrics).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client (KUBECONFIG or in-cluster config)");
            return ExitCode::FAILURE;
        }
    };
    let mut config = args.config();
    // Test-only (debug builds; a release build reads no variable): see `test_hooks`.
    match whatsapp_operator::test_hooks::Hooks::from_env() {
        Ok(hooks) => {
            if hooks.is_active() {
                tracing::warn!(
                    variable = whatsapp_operator::test_hooks::ENV_VAR,
                    "a test-only fault hook is active: passes will pause at it"
                );
            }
            config.hooks = hooks;
        }
        Err(e) => {
            tracing::error!(error = %e, "invalid test hook");
            return ExitCode::FAILURE;
        }
    }
    tracing::info!(namespace = ?config.namespace, twilio = %config.twilio.api_base_url, "starting whatsapp-operator");
    // The admission webhook decides from the controller's cache: built first, shared.
    let (cache, prepared) = whatsapp_operator::controller::prepare(client.clone(), config);
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
        let result = whatsapp_operator::controller::run_prepared(prepared, shutdown).await;
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

/// The Kubernetes client (KUBECONFIG, else in-cluster), its requests counted into `metrics`.
async fn kube_client(metrics: &whatsapp_operator::telemetry::Metrics) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&metrics.kube_layer()).build())
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed now, before the
/// process serves anything, so a signal that comes early is never the default "die at once".
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
