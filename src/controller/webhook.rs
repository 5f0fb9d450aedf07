//! Deciding what to do with a number's inbound webhook: a pure function of what Twilio has, what
//! the spec asks, what this channel set before, and the binding policy.

use crate::api::BindingPolicy;

use super::owner::{self, Marked, Owner};

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
    /// The number pointed at this channel's earlier URL or method (the spec changed), or at
    /// the spec's URL without this channel's ownership marker (marking it).
    SpecChanged,
    /// This channel had configured it and someone cleared it behind the operator's back.
    Restore,
    /// `bindingPolicy: Takeover` moves a number away from the owner `spec.takeover.from` names.
    Takeover,
}

/// What to do with the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Twilio already has the desired URL (marker included) and method: no write.
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
        /// Its owner, when its URL carries an ownership marker.
        owner: Option<Owner>,
    },
    /// `bindingPolicy: Takeover`, but `spec.takeover.from` is unset or names another owner
    /// than the one at Twilio (a blind takeover): no write.
    TakeoverRefused {
        /// The receiver Twilio delivers to now.
        current_url: String,
        /// Its owner, when its URL carries an ownership marker.
        owner: Option<Owner>,
    },
    /// The owner to take over from took the number from this channel since its spec last
    /// changed: taking it back would flip the number between two takeovers. No write.
    TakeoverContested {
        /// The owner at Twilio.
        owner: Owner,
    },
}

/// How the channel deciding relates to ownership.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// This channel, as its marker names it.
    pub me: &'a Owner,
    /// `spec.bindingPolicy`.
    pub policy: BindingPolicy,
    /// `spec.takeover.from`: the owner a takeover expects to replace (`cluster/namespace/name/
    /// instance`; for a receiver without a marker, its URL).
    pub takeover_from: Option<&'a str>,
    /// The owner that took the number from this channel since the spec last changed (from the
    /// ownership history), if any.
    pub lost_to: Option<&'a Owner>,
}

/// Whether `from` (`spec.takeover.from`) names the receiver at Twilio: its marker's owner, or
/// for an unmarked receiver its URL.
pub fn takeover_matches(from: &str, current: &Marked) -> bool {
    match &current.owner {
        Some(o) => from.trim() == o.to_string(),
        None => from.trim() == current.url,
    }
}

/// Decides the webhook action: a read, compare and write (compare-and-swap on the marker;
/// Twilio has no conditional update, so the compare is against this pass's read).
///
/// `desired` carries this channel's marker. `ours` are the URLs this channel confirmed on the
/// number or was about to set (from its status): a current URL equal to one of them, or marked
/// by this cluster (whose binding this channel holds), is this channel's, so changing it is not
/// a takeover.
pub fn decide(current: &Hook<'_>, desired: &Hook<'_>, ours: &[String], claim: Claim<'_>) -> Decision {
    if current.url == desired.url && current.method.eq_ignore_ascii_case(desired.method) {
        return Decision::InSync;
    }
    if is_free(current.url) {
        let cause = if ours.iter().any(|o| !is_free(o)) { WriteCause::Restore } else { WriteCause::Unset };
        return Decision::Write { cause };
    }
    let found = owner::read(current.url);
    // Within a cluster the binding decides (this channel holds it): a marker of the same cluster
    // naming another channel is stale, e.g. left by a channel deleted with `Orphan`.
    let mine = match &found.owner {
        Some(o) => o.cluster == claim.me.cluster,
        None => found.url == owner::read(desired.url).url || ours.iter().any(|o| o == current.url),
    };
    if mine {
        return Decision::Write { cause: WriteCause::SpecChanged };
    }
    let current_url = current.url.to_owned();
    match claim.policy {
        BindingPolicy::Exclusive => Decision::BoundElsewhere { current_url, owner: found.owner },
        BindingPolicy::Takeover => {
            if !claim.takeover_from.is_some_and(|f| takeover_matches(f, &found)) {
                return Decision::TakeoverRefused { current_url, owner: found.owner };
            }
            match found.owner {
                Some(o) if claim.lost_to == Some(&o) => Decision::TakeoverContested { owner: o },
                _ => Decision::Write { cause: WriteCause::Takeover },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINE: &str = "https://crm-prod.example.com/hook#wao-owner=c1/ns/sales/crm-prod";
    const MINE_UNMARKED: &str = "https://crm-prod.example.com/hook";
    const OLD: &str = "https://crm-old.example.com/hook";
    const OTHER: &str = "https://crm-dev.example.com/hook";
    const THEIRS: &str = "https://crm-prod.example.com/hook#wao-owner=c2/ns/sales/crm-prod";

    fn h<'a>(url: &'a str, method: &'a str) -> Hook<'a> {
        Hook { url, method }
    }

    fn me() -> Owner {
        Owner::parse("c1/ns/sales/crm-prod").unwrap()
    }

    fn them() -> Owner {
        Owner::parse("c2/ns/sales/crm-prod").unwrap()
    }

    fn decide_as(
        current: &str,
        ours: &[String],
        policy: BindingPolicy,
        from: Option<&str>,
        lost_to: Option<&Owner>,
    ) -> Decision {
        let me = me();
        decide(&h(current, "POST"), &h(MINE, "POST"), ours, Claim { me: &me, policy, takeover_from: from, lost_to })
    }

    fn exclusive(current: &str, ours: &[String]) -> Decision {
        decide_as(current, ours, BindingPolicy::Exclusive, None, None)
    }

    #[test]
    fn in_sync_needs_no_write() {
        assert_eq!(exclusive(MINE, &[]), Decision::InSync);
    }

    #[test]
    fn empty_and_twilio_default_urls_are_free() {
        for free in ["", "https://demo.twilio.com/welcome/sms/reply/"] {
            assert_eq!(exclusive(free, &[]), Decision::Write { cause: WriteCause::Unset });
        }
    }

    #[test]
    fn a_cleared_webhook_we_had_set_is_restored() {
        assert_eq!(exclusive("", &[MINE.into()]), Decision::Write { cause: WriteCause::Restore });
    }

    #[test]
    fn our_own_older_url_or_method_is_updated() {
        assert_eq!(exclusive(OLD, &[OLD.into()]), Decision::Write { cause: WriteCause::SpecChanged });
        let me = me();
        let claim = Claim { me: &me, policy: BindingPolicy::Exclusive, takeover_from: None, lost_to: None };
        let d = decide(&h(MINE, "GET"), &h(MINE, "POST"), &[MINE.into()], claim);
        assert_eq!(d, Decision::Write { cause: WriteCause::SpecChanged });
        let old_marked = "https://crm-old.example.com/hook#wao-owner=c1/ns/sales/crm-test";
        assert_eq!(
            exclusive(old_marked, &[]),
            Decision::Write { cause: WriteCause::SpecChanged },
            "our marker, another instance"
        );
    }

    #[test]
    fn a_marker_of_another_channel_of_this_cluster_is_stale() {
        let orphaned = "https://crm-prod.example.com/hook#wao-owner=c1/ns/deleted/crm-prod";
        assert_eq!(exclusive(orphaned, &[]), Decision::Write { cause: WriteCause::SpecChanged });
    }

    #[test]
    fn the_spec_url_without_a_marker_is_marked() {
        assert_eq!(exclusive(MINE_UNMARKED, &[]), Decision::Write { cause: WriteCause::SpecChanged });
    }

    #[test]
    fn a_foreign_receiver_is_refused_and_named() {
        assert_eq!(exclusive(OTHER, &[]), Decision::BoundElsewhere { current_url: OTHER.into(), owner: None });
        assert_eq!(
            exclusive(OTHER, &[MINE.into()]),
            Decision::BoundElsewhere { current_url: OTHER.into(), owner: None },
            "drift to a foreign receiver is not fought over"
        );
        assert_eq!(
            exclusive(THEIRS, &[MINE.into()]),
            Decision::BoundElsewhere { current_url: THEIRS.into(), owner: Some(them()) },
            "the same URL marked by another cluster is foreign"
        );
    }

    #[test]
    fn a_takeover_is_a_compare_and_swap_on_the_owner() {
        let t = BindingPolicy::Takeover;
        let refused = |owner: Option<Owner>, url: &str| Decision::TakeoverRefused { current_url: url.into(), owner };
        assert_eq!(decide_as(THEIRS, &[], t, None, None), refused(Some(them()), THEIRS), "blind");
        assert_eq!(
            decide_as(THEIRS, &[], t, Some("c3/ns/sales/crm-prod"), None),
            refused(Some(them()), THEIRS),
            "another owner"
        );
        assert_eq!(
            decide_as(THEIRS, &[], t, Some("c2/ns/sales/crm-prod"), None),
            Decision::Write { cause: WriteCause::Takeover }
        );
        assert_eq!(decide_as(OTHER, &[], t, None, None), refused(None, OTHER), "blind, unmarked");
        assert_eq!(
            decide_as(OTHER, &[], t, Some(OTHER), None),
            Decision::Write { cause: WriteCause::Takeover },
            "unmarked: by URL"
        );
    }

    #[test]
    fn taking_back_what_was_just_taken_is_contested() {
        let them = them();
        let d = decide_as(THEIRS, &[MINE.into()], BindingPolicy::Takeover, Some("c2/ns/sales/crm-prod"), Some(&them));
        assert_eq!(d, Decision::TakeoverContested { owner: them.clone() });
        let other = Owner { cluster: "c3".into(), ..them };
        let d = decide_as(THEIRS, &[MINE.into()], BindingPolicy::Takeover, Some("c2/ns/sales/crm-prod"), Some(&other));
        assert_eq!(d, Decision::Write { cause: WriteCause::Takeover }, "lost to someone else");
    }
}
