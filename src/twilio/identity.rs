//! OAuth2 client-credentials check against the application's identity server
//! (IdentityServer4 style: `POST <url>/connect/token`).
//!
//! Not a Twilio API: it lives here because it shares this module's HTTP plumbing and
//! [`Secret`]; it depends on nothing else in `twilio` and can move to its own module.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use tracing::Instrument;

use super::client::{checked_base, elapsed_ms, http_client};
use super::error::{parse_retry_after, snippet, transport_message};
use super::secret::Secret;
use super::wire;

/// The token endpoint path appended to the identity server's base URL.
pub const TOKEN_PATH: &str = "/connect/token";

/// A token response. `Debug` redacts the access token; nothing here logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (redacted in `Debug`/`Display`).
    pub access_token: Secret,
    /// Usually `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: Option<u64>,
    /// Granted scopes (space-separated).
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    scope: Option<String>,
}

/// An OAuth2 error body (RFC 6749 §5.2).
#[derive(Deserialize, Default)]
struct RawError {
    #[serde(default, deserialize_with = "wire::opt_string")]
    error: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    error_description: Option<String>,
}

/// Why a token request failed. Never contains the client secret or a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The URL or client id is unusable (not sent).
    #[error("invalid identity server request: {0}")]
    InvalidInput(String),
    /// The server rejected the client: unknown client id or wrong secret (`invalid_client`,
    /// or HTTP 401).
    #[error("the identity server rejected the client credentials (HTTP {status}): {description}")]
    InvalidClient {
        /// HTTP status (400 or 401).
        status: u16,
        /// The server's `error_description` or `error`.
        description: String,
    },
    /// Another OAuth2 error, e.g. `invalid_scope`, `unauthorized_client`
    /// (client not allowed the client-credentials grant), or a 404 for a wrong URL.
    #[error("the identity server refused the token request (HTTP {status}, {error}): {description}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The OAuth2 `error` code (empty when the body had none).
        error: String,
        /// The description, or a snippet of the body.
        description: String,
    },
    /// HTTP 429 or 5xx: try again later.
    #[error("the identity server is unavailable (HTTP {status})")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Connection, TLS or timeout failure.
    #[error("cannot reach the identity server{}: {message}", if *timeout { " (timed out)" } else { "" })]
    Transport {
        /// The failure, without URL.
        message: String,
        /// The request timed out.
        timeout: bool,
    },
    /// A 2xx response that is not a token response.
    #[error("unexpected response from the identity server (HTTP {status}): {message}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What is wrong.
        message: String,
    },
}

impl IdentityError {
    /// Whether retrying later may succeed without changes.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Transport { .. })
    }

    /// The delay the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable CamelCase category for condition reasons and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "IdentityInvalidRequest",
            Self::InvalidClient { .. } => "IdentityInvalidClient",
            Self::Rejected { .. } => "IdentityRejected",
            Self::Unavailable { .. } => "IdentityUnavailable",
            Self::Transport { .. } => "IdentityUnreachable",
            Self::Decode { .. } => "IdentityBadResponse",
        }
    }
}

/// A client for identity-server token requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IdentityClient {
    http: reqwest::Client,
}

impl IdentityClient {
    /// Builds a client with a whole-request `timeout` and `user_agent` (see
    /// [`crate::twilio::default_user_agent`]). No redirects are followed.
    pub fn new(timeout: Duration, user_agent: &str) -> Result<Self, IdentityError> {
        let http = http_client(timeout, user_agent).map_err(|e| IdentityError::InvalidInput(e.to_string()))?;
        Ok(Self { http })
    }

    /// The token endpoint for a base URL: `<url>/connect/token` (kept as is when `url`
    /// already ends with it). https, or http on loopback only.
    pub fn token_endpoint(base_url: &str) -> Result<Url, IdentityError> {
        let base = checked_base(base_url, false).map_err(|e| IdentityError::InvalidInput(e.to_string()))?;
        let full = if base.ends_with(TOKEN_PATH) { base } else { format!("{base}{TOKEN_PATH}") };
        Url::parse(&full).map_err(|e| IdentityError::InvalidInput(format!("bad token URL: {e}")))
    }

    /// Requests a token with the client-credentials grant, the client authenticating in the
    /// form body (`client_secret_post`): `grant_type=client_credentials&client_id=…&
    /// client_secret=…[&scope=…]`. Success proves the client id and secret work.
    pub async fn request_client_credentials_token(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &Secret,
        scope: Option<&str>,
    ) -> Result<TokenResponse, IdentityError> {
        let url = Self::token_endpoint(base_url)?;
        if client_id.trim().is_empty() {
            return Err(IdentityError::InvalidInput("the client id is empty".into()));
        }
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
        ];
        if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
            form.push(("scope", scope));
        }
        let span = tracing::debug_span!(
            "identity",
            op = "request_client_credentials_token",
            host = url.host_str().unwrap_or("")
        );
        async move {
            let started = Instant::now();
            let response = self
                .http
                .post(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
                .map_err(|e| IdentityError::Transport { timeout: e.is_timeout(), message: transport_message(e) })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response
                .bytes()
                .await
                .map_err(|e| IdentityError::Transport { timeout: e.is_timeout(), message: transport_message(e) })?;
            tracing::debug!(status, elapsed_ms = elapsed_ms(started), "identity response");
            classify(status, retry_after, &body)
        }
        .instrument(span)
        .await
    }
}

fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Result<TokenResponse, IdentityError> {
    if (200..300).contains(&status) {
        let raw: RawToken = serde_json::from_slice(body)
            .map_err(|e| IdentityError::Decode { status, message: format!("not a token response: {e}") })?;
        let access_token = raw
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or(IdentityError::Decode { status, message: "no access_token in the response".into() })?;
        return Ok(TokenResponse {
            access_token: Secret::new(access_token),
            token_type: raw.token_type,
            expires_in: raw.expires_in,
            scope: raw.scope,
        });
    }
    if status == 429 || status >= 500 {
        return Err(IdentityError::Unavailable { status, retry_after });
    }
    let parsed: RawError = serde_json::from_slice(body).unwrap_or_default();
    let error = parsed.error.unwrap_or_default();
    let description = parsed
        .error_description
        .or_else(|| Some(error.clone()).filter(|e| !e.is_empty()))
        .unwrap_or_else(|| snippet(body));
    if status == 401 || error == "invalid_client" {
        return Err(IdentityError::InvalidClient { status, description });
    }
    Err(IdentityError::Rejected { status, error, description })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::testutil::{MockServer, Reply};

    fn client() -> IdentityClient {
        IdentityClient::new(Duration::from_secs(5), "whatsapp-operator/test").unwrap()
    }

    #[test]
    fn token_endpoints() {
        assert_eq!(
            IdentityClient::token_endpoint("https://id.example.com/").unwrap().as_str(),
            "https://id.example.com/connect/token"
        );
        assert_eq!(
            IdentityClient::token_endpoint("https://id.example.com/identity").unwrap().as_str(),
            "https://id.example.com/identity/connect/token"
        );
        assert_eq!(
            IdentityClient::token_endpoint("https://id.example.com/connect/token").unwrap().as_str(),
            "https://id.example.com/connect/token"
        );
        assert!(IdentityClient::token_endpoint("http://id.example.com").is_err());
        assert!(IdentityClient::token_endpoint("http://127.0.0.1:5000").is_ok());
    }

    #[tokio::test]
    async fn token_request_and_redaction() {
        let server = MockServer::start(vec![Reply::json(
            200,
            r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.secret-token","expires_in":3600,"token_type":"Bearer","scope":"api"}"#,
        )])
        .await;
        let token = client()
            .request_client_credentials_token(&server.base, "crm-app", &Secret::new("cl!ent s3cret"), Some("api"))
            .await
            .unwrap();
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_in, Some(3600));
        assert_eq!(token.scope.as_deref(), Some("api"));
        assert_eq!(token.access_token.expose(), "eyJhbGciOiJSUzI1NiJ9.secret-token");
        assert!(!format!("{token:?}").contains("secret-token"));
        let r = &server.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/connect/token");
        assert_eq!(r.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(r.authorization, None);
        assert_eq!(r.body, "grant_type=client_credentials&client_id=crm-app&client_secret=cl%21ent+s3cret&scope=api");
    }

    #[tokio::test]
    async fn errors_are_classified_without_secrets() {
        let server = MockServer::start(vec![
            Reply::json(400, r#"{"error":"invalid_client"}"#),
            Reply::json(400, r#"{"error":"invalid_scope","error_description":"scope 'x' not allowed"}"#),
            Reply::json(503, "down").header("retry-after", "5"),
            Reply::json(200, r#"{"token_type":"Bearer"}"#),
        ])
        .await;
        let c = client();
        let secret = Secret::new("very-secret");
        let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
        assert_eq!(e, IdentityError::InvalidClient { status: 400, description: "invalid_client".into() });
        assert!(!e.is_transient());
        assert_eq!(e.reason(), "IdentityInvalidClient");
        let e = c.request_client_credentials_token(&server.base, "id", &secret, Some("x")).await.unwrap_err();
        assert!(matches!(&e, IdentityError::Rejected { error, .. } if error == "invalid_scope"));
        let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
        assert!(matches!(e, IdentityError::Decode { .. }));
        assert_eq!(server.requests()[0].body, "grant_type=client_credentials&client_id=id&client_secret=very-secret");
        assert!(!e.to_string().contains("very-secret"));
    }
}
