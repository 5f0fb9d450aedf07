//! Incoming phone numbers (`PN...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::serde_util::double_option;

/// `capabilities` of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Voice capable.
    pub voice: bool,
    /// SMS capable.
    pub sms: bool,
    /// MMS capable.
    pub mms: bool,
    /// Fax capable.
    pub fax: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities { voice: true, sms: true, mms: true, fax: false }
    }
}

/// An IncomingPhoneNumber. URL fields are `None` when unset (the API renders unset SMS URLs as `""`
/// and unset voice URLs as `null`, like Twilio does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingNumber {
    /// `PN` + 32 hex.
    pub sid: String,
    /// E.164.
    pub phone_number: String,
    /// Display name, by default the formatted number.
    pub friendly_name: String,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Inbound message webhook.
    pub sms_url: Option<String>,
    /// GET or POST.
    pub sms_method: String,
    /// Fallback webhook.
    pub sms_fallback_url: Option<String>,
    /// GET or POST.
    pub sms_fallback_method: String,
    /// TwiML app handling messages (overrides `sms_url`).
    pub sms_application_sid: Option<String>,
    /// Status callback URL.
    pub status_callback: Option<String>,
    /// GET or POST.
    pub status_callback_method: String,
    /// Voice webhook.
    pub voice_url: Option<String>,
    /// GET or POST.
    pub voice_method: String,
    /// Voice fallback webhook.
    pub voice_fallback_url: Option<String>,
    /// GET or POST.
    pub voice_fallback_method: String,
    /// TwiML app handling calls.
    pub voice_application_sid: Option<String>,
    /// CNAM lookup.
    pub voice_caller_id_lookup: bool,
    /// `twilio` or `hosted`.
    pub origin: String,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

impl IncomingNumber {
    /// A number with Twilio's defaults.
    pub fn new(sid: String, phone_number: String, now: DateTime<Utc>) -> IncomingNumber {
        IncomingNumber {
            sid,
            friendly_name: format_friendly(&phone_number),
            phone_number,
            capabilities: Capabilities::default(),
            sms_url: None,
            sms_method: "POST".into(),
            sms_fallback_url: None,
            sms_fallback_method: "POST".into(),
            sms_application_sid: None,
            status_callback: None,
            status_callback_method: "POST".into(),
            voice_url: None,
            voice_method: "POST".into(),
            voice_fallback_url: None,
            voice_fallback_method: "POST".into(),
            voice_application_sid: None,
            voice_caller_id_lookup: false,
            origin: "twilio".into(),
            date_created: now,
            date_updated: now,
        }
    }

    /// Applies a console change (fields present in the patch are set; `null` clears).
    pub fn apply(&mut self, patch: &NumberPatch, now: DateTime<Utc>) {
        if let Some(v) = &patch.sms_url {
            self.sms_url = v.clone();
        }
        if let Some(v) = &patch.sms_method {
            self.sms_method = v.clone();
        }
        if let Some(v) = &patch.sms_fallback_url {
            self.sms_fallback_url = v.clone();
        }
        if let Some(v) = &patch.sms_fallback_method {
            self.sms_fallback_method = v.clone();
        }
        if let Some(v) = &patch.sms_application_sid {
            self.sms_application_sid = v.clone();
        }
        if let Some(v) = &patch.status_callback {
            self.status_callback = v.clone();
        }
        if let Some(v) = &patch.friendly_name {
            self.friendly_name = v.clone();
        }
        if let Some(v) = &patch.voice_url {
            self.voice_url = v.clone();
        }
        self.date_updated = now;
    }
}

/// A console change to a number. Absent fields are kept; `null` clears a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    /// New `sms_url`.
    #[serde(default, deserialize_with = "double_option")]
    pub sms_url: Option<Option<String>>,
    /// New `sms_method`.
    #[serde(default)]
    pub sms_method: Option<String>,
    /// New `sms_fallback_url`.
    #[serde(default, deserialize_with = "double_option")]
    pub sms_fallback_url: Option<Option<String>>,
    /// New `sms_fallback_method`.
    #[serde(default)]
    pub sms_fallback_method: Option<String>,
    /// New `sms_application_sid`.
    #[serde(default, deserialize_with = "double_option")]
    pub sms_application_sid: Option<Option<String>>,
    /// New `status_callback`.
    #[serde(default, deserialize_with = "double_option")]
    pub status_callback: Option<Option<String>>,
    /// New `friendly_name`.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// New `voice_url`.
    #[serde(default, deserialize_with = "double_option")]
    pub voice_url: Option<Option<String>>,
}

/// Twilio's display format: `(808) 925-5327` for NANP numbers, the E.164 string otherwise.
pub(crate) fn format_friendly(e164: &str) -> String {
    match e164.strip_prefix("+1") {
        Some(rest) if rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &rest[..3], &rest[3..6], &rest[6..])
        }
        _ => e164.to_string(),
    }
}

/// Whether `s` is an E.164 number (`+` then 2..=15 digits, no leading zero).
pub(crate) fn is_e164(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(d) => (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'),
        None => false,
    }
}

/// ISO country code for a few calling codes (for Messaging v1 sender lists).
pub(crate) fn country_code(e164: &str) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("+1", "US"),
        ("+44", "GB"),
        ("+49", "DE"),
        ("+33", "FR"),
        ("+34", "ES"),
        ("+39", "IT"),
        ("+31", "NL"),
        ("+7", "RU"),
        ("+55", "BR"),
        ("+52", "MX"),
        ("+91", "IN"),
        ("+61", "AU"),
        ("+380", "UA"),
    ];
    CODES
        .iter()
        .filter(|(prefix, _)| e164.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, cc)| *cc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_nanp_numbers() {
        assert_eq!(format_friendly("+18089255327"), "(808) 925-5327");
        assert_eq!(format_friendly("+4930123456"), "+4930123456");
    }

    #[test]
    fn validates_e164() {
        assert!(is_e164("+15551230001"));
        assert!(!is_e164(" 15551230001"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+1555abc"));
    }
}
