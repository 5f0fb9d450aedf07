//! Messages: send the confirmation message, read it back, and look it up after an
//! ambiguous failure.
//!
//! Twilio has no idempotency key for `CreateMessage`. If [`TwilioClient::create_message`]
//! fails with [`TwilioError::may_have_been_applied`], do not resend blindly: list recent
//! messages with the same `To`/`From` ([`TwilioClient::list_messages`]) and adopt a match.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::client::{stop_when, Api, Body, Paged, Request, TwilioClient};
use super::error::TwilioError;
use super::secret::{check_sid, Credentials};
use super::wire::{self, string_enum};

string_enum! {
    /// A message's status (`message_enum_status`).
    pub enum MessageStatus {
        /// Accepted, waiting to be sent.
        Queued => "queued",
        /// Being sent.
        Sending => "sending",
        /// Handed to the channel.
        Sent => "sent",
        /// Could not be sent (see `error_code`).
        Failed => "failed",
        /// Delivered to the handset.
        Delivered => "delivered",
        /// Not delivered (see `error_code`).
        Undelivered => "undelivered",
        /// Inbound, being received.
        Receiving => "receiving",
        /// Inbound, received.
        Received => "received",
        /// Accepted by a Messaging Service (no `From` yet).
        Accepted => "accepted",
        /// Scheduled for later.
        Scheduled => "scheduled",
        /// Read by the recipient (WhatsApp).
        Read => "read",
        /// Partially delivered.
        PartiallyDelivered => "partially_delivered",
        /// Canceled before sending.
        Canceled => "canceled",
    }
}

impl MessageStatus {
    /// Whether the message definitely did not reach the recipient (`failed`, `undelivered`,
    /// `canceled`).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered | Self::Canceled)
    }

    /// Whether the message reached the recipient (`delivered`, `read`).
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered | Self::Read)
    }

    /// Whether the status will not change any more for an outbound message
    /// (a failure, `delivered`/`read`, or `received` for an inbound one).
    pub fn is_final(&self) -> bool {
        self.is_failure() || self.is_delivered() || matches!(self, Self::Received)
    }
}

/// A message (`api.v2010.account.message`), the fields we use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// `SM…` or `MM…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// The status.
    #[serde(default)]
    pub status: MessageStatus,
    /// Twilio's error code for a failed/undelivered message (e.g. 63016, 63015).
    #[serde(default, deserialize_with = "wire::opt_u32")]
    pub error_code: Option<u32>,
    /// The error text, when set.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub error_message: Option<String>,
    /// Recipient, e.g. `whatsapp:+15552229999`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub to: String,
    /// Sender, e.g. `whatsapp:+14155238886`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub from: String,
    /// The text (rendered template text for `ContentSid` messages).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub body: Option<String>,
    /// `outbound-api`, `inbound`, …
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub direction: Option<String>,
    /// When Twilio accepted the message.
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_created: Option<DateTime<Utc>>,
    /// When it was sent (`None` while queued).
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_sent: Option<DateTime<Utc>>,
}

/// What a Twilio error code of a failed WhatsApp message means, for the codes the operator
/// can explain (Twilio's error dictionary, `https://www.twilio.com/docs/api/errors/<code>`).
pub fn explain_error(code: u32) -> Option<&'static str> {
    Some(match code {
        63016 => "free-form message outside WhatsApp's 24-hour customer-service window: a business-initiated message needs an approved template",
        63015 => "the sandbox recipient has not joined the sandbox, or the membership expired",
        63003 => "the recipient's address is not a WhatsApp user, or is invalid",
        63024 => "invalid message recipient",
        63013 => "the message breaks a WhatsApp policy",
        63018 => "the WhatsApp sender's rate limit was exceeded",
        63021 => "the message's content is invalid for WhatsApp",
        63027 => "the template does not exist for that language and locale",
        63032 => "WhatsApp did not deliver it: the user is part of an experiment",
        63049 => "Meta chose not to deliver this marketing message",
        63112 => "Meta disabled the WhatsApp Business Account",
        30008 => "unknown delivery error",
        30007 => "the message was filtered by the carrier",
        21656 => "the template variables are invalid",
        21655 => "the template (ContentSid) is invalid",
        _ => return None,
    })
}

/// What a new message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageContent {
    /// Free-form text (`Body`, at most 1,600 characters). Outside WhatsApp's 24-hour
    /// customer-service window this fails asynchronously with 63016: use a template.
    Body(String),
    /// An approved content template (`ContentSid=HX…`), with `ContentVariables` such as
    /// `{"1": "Acme"}` (omitted when empty).
    Template {
        /// `HX…`.
        content_sid: String,
        /// Placeholder values.
        variables: BTreeMap<String, String>,
    },
}

/// A message to create. `from`/`to` are channel addresses (`whatsapp:+E164`, see
/// [`crate::twilio::address::E164::whatsapp`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The sender address.
    pub from: String,
    /// The recipient address.
    pub to: String,
    /// Text or template.
    pub content: MessageContent,
    /// Where Twilio posts status changes.
    pub status_callback: Option<String>,
}

/// Filters for [`TwilioClient::list_messages`]. Results come newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageQuery {
    /// `To` filter (a channel address).
    pub to: Option<String>,
    /// `From` filter (a channel address).
    pub from: Option<String>,
    /// `DateSent>` filter, sent as RFC 3339 UTC. Twilio documents day granularity, and a
    /// message still queued has no `date_sent`: for the dedupe lookup prefer leaving this
    /// unset and comparing `date_created` yourself.
    pub date_sent_after: Option<DateTime<Utc>>,
    /// Stop after this many messages (also the page size, up to 1000). Default 50.
    pub limit: usize,
}

impl Default for MessageQuery {
    fn default() -> Self {
        Self { to: None, from: None, date_sent_after: None, limit: 50 }
    }
}

/// `ListMessageResponse` (2010 paging).
#[derive(Deserialize)]
pub(crate) struct MessagePage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    messages: Vec<Message>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_uri: Option<String>,
}

impl Paged for MessagePage {
    type Item = Message;
    fn next_link(&self) -> Option<&str> {
        self.next_page_uri.as_deref()
    }
    fn into_items(self) -> Vec<Message> {
        self.messages
    }
}

const MESSAGES_TEMPLATE: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";

impl TwilioClient {
    /// Sends a message: `POST …/Messages.json`, form `To`, `From`, `Body` or
    /// `ContentSid`(+`ContentVariables`), `StatusCallback` (201). Never retried here; see
    /// the module docs for what to do after an ambiguous failure.
    pub async fn create_message(&self, creds: &Credentials, message: &NewMessage) -> Result<Message, TwilioError> {
        let mut form = vec![("To", message.to.clone()), ("From", message.from.clone())];
        match &message.content {
            MessageContent::Body(body) => form.push(("Body", body.clone())),
            MessageContent::Template { content_sid, variables } => {
                check_sid("content SID", "HX", content_sid)?;
                form.push(("ContentSid", content_sid.clone()));
                if !variables.is_empty() {
                    let json = serde_json::to_string(variables)
                        .map_err(|e| TwilioError::InvalidInput(format!("cannot encode ContentVariables: {e}")))?;
                    form.push(("ContentVariables", json));
                }
            }
        }
        if let Some(callback) = &message.status_callback {
            form.push(("StatusCallback", callback.clone()));
        }
        let url = self.url(Api::Core, &format!("/2010-04-01/Accounts/{}/Messages.json", creds.account_sid()), &[])?;
        self.execute(Request {
            op: "create_message",
            method: Method::POST,
            template: MESSAGES_TEMPLATE,
            url,
            creds,
            body: Body::Form(form),
        })
        .await
    }

    /// `GET …/Messages/{Sid}.json`.
    pub async fn fetch_message(&self, creds: &Credentials, sm_sid: &str) -> Result<Message, TwilioError> {
        if check_sid("message SID", "SM", sm_sid).is_err() {
            check_sid("message SID", "MM", sm_sid)?;
        }
        let url =
            self.url(Api::Core, &format!("/2010-04-01/Accounts/{}/Messages/{sm_sid}.json", creds.account_sid()), &[])?;
        self.execute(Request {
            op: "fetch_message",
            method: Method::GET,
            template: "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
            url,
            creds,
            body: Body::None,
        })
        .await
    }

    /// `GET …/Messages.json?To=…&From=…&DateSent>=…&PageSize=…`, newest first, following
    /// `next_page_uri` until `limit` messages.
    pub async fn list_messages(&self, creds: &Credentials, query: &MessageQuery) -> Result<Vec<Message>, TwilioError> {
        let limit = query.limit.max(1);
        let mut params = Vec::new();
        if let Some(to) = &query.to {
            params.push(("To", to.clone()));
        }
        if let Some(from) = &query.from {
            params.push(("From", from.clone()));
        }
        if let Some(after) = query.date_sent_after {
            params.push(("DateSent>", after.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
        params.push(("PageSize", limit.min(1000).to_string()));
        let url =
            self.url(Api::Core, &format!("/2010-04-01/Accounts/{}/Messages.json", creds.account_sid()), &params)?;
        let mut out = Vec::new();
        let visit = stop_when(|page| {
            out.extend(page);
            out.truncate(limit);
            out.len() >= limit
        });
        self.paginate::<MessagePage, _>(Api::Core, "list_messages", MESSAGES_TEMPLATE, creds, url, visit).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{closed_port, hang_up_server, silent_server, MockServer, Reply, AC};
    use crate::twilio::{TwilioConfig, TwilioError};
    use chrono::TimeZone;
    use std::time::Duration;

    /// The spec's `createScheduledMessageWhatsapp`-like shape: the `create` example.
    const CREATE_EXAMPLE: &str = r#"{"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "api_version": "2010-04-01", "body": "Hello! \ud83d\udc4d", "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "date_sent": "Thu, 24 Aug 2023 05:01:45 +0000", "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+14155552345", "num_media": "0", "num_segments": "1", "price": null, "price_unit": null, "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued", "subresource_uris": {"media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"}, "tags": {"campaign_name": "Spring Sale 2022", "message_type": "cart_abandoned"}, "to": "+14155552345", "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"}"#;

    /// The spec's `readFullPage1` example, page 1 of 2 (second message abridged).
    const LIST_EXAMPLE: &str = r#"{"end": 1, "first_page_uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json?To=%2B123456789&From=%2B987654321&DateSent%3E=2008-01-02&PageSize=2&Page=0", "next_page_uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json?To=%2B123456789&From=%2B987654321&DateSent%3E=2008-01-02&PageSize=2&Page=1&PageToken=PAMMc26223853f8c46b4ab7dfaa6abba0a26", "page": 0, "page_size": 2, "previous_page_uri": null, "messages": [{"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "api_version": "2010-04-01", "body": "testing", "date_created": "Fri, 24 May 2019 17:44:46 +0000", "date_sent": "Fri, 24 May 2019 17:44:50 +0000", "date_updated": "Fri, 24 May 2019 17:44:50 +0000", "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+12019235161", "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "num_media": "0", "num_segments": "1", "price": "-0.00750", "price_unit": "USD", "sid": "SMded05904ccb347238880ca9264e8fe1c", "status": "sent", "to": "+18182008801", "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMded05904ccb347238880ca9264e8fe1c.json"}, {"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "body": "look mom I have media!", "date_created": "Fri, 24 May 2019 17:44:46 +0000", "direction": "inbound", "error_code": 30004, "error_message": "Message blocked", "from": "+12019235161", "sid": "MMc26223853f8c46b4ab7dfaa6abba0a26", "status": "received", "to": "+18182008801"}], "start": 0, "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json?To=%2B123456789&From=%2B987654321&DateSent%3E=2008-01-02&PageSize=2&Page=0"}"#;

    fn creds() -> Credentials {
        Credentials::auth_token(AC, Secret::new("t"))
    }

    fn confirmation() -> NewMessage {
        NewMessage {
            from: "whatsapp:+14155238886".into(),
            to: "whatsapp:+15552229999".into(),
            content: MessageContent::Body("Your channel is connected.".into()),
            status_callback: Some("https://op.example/status".into()),
        }
    }

    #[test]
    fn parses_spec_examples() {
        let m: Message = serde_json::from_str(CREATE_EXAMPLE).unwrap();
        assert_eq!(m.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(m.status, MessageStatus::Queued);
        assert_eq!(m.error_code, None);
        assert_eq!(m.body.as_deref(), Some("Hello! 👍"));
        assert_eq!(m.date_created, Some(Utc.with_ymd_and_hms(2023, 8, 24, 5, 1, 45).unwrap()));
        let failed: Message = serde_json::from_str(
            r#"{"sid":"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"undelivered","error_code":63016,"error_message":null,"to":"whatsapp:+1","from":"whatsapp:+2","date_sent":null}"#,
        )
        .unwrap();
        assert!(failed.status.is_failure() && failed.status.is_final());
        assert_eq!(failed.error_code, Some(63016));
        assert!(MessageStatus::from("read").is_delivered());
        assert!(!MessageStatus::from("sent").is_final());
        assert_eq!(MessageStatus::from("later"), MessageStatus::Unknown("later".into()));
    }

    #[tokio::test]
    async fn create_sends_body_form() {
        let server = MockServer::start(vec![Reply::json(201, CREATE_EXAMPLE)]).await;
        let m = server.client().create_message(&creds(), &confirmation()).await.unwrap();
        assert_eq!(m.status, MessageStatus::Queued);
        let r = &server.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{AC}/Messages.json"));
        assert_eq!(r.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            r.body,
            "To=whatsapp%3A%2B15552229999&From=whatsapp%3A%2B14155238886&Body=Your+channel+is+connected.&StatusCallback=https%3A%2F%2Fop.example%2Fstatus"
        );
    }

    #[tokio::test]
    async fn create_sends_template_form() {
        let server = MockServer::start(vec![Reply::json(201, CREATE_EXAMPLE), Reply::json(201, CREATE_EXAMPLE)]).await;
        let client = server.client();
        let mut message = confirmation();
        message.status_callback = None;
        message.content = MessageContent::Template {
            content_sid: "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            variables: BTreeMap::from([("1".to_owned(), "Acme".to_owned()), ("2".to_owned(), "crm-prod".to_owned())]),
        };
        client.create_message(&creds(), &message).await.unwrap();
        let form = server.requests()[0].form();
        assert_eq!(
            form,
            vec![
                ("To".to_owned(), "whatsapp:+15552229999".to_owned()),
                ("From".to_owned(), "whatsapp:+14155238886".to_owned()),
                ("ContentSid".to_owned(), "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned()),
                ("ContentVariables".to_owned(), r#"{"1":"Acme","2":"crm-prod"}"#.to_owned()),
            ]
        );
        message.content = MessageContent::Template {
            content_sid: "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            variables: BTreeMap::new(),
        };
        client.create_message(&creds(), &message).await.unwrap();
        assert_eq!(
            server.requests()[1].body,
            "To=whatsapp%3A%2B15552229999&From=whatsapp%3A%2B14155238886&ContentSid=HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        );
        message.content = MessageContent::Template { content_sid: "HX1".into(), variables: BTreeMap::new() };
        assert!(matches!(client.create_message(&creds(), &message).await, Err(TwilioError::InvalidInput(_))));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn create_rejected_63007() {
        let server = MockServer::start(vec![Reply::json(
            400,
            r#"{"code":63007,"message":"Twilio could not find a Channel with the specified From address","more_info":"https://www.twilio.com/docs/errors/63007","status":400}"#,
        )])
        .await;
        let err = server.client().create_message(&creds(), &confirmation()).await.unwrap_err();
        assert_eq!(err.code(), Some(63007));
        assert!(!err.is_transient() && !err.may_have_been_applied());
    }

    #[tokio::test]
    async fn create_rate_limited_and_server_error() {
        let server = MockServer::start(vec![
            Reply::json(429, r#"{"code":20429,"message":"Too Many Requests","status":429}"#).header("retry-after", "3"),
            Reply::json(500, r#"{"code":20500,"message":"Internal Error","status":500}"#),
        ])
        .await;
        let client = server.client();
        let err = client.create_message(&creds(), &confirmation()).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(!err.may_have_been_applied());
        let err = client.create_message(&creds(), &confirmation()).await.unwrap_err();
        assert!(matches!(err, TwilioError::Server { status: 500, code: Some(20500), .. }));
        assert!(err.may_have_been_applied());
    }

    #[tokio::test]
    async fn dropped_connection_after_post_is_ambiguous() {
        let base = hang_up_server().await;
        let client = TwilioClient::new(TwilioConfig::with_single_base_url(base)).unwrap();
        let err = client.create_message(&creds(), &confirmation()).await.unwrap_err();
        assert!(matches!(err, TwilioError::Transport { ambiguous: true, .. }), "{err:?}");
        assert!(err.is_transient() && err.may_have_been_applied());
        // A GET is never ambiguous.
        let err = client.fetch_message(&creds(), "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap_err();
        assert!(matches!(err, TwilioError::Transport { ambiguous: false, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn refused_connection_is_not_ambiguous() {
        let base = closed_port().await;
        let client = TwilioClient::new(TwilioConfig::with_single_base_url(base)).unwrap();
        let err = client.create_message(&creds(), &confirmation()).await.unwrap_err();
        assert!(matches!(err, TwilioError::Transport { ambiguous: false, .. }), "{err:?}");
        assert_eq!(err.reason(), "TwilioUnreachable");
    }

    #[tokio::test]
    async fn timeout_after_post_is_ambiguous() {
        let base = silent_server().await;
        let client = TwilioClient::new(TwilioConfig {
            timeout: Duration::from_millis(300),
            ..TwilioConfig::with_single_base_url(base)
        })
        .unwrap();
        let err = client.create_message(&creds(), &confirmation()).await.unwrap_err();
        assert!(matches!(err, TwilioError::Transport { timeout: true, ambiguous: true, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn fetch_message_request() {
        let server = MockServer::start(vec![Reply::json(200, CREATE_EXAMPLE)]).await;
        let m = server.client().fetch_message(&creds(), "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();
        assert_eq!(m.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let r = &server.requests()[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{AC}/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"));
        assert!(server.client().fetch_message(&creds(), "XX1").await.is_err());
    }

    #[tokio::test]
    async fn list_messages_filters_and_pages() {
        let page2 = r#"{"messages": [{"sid":"SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","status":"delivered","to":"+18182008801","from":"+12019235161"}], "next_page_uri": null}"#;
        let server = MockServer::start(vec![Reply::json(200, LIST_EXAMPLE), Reply::json(200, page2)]).await;
        let query = MessageQuery {
            to: Some("whatsapp:+15552229999".into()),
            from: Some("whatsapp:+14155238886".into()),
            date_sent_after: Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 0).unwrap()),
            limit: 3,
        };
        let messages = server.client().list_messages(&creds(), &query).await.unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].error_code, Some(30004));
        assert_eq!(messages[2].status, MessageStatus::Delivered);
        let reqs = server.requests();
        assert_eq!(reqs[0].path, format!("/2010-04-01/Accounts/{AC}/Messages.json"));
        assert_eq!(
            reqs[0].query.as_deref(),
            Some("To=whatsapp%3A%2B15552229999&From=whatsapp%3A%2B14155238886&DateSent%3E=2024-05-01T12%3A30%3A00Z&PageSize=3")
        );
        assert_eq!(
            reqs[1].query.as_deref(),
            Some("To=%2B123456789&From=%2B987654321&DateSent%3E=2008-01-02&PageSize=2&Page=1&PageToken=PAMMc26223853f8c46b4ab7dfaa6abba0a26")
        );
    }

    #[tokio::test]
    async fn list_messages_stops_at_limit() {
        let server = MockServer::start(vec![Reply::json(200, LIST_EXAMPLE)]).await;
        let query = MessageQuery { limit: 1, ..MessageQuery::default() };
        let messages = server.client().list_messages(&creds(), &query).await.unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(server.requests().len(), 1);
        assert_eq!(server.requests()[0].query.as_deref(), Some("PageSize=1"));
    }
}
