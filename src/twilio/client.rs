//! The HTTP client: configuration, one request path shared by every endpoint, and paging.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::body::{read_limited, BodyError, MAX_TWILIO_BODY_BYTES};
use super::error::{self, TwilioError};
use super::holds::AccountHolds;
use super::redact::redact_url;
use super::secret::Credentials;

/// Default host of the 2010-04-01 REST API.
pub const DEFAULT_API_BASE_URL: &str = "https://api.twilio.com";
/// Default host of the Messaging v1/v2 APIs.
pub const DEFAULT_MESSAGING_BASE_URL: &str = "https://messaging.twilio.com";
/// Default host of the Conversations v1 API (address configurations).
pub const DEFAULT_CONVERSATIONS_BASE_URL: &str = "https://conversations.twilio.com";
/// Default host of the Content API v1 (content templates).
pub const DEFAULT_CONTENT_BASE_URL: &str = "https://content.twilio.com";
/// Default host of the Monitor v1 API (the Debugger's alerts).
pub const DEFAULT_MONITOR_BASE_URL: &str = "https://monitor.twilio.com";
/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on pages followed by one list call: a guard against a server that pages
/// forever, not a cap on results. Reaching it fails the call with
/// [`TwilioError::PageLimit`]; a partial list is never returned. At the page sizes the client
/// asks for (1000 senders, 50 numbers filtered by one number) this is far beyond any real
/// account.
pub(crate) const MAX_PAGES: usize = 1000;

/// The default `User-Agent`: `whatsapp-operator/<crate version>`.
pub fn default_user_agent() -> String {
    format!("whatsapp-operator/{}", env!("CARGO_PKG_VERSION"))
}

/// Where and how the client talks to Twilio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioConfig {
    /// Origin of the 2010 API, e.g. `https://api.twilio.com` or a regional edge such as
    /// `https://api.dublin.ie1.twilio.com`. A path prefix is kept; trailing `/` is ignored.
    pub api_base_url: String,
    /// Origin of the Messaging APIs, e.g. `https://messaging.twilio.com`.
    pub messaging_base_url: String,
    /// Origin of the Conversations API; `None`: derived from `messaging_base_url`
    /// ([`conversations_base_for`]).
    pub conversations_base_url: Option<String>,
    /// Origin of the Content API; `None`: derived from `messaging_base_url`
    /// ([`content_base_for`]).
    pub content_base_url: Option<String>,
    /// Origin of the Monitor API (alerts); `None`: derived from `messaging_base_url`
    /// ([`monitor_base_for`]).
    pub monitor_base_url: Option<String>,
    /// Whole-request timeout (connect + send + response). Connecting alone is bounded by
    /// the smaller of this and 5 s.
    pub timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Allow `http://` base URLs on hosts other than loopback (an in-cluster simulator).
    /// Plain http always works for 127.0.0.1, `::1` and `localhost`.
    pub allow_insecure_http: bool,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            messaging_base_url: DEFAULT_MESSAGING_BASE_URL.to_owned(),
            conversations_base_url: None,
            content_base_url: None,
            monitor_base_url: None,
            timeout: DEFAULT_TIMEOUT,
            user_agent: default_user_agent(),
            allow_insecure_http: false,
        }
    }
}

impl TwilioConfig {
    /// A configuration whose two base URLs both point at `base` (a simulator or a proxy).
    pub fn with_single_base_url(base: impl Into<String>) -> Self {
        let base = base.into();
        Self { api_base_url: base.clone(), messaging_base_url: base, ..Self::default() }
    }
}

/// The origin of a sibling API that goes with a Messaging origin: `messaging.` as the host's
/// first label becomes `label.` (`https://messaging.dublin.ie1.twilio.com` →
/// `https://conversations.dublin.ie1.twilio.com`); any other origin (a simulator, a proxy)
/// serves them all.
fn sibling_base_for(messaging_base_url: &str, label: &str) -> String {
    match messaging_base_url.split_once("://") {
        Some((scheme, rest)) if rest.starts_with("messaging.") => {
            format!("{scheme}://{label}.{}", &rest["messaging.".len()..])
        }
        _ => messaging_base_url.to_owned(),
    }
}

/// The Conversations origin that goes with a Messaging origin ([`sibling_base_for`]).
pub fn conversations_base_for(messaging_base_url: &str) -> String {
    sibling_base_for(messaging_base_url, "conversations")
}

/// The Content origin (templates) that goes with a Messaging origin ([`sibling_base_for`]).
pub fn content_base_for(messaging_base_url: &str) -> String {
    sibling_base_for(messaging_base_url, "content")
}

/// The Monitor origin (alerts) that goes with a Messaging origin ([`sibling_base_for`]).
pub fn monitor_base_for(messaging_base_url: &str) -> String {
    sibling_base_for(messaging_base_url, "monitor")
}

/// Which API a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// api.twilio.com (2010-04-01).
    Core,
    /// messaging.twilio.com (v1, v2).
    Messaging,
    /// conversations.twilio.com (v1).
    Conversations,
    /// content.twilio.com (v1).
    Content,
    /// monitor.twilio.com (v1).
    Monitor,
}

/// A typed Twilio REST client. Cheap to clone (one shared connection pool).
///
/// Every call takes the [`Credentials`] to use, so one client serves every channel and
/// account. The client does not retry: see [`TwilioError::is_transient`].
#[derive(Clone, Debug)]
pub struct TwilioClient {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    api_base: String,
    messaging_base: String,
    conversations_base: String,
    content_base: String,
    monitor_base: String,
    observer: Option<RequestObserver>,
    holds: Option<Arc<AccountHolds>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("api_base", &self.api_base).field("messaging_base", &self.messaging_base).finish()
    }
}

/// Told about every request the client sends: its operation (e.g. `fetch_account`), the HTTP
/// status of the answer (`None`: no answer — a transport failure or timeout) and how long it
/// took. For metrics; never sees URLs, bodies or credentials.
pub type RequestObserver = Arc<dyn Fn(&'static str, Option<u16>, Duration) + Send + Sync>;

/// A request body.
pub(crate) enum Body {
    /// No body.
    None,
    /// `application/x-www-form-urlencoded` (2010 API, Messaging v1).
    Form(Vec<(&'static str, String)>),
    /// `application/json` (Messaging v2 Senders).
    Json(serde_json::Value),
}

/// One request: what the tracing span and errors call it, and what goes on the wire.
pub(crate) struct Request<'a> {
    /// Client operation name, e.g. `fetch_account`.
    pub op: &'static str,
    /// HTTP method.
    pub method: Method,
    /// Path template for logs, e.g. `/2010-04-01/Accounts/{Sid}.json` (no values).
    pub template: &'static str,
    /// The full URL, query included.
    pub url: Url,
    /// Credentials to authenticate with.
    pub creds: &'a Credentials,
    /// Body.
    pub body: Body,
}

impl TwilioClient {
    /// Builds a client. Installs rustls' `ring` crypto provider as the process default if
    /// none is installed yet (reqwest is built without one).
    pub fn new(config: TwilioConfig) -> Result<Self, TwilioError> {
        let api_base = checked_base(&config.api_base_url, config.allow_insecure_http)?;
        let messaging_base = checked_base(&config.messaging_base_url, config.allow_insecure_http)?;
        if config.timeout.is_zero() {
            return Err(TwilioError::InvalidInput("the timeout must be positive".into()));
        }
        let conversations =
            config.conversations_base_url.clone().unwrap_or_else(|| conversations_base_for(&messaging_base));
        let conversations_base = checked_base(&conversations, config.allow_insecure_http)?;
        let content = config.content_base_url.clone().unwrap_or_else(|| content_base_for(&messaging_base));
        let content_base = checked_base(&content, config.allow_insecure_http)?;
        let monitor = config.monitor_base_url.clone().unwrap_or_else(|| monitor_base_for(&messaging_base));
        let monitor_base = checked_base(&monitor, config.allow_insecure_http)?;
        let http = http_client(config.timeout, &config.user_agent)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base,
                messaging_base,
                conversations_base,
                content_base,
                monitor_base,
                observer: None,
                holds: None,
            }),
        })
    }

    /// The same client, telling `observer` about every request.
    pub fn observed(self, observer: RequestObserver) -> Self {
        Self { inner: Arc::new(Inner { observer: Some(observer), ..(*self.inner).clone() }) }
    }

    /// The same client, sending nothing for an account `holds` holds: such a call fails at
    /// once with [`TwilioError::RateLimited`] carrying the rest of the hold, as if Twilio had
    /// answered 429 (no request is made, none is observed).
    pub fn with_holds(self, holds: Arc<AccountHolds>) -> Self {
        Self { inner: Arc::new(Inner { holds: Some(holds), ..(*self.inner).clone() }) }
    }

    /// The configured 2010 API base URL (no trailing `/`).
    pub fn api_base_url(&self) -> &str {
        &self.inner.api_base
    }

    /// The configured Messaging API base URL (no trailing `/`).
    pub fn messaging_base_url(&self) -> &str {
        &self.inner.messaging_base
    }

    fn base(&self, api: Api) -> &str {
        match api {
            Api::Core => &self.inner.api_base,
            Api::Messaging => &self.inner.messaging_base,
            Api::Conversations => &self.inner.conversations_base,
            Api::Content => &self.inner.content_base,
            Api::Monitor => &self.inner.monitor_base,
        }
    }

    /// `base + path` (path starts with `/`, values already validated) plus a query.
    pub(crate) fn url(&self, api: Api, path: &str, query: &[(&str, String)]) -> Result<Url, TwilioError> {
        let mut url = Url::parse(&format!("{}{path}", self.base(api)))
            .map_err(|e| TwilioError::InvalidInput(format!("cannot build a URL: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Rebases a next-page link onto the configured base: Twilio sends relative URIs
    /// (2010 API) or absolute URLs on its public host (Messaging); either way only path and
    /// query are kept, so paging follows a regional edge or a test server, and credentials
    /// are never sent to a host other than the configured one.
    pub(crate) fn next_page_url(&self, api: Api, link: &str) -> Result<Url, TwilioError> {
        let path_and_query = if link.starts_with('/') {
            link.to_owned()
        } else {
            let absolute =
                Url::parse(link).map_err(|e| TwilioError::InvalidInput(format!("bad next page link: {e}")))?;
            match absolute.query() {
                Some(q) => format!("{}?{q}", absolute.path()),
                None => absolute.path().to_owned(),
            }
        };
        Url::parse(&format!("{}{path_and_query}", self.base(api)))
            .map_err(|e| TwilioError::InvalidInput(format!("bad next page link: {e}")))
    }

    /// Sends one request and decodes a 2xx JSON body. Maps every failure to [`TwilioError`].
    pub(crate) async fn execute<T: DeserializeOwned>(&self, req: Request<'_>) -> Result<T, TwilioError> {
        req.creds.validate()?;
        if let Some(wait) = self.inner.holds.as_ref().and_then(|h| h.remaining(req.creds.account_sid())) {
            tracing::debug!(
                op = req.op,
                account = req.creds.account_sid(),
                ?wait,
                "account on a rate-limit hold: not sent"
            );
            return Err(TwilioError::RateLimited { retry_after: Some(wait), code: None });
        }
        let span = tracing::debug_span!(
            "twilio",
            op = req.op,
            method = %req.method,
            path = req.template,
            account = req.creds.account_sid(),
        );
        let op = req.op;
        let started = Instant::now();
        let mut status = None;
        let result = self.execute_inner(req, &mut status).instrument(span).await;
        if let Some(observer) = &self.inner.observer {
            observer(op, status, started.elapsed());
        }
        result
    }

    async fn execute_inner<T: DeserializeOwned>(
        &self,
        req: Request<'_>,
        answered: &mut Option<u16>,
    ) -> Result<T, TwilioError> {
        let Request { op, method, url, creds, body, .. } = req;
        let is_post = method == Method::POST;
        let (user, password) = creds.basic();
        let mut builder = self
            .inner
            .http
            .request(method, url)
            .basic_auth(user, Some(password))
            .header(reqwest::header::ACCEPT, "application/json");
        builder = match body {
            Body::None => builder,
            Body::Form(fields) => builder.form(&fields),
            Body::Json(value) => builder.json(&value),
        };
        let started = Instant::now();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) => {
                let timeout = err.is_timeout();
                let ambiguous = is_post && !err.is_connect();
                let message = error::transport_message(err);
                tracing::debug!(elapsed_ms = elapsed_ms(started), timeout, ambiguous, %message, "twilio request failed");
                return Err(TwilioError::Transport { op, message, timeout, ambiguous });
            }
        };
        let status = response.status();
        *answered = Some(status.as_u16());
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let bytes = match read_limited(response, MAX_TWILIO_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                tracing::debug!(
                    status = status.as_u16(),
                    elapsed_ms = elapsed_ms(started),
                    "twilio response body over the limit"
                );
                let status = status.as_u16();
                let ambiguous = is_post && ((200..300).contains(&status) || status >= 500);
                return Err(TwilioError::TooLarge { op, status, limit: MAX_TWILIO_BODY_BYTES, ambiguous });
            }
            Err(BodyError::Read(err)) => {
                let timeout = err.is_timeout();
                let message = error::transport_message(err);
                tracing::debug!(status = status.as_u16(), elapsed_ms = elapsed_ms(started), %message, "twilio response body failed");
                if status.is_success() && !timeout {
                    return Err(TwilioError::Decode {
                        op,
                        status: status.as_u16(),
                        message: format!("reading the body failed: {message}"),
                        ambiguous: is_post,
                    });
                }
                // A timed-out body is transient like any timeout; a POST answered 2xx was applied.
                return Err(TwilioError::Transport {
                    op,
                    message,
                    timeout,
                    ambiguous: is_post && (status.is_success() || status.is_server_error()),
                });
            }
        };
        tracing::debug!(status = status.as_u16(), elapsed_ms = elapsed_ms(started), "twilio response");
        classify(op, status.as_u16(), retry_after.as_deref(), content_type.as_deref(), &bytes, is_post)
    }

    /// Fetches pages from `first` on, following `next` links, until `visit` says stop or there
    /// is no next page. A listing that does not end (more than [`MAX_PAGES`] pages, or a
    /// next-page link already visited) fails with [`TwilioError::PageLimit`]: the caller must
    /// discard what `visit` collected, as the error path of every caller does.
    pub(crate) async fn paginate<P, F>(
        &self,
        api: Api,
        op: &'static str,
        template: &'static str,
        creds: &Credentials,
        first: Url,
        visit: F,
    ) -> Result<(), TwilioError>
    where
        P: Paged + DeserializeOwned,
        F: FnMut(Vec<P::Item>) -> std::ops::ControlFlow<()>,
    {
        self.paginate_bounded::<P, F>(api, op, template, creds, first, MAX_PAGES, visit).await
    }

    /// [`TwilioClient::paginate`] with an explicit page bound (tests use a small one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn paginate_bounded<P, F>(
        &self,
        api: Api,
        op: &'static str,
        template: &'static str,
        creds: &Credentials,
        first: Url,
        max_pages: usize,
        mut visit: F,
    ) -> Result<(), TwilioError>
    where
        P: Paged + DeserializeOwned,
        F: FnMut(Vec<P::Item>) -> std::ops::ControlFlow<()>,
    {
        let mut url = first;
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0;
        loop {
            if pages >= max_pages {
                tracing::warn!(op, pages, "Twilio's listing did not end within the page limit; failing the call");
                return Err(TwilioError::PageLimit { op, pages, looped: false });
            }
            seen.insert(url.to_string());
            let page: P =
                self.execute(Request { op, method: Method::GET, template, url, creds, body: Body::None }).await?;
            pages += 1;
            let next = page.next_link().map(str::to_owned);
            if visit(page.into_items()).is_break() {
                return Ok(());
            }
            let Some(next) = next else { return Ok(()) };
            url = self.next_page_url(api, &next)?;
            if seen.contains(url.as_str()) {
                tracing::warn!(op, pages, "Twilio returned a next-page link already visited; failing the call");
                return Err(TwilioError::PageLimit { op, pages, looped: true });
            }
        }
    }

    /// The first item across pages that matches `wanted`, paging only as far as needed.
    pub(crate) async fn find_paged<P>(
        &self,
        api: Api,
        op: &'static str,
        template: &'static str,
        creds: &Credentials,
        first: Url,
        wanted: impl Fn(&P::Item) -> bool,
    ) -> Result<Option<P::Item>, TwilioError>
    where
        P: Paged + DeserializeOwned,
    {
        let mut found = None;
        self.paginate::<P, _>(api, op, template, creds, first, |items| {
            found = items.into_iter().find(|item| wanted(item));
            if found.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .await?;
        Ok(found)
    }
}

/// A list page: its items and the link to the next page.
pub(crate) trait Paged {
    /// The resource type.
    type Item;
    /// The next page link (`next_page_uri` or `meta.next_page_url`), when there is one.
    fn next_link(&self) -> Option<&str>;
    /// The items.
    fn into_items(self) -> Vec<Self::Item>;
}

/// A [`TwilioClient::paginate`] visitor that reads pages until `done(page)` returns `true`.
pub(crate) fn stop_when<T>(mut done: impl FnMut(Vec<T>) -> bool) -> impl FnMut(Vec<T>) -> std::ops::ControlFlow<()> {
    move |items| if done(items) { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) }
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Maps a response that was read whole to the call's result: a 2xx body decoded as `T`, a
/// redirect (never followed) to [`TwilioError::Redirected`], any other status to its error.
/// Pure and total: no input panics.
pub(crate) fn classify<T: DeserializeOwned>(
    op: &'static str,
    status: u16,
    retry_after: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    is_post: bool,
) -> Result<T, TwilioError> {
    if (300..400).contains(&status) {
        return Err(TwilioError::Redirected { op, status });
    }
    if !(200..300).contains(&status) {
        return Err(error::from_response(status, retry_after, content_type, body, is_post));
    }
    serde_json::from_slice(body).map_err(|e| error::decode_error(op, status, content_type, body, &e, is_post))
}

/// Validates a base URL: http(s), a host, no query or fragment; http only on loopback
/// unless allowed. Returns it without a trailing `/`.
pub(crate) fn checked_base(raw: &str, allow_insecure_http: bool) -> Result<String, TwilioError> {
    // Messages quote the URL with its userinfo redacted.
    let shown = redact_url(raw);
    let url = Url::parse(raw.trim())
        .map_err(|e| TwilioError::InvalidInput(format!("base URL {shown:?} is not a URL: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(TwilioError::InvalidInput(format!(
            "base URL {shown:?} must not have credentials, a query or a fragment"
        )));
    }
    let host = url.host_str().ok_or_else(|| TwilioError::InvalidInput(format!("base URL {shown:?} has no host")))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_insecure_http => {}
        "http" => {
            return Err(TwilioError::InvalidInput(format!(
                "base URL {shown:?} uses plain http on a non-loopback host; use https"
            )));
        }
        other => {
            return Err(TwilioError::InvalidInput(format!("base URL {shown:?} has unsupported scheme {other:?}")));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// One reqwest client with our timeouts, no redirects (a redirect would be a misconfigured
/// base URL; never follow it with credentials) and connection pooling.
pub(crate) fn http_client(timeout: Duration, user_agent: &str) -> Result<reqwest::Client, TwilioError> {
    build(http_builder(timeout, user_agent))
}

/// The builder behind every client of this module: the whole-request `timeout` (connecting
/// alone at most 5 s of it), TLS verified by rustls against the platform's roots (nothing here
/// or anywhere in the crate turns verification off), no redirects, pooled connections.
pub(crate) fn http_builder(timeout: Duration, user_agent: &str) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
}

/// Builds a client, mapping a failure to [`TwilioError::InvalidInput`].
pub(crate) fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, TwilioError> {
    builder.build().map_err(|e| {
        TwilioError::InvalidInput(format!("cannot build the HTTP client: {}", error::transport_message(e)))
    })
}

/// reqwest is built with `rustls-no-provider`: make sure a process-wide provider exists.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(checked_base("https://api.twilio.com/", false).unwrap(), "https://api.twilio.com");
        assert_eq!(
            checked_base("https://api.dublin.ie1.twilio.com", false).unwrap(),
            "https://api.dublin.ie1.twilio.com"
        );
        assert_eq!(checked_base("http://127.0.0.1:8080", false).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(checked_base("http://[::1]:8080/", false).unwrap(), "http://[::1]:8080");
        assert_eq!(checked_base("http://localhost:1/prefix/", false).unwrap(), "http://localhost:1/prefix");
        assert!(checked_base("http://twilio-sim.test.svc:8080", false).is_err());
        assert!(checked_base("http://twilio-sim.test.svc:8080", true).is_ok());
        assert!(checked_base("ftp://x", true).is_err());
        let err = checked_base("https://user:pw@api.twilio.com", false).unwrap_err().to_string();
        assert!(err.contains("https://***@api.twilio.com") && !err.contains("pw"), "{err}");
        assert!(checked_base("https://api.twilio.com/?x=1", false).is_err());
        assert!(checked_base("not a url", false).is_err());
    }

    #[test]
    fn the_content_origin_follows_the_messaging_origin() {
        assert_eq!(content_base_for(DEFAULT_MESSAGING_BASE_URL), DEFAULT_CONTENT_BASE_URL);
        assert_eq!(
            content_base_for("https://messaging.dublin.ie1.twilio.com"),
            "https://content.dublin.ie1.twilio.com"
        );
        assert_eq!(content_base_for("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }

    #[test]
    fn next_page_links_are_rebased() {
        let client = TwilioClient::new(TwilioConfig {
            api_base_url: "http://127.0.0.1:9/edge".into(),
            messaging_base_url: "http://127.0.0.1:9".into(),
            ..TwilioConfig::default()
        })
        .unwrap();
        assert_eq!(
            client
                .next_page_url(Api::Core, "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json?PhoneNumber=%2B1&Page=1&PageToken=PA1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/edge/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json?PhoneNumber=%2B1&Page=1&PageToken=PA1"
        );
        assert_eq!(
            client
                .next_page_url(
                    Api::Messaging,
                    "https://messaging.twilio.com/v2/Channels/Senders?PageSize=10&Page=1&Channel=whatsapp&PageToken=PT1"
                )
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v2/Channels/Senders?PageSize=10&Page=1&Channel=whatsapp&PageToken=PT1"
        );
    }

    #[test]
    fn defaults() {
        let config = TwilioConfig::default();
        assert_eq!(config.api_base_url, "https://api.twilio.com");
        assert_eq!(config.messaging_base_url, "https://messaging.twilio.com");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert!(config.user_agent.starts_with("whatsapp-operator/"));
        assert!(TwilioClient::new(TwilioConfig::default()).is_ok());
        assert!(TwilioClient::new(TwilioConfig { timeout: Duration::ZERO, ..TwilioConfig::default() }).is_err());
    }
}
