//! `twilio-sim`: runs the Twilio simulator as a standalone server.
//!
//! Prints the bound base URL on stdout as its first line, then serves until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;
use twilio_sim::{SimConfig, Simulator};

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A stateful Twilio REST API simulator (api.twilio.com 2010-04-01, messaging.twilio.com v1/v2)
/// with an OAuth2 token endpoint and a control API under /_sim/.
///
/// The first line on stdout is the base URL (e.g. http://127.0.0.1:8080). Logs go to stderr
/// (filter with RUST_LOG, default "info"). Stops cleanly on SIGINT/SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "twilio-sim", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "TWILIO_SIM_LISTEN")]
    listen: SocketAddr,
    /// YAML seed file to load at start (see twilio-sim/README.md and examples/seed.yaml).
    #[arg(long, env = "TWILIO_SIM_SEED")]
    seed: Option<PathBuf>,
    /// Check every Twilio request and response against Twilio's OpenAPI specs; non-conforming
    /// requests get 400 20001.
    #[arg(long)]
    strict: bool,
    /// Directory holding twilio_api_v2010.json, twilio_messaging_v1.json and
    /// twilio_messaging_v2.json (used with --strict; hack/fetch-twilio-specs.sh prints it).
    #[arg(long, env = "TWILIO_OAI_SPEC_DIR")]
    spec_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Seed for generated SIDs and tokens (reproducible runs).
    #[arg(long)]
    rng_seed: Option<u64>,
    /// Whole-request timeout of the webhook requests the simulator makes as Twilio (inbound
    /// messages), in milliseconds (Twilio: 15000).
    #[arg(long, default_value_t = 15_000)]
    webhook_timeout_ms: u64,
    /// Also run a webhook receiver on this address (e.g. 127.0.0.1:0), over HTTPS with a
    /// certificate the simulator trusts: it checks each request's X-Twilio-Signature with the
    /// simulated account's auth token, logs it, and answers 200 (or what its path asks:
    /// /status/502, /slow/20000, /big). Its base URL is printed on stdout as the second line,
    /// "receiver <url>".
    #[arg(long)]
    receiver_listen: Option<SocketAddr>,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let config = SimConfig {
        listen: cli.listen,
        strict: cli.strict,
        spec_dir: cli.spec_dir,
        rng_seed: cli.rng_seed,
        webhook: twilio_sim::webhook::WebhookSettings {
            timeout_ms: cli.webhook_timeout_ms,
            connect_timeout_ms: cli.webhook_timeout_ms.min(5_000),
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("twilio-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &cli.seed {
        match sim.seed_file(path) {
            Ok(accounts) => {
                tracing::info!(file = %path.display(), accounts = accounts.len(), "seeded")
            }
            Err(e) => {
                eprintln!("twilio-sim: seeding from {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let receiver = match cli.receiver_listen {
        Some(listen) => {
            let lookup = sim.clone();
            let tokens: twilio_sim::receiver::TokenLookup =
                std::sync::Arc::new(move |sid: &str| lookup.account(sid).map(|a| a.auth_token));
            match twilio_sim::receiver::Receiver::start_tls(listen, tokens).await {
                Ok(r) => {
                    // The simulated Twilio trusts the receiver's certificate, as Twilio trusts a
                    // receiver's public one.
                    let mut settings = sim.webhook_settings();
                    settings.extra_roots_pem.extend(r.ca_pem().map(str::to_owned));
                    sim.set_webhook_settings(settings);
                    Some(r)
                }
                Err(e) => {
                    eprintln!("twilio-sim: cannot start the receiver on {listen}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut lines = format!("{}\n", sim.base_url());
    if let Some(r) = &receiver {
        lines.push_str(&format!("receiver {}\n", r.base_url()));
    }
    if write!(out, "{lines}").and_then(|_| out.flush()).is_err() {
        eprintln!("twilio-sim: cannot write the base URL to stdout");
    }
    drop(out);
    wait_for_signal().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    ExitCode::SUCCESS
}
