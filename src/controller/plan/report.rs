//! Building a plan: the conditions, the status and its recorded intents, the steps, and the
//! summary (`Ready`, phase, kstatus), the final status and its Events.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::EventType;
use kube::Resource;

use crate::api::{ConditionType, Phase, Reason, WhatsAppChannelStatus};
use crate::controller::conditions::{ConditionSet, Status};
use crate::controller::{clock, readiness, Error};
use crate::twilio::TwilioError;

use super::{After, Input, Next, Note, Plan, Step};

/// A plan being built.
pub(super) struct Builder<'a> {
    /// What the plan decides from.
    pub input: Input<'a>,
    /// The status before the pass.
    pub old: WhatsAppChannelStatus,
    /// The status being built, assuming every step succeeds.
    pub status: WhatsAppChannelStatus,
    /// The old status plus the intents recorded before the Twilio writes.
    pub record: WhatsAppChannelStatus,
    /// The conditions being decided.
    pub set: ConditionSet,
    /// Kubernetes writes before the Twilio writes.
    pub pre: Vec<Step>,
    /// Twilio writes (preceded by one `Record` step).
    pub twilio: Vec<Step>,
    /// Kubernetes writes after the Twilio writes.
    pub post: Vec<Step>,
    /// Events for actions.
    pub notes: Vec<Note>,
    /// Look again within this, if sooner than the phase's interval.
    pub requeue: Option<Duration>,
    /// A transient failure to back off from.
    pub error: Option<Error>,
    /// A phase decided outside the summary (suspend, deletion), with a specific Ready reason.
    pub phase_override: Option<(Phase, Option<(Reason, String)>)>,
    /// The previous conditions stand (a transient failure on a Ready channel).
    pub kept_stale: bool,
    /// The digest of the inputs verified in this pass.
    pub verified: Option<String>,
    /// Forget the account's cached verifications.
    pub forget_verification: bool,
    /// Forget this channel's last Twilio check: the pass decided without Twilio from inputs
    /// that make that check's outcome no longer the channel's (a Secret problem, a number held
    /// elsewhere, a spec error), so the next pass with good inputs asks Twilio again.
    pub forget_attempt: bool,
    /// A rate-limit hold to put the account on.
    pub hold: Option<Duration>,
    /// The account is on a rate-limit hold: wait this long, not settled.
    pub wait: Option<Duration>,
    /// The deletion's cleanup is done.
    pub finalize: bool,
    /// `managementPolicy: Observe` (a live channel): the steps are rendered as
    /// `status.plannedChanges`, not run.
    pub observe: bool,
    /// The Twilio objects read in this pass whose webhooks the steps write (the planned
    /// changes' `from`).
    pub seen: Vec<super::Target>,
    /// Observe: the pass did not ask Twilio again (not due), so the changes planned from the
    /// last verification stand; this pass's own steps are merged in.
    pub keep_plan: bool,
}

impl<'a> Builder<'a> {
    pub fn new(input: Input<'a>) -> Self {
        let old = super::old_status(input.ch);
        Self {
            input,
            status: old.clone(),
            record: old.clone(),
            old,
            set: ConditionSet::default(),
            pre: Vec::new(),
            twilio: Vec::new(),
            post: Vec::new(),
            notes: Vec::new(),
            requeue: None,
            error: None,
            phase_override: None,
            kept_stale: false,
            verified: None,
            forget_verification: false,
            forget_attempt: false,
            hold: None,
            wait: None,
            finalize: false,
            observe: false,
            seen: Vec::new(),
            keep_plan: false,
        }
    }

    pub fn set(&mut self, t: ConditionType, s: Status, reason: Reason, message: impl Into<String>) {
        self.set.set(t, s, reason, message);
    }

    /// Sets condition `t` as the old status has it (nothing if it has none): what this pass
    /// could not look at stands.
    pub fn keep_old(&mut self, t: ConditionType) {
        if let Some(c) = self.old.conditions.iter().find(|c| c.type_ == t.as_str()) {
            if let Some(r) = Reason::ALL.iter().copied().find(|r| r.as_str() == c.reason) {
                self.set.set(t, parse_status(&c.status), r, c.message.clone());
            }
        }
    }

    pub fn note(&mut self, type_: EventType, reason: Reason, message: impl Into<String>) {
        self.notes.push(Note { type_, reason, message: message.into() });
    }

    pub fn requeue_within(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    /// Ends the pass waiting `d` (the account's rate-limit hold) instead of settled.
    pub fn wait_for(&mut self, d: Duration) {
        self.wait = Some(self.wait.map_or(d, |w| w.min(d)));
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
            if let (Some(t), Some(r)) = (t, r) {
                self.set.set(t, parse_status(&c.status), r, c.message.clone());
            }
        }
    }

    /// A transient failure while checking `during`: a channel that was Ready keeps its last
    /// known conditions (a blip does not flip Ready), but never loses a recorded intent;
    /// otherwise the condition says so. Either way the pass ends in backoff.
    pub fn transient(&mut self, during: ConditionType, e: TwilioError) {
        if let TwilioError::RateLimited { retry_after, .. } = &e {
            self.hold = Some(retry_after.unwrap_or(Duration::ZERO));
        }
        if self.was_ready() {
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

    /// Ends the plan here.
    pub fn finish(self) -> Next {
        Next::Plan(Box::new(self.build()))
    }

    fn build(mut self) -> Plan {
        let ch = self.input.ch;
        let now = self.input.now;
        let verified_now = self.verified.is_some() && self.error.is_none();
        let mut steps = std::mem::take(&mut self.pre);
        if !self.twilio.is_empty() && !self.observe {
            steps.push(Step::Record(Box::new(self.record.clone())));
        }
        steps.append(&mut self.twilio);
        steps.append(&mut self.post);
        // Observe: the writes are reported, not run.
        let planned = if self.observe {
            let ns = ch.meta().namespace.clone().unwrap_or_default();
            let fresh = super::planned::render(&std::mem::take(&mut steps), &self.seen, &ns);
            if self.keep_plan {
                super::planned::merge(&self.old.planned_changes, fresh)
            } else {
                fresh
            }
        } else {
            Vec::new()
        };
        let mut phase = match self.phase_override.clone() {
            Some((p, detail)) => {
                let (reason, message) = detail.unwrap_or_else(|| (reason_for(p), phase_message(p).to_owned()));
                self.set.set(ConditionType::Ready, Status::False, reason, message);
                readiness::set_kstatus(&mut self.set, p);
                p
            }
            None => {
                super::receiver::report(&mut self);
                readiness::summarize(&mut self.set, ch.spec.active)
            }
        };
        if self.observe && self.phase_override.is_none() {
            phase = observed_summary(&mut self.set, phase, planned.len());
        }
        // The phase the verification interval goes by: a failing receiver is no reason to ask
        // Twilio about the channel's configuration more often.
        let configured_phase = phase;
        if ch.spec.receiver_health.affects_ready && self.phase_override.is_none() {
            phase = readiness::receiver_blocks(&mut self.set, phase);
        }
        let status = if self.kept_stale {
            // Everything but the recorded intents stays as it was.
            self.record.clone()
        } else {
            let mut s = self.status.clone();
            let active = self.set.is(ConditionType::Active, Status::True);
            s.phase = Some(phase);
            s.queue = if active { ch.spec.queue.clone() } else { None };
            s.language = if active { ch.spec.language.clone() } else { None };
            s.observed_generation = ch.meta().generation;
            // A pass that stopped before the receiver's handshake keeps the last ReceiverTLS.
            if self.input.config.receiver_tls_warn.is_some() && self.set.get(ConditionType::ReceiverTLS).is_none() {
                self.keep_old(ConditionType::ReceiverTLS);
            }
            s.conditions = self.set.to_conditions(&self.old.conditions, s.observed_generation, now);
            s.planned_changes = planned.clone();
            // A verification that found nothing new writes nothing: the status keeps the time
            // of the last one that changed it (steady state costs no API writes).
            let unchanged =
                WhatsAppChannelStatus { last_verified_time: self.old.last_verified_time.clone(), ..s.clone() };
            if unchanged == self.old {
                self.old.clone()
            } else {
                s
            }
        };
        let mut events = self.notes.clone();
        if let Some(v) = status.verify_now.as_deref().filter(|v| Some(*v) != self.old.verify_now.as_deref()) {
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            events.push(Note {
                type_: EventType::Normal,
                reason: Reason::VerifiedNow,
                message: format!(
                    "Verified at Twilio as the annotation {}={v} asked; Ready is {}",
                    crate::controller::VERIFY_NOW_ANNOTATION,
                    ready.map(|r| format!("{} ({})", r.status, r.reason)).unwrap_or_else(|| "unknown".into())
                ),
            });
        }
        if let Some(t) = ready_transition(&self.old.conditions, &status.conditions) {
            // Ready turning False says what failed: a delivery failure is not told twice.
            if t.type_ == EventType::Warning {
                events.retain(|e| !super::confirm::DELIVERY_FAILURES.contains(&e.reason));
            }
            events.insert(0, t);
        } else if !status.planned_changes.is_empty() && status.planned_changes != self.old.planned_changes {
            // The plan changed while Ready stayed: that is news too.
            events.push(Note {
                type_: EventType::Normal,
                reason: Reason::ChangesPlanned,
                message: planned_message(&status.planned_changes),
            });
        }
        // A quick requeue (following a message's delivery) is not a reason to re-verify; a
        // transient outcome is no result to stand on.
        let valid_for = match configured_phase {
            Phase::Degraded | Phase::Pending => Duration::ZERO,
            _ => self.interval(configured_phase, &status, verified_now),
        };
        let verified = if self.error.is_some() { None } else { self.verified.take().map(|v| (v, valid_for)) };
        let after = if self.finalize {
            After::Finalize
        } else if let Some(e) = self.error.take() {
            After::Backoff(e)
        } else if let Some(w) = self.wait {
            After::Wait(w)
        } else {
            After::Requeue(self.next_requeue(configured_phase, &status, verified_now))
        };
        Plan {
            steps,
            status,
            events,
            after,
            verified,
            forget_verification: self.forget_verification,
            forget_attempt: self.forget_attempt,
            hold: self.hold,
        }
    }

    fn next_requeue(&self, phase: Phase, status: &WhatsAppChannelStatus, verified_now: bool) -> Duration {
        let base = self.interval(phase, status, verified_now);
        self.requeue.map_or(base, |r| r.min(base))
    }

    /// How long the outcome of a pass in `phase` stands before the channel is looked at again:
    /// for a working channel, until the verification interval since the last check is over (a
    /// check in this pass, the status' last verification, or this process's last check of the
    /// same inputs, whichever is latest).
    fn interval(&self, phase: Phase, status: &WhatsAppChannelStatus, verified_now: bool) -> Duration {
        let cfg = self.input.config;
        match phase {
            Phase::Ready | Phase::Inactive | Phase::Planned if verified_now => cfg.verify_interval,
            Phase::Ready | Phase::Inactive | Phase::Planned => {
                let age =
                    status.last_verified_time.as_ref().map(|t| clock::between(t, self.input.now)).unwrap_or_default();
                let by_status = cfg.verify_interval.saturating_sub(age);
                by_status.max(self.input.cluster.attempt_left.unwrap_or_default()).max(Duration::from_secs(1))
            }
            Phase::Waiting => cfg.sender_poll_interval,
            _ => cfg.permanent_retry_interval,
        }
    }
}

/// The summary of an observed channel: changes planned keep it from Ready (`ChangesPlanned`,
/// phase `Planned`, neither Reconciling nor Stalled: the operator did all `Observe` allows);
/// in sync, Ready says it was observed, not made so. A real blocker (a failure, a conflict,
/// a wait) keeps its own phase and reason.
fn observed_summary(set: &mut ConditionSet, phase: Phase, planned: usize) -> Phase {
    let blocked_by_plan = set.get(ConditionType::Ready).is_some_and(|r| r.reason == Reason::ChangesPlanned);
    match phase {
        Phase::Ready | Phase::Inactive | Phase::Pending if planned > 0 || blocked_by_plan => {}
        Phase::Planned => {}
        Phase::Ready | Phase::Inactive => {
            if let Some(r) = set.get(ConditionType::Ready).cloned() {
                let message =
                    format!("{} (observed under managementPolicy Observe: the operator writes nothing)", r.message);
                set.set(ConditionType::Ready, Status::True, r.reason, message);
            }
            return phase;
        }
        _ => return phase,
    }
    let message = if planned > 0 {
        format!(
            "managementPolicy is Observe and {planned} change(s) are planned (status.plannedChanges); set spec.managementPolicy to Manage to apply them"
        )
    } else {
        "managementPolicy is Observe: see the other conditions".to_owned()
    };
    set.set(ConditionType::Ready, Status::False, Reason::ChangesPlanned, message);
    readiness::set_kstatus(set, Phase::Planned);
    Phase::Planned
}

/// An Event's message for a new plan: its changes, one by one.
fn planned_message(changes: &[crate::api::PlannedChange]) -> String {
    let items: Vec<String> = changes
        .iter()
        .map(|c| {
            let what = c.sid.as_deref().or(c.name.as_deref()).map(|w| format!(" {w}")).unwrap_or_default();
            let field = c.field.as_deref().map(|f| format!(" {f}")).unwrap_or_default();
            let to = c.to.as_deref().map(crate::twilio::redact_url).unwrap_or_else(|| "(none)".into());
            format!("{:?} {}{what}{field} -> {to}", c.action, c.kind)
        })
        .collect();
    format!("Planned under managementPolicy Observe: {}", items.join("; "))
}

fn parse_status(s: &str) -> Status {
    match s {
        "True" => Status::True,
        "False" => Status::False,
        _ => Status::Unknown,
    }
}

fn reason_for(p: Phase) -> Reason {
    if p == Phase::Deleting {
        Reason::Deleting
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

/// The one Event a pass publishes for its conditions: when `Ready` changes status or reason.
/// A Warning when it turns False for a reason the user must act on or a transient failure.
pub fn ready_transition(old: &[Condition], new: &[Condition]) -> Option<Note> {
    let ready = |cs: &[Condition]| cs.iter().find(|c| c.type_ == "Ready").cloned();
    let new = ready(new)?;
    if let Some(o) = ready(old) {
        if o.status == new.status && o.reason == new.reason {
            return None;
        }
    }
    let reason = Reason::ALL.iter().copied().find(|r| r.as_str() == new.reason)?;
    let quiet = matches!(reason, Reason::NotConnected | Reason::Suspended | Reason::Deleting | Reason::ChangesPlanned);
    let type_ = if new.status == "False" && !quiet { EventType::Warning } else { EventType::Normal };
    Some(Note { type_, reason, message: format!("Ready is {}: {}", new.status, new.message) })
}
