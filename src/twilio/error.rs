//! The one error type of the Twilio client, and parsing of Twilio's error responses.
//!
//! No variant ever holds a credential or the `Authorization` header: messages come from
//! Twilio's error body, from our own text, or from transport errors stripped of their URL.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;

use super::wire;

/// Longest piece of a non-JSON or unexpected response body kept in an error.
const MAX_BODY_SNIPPET: usize = 256;

/// What went wrong talking to Twilio.
///
/// The client never retries: the reconciler owns backoff. Use [`TwilioError::is_transient`]
/// and [`TwilioError::retry_after`] to schedule the next attempt, and
/// [`TwilioError::may_have_been_applied`] before repeating a non-idempotent POST (sending a
/// message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// HTTP 401 (Twilio code 20003: wrong SID/secret, deleted key, suspended or closed
    /// account) or 403 (the key may not call this endpoint, e.g. a Standard API key on
    /// `/Accounts/{Sid}.json`, or a Restricted key without the permission).
    #[error("Twilio refused the credentials (HTTP {status}{}): {message}", fmt_code(*code))]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// Twilio's error code, usually 20003.
        code: Option<u32>,
        /// Twilio's message (and `detail`, when present).
        message: String,
    },
    /// HTTP 404 (code 20404): the account, number, sender, service or message does not exist
    /// or is not visible to these credentials.
    #[error("Twilio resource not found{}: {message}", fmt_code(*code))]
    NotFound {
        /// Twilio's error code, usually 20404.
        code: Option<u32>,
        /// Twilio's message.
        message: String,
    },
    /// HTTP 429 (code 20429): too many concurrent requests. Twilio did not process the
    /// request; it is always safe to retry after a backoff.
    #[error("Twilio rate limit reached{}{}", fmt_code(*code), fmt_retry(*retry_after))]
    RateLimited {
        /// The `Retry-After` header (seconds or HTTP-date), when sent.
        retry_after: Option<Duration>,
        /// Twilio's error code, usually 20429.
        code: Option<u32>,
    },
    /// HTTP 5xx.
    #[error("Twilio server error (HTTP {status}{}): {message}", fmt_code(*code))]
    Server {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code, when the body had one.
        code: Option<u32>,
        /// Twilio's message or a snippet of the body.
        message: String,
        /// The request was a POST: Twilio may have applied it before failing.
        ambiguous: bool,
    },
    /// Any other non-success status, typically 400 with a Twilio error code (63007 From is not
    /// a WhatsApp sender of this account, 21211 invalid To, 21910 From/To channel mismatch,
    /// 20001 bad parameter…). Permanent until something changes.
    #[error("Twilio rejected the request (HTTP {status}{}): {message}", fmt_code(*code))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code.
        code: Option<u32>,
        /// Twilio's message (and `detail`, when present).
        message: String,
        /// Twilio's documentation link for the code.
        more_info: Option<String>,
    },
    /// No usable HTTP response: connection refused or reset, TLS failure, timeout.
    #[error("cannot reach Twilio ({op}{}): {message}", if *timeout { ", timed out" } else { "" })]
    Transport {
        /// The client operation, e.g. `create_message`.
        op: &'static str,
        /// The failure, without URL.
        message: String,
        /// The request timed out.
        timeout: bool,
        /// The request was a POST that may have reached Twilio (anything but a failure to
        /// connect): whether it was applied is unknown.
        ambiguous: bool,
    },
    /// A success (or error) response whose body could not be read or decoded.
    #[error("unexpected response from Twilio ({op}, HTTP {status}): {message}")]
    Decode {
        /// The client operation.
        op: &'static str,
        /// The HTTP status.
        status: u16,
        /// What did not decode.
        message: String,
        /// A POST that got a success status: it was applied, but its result is unknown.
        ambiguous: bool,
    },
    /// The request was not sent: an argument or the configuration is invalid (bad SID or
    /// phone number, a base URL that is not http(s), …).
    #[error("invalid Twilio request: {0}")]
    InvalidInput(String),
    /// A listing did not end: Twilio kept sending next-page links past the client's bound on
    /// pages, or a next-page link led back to a page already read. The pages read so far are
    /// discarded, never treated as the whole list (a truncated list would turn "not found"
    /// into a wrong answer). Not transient: the same listing would fail the same way.
    #[error(
        "Twilio's listing ({op}) did not end: {}; the {pages} pages read were discarded rather than treated as the whole list",
        if *looped { "a next-page link led back to a page already read" } else { "it went past the client's limit on pages" }
    )]
    PageLimit {
        /// The client operation, e.g. `list_whatsapp_senders`.
        op: &'static str,
        /// Pages read before giving up.
        pages: usize,
        /// The server sent a next-page link already visited (else: the page bound was reached).
        looped: bool,
    },
}

fn fmt_code(code: Option<u32>) -> String {
    code.map(|c| format!(", code {c}")).unwrap_or_default()
}

fn fmt_retry(retry_after: Option<Duration>) -> String {
    retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default()
}

impl TwilioError {
    /// Whether retrying the same request later can succeed without any change: 429, 5xx and
    /// transport failures.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. })
    }

    /// The delay Twilio asked for (only rate limits carry one).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Twilio's numeric error code (`20003`, `20404`, `63007`, …), when known.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Unauthorized { code, .. }
            | Self::NotFound { code, .. }
            | Self::RateLimited { code, .. }
            | Self::Server { code, .. }
            | Self::Rejected { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, when a response was received.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::Rejected { status, .. }
            | Self::Decode { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::Transport { .. } | Self::InvalidInput(_) | Self::PageLimit { .. } => None,
        }
    }

    /// Whether a POST may have taken effect at Twilio although this call failed. Before
    /// re-sending a message after such an error, look the message up (`list_messages`).
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Self::Transport { ambiguous, .. } | Self::Server { ambiguous, .. } | Self::Decode { ambiguous, .. } => {
                *ambiguous
            }
            _ => false,
        }
    }

    /// A stable CamelCase category, usable as a Kubernetes condition/Event reason and as a
    /// metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "TwilioUnauthorized",
            Self::NotFound { .. } => "TwilioNotFound",
            Self::RateLimited { .. } => "TwilioRateLimited",
            Self::Server { .. } => "TwilioServerError",
            Self::Rejected { .. } => "TwilioRejected",
            Self::Transport { .. } => "TwilioUnreachable",
            Self::Decode { .. } => "TwilioBadResponse",
            Self::InvalidInput(_) => "TwilioInvalidRequest",
            Self::PageLimit { .. } => "TwilioPageLimit",
        }
    }
}

/// Twilio's classic error body: `{code, message, more_info, status, detail?}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// The Twilio error code.
    #[serde(default, deserialize_with = "wire::opt_u32")]
    pub code: Option<u32>,
    /// The human-readable message.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub message: Option<String>,
    /// A documentation link.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub more_info: Option<String>,
    /// Extra detail some errors carry (e.g. "Your AccountSid or AuthToken was incorrect.").
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub detail: Option<String>,
}

impl ErrorBody {
    /// Parses a response body; a non-JSON body becomes the `message` (truncated).
    pub fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if parsed.code.is_some() || parsed.message.is_some() => parsed,
            _ => Self { message: Some(snippet(body)).filter(|s| !s.is_empty()), ..Self::default() },
        }
    }

    fn full_message(&self, status: u16) -> String {
        match (&self.message, &self.detail) {
            (Some(m), Some(d)) if m != d => format!("{m} ({d})"),
            (Some(m), _) => m.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => format!("HTTP {status} without an error body"),
        }
    }
}

/// Maps a non-success response to an error. `is_post` marks 5xx as ambiguous.
pub(crate) fn from_response(status: u16, retry_after_header: Option<&str>, body: &[u8], is_post: bool) -> TwilioError {
    let parsed = ErrorBody::parse(body);
    let code = parsed.code;
    let message = parsed.full_message(status);
    match status {
        401 | 403 => TwilioError::Unauthorized { status, code, message },
        404 => TwilioError::NotFound { code, message },
        429 => TwilioError::RateLimited { retry_after: retry_after_header.and_then(parse_retry_after), code },
        500..=599 => TwilioError::Server { status, code, message, ambiguous: is_post },
        _ => TwilioError::Rejected { status, code, message, more_info: parsed.more_info },
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (a past date gives zero).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = wire::parse_date(value)?;
            at.signed_duration_since(Utc::now()).to_std().unwrap_or(Duration::ZERO)
        }
    };
    // A server (or a hostile identity server named in a channel) must not park a channel for
    // years, nor overflow the clock arithmetic of the backoff.
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The first [`MAX_BODY_SNIPPET`] characters of a body, as text, on one line.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(MAX_BODY_SNIPPET).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > MAX_BODY_SNIPPET {
        out.push('…');
    }
    out.trim().to_owned()
}

/// The text of an error and its sources, without URLs (reqwest puts the URL in its own
/// `Display`; ours hold no secrets, but keep messages short and uniform).
pub(crate) fn transport_message(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_401() {
        let body = br#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#;
        let err = from_response(401, None, body, false);
        assert_eq!(
            err,
            TwilioError::Unauthorized {
                status: 401,
                code: Some(20003),
                message: "Authenticate (Your AccountSid or AuthToken was incorrect.)".into()
            }
        );
        assert!(!err.is_transient());
        assert_eq!(err.code(), Some(20003));
        assert_eq!(err.reason(), "TwilioUnauthorized");
    }

    #[test]
    fn not_found_404() {
        let body = br#"{"code": 20404, "message": "The requested resource /2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#;
        let err = from_response(404, None, body, false);
        assert!(matches!(err, TwilioError::NotFound { code: Some(20404), .. }));
        assert_eq!(err.status(), Some(404));
        assert!(err.to_string().contains("was not found"));
    }

    #[test]
    fn rate_limited_429_with_retry_after() {
        let body = br#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#;
        let err = from_response(429, Some("7"), body, true);
        assert_eq!(err, TwilioError::RateLimited { retry_after: Some(Duration::from_secs(7)), code: Some(20429) });
        assert!(err.is_transient());
        assert!(!err.may_have_been_applied());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

        let later = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        let http_date = (Utc::now() + chrono::Duration::seconds(60)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        assert!(parse_retry_after(&http_date).unwrap() > Duration::from_secs(50));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("18446744073709551615"), Some(MAX_RETRY_AFTER), "capped");
        assert_eq!(from_response(429, None, b"", false).retry_after(), None);
    }

    #[test]
    fn server_500_non_json() {
        let err = from_response(503, None, b"<html>Service Unavailable</html>\n", true);
        assert_eq!(
            err,
            TwilioError::Server {
                status: 503,
                code: None,
                message: "<html>Service Unavailable</html>".into(),
                ambiguous: true
            }
        );
        assert!(err.is_transient());
        assert!(err.may_have_been_applied());
        let empty = from_response(500, None, b"", false);
        assert!(empty.to_string().contains("HTTP 500 without an error body"));
        assert!(!empty.may_have_been_applied());
    }

    #[test]
    fn rejected_400_63007() {
        let body = br#"{"code":63007,"message":"Twilio could not find a Channel with the specified From address","more_info":"https://www.twilio.com/docs/errors/63007","status":400}"#;
        let err = from_response(400, None, body, true);
        assert_eq!(
            err,
            TwilioError::Rejected {
                status: 400,
                code: Some(63007),
                message: "Twilio could not find a Channel with the specified From address".into(),
                more_info: Some("https://www.twilio.com/docs/errors/63007".into())
            }
        );
        assert!(!err.is_transient());
        assert!(!err.may_have_been_applied());
        assert_eq!(err.reason(), "TwilioRejected");
        assert_eq!(
            err.to_string(),
            "Twilio rejected the request (HTTP 400, code 63007): Twilio could not find a Channel with the specified From address"
        );
    }

    #[test]
    fn long_bodies_are_truncated() {
        let body = "x".repeat(10_000);
        let err = from_response(502, None, body.as_bytes(), false);
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn forbidden_maps_to_unauthorized() {
        let body = br#"{"code":20003,"message":"Authenticate","status":403}"#;
        assert!(matches!(from_response(403, None, body, false), TwilioError::Unauthorized { status: 403, .. }));
    }
}
