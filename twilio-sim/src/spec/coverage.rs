//! Coverage of Twilio's operations: which ones the simulator implements, which ones the
//! operator calls, and which statuses tests exercised.
//!
//! When `TWILIO_SIM_COVERAGE_FILE` is set, the simulator appends one JSON line per Twilio
//! request ([`record`]); `twilio-sim-coverage` (or `hack/twilio-coverage.sh`) turns the file
//! into a Markdown table ([`report_markdown`]), with one row per operation of the simulator's
//! router (`crate::implemented_operations`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Contract, OperationRef};

/// Environment variable naming the JSONL file [`record`] appends to.
pub const COVERAGE_FILE_ENV: &str = "TWILIO_SIM_COVERAGE_FILE";

/// The `User-Agent` prefix of the operator's Twilio client.
pub const OPERATOR_USER_AGENT_PREFIX: &str = "whatsapp-operator/";

/// One line of the coverage file: a Twilio request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageRecord {
    /// The spec file's stem, e.g. `twilio_api_v2010`.
    pub spec: String,
    /// The OpenAPI `operationId`.
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// The templated spec path.
    pub path_template: String,
    /// The HTTP status the simulator answered.
    pub status: u16,
    /// The request's `User-Agent`, if any.
    pub user_agent: Option<String>,
}

impl CoverageRecord {
    /// Whether the operator (not a test client) sent the request.
    pub fn from_operator(&self) -> bool {
        self.user_agent.as_deref().is_some_and(|ua| ua.starts_with(OPERATOR_USER_AGENT_PREFIX))
    }
}

/// Why a coverage file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    /// A line is not a [`CoverageRecord`].
    #[error("line {line}: {source}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// Appends one record to `$TWILIO_SIM_COVERAGE_FILE`, if set. Call it once per Twilio request,
/// right after `Contract::check_response`. Failures are logged, never raised.
pub fn record(op: &OperationRef, status: u16, user_agent: Option<&str>) {
    let Some(path) = std::env::var_os(COVERAGE_FILE_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    if let Err(error) = record_to(Path::new(&path), op, status, user_agent) {
        tracing::warn!(%error, path = %Path::new(&path).display(), "cannot append to the Twilio coverage file");
    }
}

/// Appends one record to `path` as a single `write` (concurrent test processes do not interleave).
pub fn record_to(path: &Path, op: &OperationRef, status: u16, user_agent: Option<&str>) -> std::io::Result<()> {
    let line = CoverageRecord {
        spec: op.spec.clone(),
        operation_id: op.operation_id.clone(),
        method: op.method.clone(),
        path_template: op.path_template.clone(),
        status,
        user_agent: user_agent.map(str::to_string),
    };
    let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&bytes)
}

/// Parses a coverage file's text (blank lines are skipped).
pub fn parse_records(jsonl: &str) -> Result<Vec<CoverageRecord>, CoverageError> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|source| CoverageError::BadLine { line: i + 1, source }))
        .collect()
}

#[derive(Default)]
struct Tally {
    requests: usize,
    operator_requests: usize,
    statuses: BTreeMap<u16, usize>,
    operator_statuses: BTreeSet<u16>,
}

/// Renders the coverage table: one row per implemented operation, given as (spec stem,
/// operationId), and one per operation that was requested without being implemented.
pub fn report_markdown<'a>(
    contract: &Contract,
    implemented: impl IntoIterator<Item = (&'a str, &'a str)>,
    records: &[CoverageRecord],
) -> String {
    let implemented: Vec<(&str, &str)> = implemented.into_iter().collect();
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for r in records {
        let tally = tallies.entry((r.spec.clone(), r.operation_id.clone())).or_default();
        tally.requests += 1;
        *tally.statuses.entry(r.status).or_default() += 1;
        if r.from_operator() {
            tally.operator_requests += 1;
            tally.operator_statuses.insert(r.status);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# Twilio API coverage\n");
    let _ = writeln!(
        out,
        "Specs: twilio-oai {} ({}). {} requests recorded.\n",
        super::SPEC_VERSION,
        contract.dir().display(),
        records.len()
    );
    let _ = writeln!(out, "| Operation | Spec | Method | Path | Operator calls it | Requests | Statuses exercised |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut exercised = 0;
    let mut by_operator = 0;
    for (spec, id) in &implemented {
        let key = (spec.to_string(), id.to_string());
        let tally = tallies.remove(&key).unwrap_or_default();
        exercised += usize::from(tally.requests > 0);
        by_operator += usize::from(tally.operator_requests > 0);
        let (method, path) = match contract.operation(spec, id) {
            Some(op) => (op.method, op.path_template),
            None => ("?".to_string(), "(not in the spec)".to_string()),
        };
        row(&mut out, id, spec, &method, &path, &tally);
    }
    for ((spec, id), tally) in &tallies {
        let (method, path) = contract
            .operation(spec, id)
            .map_or_else(|| ("?".to_string(), "(not in the spec)".to_string()), |op| (op.method, op.path_template));
        row(&mut out, &format!("{id} (not implemented)"), spec, &method, &path, tally);
    }
    let _ = writeln!(
        out,
        "\n{exercised} of {} implemented operations exercised by tests; {by_operator} called by the operator \
         (User-Agent `{OPERATOR_USER_AGENT_PREFIX}*`).",
        implemented.len()
    );
    out
}

fn row(out: &mut String, id: &str, spec: &str, method: &str, path: &str, tally: &Tally) {
    let operator = if tally.operator_requests > 0 {
        let statuses: Vec<String> = tally.operator_statuses.iter().map(u16::to_string).collect();
        format!("yes ({}; {})", tally.operator_requests, statuses.join(", "))
    } else {
        "no".to_string()
    };
    let statuses = if tally.statuses.is_empty() {
        "—".to_string()
    } else {
        tally.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(out, "| {id} | {spec} | {method} | `{path}` | {operator} | {} | {statuses} |", tally.requests);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_report() {
        let contract = super::super::tests::contract();
        let dir = std::env::temp_dir().join(format!("twilio-coverage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("coverage.jsonl");
        let _ = std::fs::remove_file(&file);
        let fetch = contract.operation("twilio_api_v2010", "FetchAccount").expect("FetchAccount");
        record_to(&file, &fetch, 200, Some("whatsapp-operator/0.1.0")).expect("append");
        record_to(&file, &fetch, 401, None).expect("append");
        let update = contract.operation("twilio_api_v2010", "UpdateAccount").expect("UpdateAccount");
        record_to(&file, &update, 200, Some("reqwest")).expect("append");
        let text = std::fs::read_to_string(&file).expect("read");
        let records = parse_records(&text).expect("parse");
        assert_eq!(records.len(), 3);
        assert!(records[0].from_operator() && !records[1].from_operator());
        let implemented = [("twilio_api_v2010", "FetchAccount"), ("twilio_messaging_v2", "DeleteChannelsSender")];
        let table = report_markdown(&contract, implemented, &records);
        assert!(
            table.contains(
                "| FetchAccount | twilio_api_v2010 | GET | `/2010-04-01/Accounts/{Sid}.json` | yes (1; 200) | 2 | 200×1, 401×1 |"
            ),
            "{table}"
        );
        assert!(table.contains("| UpdateAccount (not implemented) |"), "{table}");
        assert!(table.contains("| DeleteChannelsSender | twilio_messaging_v2 | DELETE |"), "{table}");
        assert!(
            table.contains("1 of 2 implemented operations exercised by tests; 1 called by the operator"),
            "{table}"
        );
        assert!(parse_records("{\"spec\":1}\n").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
