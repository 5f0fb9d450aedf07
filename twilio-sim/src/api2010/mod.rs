//! api.twilio.com `/2010-04-01/...`: accounts, incoming phone numbers, messages.
//! Form-encoded PascalCase in, snake_case JSON out, RFC 2822 dates, relative URIs.

pub(crate) mod accounts;
pub(crate) mod messages;
pub(crate) mod numbers;

use chrono::{DateTime, Utc};

use crate::errors::ApiError;

/// RFC 2822 date as the 2010 API renders it (`Thu, 30 Jul 2015 20:00:00 +0000`).
pub(crate) fn rfc2822(t: &DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Validates an HTTP method parameter (GET or POST) → 400 21403.
pub(crate) fn check_method(name: &str, value: &str) -> Result<(), ApiError> {
    if value == "GET" || value == "POST" {
        Ok(())
    } else {
        Err(ApiError::bad_request(21403, format!("Invalid Method: {name} must be GET or POST, got '{value}'")))
    }
}

/// Validates a callback URL parameter: empty (clears) or an absolute http(s) URL → 400 21502.
pub(crate) fn check_url(name: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Ok(());
    }
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err(ApiError::bad_request(21502, format!("Invalid callback url: {name} '{value}' is not a valid URL"))),
    }
}

/// `true`/`false` form values.
pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(20001, format!("Invalid {name}: expected true or false, got '{value}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_rfc2822_like_twilio() {
        let t = Utc.with_ymd_and_hms(2015, 7, 30, 20, 0, 0).unwrap();
        assert_eq!(rfc2822(&t), "Thu, 30 Jul 2015 20:00:00 +0000");
    }
}
