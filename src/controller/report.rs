//! One reconcile pass's outcome, and how it is reported: status (written only when it changed),
//! Events (one per condition transition, plus notable actions) and the next requeue.

use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::{ConditionType, Phase, Reason, WhatsAppChannel, WhatsAppChannelStatus};
use crate::twilio::TwilioError;

use super::clock;
use super::conditions::{transitions, ConditionSet, Status};
use super::error::{Error, Result};
use super::verification::Attempt;
use super::{readiness, Context, FIELD_MANAGER};

/// The state one reconcile builds up before reporting it.
pub struct Pass<'a> {
    /// The channel as read.
    pub ch: &'a WhatsAppChannel,
    /// Shared context.
    pub ctx: &'a Context,
    /// The channel's namespace.
    pub ns: String,
    /// The status before this pass.
    pub old: WhatsAppChannelStatus,
    /// The status being built (starts as a copy of the old one).
    pub status: WhatsAppChannelStatus,
    /// The conditions being decided.
    pub set: ConditionSet,
    /// Events for actions (transitions of conditions are added automatically).
    pub notes: Vec<(EventType, Reason, String)>,
    /// When to look again, if sooner than the default for the phase.
    pub requeue: Option<Duration>,
    /// A transient failure to back off from after reporting.
    pub error: Option<Error>,
    /// Summary phase override (suspend, deletion).
    pub phase_override: Option<Phase>,
    /// With a phase override: the Ready reason and message, when more specific than the phase's.
    pub override_detail: Option<(Reason, String)>,
    /// Set when this pass checked Twilio: the digest of the inputs it used.
    pub checked: Option<String>,
    /// The object version the status is written against (updated by intermediate writes).
    pub resource_version: Option<String>,
    /// The previous status is kept as it was (a transient failure on a Ready channel).
    pub kept_stale: bool,
}

impl<'a> Pass<'a> {
    /// Starts a pass over `ch`.
    pub fn new(ch: &'a WhatsAppChannel, ctx: &'a Context) -> Result<Self> {
        let ns = ch.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
        let old = ch.status.clone().unwrap_or_default();
        Ok(Self {
            ch,
            ctx,
            ns,
            status: old.clone(),
            old,
            set: ConditionSet::default(),
            notes: Vec::new(),
            requeue: None,
            error: None,
            phase_override: None,
            override_detail: None,
            checked: None,
            resource_version: ch.resource_version(),
            kept_stale: false,
        })
    }

    /// `namespace/name`, for messages and backoff keys.
    pub fn key(&self) -> String {
        format!("{}/{}", self.ns, self.ch.name_any())
    }

    /// Sets a condition.
    pub fn set(&mut self, t: ConditionType, s: Status, reason: Reason, message: impl Into<String>) {
        self.set.set(t, s, reason, message);
    }

    /// Records an action worth an Event.
    pub fn note(&mut self, type_: EventType, reason: Reason, message: impl Into<String>) {
        self.notes.push((type_, reason, message.into()));
    }

    /// Asks to look again after `d` at the latest.
    pub fn requeue_within(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    /// Whether the channel was Ready before this pass.
    pub fn was_ready(&self) -> bool {
        self.old.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// Keeps the previous conditions (nothing was re-checked).
    pub fn keep_old_conditions(&mut self) {
        for c in &self.old.conditions {
            let t = ConditionType::ALL.into_iter().find(|t| t.as_str() == c.type_);
            let r = Reason::ALL.iter().copied().find(|r| r.as_str() == c.reason);
            let s = match c.status.as_str() {
                "True" => Status::True,
                "False" => Status::False,
                _ => Status::Unknown,
            };
            if let (Some(t), Some(r)) = (t, r) {
                self.set.set(t, s, r, c.message.clone());
            }
        }
    }

    /// A transient Twilio failure while checking `during`: a channel that was Ready keeps its
    /// last known conditions (a blip does not flip Ready); otherwise the condition says so.
    /// Either way the pass ends in backoff.
    pub fn transient(&mut self, during: ConditionType, e: TwilioError) {
        self.ctx.note_rate_limit(&self.ch.spec.twilio.account_sid, &e);
        if self.was_ready() {
            self.set = ConditionSet::default();
            self.keep_old_conditions();
            self.status = self.old.clone();
            self.kept_stale = true;
        } else {
            let reason = if matches!(e, TwilioError::RateLimited { .. }) {
                Reason::RateLimited
            } else {
                Reason::TwilioUnavailable
            };
            self.set(during, Status::Unknown, reason, format!("{e}; retrying with backoff"));
        }
        self.error = Some(Error::Twilio(e));
    }

    /// Summarizes, writes the status if it changed, publishes Events and picks the next requeue.
    pub async fn finish(mut self) -> Result<Action> {
        let phase = match self.phase_override {
            Some(p) => {
                let (reason, message) =
                    self.override_detail.clone().unwrap_or_else(|| (reason_for(p), phase_message(p).to_owned()));
                self.set.set(ConditionType::Ready, Status::False, reason, message);
                readiness::set_kstatus(&mut self.set, p);
                p
            }
            None => readiness::summarize(&mut self.set, self.ch.spec.active),
        };
        let active = self.set.is(ConditionType::Active, Status::True);
        self.status.phase = Some(phase);
        self.status.queue = if active { self.ch.spec.queue.clone() } else { None };
        self.status.language = if active { self.ch.spec.language.clone() } else { None };
        // A pass that could not check a changed spec (transient failure on a Ready channel) keeps
        // the previous observedGeneration: the new spec is not reflected yet.
        let generation = if self.kept_stale { self.old.observed_generation } else { self.ch.meta().generation };
        self.status.observed_generation = generation;
        let now = clock::now();
        self.status.conditions = if self.kept_stale {
            self.old.conditions.clone()
        } else {
            self.set.to_conditions(&self.old.conditions, generation, &now)
        };

        if self.status != self.old {
            // Written against the version this pass read: a pass that started from a stale
            // watch-cache copy must not overwrite a newer status (409: look again shortly).
            let api: Api<WhatsAppChannel> = Api::namespaced(self.ctx.client.clone(), &self.ns);
            let patch = json!({
                "apiVersion": "whatsapp-operator.io/v1alpha1",
                "kind": "WhatsAppChannel",
                "metadata": {"resourceVersion": self.resource_version},
                "status": self.status,
            });
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch_status(&self.ch.name_any(), &pp, &Patch::Apply(&patch)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::debug!(channel = %self.key(), "status changed since it was read; looking again");
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.publish_events().await;

        if let Some(e) = self.error {
            return Err(e);
        }
        let next = self.next_requeue(phase);
        if let (Some(inputs), Some(uid)) = (self.checked.take(), self.ch.uid()) {
            // A quick requeue (following a message's delivery) is not a reason to re-verify.
            let valid_for = match phase {
                Phase::Degraded | Phase::Pending => Duration::ZERO,
                _ => self.interval(phase),
            };
            let attempt = Attempt { inputs, at: Instant::now(), valid_for };
            self.ctx.attempts.record(&uid, attempt);
        }
        Ok(Action::requeue(next))
    }

    /// Publishes an Event per condition transition and per noted action.
    pub async fn publish_events(&self) {
        let reference = self.ch.object_ref(&());
        let mut events: Vec<Event> = transitions(&self.old.conditions, &self.status.conditions)
            .into_iter()
            .map(|t| Event {
                type_: if t.condition.status == "False" || readiness::is_transient_reason(&t.condition.reason) {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: t.condition.reason.clone(),
                note: Some(format!("{} is {}: {}", t.condition.type_, t.condition.status, t.condition.message)),
                action: format!("Set{}", t.condition.type_),
                secondary: None,
            })
            .collect();
        events.extend(self.notes.iter().map(|(type_, reason, note)| Event {
            type_: *type_,
            reason: reason.as_str().to_owned(),
            note: Some(note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        }));
        for ev in events {
            if let Err(e) = self.ctx.recorder.publish(&ev, &reference).await {
                tracing::warn!(channel = %self.key(), error = %e, "cannot publish an Event");
            }
        }
    }

    fn next_requeue(&self, phase: Phase) -> Duration {
        let base = self.interval(phase);
        super::backoff::with_jitter(self.requeue.map_or(base, |r| r.min(base)))
    }

    /// How long the outcome of a pass in `phase` stands before the channel is looked at again.
    fn interval(&self, phase: Phase) -> Duration {
        let cfg = &self.ctx.config;
        match phase {
            Phase::Ready | Phase::Inactive => {
                let age = self.status.last_verified_time.as_ref().map(clock::age).unwrap_or_default();
                cfg.verify_interval.saturating_sub(age).max(Duration::from_secs(1))
            }
            Phase::Waiting => cfg.sender_poll_interval,
            _ => cfg.permanent_retry_interval,
        }
    }
}

fn reason_for(p: Phase) -> Reason {
    if p == Phase::Deleting {
        Reason::CleanupBlocked
    } else {
        Reason::Suspended
    }
}

fn phase_message(p: Phase) -> &'static str {
    if p == Phase::Deleting {
        "The channel is being deleted"
    } else {
        "spec.suspend is true: the operator makes no Twilio calls"
    }
}
