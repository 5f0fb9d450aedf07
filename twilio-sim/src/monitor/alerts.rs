//! `/v1/Alerts[/{Sid}]`: list (newest first, filtered by `StartDate`, `EndDate`, `LogLevel`;
//! `meta` paging) and fetch. A list item lacks the request and response details that only a
//! fetch returns, as the spec's two schemas say.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::paging::{envelope_meta, paginate, PageRequest};
use crate::router::Ctx;
use crate::state::Alert;

const PATH: &str = "/v1/Alerts";

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `monitor.v1.alert` (list items).
fn alert_json(base_url: &str, a: &Alert) -> Value {
    json!({
        "account_sid": a.account_sid,
        "alert_text": a.alert_text,
        "api_version": "2010-04-01",
        "date_created": time(&a.date_created),
        "date_generated": time(&a.date_generated),
        "date_updated": time(&a.date_created),
        "error_code": a.error_code,
        "log_level": a.log_level,
        "more_info": format!("https://www.twilio.com/docs/errors/{}", a.error_code),
        "request_method": a.request_method,
        "request_url": a.request_url,
        "resource_sid": a.resource_sid,
        "sid": a.sid,
        "url": format!("{base_url}{PATH}/{}", a.sid),
        "service_sid": a.service_sid,
    })
}

/// `monitor.v1.alert-instance` (fetch): the list item plus the request and response details.
fn instance_json(base_url: &str, a: &Alert) -> Value {
    let mut v = alert_json(base_url, a);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("request_variables".into(), json!(a.request_variables));
        obj.insert("response_body".into(), json!(a.response_body));
        obj.insert("response_headers".into(), json!(a.response_headers));
        obj.insert("request_headers".into(), json!(a.request_headers));
    }
    v
}

/// `YYYY-MM-DD` (midnight GMT) or an RFC 3339 date-time.
fn parse_date(name: &str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(20001, format!("Invalid {name}: {raw}")))?;
    let t = if end_of_day { day.and_hms_opt(23, 59, 59) } else { day.and_hms_opt(0, 0, 0) };
    t.map(|t| t.and_utc()).ok_or_else(|| ApiError::bad_request(20001, format!("Invalid {name}: {raw}")))
}

/// `GET /v1/Alerts`.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let params = ctx.req.query_params();
    let paging = PageRequest::from_params(&params, 50)?;
    let start = params.get("StartDate").map(|v| parse_date("StartDate", v, false)).transpose()?;
    let end = params.get("EndDate").map(|v| parse_date("EndDate", v, true)).transpose()?;
    let level = params.get("LogLevel").map(str::to_ascii_lowercase);
    let mut filters = Vec::new();
    for key in ["LogLevel", "StartDate", "EndDate"] {
        if let Some(v) = params.get(key) {
            filters.push((key.to_string(), v.to_string()));
        }
    }
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let mut matching: Vec<Alert> = acct
        .alerts
        .iter()
        .filter(|a| start.is_none_or(|s| a.date_generated >= s))
        .filter(|a| end.is_none_or(|e| a.date_generated <= e))
        .filter(|a| level.as_deref().is_none_or(|l| a.log_level == l))
        .cloned()
        .collect();
    // Newest first, as the Debugger shows them.
    matching.sort_by(|a, b| b.date_generated.cmp(&a.date_generated).then_with(|| b.sid.cmp(&a.sid)));
    let page = paginate(&matching, |a| a.sid.as_str(), &paging);
    let items = page.items.iter().map(|a| alert_json(&base, a)).collect();
    let body = envelope_meta("alerts", &base, PATH, &filters, &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// `GET /v1/Alerts/{Sid}`.
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let base = ctx.base_url.to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let a = acct.alerts.iter().find(|a| a.sid == sid).ok_or(nf)?;
    Ok(SimResponse::json(200, &instance_json(&base, a)))
}
