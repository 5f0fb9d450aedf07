//! Where Twilio delivers an inbound WhatsApp message to a number: the simulator's model of the
//! precedence between the objects that can route it (see `docs/twilio.md` of the operator for
//! the sources and what is assumed):
//!
//! 1. a Conversations address configuration for `whatsapp:<number>` with auto-creation
//!    enabled takes the message;
//! 2. else the number's WhatsApp sender (`XE…`), or without one its incoming phone number
//!    (`PN…`), is the carrier; when the carrier sits in a Messaging Service's pool (ChannelSenders
//!    or PhoneNumbers) and the service does not hand routing back
//!    (`use_inbound_webhook_on_number` false), the service's `inbound_request_url` decides
//!    (none: the message is dropped);
//! 3. else the sender's `webhook.callback_url`; for an incoming phone number its
//!    `sms_application_sid` (a TwiML application) when set, else its `sms_url`.

use serde::{Deserialize, Serialize};

use super::Account;

/// The kind of object that routes a number's inbound WhatsApp messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteKind {
    /// A Conversations address configuration (`IG…`).
    AddressConfiguration,
    /// A Messaging Service (`MG…`).
    MessagingService,
    /// A WhatsApp sender (`XE…`).
    WhatsAppSender,
    /// A TwiML application (`AP…`) set on the incoming phone number.
    Application,
    /// An incoming phone number (`PN…`).
    IncomingPhoneNumber,
}

/// The object that routes a number's inbound WhatsApp messages, and where it sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRoute {
    /// Which kind of object.
    pub kind: RouteKind,
    /// Its SID.
    pub sid: String,
    /// The URL messages go to (`None`: none, or not known to the simulator: an application's).
    pub url: Option<String>,
    /// The HTTP method, upper case.
    pub method: Option<String>,
}

impl Account {
    /// The object that routes inbound WhatsApp messages to `e164` (`+…`), or `None` when the
    /// account has neither a sender nor an incoming phone number for it.
    pub fn inbound_route(&self, e164: &str) -> Option<InboundRoute> {
        if let Some(c) = self.address_configurations.iter().find(|c| c.takes_whatsapp(e164)) {
            let webhook = c.auto_creation.type_ == "webhook";
            return Some(InboundRoute {
                kind: RouteKind::AddressConfiguration,
                sid: c.sid.clone(),
                url: c.auto_creation.webhook_url.clone().filter(|_| webhook),
                method: c.auto_creation.webhook_method.as_ref().filter(|_| webhook).map(|m| m.to_ascii_uppercase()),
            });
        }
        let sender = self.senders.iter().find(|s| s.sender_id == format!("whatsapp:{e164}"));
        let number = self.incoming_phone_numbers.iter().find(|n| n.phone_number == e164);
        let carrier = sender.map(|s| s.sid.as_str()).or(number.map(|n| n.sid.as_str()))?;
        let service = self.services.iter().find(|svc| {
            let pool = if sender.is_some() { &svc.channel_senders } else { &svc.phone_numbers };
            pool.iter().any(|e| e.sid == carrier)
        });
        if let Some(svc) = service.filter(|s| !s.use_inbound_webhook_on_number) {
            return Some(InboundRoute {
                kind: RouteKind::MessagingService,
                sid: svc.sid.clone(),
                url: svc.inbound_request_url.clone(),
                method: Some(svc.inbound_method.clone()),
            });
        }
        if let Some(s) = sender {
            return Some(InboundRoute {
                kind: RouteKind::WhatsAppSender,
                sid: s.sid.clone(),
                url: s.webhook.callback_url.clone(),
                method: s.webhook.callback_method.clone(),
            });
        }
        let n = number?;
        if let Some(app) = n.sms_application_sid.clone().filter(|a| !a.is_empty()) {
            return Some(InboundRoute { kind: RouteKind::Application, sid: app, url: None, method: None });
        }
        Some(InboundRoute {
            kind: RouteKind::IncomingPhoneNumber,
            sid: n.sid.clone(),
            url: n.sms_url.clone(),
            method: Some(n.sms_method.clone()),
        })
    }
}
