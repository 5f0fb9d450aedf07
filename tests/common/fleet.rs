//! A fleet for the Twilio fault scenarios: channels in several namespaces over more than one
//! Twilio account, on a control plane of its own (the operator watches every namespace, as it is
//! deployed, and sees no other test's channels), a strict simulator, and the checks every
//! scenario makes on the simulator's request log: convergence, bounded request counts (no hot
//! loop), per-account rate-limit holds, one confirmation message per channel.
//!
//! The scale comes from the environment, so that `make chaos` runs the same tests longer and
//! heavier: `WAO_CHAOS=1` selects the chaos profile; `WAO_CHAOS_NAMESPACES`,
//! `WAO_CHAOS_ACCOUNTS`, `WAO_CHAOS_CHANNELS` (per namespace), `WAO_CHAOS_FAULT_SECS` and
//! `WAO_CHAOS_SLOW_MS` override single figures. `WAO_CHAOS_REPORT=FILE` appends each scenario's
//! figures to FILE as a Markdown table row.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use twilio_sim::RequestRecord;
use whatsapp_operator::api::WhatsAppChannel;
use whatsapp_operator::controller::OperatorConfig;
use whatsapp_operator::twilio::TwilioConfig;

use super::control_plane::ControlPlane;
use super::operator::{create_channel, create_secret, start_operator, start_sim, Operator, StrictSim};
use super::TestEnv;

/// The receiver every fleet channel points at.
pub const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
/// Where the confirmation messages go.
pub const RECIPIENT: &str = "+14155550123";
/// The most Twilio requests one pass of one channel makes that name the channel (its number
/// lookup or sender fetch, the webhook write, a re-read after an ambiguous write, the message,
/// its lookup after an ambiguous send, its status): the per-pass factor of the request bound.
pub const REQUESTS_PER_PASS: u64 = 6;
/// Passes that end early without a failure (a status written against a version the watch has
/// not shown yet: looked at again in 300 ms, no backoff) allowed per channel on top of the
/// backoff schedule.
pub const RETRY_SLACK: u64 = 4;

/// How big and how long a scenario is.
#[derive(Clone, Debug)]
pub struct Scale {
    /// `make chaos` (`WAO_CHAOS=1`) rather than the fast suite.
    pub chaos: bool,
    /// Namespaces with channels.
    pub namespaces: usize,
    /// Twilio accounts the channels are spread over.
    pub accounts: usize,
    /// Channels per namespace.
    pub per_namespace: usize,
    /// How long the faults last.
    pub fault_window: Duration,
    /// The slowdown of the slow-answer scenario.
    pub slow: Duration,
    /// How long the fleet may take to converge once the faults stop.
    pub converge_within: Duration,
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Scale {
    /// The fast suite's scale, or the chaos profile's with `WAO_CHAOS=1`, with overrides.
    pub fn from_env() -> Scale {
        let chaos = std::env::var("WAO_CHAOS").is_ok_and(|v| v == "1");
        let (namespaces, accounts, per_namespace, fault_secs, slow_ms) =
            if chaos { (4, 3, 15, 45, 20_000) } else { (3, 2, 4, 8, 3_000) };
        Scale {
            chaos,
            namespaces: env_usize("WAO_CHAOS_NAMESPACES").unwrap_or(namespaces).max(2),
            accounts: env_usize("WAO_CHAOS_ACCOUNTS").unwrap_or(accounts).max(2),
            per_namespace: env_usize("WAO_CHAOS_CHANNELS").unwrap_or(per_namespace).max(2),
            fault_window: Duration::from_secs(env_usize("WAO_CHAOS_FAULT_SECS").unwrap_or(fault_secs) as u64),
            slow: Duration::from_millis(env_usize("WAO_CHAOS_SLOW_MS").unwrap_or(slow_ms) as u64),
            converge_within: Duration::from_secs(if chaos { 300 } else { 120 }),
        }
    }

    /// Every channel of the fleet.
    pub fn channels(&self) -> usize {
        self.namespaces * self.per_namespace
    }
}

/// One channel of the fleet.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
    /// Its Twilio account.
    pub account: String,
    /// Its number.
    pub number: String,
    /// A WhatsApp sender that asks for a confirmation message (else an incoming phone number
    /// without one).
    pub confirms: bool,
}

impl Member {
    fn spec(&self, secret: &str) -> serde_json::Value {
        let mut spec = json!({
            "phoneNumber": self.number,
            "instance": "crm-prod",
            "twilio": {"accountSid": self.account, "credentialsSecretRef": {"name": secret}},
            "webhook": {"url": RECEIVER},
            "queue": "sales",
        });
        if self.confirms {
            spec["confirmationPhoneNumber"] = json!(RECIPIENT);
        }
        spec
    }
}

/// The fleet: its own control plane, the simulator and the channels (not created yet).
pub struct Fleet {
    /// The simulator.
    pub sim: StrictSim,
    /// An admin client of the fleet's control plane.
    pub client: Client,
    /// The scale.
    pub scale: Scale,
    /// The seeded accounts.
    pub accounts: Vec<String>,
    /// Every channel, namespace by namespace.
    pub members: Vec<Member>,
    /// Dropped last: the control plane.
    _cluster: ControlPlane,
}

/// Who a logged request was for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// One channel (by its index in [`Fleet::members`]): its number, sender, webhook, message.
    Channel(usize),
    /// A whole account: its verification, its sender listing.
    Account(String),
}

fn token(i: usize) -> String {
    format!("tok-fleet-{i:02}-0123456789abcdef0123456789")
}

impl Fleet {
    /// Starts a control plane, the simulator (every account seeded with its channels' senders
    /// and numbers), the namespaces, and one credentials Secret per account in each namespace.
    pub async fn start(prefix: &str) -> Fleet {
        super::init_crypto();
        let scale = Scale::from_env();
        let cluster = tokio::task::spawn_blocking(ControlPlane::start).await.expect("start a control plane");
        let client = cluster.client().await;
        super::install_crds(&client).await;
        let sim = start_sim().await;
        let accounts: Vec<String> = (0..scale.accounts).map(|_| super::operator::random_account_sid()).collect();
        let mut members = Vec::new();
        let base: u32 = rand::random_range(0..9_000_000);
        for n in 0..scale.namespaces {
            let ns = format!("{prefix}-{}-{n}", super::random_suffix());
            for k in 0..scale.per_namespace {
                let g = members.len();
                members.push(Member {
                    ns: ns.clone(),
                    name: format!("ch-{k}"),
                    account: accounts[g % accounts.len()].clone(),
                    number: format!("+1628{:07}", base + g as u32),
                    // Both kinds in every account: senders in even rounds over the accounts.
                    confirms: (g / accounts.len()).is_multiple_of(2),
                });
            }
        }
        let mut seed = String::from("accounts:\n");
        for (i, a) in accounts.iter().enumerate() {
            seed += &format!("- sid: {a}\n  friendly_name: fleet-{i}\n  auth_token: {}\n", token(i));
            let mine = || members.iter().filter(move |m| &m.account == a);
            seed += "  whatsapp_senders:\n";
            for m in mine().filter(|m| m.confirms) {
                seed += &format!("  - sender_id: whatsapp:{}\n", m.number);
            }
            seed += "  incoming_phone_numbers:\n";
            for m in mine().filter(|m| !m.confirms) {
                seed += &format!("  - phone_number: \"{}\"\n", m.number);
            }
        }
        sim.seed_yaml(&seed).expect("seed the fleet's accounts");
        let mut namespaces: Vec<&str> = members.iter().map(|m| m.ns.as_str()).collect();
        namespaces.dedup();
        for ns in namespaces {
            let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .create(&Default::default(), &obj)
                .await
                .expect("create a namespace");
            let env = TestEnv { client: client.clone(), ns: ns.to_owned() };
            for i in 0..accounts.len() {
                create_secret(&env, &format!("twilio-{i}"), &[("authToken", &token(i))]).await;
            }
        }
        Fleet { sim, client, scale, accounts, members, _cluster: cluster }
    }

    /// Operator settings for the fleet: every namespace, quick backoff (200 ms doubling to 4 s),
    /// a verification every 3 s (so settled channels keep calling Twilio during the faults), a
    /// 1 s Twilio timeout and a 10 s pass deadline; the chaos profile keeps the operator's
    /// default timeouts (10 s, 60 s), so that 20 s answers meet them as in production.
    pub fn config(&self) -> OperatorConfig {
        let mut cfg = OperatorConfig::new(TwilioConfig::with_single_base_url(self.sim.base_url()));
        cfg.namespace = None;
        cfg.backoff_base = Duration::from_millis(200);
        cfg.backoff_max = Duration::from_secs(4);
        cfg.verify_interval = Duration::from_secs(if self.scale.chaos { 10 } else { 3 });
        cfg.instance = Some("fleet".into());
        // Receiver health off: the bounds count the channels' own Twilio calls.
        cfg.alerts_interval = Duration::ZERO;
        if !self.scale.chaos {
            cfg.twilio.timeout = Duration::from_secs(1);
            cfg.pass_timeout = Duration::from_secs(10);
        }
        cfg
    }

    /// Starts the operator with `cfg`.
    pub fn operator(&self, cfg: OperatorConfig) -> Operator {
        start_operator(&self.client, cfg)
    }

    /// Creates the channels `members[range]`.
    pub async fn create(&self, range: std::ops::Range<usize>) {
        for m in &self.members[range] {
            let env = TestEnv { client: self.client.clone(), ns: m.ns.clone() };
            let i = self.accounts.iter().position(|a| a == &m.account).unwrap_or_default();
            create_channel(&env, &m.name, m.spec(&format!("twilio-{i}"))).await;
        }
    }

    /// Whether a channel is where every fault scenario must end: Ready (phase `Ready`, for its
    /// current generation) and, when it asks for one, its confirmation sent.
    pub fn converged(m: &Member, ch: &WhatsAppChannel) -> bool {
        let Some(st) = ch.status.as_ref() else { return false };
        let cond = |t: &str| st.conditions.iter().any(|c| c.type_ == t && c.status == "True");
        st.observed_generation == ch.metadata.generation
            && st.phase.as_ref().is_some_and(|p| p.as_str() == "Ready")
            && cond("Ready")
            && (!m.confirms || cond("ConfirmationSent"))
    }

    /// Waits until every channel created so far (`members[..upto]`) has converged; returns how
    /// long that took. Fails the test after `within`, naming the channels that did not.
    pub async fn wait_converged(&self, upto: usize, within: Duration) -> Duration {
        let started = Instant::now();
        let api: Api<WhatsAppChannel> = Api::all(self.client.clone());
        let by_key: HashMap<(String, String), &Member> =
            self.members[..upto].iter().map(|m| ((m.ns.clone(), m.name.clone()), m)).collect();
        loop {
            let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
            let lagging: Vec<&WhatsAppChannel> = list
                .iter()
                .filter(|ch| {
                    let key = (ch.namespace().unwrap_or_default(), ch.name_any());
                    by_key.get(&key).is_some_and(|m| !Self::converged(m, ch))
                })
                .collect();
            let seen =
                list.iter().filter(|ch| by_key.contains_key(&(ch.namespace().unwrap_or_default(), ch.name_any())));
            if lagging.is_empty() && seen.count() == by_key.len() {
                return started.elapsed();
            }
            if started.elapsed() > within {
                let report: Vec<String> = lagging
                    .iter()
                    .map(|ch| {
                        let st = ch.status.as_ref();
                        let ready = st.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                        format!(
                            "{}/{}: phase {:?}, Ready {:?}",
                            ch.namespace().unwrap_or_default(),
                            ch.name_any(),
                            st.and_then(|s| s.phase.as_ref()).map(|p| p.as_str()),
                            ready.map(|c| (&c.status, &c.reason, &c.message)),
                        )
                    })
                    .collect();
                panic!("{} channels did not converge within {within:?}:\n{}", report.len(), report.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Who each logged request was for: a channel (by its number, its sender's or number's SID,
    /// or its message's SID), else its account.
    pub fn owners(&self, records: &[RequestRecord]) -> Vec<Option<Owner>> {
        let state = self.sim.state();
        let by_number: HashMap<&str, usize> =
            self.members.iter().enumerate().map(|(i, m)| (m.number.as_str(), i)).collect();
        let mut by_sid: HashMap<String, usize> = HashMap::new();
        for a in &state.accounts {
            for s in &a.senders {
                if let Some(i) = by_number.get(s.sender_id.trim_start_matches("whatsapp:")) {
                    by_sid.insert(s.sid.clone(), *i);
                }
            }
            for n in &a.incoming_phone_numbers {
                if let Some(i) = by_number.get(n.phone_number.as_str()) {
                    by_sid.insert(n.sid.clone(), *i);
                }
            }
            for msg in &a.messages {
                let from = msg.from.as_deref().unwrap_or_default().trim_start_matches("whatsapp:");
                if let Some(i) = by_number.get(from) {
                    by_sid.insert(msg.sid.clone(), *i);
                }
            }
        }
        let number = |v: Option<&str>| v.and_then(|v| by_number.get(v.trim_start_matches("whatsapp:")).copied());
        records
            .iter()
            .map(|r| {
                let sid = r.path.rsplit('/').next().unwrap_or_default().trim_end_matches(".json");
                let channel = by_sid
                    .get(sid)
                    .copied()
                    .or_else(|| number(r.query_value("PhoneNumber")))
                    .or_else(|| number(r.query_value("From")))
                    .or_else(|| number(r.form_value("From")));
                match channel {
                    Some(i) => Some(Owner::Channel(i)),
                    None => r.account_sid.clone().map(Owner::Account),
                }
            })
            .collect()
    }

    /// The most passes one channel can start within `window` under `cfg`: if every pass fails,
    /// the n-th failure waits at least half of `min(base * 2^(n-1), max)` (the jitter's lower
    /// bound); a pass that settles waits a verification interval; plus [`RETRY_SLACK`].
    pub fn max_passes(cfg: &OperatorConfig, window: Duration) -> u64 {
        let failing = Self::max_failing_passes(cfg, window);
        let settled = window.as_millis() as u64 / cfg.verify_interval.as_millis().max(1) as u64 + 1;
        failing + settled + RETRY_SLACK
    }

    /// The most passes one channel can start within `window` if every one of them fails: the
    /// n-th failure waits at least half of `min(base * 2^(n-1), max)`.
    pub fn max_failing_passes(cfg: &OperatorConfig, window: Duration) -> u64 {
        let (mut t, mut failing) = (Duration::ZERO, 1u64);
        loop {
            let exp = (failing - 1).min(20) as u32;
            let cap = cfg.backoff_base.saturating_mul(1 << exp).min(cfg.backoff_max);
            t += cap / 2;
            if t > window {
                return failing;
            }
            failing += 1;
        }
    }

    /// Fails unless the request log shows no hot loop:
    /// - every channel's requests over the whole run (`run`) stay within [`REQUESTS_PER_PASS`]
    ///   times [`Fleet::max_passes`], and every account's shared requests (verification,
    ///   sender listing) within two per pass of its channels;
    /// - every account's failed requests (5xx, 429, dropped, slower than the client waits)
    ///   while the faults were on (`faults`, plus one timeout for answers under way) stay within
    ///   one per pass the backoff schedule lets its channels make in that time: a failed request
    ///   ends its pass, and the next pass waits out the backoff.
    ///
    /// Returns the most requests any channel made and the bound.
    pub fn assert_bounded(
        &self,
        records: &[RequestRecord],
        cfg: &OperatorConfig,
        run: Duration,
        faults: (DateTime<Utc>, DateTime<Utc>),
    ) -> (u64, u64) {
        let per_channel_bound = REQUESTS_PER_PASS * Self::max_passes(cfg, run);
        let mut counts: BTreeMap<Owner, u64> = BTreeMap::new();
        for owner in self.owners(records).into_iter().flatten() {
            *counts.entry(owner).or_default() += 1;
        }
        let channels_of = |a: &str| self.members.iter().filter(|m| m.account == a).count() as u64;
        let mut max = 0;
        for (owner, n) in &counts {
            match owner {
                Owner::Channel(i) => {
                    max = max.max(*n);
                    let m = &self.members[*i];
                    assert!(
                        *n <= per_channel_bound,
                        "{}/{} made {n} Twilio requests in {run:?}; the backoff schedule allows at most \
                         {per_channel_bound}: a hot loop",
                        m.ns,
                        m.name
                    );
                }
                Owner::Account(a) => {
                    // A failed verification is not kept: each pass may ask again.
                    let bound = 2 * channels_of(a) * Self::max_passes(cfg, run);
                    assert!(*n <= bound, "account {a}: {n} shared requests in {run:?}, at most {bound} allowed");
                }
            }
        }
        let tail = chrono::Duration::from_std(cfg.twilio.timeout).unwrap_or_default();
        let window = (faults.1 - faults.0 + tail).to_std().unwrap_or_default();
        let per_channel_failures = Self::max_failing_passes(cfg, window)
            + window.as_millis() as u64 / cfg.verify_interval.as_millis().max(1) as u64
            + 1;
        for a in &self.accounts {
            let failed = records
                .iter()
                .filter(|r| r.account_sid.as_deref() == Some(a.as_str()) && failed(r, cfg.twilio.timeout))
                .filter(|r| r.time >= faults.0 && r.time <= faults.1 + tail)
                .count() as u64;
            let bound = channels_of(a) * per_channel_failures;
            assert!(
                failed <= bound,
                "account {a}: {failed} failed requests in {window:?} of faults; its {} channels' backoff allows \
                 at most {bound}: a hot loop",
                channels_of(a)
            );
        }
        (max, per_channel_bound)
    }

    /// Fails unless, after every 429 that carried `Retry-After: N`, the account saw no request
    /// from `grace` after the answer until N seconds after it (the operator holds the account;
    /// `grace` covers requests that were already on their way when the answer arrived).
    pub fn assert_holds(&self, records: &[RequestRecord], grace: Duration) -> usize {
        let grace = chrono::Duration::from_std(grace).unwrap_or_default();
        let mut checked = 0;
        for limited in records.iter().filter(|r| r.status == Some(429)) {
            let Some(secs) = retry_after(limited) else { continue };
            let (Some(account), Some(answered)) = (&limited.account_sid, limited.answered) else { continue };
            checked += 1;
            let until = answered + chrono::Duration::seconds(secs as i64);
            let early: Vec<String> = records
                .iter()
                .filter(|r| r.account_sid.as_ref() == Some(account) && r.time > answered + grace && r.time < until)
                .map(|r| format!("{} {} {} ms after the 429", r.method, r.path, (r.time - answered).num_milliseconds()))
                .collect();
            assert!(early.is_empty(), "account {account} was asked again within Retry-After: {secs}: {early:#?}");
        }
        checked
    }

    /// Fails unless each channel that asks for a confirmation has exactly one message at
    /// Twilio (and its status names it), and no other message exists. Returns the count.
    pub async fn assert_one_message_each(&self) -> usize {
        let state = self.sim.state();
        let mut from: HashMap<String, Vec<String>> = HashMap::new();
        for a in &state.accounts {
            for msg in &a.messages {
                let f = msg.from.as_deref().unwrap_or_default().trim_start_matches("whatsapp:").to_owned();
                from.entry(f).or_default().push(msg.sid.clone());
            }
        }
        let mut total = 0;
        for m in &self.members {
            let sids = from.remove(&m.number).unwrap_or_default();
            let want = usize::from(m.confirms);
            assert_eq!(
                sids.len(),
                want,
                "{}/{}: {} messages at Twilio, want {want}: {sids:?}",
                m.ns,
                m.name,
                sids.len()
            );
            if let Some(sid) = sids.first() {
                let api: Api<WhatsAppChannel> = Api::namespaced(self.client.clone(), &m.ns);
                let ch = api.get(&m.name).await.expect("get channel");
                let recorded = ch.status.and_then(|s| s.confirmation).and_then(|c| c.message_sid);
                assert_eq!(recorded.as_ref(), Some(sid), "{}/{} records its message", m.ns, m.name);
            }
            total += sids.len();
        }
        assert!(from.is_empty(), "messages from numbers no channel has: {from:?}");
        total
    }
}

/// The `Retry-After` seconds of a logged 429 (from the fault that produced it).
pub fn retry_after(r: &RequestRecord) -> Option<u64> {
    r.fault.as_deref()?.split(", ").find_map(|f| f.strip_prefix("rate_limit retry_after="))?.parse().ok()
}

/// Whether the client saw this request fail: a 5xx or 429, no answer (dropped, or abandoned
/// by the client at its timeout), or an answer slower than the client waits (`timeout`).
pub fn failed(r: &RequestRecord, timeout: Duration) -> bool {
    let slow = r.answered.is_some_and(|a| (a - r.time).to_std().unwrap_or_default() >= timeout);
    r.dropped || r.abandoned || slow || r.status.is_some_and(|s| s == 429 || s >= 500)
}

/// A scenario's figures, printed (and appended to `$WAO_CHAOS_REPORT` as a Markdown row).
#[derive(Debug)]
pub struct Figures {
    /// The scenario.
    pub scenario: String,
    /// Channels, namespaces, accounts.
    pub fleet: (usize, usize, usize),
    /// How long the faults lasted.
    pub fault_window: Duration,
    /// Twilio requests that arrived while the faults were on.
    pub during_faults: usize,
    /// Of those, the ones that failed (5xx, 429, dropped, too slow).
    pub failed: usize,
    /// Twilio requests of the whole run.
    pub total: usize,
    /// From the end of the faults until every channel converged.
    pub converge: Duration,
    /// The most requests of one channel, and the bound.
    pub per_channel: (u64, u64),
    /// Confirmation messages at Twilio.
    pub messages: usize,
}

/// The header of the rows [`Figures::report`] appends.
pub const REPORT_HEADER: &str = "| scenario | channels / namespaces / accounts | faults s | requests during faults | of which failed | requests in all | converged s after faults | max requests per channel (bound) | messages |\n|---|---|---:|---:|---:|---:|---:|---:|---:|";

impl Figures {
    /// Prints the figures and appends them to `$WAO_CHAOS_REPORT` when set.
    pub fn report(&self) {
        let row = format!(
            "| {} | {} / {} / {} | {:.0} | {} | {} | {} | {:.1} | {} ({}) | {} |",
            self.scenario,
            self.fleet.0,
            self.fleet.1,
            self.fleet.2,
            self.fault_window.as_secs_f64(),
            self.during_faults,
            self.failed,
            self.total,
            self.converge.as_secs_f64(),
            self.per_channel.0,
            self.per_channel.1,
            self.messages,
        );
        eprintln!("figures: {REPORT_HEADER}\nfigures: {row}");
        if let Some(path) = std::env::var_os("WAO_CHAOS_REPORT").filter(|p| !p.is_empty()) {
            use std::io::Write;
            // The first row of a run writes the header (`make chaos` runs one test at a time).
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                let _ = writeln!(f, "{REPORT_HEADER}");
            }
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
                let _ = writeln!(f, "{row}");
            }
        }
    }
}
