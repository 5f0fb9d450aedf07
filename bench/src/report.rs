//! The report: every run's figures with their ratios to the floors, the targets marked pass or
//! fail, the growth between consecutive N, and a chart of time to Ready against N.

use std::fmt::Write as _;
use std::path::Path;

use crate::measure::Scenario;
use crate::run::RunResult;
use crate::Result;

/// Time to Ready may take at most this many times the larger floor.
pub const TIME_FACTOR: f64 = 1.5;
/// API writes per new channel, Events included.
pub const WRITES_PER_NEW_CHANNEL: f64 = 8.0;
/// Peak RSS at 10,000 channels, MiB.
pub const RSS_LIMIT_MIB: f64 = 100.0;
/// CPU at rest, share of one core.
pub const REST_CPU: f64 = 0.01;

/// One judged target.
#[derive(Clone, Debug)]
pub struct Target {
    /// Channels.
    pub n: usize,
    /// What is judged.
    pub what: String,
    /// The figure.
    pub value: f64,
    /// Its limit.
    pub limit: f64,
}

impl Target {
    fn passed(&self) -> bool {
        self.value <= self.limit + 1e-9
    }
}

fn scenario<'a>(r: &'a RunResult, name: &str) -> Option<&'a Scenario> {
    r.scenarios.iter().find(|s| s.name == name)
}

fn count(s: &Scenario, op: &str) -> f64 {
    s.twilio.get(op).copied().unwrap_or(0) as f64
}

/// The per-account alerts listing (Monitor API, `ReceiverHealthy`): not a per-channel call,
/// judged on its own per account and interval.
const ALERT_LISTING: &str = "ListAlert";

/// Twilio calls that grow with the channels: every operation but the per-account alerts listing.
fn total_twilio(s: &Scenario) -> f64 {
    s.twilio.iter().filter(|(op, _)| op.as_str() != ALERT_LISTING).map(|(_, v)| *v).sum::<u64>() as f64
}

fn api_reads(s: &Scenario) -> f64 {
    s.kube.iter().filter(|(k, _)| k.starts_with("get ") || k.starts_with("list ")).map(|(_, v)| *v).sum::<u64>() as f64
}

/// Listing pages per account and interval allowed: one per 1,000 senders.
fn pages(r: &RunResult) -> f64 {
    r.senders_per_account.div_ceil(1000).max(1) as f64
}

/// The targets of one run.
pub fn targets(r: &RunResult) -> Vec<Target> {
    let n = r.channels;
    let nf = n as f64;
    let accounts = r.accounts as f64;
    let mut t = Vec::new();
    let mut push = |what: &str, value: f64, limit: f64| t.push(Target { n, what: what.into(), value, limit });
    if let Some(cold) = scenario(r, "cold-start") {
        let floor = r.floors.twilio_secs.max(r.floors.api_secs);
        push("cold start: time to all Ready ÷ larger floor", cold.wall_secs / floor.max(1e-9), TIME_FACTOR);
        // Every channel needs a webhook write: ≤ 2 calls each; a confirmation adds a send and at
        // most 2 status reads; per account one verification and the listing pages.
        let confirmations = (nf / 2.0).ceil();
        let allowed = 2.0 * nf + 3.0 * confirmations + accounts * (1.0 + pages(r));
        push("cold start: Twilio calls per channel", total_twilio(cold) / nf, allowed / nf);
        push("cold start: verifications per account", count(cold, "FetchAccount") / accounts, 1.0);
        push("cold start: sender-listing pages per account", count(cold, "ListChannelsSender") / accounts, pages(r));
        push(
            "cold start: API writes per new channel (Events included)",
            cold.kube_writes as f64 / nf,
            WRITES_PER_NEW_CHANNEL,
        );
        push("cold start: Twilio 429s", cold.twilio_429 as f64, 0.0);
        // Its operator lists alerts every hour: once at start, once more if an hour passes.
        push("cold start: alert listings per account", count(cold, ALERT_LISTING) / accounts, 2.0);
    }
    if let Some(rest) = scenario(r, "rest") {
        push("rest: CPU, share of one core", rest.cpu_secs / rest.window_secs.max(1e-9), REST_CPU);
        push("rest: Twilio requests", total_twilio(rest), 0.0);
        push("rest: alert listings per account", count(rest, ALERT_LISTING) / accounts, 1.0);
        push("rest: API writes", rest.kube_writes as f64, 0.0);
    }
    if let Some(s) = scenario(r, "restart") {
        let allowed = nf + accounts * (1.0 + pages(r));
        push("restart: Twilio calls per channel (already wired)", total_twilio(s) / nf, allowed / nf);
        push("restart: Twilio writes", s.twilio_writes as f64, 0.0);
        push("restart: alert listings per account", count(s, ALERT_LISTING) / accounts, 2.0);
        push("restart: API writes", s.kube_writes as f64, 0.0);
    }
    if let Some(s) = scenario(r, "steady") {
        let intervals = (s.window_secs / r.verify_interval_secs.max(1e-9)).max(1.0);
        let allowed = nf + accounts * (1.0 + pages(r));
        push("steady: Twilio calls per channel and interval", total_twilio(s) / nf / intervals, allowed / nf);
        push("steady: verifications per account and interval", count(s, "FetchAccount") / accounts / intervals, 1.0);
        push(
            "steady: listing pages per account and interval",
            count(s, "ListChannelsSender") / accounts / intervals,
            pages(r),
        );
        push(
            "steady: alert listings per account and interval",
            count(s, ALERT_LISTING) / accounts / intervals,
            1.0 + 1.0 / intervals,
        );
        push("steady: Twilio writes", s.twilio_writes as f64, 0.0);
        push("steady: API writes", s.kube_writes as f64, 0.0);
    }
    if let Some(s) = scenario(r, "rotation") {
        // The new credentials' verification, and the old ones' periodic check if it falls due.
        let rotated = s.rotated_account_fetches.map_or_else(|| count(s, "FetchAccount"), |n| n as f64);
        push(
            "rotation: verifications of the rotated account",
            rotated,
            1.0 + (s.wall_secs / r.verify_interval_secs).ceil(),
        );
        push("rotation: Twilio writes", s.twilio_writes as f64, 0.0);
    }
    if let Some(s) = scenario(r, "drift") {
        push("drift: Twilio writes per drifted webhook", s.twilio_writes as f64 / s.channels.max(1) as f64, 1.0);
    }
    if n >= 10_000 {
        let peak = r.scenarios.iter().map(|s| s.peak_rss_mib).fold(0.0, f64::max);
        push("peak RSS, MiB (10,000 channels and 10,000 unrelated Secrets)", peak, RSS_LIMIT_MIB);
    }
    t
}

/// Growth between consecutive runs: each figure's ratio, which may be at most the ratio of N.
pub fn growth(runs: &[RunResult]) -> Vec<Target> {
    let mut t = Vec::new();
    for w in runs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let limit = b.channels as f64 / a.channels as f64;
        let figures = |r: &RunResult| {
            let cold = scenario(r, "cold-start");
            (
                cold.map_or(0.0, |s| s.wall_secs),
                cold.map_or(0.0, total_twilio),
                r.scenarios.iter().map(|s| s.peak_rss_mib).fold(0.0, f64::max),
            )
        };
        let (fa, fb) = (figures(a), figures(b));
        for (what, x, y) in [("time to all Ready", fa.0, fb.0), ("Twilio calls", fa.1, fb.1), ("peak RSS", fa.2, fb.2)]
        {
            t.push(Target {
                n: b.channels,
                what: format!("growth {} → {}: {what}", a.channels, b.channels),
                value: y / x.max(1e-9),
                limit,
            });
        }
    }
    t
}

/// Renders `report.md` and `time-to-ready.svg` into `dir`, prints the report; whether every
/// target passed.
pub fn render(dir: &Path) -> Result<bool> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("bench-") && name.ends_with(".json") {
            runs.push(serde_json::from_str::<RunResult>(&std::fs::read_to_string(&path)?)?);
        }
    }
    if runs.is_empty() {
        return Err(format!("no bench-*.json in {} (run `make bench` first)", dir.display()).into());
    }
    runs.sort_by_key(|r| r.channels);
    let (md, passed) = markdown(&runs);
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("time-to-ready.svg"), svg(&runs))?;
    println!("{md}");
    println!("written: {0}/report.md, {0}/time-to-ready.svg", dir.display());
    Ok(passed)
}

fn markdown(runs: &[RunResult]) -> (String, bool) {
    let mut md = String::new();
    let first = &runs[0];
    let _ = writeln!(md, "## Benchmark\n");
    let _ = writeln!(
        md,
        "Machine: {}. Twilio latency {} ms per request, {} in flight per account, {} accounts; operator `--concurrency {}`; verify interval 1 h in the cold start and restart, {} s in the steady, rotation and drift scenarios.\n",
        first.machine, first.latency_ms, first.in_flight, first.accounts, first.concurrency, first.verify_interval_secs
    );
    let _ = writeln!(md, "| N | scenario | wall s | p50 s | p99 s | floor s | × floor | Twilio calls/ch | Twilio writes | 429s | API reads/ch | API writes/ch | peak RSS MiB | × mem floor | CPU s |");
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        for s in &r.scenarios {
            let per = s.channels.max(1) as f64;
            let floor = (s.name == "cold-start").then(|| r.floors.twilio_secs.max(r.floors.api_secs));
            let opt = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} | {} | {} | {} | {:.2} | {} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} |",
                r.channels,
                s.name,
                s.wall_secs.max(s.window_secs),
                opt(s.p50_secs),
                opt(s.p99_secs),
                opt(floor),
                opt(floor.map(|f| s.wall_secs / f.max(1e-9))),
                total_twilio(s) / per,
                s.twilio_writes,
                s.twilio_429,
                api_reads(s) / per,
                s.kube_writes as f64 / per,
                s.peak_rss_mib,
                s.peak_rss_mib / r.floors.memory_mib.max(1e-9),
                s.cpu_secs,
            );
        }
    }
    let _ = writeln!(md, "\nFloors (same run): \n");
    let _ = writeln!(md, "| N | Twilio floor s | fewest Twilio calls/ch | API-server floor s | memory floor MiB |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    for r in runs {
        let f = &r.floors;
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.channels, f.twilio_secs, f.twilio_calls_per_channel, f.api_secs, f.memory_mib
        );
    }
    let mut all: Vec<Target> = runs.iter().flat_map(targets).collect();
    all.extend(growth(runs));
    let passed = all.iter().all(Target::passed);
    let _ = writeln!(md, "\nTargets:\n");
    let _ = writeln!(md, "| N | target | value | limit | |");
    let _ = writeln!(md, "|---:|---|---:|---:|---|");
    for t in &all {
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.3} | {} |",
            t.n,
            t.what,
            t.value,
            t.limit,
            if t.passed() { "pass" } else { "**FAIL**" }
        );
    }
    let failed = all.iter().filter(|t| !t.passed()).count();
    let _ = writeln!(md, "\n{} of {} targets pass.", all.len() - failed, all.len());
    (md, passed)
}

/// Time to all Ready against N (log–log), with both floors and the 1.5 × limit.
fn svg(runs: &[RunResult]) -> String {
    let (w, h, pad) = (720.0, 420.0, 60.0);
    let xs: Vec<f64> = runs.iter().map(|r| (r.channels as f64).log10()).collect();
    let series: Vec<(&str, &str, &str, Vec<f64>)> = vec![
        (
            "operator: time to all Ready",
            "#d62728",
            "",
            runs.iter().map(|r| scenario(r, "cold-start").map_or(0.0, |s| s.wall_secs)).collect(),
        ),
        ("API-server floor", "#1f77b4", "", runs.iter().map(|r| r.floors.api_secs).collect()),
        ("Twilio floor", "#2ca02c", "", runs.iter().map(|r| r.floors.twilio_secs).collect()),
        (
            "limit: 1.5 × larger floor",
            "#7f7f7f",
            "6,4",
            runs.iter().map(|r| TIME_FACTOR * r.floors.api_secs.max(r.floors.twilio_secs)).collect(),
        ),
    ];
    let all: Vec<f64> = series.iter().flat_map(|s| s.3.iter().copied()).filter(|v| *v > 0.0).collect();
    let lo = all.iter().copied().fold(f64::MAX, f64::min).max(1e-3).log10().floor();
    let hi = all.iter().copied().fold(0.0, f64::max).max(1e-3).log10().ceil().max(lo + 1.0);
    let (x0, x1) = (xs.first().copied().unwrap_or(2.0), xs.last().copied().unwrap_or(4.0).max(xs[0] + 1.0));
    let px = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let py = |v: f64| h - pad - (v.max(1e-3).log10() - lo) / (hi - lo) * (h - 2.0 * pad);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(s, "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Cold start: time to all Ready against N (log–log)</text>", w / 2.0);
    for d in (lo as i32)..=(hi as i32) {
        let y = py(10f64.powi(d));
        let _ = writeln!(s, "<line x1=\"{pad}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", w - pad, pad - 6.0, y + 4.0, fmt_pow(d));
    }
    for r in runs {
        let x = px((r.channels as f64).log10());
        let _ = writeln!(s, "<line x1=\"{x}\" x2=\"{x}\" y1=\"{pad}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">N = {}</text>", h - pad, h - pad + 18.0, r.channels);
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">seconds</text>",
        h / 2.0,
        h / 2.0
    );
    for (i, (label, color, dash, ys)) in series.iter().enumerate() {
        let points: Vec<String> = xs.iter().zip(ys).map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>");
        }
        let ly = pad + 16.0 * i as f64;
        let _ = writeln!(s, "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\">{label}</text>", pad + 10.0, pad + 34.0, pad + 40.0, ly + 4.0);
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_pow(d: i32) -> String {
    let v = 10f64.powi(d);
    if d < 0 {
        format!("{v}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Floors;

    fn run_with(n: usize, cold_secs: f64, writes: u64) -> RunResult {
        let mut cold = Scenario { name: "cold-start".into(), channels: n, wall_secs: cold_secs, ..Default::default() };
        cold.kube_writes = writes;
        cold.twilio.insert("FetchAccount".into(), 10);
        cold.twilio.insert("ListChannelsSender".into(), 10);
        RunResult {
            channels: n,
            accounts: 10,
            senders_per_account: n / 10,
            floors: Floors { twilio_secs: 1.0, api_secs: 10.0, ..Default::default() },
            scenarios: vec![cold],
            ..Default::default()
        }
    }

    #[test]
    fn the_alerts_listing_is_judged_per_account_not_per_channel() {
        let mut r = run_with(100, 14.0, 500);
        r.scenarios[0].twilio.insert(ALERT_LISTING.into(), 10);
        let calls = total_twilio(&r.scenarios[0]);
        assert_eq!(calls, 20.0, "not counted as a per-channel call");
        let t = targets(&r);
        let listing = t.iter().find(|t| t.what == "cold start: alert listings per account").expect("target");
        assert_eq!(listing.value, 1.0);
        assert!(listing.value <= listing.limit);
    }

    #[test]
    fn time_is_judged_against_the_larger_floor() {
        let ok = targets(&run_with(100, 14.0, 500));
        assert!(ok.iter().find(|t| t.what.starts_with("cold start: time")).is_some_and(Target::passed));
        let slow = targets(&run_with(100, 16.0, 500));
        assert!(!slow.iter().find(|t| t.what.starts_with("cold start: time")).is_some_and(Target::passed));
        let chatty = targets(&run_with(100, 1.0, 900));
        assert!(!chatty.iter().find(|t| t.what.contains("API writes per new channel")).is_some_and(Target::passed));
    }

    #[test]
    fn growth_may_at_most_follow_n() {
        let g = growth(&[run_with(100, 10.0, 1), run_with(1000, 90.0, 1)]);
        assert!(g.iter().find(|t| t.what.ends_with("time to all Ready")).is_some_and(Target::passed));
        let g = growth(&[run_with(100, 1.0, 1), run_with(1000, 11.0, 1)]);
        assert!(!g.iter().find(|t| t.what.ends_with("time to all Ready")).is_some_and(Target::passed));
    }

    #[test]
    fn the_chart_has_a_line_per_series() {
        let svg = svg(&[run_with(100, 10.0, 1), run_with(1000, 90.0, 1)]);
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("N = 1000"));
    }
}
