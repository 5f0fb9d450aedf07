//! The one-time confirmation message, and the optional identity-server check.
//!
//! Exactly once per (recipient, number): the attempt is recorded in status *before* the request,
//! so that after a crash or an ambiguous failure the operator looks the message up at Twilio
//! instead of sending a second one.

use chrono::Duration as ChronoDuration;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;

use crate::api::{ChannelMode, ConditionType as T, ConfirmationStatus, IdentityServerSpec, Reason, WhatsAppChannel};
use crate::twilio::{Credentials, Message, MessageContent, MessageQuery, NewMessage, TwilioError, E164};

use super::clock;
use super::conditions::Status;
use super::credentials::{SecretData, SecretProblem};
use super::error::Error;
use super::reconcile::SANDBOX_NUMBER;
use super::report::Pass;
use super::{FIELD_MANAGER, RESEND_CONFIRMATION_ANNOTATION};

/// Twilio's error for a sandbox recipient who has not joined (or whose membership expired).
const NOT_IN_SANDBOX: u32 = 63015;
/// How long a sent message's delivery status is followed.
const FOLLOW_FOR: Duration = Duration::from_secs(600);

/// Sends the confirmation message if it is due, or follows up on the one sent.
pub async fn follow_up(pass: &mut Pass<'_>, creds: &Credentials, number: &E164) {
    let Some(to) = pass.ch.spec.confirmation_phone_number.as_deref().and_then(|t| E164::parse(t).ok()) else {
        pass.set.remove(T::ConfirmationSent);
        return;
    };
    if !pass.set.is(T::Connected, Status::True) {
        return;
    }
    let from =
        if pass.ch.spec.mode == ChannelMode::Sandbox { SANDBOX_NUMBER.to_owned() } else { number.as_str().to_owned() };
    let token = pass.ch.annotations().get(RESEND_CONFIRMATION_ANNOTATION).cloned();
    let current = pass.status.confirmation.clone().filter(|c| c.to == to.as_str() && c.from == from);
    match current {
        // A new value of the resend annotation asks for another message.
        Some(c) if token.is_some() && token != c.resend_token => send(pass, creds, &to, &from, token).await,
        Some(c) if c.message_sid.is_some() => track(pass, creds, c).await,
        // Twilio refused it outright: reported until something changes.
        Some(c) if c.status.as_deref() == Some("failed") => {
            let code = c.error_code.and_then(|c| u32::try_from(c).ok());
            condition_for(pass, &c.to, "", "failed", code);
        }
        Some(c) => {
            // An attempt without a recorded SID: the request may have reached Twilio.
            match find_sent(pass, creds, &c).await {
                Ok(Some(m)) => {
                    // Adopted: its time is when Twilio created it, so its delivery is followed too.
                    let sent_time = m.date_created.map(|d| clock::from_chrono(&d)).or_else(|| Some(clock::now()));
                    pass.status.confirmation =
                        Some(ConfirmationStatus { message_sid: Some(m.sid.clone()), sent_time, ..c });
                    record(pass, &m);
                }
                Ok(None) => send(pass, creds, &to, &from, token).await,
                Err(e) if e.is_transient() => pass.transient(T::ConfirmationSent, e),
                Err(e) => pass.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Cannot look up the earlier confirmation attempt to {to}: {e}"),
                ),
            }
        }
        None => send(pass, creds, &to, &from, token).await,
    }
}

fn body(ch: &WhatsAppChannel) -> String {
    format!(
        "This WhatsApp number is now connected to {} (channel {}/{}). Sent once by whatsapp-operator.",
        ch.spec.instance,
        ch.namespace().unwrap_or_default(),
        ch.name_any()
    )
}

async fn send(pass: &mut Pass<'_>, creds: &Credentials, to: &E164, from: &str, token: Option<String>) {
    let attempt = ConfirmationStatus {
        to: to.as_str().to_owned(),
        from: from.to_owned(),
        requested_time: Some(clock::now()),
        message_sid: None,
        sent_time: None,
        status: Some("sending".into()),
        error_code: None,
        resend_token: token,
    };
    // Record the attempt first: a crash after the request must not lead to a second message.
    // The record is written against the object version this pass read, so a pass working from
    // a stale cache copy, or another process, cannot send twice.
    match persist_attempt(pass, &attempt).await {
        Ok(Persisted::Recorded(rv)) => pass.resource_version = rv,
        Ok(Persisted::Stale) => {
            pass.requeue_within(Duration::from_millis(200));
            return;
        }
        Err(e) => {
            pass.error = Some(Error::Kube(e));
            return;
        }
    }
    pass.status.confirmation = Some(attempt.clone());
    let message = NewMessage {
        from: format!("whatsapp:{from}"),
        to: to.whatsapp(),
        content: MessageContent::Body(body(pass.ch)),
        status_callback: None,
    };
    match pass.ctx.twilio.create_message(creds, &message).await {
        Ok(m) => {
            pass.status.confirmation =
                Some(ConfirmationStatus { message_sid: Some(m.sid.clone()), sent_time: Some(clock::now()), ..attempt });
            pass.note(
                EventType::Normal,
                Reason::MessageSent,
                format!("Sent the confirmation message to {to} (message {})", m.sid),
            );
            record(pass, &m);
        }
        Err(e) if e.is_transient() => pass.transient(T::ConfirmationSent, e),
        Err(e) => {
            pass.status.confirmation = Some(ConfirmationStatus {
                status: Some("failed".into()),
                error_code: e.code().map(i64::from),
                ..attempt
            });
            if e.code() == Some(NOT_IN_SANDBOX) {
                condition_for(pass, to.as_str(), "", "failed", e.code());
            } else {
                pass.set(
                    T::ConfirmationSent,
                    Status::False,
                    Reason::MessageFailed,
                    format!("Twilio refused the confirmation message to {to}: {e}"),
                );
            }
        }
    }
}

/// The outcome of recording a send attempt.
enum Persisted {
    /// The attempt is recorded (the object's new version): go ahead and send.
    Recorded(Option<String>),
    /// The object changed since this pass read it (another pass, or a stale cache copy): do not
    /// send; look again with the latest status.
    Stale,
}

/// Writes the attempt into status now, against the version this pass read: if anything changed
/// since (409), another pass may have recorded or sent the message, so nothing is sent.
async fn persist_attempt(pass: &Pass<'_>, attempt: &ConfirmationStatus) -> Result<Persisted, kube::Error> {
    let mut status = pass.old.clone();
    status.confirmation = Some(attempt.clone());
    let patch = json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"resourceVersion": pass.resource_version},
        "status": status,
    });
    let api: Api<WhatsAppChannel> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch_status(&pass.ch.name_any(), &pp, &Patch::Apply(&patch)).await {
        Ok(written) => Ok(Persisted::Recorded(written.resource_version())),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Persisted::Stale),
        Err(e) => Err(e),
    }
}

/// Looks for a message sent by an earlier attempt that recorded no SID.
async fn find_sent(
    pass: &Pass<'_>,
    creds: &Credentials,
    c: &ConfirmationStatus,
) -> Result<Option<Message>, TwilioError> {
    // A queued message has no date_sent yet, so filter on date_created here rather than
    // with Twilio's DateSent filter.
    let since = c.requested_time.as_ref().and_then(clock::to_chrono).map(|t| t - ChronoDuration::minutes(5));
    let query = MessageQuery {
        to: Some(format!("whatsapp:{}", c.to)),
        from: Some(format!("whatsapp:{}", c.from)),
        date_sent_after: None,
        limit: 50,
    };
    let expected = body(pass.ch);
    let messages = pass.ctx.twilio.list_messages(creds, &query).await?;
    Ok(messages.into_iter().find(|m| {
        m.body.as_deref() == Some(expected.as_str()) && since.is_none_or(|s| m.date_created.is_none_or(|d| d >= s))
    }))
}

/// Follows a sent message's delivery for a while, then reports its last known status.
async fn track(pass: &mut Pass<'_>, creds: &Credentials, c: ConfirmationStatus) {
    let open = !c.status.as_deref().is_some_and(is_final);
    let recent = c.sent_time.as_ref().is_some_and(|t| clock::age(t) < FOLLOW_FOR);
    if open && recent {
        if let Some(sid) = &c.message_sid {
            match pass.ctx.twilio.fetch_message(creds, sid).await {
                Ok(m) => {
                    record(pass, &m);
                    return;
                }
                Err(e) if e.is_transient() => {
                    pass.transient(T::ConfirmationSent, e);
                    return;
                }
                Err(e) => {
                    tracing::warn!(channel = %pass.key(), error = %e, "cannot fetch the confirmation message")
                }
            }
        }
    }
    let code = c.error_code.and_then(|c| u32::try_from(c).ok());
    condition_for(pass, &c.to, c.message_sid.as_deref().unwrap_or(""), c.status.as_deref().unwrap_or("unknown"), code);
}

fn is_final(status: &str) -> bool {
    matches!(status, "delivered" | "read" | "failed" | "undelivered" | "canceled" | "received")
}

/// Records a message's status and sets the condition.
fn record(pass: &mut Pass<'_>, m: &Message) {
    let status = m.status.as_str().to_owned();
    if let Some(c) = pass.status.confirmation.as_mut() {
        c.status = Some(status.clone());
        c.error_code = m.error_code.map(i64::from);
    }
    if !is_final(&status) {
        pass.requeue_within(Duration::from_secs(5));
    }
    let to = pass.status.confirmation.as_ref().map(|c| c.to.clone()).unwrap_or_default();
    condition_for(pass, &to, &m.sid, &status, m.error_code);
}

fn condition_for(pass: &mut Pass<'_>, to: &str, sid: &str, status: &str, code: Option<u32>) {
    match (status, code) {
        ("failed" | "undelivered", Some(NOT_IN_SANDBOX)) => pass.set(
            T::ConfirmationSent,
            Status::False,
            Reason::RecipientNotInSandbox,
            format!(
                "{to} has not joined the WhatsApp sandbox (Twilio error 63015): send the sandbox's \"join <code>\" message from that phone to {SANDBOX_NUMBER}, then set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again"
            ),
        ),
        ("failed" | "undelivered" | "canceled", code) => pass.set(
            T::ConfirmationSent,
            Status::False,
            Reason::MessageFailed,
            format!(
                "The confirmation message {sid} to {to} {status}{}; set the annotation {RESEND_CONFIRMATION_ANNOTATION} to a new value to send again",
                code.map(|c| format!(" (Twilio error {c})")).unwrap_or_default()
            ),
        ),
        _ => pass.set(T::ConfirmationSent, Status::True, Reason::MessageSent, format!("Sent to {to} (message {sid}, {status})")),
    }
}

/// Checks that the identity server issues a token for the configured client.
pub async fn verify_identity(pass: &mut Pass<'_>, id: &IdentityServerSpec, data: Result<SecretData, SecretProblem>) {
    let secret = match data {
        Ok(d) => d.get(&id.client_secret_ref.key),
        Err(p) => {
            pass.set(T::IdentityVerified, Status::False, Reason::IdentitySecretMissing, p.message);
            return;
        }
    };
    let Some(secret) = secret else {
        pass.set(
            T::IdentityVerified,
            Status::False,
            Reason::IdentitySecretMissing,
            format!("Secret {} lacks a non-empty {}", id.client_secret_ref.name, id.client_secret_ref.key),
        );
        return;
    };
    let ctx = pass.ctx;
    let checked = ctx.identity_checks.check(&ctx.identity, &id.url, &id.client_id, &secret, ctx.config.verify_interval);
    match checked.await {
        Ok(()) => pass.set(
            T::IdentityVerified,
            Status::True,
            Reason::Verified,
            format!("{} issued a token to client {}", id.url, id.client_id),
        ),
        Err(e) if e.is_transient() => {
            pass.set(
                T::IdentityVerified,
                Status::Unknown,
                Reason::IdentityUnavailable,
                format!("{e}; retrying with backoff"),
            );
            pass.error = Some(Error::Identity(e));
        }
        Err(e) => pass.set(
            T::IdentityVerified,
            Status::False,
            Reason::IdentityRejected,
            format!("{} refused client {}: {e}", id.url, id.client_id),
        ),
    }
}
