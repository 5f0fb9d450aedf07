//! Undoing the operator's Twilio changes: on deletion (finalizer) and when a channel moves to
//! another number. Only the binding holder touches Twilio.

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use crate::api::{DeletionPolicy, Phase, Reason, SenderKind, SenderStatus, WhatsAppChannel};
use crate::binding;
use crate::twilio::{Credentials, SenderWebhookMethod, SmsMethod, TwilioError, E164};

use super::error::{Error, Result};
use super::report::Pass;
use super::{credentials, protection};
use super::{Context, SKIP_CLEANUP_ANNOTATION};

/// The finalizer's cleanup: restore the previous webhook under `deletionPolicy: Delete`, then
/// release the binding. A cleanup that cannot finish says why in status and an Event, and
/// retries with backoff.
pub async fn cleanup(ch: &WhatsAppChannel, ctx: &Context) -> Result<Action> {
    let mut pass = Pass::new(ch, ctx)?;
    pass.keep_old_conditions();
    pass.phase_override = Some(Phase::Deleting);
    let number = E164::parse(&ch.spec.phone_number).ok();
    let skip = ch.annotations().get(SKIP_CLEANUP_ANNOTATION).is_some_and(|v| v == "true");
    let holds = match &number {
        Some(n) => binding::is_held_by(&ctx.client, ch, n, binding::scope(ch)).await?,
        None => false,
    };
    let restore = ch.spec.deletion_policy == DeletionPolicy::Delete && holds && !skip;
    // A rate-limited account makes no Twilio call, cleanups included: retry after the hold.
    if let Some(wait) = restore.then(|| ctx.holds.remaining(&ch.spec.twilio.account_sid)).flatten() {
        return Err(Error::Twilio(TwilioError::RateLimited { retry_after: Some(wait), code: None }));
    }
    if let (true, Some(sender)) = (restore, pass.old.sender.clone()) {
        if sender.kind != SenderKind::Sandbox {
            let name = ch.spec.twilio.credentials_secret_ref.name.clone();
            let creds = match credentials::read(&ctx.client, &pass.ns, &name).await? {
                Ok(d) => credentials::twilio_credentials(&d, &pass.ns, &name, &ch.spec.twilio.account_sid),
                Err(p) => Err(p),
            };
            let creds = match creds {
                Ok(c) => c,
                Err(p) => {
                    let msg = format!(
                        "Cannot restore the webhook of {}: {}. Recreate the Secret, or set the annotation {SKIP_CLEANUP_ANNOTATION}=true to finish the deletion without touching Twilio",
                        sender.phone_number, p.message
                    );
                    // Reported once, as the Ready transition's Warning Event (not on every retry).
                    pass.override_detail = Some((Reason::CleanupBlocked, msg.clone()));
                    pass.finish().await?;
                    return Err(Error::CleanupBlocked(msg));
                }
            };
            if let Err(e) = restore_webhook(&mut pass, &creds, &sender).await {
                ctx.note_rate_limit(&ch.spec.twilio.account_sid, &e);
                let msg = format!("Cannot restore the webhook of {}: {e}; retrying with backoff", sender.phone_number);
                pass.override_detail = Some((Reason::CleanupBlocked, msg));
                pass.finish().await?;
                return Err(Error::Twilio(e));
            }
        }
    }
    if let Some(n) = &number {
        binding::release(&ctx.client, ch, n, binding::scope(ch)).await?;
    }
    let uid = ch.uid();
    protection::release_if_unused(&ctx.client, &pass.ns, &ch.spec.twilio.credentials_secret_ref.name, uid.as_deref())
        .await?;
    if let Some(uid) = uid {
        ctx.attempts.forget(&uid);
    }
    pass.publish_events().await;
    Ok(Action::await_change())
}

/// Puts the previous webhook back (or clears it) if the number still points at this channel's
/// URL; a webhook someone else changed since is left alone.
pub async fn restore_webhook(
    pass: &mut Pass<'_>,
    creds: &Credentials,
    sender: &SenderStatus,
) -> Result<(), TwilioError> {
    let twilio = &pass.ctx.twilio;
    // What this channel put there (the spec's URL for statuses written before that was recorded).
    let ours = sender.configured_url.as_deref().unwrap_or(pass.ch.spec.webhook.url.as_str());
    let previous = sender.previous_webhook_url.clone().unwrap_or_default();
    match sender.kind {
        SenderKind::WhatsAppSender => {
            let Some(current) = twilio.find_whatsapp_sender(creds, &sender.phone_number).await? else {
                return Ok(());
            };
            if current.webhook.callback_url.as_deref() != Some(ours) {
                return Ok(());
            }
            let method = match sender.previous_webhook_method.as_deref() {
                Some("PUT") => SenderWebhookMethod::Put,
                _ => SenderWebhookMethod::Post,
            };
            twilio
                .update_sender_webhook(creds, &current.sid, &current.webhook.with_callback(previous.clone(), method))
                .await?;
        }
        SenderKind::IncomingPhoneNumber => {
            let Some(current) = twilio.find_incoming_number(creds, &sender.phone_number).await? else {
                return Ok(());
            };
            if current.sms_url.as_deref() != Some(ours) {
                return Ok(());
            }
            let method =
                if sender.previous_webhook_method.as_deref() == Some("GET") { SmsMethod::Get } else { SmsMethod::Post };
            twilio.update_incoming_number_webhook(creds, &current.sid, &previous, method).await?;
        }
        SenderKind::Sandbox => return Ok(()),
    }
    let shown = if previous.is_empty() { "cleared it".to_owned() } else { format!("restored {previous}") };
    pass.note(EventType::Normal, Reason::WebhookReleased, format!("Released {}: {shown}", sender.phone_number));
    Ok(())
}

/// The channel moved to another number: restore the old number's webhook (under
/// `deletionPolicy: Delete`) and release its binding.
pub async fn release_previous_number(pass: &mut Pass<'_>, creds: &Credentials, previous: &SenderStatus) -> Result<()> {
    let Ok(old) = E164::parse(&previous.phone_number) else {
        pass.status.sender = None;
        return Ok(());
    };
    // The old binding's scope is that of the old number: a sandbox binding belongs to the
    // account the channel used then.
    let old_scope = match previous.kind {
        SenderKind::Sandbox => pass.old.account.as_ref().map(|a| a.sid.clone()),
        _ => None,
    };
    // Only while this channel still holds the old number is its webhook this channel's to restore
    // (another channel may already have taken it over).
    let holds = binding::is_held_by(&pass.ctx.client, pass.ch, &old, old_scope.as_deref()).await?;
    if holds && pass.ch.spec.deletion_policy == DeletionPolicy::Delete && previous.kind != SenderKind::Sandbox {
        if let Err(e) = restore_webhook(pass, creds, previous).await {
            pass.ctx.note_rate_limit(&pass.ch.spec.twilio.account_sid, &e);
            if e.is_transient() {
                return Err(Error::Twilio(e));
            }
            tracing::warn!(channel = %pass.key(), error = %e, "cannot restore the previous number's webhook");
        }
    }
    binding::release(&pass.ctx.client, pass.ch, &old, old_scope.as_deref()).await?;
    pass.status.sender = None;
    Ok(())
}
