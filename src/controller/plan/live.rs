//! A channel that exists: spec checks, releasing a number it moved away from, the claim of its
//! number, credentials, whether Twilio is due to be asked again, the number and its webhook, the
//! identity server, then the confirmation message.

use kube::runtime::events::EventType;

use crate::api::{
    ChannelMode, ConditionType as T, DeletionPolicy, ManagementPolicy, Phase, Reason, RouteKind, RoutingStatus,
    SenderKind, SenderStatus, WebhookMethod, WhatsAppChannel,
};
use crate::binding::{self, BindingState};
use crate::controller::conditions::Status;
use crate::controller::owner::{self, Owner};
use crate::controller::webhook::{self, Decision, Hook, WriteCause};
use crate::twilio::{redact_url, SenderWebhookMethod, SmsMethod, TwilioError, E164};

use super::ownership;
use super::report::Builder;
use super::routing::{self, Routed};
use super::{confirm, release, Input, Locate, Next, Read, Step, Target, WebhookWrite};

/// The WhatsApp sandbox's shared number.
pub use crate::api::SANDBOX_NUMBER;

/// Plans a pass over a live channel.
pub(super) fn apply(input: Input<'_>) -> Next {
    let mut b = Builder::new(input);
    let ch = input.ch;
    if ch.spec.suspend {
        b.keep_old_conditions();
        b.phase_override = Some((Phase::Suspended, None));
        return b.finish();
    }
    // Observe: the same decisions, the writes reported instead of run (see `planned`).
    b.observe = ch.spec.management_policy == ManagementPolicy::Observe;
    let number = match E164::parse(&ch.spec.phone_number) {
        Ok(n) => n,
        Err(e) => {
            b.set(T::NumberVerified, Status::False, Reason::InvalidSpec, format!("spec.phoneNumber: {e}"));
            b.forget_attempt = true;
            return b.finish();
        }
    };
    // What the schema cannot express (the same rules `check` applies): no Twilio call at all.
    if let Some(problem) = crate::api::rules::spec_problems(&ch.spec).into_iter().next() {
        b.set(problem.condition, Status::False, Reason::InvalidSpec, problem.message);
        b.forget_attempt = true;
        return b.finish();
    }

    // A number the channel is still wired to but no longer asks for is released first: restored
    // and unbound before anything else, whatever fails (the old number stays held meanwhile).
    let mut b = match release::previous_number(b) {
        Ok(b) => b,
        Err(next) => return next,
    };
    // Other bindings this channel holds but neither asks for nor is wired to: stale, released.
    let keep: Vec<&str> = [input.cluster.binding.as_ref(), input.cluster.wired.as_ref()]
        .into_iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for held in &input.cluster.held {
        if !keep.contains(&held.name.as_str()) {
            b.pre.push(Step::Release(held.clone()));
        }
    }

    if !claim(&mut b, &number) {
        b.forget_attempt = true;
        return b.finish();
    }
    // A claim made in this pass ends it: Twilio is asked only once the number is this channel's
    // (the binding's watch event brings the next pass at once). A channel that loses the race
    // makes no Twilio call at all. Observe claims nothing, so it reads on: reads cannot compete.
    if !b.observe && b.pre.iter().any(|s| matches!(s, Step::Claim { .. })) {
        // Claiming a free number is no news of its own (the Ready Event follows at once); taking
        // it over from a channel that is gone is.
        if b.pre.iter().any(|s| matches!(s, Step::DeleteStaleBinding { .. })) {
            let instance = &ch.spec.instance;
            b.note(
                EventType::Normal,
                Reason::Bound,
                format!("Claimed {number} for instance {instance}, released by a channel that is gone"),
            );
        }
        b.keep_old_conditions();
        b.kept_stale = true;
        b.requeue_within(std::time::Duration::from_millis(500));
        return b.finish();
    }

    let secret = &input.cluster.secret;
    let fingerprint = match &secret.credentials {
        Ok(f) => f.clone(),
        Err(p) => {
            b.set(T::CredentialsValid, Status::False, p.reason, p.message.clone());
            b.set(T::Connected, Status::False, Reason::NotConnected, "No usable credentials");
            b.forget_attempt = true;
            return b.finish();
        }
    };
    // Keep the Secret while this channel may need it to undo its Twilio changes.
    if ch.spec.deletion_policy == DeletionPolicy::Delete && !secret.protected && !secret.deleting {
        b.pre.push(Step::ProtectSecret { name: secret.name.clone() });
    }

    // A rate-limited account makes no Twilio call until its hold ends.
    if let Some(wait) = input.cluster.hold {
        b.keep_old_conditions();
        b.status = b.old.clone();
        b.kept_stale = true;
        b.wait_for(wait);
        return b.finish();
    }

    let inputs = verified_inputs(ch, &fingerprint, input.cluster.identity_secret.as_ref());
    if !verification_due(&b, &inputs) {
        b.keep_old_conditions();
        b.keep_plan = true;
        return confirm::follow_up(b, &number);
    }
    // The receiver's certificate (opt-in): a handshake, whatever Twilio says next.
    if let Some(read) = super::receiver_tls::check(&mut b) {
        return Next::Read(read);
    }
    if b.input.twilio.verification.is_none() {
        return Next::Read(Read::Verify);
    }
    b.verified = Some(inputs.clone());
    // Answered by this verification (lost with the status on a transient failure: retried).
    if let Some(v) = super::verify_now_requested(ch) {
        b.status.verify_now = Some(v.to_owned());
    }
    set_bound(&mut b, &number);
    if !verify(&mut b) {
        return b.finish();
    }
    let target = match connect(&mut b, &number) {
        Connect::Read(r) => return Next::Read(r),
        Connect::Stop => return b.finish(),
        Connect::Sandbox => None,
        Connect::Wire(t) => Some(t),
    };
    if let Some(carrier) = target {
        let target = match routing::route(&mut b, &number, carrier.clone()) {
            Routed::Read(r) => return Next::Read(r),
            Routed::Stop => {
                b.status.sender = Some(sender_status(&carrier, &number, b.old.sender.as_ref()));
                return b.finish();
            }
            Routed::Configure(t) => t,
        };
        if !wire(&mut b, &number, target) {
            return b.finish();
        }
    }
    if let Some(id) = &ch.spec.identity_server {
        match identity(&mut b, id) {
            Some(read) => return Next::Read(read),
            None if b.error.is_some() => return b.finish(),
            None => {}
        }
    }
    b.status.last_verified_time = Some(input.now.clone());
    b.status.verified_inputs = Some(inputs);
    confirm::follow_up(b, &number)
}

fn set_bound(b: &mut Builder<'_>, number: &E164) {
    if b.observe && b.pre.iter().any(|s| matches!(s, Step::Claim { .. })) {
        b.set(
            T::NumberBound,
            Status::False,
            Reason::ChangesPlanned,
            format!("{number} is free; managementPolicy Observe does not claim it (Manage creates its WhatsAppNumberBinding)"),
        );
        return;
    }
    b.set(T::NumberBound, Status::True, Reason::Bound, format!("This channel holds {number}"));
}

/// One number, one channel: the claim comes before any Twilio write. False: stop here.
fn claim(b: &mut Builder<'_>, number: &E164) -> bool {
    let Some(view) = b.input.cluster.binding.clone() else {
        return false;
    };
    match view.state {
        BindingState::Mine { instance_stale } => {
            if instance_stale {
                b.pre.push(Step::SetInstance { name: view.name, instance: b.input.ch.spec.instance.clone() });
            }
            true
        }
        BindingState::Free | BindingState::Stale { .. } => {
            if let BindingState::Stale { uid, resource_version, .. } = &view.state {
                b.pre.push(Step::DeleteStaleBinding {
                    name: view.name.clone(),
                    uid: uid.clone(),
                    resource_version: resource_version.clone(),
                });
            }
            match binding::binding_for(b.input.ch, number) {
                Some(desired) => {
                    b.pre.push(Step::Claim { name: view.name.clone(), spec: desired.spec });
                    true
                }
                None => false,
            }
        }
        BindingState::HeldBy { holder, instance } => {
            b.set(
                T::NumberBound,
                Status::False,
                Reason::NumberInUse,
                format!(
                    "{number} is held by WhatsAppChannel {}/{} (instance {instance}); this channel takes over when that one is deleted or moves to another number",
                    holder.namespace, holder.name
                ),
            );
            b.set(T::Connected, Status::False, Reason::NotConnected, "The number belongs to another channel");
            false
        }
    }
}

/// Whether Twilio must be asked again: the spec or the credentials changed, the last
/// verification is older than the interval, or the channel was not Ready (and this process has
/// not checked these inputs recently).
pub(super) fn verification_due(b: &Builder<'_>, inputs: &str) -> bool {
    let old = &b.old;
    let cfg = b.input.config;
    let fresh = old
        .last_verified_time
        .as_ref()
        .is_some_and(|t| crate::controller::clock::between(t, b.input.now) < cfg.verify_interval);
    let ready_and_fresh = fresh && old.verified_inputs.as_deref() == Some(inputs) && b.was_ready();
    // A new value of the verify-now annotation overrides both.
    super::verify_now_requested(b.input.ch).is_some() || !(ready_and_fresh || b.input.cluster.attempt_left.is_some())
}

/// A digest of everything a verification at Twilio depends on: the spec fields that reach
/// Twilio or the identity server, and the credentials' fingerprints (not the Secrets'
/// resourceVersions: a label or finalizer change on a Secret is not a new credential). Fields
/// that never reach Twilio (`active`, `queue`, `language`) are left out.
pub fn verified_inputs(
    ch: &WhatsAppChannel,
    credentials: &str,
    identity: Option<&Result<String, crate::controller::credentials::SecretProblem>>,
) -> String {
    use sha2::{Digest, Sha256};
    let s = &ch.spec;
    let identity = identity.map(|r| r.as_ref().map(String::as_str).unwrap_or("missing"));
    let relevant = serde_json::json!({
        "phoneNumber": s.phone_number,
        "mode": s.mode,
        "twilio": s.twilio,
        "webhook": s.webhook,
        "bindingPolicy": s.binding_policy,
        "identityServer": s.identity_server,
        "credentials": credentials,
        "identitySecret": identity,
    });
    let mut relevant = relevant;
    // Only when set: the default changes no channel's digest (no re-verification on upgrade).
    if s.routing != crate::api::RoutingSpec::default() {
        relevant["routing"] = serde_json::json!(s.routing);
    }
    if let Some(t) = &s.takeover {
        relevant["takeover"] = serde_json::json!(t);
    }
    if s.management_policy != crate::api::ManagementPolicy::default() {
        relevant["managementPolicy"] = serde_json::json!(s.management_policy);
    }
    let digest = Sha256::digest(relevant.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Verifies the credentials (shared per account and credentials). False: stop here.
fn verify(b: &mut Builder<'_>) -> bool {
    let ch = b.input.ch;
    let secret = &ch.spec.twilio.credentials_secret_ref.name;
    let Some(outcome) = b.input.twilio.verification.clone() else {
        return false;
    };
    match outcome {
        Ok(v) => {
            b.status.account = Some(crate::api::AccountStatus {
                sid: v.account_sid.clone(),
                friendly_name: v.friendly_name.clone(),
                type_: v.account_type.as_ref().map(|t| t.as_str().to_owned()),
                status: v.status.as_ref().map(|s| s.as_str().to_owned()),
            });
            match v.status.as_ref().map(|s| s.as_str()) {
                Some(s @ ("suspended" | "closed")) => {
                    let reason = if s == "closed" { Reason::AccountClosed } else { Reason::AccountSuspended };
                    b.set(
                        T::CredentialsValid,
                        Status::False,
                        reason,
                        format!("Twilio account {} is {s}", v.account_sid),
                    );
                    b.set(T::Connected, Status::False, Reason::NotConnected, "See the other conditions");
                    false
                }
                _ => {
                    let kind = match v.account_type.as_ref() {
                        _ if v.is_trial() => {
                            " (Trial account: messages reach verified caller IDs only, Twilio error 21608 otherwise)"
                                .to_owned()
                        }
                        Some(t) => format!(" ({} account)", t.as_str()),
                        None => String::new(),
                    };
                    let used = credential_in_use(b);
                    b.set(
                        T::CredentialsValid,
                        Status::True,
                        Reason::Verified,
                        format!("Twilio accepted the credentials in Secret {secret} for {}{kind}{used}", v.account_sid),
                    );
                    true
                }
            }
        }
        Err(e) => {
            twilio_failure(b, T::CredentialsValid, e);
            false
        }
    }
}

/// Records which credential verified in `status.credentials` (an Event when that changed) and
/// returns what the CredentialsValid message says of it.
fn credential_in_use(b: &mut Builder<'_>) -> String {
    let Some(now) = b.input.twilio.credential.clone() else {
        return String::new();
    };
    if let Some(before) = b.old.credentials.as_ref().filter(|before| **before != now) {
        b.note(
            EventType::Normal,
            Reason::CredentialsChanged,
            format!(
                "Twilio accepts the {} credential ({}) of Secret {}; it used the {} ({}) before",
                now.source.as_str(),
                now.fingerprint,
                b.input.ch.spec.twilio.credentials_secret_ref.name,
                before.source.as_str(),
                before.fingerprint
            ),
        );
    }
    let used = match now.source {
        crate::api::CredentialSource::Secondary => {
            format!(", with authTokenSecondary ({}): Twilio refused authToken", now.fingerprint)
        }
        _ => String::new(),
    };
    b.status.credentials = Some(now);
    used
}

/// Maps a Twilio failure to conditions: transient ones back off, the rest wait for a change.
pub(super) fn twilio_failure(b: &mut Builder<'_>, during: T, e: TwilioError) {
    if e.is_transient() {
        b.transient(during, e);
        return;
    }
    let ch = b.input.ch;
    let secret = &ch.spec.twilio.credentials_secret_ref.name;
    match &e {
        TwilioError::Unauthorized { .. } | TwilioError::NotFound { .. }
            if during == T::CredentialsValid || matches!(e, TwilioError::Unauthorized { .. }) =>
        {
            // Refused later with credentials the cache says are good (a revoked key): verify
            // afresh next time. A refused verification is itself the cached answer: forgetting it
            // would make every pass with these credentials ask again (a rotation in progress).
            b.forget_verification = during != T::CredentialsValid;
            let both = b
                .input
                .twilio
                .credential
                .as_ref()
                .filter(|c| during == T::CredentialsValid && c.source == crate::api::CredentialSource::Secondary)
                .map(|_| " (authToken and authTokenSecondary both)")
                .unwrap_or_default();
            if during == T::CredentialsValid {
                // Nothing of the Secret verified.
                b.status.credentials = None;
            }
            b.set(
                T::CredentialsValid,
                Status::False,
                Reason::InvalidCredentials,
                format!("Twilio refused the credentials in Secret {secret}{both} for account {}: {e}. Fix the Secret; the operator retries at once when it changes", ch.spec.twilio.account_sid),
            );
        }
        _ => b.set(during, Status::False, Reason::TwilioRejected, e.to_string()),
    }
    b.set(T::Connected, Status::False, Reason::NotConnected, "See the other conditions");
}

enum Connect {
    Read(Read),
    Stop,
    Sandbox,
    Wire(Target),
}

/// Where the spec number's carrier is looked for: by the SID in status when the status is about
/// this number, else by a lookup.
pub(super) fn locate(recorded: Option<&SenderStatus>, number: &E164) -> Locate {
    match recorded.filter(|s| s.phone_number == number.as_str()) {
        Some(SenderStatus { kind: SenderKind::WhatsAppSender, sid: Some(sid), .. }) => Locate::SenderSid(sid.clone()),
        Some(SenderStatus { kind: SenderKind::IncomingPhoneNumber, sid: Some(sid), .. }) => {
            Locate::NumberSid(sid.clone())
        }
        Some(SenderStatus { kind: SenderKind::MessagingService, sid: Some(sid), .. }) => {
            Locate::ServiceSid(sid.clone())
        }
        _ => Locate::Lookup,
    }
}

/// Finds the number's carrier.
fn connect(b: &mut Builder<'_>, number: &E164) -> Connect {
    let ch = b.input.ch;
    if ch.spec.mode == ChannelMode::Sandbox {
        connect_sandbox(b, number);
        return Connect::Sandbox;
    }
    let Some(found) = b.input.twilio.target.clone() else {
        // A Messaging Service in status is what routed the number: its carrier is looked up.
        let how = match locate(b.old.sender.as_ref(), number) {
            Locate::ServiceSid(_) => Locate::Lookup,
            how => how,
        };
        return Connect::Read(Read::Target(number.clone(), how));
    };
    let target = match found {
        Ok(Some(Target::Sender(sender))) if !sender.is_online() => {
            let reasons: Vec<String> = sender.offline_reasons.iter().map(|r| format!("{r:?}")).collect();
            b.status.sender = Some(sender_status(&Target::Sender(sender.clone()), number, b.old.sender.as_ref()));
            b.set(
                T::NumberVerified,
                Status::False,
                Reason::SenderNotReady,
                format!(
                    "WhatsApp sender {} for {number} is {} (not online yet{}); Meta's verification can take up to 24 hours. Checked again every {}",
                    sender.sid,
                    sender.status.as_str(),
                    if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join(", ")) },
                    humantime::format_duration(b.input.config.sender_poll_interval)
                ),
            );
            b.set(T::Connected, Status::False, Reason::NotConnected, "The WhatsApp sender is not online yet");
            return Connect::Stop;
        }
        Ok(Some(t)) => t,
        Ok(None) => {
            b.set(
                T::NumberVerified,
                Status::False,
                Reason::NumberNotFound,
                format!(
                    "{number} is neither a WhatsApp sender nor an incoming phone number of Twilio account {}",
                    ch.spec.twilio.account_sid
                ),
            );
            b.set(T::Connected, Status::False, Reason::NotConnected, "The number was not found");
            return Connect::Stop;
        }
        Err(e) => {
            twilio_failure(b, T::NumberVerified, e);
            return Connect::Stop;
        }
    };
    let what = match &target {
        Target::Sender(s) => format!("WhatsApp sender {} ({})", s.sid, s.status.as_str()),
        Target::Number(n) => format!("incoming phone number {}", n.sid),
        Target::Service(s) => format!("Messaging Service {}", s.sid),
    };
    b.set(T::NumberVerified, Status::True, Reason::Verified, format!("{number} is {what}"));
    Connect::Wire(target)
}

fn connect_sandbox(b: &mut Builder<'_>, number: &E164) {
    let url = redact_url(&b.input.ch.spec.webhook.url);
    let method = b.input.ch.spec.webhook.method.as_str();
    let sandbox = SenderStatus {
        kind: SenderKind::Sandbox,
        phone_number: number.as_str().to_owned(),
        sid: None,
        status: None,
        webhook_url: None,
        webhook_method: None,
        configured_url: None,
        pending_webhook_url: None,
        previous_webhook_url: None,
        previous_webhook_method: None,
    };
    b.status.sender = Some(sandbox);
    let route = |url: Option<String>, method: Option<String>| crate::api::Route {
        kind: RouteKind::Sandbox,
        sid: None,
        url,
        method,
    };
    b.status.routing = Some(RoutingStatus {
        expected: route(Some(b.input.ch.spec.webhook.url.clone()), Some(method.to_owned())),
        actual: route(None, None),
        reason: Reason::ManualStepRequired.as_str().to_owned(),
    });
    b.set(T::NumberVerified, Status::True, Reason::Verified, format!("{number} is Twilio's WhatsApp sandbox number"));
    b.set(
        T::WebhookConfigured,
        Status::Unknown,
        Reason::ManualStepRequired,
        format!("Twilio's API cannot read or set the sandbox's inbound URL. In the Twilio Console open Messaging > Try it out > Send a WhatsApp message > Sandbox settings, and set \"When a message comes in\" to {url} (method {method})"),
    );
    b.set(
        T::Connected,
        Status::True,
        Reason::ChannelConnected,
        "Credentials verified; the sandbox's webhook is set in the Twilio Console",
    );
}

impl Target {
    /// The object's SID.
    pub fn sid(&self) -> &str {
        match self {
            Self::Sender(s) => &s.sid,
            Self::Number(n) => &n.sid,
            Self::Service(s) => &s.sid,
        }
    }

    /// The object's kind, as `status.sender` names it.
    pub fn kind(&self) -> SenderKind {
        match self {
            Self::Sender(_) => SenderKind::WhatsAppSender,
            Self::Number(_) => SenderKind::IncomingPhoneNumber,
            Self::Service(_) => SenderKind::MessagingService,
        }
    }

    /// The object's kind, as `status.routing` names it.
    pub fn route_kind(&self) -> RouteKind {
        match self {
            Self::Sender(_) => RouteKind::WhatsAppSender,
            Self::Number(_) => RouteKind::IncomingPhoneNumber,
            Self::Service(_) => RouteKind::MessagingService,
        }
    }

    /// What the object is, in a message.
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Sender(_) => "WhatsApp sender",
            Self::Number(_) => "incoming phone number",
            Self::Service(_) => "Messaging Service",
        }
    }

    /// The webhook URL (empty when unset) and method Twilio has now.
    pub fn hook(&self) -> (String, String) {
        match self {
            Self::Sender(s) => (
                s.webhook.callback_url.clone().unwrap_or_default(),
                s.webhook.callback_method.unwrap_or_default().as_str().to_owned(),
            ),
            Self::Number(n) => {
                (n.sms_url.clone().unwrap_or_default(), n.sms_method.unwrap_or(SmsMethod::Post).as_str().to_owned())
            }
            Self::Service(s) => (
                s.inbound_request_url.clone().unwrap_or_default(),
                s.inbound_method.unwrap_or(SmsMethod::Post).as_str().to_owned(),
            ),
        }
    }

    fn status(&self) -> Option<String> {
        match self {
            Self::Sender(s) => Some(s.status.as_str().to_owned()),
            Self::Number(_) | Self::Service(_) => None,
        }
    }

    /// The write that sets this carrier's webhook to `url` and `method`, keeping the rest.
    pub fn write(&self, url: &str, method: &str) -> WebhookWrite {
        match self {
            Self::Sender(s) => {
                let method = if method == "PUT" { SenderWebhookMethod::Put } else { SenderWebhookMethod::Post };
                WebhookWrite::Sender { sid: s.sid.clone(), webhook: s.webhook.with_callback(url.to_owned(), method) }
            }
            Self::Number(n) => {
                let method = if method == "GET" { SmsMethod::Get } else { SmsMethod::Post };
                WebhookWrite::Number { sid: n.sid.clone(), url: url.to_owned(), method }
            }
            Self::Service(s) => {
                let method = if method == "GET" { SmsMethod::Get } else { SmsMethod::Post };
                WebhookWrite::Service { sid: s.sid.clone(), url: url.to_owned(), method }
            }
        }
    }
}

/// The URLs this channel set, or is about to set, on the carrier `recorded` describes.
pub(super) fn ours(recorded: Option<&SenderStatus>) -> Vec<String> {
    recorded
        .map(|s| [s.configured_url.clone(), s.pending_webhook_url.clone()])
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

/// Decides and plans the webhook write. False: stop here.
fn wire(b: &mut Builder<'_>, number: &E164, target: Target) -> bool {
    let spec = &b.input.ch.spec.webhook;
    let expected = routing::expected(b, &target);
    let side_by_side = |actual: &Target, reason: Reason| RoutingStatus {
        expected: expected.clone(),
        actual: routing::route_of(actual),
        reason: reason.as_str().to_owned(),
    };
    if matches!(target, Target::Sender(_)) && spec.method == WebhookMethod::Get {
        b.status.sender = Some(sender_status(&target, number, b.old.sender.as_ref()));
        b.status.routing = Some(side_by_side(&target, Reason::MethodNotSupported));
        b.set(
            T::WebhookConfigured,
            Status::False,
            Reason::MethodNotSupported,
            format!("WhatsApp sender {} routes {number} and calls its webhook with POST (or PUT) only, never GET: set spec.webhook.method to POST", target.sid()),
        );
        b.set(T::Connected, Status::False, Reason::NotConnected, "The webhook cannot be configured");
        return false;
    }
    let (current_url, current_method) = target.hook();
    let recorded =
        b.old.sender.as_ref().filter(|s| s.sid.as_deref() == Some(target.sid()) && s.phone_number == number.as_str());
    let ours = ours(recorded);
    let me = ownership::me(b.input);
    // What Twilio will have: the spec's URL carrying this channel's ownership marker.
    let desired_url = owner::mark(&spec.url, &me);
    let found = owner::read(&current_url);
    let lost = ownership::observe_loss(b, &me, found.owner.as_ref(), &ours);
    let lost_to = ownership::lost_to(b, &me);
    let decision = webhook::decide(
        &Hook { url: &current_url, method: &current_method },
        &Hook { url: &desired_url, method: spec.method.as_str() },
        &ours,
        webhook::Claim {
            me: &me,
            policy: b.input.ch.spec.binding_policy,
            takeover_from: b.input.ch.spec.takeover.as_ref().and_then(|t| t.from.as_deref()),
            lost_to: lost_to.as_ref(),
        },
    );
    let mut status = sender_status(&target, number, b.old.sender.as_ref());
    let shown_current = if current_url.is_empty() { "none".to_owned() } else { redact_url(&found.url) };
    let desired = redact_url(&spec.url);
    let held_by = |owner: &Option<Owner>| match owner {
        Some(o) => format!(
            "{shown_current}, owned by {o} (cluster {}, channel {}, instance {})",
            o.cluster,
            o.channel(),
            o.instance
        ),
        None => format!("{shown_current}, a receiver without an ownership marker"),
    };
    let refuse = |b: &mut Builder<'_>, status: SenderStatus, reason: Reason, message: String| {
        b.status.sender = Some(status);
        b.status.routing = Some(side_by_side(&target, reason));
        b.set(T::NumberBound, Status::False, reason, message);
        b.set(T::Connected, Status::False, Reason::NotConnected, "The number is bound elsewhere");
    };
    match decision {
        Decision::InSync => {
            status.configured_url = Some(desired_url.clone());
            status.pending_webhook_url = None;
        }
        Decision::BoundElsewhere { owner, .. } => {
            ownership::show(b, owner.as_ref());
            let msg = format!(
                "{number} delivers to {}{}. Free the number there, or set spec.bindingPolicy to Takeover and spec.takeover.from to {}",
                held_by(&owner),
                if lost { ", which took it from this channel" } else { "" },
                takeover_hint(&owner, &found.url),
            );
            refuse(b, status, Reason::BoundElsewhere, msg);
            return false;
        }
        Decision::TakeoverRefused { owner, .. } => {
            ownership::show(b, owner.as_ref());
            let from = b.input.ch.spec.takeover.as_ref().and_then(|t| t.from.clone());
            let why = match from {
                None => "spec.takeover.from is not set: a blind takeover is refused".to_owned(),
                Some(f) => format!("spec.takeover.from names {f:?}, not the owner at Twilio"),
            };
            let msg = format!(
                "{number} delivers to {}; {why}. To take it over, set spec.takeover.from to {}",
                held_by(&owner),
                takeover_hint(&owner, &found.url),
            );
            refuse(b, status, Reason::TakeoverRefused, msg);
            return false;
        }
        Decision::TakeoverContested { owner } => {
            let some = Some(owner.clone());
            ownership::show(b, some.as_ref());
            let msg = format!(
                "{number} was taken from this channel by {}, the owner spec.takeover.from names: the operator does not take it back, so that the number does not flip between two takeovers. Remove the takeover on one side (or edit this channel's spec to try once more)",
                held_by(&some),
            );
            refuse(b, status, Reason::TakeoverContested, msg);
            return false;
        }
        Decision::Write { .. } if b.observe => {
            // Observe: the write is planned; the status shows Twilio as it is.
            b.seen.push(target.clone());
            b.twilio.push(Step::SetWebhook(target.write(&desired_url, spec.method.as_str())));
            b.status.sender = Some(status);
            b.status.routing = Some(side_by_side(&target, Reason::ChangesPlanned));
            b.set(
                T::WebhookConfigured,
                Status::False,
                Reason::ChangesPlanned,
                format!(
                    "Inbound messages to {number} go to {shown_current}; managementPolicy Observe plans to point the {} {} at {desired} ({})",
                    target.noun(),
                    target.sid(),
                    spec.method.as_str()
                ),
            );
            b.set(
                T::Connected,
                Status::False,
                Reason::ChangesPlanned,
                format!("{number} connects once the planned changes are applied"),
            );
            return true;
        }
        Decision::Write { cause } => {
            // Recorded before the write: the URL about to be set, and what it overwrites (unless
            // this channel set that itself), so that cleanup and later passes know both.
            let mut intent = status.clone();
            intent.pending_webhook_url = Some(desired_url.clone());
            // The spec's URL without a marker (set before markers existed) is in sync, not a
            // previous receiver: deletion clears it, as it always did.
            let unmarked_spec = found.owner.is_none() && found.url == owner::read(&spec.url).url;
            if intent.previous_webhook_url.is_none()
                && !ours.contains(&current_url)
                && !current_url.is_empty()
                && !unmarked_spec
            {
                intent.previous_webhook_url = Some(current_url.clone());
                intent.previous_webhook_method = Some(current_method.clone());
            }
            b.record.sender = Some(intent.clone());
            let failed = b.input.twilio.outcomes.iter().find_map(|o| match o {
                super::Outcome::WebhookFailed(e) => Some(e.clone()),
                _ => None,
            });
            b.twilio.push(Step::SetWebhook(target.write(&desired_url, spec.method.as_str())));
            if let Some(e) = failed {
                b.status.sender = Some(intent);
                twilio_failure(b, T::WebhookConfigured, e);
                return false;
            }
            status = intent;
            status.webhook_url = Some(desired_url.clone());
            status.webhook_method = Some(spec.method.as_str().to_owned());
            status.configured_url = Some(desired_url.clone());
            status.pending_webhook_url = None;
            match cause {
                WriteCause::Restore => b.note(
                    EventType::Warning,
                    Reason::WebhookRestored,
                    format!(
                        "The webhook of {number} was changed behind the operator's back (to {shown_current}); restored {desired}"
                    ),
                ),
                WriteCause::Takeover => b.note(
                    EventType::Warning,
                    Reason::TakenOver,
                    format!("bindingPolicy Takeover moved {number} from {} to {desired}", held_by(&found.owner)),
                ),
                WriteCause::Unset | WriteCause::SpecChanged => b.note(
                    EventType::Normal,
                    Reason::Configured,
                    format!("Pointed the inbound webhook of {number} at {desired} (was {shown_current})"),
                ),
            }
        }
    }
    ownership::gained(b, &me, found.owner.as_ref().filter(|o| !o.same_channel(&me)), number);
    b.status.sender = Some(status);
    b.status.routing =
        Some(RoutingStatus { actual: expected.clone(), expected, reason: Reason::Configured.as_str().to_owned() });
    b.set(
        T::WebhookConfigured,
        Status::True,
        Reason::Configured,
        format!("Inbound messages to {number} go to {desired} ({})", spec.method.as_str()),
    );
    b.set(T::Connected, Status::True, Reason::ChannelConnected, format!("{number} is connected to {desired}"));
    true
}

/// What `spec.takeover.from` must say to take the number from `owner` (or, unmarked, `url`).
fn takeover_hint(owner: &Option<Owner>, url: &str) -> String {
    match owner {
        Some(o) => format!("{:?}", o.to_string()),
        None => format!("its URL ({})", redact_url(url)),
    }
}

/// The status of the webhook carrier, keeping what was recorded for the same resource.
pub(super) fn sender_status(target: &Target, number: &E164, old: Option<&SenderStatus>) -> SenderStatus {
    let (url, method) = target.hook();
    let same = old.filter(|o| o.sid.as_deref() == Some(target.sid()) && o.phone_number == number.as_str());
    SenderStatus {
        kind: target.kind(),
        phone_number: number.as_str().to_owned(),
        sid: Some(target.sid().to_owned()),
        status: target.status(),
        webhook_url: Some(url).filter(|u| !u.is_empty()),
        webhook_method: Some(method),
        configured_url: same.and_then(|o| o.configured_url.clone()),
        pending_webhook_url: same.and_then(|o| o.pending_webhook_url.clone()),
        previous_webhook_url: same.and_then(|o| o.previous_webhook_url.clone()),
        previous_webhook_method: same.and_then(|o| o.previous_webhook_method.clone()),
    }
}

/// Checks the identity server: `Some(read)` when its answer is still needed.
fn identity(b: &mut Builder<'_>, id: &crate::api::IdentityServerSpec) -> Option<Read> {
    if let Some(Err(p)) = &b.input.cluster.identity_secret {
        b.set(T::IdentityVerified, Status::False, Reason::IdentitySecretMissing, p.message.clone());
        return None;
    }
    let Some(answer) = b.input.twilio.identity.clone() else {
        return Some(Read::Identity);
    };
    let url = redact_url(&id.url);
    match answer {
        Ok(()) => b.set(
            T::IdentityVerified,
            Status::True,
            Reason::Verified,
            format!("{url} issued a token to client {}", id.client_id),
        ),
        Err(e @ crate::twilio::IdentityError::Refused(_)) => {
            b.set(T::IdentityVerified, Status::False, Reason::IdentityURLRefused, e.to_string())
        }
        Err(e) if e.is_transient() => {
            b.set(
                T::IdentityVerified,
                Status::Unknown,
                Reason::IdentityUnavailable,
                format!("{e}; retrying with backoff"),
            );
            b.error = Some(crate::controller::Error::Identity(e));
        }
        Err(e) => b.set(
            T::IdentityVerified,
            Status::False,
            Reason::IdentityRejected,
            format!("{url} refused client {}: {e}", id.client_id),
        ),
    }
    None
}
