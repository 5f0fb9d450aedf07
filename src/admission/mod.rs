//! The validating admission webhook: one number, one channel, enforced when a channel is
//! written, not only when it is reconciled.
//!
//! The webhook serves `POST /validate-whatsappchannel` (`admission.k8s.io/v1` `AdmissionReview`)
//! and `GET /healthz` over HTTPS. A create of a `WhatsAppChannel`, or an update that changes its
//! claim (the number, the mode, or the account of a `Sandbox` channel; see
//! [`decision::claimant`]), is rejected (code 409) when
//!
//! - the number's `WhatsAppNumberBinding` names another channel that still exists and still asks
//!   for the number (the rule of [`crate::binding::is_current_holder`]), or
//! - another channel, not bound yet, asks for the same number and was created earlier (then by
//!   namespace/name): it will win the binding, so this one would only sit in `Conflict`.
//!
//! The message names the holder: `+14155550100 is already served by WhatsAppChannel crm/sales
//! (instance crm-prod); one number serves one application instance`. Everything else is admitted:
//! deletes, updates that keep the claim (metadata, finalizers, other fields), and dry runs (a
//! would-be denial comes back as a warning).
//!
//! **From the controller's cache.** The decision itself is pure ([`decision`]); its inputs come
//! from the controller's [`Cache`], never from a LIST: the binding by name, its holder by
//! namespace/name, and the other channels filed under the binding name in the channel index.
//! Only a holder the cache does not have (outside the operator's `--namespace`, or gone) is
//! read with one GET. The cache follows the cluster by watches, so it can lag a write by a
//! moment: two channels created for one number within that moment are both admitted, and the
//! binding the controller creates atomically settles which one serves the number. With
//! `--namespace`, the cache holds that namespace's channels only (bindings are cluster-wide):
//! an unbound channel elsewhere asking for the number is not seen, a bound holder elsewhere is.
//!
//! **Failure policy.** The configuration ([`register::webhook_configuration`]) sends creates
//! with `failurePolicy: Fail` (an unreachable webhook refuses them, so a broken installation
//! shows at once) and updates with `failurePolicy: Ignore`, so that an unreachable webhook never
//! blocks removing a finalizer or any other update; status writes go to the status subresource,
//! which it does not match. When the webhook itself cannot decide (the cache has not listed the
//! cluster yet, the GET of a holder fails, or no decision within [`LOOKUP_TIMEOUT`]), it admits
//! the request with a warning: the binding the controller creates atomically remains the
//! guarantee that a number serves one instance, so failing there would only make channel writes
//! flaky without adding safety.
//!
//! **Certificates.** With PEM files ([`TlsSource::Files`], a Secret in a cluster) the files are
//! re-read when they change. Otherwise a CA and a serving certificate for `127.0.0.1`, `::1`,
//! `localhost` and the advertised URL's host are generated at startup and kept in memory only.
//!
//! **Registration.** With a [`Registration`] the webhook writes its own
//! `ValidatingWebhookConfiguration` (the advertised URL, the CA as `caBundle`) once it listens, and
//! removes it again at shutdown unless another process has rewritten it since. Meant for local
//! use: with generated certificates, every start has a new CA. In a cluster, install the
//! configuration with the chart instead.

pub mod decision;
pub mod register;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use kube::api::Api;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use kube::Client;

use crate::api::{WhatsAppChannel, WhatsAppNumberBinding, GROUP};
use crate::controller::cache::{binding_key, Cache};
use decision::{Claimant, Verdict};

pub use register::{register, unregister, webhook_configuration, Registration};
pub use tls::{SelfSigned, TlsSource};

/// The path the API server posts `AdmissionReview`s of channels to.
pub const VALIDATE_PATH: &str = "/validate-whatsappchannel";
/// The liveness path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The longest the webhook waits for the operator's caches to list the cluster, or for the one
/// GET of a binding holder they do not have, before it admits with a warning (the API server
/// gives up on the webhook after [`register::TIMEOUT_SECONDS`]).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a review waiting for the caches' first listing looks again.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often PEM files are checked for a rotated certificate.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// How long in-flight reviews may finish at shutdown.
const GRACE: Duration = Duration::from_secs(5);

/// Settings of the webhook server.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Where to listen, e.g. `127.0.0.1:9443` (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The URL the API server calls (its path defaults to [`VALIDATE_PATH`]). When `None`, it is
    /// `https://<listening address><VALIDATE_PATH>`, which needs a specific (not unspecified)
    /// listening IP.
    pub url: Option<String>,
    /// The serving certificate.
    pub tls: TlsSource,
    /// Whether (and how) the webhook registers itself with the API server.
    pub registration: Option<Registration>,
}

impl AdmissionConfig {
    /// Listens on `addr` with a generated certificate; no registration.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, url: None, tls: TlsSource::SelfSigned { hosts: Vec::new() }, registration: None }
    }
}

/// What can go wrong starting or running the webhook.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The listening address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the admission webhook server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The server stopped on its own.
    #[error("the admission webhook server stopped unexpectedly")]
    Stopped,
    /// A certificate or key file cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key is not usable PEM (the key's content is never shown).
    #[error("invalid {what}: {reason}")]
    Pem {
        /// Which file or part.
        what: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The certificates could not be generated.
    #[error("cannot generate the serving certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The advertised URL is not an https URL.
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No URL was given and none can be derived from the listening address.
    #[error("listening on {addr}: give the URL the API server should call (--admission-url)")]
    MissingUrl {
        /// The listening address.
        addr: SocketAddr,
    },
    /// The `ValidatingWebhookConfiguration` could not be written or removed.
    #[error("cannot write ValidatingWebhookConfiguration {name}: {source}")]
    Register {
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// A bound, not yet serving, webhook: its address, URL and CA are known, so a caller (a test) can
/// register it before it runs.
pub struct Webhook {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    url: String,
    tls: RustlsConfig,
    ca_bundle: Vec<u8>,
    files: Option<(PathBuf, PathBuf)>,
    registration: Option<Registration>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("local_addr", &self.local_addr).field("url", &self.url).finish_non_exhaustive()
    }
}

impl Webhook {
    /// Listens on `config.addr` and loads (or generates) the serving certificate.
    pub async fn bind(config: AdmissionConfig) -> Result<Self, AdmissionError> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| AdmissionError::Bind { addr: config.addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| AdmissionError::Bind { addr: config.addr, source })?;
        let listener = listener.into_std().map_err(|source| AdmissionError::Bind { addr: config.addr, source })?;
        let url = advertised_url(config.url.as_deref(), local_addr)?;
        let (tls, ca_bundle, files) = match config.tls {
            TlsSource::SelfSigned { mut hosts } => {
                if let Some(host) = reqwest::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned)) {
                    hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
                }
                let generated = SelfSigned::generate(&hosts)?;
                let tls = RustlsConfig::from_config(tls::self_signed_config(&generated)?);
                (tls, generated.ca_pem.into_bytes(), None)
            }
            TlsSource::Files { cert, key } => {
                let (cert_pem, key_pem) = tls::read_pair(&cert, &key).await?;
                let tls =
                    RustlsConfig::from_config(tls::server_config(&cert_pem, &key_pem, &cert.display().to_string())?);
                // The API server trusts a chain whose certificate is itself in the bundle, so the
                // chain file serves as caBundle whether it is self-signed or ends in its CA.
                (tls, cert_pem, Some((cert, key)))
            }
        };
        Ok(Self { listener, local_addr, url, tls, ca_bundle, files, registration: config.registration })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL the API server is to call.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM the API server verifies the serving certificate with (`caBundle`).
    pub fn ca_bundle(&self) -> &[u8] {
        &self.ca_bundle
    }

    /// Serves reviews, decided from `cache` (the controller's, see
    /// [`crate::controller::prepare`]), until `shutdown` resolves: registers first when
    /// configured to, and removes that registration before it stops.
    pub async fn run(
        self,
        client: Client,
        cache: Cache,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AdmissionError> {
        let app = router(Shared { client: client.clone(), cache, lookup_timeout: LOOKUP_TIMEOUT });
        let handle = axum_server::Handle::new();
        let server = axum_server::tls_rustls::from_tcp_rustls(self.listener, self.tls.clone())
            .map_err(AdmissionError::Serve)?
            .handle(handle.clone())
            .serve(app.into_make_service());
        let mut server = tokio::spawn(server);
        let reload = self.files.map(|(cert, key)| tokio::spawn(reload_on_change(cert, key, self.tls.clone())));
        let stop = |reload: Option<tokio::task::JoinHandle<()>>| {
            if let Some(r) = reload {
                r.abort();
            }
        };

        let registered = match &self.registration {
            Some(reg) => match register(&client, reg, &self.url, &self.ca_bundle).await {
                Ok(obj) => Some((reg.name.clone(), obj)),
                Err(e) => {
                    handle.shutdown();
                    stop(reload);
                    return Err(e);
                }
            },
            None => None,
        };
        tracing::info!(addr = %self.local_addr, url = %self.url, registered = ?registered.as_ref().map(|r| &r.0), "admission webhook serving");

        let ended_early = tokio::select! {
            () = shutdown => None,
            res = &mut server => Some(res),
        };
        if let Some((name, obj)) = &registered {
            if let Err(e) = unregister(&client, name, Some(obj)).await {
                tracing::warn!(error = %e, "cannot remove the webhook registration");
            }
        }
        stop(reload);
        let (res, early) = match ended_early {
            Some(res) => (res, true),
            None => {
                handle.graceful_shutdown(Some(GRACE));
                (server.await, false)
            }
        };
        match res {
            Ok(Ok(())) if !early => Ok(()),
            Ok(Ok(())) => Err(AdmissionError::Stopped),
            Ok(Err(e)) => Err(AdmissionError::Serve(e)),
            Err(e) => Err(AdmissionError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Binds and runs the webhook over `cache` until `shutdown` resolves (see [`Webhook::run`]).
pub async fn serve(
    client: Client,
    cache: Cache,
    config: AdmissionConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AdmissionError> {
    Webhook::bind(config).await?.run(client, cache, shutdown).await
}

/// Runs the webhook while `main` (the controller that fills `cache`) runs, and stops it after
/// `main` is done, so the controller's own writes are never refused for want of a webhook. Fails
/// without waiting for `main` when the webhook cannot start or stops.
pub async fn serve_alongside<F: Future>(
    client: Client,
    cache: Cache,
    config: AdmissionConfig,
    main: F,
) -> Result<F::Output, AdmissionError> {
    let webhook = Webhook::bind(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = webhook.run(client, cache, async move {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    tokio::pin!(main);
    tokio::select! {
        out = &mut main => {
            let _ = stop.send(());
            server.await?;
            Ok(out)
        }
        res = &mut server => {
            res?;
            Err(AdmissionError::Stopped)
        }
    }
}

/// The advertised URL: `url` with [`VALIDATE_PATH`] when it has no path, or one derived from
/// the listening address.
fn advertised_url(url: Option<&str>, addr: SocketAddr) -> Result<String, AdmissionError> {
    let Some(url) = url else {
        if addr.ip().is_unspecified() {
            return Err(AdmissionError::MissingUrl { addr });
        }
        return Ok(format!("https://{addr}{VALIDATE_PATH}"));
    };
    let invalid = |reason: &str| AdmissionError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let mut parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if parsed.scheme() != "https" {
        return Err(invalid("the API server calls webhooks over https only"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(invalid("no user, query or fragment allowed"));
    }
    if parsed.path() == "/" || parsed.path().is_empty() {
        parsed.set_path(VALIDATE_PATH);
    }
    Ok(parsed.to_string())
}

/// What a review reads: the controller's cache, and a client for the one GET of a binding holder
/// the cache does not have.
#[derive(Clone)]
struct Shared {
    client: Client,
    cache: Cache,
    lookup_timeout: Duration,
}

fn router(shared: Shared) -> Router {
    Router::new().route(VALIDATE_PATH, post(validate)).route(HEALTHZ_PATH, get(|| async { "ok" })).with_state(shared)
}

/// Answers one `AdmissionReview`; a body that is not one is answered as invalid (with HTTP 200,
/// as the protocol wants).
async fn validate(State(shared): State<Shared>, body: Bytes) -> Json<AdmissionReview<DynamicObject>> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")).into_review()),
    };
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e).into_review()),
    };
    Json(review_response(&shared, &req).await.into_review())
}

async fn review_response(shared: &Shared, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    if req.kind.group != GROUP || req.kind.kind != "WhatsAppChannel" {
        tracing::warn!(kind = ?req.kind, "admission review of an unexpected kind: admitted");
        return response;
    }
    let parse = |o: &Option<DynamicObject>| o.clone().map(|o| o.try_parse::<WhatsAppChannel>()).transpose();
    let (object, old) = match (parse(&req.object), parse(&req.old_object)) {
        (Ok(object), Ok(old)) => (object, old),
        (Err(e), _) | (_, Err(e)) => {
            // The API server validated the object against the CRD schema already.
            tracing::warn!(error = %e, "cannot read the channel under review: admitted");
            return response;
        }
    };
    let Some(claimant) = decision::claimant(&req.operation, req.namespace.as_deref(), object.as_ref(), old.as_ref())
    else {
        return response;
    };
    let verdict = match tokio::time::timeout(shared.lookup_timeout, lookup(shared, &claimant)).await {
        Ok(Ok(facts)) => {
            let rivals: Vec<&WhatsAppChannel> = facts.rivals.iter().collect();
            decision::judge(&claimant, facts.binding.as_deref(), facts.holder.as_ref(), &rivals)
        }
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => format!("cannot read the binding's holder: {e}"),
                _ if !shared.cache.ready() => "the operator's caches have not listed the cluster yet".to_owned(),
                _ => format!("no answer within {:?}", shared.lookup_timeout),
            };
            tracing::warn!(number = %claimant.number.as_str(), error = %reason, "cannot check the number: admitted");
            Verdict::Warn(format!(
                "could not check whether {} is free ({reason}); the operator still gives a number to one channel only",
                claimant.number.as_str()
            ))
        }
    };
    let verdict = if req.dry_run { decision::for_dry_run(verdict) } else { verdict };
    let channel = format!("{}/{}", claimant.namespace, claimant.name);
    match verdict {
        Verdict::Allow => response,
        Verdict::Warn(message) => {
            tracing::info!(%channel, %message, "admitted with a warning");
            let mut response = response;
            response.warnings = Some(vec![message]);
            response
        }
        Verdict::Deny(message) => {
            tracing::info!(%channel, %message, "denied");
            let mut response = response.deny(message);
            response.result.code = 409;
            response.result.reason = "Conflict".to_owned();
            response
        }
    }
}

/// The objects [`decision::judge`] needs about a claimant's number.
struct Facts {
    binding: Option<Arc<WhatsAppNumberBinding>>,
    holder: Option<WhatsAppChannel>,
    rivals: Vec<WhatsAppChannel>,
}

/// Reads what the cache knows of `claimant`'s number, once the cache has listed the cluster
/// (until then it waits; the caller's timeout ends the wait): the number's binding, the
/// binding's holder, and the channels filed under the binding name. The holder is read from the
/// API server (one GET, never a LIST) only when the cache does not have it: it may be outside
/// the operator's namespace (`--namespace`), or gone (a stale binding).
async fn lookup(shared: &Shared, claimant: &Claimant) -> Result<Facts, kube::Error> {
    let cache = &shared.cache;
    while !cache.ready() {
        tokio::time::sleep(READY_POLL).await;
    }
    let name = claimant.binding_name();
    let binding = cache.binding(&name);
    let holder = match binding.as_ref().map(|b| &b.spec.channel_ref) {
        None => None,
        // The object at the claimant's own namespace/name is the claimant: never another holder.
        Some(h) if h.namespace == claimant.namespace && h.name == claimant.name => None,
        Some(h) => match cache.channel(&h.namespace, &h.name) {
            Some(ch) => Some(ch),
            None => {
                let api: Api<WhatsAppChannel> = Api::namespaced(shared.client.clone(), &h.namespace);
                api.get_opt(&h.name).await?
            }
        },
    };
    let rivals = cache.channels_filed_under(&binding_key(&name));
    Ok(Facts { binding, holder, rivals })
}

/// Re-reads the PEM files every [`TLS_RELOAD_INTERVAL`] and swaps the certificate when they
/// changed (a rotated Secret). A broken pair is logged and the previous one kept.
async fn reload_on_change(cert: PathBuf, key: PathBuf, tls: RustlsConfig) {
    let mut last = tls::read_pair(&cert, &key).await.ok();
    let mut tick = tokio::time::interval(TLS_RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let pair = match tls::read_pair(&cert, &key).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the webhook certificate; keeping the current one");
                continue;
            }
        };
        if last.as_ref() == Some(&pair) {
            continue;
        }
        match tls::server_config(&pair.0, &pair.1, &cert.display().to_string()) {
            Ok(config) => {
                tls.reload_from_config(config);
                tracing::info!(cert = %cert.display(), "webhook certificate reloaded");
                last = Some(pair);
            }
            Err(e) => tracing::warn!(error = %e, "the new webhook certificate is unusable; keeping the current one"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding;
    use crate::controller::stored::StoredChannel;
    use crate::twilio::E164;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    const NUMBER: &str = "+14155550100";

    /// A client whose every request fails: nothing listens on port 1.
    fn unreachable_client() -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("uri"));
        Client::try_from(config).expect("client")
    }

    fn channel_json(ns: &str, name: &str, uid: &str, created: &str) -> serde_json::Value {
        json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppChannel",
            "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": created},
            "spec": {
                "phoneNumber": NUMBER,
                "instance": format!("{name}-instance"),
                "twilio": {"accountSid": "AC0123456789abcdef0123456789abcdef", "credentialsSecretRef": {"name": "t"}},
                "webhook": {"url": "https://receiver.example.com/hook"},
            },
        })
    }

    fn channel(ns: &str, name: &str, uid: &str, created: &str) -> WhatsAppChannel {
        serde_json::from_value(channel_json(ns, name, uid, created)).expect("channel")
    }

    fn bound(ch: &WhatsAppChannel) -> WhatsAppNumberBinding {
        binding::binding_for(ch, &E164::parse(NUMBER).expect("number")).expect("binding")
    }

    /// A cache holding `channels` and `bindings` (indexed as the controller's watches index
    /// them), and listed when `listed`.
    fn cache_with(channels: &[WhatsAppChannel], bindings: &[WhatsAppNumberBinding], listed: bool) -> Cache {
        let (channel_store, mut channel_writer) = reflector::store();
        let (binding_store, mut binding_writer) = reflector::store();
        let cache = Cache {
            channels: channel_store,
            bindings: binding_store,
            secrets: Default::default(),
            channel_index: Default::default(),
            holder_index: Default::default(),
            listed: Default::default(),
            trim: Default::default(),
        };
        for ch in channels {
            let event = Event::Apply(StoredChannel::pack(ch.clone()).expect("pack"));
            channel_writer.apply_watcher_event(&event);
            cache.follow_channel(&event);
        }
        for b in bindings {
            let event = Event::Apply(b.clone());
            binding_writer.apply_watcher_event(&event);
            cache.follow_binding(&event);
        }
        if listed {
            for which in 0..3 {
                cache.note_listed(which, &Event::<()>::InitDone);
            }
        }
        cache
    }

    fn shared(client: Client, cache: Cache) -> Shared {
        Shared { client, cache, lookup_timeout: Duration::from_millis(300) }
    }

    /// A review of `operation` on the channel `other/support` (asking for [`NUMBER`]).
    fn review(operation: &str, dry_run: bool) -> AdmissionRequest<DynamicObject> {
        let channel = channel_json("other", "support", "uid-b", "2024-02-01T00:00:00Z");
        let (object, old) = match operation {
            "DELETE" => (serde_json::Value::Null, channel),
            _ => (channel, serde_json::Value::Null),
        };
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "req-1",
                "kind": {"group": "whatsapp-operator.io", "version": "v1alpha1", "kind": "WhatsAppChannel"},
                "resource": {"group": "whatsapp-operator.io", "version": "v1alpha1", "resource": "whatsappchannels"},
                "name": "support",
                "namespace": "other",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": old,
                "dryRun": dry_run,
            },
        });
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(body).expect("review");
        review.try_into().expect("request")
    }

    #[tokio::test]
    async fn until_the_cache_has_listed_a_create_is_admitted_with_a_warning_and_deletes_need_none() {
        let holder = channel("crm", "sales", "uid-a", "2024-01-01T00:00:00Z");
        let state = shared(unreachable_client(), cache_with(std::slice::from_ref(&holder), &[bound(&holder)], false));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(response.allowed);
        assert_eq!(response.uid, "req-1");
        let warnings = response.warnings.expect("a warning");
        assert_eq!(
            warnings,
            vec!["could not check whether +14155550100 is free (the operator's caches have not listed the cluster \
                  yet); the operator still gives a number to one channel only"
                .to_owned()]
        );

        let response = review_response(&state, &review("DELETE", false)).await;
        assert!(response.allowed && response.warnings.is_none());
    }

    #[tokio::test]
    async fn a_held_number_is_denied_from_the_cache_alone() {
        // The client reaches nothing: the decision is the cache's.
        let holder = channel("crm", "sales", "uid-a", "2024-01-01T00:00:00Z");
        let state = shared(unreachable_client(), cache_with(std::slice::from_ref(&holder), &[bound(&holder)], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(!response.allowed);
        assert_eq!(response.result.code, 409);
        assert_eq!(response.result.reason, "Conflict");
        assert_eq!(
            response.result.message,
            "+14155550100 is already served by WhatsAppChannel crm/sales (instance sales-instance); \
             one number serves one application instance"
        );
        // A dry run: admitted, the denial as a warning.
        let response = review_response(&state, &review("CREATE", true)).await;
        assert!(response.allowed);
        let warnings = response.warnings.expect("a warning");
        assert!(
            warnings[0].starts_with("the request would be rejected: +14155550100 is already served"),
            "{warnings:?}"
        );

        // No binding yet, but an earlier channel in the index asks for the number.
        let state = shared(unreachable_client(), cache_with(&[holder], &[], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(!response.allowed);
        assert!(
            response.result.message.contains("requested by WhatsAppChannel crm/sales"),
            "{}",
            response.result.message
        );

        // Nothing known of the number: admitted.
        let state = shared(unreachable_client(), cache_with(&[], &[], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(response.allowed && response.warnings.is_none());
    }

    /// A fake API server that answers a GET of `elsewhere/sales` with `holder` (404 for anything
    /// else) and records every request's method and path (with query).
    async fn api_server(holder: serde_json::Value) -> (Client, Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::http::{Method, StatusCode, Uri};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri| {
            let holder = holder.clone();
            let record = record.clone();
            async move {
                record.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{method} {uri}"));
                if method == Method::GET
                    && uri.path() == "/apis/whatsapp-operator.io/v1alpha1/namespaces/elsewhere/whatsappchannels/sales"
                {
                    return (StatusCode::OK, Json(holder));
                }
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                    "code": 404, "message": "not found"});
                (StatusCode::NOT_FOUND, Json(status))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
        (Client::try_from(config).expect("client"), seen)
    }

    #[tokio::test]
    async fn a_holder_missing_from_the_cache_is_read_with_one_get_never_a_list() {
        // The holder is outside the cache (another namespace than the operator's).
        let holder = channel("elsewhere", "sales", "uid-a", "2024-01-01T00:00:00Z");
        let (client, seen) = api_server(serde_json::to_value(&holder).expect("json")).await;
        let state = shared(client, cache_with(&[], &[bound(&holder)], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(!response.allowed);
        assert!(
            response.result.message.contains("served by WhatsAppChannel elsewhere/sales"),
            "{}",
            response.result.message
        );
        assert_eq!(
            *seen.lock().expect("requests"),
            vec!["GET /apis/whatsapp-operator.io/v1alpha1/namespaces/elsewhere/whatsappchannels/sales".to_owned()]
        );

        // The holder is gone (404): a stale binding does not block.
        let gone = channel("elsewhere", "gone", "uid-g", "2024-01-01T00:00:00Z");
        let state = shared(state.client.clone(), cache_with(&[], &[bound(&gone)], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(response.allowed && response.warnings.is_none());

        // The GET fails: admitted with a warning.
        let state = shared(unreachable_client(), cache_with(&[], &[bound(&holder)], true));
        let response = review_response(&state, &review("CREATE", false)).await;
        assert!(response.allowed);
        let warnings = response.warnings.expect("a warning");
        assert!(
            warnings[0].starts_with("could not check whether +14155550100 is free (cannot read the binding's holder"),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_advertised_url_gets_the_path_and_must_be_https() {
        let addr: SocketAddr = "127.0.0.1:9443".parse().expect("addr");
        assert_eq!(advertised_url(None, addr).expect("derived"), "https://127.0.0.1:9443/validate-whatsappchannel");
        let any: SocketAddr = "0.0.0.0:9443".parse().expect("addr");
        assert!(matches!(advertised_url(None, any), Err(AdmissionError::MissingUrl { .. })));
        assert_eq!(
            advertised_url(Some("https://webhook.example.svc:443"), any).expect("given"),
            "https://webhook.example.svc/validate-whatsappchannel"
        );
        assert_eq!(
            advertised_url(Some("https://127.0.0.1:8443/custom"), any).expect("given"),
            "https://127.0.0.1:8443/custom"
        );
        assert!(advertised_url(Some("http://127.0.0.1:8443/"), any).is_err());
    }
}
