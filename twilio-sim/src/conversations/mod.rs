//! conversations.twilio.com: `/v1/Configuration/Addresses...` only (form in, JSON out, ISO 8601
//! dates, absolute URLs with the simulator's base URL, at most 50 per page).

pub(crate) mod addresses;
