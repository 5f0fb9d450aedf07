//! messaging.twilio.com: `/v1/Services...` (form in, JSON out) and `/v2/Channels/Senders...`
//! (JSON in and out). ISO 8601 dates, absolute URLs with the simulator's base URL.

pub(crate) mod senders;
pub(crate) mod services;

use chrono::{DateTime, Utc};

/// ISO 8601 as messaging.twilio.com renders it (`2015-07-30T20:12:31Z`).
pub(crate) fn iso8601(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
