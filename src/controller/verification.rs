//! Checks shared by channels: one credentials verification per Twilio account and credentials,
//! and one identity-server check per server, client and secret, per interval (single-flight:
//! concurrent channels wait for one request).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::single_flight::Slots;

use crate::twilio::{
    ContentApproval, Credentials, IdentityClient, IdentityError, Secret, TwilioClient, TwilioError, Verification,
};

/// The result of a verification: success, or a refusal. Success and permanent refusals are cached
/// for the verification interval, a 429 until its Retry-After, other transient failures never.
pub type Outcome = Result<Verification, TwilioError>;

/// Results of a check, keyed by what the check depends on (digests, never secrets), each valid
/// for as long as the check says.
#[derive(Debug)]
pub struct SharedChecks<T> {
    /// Per key: a result and the moment it stops counting.
    slots: Slots<String, Option<(Instant, T)>>,
}

impl<T> Default for SharedChecks<T> {
    fn default() -> Self {
        Self { slots: Slots::default() }
    }
}

impl<T: Clone> SharedChecks<T> {
    /// The result for `key`: cached, or from `check` (run by one caller while the others wait).
    /// `valid_for` says how long a fresh result stands (`None`: not cached). Returns the result
    /// and whether `check` ran now.
    pub async fn get<F, Fut>(&self, key: String, check: F, valid_for: impl Fn(&T) -> Option<Duration>) -> (T, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.slots.retain(|_, entry| entry.is_none_or(fresh));
        let slot = self.slots.slot(key);
        let mut guard = slot.lock().await;
        if let Some((_, result)) = guard.as_ref().filter(|(until, _)| Instant::now() < *until) {
            return (result.clone(), false);
        }
        let result = check().await;
        *guard = valid_for(&result).and_then(|d| Instant::now().checked_add(d)).map(|until| (until, result.clone()));
        (result, true)
    }

    /// Forgets every result whose key starts with `prefix`.
    pub fn invalidate_prefix(&self, prefix: &str) {
        self.slots.forget_matching(|k| k.starts_with(prefix));
    }
}

fn fresh<T>(entry: &Option<(Instant, T)>) -> bool {
    entry.as_ref().is_some_and(|(until, _)| Instant::now() < *until)
}

/// Cached verifications keyed by account SID and credentials fingerprint (never the secret).
#[derive(Debug, Default)]
pub struct VerificationCache(SharedChecks<Outcome>);

impl VerificationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verification of `creds`, from the cache when younger than `ttl`, else from Twilio.
    /// Returns the outcome and whether Twilio was asked now.
    pub async fn verify(&self, twilio: &TwilioClient, creds: &Credentials, ttl: Duration) -> (Outcome, bool) {
        let key = format!("{}\0{}", creds.account_sid(), creds.fingerprint());
        self.0
            .get(
                key,
                || twilio.verify_credentials(creds),
                |outcome| match outcome {
                    // Channels waiting for this verification must not each ask again inside the window.
                    Err(TwilioError::RateLimited { retry_after, .. }) => *retry_after,
                    Err(e) if e.is_transient() => None,
                    _ => Some(ttl),
                },
            )
            .await
    }

    /// Forgets the cached verification of these credentials of `account_sid` (e.g. after Twilio
    /// said 401 on a later call with them); other credentials of the account keep theirs.
    pub fn invalidate(&self, account_sid: &str, fingerprint: &str) {
        self.0.invalidate_prefix(&format!("{account_sid}\0{fingerprint}"));
    }
}

/// Identity-server checks keyed by a digest of server URL, client id and secret.
#[derive(Debug, Default)]
pub struct IdentityChecks(SharedChecks<Result<(), IdentityError>>);

impl IdentityChecks {
    /// Whether the server issues a token to the client: cached for `ttl` (a refusal too), a
    /// transient failure not at all.
    pub async fn check(
        &self,
        identity: &IdentityClient,
        url: &str,
        client_id: &str,
        secret: &Secret,
        ttl: Duration,
    ) -> Result<(), IdentityError> {
        let mut hash = Sha256::new();
        for part in [url, client_id, secret.expose()] {
            hash.update(part.as_bytes());
            hash.update(b"\0");
        }
        let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let check =
            || async { identity.request_client_credentials_token(url, client_id, secret, None).await.map(|_| ()) };
        self.0
            .get(key, check, |r| match r {
                Err(e) if e.is_transient() => None,
                _ => Some(ttl),
            })
            .await
            .0
    }
}

/// Confirmation templates' WhatsApp approvals, keyed by account and Content SID: one read per
/// template and interval, shared by the account's channels.
#[derive(Debug, Default)]
pub struct TemplateChecks(SharedChecks<Result<Option<ContentApproval>, TwilioError>>);

impl TemplateChecks {
    /// The approval of `content_sid` on the account of `creds`: cached for `ttl` (a missing
    /// template too), a transient failure not at all.
    pub async fn approval(
        &self,
        twilio: &TwilioClient,
        creds: &Credentials,
        content_sid: &str,
        ttl: Duration,
    ) -> Result<Option<ContentApproval>, TwilioError> {
        let key = format!("{}/{content_sid}", creds.account_sid());
        let check = || async { twilio.fetch_content_approval(creds, content_sid).await };
        self.0
            .get(key, check, |r| match r {
                Err(e) if e.is_transient() => None,
                // Not approved yet: looked at again sooner, as a sender that is not online is.
                Ok(Some(a)) if !a.is_approved() && !a.is_refused() => Some(ttl.min(Duration::from_secs(60))),
                _ => Some(ttl),
            })
            .await
            .0
    }
}

/// Accounts Twilio rate-limited (HTTP 429); the Twilio client sends nothing for them until
/// the hold ends.
pub use crate::twilio::AccountHolds;

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

    /// How long the last check of `uid` still stands for these inputs, if it does.
    pub fn left(&self, uid: &str, inputs: &str) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let a = map.get(uid).filter(|a| a.inputs == inputs)?;
        let left = a.valid_for.saturating_sub(a.at.elapsed());
        (!left.is_zero()).then_some(left)
    }

    /// Forgets channel `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forgetting_one_credential_keeps_the_others_of_the_account() {
        let checks: SharedChecks<u32> = SharedChecks::default();
        let hour = |_: &u32| Some(Duration::from_secs(3600));
        for key in ["AC1\0old", "AC1\0new", "AC2\0old"] {
            let (_, ran) = checks.get(key.into(), || async { 1 }, hour).await;
            assert!(ran);
        }
        checks.invalidate_prefix("AC1\0old");
        let ran = |key: &'static str| {
            let checks = &checks;
            async move { checks.get(key.into(), || async { 2 }, hour).await.1 }
        };
        assert!(ran("AC1\0old").await, "the forgotten one is checked again");
        assert!(!ran("AC1\0new").await, "the rotated-in credentials keep their verification");
        assert!(!ran("AC2\0old").await);
    }
}
