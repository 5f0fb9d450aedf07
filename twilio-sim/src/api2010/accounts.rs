//! `/2010-04-01/Accounts/{Sid}.json`: FetchAccount, UpdateAccount.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::rfc2822;
use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::router::Ctx;
use crate::state::{Account, AccountStatus};

const SUBRESOURCES: &[(&str, &str)] = &[
    ("available_phone_numbers", "AvailablePhoneNumbers"),
    ("calls", "Calls"),
    ("conferences", "Conferences"),
    ("incoming_phone_numbers", "IncomingPhoneNumbers"),
    ("notifications", "Notifications"),
    ("outgoing_caller_ids", "OutgoingCallerIds"),
    ("recordings", "Recordings"),
    ("transcriptions", "Transcriptions"),
    ("addresses", "Addresses"),
    ("signing_keys", "SigningKeys"),
    ("connect_apps", "ConnectApps"),
    ("sip", "SIP"),
    ("authorized_connect_apps", "AuthorizedConnectApps"),
    ("usage", "Usage"),
    ("keys", "Keys"),
    ("applications", "Applications"),
    ("short_codes", "SMS/ShortCodes"),
    ("queues", "Queues"),
    ("messages", "Messages"),
    ("balance", "Balance"),
];

/// `api.v2010.account`.
pub(crate) fn account_json(a: &Account) -> Value {
    let base = format!("/2010-04-01/Accounts/{}", a.sid);
    let subresources: Map<String, Value> =
        SUBRESOURCES.iter().map(|(k, p)| (k.to_string(), Value::String(format!("{base}/{p}.json")))).collect();
    json!({
        "auth_token": a.auth_token,
        "date_created": rfc2822(&a.date_created),
        "date_updated": rfc2822(&a.date_updated),
        "friendly_name": a.friendly_name,
        "owner_account_sid": a.owner_account_sid,
        "sid": a.sid,
        "status": a.status.as_str(),
        "subresource_uris": subresources,
        "type": a.account_type.as_str(),
        "uri": format!("{base}.json"),
    })
}

/// GET: the account, whatever its status.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let acct = ctx.account()?;
    Ok(SimResponse::json(200, &account_json(acct)))
}

/// POST: `FriendlyName`, `Status` (a closed account cannot be reopened).
pub(crate) fn update(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let form = ctx.req.form_params();
    let status = match form.get("Status") {
        Some("active") => Some(AccountStatus::Active),
        Some("suspended") => Some(AccountStatus::Suspended),
        Some("closed") => Some(AccountStatus::Closed),
        Some(other) => return Err(ApiError::bad_request(20001, format!("Invalid Status: {other}"))),
        None => None,
    };
    let acct = ctx.account()?;
    if let Some(name) = form.get("FriendlyName") {
        acct.friendly_name = name.to_string();
    }
    if let Some(s) = status {
        if acct.status == AccountStatus::Closed && s != AccountStatus::Closed {
            return Err(ApiError::bad_request(20001, "A closed account cannot be reopened"));
        }
        acct.status = s;
    }
    acct.date_updated = Utc::now();
    Ok(SimResponse::json(200, &account_json(acct)))
}
