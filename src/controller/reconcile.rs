//! The reconcile of one channel: finalizer first, then observe → decide → act → report.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::{Api, ResourceExt};

use crate::api::{
    ChannelMode, ConditionType as T, DeletionPolicy, Phase, Reason, SenderKind, SenderStatus, WebhookMethod,
    WhatsAppChannel,
};
use crate::binding::{self, Claim};
use crate::twilio::{Credentials, IncomingPhoneNumber, Sender, SenderWebhookMethod, SmsMethod, TwilioError, E164};

use super::clock;
use super::conditions::Status;
use super::credentials;
use super::error::{Error, Result};
use super::report::Pass;
use super::webhook::{self, Decision, Hook, WriteCause};
use super::{cleanup, confirmation, protection, Context, FINALIZER};

/// The WhatsApp sandbox's shared number.
pub const SANDBOX_NUMBER: &str = "+14155238886";

/// Entry point called by the controller runtime.
pub async fn reconcile(ch: Arc<WhatsAppChannel>, ctx: Arc<Context>) -> Result<Action> {
    let ns = ch.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let key = format!("{ns}/{}", ch.name_any());
    if let Some(wait) = ctx.backoff.remaining(&key) {
        return Ok(Action::requeue(wait));
    }
    let api: Api<WhatsAppChannel> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, ch, |event| async {
        match event {
            FinalizerEvent::Apply(ch) => apply(&ch, &ctx, false).await,
            FinalizerEvent::Cleanup(ch) => cleanup::cleanup(&ch, &ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.backoff.reset(&key);
            Ok(action)
        }
        // The channel went away while this pass ran (its deletion just completed): nothing to do.
        Err(FinalizerError::ApplyFailed(Error::Kube(kube::Error::Api(s)))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        Err(FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e)) => Err(e),
        // Adding the finalizer from a watch-cache copy that has not seen our own earlier add
        // fails its JSON-patch test (422) or conflicts (409): look again shortly, no backoff.
        Err(FinalizerError::AddFinalizer(kube::Error::Api(s))) if s.code == 422 || s.code == 409 => {
            Ok(Action::requeue(std::time::Duration::from_millis(200)))
        }
        Err(FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e)) => Err(Error::Kube(e)),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}

/// What carries the number's inbound webhook at Twilio.
enum Target {
    Sender(Sender),
    Number(IncomingPhoneNumber),
}

impl Target {
    fn sid(&self) -> &str {
        match self {
            Self::Sender(s) => &s.sid,
            Self::Number(n) => &n.sid,
        }
    }
    fn kind(&self) -> SenderKind {
        match self {
            Self::Sender(_) => SenderKind::WhatsAppSender,
            Self::Number(_) => SenderKind::IncomingPhoneNumber,
        }
    }
    fn hook(&self) -> (String, String) {
        match self {
            Self::Sender(s) => (
                s.webhook.callback_url.clone().unwrap_or_default(),
                s.webhook.callback_method.unwrap_or_default().as_str().to_owned(),
            ),
            Self::Number(n) => {
                (n.sms_url.clone().unwrap_or_default(), n.sms_method.unwrap_or(SmsMethod::Post).as_str().to_owned())
            }
        }
    }
    fn status(&self) -> Option<String> {
        match self {
            Self::Sender(s) => Some(s.status.as_str().to_owned()),
            Self::Number(_) => None,
        }
    }
}

/// Reconciles a live channel. `fresh` says `ch` was just read from the API server rather than
/// from the watch cache, which can lag behind the operator's own status writes.
async fn apply(ch: &WhatsAppChannel, ctx: &Context, fresh: bool) -> Result<Action> {
    let mut pass = Pass::new(ch, ctx)?;
    if ch.spec.suspend {
        pass.keep_old_conditions();
        pass.phase_override = Some(Phase::Suspended);
        return pass.finish().await;
    }

    let number = match E164::parse(&ch.spec.phone_number) {
        Ok(n) => n,
        Err(e) => {
            pass.set(T::NumberVerified, Status::False, Reason::InvalidSpec, format!("spec.phoneNumber: {e}"));
            return pass.finish().await;
        }
    };
    if ch.spec.mode == ChannelMode::Sandbox && number.as_str() != SANDBOX_NUMBER {
        pass.set(
            T::NumberVerified,
            Status::False,
            Reason::InvalidSpec,
            format!("mode Sandbox uses Twilio's sandbox number {SANDBOX_NUMBER}, not {number}"),
        );
        return pass.finish().await;
    }

    // One number, one channel: claim it before any Twilio write.
    match binding::claim(&ctx.client, ch, &number).await? {
        Claim::Held => pass.set(T::NumberBound, Status::True, Reason::Bound, format!("This channel holds {number}")),
        Claim::HeldBy { holder, instance } => {
            pass.set(
                T::NumberBound,
                Status::False,
                Reason::NumberInUse,
                format!(
                    "{number} is held by WhatsAppChannel {}/{} (instance {instance}); this channel takes over when that one is deleted or moves to another number",
                    holder.namespace, holder.name
                ),
            );
            pass.set(T::Connected, Status::False, Reason::NotConnected, "The number belongs to another channel");
            return pass.finish().await;
        }
    }

    // Credentials (and the identity server's secret) from the channel's namespace.
    let secret_name = ch.spec.twilio.credentials_secret_ref.name.clone();
    let data = match credentials::read(&ctx.client, &pass.ns, &secret_name).await? {
        Ok(d) => d,
        Err(p) => return secret_problem(pass, p).await,
    };
    let creds = match credentials::twilio_credentials(&data, &pass.ns, &secret_name, &ch.spec.twilio.account_sid) {
        Ok(c) => c,
        Err(p) => return secret_problem(pass, p).await,
    };
    // Keep the Secret while this channel may need it to undo its Twilio changes.
    let mut secret_version = data.resource_version.clone();
    if ch.spec.deletion_policy == DeletionPolicy::Delete {
        if let Some(rv) = protection::protect(&ctx.client, data.meta()).await? {
            secret_version = rv;
        }
    } else if protection::is_protected(data.meta()) {
        protection::release_if_unused(&ctx.client, &pass.ns, &secret_name, None).await?;
    }
    let mut versions = BTreeMap::from([(secret_name.clone(), secret_version)]);
    let identity_data = match &ch.spec.identity_server {
        Some(id) if id.client_secret_ref.name == secret_name => Some(Ok(data)),
        Some(id) => {
            let read = credentials::read(&ctx.client, &pass.ns, &id.client_secret_ref.name).await?;
            if let Ok(d) = &read {
                versions.insert(id.client_secret_ref.name.clone(), d.resource_version.clone());
            }
            Some(read)
        }
        None => None,
    };

    // A rate-limited account makes no Twilio call until its hold ends.
    if let Some(wait) = ctx.holds.remaining(&ch.spec.twilio.account_sid) {
        return Ok(Action::requeue(super::backoff::with_jitter(wait)));
    }
    let inputs = verified_inputs(ch, &versions);
    let due = verification_due(&pass, &inputs);
    if due && !fresh {
        // Before talking to Twilio, make sure the status is not a stale cached copy.
        let api: Api<WhatsAppChannel> = Api::namespaced(ctx.client.clone(), &pass.ns);
        let latest = api.get(&ch.name_any()).await?;
        if latest.resource_version() != ch.resource_version() {
            return Box::pin(apply(&latest, ctx, true)).await;
        }
    }
    // A number this channel held before (spec.phoneNumber changed) is released, from the latest
    // status: the number change makes the pass due, so `pass` was read fresh above.
    if let Some(previous) = pass.old.sender.clone().filter(|s| s.phone_number != number.as_str()) {
        cleanup::release_previous_number(&mut pass, &creds, &previous).await?;
    }
    if !due {
        pass.keep_old_conditions();
        confirmation::follow_up(&mut pass, &creds, &number).await;
        return pass.finish().await;
    }

    pass.checked = Some(inputs.clone());
    if !verify(&mut pass, &creds).await || !connect(&mut pass, &creds, &number).await {
        return pass.finish().await;
    }
    if let (Some(id), Some(data)) = (&ch.spec.identity_server, identity_data) {
        confirmation::verify_identity(&mut pass, id, data).await;
    }
    pass.status.last_verified_time = Some(clock::now());
    pass.status.verified_inputs = Some(inputs);
    confirmation::follow_up(&mut pass, &creds, &number).await;
    pass.finish().await
}

/// Whether Twilio must be asked again: the spec or a Secret changed, the last verification is
/// older than the interval, or the channel was not Ready.
fn verification_due(pass: &Pass<'_>, inputs: &str) -> bool {
    let old = &pass.old;
    let fresh = old.last_verified_time.as_ref().is_some_and(|t| clock::age(t) < pass.ctx.config.verify_interval);
    let ready_and_fresh = fresh && old.verified_inputs.as_deref() == Some(inputs) && pass.was_ready();
    let uid = pass.ch.uid().unwrap_or_default();
    !(ready_and_fresh || pass.ctx.attempts.still_valid(&uid, inputs))
}

/// A digest of everything a verification at Twilio depends on: the spec fields that reach
/// Twilio or the identity server, and the referenced Secrets' versions. Fields that never reach
/// Twilio (`active`, `queue`, `language`) are left out, so changing them costs no Twilio call.
fn verified_inputs(ch: &WhatsAppChannel, secret_versions: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let s = &ch.spec;
    let relevant = serde_json::json!({
        "phoneNumber": s.phone_number,
        "mode": s.mode,
        "twilio": s.twilio,
        "webhook": s.webhook,
        "bindingPolicy": s.binding_policy,
        "identityServer": s.identity_server,
        "secrets": secret_versions,
    });
    let digest = Sha256::digest(relevant.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

async fn secret_problem(mut pass: Pass<'_>, p: credentials::SecretProblem) -> Result<Action> {
    pass.set(T::CredentialsValid, Status::False, p.reason, p.message);
    pass.set(T::Connected, Status::False, Reason::NotConnected, "No usable credentials");
    pass.finish().await
}

/// Verifies the credentials (shared per account and credentials). False: stop here.
async fn verify(pass: &mut Pass<'_>, creds: &Credentials) -> bool {
    let ctx = pass.ctx;
    let secret = &pass.ch.spec.twilio.credentials_secret_ref.name;
    let (outcome, _asked) = ctx.verifications.verify(&ctx.twilio, creds, ctx.config.verify_interval).await;
    match outcome {
        Ok(v) => {
            pass.status.account = Some(crate::api::AccountStatus {
                sid: v.account_sid.clone(),
                friendly_name: v.friendly_name.clone(),
                type_: v.account_type.as_ref().map(|t| t.as_str().to_owned()),
                status: v.status.as_ref().map(|s| s.as_str().to_owned()),
            });
            match v.status.as_ref().map(|s| s.as_str()) {
                Some("suspended") => {
                    pass.set(
                        T::CredentialsValid,
                        Status::False,
                        Reason::AccountSuspended,
                        format!("Twilio account {} is suspended", v.account_sid),
                    );
                    false
                }
                Some("closed") => {
                    pass.set(
                        T::CredentialsValid,
                        Status::False,
                        Reason::AccountClosed,
                        format!("Twilio account {} is closed", v.account_sid),
                    );
                    false
                }
                _ => {
                    let kind =
                        v.account_type.as_ref().map(|t| format!(" ({} account)", t.as_str())).unwrap_or_default();
                    pass.set(
                        T::CredentialsValid,
                        Status::True,
                        Reason::Verified,
                        format!("Twilio accepted the credentials in Secret {secret} for {}{kind}", v.account_sid),
                    );
                    true
                }
            }
        }
        Err(e) => {
            twilio_failure(pass, T::CredentialsValid, e);
            false
        }
    }
}

/// Maps a Twilio failure to conditions: transient ones back off, the rest wait for a change.
fn twilio_failure(pass: &mut Pass<'_>, during: T, e: TwilioError) {
    if e.is_transient() {
        pass.transient(during, e);
        return;
    }
    let secret = &pass.ch.spec.twilio.credentials_secret_ref.name;
    match &e {
        TwilioError::Unauthorized { .. } | TwilioError::NotFound { .. }
            if during == T::CredentialsValid || matches!(e, TwilioError::Unauthorized { .. }) =>
        {
            // Refused later with the same credentials (a revoked key): verify afresh next time.
            pass.ctx.verifications.invalidate(&pass.ch.spec.twilio.account_sid);
            pass.set(
                T::CredentialsValid,
                Status::False,
                Reason::InvalidCredentials,
                format!("Twilio refused the credentials in Secret {secret} for account {}: {e}. Fix the Secret; the operator retries at once when it changes", pass.ch.spec.twilio.account_sid),
            );
        }
        _ => pass.set(during, Status::False, Reason::TwilioRejected, e.to_string()),
    }
    pass.set(T::Connected, Status::False, Reason::NotConnected, "See the other conditions");
}

/// Finds the number and wires its webhook. False: stop here.
async fn connect(pass: &mut Pass<'_>, creds: &Credentials, number: &E164) -> bool {
    if pass.ch.spec.mode == ChannelMode::Sandbox {
        return connect_sandbox(pass, number);
    }
    let ctx = pass.ctx;
    let target = match ctx.twilio.find_whatsapp_sender(creds, number.as_str()).await {
        Ok(Some(sender)) if !sender.is_online() => {
            let reasons: Vec<String> = sender.offline_reasons.iter().map(|r| format!("{r:?}")).collect();
            pass.status.sender = Some(sender_status(&Target::Sender(sender.clone()), number, &pass.old.sender));
            pass.set(
                T::NumberVerified,
                Status::False,
                Reason::SenderNotReady,
                format!(
                    "WhatsApp sender {} for {number} is {} (not online yet{}); Meta's verification can take up to 24 hours. Checked again every {}",
                    sender.sid,
                    sender.status.as_str(),
                    if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join(", ")) },
                    humantime::format_duration(ctx.config.sender_poll_interval)
                ),
            );
            pass.set(T::Connected, Status::False, Reason::NotConnected, "The WhatsApp sender is not online yet");
            return false;
        }
        Ok(Some(sender)) => Target::Sender(sender),
        Ok(None) => match ctx.twilio.find_incoming_number(creds, number.as_str()).await {
            Ok(Some(n)) => Target::Number(n),
            Ok(None) => {
                pass.set(
                    T::NumberVerified,
                    Status::False,
                    Reason::NumberNotFound,
                    format!(
                        "{number} is neither a WhatsApp sender nor an incoming phone number of Twilio account {}",
                        pass.ch.spec.twilio.account_sid
                    ),
                );
                pass.set(T::Connected, Status::False, Reason::NotConnected, "The number was not found");
                return false;
            }
            Err(e) => {
                twilio_failure(pass, T::NumberVerified, e);
                return false;
            }
        },
        Err(e) => {
            twilio_failure(pass, T::NumberVerified, e);
            return false;
        }
    };
    let what = match &target {
        Target::Sender(s) => format!("WhatsApp sender {} ({})", s.sid, s.status.as_str()),
        Target::Number(n) => format!("incoming phone number {}", n.sid),
    };
    pass.set(T::NumberVerified, Status::True, Reason::Verified, format!("{number} is {what}"));
    wire_webhook(pass, creds, number, target).await
}

fn connect_sandbox(pass: &mut Pass<'_>, number: &E164) -> bool {
    let url = &pass.ch.spec.webhook.url;
    let method = pass.ch.spec.webhook.method.as_str();
    pass.status.sender = Some(SenderStatus {
        kind: SenderKind::Sandbox,
        phone_number: number.as_str().to_owned(),
        sid: None,
        status: None,
        webhook_url: None,
        webhook_method: None,
        configured_url: None,
        previous_webhook_url: None,
        previous_webhook_method: None,
    });
    pass.set(
        T::NumberVerified,
        Status::True,
        Reason::Verified,
        format!("{number} is Twilio's WhatsApp sandbox number"),
    );
    pass.set(
        T::WebhookConfigured,
        Status::Unknown,
        Reason::ManualStepRequired,
        format!("Twilio's API cannot read or set the sandbox's inbound URL. In the Twilio Console open Messaging > Try it out > Send a WhatsApp message > Sandbox settings, and set \"When a message comes in\" to {url} (method {method})"),
    );
    pass.set(
        T::Connected,
        Status::True,
        Reason::ChannelConnected,
        "Credentials verified; the sandbox's webhook is set in the Twilio Console",
    );
    true
}

async fn wire_webhook(pass: &mut Pass<'_>, creds: &Credentials, number: &E164, target: Target) -> bool {
    let ctx = pass.ctx;
    let spec = &pass.ch.spec.webhook;
    let sender_method = match (&target, spec.method) {
        (Target::Sender(_), WebhookMethod::Get) => {
            pass.set(
                T::WebhookConfigured,
                Status::False,
                Reason::InvalidSpec,
                "WhatsApp senders call their webhook with POST only: set spec.webhook.method to POST",
            );
            pass.set(T::Connected, Status::False, Reason::NotConnected, "The webhook cannot be configured");
            return false;
        }
        _ => SenderWebhookMethod::Post,
    };
    let (current_url, current_method) = target.hook();
    // The URL this channel wrote or confirmed on this very resource, if any.
    let ours = pass
        .old
        .sender
        .as_ref()
        .filter(|s| s.sid.as_deref() == Some(target.sid()) && s.phone_number == number.as_str())
        .and_then(|s| s.configured_url.clone());
    let decision = webhook::decide(
        &Hook { url: &current_url, method: &current_method },
        &Hook { url: &spec.url, method: spec.method.as_str() },
        ours.as_deref(),
        pass.ch.spec.binding_policy,
    );
    let mut status = sender_status(&target, number, &pass.old.sender);
    match decision {
        Decision::InSync => status.configured_url = Some(spec.url.clone()),
        Decision::BoundElsewhere { current_url } => {
            pass.status.sender = Some(status);
            pass.set(
                T::NumberBound,
                Status::False,
                Reason::BoundElsewhere,
                format!("{number} delivers to {current_url}, a receiver this channel did not set (another cluster or instance?). Set spec.bindingPolicy to Takeover to move the number here"),
            );
            pass.set(T::Connected, Status::False, Reason::NotConnected, "The number is bound elsewhere");
            return false;
        }
        Decision::Write { cause } => {
            let result = match &target {
                Target::Sender(s) => ctx
                    .twilio
                    .update_sender_webhook(creds, &s.sid, &s.webhook.with_callback(spec.url.clone(), sender_method))
                    .await
                    .map(Target::Sender),
                Target::Number(n) => {
                    let method = if spec.method == WebhookMethod::Get { SmsMethod::Get } else { SmsMethod::Post };
                    ctx.twilio
                        .update_incoming_number_webhook(creds, &n.sid, &spec.url, method)
                        .await
                        .map(Target::Number)
                }
            };
            let updated = match result {
                Ok(t) => t,
                Err(e) => {
                    twilio_failure(pass, T::WebhookConfigured, e);
                    return false;
                }
            };
            if status.previous_webhook_url.is_none()
                && !webhook::is_free(&current_url)
                && ours.as_deref() != Some(current_url.as_str())
            {
                status.previous_webhook_url = Some(current_url.clone());
                status.previous_webhook_method = Some(current_method.clone());
            }
            let (url, method) = updated.hook();
            status.webhook_url = Some(url).filter(|u| !u.is_empty());
            status.webhook_method = Some(method);
            status.status = updated.status();
            status.configured_url = Some(spec.url.clone());
            let shown = if current_url.is_empty() { "none".to_owned() } else { current_url.clone() };
            match cause {
                WriteCause::Restore => pass.note(
                    EventType::Warning,
                    Reason::WebhookRestored,
                    format!(
                        "The webhook of {number} was changed behind the operator's back (to {shown}); restored {}",
                        spec.url
                    ),
                ),
                WriteCause::Takeover => pass.note(
                    EventType::Warning,
                    Reason::TakenOver,
                    format!("bindingPolicy Takeover moved {number} from {shown} to {}", spec.url),
                ),
                WriteCause::Unset | WriteCause::SpecChanged => pass.note(
                    EventType::Normal,
                    Reason::Configured,
                    format!("Pointed the inbound webhook of {number} at {} (was {shown})", spec.url),
                ),
            }
        }
    }
    pass.status.sender = Some(status);
    pass.set(
        T::WebhookConfigured,
        Status::True,
        Reason::Configured,
        format!("Inbound messages to {number} go to {} ({})", spec.url, spec.method.as_str()),
    );
    pass.set(T::Connected, Status::True, Reason::ChannelConnected, format!("{number} is connected to {}", spec.url));
    true
}

/// The status of the webhook carrier, keeping the recorded previous webhook for the same
/// resource.
fn sender_status(target: &Target, number: &E164, old: &Option<SenderStatus>) -> SenderStatus {
    let (url, method) = target.hook();
    let same = old.as_ref().filter(|o| o.sid.as_deref() == Some(target.sid()) && o.phone_number == number.as_str());
    SenderStatus {
        kind: target.kind(),
        phone_number: number.as_str().to_owned(),
        sid: Some(target.sid().to_owned()),
        status: target.status(),
        webhook_url: Some(url).filter(|u| !u.is_empty()),
        webhook_method: Some(method),
        configured_url: same.and_then(|o| o.configured_url.clone()),
        previous_webhook_url: same.and_then(|o| o.previous_webhook_url.clone()),
        previous_webhook_method: same.and_then(|o| o.previous_webhook_method.clone()),
    }
}
