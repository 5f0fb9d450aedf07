//! One run with N channels: the fleet set up, the floors taken, each scenario measured in
//! order (cold start, rest, restart, steady state, Secret rotation, drift), `bench-N.json`
//! written.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;
use twilio_sim::{FaultAction, FaultRule, SimConfig, SimHandle, Simulator};
use whatsapp_operator::api::WhatsAppChannel;

use crate::fleet::{self, Fleet, CREDENTIALS_SECRET};
use crate::measure::{self, last_seq, quantile, Scenario};
use crate::operator::{Launch, Operator, ProcStats};
use crate::ready::{key, Tracker};
use crate::{floors, Result};

/// `whatsapp-bench run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Channels in the fleet.
    #[arg(long)]
    pub channels: usize,
    /// Twilio accounts the channels are spread over.
    #[arg(long, default_value_t = 10)]
    pub accounts: usize,
    /// The simulator's latency per request, milliseconds.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// The simulator's in-flight limit per account (429 beyond).
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// The operator's `--concurrency` (the API floor's too).
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// The operator's release binary (default: next to this binary).
    #[arg(long)]
    pub operator: Option<PathBuf>,
    /// kubectl (for the client-side applied unrelated Secrets).
    #[arg(long, default_value = "kubectl")]
    pub kubectl: PathBuf,
    /// Where `bench-N.json` and the logs go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// The verification interval of the restart, steady-state, rotation and drift scenarios
    /// (the cold start uses 1 h, so that it measures only the first passes).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub verify_interval: Duration,
    /// How many verification intervals the steady state lasts.
    #[arg(long, default_value_t = 3)]
    pub intervals: u32,
    /// Unrelated 4 KiB Secrets in the cluster (default: as many as channels).
    #[arg(long)]
    pub unrelated_secrets: Option<usize>,
    /// How long CPU at rest is measured.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub rest: Duration,
    /// Stop after the cold start, rest and a restart, without the floors, and write
    /// `cold-N.json` instead of `bench-N.json` (quick iterations on time to Ready and on the
    /// two memory peaks; the report ignores it).
    #[arg(long)]
    pub cold_only: bool,
}

/// The floors of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Floors {
    /// Twilio floor of the cold start, seconds.
    pub twilio_secs: f64,
    /// The fewest Twilio calls per channel of a cold start.
    pub twilio_calls_per_channel: f64,
    /// API-server floor of the cold start's writes, seconds.
    pub api_secs: f64,
    /// The writes the API-server floor replays: the operator's, by `verb resource`, until all
    /// channels were Ready.
    #[serde(default)]
    pub api_writes: std::collections::BTreeMap<String, u64>,
    /// Memory floor, MiB.
    pub memory_mib: f64,
}

/// Everything `bench-N.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// Channels.
    pub channels: usize,
    /// Accounts.
    pub accounts: usize,
    /// Senders per account at the simulator.
    pub senders_per_account: usize,
    /// Unrelated Secrets.
    pub unrelated_secrets: usize,
    /// Twilio latency, ms.
    pub latency_ms: u64,
    /// Twilio in-flight limit per account.
    pub in_flight: usize,
    /// The operator's concurrency.
    pub concurrency: u16,
    /// The verify interval of the later scenarios, seconds.
    pub verify_interval_secs: f64,
    /// Intervals of the steady state.
    pub intervals: u32,
    /// The machine (CPU model and count, memory, kernel).
    pub machine: String,
    /// Time to create the fleet (not judged), seconds.
    pub setup_secs: f64,
    /// The floors.
    pub floors: Floors,
    /// The scenarios, in order.
    pub scenarios: Vec<Scenario>,
}

/// How long a fleet may take to reach a state before the run fails.
fn patience(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64 / 10)
}

/// Runs everything with `args.channels` channels.
pub async fn run(args: RunArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let n = args.channels;
    let client = Client::try_default().await?;
    let fleet = Fleet::new(n, args.accounts);
    let keys: Vec<String> = fleet.channels.iter().map(|c| key(&c.namespace, &c.name)).collect();
    let mut result = RunResult {
        channels: n,
        accounts: args.accounts,
        senders_per_account: fleet.senders_per_account(),
        unrelated_secrets: args.unrelated_secrets.unwrap_or(n),
        latency_ms: args.latency_ms,
        in_flight: args.in_flight,
        concurrency: args.concurrency,
        verify_interval_secs: args.verify_interval.as_secs_f64(),
        intervals: args.intervals,
        machine: machine(),
        ..Default::default()
    };
    let say = |s: &str| eprintln!("bench[{n}]: {s}");

    // The simulator, in this process: latency on every Twilio request, a per-account limit.
    let sim = Simulator::start(SimConfig::default()).await?;
    fleet.seed(&sim)?;
    sim.add_fault(FaultRule::new(FaultAction::Latency { ms: args.latency_ms }))?;
    sim.set_concurrency_limit(None, Some(args.in_flight));
    let latency = Duration::from_millis(args.latency_ms);
    (result.floors.twilio_secs, result.floors.twilio_calls_per_channel) =
        floors::twilio_floor(&fleet, latency, args.in_flight);

    say("installing CRDs, creating the fleet");
    let started = Instant::now();
    let crds = whatsapp_operator::crdgen::crds_yaml()?;
    fleet::install_crds(&client, &crds).await?;
    fleet::install_crds(&client, &floors::floor_crds(&crds)?).await?;
    fleet.create_namespaces(&client).await?;
    let unrelated = result.unrelated_secrets;
    let took =
        fleet::create_unrelated_secrets(&fleet, unrelated, &args.kubectl, &args.out.join(format!("secrets-{n}")))?;
    say(&format!("{unrelated} unrelated Secrets applied with kubectl in {:.1} s", took.as_secs_f64()));
    let took = fleet.create_channels(&client, "https://crm.bench.example/api/webhook").await?;
    say(&format!("{n} channels created in {:.1} s", took.as_secs_f64()));
    result.setup_secs = started.elapsed().as_secs_f64();

    let tracker = Tracker::start(&client);
    tracker.wait_until(patience(n), "the bench's watch to list the fleet", |chs| chs.len() >= n).await?;
    let binary = args.operator.clone().unwrap_or_else(crate::operator::default_binary);
    let launch = |interval: Duration, log: &str| Launch {
        binary: binary.clone(),
        sim_url: sim.base_url().to_owned(),
        concurrency: args.concurrency,
        verify_interval: interval,
        log: args.out.join(format!("operator-{n}-{log}.log")),
    };

    // Cold start: the fleet exists, the operator starts.
    say("cold start");
    let seq = last_seq(&sim);
    tracker.mark();
    let started = Instant::now();
    let op = Operator::start(&launch(Duration::from_secs(3600), "cold")).await?;
    let times = tracker.wait_ready(&keys, patience(n)).await?;
    let wall = started.elapsed().as_secs_f64();
    // The writes made until all were Ready: what the API-server floor replays.
    let until_ready = op.scrape().await?;
    quiesce(&sim, &op).await?;
    let mut cold = Scenario { name: "cold-start".into(), channels: n, wall_secs: wall, ..Default::default() };
    cold.p50_secs = quantile(&times, 0.5);
    cold.p99_secs = quantile(&times, 0.99);
    measure::fill(&mut cold, &sim, seq, &op.scrape().await?, (ProcStats::default(), op.stats()?));
    say(&format!("all {n} Ready in {wall:.1} s"));

    // Rest: nothing is due; CPU and requests over a window.
    let rest = window(&sim, &op, "rest", n, args.rest).await?;
    op.stop()?;
    if args.cold_only {
        let restart = restart(&sim, n, &launch).await?;
        say(&format!(
            "cold start: peak RSS {:.1} MiB, CPU {:.2} s; rest: peak RSS {:.1} MiB; restart: peak RSS {:.1} MiB",
            cold.peak_rss_mib, cold.cpu_secs, rest.peak_rss_mib, restart.peak_rss_mib
        ));
        result.scenarios = vec![cold, rest, restart];
        let path = args.out.join(format!("cold-{n}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
        say(&format!("wrote {}", path.display()));
        return Ok(());
    }

    say("floors: memory, API server");
    result.floors.memory_mib = floors::memory_floor()?;
    let sample = Api::<WhatsAppChannel>::namespaced(client.clone(), &fleet.channels[0].namespace)
        .get_status(&fleet.channels[0].name)
        .await?;
    let status = serde_json::to_value(&sample.status)?;
    result.floors.api_writes = until_ready.kube.into_iter().filter(|(k, _)| crate::operator::is_write(k)).collect();
    result.floors.api_secs =
        floors::api_floor(&client, &fleet, &result.floors.api_writes, &status, usize::from(args.concurrency)).await?;

    let restart = restart(&sim, n, &launch).await?;

    // Steady state over several (shortened) intervals: every channel is due at once when the
    // process starts; the window begins once each has been verified.
    say("steady state");
    let op = Operator::start(&launch(args.verify_interval, "steady")).await?;
    wait_reconciled(&op, n as u64, patience(n)).await?;
    let steady = window(&sim, &op, "steady", n, args.verify_interval * args.intervals).await?;

    // A Secret rotation: account 0's token changes at Twilio and in its Secret.
    say("Secret rotation");
    let rotation = rotate(&sim, &client, &fleet, &tracker, &op).await?;

    // Drift: 1 % of the webhooks cleared at Twilio behind the operator's back.
    say("drift");
    let drift = drift(&sim, &fleet, &op, args.verify_interval).await?;
    op.stop()?;

    result.scenarios = vec![cold, rest, restart, steady, rotation, drift];
    let path = args.out.join(format!("bench-{n}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    say(&format!("wrote {}", path.display()));
    Ok(())
}

/// Restart with all Ready (the cold start's interval): every channel is looked at once.
async fn restart(sim: &SimHandle, n: usize, launch: impl Fn(Duration, &str) -> Launch) -> Result<Scenario> {
    eprintln!("bench[{n}]: restart");
    let seq = last_seq(sim);
    let started = Instant::now();
    let op = Operator::start(&launch(Duration::from_secs(3600), "restart")).await?;
    wait_reconciled(&op, n as u64, patience(n)).await?;
    let wall = started.elapsed().as_secs_f64();
    quiesce(sim, &op).await?;
    let mut restart = Scenario { name: "restart".into(), channels: n, wall_secs: wall, ..Default::default() };
    measure::fill(&mut restart, sim, seq, &op.scrape().await?, (ProcStats::default(), op.stats()?));
    op.stop()?;
    Ok(restart)
}

/// A scenario that is a stretch of time: counts over `length`.
async fn window(sim: &SimHandle, op: &Operator, name: &str, n: usize, length: Duration) -> Result<Scenario> {
    let seq = last_seq(sim);
    let before = op.scrape().await?;
    op.reset_peak()?;
    let stats = op.stats()?;
    tokio::time::sleep(length).await;
    let mut s = Scenario { name: name.into(), channels: n, window_secs: length.as_secs_f64(), ..Default::default() };
    measure::fill(&mut s, sim, seq, &op.scrape().await?.since(&before), (stats, op.stats()?));
    Ok(s)
}

/// Waits until the operator has made no Twilio request and no reconcile for 10 s (a
/// confirmation's status is read 5 s after it was sent), at most 2 minutes.
async fn quiesce(sim: &SimHandle, op: &Operator) -> Result<()> {
    let quiet = Duration::from_secs(10);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (last_seq(sim), op.scrape().await?.reconciles);
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        if Instant::now() > deadline {
            return Err("the operator did not go quiet within 2 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (last_seq(sim), op.scrape().await?.reconciles);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok(())
}

/// Waits until the operator has reconciled `n` times.
async fn wait_reconciled(op: &Operator, n: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while op.scrape().await?.reconciles < n {
        if Instant::now() > deadline {
            return Err(format!("fewer than {n} reconciles within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Rotates account 0's auth token at the simulator and in its Secret; measured until each of
/// its channels has verified the new credentials and is Ready.
async fn rotate(sim: &SimHandle, client: &Client, fleet: &Fleet, tracker: &Tracker, op: &Operator) -> Result<Scenario> {
    let account = &fleet.accounts[0];
    let keys: Vec<String> = fleet.of_account(0).map(|c| key(&c.namespace, &c.name)).collect();
    let old: Vec<Option<String>> = keys.iter().map(|k| tracker.seen(k).and_then(|s| s.verified_inputs)).collect();
    let seq = last_seq(sim);
    let before = op.scrape().await?;
    op.reset_peak()?;
    let stats = op.stats()?;
    let token = format!("{:032x}", 0x0707_0000_u128);
    tracker.mark();
    let started = Instant::now();
    sim.rotate_auth_token(&account.sid, Some(token.clone()))?;
    let patch = json!({"stringData": {"authToken": token}});
    Api::<Secret>::namespaced(client.clone(), &account.namespace)
        .patch(CREDENTIALS_SECRET, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracker
        .wait_until(patience(keys.len() * 10), "every rotated channel to verify the new token", |chs| {
            keys.iter().zip(&old).all(|(k, o)| chs.get(k).is_some_and(|s| s.ready && s.verified_inputs != *o))
        })
        .await?;
    let wall = started.elapsed().as_secs_f64();
    let mut s = Scenario { name: "rotation".into(), channels: keys.len(), wall_secs: wall, ..Default::default() };
    s.window_secs = wall;
    measure::fill(&mut s, sim, seq, &op.scrape().await?.since(&before), (stats, op.stats()?));
    // The other accounts' periodic verifications fall into the window too: the target is the
    // rotated account's.
    let rotated = format!("/2010-04-01/Accounts/{}.json", account.sid);
    let fetches = sim.requests().iter().filter(|r| r.seq > seq && r.method == "GET" && r.path == rotated).count();
    s.rotated_account_fetches = Some(fetches as u64);
    Ok(s)
}

/// Clears 1 % of the webhooks at the simulator (as someone resetting senders in the Console
/// would); measured until the operator has put each back. (A webhook moved to another
/// receiver is not drift but another owner: the operator reports `BoundElsewhere` and leaves
/// it, see docs/api.md.)
async fn drift(sim: &SimHandle, fleet: &Fleet, op: &Operator, interval: Duration) -> Result<Scenario> {
    let n = fleet.channels.len();
    let step = 100.min(n);
    let drifted: Vec<&fleet::Channel> = fleet.channels.iter().step_by(step).collect();
    let seq = last_seq(sim);
    let before = op.scrape().await?;
    op.reset_peak()?;
    let stats = op.stats()?;
    let started = Instant::now();
    for c in &drifted {
        let patch: twilio_sim::state::SenderPatch = serde_json::from_value(json!({
            "webhook": {"callback_url": null, "callback_method": null}
        }))?;
        sim.update_sender(&fleet.accounts[c.account].sid, &format!("whatsapp:{}", c.number), &patch)?;
    }
    let deadline = Instant::now() + interval * 3 + Duration::from_secs(60);
    loop {
        let restored = drifted.iter().all(|c| {
            sim.account(&fleet.accounts[c.account].sid).is_some_and(|a| {
                a.senders.iter().any(|s| {
                    s.sender_id == format!("whatsapp:{}", c.number)
                        && s.webhook.callback_url.as_deref().is_some_and(|u| !u.is_empty())
                })
            })
        });
        if restored {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the cleared webhooks were not restored within {:?}",
                interval * 3 + Duration::from_secs(60)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut s = Scenario { name: "drift".into(), channels: drifted.len(), wall_secs: wall, ..Default::default() };
    s.window_secs = wall;
    measure::fill(&mut s, sim, seq, &op.scrape().await?.since(&before), (stats, op.stats()?));
    Ok(s)
}

/// The machine, in one line.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(String::new, |kib| format!(", {} GiB", kib / (1024 * 1024)));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {cpu}{mem}, Linux {}", kernel.trim())
}
