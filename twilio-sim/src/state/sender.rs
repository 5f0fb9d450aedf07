//! WhatsApp senders (Messaging v2 Channels Senders, `XE...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::serde_util::double_option;

/// `channels_sender_enum_status` (plus `TWILIO_REVIEW` and `DRAFT`, which newer specs list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SenderStatus {
    /// Registration in progress.
    #[serde(rename = "CREATING")]
    Creating,
    /// Ready to send and receive.
    #[serde(rename = "ONLINE")]
    Online,
    /// Not usable; see `offline_reasons`.
    #[serde(rename = "OFFLINE")]
    Offline,
    /// Waiting for the OTP.
    #[serde(rename = "PENDING_VERIFICATION")]
    PendingVerification,
    /// OTP submitted.
    #[serde(rename = "VERIFYING")]
    Verifying,
    /// Online, a profile change is being applied.
    #[serde(rename = "ONLINE:UPDATING")]
    OnlineUpdating,
    /// Under Twilio review.
    #[serde(rename = "TWILIO_REVIEW")]
    TwilioReview,
    /// Draft.
    #[serde(rename = "DRAFT")]
    Draft,
    /// Stubbed.
    #[serde(rename = "STUBBED")]
    Stubbed,
}

impl SenderStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderStatus::Creating => "CREATING",
            SenderStatus::Online => "ONLINE",
            SenderStatus::Offline => "OFFLINE",
            SenderStatus::PendingVerification => "PENDING_VERIFICATION",
            SenderStatus::Verifying => "VERIFYING",
            SenderStatus::OnlineUpdating => "ONLINE:UPDATING",
            SenderStatus::TwilioReview => "TWILIO_REVIEW",
            SenderStatus::Draft => "DRAFT",
            SenderStatus::Stubbed => "STUBBED",
        }
    }

    /// Whether messages can be sent from a sender in this status.
    pub fn can_send(self) -> bool {
        matches!(self, SenderStatus::Online | SenderStatus::OnlineUpdating)
    }
}

/// A sender's `webhook` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderWebhook {
    /// Inbound message URL.
    pub callback_url: Option<String>,
    /// POST or PUT.
    pub callback_method: Option<String>,
    /// Fallback URL.
    pub fallback_url: Option<String>,
    /// POST or PUT.
    pub fallback_method: Option<String>,
    /// Status callback URL.
    pub status_callback_url: Option<String>,
    /// Status callback method.
    pub status_callback_method: Option<String>,
}

/// A sender's `configuration` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderConfiguration {
    /// WhatsApp Business Account id.
    pub waba_id: Option<String>,
    /// `sms` or `voice`.
    pub verification_method: Option<String>,
    /// OTP (write-only in practice; rendered as null once consumed).
    pub verification_code: Option<String>,
    /// Voice application for voice verification.
    pub voice_application_sid: Option<String>,
}

/// An email entry of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileEmail {
    /// Address.
    pub email: String,
    /// Label.
    pub label: String,
}

/// A website entry of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileWebsite {
    /// URL.
    pub website: String,
    /// Label.
    pub label: String,
}

/// A sender's business `profile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderProfile {
    /// Display name.
    pub name: Option<String>,
    /// About text.
    pub about: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Description (in every spec example, though not in the 0.7.0 schema).
    pub description: Option<String>,
    /// Emails.
    pub emails: Option<Vec<ProfileEmail>>,
    /// Logo.
    pub logo_url: Option<String>,
    /// Business vertical.
    pub vertical: Option<String>,
    /// Websites.
    pub websites: Option<Vec<ProfileWebsite>>,
}

/// A sender's read-only `properties`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderProperties {
    /// e.g. `HIGH`.
    pub quality_rating: Option<String>,
    /// e.g. `10K Customers/24hr`.
    pub messaging_limit: Option<String>,
}

/// One entry of `offline_reasons`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineReason {
    /// Code (a string on the wire).
    pub code: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Documentation URL.
    pub more_info: Option<String>,
}

/// A WhatsApp sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// `XE` + 32 hex.
    pub sid: String,
    /// `whatsapp:+E164`.
    pub sender_id: String,
    /// Status.
    pub status: SenderStatus,
    /// Webhook configuration.
    pub webhook: SenderWebhook,
    /// Registration configuration.
    pub configuration: SenderConfiguration,
    /// Business profile.
    pub profile: SenderProfile,
    /// Quality rating and limits.
    pub properties: SenderProperties,
    /// Why the sender is offline, if it is.
    pub offline_reasons: Option<Vec<OfflineReason>>,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

impl Sender {
    /// Whether `key` is this sender's SID, sender id, or bare E.164 number.
    pub fn matches(&self, key: &str) -> bool {
        self.sid == key || self.sender_id == key || self.sender_id.strip_prefix("whatsapp:") == Some(key)
    }

    /// Applies a console change.
    pub fn apply(&mut self, patch: &SenderPatch, now: DateTime<Utc>) {
        if let Some(status) = patch.status {
            self.status = status;
        }
        if let Some(webhook) = &patch.webhook {
            self.webhook = webhook.clone();
        }
        if let Some(reasons) = &patch.offline_reasons {
            self.offline_reasons = reasons.clone();
        }
        if let Some(props) = &patch.properties {
            self.properties = props.clone();
        }
        self.date_updated = now;
    }
}

/// A console change to a sender: status, whole webhook, offline reasons, properties.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderPatch {
    /// New status.
    #[serde(default)]
    pub status: Option<SenderStatus>,
    /// New webhook (replaces the whole object).
    #[serde(default)]
    pub webhook: Option<SenderWebhook>,
    /// New offline reasons (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub offline_reasons: Option<Option<Vec<OfflineReason>>>,
    /// New properties.
    #[serde(default)]
    pub properties: Option<SenderProperties>,
}
