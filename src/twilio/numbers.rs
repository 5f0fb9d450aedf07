//! Incoming phone numbers: find a number of the account and point its SMS webhook somewhere.
//!
//! The client never purchases (`POST …/IncomingPhoneNumbers.json`) or releases (`DELETE`)
//! a number: there are deliberately no functions for that.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::address::E164;
use super::client::{Api, Body, Paged, Request, TwilioClient};
use super::error::TwilioError;
use super::secret::{check_sid, Credentials};
use super::wire;

/// Page size for number lookups (filtered by number, so normally one result).
const NUMBERS_PAGE_SIZE: u32 = 50;

wire::method_enum! {
    /// The HTTP method Twilio uses for a number's SMS webhook (`GET` or `POST`).
    pub enum SmsMethod ("an SMS webhook method must be GET or POST") {
        /// GET.
        Get => "GET",
        /// POST (Twilio's default).
        #[default]
        Post => "POST",
    }
}

/// A number's capabilities (there is no WhatsApp flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Capabilities {
    /// Voice calls.
    #[serde(default)]
    pub voice: bool,
    /// SMS.
    #[serde(default)]
    pub sms: bool,
    /// MMS.
    #[serde(default)]
    pub mms: bool,
    /// Fax.
    #[serde(default)]
    pub fax: bool,
}

/// An incoming phone number (`api.v2010.account.incoming_phone_number`), the fields we use.
/// Unset URLs (`null` or `""`) are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IncomingPhoneNumber {
    /// `PN…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// The owning account.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub account_sid: Option<String>,
    /// E.164, e.g. `+18089255327`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub phone_number: String,
    /// E.g. `(808) 925-5327`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub friendly_name: Option<String>,
    /// Where Twilio sends inbound messages (ignored while `sms_application_sid` is set).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub sms_url: Option<String>,
    /// The method for `sms_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed")]
    pub sms_method: Option<SmsMethod>,
    /// Called when `sms_url` fails.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub sms_fallback_url: Option<String>,
    /// The method for `sms_fallback_url`.
    #[serde(default, deserialize_with = "wire::opt_parsed")]
    pub sms_fallback_method: Option<SmsMethod>,
    /// A TwiML App (`AP…`) that handles SMS instead of `sms_url`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub sms_application_sid: Option<String>,
    /// The status callback URL.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub status_callback: Option<String>,
    /// Capabilities.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// E.g. `in-use`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub status: Option<String>,
    /// Last change.
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_updated: Option<DateTime<Utc>>,
}

impl IncomingPhoneNumber {
    /// Whether `sms_url` is in effect: false while a TwiML App (`sms_application_sid`)
    /// handles the number's messages, in which case Twilio ignores `sms_url`.
    pub fn sms_url_in_effect(&self) -> bool {
        self.sms_application_sid.is_none()
    }

    /// Whether the number's webhook is `url` with `method` (an unset method counts as POST,
    /// Twilio's default) and `sms_url` is in effect.
    pub fn webhook_matches(&self, url: &str, method: SmsMethod) -> bool {
        self.sms_url_in_effect()
            && self.sms_url.as_deref() == Some(url)
            && self.sms_method.unwrap_or_default() == method
    }
}

/// `ListIncomingPhoneNumberResponse` (2010 paging: relative `next_page_uri`).
#[derive(Deserialize)]
pub(crate) struct NumberPage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    incoming_phone_numbers: Vec<IncomingPhoneNumber>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_uri: Option<String>,
}

impl Paged for NumberPage {
    type Item = IncomingPhoneNumber;
    fn next_link(&self) -> Option<&str> {
        self.next_page_uri.as_deref()
    }
    fn into_items(self) -> Vec<IncomingPhoneNumber> {
        self.incoming_phone_numbers
    }
}

impl TwilioClient {
    /// Finds the account's number `e164` (any spelling accepted by [`E164::parse`]).
    ///
    /// `GET …/IncomingPhoneNumbers.json?PhoneNumber=%2B…&PageSize=50`, following
    /// `next_page_uri`; Twilio's filter also matches partially, so results are compared
    /// after normalization. `Ok(None)`: the account has no such number.
    pub async fn find_incoming_number(
        &self,
        creds: &Credentials,
        e164: &str,
    ) -> Result<Option<IncomingPhoneNumber>, TwilioError> {
        let wanted = E164::parse(e164).map_err(|e| TwilioError::InvalidInput(e.to_string()))?;
        let url = self.url(
            Api::Core,
            &format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", creds.account_sid()),
            &[("PhoneNumber", wanted.as_str().to_owned()), ("PageSize", NUMBERS_PAGE_SIZE.to_string())],
        )?;
        self.find_paged::<NumberPage>(
            Api::Core,
            "find_incoming_number",
            "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
            creds,
            url,
            |n| E164::parse(&n.phone_number).is_ok_and(|n| n == wanted),
        )
        .await
    }

    /// Fetches the account's number by SID: `GET …/IncomingPhoneNumbers/{Sid}.json`.
    /// `Ok(None)`: no such number (404), e.g. released since its SID was recorded.
    pub async fn fetch_incoming_number(
        &self,
        creds: &Credentials,
        pn_sid: &str,
    ) -> Result<Option<IncomingPhoneNumber>, TwilioError> {
        check_sid("phone number SID", "PN", pn_sid)?;
        let url = self.url(
            Api::Core,
            &format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{pn_sid}.json", creds.account_sid()),
            &[],
        )?;
        let fetched = self
            .execute(Request {
                op: "fetch_incoming_number",
                method: Method::GET,
                template: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
                url,
                creds,
                body: Body::None,
            })
            .await;
        match fetched {
            Ok(n) => Ok(Some(n)),
            Err(TwilioError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Points the number's inbound webhook at `url` with `method`:
    /// `POST …/IncomingPhoneNumbers/{Sid}.json` with form `SmsUrl`, `SmsMethod` (200).
    ///
    /// Only these two fields are sent; everything else on the number is left as is.
    /// `SmsApplicationSid` is not cleared: the spec types it as `^AP[0-9a-fA-F]{32}$` (an
    /// empty string is not valid), and silently detaching someone's TwiML App is not ours to
    /// do. Check [`IncomingPhoneNumber::sms_url_in_effect`] on the result and report it.
    /// An empty `url` clears the webhook (`SmsUrl=`), used to restore an unset webhook.
    pub async fn update_incoming_number_webhook(
        &self,
        creds: &Credentials,
        pn_sid: &str,
        url: &str,
        method: SmsMethod,
    ) -> Result<IncomingPhoneNumber, TwilioError> {
        check_sid("phone number SID", "PN", pn_sid)?;
        let target = self.url(
            Api::Core,
            &format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{pn_sid}.json", creds.account_sid()),
            &[],
        )?;
        self.execute(Request {
            op: "update_incoming_number_webhook",
            method: Method::POST,
            template: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
            url: target,
            creds,
            body: Body::Form(vec![("SmsUrl", url.to_owned()), ("SmsMethod", method.as_str().to_owned())]),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{MockServer, Reply, AC};

    const PN: &str = "PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// The spec's `UpdateIncomingPhoneNumber` example.
    const NUMBER_EXAMPLE: &str = r#"{"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "address_requirements": "none", "address_sid": "ADaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "api_version": "2010-04-01", "beta": false, "capabilities": {"voice": true, "sms": false, "mms": true, "fax": false}, "date_created": "Thu, 30 Jul 2015 23:19:04 +0000", "date_updated": "Thu, 30 Jul 2015 23:19:04 +0000", "emergency_status": "Inactive", "emergency_address_sid": "ADaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "emergency_address_status": "registered", "friendly_name": "(808) 925-5327", "identity_sid": "RIaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "origin": "origin", "phone_number": "+18089255327", "sid": "PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sms_application_sid": "", "sms_fallback_method": "POST", "sms_fallback_url": "", "sms_method": "POST", "sms_url": "", "status_callback": "", "status_callback_method": "POST", "trunk_sid": null, "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/IncomingPhoneNumbers/PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json", "voice_application_sid": "", "voice_caller_id_lookup": true, "voice_fallback_method": "POST", "voice_fallback_url": null, "voice_method": "POST", "voice_url": null, "voice_receive_mode": "voice", "status": "in-use", "bundle_sid": "BUaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "subresource_uris": {"assigned_add_ons": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/IncomingPhoneNumbers/PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/AssignedAddOns.json"}}"#;

    fn number(sid: &str, phone: &str, sms_url: &str) -> String {
        NUMBER_EXAMPLE.replace(PN, sid).replace("\"+18089255327\"", &format!("\"{phone}\"")).replacen(
            "\"sms_url\": \"\"",
            &format!("\"sms_url\": \"{sms_url}\""),
            1,
        )
    }

    #[test]
    fn parses_spec_example() {
        let n: IncomingPhoneNumber = serde_json::from_str(NUMBER_EXAMPLE).unwrap();
        assert_eq!(n.sid, PN);
        assert_eq!(n.phone_number, "+18089255327");
        assert_eq!(n.sms_url, None);
        assert_eq!(n.sms_application_sid, None);
        assert_eq!(n.sms_method, Some(SmsMethod::Post));
        assert!(n.sms_url_in_effect());
        assert!(n.capabilities.voice && !n.capabilities.sms);
        assert_eq!(n.status.as_deref(), Some("in-use"));
        let with_app: IncomingPhoneNumber =
            serde_json::from_str(&NUMBER_EXAMPLE.replace(
                r#""sms_application_sid": """#,
                r#""sms_application_sid": "APaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#,
            ))
            .unwrap();
        assert!(!with_app.sms_url_in_effect());
        let odd: IncomingPhoneNumber =
            serde_json::from_str(r#"{"sid":"PN1","phone_number":null,"sms_method":"PATCH","capabilities":{}}"#)
                .unwrap();
        assert_eq!(odd.sms_method, None);
        assert_eq!(odd.phone_number, "");
    }

    #[test]
    fn webhook_matching() {
        let n: IncomingPhoneNumber = serde_json::from_str(&number(PN, "+18089255327", "https://r.example/x")).unwrap();
        assert!(n.webhook_matches("https://r.example/x", SmsMethod::Post));
        assert!(!n.webhook_matches("https://r.example/x", SmsMethod::Get));
        assert!(!n.webhook_matches("https://r.example/y", SmsMethod::Post));
        assert_eq!("get".parse::<SmsMethod>().unwrap(), SmsMethod::Get);
        assert!("PUT".parse::<SmsMethod>().is_err());
    }

    #[tokio::test]
    async fn find_follows_next_page_uri_and_encodes_plus() {
        let other = "PNbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let page1 = format!(
            r#"{{"incoming_phone_numbers": [{}], "next_page_uri": "/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json?PhoneNumber=%2B18089255327&PageSize=50&Page=1&PageToken=PAxyz", "page": 0, "page_size": 50, "start": 0, "end": 0, "previous_page_uri": null}}"#,
            number(other, "+180892553270", "")
        );
        let page2 = format!(
            r#"{{"incoming_phone_numbers": [{}], "next_page_uri": null, "page": 1, "page_size": 50}}"#,
            number(PN, "+18089255327", "https://r.example/x")
        );
        let server = MockServer::start(vec![Reply::json(200, page1), Reply::json(200, page2)]).await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let found = server.client().find_incoming_number(&creds, "+1 (808) 925-5327").await.unwrap().unwrap();
        assert_eq!(found.sid, PN);
        assert_eq!(found.sms_url.as_deref(), Some("https://r.example/x"));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        let path = format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json");
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].path, path);
        assert_eq!(reqs[0].query.as_deref(), Some("PhoneNumber=%2B18089255327&PageSize=50"));
        assert_eq!(reqs[1].path, path);
        assert_eq!(reqs[1].query.as_deref(), Some("PhoneNumber=%2B18089255327&PageSize=50&Page=1&PageToken=PAxyz"));
    }

    #[tokio::test]
    async fn find_returns_none_on_empty() {
        let server = MockServer::start(vec![Reply::json(
            200,
            r#"{"incoming_phone_numbers": [], "next_page_uri": null, "page": 0, "page_size": 50}"#,
        )])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let client = server.client();
        assert_eq!(client.find_incoming_number(&creds, "+18089255327").await.unwrap(), None);
        assert!(matches!(client.find_incoming_number(&creds, "18089255327").await, Err(TwilioError::InvalidInput(_))));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn update_sends_form() {
        let server = MockServer::start(vec![Reply::json(
            200,
            number(PN, "+18089255327", "https://receiver.example/api/webhook/LeadGen/whatsapp"),
        )])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let updated = server
            .client()
            .update_incoming_number_webhook(
                &creds,
                PN,
                "https://receiver.example/api/webhook/LeadGen/whatsapp",
                SmsMethod::Post,
            )
            .await
            .unwrap();
        assert!(updated.webhook_matches("https://receiver.example/api/webhook/LeadGen/whatsapp", SmsMethod::Post));
        let r = &server.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers/{PN}.json"));
        assert_eq!(r.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(r.body, "SmsUrl=https%3A%2F%2Freceiver.example%2Fapi%2Fwebhook%2FLeadGen%2Fwhatsapp&SmsMethod=POST");
        let bad = server.client().update_incoming_number_webhook(&creds, "PN/../x", "https://x", SmsMethod::Post).await;
        assert!(matches!(bad, Err(TwilioError::InvalidInput(_))));
    }
}
