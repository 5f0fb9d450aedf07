//! Fault injection: rules that make matching requests fail, slow down or lose their connection
//! (before or after the request is applied), optionally for a random share of them, and a
//! per-account limit on concurrent in-flight requests.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::errors::{ApiError, SimError};

/// What a fault rule does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this status and a Twilio error body, without touching state.
    Error {
        /// HTTP status (e.g. 500, 503).
        status: u16,
        /// Twilio error code (default: 20500 for 5xx, 20429 for 429, else 20001).
        #[serde(default)]
        code: Option<u32>,
        /// Error message (default depends on the status).
        #[serde(default)]
        message: Option<String>,
    },
    /// Delay the request, then handle it normally (other rules may still apply).
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// 429 20429, optionally with `Retry-After: <seconds>`.
    RateLimit {
        /// Seconds for the `Retry-After` header; no header when absent.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Close the connection without a response, before the request touches state.
    DropBeforeApply,
    /// Hold the request for `ms`, then close the connection without applying it or answering:
    /// a client whose timeout is shorter times out, and nothing happened.
    StallBeforeApply {
        /// Milliseconds.
        ms: u64,
    },
    /// Apply the request to state, then close the connection without sending the response
    /// (an ambiguous failure: e.g. the message was created but the client never saw the 201).
    DropAfterApply,
    /// Apply the request to state, then hold the response for `ms` before sending it: a client
    /// whose timeout is shorter gives up although the write was applied (an ambiguous timeout).
    LatencyAfterApply {
        /// Milliseconds.
        ms: u64,
    },
}

impl FaultAction {
    /// A short label for the request log.
    pub(crate) fn label(&self) -> String {
        match self {
            FaultAction::Error { status, .. } => format!("error {status}"),
            FaultAction::Latency { ms } => format!("latency {ms}ms"),
            FaultAction::RateLimit { retry_after: Some(s) } => format!("rate_limit retry_after={s}"),
            FaultAction::RateLimit { retry_after: None } => "rate_limit".into(),
            FaultAction::DropBeforeApply => "drop_before_apply".into(),
            FaultAction::StallBeforeApply { ms } => format!("stall_before_apply {ms}ms"),
            FaultAction::DropAfterApply => "drop_after_apply".into(),
            FaultAction::LatencyAfterApply { ms } => format!("latency_after_apply {ms}ms"),
        }
    }

    /// The error response for `Error` and `RateLimit` actions.
    pub(crate) fn error(&self) -> Option<ApiError> {
        match self {
            FaultAction::Error { status, code, message } => {
                let default_code = match status {
                    429 => 20429,
                    500..=599 => 20500,
                    _ => 20001,
                };
                let default_message = match status {
                    429 => "Too Many Requests",
                    503 => "Service Unavailable",
                    500..=599 => "Internal Server Error",
                    _ => "Injected fault",
                };
                Some(ApiError::new(
                    *status,
                    code.unwrap_or(default_code),
                    message.clone().unwrap_or_else(|| default_message.into()),
                ))
            }
            FaultAction::RateLimit { retry_after } => {
                let err = ApiError::too_many_requests();
                Some(match retry_after {
                    Some(s) => err.with_header("Retry-After", s.to_string()),
                    None => err,
                })
            }
            _ => None,
        }
    }
}

/// A fault rule. Empty matchers match everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive).
    #[serde(default)]
    pub method: Option<String>,
    /// Regex matched (unanchored) against the request path.
    #[serde(default)]
    pub path: Option<String>,
    /// Account SID to match (path AccountSid, or the credentials' account).
    #[serde(default)]
    pub account: Option<String>,
    /// How many requests the rule applies to before it expires (absent: forever).
    #[serde(default)]
    pub times: Option<u32>,
    /// The share of matching requests the rule applies to, in percent (1-100; absent: all),
    /// drawn independently per request; a request it spares does not count against `times`.
    #[serde(default)]
    pub percent: Option<u8>,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule applying `action` to every request, forever.
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule { method: None, path: None, account: None, times: None, percent: None, action }
    }

    /// Only for this method.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }

    /// Only for paths matching this regex.
    pub fn path(mut self, regex: &str) -> FaultRule {
        self.path = Some(regex.to_string());
        self
    }

    /// Only for this account.
    pub fn account(mut self, sid: &str) -> FaultRule {
        self.account = Some(sid.to_string());
        self
    }

    /// Only for the next `n` matching requests.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Only for `percent` % of the matching requests, drawn at random per request.
    pub fn percent(mut self, percent: u8) -> FaultRule {
        self.percent = Some(percent);
        self
    }
}

/// An installed rule, as listed by `GET /_sim/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Id for `DELETE /_sim/faults/{id}`.
    pub id: u64,
    /// The rule.
    pub rule: FaultRule,
    /// Remaining applications (`None`: unlimited).
    pub remaining: Option<u32>,
    /// How often it has been applied.
    pub hits: u64,
}

#[derive(Debug)]
struct Installed {
    fault: ActiveFault,
    regex: Option<Regex>,
}

/// The installed rules, and the random draws of their `percent`.
#[derive(Debug)]
pub(crate) struct FaultSet {
    next_id: u64,
    rules: Vec<Installed>,
    rng: StdRng,
}

impl FaultSet {
    /// No rules; `percent` draws seeded from `seed` (reproducible), else from OS entropy.
    pub fn new(seed: Option<u64>) -> FaultSet {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        FaultSet { next_id: 0, rules: Vec::new(), rng }
    }

    pub fn add(&mut self, rule: FaultRule) -> Result<u64, SimError> {
        let regex = match &rule.path {
            Some(p) => Some(Regex::new(p).map_err(|e| SimError::InvalidFault(e.to_string()))?),
            None => None,
        };
        if let FaultAction::Error { status, .. } = &rule.action {
            if !(400..=599).contains(status) {
                return Err(SimError::InvalidFault(format!("status {status}: use a 4xx or 5xx status")));
            }
        }
        if rule.times == Some(0) {
            return Err(SimError::InvalidFault("times must be at least 1".into()));
        }
        if rule.percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(SimError::InvalidFault("percent must be between 1 and 100".into()));
        }
        self.next_id += 1;
        let id = self.next_id;
        self.rules.push(Installed { fault: ActiveFault { id, remaining: rule.times, rule, hits: 0 }, regex });
        Ok(id)
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.fault.id != id);
        before != self.rules.len()
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.rules.iter().map(|r| r.fault.clone()).collect()
    }

    /// Takes the actions for one request: every matching latency rule, then at most one
    /// terminating rule (first match). A rule with `percent` matches only when its draw says
    /// so. Each taken rule consumes one of its `times`.
    pub fn take(&mut self, method: &str, path: &str, account: Option<&str>) -> Vec<FaultAction> {
        let mut actions = Vec::new();
        let mut terminal_taken = false;
        let rng = &mut self.rng;
        for inst in &mut self.rules {
            let rule = &inst.fault.rule;
            let method_ok = rule.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method));
            let path_ok = inst.regex.as_ref().is_none_or(|r| r.is_match(path));
            let account_ok = rule.account.as_deref().is_none_or(|a| Some(a) == account);
            if !(method_ok && path_ok && account_ok) {
                continue;
            }
            let is_latency = matches!(rule.action, FaultAction::Latency { .. });
            if !is_latency && terminal_taken {
                continue;
            }
            if rule.percent.is_some_and(|p| rng.random_range(0..100u8) >= p) {
                continue;
            }
            terminal_taken |= !is_latency;
            actions.push(rule.action.clone());
            inst.fault.hits += 1;
            if let Some(n) = inst.fault.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        self.rules.retain(|r| r.fault.remaining != Some(0));
        actions
    }
}

/// Per-account concurrency limits and in-flight counters.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    default_limit: Option<usize>,
    limits: HashMap<String, usize>,
    in_flight: HashMap<String, usize>,
}

impl Limiter {
    /// Sets the limit for one account, or the default for all when `account` is `None`.
    pub fn set(&mut self, account: Option<&str>, limit: Option<usize>) {
        match (account, limit) {
            (None, l) => self.default_limit = l,
            (Some(a), Some(l)) => {
                self.limits.insert(a.to_string(), l);
            }
            (Some(a), None) => {
                self.limits.remove(a);
            }
        }
    }

    /// Tries to admit one more request for `account`. `Err(n)` carries the in-flight count.
    pub fn acquire(&mut self, account: &str) -> Result<(), usize> {
        let limit = self.limits.get(account).copied().or(self.default_limit);
        let count = self.in_flight.entry(account.to_string()).or_insert(0);
        if let Some(limit) = limit {
            if *count >= limit {
                return Err(*count);
            }
        }
        *count += 1;
        Ok(())
    }

    pub fn release(&mut self, account: &str) {
        if let Some(c) = self.in_flight.get_mut(account) {
            *c = c.saturating_sub(1);
        }
    }

    pub fn in_flight(&self, account: &str) -> usize {
        self.in_flight.get(account).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_expire_and_latency_stacks() {
        let mut set = FaultSet::new(None);
        set.add(FaultRule::new(FaultAction::Latency { ms: 5 })).unwrap();
        set.add(FaultRule::new(FaultAction::DropBeforeApply).method("post").path(r"/Messages\.json$").times(1))
            .unwrap();
        let a = set.take("POST", "/2010-04-01/Accounts/AC1/Messages.json", None);
        assert_eq!(a.len(), 2);
        let b = set.take("POST", "/2010-04-01/Accounts/AC1/Messages.json", None);
        assert_eq!(b, vec![FaultAction::Latency { ms: 5 }]);
        assert_eq!(set.list().len(), 1);
    }

    #[test]
    fn limiter_counts() {
        let mut l = Limiter::default();
        l.set(Some("AC1"), Some(1));
        assert!(l.acquire("AC1").is_ok());
        assert_eq!(l.acquire("AC1"), Err(1));
        l.release("AC1");
        assert!(l.acquire("AC1").is_ok());
        assert!(l.acquire("AC2").is_ok());
    }

    #[test]
    fn bad_regex_is_rejected() {
        let mut set = FaultSet::new(None);
        assert!(set.add(FaultRule::new(FaultAction::DropBeforeApply).path("(")).is_err());
    }

    #[test]
    fn percent_applies_to_about_that_share_and_spared_requests_keep_their_times() {
        let mut set = FaultSet::new(Some(7));
        set.add(FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).percent(30)).unwrap();
        let hit = (0..10_000).filter(|_| !set.take("GET", "/x", None).is_empty()).count();
        assert!((2_700..=3_300).contains(&hit), "30 % of 10,000 requests, got {hit}");
        assert_eq!(set.list()[0].hits, hit as u64);

        // A spared request neither consumes `times` nor hides a later rule.
        let mut set = FaultSet::new(Some(7));
        set.add(FaultRule::new(FaultAction::DropBeforeApply).percent(50).times(3)).unwrap();
        set.add(FaultRule::new(FaultAction::RateLimit { retry_after: None })).unwrap();
        let taken: Vec<_> = (0..40).map(|_| set.take("GET", "/x", None)).collect();
        let drops = taken.iter().filter(|a| a.as_slice() == [FaultAction::DropBeforeApply]).count();
        assert_eq!(drops, 3, "the rule expires after three applications");
        assert!(taken.iter().all(|a| a.len() == 1), "every other request meets the next rule");
        assert_eq!(set.list().len(), 1);
    }

    #[test]
    fn percent_draws_are_reproducible_with_a_seed() {
        let draws = |seed| {
            let mut set = FaultSet::new(Some(seed));
            set.add(FaultRule::new(FaultAction::DropBeforeApply).percent(30)).unwrap();
            (0..64).map(|_| set.take("GET", "/x", None).len()).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
    }

    #[test]
    fn percent_out_of_range_is_rejected() {
        let mut set = FaultSet::new(None);
        for p in [0, 101] {
            assert!(set.add(FaultRule::new(FaultAction::DropBeforeApply).percent(p)).is_err(), "{p}");
        }
        assert!(set.add(FaultRule::new(FaultAction::DropBeforeApply).percent(100)).is_ok());
    }

    #[test]
    fn stall_before_apply_is_terminal() {
        let mut set = FaultSet::new(None);
        set.add(FaultRule::new(FaultAction::StallBeforeApply { ms: 50 }).times(1)).unwrap();
        set.add(FaultRule::new(FaultAction::DropAfterApply)).unwrap();
        assert_eq!(set.take("POST", "/x", None), vec![FaultAction::StallBeforeApply { ms: 50 }]);
        assert_eq!(set.take("POST", "/x", None), vec![FaultAction::DropAfterApply]);
        assert_eq!(FaultAction::StallBeforeApply { ms: 50 }.label(), "stall_before_apply 50ms");
        assert!(FaultAction::StallBeforeApply { ms: 50 }.error().is_none());
    }

    #[test]
    fn latency_after_apply_is_terminal_and_stacks_with_latency() {
        let mut set = FaultSet::new(None);
        set.add(FaultRule::new(FaultAction::Latency { ms: 5 })).unwrap();
        set.add(FaultRule::new(FaultAction::LatencyAfterApply { ms: 50 }).method("POST")).unwrap();
        set.add(FaultRule::new(FaultAction::DropAfterApply).method("POST")).unwrap();
        let a = set.take("POST", "/2010-04-01/Accounts/AC1/Messages.json", None);
        assert_eq!(a, vec![FaultAction::Latency { ms: 5 }, FaultAction::LatencyAfterApply { ms: 50 }]);
        assert_eq!(FaultAction::LatencyAfterApply { ms: 50 }.label(), "latency_after_apply 50ms");
        assert!(FaultAction::LatencyAfterApply { ms: 50 }.error().is_none());
    }
}
