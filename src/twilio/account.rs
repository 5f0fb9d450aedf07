//! The account: `FetchAccount` and credential verification.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::client::{Api, Body, Request, TwilioClient};
use super::error::TwilioError;
use super::secret::Credentials;
use super::wire::{self, string_enum};

string_enum! {
    /// An account's status (`account_enum_status`).
    pub enum AccountStatus {
        /// Usable.
        Active => "active",
        /// Suspended by Twilio (e.g. unpaid balance); API calls fail with 401.
        Suspended => "suspended",
        /// Closed for good.
        Closed => "closed",
    }
}

string_enum! {
    /// An account's type (`account_enum_type`).
    pub enum AccountType {
        /// A trial account: sandbox-level limits, no production WhatsApp senders.
        Trial => "Trial",
        /// An upgraded (paid) account.
        Full => "Full",
    }
}

/// A Twilio account (`api.v2010.account`); the `auth_token` Twilio returns is never read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// `AC…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// The account's name (defaults to the owner's e-mail at sign-up).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub friendly_name: Option<String>,
    /// `active`, `suspended` or `closed`.
    #[serde(default)]
    pub status: AccountStatus,
    /// `Trial` or `Full`.
    #[serde(default, rename = "type")]
    pub account_type: AccountType,
    /// The parent account (equal to `sid` for a main account).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub owner_account_sid: Option<String>,
    /// When the account was created.
    #[serde(default, deserialize_with = "wire::opt_date")]
    pub date_created: Option<DateTime<Utc>>,
}

impl Account {
    /// Whether this is a subaccount.
    pub fn is_subaccount(&self) -> bool {
        self.owner_account_sid.as_deref().is_some_and(|owner| owner != self.sid)
    }
}

/// How credentials were verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationMethod {
    /// `GET /2010-04-01/Accounts/{Sid}.json` (auth token): status and type are known.
    FetchAccount,
    /// `GET …/IncomingPhoneNumbers.json?PageSize=1` (API key): only "these credentials may
    /// act on this account" is known.
    ApiKeyProbe,
}

/// The outcome of a successful [`TwilioClient::verify_credentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The account the credentials act on.
    pub account_sid: String,
    /// Which probe was used.
    pub method: VerificationMethod,
    /// The account's name (auth token only).
    pub friendly_name: Option<String>,
    /// The account's status (auth token only).
    pub status: Option<AccountStatus>,
    /// The account's type (auth token only).
    pub account_type: Option<AccountType>,
}

impl Verification {
    /// Whether the account is known to be suspended or closed (Twilio normally answers 401
    /// for those, but a 200 with such a status is possible and must not count as verified).
    pub fn is_blocked(&self) -> bool {
        matches!(self.status, Some(AccountStatus::Suspended | AccountStatus::Closed))
    }

    /// Whether the account is known to be a trial account.
    pub fn is_trial(&self) -> bool {
        self.account_type == Some(AccountType::Trial)
    }
}

/// Minimal view of a list page, used by the API-key probe.
#[derive(Deserialize)]
pub(crate) struct ProbePage {}

impl TwilioClient {
    /// `GET /2010-04-01/Accounts/{Sid}.json` (FetchAccount). Needs an auth token or a Main
    /// API key; a Standard key gets 401/403 ([`TwilioError::Unauthorized`]).
    pub async fn fetch_account(&self, creds: &Credentials) -> Result<Account, TwilioError> {
        let url = self.url(Api::Core, &format!("/2010-04-01/Accounts/{}.json", creds.account_sid()), &[])?;
        self.execute(Request {
            op: "fetch_account",
            method: Method::GET,
            template: "/2010-04-01/Accounts/{Sid}.json",
            url,
            creds,
            body: Body::None,
        })
        .await
    }

    /// Checks that the credentials work for their account, with a read-only call.
    ///
    /// Auth token: FetchAccount (status and type are returned; check
    /// [`Verification::is_blocked`]). API key: a Standard key may not read
    /// `/Accounts/{Sid}.json`, so this lists one incoming phone number instead.
    pub async fn verify_credentials(&self, creds: &Credentials) -> Result<Verification, TwilioError> {
        if creds.is_api_key() {
            let url = self.url(
                Api::Core,
                &format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", creds.account_sid()),
                &[("PageSize", "1".to_owned())],
            )?;
            let _: ProbePage = self
                .execute(Request {
                    op: "verify_credentials",
                    method: Method::GET,
                    template: "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
                    url,
                    creds,
                    body: Body::None,
                })
                .await?;
            return Ok(Verification {
                account_sid: creds.account_sid().to_owned(),
                method: VerificationMethod::ApiKeyProbe,
                friendly_name: None,
                status: None,
                account_type: None,
            });
        }
        let account = self.fetch_account(creds).await?;
        Ok(Verification {
            account_sid: creds.account_sid().to_owned(),
            method: VerificationMethod::FetchAccount,
            friendly_name: account.friendly_name,
            status: Some(account.status),
            account_type: Some(account.account_type),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{MockServer, Reply, AC, SK};

    /// The spec's `FetchAccount` example (abridged `subresource_uris`).
    pub(crate) const ACCOUNT_EXAMPLE: &str = r#"{"auth_token": "auth_token", "date_created": "Thu, 30 Jul 2015 20:00:00 +0000", "date_updated": "Thu, 30 Jul 2015 20:00:00 +0000", "friendly_name": "friendly_name", "owner_account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "active", "subresource_uris": {"incoming_phone_numbers": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/IncomingPhoneNumbers.json", "messages": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json"}, "type": "Full", "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"}"#;

    #[test]
    fn parses_spec_example() {
        let account: Account = serde_json::from_str(ACCOUNT_EXAMPLE).unwrap();
        assert_eq!(account.sid, AC);
        assert_eq!(account.status, AccountStatus::Active);
        assert_eq!(account.account_type, AccountType::Full);
        assert_eq!(account.friendly_name.as_deref(), Some("friendly_name"));
        assert!(!account.is_subaccount());
        assert!(account.date_created.is_some());
        assert!(!format!("{account:?}").contains("auth_token"));
    }

    #[test]
    fn tolerates_unknown_and_null() {
        let account: Account = serde_json::from_str(
            r#"{"sid":"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"frozen","type":null,"friendly_name":""}"#,
        )
        .unwrap();
        assert_eq!(account.status, AccountStatus::Unknown("frozen".into()));
        assert_eq!(account.account_type, AccountType::Unknown(String::new()));
        assert_eq!(account.friendly_name, None);
        assert_eq!(AccountStatus::from("SUSPENDED"), AccountStatus::Suspended);
    }

    #[tokio::test]
    async fn fetch_account_request() {
        let server = MockServer::start(vec![Reply::json(200, ACCOUNT_EXAMPLE)]).await;
        let creds = Credentials::auth_token(AC, Secret::new("token"));
        let v = server.client().verify_credentials(&creds).await.unwrap();
        assert_eq!(v.method, VerificationMethod::FetchAccount);
        assert_eq!(v.status, Some(AccountStatus::Active));
        assert!(!v.is_blocked() && !v.is_trial());
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{AC}.json"));
        assert_eq!(r.query, None);
        assert_eq!(r.basic_auth(), Some((AC.to_owned(), "token".to_owned())));
        assert!(r.user_agent.starts_with("whatsapp-operator/"));
        assert_eq!(r.body, "");
    }

    #[tokio::test]
    async fn api_key_probes_numbers() {
        let server = MockServer::start(vec![Reply::json(
            200,
            r#"{"incoming_phone_numbers": [], "next_page_uri": null, "page": 0, "page_size": 1}"#,
        )])
        .await;
        let creds = Credentials::api_key(AC, SK, Secret::new("keysecret"));
        let v = server.client().verify_credentials(&creds).await.unwrap();
        assert_eq!(v.method, VerificationMethod::ApiKeyProbe);
        assert_eq!(v.status, None);
        assert_eq!(v.account_sid, AC);
        let r = &server.requests()[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json"));
        assert_eq!(r.query.as_deref(), Some("PageSize=1"));
        assert_eq!(r.basic_auth(), Some((SK.to_owned(), "keysecret".to_owned())));
    }

    #[tokio::test]
    async fn unauthorized_never_leaks_the_token() {
        let server = MockServer::start(vec![Reply::json(
            401,
            r#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
        )])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("s3cr3t-token-value"));
        let err = server.client().verify_credentials(&creds).await.unwrap_err();
        assert!(matches!(err, TwilioError::Unauthorized { status: 401, code: Some(20003), .. }));
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(!format!("{err:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn a_bad_fetch_account_body_never_shows_the_auth_token() {
        let secret = "SEKRIT-TOKEN-123";
        let server = MockServer::start(vec![
            Reply::json(200, format!(r#"{{"auth_token":"{secret}","sid":{{"nested":"{secret}"}},"status":"active"}}"#)),
            Reply::json(200, format!(r#"{{"auth_token":"{secret}","friendly_name":7,"sid":"{secret}"}}"#)),
            Reply::json(200, format!(r#"{{"auth_token":"{secret}""#)),
            Reply::json(200, format!("<html>{secret}</html>")).header("content-type", "text/html"),
        ])
        .await;
        let creds = Credentials::auth_token(AC, Secret::new("token"));
        for _ in 0..4 {
            let err = server.client().fetch_account(&creds).await.unwrap_err();
            assert!(matches!(err, TwilioError::Decode { status: 200, .. }), "{err:?}");
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
    }

    #[tokio::test]
    async fn invalid_credentials_are_not_sent() {
        let server = MockServer::start(vec![]).await;
        let creds = Credentials::auth_token("AC../../x", Secret::new("t"));
        let err = server.client().fetch_account(&creds).await.unwrap_err();
        assert!(matches!(err, TwilioError::InvalidInput(_)));
        assert!(server.requests().is_empty());
    }
}
