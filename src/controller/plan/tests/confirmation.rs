//! The confirmation message's content and delivery: templates (checked for approval before
//! sending), the reference an attempt is found again by, and `ConfirmationDelivered`.

use std::collections::BTreeMap;

use crate::api::{ConfirmationSpec, ConfirmationTemplate};
use crate::twilio::{ContentApproval, MessageContent};

use super::*;

const SM: &str = "SM00000000000000000000000000000001";
const HX: &str = "HX00000000000000000000000000000011";

fn with_template(c: Option<ConfirmationStatus>, reference_variable: Option<&str>) -> WhatsAppChannel {
    let mut ch = with_confirmation(c);
    ch.spec.confirmation = Some(ConfirmationSpec {
        template: Some(ConfirmationTemplate {
            content_sid: HX.into(),
            variables: BTreeMap::from([("1".to_owned(), "crm-prod".to_owned())]),
            reference_variable: reference_variable.map(str::to_owned),
        }),
    });
    ch
}

fn approval(status: &str) -> Result<Option<ContentApproval>, TwilioError> {
    Ok(Some(ContentApproval { status: status.into(), rejection_reason: "bad format".into(), ..Default::default() }))
}

fn sent(p: &Plan) -> Vec<&NewMessage> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::SendMessage(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn recorded(p: &Plan) -> Option<&ConfirmationStatus> {
    p.steps.iter().find_map(|s| match s {
        Step::Record(r) => r.confirmation.as_ref(),
        _ => None,
    })
}

fn failed_with(code: u32, content_sid: Option<&str>) -> ConfirmationStatus {
    ConfirmationStatus {
        error_code: Some(code.into()),
        content_sid: content_sid.map(str::to_owned),
        ..attempt(Some(SM), "failed", 60)
    }
}

#[test]
fn free_text_carries_the_recorded_reference() {
    let (p, reads) = run(&with_confirmation(None), &cluster(), &Twilio::default(), vec![]);
    assert!(!reads.iter().any(|r| matches!(r, Read::Template(_))), "no template, no approval read");
    let attempt = recorded(&p).expect("attempt recorded");
    let reference = attempt.reference.clone().expect("reference");
    assert!(reference.starts_with("wao-") && reference.len() == 16, "{reference}");
    assert_eq!(attempt.content_sid, None);
    let MessageContent::Body(body) = &sent(&p)[0].content else { panic!("free text") };
    assert!(body.ends_with(&format!("Ref {reference}")), "{body}");
    assert_eq!(reason(&p, "ConfirmationDelivered"), "Unknown/DeliveryPending");
}

#[test]
fn an_approved_template_is_sent_with_its_variables_and_the_reference() {
    let (p, reads) = run(&with_template(None, Some("2")), &cluster(), &Twilio::default(), vec![]);
    assert!(reads.contains(&Read::Template(HX.into())), "{reads:?}");
    let attempt = recorded(&p).expect("attempt recorded");
    assert_eq!(attempt.content_sid.as_deref(), Some(HX));
    let reference = attempt.reference.clone().expect("reference");
    let MessageContent::Template { content_sid, variables } = &sent(&p)[0].content else { panic!("template") };
    assert_eq!(content_sid, HX);
    assert_eq!(variables, &BTreeMap::from([("1".into(), "crm-prod".into()), ("2".into(), reference)]));
    assert_eq!(reason(&p, "ConfirmationSent"), "Unknown/MessageSent");
}

#[test]
fn a_template_that_is_not_usable_sends_nothing_and_says_why() {
    let cases = [
        (approval("pending"), "False/TemplateNotApproved", Phase::Waiting),
        (approval(""), "False/TemplateNotApproved", Phase::Waiting),
        (approval("rejected"), "False/TemplateRejected", Phase::Failed),
        (approval("paused"), "False/TemplateRejected", Phase::Failed),
        (Ok(None), "False/TemplateNotFound", Phase::Failed),
        (Err(unauthorized()), "False/MessageFailed", Phase::Failed),
    ];
    for (answer, expect, phase) in cases {
        let tw = Twilio { template: answer.clone(), ..Twilio::default() };
        let (p, _) = run(&with_template(None, None), &cluster(), &tw, vec![]);
        assert!(sent(&p).is_empty(), "{answer:?}: nothing sent");
        assert!(p.status.confirmation.is_none(), "{answer:?}: no attempt recorded");
        assert_eq!(reason(&p, "ConfirmationSent"), expect, "{answer:?}");
        assert_eq!(p.status.phase, Some(phase), "{answer:?}");
    }
    let tw = Twilio { template: approval("rejected"), ..Twilio::default() };
    let (p, _) = run(&with_template(None, None), &cluster(), &tw, vec![]);
    let delivered = cond(&p, "ConfirmationDelivered").expect("condition");
    assert_eq!(delivered.reason, "TemplateRejected");
    assert!(delivered.message.contains("bad format") && delivered.message.contains(HX), "{}", delivered.message);
    // A transient failure of the check: backoff, nothing sent.
    let tw = Twilio { template: Err(server_error()), ..Twilio::default() };
    let (p, _) = run(&with_template(None, None), &cluster(), &tw, vec![]);
    assert!(sent(&p).is_empty() && matches!(p.after, After::Backoff(_)));
}

#[test]
fn the_sandbox_sends_free_text_even_with_a_template() {
    let mut ch = with_template(None, None);
    ch.spec.mode = ChannelMode::Sandbox;
    ch.spec.phone_number = crate::api::SANDBOX_NUMBER.into();
    ch.status = None;
    let tw = Twilio {
        target: Ok(None),
        verification: Ok(verified()),
        template: Err(TwilioError::InvalidInput("must not be read".into())),
        ..Twilio::default()
    };
    let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
    assert!(!reads.iter().any(|r| matches!(r, Read::Template(_))), "{reads:?}");
    assert!(sent(&p).iter().all(|m| matches!(m.content, MessageContent::Body(_))));
}

#[test]
fn delivery_is_reported_with_one_event_per_final_answer() {
    let cases = [
        ("delivered", None, "True/Delivered", "True/MessageSent", Some(EventType::Normal)),
        ("read", None, "True/Read", "True/MessageSent", Some(EventType::Normal)),
        ("sent", None, "Unknown/DeliveryPending", "True/MessageSent", None),
        ("failed", Some(63016), "False/OutsideSessionWindow", "False/MessageFailed", Some(EventType::Warning)),
        (
            "undelivered",
            Some(63015),
            "False/RecipientNotInSandbox",
            "False/RecipientNotInSandbox",
            Some(EventType::Warning),
        ),
        ("undelivered", Some(63003), "False/DeliveryFailed", "False/MessageFailed", Some(EventType::Warning)),
    ];
    for (status, code, delivered, sent_reason, event) in cases {
        let ch = with_confirmation(Some(attempt(Some(SM), "queued", 10)));
        let tw = Twilio { message: Ok(Some(message(SM, status, code))), ..Twilio::default() };
        let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
        assert!(reads.contains(&Read::FetchMessage(SM.into())), "{status}");
        assert_eq!(reason(&p, "ConfirmationDelivered"), delivered, "{status}");
        assert_eq!(reason(&p, "ConfirmationSent"), sent_reason, "{status}");
        let wanted = delivered.split('/').nth(1).expect("reason");
        // One Event: the delivery's, or Ready turning False (which names the failure).
        let notes: Vec<_> = p.events.iter().filter(|e| e.reason.as_str() == wanted).collect();
        let ready_warning =
            p.events.iter().any(|e| e.type_ == EventType::Warning && e.message.starts_with("Ready is False"));
        match event {
            Some(EventType::Warning) => {
                assert!(ready_warning, "{status}: {:?}", p.events);
                assert!(!p.events.iter().any(|e| e.message.starts_with("Message ")), "told once: {:?}", p.events);
            }
            Some(t) => assert!(notes.len() == 1 && notes[0].type_ == t, "{status}: {:?}", p.events),
            None => assert!(notes.is_empty(), "{status}: {:?}", p.events),
        }
        // Reported again from the status: no Twilio call, no second Event.
        let mut again = ch.clone();
        again.status = Some(p.status.clone());
        let (p2, reads) = run(&again, &cluster(), &Twilio::default(), vec![]);
        if status != "sent" {
            assert!(reads.iter().all(|r| !matches!(r, Read::FetchMessage(_))), "{status}: {reads:?}");
        }
        assert_eq!(reason(&p2, "ConfirmationDelivered"), delivered, "{status}");
        assert!(!p2.events.iter().any(|e| e.reason.as_str() == wanted), "{status}: {:?}", p2.events);
    }
    // 63016 explains what to do, and does not block Ready twice.
    let ch = with_confirmation(Some(failed_with(63016, None)));
    let (p, _) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    let c = cond(&p, "ConfirmationDelivered").expect("condition");
    assert!(c.message.contains("outside the 24-hour window: set spec.confirmation.template"), "{}", c.message);
    assert!(cond(&p, "Ready").expect("ready").message.starts_with("ConfirmationSent:"));
    // A template WhatsApp treats as free text.
    let ch = with_template(Some(failed_with(63016, Some(HX))), None);
    let (p, _) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert_eq!(reason(&p, "ConfirmationDelivered"), "False/TemplateNotApproved");
    assert!(sent(&p).is_empty(), "the same template is not sent again");
}

#[test]
fn pending_delivery_does_not_block_ready() {
    let ch = with_confirmation(Some(attempt(Some(SM), "sent", 3600)));
    let (p, reads) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert!(reads.iter().all(|r| !matches!(r, Read::FetchMessage(_))), "followed long enough");
    assert_eq!(reason(&p, "ConfirmationDelivered"), "Unknown/DeliveryPending");
    assert!(cond(&p, "ConfirmationDelivered").expect("c").message.contains("no longer followed"));
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
}

#[test]
fn a_template_set_after_63016_sends_the_fix_once() {
    let ch = with_template(Some(failed_with(63016, None)), None);
    let (p, _) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    let messages = sent(&p);
    assert_eq!(messages.len(), 1);
    assert!(matches!(&messages[0].content, MessageContent::Template { content_sid, .. } if content_sid == HX));
    assert_eq!(recorded(&p).and_then(|c| c.content_sid.as_deref()), Some(HX));
    // Delivered with the template: nothing more.
    let delivered = ConfirmationStatus { content_sid: Some(HX.into()), ..attempt(Some(SM), "delivered", 10) };
    let (p, _) = run(&with_template(Some(delivered), None), &cluster(), &Twilio::default(), vec![]);
    assert!(sent(&p).is_empty());
    // A delivered free-text message is not sent again because a template was added.
    let (p, _) =
        run(&with_template(Some(attempt(Some(SM), "delivered", 10)), None), &cluster(), &Twilio::default(), vec![]);
    assert!(sent(&p).is_empty());
}

#[test]
fn an_attempt_without_sid_is_looked_up_by_its_reference() {
    let find = |ch: &WhatsAppChannel| {
        let (p, reads) = run(
            ch,
            &cluster(),
            &Twilio { message: Ok(Some(message(SM, "queued", None))), ..Twilio::default() },
            vec![],
        );
        assert!(sent(&p).is_empty(), "adopted, not sent");
        assert_eq!(p.status.confirmation.as_ref().and_then(|c| c.message_sid.as_deref()), Some(SM));
        reads.into_iter().find_map(|r| match r {
            Read::FindSent { matching, since, .. } => Some((matching, since)),
            _ => None,
        })
    };
    let pending = attempt(None, "sending", 10);
    let (matching, since) = find(&with_confirmation(Some(pending.clone()))).expect("looked up");
    assert_eq!(matching, SentMatch::Reference("wao-000000000001".into()));
    assert_eq!(since, Some(time(NOW - 10 - 300)));
    let with_hx = ConfirmationStatus { content_sid: Some(HX.into()), ..pending.clone() };
    let (matching, _) = find(&with_template(Some(with_hx.clone()), Some("2"))).expect("looked up");
    assert_eq!(matching, SentMatch::Reference("wao-000000000001".into()));
    let (matching, _) = find(&with_template(Some(with_hx), None)).expect("looked up");
    assert_eq!(matching, SentMatch::Any);
    // An attempt recorded before references: by the exact text, as before.
    let legacy = ConfirmationStatus { reference: None, ..pending };
    let (matching, _) = find(&with_confirmation(Some(legacy))).expect("looked up");
    assert!(matches!(matching, SentMatch::Body(b) if b.starts_with("This WhatsApp number is now connected")));
}

#[test]
fn sent_matches() {
    let r = SentMatch::Reference("wao-abc".into());
    assert!(r.matches(Some("Connected. Ref wao-abc")));
    assert!(!r.matches(Some("Connected. Ref wao-abd")) && !r.matches(None));
    assert!(SentMatch::Body("x".into()).matches(Some("x")) && !SentMatch::Body("x".into()).matches(Some("x ")));
    assert!(SentMatch::Any.matches(None) && SentMatch::Any.matches(Some("Connected to crm-prod.")));
    assert!(!SentMatch::Any.matches(Some("This WhatsApp number is now connected … Ref wao-0123456789ab")));
}

#[test]
fn a_delivery_failure_on_a_channel_that_is_not_ready_is_one_warning() {
    // Ready is already False (the failure was reported): a new final answer is its own Event.
    let mut ch = with_confirmation(Some(attempt(Some(SM), "queued", 10)));
    let status = ch.status.as_mut().expect("status");
    for c in status.conditions.iter_mut().filter(|c| c.type_ == "Ready") {
        c.status = "False".into();
        c.reason = "MessageFailed".into();
    }
    let tw = Twilio { message: Ok(Some(message(SM, "failed", Some(63016)))), ..Twilio::default() };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    let warnings: Vec<_> = p.events.iter().filter(|e| e.type_ == EventType::Warning).collect();
    assert_eq!(warnings.len(), 1, "{:?}", p.events);
    assert_eq!(warnings[0].reason, Reason::OutsideSessionWindow);
}
