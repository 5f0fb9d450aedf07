//! Messaging Services (Messaging v1, `MG...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::serde_util::double_option;

/// A Messaging Service and its sender pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagingService {
    /// `MG` + 32 hex.
    pub sid: String,
    /// Name.
    pub friendly_name: String,
    /// Inbound webhook (`None`: inbound disabled).
    pub inbound_request_url: Option<String>,
    /// GET or POST.
    pub inbound_method: String,
    /// Fallback webhook.
    pub fallback_url: Option<String>,
    /// GET or POST.
    pub fallback_method: String,
    /// Status callback.
    pub status_callback: Option<String>,
    /// Sticky sender.
    pub sticky_sender: bool,
    /// MMS converter.
    pub mms_converter: bool,
    /// Smart encoding.
    pub smart_encoding: bool,
    /// `inherit`, `enable` or `disable`.
    pub scan_message_content: String,
    /// Fallback to long code.
    pub fallback_to_long_code: bool,
    /// Area code geomatch.
    pub area_code_geomatch: bool,
    /// Synchronous validation.
    pub synchronous_validation: bool,
    /// Seconds.
    pub validity_period: i64,
    /// Use case.
    pub usecase: String,
    /// A2P registration.
    pub us_app_to_person_registered: bool,
    /// Whether the number's own webhook overrides the service's.
    pub use_inbound_webhook_on_number: bool,
    /// PN SIDs in the pool, with the time they were added.
    pub phone_numbers: Vec<PoolEntry>,
    /// XE SIDs in the pool, with the time they were added.
    pub channel_senders: Vec<PoolEntry>,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

/// A sender in a service's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    /// PN or XE SID.
    pub sid: String,
    /// When it was added.
    pub date_created: DateTime<Utc>,
}

impl MessagingService {
    /// A service with Twilio's defaults.
    pub fn new(sid: String, friendly_name: String, now: DateTime<Utc>) -> MessagingService {
        MessagingService {
            sid,
            friendly_name,
            inbound_request_url: None,
            inbound_method: "POST".into(),
            fallback_url: None,
            fallback_method: "POST".into(),
            status_callback: None,
            sticky_sender: true,
            mms_converter: true,
            smart_encoding: true,
            scan_message_content: "inherit".into(),
            fallback_to_long_code: true,
            area_code_geomatch: true,
            synchronous_validation: true,
            validity_period: 36000,
            usecase: "undeclared".into(),
            us_app_to_person_registered: false,
            use_inbound_webhook_on_number: false,
            phone_numbers: Vec::new(),
            channel_senders: Vec::new(),
            date_created: now,
            date_updated: now,
        }
    }

    /// Applies a console change.
    pub fn apply(&mut self, patch: &ServicePatch, now: DateTime<Utc>) {
        if let Some(v) = &patch.friendly_name {
            self.friendly_name = v.clone();
        }
        if let Some(v) = &patch.inbound_request_url {
            self.inbound_request_url = v.clone();
        }
        if let Some(v) = &patch.inbound_method {
            self.inbound_method = v.clone();
        }
        if let Some(v) = &patch.fallback_url {
            self.fallback_url = v.clone();
        }
        if let Some(v) = &patch.fallback_method {
            self.fallback_method = v.clone();
        }
        if let Some(v) = &patch.status_callback {
            self.status_callback = v.clone();
        }
        if let Some(v) = patch.use_inbound_webhook_on_number {
            self.use_inbound_webhook_on_number = v;
        }
        self.date_updated = now;
    }
}

/// A console change to a Messaging Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    /// New name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// New inbound URL (`null` disables inbound).
    #[serde(default, deserialize_with = "double_option")]
    pub inbound_request_url: Option<Option<String>>,
    /// New inbound method.
    #[serde(default)]
    pub inbound_method: Option<String>,
    /// New fallback URL.
    #[serde(default, deserialize_with = "double_option")]
    pub fallback_url: Option<Option<String>>,
    /// New fallback method.
    #[serde(default)]
    pub fallback_method: Option<String>,
    /// New status callback.
    #[serde(default, deserialize_with = "double_option")]
    pub status_callback: Option<Option<String>>,
    /// New precedence flag.
    #[serde(default)]
    pub use_inbound_webhook_on_number: Option<bool>,
}
