//! Accounts and their API keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AddressConfiguration, Content, IncomingNumber, Message, MessagingService, Sandbox, Sender, SessionWindow};

/// `account_enum_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    #[default]
    Active,
    /// Suspended: only FetchAccount still answers (see README).
    Suspended,
    /// Closed: only FetchAccount still answers (see README).
    Closed,
}

impl AccountStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
            AccountStatus::Closed => "closed",
        }
    }
}

/// `account_enum_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AccountType {
    /// A trial account.
    Trial,
    /// An upgraded account.
    #[default]
    Full,
}

impl AccountType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Trial => "Trial",
            AccountType::Full => "Full",
        }
    }
}

/// The kind of an API key (Restricted keys are not simulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyKind {
    /// Full access, like the auth token.
    Main,
    /// Everything except `/Accounts` and `/Keys`.
    #[default]
    Standard,
}

/// An API key (`SK...`) usable as HTTP Basic `SKsid:secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `SK` + 32 hex.
    pub sid: String,
    /// Label.
    pub friendly_name: String,
    /// The key secret (never logged).
    pub secret: String,
    /// Main or Standard.
    pub kind: ApiKeyKind,
}

/// A Twilio account and everything it owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// `AC` + 32 hex.
    pub sid: String,
    /// Display name.
    pub friendly_name: String,
    /// active / suspended / closed.
    pub status: AccountStatus,
    /// Trial / Full.
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// The primary auth token (never logged).
    pub auth_token: String,
    /// The secondary auth token during a rotation (never logged): it authenticates too, and
    /// `POST /v1/AuthTokens/Promote` makes it the primary.
    #[serde(default)]
    pub secondary_auth_token: Option<String>,
    /// Verified caller IDs (`OutgoingCallerIds`, E.164): the only recipients a Trial account's
    /// messages reach (21608 otherwise).
    #[serde(default)]
    pub outgoing_caller_ids: Vec<String>,
    /// Parent account (own SID for a main account).
    pub owner_account_sid: String,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
    /// API keys.
    pub keys: Vec<ApiKey>,
    /// Owned phone numbers, in creation order.
    pub incoming_phone_numbers: Vec<IncomingNumber>,
    /// WhatsApp senders (Messaging v2), in creation order.
    pub senders: Vec<Sender>,
    /// Messaging Services (Messaging v1), in creation order.
    pub services: Vec<MessagingService>,
    /// Messages, in creation order.
    pub messages: Vec<Message>,
    /// The WhatsApp sandbox, if this account uses one.
    pub sandbox: Option<Sandbox>,
    /// Conversations address configurations (Conversations v1), in creation order.
    #[serde(default)]
    pub address_configurations: Vec<AddressConfiguration>,
    /// Content templates (Content API v1), in creation order.
    #[serde(default)]
    pub contents: Vec<Content>,
    /// The last inbound message of each user to each business number (WhatsApp's 24-hour
    /// customer-service window).
    #[serde(default)]
    pub session_windows: Vec<SessionWindow>,
    /// Whether free-form WhatsApp messages from a sender outside the window fail with 63016
    /// (default false: every recipient counts as inside the window, as before the window was
    /// modelled).
    #[serde(default)]
    pub enforce_session_window: bool,
    /// Debugger alerts (Monitor v1), oldest first.
    #[serde(default)]
    pub alerts: Vec<super::Alert>,
}

impl Account {
    /// The number with this PN SID or E.164 phone number.
    pub fn number(&self, sid_or_e164: &str) -> Option<&IncomingNumber> {
        self.incoming_phone_numbers.iter().find(|n| n.sid == sid_or_e164 || n.phone_number == sid_or_e164)
    }

    /// Mutable [`Account::number`].
    pub fn number_mut(&mut self, sid_or_e164: &str) -> Option<&mut IncomingNumber> {
        self.incoming_phone_numbers.iter_mut().find(|n| n.sid == sid_or_e164 || n.phone_number == sid_or_e164)
    }

    /// The sender with this XE SID, `whatsapp:+E164` sender id, or bare E.164.
    pub fn sender(&self, key: &str) -> Option<&Sender> {
        self.senders.iter().find(|s| s.matches(key))
    }

    /// Mutable [`Account::sender`].
    pub fn sender_mut(&mut self, key: &str) -> Option<&mut Sender> {
        self.senders.iter_mut().find(|s| s.matches(key))
    }

    /// The Messaging Service with this MG SID or friendly name.
    pub fn service(&self, key: &str) -> Option<&MessagingService> {
        self.services.iter().find(|s| s.sid == key || s.friendly_name == key)
    }

    /// Mutable [`Account::service`].
    pub fn service_mut(&mut self, key: &str) -> Option<&mut MessagingService> {
        self.services.iter_mut().find(|s| s.sid == key || s.friendly_name == key)
    }

    /// The message with this SID.
    pub fn message(&self, sid: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.sid == sid)
    }

    /// The content template with this HX SID.
    pub fn content(&self, sid: &str) -> Option<&Content> {
        self.contents.iter().find(|c| c.sid == sid)
    }

    /// Whether `sender` (E.164) may send free-form WhatsApp messages to `recipient` (E.164)
    /// at `now`: the window is not enforced, or the user wrote within 24 hours.
    pub fn session_open(&self, sender: &str, recipient: &str, now: DateTime<Utc>) -> bool {
        !self.enforce_session_window
            || self.session_windows.iter().any(|w| w.sender == sender && w.recipient == recipient && w.is_open(now))
    }
}

/// A console change to an account: every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New status.
    #[serde(default)]
    pub status: Option<AccountStatus>,
    /// New type.
    #[serde(default, rename = "type")]
    pub account_type: Option<AccountType>,
    /// New friendly name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// New auth token (the old one stops working immediately).
    #[serde(default)]
    pub auth_token: Option<String>,
}
