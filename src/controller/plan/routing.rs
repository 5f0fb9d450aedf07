//! Which object really routes a number's inbound WhatsApp messages, and whether the operator may
//! configure it (`spec.routing`). Precedence (docs/twilio.md gives the sources and marks what is
//! assumed): a Conversations address configuration with auto-creation; else the Messaging
//! Service whose pool holds the carrier, unless the service hands routing back
//! (`use_inbound_webhook_on_number`); else the carrier: a WhatsApp sender's webhook, an incoming
//! number's TwiML application when set, else its `sms_url`.

use crate::api::{ConditionType as T, MessagingServicePolicy, Reason, Route, RouteKind, RoutingStatus};
use crate::controller::conditions::Status;
use crate::twilio::{redact_url, RoutingFacts, E164};

use super::live::twilio_failure;
use super::report::Builder;
use super::{Read, Target};

/// What the routing decision leaves to the pass.
pub(super) enum Routed {
    /// The plan needs the routing facts first.
    Read(Read),
    /// Stop here: the conditions say why.
    Stop,
    /// Configure this object's webhook.
    Configure(Target),
}

/// What routes the number, and what the policy allows.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Resolution {
    /// The operator configures this object.
    Configure(Target),
    /// An object the operator may not change routes the number.
    Overridden {
        /// `OverriddenBy…`.
        reason: Reason,
        /// That object.
        actual: Route,
        /// What to change, for the condition's message.
        message: String,
    },
}

fn shown(url: Option<&str>) -> String {
    url.filter(|u| !u.is_empty()).map(redact_url).unwrap_or_else(|| "nowhere".to_owned())
}

/// The pure precedence decision for `number`, whose carrier is `carrier`.
pub(super) fn resolve(
    number: &E164,
    carrier: &Target,
    facts: &RoutingFacts,
    policy: MessagingServicePolicy,
) -> Resolution {
    if let Some(c) = &facts.address_configuration {
        let auto = c.auto_creation.clone().unwrap_or_default();
        let webhook = auto.type_.as_deref() == Some("webhook");
        let url = auto.webhook_url.filter(|_| webhook);
        let message = format!(
            "Inbound messages to {number} are taken by Conversations address configuration {} (auto-creation {}, to {}), not by {} {}. Delete the address configuration or disable its auto-creation (the operator does not change Conversations)",
            c.sid,
            auto.type_.as_deref().unwrap_or("default"),
            shown(url.as_deref()),
            carrier.noun(),
            carrier.sid(),
        );
        let actual = Route {
            kind: RouteKind::AddressConfiguration,
            sid: Some(c.sid.clone()),
            url,
            method: auto.webhook_method.filter(|_| webhook).map(|m| m.to_ascii_uppercase()),
        };
        return Resolution::Overridden { reason: Reason::OverriddenByAddressConfiguration, actual, message };
    }
    if let Some(f) = facts.service.as_ref().filter(|f| f.service.use_inbound_webhook_on_number != Some(true)) {
        let s = &f.service;
        let others = f.members.saturating_sub(1);
        let allowed = match policy {
            MessagingServicePolicy::Always => true,
            MessagingServicePolicy::IfDedicated => others == 0,
            MessagingServicePolicy::Never => false,
        };
        if allowed {
            return Resolution::Configure(Target::Service(s.clone()));
        }
        let why = match policy {
            MessagingServicePolicy::Never => "spec.routing.messagingService is Never".to_owned(),
            _ => format!(
                "the service is shared with {others} other sender{} or number{}",
                if others == 1 { "" } else { "s" },
                if others == 1 { "" } else { "s" }
            ),
        };
        let message = format!(
            "Inbound messages to {number} go to Messaging Service {} ({}: its inbound request URL {}), not to {} {}: the {} sits in that service, which does not defer to the sender's webhook, and {why}. Set UseInboundWebhookOnNumber (Console: Integration > \"Defer to sender's webhook\") on the service, remove the {} from the service, or set spec.routing.messagingService to Always to let the operator set the service's inbound URL",
            s.sid,
            s.friendly_name.as_deref().unwrap_or("unnamed"),
            shown(s.inbound_request_url.as_deref()),
            carrier.noun(),
            carrier.sid(),
            carrier.noun(),
            carrier.noun(),
        );
        let actual = Route {
            kind: RouteKind::MessagingService,
            sid: Some(s.sid.clone()),
            url: s.inbound_request_url.clone(),
            method: s.inbound_method.map(|m| m.as_str().to_owned()),
        };
        return Resolution::Overridden { reason: Reason::OverriddenByMessagingService, actual, message };
    }
    if let Target::Number(n) = carrier {
        if let Some(app) = n.sms_application_sid.as_deref().filter(|a| !a.is_empty()) {
            let message = format!(
                "Inbound messages to {number} go to TwiML application {app}, set on incoming phone number {} (SmsApplicationSid), which Twilio uses instead of its SmsUrl. Remove the application from the number (Console: Messaging configuration > \"A message comes in\": Webhook), or point the application at the receiver yourself (the operator does not change applications)",
                n.sid
            );
            let actual = Route { kind: RouteKind::Application, sid: Some(app.to_owned()), url: None, method: None };
            return Resolution::Overridden { reason: Reason::OverriddenByApplication, actual, message };
        }
    }
    Resolution::Configure(carrier.clone())
}

/// The route `target` gives now.
pub(super) fn route_of(target: &Target) -> Route {
    let (url, method) = target.hook();
    Route {
        kind: target.route_kind(),
        sid: Some(target.sid().to_owned()),
        url: Some(url).filter(|u| !u.is_empty()),
        method: Some(method),
    }
}

/// The route the spec asks for, through `target`.
pub(super) fn expected(b: &Builder<'_>, target: &Target) -> Route {
    let spec = &b.input.ch.spec.webhook;
    Route {
        kind: target.route_kind(),
        sid: Some(target.sid().to_owned()),
        url: Some(crate::controller::owner::mark(&spec.url, &super::ownership::me(b.input))),
        method: Some(spec.method.as_str().to_owned()),
    }
}

/// Whether the routing facts must be newer than this pass: the spec changed since the channel
/// reported an override, so the user may have fixed Twilio and edited the spec to have it
/// checked; a shared listing from before the edit does not do.
fn fresh(b: &Builder<'_>) -> bool {
    let overridden = b.old.routing.as_ref().is_some_and(|r| r.reason.starts_with("OverriddenBy"));
    overridden && b.input.ch.metadata.generation != b.old.observed_generation
}

/// Finds the object that routes `number` (carrier `carrier`); reports an override.
pub(super) fn route(b: &mut Builder<'_>, number: &E164, carrier: Target) -> Routed {
    let Some(facts) = b.input.twilio.routing.clone() else {
        return Routed::Read(Read::Routing(number.clone(), carrier.sid().to_owned(), fresh(b)));
    };
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            twilio_failure(b, T::WebhookConfigured, e);
            return Routed::Stop;
        }
    };
    match resolve(number, &carrier, &facts, b.input.ch.spec.routing.messaging_service) {
        Resolution::Configure(t) => Routed::Configure(t),
        Resolution::Overridden { reason, actual, message } => {
            let expected = expected(b, &carrier);
            b.status.routing = Some(RoutingStatus { expected, actual, reason: reason.as_str().to_owned() });
            b.set(T::WebhookConfigured, Status::False, reason, message);
            b.set(
                T::Connected,
                Status::False,
                Reason::NotConnected,
                "Another object routes the number's inbound messages",
            );
            Routed::Stop
        }
    }
}
