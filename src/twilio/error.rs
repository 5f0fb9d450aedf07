//! The one error type of the Twilio client, and parsing of Twilio's error responses.
//!
//! No variant ever holds a credential, the `Authorization` header, or any part of a response
//! body other than these known-safe fields of a Twilio error body (`{code, message, more_info,
//! status, detail?}`): `code`, `message` (Twilio composes it; one line, at most
//! [`MAX_MESSAGE_CHARS`] characters, userinfo of URLs in it redacted) and `more_info` (an
//! https link). A body that is not a Twilio error body, and every body that fails to decode
//! (a FetchAccount response holds the account's `auth_token`), is described by its size and
//! media type only: `unexpected response body (1234 bytes, text/html)`. Decoding errors keep
//! serde_json's category and position (`at line 1 column 40`), never its message, which can
//! quote the input. Transport errors are stripped of URLs.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;

use super::redact::{clean_text, redact_urls_in_text, strip_urls};
use super::wire;

/// Longest Twilio error `message` kept in an error, in characters.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// Longest `more_info` link kept, in characters.
const MAX_MORE_INFO_CHARS: usize = 256;

/// Media types named in a body description; any other is "other content type" (the header
/// is server-supplied text, so it is never copied).
const KNOWN_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/problem+json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "text/html",
    "text/plain",
    "text/xml",
];

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
        /// Twilio's message, or a description of a body that is not a Twilio error.
        message: String,
    },
    /// HTTP 404 (code 20404): the account, number, sender, service or message does not exist
    /// or is not visible to these credentials.
    #[error("Twilio resource not found{}: {message}", fmt_code(*code))]
    NotFound {
        /// Twilio's error code, usually 20404.
        code: Option<u32>,
        /// Twilio's message, or a description of a body that is not a Twilio error.
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
        /// Twilio's message, or a description of a body that is not a Twilio error (size and
        /// media type, never its content).
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
        /// Twilio's message, or a description of a body that is not a Twilio error.
        message: String,
        /// Twilio's documentation link for the code (https only).
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
        /// What did not decode: the kind of problem, its position, the body's size and media
        /// type (never the body's content).
        message: String,
        /// A POST that got a success status: it was applied, but its result is unknown.
        ambiguous: bool,
    },
    /// The response body is longer than the client reads ([`crate::twilio::MAX_TWILIO_BODY_BYTES`]): it was
    /// abandoned unread past the cap, and nothing of it is kept.
    #[error("Twilio's response ({op}, HTTP {status}) is longer than the {} MiB the client reads", limit / (1024 * 1024))]
    TooLarge {
        /// The client operation.
        op: &'static str,
        /// The HTTP status.
        status: u16,
        /// The cap, in bytes.
        limit: usize,
        /// A POST answered with a success or server-error status: it may have been applied.
        ambiguous: bool,
    },
    /// A 3xx answer. The client never follows redirects, so credentials are never sent to
    /// the place it points at (its `Location` is not read either): a base URL that redirects
    /// is misconfigured.
    #[error("Twilio answered {op} with a redirect (HTTP {status}), which the client does not follow; use the final base URL")]
    Redirected {
        /// The client operation.
        op: &'static str,
        /// The HTTP status (300–399).
        status: u16,
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
        match self {
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. } => true,
            // An oversized 429 or 5xx answer is still a 429 or a 5xx.
            Self::TooLarge { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
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
            | Self::Decode { status, .. }
            | Self::TooLarge { status, .. }
            | Self::Redirected { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::Transport { .. } | Self::InvalidInput(_) | Self::PageLimit { .. } => None,
        }
    }

    /// Whether a POST may have taken effect at Twilio although this call failed. Before
    /// re-sending a message after such an error, look the message up (`list_messages`).
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Self::Transport { ambiguous, .. }
            | Self::Server { ambiguous, .. }
            | Self::Decode { ambiguous, .. }
            | Self::TooLarge { ambiguous, .. } => *ambiguous,
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
            Self::TooLarge { .. } => "TwilioResponseTooLarge",
            Self::Redirected { .. } => "TwilioRedirected",
        }
    }
}

/// Twilio's classic error body: `{code, message, more_info, status, detail?}`. Only the
/// known-safe fields are read; `detail` (free text) and anything else are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// The Twilio error code.
    #[serde(default, deserialize_with = "wire::opt_u32")]
    pub code: Option<u32>,
    /// The human-readable message: one line, at most [`MAX_MESSAGE_CHARS`] characters, the
    /// userinfo of any URL in it redacted.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub message: Option<String>,
    /// A documentation link: an https URL without userinfo, or `None`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub more_info: Option<String>,
}

impl ErrorBody {
    /// Parses a Twilio error body: a JSON object with a `code` or a `message`. Anything else
    /// (not JSON, another shape) is `None`: such a body is described, never shown.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok()?;
        if parsed.code.is_none() && parsed.message.is_none() {
            return None;
        }
        Some(Self {
            code: parsed.code,
            message: parsed
                .message
                .map(|m| clean_text(&redact_urls_in_text(&m), MAX_MESSAGE_CHARS))
                .filter(|m| !m.is_empty()),
            more_info: parsed.more_info.as_deref().and_then(safe_link),
        })
    }
}

/// `link` if it is a plain https URL (no userinfo, no whitespace or control characters, at
/// most [`MAX_MORE_INFO_CHARS`]).
fn safe_link(link: &str) -> Option<String> {
    let link = link.trim();
    let url = reqwest::Url::parse(link).ok()?;
    let plain = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && link.chars().count() <= MAX_MORE_INFO_CHARS
        && !link.chars().any(|c| c.is_whitespace() || c.is_control());
    plain.then(|| link.to_owned())
}

/// The fixed description of a response body that is not shown: its size and media type,
/// e.g. `1234 bytes, text/html`. Never any of its content.
pub(crate) fn body_summary(body: &[u8], content_type: Option<&str>) -> String {
    let media = match content_type {
        None => "no content type",
        Some(value) => {
            let essence = value.split(';').next().unwrap_or_default().trim();
            KNOWN_MEDIA_TYPES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(essence))
                .copied()
                .unwrap_or("other content type")
        }
    };
    let unit = if body.len() == 1 { "byte" } else { "bytes" };
    format!("{} {unit}, {media}", body.len())
}

/// What is wrong with a body serde_json could not decode, without serde_json's message
/// (which can quote the input: ``invalid type: string "…", expected u32``): the category and
/// the position, e.g. `JSON of an unexpected shape at line 1 column 40`.
pub(crate) fn json_problem(err: &serde_json::Error) -> String {
    let what = match err.classify() {
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "JSON of an unexpected shape",
        serde_json::error::Category::Io => "an unreadable body",
    };
    format!("{what} at line {} column {}", err.line(), err.column())
}

/// The error for a success response whose body did not decode: kind and position of the
/// problem, the body's size and media type, never its content.
pub(crate) fn decode_error(
    op: &'static str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    err: &serde_json::Error,
    ambiguous: bool,
) -> TwilioError {
    let message = format!("{} ({})", json_problem(err), body_summary(body, content_type));
    TwilioError::Decode { op, status, message, ambiguous }
}

/// Maps a non-success response to an error. `is_post` marks 5xx as ambiguous.
pub(crate) fn from_response(
    status: u16,
    retry_after_header: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    is_post: bool,
) -> TwilioError {
    let parsed = ErrorBody::parse(body);
    let code = parsed.as_ref().and_then(|p| p.code);
    let message = match &parsed {
        Some(ErrorBody { message: Some(message), .. }) => message.clone(),
        Some(_) => format!("HTTP {status} without an error message"),
        None if body.iter().all(u8::is_ascii_whitespace) => format!("HTTP {status} without an error body"),
        None => format!("unexpected response body ({})", body_summary(body, content_type)),
    };
    match status {
        401 | 403 => TwilioError::Unauthorized { status, code, message },
        404 => TwilioError::NotFound { code, message },
        429 => TwilioError::RateLimited { retry_after: retry_after_header.and_then(parse_retry_after), code },
        500..=599 => TwilioError::Server { status, code, message, ambiguous: is_post },
        _ => TwilioError::Rejected { status, code, message, more_info: parsed.and_then(|p| p.more_info) },
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

/// The text of an error and its sources, without URLs (reqwest puts the URL in its own
/// `Display`, and a source might quote one: every `scheme://…` left becomes `<url>`).
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
    strip_urls(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn unauthorized_401() {
        let body = br#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#;
        let err = from_response(401, None, JSON, body, false);
        assert_eq!(err, TwilioError::Unauthorized { status: 401, code: Some(20003), message: "Authenticate".into() });
        assert_eq!(err.to_string(), "Twilio refused the credentials (HTTP 401, code 20003): Authenticate");
        assert!(!err.is_transient());
        assert_eq!(err.code(), Some(20003));
        assert_eq!(err.reason(), "TwilioUnauthorized");
    }

    #[test]
    fn not_found_404() {
        let body = br#"{"code": 20404, "message": "The requested resource /2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#;
        let err = from_response(404, None, JSON, body, false);
        assert!(matches!(err, TwilioError::NotFound { code: Some(20404), .. }));
        assert_eq!(err.status(), Some(404));
        assert!(err.to_string().contains("was not found"));
    }

    #[test]
    fn rate_limited_429_with_retry_after() {
        let body = br#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#;
        let err = from_response(429, Some("7"), JSON, body, true);
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
        assert_eq!(from_response(429, None, None, b"", false).retry_after(), None);
    }

    #[test]
    fn server_500_non_json() {
        let err =
            from_response(503, None, Some("text/html; charset=utf-8"), b"<html>Service Unavailable</html>\n", true);
        assert_eq!(
            err,
            TwilioError::Server {
                status: 503,
                code: None,
                message: "unexpected response body (33 bytes, text/html)".into(),
                ambiguous: true
            }
        );
        assert_eq!(err.to_string(), "Twilio server error (HTTP 503): unexpected response body (33 bytes, text/html)");
        assert!(err.is_transient());
        assert!(err.may_have_been_applied());
        let empty = from_response(500, None, None, b"", false);
        assert!(empty.to_string().contains("HTTP 500 without an error body"));
        assert!(!empty.may_have_been_applied());
    }

    #[test]
    fn rejected_400_63007() {
        let body = br#"{"code":63007,"message":"Twilio could not find a Channel with the specified From address","more_info":"https://www.twilio.com/docs/errors/63007","status":400}"#;
        let err = from_response(400, None, JSON, body, true);
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
        let err = from_response(502, None, None, body.as_bytes(), false);
        assert_eq!(
            err.to_string(),
            "Twilio server error (HTTP 502): unexpected response body (10000 bytes, no content type)"
        );
        let long = format!(r#"{{"code":21211,"message":"{}"}}"#, "m".repeat(10_000));
        let err = from_response(400, None, JSON, long.as_bytes(), false);
        assert!(err.to_string().chars().count() < MAX_MESSAGE_CHARS + 100, "{err}");
    }

    #[test]
    fn forbidden_maps_to_unauthorized() {
        let body = br#"{"code":20003,"message":"Authenticate","status":403}"#;
        assert!(matches!(from_response(403, None, JSON, body, false), TwilioError::Unauthorized { status: 403, .. }));
    }

    const SEKRIT: &str = "SEKRIT-TOKEN-123";

    /// Asserts that neither `Display` nor `Debug` of `err` contains the secret.
    fn assert_clean(err: &TwilioError, case: &str) {
        assert!(!err.to_string().contains(SEKRIT), "{case}: Display leaks: {err}");
        assert!(!format!("{err:?}").contains(SEKRIT), "{case}: Debug leaks: {err:?}");
    }

    #[test]
    fn no_body_content_reaches_an_error() {
        let bodies = [
            ("plain text", SEKRIT.to_owned()),
            ("html", format!("<html><body>token={SEKRIT}</body></html>")),
            ("json without code or message", format!(r#"{{"auth_token":"{SEKRIT}","status":401}}"#)),
            ("json error of another shape", format!(r#"{{"error":"{SEKRIT}","error_description":"{SEKRIT}"}}"#)),
            (
                "unknown fields",
                format!(r#"{{"code":20003,"message":"Authenticate","auth_token":"{SEKRIT}","x":{{"y":"{SEKRIT}"}}}}"#),
            ),
            ("detail", format!(r#"{{"code":20003,"message":"Authenticate","detail":"{SEKRIT}"}}"#)),
            ("more_info not a link", format!(r#"{{"code":21211,"message":"Invalid","more_info":"{SEKRIT}"}}"#)),
            (
                "more_info with userinfo",
                format!(r#"{{"code":21211,"message":"Invalid","more_info":"https://u:{SEKRIT}@twilio.com/x"}}"#),
            ),
            (
                "more_info http",
                format!(r#"{{"code":21211,"message":"Invalid","more_info":"http://twilio.com/{SEKRIT}"}}"#),
            ),
            (
                "url in message",
                format!(r#"{{"code":21609,"message":"Invalid Url https://user:{SEKRIT}@receiver.example/x"}}"#),
            ),
            ("code as text", format!(r#"{{"code":"{SEKRIT}","message":"Bad"}}"#)),
            ("message not a string", format!(r#"{{"code":20001,"message":["{SEKRIT}"]}}"#)),
            ("truncated json", format!(r#"{{"code":20001,"message":"{SEKRIT}"#)),
            ("binary", format!("\u{0}\u{1}{SEKRIT}\u{7f}")),
        ];
        let content_types = [None, JSON, Some("text/html"), Some("text/plain; charset=utf-8")];
        for (case, body) in &bodies {
            for status in [400, 401, 403, 404, 409, 429, 500, 503] {
                for content_type in content_types {
                    assert_clean(&from_response(status, None, content_type, body.as_bytes(), true), case);
                }
            }
        }
        // Nor from the headers.
        let secret_type = format!("text/{SEKRIT}");
        assert_clean(&from_response(500, Some(SEKRIT), Some(&secret_type), SEKRIT.as_bytes(), false), "headers");
        let err = from_response(400, None, Some(&secret_type), b"<x>", false);
        assert_eq!(
            err.to_string(),
            "Twilio rejected the request (HTTP 400): unexpected response body (3 bytes, other content type)"
        );
    }

    #[test]
    fn the_message_of_a_twilio_error_is_kept_and_redacted() {
        let body = br#"{"code":21609,"message":"Invalid StatusCallback Url: https://user:pass@receiver.example/x\nsee docs","more_info":"https://www.twilio.com/docs/errors/21609","status":400}"#;
        let err = from_response(400, None, JSON, body, false);
        assert_eq!(
            err,
            TwilioError::Rejected {
                status: 400,
                code: Some(21609),
                message: "Invalid StatusCallback Url: https://***@receiver.example/x see docs".into(),
                more_info: Some("https://www.twilio.com/docs/errors/21609".into()),
            }
        );
        let no_message = from_response(400, None, JSON, br#"{"code":20001}"#, false);
        assert_eq!(
            no_message.to_string(),
            "Twilio rejected the request (HTTP 400, code 20001): HTTP 400 without an error message"
        );
    }

    #[test]
    fn serde_json_quotes_input_but_decode_errors_do_not() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Numeric {
            n: u32,
        }
        // What this module guards against: serde_json's own message quotes the value.
        let body = format!(r#"{{"n":"{SEKRIT}"}}"#);
        let raw = serde_json::from_slice::<Numeric>(body.as_bytes()).unwrap_err();
        assert!(raw.to_string().contains(SEKRIT), "{raw}");
        let err = decode_error("fetch_account", 200, JSON, body.as_bytes(), &raw, false);
        assert_clean(&err, "quoted value");
        assert_eq!(
            err.to_string(),
            "unexpected response from Twilio (fetch_account, HTTP 200): JSON of an unexpected shape at line 1 column 23 (24 bytes, application/json)"
        );
        let syntax = serde_json::from_slice::<Numeric>(SEKRIT.as_bytes()).unwrap_err();
        let err = decode_error("fetch_account", 200, Some("text/html"), SEKRIT.as_bytes(), &syntax, false);
        assert_eq!(
            err.to_string(),
            "unexpected response from Twilio (fetch_account, HTTP 200): not JSON at line 1 column 1 (16 bytes, text/html)"
        );
        let eof = serde_json::from_slice::<Numeric>(br#"{"n":"#).unwrap_err();
        assert!(json_problem(&eof).starts_with("truncated JSON at line 1"), "{}", json_problem(&eof));
    }
}
