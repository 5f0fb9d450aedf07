//! Conversations address configurations (Conversations v1, `IG...`): an address whose inbound
//! messages Conversations takes, creating a conversation per new participant when
//! `auto_creation.enabled`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `auto_creation` of an address configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoCreation {
    /// Whether inbound messages create conversations (then Conversations takes them).
    #[serde(default)]
    pub enabled: bool,
    /// `webhook`, `studio` or `default` (`configuration_address_enum_auto_creation_type`).
    #[serde(default = "default_type", rename = "type")]
    pub type_: String,
    /// `IS...`: the Conversation Service new conversations go to.
    #[serde(default)]
    pub conversation_service_sid: Option<String>,
    /// `webhook` type: the URL Conversations calls.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// `webhook` type: `get` or `post` (lower case, `configuration_address_enum_method`).
    #[serde(default)]
    pub webhook_method: Option<String>,
    /// `webhook` type: the events sent.
    #[serde(default)]
    pub webhook_filters: Vec<String>,
    /// `studio` type: `FW...`.
    #[serde(default)]
    pub studio_flow_sid: Option<String>,
    /// `studio` type: retries.
    #[serde(default)]
    pub studio_retry_count: Option<i64>,
}

fn default_type() -> String {
    "default".into()
}

/// An address configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressConfiguration {
    /// `IG` + 32 hex.
    pub sid: String,
    /// `whatsapp`, `sms`, … (`configuration_address_enum_type`).
    #[serde(rename = "type")]
    pub type_: String,
    /// The address: `whatsapp:+E164` for WhatsApp, E.164 for SMS.
    pub address: String,
    /// Name.
    pub friendly_name: Option<String>,
    /// What inbound messages do.
    pub auto_creation: AutoCreation,
    /// ISO 3166-1 alpha-2 (short codes only).
    pub address_country: Option<String>,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

impl AddressConfiguration {
    /// Whether this configuration takes the inbound WhatsApp messages of `e164`.
    pub fn takes_whatsapp(&self, e164: &str) -> bool {
        self.type_ == "whatsapp"
            && self.auto_creation.enabled
            && self.address.strip_prefix("whatsapp:").unwrap_or(&self.address) == e164
    }
}
