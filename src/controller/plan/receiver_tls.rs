//! The `ReceiverTLS` condition (`--receiver-tls-check`): what the receiver's TLS handshake
//! found, against the warning window. Informational: it never blocks Ready.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;

use crate::api::{ConditionType as T, Reason};
use crate::controller::conditions::Status;
use crate::controller::receiver_tls::ReceiverTls;

use super::report::Builder;
use super::Read;

/// The condition for `found` at `now` with a warning window of `warn`.
pub(super) fn condition(found: &ReceiverTls, now: DateTime<Utc>, warn: Duration) -> (Status, Reason, String) {
    let date = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    match found {
        ReceiverTls::Verified { not_after } => {
            let left = (*not_after - now).to_std().unwrap_or_default();
            if left <= warn {
                let days = left.as_secs() / 86_400;
                (
                    Status::False,
                    Reason::CertificateExpiring,
                    format!(
                        "The receiver's certificate expires on {} (in {days} days, within the {}-day warning window): renew it",
                        date(not_after),
                        warn.as_secs() / 86_400
                    ),
                )
            } else {
                (
                    Status::True,
                    Reason::CertificateValid,
                    format!("The receiver's certificate is valid for its host name until {}", date(not_after)),
                )
            }
        }
        ReceiverTls::Refused { why, not_after } => {
            let until = not_after.as_ref().map(|t| format!(" (notAfter {})", date(t))).unwrap_or_default();
            (Status::False, Reason::CertificateInvalid, format!("The receiver's TLS handshake failed: {why}{until}"))
        }
        ReceiverTls::Unreachable(why) => {
            (Status::Unknown, Reason::ReceiverUnreachable, format!("No TLS handshake with the receiver: {why}"))
        }
        ReceiverTls::NotAllowed(why) => (
            Status::False,
            Reason::ReceiverNotAllowed,
            format!("The receiver's certificate is not checked: {why}; no connection was made"),
        ),
    }
}

/// Sets `ReceiverTLS` from the handshake (asked for first), with a Warning Event when it turns
/// False; removes it when the watch is off. `Some`: the read the plan needs.
pub(super) fn check(b: &mut Builder<'_>) -> Option<Read> {
    let Some(warn) = b.input.config.receiver_tls_warn else {
        b.set.remove(T::ReceiverTLS);
        return None;
    };
    let Some(found) = b.input.twilio.receiver_tls.clone() else {
        return Some(Read::ReceiverTls);
    };
    let now = crate::controller::clock::to_chrono(b.input.now).unwrap_or_default();
    let (status, reason, message) = condition(&found, now, warn);
    let was_false = b.old.conditions.iter().any(|c| c.type_ == T::ReceiverTLS.as_str() && c.status == "False");
    if status == Status::False && !was_false {
        b.note(EventType::Warning, reason, message.clone());
    }
    b.set(T::ReceiverTLS, status, reason, message);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn expiry_inside_the_window_warns_and_outside_is_valid() {
        let now = at("2026-12-01T12:00:00Z");
        let warn = 14 * DAY;
        let cases = [
            ("2027-03-01T00:00:00Z", Status::True, Reason::CertificateValid),
            ("2026-12-15T12:00:01Z", Status::True, Reason::CertificateValid),
            ("2026-12-15T12:00:00Z", Status::False, Reason::CertificateExpiring),
            ("2026-12-02T00:00:00Z", Status::False, Reason::CertificateExpiring),
            // A verified handshake cannot see an expired certificate, but the clock may differ.
            ("2026-11-30T00:00:00Z", Status::False, Reason::CertificateExpiring),
        ];
        for (not_after, status, reason) in cases {
            let (s, r, message) = condition(&ReceiverTls::Verified { not_after: at(not_after) }, now, warn);
            assert_eq!((s, r), (status, reason), "{not_after}: {message}");
            assert!(message.contains(&not_after[..10]), "{message}");
        }
        let (_, _, message) = condition(&ReceiverTls::Verified { not_after: at("2026-12-08T12:00:00Z") }, now, warn);
        assert!(message.contains("in 7 days") && message.contains("14-day"), "{message}");
    }

    #[test]
    fn refusals_name_the_cause() {
        let now = at("2026-12-01T12:00:00Z");
        let refused = ReceiverTls::Refused {
            why: "the certificate is not valid for the host name".into(),
            not_after: Some(at("2027-01-01T00:00:00Z")),
        };
        let (s, r, m) = condition(&refused, now, DAY);
        assert_eq!((s, r), (Status::False, Reason::CertificateInvalid));
        assert!(m.contains("host name") && m.contains("2027-01-01"), "{m}");
        let (s, r, _) = condition(&ReceiverTls::Unreachable("refused".into()), now, DAY);
        assert_eq!((s, r), (Status::Unknown, Reason::ReceiverUnreachable));
        let (s, r, m) = condition(&ReceiverTls::NotAllowed("169.254.169.254 is link-local".into()), now, DAY);
        assert_eq!((s, r), (Status::False, Reason::ReceiverNotAllowed));
        assert!(m.contains("no connection"), "{m}");
    }
}
