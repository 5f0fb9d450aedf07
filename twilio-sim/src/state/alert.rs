//! Debugger alerts (`NO...`, Monitor v1): one per failed webhook request Twilio made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A Monitor v1 alert, as `GET /v1/Alerts/{Sid}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `NO` + 32 hex.
    pub sid: String,
    /// The account whose webhook failed.
    pub account_sid: String,
    /// Twilio error code, e.g. `11200` (a string on the wire).
    pub error_code: String,
    /// `error` or `warning`.
    pub log_level: String,
    /// URL-encoded details (`Msg=...&url=...&ErrorCode=...`).
    pub alert_text: String,
    /// The URL Twilio requested (no fragment).
    pub request_url: String,
    /// `GET` or `POST`.
    pub request_method: String,
    /// The form parameters sent, URL-encoded.
    pub request_variables: String,
    /// The message the webhook was about (`SM...`).
    pub resource_sid: Option<String>,
    /// The object whose webhook was called (`XE...`, `PN...`, `MG...`).
    pub service_sid: Option<String>,
    /// The receiver's answer body, if any (truncated).
    pub response_body: Option<String>,
    /// The receiver's answer headers, if any.
    pub response_headers: Option<String>,
    /// The headers Twilio sent.
    pub request_headers: Option<String>,
    /// When the failure happened.
    pub date_generated: DateTime<Utc>,
    /// When the alert was stored.
    pub date_created: DateTime<Utc>,
}

/// Twilio's short description of a webhook error code (the Error Dictionary's title).
pub fn describe(code: u32) -> &'static str {
    match code {
        11200 => "HTTP retrieval failure",
        11205 => "HTTP connection failure",
        11206 => "HTTP protocol violation",
        11210 => "HTTP bad host name",
        11215 => "HTTP too many redirects",
        11220 => "SSL/TLS Handshake Error",
        11235 => "Certificate Invalid - Domain Mismatch",
        11236 => "Certificate Invalid - Certificate Expired",
        11237 => "Certificate Invalid - Could not find path to certificate",
        11750 => "TwiML response body too large",
        _ => "Webhook failure",
    }
}
