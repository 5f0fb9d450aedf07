//! Content templates (content.twilio.com, Content API v1): a template's WhatsApp approval,
//! checked before the confirmation message is sent with it.

use reqwest::Method;
use serde::Deserialize;

use super::client::{Api, Body, Request, TwilioClient};
use super::error::TwilioError;
use super::secret::{check_sid, Credentials};
use super::wire;

/// A template's WhatsApp approval (`content.v1.content.approval_fetch`, its `whatsapp` object).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ContentApproval {
    /// `approved`, `pending`, `received`, `rejected`, `paused`, `disabled`, `unsubmitted`, …
    /// (empty: never submitted).
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub status: String,
    /// Why WhatsApp rejected it (empty otherwise).
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub rejection_reason: String,
    /// The WhatsApp template name.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub name: String,
}

impl ContentApproval {
    /// WhatsApp approved it: usable outside the 24-hour window.
    pub fn is_approved(&self) -> bool {
        self.status.eq_ignore_ascii_case("approved")
    }

    /// WhatsApp refused it for good (until it is edited): `rejected`, `paused`, `disabled`.
    pub fn is_refused(&self) -> bool {
        ["rejected", "paused", "disabled"].iter().any(|s| self.status.eq_ignore_ascii_case(s))
    }
}

#[derive(Deserialize)]
struct ApprovalFetch {
    #[serde(default)]
    whatsapp: Option<ContentApproval>,
}

impl TwilioClient {
    /// `GET /v1/Content/{Sid}/ApprovalRequests`: the template's WhatsApp approval (`None`: no
    /// such template on the account; a template never submitted has an empty status).
    pub async fn fetch_content_approval(
        &self,
        creds: &Credentials,
        content_sid: &str,
    ) -> Result<Option<ContentApproval>, TwilioError> {
        check_sid("content SID", "HX", content_sid)?;
        let url = self.url(Api::Content, &format!("/v1/Content/{content_sid}/ApprovalRequests"), &[])?;
        let answer: Result<ApprovalFetch, _> = self
            .execute(Request {
                op: "fetch_content_approval",
                method: Method::GET,
                template: "/v1/Content/{Sid}/ApprovalRequests",
                url,
                creds,
                body: Body::None,
            })
            .await;
        match answer {
            Ok(a) => Ok(Some(a.whatsapp.unwrap_or_default())),
            Err(TwilioError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::testutil::{MockServer, Reply, AC};

    /// The spec's `getApproval` example.
    const EXAMPLE: &str = r#"{"sid": "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "whatsapp": {"type": "whatsapp", "name": "tree_fiddy", "category": "UTILITY", "content_type": "twilio/location", "status": "approved", "rejection_reason": "", "allow_category_change": true}, "url": "https://content.twilio.com/v1/Content/HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/ApprovalRequests"}"#;

    #[tokio::test]
    async fn fetches_the_approval_and_maps_404_to_none() {
        let server = MockServer::start(vec![
            Reply::json(200, EXAMPLE),
            Reply::json(404, r#"{"code":20404,"message":"The requested resource was not found","status":404}"#),
            Reply::json(200, r#"{"sid":"HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","whatsapp":null}"#),
        ])
        .await;
        let client = server.client();
        let creds = Credentials::auth_token(AC, Secret::new("t"));
        let sid = "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let a = client.fetch_content_approval(&creds, sid).await.unwrap().expect("found");
        assert!(a.is_approved() && !a.is_refused());
        assert_eq!(a.name, "tree_fiddy");
        assert_eq!(client.fetch_content_approval(&creds, sid).await.unwrap(), None);
        let never = client.fetch_content_approval(&creds, sid).await.unwrap().expect("found");
        assert!(!never.is_approved() && !never.is_refused());
        assert_eq!(server.requests()[0].path, format!("/v1/Content/{sid}/ApprovalRequests"));
        assert!(client.fetch_content_approval(&creds, "HX1").await.is_err());
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn refusals() {
        for s in ["rejected", "paused", "disabled"] {
            assert!(ContentApproval { status: s.into(), ..Default::default() }.is_refused());
        }
        assert!(!ContentApproval { status: "pending".into(), ..Default::default() }.is_refused());
    }
}
