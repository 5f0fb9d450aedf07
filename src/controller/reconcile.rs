//! The reconcile entry point: the backoff gate, the finalizer, and the pass deadline around
//! [`super::execute::pass`].

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::{Api, ResourceExt};

use crate::api::WhatsAppChannel;

use super::error::{Error, Result};
use super::execute::{self, Ended};
use super::stored::StoredChannel;
use super::{backoff, Context, FINALIZER};

/// Entry point called by the controller runtime: one pass, counted and timed, in a span that
/// names the channel on every log line.
pub async fn reconcile(stored: Arc<StoredChannel>, ctx: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!("reconcile", namespace = %stored.namespace().unwrap_or_default(), name = %stored.name_any());
    let started = std::time::Instant::now();
    ctx.metrics.reconciles_in_flight.inc();
    let pass = async {
        let ch = Arc::new(stored.unpack()?);
        gated(ch, ctx.clone()).await
    };
    let result = tracing::Instrument::instrument(pass, span).await;
    ctx.metrics.reconciles_in_flight.dec();
    let (outcome, label) = match &result {
        Ok(_) => ("settled", ""),
        Err(Error::Waiting(_)) => ("retry", ""),
        Err(e) => ("error", e.label()),
    };
    ctx.metrics.reconciled(outcome, label, started.elapsed());
    result
}

/// The gates (leadership, caches, backoff), the finalizer and the deadline around a pass.
async fn gated(ch: Arc<WhatsAppChannel>, ctx: Arc<Context>) -> Result<Action> {
    let ns = ch.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let key = format!("{ns}/{}", ch.name_any());
    // A channel backing off waits, unless what it was asked to do changed since it failed
    // (a deletion, a spec change, the skip-cleanup or resend annotation).
    if let Some(wait) = ctx.backoff.remaining(&key, backoff::trigger(ch.as_ref())) {
        return Ok(Action::requeue(wait));
    }
    // Only the leader acts; a new leader looks at every channel when it takes over.
    if !ctx.leader.is_leader() {
        return Ok(Action::await_change());
    }
    if !ctx.cache.ready() {
        return Err(Error::Waiting(Duration::from_millis(200)));
    }
    let api: Api<WhatsAppChannel> = Api::namespaced(ctx.client.clone(), &ns);
    let deadline = ctx.config.pass_timeout;
    let run = finalizer(&api, FINALIZER, ch, |event| async {
        let ch = match event {
            FinalizerEvent::Apply(ch) | FinalizerEvent::Cleanup(ch) => ch,
        };
        match execute::pass(&ctx, &ch).await? {
            Ended::Settled(action) => {
                ctx.backoff.reset(&key);
                Ok(action)
            }
            // Not a failure: look again soon, the backoff neither reset nor grown.
            Ended::Retry(d) => Err(Error::Waiting(d)),
            Ended::Finalized => {
                ctx.backoff.reset(&key);
                Ok(Action::await_change())
            }
        }
    });
    // A pass stops at once when this process stops leading (before another can take over),
    // and at its deadline.
    let result = tokio::select! {
        r = tokio::time::timeout(deadline, run) => match r {
            Ok(r) => r,
            Err(_) => return Err(Error::Deadline(deadline)),
        },
        _ = ctx.leader.lost() => {
            tracing::info!(channel = %key, "no longer the leader: pass abandoned");
            return Ok(Action::await_change());
        }
    };
    match result {
        Ok(action) => Ok(action),
        // The channel went away while this pass ran (its deletion just completed): nothing to do.
        Err(FinalizerError::ApplyFailed(Error::Kube(kube::Error::Api(s)))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        Err(FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e)) => Err(e),
        // Adding the finalizer from a watch-cache copy that has not seen our own earlier add
        // fails its JSON-patch test (422) or conflicts (409): look again shortly, no backoff.
        Err(FinalizerError::AddFinalizer(kube::Error::Api(s))) if s.code == 422 || s.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(FinalizerError::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => Ok(Action::await_change()),
        Err(FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e)) => Err(Error::Kube(e)),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}
