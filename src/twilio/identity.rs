//! OAuth2 client-credentials check against the application's identity server
//! (IdentityServer4 style: `POST <url>/connect/token`).
//!
//! Not a Twilio API: it lives here because it shares this module's HTTP plumbing (timeouts,
//! capped bodies, no redirects) and [`Secret`]. Its URL comes from a channel's spec, so every
//! request obeys the [`super::outbound`] policy (server-side request forgery).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use tracing::Instrument;

use super::body::{read_limited, BodyError, MAX_IDENTITY_BODY_BYTES};
use super::client::{build, checked_base, elapsed_ms, http_builder};
use super::error::{body_summary, json_problem, parse_retry_after, transport_message, TwilioError};
use super::outbound::{refusal_in, Lookup, OutboundPolicy, OutboundRefusal, PolicyResolver};
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

/// An OAuth2 error body (RFC 6749 §5.2): only `error` is read. `error_description` and
/// `error_uri` are free text chosen by the server, which may echo what it was sent (the client
/// id, the scope, even the secret): they are never read, logged or reported.
#[derive(Deserialize, Default)]
struct RawError {
    #[serde(default, deserialize_with = "wire::opt_string")]
    error: Option<String>,
}

/// The `error` code of an OAuth2 token error response: the closed set of RFC 6749 §5.2, and
/// [`OAuthErrorCode::Other`] for any other value (which is not kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// `invalid_client`: unknown client, wrong secret or unsupported client authentication.
    InvalidClient,
    /// `invalid_grant`: the grant is invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`: the server does not support this grant type.
    UnsupportedGrantType,
    /// `invalid_scope`: the scope is invalid, unknown, or exceeds what the client may ask for.
    InvalidScope,
    /// A value outside RFC 6749 §5.2.
    Other,
}

impl OAuthErrorCode {
    const REGISTERED: [(&'static str, Self); 6] = [
        ("invalid_request", Self::InvalidRequest),
        ("invalid_client", Self::InvalidClient),
        ("invalid_grant", Self::InvalidGrant),
        ("unauthorized_client", Self::UnauthorizedClient),
        ("unsupported_grant_type", Self::UnsupportedGrantType),
        ("invalid_scope", Self::InvalidScope),
    ];

    /// The code of an `error` value: one of RFC 6749 §5.2 (exact match, codes are
    /// case-sensitive), else [`OAuthErrorCode::Other`].
    pub fn from_wire(value: &str) -> Self {
        Self::REGISTERED.iter().find(|(wire, _)| *wire == value).map_or(Self::Other, |&(_, code)| code)
    }

    /// The code as RFC 6749 spells it; `other` for [`OAuthErrorCode::Other`].
    pub fn as_str(self) -> &'static str {
        Self::REGISTERED.iter().find(|(_, code)| *code == self).map_or("other", |&(wire, _)| wire)
    }

    /// What the code means for a client-credentials token request (our text).
    pub fn explanation(self) -> &'static str {
        match self {
            Self::InvalidRequest => "the server found the token request malformed",
            Self::InvalidClient => "unknown client id or wrong client secret",
            Self::InvalidGrant => "the server refused the client-credentials grant",
            Self::UnauthorizedClient => "the client may not use the client-credentials grant",
            Self::UnsupportedGrantType => "the server does not support the client-credentials grant",
            Self::InvalidScope => "the requested scope is invalid, unknown, or not allowed for this client",
            Self::Other => "an error code outside RFC 6749 (not shown)",
        }
    }
}

impl std::fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token request failed. Never contains the client secret, a token, or any text of the
/// server's response: only the HTTP status, the OAuth2 `error` code (a closed set), our own
/// text, and transport errors stripped of URLs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The URL or client id is unusable (not sent).
    #[error("invalid identity server request: {0}")]
    InvalidInput(String),
    /// The server rejected the client: unknown client id or wrong secret (`invalid_client`,
    /// or HTTP 401).
    #[error("the identity server rejected the client credentials (HTTP {status}): {}", OAuthErrorCode::InvalidClient.explanation())]
    InvalidClient {
        /// HTTP status (400 or 401).
        status: u16,
    },
    /// Another OAuth2 error, e.g. `invalid_scope`, `unauthorized_client`
    /// (client not allowed the client-credentials grant), or a 404 for a wrong URL.
    #[error("the identity server refused the token request (HTTP {status}{}): {description}", fmt_code(*error))]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The OAuth2 `error` code, when the body had one.
        error: Option<OAuthErrorCode>,
        /// Our description: of the code, or of a body without one (its size and media type,
        /// never its content).
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
        /// What is wrong (kind and position, the body's size and media type; never its
        /// content, which may hold a token).
        message: String,
    },
    /// The outbound URL policy refused the URL or the addresses its host resolves to: no
    /// request was sent (see [`OutboundPolicy`]).
    #[error("the outbound URL policy refuses the identity server: {0}; no request was sent")]
    Refused(OutboundRefusal),
    /// The response body is longer than [`MAX_IDENTITY_BODY_BYTES`]; it was abandoned unread.
    #[error("the identity server's response (HTTP {status}) is longer than the {} KiB the client reads", limit / 1024)]
    TooLarge {
        /// HTTP status.
        status: u16,
        /// The cap, in bytes.
        limit: usize,
    },
    /// A 3xx answer: redirects are never followed (the client secret would go wherever it
    /// points), and its `Location` is not read.
    #[error("the identity server answered with a redirect (HTTP {status}), which is not followed; use the final URL")]
    Redirected {
        /// HTTP status (300–399).
        status: u16,
    },
}

fn fmt_code(code: Option<OAuthErrorCode>) -> String {
    code.map(|c| format!(", {c}")).unwrap_or_default()
}

/// The message of a Twilio-client configuration error, without the Twilio prefix.
fn invalid_input(err: TwilioError) -> IdentityError {
    match err {
        TwilioError::InvalidInput(message) => IdentityError::InvalidInput(message),
        other => IdentityError::InvalidInput(other.to_string()),
    }
}

impl IdentityError {
    /// Whether retrying later may succeed without changes.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Transport { .. } => true,
            Self::TooLarge { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
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
            Self::Refused(_) => "IdentityURLRefused",
            Self::TooLarge { .. } => "IdentityResponseTooLarge",
            Self::Redirected { .. } => "IdentityRedirected",
        }
    }
}

/// A client for identity-server token requests. Cheap to clone.
///
/// Every request obeys an [`OutboundPolicy`]: the URL is checked before anything is sent, and
/// host names are resolved by a resolver that hands the connection only addresses the policy
/// allows. The client connects directly (it ignores `HTTPS_PROXY`/`HTTP_PROXY`), so the
/// addresses checked are the ones connected to.
#[derive(Clone, Debug)]
pub struct IdentityClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl IdentityClient {
    /// Builds a client with a whole-request `timeout` and `user_agent` (see
    /// [`crate::twilio::default_user_agent`]) under the default [`OutboundPolicy`] (no
    /// allow-list). No redirects are followed.
    pub fn new(timeout: Duration, user_agent: &str) -> Result<Self, IdentityError> {
        Self::with_policy(timeout, user_agent, OutboundPolicy::default())
    }

    /// [`IdentityClient::new`] under `policy`.
    pub fn with_policy(timeout: Duration, user_agent: &str, policy: OutboundPolicy) -> Result<Self, IdentityError> {
        Self::build(timeout, user_agent, policy, None)
    }

    /// Resolving names with `lookup` instead of the system resolver (tests).
    #[cfg(test)]
    pub(crate) fn with_lookup(timeout: Duration, policy: OutboundPolicy, lookup: Lookup) -> Self {
        Self::build(timeout, "whatsapp-operator/test", policy, Some(lookup)).expect("client")
    }

    fn build(
        timeout: Duration,
        user_agent: &str,
        policy: OutboundPolicy,
        lookup: Option<Lookup>,
    ) -> Result<Self, IdentityError> {
        if timeout.is_zero() {
            return Err(IdentityError::InvalidInput("the timeout must be positive".into()));
        }
        let policy = Arc::new(policy);
        let builder = http_builder(timeout, user_agent)
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver::new(policy.clone(), lookup)));
        let http = build(builder).map_err(invalid_input)?;
        Ok(Self { http, policy })
    }

    /// The policy this client obeys.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// The token endpoint for a base URL: `<url>/connect/token` (kept as is when `url`
    /// already ends with it). https, or http on loopback only.
    pub fn token_endpoint(base_url: &str) -> Result<Url, IdentityError> {
        let base = checked_base(base_url, false).map_err(invalid_input)?;
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
            if let Err(refusal) = self.policy.check_url(&url) {
                tracing::debug!(%refusal, "identity request refused by the outbound policy");
                return Err(IdentityError::Refused(refusal));
            }
            let started = Instant::now();
            let response = self
                .http
                .post(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
                .map_err(|e| match refusal_in(&e) {
                    // The resolver refused every connection: nothing was sent.
                    Some(refusal) => IdentityError::Refused(refusal),
                    None => IdentityError::Transport { timeout: e.is_timeout(), message: transport_message(e) },
                })?;
            let status = response.status().as_u16();
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            // The same parsing and cap (`MAX_RETRY_AFTER`) as Twilio's `Retry-After`.
            let retry_after = header(reqwest::header::RETRY_AFTER).as_deref().and_then(parse_retry_after);
            let content_type = header(reqwest::header::CONTENT_TYPE);
            let body = read_limited(response, MAX_IDENTITY_BODY_BYTES).await.map_err(|e| match e {
                BodyError::TooLarge => IdentityError::TooLarge { status, limit: MAX_IDENTITY_BODY_BYTES },
                BodyError::Read(e) => {
                    IdentityError::Transport { timeout: e.is_timeout(), message: transport_message(e) }
                }
            })?;
            tracing::debug!(status, elapsed_ms = elapsed_ms(started), "identity response");
            classify(status, retry_after, content_type.as_deref(), &body)
        }
        .instrument(span)
        .await
    }
}

/// Maps a response read whole to a token or an error. Pure and total: no input panics.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TokenResponse, IdentityError> {
    if (300..400).contains(&status) {
        return Err(IdentityError::Redirected { status });
    }
    if (200..300).contains(&status) {
        let raw: RawToken = serde_json::from_slice(body).map_err(|e| IdentityError::Decode {
            status,
            message: format!("not a token response: {} ({})", json_problem(&e), body_summary(body, content_type)),
        })?;
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
    let parsed = serde_json::from_slice::<RawError>(body).ok();
    let error = parsed.as_ref().and_then(|p| p.error.as_deref()).map(OAuthErrorCode::from_wire);
    if status == 401 || error == Some(OAuthErrorCode::InvalidClient) {
        return Err(IdentityError::InvalidClient { status });
    }
    let description = match (error, &parsed) {
        (Some(code), _) => code.explanation().to_owned(),
        (None, _) if status == 404 => {
            format!("no token endpoint at this URL (requests go to the base URL followed by {TOKEN_PATH})")
        }
        (None, Some(_)) => "no OAuth2 error code in the response".to_owned(),
        (None, None) if body.iter().all(u8::is_ascii_whitespace) => format!("HTTP {status} without an error body"),
        (None, None) => format!("unexpected response body ({})", body_summary(body, content_type)),
    };
    Err(IdentityError::Rejected { status, error, description })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::error::MAX_RETRY_AFTER;
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
        assert_eq!(e, IdentityError::InvalidClient { status: 400 });
        assert_eq!(
            e.to_string(),
            "the identity server rejected the client credentials (HTTP 400): unknown client id or wrong client secret"
        );
        assert!(!e.is_transient());
        assert_eq!(e.reason(), "IdentityInvalidClient");
        let e = c.request_client_credentials_token(&server.base, "id", &secret, Some("x")).await.unwrap_err();
        assert!(matches!(&e, IdentityError::Rejected { error: Some(OAuthErrorCode::InvalidScope), .. }));
        assert_eq!(
            e.to_string(),
            "the identity server refused the token request (HTTP 400, invalid_scope): the requested scope is invalid, unknown, or not allowed for this client"
        );
        let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
        assert!(matches!(e, IdentityError::Decode { .. }));
        assert_eq!(server.requests()[0].body, "grant_type=client_credentials&client_id=id&client_secret=very-secret");
        assert!(!e.to_string().contains("very-secret"));
    }

    const SEKRIT: &str = "SEKRIT-TOKEN-123";

    fn assert_clean(result: Result<TokenResponse, IdentityError>, case: &str) -> IdentityError {
        let err = result.expect_err(case);
        assert!(!err.to_string().contains(SEKRIT), "{case}: Display leaks: {err}");
        assert!(!format!("{err:?}").contains(SEKRIT), "{case}: Debug leaks: {err:?}");
        err
    }

    #[test]
    fn no_body_content_reaches_an_error() {
        let bodies = [
            ("plain text", SEKRIT.to_owned()),
            ("html", format!("<html>client_secret={SEKRIT}</html>")),
            (
                "error_description",
                format!(r#"{{"error":"invalid_client","error_description":"secret {SEKRIT} is wrong"}}"#),
            ),
            (
                "description of another code",
                format!(
                    r#"{{"error":"invalid_scope","error_description":"{SEKRIT}","error_uri":"https://u:{SEKRIT}@id/x"}}"#
                ),
            ),
            ("unregistered error", format!(r#"{{"error":"{SEKRIT}","error_description":"{SEKRIT}"}}"#)),
            ("no error field", format!(r#"{{"message":"{SEKRIT}","client_secret":"{SEKRIT}"}}"#)),
            ("error not a string", format!(r#"{{"error":["{SEKRIT}"]}}"#)),
        ];
        for (case, body) in &bodies {
            for status in [200, 400, 401, 403, 404, 429, 500] {
                for content_type in [None, Some("application/json"), Some("text/html")] {
                    assert_clean(classify(status, None, content_type, body.as_bytes()), case);
                }
            }
        }
        let err = classify(400, None, None, br#"{"error":"SEKRIT-TOKEN-123"}"#).unwrap_err();
        assert_eq!(
            err,
            IdentityError::Rejected {
                status: 400,
                error: Some(OAuthErrorCode::Other),
                description: "an error code outside RFC 6749 (not shown)".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "the identity server refused the token request (HTTP 400, other): an error code outside RFC 6749 (not shown)"
        );
        let err = classify(403, None, Some("text/html; charset=utf-8"), b"<html>Forbidden</html>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the identity server refused the token request (HTTP 403): unexpected response body (22 bytes, text/html)"
        );
        let err = classify(404, None, None, b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the identity server refused the token request (HTTP 404): no token endpoint at this URL (requests go to the base URL followed by /connect/token)"
        );
        assert!(matches!(classify(401, None, None, b"nope"), Err(IdentityError::InvalidClient { status: 401 })));
    }

    #[test]
    fn a_bad_token_response_never_shows_the_token() {
        // A 2xx whose shape is wrong: the access token must not be quoted by serde_json.
        for body in [
            format!(r#"{{"access_token":"{SEKRIT}","expires_in":"{SEKRIT}"}}"#),
            format!(r#"{{"access_token":"{SEKRIT}","token_type":7,"scope":"{SEKRIT}"}}"#),
            format!(r#"{{"access_token":"{SEKRIT}""#),
            format!("access_token={SEKRIT}&token_type=bearer"),
        ] {
            let err = assert_clean(classify(200, None, Some("application/json"), body.as_bytes()), &body);
            assert!(matches!(err, IdentityError::Decode { status: 200, .. }), "{err:?}");
        }
        let err = classify(200, None, Some("application/json"), br#"{"access_token":1}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected response from the identity server (HTTP 200): not a token response: JSON of an unexpected shape at line 1 column 17 (18 bytes, application/json)"
        );
    }

    #[test]
    fn error_codes_are_a_closed_set() {
        for code in [
            OAuthErrorCode::InvalidRequest,
            OAuthErrorCode::InvalidClient,
            OAuthErrorCode::InvalidGrant,
            OAuthErrorCode::UnauthorizedClient,
            OAuthErrorCode::UnsupportedGrantType,
            OAuthErrorCode::InvalidScope,
        ] {
            assert_eq!(OAuthErrorCode::from_wire(code.as_str()), code);
        }
        assert_eq!(OAuthErrorCode::from_wire("Invalid_Scope"), OAuthErrorCode::Other);
        assert_eq!(OAuthErrorCode::Other.as_str(), "other");
    }

    #[tokio::test]
    async fn retry_after_is_capped_like_twilios() {
        let far = (chrono::Utc::now() + chrono::Duration::days(30)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let server = MockServer::start(vec![
            Reply::json(429, "").header("retry-after", "99999999"),
            Reply::json(503, "").header("retry-after", far),
            Reply::json(503, "").header("retry-after", "30"),
        ])
        .await;
        let c = client();
        let secret = Secret::new("s");
        for expected in [MAX_RETRY_AFTER, MAX_RETRY_AFTER, Duration::from_secs(30)] {
            let e = c.request_client_credentials_token(&server.base, "id", &secret, None).await.unwrap_err();
            assert!(e.is_transient());
            assert_eq!(e.retry_after(), Some(expected));
        }
    }

    #[test]
    fn a_url_with_userinfo_is_refused_and_redacted() {
        let err = IdentityClient::token_endpoint("https://client:SEKRIT-TOKEN-123@id.example.com").unwrap_err();
        assert!(matches!(err, IdentityError::InvalidInput(_)));
        assert!(!err.to_string().contains(SEKRIT) && err.to_string().contains("https://***@id.example.com"), "{err}");
    }
}
