//! A confirmation that really arrives, against the simulator with WhatsApp's 24-hour window
//! enforced: an approved template is delivered outside the window; free text fails with 63016
//! and is reported as such (and setting a template sends the fix once); a template WhatsApp
//! has not approved is not sent; a send that times out after Twilio applied it still yields
//! exactly one message, found again by its reference.

mod common;

use std::time::Duration;

use common::operator::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use twilio_sim::state::Message;
use twilio_sim::{FaultAction, FaultRule};
use whatsapp_operator::api::WhatsAppChannel;

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const TO: &str = "+14155550123";
const APPROVED: &str = "HX00000000000000000000000000000021";
const PENDING: &str = "HX00000000000000000000000000000022";

/// An account whose sender is online, the window enforced (the recipient never wrote), and two
/// templates: one approved, one pending.
async fn fixture(prefix: &str) -> Fixture {
    Fixture::new(prefix, |_, number| {
        format!(
            "{}  enforce_session_window: true\n  contents:\n  - friendly_name: connected\n    sid: {APPROVED}\n    body: \"Connected to {{{{1}}}}. Ref {{{{2}}}}\"\n    approval: approved\n  - friendly_name: connected_pending\n    sid: {PENDING}\n    body: \"Connected to {{{{1}}}}.\"\n    approval: pending\n",
            sender_seed(number, "ONLINE")
        )
    })
    .await
}

fn spec(f: &Fixture, template: Option<serde_json::Value>) -> serde_json::Value {
    let mut spec = json!({
        "phoneNumber": f.number,
        "instance": "crm-prod",
        "confirmationPhoneNumber": TO,
        "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    });
    if let Some(t) = template {
        spec["confirmation"] = json!({"template": t});
    }
    spec
}

fn messages(f: &Fixture) -> Vec<Message> {
    f.sim.state().account(&f.account).map(|a| a.messages.clone()).unwrap_or_default()
}

fn message_posts(f: &Fixture) -> usize {
    f.sim.requests().iter().filter(|r| r.is_write() && r.path.ends_with("/Messages.json")).count()
}

fn approval_reads(f: &Fixture) -> usize {
    f.sim.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/ApprovalRequests")).count()
}

#[tokio::test]
async fn a_template_confirmation_is_delivered_outside_the_window() {
    let f = fixture("confirm-template").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let template = json!({"contentSid": APPROVED, "variables": {"1": "crm-prod"}, "referenceVariable": "2"});
    create_channel(&f.env, "ch", spec(&f, Some(template))).await;
    let ch = wait_condition(&f.env, "ch", "ConfirmationDelivered", "True", Some("Delivered")).await;
    assert_eq!(condition(&ch, "Ready").status, "True", "delivered and ready");
    let conf = ch.status.as_ref().and_then(|s| s.confirmation.clone()).expect("confirmation status");
    assert_eq!(conf.content_sid.as_deref(), Some(APPROVED));
    assert_eq!(conf.status.as_deref(), Some("delivered"));
    let reference = conf.reference.expect("reference");
    let sent = messages(&f);
    assert_eq!(sent.len(), 1, "exactly one message");
    assert_eq!(sent[0].content_sid.as_deref(), Some(APPROVED));
    assert_eq!(sent[0].body, format!("Connected to crm-prod. Ref {reference}"));
    assert_eq!(conf.message_sid.as_deref(), Some(sent[0].sid.as_str()));
    assert_eq!(approval_reads(&f), 1, "the approval is read once");
    let (type_, _, note) = wait_event(&f.env, "ch", "Delivered").await;
    assert_eq!(type_, "Normal");
    assert!(note.contains(APPROVED), "{note}");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn free_text_outside_the_window_fails_with_63016_reported_as_such_and_a_template_fixes_it() {
    let f = fixture("confirm-63016").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f, None)).await;
    let ch = wait_condition(&f.env, "ch", "ConfirmationDelivered", "False", Some("OutsideSessionWindow")).await;
    let delivered = condition(&ch, "ConfirmationDelivered");
    assert!(
        delivered.message.contains("63016")
            && delivered.message.contains("outside the 24-hour window: set spec.confirmation.template"),
        "{}",
        delivered.message
    );
    assert_eq!(condition(&ch, "ConfirmationSent").reason, "MessageFailed");
    let ready = condition(&ch, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "MessageFailed"));
    let conf = ch.status.as_ref().and_then(|s| s.confirmation.clone()).expect("confirmation status");
    assert_eq!((conf.status.as_deref(), conf.error_code), (Some("failed"), Some(63016)));
    let sent = messages(&f);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].content_sid.is_none() && sent[0].body.contains(conf.reference.as_deref().expect("reference")));

    // The fix the condition names: the template is sent once, and delivered.
    let api: Api<WhatsAppChannel> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    let patch =
        json!({"spec": {"confirmation": {"template": {"contentSid": APPROVED, "variables": {"1": "crm-prod"}}}}});
    api.patch("ch", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    let ch = wait_condition(&f.env, "ch", "ConfirmationDelivered", "True", Some("Delivered")).await;
    assert_eq!(condition(&ch, "Ready").status, "True");
    let sent = messages(&f);
    assert_eq!(sent.len(), 2, "the failed text, then the template");
    assert_eq!(sent[1].content_sid.as_deref(), Some(APPROVED));
    assert_eq!(message_posts(&f), 2);
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_template_whatsapp_has_not_approved_is_not_sent() {
    let f = fixture("confirm-pending").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f, Some(json!({"contentSid": PENDING})))).await;
    let ch = wait_condition(&f.env, "ch", "ConfirmationSent", "False", Some("TemplateNotApproved")).await;
    assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Waiting));
    assert_eq!(condition(&ch, "ConfirmationDelivered").reason, "TemplateNotApproved");
    assert!(ch.status.as_ref().is_some_and(|s| s.confirmation.is_none()), "no attempt");
    assert_eq!(message_posts(&f), 0, "nothing sent");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_send_that_times_out_after_twilio_applied_it_yields_exactly_one_message() {
    let f = fixture("confirm-timeout").await;
    // Twilio creates the message, then answers after the client gave up.
    let rule =
        FaultRule::new(FaultAction::LatencyAfterApply { ms: 2500 }).method("POST").path("/Messages.json$").times(1);
    f.sim.add_fault(rule).expect("fault");
    let mut cfg = config(&f.env, &f.sim);
    cfg.twilio.timeout = Duration::from_millis(800);
    let _op = start_operator(&f.env.client, cfg);
    let template = json!({"contentSid": APPROVED, "variables": {"1": "crm-prod"}, "referenceVariable": "2"});
    create_channel(&f.env, "ch", spec(&f, Some(template))).await;
    let ch = wait_condition(&f.env, "ch", "ConfirmationDelivered", "True", Some("Delivered")).await;
    let sent = messages(&f);
    assert_eq!(sent.len(), 1, "exactly one message at Twilio");
    assert_eq!(message_posts(&f), 1, "one POST: the timed-out one was looked up, not repeated");
    let lookups = f.sim.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/Messages.json")).count();
    assert!(lookups >= 1, "the operator looked the message up");
    eprintln!("timeout during send: 1 POST, {lookups} lookup(s), {} Twilio requests in all", f.sim.requests().len());
    let conf = ch.status.as_ref().and_then(|s| s.confirmation.clone()).expect("confirmation status");
    assert_eq!(conf.message_sid.as_deref(), Some(sent[0].sid.as_str()), "the message found is recorded");
    assert!(sent[0].body.ends_with(conf.reference.as_deref().expect("reference")), "found by its reference");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn channels_of_one_account_share_one_approval_read_of_their_template() {
    let numbers: Vec<String> = (0..4).map(|_| random_number()).collect();
    let senders: String = numbers.iter().map(|n| format!("  - sender_id: whatsapp:{n}\n")).collect();
    let f = Fixture::new("confirm-shared", move |_, _| {
        format!(
            "  whatsapp_senders:\n{senders}  enforce_session_window: true\n  contents:\n  - friendly_name: connected\n    sid: {APPROVED}\n    body: \"Connected to {{{{1}}}}. Ref {{{{2}}}}\"\n    approval: approved\n"
        )
    })
    .await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let template = json!({"contentSid": APPROVED, "variables": {"1": "crm-prod"}, "referenceVariable": "2"});
    for (i, n) in numbers.iter().enumerate() {
        let mut s = spec(&f, Some(template.clone()));
        s["phoneNumber"] = json!(n);
        create_channel(&f.env, &format!("ch{i}"), s).await;
    }
    for i in 0..numbers.len() {
        wait_condition(&f.env, &format!("ch{i}"), "ConfirmationDelivered", "True", Some("Delivered")).await;
    }
    assert_eq!(messages(&f).len(), numbers.len(), "one message per channel");
    assert_eq!(approval_reads(&f), 1, "one approval read for the account's {} channels", numbers.len());
    eprintln!(
        "{} channels, one template: {} approval read, {} Twilio requests in all",
        numbers.len(),
        approval_reads(&f),
        f.sim.requests().len()
    );
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn an_operator_stopped_after_the_send_leaves_one_message_the_next_one_adopts() {
    use std::sync::Arc;
    use whatsapp_operator::test_hooks::{Hooks, Point};

    let f = fixture("confirm-crash").await;
    let sim = (*f.sim).clone();
    let account = f.account.clone();
    let paused = Arc::new(tokio::sync::Notify::new());
    let signal = paused.clone();
    // After the message write (a message exists at Twilio), before its result is recorded: stop
    // there for good, as a crash would.
    let hooks = Hooks::new(move |point, _key| {
        let (sim, account, signal) = (sim.clone(), account.clone(), signal.clone());
        async move {
            let sent = sim.account(&account).is_some_and(|a| !a.messages.is_empty());
            if point == Point::AfterTwilioWrite && sent {
                signal.notify_one();
                std::future::pending::<()>().await;
            }
        }
    });
    let mut cfg = config(&f.env, &f.sim);
    cfg.hooks = hooks;
    let first = start_operator(&f.env.client, cfg);
    let template = json!({"contentSid": APPROVED, "variables": {"1": "crm-prod"}, "referenceVariable": "2"});
    create_channel(&f.env, "ch", spec(&f, Some(template))).await;
    common::within(Duration::from_secs(30), paused.notified()).await;
    drop(first);
    let ch = get_channel(&f.env, "ch").await;
    let attempt = ch.status.and_then(|s| s.confirmation).expect("the attempt was recorded before the send");
    assert!(attempt.message_sid.is_none(), "the stopped pass recorded no SID: {attempt:?}");

    let _second = start_operator(&f.env.client, config(&f.env, &f.sim));
    let ch = wait_condition(&f.env, "ch", "ConfirmationDelivered", "True", Some("Delivered")).await;
    let sent = messages(&f);
    assert_eq!((sent.len(), message_posts(&f)), (1, 1), "exactly one message, one POST");
    let conf = ch.status.and_then(|s| s.confirmation).expect("confirmation");
    assert_eq!(conf.message_sid.as_deref(), Some(sent[0].sid.as_str()));
    assert_eq!(conf.reference, attempt.reference, "found by the reference recorded before the send");
    assert_conforming(&f.sim);
}
