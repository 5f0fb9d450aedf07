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
    ContentApproval, CredentialRole, CredentialSet, Credentials, IdentityClient, IdentityError, Secret, TwilioClient,
    TwilioError, Verification,
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

    /// The fresh result for `key`, if one is cached and no caller is computing it now (never
    /// waits, never checks).
    pub fn peek(&self, key: &str) -> Option<T> {
        let slot = self.slots.existing(key)?;
        let guard = slot.try_lock().ok()?;
        guard.as_ref().filter(|(until, _)| Instant::now() < *until).map(|(_, result)| result.clone())
    }

    /// Forgets every result whose key starts with `prefix`.
    pub fn invalidate_prefix(&self, prefix: &str) {
        self.slots.forget_matching(|k| k.starts_with(prefix));
    }
}

fn fresh<T>(entry: &Option<(Instant, T)>) -> bool {
    entry.as_ref().is_some_and(|(until, _)| Instant::now() < *until)
}

/// A verification of a Secret's credentials: the outcome, and which credential gave it.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Success, or the refusal (of the secondary too, when there is one).
    pub outcome: Outcome,
    /// The credential the outcome is about: the primary, or the secondary auth token after
    /// Twilio refused the primary with 401.
    pub role: CredentialRole,
}

/// Cached verifications keyed by account SID and credentials fingerprint (never the secret).
#[derive(Debug, Default)]
pub struct VerificationCache(SharedChecks<Verified>);

impl VerificationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verification of `creds`, from the cache when younger than `ttl`, else from Twilio:
    /// the primary credential, and only when Twilio refuses it (401) the secondary auth token.
    /// Shared per account and credential set, so the fallback costs at most one more call per
    /// account and interval, whatever the number of channels. Returns the verification and
    /// whether Twilio was asked now.
    pub async fn verify(&self, twilio: &TwilioClient, creds: &CredentialSet, ttl: Duration) -> (Verified, bool) {
        let key = format!("{}\0{}", creds.account_sid(), creds.fingerprint());
        self.0
            .get(
                key,
                || verify_set(twilio, creds),
                |v| match &v.outcome {
                    // Channels waiting for this verification must not each ask again inside the window.
                    Err(TwilioError::RateLimited { retry_after, .. }) => *retry_after,
                    Err(e) if e.is_transient() => None,
                    _ => Some(ttl),
                },
            )
            .await
    }

    /// Which credential of `creds` verified, if a fresh successful verification of them is
    /// cached (no request).
    pub fn verified_role(&self, creds: &CredentialSet) -> Option<CredentialRole> {
        let key = format!("{}\0{}", creds.account_sid(), creds.fingerprint());
        self.0.peek(&key).filter(|v| v.outcome.is_ok()).map(|v| v.role)
    }

    /// Forgets the cached verification of these credentials of `account_sid` (e.g. after Twilio
    /// said 401 on a later call with them); other credentials of the account keep theirs.
    pub fn invalidate(&self, account_sid: &str, fingerprint: &str) {
        self.0.invalidate_prefix(&format!("{account_sid}\0{fingerprint}"));
    }
}

/// The primary, then on a 401 the secondary auth token.
async fn verify_set(twilio: &TwilioClient, creds: &CredentialSet) -> Verified {
    let outcome = twilio.verify_credentials(creds.primary()).await;
    match (outcome, creds.secondary()) {
        (Err(TwilioError::Unauthorized { .. }), Some(secondary)) => {
            Verified { outcome: twilio.verify_credentials(secondary).await, role: CredentialRole::Secondary }
        }
        (outcome, _) => Verified { outcome, role: CredentialRole::Primary },
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
/// Ready is checked once). One per channel of the fleet, so kept as hashes: the UID and the
/// inputs' digest each as 64 bits of a keyed hash (a collision among a fleet's channels is
/// about one in 10^12 at 10,000), about 50 bytes a channel instead of 200.
#[derive(Debug, Default)]
pub struct Attempts {
    hasher: std::hash::RandomState,
    by_uid: Mutex<HashMap<u64, Recorded>>,
}

/// An [`Attempt`] as [`Attempts`] keeps it.
#[derive(Debug)]
struct Recorded {
    inputs: u64,
    at: Instant,
    valid_for: Duration,
}

impl Attempts {
    fn hash(&self, s: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, s)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Recorded>> {
        self.by_uid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a check of channel `uid`.
    pub fn record(&self, uid: &str, attempt: Attempt) {
        let recorded = Recorded { inputs: self.hash(&attempt.inputs), at: attempt.at, valid_for: attempt.valid_for };
        self.map().insert(self.hash(uid), recorded);
    }

    /// How long the last check of `uid` still stands for these inputs, if it does.
    pub fn left(&self, uid: &str, inputs: &str) -> Option<Duration> {
        let (uid, inputs) = (self.hash(uid), self.hash(inputs));
        let map = self.map();
        let a = map.get(&uid).filter(|a| a.inputs == inputs)?;
        let left = a.valid_for.saturating_sub(a.at.elapsed());
        (!left.is_zero()).then_some(left)
    }

    /// Forgets channel `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        let uid = self.hash(uid);
        self.map().remove(&uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::testutil::{MockServer, Reply, AC};
    use crate::twilio::Credentials;

    const ACCOUNT: &str = r#"{"sid":"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","friendly_name":"prod","status":"active","type":"Full","owner_account_sid":"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
    const REFUSED: &str = r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#;

    fn rotation() -> CredentialSet {
        CredentialSet::with_secondary(
            Credentials::auth_token(AC, Secret::new("old-primary")),
            Credentials::auth_token(AC, Secret::new("new-secondary")),
        )
    }

    #[tokio::test]
    async fn a_refused_primary_falls_back_to_the_secondary_once_per_interval() {
        let server = MockServer::start(vec![Reply::json(401, REFUSED), Reply::json(200, ACCOUNT)]).await;
        let (client, cache, set) = (server.client(), VerificationCache::new(), rotation());
        let hour = Duration::from_secs(3600);
        let (v, asked) = cache.verify(&client, &set, hour).await;
        assert!(asked && v.outcome.is_ok(), "{:?}", v.outcome);
        assert_eq!(v.role, CredentialRole::Secondary);
        let passwords: Vec<String> =
            server.requests().iter().filter_map(|r| r.basic_auth()).map(|(_, password)| password).collect();
        assert_eq!(passwords, ["old-primary", "new-secondary"]);
        // Every other channel of the account: the cached answer, no request.
        for _ in 0..5 {
            let (v, asked) = cache.verify(&client, &set, hour).await;
            assert!(!asked);
            assert_eq!(v.role, CredentialRole::Secondary);
        }
        assert_eq!(server.requests().len(), 2);
        assert_eq!(cache.verified_role(&set), Some(CredentialRole::Secondary));
    }

    #[tokio::test]
    async fn a_good_primary_never_tries_the_secondary_and_a_refused_pair_is_cached() {
        let server = MockServer::start(vec![Reply::json(200, ACCOUNT)]).await;
        let (client, cache, set) = (server.client(), VerificationCache::new(), rotation());
        let (v, _) = cache.verify(&client, &set, Duration::from_secs(60)).await;
        assert_eq!((v.outcome.is_ok(), v.role), (true, CredentialRole::Primary));
        assert_eq!(server.requests().len(), 1);

        let server = MockServer::start(vec![Reply::json(401, REFUSED), Reply::json(401, REFUSED)]).await;
        let (client, cache) = (server.client(), VerificationCache::new());
        let (v, _) = cache.verify(&client, &set, Duration::from_secs(60)).await;
        assert!(matches!(v.outcome, Err(TwilioError::Unauthorized { .. })));
        assert_eq!(v.role, CredentialRole::Secondary, "the refusal reported is the secondary's");
        let (_, asked) = cache.verify(&client, &set, Duration::from_secs(60)).await;
        assert!(!asked, "a refused pair is not asked again inside the interval");
        assert_eq!(server.requests().len(), 2);
        assert_eq!(cache.verified_role(&set), None, "nothing verified");
    }

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
