//! `/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers[/{Sid}].json`.
//!
//! Unset SMS URLs render as `""` and unset voice URLs as `null` (as in the spec's example);
//! `SmsApplicationSid` and `SmsUrl` clear each other (setting the application wins when both are
//! sent in one request).

use chrono::Utc;
use serde_json::{json, Value};

use super::{check_method, check_url, parse_bool, rfc2822};
use crate::errors::ApiError;
use crate::http::{Params, SimResponse};
use crate::paging::{envelope_2010, paginate, PageRequest};
use crate::router::Ctx;
use crate::sid::is_sid;
use crate::state::{is_e164, IncomingNumber};

/// `api.v2010.account.incoming_phone_number`.
pub(crate) fn number_json(account_sid: &str, n: &IncomingNumber) -> Value {
    json!({
        "account_sid": account_sid,
        "address_requirements": "none",
        "address_sid": null,
        "api_version": "2010-04-01",
        "beta": false,
        "capabilities": {
            "voice": n.capabilities.voice,
            "sms": n.capabilities.sms,
            "mms": n.capabilities.mms,
            "fax": n.capabilities.fax,
        },
        "date_created": rfc2822(&n.date_created),
        "date_updated": rfc2822(&n.date_updated),
        "emergency_status": "Inactive",
        "emergency_address_sid": null,
        "emergency_address_status": "unregistered",
        "friendly_name": n.friendly_name,
        "identity_sid": null,
        "origin": n.origin,
        "phone_number": n.phone_number,
        "sid": n.sid,
        "sms_application_sid": n.sms_application_sid,
        "sms_fallback_method": n.sms_fallback_method,
        "sms_fallback_url": n.sms_fallback_url.as_deref().unwrap_or(""),
        "sms_method": n.sms_method,
        "sms_url": n.sms_url.as_deref().unwrap_or(""),
        "status_callback": n.status_callback.as_deref().unwrap_or(""),
        "status_callback_method": n.status_callback_method,
        "trunk_sid": null,
        "uri": format!("/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers/{}.json", n.sid),
        "voice_application_sid": n.voice_application_sid,
        "voice_caller_id_lookup": n.voice_caller_id_lookup,
        "voice_fallback_method": n.voice_fallback_method,
        "voice_fallback_url": n.voice_fallback_url,
        "voice_method": n.voice_method,
        "voice_url": n.voice_url,
        "voice_receive_mode": "voice",
        "status": "in-use",
        "bundle_sid": null,
    })
}

const FILTERS: &[&str] = &["FriendlyName", "Beta", "PhoneNumber", "Origin"];

/// Twilio's `PhoneNumber` filter: a (partial) number where `*` matches any one character.
fn phone_matches(number: &str, filter: &str) -> bool {
    let n: Vec<char> = number.chars().collect();
    let f: Vec<char> = filter.chars().collect();
    if f.is_empty() {
        return true;
    }
    if f.len() > n.len() {
        return false;
    }
    (0..=n.len() - f.len()).any(|start| f.iter().zip(&n[start..]).all(|(fc, nc)| *fc == '*' || fc == nc))
}

/// GET list with `PhoneNumber`, `FriendlyName`, `Origin` filters and paging.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let query = ctx.req.query_params();
    let paging = PageRequest::from_params(&query, 50)?;
    let path = ctx.req.path.clone();
    let acct = ctx.account()?;
    let matching: Vec<IncomingNumber> = acct
        .incoming_phone_numbers
        .iter()
        .filter(|n| {
            query.get("PhoneNumber").is_none_or(|f| phone_matches(&n.phone_number, f))
                && query.get("FriendlyName").is_none_or(|f| n.friendly_name == f)
                && query.get("Origin").is_none_or(|o| n.origin == o)
        })
        .cloned()
        .collect();
    let page = paginate(&matching, |n| n.sid.as_str(), &paging);
    let items = page.items.iter().map(|n| number_json(&acct.sid, n)).collect();
    let filters: Vec<(String, String)> =
        query.0.iter().filter(|(k, _)| FILTERS.contains(&k.as_str())).cloned().collect();
    let body = envelope_2010("incoming_phone_numbers", &path, &filters, &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// GET one number.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let n = acct.incoming_phone_numbers.iter().find(|n| n.sid == sid).ok_or(nf)?;
    Ok(SimResponse::json(200, &number_json(&acct.sid, n)))
}

/// Applies the update parameters shared by create and update to `n`.
fn apply_form(n: &mut IncomingNumber, form: &Params) -> Result<(), ApiError> {
    for name in ["SmsMethod", "SmsFallbackMethod", "StatusCallbackMethod", "VoiceMethod", "VoiceFallbackMethod"] {
        if let Some(v) = form.get(name) {
            check_method(name, v)?;
        }
    }
    for name in ["SmsUrl", "SmsFallbackUrl", "StatusCallback", "VoiceUrl", "VoiceFallbackUrl"] {
        if let Some(v) = form.get(name) {
            check_url(name, v)?;
        }
    }
    for name in ["SmsApplicationSid", "VoiceApplicationSid"] {
        if let Some(v) = form.get(name) {
            if !v.is_empty() && !is_sid(v, "AP") {
                return Err(ApiError::bad_request(20001, format!("Invalid {name}: '{v}' is not an Application SID")));
            }
        }
    }
    if let Some(v) = form.get("FriendlyName") {
        if v.chars().count() > 64 {
            return Err(ApiError::bad_request(20002, "Invalid FriendlyName: at most 64 characters"));
        }
    }
    let caller_id = form.get("VoiceCallerIdLookup").map(|v| parse_bool("VoiceCallerIdLookup", v)).transpose()?;

    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    if let Some(v) = form.get("FriendlyName") {
        n.friendly_name = v.to_string();
    }
    if let Some(v) = form.get("SmsUrl") {
        n.sms_url = opt(v);
        if n.sms_url.is_some() {
            n.sms_application_sid = None;
        }
    }
    if let Some(v) = form.get("SmsApplicationSid") {
        n.sms_application_sid = opt(v);
        if n.sms_application_sid.is_some() {
            n.sms_url = None;
        }
    }
    if let Some(v) = form.get("SmsMethod") {
        n.sms_method = v.to_string();
    }
    if let Some(v) = form.get("SmsFallbackUrl") {
        n.sms_fallback_url = opt(v);
    }
    if let Some(v) = form.get("SmsFallbackMethod") {
        n.sms_fallback_method = v.to_string();
    }
    if let Some(v) = form.get("StatusCallback") {
        n.status_callback = opt(v);
    }
    if let Some(v) = form.get("StatusCallbackMethod") {
        n.status_callback_method = v.to_string();
    }
    if let Some(v) = form.get("VoiceUrl") {
        n.voice_url = opt(v);
        if n.voice_url.is_some() {
            n.voice_application_sid = None;
        }
    }
    if let Some(v) = form.get("VoiceApplicationSid") {
        n.voice_application_sid = opt(v);
        if n.voice_application_sid.is_some() {
            n.voice_url = None;
        }
    }
    if let Some(v) = form.get("VoiceMethod") {
        n.voice_method = v.to_string();
    }
    if let Some(v) = form.get("VoiceFallbackUrl") {
        n.voice_fallback_url = opt(v);
    }
    if let Some(v) = form.get("VoiceFallbackMethod") {
        n.voice_fallback_method = v.to_string();
    }
    if let Some(v) = caller_id {
        n.voice_caller_id_lookup = v;
    }
    Ok(())
}

/// POST update: partial, 200 with the full resource.
pub(crate) fn update(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let form = ctx.req.form_params();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let account_sid = acct.sid.clone();
    if let Some(target) = form.get("AccountSid") {
        if target != account_sid {
            return Err(ApiError::bad_request(20001, "Transferring numbers between accounts is not simulated"));
        }
    }
    let n = acct.incoming_phone_numbers.iter_mut().find(|n| n.sid == sid).ok_or(nf)?;
    let mut updated = n.clone();
    apply_form(&mut updated, &form)?;
    updated.date_updated = Utc::now();
    *n = updated;
    Ok(SimResponse::json(200, &number_json(&account_sid, n)))
}

/// POST create: purchases a number (`PhoneNumber` or `AreaCode`); 201.
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let form = ctx.req.form_params();
    let taken = |state: &crate::state::SimState, e164: &str| {
        state.accounts.iter().any(|a| a.incoming_phone_numbers.iter().any(|n| n.phone_number == e164))
    };
    let phone = match (form.get("PhoneNumber"), form.get("AreaCode")) {
        (Some(p), _) => {
            if !is_e164(p) {
                return Err(ApiError::bad_request(21421, format!("PhoneNumber is invalid: '{p}'")));
            }
            if taken(ctx.state, p) {
                return Err(ApiError::bad_request(21422, format!("PhoneNumber {p} is not available")));
            }
            p.to_string()
        }
        (None, Some(area)) if area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit()) => {
            let mut found = None;
            for i in 0..10_000u32 {
                let candidate = format!("+1{area}555{i:04}");
                if !taken(ctx.state, &candidate) {
                    found = Some(candidate);
                    break;
                }
            }
            found.ok_or_else(|| ApiError::bad_request(21452, format!("No phone numbers found in area code {area}")))?
        }
        (None, Some(area)) => return Err(ApiError::bad_request(21451, format!("Invalid area code {area}"))),
        (None, None) => return Err(ApiError::bad_request(21452, "A PhoneNumber or AreaCode is required")),
    };
    let sid = ctx.state.sids.random("PN");
    let mut n = IncomingNumber::new(sid, phone, Utc::now());
    apply_form(&mut n, &form)?;
    let acct = ctx.account()?;
    let body = number_json(&acct.sid, &n);
    acct.incoming_phone_numbers.push(n);
    Ok(SimResponse::json(201, &body))
}

/// DELETE: releases the number (and drops it from Messaging Service pools); 204.
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let before = acct.incoming_phone_numbers.len();
    acct.incoming_phone_numbers.retain(|n| n.sid != sid);
    if acct.incoming_phone_numbers.len() == before {
        return Err(nf);
    }
    for svc in &mut acct.services {
        svc.phone_numbers.retain(|e| e.sid != sid);
    }
    Ok(SimResponse::no_content())
}

#[cfg(test)]
mod tests {
    use super::phone_matches;

    #[test]
    fn phone_filter() {
        assert!(phone_matches("+15551230001", "+15551230001"));
        assert!(phone_matches("+15551230001", "555123"));
        assert!(phone_matches("+15551230001", "+1555***0001"));
        assert!(!phone_matches("+15551230001", " 15551230001"));
        assert!(!phone_matches("+15551230001", "+15551230002"));
    }
}
