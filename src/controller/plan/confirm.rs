//! The one-time confirmation message: a state machine over `status.confirmation`.
//!
//! - no record (or one for another recipient or number), or a new resend token: **send**; the
//!   attempt (recipient, number, time, token, no SID) is recorded before the request;
//! - an attempt without a SID (a crash or an ambiguous failure after recording): **look it up**
//!   at Twilio; adopt the message found, else send;
//! - a SID, delivery still open and recent: **follow** it (fetch by SID);
//! - a final status, or followed long enough: **report** it, no Twilio call.

use std::time::Duration;

use kube::runtime::events::EventType;
use kube::ResourceExt;

use crate::api::{ChannelMode, ConditionType as T, ConfirmationStatus, Reason};
use crate::controller::clock;
use crate::controller::conditions::Status;
use crate::controller::RESEND_CONFIRMATION_ANNOTATION;
use crate::twilio::{Message, MessageContent, NewMessage, E164};

use super::live::{twilio_failure, SANDBOX_NUMBER};
use super::report::Builder;
use super::{Next, Outcome, Read, Step};

/// Twilio's error for a sandbox recipient who has not joined (or whose membership expired).
const NOT_IN_SANDBOX: u32 = 63015;
/// Twilio's error for a Trial account's message to a number that is not a verified caller ID.
const TRIAL_UNVERIFIED: u32 = 21608;
/// How long a sent message's delivery status is followed.
pub const FOLLOW_FOR: Duration = Duration::from_secs(600);
/// How often a message whose delivery is still open is looked at.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// Plans the confirmation message (when the spec asks for one and the channel is connected),
/// then ends the plan.
pub(super) fn follow_up(mut b: Builder<'_>, number: &E164) -> Next {
    let ch = b.input.ch;
    let Some(to) = ch.spec.confirmation_phone_number.as_deref().and_then(|t| E164::parse(t).ok()) else {
        b.set.remove(T::ConfirmationSent);
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
    let current = b.status.confirmation.clone().filter(|c| c.to == to.as_str() && c.from == from);
    match current {
        // A new value of the resend annotation asks for another message.
        Some(c) if token.is_some() && token != c.resend_token => send(&mut b, &to, &from, token),
        Some(c) if c.message_sid.is_some() => {
            if let Some(read) = track(&mut b, c) {
                return Next::Read(read);
            }
        }
        // Twilio refused it outright: reported until something changes.
        Some(c) if c.status.as_deref() == Some("failed") => {
            let code = c.error_code.and_then(|c| u32::try_from(c).ok());
            condition_for(&mut b, &c.to, "", "failed", code);
        }
        Some(c) => {
            // An attempt without a recorded SID: the request may have reached Twilio.
            let Some(found) = b.input.twilio.message.clone() else {
                let since = c.requested_time.as_ref().map(|t| clock::minus(t, Duration::from_secs(300)));
                return Next::Read(Read::FindSent {
                    to: to.whatsapp(),
                    from: format!("whatsapp:{from}"),
                    body: super::confirmation_body(ch),
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
                Ok(None) => send(&mut b, &to, &from, token),
                Err(e) if e.is_transient() => b.transient(T::ConfirmationSent, e),
                Err(e) => b.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Cannot look up the earlier confirmation attempt to {to}: {e}"),
                ),
            }
        }
        None => send(&mut b, &to, &from, token),
    }
    b.finish()
}

fn send(b: &mut Builder<'_>, to: &E164, from: &str, token: Option<String>) {
    if b.observe {
        b.twilio.push(Step::SendMessage(message(b, to, from)));
        b.set(
            T::ConfirmationSent,
            Status::False,
            Reason::ChangesPlanned,
            format!("managementPolicy Observe plans one confirmation message to {to}; none was sent"),
        );
        return;
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
    };
    // Recorded first: a crash after the request must not lead to a second message, and the
    // record is written against the version this pass read, so a stale pass cannot send twice.
    b.record.confirmation = Some(attempt.clone());
    b.status.confirmation = Some(attempt.clone());
    b.twilio.push(Step::SendMessage(message(b, to, from)));
    let outcome = b.input.twilio.outcomes.iter().rev().find_map(|o| match o {
        Outcome::Sent(m) => Some(Ok(m.clone())),
        Outcome::SendFailed(e) => Some(Err(e.clone())),
        _ => None,
    });
    match outcome {
        // Not sent yet: the plan assumes it will be; the executor plans again with the answer.
        None => b.set(T::ConfirmationSent, Status::Unknown, Reason::MessageSent, format!("Sending to {to}")),
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
            record(b, &m);
        }
        Some(Err(e)) if e.is_transient() => twilio_failure(b, T::ConfirmationSent, e),
        Some(Err(e)) => {
            b.status.confirmation = Some(ConfirmationStatus {
                status: Some("failed".into()),
                error_code: e.code().map(i64::from),
                ..attempt
            });
            if matches!(e.code(), Some(NOT_IN_SANDBOX | TRIAL_UNVERIFIED)) {
                condition_for(b, to.as_str(), "", "failed", e.code());
            } else {
                b.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Twilio refused the confirmation message to {to}: {e}"),
                );
            }
        }
    }
}

/// The confirmation message from `from` to `to`.
fn message(b: &Builder<'_>, to: &E164, from: &str) -> NewMessage {
    NewMessage {
        from: format!("whatsapp:{from}"),
        to: to.whatsapp(),
        content: MessageContent::Body(super::confirmation_body(b.input.ch)),
        status_callback: None,
    }
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
    condition_for(b, &c.to, c.message_sid.as_deref().unwrap_or(""), c.status.as_deref().unwrap_or("unknown"), code);
    None
}

fn is_final(status: &str) -> bool {
    matches!(status, "delivered" | "read" | "failed" | "undelivered" | "canceled" | "received")
}

/// Records a message's status and sets the condition.
fn record(b: &mut Builder<'_>, m: &Message) {
    let status = m.status.as_str().to_owned();
    if let Some(c) = b.status.confirmation.as_mut() {
        c.status = Some(status.clone());
        c.error_code = m.error_code.map(i64::from);
    }
    if !is_final(&status) {
        b.requeue_within(FOLLOW_EVERY);
    }
    let to = b.status.confirmation.as_ref().map(|c| c.to.clone()).unwrap_or_default();
    condition_for(b, &to, &m.sid, &status, m.error_code);
}

fn condition_for(b: &mut Builder<'_>, to: &str, sid: &str, status: &str, code: Option<u32>) {
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
                "The confirmation message {sid} to {to} {status}{}; set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again",
                code.map(|c| format!(" (Twilio error {c})")).unwrap_or_default()
            ),
        ),
        _ => b.set(T::ConfirmationSent, Status::True, Reason::MessageSent, format!("Sent to {to} (message {sid}, {status})")),
    }
}
