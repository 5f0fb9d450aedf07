//! accounts.twilio.com `/v1/AuthTokens/...`: the secondary Auth Token and its promotion (the
//! Auth Token rotation). JSON out, ISO 8601 dates, absolute URLs.

pub(crate) mod auth_tokens;
