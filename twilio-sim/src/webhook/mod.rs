//! Requests the simulator makes as Twilio: inbound WhatsApp messages delivered to the URL the
//! routing precedence picks ([`crate::state::InboundRoute`]), signed with `X-Twilio-Signature`,
//! under Twilio's timeouts, retried and sent to the fallback URL as Twilio does; status callbacks
//! of outbound messages, the same way; each failed request becomes a Monitor alert
//! ([`crate::state::Alert`]) with Twilio's error code.

mod deliver;
mod inbound;
mod signature;
mod status;

pub use deliver::{Attempt, WebhookSettings};
pub use inbound::{Delivery, InboundMessage};
pub use signature::{verify_webhook_signature, webhook_signature};

pub(crate) use inbound::{control, inject};
pub(crate) use status::spawn_due as send_status_callbacks;
