//! Deciding what to do with a number's inbound webhook: a pure function of what Twilio has, what
//! the spec asks, what this channel set before, and the binding policy.

use crate::api::BindingPolicy;

/// URLs Twilio puts on new numbers: they mean "nobody receives this number's messages".
pub const TWILIO_DEFAULT_URLS: &[&str] = &[
    "https://demo.twilio.com/welcome/sms/reply",
    "https://demo.twilio.com/welcome/sms/reply/",
    "http://demo.twilio.com/welcome/sms/reply",
    "http://demo.twilio.com/welcome/sms/reply/",
];

/// A webhook: URL and HTTP method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook<'a> {
    /// The URL; empty means unset.
    pub url: &'a str,
    /// The HTTP method, upper case.
    pub method: &'a str,
}

/// Whether a URL counts as free: empty or one of Twilio's defaults.
pub fn is_free(url: &str) -> bool {
    let url = url.trim();
    url.is_empty() || TWILIO_DEFAULT_URLS.contains(&url)
}

/// Why the operator writes the webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCause {
    /// The number had no receiver: first configuration.
    Unset,
    /// The number pointed at this channel's earlier URL or method (the spec changed).
    SpecChanged,
    /// This channel had configured it and someone cleared it behind the operator's back.
    Restore,
    /// `bindingPolicy: Takeover` moves a number away from another receiver.
    Takeover,
}

/// What to do with the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Twilio already has the desired URL and method: no write.
    InSync,
    /// Write the desired webhook.
    Write {
        /// Why.
        cause: WriteCause,
    },
    /// Another receiver holds the number and the policy is `Exclusive`: no write.
    BoundElsewhere {
        /// The receiver Twilio delivers to now.
        current_url: String,
    },
}

/// Decides the webhook action.
///
/// `ours` are the URLs this channel confirmed on the number or was about to set (from its
/// status): a current URL equal to one of them was set by this channel, so changing it is not a
/// takeover.
pub fn decide(current: &Hook<'_>, desired: &Hook<'_>, ours: &[String], policy: BindingPolicy) -> Decision {
    if current.url == desired.url && current.method.eq_ignore_ascii_case(desired.method) {
        return Decision::InSync;
    }
    if is_free(current.url) {
        let cause = if ours.iter().any(|o| !is_free(o)) { WriteCause::Restore } else { WriteCause::Unset };
        return Decision::Write { cause };
    }
    if current.url == desired.url || ours.iter().any(|o| o == current.url) {
        return Decision::Write { cause: WriteCause::SpecChanged };
    }
    match policy {
        BindingPolicy::Takeover => Decision::Write { cause: WriteCause::Takeover },
        BindingPolicy::Exclusive => Decision::BoundElsewhere { current_url: current.url.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINE: &str = "https://crm-prod.example.com/hook";
    const OLD: &str = "https://crm-old.example.com/hook";
    const OTHER: &str = "https://crm-dev.example.com/hook";

    fn h<'a>(url: &'a str, method: &'a str) -> Hook<'a> {
        Hook { url, method }
    }

    #[test]
    fn in_sync_needs_no_write() {
        let d = decide(&h(MINE, "POST"), &h(MINE, "POST"), &[], BindingPolicy::Exclusive);
        assert_eq!(d, Decision::InSync);
    }

    #[test]
    fn empty_and_twilio_default_urls_are_free() {
        for free in ["", "https://demo.twilio.com/welcome/sms/reply/"] {
            let d = decide(&h(free, "POST"), &h(MINE, "POST"), &[], BindingPolicy::Exclusive);
            assert_eq!(d, Decision::Write { cause: WriteCause::Unset });
        }
    }

    #[test]
    fn a_cleared_webhook_we_had_set_is_restored() {
        let d = decide(&h("", "POST"), &h(MINE, "POST"), &[MINE.into()], BindingPolicy::Exclusive);
        assert_eq!(d, Decision::Write { cause: WriteCause::Restore });
    }

    #[test]
    fn our_own_older_url_or_method_is_updated() {
        let d = decide(&h(OLD, "POST"), &h(MINE, "POST"), &[OLD.into()], BindingPolicy::Exclusive);
        assert_eq!(d, Decision::Write { cause: WriteCause::SpecChanged });
        let d = decide(&h(MINE, "GET"), &h(MINE, "POST"), &[MINE.into()], BindingPolicy::Exclusive);
        assert_eq!(d, Decision::Write { cause: WriteCause::SpecChanged });
    }

    #[test]
    fn a_foreign_receiver_is_refused_unless_takeover() {
        let d = decide(&h(OTHER, "POST"), &h(MINE, "POST"), &[], BindingPolicy::Exclusive);
        assert_eq!(d, Decision::BoundElsewhere { current_url: OTHER.into() });
        let d = decide(&h(OTHER, "POST"), &h(MINE, "POST"), &[MINE.into()], BindingPolicy::Exclusive);
        assert_eq!(
            d,
            Decision::BoundElsewhere { current_url: OTHER.into() },
            "drift to a foreign receiver is not fought over"
        );
        let d = decide(&h(OTHER, "POST"), &h(MINE, "POST"), &[], BindingPolicy::Takeover);
        assert_eq!(d, Decision::Write { cause: WriteCause::Takeover });
    }
}
