//! The one-time confirmation message: a state machine over `status.confirmation`.
//!
//! - no record (or one for another recipient or number), a new resend token, or a message that
//!   failed as something the spec no longer asks for (free text, now a template): **send**. With
//!   a template (Business mode) its WhatsApp approval is checked first (one shared read per
//!   account and template); one not approved is reported and nothing is sent. The attempt
//!   (recipient, number, time, token, template, reference, no SID) is recorded before the
//!   request;
//! - an attempt without a SID (a crash or an ambiguous failure after recording): **look it up**
//!   at Twilio by its reference (carried in the text, or the template's reference variable);
//!   adopt the message found, else send;
//! - a SID, delivery still open and recent: **follow** it (fetch by SID);
//! - a final status, or followed long enough: **report** it, no Twilio call.
//!
//! `ConfirmationSent` says whether Twilio took the message (and, as before, `False` when it
//! failed); `ConfirmationDelivered` says where it ended: `Delivered`/`Read`, or why not
//! (`OutsideSessionWindow` for 63016, `RecipientNotInSandbox` for 63015, the template's
//! approval, `DeliveryFailed` with Twilio's code explained), `DeliveryPending` meanwhile.

use std::time::Duration;

use kube::runtime::events::EventType;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{ChannelMode, ConditionType as T, ConfirmationStatus, ConfirmationTemplate, Reason};
use crate::controller::clock;
use crate::controller::conditions::Status;
use crate::controller::RESEND_CONFIRMATION_ANNOTATION;
use crate::twilio::{explain_error, ContentApproval, Message, MessageContent, NewMessage, E164};

use super::live::{twilio_failure, SANDBOX_NUMBER};
use super::report::Builder;
use super::{Next, Outcome, Read, SentMatch, Step};

/// Twilio's error for a sandbox recipient who has not joined (or whose membership expired).
const NOT_IN_SANDBOX: u32 = 63015;
/// Twilio's error for free text outside WhatsApp's 24-hour window (or a template WhatsApp
/// has not approved).
const OUTSIDE_WINDOW: u32 = 63016;
/// `ConfirmationDelivered=False` reasons: their Event is left out when Ready turns False in the
/// same pass (the Ready Event names the failure).
pub(super) const DELIVERY_FAILURES: &[Reason] = &[
    Reason::OutsideSessionWindow,
    Reason::RecipientNotInSandbox,
    Reason::TemplateNotApproved,
    Reason::TemplateRejected,
    Reason::TemplateNotFound,
    Reason::DeliveryFailed,
];
/// Twilio's error for a Trial account's message to a number that is not a verified caller ID.
const TRIAL_UNVERIFIED: u32 = 21608;
/// How long a sent message's delivery status is followed.
pub const FOLLOW_FOR: Duration = Duration::from_secs(600);
/// How often a message whose delivery is still open is looked at.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);
/// How far before the recorded attempt a message found by lookup may have been created (clock
/// skew between the operator and Twilio).
const LOOKUP_SKEW: Duration = Duration::from_secs(300);

/// Plans the confirmation message (when the spec asks for one and the channel is connected),
/// then ends the plan.
pub(super) fn follow_up(mut b: Builder<'_>, number: &E164) -> Next {
    let ch = b.input.ch;
    let Some(to) = ch.spec.confirmation_phone_number.as_deref().and_then(|t| E164::parse(t).ok()) else {
        b.set.remove(T::ConfirmationSent);
        b.set.remove(T::ConfirmationDelivered);
        return b.finish();
    };
    // Observe plans the message a connection would bring, as Manage would send it.
    let connected = b.set.is(T::Connected, Status::True)
        || (b.observe && b.set.get(T::Connected).is_some_and(|c| c.reason == Reason::ChangesPlanned));
    if !connected || b.error.is_some() || b.kept_stale {
        return b.finish();
    }
    let from =
        if ch.spec.mode == ChannelMode::Sandbox { SANDBOX_NUMBER.to_owned() } else { number.as_str().to_owned() };
    let token = ch.annotations().get(RESEND_CONFIRMATION_ANNOTATION).cloned();
    let wanted = template_of(&b).map(|t| t.content_sid.clone());
    let current = b.status.confirmation.clone().filter(|c| c.to == to.as_str() && c.from == from);
    match current {
        // A new value of the resend annotation asks for another message.
        Some(c) if token.is_some() && token != c.resend_token => return send(b, &to, &from, token),
        // It failed, and the spec now asks for another content (a template after 63016): the
        // fix is sent. The failure was final, so this is no second message after an ambiguity.
        Some(c) if has_failed(&c) && c.content_sid != wanted => return send(b, &to, &from, c.resend_token),
        Some(c) if c.message_sid.is_some() => {
            if let Some(read) = track(&mut b, c) {
                return Next::Read(read);
            }
        }
        // Twilio refused it outright: reported until something changes.
        Some(c) if c.status.as_deref() == Some("failed") => {
            let code = c.error_code.and_then(|c| u32::try_from(c).ok());
            condition_for(&mut b, &c, "failed", code);
        }
        Some(c) => {
            // An attempt without a recorded SID: the request may have reached Twilio.
            let Some(found) = b.input.twilio.message.clone() else {
                let since = c.requested_time.as_ref().map(|t| clock::minus(t, LOOKUP_SKEW));
                let matching = match (&c.reference, &c.content_sid) {
                    (Some(r), None) => SentMatch::Reference(r.clone()),
                    (Some(r), Some(_)) if template_of(&b).is_some_and(|t| t.reference_variable.is_some()) => {
                        SentMatch::Reference(r.clone())
                    }
                    (Some(_), Some(_)) => SentMatch::Any,
                    (None, _) => SentMatch::Body(super::confirmation_body(ch)),
                };
                return Next::Read(Read::FindSent {
                    to: to.whatsapp(),
                    from: format!("whatsapp:{from}"),
                    matching,
                    since,
                });
            };
            match found {
                Ok(Some(m)) => {
                    // Adopted: its time is when Twilio created it, so its delivery is followed too.
                    let sent_time =
                        m.date_created.map(|d| clock::from_chrono(&d)).or_else(|| Some(b.input.now.clone()));
                    b.status.confirmation =
                        Some(ConfirmationStatus { message_sid: Some(m.sid.clone()), sent_time, ..c });
                    record(&mut b, &m);
                }
                Ok(None) => return send(b, &to, &from, token),
                Err(e) if e.is_transient() => b.transient(T::ConfirmationSent, e),
                Err(e) => b.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Cannot look up the earlier confirmation attempt to {to}: {e}"),
                ),
            }
        }
        None => return send(b, &to, &from, token),
    }
    b.finish()
}

/// The template the spec asks for, in Business mode (the sandbox sends free text: its
/// recipients joined, which opens the window).
fn template_of<'a>(b: &Builder<'a>) -> Option<&'a ConfirmationTemplate> {
    let ch = b.input.ch;
    if ch.spec.mode == ChannelMode::Sandbox {
        return None;
    }
    ch.spec.confirmation.as_ref().and_then(|c| c.template.as_ref())
}

/// Whether the recorded message definitely did not reach the recipient.
fn has_failed(c: &ConfirmationStatus) -> bool {
    matches!(c.status.as_deref(), Some("failed" | "undelivered" | "canceled"))
}

/// The reference of an attempt: `wao-` and 12 hex digits of a digest of the channel, the
/// recipient, the number, the time and the resend token (the same within a pass).
fn reference(b: &Builder<'_>, to: &E164, from: &str, token: Option<&str>) -> String {
    let ch = b.input.ch;
    let mut hash = Sha256::new();
    let time = b.input.now.0.to_string();
    let uid = ch.uid().unwrap_or_else(|| format!("{}/{}", ch.namespace().unwrap_or_default(), ch.name_any()));
    for part in [uid.as_str(), to.as_str(), from, time.as_str(), token.unwrap_or("")] {
        hash.update(part.as_bytes());
        hash.update(b"\0");
    }
    let hex: String = hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("wao-{hex}")
}

fn send(mut b: Builder<'_>, to: &E164, from: &str, token: Option<String>) -> Next {
    let template = template_of(&b);
    if let Some(t) = template {
        match b.input.twilio.template.clone() {
            None => return Next::Read(Read::Template(t.content_sid.clone())),
            Some(Ok(Some(a))) if a.is_approved() => {}
            Some(Ok(found)) => {
                template_blocked(&mut b, t, found.as_ref());
                return b.finish();
            }
            Some(Err(e)) if e.is_transient() => {
                b.transient(T::ConfirmationSent, e);
                return b.finish();
            }
            Some(Err(e)) => {
                b.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Cannot check the approval of the confirmation template {}: {e}", t.content_sid),
                );
                return b.finish();
            }
        }
    }
    let reference = reference(&b, to, from, token.as_deref());
    let message = message(&b, to, from, &reference);
    if b.observe {
        b.twilio.push(Step::SendMessage(message));
        b.set(
            T::ConfirmationSent,
            Status::False,
            Reason::ChangesPlanned,
            format!("managementPolicy Observe plans one confirmation message to {to}; none was sent"),
        );
        return b.finish();
    }
    let attempt = ConfirmationStatus {
        to: to.as_str().to_owned(),
        from: from.to_owned(),
        requested_time: Some(b.input.now.clone()),
        message_sid: None,
        sent_time: None,
        status: Some("sending".into()),
        error_code: None,
        resend_token: token,
        content_sid: template.map(|t| t.content_sid.clone()),
        reference: Some(reference),
    };
    // Recorded first: a crash after the request must not lead to a second message, and the
    // record is written against the version this pass read, so a stale pass cannot send twice.
    b.record.confirmation = Some(attempt.clone());
    b.status.confirmation = Some(attempt.clone());
    b.twilio.push(Step::SendMessage(message));
    let outcome = b.input.twilio.outcomes.iter().rev().find_map(|o| match o {
        Outcome::Sent(m) => Some(Ok(m.clone())),
        Outcome::SendFailed(e) => Some(Err(e.clone())),
        _ => None,
    });
    match outcome {
        // Not sent yet: the plan assumes it will be; the executor plans again with the answer.
        None => {
            b.set(T::ConfirmationSent, Status::Unknown, Reason::MessageSent, format!("Sending to {to}"));
            pending(&mut b, &attempt, "sending");
        }
        Some(Ok(m)) => {
            b.status.confirmation = Some(ConfirmationStatus {
                message_sid: Some(m.sid.clone()),
                sent_time: Some(b.input.now.clone()),
                ..attempt
            });
            b.note(
                EventType::Normal,
                Reason::MessageSent,
                format!("Sent the confirmation message to {to} (message {})", m.sid),
            );
            record(&mut b, &m);
        }
        Some(Err(e)) if e.is_transient() => twilio_failure(&mut b, T::ConfirmationSent, e),
        Some(Err(e)) => {
            let failed =
                ConfirmationStatus { status: Some("failed".into()), error_code: e.code().map(i64::from), ..attempt };
            b.status.confirmation = Some(failed.clone());
            if matches!(e.code(), Some(NOT_IN_SANDBOX | OUTSIDE_WINDOW | TRIAL_UNVERIFIED)) {
                condition_for(&mut b, &failed, "failed", e.code());
            } else {
                b.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Twilio refused the confirmation message to {to}: {e}"),
                );
                delivery(&mut b, &failed, "failed", e.code());
            }
        }
    }
    b.finish()
}

/// The template is not usable: nothing is sent; both conditions say why.
fn template_blocked(b: &mut Builder<'_>, t: &ConfirmationTemplate, found: Option<&ContentApproval>) {
    let sid = &t.content_sid;
    let (reason, message) = match found {
        None => (
            Reason::TemplateNotFound,
            format!("The confirmation template {sid} does not exist on the Twilio account: fix spec.confirmation.template.contentSid"),
        ),
        Some(a) if a.is_refused() => (
            Reason::TemplateRejected,
            format!(
                "WhatsApp {} the confirmation template {sid}{}: edit and resubmit it, or set another spec.confirmation.template.contentSid; nothing was sent",
                if a.status.is_empty() { "refused" } else { a.status.as_str() },
                if a.rejection_reason.is_empty() { String::new() } else { format!(" ({})", a.rejection_reason) }
            ),
        ),
        Some(a) => (
            Reason::TemplateNotApproved,
            format!(
                "The confirmation template {sid} is not approved for WhatsApp yet (status {}): submit it for approval; the message is sent once it is approved",
                if a.status.is_empty() { "unsubmitted" } else { a.status.as_str() }
            ),
        ),
    };
    b.set(T::ConfirmationSent, Status::False, reason, message.clone());
    set_delivery(b, Status::False, reason, message);
}

/// The confirmation message from `from` to `to`, carrying `reference`.
fn message(b: &Builder<'_>, to: &E164, from: &str, reference: &str) -> NewMessage {
    let content = match template_of(b) {
        Some(t) => {
            let mut variables = t.variables.clone();
            if let Some(v) = &t.reference_variable {
                variables.insert(v.clone(), reference.to_owned());
            }
            MessageContent::Template { content_sid: t.content_sid.clone(), variables }
        }
        None => MessageContent::Body(super::confirmation_text(b.input.ch, reference)),
    };
    NewMessage { from: format!("whatsapp:{from}"), to: to.whatsapp(), content, status_callback: None }
}

/// Follows a sent message's delivery for a while, then reports its last known status.
fn track(b: &mut Builder<'_>, c: ConfirmationStatus) -> Option<Read> {
    let open = !c.status.as_deref().is_some_and(is_final);
    let recent = c.sent_time.as_ref().is_some_and(|t| clock::between(t, b.input.now) < FOLLOW_FOR);
    if open && recent {
        if let Some(sid) = &c.message_sid {
            match b.input.twilio.message.clone() {
                None => return Some(Read::FetchMessage(sid.clone())),
                Some(Ok(Some(m))) => {
                    record(b, &m);
                    return None;
                }
                Some(Err(e)) if e.is_transient() => {
                    b.transient(T::ConfirmationSent, e);
                    return None;
                }
                // Gone or refused: report what is known.
                Some(_) => {}
            }
        }
    }
    let code = c.error_code.and_then(|c| u32::try_from(c).ok());
    condition_for(b, &c, c.status.as_deref().unwrap_or("unknown"), code);
    None
}

fn is_final(status: &str) -> bool {
    matches!(status, "delivered" | "read" | "failed" | "undelivered" | "canceled" | "received")
}

/// Records a message's status and sets the conditions.
fn record(b: &mut Builder<'_>, m: &Message) {
    let status = m.status.as_str().to_owned();
    if let Some(c) = b.status.confirmation.as_mut() {
        c.status = Some(status.clone());
        c.error_code = m.error_code.map(i64::from);
    }
    if !is_final(&status) {
        b.requeue_within(FOLLOW_EVERY);
    }
    let Some(c) = b.status.confirmation.clone() else {
        return;
    };
    condition_for(b, &c, &status, m.error_code);
}

/// Sets `ConfirmationSent` and `ConfirmationDelivered` for message `c` in `status`.
fn condition_for(b: &mut Builder<'_>, c: &ConfirmationStatus, status: &str, code: Option<u32>) {
    let to = &c.to;
    let sid = c.message_sid.as_deref().unwrap_or("");
    match (status, code) {
        ("failed" | "undelivered", Some(NOT_IN_SANDBOX)) => b.set(
            T::ConfirmationSent,
            Status::False,
            Reason::RecipientNotInSandbox,
            format!(
                "{to} has not joined the WhatsApp sandbox (Twilio error 63015): send the sandbox's \"join <code>\" message from that phone to {SANDBOX_NUMBER}, then set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again"
            ),
        ),
        ("failed" | "undelivered", Some(TRIAL_UNVERIFIED)) => b.set(
            T::ConfirmationSent,
            Status::False,
            Reason::TrialRecipientUnverified,
            format!(
                "{to} is not a verified caller ID of this Trial account (Twilio error 21608): verify it in the Twilio Console (Phone Numbers > Verified Caller IDs) or upgrade the account, then set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again"
            ),
        ),
        ("failed" | "undelivered" | "canceled", code) => b.set(
            T::ConfirmationSent,
            Status::False,
            Reason::MessageFailed,
            format!(
                "The confirmation message {sid} to {to} {status}{}; {}",
                code.map(|c| format!(" (Twilio error {c})")).unwrap_or_default(),
                if code == Some(OUTSIDE_WINDOW) && c.content_sid.is_none() {
                    "outside the 24-hour window: set spec.confirmation.template, and it is sent again with the template".to_owned()
                } else {
                    format!("set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again")
                }
            ),
        ),
        _ => b.set(T::ConfirmationSent, Status::True, Reason::MessageSent, format!("Sent to {to} (message {sid}, {status})")),
    }
    delivery(b, c, status, code);
}

/// Sets `ConfirmationDelivered` from the message's status.
fn delivery(b: &mut Builder<'_>, c: &ConfirmationStatus, status: &str, code: Option<u32>) {
    let to = &c.to;
    let sid = c.message_sid.as_deref().unwrap_or("-");
    let what = match &c.content_sid {
        Some(t) => format!("the confirmation template {t}"),
        None => "the confirmation text".to_owned(),
    };
    let coded = |code: Option<u32>| match code {
        Some(c) => format!(
            "Twilio error {c}{}",
            explain_error(c)
                .map(|e| format!(": {e}"))
                .unwrap_or_else(|| format!(" (https://www.twilio.com/docs/api/errors/{c})"))
        ),
        None => "no Twilio error code".to_owned(),
    };
    match (status, code) {
        ("delivered", _) => {
            set_delivery(b, Status::True, Reason::Delivered, format!("Delivered {what} to {to} (message {sid})"))
        }
        ("read", _) => set_delivery(b, Status::True, Reason::Read, format!("{to} read {what} (message {sid})")),
        ("failed" | "undelivered", Some(OUTSIDE_WINDOW)) if c.content_sid.is_none() => set_delivery(
            b,
            Status::False,
            Reason::OutsideSessionWindow,
            format!(
                "Message {sid} to {to} {status} with Twilio error 63016: outside the 24-hour window: set spec.confirmation.template (an approved WhatsApp template) to send a business-initiated message"
            ),
        ),
        ("failed" | "undelivered", Some(OUTSIDE_WINDOW)) => set_delivery(
            b,
            Status::False,
            Reason::TemplateNotApproved,
            format!(
                "Message {sid} to {to} {status} with Twilio error 63016: WhatsApp treated {what} as free text outside the 24-hour window: the template is not approved for WhatsApp"
            ),
        ),
        ("failed" | "undelivered", Some(NOT_IN_SANDBOX)) => set_delivery(
            b,
            Status::False,
            Reason::RecipientNotInSandbox,
            format!("Message {sid} to {to} {status} with {}", coded(code)),
        ),
        ("failed" | "undelivered" | "canceled", code) => set_delivery(
            b,
            Status::False,
            Reason::DeliveryFailed,
            format!("Message {sid} ({what}) to {to} {status} with {}", coded(code)),
        ),
        _ => pending(b, c, status),
    }
}

fn pending(b: &mut Builder<'_>, c: &ConfirmationStatus, status: &str) {
    let followed_out = c.sent_time.as_ref().is_some_and(|t| clock::between(t, b.input.now) >= FOLLOW_FOR);
    let message = if followed_out {
        format!(
            "No final status for the message to {} after {} s (last {status}); no longer followed",
            c.to,
            FOLLOW_FOR.as_secs()
        )
    } else {
        format!("The message to {} is {status}", c.to)
    };
    set_delivery(b, Status::Unknown, Reason::DeliveryPending, message);
}

/// Sets `ConfirmationDelivered`, with one Event when it reaches a new final answer.
fn set_delivery(b: &mut Builder<'_>, status: Status, reason: Reason, message: String) {
    let old = b.old.conditions.iter().find(|c| c.type_ == T::ConfirmationDelivered.as_str());
    let changed = old.is_none_or(|o| o.status != status.as_str() || o.reason != reason.as_str());
    if changed && status != Status::Unknown && !b.observe {
        let type_ = if status == Status::True { EventType::Normal } else { EventType::Warning };
        b.note(type_, reason, message.clone());
    }
    b.set(T::ConfirmationDelivered, status, reason, message);
}
