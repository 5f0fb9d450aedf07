//! WhatsApp senders (Messaging v2 Channels Senders, Public Beta): find the sender of a number
//! and set its webhook. JSON request bodies, unlike the rest of Twilio.
//!
//! The client never creates or deletes a sender.

use std::ops::ControlFlow;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::address::{E164, WHATSAPP_PREFIX};
use super::client::{Api, Body, Paged, Request, TwilioClient};
use super::error::TwilioError;
use super::secret::{check_sid, Credentials};
use super::wire::{self, string_enum};

/// Page size for sender listing: the largest Twilio allows. `ListChannelsSender` in
/// `twilio_messaging_v2.json` declares `PageSize` with `minimum: 1, maximum: 1000` ("The default
/// is 50, and the maximum is 1000"), so an account with N senders is listed in ⌈N / 1000⌉
/// requests.
pub const SENDERS_PAGE_SIZE: u32 = 1000;

string_enum! {
    /// A sender's status (`channels_sender_enum_status`).
    pub enum SenderStatus {
        /// Being registered.
        Creating => "CREATING",
        /// Can send and receive.
        Online => "ONLINE",
        /// Online while a change (e.g. a profile update) is applied.
        OnlineUpdating => "ONLINE:UPDATING",
        /// Cannot send; see `offline_reasons`.
        Offline => "OFFLINE",
        /// Waiting for the OTP verification code.
        PendingVerification => "PENDING_VERIFICATION",
        /// Checking the verification code.
        Verifying => "VERIFYING",
        /// Under review by Twilio.
        TwilioReview => "TWILIO_REVIEW",
        /// Draft.
        Draft => "DRAFT",
        /// A placeholder sender.
        Stubbed => "STUBBED",
    }
}

impl SenderStatus {
    /// Whether the sender can exchange messages (`ONLINE` or `ONLINE:UPDATING`).
    pub fn is_online(&self) -> bool {
        matches!(self, Self::Online | Self::OnlineUpdating)
    }

    /// Whether the sender is on its way to `ONLINE` (registration or verification ongoing):
    /// a condition to wait on, not a failure.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Creating | Self::PendingVerification | Self::Verifying | Self::TwilioReview | Self::Draft)
    }
}

wire::method_enum! {
    /// The method of a sender webhook: Twilio accepts only `POST` or `PUT` here (no `GET`,
    /// unlike a phone number's `SmsMethod`).
    pub enum SenderWebhookMethod ("a WhatsApp sender webhook method must be POST or PUT") {
        /// POST.
        #[default]
        Post => "POST",
        /// PUT.
        Put => "PUT",
    }
}

/// A sender's webhook (`messaging.v2.channels_sender.webhook`). Unset fields are `None`
/// and are left out of update requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SenderWebhook {
    /// Where inbound messages go.
    #[serde(default, deserialize_with = "wire::opt_string", skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The method for `callback_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed", skip_serializing_if = "Option::is_none")]
    pub callback_method: Option<SenderWebhookMethod>,
    /// Called when `callback_url` fails.
    #[serde(default, deserialize_with = "wire::opt_string", skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<String>,
    /// The method for `fallback_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed", skip_serializing_if = "Option::is_none")]
    pub fallback_method: Option<SenderWebhookMethod>,
    /// Where message status callbacks go.
    #[serde(default, deserialize_with = "wire::opt_string", skip_serializing_if = "Option::is_none")]
    pub status_callback_url: Option<String>,
    /// The method for `status_callback_url` (free text in the spec; kept verbatim).
    #[serde(default, deserialize_with = "wire::opt_string", skip_serializing_if = "Option::is_none")]
    pub status_callback_method: Option<String>,
}

impl SenderWebhook {
    /// This webhook with the inbound callback replaced, every other field preserved: the
    /// body to send so that fields we do not manage are not lost.
    pub fn with_callback(&self, url: impl Into<String>, method: SenderWebhookMethod) -> Self {
        Self { callback_url: Some(url.into()), callback_method: Some(method), ..self.clone() }
    }

    /// Whether the inbound callback is `url` with `method` (unset method counts as POST).
    pub fn callback_matches(&self, url: &str, method: SenderWebhookMethod) -> bool {
        self.callback_url.as_deref() == Some(url) && self.callback_method.unwrap_or_default() == method
    }
}

/// Why a sender is offline (`code` is a string here, e.g. `"30008"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct OfflineReason {
    /// The error code.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub code: Option<String>,
    /// The message.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub message: Option<String>,
    /// A documentation link.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub more_info: Option<String>,
}

/// Quality and limits Meta assigned to the sender.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SenderProperties {
    /// E.g. `HIGH`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub quality_rating: Option<String>,
    /// E.g. `10K Customers/24hr`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub messaging_limit: Option<String>,
}

/// A channel sender (`messaging.v2.channels_sender`), the fields we use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Sender {
    /// `XE…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// E.g. `whatsapp:+15017122661`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sender_id: String,
    /// The status.
    #[serde(default)]
    pub status: SenderStatus,
    /// The webhook (all `None` when Twilio sends `null`).
    #[serde(default, deserialize_with = "webhook_or_null")]
    pub webhook: SenderWebhook,
    /// Why the sender is offline, if it is.
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    pub offline_reasons: Vec<OfflineReason>,
    /// Quality rating and messaging limit.
    #[serde(default)]
    pub properties: Option<SenderProperties>,
    /// The resource URL.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub url: Option<String>,
}

fn webhook_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SenderWebhook, D::Error> {
    Ok(Option::<SenderWebhook>::deserialize(d)?.unwrap_or_default())
}

impl Sender {
    /// Whether the sender can exchange messages.
    pub fn is_online(&self) -> bool {
        self.status.is_online()
    }

    /// The sender's number, when `sender_id` is a WhatsApp address.
    pub fn e164(&self) -> Option<E164> {
        let rest = self.sender_id.get(..WHATSAPP_PREFIX.len())?;
        if !rest.eq_ignore_ascii_case(WHATSAPP_PREFIX) {
            return None;
        }
        E164::parse(&self.sender_id).ok()
    }
}

/// `ListChannelsSenderResponse` (v2 paging: absolute `meta.next_page_url`).
#[derive(Deserialize)]
pub(crate) struct SenderPage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    senders: Vec<Sender>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

#[derive(Deserialize)]
struct PageMeta {
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_url: Option<String>,
}

impl Paged for SenderPage {
    type Item = Sender;
    fn next_link(&self) -> Option<&str> {
        self.meta.as_ref()?.next_page_url.as_deref()
    }
    fn into_items(self) -> Vec<Sender> {
        self.senders
    }
}

/// The update request (`messaging.v2.channels_sender.requests.update`), webhook only.
#[derive(Serialize)]
struct UpdateSender<'a> {
    webhook: &'a SenderWebhook,
}

const SENDERS_TEMPLATE: &str = "/v2/Channels/Senders";
const SENDER_TEMPLATE: &str = "/v2/Channels/Senders/{Sid}";

impl TwilioClient {
    fn senders_first_page(&self) -> Result<reqwest::Url, TwilioError> {
        self.url(
            Api::Messaging,
            SENDERS_TEMPLATE,
            &[("Channel", "whatsapp".to_owned()), ("PageSize", SENDERS_PAGE_SIZE.to_string())],
        )
    }

    /// Every WhatsApp sender of the account, complete or not at all:
    /// `GET /v2/Channels/Senders?Channel=whatsapp&PageSize=1000`, following
    /// `meta.next_page_url` (rebased onto the configured messaging base URL) to the last page.
    /// ⌈senders / 1000⌉ requests. A listing that does not end fails with
    /// [`TwilioError::PageLimit`]; no partial list is ever returned.
    pub async fn list_whatsapp_senders(&self, creds: &Credentials) -> Result<Vec<Sender>, TwilioError> {
        let mut all = Vec::new();
        self.visit_whatsapp_senders(creds, "list_whatsapp_senders", |page| all.extend(page)).await?;
        Ok(all)
    }

    /// Like [`TwilioClient::list_whatsapp_senders`], handing each page to `visit` as it
    /// arrives (so a caller that keeps less than a whole [`Sender`] never holds the full list).
    /// On error, whatever `visit` collected is incomplete and must be discarded.
    pub(crate) async fn visit_whatsapp_senders(
        &self,
        creds: &Credentials,
        op: &'static str,
        mut visit: impl FnMut(Vec<Sender>),
    ) -> Result<(), TwilioError> {
        let first = self.senders_first_page()?;
        self.paginate::<SenderPage, _>(Api::Messaging, op, SENDERS_TEMPLATE, creds, first, |page| {
            visit(page);
            ControlFlow::Continue(())
        })
        .await
    }

    /// One sender by SID: `GET /v2/Channels/Senders/{Sid}` (one request, whatever the size of
    /// the account). `Ok(None)`: Twilio answered 404, the sender does not exist (any more) or
    /// is not visible to these credentials. Check [`Sender::e164`] against the number you
    /// expect: a SID remembered in a status may since belong to a re-registered number.
    pub async fn fetch_sender(&self, creds: &Credentials, xe_sid: &str) -> Result<Option<Sender>, TwilioError> {
        check_sid("sender SID", "XE", xe_sid)?;
        let url = self.url(Api::Messaging, &format!("/v2/Channels/Senders/{xe_sid}"), &[])?;
        let fetched = self
            .execute(Request {
                op: "fetch_sender",
                method: Method::GET,
                template: SENDER_TEMPLATE,
                url,
                creds,
                body: Body::None,
            })
            .await;
        match fetched {
            Ok(sender) => Ok(Some(sender)),
            Err(TwilioError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the sender's webhook: `POST /v2/Channels/Senders/{Sid}` with JSON
    /// `{"webhook": {…}}` (202 Accepted; the change may still be applying, status
    /// `ONLINE:UPDATING`). Send the whole object, built with [`SenderWebhook::with_callback`]
    /// from the current sender, so fields we do not manage are preserved (whether Twilio
    /// keeps omitted fields is undocumented). `None` fields are omitted, never sent as
    /// `null`.
    pub async fn update_sender_webhook(
        &self,
        creds: &Credentials,
        xe_sid: &str,
        webhook: &SenderWebhook,
    ) -> Result<Sender, TwilioError> {
        check_sid("sender SID", "XE", xe_sid)?;
        let url = self.url(Api::Messaging, &format!("/v2/Channels/Senders/{xe_sid}"), &[])?;
        let body = serde_json::to_value(UpdateSender { webhook })
            .map_err(|e| TwilioError::InvalidInput(format!("cannot encode the webhook: {e}")))?;
        self.execute(Request {
            op: "update_sender_webhook",
            method: Method::POST,
            template: SENDER_TEMPLATE,
            url,
            creds,
            body: Body::Json(body),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{MockServer, Reply, AC};

    const XE: &str = "XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// The spec's `UpdateChannelsSender` 202 example.
    const SENDER_EXAMPLE: &str = r#"{"sid": "XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "VERIFYING", "sender_id": "whatsapp:+999999999XX", "configuration": {"waba_id": "1234567XXX", "verification_method": "sms", "verification_code": null, "voice_application_sid": "APaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, "webhook": {"callback_url": "https://callback.com", "callback_method": "POST", "fallback_url": "https://fallback.com", "fallback_method": "POST", "status_callback_url": "https://statuscallback.com", "status_callback_method": "POST"}, "profile": {"about": "Example about text", "address": "123 Example St, Example City, EX 12345", "description": "Example description", "emails": [{"email": "email@email.com", "label": "Email"}], "name": "Example Business", "logo_url": "https://logo_url.com", "vertical": "Automotive", "websites": [{"website": "https://example.com", "label": "Website"}, {"website": "http://example.org", "label": "Website"}]}}"#;

    fn sender(sid: &str, number: &str, status: &str, callback: &str) -> String {
        format!(
            r#"{{"sid": "{sid}", "status": "{status}", "sender_id": "whatsapp:{number}", "configuration": null, "webhook": {{"callback_url": "{callback}", "callback_method": "POST", "fallback_url": "https://fallback.example", "fallback_method": "PUT", "status_callback_url": "https://status.example", "status_callback_method": "POST"}}, "profile": null, "properties": {{"quality_rating": "HIGH", "messaging_limit": "10K Customers/24hr"}}, "offline_reasons": null, "url": "https://messaging.twilio.com/v2/Channels/Senders/{sid}"}}"#
        )
    }

    #[test]
    fn parses_spec_example() {
        let s: Sender = serde_json::from_str(SENDER_EXAMPLE).unwrap();
        assert_eq!(s.sid, XE);
        assert_eq!(s.status, SenderStatus::Verifying);
        assert!(!s.is_online());
        assert!(s.status.is_pending());
        assert_eq!(s.sender_id, "whatsapp:+999999999XX");
        assert_eq!(s.e164(), None);
        assert_eq!(s.webhook.callback_url.as_deref(), Some("https://callback.com"));
        assert_eq!(s.webhook.fallback_method, Some(SenderWebhookMethod::Post));
        assert_eq!(s.webhook.status_callback_method.as_deref(), Some("POST"));
    }

    #[test]
    fn statuses_and_nulls() {
        assert!(SenderStatus::from("ONLINE:UPDATING").is_online());
        assert!(SenderStatus::from("online").is_online());
        assert!(!SenderStatus::from("OFFLINE").is_online());
        assert_eq!(SenderStatus::from("NEW_THING"), SenderStatus::Unknown("NEW_THING".into()));
        let s: Sender = serde_json::from_str(
            r#"{"sid":"XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"OFFLINE","sender_id":"whatsapp:+15017122661","webhook":null,"offline_reasons":[{"code":"30008","message":"No delivery","more_info":"https://www.twilio.com/docs/errors/30008"}]}"#,
        )
        .unwrap();
        assert_eq!(s.webhook, SenderWebhook::default());
        assert_eq!(s.offline_reasons[0].code.as_deref(), Some("30008"));
        assert_eq!(s.e164().map(|n| n.to_string()).as_deref(), Some("+15017122661"));
        assert!("GET".parse::<SenderWebhookMethod>().is_err());
        assert_eq!("put".parse::<SenderWebhookMethod>().unwrap(), SenderWebhookMethod::Put);
    }

    #[test]
    fn with_callback_preserves_other_fields() {
        let current: Sender =
            serde_json::from_str(&sender(XE, "+15017122661", "ONLINE", "https://old.example")).unwrap();
        let next = current.webhook.with_callback("https://new.example/hook", SenderWebhookMethod::Post);
        assert!(next.callback_matches("https://new.example/hook", SenderWebhookMethod::Post));
        assert_eq!(next.fallback_url.as_deref(), Some("https://fallback.example"));
        assert_eq!(next.fallback_method, Some(SenderWebhookMethod::Put));
        assert_eq!(next.status_callback_url.as_deref(), Some("https://status.example"));
        let only: serde_json::Value =
            serde_json::to_value(SenderWebhook::default().with_callback("https://a", SenderWebhookMethod::Post))
                .unwrap();
        assert_eq!(only, serde_json::json!({"callback_url": "https://a", "callback_method": "POST"}));
    }

    #[tokio::test]
    async fn find_pages_by_next_page_url() {
        let other = "XEbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let page1 = format!(
            r#"{{"senders": [{}], "meta": {{"page": 0, "page_size": 50, "first_page_url": "https://messaging.twilio.com/v2/Channels/Senders?PageSize=50&Page=0&Channel=whatsapp", "previous_page_url": null, "url": "https://messaging.twilio.com/v2/Channels/Senders?PageSize=50&Page=0&Channel=whatsapp", "next_page_url": "https://messaging.twilio.com/v2/Channels/Senders?PageSize=50&Page=1&Channel=whatsapp&PageToken=PT123", "key": "senders"}}}}"#,
            sender(other, "+15550000001", "ONLINE", "https://elsewhere.example")
        );
        let page2 = format!(
            r#"{{"senders": [{}], "meta": {{"page": 1, "page_size": 50, "next_page_url": null, "key": "senders"}}}}"#,
            sender(XE, "+15017122661", "ONLINE", "https://old.example")
        );
        let server = MockServer::start(vec![Reply::json(200, page1), Reply::json(200, page2)]).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let wanted = E164::parse("whatsapp:+1 501 712 2661").unwrap();
        let all = server.client().list_whatsapp_senders(&creds).await.unwrap();
        let found = all.into_iter().find(|s| s.e164().as_ref() == Some(&wanted)).unwrap();
        assert_eq!(found.sid, XE);
        assert!(found.is_online());
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].path, "/v2/Channels/Senders");
        assert_eq!(reqs[0].query.as_deref(), Some("Channel=whatsapp&PageSize=1000"));
        assert_eq!(reqs[1].path, "/v2/Channels/Senders");
        assert_eq!(reqs[1].query.as_deref(), Some("PageSize=50&Page=1&Channel=whatsapp&PageToken=PT123"));
    }

    #[tokio::test]
    async fn list_collects_all_pages_and_none_when_absent() {
        let page = format!(
            r#"{{"senders": [{}], "meta": {{"page": 0, "page_size": 50, "next_page_url": null, "key": "senders"}}}}"#,
            sender(XE, "+15017122661", "CREATING", "")
        );
        let server = MockServer::start(vec![Reply::json(200, page.clone()), Reply::json(200, page)]).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let client = server.client();
        let all = client.list_whatsapp_senders(&creds).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].webhook.callback_url, None);
        let wanted = E164::parse("+15550000009").unwrap();
        assert!(!all.iter().any(|s| s.e164().as_ref() == Some(&wanted)), "not a sender of the account");
    }

    #[tokio::test]
    async fn update_sends_json_webhook() {
        let server = MockServer::start(vec![Reply::json(
            202,
            sender(XE, "+15017122661", "ONLINE:UPDATING", "https://new.example/hook"),
        )])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let current: Sender =
            serde_json::from_str(&sender(XE, "+15017122661", "ONLINE", "https://old.example")).unwrap();
        let webhook = current.webhook.with_callback("https://new.example/hook", SenderWebhookMethod::Post);
        let updated = server.client().update_sender_webhook(&creds, XE, &webhook).await.unwrap();
        assert!(updated.webhook.callback_matches("https://new.example/hook", SenderWebhookMethod::Post));
        let r = &server.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/v2/Channels/Senders/{XE}"));
        assert_eq!(r.query, None);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            r.json(),
            serde_json::json!({"webhook": {
                "callback_url": "https://new.example/hook", "callback_method": "POST",
                "fallback_url": "https://fallback.example", "fallback_method": "PUT",
                "status_callback_url": "https://status.example", "status_callback_method": "POST"
            }})
        );
    }

    #[tokio::test]
    async fn fetch_sender_request() {
        let server = MockServer::start(vec![Reply::json(200, sender(XE, "+15017122661", "ONLINE", "https://x"))]).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let s = server.client().fetch_sender(&creds, XE).await.unwrap().unwrap();
        assert_eq!(s.sid, XE);
        let r = &server.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/v2/Channels/Senders/XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        );
    }

    #[tokio::test]
    async fn fetch_sender_404_is_none_other_errors_are_errors() {
        let not_found = r#"{"code": 20404, "message": "The requested resource /v2/Channels/Senders/XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#;
        let server = MockServer::start(vec![
            Reply::json(404, not_found),
            Reply::json(401, r#"{"code": 20003, "message": "Authenticate", "status": 401}"#),
        ])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let client = server.client();
        assert_eq!(client.fetch_sender(&creds, XE).await.unwrap(), None);
        assert!(matches!(client.fetch_sender(&creds, XE).await, Err(TwilioError::Unauthorized { .. })));
        assert!(matches!(client.fetch_sender(&creds, "PN123").await, Err(TwilioError::InvalidInput(_))));
        assert_eq!(server.requests().len(), 2);
    }

    /// A page of one sender whose next link is `next` (absolute, as Twilio sends it).
    fn page_with_next(number: &str, next: Option<&str>) -> String {
        let next =
            next.map_or("null".to_owned(), |n| format!("\"https://messaging.twilio.com/v2/Channels/Senders?{n}\""));
        format!(
            r#"{{"senders": [{}], "meta": {{"page_size": 1000, "next_page_url": {next}, "key": "senders"}}}}"#,
            sender(XE, number, "ONLINE", "https://x.example")
        )
    }

    #[tokio::test]
    async fn a_listing_that_loops_is_an_error_not_a_short_list() {
        // Page 2 links back to page 1: before, paging stopped there and the two senders read
        // were returned as the whole account.
        let first = "Channel=whatsapp&PageSize=1000";
        let server = MockServer::start(vec![
            Reply::json(
                200,
                page_with_next("+15550000001", Some("PageSize=1000&Page=1&Channel=whatsapp&PageToken=PA1")),
            ),
            Reply::json(200, page_with_next("+15550000002", Some(first))),
        ])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let err = server.client().list_whatsapp_senders(&creds).await.unwrap_err();
        assert_eq!(err, TwilioError::PageLimit { op: "list_whatsapp_senders", pages: 2, looped: true });
        assert!(!err.is_transient());
        assert_eq!(err.reason(), "TwilioPageLimit");
        assert!(err.to_string().contains("discarded"), "{err}");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_listing_past_the_page_bound_is_an_error_not_a_short_list() {
        let replies = (1..=3)
            .map(|i| {
                Reply::json(
                    200,
                    page_with_next(
                        &format!("+1555000000{i}"),
                        Some(&format!("PageSize=1000&Page={i}&Channel=whatsapp&PageToken=PA{i}")),
                    ),
                )
            })
            .collect();
        let server = MockServer::start(replies).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let client = server.client();
        let first = client.senders_first_page().unwrap();
        let mut seen = 0;
        let err = client
            .paginate_bounded::<SenderPage, _>(
                Api::Messaging,
                "list_whatsapp_senders",
                SENDERS_TEMPLATE,
                &creds,
                first,
                2,
                |p| {
                    seen += p.len();
                    ControlFlow::Continue(())
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err, TwilioError::PageLimit { op: "list_whatsapp_senders", pages: 2, looped: false });
        assert_eq!((seen, server.requests().len()), (2, 2));
        assert!(crate::twilio::client::MAX_PAGES * SENDERS_PAGE_SIZE as usize >= 1_000_000);
    }
}
