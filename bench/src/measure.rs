//! What a scenario measured, as written to `bench-N.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use twilio_sim::{RequestRecord, SimHandle};

use crate::operator::{is_write, ProcStats, Scrape};

/// The figures of one scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scenario {
    /// `cold-start`, `rest`, `restart`, `steady`, `rotation`, `drift`.
    pub name: String,
    /// The channels the scenario concerns (all, or the rotated or drifted ones).
    pub channels: usize,
    /// Wall time of the scenario's measured part, seconds (to all Ready, to all restored, …).
    pub wall_secs: f64,
    /// Per channel: the median and 99th percentile of its time to Ready, seconds.
    pub p50_secs: Option<f64>,
    /// See `p50_secs`.
    pub p99_secs: Option<f64>,
    /// Twilio requests by operation (the simulator's route, named like the spec's operationId).
    pub twilio: BTreeMap<String, u64>,
    /// Twilio writes (POST, DELETE).
    pub twilio_writes: u64,
    /// Twilio answers 429.
    pub twilio_429: u64,
    /// The operator's Kubernetes API requests by `verb resource`.
    pub kube: BTreeMap<String, u64>,
    /// Of which writes.
    pub kube_writes: u64,
    /// Reconcile passes.
    pub reconciles: u64,
    /// The operator's peak RSS in the scenario, MiB.
    pub peak_rss_mib: f64,
    /// The operator's CPU time in the scenario, seconds.
    pub cpu_secs: f64,
    /// The scenario's length used for rates (e.g. the rest window), seconds.
    pub window_secs: f64,
    /// Rotation only: the verifications (account fetches) of the rotated account; the other
    /// accounts' periodic ones fall into the window too.
    #[serde(default)]
    pub rotated_account_fetches: Option<u64>,
}

/// Counts the simulator's log from sequence number `after` on (exclusive).
pub fn twilio_counts(records: &[RequestRecord], after: u64) -> (BTreeMap<String, u64>, u64, u64) {
    let mut by_op = BTreeMap::new();
    let (mut writes, mut limited) = (0, 0);
    for r in records.iter().filter(|r| r.seq > after) {
        *by_op.entry(r.route.clone().unwrap_or_else(|| format!("{} {}", r.method, r.path))).or_insert(0) += 1;
        if r.is_write() {
            writes += 1;
        }
        if r.status == Some(429) {
            limited += 1;
        }
    }
    (by_op, writes, limited)
}

/// The last sequence number of the simulator's log.
pub fn last_seq(sim: &SimHandle) -> u64 {
    sim.requests().last().map_or(0, |r| r.seq)
}

/// Fills the Twilio, Kubernetes and process figures of `s` from the counts taken at its start.
pub fn fill(s: &mut Scenario, sim: &SimHandle, seq_before: u64, scrape: &Scrape, stats: (ProcStats, ProcStats)) {
    let (twilio, writes, limited) = twilio_counts(&sim.requests(), seq_before);
    s.twilio = twilio;
    s.twilio_writes = writes;
    s.twilio_429 = limited;
    s.kube = scrape.kube.clone();
    s.kube_writes = scrape.kube.iter().filter(|(k, _)| is_write(k)).map(|(_, v)| v).sum();
    s.reconciles = scrape.reconciles;
    s.peak_rss_mib = stats.1.peak_rss as f64 / (1024.0 * 1024.0);
    s.cpu_secs = (stats.1.cpu_secs - stats.0.cpu_secs).max(0.0);
}

/// The `q` quantile (0..=1) of `times`, seconds.
pub fn quantile(times: &[Duration], q: f64) -> Option<f64> {
    if times.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let t: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
        assert_eq!(quantile(&t, 0.5), Some(50.0));
        assert_eq!(quantile(&t, 0.99), Some(99.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
