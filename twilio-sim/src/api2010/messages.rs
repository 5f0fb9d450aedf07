//! `/2010-04-01/Accounts/{AccountSid}/Messages[/{Sid}].json`.
//!
//! Create answers 201 `queued` (or `accepted` with a Messaging Service and no From); the stored
//! message settles on the next read: `delivered`, or `failed` 63015 for a sandbox recipient
//! who has not joined (or whose membership expired), or `failed` 63016 for a free-form message
//! (or a template WhatsApp has not approved) from a sender to a user outside WhatsApp's 24-hour
//! window, when the account enforces it ([`Account::enforce_session_window`]).
//!
//! `ContentSid` must name a template of the account (else 400 21655); `ContentVariables` must
//! be a JSON object of strings (else 400 21656); the message's `body` is the template's text
//! with the variables filled in.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::{check_url, rfc2822};
use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::paging::{envelope_2010, paginate, PageRequest};
use crate::router::Ctx;
use crate::sid::is_sid;
use crate::state::{is_e164, Account, AccountType, Message, MessageOutcome, MessageStatus, SANDBOX_NUMBER};

const WA: &str = "whatsapp:";
const MAX_BODY_CHARS: usize = 1600;

/// `api.v2010.account.message`.
pub(crate) fn message_json(account_sid: &str, m: &Message) -> Value {
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Messages/{}", m.sid);
    let from = if m.status == MessageStatus::Accepted { None } else { m.from.clone() };
    json!({
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": rfc2822(&m.date_created),
        "date_sent": m.date_sent.as_ref().map(rfc2822),
        "date_updated": rfc2822(&m.date_updated),
        "direction": "outbound-api",
        "error_code": m.error_code,
        "error_message": m.error_message,
        "from": from,
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": m.num_media.to_string(),
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status.as_str(),
        "subresource_uris": { "media": format!("{uri}/Media.json") },
        "to": m.to,
        "uri": format!("{uri}.json"),
    })
}

fn delivered() -> MessageOutcome {
    MessageOutcome { status: MessageStatus::Delivered, error_code: None, error_message: None }
}

/// A free-form message (or an unapproved template) outside the 24-hour window.
fn outside_window() -> MessageOutcome {
    MessageOutcome {
        status: MessageStatus::Failed,
        error_code: Some(63016),
        error_message: Some(
            "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template."
                .into(),
        ),
    }
}

/// Checks the WhatsApp `From` of `acct` and decides the message's outcome; `approved`: the
/// message uses a template WhatsApp approved.
fn whatsapp_outcome(
    acct: &Account,
    from: &str,
    to_number: &str,
    approved: bool,
    now: DateTime<Utc>,
) -> Result<MessageOutcome, ApiError> {
    let no_channel = || ApiError::bad_request(63007, "Twilio could not find a Channel with the specified From address");
    if acct.senders.iter().any(|s| s.sender_id == from && s.status.can_send()) {
        let open = acct.session_open(from.trim_start_matches(WA), to_number, now);
        return Ok(if approved || open { delivered() } else { outside_window() });
    }
    let from_number = from.trim_start_matches(WA);
    match &acct.sandbox {
        Some(sandbox) if from_number == SANDBOX_NUMBER => {
            if sandbox.has_active_participant(to_number, now) {
                Ok(delivered())
            } else {
                Ok(MessageOutcome {
                    status: MessageStatus::Failed,
                    error_code: Some(63015),
                    error_message: Some(
                        "Channel Sandbox can only send messages to phone numbers that have joined the Sandbox".into(),
                    ),
                })
            }
        }
        _ => Err(no_channel()),
    }
}

/// Picks a sender from a Messaging Service pool for `to`.
fn service_sender(acct: &Account, mss: &str, whatsapp: bool) -> Result<String, ApiError> {
    let svc = acct
        .services
        .iter()
        .find(|s| s.sid == mss)
        .ok_or_else(|| ApiError::bad_request(21701, format!("The Messaging Service Sid {mss} is invalid.")))?;
    let from = if whatsapp {
        svc.channel_senders.iter().find_map(|e| {
            acct.senders.iter().find(|s| s.sid == e.sid && s.status.can_send()).map(|s| s.sender_id.clone())
        })
    } else {
        svc.phone_numbers
            .iter()
            .find_map(|e| acct.incoming_phone_numbers.iter().find(|n| n.sid == e.sid).map(|n| n.phone_number.clone()))
    };
    from.ok_or_else(|| {
        ApiError::bad_request(21703, "The Messaging Service does not have a sender available for this destination")
    })
}

/// POST create.
/// A Trial account's message reaches only its verified caller IDs: anyone else → 400 21608
/// (synchronous, docs/errors/21608). The WhatsApp sandbox is exempt: its joined participants
/// are its recipients (**[unverified]** for Trial accounts).
fn trial_recipient(acct: &Account, from: Option<&str>, to_number: &str) -> Result<(), ApiError> {
    let sandbox = from.is_some_and(|f| f.trim_start_matches(WA) == SANDBOX_NUMBER);
    if acct.account_type != AccountType::Trial || sandbox || acct.outgoing_caller_ids.iter().any(|c| c == to_number) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        21608,
        format!(
            "The number {to_number} is unverified. Trial accounts cannot send messages to unverified numbers; verify {to_number} at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number to send messages to unverified numbers"
        ),
    ))
}

pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let form = ctx.req.form_params();
    let now = Utc::now();
    let to = form
        .get("To")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request(21604, "A 'To' phone number is required."))?
        .to_string();
    let from = form.get("From").filter(|f| !f.is_empty()).map(str::to_string);
    let mss = form.get("MessagingServiceSid").filter(|f| !f.is_empty()).map(str::to_string);
    if from.is_none() && mss.is_none() {
        return Err(ApiError::bad_request(21603, "A 'From' phone number is required."));
    }
    let body = form.get("Body").unwrap_or("").to_string();
    let media = form.get_all("MediaUrl");
    let content_sid = form.get("ContentSid").map(str::to_string);
    if body.is_empty() && media.is_empty() && content_sid.is_none() {
        return Err(ApiError::bad_request(21602, "Message body is required."));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_request(21617, "The concatenated message body exceeds the 1600 character limit."));
    }
    if let Some(c) = &content_sid {
        if !is_sid(c, "HX") {
            return Err(ApiError::bad_request(21655, format!("The ContentSid is Invalid: '{c}'")));
        }
    }
    let content_variables = form.get("ContentVariables").map(str::to_string);
    let variables = match &content_variables {
        None => BTreeMap::new(),
        Some(raw) => serde_json::from_str::<Value>(raw)
            .ok()
            .as_ref()
            .and_then(crate::content::string_map)
            .ok_or_else(|| ApiError::bad_request(21656, "The ContentVariables Parameter is invalid"))?,
    };
    if let Some(cb) = form.get("StatusCallback") {
        check_url("StatusCallback", cb).map_err(|_| ApiError::bad_request(21609, "Invalid 'StatusCallback'"))?;
    }
    let to_wa = to.starts_with(WA);
    if let Some(f) = &from {
        if f.starts_with(WA) != to_wa {
            return Err(ApiError::bad_request(
                21910,
                "Invalid From and To pair. From and To should be of the same channel",
            ));
        }
    }
    let to_number = to.trim_start_matches(WA).to_string();
    if !is_e164(&to_number) {
        return Err(ApiError::bad_request(21211, format!("The 'To' number {to} is not a valid phone number.")));
    }
    let sid = ctx.state.sids.random("SM");
    let acct = ctx.account()?;
    trial_recipient(acct, from.as_deref(), &to_number)?;
    let (body, approved) = match &content_sid {
        Some(c) => {
            let content = acct
                .content(c)
                .ok_or_else(|| ApiError::bad_request(21655, format!("The ContentSid is Invalid: '{c}'")))?;
            (content.render(&variables), content.is_approved())
        }
        None => (body, false),
    };
    let (from, outcome, status) = match (&from, &mss) {
        (Some(f), _) if to_wa => {
            if !is_e164(f.trim_start_matches(WA)) {
                return Err(ApiError::bad_request(
                    21212,
                    format!("The 'From' number {f} is not a valid phone number, shortcode, or alphanumeric sender ID."),
                ));
            }
            let outcome = whatsapp_outcome(acct, f, &to_number, approved, now)?;
            (f.clone(), outcome, MessageStatus::Queued)
        }
        (Some(f), _) => {
            if !is_e164(f) {
                return Err(ApiError::bad_request(
                    21212,
                    format!("The 'From' number {f} is not a valid phone number, shortcode, or alphanumeric sender ID."),
                ));
            }
            if acct.number(f).is_none() {
                return Err(ApiError::bad_request(
                    21606,
                    format!("The From phone number {f} is not a valid, SMS-capable inbound phone number or short code for your account."),
                ));
            }
            (f.clone(), delivered(), MessageStatus::Queued)
        }
        (None, Some(svc)) => {
            let f = service_sender(acct, svc, to_wa)?;
            (f, delivered(), MessageStatus::Accepted)
        }
        (None, None) => return Err(ApiError::bad_request(21603, "A 'From' phone number is required.")),
    };
    if let Some(svc) = &mss {
        if !acct.services.iter().any(|s| &s.sid == svc) {
            return Err(ApiError::bad_request(21701, format!("The Messaging Service Sid {svc} is invalid.")));
        }
    }
    let message = Message {
        sid,
        to,
        from: Some(from),
        body,
        content_sid,
        content_variables,
        status_callback: form.get("StatusCallback").map(str::to_string),
        messaging_service_sid: mss,
        num_media: media.len(),
        status,
        error_code: None,
        error_message: None,
        pending: Some(outcome),
        date_created: now,
        date_sent: None,
        date_updated: now,
    };
    let body = message_json(&acct.sid, &message);
    acct.messages.push(message);
    Ok(SimResponse::json(201, &body))
}

/// A `DateSent` filter value: a day or an instant.
#[derive(Debug, Clone, Copy)]
enum DateFilter {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_date(name: &str, v: &str) -> Result<DateFilter, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(DateFilter::Day(d));
    }
    DateTime::parse_from_rfc3339(v).map(|t| DateFilter::Instant(t.with_timezone(&Utc))).map_err(|_| {
        ApiError::bad_request(20001, format!("Invalid {name}: '{v}' (use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)"))
    })
}

fn cmp_date(sent: &DateTime<Utc>, f: DateFilter) -> std::cmp::Ordering {
    match f {
        DateFilter::Day(d) => sent.date_naive().cmp(&d),
        DateFilter::Instant(t) => sent.cmp(&t),
    }
}

const FILTERS: &[&str] = &["To", "From", "DateSent", "DateSent<", "DateSent>"];

/// GET list (newest first) with `To`, `From`, `DateSent`, `DateSent<` (on or before),
/// `DateSent>` (on or after) and paging.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let query = ctx.req.query_params();
    let paging = PageRequest::from_params(&query, 50)?;
    let on = query.get("DateSent").map(|v| parse_date("DateSent", v)).transpose()?;
    let before = query.get("DateSent<").map(|v| parse_date("DateSent<", v)).transpose()?;
    let after = query.get("DateSent>").map(|v| parse_date("DateSent>", v)).transpose()?;
    let path = ctx.req.path.clone();
    let now = Utc::now();
    let acct = ctx.account()?;
    let account_sid = acct.sid.clone();
    let due: Vec<String> = acct
        .messages
        .iter_mut()
        .filter_map(|m| (m.settle(now) && m.status_callback.is_some()).then(|| m.sid.clone()))
        .collect();
    ctx.state.callbacks_due.extend(due.into_iter().map(|sid| (account_sid.clone(), sid)));
    let acct = ctx.account()?;
    let matching: Vec<Message> = acct
        .messages
        .iter()
        .rev()
        .filter(|m| {
            let date_ok = |f: Option<DateFilter>, ok: &[std::cmp::Ordering]| {
                f.is_none_or(|f| m.date_sent.as_ref().is_some_and(|s| ok.contains(&cmp_date(s, f))))
            };
            query.get("To").is_none_or(|t| m.to == t)
                && query.get("From").is_none_or(|f| m.from.as_deref() == Some(f))
                && date_ok(on, &[Equal])
                && date_ok(before, &[Less, Equal])
                && date_ok(after, &[Greater, Equal])
        })
        .cloned()
        .collect();
    let page = paginate(&matching, |m| m.sid.as_str(), &paging);
    let items = page.items.iter().map(|m| message_json(&acct.sid, m)).collect();
    let filters: Vec<(String, String)> =
        query.0.iter().filter(|(k, _)| FILTERS.contains(&k.as_str())).cloned().collect();
    let body = envelope_2010("messages", &path, &filters, &paging, &page, items);
    Ok(SimResponse::json(200, &body))
}

/// GET one message (settles it first).
pub(crate) fn fetch(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let account_sid = acct.sid.clone();
    let m = acct.messages.iter_mut().find(|m| m.sid == sid).ok_or(nf)?;
    let due = m.settle(Utc::now()) && m.status_callback.is_some();
    let body = message_json(&account_sid, m);
    if due {
        ctx.state.callbacks_due.push((account_sid, sid));
    }
    Ok(SimResponse::json(200, &body))
}

/// DELETE: 204.
pub(crate) fn delete(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let sid = ctx.param("Sid").to_string();
    let nf = ctx.not_found();
    let acct = ctx.account()?;
    let before = acct.messages.len();
    acct.messages.retain(|m| m.sid != sid);
    if acct.messages.len() == before {
        return Err(nf);
    }
    Ok(SimResponse::no_content())
}
