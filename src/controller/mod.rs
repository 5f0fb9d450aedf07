//! The `WhatsAppChannel` controller: watches channels (and the Secrets and number bindings they
//! depend on) and reconciles each into a working Twilio channel.
//!
//! Reconcile is a pipeline: observe (Secret, Twilio, binding) → decide (pure functions:
//! [`webhook`], [`readiness`], [`conditions`]) → act (Twilio and binding writes) → report
//! (status only when it changed, Events on transitions).

pub mod backoff;
mod cleanup;
pub mod clock;
pub mod conditions;
pub mod config;
mod confirmation;
mod credentials;
pub mod error;
pub mod protection;
pub mod readiness;
mod reconcile;
mod report;
pub mod verification;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, watcher, Predicate, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

use crate::api::{WhatsAppChannel, WhatsAppNumberBinding};
use crate::twilio::{IdentityClient, TwilioClient, E164};

pub use config::OperatorConfig;
pub use error::Error;

/// The finalizer that lets the operator undo its Twilio changes before a channel goes away.
pub const FINALIZER: &str = "whatsapp-operator.io/cleanup";
/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "whatsapp-operator";
/// Set this annotation to a new value to send the confirmation message again.
pub const RESEND_CONFIRMATION_ANNOTATION: &str = "whatsapp-operator.io/resend-confirmation";
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
    pub recorder: Recorder,
    /// Per-channel backoff after transient failures.
    pub backoff: backoff::Backoff,
    /// Shared credentials verifications.
    pub verifications: verification::VerificationCache,
    /// Shared identity-server checks.
    pub identity_checks: verification::IdentityChecks,
    /// The last Twilio check of each channel that did not end Ready, so that only a change or
    /// its retry interval, not every watch event, leads to another one.
    pub attempts: verification::Attempts,
    /// Accounts on hold after a 429.
    pub holds: verification::AccountHolds,
}

impl Context {
    /// Builds the shared context.
    pub fn new(client: Client, config: OperatorConfig) -> Result<Self, crate::twilio::TwilioError> {
        let twilio = TwilioClient::new(config.twilio.clone())?;
        let identity = IdentityClient::new(config.twilio.timeout, &config.twilio.user_agent)
            .map_err(|e| crate::twilio::TwilioError::InvalidInput(e.to_string()))?;
        let reporter = Reporter { controller: "whatsapp-operator".into(), instance: config.instance.clone() };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            backoff: backoff::Backoff::new(config.backoff_base, config.backoff_max),
            verifications: verification::VerificationCache::new(),
            identity_checks: verification::IdentityChecks::default(),
            attempts: verification::Attempts::default(),
            holds: verification::AccountHolds::default(),
            client,
            twilio,
            identity,
            config,
        })
    }
}

impl Context {
    /// Puts `account` on hold after a 429 (for its Retry-After, else `--backoff-base`).
    pub fn note_rate_limit(&self, account: &str, e: &crate::twilio::TwilioError) {
        if let crate::twilio::TwilioError::RateLimited { retry_after, .. } = e {
            self.holds.hold(account, retry_after.unwrap_or(self.config.backoff_base));
        }
    }
}

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

/// Channels in `store` that reference Secret `ns/name` (credentials or identity-server secret).
fn channels_using_secret(store: &Store<WhatsAppChannel>, ns: &str, name: &str) -> Vec<ObjectRef<WhatsAppChannel>> {
    store
        .state()
        .into_iter()
        .filter(|ch| ch.namespace().as_deref() == Some(ns))
        .filter(|ch| {
            ch.spec.twilio.credentials_secret_ref.name == name
                || ch.spec.identity_server.as_ref().is_some_and(|i| i.client_secret_ref.name == name)
        })
        .map(|ch| ObjectRef::from_obj(&*ch))
        .collect()
}

/// Channels in `store` that ask for `number`.
fn channels_wanting_number(store: &Store<WhatsAppChannel>, number: &str) -> Vec<ObjectRef<WhatsAppChannel>> {
    let Ok(number) = E164::parse(number) else {
        return Vec::new();
    };
    store
        .state()
        .into_iter()
        .filter(|ch| E164::parse(&ch.spec.phone_number).is_ok_and(|n| n == number))
        .map(|ch| ObjectRef::from_obj(&*ch))
        .collect()
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let ns = config.namespace.clone();
    let concurrency = config.concurrency;
    let ctx = Arc::new(Context::new(client.clone(), config)?);
    let channels: Api<WhatsAppChannel> = api(&client, ns.as_deref());
    // Metadata only: the data of the cluster's Secrets never reaches the operator's memory.
    let secrets: Api<PartialObjectMeta<Secret>> = api(&client, ns.as_deref());
    let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());

    // Only changes to spec, annotations, finalizers or deletion trigger a reconcile; the operator's
    // own status writes do not.
    let (reader, writer) = kube::runtime::reflector::store();
    let channel_stream = watcher(channels, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|ch: &mut WhatsAppChannel| ch.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations).combine(predicates::finalizers),
            Default::default(),
        );

    let secret_store = reader.clone();
    let secret_client = client.clone();
    let secret_stream = watcher(secrets, watcher::Config::default().any_semantic()).default_backoff().touched_objects();
    let binding_store = reader.clone();
    let binding_stream =
        watcher(bindings, watcher::Config::default().any_semantic()).default_backoff().touched_objects();

    Controller::for_stream(channel_stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(secret_stream, move |s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let users = channels_using_secret(&secret_store, &ns, &s.name_any());
            // A Secret being deleted that no channel references any more must not wait forever.
            if users.is_empty() && s.metadata.deletion_timestamp.is_some() && protection::is_protected(&s.metadata) {
                let (client, name) = (secret_client.clone(), s.name_any());
                tokio::spawn(async move {
                    if let Err(e) = protection::release_if_unused(&client, &ns, &name, None).await {
                        tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "cannot release a Secret");
                    }
                });
            }
            users
        })
        .watches_stream(binding_stream, move |b: WhatsAppNumberBinding| {
            channels_wanting_number(&binding_store, &b.spec.phone_number)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(channel = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

/// Backs off a failed channel: exponential with jitter, per object, at least `Retry-After`.
fn error_policy(ch: Arc<WhatsAppChannel>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", ch.namespace().unwrap_or_default(), ch.name_any());
    let delay = ctx.backoff.next_delay(&key, err.retry_after());
    tracing::warn!(channel = %key, error = %err, retry_in = ?delay, "reconcile failed; backing off");
    Action::requeue(delay.max(Duration::from_millis(100)))
}
