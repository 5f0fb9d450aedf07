//! `/v2/Channels/Senders[/{Sid}]`: WhatsApp senders.
//!
//! Update (`POST .../{Sid}`, JSON) answers 202 with the whole sender. Top-level objects the
//! request omits are kept; `profile` and `configuration` merge the keys sent; `webhook` is
//! replaced as a whole by default (omitted sub-fields become null; see [`WebhookUpdate`]).

use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::config::WebhookUpdate;
use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::paging::{envelope_meta, paginate, PageRequest};
use crate::router::Ctx;
use crate::state::{
    is_e164, ProfileEmail, ProfileWebsite, Sender, SenderConfiguration, SenderProfile, SenderProperties, SenderStatus,
    SenderWebhook,
};

const PATH: &str = "/v2/Channels/Senders";

/// `messaging.v2.channels_sender`.
pub(crate) fn sender_json(base_url: &str, s: &Sender) -> Value {
    json!({
        "sid": s.sid,
        "status": s.status.as_str(),
        "sender_id": s.sender_id,
        "configuration": {
            "waba_id": s.configuration.waba_id,
            "verification_method": s.configuration.verification_method,
            "verification_code": null,
            "voice_application_sid": s.configuration.voice_application_sid,
        },
        "webhook": {
            "callback_url": s.webhook.callback_url,
            "callback_method": s.webhook.callback_method,
            "fallback_url": s.webhook.fallback_url,
            "fallback_method": s.webhook.fallback_method,
            "status_callback_url": s.webhook.status_callback_url,
            "status_callback_method": s.webhook.status_callback_method,
        },
        "profile": {
            "name": s.profile.name,
            "about": s.profile.about,
            "address": s.profile.address,
            "description": s.profile.description,
            "emails": s.profile.emails,
            "logo_url": s.profile.logo_url,
            "vertical": s.profile.vertical,
            "websites": s.profile.websites,
        },
        "properties": {
            "quality_rating": s.properties.quality_rating,
            "messaging_limit": s.properties.messaging_limit,
        },
        "offline_reasons": s.offline_reasons,
        "url": format!("{base_url}{PATH}/{}", s.sid),
    })
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(20001, msg)
}

/// A JSON object body (an empty body counts as `{}`).
fn object_body(ctx: &Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    if ctx.req.body.is_empty() {
        return Ok(Map::new());
    }
    match ctx.req.json_body()? {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("The request body must be a JSON object")),
    }
}

/// An optional string field of `obj`: absent → `None`, null → `Some(None)`.
fn opt_str(obj: &Map<String, Value>, section: &str, key: &str) -> Result<Option<Option<String>>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(invalid(format!("{section}.{key} must be a string"))),
    }
}

fn section<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid(format!("{key} must be an object"))),
    }
}

fn check_webhook_method(field: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v.as_deref() {
        None | Some("POST") | Some("PUT") => Ok(()),
        Some(other) => Err(ApiError::bad_request(
            21403,
            format!("Invalid Method: webhook.{field} must be POST or PUT, got '{other}'"),
        )),
    }
}

fn apply_webhook(
    current: &SenderWebhook,
    obj: &Map<String, Value>,
    mode: WebhookUpdate,
) -> Result<SenderWebhook, ApiError> {
    let mut w = match mode {
        WebhookUpdate::Replace => SenderWebhook::default(),
        WebhookUpdate::Merge => current.clone(),
    };
    let fields: [(&str, &mut Option<String>); 6] = [
        ("callback_url", &mut w.callback_url),
        ("callback_method", &mut w.callback_method),
        ("fallback_url", &mut w.fallback_url),
        ("fallback_method", &mut w.fallback_method),
        ("status_callback_url", &mut w.status_callback_url),
        ("status_callback_method", &mut w.status_callback_method),
    ];
    for (key, slot) in fields {
        if let Some(v) = opt_str(obj, "webhook", key)? {
            *slot = v;
        }
    }
    check_webhook_method("callback_method", &w.callback_method)?;
    check_webhook_method("fallback_method", &w.fallback_method)?;
    Ok(w)
}

fn apply_configuration(c: &mut SenderConfiguration, obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    if let Some(v) = opt_str(obj, "configuration", "waba_id")? {
        c.waba_id = v;
    }
    if let Some(v) = opt_str(obj, "configuration", "verification_method")? {
        if let Some(m) = &v {
            if m != "sms" && m != "voice" {
                return Err(invalid(format!("configuration.verification_method must be sms or voice, got '{m}'")));
            }
        }
        c.verification_method = v;
    }
    if let Some(v) = opt_str(obj, "configuration", "voice_application_sid")? {
        c.voice_application_sid = v;
    }
    Ok(opt_str(obj, "configuration", "verification_code")?.flatten())
}

fn apply_profile(p: &mut SenderProfile, obj: &Map<String, Value>) -> Result<(), ApiError> {
    let fields: [(&str, &mut Option<String>); 6] = [
        ("name", &mut p.name),
        ("about", &mut p.about),
        ("address", &mut p.address),
        ("description", &mut p.description),
        ("logo_url", &mut p.logo_url),
        ("vertical", &mut p.vertical),
    ];
    for (key, slot) in fields {
        if let Some(v) = opt_str(obj, "profile", key)? {
            *slot = v;
        }
    }
    if let Some(v) = obj.get("emails") {
        p.emails = serde_json::from_value::<Option<Vec<ProfileEmail>>>(v.clone())
            .map_err(|e| invalid(format!("profile.emails: {e}")))?;
    }
    if let Some(v) = obj.get("websites") {
        p.websites = serde_json::from_value::<Option<Vec<ProfileWebsite>>>(v.clone())
            .map_err(|e| invalid(format!("profile.websites: {e}")))?;
    }
    Ok(())
}

/// GET list; `Channel` (whatsapp|rcs) is required. Default page size 20, `PageSize` up to 1000
/// (the spec's maximum), in creation order; `next_page_url` carries `PageToken=PA<last sid>`.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let query = ctx.req.query_params();
    let channel =
        query.get("Channel").ok_or_else(|| invalid("Missing required parameter Channel in the query"))?.to_string();
    if channel != "whatsapp" && channel != "rcs" {
        return Err(invalid(format!("Invalid Channel '{channel}': use whatsapp or rcs")));
    }
    let paging = PageRequest::from_params(&query, 20)?;
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    // Page over the account's senders in place: a large account must not be copied per page.
    let senders: &[Sender] = if channel == "whatsapp" { &acct.senders } else { &[] };
    let page = paginate(senders, |s| s.sid.as_str(), &paging);
    let items = page.items.iter().map(|s| sender_json(&base, s)).collect();
    let filters = vec![("Channel".to_string(), channel)];
    let body = envelope_meta("senders", &base, PATH, &filters, &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// GET one sender.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let s = acct.senders.iter().find(|s| s.sid == sid).ok_or(nf)?;
    Ok(SimResponse::json(200, &sender_json(&base, s)))
}

/// POST create: registers a sender; 202 with status `CREATING`.
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let body = object_body(ctx)?;
    let sender_id = match body.get("sender_id") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(invalid("Missing required parameter sender_id")),
    };
    if !sender_id.strip_prefix("whatsapp:").is_some_and(is_e164) {
        return Err(invalid(format!("Invalid sender_id '{sender_id}': use whatsapp:+E164")));
    }
    let now = Utc::now();
    let sid = ctx.state.sids.random("XE");
    let mode = ctx.config.webhook_update;
    let base = ctx.base_url.to_string();
    let mut sender = Sender {
        sid,
        sender_id: sender_id.clone(),
        status: SenderStatus::Creating,
        webhook: SenderWebhook::default(),
        configuration: SenderConfiguration::default(),
        profile: SenderProfile::default(),
        properties: SenderProperties::default(),
        offline_reasons: None,
        date_created: now,
        date_updated: now,
    };
    if let Some(w) = section(&body, "webhook")? {
        sender.webhook = apply_webhook(&SenderWebhook::default(), w, mode)?;
    }
    if let Some(c) = section(&body, "configuration")? {
        apply_configuration(&mut sender.configuration, c)?;
    }
    if let Some(p) = section(&body, "profile")? {
        apply_profile(&mut sender.profile, p)?;
    }
    let acct = ctx.account()?;
    if acct.senders.iter().any(|s| s.sender_id == sender_id) {
        return Err(invalid(format!("A sender with sender_id {sender_id} already exists")));
    }
    let json = sender_json(&base, &sender);
    acct.senders.push(sender);
    Ok(SimResponse::json(202, &json))
}

/// POST update: 202 with the whole sender.
pub(crate) fn update(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let body = object_body(ctx)?;
    let nf = ctx.not_found();
    let mode = ctx.config.webhook_update;
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let current = acct.senders.iter_mut().find(|s| s.sid == sid).ok_or(nf)?;
    let mut s = current.clone();
    if let Some(w) = section(&body, "webhook")? {
        s.webhook = apply_webhook(&s.webhook, w, mode)?;
    }
    if let Some(c) = section(&body, "configuration")? {
        let code = apply_configuration(&mut s.configuration, c)?;
        if code.is_some() && s.status == SenderStatus::PendingVerification {
            s.status = SenderStatus::Verifying;
        }
    }
    if let Some(p) = section(&body, "profile")? {
        apply_profile(&mut s.profile, p)?;
    }
    s.date_updated = Utc::now();
    *current = s;
    Ok(SimResponse::json(202, &sender_json(&base, current)))
}

/// DELETE: 204 (and drops the sender from Messaging Service pools).
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let before = acct.senders.len();
    acct.senders.retain(|s| s.sid != sid);
    if acct.senders.len() == before {
        return Err(nf);
    }
    for svc in &mut acct.services {
        svc.channel_senders.retain(|e| e.sid != sid);
    }
    Ok(SimResponse::no_content())
}
