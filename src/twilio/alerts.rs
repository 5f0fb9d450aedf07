//! The Debugger's alerts (Monitor v1, `GET /v1/Alerts`), read only: each failed webhook request
//! Twilio made to a receiver is one alert with its error code (11200, 11205, 11237, …).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::client::{stop_when, Api, Paged, TwilioClient};
use super::error::TwilioError;
use super::secret::Credentials;
use super::wire;

/// `monitor.v1.alert`: the fields the operator uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Alert {
    /// `NO…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// The error code, e.g. `11200` (a string on the wire).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub error_code: Option<String>,
    /// `error`, `warning`, `notice` or `debug`.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub log_level: Option<String>,
    /// URL-encoded details (`Msg=…&ErrorCode=…&url=…`).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub alert_text: Option<String>,
    /// The URL Twilio requested when the alert is about a webhook.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub request_url: Option<String>,
    /// The resource the alert is about (for an inbound message: the message, `SM…`).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub resource_sid: Option<String>,
    /// The service or resource that generated it (the number, sender or Messaging Service).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub service_sid: Option<String>,
    /// When the failure happened.
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_generated: Option<DateTime<Utc>>,
    /// When Twilio stored the alert (buffered: may be later than `date_generated`).
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_created: Option<DateTime<Utc>>,
}

impl Alert {
    /// The error code as a number.
    pub fn code(&self) -> Option<u32> {
        self.error_code.as_deref()?.trim().parse().ok()
    }

    /// When it happened: `date_generated`, else `date_created`.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.date_generated.or(self.date_created)
    }

    /// The `Msg` of `alert_text` (Twilio's words for the failure), if any.
    pub fn explanation(&self) -> Option<String> {
        let text = self.alert_text.as_deref()?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).ok()?;
        pairs.into_iter().find(|(k, _)| k == "Msg").map(|(_, v)| v)
    }
}

#[derive(Deserialize)]
struct PageMeta {
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct AlertPage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    alerts: Vec<Alert>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

impl Paged for AlertPage {
    type Item = Alert;
    fn next_link(&self) -> Option<&str> {
        self.meta.as_ref()?.next_page_url.as_deref()
    }
    fn into_items(self) -> Vec<Alert> {
        self.alerts
    }
}

/// What one bounded listing returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertListing {
    /// The alerts, newest first as Twilio lists them.
    pub alerts: Vec<Alert>,
    /// Pages read.
    pub pages: usize,
    /// The page bound stopped the listing while Twilio had more (older alerts were not read).
    pub truncated: bool,
}

/// Monitor's `StartDate`: GMT, `YYYY-MM-DDThh:mm:ssZ` (second precision).
pub fn start_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl TwilioClient {
    /// Alerts that occurred on or after `since`, at most `max_pages` pages of `page_size`
    /// (1–1000): a bound on the calls one listing makes, not an error when reached
    /// ([`AlertListing::truncated`]).
    pub async fn list_alerts(
        &self,
        creds: &Credentials,
        since: DateTime<Utc>,
        page_size: u32,
        max_pages: usize,
    ) -> Result<AlertListing, TwilioError> {
        const TEMPLATE: &str = "/v1/Alerts";
        let query = [("StartDate", start_date(since)), ("PageSize", page_size.clamp(1, 1000).to_string())];
        let first = self.url(Api::Monitor, TEMPLATE, &query)?;
        let mut out = AlertListing::default();
        let max_pages = max_pages.max(1);
        let visit = stop_when(|items: Vec<Alert>| {
            out.pages += 1;
            let full = items.len() >= page_size as usize;
            out.alerts.extend(items);
            let last = out.pages >= max_pages;
            out.truncated = last && full;
            last
        });
        self.paginate::<AlertPage, _>(Api::Monitor, "list_alerts", TEMPLATE, creds, first, visit).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_decodes_from_the_spec_example_and_explains_itself() {
        let json = r#"{"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "alert_text": "Msg=HTTP+retrieval+failure&ErrorCode=11200&httpResponse=502", "api_version": "2010-04-01", "date_created": "2015-07-30T20:00:01Z", "date_generated": "2015-07-30T20:00:00Z", "date_updated": "2015-07-30T20:00:00Z", "error_code": "11200", "log_level": "error", "more_info": "more_info", "request_method": "GET", "request_url": "http://www.example.com", "resource_sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sid": "NOaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "url": "https://monitor.twilio.com/v1/Alerts/NOaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "service_sid": "PNe2cd757cd5257b0217a447933a0290d2"}"#;
        let a: Alert = serde_json::from_str(json).unwrap();
        assert_eq!(a.code(), Some(11200));
        assert_eq!(a.explanation().as_deref(), Some("HTTP retrieval failure"));
        assert_eq!(a.time().map(start_date).as_deref(), Some("2015-07-30T20:00:00Z"));
        let nulls: Alert =
            serde_json::from_str(r#"{"sid": "NO1", "error_code": null, "date_generated": null}"#).unwrap();
        assert_eq!((nulls.code(), nulls.time(), nulls.explanation()), (None, None, None));
    }
}
