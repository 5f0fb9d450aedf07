//! `/v1/Configuration/Addresses`: Conversations address configurations
//! (`conversations.v1.configuration_address`).

use chrono::Utc;
use serde_json::{json, Value};

use crate::api2010::{check_url, parse_bool};
use crate::errors::ApiError;
use crate::http::{Params, SimResponse};
use crate::messaging::iso8601;
use crate::paging::{envelope_meta, paginate, PageRequest};
use crate::router::Ctx;
use crate::state::{Account, AddressConfiguration, AutoCreation};

/// The largest page of this API (spec `ListConfigurationAddress` `PageSize` maximum).
const MAX_PAGE_SIZE: usize = 50;
const TYPES: &[&str] = &["sms", "whatsapp", "messenger", "gbm", "email", "rcs", "apple", "chat"];

/// `conversations.v1.configuration_address`.
fn address_json(base_url: &str, account_sid: &str, c: &AddressConfiguration) -> Value {
    let a = &c.auto_creation;
    let auto = match a.type_.as_str() {
        "webhook" => json!({
            "enabled": a.enabled, "type": a.type_, "conversation_service_sid": a.conversation_service_sid,
            "webhook_url": a.webhook_url, "webhook_method": a.webhook_method.as_deref().map(str::to_ascii_uppercase),
            "webhook_filters": a.webhook_filters,
        }),
        "studio" => json!({
            "enabled": a.enabled, "type": a.type_, "conversation_service_sid": a.conversation_service_sid,
            "studio_flow_sid": a.studio_flow_sid, "studio_retry_count": a.studio_retry_count,
        }),
        _ => json!({"enabled": a.enabled, "type": a.type_}),
    };
    json!({
        "sid": c.sid,
        "account_sid": account_sid,
        "type": c.type_,
        "address": c.address,
        "friendly_name": c.friendly_name,
        "auto_creation": auto,
        "date_created": iso8601(&c.date_created),
        "date_updated": iso8601(&c.date_updated),
        "url": format!("{base_url}/v1/Configuration/Addresses/{}", c.sid),
        "address_country": c.address_country,
    })
}

/// The configuration with this SID or address (the spec's `Sid` accepts either).
fn index(acct: &Account, key: &str) -> Option<usize> {
    acct.address_configurations.iter().position(|c| c.sid == key || c.address == key)
}

/// Applies the Create/UpdateConfigurationAddress form parameters.
fn apply_form(c: &mut AddressConfiguration, form: &Params) -> Result<(), ApiError> {
    let a = &mut c.auto_creation;
    if let Some(v) = form.get("FriendlyName") {
        c.friendly_name = Some(v.to_string()).filter(|v| !v.is_empty());
    }
    if let Some(v) = form.get("AutoCreation.Enabled") {
        a.enabled = parse_bool("AutoCreation.Enabled", v)?;
    }
    if let Some(v) = form.get("AutoCreation.Type") {
        if !["webhook", "studio", "default"].contains(&v) {
            return Err(ApiError::bad_request(20001, format!("Invalid AutoCreation.Type '{v}'")));
        }
        a.type_ = v.to_string();
    }
    if let Some(v) = form.get("AutoCreation.ConversationServiceSid") {
        a.conversation_service_sid = Some(v.to_string()).filter(|v| !v.is_empty());
    }
    if let Some(v) = form.get("AutoCreation.WebhookUrl") {
        check_url("AutoCreation.WebhookUrl", v)?;
        a.webhook_url = Some(v.to_string()).filter(|v| !v.is_empty());
    }
    if let Some(v) = form.get("AutoCreation.WebhookMethod") {
        if !v.eq_ignore_ascii_case("get") && !v.eq_ignore_ascii_case("post") {
            return Err(ApiError::bad_request(20001, format!("Invalid AutoCreation.WebhookMethod '{v}'")));
        }
        a.webhook_method = Some(v.to_ascii_lowercase());
    }
    let filters = form.get_all("AutoCreation.WebhookFilters");
    if !filters.is_empty() {
        a.webhook_filters = filters.into_iter().map(str::to_string).collect();
    }
    if let Some(v) = form.get("AutoCreation.StudioFlowSid") {
        a.studio_flow_sid = Some(v.to_string()).filter(|v| !v.is_empty());
    }
    if let Some(v) = form.get("AutoCreation.StudioRetryCount") {
        a.studio_retry_count =
            Some(v.parse().map_err(|_| ApiError::bad_request(20001, "Invalid AutoCreation.StudioRetryCount"))?);
    }
    Ok(())
}

/// GET list (`Type` filter).
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let query = ctx.req.query_params();
    let mut paging = PageRequest::from_params(&query, MAX_PAGE_SIZE)?;
    paging.page_size = paging.page_size.min(MAX_PAGE_SIZE);
    let type_ = query.get("Type").map(str::to_string);
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let matching: Vec<AddressConfiguration> =
        acct.address_configurations.iter().filter(|c| type_.as_deref().is_none_or(|t| c.type_ == t)).cloned().collect();
    let page = paginate(&matching, |c| c.sid.as_str(), &paging);
    let items = page.items.iter().map(|c| address_json(&base, &acct.sid, c)).collect();
    let filters: Vec<(String, String)> = type_.into_iter().map(|t| ("Type".to_string(), t)).collect();
    let body =
        envelope_meta("address_configurations", &base, "/v1/Configuration/Addresses", &filters, &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// GET one (by SID or address).
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let key = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let i = index(acct, &key).ok_or(nf)?;
    Ok(SimResponse::json(200, &address_json(&base, &acct.sid, &acct.address_configurations[i])))
}

/// POST create (`Type`, `Address` required); 201. One configuration per address.
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let form = ctx.req.form_params();
    let required = |name: &str| {
        form.get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request(20001, format!("Missing required parameter {name}")))
    };
    let type_ = required("Type")?;
    if !TYPES.contains(&type_.as_str()) {
        return Err(ApiError::bad_request(20001, format!("Invalid Type '{type_}'")));
    }
    let address = required("Address")?;
    let sid = ctx.state.sids.random("IG");
    let base = ctx.base_url.to_string();
    let now = Utc::now();
    let mut c = AddressConfiguration {
        sid,
        type_,
        address,
        friendly_name: None,
        auto_creation: AutoCreation { type_: "default".into(), ..AutoCreation::default() },
        address_country: form.get("AddressCountry").map(str::to_string),
        date_created: now,
        date_updated: now,
    };
    apply_form(&mut c, &form)?;
    let acct = ctx.account()?;
    if index(acct, &c.address).is_some() {
        return Err(ApiError::new(409, 50351, format!("Address {} is already configured", c.address)));
    }
    let body = address_json(&base, &acct.sid, &c);
    acct.address_configurations.push(c);
    Ok(SimResponse::json(201, &body))
}

/// POST update (partial); 200.
pub(crate) fn update(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let key = ctx.param("Sid").to_string();
    let form = ctx.req.form_params();
    let nf = ctx.not_found();
    let base = ctx.base_url.to_string();
    let acct = ctx.account()?;
    let i = index(acct, &key).ok_or(nf)?;
    let mut c = acct.address_configurations[i].clone();
    apply_form(&mut c, &form)?;
    c.date_updated = Utc::now();
    acct.address_configurations[i] = c;
    Ok(SimResponse::json(200, &address_json(&base, &acct.sid, &acct.address_configurations[i])))
}

/// DELETE: 204.
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let key = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let i = index(acct, &key).ok_or(nf)?;
    acct.address_configurations.remove(i);
    Ok(SimResponse::no_content())
}
