//! Per-account rate-limit holds: after Twilio answers 429 for an account, no request for that
//! account leaves the client until the hold ends (its `Retry-After`, else the operator's
//! shortest backoff), whichever channel or shared read would send it. Passes already under way
//! when the 429 arrived are stopped at their next request, not only passes that start later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accounts Twilio rate-limited (HTTP 429), each until when.
#[derive(Debug, Default)]
pub struct AccountHolds(Mutex<HashMap<String, Instant>>);

impl AccountHolds {
    /// Holds `account` for `d` (extending, never shortening, a current hold); `true` when the
    /// hold is new or longer than before.
    pub fn hold(&self, account: &str, d: Duration) -> bool {
        let until = Instant::now().checked_add(d).unwrap_or_else(Instant::now);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(account) {
            Some(current) if *current >= until => false,
            Some(current) => {
                *current = until;
                true
            }
            None => {
                map.insert(account.to_owned(), until);
                true
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_per_account_extends_and_ends() {
        let holds = AccountHolds::default();
        assert!(holds.hold("AC1", Duration::from_secs(30)));
        assert!(!holds.hold("AC1", Duration::from_secs(1)), "a shorter hold changes nothing");
        assert!(holds.remaining("AC1").is_some_and(|d| d > Duration::from_secs(29)), "never shortened");
        assert_eq!(holds.remaining("AC2"), None, "per account");
        holds.hold("AC2", Duration::ZERO);
        assert_eq!(holds.remaining("AC2"), None, "a zero hold is over at once");
    }
}
