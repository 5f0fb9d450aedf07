//! [`ReceiverWatch`]: the Debugger alerts (Monitor API) of each Twilio account with channels,
//! read by one poller per account on an interval and shared by every channel of the account.
//!
//! A channel's pass registers what identifies its alerts ([`ReceiverMatcher`]) and reads its
//! health from the account's alerts in memory: no Twilio call. The poller lists the alerts that
//! occurred since the newest one it has seen (the first listing: the quiet window), at most
//! `max_pages` pages; a 429 puts the account on the shared rate-limit hold, which the poller
//! waits out like every other request of the account. After each listing it wakes the channels
//! whose health changed (new alerts, or the quiet window passed), so a Ready channel needs no
//! pass per interval. An account no channel registered for `idle_after` is dropped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::telemetry::metrics::ReceiverAlertLabels;
use crate::telemetry::Metrics;
use crate::twilio::{AccountHolds, Alert, Credentials, TwilioClient, TwilioError};

use super::plan::receiver::{summarize, ReceiverMatcher, ReceiverState, ReceiverView};
use super::stored::StoredChannel;

/// The alerts one listing may read: pages of this size.
pub const ALERTS_PAGE_SIZE: u32 = 200;

/// How the watch polls.
#[derive(Clone, Debug)]
pub struct ReceiverSettings {
    /// Time between two listings of an account (zero: receiver health is off).
    pub interval: Duration,
    /// Alerts older than this no longer make a receiver unhealthy.
    pub quiet_window: Duration,
    /// Pages one listing reads at most.
    pub max_pages: usize,
    /// An account no channel registered for this long is no longer polled.
    pub idle_after: Duration,
}

/// A channel, by namespace and name.
type ChannelKey = (String, String);

/// One channel's registration: kept small (one per channel of the fleet), its strings shared
/// with the account's (`creds`, `matcher.url`) and its sets empty until an alert matches.
#[derive(Debug)]
struct Registration {
    matcher: ReceiverMatcher,
    /// The fingerprint of the credentials the channel uses (a key of `Account::creds`).
    creds: Arc<str>,
    seen: Instant,
    /// What the channel was last given or woken for.
    reported: Option<Box<ReceiverState>>,
    /// Alert SIDs already counted in the metric.
    counted: BTreeSet<String>,
    /// The error codes the metric has a series of for this channel.
    codes: BTreeSet<String>,
}

#[derive(Debug)]
struct Account {
    /// The credentials the account's channels use, by fingerprint, and whether a listing
    /// with them was refused (401/403/404): one channel's wrong Secret does not blind the others.
    creds: HashMap<Arc<str>, (Credentials, bool)>,
    channels: HashMap<ChannelKey, Registration>,
    /// The receiver URLs of the channels, each held once.
    urls: HashSet<Arc<str>>,
    /// Alerts within the quiet window, by SID.
    alerts: HashMap<String, Alert>,
    /// The newest alert time seen: the next listing's `StartDate`.
    cursor: Option<DateTime<Utc>>,
    /// Whether a listing answered, and how (an `Err`: the credentials may not read alerts).
    listed: Option<Result<(), String>>,
    truncated: bool,
}

/// The per-account alert pollers. Cheap to clone.
#[derive(Clone)]
pub struct ReceiverWatch {
    inner: Arc<Inner>,
}

struct Inner {
    twilio: TwilioClient,
    holds: Arc<AccountHolds>,
    metrics: Arc<Metrics>,
    settings: ReceiverSettings,
    accounts: Mutex<HashMap<String, Arc<Mutex<Account>>>>,
    wake: mpsc::UnboundedSender<ObjectRef<StoredChannel>>,
    /// Only the leader lists (a follower's pollers wait until it leads or goes idle).
    leader: Mutex<crate::leader::Leadership>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for ReceiverWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverWatch").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl ReceiverWatch {
    /// A watch that wakes channels through `wake`.
    pub fn new(
        twilio: TwilioClient,
        holds: Arc<AccountHolds>,
        metrics: Arc<Metrics>,
        settings: ReceiverSettings,
        wake: mpsc::UnboundedSender<ObjectRef<StoredChannel>>,
    ) -> Self {
        let inner = Inner {
            twilio,
            holds,
            metrics,
            settings,
            accounts: Mutex::new(HashMap::new()),
            wake,
            leader: Mutex::new(crate::leader::Leadership::always()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Lists only while `leader` leads.
    pub fn set_leadership(&self, leader: crate::leader::Leadership) {
        *lock(&self.inner.leader) = leader;
    }

    /// The receiver health of channel `ns/name` of `account_sid` now, from memory (`None`: the
    /// account's alerts are not read yet). A channel not registered yet (its first pass, or its
    /// first in this process) gets its health from the account's listing too.
    pub fn view(&self, account_sid: &str, ns: &str, name: &str, matcher: &ReceiverMatcher) -> Option<ReceiverView> {
        let account = lock(&self.inner.accounts).get(account_sid).cloned()?;
        let mut a = lock(&account);
        let key = (ns.to_owned(), name.to_owned());
        let state = a.state_for(matcher, self.inner.settings.quiet_window);
        if let Some(reg) = a.channels.get_mut(&key) {
            reg.reported = state.clone().map(Box::new);
        }
        state.map(|state| ReceiverView { window: self.inner.settings.quiet_window, state })
    }

    /// Registers channel `ns/name` with credentials Twilio accepted (starting the account's
    /// poller if it has none; the poller wakes the channel when its health differs from
    /// `given`, what the pass was given by [`Self::view`]).
    pub fn register(
        &self,
        creds: &Credentials,
        ns: &str,
        name: &str,
        matcher: ReceiverMatcher,
        given: Option<&ReceiverState>,
    ) {
        // `--alerts-interval 0`: receiver health is off.
        if self.inner.settings.interval.is_zero() {
            return;
        }
        let sid = creds.account_sid().to_owned();
        let (account, new) = {
            let mut accounts = lock(&self.inner.accounts);
            match accounts.get(&sid) {
                Some(a) => (a.clone(), false),
                None => {
                    let a = Arc::new(Mutex::new(Account {
                        creds: HashMap::new(),
                        channels: HashMap::new(),
                        urls: HashSet::new(),
                        alerts: HashMap::new(),
                        cursor: None,
                        listed: None,
                        truncated: false,
                    }));
                    accounts.insert(sid.clone(), a.clone());
                    (a, true)
                }
            }
        };
        {
            let mut a = lock(&account);
            let fingerprint = creds.fingerprint();
            let fingerprint = match a.creds.get_key_value(fingerprint.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => {
                    let shared: Arc<str> = fingerprint.into();
                    a.creds.insert(shared.clone(), (creds.clone(), false));
                    shared
                }
            };
            let mut matcher = matcher;
            matcher.url = intern(&mut a.urls, matcher.url);
            let key = (ns.to_owned(), name.to_owned());
            let reg = a.channels.entry(key).or_insert_with(|| Registration {
                matcher: matcher.clone(),
                creds: fingerprint.clone(),
                seen: Instant::now(),
                reported: given.cloned().map(Box::new),
                counted: Default::default(),
                codes: Default::default(),
            });
            // `reported` stays what the pass was given (`view`): a new registration whose health
            // was not known yet is woken by the next listing with it.
            reg.matcher = matcher;
            reg.creds = fingerprint;
            reg.seen = Instant::now();
        }
        if new {
            tokio::spawn(poll(self.inner.clone(), sid, account));
        }
    }

    /// Forgets channel `ns/name` (it is being deleted): no more wakes, its metric series go.
    pub fn forget(&self, account_sid: &str, ns: &str, name: &str) {
        let account = lock(&self.inner.accounts).get(account_sid).cloned();
        let gone = account.and_then(|a| {
            let mut a = lock(&a);
            let reg = a.channels.remove(&(ns.to_owned(), name.to_owned()))?;
            // Its receiver URL, if no other registration holds it.
            if Arc::strong_count(&reg.matcher.url) == 2 {
                a.urls.remove(&reg.matcher.url);
            }
            Some(reg)
        });
        if let Some(reg) = gone {
            self.inner.remove_series(ns, name, &reg.codes);
        }
    }
}

/// The copy of `s` that `set` holds (`s`, inserted, if it held none).
fn intern(set: &mut HashSet<Arc<str>>, s: Arc<str>) -> Arc<str> {
    match set.get(&s) {
        Some(held) => held.clone(),
        None => {
            set.insert(s.clone());
            s
        }
    }
}

impl Account {
    /// A channel's state from the alerts in memory (`None` before the first listing).
    fn state_for(&self, matcher: &ReceiverMatcher, window: Duration) -> Option<ReceiverState> {
        match self.listed.as_ref()? {
            Err(why) => Some(ReceiverState::Unreadable(why.clone())),
            Ok(()) => Some(summarize(self.alerts.values(), matcher, Utc::now(), window, self.truncated)),
        }
    }
}

impl Inner {
    /// Removes the channel's `receiver_alerts` series (one per code it counted).
    fn remove_series(&self, ns: &str, name: &str, codes: &BTreeSet<String>) {
        for code in codes {
            self.metrics.receiver_alerts.remove(&ReceiverAlertLabels {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                code: code.clone(),
            });
        }
    }

    /// One listing of `account`'s alerts, merged into memory: with credentials not refused
    /// before (another channel's, when one set is refused), at most one try per set.
    async fn list(&self, sid: &str, account: &Mutex<Account>) {
        let mut tried = HashSet::new();
        loop {
            let next = {
                let mut a = lock(account);
                let used: HashSet<Arc<str>> = a.channels.values().map(|r| r.creds.clone()).collect();
                a.creds.retain(|f, _| used.contains(f));
                let pick = a
                    .creds
                    .iter()
                    .filter(|(f, _)| !tried.contains(*f))
                    .min_by_key(|(_, (_, refused))| *refused)
                    .map(|(f, (c, _))| (f.clone(), c.clone()));
                let window = chrono::Duration::from_std(self.settings.quiet_window).unwrap_or(chrono::Duration::MAX);
                let floor = Utc::now() - window;
                pick.map(|p| (p, a.cursor.map_or(floor, |c| c.max(floor))))
            };
            let Some(((fingerprint, creds), since)) = next else { return };
            tried.insert(fingerprint.clone());
            if self.list_with(sid, account, &fingerprint, &creds, since).await {
                return;
            }
        }
    }

    /// One listing with `creds`; `false` when they were refused (another set may be tried).
    async fn list_with(
        &self,
        sid: &str,
        account: &Mutex<Account>,
        fingerprint: &str,
        creds: &Credentials,
        since: DateTime<Utc>,
    ) -> bool {
        self.metrics.alert_listings.inc();
        let listed = self.twilio.list_alerts(creds, since, ALERTS_PAGE_SIZE, self.settings.max_pages).await;
        let mut a = lock(account);
        let mut done = true;
        match listed {
            Ok(listing) => {
                for alert in listing.alerts {
                    if let Some(t) = alert.time() {
                        a.cursor = Some(a.cursor.map_or(t, |c| c.max(t)));
                    }
                    a.alerts.insert(alert.sid.clone(), alert);
                }
                a.truncated = listing.truncated;
                a.listed = Some(Ok(()));
                if let Some(entry) = a.creds.get_mut(fingerprint) {
                    entry.1 = false;
                }
            }
            // 401: these credentials no longer authenticate (a rotated token). Not a verdict on
            // the receiver: another set is tried, else what was read before stands and the
            // channels' own verification reports the credentials.
            Err(e @ TwilioError::Unauthorized { status: 401, .. }) => {
                tracing::debug!(account = sid, error = %e, "the credentials no longer authenticate; alerts not listed");
                if let Some(entry) = a.creds.get_mut(fingerprint) {
                    entry.1 = true;
                }
                done = false;
            }
            Err(e @ (TwilioError::Unauthorized { .. } | TwilioError::NotFound { .. })) => {
                tracing::warn!(account = sid, error = %e, "the credentials may not read the account's alerts");
                a.listed = Some(Err(e.to_string()));
                if let Some(entry) = a.creds.get_mut(fingerprint) {
                    entry.1 = true;
                }
                done = false;
            }
            Err(e) => {
                if let TwilioError::RateLimited { retry_after, .. } = &e {
                    if self.holds.hold(sid, retry_after.unwrap_or(self.settings.interval)) {
                        self.metrics.rate_limit_holds.inc();
                    }
                }
                // Transient: what was read before stands; the next interval tries again.
                tracing::debug!(account = sid, error = %e, "listing the account's alerts failed; retried next interval");
            }
        }
        let window = chrono::Duration::from_std(self.settings.quiet_window).unwrap_or(chrono::Duration::MAX);
        let floor = Utc::now() - window;
        a.alerts.retain(|_, alert| alert.time().is_none_or(|t| t >= floor));
        done
    }

    /// Counts new matched alerts and wakes each channel whose health changed.
    fn report(&self, account: &Mutex<Account>) {
        let mut a = lock(account);
        let window = self.settings.quiet_window;
        let alerts: Vec<Alert> = a.alerts.values().cloned().collect();
        let states: Vec<(ChannelKey, Option<ReceiverState>)> =
            a.channels.iter().map(|(k, r)| (k.clone(), a.state_for(&r.matcher, window))).collect();
        for (key, state) in states {
            let Some(reg) = a.channels.get_mut(&key) else { continue };
            for alert in alerts.iter().filter(|al| reg.matcher.matches(al)) {
                if reg.counted.insert(alert.sid.clone()) {
                    let code = alert.code().map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
                    reg.codes.insert(code.clone());
                    let labels = ReceiverAlertLabels { namespace: key.0.clone(), name: key.1.clone(), code };
                    self.metrics.receiver_alerts.get_or_create(&labels).inc();
                }
            }
            reg.counted.retain(|sid| alerts.iter().any(|al| &al.sid == sid));
            if reg.reported.as_deref() != state.as_ref() {
                reg.reported = state.map(Box::new);
                let _ = self.wake.send(ObjectRef::new(&key.1).within(&key.0));
            }
        }
    }
}

/// The poller of one account: lists, reports, sleeps the interval (or the account's rate-limit
/// hold), until no channel has registered for `idle_after`.
async fn poll(inner: Arc<Inner>, sid: String, account: Arc<Mutex<Account>>) {
    loop {
        if let Some(wait) = inner.holds.remaining(&sid) {
            tokio::time::sleep(wait).await;
        }
        // Every channel forgotten (deleted, suspended, its credentials refused), or this process
        // no longer leads: no listing.
        let leads = lock(&inner.leader).is_leader();
        if leads && !lock(&account).channels.is_empty() {
            inner.list(&sid, &account).await;
            inner.report(&account);
        }
        tokio::time::sleep(inner.settings.interval).await;
        let idle = {
            let mut a = lock(&account);
            let idle_after = inner.settings.idle_after;
            let gone: Vec<ChannelKey> =
                a.channels.iter().filter(|(_, r)| r.seen.elapsed() > idle_after).map(|(k, _)| k.clone()).collect();
            for key in &gone {
                if let Some(reg) = a.channels.remove(key) {
                    inner.remove_series(&key.0, &key.1, &reg.codes);
                }
            }
            // A URL no registration holds any more.
            a.urls.retain(|u| Arc::strong_count(u) > 1);
            a.channels.is_empty()
        };
        if idle {
            let mut accounts = lock(&inner.accounts);
            // A channel may have registered meanwhile: only an account still idle goes.
            if lock(&account).channels.is_empty() {
                accounts.remove(&sid);
                tracing::debug!(account = %sid, "no channel watches the account's alerts any more");
                return;
            }
        }
    }
}
