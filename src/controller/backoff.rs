//! Per-object exponential backoff with full jitter, cleared on success.
//!
//! kube-runtime's `error_policy` never sees successes, so the reconciler records them here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// `d` plus up to 10% random jitter, so that channels scheduled together spread out.
pub fn with_jitter(d: Duration) -> Duration {
    d + d.mul_f64(rand::rng().random_range(0.0..0.1))
}

/// Failure counts per object key, shared by reconcile and error policy.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, Entry>>,
}

/// Consecutive failures of one object, the earliest time of its next attempt, and what the
/// object asked for when it failed (see [`trigger`]).
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    not_before: Instant,
    trigger: u64,
}

/// A digest of what a channel asks the operator to do: its generation, whether it is being
/// deleted, and the annotations that steer a pass. A backoff holds only while it is unchanged:
/// a deletion, a spec change or `skip-cleanup` during a backoff is acted on at once.
pub fn trigger(ch: &impl kube::Resource) -> u64 {
    use kube::ResourceExt;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ch.meta().generation.hash(&mut h);
    ch.meta().deletion_timestamp.is_some().hash(&mut h);
    for a in [super::SKIP_CLEANUP_ANNOTATION, super::RESEND_CONFIRMATION_ANNOTATION, super::VERIFY_NOW_ANNOTATION] {
        ch.annotations().get(a).hash(&mut h);
    }
    h.finish()
}

impl Backoff {
    /// A backoff that starts around `base` and never exceeds `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, failures: Mutex::new(HashMap::new()) }
    }

    /// Records one more failure of `key` and returns how long to wait before the next attempt:
    /// a random delay in `[cap/2, cap]` where `cap = min(max, base * 2^failures)`, and never less
    /// than `at_least` (a server's `Retry-After`).
    pub fn next_delay(&self, key: &str, at_least: Option<Duration>, trigger: u64) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key.to_owned()).or_insert(Entry { failures: 0, not_before: Instant::now(), trigger });
        entry.trigger = trigger;
        entry.failures = entry.failures.saturating_add(1);
        let cap = self.cap(entry.failures);
        let jittered = if cap.is_zero() {
            cap
        } else {
            let half = cap / 2;
            half + rand::rng().random_range(Duration::ZERO..=half)
        };
        let delay = jittered.max(at_least.unwrap_or_default());
        entry.not_before = Instant::now().checked_add(delay).unwrap_or_else(Instant::now);
        delay
    }

    /// How long `key` must still wait before its next attempt, if it is backing off and still
    /// asks for what it failed at (`trigger`). Other watch events do not cut a backoff short (a
    /// Secret change during a Twilio outage, say).
    pub fn remaining(&self, key: &str, trigger: u64) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(key)?;
        if entry.trigger != trigger {
            return None;
        }
        let wait = entry.not_before.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then_some(wait)
    }

    /// The upper bound of the delay after `failures` consecutive failures.
    pub fn cap(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// Forgets the failures of `key` (call on success).
    pub fn reset(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many consecutive failures `key` has.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).get(key).map_or(0, |e| e.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_reset() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for n in 1..=10u32 {
            let d = b.next_delay("ns/a", None, 0);
            let cap = b.cap(n);
            assert!(d >= cap / 2 && d <= cap, "failure {n}: {d:?} not in [{:?}, {cap:?}]", cap / 2);
        }
        assert_eq!(b.cap(10), Duration::from_secs(60), "capped at max");
        assert_eq!(b.failures("ns/a"), 10);
        assert_eq!(b.failures("ns/b"), 0, "per object");
        b.reset("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let d = b.next_delay("k", Some(Duration::from_secs(30)), 7);
        assert_eq!(d, Duration::from_secs(30));
        let left = b.remaining("k", 7).expect("backing off");
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert_eq!(b.remaining("k", 8), None, "a changed trigger is acted on at once");
        b.reset("k");
        assert_eq!(b.remaining("k", 7), None);
    }
}
