//! `managementPolicy: Observe`: the same plan as `Manage`, its writes rendered as
//! `status.plannedChanges` (no step runs, no intent is recorded, the number is not claimed),
//! conditions that say what is planned; and the verify-now annotation.

use crate::api::{ChangeAction, ManagementPolicy, PlannedChange};
use crate::controller::VERIFY_NOW_ANNOTATION;

use super::*;

const OLD_URL: &str = "https://elsewhere.example.com/hook";
const OLD_URL_WITH_USERINFO: &str = "https://admin:s3cret@elsewhere.example.com/hook";

fn observed() -> WhatsAppChannel {
    let mut ch = channel();
    ch.spec.management_policy = ManagementPolicy::Observe;
    ch
}

fn free() -> ClusterView {
    let mut cl = cluster();
    cl.binding = Some(BindingView { name: binding_name(NUMBER), state: BindingState::Free });
    cl.held = Vec::new();
    cl
}

/// The sender with no webhook yet: Manage would set it.
fn unset() -> Twilio {
    Twilio { target: Ok(Some(Target::Sender(sender(None, "ONLINE")))), ..Twilio::default() }
}

#[test]
fn observe_plans_the_claim_the_webhook_and_the_message_and_runs_nothing() {
    let mut ch = observed();
    ch.spec.confirmation_phone_number = Some("+14155550123".into());
    let (p, reads) = run(&ch, &free(), &unset(), vec![]);
    assert!(p.steps.is_empty(), "nothing runs: {:?}", p.steps);
    assert!(reads.contains(&Read::Verify), "the observation verifies: {reads:?}");
    let planned = &p.status.planned_changes;
    let kinds: Vec<_> = planned.iter().map(|c| (c.action, c.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeAction::Create, "WhatsAppNumberBinding"),
            (ChangeAction::Update, "WhatsAppSender"),
            (ChangeAction::Create, "Message")
        ],
        "{planned:#?}"
    );
    assert_eq!(
        planned[1],
        PlannedChange {
            action: ChangeAction::Update,
            kind: "WhatsAppSender".into(),
            sid: Some(XE.into()),
            name: None,
            field: Some("webhook.callback_url".into()),
            from: None,
            to: Some(MARKED.into()),
        }
    );
    assert_eq!(planned[0].name.as_deref(), Some(binding_name(NUMBER).as_str()));
    assert_eq!(planned[2].to.as_deref(), Some("whatsapp:+14155550123"));
    assert_eq!(reason(&p, "NumberBound"), "False/ChangesPlanned");
    assert_eq!(reason(&p, "WebhookConfigured"), "False/ChangesPlanned");
    assert_eq!(reason(&p, "Connected"), "False/ChangesPlanned");
    assert_eq!(reason(&p, "ConfirmationSent"), "False/ChangesPlanned");
    assert_eq!(reason(&p, "CredentialsValid"), "True/Verified");
    assert_eq!(reason(&p, "Ready"), "False/ChangesPlanned");
    assert_eq!(reason(&p, "Reconciling"), "-", "kstatus: Current, the operator did all Observe allows");
    assert_eq!(reason(&p, "Stalled"), "-");
    assert_eq!(p.status.phase, Some(Phase::Planned));
    assert!(p.status.confirmation.is_none(), "no attempt recorded");
    let sender = p.status.sender.as_ref().expect("sender");
    assert_eq!((sender.webhook_url.as_deref(), sender.pending_webhook_url.as_deref()), (None, None));
    let routing = p.status.routing.as_ref().expect("routing");
    assert_eq!(routing.reason, "ChangesPlanned");
    assert_eq!(routing.actual.url, None, "actual is Twilio as it is");
    assert_eq!(routing.expected.url.as_deref(), Some(MARKED), "the URL as this channel writes it, with its marker");
    assert!(p.events.iter().all(|e| e.type_ == EventType::Normal), "{:?}", p.events);
    assert!(p.events.iter().any(|e| e.reason == Reason::ChangesPlanned), "{:?}", p.events);
    assert!(matches!(p.after, After::Requeue(d) if d == config().verify_interval), "{:?}", p.after);
}

#[test]
fn the_plan_is_what_manage_runs() {
    // The same observations under Manage, the number already held (Manage's first pass claims
    // and ends; the next writes): the Twilio writes equal the planned Twilio changes.
    let mut ch = observed();
    ch.spec.confirmation_phone_number = Some("+14155550123".into());
    let (observe, _) = run(&ch, &free(), &unset(), vec![]);
    ch.spec.management_policy = ManagementPolicy::Manage;
    let (claim, _) = run(&ch, &free(), &unset(), vec![]);
    assert!(claim.steps.iter().any(|s| matches!(s, Step::Claim { .. })));
    let (manage, _) = run(&ch, &cluster(), &unset(), vec![]);
    let writes = twilio_writes(&manage);
    assert_eq!(writes.len(), 2, "{writes:?}");
    let twilio_planned: Vec<_> =
        observe.status.planned_changes.iter().filter(|c| c.kind != "WhatsAppNumberBinding").collect();
    match (writes[0], twilio_planned[0]) {
        (Step::SetWebhook(WebhookWrite::Sender { sid, webhook }), c) => {
            assert_eq!(c.sid.as_ref(), Some(sid));
            assert_eq!(webhook.callback_url.as_deref(), c.to.as_deref());
        }
        other => panic!("{other:?}"),
    }
    match (writes[1], twilio_planned[1]) {
        (Step::SendMessage(m), c) => assert_eq!(Some(m.to.as_str()), c.to.as_deref()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn observe_in_sync_is_ready_and_plans_nothing() {
    let (p, _) = run(&observed(), &cluster(), &Twilio::default(), vec![]);
    assert!(p.steps.is_empty());
    assert!(p.status.planned_changes.is_empty());
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
    assert!(cond(&p, "Ready").is_some_and(|c| c.message.contains("Observe")));
    assert_eq!(p.status.phase, Some(Phase::Ready));
}

#[test]
fn observe_shows_from_and_to_of_a_takeover_and_a_method_change() {
    let mut ch = observed();
    ch.spec.binding_policy = BindingPolicy::Takeover;
    ch.spec.takeover = Some(crate::api::TakeoverSpec { from: Some(OLD_URL.into()) });
    let tw = Twilio { target: Ok(Some(Target::Number(number(OLD_URL)))), ..Twilio::default() };
    ch.spec.webhook.method = crate::api::WebhookMethod::Get;
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    let planned = &p.status.planned_changes;
    assert_eq!(planned.len(), 2, "{planned:#?}");
    assert_eq!(
        (planned[0].field.as_deref(), planned[0].from.as_deref(), planned[0].to.as_deref()),
        (Some("sms_url"), Some(OLD_URL), Some(MARKED))
    );
    assert_eq!(
        (planned[1].field.as_deref(), planned[1].from.as_deref(), planned[1].to.as_deref()),
        (Some("sms_method"), Some("POST"), Some("GET"))
    );
    assert!(p.steps.is_empty());
    assert!(p.events.iter().all(|e| e.reason != Reason::TakenOver), "nothing was taken over: {:?}", p.events);
}

#[test]
fn observe_does_not_claim_or_protect_and_reports_a_holder() {
    let mut cl = free();
    cl.secret.protected = false;
    let (p, _) = run(&observed(), &cl, &Twilio::default(), vec![]);
    assert!(p.steps.is_empty());
    let kinds: Vec<_> = p.status.planned_changes.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["WhatsAppNumberBinding", "Secret"], "{:#?}", p.status.planned_changes);
    // A number another channel holds is a conflict, as under Manage.
    let mut cl = cluster();
    cl.binding.as_mut().expect("b").state = BindingState::HeldBy {
        holder: ChannelReference { namespace: "x".into(), name: "y".into(), uid: "u".into() },
        instance: "crm-dev".into(),
    };
    let (p, _) = run(&observed(), &cl, &Twilio::default(), vec![]);
    assert_eq!(reason(&p, "Ready"), "False/NumberInUse");
    assert_eq!(p.status.phase, Some(Phase::Conflict));
}

#[test]
fn a_real_failure_under_observe_keeps_its_reason() {
    let tw = Twilio { verification: Err(unauthorized()), ..Twilio::default() };
    let (p, _) = run(&observed(), &free(), &tw, vec![]);
    assert_eq!(reason(&p, "Ready"), "False/InvalidCredentials");
    assert_eq!(p.status.phase, Some(Phase::Failed));
}

#[test]
fn deleting_an_observed_channel_leaves_twilio_alone() {
    let mut ch = observed();
    ch.metadata.deletion_timestamp = Some(time(NOW));
    ch.status = Some(ready_status(wired(URL)));
    let tw = Twilio { wired_target: Ok(Some(Target::Sender(sender(Some(URL), "ONLINE")))), ..Twilio::default() };
    let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
    assert!(reads.is_empty(), "{reads:?}");
    assert!(twilio_writes(&p).is_empty());
    assert!(p.steps.iter().any(|s| matches!(s, Step::Release(_))), "its own binding is released: {:?}", p.steps);
    assert!(matches!(p.after, After::Finalize));
}

#[test]
fn switching_to_observe_verifies_again() {
    let ch = channel();
    let inputs = verified_inputs(&ch, "fingerprint", None);
    let mut observed = ch.clone();
    observed.spec.management_policy = ManagementPolicy::Observe;
    assert_ne!(inputs, verified_inputs(&observed, "fingerprint", None));
}

fn verified_ready(annotation: Option<&str>, answered: Option<&str>) -> WhatsAppChannel {
    let mut ch = channel();
    let mut status = ready_status(wired(URL));
    status.verified_inputs = Some(verified_inputs(&ch, "fingerprint", None));
    status.verify_now = answered.map(Into::into);
    status.conditions.push(Condition {
        type_: "NumberBound".into(),
        status: "True".into(),
        reason: "Bound".into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: time(NOW - 100),
    });
    ch.status = Some(status);
    if let Some(a) = annotation {
        ch.metadata.annotations = Some([(VERIFY_NOW_ANNOTATION.to_owned(), a.to_owned())].into());
    }
    ch
}

#[test]
fn verify_now_verifies_a_fresh_channel_once_per_value() {
    let mut cl = cluster();
    cl.attempt_left = Some(Duration::from_secs(300));
    // Fresh and Ready: no Twilio read.
    let (_, reads) = run(&verified_ready(None, None), &cl, &Twilio::default(), vec![]);
    assert!(reads.is_empty(), "{reads:?}");
    // A new value: a full verification, answered in status, with an Event.
    let (p, reads) = run(&verified_ready(Some("1"), None), &cl, &Twilio::default(), vec![]);
    assert!(reads.contains(&Read::Verify) && reads.iter().any(|r| matches!(r, Read::Target(..))), "{reads:?}");
    assert_eq!(p.status.verify_now.as_deref(), Some("1"));
    assert!(p.events.iter().any(|e| e.reason == Reason::VerifiedNow), "{:?}", p.events);
    // The value answered: nothing more.
    let (p, reads) = run(&verified_ready(Some("1"), Some("1")), &cl, &Twilio::default(), vec![]);
    assert!(reads.is_empty(), "{reads:?}");
    assert!(p.events.is_empty());
    // Another value: again.
    let (p, reads) = run(&verified_ready(Some("2"), Some("1")), &cl, &Twilio::default(), vec![]);
    assert!(reads.contains(&Read::Verify), "{reads:?}");
    assert_eq!(p.status.verify_now.as_deref(), Some("2"));
}

#[test]
fn verify_now_is_not_answered_by_a_transient_failure() {
    let tw = Twilio { verification: Err(server_error()), ..Twilio::default() };
    let (p, _) = run(&verified_ready(Some("1"), None), &cluster(), &tw, vec![]);
    assert_eq!(p.status.verify_now, None, "retried with the backoff");
    assert!(matches!(p.after, After::Backoff(_)));
}

#[test]
fn a_pass_that_is_not_due_keeps_the_plan() {
    let mut ch = observed();
    ch.spec.confirmation_phone_number = Some("+14155550123".into());
    let (first, _) = run(&ch, &free(), &unset(), vec![]);
    ch.status = Some(first.status.clone());
    let mut cl = free();
    cl.attempt_left = Some(Duration::from_secs(300));
    let (again, reads) = run(&ch, &cl, &unset(), vec![]);
    assert!(reads.is_empty(), "not due: {reads:?}");
    assert!(again.steps.is_empty());
    assert_eq!(again.status.planned_changes, first.status.planned_changes);
    assert_eq!(again.status, first.status, "nothing to write");
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn a_planned_from_never_carries_userinfo() {
    let mut ch = observed();
    ch.spec.binding_policy = BindingPolicy::Takeover;
    ch.spec.takeover = Some(crate::api::TakeoverSpec { from: Some(OLD_URL_WITH_USERINFO.into()) });
    let tw = Twilio { target: Ok(Some(Target::Number(number(OLD_URL_WITH_USERINFO)))), ..Twilio::default() };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    let from = p.status.planned_changes.first().and_then(|c| c.from.clone());
    assert_eq!(from.as_deref(), Some("https://***@elsewhere.example.com/hook"));
    assert!(!format!("{:?}", p.status.planned_changes).contains("s3cret"));
}
