//! `whatsapp-bench`: drives the operator's release build against the real control plane and the
//! Twilio simulator with a fleet of N channels, measures each scenario (cold start, rest, restart,
//! steady state, a Secret rotation, webhook drift) and the floors it is judged against, and
//! renders the report (`make bench`, `make bench-report`; see README "Benchmarks").

mod fleet;
mod floors;
mod measure;
mod operator;
mod ready;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The result type of the bench: a failure ends the run with its message.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(name = "whatsapp-bench", about = "Benchmarks the operator against measured floors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every scenario with N channels (needs KUBECONFIG: run under hack/with-control-plane.sh)
    /// and writes `bench-N.json` into `--out`.
    Run(run::RunArgs),
    /// Renders `report.md` and `time-to-ready.svg` from the `bench-*.json` files in `--dir`
    /// and prints the table; exits 1 when a target fails and `--strict` is set.
    Report {
        /// Where the results are.
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
        /// Exit 1 when a target fails.
        #[arg(long)]
        strict: bool,
    },
    /// The memory floor: an empty kube-rs program holding the operator's three watches
    /// (channels, bindings, Secret metadata) in reflector stores, nothing else. Prints its peak
    /// RSS in bytes once every store has listed and it has settled.
    MemoryFloor {
        /// How long to hold the stores after they listed.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        settle: Duration,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Report { dir, strict } => report::render(&dir).map(|passed| {
            if strict && !passed {
                std::process::exit(1);
            }
        }),
        Command::MemoryFloor { settle } => floors::memory_floor_child(settle).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whatsapp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
