//! `ReceiverHealthy`: whether Twilio's webhook requests to the channel's receiver fail, from
//! the account's Debugger alerts (Monitor API) matched to the channel: an alert about
//! `spec.webhook.url` (compared without its fragment, where the ownership marker lives), or,
//! for an alert without a URL, about the number's sender or incoming number. Pure: the alerts
//! are read by [`crate::controller::receiver`], shared by every channel of the account.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;

use crate::api::{ConditionType as T, Reason};
use crate::controller::conditions::Status;
use crate::twilio::Alert;

use super::report::Builder;

/// What identifies a channel's alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverMatcher {
    /// `spec.webhook.url` without its fragment (shared: a receiver serves many channels).
    pub url: std::sync::Arc<str>,
    /// The SIDs of the objects whose webhook is the channel's (sender, incoming number,
    /// Messaging Service).
    pub sids: Vec<String>,
}

/// A URL without its fragment.
pub fn without_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

impl ReceiverMatcher {
    /// Whether `alert` is about this channel's receiver.
    pub fn matches(&self, alert: &Alert) -> bool {
        match alert.request_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => without_fragment(url) == &*self.url,
            None => [&alert.service_sid, &alert.resource_sid]
                .into_iter()
                .flatten()
                .any(|sid| self.sids.iter().any(|s| s == sid)),
        }
    }
}

/// The receiver's health as the account's alerts show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverState {
    /// No matched alert within the window.
    Healthy,
    /// Matched alerts within the window.
    Failing {
        /// How many.
        count: usize,
        /// The newest one's error code.
        last_code: u32,
        /// When it happened.
        last_time: DateTime<Utc>,
        /// Twilio's words for it (`alert_text`'s `Msg`).
        explanation: Option<String>,
        /// Older alerts may be missing: the listing hit its page bound.
        truncated: bool,
    },
    /// The credentials may not read alerts; what Twilio said.
    Unreadable(String),
}

/// A channel's receiver health, with the window it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverView {
    /// The quiet window: alerts older than this no longer count.
    pub window: Duration,
    /// The health.
    pub state: ReceiverState,
}

/// The channel's state from the account's alerts (`alerts`, any order) at `now`.
pub fn summarize<'a>(
    alerts: impl IntoIterator<Item = &'a Alert>,
    matcher: &ReceiverMatcher,
    now: DateTime<Utc>,
    window: Duration,
    truncated: bool,
) -> ReceiverState {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut matched: Vec<(&Alert, DateTime<Utc>)> = alerts
        .into_iter()
        .filter(|a| matcher.matches(a))
        .filter_map(|a| a.time().map(|t| (a, t)))
        .filter(|(_, t)| *t >= since)
        .collect();
    matched.sort_by_key(|(a, t)| (*t, a.sid.clone()));
    match matched.last() {
        None => ReceiverState::Healthy,
        Some((last, t)) => ReceiverState::Failing {
            count: matched.len(),
            last_code: last.code().unwrap_or(0),
            last_time: *t,
            explanation: last.explanation(),
            truncated,
        },
    }
}

/// The reason an error code gives: TLS, unreachable, or any other HTTP failure.
pub fn reason_for_code(code: u32) -> Reason {
    match code {
        11220 | 11235 | 11236 | 11237 => Reason::ReceiverTLSInvalid,
        11205 | 11210 => Reason::ReceiverUnreachable,
        _ => Reason::WebhookFailing,
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

/// The condition for `view`: status, reason, message.
pub fn condition(view: &ReceiverView) -> (Status, Reason, String) {
    let window = human(view.window);
    match &view.state {
        ReceiverState::Healthy => (
            Status::True,
            Reason::ReceiverHealthy,
            format!("No failed Twilio webhook request to the receiver in the last {window} (Twilio Debugger alerts)"),
        ),
        ReceiverState::Failing { count, last_code, last_time, explanation, truncated } => {
            let at_least = if *truncated { "at least " } else { "" };
            let what = explanation.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            (
                Status::False,
                reason_for_code(*last_code),
                format!(
                    "{at_least}{count} failed Twilio webhook request(s) to the receiver in the last {window}; last: error {last_code} at {}{what} (https://www.twilio.com/docs/errors/{last_code})",
                    last_time.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )
        }
        ReceiverState::Unreadable(why) => (
            Status::Unknown,
            Reason::AlertsUnreadable,
            format!("The credentials may not read the account's Debugger alerts (Monitor API): {why}"),
        ),
    }
}

/// Sets `ReceiverHealthy` from the cluster view (kept as it was when the channel's alerts are
/// not read yet), with a Warning Event when it turns False and a Normal one when it recovers.
pub(super) fn report(b: &mut Builder<'_>) {
    // Credentials Twilio refused read no alerts: no receiver health to report.
    if b.set.is(T::CredentialsValid, Status::False) {
        b.set.remove(T::ReceiverHealthy);
        return;
    }
    let Some(view) = b.input.cluster.receiver.as_ref() else {
        // Not read yet (a new process, before its first listing): the last health reported
        // stands, so a restart rewrites nothing.
        b.keep_old(T::ReceiverHealthy);
        return;
    };
    let (status, reason, message) = condition(view);
    let old = b.old.conditions.iter().find(|c| c.type_ == T::ReceiverHealthy.as_str());
    let was_false = old.is_some_and(|c| c.status == "False");
    // Under `affectsReady` the Ready transition's Event tells it (one Event per change).
    let quiet = b.input.ch.spec.receiver_health.affects_ready;
    match status {
        _ if quiet => {}
        Status::False if !was_false || old.is_some_and(|c| c.reason != reason.as_str()) => {
            b.note(EventType::Warning, reason, format!("ReceiverHealthy is False: {message}"));
        }
        Status::True if was_false => b.note(EventType::Normal, reason, format!("ReceiverHealthy is True: {message}")),
        _ => {}
    }
    b.set(T::ReceiverHealthy, status, reason, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(sid: &str, code: &str, url: Option<&str>, service: Option<&str>, at: &str) -> Alert {
        serde_json::from_value(serde_json::json!({
            "sid": sid, "error_code": code, "request_url": url, "service_sid": service,
            "date_generated": at, "alert_text": "Msg=HTTP+retrieval+failure&ErrorCode=11200",
        }))
        .expect("alert")
    }

    fn matcher() -> ReceiverMatcher {
        ReceiverMatcher { url: "https://r.example/hook?x=1".into(), sids: vec!["XE1".into()] }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn alerts_match_by_url_without_fragment_or_by_sid_without_url() {
        let m = matcher();
        assert!(m.matches(&alert("NO1", "11200", Some("https://r.example/hook?x=1"), None, "2026-12-01T11:59:00Z")));
        assert!(m.matches(&alert(
            "NO1",
            "11200",
            Some("https://r.example/hook?x=1#wao-owner=c/n/x/i"),
            None,
            "2026-12-01T11:59:00Z"
        )));
        assert!(
            !m.matches(&alert("NO1", "11200", Some("https://r.example/hook?x=2"), Some("XE1"), "2026-12-01T11:59:00Z")),
            "another URL of the same sender: its fallback, not ours"
        );
        assert!(m.matches(&alert("NO1", "11200", None, Some("XE1"), "2026-12-01T11:59:00Z")));
        assert!(!m.matches(&alert("NO1", "11200", None, Some("XE2"), "2026-12-01T11:59:00Z")));
    }

    #[test]
    fn the_window_counts_and_the_newest_code_decides() {
        let m = matcher();
        let url = Some("https://r.example/hook?x=1");
        let alerts = vec![
            alert("NO0", "11200", url, None, "2026-12-01T10:00:00Z"),
            alert("NO1", "11200", url, None, "2026-12-01T11:50:00Z"),
            alert("NO2", "11237", url, None, "2026-12-01T11:55:00Z"),
            alert("NO3", "11205", Some("https://other.example"), None, "2026-12-01T11:58:00Z"),
        ];
        let s = summarize(&alerts, &m, now(), Duration::from_secs(900), false);
        let ReceiverState::Failing { count, last_code, .. } = &s else { panic!("{s:?}") };
        assert_eq!((*count, *last_code), (2, 11237), "the old one and the other URL's do not count");
        let view = ReceiverView { window: Duration::from_secs(900), state: s };
        let (status, reason, message) = condition(&view);
        assert_eq!((status, reason), (Status::False, Reason::ReceiverTLSInvalid));
        assert!(
            message.contains("2 failed") && message.contains("11237") && message.contains("2026-12-01T11:55:00Z"),
            "{message}"
        );
        assert!(message.contains("HTTP retrieval failure"), "Twilio's explanation: {message}");
        // After the quiet window: healthy again.
        let later = now() + chrono::Duration::minutes(16);
        assert_eq!(summarize(&alerts, &m, later, Duration::from_secs(900), false), ReceiverState::Healthy);
    }

    #[test]
    fn each_code_family_has_its_reason() {
        assert_eq!(reason_for_code(11200), Reason::WebhookFailing);
        assert_eq!(reason_for_code(11215), Reason::WebhookFailing);
        assert_eq!(reason_for_code(11750), Reason::WebhookFailing);
        assert_eq!(reason_for_code(11205), Reason::ReceiverUnreachable);
        assert_eq!(reason_for_code(11210), Reason::ReceiverUnreachable);
        for tls in [11220, 11235, 11236, 11237] {
            assert_eq!(reason_for_code(tls), Reason::ReceiverTLSInvalid);
        }
        let v = ReceiverView { window: Duration::from_secs(60), state: ReceiverState::Unreadable("403".into()) };
        assert_eq!(condition(&v).0, Status::Unknown);
    }
}
