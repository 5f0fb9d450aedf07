//! `twilio-sim-coverage`: prints the Markdown table of Twilio operations (implemented by the
//! simulator, called by the operator, statuses exercised by tests) from the JSONL coverage log
//! the simulator writes when `TWILIO_SIM_COVERAGE_FILE` is set. See `hack/twilio-coverage.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use twilio_sim::spec::{coverage, Contract};

/// Print the Twilio API coverage table from the simulator's coverage log.
#[derive(Debug, Parser)]
#[command(name = "twilio-sim-coverage", version)]
struct Args {
    /// The JSONL coverage log the simulator appended to.
    #[arg(long, env = coverage::COVERAGE_FILE_ENV)]
    input: PathBuf,
    /// The twilio-oai spec directory (default: $TWILIO_OAI_SPEC_DIR, else the fetch cache).
    #[arg(long)]
    spec_dir: Option<PathBuf>,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn run(args: &Args) -> Result<String, String> {
    let contract = match &args.spec_dir {
        Some(dir) => Contract::load(dir)?,
        None => Contract::load_default()?,
    };
    let text = std::fs::read_to_string(&args.input).map_err(|e| {
        format!(
            "reading {}: {e} (run the tests with {} set, e.g. hack/twilio-coverage.sh)",
            args.input.display(),
            coverage::COVERAGE_FILE_ENV
        )
    })?;
    let records = coverage::parse_records(&text).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let implemented: Vec<(&str, &str)> =
        twilio_sim::implemented_operations().iter().map(|o| (o.spec, o.operation_id)).collect();
    let table = coverage::report_markdown(&contract, implemented, &records);
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(out, &table).map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    Ok(table)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("twilio-sim-coverage: {error}");
            ExitCode::FAILURE
        }
    }
}
