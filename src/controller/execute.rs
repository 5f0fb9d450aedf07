//! Executing a plan: its steps in order (intents recorded before any Twilio write), then the
//! final status (only when it changed, against the version read), the Events, and what the
//! in-memory caches must remember. A Twilio write that fails or returns a result the status
//! keeps is added to the observations and the pass planned again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::{ManagementPolicy, WhatsAppChannel, WhatsAppChannelStatus, WhatsAppNumberBinding};
use crate::binding::{self, Created};
use crate::test_hooks::Point;

use super::observe::{self, Observed};
use super::plan::{self, After, Next, Outcome, Plan, PlanConfig, Step, WebhookWrite};
use super::verification::Attempt;
use super::{backoff, Context, Error, FIELD_MANAGER};

/// How a pass ended, for the caller's backoff bookkeeping.
#[derive(Debug)]
pub enum Ended {
    /// The pass finished: its backoff is cleared.
    Settled(Action),
    /// The pass stopped early without a failure (a conflict with a newer version, a claim lost
    /// to a lagging cache): look again shortly; the backoff is neither reset nor grown.
    Retry(Duration),
    /// The deletion's cleanup is done: the finalizer may go.
    Finalized,
}

/// How long a pass that lost a race waits before it looks again.
const RETRY_SOON: Duration = Duration::from_millis(300);
/// The most plan/read rounds of one pass (each read is asked for at most once).
const MAX_ROUNDS: usize = 12;

enum Write {
    Done,
    Stale,
    Gone,
}

/// Runs one pass over `ch`: observe, plan (reading what it asks for), execute.
pub async fn pass(ctx: &Context, ch: &WhatsAppChannel) -> Result<Ended, Error> {
    let config = plan_config(ctx);
    let now = super::clock::now();
    let mut obs = observe::cluster(ctx, ch).await?;
    let mut plan = plan_fully(ctx, ch, &mut obs, &now, &config).await?;
    watch_receiver(ctx, ch, &obs, &plan);
    let mut version = ch.resource_version();
    // Observe plans render their writes as status.plannedChanges; none reaches this loop. Should
    // one, it is refused here: Observe writes nothing to Twilio or to other objects.
    let observing = ch.spec.management_policy == ManagementPolicy::Observe && ch.metadata.deletion_timestamp.is_none();
    if observing && !plan.steps.is_empty() {
        tracing::error!(channel = %ch.name_any(), steps = plan.steps.len(), "an Observe plan with writes: not run");
        plan.steps.clear();
    }
    let mut i = 0;
    while i < plan.steps.len() {
        // A process that stopped leading writes nothing more (the controller also abandons the
        // pass when the elector notices; this catches a step already under way).
        if !ctx.leader.is_leader() {
            return Ok(Ended::Retry(RETRY_SOON));
        }
        let step = plan.steps[i].clone();
        let outcome = match run_step(ctx, ch, &obs, &step, &mut version).await? {
            StepResult::Ok => None,
            StepResult::Outcome(o) => Some(o),
            StepResult::Stop(ended) => return Ok(ended),
        };
        if let Some(o) = outcome {
            obs.twilio.outcomes.push(o);
            plan = plan_fully(ctx, ch, &mut obs, &now, &config).await?;
            if observing {
                plan.steps.clear();
            }
        }
        i += 1;
    }
    if !ctx.leader.is_leader() {
        return Ok(Ended::Retry(RETRY_SOON));
    }
    // The cache key of the Secret's verification: the whole credential set.
    let fingerprint = obs.credential_set.as_ref().map(|c| c.fingerprint());
    finish(ctx, ch, plan, version, fingerprint.as_deref()).await
}

/// Registers a live channel whose credentials Twilio accepts with the account's alerts poller
/// (`ReceiverHealthy`); one whose credentials it refused is forgotten.
fn watch_receiver(ctx: &Context, ch: &WhatsAppChannel, obs: &observe::Observed, plan: &plan::Plan) {
    let ns = ch.namespace().unwrap_or_default();
    let accepted = plan.status.conditions.iter().any(|c| c.type_ == "CredentialsValid" && c.status == "True");
    match (&obs.credentials, accepted && ch.metadata.deletion_timestamp.is_none() && !ch.spec.suspend) {
        (Some(creds), true) => {
            let given = obs.cluster.receiver.as_ref().map(|v| &v.state);
            ctx.receiver.register(creds, &ns, &ch.name_any(), observe::receiver_matcher(ch), given);
        }
        _ => ctx.receiver.forget(&ch.spec.twilio.account_sid, &ns, &ch.name_any()),
    }
}

fn plan_config(ctx: &Context) -> PlanConfig {
    let c = &ctx.config;
    PlanConfig {
        verify_interval: c.verify_interval,
        sender_poll_interval: c.sender_poll_interval,
        permanent_retry_interval: c.permanent_retry_interval,
        cluster_id: c.cluster_id.clone().unwrap_or_default(),
        receiver_tls_warn: c.receiver_tls.as_ref().map(|r| r.warn_before),
    }
}

/// Plans, answering the plan's reads until it is complete.
async fn plan_fully(
    ctx: &Context,
    ch: &WhatsAppChannel,
    obs: &mut Observed,
    now: &Time,
    config: &PlanConfig,
) -> Result<Plan, Error> {
    for _ in 0..MAX_ROUNDS {
        match plan::plan(observe::input(ch, obs, now, config)) {
            Next::Plan(p) => return Ok(*p),
            Next::Read(r) => observe::read(ctx, ch, obs, r).await,
        }
    }
    Err(Error::Finalizer("the plan kept asking for reads".into()))
}

enum StepResult {
    Ok,
    Outcome(Outcome),
    Stop(Ended),
}

async fn run_step(
    ctx: &Context,
    ch: &WhatsAppChannel,
    obs: &Observed,
    step: &Step,
    version: &mut Option<String>,
) -> Result<StepResult, Error> {
    let ns = ch.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", ch.name_any());
    let account = &ch.spec.twilio.account_sid;
    let twilio = &ctx.twilio;
    let stop = |e: &crate::twilio::TwilioError| ctx.note_rate_limit(account, e);
    Ok(match step {
        Step::DeleteStaleBinding { name, uid, resource_version } => {
            tracing::info!(binding = %name, "removing a stale number binding");
            binding::delete_exact(&ctx.client, name, uid, resource_version.as_deref()).await?;
            StepResult::Ok
        }
        Step::Claim { name, spec } => {
            match binding::create(&ctx.client, &WhatsAppNumberBinding::new(name, spec.clone())).await? {
                Created::Held => StepResult::Ok,
                Created::Exists => {
                    ctx.metrics.binding_conflicts.inc();
                    StepResult::Stop(Ended::Retry(RETRY_SOON))
                }
            }
        }
        Step::SetInstance { name, instance } => {
            binding::set_instance(&ctx.client, name, instance).await?;
            StepResult::Ok
        }
        Step::Release(held) => {
            binding::delete_exact(&ctx.client, &held.name, &held.uid, None).await?;
            StepResult::Ok
        }
        Step::ProtectSecret { name } => match ctx.protector.protect(&ctx.client, &ctx.cache, &ns, name).await {
            Ok(()) => StepResult::Ok,
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => StepResult::Stop(Ended::Retry(RETRY_SOON)),
            Err(e) => return Err(e.into()),
        },
        Step::Record(status) => match write_status(ctx, ch, status, version).await? {
            Write::Done => StepResult::Ok,
            Write::Stale => StepResult::Stop(Ended::Retry(RETRY_SOON)),
            Write::Gone => StepResult::Stop(Ended::Settled(Action::await_change())),
        },
        Step::SetWebhook(w) | Step::RestoreWebhook(w) => {
            let Some(creds) = &obs.credentials else {
                return Err(Error::MissingField("credentials"));
            };
            if let Some(stop) = before_twilio_write(ctx, &key).await {
                return Ok(stop);
            }
            let result = match w {
                WebhookWrite::Sender { sid, webhook } => {
                    match twilio.update_sender_webhook(creds, sid, webhook).await {
                        Ok(updated) => {
                            ctx.senders.update(account, &updated);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                WebhookWrite::Number { sid, url, method } => {
                    twilio.update_incoming_number_webhook(creds, sid, url, *method).await.map(|_| ())
                }
                WebhookWrite::Service { sid, url, method } => twilio
                    .update_service_inbound(creds, sid, url, *method)
                    .await
                    .map(|updated| ctx.routing.service_written(account, &updated)),
            };
            ctx.config.hooks.at(Point::AfterTwilioWrite, &key).await;
            match result {
                Ok(()) => StepResult::Ok,
                Err(e) => {
                    stop(&e);
                    StepResult::Outcome(if matches!(step, Step::SetWebhook(_)) {
                        Outcome::WebhookFailed(e)
                    } else {
                        Outcome::RestoreFailed(e)
                    })
                }
            }
        }
        Step::SendMessage(message) => {
            let Some(creds) = &obs.credentials else {
                return Err(Error::MissingField("credentials"));
            };
            if let Some(stop) = before_twilio_write(ctx, &key).await {
                return Ok(stop);
            }
            let sent = twilio.create_message(creds, message).await;
            ctx.config.hooks.at(Point::AfterTwilioWrite, &key).await;
            match sent {
                Ok(m) => StepResult::Outcome(Outcome::Sent(m)),
                Err(e) => {
                    stop(&e);
                    StepResult::Outcome(Outcome::SendFailed(e))
                }
            }
        }
    })
}

/// The last moment before a Twilio write: the intent is recorded. The test hook runs here;
/// then a process that no longer leads stops (the write would compete with the new leader's).
async fn before_twilio_write(ctx: &Context, key: &str) -> Option<StepResult> {
    ctx.config.hooks.at(Point::BeforeTwilioWrite, key).await;
    (!ctx.leader.is_leader()).then_some(StepResult::Stop(Ended::Retry(RETRY_SOON)))
}

/// Writes `status` against `version` (the object version the pass read, or its own last write).
async fn write_status(
    ctx: &Context,
    ch: &WhatsAppChannel,
    status: &WhatsAppChannelStatus,
    version: &mut Option<String>,
) -> Result<Write, Error> {
    let api: Api<WhatsAppChannel> = Api::namespaced(ctx.client.clone(), &ch.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"resourceVersion": version},
        "status": status,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch_status(&ch.name_any(), &pp, &Patch::Apply(&patch)).await {
        Ok(written) => {
            *version = written.resource_version();
            Ok(Write::Done)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(channel = %ch.name_any(), "status changed since it was read; looking again");
            Ok(Write::Stale)
        }
        // The channel went away while the pass ran (its deletion completed): nothing to do.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Write::Gone),
        Err(e) => Err(e.into()),
    }
}

/// The status fields that differ between `old` and `new` (a condition by its type), for the
/// debug log of a status write.
fn changed_fields(old: &WhatsAppChannelStatus, new: &WhatsAppChannelStatus) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    let (old_c, new_c) = (&old.conditions, &new.conditions);
    for c in old_c.iter().chain(new_c.iter().filter(|n| !old_c.iter().any(|o| o.type_ == n.type_))) {
        let find = |all: &'_ [Condition]| all.iter().find(|x| x.type_ == c.type_).cloned();
        match (find(old_c), find(new_c)) {
            (Some(o), Some(n)) => {
                let fields = [
                    ("status", o.status != n.status),
                    ("reason", o.reason != n.reason),
                    ("message", o.message != n.message),
                    ("lastTransitionTime", o.last_transition_time != n.last_transition_time),
                    ("observedGeneration", o.observed_generation != n.observed_generation),
                ];
                let fields = fields.iter().filter(|(_, d)| *d).map(|(f, _)| *f);
                changed.extend(fields.map(|f| format!("conditions[{}].{f}", c.type_)));
            }
            (o, n) if o != n => changed.push(format!("conditions[{}]", c.type_)),
            _ => {}
        }
    }
    if changed.is_empty() && old_c != new_c {
        changed.push("conditions (order)".to_owned());
    }
    let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (json!(old), json!(new)) else {
        return changed;
    };
    for key in old.keys().chain(new.keys().filter(|k| !old.contains_key(*k))) {
        if key != "conditions" && old.get(key) != new.get(key) {
            changed.push(key.clone());
        }
    }
    changed
}

/// Writes the final status, publishes the Events, remembers what the caches must, and says
/// what happens next.
/// `fingerprint`: the pass's credentials, whose cached verification a refusal forgets.
async fn finish(
    ctx: &Context,
    ch: &WhatsAppChannel,
    plan: Plan,
    mut version: Option<String>,
    fingerprint: Option<&str>,
) -> Result<Ended, Error> {
    let account = &ch.spec.twilio.account_sid;
    let old = plan::old_status(ch);
    let finalize = matches!(plan.after, After::Finalize);
    if !finalize && plan.status != old {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(channel = %ch.name_any(), changed = ?changed_fields(&old, &plan.status), "writing the status");
        }
        match write_status(ctx, ch, &plan.status, &mut version).await? {
            Write::Done => {}
            Write::Gone => return Ok(Ended::Settled(Action::await_change())),
            // A newer version exists: a transient failure still backs off (and is not lost).
            Write::Stale => {
                return match plan.after {
                    After::Backoff(e) => Err(e),
                    _ => Ok(Ended::Retry(RETRY_SOON)),
                };
            }
        }
    }
    publish(ctx, ch, &plan.events).await;
    // Only these credentials' verification: other credentials of the account (a rotation in
    // progress) keep theirs, so passes still holding the old token cannot make every pass
    // with the new one verify again.
    if let (true, Some(f)) = (plan.forget_verification, fingerprint) {
        ctx.verifications.invalidate(account, f);
    }
    if let (true, Some(uid)) = (plan.forget_attempt, ch.uid()) {
        ctx.attempts.forget(&uid);
    }
    // Usually a no-op: the read or write that met the 429 held the account (and counted it).
    if let Some(hold) = plan.hold {
        ctx.holds.hold(account, if hold.is_zero() { ctx.config.backoff_base } else { hold });
    }
    let conflict = |r: crate::api::Reason| crate::controller::readiness::is_conflict_reason(r);
    if plan.events.iter().any(|e| conflict(e.reason)) {
        ctx.metrics.binding_conflicts.inc();
    }
    match plan.after {
        After::Finalize => {
            if let Some(uid) = ch.uid() {
                ctx.attempts.forget(&uid);
            }
            let ns = ch.namespace().unwrap_or_default();
            ctx.receiver.forget(account, &ns, &ch.name_any());
            ctx.wake_secret(&ns, &ch.spec.twilio.credentials_secret_ref.name);
            Ok(Ended::Finalized)
        }
        After::Backoff(e) => Err(e),
        // On a rate-limit hold: not settled, so a channel backing off keeps its failure count.
        After::Wait(d) => Ok(Ended::Retry(backoff::with_jitter(d))),
        // A cleanup that cannot finish yet must not end the finalizer's work: it waits (for the
        // Secret, the hold, the skip-cleanup annotation), without backoff.
        After::Requeue(d) if ch.metadata.deletion_timestamp.is_some() => Ok(Ended::Retry(backoff::with_jitter(d))),
        After::Requeue(d) => {
            if let (Some((inputs, valid_for)), Some(uid)) = (plan.verified, ch.uid()) {
                ctx.attempts.record(&uid, Attempt { inputs, at: std::time::Instant::now(), valid_for });
            }
            Ok(Ended::Settled(Action::requeue(backoff::with_jitter(d))))
        }
    }
}

/// Publishes the plan's Events.
async fn publish(ctx: &Context, ch: &WhatsAppChannel, notes: &[plan::Note]) {
    let reference = ch.object_ref(&());
    for n in notes {
        if let Err(e) = ctx.events.publish(&reference, n.type_, n.reason.as_str(), &n.message, "Reconcile").await {
            tracing::warn!(channel = %ch.name_any(), error = %e, "cannot publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: "R".into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn changed_fields_name_the_condition_part_the_field_or_the_order() {
        let old = WhatsAppChannelStatus {
            conditions: vec![condition("Ready", "a"), condition("Active", "b")],
            ..Default::default()
        };
        let mut new = old.clone();
        new.conditions[0].message = "c".into();
        new.queue = Some("support".into());
        assert_eq!(changed_fields(&old, &new), ["conditions[Ready].message", "queue"]);
        new = old.clone();
        new.conditions.reverse();
        assert_eq!(changed_fields(&old, &new), ["conditions (order)"]);
        new.conditions.pop();
        assert_eq!(changed_fields(&old, &new), ["conditions[Ready]"]);
    }
}
