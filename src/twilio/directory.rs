//! [`SenderDirectory`]: an account's WhatsApp senders, listed once per account and interval and
//! shared by every channel of that account.
//!
//! The Senders API has no filter by number, so finding the sender of one number means listing
//! the account's senders. Doing that per channel costs channels × ⌈senders / page size⌉
//! requests per interval; the directory makes it ⌈senders / 1000⌉ per account and interval:
//!
//! - **Shared**: one cache per account SID *and* credentials fingerprint
//!   ([`Credentials::fingerprint`]), so a channel with other (or wrong) credentials for the
//!   same account never reads what someone else's credentials listed. Secrets are never a key
//!   nor logged.
//! - **Single-flight**: concurrent lookups of one account wait for one listing; callers that
//!   waited for a listing that failed get its error instead of each listing again.
//! - **Complete or nothing**: the listing follows every `next_page_url` at the largest page
//!   size ([`crate::twilio::senders::SENDERS_PAGE_SIZE`]); a listing that does not end fails
//!   ([`TwilioError::PageLimit`]) instead of answering "not found" from part of the account.
//! - **Errors**: a permanent error (401/403, 404, a listing that does not end, …) is kept like
//!   a listing, for `max_age`; a transient one (429, 5xx, transport) is never kept: it goes to
//!   the caller (with its `Retry-After`) and to the callers waiting on the same listing, and the
//!   next lookup lists again.
//! - **Bounded memory**: per sender only what the controller uses is kept (SID, status,
//!   webhook, offline reasons; keyed by the number as an integer). A listing older than every
//!   `max_age` asked for is dropped, and an account not looked up for `idle_after` is forgotten.
//!
//! After writing a sender (`update_sender_webhook`), pass Twilio's answer to
//! [`SenderDirectory::update`]. A caller that already knows the sender's SID (from a channel's
//! status) may instead [`TwilioClient::fetch_sender`] it (one request, `None` on 404; check
//! its number) and hand the result to [`SenderDirectory::update`] as well.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::address::E164;
use super::client::TwilioClient;
use super::error::TwilioError;
use super::secret::Credentials;
use super::senders::{OfflineReason, Sender, SenderStatus, SenderWebhook};

/// How long an account's entry is kept after its last lookup, by default (longer than the
/// operator's verification and polling intervals, so a regularly checked account stays).
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(3600);

/// Longest time between two sweeps for idle accounts and stale listings.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Counters and sizes of a [`SenderDirectory`], for tests, metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectoryStats {
    /// Listings started (each is one pass over an account's senders, ⌈senders / 1000⌉ pages
    /// when it succeeds).
    pub listings: u64,
    /// Listings that failed (a transient or permanent error).
    pub failed_listings: u64,
    /// Sender pages received by all listings.
    pub pages: u64,
    /// Cached accounts (account SID + credentials pairs).
    pub accounts: usize,
    /// Senders held in fresh or stale listings, over all accounts.
    pub senders: usize,
}

/// A shared, single-flight cache of each account's WhatsApp senders by number. See the module
/// documentation. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct SenderDirectory {
    slots: Mutex<Slots>,
    idle_after: Duration,
    listings: AtomicU64,
    failed_listings: AtomicU64,
    pages: AtomicU64,
}

#[derive(Debug)]
struct Slots {
    by_key: HashMap<SlotKey, Arc<Slot>>,
    last_sweep: Instant,
}

/// Account SID and credentials fingerprint (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SlotKey {
    account_sid: String,
    fingerprint: String,
}

/// One account + credentials.
#[derive(Debug, Default)]
struct Slot {
    /// Held by the caller that lists; the others wait on it.
    flight: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    /// The last successful listing.
    listing: Option<Listing>,
    /// The last permanent failure, kept like a listing (start time, error).
    failure: Option<(Instant, TwilioError)>,
    /// Finished listing attempts, and the error of the last one (if it failed): callers that
    /// waited for that attempt take its error rather than listing again.
    attempts: u64,
    last_error: Option<TwilioError>,
    /// Senders written through [`SenderDirectory::update`] while a listing was running: applied
    /// on top of that listing, which may predate the write.
    written_during_flight: HashMap<u64, Entry>,
    last_used: Instant,
    /// The longest `max_age` a caller asked for: a listing older than that serves nobody.
    longest_max_age: Duration,
}

impl Default for SlotState {
    fn default() -> Self {
        Self {
            listing: None,
            failure: None,
            attempts: 0,
            last_error: None,
            written_during_flight: HashMap::new(),
            last_used: Instant::now(),
            longest_max_age: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct Listing {
    /// When the listing started (its data is at least this fresh).
    at: Instant,
    /// Senders by number ([`number_key`]).
    senders: HashMap<u64, Entry>,
}

/// What is kept of a sender: what the controller reads and writes back. Its number is the map
/// key; `properties` and `url` are not kept; a webhook with no field set (a sender not wired
/// yet) takes no room.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    sid: Box<str>,
    status: SenderStatus,
    webhook: Option<Box<SenderWebhook>>,
    offline_reasons: Box<[OfflineReason]>,
}

impl Entry {
    fn new(sender: Sender) -> Self {
        let webhook = (sender.webhook != SenderWebhook::default()).then(|| Box::new(sender.webhook));
        Self {
            sid: sender.sid.into_boxed_str(),
            status: sender.status,
            webhook,
            offline_reasons: sender.offline_reasons.into_boxed_slice(),
        }
    }

    fn to_sender(&self, number: &E164) -> Sender {
        Sender {
            sid: self.sid.to_string(),
            sender_id: number.whatsapp(),
            status: self.status.clone(),
            webhook: self.webhook.as_deref().cloned().unwrap_or_default(),
            offline_reasons: self.offline_reasons.to_vec(),
            properties: None,
            url: None,
        }
    }
}

/// An E.164 number as an integer: `+` and at most 15 digits, the first not `0`, so the digits
/// identify the number and fit a `u64` (8 bytes instead of a string per sender).
fn number_key(number: &E164) -> Option<u64> {
    number.as_str().strip_prefix('+')?.parse().ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SlotState {
    /// The answer from what is kept, when it is younger than `max_age`.
    fn answer(&self, key: u64, number: &E164, max_age: Duration) -> Option<Result<Option<Sender>, TwilioError>> {
        if let Some(listing) = self.listing.as_ref().filter(|l| l.at.elapsed() < max_age) {
            return Some(Ok(listing.senders.get(&key).map(|e| e.to_sender(number))));
        }
        match &self.failure {
            Some((at, e)) if at.elapsed() < max_age => Some(Err(e.clone())),
            _ => None,
        }
    }

    fn sender_count(&self) -> usize {
        self.listing.as_ref().map_or(0, |l| l.senders.len())
    }
}

impl Default for SenderDirectory {
    fn default() -> Self {
        Self::new(DEFAULT_IDLE_AFTER)
    }
}

impl SenderDirectory {
    /// An empty directory that forgets an account `idle_after` after its last lookup.
    pub fn new(idle_after: Duration) -> Self {
        Self {
            slots: Mutex::new(Slots { by_key: HashMap::new(), last_sweep: Instant::now() }),
            idle_after,
            listings: AtomicU64::new(0),
            failed_listings: AtomicU64::new(0),
            pages: AtomicU64::new(0),
        }
    }

    /// The WhatsApp sender of `number` in the account of `creds`, from a listing of the
    /// account's senders younger than `max_age`, else from a new listing (one per account and
    /// credentials at a time: concurrent callers wait for it). `Ok(None)`: the complete
    /// listing has no sender for this number.
    ///
    /// The returned [`Sender`] has `sender_id` `whatsapp:<number>`, its SID, status, webhook
    /// and offline reasons; `properties` and `url` are `None` (not kept). A transient error
    /// (429 with its `Retry-After`, 5xx, transport) is returned and not kept; a permanent one
    /// is kept for `max_age`, like a listing.
    pub async fn lookup(
        &self,
        twilio: &TwilioClient,
        creds: &Credentials,
        number: &E164,
        max_age: Duration,
    ) -> Result<Option<Sender>, TwilioError> {
        let key =
            number_key(number).ok_or_else(|| TwilioError::InvalidInput(format!("{number} is not an E.164 number")))?;
        let slot = self.slot(creds, max_age);
        let attempts_seen = {
            let state = lock(&slot.state);
            if let Some(answer) = state.answer(key, number, max_age) {
                return answer;
            }
            state.attempts
        };
        let _flight = slot.flight.lock().await;
        {
            let mut state = lock(&slot.state);
            if let Some(answer) = state.answer(key, number, max_age) {
                return answer;
            }
            if state.attempts != attempts_seen {
                // A listing ran while this caller waited, and failed transiently: take its error
                // rather than asking Twilio again at once.
                if let Some(e) = &state.last_error {
                    return Err(e.clone());
                }
            }
            state.written_during_flight.clear();
        }
        let started = Instant::now();
        self.listings.fetch_add(1, Ordering::Relaxed);
        let mut senders = HashMap::new();
        let mut pages = 0u64;
        let listed = twilio
            .visit_whatsapp_senders(creds, "list_whatsapp_senders", |page| {
                pages += 1;
                for sender in page {
                    // Numbers Twilio does not spell as `whatsapp:+E164` cannot be looked up.
                    if let Some(k) = sender.e164().as_ref().and_then(number_key) {
                        // Two senders for one number: keep the first, as paging to it would.
                        senders.entry(k).or_insert_with(|| Entry::new(sender));
                    }
                }
            })
            .await;
        self.pages.fetch_add(pages, Ordering::Relaxed);
        let mut state = lock(&slot.state);
        state.attempts += 1;
        match listed {
            Ok(()) => {
                let written = std::mem::take(&mut state.written_during_flight);
                senders.extend(written);
                senders.shrink_to_fit();
                tracing::debug!(
                    account = creds.account_sid(),
                    senders = senders.len(),
                    pages,
                    elapsed_ms = super::client::elapsed_ms(started),
                    "listed the account's WhatsApp senders"
                );
                let found = senders.get(&key).map(|e| e.to_sender(number));
                state.listing = Some(Listing { at: started, senders });
                state.failure = None;
                state.last_error = None;
                Ok(found)
            }
            Err(e) => {
                self.failed_listings.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(account = creds.account_sid(), pages, error = %e, "listing the account's WhatsApp senders failed");
                if e.is_transient() {
                    state.last_error = Some(e.clone());
                } else {
                    state.listing = None;
                    state.failure = Some((started, e.clone()));
                    state.last_error = None;
                }
                Err(e)
            }
        }
    }

    /// Records `sender` as Twilio returned it (e.g. the 202 of a webhook update) in every kept
    /// listing of `account_sid`, and in listings running now, so lookups reflect the operator's
    /// own writes without listing again. A sender whose `sender_id` is not `whatsapp:+E164` is
    /// ignored.
    pub fn update(&self, account_sid: &str, sender: &Sender) {
        let Some(key) = sender.e164().as_ref().and_then(number_key) else {
            return;
        };
        let entry = Entry::new(sender.clone());
        let slots = lock(&self.slots);
        for slot in slots.by_key.iter().filter(|(k, _)| k.account_sid == account_sid).map(|(_, s)| s) {
            let mut state = lock(&slot.state);
            if let Some(listing) = state.listing.as_mut() {
                listing.senders.insert(key, entry.clone());
            }
            if slot.flight.try_lock().is_err() {
                state.written_during_flight.insert(key, entry.clone());
            }
        }
    }

    /// Forgets everything kept for `account_sid` (any credentials): the next lookup lists
    /// again. A listing running now still answers the callers waiting for it.
    pub fn invalidate(&self, account_sid: &str) {
        lock(&self.slots).by_key.retain(|k, _| k.account_sid != account_sid);
    }

    /// Drops listings older than every `max_age` asked for, and accounts not looked up for
    /// `idle_after` (lookups do this at most once a minute by themselves).
    pub fn evict_idle(&self) {
        let mut slots = lock(&self.slots);
        self.sweep(&mut slots);
    }

    /// Counters and sizes.
    pub fn stats(&self) -> DirectoryStats {
        let slots = lock(&self.slots);
        DirectoryStats {
            listings: self.listings.load(Ordering::Relaxed),
            failed_listings: self.failed_listings.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            accounts: slots.by_key.len(),
            senders: slots.by_key.values().map(|s| lock(&s.state).sender_count()).sum(),
        }
    }

    /// The slot of `creds` (created if needed), marked as used now.
    fn slot(&self, creds: &Credentials, max_age: Duration) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if slots.last_sweep.elapsed() >= SWEEP_EVERY.min(self.idle_after) {
            self.sweep(&mut slots);
        }
        let key = SlotKey { account_sid: creds.account_sid().to_owned(), fingerprint: creds.fingerprint() };
        let slot = slots.by_key.entry(key).or_default().clone();
        {
            let mut state = lock(&slot.state);
            state.last_used = Instant::now();
            state.longest_max_age = state.longest_max_age.max(max_age);
        }
        slot
    }

    fn sweep(&self, slots: &mut Slots) {
        slots.last_sweep = Instant::now();
        let idle_after = self.idle_after;
        slots.by_key.retain(|_, slot| {
            // A caller holds it (looking up, or listing): keep.
            let in_use = Arc::strong_count(slot) > 1;
            let mut state = lock(&slot.state);
            let longest = state.longest_max_age;
            if state.listing.as_ref().is_some_and(|l| l.at.elapsed() >= longest) {
                state.listing = None;
            }
            if state.failure.as_ref().is_some_and(|(at, _)| at.elapsed() >= longest) {
                state.failure = None;
            }
            in_use || state.last_used.elapsed() < idle_after
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::senders::SENDERS_PAGE_SIZE;
    use crate::twilio::TwilioConfig;
    use twilio_sim::{FaultAction, FaultRule, RequestRecord, SeedAccount, SeedFile, SeedSender, SimConfig, SimHandle};

    #[test]
    fn an_entry_without_a_webhook_is_small_and_reads_back_the_same() {
        assert!(std::mem::size_of::<Entry>() <= 72, "{}", std::mem::size_of::<Entry>());
        let number = E164::parse("+15550001111").expect("number");
        let mut sender = Sender {
            sid: "XE1".into(),
            sender_id: number.whatsapp(),
            status: SenderStatus::Online,
            webhook: SenderWebhook::default(),
            offline_reasons: Vec::new(),
            properties: None,
            url: None,
        };
        let bare = Entry::new(sender.clone());
        assert!(bare.webhook.is_none());
        assert_eq!(bare.to_sender(&number), sender);
        sender.webhook.callback_url = Some("https://r.example/hook".into());
        assert_eq!(Entry::new(sender.clone()).to_sender(&number), sender);
    }

    const BIG: &str = "AC0000000000000000000000000000b160";
    const BIG_TOKEN: &str = "big-token";
    const OTHER: &str = "AC0000000000000000000000000000b161";
    const OTHER_TOKEN: &str = "other-token";
    const MINUTE: Duration = Duration::from_secs(60);

    fn number(i: usize) -> E164 {
        E164::parse(&format!("+1555{i:07}")).unwrap()
    }

    fn seed_sender(i: usize) -> SeedSender {
        SeedSender {
            sid: None,
            sender_id: number(i).whatsapp(),
            status: if i.is_multiple_of(7) {
                twilio_sim::state::SenderStatus::Offline
            } else {
                twilio_sim::state::SenderStatus::Online
            },
            webhook: twilio_sim::state::SenderWebhook {
                callback_url: Some(format!("https://hooks.example/{i}")),
                callback_method: Some("POST".into()),
                ..Default::default()
            },
            configuration: Default::default(),
            profile: Default::default(),
            properties: None,
            offline_reasons: None,
        }
    }

    fn account(sid: &str, token: &str, senders: usize) -> SeedAccount {
        SeedAccount {
            sid: Some(sid.into()),
            friendly_name: sid.into(),
            auth_token: Some(token.into()),
            whatsapp_senders: (0..senders).map(seed_sender).collect(),
            ..Default::default()
        }
    }

    /// A lenient simulator (strict mode would check 1 MB response pages against the spec, slow
    /// in a debug build; the request shapes are checked in `conformance.rs`) with `BIG` holding
    /// `senders` senders and `OTHER` holding 3, and a client pointed at it.
    async fn sim(senders: usize) -> (SimHandle, TwilioClient) {
        let sim = twilio_sim::Simulator::start(SimConfig::default()).await.unwrap();
        sim.seed(&SeedFile {
            accounts: vec![account(BIG, BIG_TOKEN, senders), account(OTHER, OTHER_TOKEN, 3)],
            identity_clients: Vec::new(),
        })
        .unwrap();
        let client = TwilioClient::new(TwilioConfig::with_single_base_url(sim.base_url())).unwrap();
        (sim, client)
    }

    fn creds() -> Credentials {
        Credentials::auth_token(BIG, Secret::new(BIG_TOKEN))
    }

    fn sender_lists(sim: &SimHandle) -> Vec<RequestRecord> {
        sim.requests().into_iter().filter(|r| r.is("GET", "/v2/Channels/Senders")).collect()
    }

    #[tokio::test]
    async fn ten_thousand_senders_one_listing_of_ten_pages_then_none() {
        let (sim, twilio) = sim(10_000).await;
        let dir = SenderDirectory::default();
        let last = number(9_999);

        let found = dir.lookup(&twilio, &creds(), &last, MINUTE).await.unwrap().expect("on the last page");
        assert_eq!(found.sender_id, last.whatsapp());
        assert_eq!(found.e164(), Some(last.clone()));
        assert!(found.sid.starts_with("XE"));
        assert_eq!(found.webhook.callback_url.as_deref(), Some("https://hooks.example/9999"));
        assert!(found.is_online());
        // The simulator's sender is what the directory answered.
        assert_eq!(found.sid, sim.account(BIG).unwrap().sender(&last.whatsapp()).unwrap().sid);

        let pages = sender_lists(&sim);
        let expected = 10_000usize.div_ceil(SENDERS_PAGE_SIZE as usize);
        assert_eq!(expected, 10);
        assert_eq!(pages.len(), expected, "⌈10000 / {SENDERS_PAGE_SIZE}⌉ requests");
        assert!(pages.iter().all(|r| r.query_value("PageSize") == Some("1000") && r.status == Some(200)));
        assert!(pages.iter().all(|r| r.query_value("Channel") == Some("whatsapp")));
        assert_eq!(pages.iter().filter(|r| r.query_value("PageToken").is_some()).count(), expected - 1);
        assert_eq!(
            dir.stats(),
            DirectoryStats { listings: 1, failed_listings: 0, pages: 10, accounts: 1, senders: 10_000 }
        );

        // Within max_age: no request at all, for any number of the account, found or not.
        sim.clear_requests();
        let first = dir.lookup(&twilio, &creds(), &number(0), MINUTE).await.unwrap().unwrap();
        assert_eq!(first.status, SenderStatus::Offline, "every 7th sender is offline");
        assert_eq!(dir.lookup(&twilio, &creds(), &last, MINUTE).await.unwrap(), Some(found));
        assert_eq!(dir.lookup(&twilio, &creds(), &number(10_000), MINUTE).await.unwrap(), None);
        assert!(sim.requests().is_empty(), "{:?}", sim.requests());
        assert_eq!(dir.stats().listings, 1);

        // Older than max_age: one new listing.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(dir.lookup(&twilio, &creds(), &last, Duration::from_millis(10)).await.unwrap().is_some());
        assert_eq!(sender_lists(&sim).len(), expected);
        assert_eq!(dir.stats().listings, 2);
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_account_share_one_listing() {
        let (sim, twilio) = sim(2_500).await;
        // Slow pages, so that all 20 callers arrive while the listing runs.
        sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 50 }).path("^/v2/Channels/Senders$")).unwrap();
        let dir = Arc::new(SenderDirectory::default());
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (dir, twilio) = (dir.clone(), twilio.clone());
                tokio::spawn(async move { dir.lookup(&twilio, &creds(), &number(i * 125), MINUTE).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let sender = task.await.unwrap().unwrap().expect("seeded");
            assert_eq!(sender.e164(), Some(number(i * 125)));
        }
        assert_eq!(dir.stats().listings, 1);
        assert_eq!(sender_lists(&sim).len(), 3, "one listing: ⌈2500 / 1000⌉ pages");

        // Another account, and other credentials of the same account, are listed separately.
        let other = Credentials::auth_token(OTHER, Secret::new(OTHER_TOKEN));
        assert!(dir.lookup(&twilio, &other, &number(2), MINUTE).await.unwrap().is_some());
        assert_eq!(dir.lookup(&twilio, &other, &number(3), MINUTE).await.unwrap(), None);
        let wrong = Credentials::auth_token(BIG, Secret::new("not-the-token"));
        assert!(matches!(dir.lookup(&twilio, &wrong, &number(0), MINUTE).await, Err(TwilioError::Unauthorized { .. })));
        let stats = dir.stats();
        assert_eq!((stats.listings, stats.failed_listings, stats.accounts), (3, 1, 3));
        // The permanent refusal is kept like a listing: no second request.
        assert!(dir.lookup(&twilio, &wrong, &number(0), MINUTE).await.is_err());
        assert_eq!(dir.stats().listings, 3);
    }

    #[tokio::test]
    async fn a_rate_limit_goes_to_every_waiting_caller_and_is_not_kept() {
        let (sim, twilio) = sim(10).await;
        sim.add_fault(FaultRule {
            times: Some(1),
            ..FaultRule::new(FaultAction::RateLimit { retry_after: Some(7) }).path("^/v2/Channels/Senders$")
        })
        .unwrap();
        sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 50 }).path("^/v2/Channels/Senders$")).unwrap();
        let dir = Arc::new(SenderDirectory::default());
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (dir, twilio) = (dir.clone(), twilio.clone());
                tokio::spawn(async move { dir.lookup(&twilio, &creds(), &number(i), MINUTE).await })
            })
            .collect();
        for task in tasks {
            let err = task.await.unwrap().unwrap_err();
            assert!(matches!(err, TwilioError::RateLimited { .. }), "{err}");
            assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        }
        assert_eq!(sender_lists(&sim).len(), 1, "the waiting callers did not each ask again");
        // Not kept: the next lookup lists again (and succeeds).
        assert!(dir.lookup(&twilio, &creds(), &number(1), MINUTE).await.unwrap().is_some());
        assert_eq!(sender_lists(&sim).len(), 2);
        let stats = dir.stats();
        assert_eq!((stats.listings, stats.failed_listings), (2, 1));
    }

    #[tokio::test]
    async fn updates_are_seen_without_listing_and_invalidate_lists_again() {
        let (sim, twilio) = sim(10).await;
        let dir = SenderDirectory::default();
        let n = number(3);
        let before = dir.lookup(&twilio, &creds(), &n, MINUTE).await.unwrap().unwrap();
        let hook = before.webhook.with_callback("https://ours.example/hook", crate::twilio::SenderWebhookMethod::Post);
        let written = twilio.update_sender_webhook(&creds(), &before.sid, &hook).await.unwrap();
        dir.update(BIG, &written);
        sim.clear_requests();
        let after = dir.lookup(&twilio, &creds(), &n, MINUTE).await.unwrap().unwrap();
        assert_eq!(after.webhook.callback_url.as_deref(), Some("https://ours.example/hook"));
        assert_eq!(after.sid, before.sid);
        assert!(sim.requests().is_empty());
        // Another account's update does not leak in.
        dir.update(OTHER, &Sender { sid: "XEother".into(), ..written.clone() });
        assert_eq!(dir.lookup(&twilio, &creds(), &n, MINUTE).await.unwrap().unwrap().sid, before.sid);

        dir.invalidate(BIG);
        assert_eq!(dir.stats().accounts, 0);
        assert!(dir.lookup(&twilio, &creds(), &n, MINUTE).await.unwrap().is_some());
        assert_eq!(sender_lists(&sim).len(), 1);
        assert_eq!(dir.stats().listings, 2);
    }

    #[tokio::test]
    async fn an_update_during_a_listing_is_applied_on_top_of_it() {
        let (sim, twilio) = sim(10).await;
        sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 200 }).path("^/v2/Channels/Senders$")).unwrap();
        let dir = Arc::new(SenderDirectory::default());
        let n = number(4);
        let listing = {
            let (dir, twilio, n) = (dir.clone(), twilio.clone(), n.clone());
            tokio::spawn(async move { dir.lookup(&twilio, &creds(), &n, MINUTE).await })
        };
        // While the listing waits on its (slow) page, the operator writes the webhook.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut written = sim_sender(&sim, &n);
        written.webhook.callback_url = Some("https://written.example".into());
        dir.update(BIG, &written);
        listing.await.unwrap().unwrap();
        let seen = dir.lookup(&twilio, &creds(), &n, MINUTE).await.unwrap().unwrap();
        assert_eq!(seen.webhook.callback_url.as_deref(), Some("https://written.example"));
        assert_eq!(dir.stats().listings, 1);
    }

    /// The simulator's sender of `n`, as the client would decode it.
    fn sim_sender(sim: &SimHandle, n: &E164) -> Sender {
        let s = sim.account(BIG).unwrap().sender(&n.whatsapp()).unwrap().clone();
        Sender {
            sid: s.sid,
            sender_id: s.sender_id,
            status: SenderStatus::Online,
            webhook: SenderWebhook::default(),
            offline_reasons: Vec::new(),
            properties: None,
            url: None,
        }
    }

    #[tokio::test]
    async fn idle_accounts_and_stale_listings_are_dropped() {
        let (_sim, twilio) = sim(10).await;
        let dir = SenderDirectory::new(Duration::from_secs(1));
        let other = Credentials::auth_token(OTHER, Secret::new(OTHER_TOKEN));
        dir.lookup(&twilio, &creds(), &number(1), Duration::from_millis(300)).await.unwrap();
        dir.lookup(&twilio, &other, &number(1), MINUTE).await.unwrap();
        assert_eq!((dir.stats().accounts, dir.stats().senders), (2, 13));
        tokio::time::sleep(Duration::from_millis(400)).await;
        dir.evict_idle();
        // BIG's listing is older than any max_age asked for: dropped, the account kept.
        assert_eq!((dir.stats().accounts, dir.stats().senders), (2, 3));
        tokio::time::sleep(Duration::from_millis(700)).await;
        dir.evict_idle();
        assert_eq!(dir.stats(), DirectoryStats { listings: 2, failed_listings: 0, pages: 2, accounts: 0, senders: 0 });
    }

    #[test]
    fn numbers_key_as_integers() {
        assert_eq!(number_key(&E164::parse("+14155238886").unwrap()), Some(14_155_238_886));
        assert_eq!(number_key(&E164::parse("+999999999999999").unwrap()), Some(999_999_999_999_999));
        assert_ne!(number_key(&E164::parse("+12").unwrap()), number_key(&E164::parse("+120").unwrap()));
    }
}
