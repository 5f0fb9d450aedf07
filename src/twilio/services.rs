//! Messaging Services (Messaging v1): the services, their pools (PhoneNumbers, ChannelSenders)
//! and the one write the operator makes, a service's inbound request URL.

use std::ops::ControlFlow;

use reqwest::Method;
use serde::Deserialize;

use super::client::{Api, Body, Paged, Request, TwilioClient};
use super::error::TwilioError;
use super::numbers::SmsMethod;
use super::secret::{check_sid, Credentials};
use super::wire;

/// A Messaging Service (`messaging.v1.service`), the fields that decide where inbound
/// messages go.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MessagingService {
    /// `MG…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// The service's name.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub friendly_name: Option<String>,
    /// Where inbound messages of the service's senders go; `None` disables inbound
    /// processing for every sender in the service.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub inbound_request_url: Option<String>,
    /// The method for `inbound_request_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed")]
    pub inbound_method: Option<SmsMethod>,
    /// Called when `inbound_request_url` fails.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub fallback_url: Option<String>,
    /// The method for `fallback_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed")]
    pub fallback_method: Option<SmsMethod>,
    /// The status callback URL.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub status_callback: Option<String>,
    /// When true, each number's own webhook overrides the service's inbound URLs.
    #[serde(default)]
    pub use_inbound_webhook_on_number: Option<bool>,
}

/// The largest page of the Messaging v1 lists (spec `ListService` `PageSize` maximum).
pub const SERVICES_PAGE_SIZE: u32 = 1000;

/// A member of a service's pool (`messaging.v1.service.phone_number`,
/// `messaging.v1.service.channel_sender`): only its SID matters here.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PoolMember {
    /// `PN…` or `XE…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
}

#[derive(Deserialize)]
struct PageMeta {
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct ServicePage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    services: Vec<MessagingService>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

impl Paged for ServicePage {
    type Item = MessagingService;
    fn next_link(&self) -> Option<&str> {
        self.meta.as_ref()?.next_page_url.as_deref()
    }
    fn into_items(self) -> Vec<MessagingService> {
        self.services
    }
}

#[derive(Deserialize)]
struct PoolPage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    phone_numbers: Vec<PoolMember>,
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    senders: Vec<PoolMember>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

impl Paged for PoolPage {
    type Item = PoolMember;
    fn next_link(&self) -> Option<&str> {
        self.meta.as_ref()?.next_page_url.as_deref()
    }
    fn into_items(mut self) -> Vec<PoolMember> {
        self.phone_numbers.append(&mut self.senders);
        self.phone_numbers
    }
}

/// A service's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// `/v1/Services/{ServiceSid}/PhoneNumbers` (`PN…`).
    PhoneNumbers,
    /// `/v1/Services/{MessagingServiceSid}/ChannelSenders` (`XE…`).
    ChannelSenders,
}

impl TwilioClient {
    /// Every Messaging Service of the account: `GET /v1/Services` at the largest page, all
    /// pages (a listing that does not end is an error, never a short list).
    pub async fn list_messaging_services(&self, creds: &Credentials) -> Result<Vec<MessagingService>, TwilioError> {
        let first = self.url(Api::Messaging, "/v1/Services", &[("PageSize", SERVICES_PAGE_SIZE.to_string())])?;
        let mut all = Vec::new();
        self.paginate::<ServicePage, _>(Api::Messaging, "list_messaging_services", "/v1/Services", creds, first, |p| {
            all.extend(p);
            ControlFlow::Continue(())
        })
        .await?;
        Ok(all)
    }

    /// The SIDs in one pool of service `mg_sid`, all pages.
    pub async fn list_service_pool(
        &self,
        creds: &Credentials,
        mg_sid: &str,
        pool: Pool,
    ) -> Result<Vec<String>, TwilioError> {
        check_sid("messaging service SID", "MG", mg_sid)?;
        let (op, template, path) = match pool {
            Pool::PhoneNumbers => (
                "list_service_phone_numbers",
                "/v1/Services/{ServiceSid}/PhoneNumbers",
                format!("/v1/Services/{mg_sid}/PhoneNumbers"),
            ),
            Pool::ChannelSenders => (
                "list_service_channel_senders",
                "/v1/Services/{MessagingServiceSid}/ChannelSenders",
                format!("/v1/Services/{mg_sid}/ChannelSenders"),
            ),
        };
        let first = self.url(Api::Messaging, &path, &[("PageSize", SERVICES_PAGE_SIZE.to_string())])?;
        let mut all = Vec::new();
        self.paginate::<PoolPage, _>(Api::Messaging, op, template, creds, first, |p| {
            all.extend(p.into_iter().map(|m| m.sid));
            ControlFlow::Continue(())
        })
        .await?;
        Ok(all)
    }

    /// Sets the service's inbound request URL and method: `POST /v1/Services/{Sid}` with
    /// `InboundRequestUrl` and `InboundMethod` (200 with the whole service). An empty URL clears
    /// it (the service then drops inbound messages).
    pub async fn update_service_inbound(
        &self,
        creds: &Credentials,
        mg_sid: &str,
        url: &str,
        method: SmsMethod,
    ) -> Result<MessagingService, TwilioError> {
        check_sid("messaging service SID", "MG", mg_sid)?;
        let target = self.url(Api::Messaging, &format!("/v1/Services/{mg_sid}"), &[])?;
        self.execute(Request {
            op: "update_service_inbound",
            method: Method::POST,
            template: "/v1/Services/{Sid}",
            url: target,
            creds,
            body: Body::Form(vec![
                ("InboundRequestUrl", url.to_owned()),
                ("InboundMethod", method.as_str().to_owned()),
            ]),
        })
        .await
    }

    /// `GET /v1/Services/{Sid}` on the Messaging API.
    pub async fn fetch_messaging_service(
        &self,
        creds: &Credentials,
        mg_sid: &str,
    ) -> Result<MessagingService, TwilioError> {
        check_sid("messaging service SID", "MG", mg_sid)?;
        let url = self.url(Api::Messaging, &format!("/v1/Services/{mg_sid}"), &[])?;
        self.execute(Request {
            op: "fetch_messaging_service",
            method: Method::GET,
            template: "/v1/Services/{Sid}",
            url,
            creds,
            body: Body::None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{MockServer, Reply, AC};

    /// The spec's `FetchService` example (abridged `links`).
    const SERVICE_EXAMPLE: &str = r#"{"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "date_created": "2015-07-30T20:12:31Z", "date_updated": "2015-07-30T20:12:33Z", "friendly_name": "My Service!", "inbound_request_url": "https://www.example.com/", "inbound_method": "POST", "fallback_url": null, "fallback_method": "POST", "status_callback": "https://www.example.com", "sticky_sender": true, "mms_converter": true, "smart_encoding": false, "fallback_to_long_code": true, "area_code_geomatch": true, "validity_period": 600, "scan_message_content": "inherit", "synchronous_validation": true, "usecase": "marketing", "us_app_to_person_registered": false, "use_inbound_webhook_on_number": true, "sending_windows": [{"start_time": "10:00", "end_time": "21:00"}], "links": {"channel_senders": "https://messaging.twilio.com/v1/Services/MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/ChannelSenders"}, "url": "https://messaging.twilio.com/v1/Services/MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;

    #[tokio::test]
    async fn fetch_service() {
        let server = MockServer::start(vec![Reply::json(200, SERVICE_EXAMPLE)]).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let mg = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let s = server.client().fetch_messaging_service(&creds, mg).await.unwrap();
        assert_eq!(s.sid, mg);
        assert_eq!(s.inbound_request_url.as_deref(), Some("https://www.example.com/"));
        assert_eq!(s.inbound_method, Some(SmsMethod::Post));
        assert_eq!(s.fallback_url, None);
        assert_eq!(s.use_inbound_webhook_on_number, Some(true));
        let r = &server.requests()[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/v1/Services/MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    }
}
