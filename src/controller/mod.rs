//! The `WhatsAppChannel` controller: watches channels (and the Secrets and number bindings they
//! depend on) and reconciles each into a working Twilio channel.
//!
//! Each pass is observe → plan → execute: [`observe`] reads the caches ([`cache`]: reflector
//! stores and [`index`]es) and Twilio; [`plan`] decides everything as a pure function; [`execute`]
//! records intents, acts and reports. [`protection`] keeps credentials Secrets while channels
//! may need them, with a small controller of its own.

pub mod backoff;
pub mod cache;
pub mod clock;
pub mod conditions;
pub mod config;
pub mod credentials;
pub mod error;
pub mod events;
mod execute;
pub mod index;
pub mod memory;
mod observe;
pub mod owner;
pub mod plan;
pub mod protection;
pub mod readiness;
pub mod receiver;
pub mod receiver_tls;
mod reconcile;
pub mod secret_meta;
pub mod single_flight;
pub mod stored;
pub mod verification;
pub mod watch_backoff;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{predicates, watcher, Predicate, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use crate::api::WhatsAppNumberBinding;
use crate::leader::Leadership;
use crate::telemetry::Metrics;
use crate::twilio::{IdentityClient, RoutingDirectory, SenderDirectory, TwilioClient};

use cache::{binding_key, secret_key, Cache};

pub use config::OperatorConfig;
pub use error::Error;

/// The finalizer that lets the operator undo its Twilio changes before a channel goes away.
pub const FINALIZER: &str = "whatsapp-operator.io/cleanup";
/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "whatsapp-operator";
/// Set this annotation to a new value to send the confirmation message again.
pub const RESEND_CONFIRMATION_ANNOTATION: &str = "whatsapp-operator.io/resend-confirmation";
/// Set this annotation to a new value to verify the channel at Twilio at once (credentials,
/// number, routing, identity server), bypassing the verify interval and the shared caches;
/// `status.verifyNow` records the value answered, so each value verifies once.
pub const VERIFY_NOW_ANNOTATION: &str = "whatsapp-operator.io/verify-now";
/// Set this annotation to `"true"` to let a deletion finish without undoing Twilio changes
/// (e.g. when the credentials are gone for good).
pub const SKIP_CLEANUP_ANNOTATION: &str = "whatsapp-operator.io/skip-cleanup";

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The Twilio client.
    pub twilio: TwilioClient,
    /// The identity-server client.
    pub identity: IdentityClient,
    /// Settings.
    pub config: OperatorConfig,
    /// Publishes Events.
    pub events: events::EventPublisher,
    /// The stores and indexes.
    pub cache: Cache,
    /// Secret data read for passes.
    pub secrets: credentials::SecretReader,
    /// Adds the in-use finalizer to credentials Secrets, once per Secret version.
    pub protector: protection::Protector,
    /// The accounts' WhatsApp senders, one shared listing per account and interval.
    pub senders: SenderDirectory,
    /// The accounts' Messaging Services, their pools and address configurations, one shared
    /// listing per account and interval.
    pub routing: RoutingDirectory,
    /// Per-channel backoff after transient failures.
    pub backoff: backoff::Backoff,
    /// Shared credentials verifications.
    pub verifications: verification::VerificationCache,
    /// Shared identity-server checks.
    pub identity_checks: verification::IdentityChecks,
    /// Shared confirmation-template approvals.
    pub templates: verification::TemplateChecks,
    /// The receiver certificate watch, one handshake per receiver and interval (when on).
    pub receiver_tls: Option<receiver_tls::ReceiverTlsChecks>,
    /// The last Twilio check of each channel that did not end Ready, so that only a change or
    /// its retry interval, not every watch event, leads to another one.
    pub attempts: verification::Attempts,
    /// Accounts on hold after a 429 (shared with the Twilio client, which sends nothing for
    /// a held account).
    pub holds: Arc<verification::AccountHolds>,
    /// Wakes the Secret controller for a Secret.
    secret_wake: mpsc::UnboundedSender<ObjectRef<PartialObjectMeta<Secret>>>,
    /// Whether this process leads (only the leader reconciles).
    pub leader: Leadership,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The accounts' Debugger alerts, one poller per account, for `ReceiverHealthy`.
    pub receiver: receiver::ReceiverWatch,
    /// The channels the receiver watch wakes (taken once by the controller).
    receiver_wakes: std::sync::Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<stored::StoredChannel>>>>,
}

impl Context {
    /// Builds the shared context over `cache`; `secret_wake` reaches the Secret controller.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        cache: Cache,
        secret_wake: mpsc::UnboundedSender<ObjectRef<PartialObjectMeta<Secret>>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::twilio::TwilioError> {
        let holds = Arc::new(verification::AccountHolds::default());
        let twilio =
            TwilioClient::new(config.twilio.clone())?.observed(metrics.twilio_observer()).with_holds(holds.clone());
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let receiver = receiver::ReceiverWatch::new(
            twilio.clone(),
            holds.clone(),
            metrics.clone(),
            receiver::ReceiverSettings {
                interval: config.alerts_interval,
                quiet_window: config.receiver_quiet_window,
                max_pages: config.alerts_max_pages,
                idle_after: config.verify_interval.max(config.alerts_interval).saturating_mul(3),
            },
            wake_tx,
        );
        let identity =
            IdentityClient::with_policy(config.twilio.timeout, &config.twilio.user_agent, config.outbound.clone())
                .map_err(|e| crate::twilio::TwilioError::InvalidInput(e.to_string()))?;
        let receiver_tls = match &config.receiver_tls {
            Some(c) => Some(
                receiver_tls::ReceiverTlsChecks::new(c.clone(), config.outbound.clone())
                    .map_err(|e| crate::twilio::TwilioError::InvalidInput(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            receiver_tls,
            events: events::EventPublisher::new(client.clone(), "whatsapp-operator", config.instance.as_deref()),
            cache,
            secrets: credentials::SecretReader::default(),
            protector: protection::Protector::default(),
            senders: SenderDirectory::new(config.verify_interval.saturating_mul(3)),
            routing: RoutingDirectory::new(config.verify_interval.saturating_mul(3)),
            backoff: backoff::Backoff::new(config.backoff_base, config.backoff_max),
            verifications: verification::VerificationCache::new(),
            identity_checks: verification::IdentityChecks::default(),
            templates: verification::TemplateChecks::default(),
            attempts: verification::Attempts::default(),
            holds,
            secret_wake,
            leader: Leadership::always(),
            metrics,
            receiver,
            receiver_wakes: std::sync::Mutex::new(Some(wake_rx)),
            client,
            twilio,
            identity,
            config,
        })
    }

    /// Puts `account` on hold after a 429 (for its Retry-After, else `--backoff-base`). Counts
    /// the holds this puts on or extends (not the calls the client refused during a hold).
    pub fn note_rate_limit(&self, account: &str, e: &crate::twilio::TwilioError) {
        if let crate::twilio::TwilioError::RateLimited { retry_after, .. } = e {
            if self.holds.hold(account, retry_after.unwrap_or(self.config.backoff_base)) {
                self.metrics.rate_limit_holds.inc();
            }
        }
    }

    /// The channels the receiver watch asks to look at again (once: the controller takes it).
    pub fn take_receiver_wakes(&self) -> Option<mpsc::UnboundedReceiver<ObjectRef<stored::StoredChannel>>> {
        self.receiver_wakes.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The same context, reconciling only while `leader` leads.
    pub fn led_by(mut self, leader: Leadership) -> Self {
        self.receiver.set_leadership(leader.clone());
        self.leader = leader;
        self
    }

    /// Asks the Secret controller to look at Secret `ns/name`.
    pub fn wake_secret(&self, ns: &str, name: &str) {
        let _ = self.secret_wake.send(ObjectRef::new(name).within(ns));
    }
}

/// How the watches list: in pages of [`LIST_PAGE`] objects, read from etcd. Not from the API
/// server's watch cache (`resourceVersion=0`), which ignores the page size and answers a
/// cluster's every Secret in one response: tens of MiB that the process would hold at once,
/// and keep as heap it cannot give back, before slimming a single object.
fn list_pages() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE)
}

/// Objects per page of a watch's listing.
pub const LIST_PAGE: u32 = 250;

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The watches behind a [`Cache`], made by [`prepare`] and consumed by [`run_prepared`]: the
/// client, the settings and the stores' writers. Opaque: the stores fill only while
/// [`run_prepared`] runs.
pub struct Prepared {
    client: Client,
    config: OperatorConfig,
    cache: Cache,
    channel_writer: reflector::store::Writer<stored::StoredChannel>,
    binding_writer: reflector::store::Writer<WhatsAppNumberBinding>,
    /// The Secret controller's store: the protected Secrets only (see [`protection::protected_only`]).
    protected_writer: reflector::store::Writer<PartialObjectMeta<Secret>>,
    leadership: Leadership,
    metrics: Arc<Metrics>,
}

impl Prepared {
    /// Counts into `metrics` (shared with the `/metrics` endpoint) instead of a private registry.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reconciles only while `leadership` says this process leads (leader election); without
    /// it the process always leads. Watches and caches run either way (the admission webhook
    /// serves from every replica).
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }
}

/// Creates the controller's stores and indexes: the returned [`Cache`] (cheap to clone, e.g. for
/// the admission webhook) fills once the [`Prepared`] watches run in [`run_prepared`]; until
/// their first listings, [`Cache::ready`] is false.
pub fn prepare(client: Client, config: OperatorConfig) -> (Cache, Prepared) {
    let (channel_store, channel_writer) = reflector::store();
    let (binding_store, binding_writer) = reflector::store();
    let (_, protected_writer) = reflector::store();
    let cache = Cache {
        channels: channel_store,
        bindings: binding_store,
        secrets: Default::default(),
        channel_index: Default::default(),
        holder_index: Default::default(),
        listed: Default::default(),
        trim: Default::default(),
    };
    let leadership = Leadership::always();
    let metrics = Arc::new(Metrics::new());
    (
        cache.clone(),
        Prepared { client, config, cache, channel_writer, binding_writer, protected_writer, leadership, metrics },
    )
}

/// Runs the controller until `shutdown` resolves ([`prepare`], then [`run_prepared`]).
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let (_, prepared) = prepare(client, config);
    run_prepared(prepared, shutdown).await
}

/// The default cluster identity: the UID of the `kube-system` namespace (stable for the
/// cluster's life, distinct between clusters).
pub async fn read_cluster_id(client: &Client) -> Result<String, Error> {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.get("kube-system").await?.metadata.uid.ok_or(Error::MissingField("uid"))
}

/// Runs the watches and controllers of `prepared` until `shutdown` resolves.
pub async fn run_prepared(
    prepared: Prepared,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let Prepared { client, config, cache, channel_writer, binding_writer, mut protected_writer, leadership, metrics } =
        prepared;
    // The shutdown signal, shared: the controller drains on it, and if it cannot (it is still
    // waiting for its first listing, say the API server is unreachable) the process stops
    // anyway once the passes' deadline is over.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut config = config;
    if config.cluster_id.is_none() {
        let mut delay = Duration::from_secs(1);
        loop {
            match read_cluster_id(&client).await {
                Ok(uid) => {
                    tracing::info!(cluster_id = %uid, "cluster identity: the UID of the kube-system namespace");
                    config.cluster_id = Some(uid);
                    break;
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot read the UID of the kube-system namespace (the default --cluster-id): grant get on namespaces/kube-system or set --cluster-id; retrying"
                ),
            }
            tokio::select! {
                () = shutdown.clone() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }
    let ns = config.namespace.clone();
    let drain_limit = config.pass_timeout + Duration::from_secs(5);
    let hard_stop = {
        let shutdown = shutdown.clone();
        let cache = cache.clone();
        async move {
            shutdown.await;
            // Nothing runs before the caches have listed: nothing to drain.
            if cache.ready() {
                tokio::time::sleep(drain_limit).await;
                tracing::warn!("the controller did not drain in time after the shutdown signal: stopping");
            }
        }
    };
    let concurrency = config.concurrency;
    // Packed as they are decoded (see `stored`).
    let channels: Api<stored::StoredChannel> = api(&client, ns.as_deref());
    // Metadata only: the data of the cluster's Secrets never reaches the operator's memory.
    let secrets: Api<PartialObjectMeta<Secret>> = api(&client, ns.as_deref());
    let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let (channel_store, protected_store) = (cache.channels.clone(), protected_writer.as_reader());
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(
        Context::new(client.clone(), config, cache.clone(), wake_tx.clone(), metrics)?.led_by(leadership.clone()),
    );

    // Channels: slimmed, stored, indexed. Only changes to spec, annotations, finalizers or
    // deletion trigger a reconcile; the operator's own status writes do not.
    let c = cache.clone();
    let wake = wake_tx.clone();
    let channel_stream = watch_backoff::with_backoff("channels", watcher(channels, list_pages()))
        .reflect(channel_writer)
        .map(move |ev| {
            if let Ok(ev) = &ev {
                c.follow_channel(ev);
                // A channel gone or going may have been the last to need its Secret.
                let gone = |ch: &stored::StoredChannel| {
                    if let (Some(ns), Ok(ch)) = (ch.namespace(), ch.unpack()) {
                        let _ = wake.send(ObjectRef::new(&ch.spec.twilio.credentials_secret_ref.name).within(&ns));
                    }
                };
                match ev {
                    watcher::Event::Delete(ch) => gone(ch),
                    watcher::Event::Apply(ch) | watcher::Event::InitApply(ch)
                        if ch.metadata.deletion_timestamp.is_some() =>
                    {
                        gone(ch)
                    }
                    _ => {}
                }
            }
            ev
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations).combine(predicates::finalizers),
            Default::default(),
        );

    // Secrets: metadata only, without annotations; the data of the cluster's Secrets never
    // reaches the operator's memory, except for the Secrets channels use.
    let c = cache.clone();
    let wake = wake_tx.clone();
    let secret_stream = watch_backoff::with_backoff("secrets", watcher(secrets, list_pages()))
        .modify(cache::slim_secret_meta)
        .map({
            let c = cache.clone();
            move |ev| {
                if let Ok(ev) = &ev {
                    c.secrets.follow(ev);
                    if let Some(ev) = protection::protected_only(ev) {
                        protected_writer.apply_watcher_event(&ev);
                    }
                    c.note_listed(2, ev);
                }
                ev
            }
        })
        .touched_objects();
    let binding_stream = watch_backoff::with_backoff("bindings", watcher(bindings, list_pages()))
        .modify(cache::slim_meta)
        .reflect(binding_writer)
        .map({
            let c = cache.clone();
            move |ev| {
                if let Ok(ev) = &ev {
                    c.follow_binding(ev);
                }
                ev
            }
        })
        .touched_objects();

    let receiver_wakes = match ctx.take_receiver_wakes() {
        Some(rx) => futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) }).boxed(),
        None => futures::stream::pending().boxed(),
    };
    let channel_controller = Controller::for_stream(channel_stream, channel_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(secret_stream, move |s: PartialObjectMeta<Secret>| {
            let ns = s.namespace().unwrap_or_default();
            if protection::is_protected(s.finalizers()) {
                let _ = wake.send(ObjectRef::from_obj(&s));
            }
            c.channels_under(&secret_key(&ns, &s.name_any()))
        })
        .watches_stream(binding_stream, {
            let c = cache.clone();
            move |b: WhatsAppNumberBinding| c.channels_under(&binding_key(&b.name_any()))
        })
        // A receiver whose health changed (new alerts, or the quiet window passed).
        .reconcile_on(receiver_wakes)
        // A new leader looks at every channel once (a follower's passes did nothing).
        .reconcile_all_on(leadership.acquisitions())
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(channel = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        });

    // The Secret controller: releases credentials Secrets no channel needs any more.
    let secret_controller = Controller::for_stream(
        futures::stream::pending::<Result<PartialObjectMeta<Secret>, watcher::Error>>(),
        protected_store,
    )
    .reconcile_on(futures::stream::unfold(wake_rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) }))
    .reconcile_all_on(leadership.acquisitions())
    .run(protection::reconcile, protection::error_policy, ctx)
    .for_each(|_| async {});

    // The channel controller ends on shutdown; the Secret controller with it.
    tokio::select! {
        _ = channel_controller => {}
        _ = secret_controller => {}
        _ = hard_stop => {}
    }
    Ok(())
}

/// Backs off a failed channel: exponential with jitter, per object, at least `Retry-After`.
fn error_policy(ch: Arc<stored::StoredChannel>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Waiting(d) = err {
        return Action::requeue(*d);
    }
    let key = format!("{}/{}", ch.namespace().unwrap_or_default(), ch.name_any());
    let delay = ctx.backoff.next_delay(&key, err.retry_after(), backoff::trigger(ch.as_ref()));
    tracing::warn!(channel = %key, error = %err, retry_in = ?delay, "reconcile failed; backing off");
    Action::requeue(delay.max(Duration::from_millis(100)))
}
