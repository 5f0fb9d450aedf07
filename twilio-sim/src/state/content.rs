//! Content templates (`HX...`, Content API v1) and their WhatsApp approval.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A template's WhatsApp approval status (the `whatsapp.status` of `ApprovalRequests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Never submitted for WhatsApp approval.
    #[default]
    Unsubmitted,
    /// Submitted, not reviewed yet.
    Received,
    /// Under review.
    Pending,
    /// Approved by WhatsApp: usable outside the 24-hour window.
    Approved,
    /// Rejected (see `rejection_reason`).
    Rejected,
    /// Paused by WhatsApp (low quality).
    Paused,
    /// Disabled by WhatsApp.
    Disabled,
}

impl ApprovalStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Unsubmitted => "unsubmitted",
            ApprovalStatus::Received => "received",
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Paused => "paused",
            ApprovalStatus::Disabled => "disabled",
        }
    }
}

/// A content template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// `HX` + 32 hex.
    pub sid: String,
    /// Not shown to recipients.
    pub friendly_name: String,
    /// ISO 639-1 code, e.g. `en`.
    pub language: String,
    /// Default placeholder values, e.g. `{"1": "name"}`.
    pub variables: BTreeMap<String, String>,
    /// The content types, e.g. `{"twilio/text": {"body": "Hi {{1}}"}}`.
    pub types: Value,
    /// WhatsApp approval.
    pub approval: ApprovalStatus,
    /// The WhatsApp template name (set on submission).
    pub approval_name: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION` (set on submission).
    pub category: String,
    /// Why WhatsApp rejected it.
    pub rejection_reason: String,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

impl Content {
    /// Whether WhatsApp approved it (usable for business-initiated messages).
    pub fn is_approved(&self) -> bool {
        self.approval == ApprovalStatus::Approved
    }

    /// The first content type's text (`body`), or empty.
    pub fn type_name(&self) -> String {
        self.types.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default()
    }

    /// The text a message with this template carries: the first type's `body` with each
    /// `{{key}}` replaced by `vars[key]`, else the template's default.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let body = self
            .types
            .as_object()
            .and_then(|o| o.values().find_map(|t| t.get("body").and_then(Value::as_str)))
            .unwrap_or_default()
            .to_string();
        let mut out = body;
        for (k, default) in &self.variables {
            let v = vars.get(k).unwrap_or(default);
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        for (k, v) in vars {
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        out
    }
}

/// WhatsApp's customer-service window: an inbound message from `recipient` to the business
/// address `sender` lets the business send free-form messages for 24 hours.
pub const SESSION_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The last inbound message of a user to a business number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWindow {
    /// The business number (E.164, no channel prefix).
    pub sender: String,
    /// The user (E.164, no channel prefix).
    pub recipient: String,
    /// When the user last wrote.
    pub last_inbound: DateTime<Utc>,
}

impl SessionWindow {
    /// Whether free-form messages may be sent at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        now >= self.last_inbound && now < self.last_inbound + SESSION_WINDOW
    }
}

/// A control change: `recipient` wrote to `sender` at `at` (default now), or the account's
/// window enforcement is switched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionWindowPatch {
    /// The business number (E.164, `whatsapp:` prefix allowed).
    #[serde(default)]
    pub sender: Option<String>,
    /// The user (E.164, `whatsapp:` prefix allowed).
    #[serde(default)]
    pub recipient: Option<String>,
    /// When the user wrote (default now; 25 hours ago gives a closed window).
    #[serde(default)]
    pub last_inbound: Option<DateTime<Utc>>,
    /// Enforce the window for this account's WhatsApp senders (seeded accounts do not by
    /// default: every recipient counts as inside the window).
    #[serde(default)]
    pub enforce: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_defaults() {
        let now = Utc::now();
        let c = Content {
            sid: "HX00000000000000000000000000000001".into(),
            friendly_name: "confirm".into(),
            language: "en".into(),
            variables: BTreeMap::from([("1".into(), "friend".into()), ("2".into(), "x".into())]),
            types: serde_json::json!({"twilio/text": {"body": "Hi {{1}}, ref {{2}}"}}),
            approval: ApprovalStatus::Approved,
            approval_name: String::new(),
            category: String::new(),
            rejection_reason: String::new(),
            date_created: now,
            date_updated: now,
        };
        assert_eq!(c.render(&BTreeMap::from([("2".into(), "wa-1".into())])), "Hi friend, ref wa-1");
        assert_eq!(c.type_name(), "twilio/text");
        let w = SessionWindow { sender: "+1".into(), recipient: "+2".into(), last_inbound: now };
        assert!(w.is_open(now) && !w.is_open(now + SESSION_WINDOW));
    }
}
