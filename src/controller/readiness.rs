//! The summary: `Ready` and `phase` derived from the other conditions (pure).

use crate::api::{ConditionType as T, Phase, Reason};

use super::conditions::{ConditionSet, Status};

/// Reasons that mean "waiting on something outside the operator".
const WAITING: &[Reason] = &[Reason::SenderNotReady, Reason::RecipientNotInSandbox, Reason::TemplateNotApproved];
/// Reasons that mean "a transient problem, retried with backoff".
const DEGRADED: &[Reason] = &[Reason::TwilioUnavailable, Reason::RateLimited, Reason::IdentityUnavailable];
/// Whether a condition reason reports a transient failure (retried with backoff).
pub fn is_transient_reason(reason: &str) -> bool {
    DEGRADED.iter().any(|r| r.as_str() == reason)
}

/// Reasons that mean "another channel or receiver holds the number".
const CONFLICT: &[Reason] =
    &[Reason::NumberInUse, Reason::BoundElsewhere, Reason::TakeoverRefused, Reason::TakeoverContested];

/// Whether a reason says another channel or receiver holds the number (a conflict).
pub fn is_conflict_reason(reason: Reason) -> bool {
    CONFLICT.contains(&reason)
}

/// Sets `Active` and `Ready` from the other conditions and returns the phase.
///
/// Ready is True only when the channel is connected, holds its number, its optional checks
/// (confirmation message, identity server) did not fail, and `Active` matches `spec.active`.
/// A condition False only because of a change `managementPolicy: Observe` merely plans
/// (`ChangesPlanned`) gives the phase `Planned`, unless another condition blocks too.
pub fn summarize(set: &mut ConditionSet, active_wanted: bool) -> Phase {
    let connected = set.is(T::Connected, Status::True);
    if !active_wanted {
        set.set(T::Active, Status::False, Reason::Deactivated, "spec.active is false: the channel takes no messages");
    } else if connected {
        set.set(T::Active, Status::True, Reason::Activated, "The channel is active");
    } else {
        set.set(T::Active, Status::False, Reason::NotConnected, "The channel is not connected yet");
    }

    // The first condition that keeps the channel from Ready: a False one, or an Unknown one
    // caused by a transient Twilio failure.
    // A change only planned (`managementPolicy: Observe`) blocks last: a real problem shows first.
    let blockers: Vec<_> = set
        .sorted()
        .into_iter()
        // ConfirmationDelivered only details ConfirmationSent, which blocks when the message failed;
        // ReceiverTLS is informational and ReceiverHealthy blocks only by `affectsReady` (below).
        .filter(|c| {
            !matches!(
                c.type_,
                T::Ready
                    | T::Active
                    | T::Connected
                    | T::Reconciling
                    | T::Stalled
                    | T::ConfirmationDelivered
                    | T::ReceiverTLS
                    | T::ReceiverHealthy
            )
        })
        .filter(|c| c.status == Status::False || (c.status == Status::Unknown && DEGRADED.contains(&c.reason)))
        .cloned()
        .collect();
    let blocker = blockers.iter().find(|c| c.reason != Reason::ChangesPlanned).or_else(|| blockers.first()).cloned();
    let phase = match &blocker {
        Some(b) if b.reason == Reason::ChangesPlanned => Phase::Planned,
        Some(b) if CONFLICT.contains(&b.reason) => Phase::Conflict,
        Some(b) if WAITING.contains(&b.reason) => Phase::Waiting,
        Some(b) if DEGRADED.contains(&b.reason) => Phase::Degraded,
        Some(_) => Phase::Failed,
        None if !connected => Phase::Pending,
        None if active_wanted => Phase::Ready,
        None => Phase::Inactive,
    };
    match (&blocker, phase) {
        (Some(b), _) => set.set(T::Ready, Status::False, b.reason, format!("{}: {}", b.type_, b.message)),
        (None, Phase::Pending) => {
            let why = set.get(T::Connected).map(|c| c.message.clone()).unwrap_or_else(|| "Not reconciled yet".into());
            set.set(T::Ready, Status::False, Reason::NotConnected, why)
        }
        (None, Phase::Inactive) => {
            set.set(T::Ready, Status::True, Reason::ChannelReady, "Connected; inactive as the spec asks")
        }
        (None, _) => {
            let note = match set.get(T::WebhookConfigured) {
                Some(w) if w.status == Status::Unknown => {
                    format!("Connected and active. Manual step: {}", w.message)
                }
                _ => "Connected and active".to_owned(),
            };
            set.set(T::Ready, Status::True, Reason::ChannelReady, note)
        }
    }
    set_kstatus(set, phase);
    phase
}

/// `spec.receiverHealth.affectsReady`: a channel otherwise Ready whose `ReceiverHealthy` is
/// False is not Ready (the receiver's reason, phase `Degraded`, `Reconciling=True`: the
/// operator keeps reading the alerts and it recovers by itself once the receiver answers).
pub fn receiver_blocks(set: &mut ConditionSet, phase: Phase) -> Phase {
    let Some(r) = set.get(T::ReceiverHealthy).filter(|c| c.status == Status::False).cloned() else {
        return phase;
    };
    if !matches!(phase, Phase::Ready | Phase::Inactive) {
        return phase;
    }
    set.set(T::Ready, Status::False, r.reason, format!("{}: {}", T::ReceiverHealthy, r.message));
    set_kstatus(set, Phase::Degraded);
    Phase::Degraded
}

/// kstatus (Flux, Argo CD, `kubectl wait`-style tools) reads the "abnormal-true" conditions:
/// `Reconciling=True` while the operator is still working towards Ready (or retrying), and
/// `Stalled=True` when only a change by the user can help. They are absent otherwise.
pub fn set_kstatus(set: &mut ConditionSet, phase: Phase) {
    set.remove(T::Reconciling);
    set.remove(T::Stalled);
    let Some((reason, message)) = set.get(T::Ready).map(|r| (r.reason, r.message.clone())) else {
        return;
    };
    match phase {
        Phase::Pending | Phase::Waiting | Phase::Degraded => set.set(T::Reconciling, Status::True, reason, message),
        Phase::Failed | Phase::Conflict => set.set(T::Stalled, Status::True, reason, message),
        // Planned: the operator did all `managementPolicy: Observe` allows; the user decides.
        Phase::Ready | Phase::Inactive | Phase::Suspended | Phase::Deleting | Phase::Planned => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected() -> ConditionSet {
        let mut s = ConditionSet::default();
        s.set(T::CredentialsValid, Status::True, Reason::Verified, "");
        s.set(T::NumberVerified, Status::True, Reason::Verified, "");
        s.set(T::NumberBound, Status::True, Reason::Bound, "");
        s.set(T::WebhookConfigured, Status::True, Reason::Configured, "");
        s.set(T::Connected, Status::True, Reason::ChannelConnected, "");
        s
    }

    #[test]
    fn connected_and_active_is_ready() {
        let mut s = connected();
        assert_eq!(summarize(&mut s, true), Phase::Ready);
        assert!(s.is(T::Ready, Status::True));
        assert!(s.is(T::Active, Status::True));
    }

    #[test]
    fn deactivated_is_ready_and_inactive() {
        let mut s = connected();
        assert_eq!(summarize(&mut s, false), Phase::Inactive);
        assert!(s.is(T::Ready, Status::True));
        assert_eq!(s.get(T::Active).map(|c| c.reason), Some(Reason::Deactivated));
    }

    #[test]
    fn each_kind_of_blocker_gives_its_phase() {
        let cases = [
            (T::CredentialsValid, Reason::InvalidCredentials, Phase::Failed),
            (T::NumberVerified, Reason::SenderNotReady, Phase::Waiting),
            (T::NumberBound, Reason::NumberInUse, Phase::Conflict),
            (T::NumberBound, Reason::BoundElsewhere, Phase::Conflict),
            (T::NumberBound, Reason::TakeoverRefused, Phase::Conflict),
            (T::NumberBound, Reason::TakeoverContested, Phase::Conflict),
            (T::CredentialsValid, Reason::TwilioUnavailable, Phase::Degraded),
            (T::ConfirmationSent, Reason::RecipientNotInSandbox, Phase::Waiting),
        ];
        for (t, reason, phase) in cases {
            let mut s = connected();
            let status = if phase == Phase::Degraded { Status::Unknown } else { Status::False };
            s.set(t, status, reason, "why");
            assert_eq!(summarize(&mut s, true), phase, "{t} {reason}");
            let stalled = matches!(phase, Phase::Failed | Phase::Conflict);
            assert_eq!(s.is(T::Stalled, Status::True), stalled, "{t} {reason}: Stalled");
            assert_eq!(s.is(T::Reconciling, Status::True), !stalled, "{t} {reason}: Reconciling");
            let ready = s.get(T::Ready).expect("ready");
            assert_eq!((ready.status, ready.reason), (Status::False, reason));
            assert!(ready.message.contains("why"));
        }
    }

    #[test]
    fn the_sandbox_manual_step_does_not_block_ready_but_is_told() {
        let mut s = connected();
        s.set(T::WebhookConfigured, Status::Unknown, Reason::ManualStepRequired, "set it in the Console");
        assert_eq!(summarize(&mut s, true), Phase::Ready);
        assert!(s.get(T::Ready).is_some_and(|c| c.message.contains("Console")));
    }

    #[test]
    fn a_failing_receiver_blocks_ready_only_when_asked() {
        let mut s = connected();
        s.set(T::ReceiverHealthy, Status::False, Reason::WebhookFailing, "3 failed");
        let phase = summarize(&mut s, true);
        assert_eq!(phase, Phase::Ready, "not part of Ready by default");
        assert!(s.is(T::Ready, Status::True));
        assert_eq!(receiver_blocks(&mut s, phase), Phase::Degraded);
        let ready = s.get(T::Ready).expect("ready");
        assert_eq!((ready.status, ready.reason), (Status::False, Reason::WebhookFailing));
        assert!(s.is(T::Reconciling, Status::True));
        let mut healthy = connected();
        healthy.set(T::ReceiverHealthy, Status::True, Reason::ReceiverHealthy, "");
        let phase = summarize(&mut healthy, true);
        assert_eq!(receiver_blocks(&mut healthy, phase), Phase::Ready);
    }

    #[test]
    fn not_connected_without_a_false_condition_is_pending() {
        let mut s = ConditionSet::default();
        assert_eq!(summarize(&mut s, true), Phase::Pending);
        assert!(s.is(T::Ready, Status::False));
    }
}
