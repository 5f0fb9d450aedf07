//! content.twilio.com: `/v1/Content[/{Sid}]` templates and their WhatsApp approval
//! (`/v1/Content/{Sid}/ApprovalRequests`, `.../ApprovalRequests/whatsapp`). JSON in and out,
//! ISO 8601 dates, absolute URLs with the simulator's base URL.
//!
//! A created template starts `unsubmitted`; submitting it for WhatsApp approval makes it
//! `received`; the Console (a seed, or `POST /_sim/...`) decides approval, as WhatsApp does.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::messaging::iso8601;
use crate::paging::{envelope_meta, paginate, PageRequest};
use crate::router::Ctx;
use crate::state::{ApprovalStatus, Content};

const PATH: &str = "/v1/Content";

fn url(base: &str, sid: &str) -> String {
    format!("{base}{PATH}/{sid}")
}

/// `content.v1.content`.
pub(crate) fn content_json(base: &str, account_sid: &str, c: &Content) -> Value {
    json!({
        "date_created": iso8601(&c.date_created),
        "date_updated": iso8601(&c.date_updated),
        "sid": c.sid,
        "account_sid": account_sid,
        "friendly_name": c.friendly_name,
        "language": c.language,
        "variables": c.variables,
        "types": c.types,
        "url": url(base, &c.sid),
        "links": {
            "approval_create": format!("{}/ApprovalRequests/whatsapp", url(base, &c.sid)),
            "approval_fetch": format!("{}/ApprovalRequests", url(base, &c.sid)),
        },
    })
}

fn whatsapp_json(c: &Content) -> Value {
    json!({
        "type": "whatsapp",
        "name": c.approval_name,
        "category": c.category,
        "content_type": c.type_name(),
        "status": c.approval.as_str(),
        "rejection_reason": c.rejection_reason,
        "allow_category_change": true,
    })
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(20001, msg)
}

fn object_body(ctx: &Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    match ctx.req.json_body()? {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("The request body must be a JSON object")),
    }
}

/// A JSON object of strings (template variables).
pub(crate) fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    v.as_object()?.iter().map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()
}

/// GET list, in creation order.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let query = ctx.req.query_params();
    let paging = PageRequest::from_params(&query, 50)?;
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let page = paginate(&acct.contents, |c| c.sid.as_str(), &paging);
    let items = page.items.iter().map(|c| content_json(&base, &acct.sid, c)).collect();
    let body = envelope_meta("contents", &base, PATH, &[], &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// POST create: 201, `unsubmitted` for WhatsApp.
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let body = object_body(ctx)?;
    let language = body
        .get("language")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid("Missing required parameter language"))?
        .to_string();
    let types = body.get("types").filter(|t| t.as_object().is_some_and(|o| !o.is_empty())).cloned();
    let types = types.ok_or_else(|| invalid("Missing required parameter types"))?;
    let variables = match body.get("variables") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => string_map(v).ok_or_else(|| invalid("variables must be an object of strings"))?,
    };
    let friendly_name = body.get("friendly_name").and_then(Value::as_str).unwrap_or_default().to_string();
    let now = Utc::now();
    let sid = ctx.state.sids.random("HX");
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let content = Content {
        sid,
        friendly_name,
        language,
        variables,
        types,
        approval: ApprovalStatus::Unsubmitted,
        approval_name: String::new(),
        category: String::new(),
        rejection_reason: String::new(),
        date_created: now,
        date_updated: now,
    };
    let out = content_json(&base, &acct.sid, &content);
    acct.contents.push(content);
    Ok(SimResponse::json(201, &out))
}

/// GET one.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let c = acct.content(&sid).ok_or(nf)?;
    Ok(SimResponse::json(200, &content_json(&base, &acct.sid, c)))
}

/// DELETE: 204.
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let before = acct.contents.len();
    acct.contents.retain(|c| c.sid != sid);
    if acct.contents.len() == before {
        return Err(nf);
    }
    Ok(SimResponse::no_content())
}

/// GET `.../ApprovalRequests`: the WhatsApp approval.
pub(crate) fn fetch_approval(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let c = acct.content(&sid).ok_or(nf)?;
    let body = json!({
        "sid": c.sid,
        "account_sid": acct.sid,
        "whatsapp": whatsapp_json(c),
        "url": format!("{}/ApprovalRequests", url(&base, &c.sid)),
    });
    Ok(SimResponse::json(200, &body))
}

/// POST `.../ApprovalRequests/whatsapp`: submits the template (201, status `received`).
pub(crate) fn submit_approval(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("ContentSid").to_string();
    let body = object_body(ctx)?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_string);
    let name = text("name").ok_or_else(|| invalid("Missing required parameter name"))?;
    let category = text("category").ok_or_else(|| invalid("Missing required parameter category"))?;
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let c = acct.contents.iter_mut().find(|c| c.sid == sid).ok_or(nf)?;
    c.approval_name = name;
    c.category = category;
    c.approval = ApprovalStatus::Received;
    c.rejection_reason.clear();
    c.date_updated = Utc::now();
    let w = whatsapp_json(c);
    let out = json!({
        "name": w["name"], "category": w["category"], "content_type": w["content_type"],
        "status": w["status"], "rejection_reason": w["rejection_reason"], "allow_category_change": true,
    });
    Ok(SimResponse::json(201, &out))
}
