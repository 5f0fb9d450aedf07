//! Leaving a number: on deletion (the finalizer's cleanup) and when a channel moves to another
//! number. Under `deletionPolicy: Delete` the number's webhook is put back exactly as it was
//! (Twilio's default URL included; cleared only if it was empty) — but only while it still
//! points where this channel set it, and only by the channel holding the number. The binding is
//! released after that, never before: until then no other channel can claim the number.

use kube::runtime::events::EventType;

use crate::api::{DeletionPolicy, ManagementPolicy, Phase, Reason, SenderKind, SenderStatus};
use crate::binding::BindingState;
use crate::controller::conditions::Status;
use crate::controller::{Error, SKIP_CLEANUP_ANNOTATION};
use crate::twilio::{redact_url, TwilioError, E164};

use super::live::{locate, ours};
use super::report::Builder;
use super::{skip_cleanup, Input, Next, Outcome, Read, Step, Target};

/// What to do about the webhook of a number being left.
enum Restore {
    /// Nothing to restore: release.
    Nothing,
    /// The plan needs a read first.
    Read(Read),
    /// Blocked (credentials, a transient failure); the message says why.
    Blocked(String, Option<Error>),
    /// Wait for the account's rate-limit hold.
    Hold(std::time::Duration),
    /// Restore, then release; the object as it is now.
    Write(Box<Step>, String, Box<Target>),
    /// The restore was tried in this pass and failed: blocked as above, the step kept.
    Failed(Box<Step>, String, Option<Error>),
}

/// Decides the webhook restore of the number `recorded` describes.
fn restore(b: &Builder<'_>, recorded: &SenderStatus, held: bool) -> Restore {
    let input = b.input;
    let ch = input.ch;
    // Observe never writes to Twilio: its deletion leaves Twilio as `Orphan` does.
    if !held
        || ch.spec.deletion_policy != DeletionPolicy::Delete
        || ch.spec.management_policy == ManagementPolicy::Observe
        || skip_cleanup(ch)
        || recorded.kind == SenderKind::Sandbox
    {
        return Restore::Nothing;
    }
    let Ok(number) = E164::parse(&recorded.phone_number) else {
        return Restore::Nothing;
    };
    if let Err(p) = &input.cluster.secret.credentials {
        return Restore::Blocked(
            format!(
                "Cannot restore the webhook of {number}: {}. Recreate the Secret, or set the annotation {SKIP_CLEANUP_ANNOTATION}=true to go on without touching Twilio",
                p.message
            ),
            None,
        );
    }
    if let Some(wait) = input.cluster.hold {
        return Restore::Hold(wait);
    }
    let found = match input.twilio.wired_target.clone() {
        None => return Restore::Read(Read::WiredTarget(number.clone(), locate(Some(recorded), &number))),
        Some(f) => f,
    };
    let target = match found {
        Ok(Some(t)) => t,
        // The number or sender is gone from the account: nothing to put back.
        Ok(None) | Err(TwilioError::NotFound { .. }) => return Restore::Nothing,
        Err(e) => {
            let msg = format!("Cannot restore the webhook of {number}: {e}");
            return if e.is_transient() {
                Restore::Blocked(format!("{msg}; retrying with backoff"), Some(Error::Twilio(e)))
            } else {
                Restore::Blocked(
                    format!("{msg}. Fix the credentials, or set the annotation {SKIP_CLEANUP_ANNOTATION}=true to go on without touching Twilio"),
                    None,
                )
            };
        }
    };
    let (current, _) = target.hook();
    // Someone changed it since: it is not this channel's to restore.
    if !ours(Some(recorded)).contains(&current) {
        return Restore::Nothing;
    }
    let previous = recorded.previous_webhook_url.clone().unwrap_or_default();
    let method = recorded.previous_webhook_method.clone().unwrap_or_else(|| default_method(&target));
    let step = Box::new(Step::RestoreWebhook(target.write(&previous, &method)));
    let failed = input.twilio.outcomes.iter().find_map(|o| match o {
        Outcome::RestoreFailed(e) => Some(e.clone()),
        _ => None,
    });
    if let Some(e) = failed {
        let msg = format!("Cannot restore the webhook of {number}: {e}");
        let err = e.is_transient().then_some(Error::Twilio(e));
        return Restore::Failed(step, msg, err);
    }
    let shown =
        if previous.is_empty() { "cleared it".to_owned() } else { format!("restored {}", redact_url(&previous)) };
    Restore::Write(step, format!("Released {number}: {shown}"), Box::new(target))
}

fn default_method(target: &Target) -> String {
    match target {
        Target::Sender(_) => "POST".into(),
        Target::Number(_) | Target::Service(_) => "POST".into(),
    }
}

/// The finalizer's cleanup.
pub(super) fn cleanup(input: Input<'_>) -> Next {
    let mut b = Builder::new(input);
    b.keep_old_conditions();
    b.phase_override = Some((Phase::Deleting, None));
    let wired = b.old.sender.clone();
    let held_wired = wired_binding_held(&b);
    if let Some(recorded) = &wired {
        match restore(&b, recorded, held_wired) {
            Restore::Nothing => {}
            Restore::Read(r) => return Next::Read(r),
            Restore::Hold(wait) => {
                b.requeue_within(wait);
                return b.finish();
            }
            Restore::Blocked(msg, err) => {
                b.phase_override = Some((Phase::Deleting, Some((Reason::CleanupBlocked, msg))));
                b.error = err;
                return b.finish();
            }
            Restore::Failed(step, msg, err) => {
                b.twilio.push(*step);
                b.phase_override = Some((Phase::Deleting, Some((Reason::CleanupBlocked, msg))));
                b.error = err;
                return b.finish();
            }
            Restore::Write(step, note, _) => {
                b.twilio.push(*step);
                b.note(EventType::Normal, Reason::WebhookReleased, note);
            }
        }
    }
    for held in &input.cluster.held {
        b.post.push(Step::Release(held.clone()));
    }
    b.finalize = true;
    b.finish()
}

/// Whether this channel holds the binding of the number its status says it is wired to.
fn wired_binding_held(b: &Builder<'_>) -> bool {
    let c = b.input.cluster;
    let view = c.wired.as_ref().or(c.binding.as_ref());
    view.is_some_and(|v| matches!(v.state, BindingState::Mine { .. }))
}

/// A live channel wired to a number it no longer asks for: restore that number's webhook, then
/// release it, before the new number is claimed. `Err` ends the pass (a read is needed, the
/// release is blocked, or it is planned: the next pass goes on with the new number).
pub(super) fn previous_number(mut b: Builder<'_>) -> Result<Builder<'_>, Next> {
    use crate::api::ConditionType as T;
    let Some(view) = b.input.cluster.wired.clone() else {
        return Ok(b);
    };
    let Some(recorded) = b.old.sender.clone() else {
        return Ok(b);
    };
    let held = matches!(view.state, BindingState::Mine { .. });
    if !held {
        // Released already (or never held): the record goes.
        b.status.sender = None;
        b.record.sender = None;
        return Ok(b);
    }
    let holding = |msg: &str| {
        format!(
            "This channel still holds {} until it has restored that number's webhook and released it: {msg}",
            recorded.phone_number
        )
    };
    match restore(&b, &recorded, held) {
        Restore::Read(r) => return Err(Next::Read(r)),
        Restore::Hold(wait) => {
            b.keep_old_conditions();
            b.kept_stale = true;
            b.requeue_within(wait);
            return Err(b.finish());
        }
        Restore::Blocked(msg, err) | Restore::Failed(_, msg, err) => {
            if let Restore::Failed(step, ..) = restore(&b, &recorded, held) {
                b.twilio.push(*step);
            }
            b.keep_old_conditions();
            // A transient failure is retried (Unknown); anything else needs the user (False).
            let s = if err.is_some() { Status::Unknown } else { Status::False };
            b.set(T::NumberBound, s, Reason::ReleasingPreviousNumber, holding(&msg));
            b.set(T::Connected, Status::False, Reason::NotConnected, "Still releasing the previous number");
            b.error = err;
            return Err(b.finish());
        }
        Restore::Nothing => {}
        Restore::Write(step, note, target) => {
            b.twilio.push(*step);
            b.seen.push(*target);
            if !b.observe {
                b.note(EventType::Normal, Reason::WebhookReleased, note);
            }
        }
    }
    if let Some(held) = b.input.cluster.held.iter().find(|h| h.name == view.name) {
        b.post.push(Step::Release(held.clone()));
    }
    if b.observe {
        // Planned, not done: the status keeps the number it is wired to.
        b.keep_old_conditions();
        let msg = format!(
            "This channel is wired to {}, no longer the spec's number; managementPolicy Observe plans to restore its webhook and release it, then take up the new number",
            recorded.phone_number
        );
        b.set(T::NumberBound, Status::False, Reason::ChangesPlanned, msg);
        b.set(
            T::Connected,
            Status::False,
            Reason::ChangesPlanned,
            "The spec's number is taken up after the planned release",
        );
        return Err(b.finish());
    }
    b.status.sender = None;
    b.keep_old_conditions();
    b.set(T::NumberBound, Status::Unknown, Reason::ReleasingPreviousNumber, holding("releasing it now"));
    b.set(T::Connected, Status::False, Reason::NotConnected, "Moving to the new number");
    // The new number is taken up by the next pass, right after the release.
    b.requeue_within(std::time::Duration::from_millis(200));
    Err(b.finish())
}
