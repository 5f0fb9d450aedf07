//! `/v1/Services...`: Messaging Services and their PhoneNumbers / ChannelSenders pools.

use chrono::Utc;
use serde_json::{json, Value};

use super::iso8601;
use crate::api2010::{check_method, check_url, parse_bool};
use crate::errors::ApiError;
use crate::http::{Params, SimResponse};
use crate::paging::{envelope_meta, paginate, PageRequest};
use crate::router::Ctx;
use crate::sid::is_sid;
use crate::state::{country_code, Account, MessagingService, PoolEntry};

const LINKS: &[(&str, &str)] = &[
    ("phone_numbers", "PhoneNumbers"),
    ("short_codes", "ShortCodes"),
    ("alpha_senders", "AlphaSenders"),
    ("messages", "Messages"),
    ("us_app_to_person", "Compliance/Usa2p"),
    ("us_app_to_person_usecases", "Compliance/Usa2p/Usecases"),
    ("channel_senders", "ChannelSenders"),
    ("destination_alpha_senders", "DestinationAlphaSenders"),
];

/// `messaging.v1.service`.
pub(crate) fn service_json(base_url: &str, account_sid: &str, s: &MessagingService) -> Value {
    let url = format!("{base_url}/v1/Services/{}", s.sid);
    let links: serde_json::Map<String, Value> =
        LINKS.iter().map(|(k, p)| (k.to_string(), Value::String(format!("{url}/{p}")))).collect();
    json!({
        "sid": s.sid,
        "account_sid": account_sid,
        "friendly_name": s.friendly_name,
        "date_created": iso8601(&s.date_created),
        "date_updated": iso8601(&s.date_updated),
        "inbound_request_url": s.inbound_request_url,
        "inbound_method": s.inbound_method,
        "fallback_url": s.fallback_url,
        "fallback_method": s.fallback_method,
        "status_callback": s.status_callback,
        "sticky_sender": s.sticky_sender,
        "mms_converter": s.mms_converter,
        "smart_encoding": s.smart_encoding,
        "scan_message_content": s.scan_message_content,
        "fallback_to_long_code": s.fallback_to_long_code,
        "area_code_geomatch": s.area_code_geomatch,
        "synchronous_validation": s.synchronous_validation,
        "validity_period": s.validity_period,
        "url": url,
        "links": links,
        "usecase": s.usecase,
        "us_app_to_person_registered": s.us_app_to_person_registered,
        "use_inbound_webhook_on_number": s.use_inbound_webhook_on_number,
    })
}

/// `messaging.v1.service.phone_number`.
fn pool_number_json(base_url: &str, acct: &Account, svc: &str, e: &PoolEntry) -> Option<Value> {
    let n = acct.incoming_phone_numbers.iter().find(|n| n.sid == e.sid)?;
    let mut caps = Vec::new();
    if n.capabilities.mms {
        caps.push("MMS");
    }
    if n.capabilities.sms {
        caps.push("SMS");
    }
    if n.capabilities.voice {
        caps.push("Voice");
    }
    if n.capabilities.fax {
        caps.push("Fax");
    }
    Some(json!({
        "sid": n.sid,
        "account_sid": acct.sid,
        "service_sid": svc,
        "date_created": iso8601(&e.date_created),
        "date_updated": iso8601(&e.date_created),
        "phone_number": n.phone_number,
        "country_code": country_code(&n.phone_number),
        "capabilities": caps,
        "url": format!("{base_url}/v1/Services/{svc}/PhoneNumbers/{}", n.sid),
    }))
}

/// `messaging.v1.service.channel_sender`.
fn pool_sender_json(base_url: &str, acct: &Account, svc: &str, e: &PoolEntry) -> Option<Value> {
    let s = acct.senders.iter().find(|s| s.sid == e.sid)?;
    Some(json!({
        "account_sid": acct.sid,
        "messaging_service_sid": svc,
        "sid": s.sid,
        "sender": s.sender_id,
        "sender_type": "WhatsApp",
        "country_code": country_code(s.sender_id.trim_start_matches("whatsapp:")),
        "date_created": iso8601(&e.date_created),
        "date_updated": iso8601(&e.date_created),
        "url": format!("{base_url}/v1/Services/{svc}/ChannelSenders/{}", s.sid),
    }))
}

/// Applies the Create/UpdateService form parameters.
fn apply_form(s: &mut MessagingService, form: &Params) -> Result<(), ApiError> {
    for name in ["InboundMethod", "FallbackMethod"] {
        if let Some(v) = form.get(name) {
            check_method(name, v)?;
        }
    }
    for name in ["InboundRequestUrl", "FallbackUrl", "StatusCallback"] {
        if let Some(v) = form.get(name) {
            check_url(name, v)?;
        }
    }
    let mut bools = Vec::new();
    for name in [
        "StickySender",
        "MmsConverter",
        "SmartEncoding",
        "FallbackToLongCode",
        "AreaCodeGeomatch",
        "SynchronousValidation",
        "UseInboundWebhookOnNumber",
    ] {
        if let Some(v) = form.get(name) {
            bools.push((name, parse_bool(name, v)?));
        }
    }
    let validity = match form.get("ValidityPeriod") {
        Some(v) => Some(v.parse::<i64>().ok().filter(|p| (1..=36000).contains(p)).ok_or_else(|| {
            ApiError::bad_request(20001, format!("Invalid ValidityPeriod '{v}': 1 to 36000 seconds"))
        })?),
        None => None,
    };
    if let Some(v) = form.get("ScanMessageContent") {
        if !["inherit", "enable", "disable"].contains(&v) {
            return Err(ApiError::bad_request(20001, format!("Invalid ScanMessageContent '{v}'")));
        }
        s.scan_message_content = v.to_string();
    }
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    if let Some(v) = form.get("FriendlyName") {
        s.friendly_name = v.to_string();
    }
    if let Some(v) = form.get("InboundRequestUrl") {
        s.inbound_request_url = opt(v);
    }
    if let Some(v) = form.get("InboundMethod") {
        s.inbound_method = v.to_string();
    }
    if let Some(v) = form.get("FallbackUrl") {
        s.fallback_url = opt(v);
    }
    if let Some(v) = form.get("FallbackMethod") {
        s.fallback_method = v.to_string();
    }
    if let Some(v) = form.get("StatusCallback") {
        s.status_callback = opt(v);
    }
    if let Some(v) = form.get("Usecase") {
        s.usecase = v.to_string();
    }
    if let Some(v) = validity {
        s.validity_period = v;
    }
    for (name, v) in bools {
        match name {
            "StickySender" => s.sticky_sender = v,
            "MmsConverter" => s.mms_converter = v,
            "SmartEncoding" => s.smart_encoding = v,
            "FallbackToLongCode" => s.fallback_to_long_code = v,
            "AreaCodeGeomatch" => s.area_code_geomatch = v,
            "SynchronousValidation" => s.synchronous_validation = v,
            _ => s.use_inbound_webhook_on_number = v,
        }
    }
    Ok(())
}

/// GET list of services.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let query = ctx.req.query_params();
    let paging = PageRequest::from_params(&query, 50)?;
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let page = paginate(&acct.services, |s| s.sid.as_str(), &paging);
    let items = page.items.iter().map(|s| service_json(&base, &acct.sid, s)).collect();
    let body = envelope_meta("services", &base, "/v1/Services", &[], &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

fn service_index(acct: &Account, sid: &str) -> Option<usize> {
    acct.services.iter().position(|s| s.sid == sid)
}

/// GET one service.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let i = service_index(acct, &sid).ok_or(nf)?;
    Ok(SimResponse::json(200, &service_json(&base, &acct.sid, &acct.services[i])))
}

/// POST create (form, `FriendlyName` required); 201.
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let form = ctx.req.form_params();
    let name = form
        .get("FriendlyName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(20001, "Missing required parameter FriendlyName"))?
        .to_string();
    let sid = ctx.state.sids.random("MG");
    let base = ctx.base_url.to_string();
    let mut svc = MessagingService::new(sid, name, Utc::now());
    apply_form(&mut svc, &form)?;
    let acct = ctx.account()?;
    let body = service_json(&base, &acct.sid, &svc);
    acct.services.push(svc);
    Ok(SimResponse::json(201, &body))
}

/// POST update (form, partial); 200.
pub(crate) fn update(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let form = ctx.req.form_params();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let i = service_index(acct, &sid).ok_or(nf)?;
    let mut svc = acct.services[i].clone();
    apply_form(&mut svc, &form)?;
    svc.date_updated = Utc::now();
    acct.services[i] = svc;
    Ok(SimResponse::json(200, &service_json(&base, &acct.sid, &acct.services[i])))
}

/// DELETE: 204.
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let i = service_index(acct, &sid).ok_or(nf)?;
    acct.services.remove(i);
    Ok(SimResponse::no_content())
}

/// Which pool of a service.
#[derive(Clone, Copy)]
enum Pool {
    Numbers,
    Senders,
}

impl Pool {
    fn service_param(self) -> &'static str {
        match self {
            Pool::Numbers => "ServiceSid",
            Pool::Senders => "MessagingServiceSid",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Pool::Numbers => "phone_numbers",
            Pool::Senders => "senders",
        }
    }
    fn entries(self, s: &MessagingService) -> &Vec<PoolEntry> {
        match self {
            Pool::Numbers => &s.phone_numbers,
            Pool::Senders => &s.channel_senders,
        }
    }
    fn entries_mut(self, s: &mut MessagingService) -> &mut Vec<PoolEntry> {
        match self {
            Pool::Numbers => &mut s.phone_numbers,
            Pool::Senders => &mut s.channel_senders,
        }
    }
    fn render(self, base: &str, acct: &Account, svc: &str, e: &PoolEntry) -> Option<Value> {
        match self {
            Pool::Numbers => pool_number_json(base, acct, svc, e),
            Pool::Senders => pool_sender_json(base, acct, svc, e),
        }
    }
}

fn pool_list(ctx: &mut Ctx<'_>, pool: Pool) -> Result<SimResponse, ApiError> {
    let svc_sid = ctx.param(pool.service_param()).to_string();
    let query = ctx.req.query_params();
    let paging = PageRequest::from_params(&query, 50)?;
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let path = ctx.req.path.clone();
    let acct = ctx.account()?;
    let i = service_index(acct, &svc_sid).ok_or(nf)?;
    let entries = pool.entries(&acct.services[i]).clone();
    let page = paginate(&entries, |e| e.sid.as_str(), &paging);
    let items = page.items.iter().filter_map(|e| pool.render(&base, acct, &svc_sid, e)).collect();
    let body = envelope_meta(pool.key(), &base, &path, &[], &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

fn pool_fetch(ctx: &mut Ctx<'_>, pool: Pool) -> Result<SimResponse, ApiError> {
    let svc_sid = ctx.param(pool.service_param()).to_string();
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let i = service_index(acct, &svc_sid).ok_or_else(|| nf.clone())?;
    let entry = pool.entries(&acct.services[i]).iter().find(|e| e.sid == sid).ok_or_else(|| nf.clone())?;
    let body = pool.render(&base, acct, &svc_sid, entry).ok_or(nf)?;
    Ok(SimResponse::json(200, &body))
}

fn pool_add(ctx: &mut Ctx<'_>, pool: Pool) -> Result<SimResponse, ApiError> {
    let svc_sid = ctx.param(pool.service_param()).to_string();
    let form = ctx.req.form_params();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let (param, prefix) = match pool {
        Pool::Numbers => ("PhoneNumberSid", "PN"),
        Pool::Senders => ("Sid", "XE"),
    };
    let sid = form
        .get(param)
        .ok_or_else(|| ApiError::bad_request(20001, format!("Missing required parameter {param}")))?
        .to_string();
    let acct = ctx.account()?;
    let i = service_index(acct, &svc_sid).ok_or(nf)?;
    let exists = match pool {
        Pool::Numbers => acct.incoming_phone_numbers.iter().any(|n| n.sid == sid),
        Pool::Senders => acct.senders.iter().any(|s| s.sid == sid),
    };
    if !is_sid(&sid, prefix) || !exists {
        return Err(ApiError::bad_request(21421, format!("{param} {sid} is invalid for this account")));
    }
    if pool.entries(&acct.services[i]).iter().any(|e| e.sid == sid) {
        return Err(ApiError::new(409, 21710, format!("{sid} is already in the Messaging Service")));
    }
    let entry = PoolEntry { sid, date_created: Utc::now() };
    pool.entries_mut(&mut acct.services[i]).push(entry.clone());
    let body = pool.render(&base, acct, &svc_sid, &entry).unwrap_or(Value::Null);
    Ok(SimResponse::json(201, &body))
}

fn pool_remove(ctx: &mut Ctx<'_>, pool: Pool) -> Result<SimResponse, ApiError> {
    let svc_sid = ctx.param(pool.service_param()).to_string();
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let i = service_index(acct, &svc_sid).ok_or_else(|| nf.clone())?;
    let entries = pool.entries_mut(&mut acct.services[i]);
    let before = entries.len();
    entries.retain(|e| e.sid != sid);
    if entries.len() == before {
        return Err(nf);
    }
    Ok(SimResponse::no_content())
}

/// GET `/v1/Services/{ServiceSid}/PhoneNumbers`.
pub(crate) fn list_numbers(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_list(ctx, Pool::Numbers)
}

/// GET `/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}`.
pub(crate) fn fetch_number(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_fetch(ctx, Pool::Numbers)
}

/// POST `/v1/Services/{ServiceSid}/PhoneNumbers` (`PhoneNumberSid`); 201.
pub(crate) fn add_number(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_add(ctx, Pool::Numbers)
}

/// DELETE `/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}`; 204.
pub(crate) fn remove_number(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_remove(ctx, Pool::Numbers)
}

/// GET `/v1/Services/{MessagingServiceSid}/ChannelSenders`.
pub(crate) fn list_senders(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_list(ctx, Pool::Senders)
}

/// GET `/v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}`.
pub(crate) fn fetch_sender(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_fetch(ctx, Pool::Senders)
}

/// POST `/v1/Services/{MessagingServiceSid}/ChannelSenders` (`Sid`); 201.
pub(crate) fn add_sender(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_add(ctx, Pool::Senders)
}

/// DELETE `/v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}`; 204.
pub(crate) fn remove_sender(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    pool_remove(ctx, Pool::Senders)
}
