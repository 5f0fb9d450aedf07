//! Building `metav1.Condition`s: new conditions are merged into the old ones so that
//! `lastTransitionTime` only moves when a condition's status really flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionType, Reason};

/// The three values of a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (yet).
    Unknown,
}

impl Status {
    /// The string used in the Kubernetes API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// A condition as the reconciler decides it, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Which condition.
    pub type_: ConditionType,
    /// Its status.
    pub status: Status,
    /// Its stable reason.
    pub reason: Reason,
    /// A message for humans (never a secret).
    pub message: String,
}

impl Desired {
    /// A new desired condition.
    pub fn new(type_: ConditionType, status: Status, reason: Reason, message: impl Into<String>) -> Self {
        Self { type_, status, reason, message: message.into() }
    }
}

/// The set of conditions one reconcile decides, one per type at most.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConditionSet(Vec<Desired>);

impl ConditionSet {
    /// Sets (or replaces) the condition of `type_`.
    pub fn set(&mut self, type_: ConditionType, status: Status, reason: Reason, message: impl Into<String>) {
        let d = Desired::new(type_, status, reason, message);
        match self.0.iter_mut().find(|c| c.type_ == type_) {
            Some(slot) => *slot = d,
            None => self.0.push(d),
        }
    }

    /// The condition of `type_`, if set.
    pub fn get(&self, type_: ConditionType) -> Option<&Desired> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition of `type_` is set to `status`.
    pub fn is(&self, type_: ConditionType, status: Status) -> bool {
        self.get(type_).is_some_and(|c| c.status == status)
    }

    /// Removes the condition of `type_`.
    pub fn remove(&mut self, type_: ConditionType) {
        self.0.retain(|c| c.type_ != type_);
    }

    /// The conditions, in the canonical order of [`ConditionType::ALL`].
    pub fn sorted(&self) -> Vec<&Desired> {
        let mut v: Vec<&Desired> = self.0.iter().collect();
        v.sort_by_key(|c| c.type_);
        v
    }

    /// Renders the set into API conditions, keeping `lastTransitionTime` from `existing` when the
    /// status did not change, in the order the API server keeps them: those of `existing` in
    /// their stored order, new ones after it in the canonical order. (Server-side apply keeps an
    /// associative list's stored order and appends new keys, so an unchanged set renders equal
    /// to the stored list and costs no write.)
    pub fn to_conditions(&self, existing: &[Condition], generation: Option<i64>, now: &Time) -> Vec<Condition> {
        let mut desired = self.sorted();
        desired.sort_by_key(|d| existing.iter().position(|c| c.type_ == d.type_.as_str()).unwrap_or(usize::MAX));
        desired
            .into_iter()
            .map(|d| {
                let previous = existing.iter().find(|c| c.type_ == d.type_.as_str());
                let last_transition_time = match previous {
                    Some(p) if p.status == d.status.as_str() => p.last_transition_time.clone(),
                    _ => now.clone(),
                };
                Condition {
                    type_: d.type_.as_str().to_owned(),
                    status: d.status.as_str().to_owned(),
                    reason: d.reason.as_str().to_owned(),
                    message: truncate(&d.message, 32_768),
                    observed_generation: generation,
                    last_transition_time,
                }
            })
            .collect()
    }
}

/// Cuts a message to the API's limit, on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A condition that changed between two condition lists: what an Event reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition<'a> {
    /// The condition after the change.
    pub condition: &'a Condition,
    /// Its status before, if it existed.
    pub previous_status: Option<&'a str>,
}

/// The conditions of `new` whose status or reason differ from `old`.
pub fn transitions<'a>(old: &'a [Condition], new: &'a [Condition]) -> Vec<Transition<'a>> {
    new.iter()
        .filter_map(|c| {
            let prev = old.iter().find(|o| o.type_ == c.type_);
            match prev {
                Some(p) if p.status == c.status && p.reason == c.reason => None,
                _ => Some(Transition { condition: c, previous_status: prev.map(|p| p.status.as_str()) }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("time"))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut set = ConditionSet::default();
        set.set(ConditionType::Ready, Status::False, Reason::NotConnected, "starting");
        let first = set.to_conditions(&[], Some(1), &t(100));
        assert_eq!(first[0].last_transition_time, t(100));

        set.set(ConditionType::Ready, Status::False, Reason::NotConnected, "still not");
        let second = set.to_conditions(&first, Some(2), &t(200));
        assert_eq!(second[0].last_transition_time, t(100), "same status keeps the time");
        assert_eq!(second[0].reason, "NotConnected");
        assert_eq!(second[0].observed_generation, Some(2));

        set.set(ConditionType::Ready, Status::True, Reason::ChannelReady, "ready");
        let third = set.to_conditions(&second, Some(2), &t(300));
        assert_eq!(third[0].last_transition_time, t(300));
    }

    #[test]
    fn conditions_come_out_in_canonical_order_and_replace_by_type() {
        let mut set = ConditionSet::default();
        set.set(ConditionType::Ready, Status::True, Reason::ChannelReady, "");
        set.set(ConditionType::CredentialsValid, Status::True, Reason::Verified, "");
        set.set(ConditionType::CredentialsValid, Status::False, Reason::InvalidCredentials, "x");
        let types: Vec<_> = set.sorted().iter().map(|c| c.type_).collect();
        assert_eq!(types, vec![ConditionType::CredentialsValid, ConditionType::Ready]);
        assert!(set.is(ConditionType::CredentialsValid, Status::False));
    }

    #[test]
    fn conditions_keep_the_stored_order_and_append_new_types() {
        let mut set = ConditionSet::default();
        set.set(ConditionType::CredentialsValid, Status::True, Reason::Verified, "");
        set.set(ConditionType::Ready, Status::True, Reason::ChannelReady, "");
        let first = set.to_conditions(&[], Some(1), &t(1));
        // What server-side apply stores when a later write adds a type: the new one appended.
        set.set(ConditionType::ReceiverHealthy, Status::True, Reason::ReceiverHealthy, "");
        let mut stored = first.clone();
        stored.push(set.to_conditions(&first, Some(1), &t(2)).remove(2));
        let types = |cs: &[Condition]| cs.iter().map(|c| c.type_.clone()).collect::<Vec<_>>();
        assert_eq!(types(&stored), ["CredentialsValid", "Ready", "ReceiverHealthy"]);
        assert_eq!(set.to_conditions(&stored, Some(1), &t(3)), stored, "an unchanged set renders as stored");
        set.set(ConditionType::Active, Status::True, Reason::Activated, "");
        assert_eq!(
            types(&set.to_conditions(&stored, Some(1), &t(4))),
            ["CredentialsValid", "Ready", "ReceiverHealthy", "Active"]
        );
    }

    #[test]
    fn transitions_report_status_or_reason_changes_only() {
        let mut set = ConditionSet::default();
        set.set(ConditionType::Connected, Status::True, Reason::ChannelConnected, "a");
        set.set(ConditionType::Ready, Status::False, Reason::NotConnected, "a");
        let old = set.to_conditions(&[], Some(1), &t(1));
        set.set(ConditionType::Connected, Status::True, Reason::ChannelConnected, "message differs");
        set.set(ConditionType::Ready, Status::True, Reason::ChannelReady, "b");
        let new = set.to_conditions(&old, Some(1), &t(2));
        let changed = transitions(&old, &new);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].condition.type_, "Ready");
        assert_eq!(changed[0].previous_status, Some("False"));
        assert!(transitions(&new, &new).is_empty());
    }
}
