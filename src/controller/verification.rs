//! One credentials verification per Twilio account and credentials per interval, shared by all
//! channels of that account (and single-flight: concurrent channels wait for one request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::twilio::{Credentials, TwilioClient, TwilioError, Verification};

/// The result of a verification: success, or a refusal. Success and permanent refusals are cached
/// for the verification interval, a 429 until its Retry-After, other transient failures never.
pub type Outcome = Result<Verification, TwilioError>;

/// A cached outcome and the moment it stops counting.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Outcome)>>>;

/// Cached verifications keyed by account SID and credentials fingerprint (never the secret).
#[derive(Debug, Default)]
pub struct VerificationCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl VerificationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verification of `creds`, from the cache when younger than `ttl`, else from Twilio.
    /// Returns the outcome and whether Twilio was asked now.
    pub async fn verify(&self, twilio: &TwilioClient, creds: &Credentials, ttl: Duration) -> (Outcome, bool) {
        let key = (creds.account_sid().to_owned(), creds.fingerprint());
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.try_lock().map(|g| fresh(&g)).unwrap_or(true));
            slots.entry(key).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some((_, outcome)) = guard.as_ref().filter(|(until, _)| Instant::now() < *until) {
            return (outcome.clone(), false);
        }
        let outcome = twilio.verify_credentials(creds).await;
        *guard = match &outcome {
            // Channels waiting for this verification must not each ask again inside the window.
            Err(TwilioError::RateLimited { retry_after: Some(d), .. }) => {
                Instant::now().checked_add(*d).map(|until| (until, outcome.clone()))
            }
            Err(e) if e.is_transient() => None,
            _ => Instant::now().checked_add(ttl).map(|until| (until, outcome.clone())),
        };
        (outcome, true)
    }

    /// Forgets every cached verification of `account_sid` (e.g. after Twilio said 401 on a later
    /// call with the same credentials).
    pub fn invalidate(&self, account_sid: &str) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).retain(|(sid, _), _| sid != account_sid);
    }
}

fn fresh(entry: &Option<(Instant, Outcome)>) -> bool {
    entry.as_ref().is_some_and(|(until, _)| Instant::now() < *until)
}

/// Accounts Twilio rate-limited (HTTP 429): no channel of such an account calls Twilio before
/// the hold ends, so a 429 storm is not answered with more requests.
#[derive(Debug, Default)]
pub struct AccountHolds(Mutex<HashMap<String, Instant>>);

impl AccountHolds {
    /// Holds `account` for `d` (extending, never shortening, a current hold).
    pub fn hold(&self, account: &str, d: Duration) {
        let until = Instant::now().checked_add(d).unwrap_or_else(Instant::now);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(account.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long `account` is still held, if it is.
    pub fn remaining(&self, account: &str) -> Option<Duration> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let wait = map.get(account)?.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            map.remove(account);
            return None;
        }
        Some(wait)
    }
}

/// What a channel's last Twilio check was based on, and when another one is due anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The digest of the inputs it used (see `WhatsAppChannelStatus::verified_inputs`).
    pub inputs: String,
    /// When the check ran.
    pub at: Instant,
    /// How long its result stands without a change.
    pub valid_for: Duration,
}

/// The last Twilio check per channel UID (in memory: after a restart each channel that is not
/// Ready is checked once).
#[derive(Debug, Default)]
pub struct Attempts(Mutex<HashMap<String, Attempt>>);

impl Attempts {
    /// Records a check of channel `uid`.
    pub fn record(&self, uid: &str, attempt: Attempt) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.to_owned(), attempt);
    }

    /// Whether the last check of `uid` still stands for these inputs.
    pub fn still_valid(&self, uid: &str, inputs: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .is_some_and(|a| a.inputs == inputs && a.at.elapsed() < a.valid_for)
    }

    /// Forgets channel `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}
