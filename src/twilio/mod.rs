//! A small typed client for the Twilio REST endpoints the operator needs.
//!
//! - [`TwilioClient`]: one async function per endpoint (account, incoming phone numbers,
//!   WhatsApp senders, messaging services, messages), typed responses that tolerate unknown
//!   fields, `null` and `""`.
//! - [`TwilioError`]: one error type saying unauthorized / not found / rate limited /
//!   server / rejected / transport / decode, with [`TwilioError::is_transient`],
//!   [`TwilioError::retry_after`], [`TwilioError::code`] and a stable
//!   [`TwilioError::reason`].
//! - [`Credentials`] and [`Secret`]: secrets never appear in `Debug`, `Display`, errors or
//!   logs.
//! - [`address`]: E.164 normalization and `whatsapp:` addresses.
//! - [`identity`]: the OAuth2 client-credentials check against the app's identity server,
//!   under the [`outbound`] URL policy (server-side request forgery: the URL is a channel's).
//! - [`redact_url`]: a URL with its userinfo redacted (`https://***@host/x`), for any URL
//!   from a spec or from Twilio put into a status, an Event or a log line.
//! - [`SenderDirectory`]: an account's WhatsApp senders by number, listed once per account
//!   and interval and shared by its channels (single-flight).
//! - [`AccountHolds`]: accounts on a rate-limit hold after a 429; a client given them
//!   ([`TwilioClient::with_holds`]) sends nothing for a held account.
//!
//! The client never retries (the reconciler owns backoff), never follows redirects (a 3xx is
//! [`TwilioError::Redirected`]), verifies TLS against the system roots, bounds every request
//! with a timeout, reads at most [`MAX_TWILIO_BODY_BYTES`] of a response, and never buys,
//! releases, creates or deletes anything at Twilio. Requests are shaped exactly
//! as Twilio's OpenAPI specs declare (form bodies for the 2010 API, JSON for Senders v2).
//! Each call runs in a `twilio` tracing span (operation, method, path template, account)
//! with a debug event carrying status and duration.
//!
//! Kubernetes types stay out of this module.

pub mod account;
pub mod address;
pub mod alerts;
mod body;
mod client;
#[cfg(test)]
mod conformance;
pub mod content;
pub mod conversations;
pub mod directory;
pub mod error;
pub mod holds;
pub mod identity;
pub mod messages;
pub mod numbers;
pub mod outbound;
#[cfg(test)]
mod proptests;
pub mod redact;
pub mod routing;
mod secret;
pub mod senders;
pub mod services;
mod shared_listing;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod transport_tests;
mod wire;

pub use account::{Account, AccountStatus, AccountType, Verification, VerificationMethod};
pub use address::{normalize_phone, whatsapp_address, AddressError, E164};
pub use alerts::{Alert, AlertListing};
pub use body::{MAX_IDENTITY_BODY_BYTES, MAX_TWILIO_BODY_BYTES};
pub use client::{
    content_base_for, conversations_base_for, default_user_agent, monitor_base_for, RequestObserver, TwilioClient,
    TwilioConfig, DEFAULT_API_BASE_URL, DEFAULT_CONTENT_BASE_URL, DEFAULT_CONVERSATIONS_BASE_URL,
    DEFAULT_MESSAGING_BASE_URL, DEFAULT_MONITOR_BASE_URL, DEFAULT_TIMEOUT,
};
pub use content::ContentApproval;
pub use conversations::AddressConfiguration;
pub use directory::{DirectoryStats, SenderDirectory};
pub use error::{ErrorBody, TwilioError};
pub use holds::AccountHolds;
pub use identity::{IdentityClient, IdentityError, OAuthErrorCode, TokenResponse};
pub use messages::{explain_error, Message, MessageContent, MessageQuery, MessageStatus, NewMessage};
pub use numbers::{Capabilities, IncomingPhoneNumber, SmsMethod};
pub use outbound::{AllowRule, AllowRuleError, OutboundPolicy, OutboundRefusal};
pub use redact::redact_url;
pub use routing::{RoutingDirectory, RoutingFacts, ServiceFacts};
pub use secret::{is_sid, Auth, CredentialRole, CredentialSet, Credentials, Secret};
pub use senders::{OfflineReason, Sender, SenderProperties, SenderStatus, SenderWebhook, SenderWebhookMethod};
pub use services::{MessagingService, Pool};
