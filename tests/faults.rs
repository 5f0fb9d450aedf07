//! Transient Twilio failures back off per channel (honouring Retry-After); ambiguous failures
//! never lead to a second confirmation message. The `fleet_*` scenarios put a fleet (several
//! namespaces, more than one account) through each kind of Twilio fault and check that it
//! converges with bounded requests; `make chaos` runs them longer and heavier.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fleet::{self, Figures, Fleet};
use common::operator::*;
use serde_json::json;
use twilio_sim::{FaultAction, FaultRule, RequestRecord};
use whatsapp_operator::controller::OperatorConfig;

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const TOKEN: &str = "tok-0123456789abcdef0123456789ab";

async fn fixture(prefix: &str) -> (common::TestEnv, StrictSim, String, serde_json::Value) {
    let env = common::setup(prefix).await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n"
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let spec = json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "confirmationPhoneNumber": "+14155550123",
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    });
    (env, sim, account, spec)
}

fn account_fetches(sim: &StrictSim, account: &str) -> Vec<twilio_sim::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.path == format!("/2010-04-01/Accounts/{account}.json")).collect()
}

#[tokio::test]
async fn a_5xx_storm_backs_off_and_recovers() {
    let (env, sim, account, spec) = fixture("fault-5xx").await;
    let rule = FaultRule::new(FaultAction::Error { status: 503, code: None, message: None })
        .path(&format!("/Accounts/{account}.json$"))
        .times(4);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    let ch = wait_condition(&env, "ch", "Ready", "True", None).await;
    assert_eq!(condition(&ch, "CredentialsValid").status, "True");
    let fetches = account_fetches(&sim, &account);
    assert_eq!(fetches.len(), 5, "four 503s, then success");
    assert_eq!(fetches.iter().filter(|r| r.status == Some(503)).count(), 4);
    // Exponential backoff: each gap at least half the previous cap (jitter), never a tight loop.
    let gaps: Vec<i64> = fetches.windows(2).map(|w| (w[1].time - w[0].time).num_milliseconds()).collect();
    assert!(gaps.iter().all(|g| *g >= 40), "backoff between attempts: {gaps:?}");
    assert!(gaps[3] > gaps[0], "the delay grows: {gaps:?}");
    let (type_, _, _) = wait_event(&env, "ch", "TwilioUnavailable").await;
    assert_eq!(type_, "Warning");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_429_is_retried_only_after_retry_after() {
    let (env, sim, account, spec) = fixture("fault-429").await;
    let rule = FaultRule::new(FaultAction::RateLimit { retry_after: Some(2) })
        .path(&format!("/Accounts/{account}.json$"))
        .times(1);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    wait_condition(&env, "ch", "Ready", "True", None).await;
    let fetches = account_fetches(&sim, &account);
    assert_eq!(fetches.len(), 2);
    assert_eq!(fetches[0].status, Some(429));
    let gap = (fetches[1].time - fetches[0].time).num_milliseconds();
    assert!(
        gap >= 2000,
        "Retry-After: 2 honoured (waited {gap} ms; the backoff alone is at most 2 s after one failure)"
    );
    let events = events_for(&env, "ch").await;
    assert!(events.iter().any(|e| e.1 == "RateLimited"), "{events:#?}");
    assert_conforming(&sim);
}

#[tokio::test]
async fn an_ambiguous_send_is_looked_up_not_repeated() {
    let (env, sim, account, spec) = fixture("fault-ambiguous").await;
    // Twilio creates the message but the connection drops before the 201 arrives.
    let rule = FaultRule::new(FaultAction::DropAfterApply).method("POST").path("/Messages.json$").times(1);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    let ch = wait_condition(&env, "ch", "ConfirmationSent", "True", None).await;
    let posts: Vec<_> =
        sim.requests().into_iter().filter(|r| r.is_write() && r.path.ends_with("/Messages.json")).collect();
    assert_eq!(posts.len(), 1, "one POST, no second message");
    assert!(posts[0].dropped, "the only POST was the dropped one");
    let lookups = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == format!("/2010-04-01/Accounts/{account}/Messages.json"))
        .count();
    assert!(lookups >= 1, "the operator looked the message up");
    let sent = sim.state().account(&account).map(|a| a.messages.len()).unwrap_or_default();
    assert_eq!(sent, 1, "exactly one message exists at Twilio");
    let sid = ch.status.and_then(|s| s.confirmation).and_then(|c| c.message_sid);
    assert!(sid.is_some_and(|s| s.starts_with("SM")), "the found message is recorded");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_429_holds_every_channel_of_the_account_until_retry_after() {
    let numbers: Vec<String> = (0..3).map(|_| random_number()).collect();
    let seed: String = numbers.iter().map(|n| format!("  - phone_number: \"{n}\"\n")).collect();
    let f = Fixture::new("fault-hold", move |_, _| format!("  incoming_phone_numbers:\n{seed}")).await;
    let rule = FaultRule::new(FaultAction::RateLimit { retry_after: Some(2) })
        .path(&format!("/Accounts/{}.json$", f.account))
        .times(1);
    f.sim.add_fault(rule).expect("fault");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    for (i, n) in numbers.iter().enumerate() {
        create_channel(
            &f.env,
            &format!("ch{i}"),
            json!({
                "phoneNumber": n,
                "instance": "crm-prod",
                "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
                "webhook": {"url": RECEIVER},
                "queue": "sales",
            }),
        )
        .await;
    }
    for i in 0..numbers.len() {
        wait_condition(&f.env, &format!("ch{i}"), "Ready", "True", None).await;
    }
    let requests = f.sim.requests();
    let limited = requests.iter().find(|r| r.status == Some(429)).expect("the 429");
    let too_soon: Vec<_> = requests
        .iter()
        .filter(|r| r.seq > limited.seq && (r.time - limited.time).num_milliseconds() < 2000)
        .map(|r| format!("{} {} after {} ms", r.method, r.path, (r.time - limited.time).num_milliseconds()))
        .collect();
    assert!(too_soon.is_empty(), "no request for the account within Retry-After: {too_soon:?}");
    let fetches = account_fetches(&f.sim, &f.account);
    assert_eq!(fetches.len(), 2, "one 429, then one shared verification for the three channels");
}

/// A pass already under way when another channel of its account meets a 429 stops at its next
/// Twilio request: channel A's number lookup is slow (1.5 s), channel B's meets `429,
/// Retry-After: 3` meanwhile; A's webhook write, due when its lookup returns, waits for the hold
/// instead of reaching Twilio inside it.
#[tokio::test]
async fn a_pass_under_way_stops_at_a_429_of_its_account() {
    let (a, b) = (random_number(), random_number());
    let seed = format!("  incoming_phone_numbers:\n  - phone_number: \"{a}\"\n  - phone_number: \"{b}\"\n");
    let f = Fixture::new("fault-underway", move |_, _| seed).await;
    let lookups = "/IncomingPhoneNumbers\\.json$";
    f.sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 1_500 }).path(lookups).times(1)).expect("fault");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let spec = |n: &str| {
        json!({
            "phoneNumber": n,
            "instance": "crm-prod",
            "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "sales",
        })
    };
    create_channel(&f.env, "a", spec(&a)).await;
    // A's lookup is under way (held by the latency); then B's meets the 429.
    common::within(common::TIMEOUT, async {
        while f.sim.in_flight(&f.account) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    f.sim
        .add_fault(FaultRule::new(FaultAction::RateLimit { retry_after: Some(3) }).path(lookups).times(1))
        .expect("fault");
    create_channel(&f.env, "b", spec(&b)).await;
    wait_condition(&f.env, "a", "Ready", "True", None).await;
    wait_condition(&f.env, "b", "Ready", "True", None).await;
    let requests = f.sim.requests();
    let limited = requests.iter().find(|r| r.status == Some(429)).expect("B met the 429");
    let answered = limited.answered.expect("answered");
    let slow = requests.iter().find(|r| r.fault.as_deref() == Some("latency 1500ms")).expect("A's slow lookup");
    assert!(slow.time < answered && slow.answered.is_some_and(|t| t > answered), "A's lookup spanned the 429");
    let inside: Vec<String> = requests
        .iter()
        .filter(|r| r.time > answered && (r.time - answered).num_milliseconds() < 3_000)
        .map(|r| format!("{} {} {} ms after the 429", r.method, r.path, (r.time - answered).num_milliseconds()))
        .collect();
    assert!(inside.is_empty(), "nothing reached Twilio for the account within Retry-After: {inside:?}");
    let writes = requests.iter().filter(|r| r.is_write()).count();
    assert_eq!(writes, 2, "one webhook write per channel, once the hold ended");
}

/// A stuck Twilio cannot hold a shutdown: SIGTERM during a pass whose Twilio request hangs ends
/// the process within `--pass-timeout` (here 2 s; the request itself would take 30 s, and the
/// request timeout is longer still), with exit status 0.
#[tokio::test]
async fn sigterm_during_a_stuck_pass_ends_within_the_pass_timeout() {
    use std::process::{Command, Stdio};
    let (env, sim, account, spec) = fixture("fault-sigterm").await;
    let rule = FaultRule::new(FaultAction::Latency { ms: 30_000 }).path(&format!("/Accounts/{account}.json$"));
    sim.add_fault(rule).expect("fault");
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args([
            "run",
            "--namespace",
            &env.ns,
            "--pass-timeout",
            "2s",
            "--twilio-timeout",
            "60s",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    create_channel(&env, "ch", spec).await;
    // Wait until the pass is stuck in the Twilio request.
    common::within(common::TIMEOUT, async {
        while sim.in_flight(&account) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    assert_clean_exit_within(&mut child, Duration::from_secs(10)).await;
    sim.clear_faults();
}

/// SIGTERM while the API server is unreachable (the caches never listed) ends the process at
/// once and cleanly: there is nothing to drain.
#[tokio::test]
async fn sigterm_with_the_api_server_unreachable_ends_at_once() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("wao-unreachable-{}", common::random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: \"https://127.0.0.1:9\", insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: gone, user: u}\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    // Serving /healthz means the signal handlers are installed.
    common::within(common::TIMEOUT, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    assert_clean_exit_within(&mut child, Duration::from_secs(10)).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Fails the test unless `child` exits with status 0 within `limit`.
async fn assert_clean_exit_within(child: &mut std::process::Child, limit: Duration) {
    let status = common::within(limit, async {
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(status.success(), "a clean exit: {status:?}");
}

// ---------------------------------------------------------------------------------------------
// Fleet scenarios: channels in several namespaces over more than one account, one operator
// watching every namespace (on a control plane of its own). Half the channels are Ready before
// the faults start (their verifications meet them), half are created under them. One account
// is in a full outage of the scenario's kind (every request meets the fault: its channels can
// only back off), the others meet it on a share of their requests. Once the
// faults stop every channel converges, and the request log shows no hot loop, respected
// rate-limit holds and exactly one confirmation message per channel. `make chaos` runs the same
// scenarios longer and heavier (see tests/common/fleet.rs); each prints its figures.
// ---------------------------------------------------------------------------------------------

/// Requests already on their way when a 429 arrives may reach the simulator just after it.
const HOLD_GRACE: Duration = Duration::from_millis(500);

/// One fleet scenario under way.
struct Scenario {
    fleet: Fleet,
    cfg: OperatorConfig,
    _op: Operator,
    started: std::time::Instant,
    fault_start: DateTime<Utc>,
    fault_end: DateTime<Utc>,
}

/// What a finished scenario leaves for its own assertions.
struct Finished {
    fleet: Fleet,
    records: Vec<RequestRecord>,
    during: Vec<RequestRecord>,
}

impl Scenario {
    /// The fleet, the operator (`cfg` from [`Fleet::config`], adjusted by `tweak`), and the
    /// first half of the channels, converged before any fault.
    async fn start(prefix: &str, tweak: impl FnOnce(&mut OperatorConfig)) -> Scenario {
        let fleet = Fleet::start(prefix).await;
        let mut cfg = fleet.config();
        tweak(&mut cfg);
        let op = fleet.operator(cfg.clone());
        let started = std::time::Instant::now();
        let half = fleet.members.len() / 2;
        fleet.create(0..half).await;
        fleet.wait_converged(half, fleet.scale.converge_within).await;
        let now = Utc::now();
        Scenario { fleet, cfg, _op: op, started, fault_start: now, fault_end: now }
    }

    /// Installs `rules` and creates the other half of the channels under them.
    async fn faults_on(&mut self, rules: Vec<FaultRule>) {
        for rule in rules {
            self.fleet.sim.add_fault(rule).expect("install a fault");
        }
        self.fault_start = Utc::now();
        let (half, all) = (self.fleet.members.len() / 2, self.fleet.members.len());
        self.fleet.create(half..all).await;
    }

    /// Keeps the faults on for the scenario's window (the scenario's definition, not a wait
    /// for a condition), counted from when they were installed.
    async fn hold_faults(&self) {
        let elapsed = (Utc::now() - self.fault_start).to_std().unwrap_or_default();
        tokio::time::sleep(self.fleet.scale.fault_window.saturating_sub(elapsed)).await;
    }

    /// Keeps the faults on past the window until every rule limited by `times` (the writes
    /// that must meet a fault for sure) has been used up: a condition, bounded by the
    /// convergence timeout.
    async fn hold_until_used(&self) {
        self.hold_faults().await;
        let sim = &self.fleet.sim;
        common::within(self.fleet.scale.converge_within, async {
            while sim.faults().iter().any(|f| f.rule.times.is_some()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }

    /// Stops the faults, waits until every channel converged and no request is still held by
    /// an injected delay, and checks what every scenario promises: bounded requests per channel
    /// and account, holds after each 429 with Retry-After, one message per channel. Prints the
    /// figures.
    async fn finish(mut self, name: &str) -> Finished {
        self.fleet.sim.clear_faults();
        self.fault_end = Utc::now();
        let fleet = &self.fleet;
        let converge = fleet.wait_converged(fleet.members.len(), fleet.scale.converge_within).await;
        let sim = &fleet.sim;
        let accounts = fleet.accounts.clone();
        common::within(fleet.scale.slow + Duration::from_secs(30), async {
            while accounts.iter().any(|a| sim.in_flight(a) > 0) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let run = self.started.elapsed() + Duration::from_secs(1);
        let records = sim.requests();
        let during: Vec<RequestRecord> =
            records.iter().filter(|r| r.time >= self.fault_start && r.time < self.fault_end).cloned().collect();
        let failed = during.iter().filter(|r| fleet::failed(r, self.cfg.twilio.timeout)).count();
        assert!(failed > 0, "the faults met no request: the scenario tested nothing");
        let per_channel = fleet.assert_bounded(&records, &self.cfg, run, (self.fault_start, self.fault_end));
        fleet.assert_holds(&records, HOLD_GRACE);
        let messages = fleet.assert_one_message_each().await;
        Figures {
            scenario: name.to_owned(),
            fleet: (fleet.members.len(), fleet.scale.namespaces, fleet.accounts.len()),
            fault_window: (self.fault_end - self.fault_start).to_std().unwrap_or_default(),
            during_faults: during.len(),
            failed,
            total: records.len(),
            converge,
            per_channel,
            messages,
        }
        .report();
        Finished { fleet: self.fleet, records, during }
    }
}

impl Scenario {
    /// The account in a full outage: every one of its requests meets the scenario's fault.
    fn outage(&self) -> String {
        self.fleet.accounts[1].clone()
    }

    /// `rule` for each account but the outage's (partial faults).
    fn partial(&self, rule: FaultRule) -> Vec<FaultRule> {
        let outage = self.outage();
        self.fleet.accounts.iter().filter(|a| **a != outage).map(|a| rule.clone().account(a)).collect()
    }
}

fn error_503() -> FaultAction {
    FaultAction::Error { status: 503, code: None, message: None }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Twilio answers 503 to 30 % of all requests: passes fail at random, back off and retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_after_5xx_on_30_percent_of_requests() {
    let mut s = Scenario::start("fleet-5xx", |_| {}).await;
    let outage = s.outage();
    let mut rules = vec![FaultRule::new(error_503()).account(&outage)];
    rules.extend(s.partial(FaultRule::new(error_503()).percent(30)));
    s.faults_on(rules).await;
    s.hold_faults().await;
    let f = s.finish("5xx on 30 % of requests (one account: all)").await;
    let partial: Vec<_> = f.during.iter().filter(|r| r.account_sid.as_deref() != Some(outage.as_str())).collect();
    let answered_503 = partial.iter().filter(|r| r.status == Some(503)).count();
    let share = answered_503 as f64 / partial.len() as f64;
    assert!((0.1..=0.5).contains(&share), "about 30 % answered 503: {answered_503} of {}", partial.len());
}

/// Bursts of 429s (every request of the account answered 429 while a burst lasts, with short
/// pauses between bursts), one account's with `Retry-After`, another's without: the account
/// with Retry-After gets no request until it elapsed (beyond those already on their way), the
/// other's channels back off exponentially (the hold of `--backoff-base` after each 429 does
/// not reset their backoff); both converge; a third account (chaos) is not held at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_respects_429_bursts_with_and_without_retry_after() {
    let mut s = Scenario::start("fleet-429", |_| {}).await;
    let retry_after = if s.fleet.scale.chaos { 5 } else { 2 };
    let (held, unheld) = (s.fleet.accounts[0].clone(), s.fleet.accounts[1].clone());
    let burst = |account: &str, retry_after| FaultRule::new(FaultAction::RateLimit { retry_after }).account(account);
    let bursts = if s.fleet.scale.chaos { 4 } else { 2 };
    let pause = Duration::from_secs(1);
    let length = (s.fleet.scale.fault_window.saturating_sub(pause * (bursts - 1))) / bursts;
    for i in 0..bursts {
        let rules = vec![burst(&held, Some(retry_after)), burst(&unheld, None)];
        if i == 0 {
            s.faults_on(rules).await;
        } else {
            for rule in rules {
                s.fleet.sim.add_fault(rule).expect("burst");
            }
        }
        // The burst and the pause after it are the scenario's timing, not waits for a condition.
        tokio::time::sleep(length).await;
        if i + 1 < bursts {
            s.fleet.sim.clear_faults();
            tokio::time::sleep(pause).await;
        }
    }
    let f = s.finish("429 bursts, with and without Retry-After").await;
    let limited =
        |a: &str| f.during.iter().filter(|r| r.status == Some(429) && r.account_sid.as_deref() == Some(a)).count();
    assert!(limited(&held) >= bursts as usize && limited(&unheld) >= bursts as usize, "both accounts met their bursts");
    let checked = f.fleet.assert_holds(&f.records, HOLD_GRACE);
    assert!(checked >= bursts as usize, "holds checked after {checked} 429s with Retry-After");
    for other in &f.fleet.accounts[2..] {
        assert_eq!(limited(other), 0, "account {other} had no fault and no 429");
    }
    eprintln!(
        "{bursts} bursts of {length:?}: {} 429s with Retry-After {retry_after}, {} without",
        limited(&held),
        limited(&unheld)
    );
}

/// Answers slowed beyond the operator's Twilio timeout: reads, writes stalled and never applied,
/// and writes applied whose answer comes too late (the first message, sender and number write
/// of each partially failing account meet one for sure: the faults last until they did). A timed-out send is looked up, never repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_after_timeouts_before_and_after_the_write() {
    let mut s = Scenario::start("fleet-timeout", |_| {}).await;
    let late = ms(s.cfg.twilio.timeout) + 500;
    let after = FaultAction::LatencyAfterApply { ms: late };
    let before = FaultAction::StallBeforeApply { ms: late };
    let mut rules = vec![FaultRule::new(FaultAction::Latency { ms: late }).account(&s.outage())];
    let first =
        |action: &FaultAction, path: &str| s.partial(FaultRule::new(action.clone()).method("POST").path(path).times(1));
    rules.extend(first(&after, r"/Messages\.json$"));
    rules.extend(first(&after, "^/v2/Channels/Senders/"));
    rules.extend(first(&before, "/IncomingPhoneNumbers/"));
    rules.extend(s.partial(FaultRule::new(before).method("POST").percent(25)));
    rules.extend(s.partial(FaultRule::new(after).method("POST").percent(35)));
    rules.extend(s.partial(FaultRule::new(FaultAction::Latency { ms: late }).method("GET").percent(25)));
    s.faults_on(rules).await;
    s.hold_until_used().await;
    let f = s.finish("timeouts before and after the write (one account: all)").await;
    let by = |label: &str| f.during.iter().filter(|r| r.fault.as_deref().is_some_and(|l| l.contains(label))).count();
    assert!(by("latency_after_apply") >= 1 && by("stall_before_apply") >= 1, "both kinds of timed-out write happened");
    let sends_applied_late = f
        .during
        .iter()
        .filter(|r| r.path.ends_with("/Messages.json") && r.is_write() && r.status == Some(201))
        .filter(|r| r.fault.as_deref().is_some_and(|l| l.contains("latency_after_apply")))
        .count();
    assert!(sends_applied_late >= 1, "a message was created whose answer timed out");
}

/// Connections dropped before the write is applied and after it (the first message, sender
/// and number writes of each partially failing account meet one for sure: the faults last until
/// they did; then a share of every request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_after_connections_dropped_before_and_after_the_write() {
    let mut s = Scenario::start("fleet-drop", |_| {}).await;
    let mut rules = vec![FaultRule::new(FaultAction::DropBeforeApply).account(&s.outage())];
    let first = |action: FaultAction, path: &str| s.partial(FaultRule::new(action).method("POST").path(path).times(1));
    rules.extend(first(FaultAction::DropAfterApply, r"/Messages\.json$"));
    rules.extend(first(FaultAction::DropAfterApply, "^/v2/Channels/Senders/"));
    rules.extend(first(FaultAction::DropBeforeApply, "/IncomingPhoneNumbers/"));
    rules.extend(s.partial(FaultRule::new(FaultAction::DropBeforeApply).percent(20)));
    rules.extend(s.partial(FaultRule::new(FaultAction::DropAfterApply).method("POST").percent(30)));
    s.faults_on(rules).await;
    s.hold_until_used().await;
    let f = s.finish("connections dropped before and after the write (one account: all)").await;
    let dropped = |applied: bool| f.during.iter().filter(|r| r.dropped && r.status.is_some() == applied).count();
    assert!(dropped(true) >= 1 && dropped(false) >= 1, "drops before and after applying both happened");
    let sends_lost =
        f.during.iter().filter(|r| r.path.ends_with("/Messages.json") && r.dropped && r.status == Some(201));
    assert!(sends_lost.count() >= 1, "a message was created whose answer was lost");
}

/// Answers slowed to `WAO_CHAOS_SLOW_MS` (20 s in `make chaos`, with the operator's default
/// 10 s Twilio timeout and 60 s pass deadline; 3 s against a 1 s timeout in the fast suite),
/// some applied first, and others slowed but still within the timeout (which must not count as
/// failures or lead to a second write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_after_answers_slowed_beyond_the_timeout() {
    let mut s = Scenario::start("fleet-slow", |_| {}).await;
    let slow = ms(s.fleet.scale.slow);
    assert!(slow > ms(s.cfg.twilio.timeout), "the slowdown exceeds the client timeout");
    let within = ms(s.cfg.twilio.timeout) / 3;
    let mut rules = vec![FaultRule::new(FaultAction::Latency { ms: slow }).account(&s.outage())];
    rules.extend(s.partial(
        FaultRule::new(FaultAction::LatencyAfterApply { ms: slow }).method("POST").path(r"/Messages\.json$").times(1),
    ));
    rules.extend(s.partial(FaultRule::new(FaultAction::Latency { ms: within }).percent(30)));
    rules.extend(s.partial(FaultRule::new(FaultAction::LatencyAfterApply { ms: slow }).method("POST").percent(30)));
    rules.extend(s.partial(FaultRule::new(FaultAction::Latency { ms: slow }).percent(30)));
    s.faults_on(rules).await;
    s.hold_until_used().await;
    let (secs, timeout) = (slow as f64 / 1000.0, s.cfg.twilio.timeout.as_secs_f64());
    let name = format!("answers slowed to {secs} s, timeout {timeout} s (one account: all)");
    let f = s.finish(&name).await;
    let slowed = f.during.iter().filter(|r| r.fault.as_deref().is_some_and(|l| l.contains(&format!("{slow}ms"))));
    assert!(slowed.count() >= 2, "answers were slowed beyond the timeout");
}
