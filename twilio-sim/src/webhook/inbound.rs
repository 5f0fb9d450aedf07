//! An inbound WhatsApp message injected through the control API, delivered as Twilio would.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::SimError;
use crate::http::{SimRequest, SimResponse};
use crate::shared::{lock, Shared};
use crate::state::{describe_error_code, Account, Alert, InboundRoute, RouteKind};

use super::deliver::{self, elapsed_ms, Attempt, Failure, WebhookSettings};
use super::signature::webhook_signature;

/// An inbound WhatsApp message to inject (`POST /_sim/accounts/{key}/inbound/{number}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    /// The customer's number (E.164, with or without `whatsapp:`).
    pub from: String,
    /// The text.
    #[serde(default)]
    pub body: String,
    /// The customer's WhatsApp profile name.
    #[serde(default)]
    pub profile_name: Option<String>,
}

/// What happened to an injected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The message's SID (`SM...`).
    pub message_sid: String,
    /// The object that routed it.
    pub route: InboundRoute,
    /// The requests made, in order (none: the route has no URL, the message was dropped).
    pub attempts: Vec<Attempt>,
    /// Whether a receiver answered 2xx.
    pub delivered: bool,
}

/// The fallback URL and method of the object that routes the message, if it has one.
fn fallback(acct: &Account, route: &InboundRoute) -> Option<(String, String)> {
    let (url, method) = match route.kind {
        RouteKind::WhatsAppSender => {
            let s = acct.senders.iter().find(|s| s.sid == route.sid)?;
            (s.webhook.fallback_url.clone(), s.webhook.fallback_method.clone())
        }
        RouteKind::IncomingPhoneNumber => {
            let n = acct.incoming_phone_numbers.iter().find(|n| n.sid == route.sid)?;
            (n.sms_fallback_url.clone(), Some(n.sms_fallback_method.clone()))
        }
        RouteKind::MessagingService => {
            let s = acct.services.iter().find(|s| s.sid == route.sid)?;
            (s.fallback_url.clone(), Some(s.fallback_method.clone()))
        }
        RouteKind::AddressConfiguration | RouteKind::Application => (None, None),
    };
    let url = url.filter(|u| !u.is_empty())?;
    Some((url, method.unwrap_or_else(|| "POST".into())))
}

/// `GET` stays `GET`; anything else (`POST`, a sender's `PUT`) is sent as a form `POST`.
fn wire_method(m: Option<&str>) -> &'static str {
    match m {
        Some(m) if m.eq_ignore_ascii_case("GET") => "GET",
        _ => "POST",
    }
}

/// The URL without its fragment (Twilio keeps fragments for its connection overrides and
/// never sends them).
fn without_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

fn e164(raw: &str) -> String {
    raw.trim().trim_start_matches("whatsapp:").to_string()
}

/// Delivers `msg` to `to` (E.164) of `account` (SID or friendly name).
pub(crate) async fn inject(
    shared: &Arc<Shared>,
    account: &str,
    to: &str,
    msg: &InboundMessage,
) -> Result<Delivery, SimError> {
    let to = e164(to);
    let from = e164(&msg.from);
    let (route, fallback, token, account_sid, message_sid) = {
        let mut state = lock(&shared.state);
        let sid = state.sids.random("SM");
        let acct = state
            .accounts
            .iter()
            .find(|a| a.sid == account || a.friendly_name == account)
            .ok_or_else(|| SimError::NotFound(format!("account {account}")))?;
        let route = acct.inbound_route(&to).ok_or_else(|| SimError::NotFound(format!("{to} in account {account}")))?;
        let fb = fallback(acct, &route);
        let found = (route, fb, acct.auth_token.clone(), acct.sid.clone(), sid);
        // The customer wrote: WhatsApp's 24-hour window for free-form replies opens.
        let window = crate::state::SessionWindowPatch {
            sender: Some(to.clone()),
            recipient: Some(from.clone()),
            last_inbound: None,
            enforce: None,
        };
        state.update_session_window(account, &window)?;
        found
    };
    let mut params: Vec<(String, String)> = vec![
        ("MessageSid".into(), message_sid.clone()),
        ("SmsMessageSid".into(), message_sid.clone()),
        ("SmsSid".into(), message_sid.clone()),
        ("AccountSid".into(), account_sid.clone()),
        ("From".into(), format!("whatsapp:{from}")),
        ("To".into(), format!("whatsapp:{to}")),
        ("Body".into(), msg.body.clone()),
        ("NumMedia".into(), "0".into()),
        ("NumSegments".into(), "1".into()),
        ("ProfileName".into(), msg.profile_name.clone().unwrap_or_default()),
        ("WaId".into(), from.trim_start_matches('+').to_string()),
        ("SmsStatus".into(), "received".into()),
        ("ApiVersion".into(), "2010-04-01".into()),
    ];
    if route.kind == RouteKind::MessagingService {
        params.push(("MessagingServiceSid".into(), route.sid.clone()));
    }
    let mut delivery =
        Delivery { message_sid: message_sid.clone(), route: route.clone(), attempts: Vec::new(), delivered: false };
    let Some(url) = route.url.clone().filter(|u| !u.is_empty()) else {
        tracing::info!(to = %to, kind = ?route.kind, "inbound message dropped: its route has no URL");
        return Ok(delivery);
    };
    let settings = lock(&shared.webhook).clone();
    let client = deliver::client(&settings).map_err(SimError::Invalid)?;
    let targets = std::iter::once((url, route.method.clone(), false)).chain(fallback.map(|(u, m)| (u, Some(m), true)));
    let ctx = Request {
        shared,
        settings: &settings,
        client: &client,
        token: &token,
        account_sid: &account_sid,
        message_sid: &message_sid,
        service_sid: &route.sid,
    };
    for (url, method, is_fallback) in targets {
        let attempt = ctx.request(&url, wire_method(method.as_deref()), &params, is_fallback).await;
        let ok = attempt.error_code.is_none();
        delivery.attempts.push(attempt);
        if ok {
            delivery.delivered = true;
            break;
        }
    }
    Ok(delivery)
}

/// What every request of one delivery shares.
pub(super) struct Request<'a> {
    pub shared: &'a Arc<Shared>,
    pub settings: &'a WebhookSettings,
    pub client: &'a reqwest::Client,
    pub token: &'a str,
    pub account_sid: &'a str,
    pub message_sid: &'a str,
    pub service_sid: &'a str,
}

impl Request<'_> {
    /// One URL: a connection failure is tried again (`connect_retries`), then a failure
    /// becomes an alert.
    pub(super) async fn request(
        &self,
        url: &str,
        method: &'static str,
        params: &[(String, String)],
        fallback: bool,
    ) -> Attempt {
        let bare = without_fragment(url);
        let target = if method == "GET" {
            let query = serde_urlencoded::to_string(params).unwrap_or_default();
            let sep = if bare.contains('?') { '&' } else { '?' };
            format!("{bare}{sep}{query}")
        } else {
            bare.to_string()
        };
        let signed: &[(String, String)] = if method == "GET" { &[] } else { params };
        let signature = webhook_signature(self.token, &target, signed);
        let started = Instant::now();
        let mut tries = 0;
        let result = loop {
            let r = deliver::send(self.client, method, &target, params, &signature).await;
            match r {
                Err(Failure { connect: true, .. }) if tries < self.settings.connect_retries => tries += 1,
                other => break other,
            }
        };
        let elapsed = elapsed_ms(started);
        match result {
            Ok(answer) => {
                tracing::info!(url = %target, status = answer.status, elapsed_ms = elapsed, "webhook delivered");
                Attempt {
                    url: target,
                    method: method.into(),
                    fallback,
                    status: Some(answer.status),
                    error_code: None,
                    error: None,
                    alert_sid: None,
                    elapsed_ms: elapsed,
                }
            }
            Err(f) => {
                tracing::info!(url = %target, code = f.code, error = %f.message, elapsed_ms = elapsed, "webhook failed");
                let alert_sid = self.record_alert(&target, method, params, &f);
                Attempt {
                    url: target,
                    method: method.into(),
                    fallback,
                    status: f.answer.as_ref().map(|a| a.status),
                    error_code: Some(f.code),
                    error: Some(f.message),
                    alert_sid: Some(alert_sid),
                    elapsed_ms: elapsed,
                }
            }
        }
    }

    fn record_alert(&self, url: &str, method: &str, params: &[(String, String)], f: &Failure) -> String {
        let now = Utc::now();
        let mut text = vec![
            ("Msg".to_string(), describe_error_code(f.code).to_string()),
            ("sourceComponent".to_string(), "14100".to_string()),
            ("ErrorCode".to_string(), f.code.to_string()),
            ("LogLevel".to_string(), "ERROR".to_string()),
            ("url".to_string(), url.to_string()),
        ];
        if let Some(a) = &f.answer {
            text.push(("httpResponse".to_string(), a.status.to_string()));
        }
        let mut state = lock(&self.shared.state);
        let sid = state.sids.random("NO");
        let Some(acct) = state.account_mut(self.account_sid) else {
            return sid;
        };
        acct.alerts.push(Alert {
            sid: sid.clone(),
            account_sid: self.account_sid.to_string(),
            error_code: f.code.to_string(),
            log_level: "error".into(),
            alert_text: serde_urlencoded::to_string(&text).unwrap_or_default(),
            request_url: url.to_string(),
            request_method: method.to_string(),
            request_variables: serde_urlencoded::to_string(params).unwrap_or_default(),
            resource_sid: Some(self.message_sid.to_string()),
            service_sid: Some(self.service_sid.to_string()).filter(|s| s.len() == 34),
            response_body: f.answer.as_ref().map(|a| a.body.clone()),
            response_headers: f.answer.as_ref().map(|a| a.headers.clone()),
            request_headers: Some("X-Twilio-Signature: [REDACTED]".into()),
            date_generated: now,
            date_created: now,
        });
        sid
    }
}

fn err(status: u16, message: impl std::fmt::Display) -> SimResponse {
    SimResponse::json(status, &json!({"error": message.to_string()}))
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// The control routes that do I/O: `POST /_sim/accounts/{key}/inbound/{number}` (answers the
/// [`Delivery`] once every request is done) and `GET|POST /_sim/webhook-settings`.
pub(crate) async fn control(shared: &Arc<Shared>, req: &SimRequest) -> Option<SimResponse> {
    let segs: Vec<String> =
        req.path.trim_start_matches("/_sim").split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let raw: &[u8] = if req.body.is_empty() { b"{}" } else { &req.body };
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["accounts", key, "inbound", number]) => {
            let msg: InboundMessage = match serde_json::from_slice(raw) {
                Ok(m) => m,
                Err(e) => return Some(err(400, format!("invalid JSON body: {e}"))),
            };
            Some(match inject(shared, key, number, &msg).await {
                Ok(d) => SimResponse::json(200, &serde_json::to_value(&d).unwrap_or_default()),
                Err(e @ SimError::NotFound(_)) => err(404, e),
                Err(e) => err(400, e),
            })
        }
        ("GET", ["webhook-settings"]) => {
            Some(SimResponse::json(200, &serde_json::to_value(&*lock(&shared.webhook)).unwrap_or_default()))
        }
        ("POST" | "PUT", ["webhook-settings"]) => {
            let s: WebhookSettings = match serde_json::from_slice(raw) {
                Ok(s) => s,
                Err(e) => return Some(err(400, format!("invalid JSON body: {e}"))),
            };
            *lock(&shared.webhook) = s.clone();
            Some(SimResponse::json(200, &serde_json::to_value(&s).unwrap_or_default()))
        }
        _ => None,
    }
}
