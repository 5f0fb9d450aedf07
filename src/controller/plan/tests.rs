//! Table-driven tests of the plan: every condition reason it sets, the confirmation state
//! machine, when verification is due, cleanup, a number move, takeover and error
//! classification. Each case is a channel, a cluster view and Twilio's answers; the plan is
//! driven to completion by answering its reads from the case, as the observer would.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;

use crate::api::binding::ChannelReference;
use crate::api::{
    BindingPolicy, ChannelMode, ConfirmationStatus, DeletionPolicy, Phase, Reason, SenderKind, SenderStatus,
    WhatsAppChannel, WhatsAppChannelSpec, WhatsAppChannelStatus,
};
use crate::binding::BindingState;
use crate::controller::credentials::SecretProblem;
use crate::twilio::{
    AccountStatus, IdentityError, IncomingPhoneNumber, Message, Sender, TwilioError, Verification, VerificationMethod,
};

use super::*;

const NUMBER: &str = "+14155550100";
const OTHER_NUMBER: &str = "+14155550111";
const ACCOUNT: &str = "AC5eed5eed5eed5eed5eed5eed5eed5eed";
const URL: &str = "https://crm.example.com/hook";
/// `MARKED` as this channel writes it at Twilio: with its ownership marker.
const MARKED: &str = "https://crm.example.com/hook#wao-owner=c1/crm/sales/crm-prod";
const XE: &str = "XE00000000000000000000000000000001";
const PN: &str = "PN00000000000000000000000000000001";

fn time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("time"))
}

const NOW: i64 = 1_800_000_000;

fn channel() -> WhatsAppChannel {
    let spec: WhatsAppChannelSpec = serde_json::from_value(serde_json::json!({
        "phoneNumber": NUMBER,
        "instance": "crm-prod",
        "twilio": {"accountSid": ACCOUNT, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": URL},
        "queue": "sales",
        "language": "en",
    }))
    .expect("spec");
    let mut ch = WhatsAppChannel::new("sales", spec);
    ch.metadata.namespace = Some("crm".into());
    ch.metadata.uid = Some("uid-sales".into());
    ch.metadata.generation = Some(1);
    ch
}

fn me() -> ChannelReference {
    ChannelReference { namespace: "crm".into(), name: "sales".into(), uid: "uid-sales".into() }
}

fn binding_name(n: &str) -> String {
    format!("whatsapp-{}", n.trim_start_matches('+'))
}

fn cluster() -> ClusterView {
    ClusterView {
        binding: Some(BindingView { name: binding_name(NUMBER), state: BindingState::Mine { instance_stale: false } }),
        wired: None,
        held: vec![HeldBinding { name: binding_name(NUMBER), uid: "b-uid".into() }],
        secret: SecretView {
            name: "twilio".into(),
            credentials: Ok("fingerprint".into()),
            protected: true,
            deleting: false,
        },
        identity_secret: None,
        hold: None,
        attempt_left: None,
        receiver: None,
    }
}

fn sender(url: Option<&str>, status: &str) -> Sender {
    serde_json::from_value(serde_json::json!({
        "sid": XE,
        "sender_id": format!("whatsapp:{NUMBER}"),
        "status": status,
        "webhook": {"callback_url": url, "callback_method": "POST", "fallback_url": "https://fallback.example.com"},
    }))
    .expect("sender")
}

fn number(url: &str) -> IncomingPhoneNumber {
    serde_json::from_value(serde_json::json!({"sid": PN, "phone_number": NUMBER, "sms_url": url, "sms_method": "POST"}))
        .expect("number")
}

fn verified() -> Verification {
    Verification {
        account_sid: ACCOUNT.into(),
        method: VerificationMethod::FetchAccount,
        friendly_name: Some("prod".into()),
        status: Some(AccountStatus::Active),
        account_type: None,
    }
}

fn message(sid: &str, status: &str, code: Option<u32>) -> Message {
    serde_json::from_value(serde_json::json!({
        "sid": sid, "status": status, "error_code": code, "to": "whatsapp:+14155550123", "from": format!("whatsapp:{NUMBER}"),
    }))
    .expect("message")
}

fn server_error() -> TwilioError {
    TwilioError::Server { status: 503, code: None, message: "unavailable".into(), ambiguous: false }
}

fn unauthorized() -> TwilioError {
    TwilioError::Unauthorized { status: 401, code: Some(20003), message: "Authenticate".into() }
}

/// Twilio as a case sees it: the answer to each read.
#[derive(Clone)]
struct Twilio {
    verification: Result<Verification, TwilioError>,
    target: Result<Option<Target>, TwilioError>,
    routing: Result<crate::twilio::RoutingFacts, TwilioError>,
    wired_target: Result<Option<Target>, TwilioError>,
    message: Result<Option<Message>, TwilioError>,
    identity: Result<(), IdentityError>,
    template: Result<Option<crate::twilio::ContentApproval>, TwilioError>,
    /// Which credential the verification used.
    credential: Option<crate::api::CredentialsStatus>,
    /// The receiver's TLS handshake.
    receiver_tls: Option<crate::controller::receiver_tls::ReceiverTls>,
}

impl Default for Twilio {
    fn default() -> Self {
        Self {
            verification: Ok(verified()),
            target: Ok(Some(Target::Sender(sender(Some(MARKED), "ONLINE")))),
            routing: Ok(Default::default()),
            wired_target: Ok(None),
            message: Ok(None),
            identity: Ok(()),
            template: Ok(Some(crate::twilio::ContentApproval { status: "approved".into(), ..Default::default() })),
            credential: None,
            receiver_tls: None,
        }
    }
}

fn config() -> PlanConfig {
    PlanConfig {
        verify_interval: Duration::from_secs(600),
        sender_poll_interval: Duration::from_secs(900),
        permanent_retry_interval: Duration::from_secs(1800),
        cluster_id: "c1".into(),
        receiver_tls_warn: None,
    }
}

/// Runs the plan to completion, answering its reads from `tw`; returns the plan and the reads.
fn run(ch: &WhatsAppChannel, cl: &ClusterView, tw: &Twilio, outcomes: Vec<Outcome>) -> (Plan, Vec<Read>) {
    run_with(ch, cl, tw, outcomes, config())
}

/// [`run`] with other settings.
fn run_with(
    ch: &WhatsAppChannel,
    cl: &ClusterView,
    tw: &Twilio,
    outcomes: Vec<Outcome>,
    cfg: PlanConfig,
) -> (Plan, Vec<Read>) {
    let now = time(NOW);
    let mut view = TwilioView { outcomes, ..TwilioView::default() };
    let mut reads = Vec::new();
    for _ in 0..12 {
        match plan(Input { ch, cluster: cl, twilio: &view, now: &now, config: &cfg }) {
            Next::Plan(p) => return (*p, reads),
            Next::Read(r) => {
                assert!(!reads.contains(&r), "read asked twice: {r:?}");
                match &r {
                    Read::Verify => {
                        view.verification = Some(tw.verification.clone());
                        view.credential = tw.credential.clone();
                    }
                    Read::Target(..) => view.target = Some(tw.target.clone()),
                    Read::WiredTarget(..) => view.wired_target = Some(tw.wired_target.clone()),
                    Read::Routing(..) => view.routing = Some(tw.routing.clone()),
                    Read::FetchMessage(_) | Read::FindSent { .. } => view.message = Some(tw.message.clone()),
                    Read::Template(_) => view.template = Some(tw.template.clone()),
                    Read::Identity => view.identity = Some(tw.identity.clone()),
                    Read::ReceiverTls => view.receiver_tls = tw.receiver_tls.clone(),
                }
                reads.push(r);
            }
        }
    }
    panic!("the plan never completed")
}

fn cond<'a>(p: &'a Plan, t: &str) -> Option<&'a Condition> {
    p.status.conditions.iter().find(|c| c.type_ == t)
}

fn reason(p: &Plan, t: &str) -> String {
    cond(p, t).map(|c| format!("{}/{}", c.status, c.reason)).unwrap_or_else(|| "-".into())
}

fn twilio_writes(p: &Plan) -> Vec<&Step> {
    p.steps
        .iter()
        .filter(|s| matches!(s, Step::SetWebhook(_) | Step::RestoreWebhook(_) | Step::SendMessage(_)))
        .collect()
}

fn ready_status(sender: SenderStatus) -> WhatsAppChannelStatus {
    let ready = |t: &str, r: &str| Condition {
        type_: t.into(),
        status: "True".into(),
        reason: r.into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: time(NOW - 100),
    };
    WhatsAppChannelStatus {
        observed_generation: Some(1),
        conditions: vec![ready("Ready", "ChannelReady"), ready("Connected", "ChannelConnected")],
        phase: Some(Phase::Ready),
        sender: Some(sender),
        last_verified_time: Some(time(NOW - 60)),
        ..Default::default()
    }
}

fn wired(url: &str) -> SenderStatus {
    SenderStatus {
        kind: SenderKind::WhatsAppSender,
        phone_number: NUMBER.into(),
        sid: Some(XE.into()),
        status: Some("ONLINE".into()),
        webhook_url: Some(url.into()),
        webhook_method: Some("POST".into()),
        configured_url: Some(url.into()),
        pending_webhook_url: None,
        previous_webhook_url: Some("https://old.example.com/hook".into()),
        previous_webhook_method: Some("POST".into()),
    }
}

#[test]
fn condition_reasons_table() {
    struct Case {
        name: &'static str,
        ch: fn(&mut WhatsAppChannel),
        cl: fn(&mut ClusterView),
        tw: fn(&mut Twilio),
        expect: &'static [(&'static str, &'static str)],
        phase: Phase,
    }
    let none = |_: &mut WhatsAppChannel| {};
    let nocl = |_: &mut ClusterView| {};
    let notw = |_: &mut Twilio| {};
    let cases = [
        Case {
            name: "in sync",
            ch: none,
            cl: nocl,
            tw: notw,
            expect: &[
                ("Ready", "True/ChannelReady"),
                ("WebhookConfigured", "True/Configured"),
                ("NumberBound", "True/Bound"),
                ("Active", "True/Activated"),
            ],
            phase: Phase::Ready,
        },
        Case {
            name: "inactive",
            ch: |c| c.spec.active = false,
            cl: nocl,
            tw: notw,
            expect: &[("Ready", "True/ChannelReady"), ("Active", "False/Deactivated")],
            phase: Phase::Inactive,
        },
        Case {
            name: "bad number",
            ch: |c| c.spec.phone_number = "12".into(),
            cl: nocl,
            tw: notw,
            expect: &[("NumberVerified", "False/InvalidSpec"), ("Ready", "False/InvalidSpec")],
            phase: Phase::Failed,
        },
        Case {
            name: "sandbox needs the sandbox number",
            ch: |c| c.spec.mode = ChannelMode::Sandbox,
            cl: nocl,
            tw: notw,
            expect: &[("NumberVerified", "False/InvalidSpec")],
            phase: Phase::Failed,
        },
        Case {
            name: "a confirmation to the channel's own number",
            ch: |c| c.spec.confirmation_phone_number = Some(c.spec.phone_number.clone()),
            cl: nocl,
            tw: notw,
            expect: &[("ConfirmationSent", "False/InvalidSpec"), ("Ready", "False/InvalidSpec")],
            phase: Phase::Failed,
        },
        Case {
            name: "held by another channel",
            ch: none,
            cl: |c| {
                c.binding.as_mut().expect("b").state = BindingState::HeldBy {
                    holder: ChannelReference { namespace: "x".into(), name: "y".into(), uid: "u".into() },
                    instance: "crm-dev".into(),
                }
            },
            tw: notw,
            expect: &[("NumberBound", "False/NumberInUse"), ("Ready", "False/NumberInUse")],
            phase: Phase::Conflict,
        },
        Case {
            name: "no Secret",
            ch: none,
            cl: |c| {
                c.secret.credentials = Err(SecretProblem { reason: Reason::SecretNotFound, message: "gone".into() })
            },
            tw: notw,
            expect: &[("CredentialsValid", "False/SecretNotFound")],
            phase: Phase::Failed,
        },
        Case {
            name: "Secret lacks a key",
            ch: none,
            cl: |c| {
                c.secret.credentials = Err(SecretProblem { reason: Reason::SecretKeyMissing, message: "no key".into() })
            },
            tw: notw,
            expect: &[("CredentialsValid", "False/SecretKeyMissing")],
            phase: Phase::Failed,
        },
        Case {
            name: "credentials refused",
            ch: none,
            cl: nocl,
            tw: |t| t.verification = Err(unauthorized()),
            expect: &[("CredentialsValid", "False/InvalidCredentials")],
            phase: Phase::Failed,
        },
        Case {
            name: "account suspended",
            ch: none,
            cl: nocl,
            tw: |t| t.verification = Ok(Verification { status: Some(AccountStatus::Suspended), ..verified() }),
            expect: &[("CredentialsValid", "False/AccountSuspended")],
            phase: Phase::Failed,
        },
        Case {
            name: "account closed",
            ch: none,
            cl: nocl,
            tw: |t| t.verification = Ok(Verification { status: Some(AccountStatus::Closed), ..verified() }),
            expect: &[("CredentialsValid", "False/AccountClosed")],
            phase: Phase::Failed,
        },
        Case {
            name: "Twilio down while verifying",
            ch: none,
            cl: nocl,
            tw: |t| t.verification = Err(server_error()),
            expect: &[("CredentialsValid", "Unknown/TwilioUnavailable")],
            phase: Phase::Degraded,
        },
        Case {
            name: "rate limited",
            ch: none,
            cl: nocl,
            tw: |t| {
                t.verification =
                    Err(TwilioError::RateLimited { retry_after: Some(Duration::from_secs(3)), code: Some(20429) })
            },
            expect: &[("CredentialsValid", "Unknown/RateLimited")],
            phase: Phase::Degraded,
        },
        Case {
            name: "number not found",
            ch: none,
            cl: nocl,
            tw: |t| t.target = Ok(None),
            expect: &[("NumberVerified", "False/NumberNotFound")],
            phase: Phase::Failed,
        },
        Case {
            name: "sender offline",
            ch: none,
            cl: nocl,
            tw: |t| t.target = Ok(Some(Target::Sender(sender(Some(MARKED), "OFFLINE")))),
            expect: &[("NumberVerified", "False/SenderNotReady")],
            phase: Phase::Waiting,
        },
        Case {
            name: "Twilio rejects the lookup",
            ch: none,
            cl: nocl,
            tw: |t| t.target = Err(TwilioError::InvalidInput("bad".into())),
            expect: &[("NumberVerified", "False/TwilioRejected")],
            phase: Phase::Failed,
        },
        Case {
            name: "foreign receiver",
            ch: none,
            cl: nocl,
            tw: |t| t.target = Ok(Some(Target::Sender(sender(Some("https://other.example.com"), "ONLINE")))),
            expect: &[("NumberBound", "False/BoundElsewhere")],
            phase: Phase::Conflict,
        },
        Case {
            name: "GET on a sender",
            ch: |c| c.spec.webhook.method = crate::api::WebhookMethod::Get,
            cl: nocl,
            tw: notw,
            expect: &[("WebhookConfigured", "False/MethodNotSupported")],
            phase: Phase::Failed,
        },
        Case {
            name: "sandbox",
            ch: |c| {
                c.spec.mode = ChannelMode::Sandbox;
                c.spec.phone_number = SANDBOX_NUMBER.into();
            },
            cl: |c| c.binding.as_mut().expect("b").name = "whatsapp-14155238886-x".into(),
            tw: notw,
            expect: &[("WebhookConfigured", "Unknown/ManualStepRequired"), ("Ready", "True/ChannelReady")],
            phase: Phase::Ready,
        },
        Case {
            name: "suspended",
            ch: |c| c.spec.suspend = true,
            cl: nocl,
            tw: notw,
            expect: &[("Ready", "False/Suspended")],
            phase: Phase::Suspended,
        },
        Case {
            name: "identity refused",
            ch: |c| {
                c.spec.identity_server = Some(serde_json::from_value(serde_json::json!({"url": "https://id.example.com", "clientId": "crm", "clientSecretRef": {"name": "id"}})).expect("id"))
            },
            cl: |c| c.identity_secret = Some(Ok("d".into())),
            tw: |t| t.identity = Err(IdentityError::InvalidClient { status: 401 }),
            expect: &[("IdentityVerified", "False/IdentityRejected")],
            phase: Phase::Failed,
        },
        Case {
            name: "identity URL refused by the outbound policy",
            ch: |c| {
                c.spec.identity_server = Some(serde_json::from_value(serde_json::json!({"url": "https://169.254.169.254", "clientId": "crm", "clientSecretRef": {"name": "id"}})).expect("id"))
            },
            cl: |c| c.identity_secret = Some(Ok("d".into())),
            tw: |t| {
                t.identity = Err(IdentityError::Refused(crate::twilio::OutboundRefusal::Forbidden {
                    host: "169.254.169.254".into(),
                    addr: std::net::IpAddr::from([169, 254, 169, 254]),
                    range: "link-local (169.254.0.0/16, cloud metadata services)",
                }))
            },
            expect: &[("IdentityVerified", "False/IdentityURLRefused"), ("Ready", "False/IdentityURLRefused")],
            phase: Phase::Failed,
        },
        Case {
            name: "identity secret missing",
            ch: |c| {
                c.spec.identity_server = Some(serde_json::from_value(serde_json::json!({"url": "https://id.example.com", "clientId": "crm", "clientSecretRef": {"name": "id"}})).expect("id"))
            },
            cl: |c| {
                c.identity_secret =
                    Some(Err(SecretProblem { reason: Reason::IdentitySecretMissing, message: "no".into() }))
            },
            tw: notw,
            expect: &[("IdentityVerified", "False/IdentitySecretMissing")],
            phase: Phase::Failed,
        },
    ];
    for case in cases {
        let mut ch = channel();
        (case.ch)(&mut ch);
        let mut cl = cluster();
        (case.cl)(&mut cl);
        let mut tw = Twilio::default();
        (case.tw)(&mut tw);
        let (p, _) = run(&ch, &cl, &tw, vec![]);
        for (t, want) in case.expect {
            assert_eq!(reason(&p, t), *want, "{}: condition {t}", case.name);
        }
        assert_eq!(p.status.phase, Some(case.phase), "{}: phase", case.name);
        let decided_without_twilio = matches!(case.phase, Phase::Failed | Phase::Conflict) && p.verified.is_none();
        if decided_without_twilio {
            assert!(p.forget_attempt, "{}: an outcome without Twilio forgets the last check", case.name);
        }
        assert_eq!(p.status.observed_generation, Some(1), "{}", case.name);
    }
}

#[test]
fn error_classification_transient_backs_off_permanent_waits() {
    for (e, transient) in [
        (server_error(), true),
        (TwilioError::RateLimited { retry_after: None, code: None }, true),
        (unauthorized(), false),
        (TwilioError::InvalidInput("x".into()), false),
    ] {
        let tw = Twilio { verification: Err(e.clone()), ..Twilio::default() };
        let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
        assert_eq!(matches!(p.after, After::Backoff(_)), transient, "{e:?}");
        if !transient {
            assert!(matches!(p.after, After::Requeue(d) if d == Duration::from_secs(1800)), "{e:?}: {:?}", p.after);
        }
        assert!(!p.forget_verification, "{e:?}: a refused verification is the cached answer itself");
        assert_eq!(p.hold.is_some(), matches!(e, TwilioError::RateLimited { .. }));
    }
    // Refused later with credentials the cached verification accepted: verify afresh.
    let tw = Twilio { target: Err(unauthorized()), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(reason(&p, "CredentialsValid"), "False/InvalidCredentials");
    assert!(p.forget_verification);
}

#[test]
fn a_transient_failure_keeps_a_ready_channel_ready_and_its_generation() {
    let mut ch = channel();
    ch.status = Some(ready_status(wired(MARKED)));
    ch.metadata.generation = Some(2);
    let tw = Twilio { target: Err(server_error()), ..Twilio::default() };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
    assert_eq!(p.status.observed_generation, Some(1), "the new spec is not reflected yet");
    assert!(matches!(p.after, After::Backoff(_)));
    assert!(p.events.is_empty(), "a blip publishes nothing");
}

#[test]
fn verification_is_due_on_change_age_or_not_ready_only() {
    let inputs = verified_inputs(&channel(), "fingerprint", None);
    let fresh_ready = || {
        let mut ch = channel();
        let mut s = ready_status(wired(MARKED));
        s.verified_inputs = Some(inputs.clone());
        ch.status = Some(s);
        ch
    };
    // Ready, fresh, same inputs: no Twilio call at all.
    let (p, reads) = run(&fresh_ready(), &cluster(), &Twilio::default(), vec![]);
    assert!(reads.is_empty(), "{reads:?}");
    assert!(p.steps.is_empty());
    assert!(matches!(p.after, After::Requeue(d) if d <= Duration::from_secs(540) && d > Duration::from_secs(500)));
    // Rotated credentials (another fingerprint): due.
    let mut cl = cluster();
    cl.secret.credentials = Ok("rotated".into());
    let (_, reads) = run(&fresh_ready(), &cl, &Twilio::default(), vec![]);
    assert_eq!(reads.first(), Some(&Read::Verify));
    // Older than the interval: due.
    let mut ch = fresh_ready();
    if let Some(s) = ch.status.as_mut() {
        s.last_verified_time = Some(time(NOW - 601));
    }
    let (_, reads) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert_eq!(reads.first(), Some(&Read::Verify));
    // A spec change that reaches Twilio: due; one that does not (queue): not due.
    let mut ch = fresh_ready();
    ch.spec.webhook.url = "https://crm.example.com/other".into();
    assert_eq!(run(&ch, &cluster(), &Twilio::default(), vec![]).1.first(), Some(&Read::Verify));
    let mut ch = fresh_ready();
    ch.spec.queue = Some("support".into());
    let (p, reads) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert!(reads.is_empty());
    assert_eq!(p.status.queue.as_deref(), Some("support"));
    // Not Ready but checked recently by this process with the same inputs: not due.
    let mut cl = cluster();
    cl.attempt_left = Some(Duration::from_secs(300));
    assert!(run(&channel(), &cl, &Twilio::default(), vec![]).1.is_empty());
}

#[test]
fn a_known_sid_is_fetched_not_looked_up() {
    let mut ch = channel();
    ch.status = Some(ready_status(wired(MARKED)));
    if let Some(s) = ch.status.as_mut() {
        s.last_verified_time = None;
    }
    let (_, reads) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert!(reads.contains(&Read::Target(crate::twilio::E164::parse(NUMBER).expect("n"), Locate::SenderSid(XE.into()))));
    let (_, reads) = run(&channel(), &cluster(), &Twilio::default(), vec![]);
    assert!(reads.iter().any(|r| matches!(r, Read::Target(_, Locate::Lookup))));
}

#[test]
fn a_webhook_write_records_its_intent_first_and_keeps_the_rest_of_the_webhook() {
    let tw = Twilio {
        target: Ok(Some(Target::Sender(sender(Some("https://demo.twilio.com/welcome/sms/reply"), "ONLINE")))),
        ..Twilio::default()
    };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    let record = p.steps.iter().position(|s| matches!(s, Step::Record(_))).expect("a record");
    let write = p.steps.iter().position(|s| matches!(s, Step::SetWebhook(_))).expect("a write");
    assert!(record < write, "the intent is recorded before the write");
    let Step::Record(intent) = &p.steps[record] else { unreachable!() };
    let s = intent.sender.as_ref().expect("sender intent");
    assert_eq!(s.pending_webhook_url.as_deref(), Some(MARKED));
    assert_eq!(
        s.previous_webhook_url.as_deref(),
        Some("https://demo.twilio.com/welcome/sms/reply"),
        "Twilio's default URL is recorded to be restored"
    );
    let Step::SetWebhook(WebhookWrite::Sender { webhook, .. }) = &p.steps[write] else { panic!("sender write") };
    assert_eq!(webhook.callback_url.as_deref(), Some(MARKED));
    assert_eq!(webhook.fallback_url.as_deref(), Some("https://fallback.example.com"), "fields not ours survive");
    let done = p.status.sender.as_ref().expect("sender");
    assert_eq!((done.configured_url.as_deref(), done.pending_webhook_url.as_deref()), (Some(MARKED), None));
    assert_eq!(p.events.iter().filter(|e| e.reason == Reason::Configured).count(), 1);
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
}

#[test]
fn a_failed_webhook_write_keeps_its_intent_and_backs_off() {
    let tw = Twilio { target: Ok(Some(Target::Number(number("")))), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![Outcome::WebhookFailed(server_error())]);
    let s = p.status.sender.as_ref().expect("sender");
    assert_eq!(s.pending_webhook_url.as_deref(), Some(MARKED), "the URL it may have set is still known");
    assert!(matches!(p.after, After::Backoff(_)));
    assert_eq!(reason(&p, "WebhookConfigured"), "Unknown/TwilioUnavailable");
}

#[test]
fn an_intent_left_by_a_crash_is_ours_not_a_foreign_receiver() {
    // A pass recorded the intent and died before (or after) writing.
    let mut ch = channel();
    let mut s = wired("https://crm.example.com/old");
    s.pending_webhook_url = Some(MARKED.into());
    ch.status = Some(WhatsAppChannelStatus { sender: Some(s), ..Default::default() });
    for current in [MARKED, "https://crm.example.com/old"] {
        let tw = Twilio { target: Ok(Some(Target::Sender(sender(Some(current), "ONLINE")))), ..Twilio::default() };
        let (p, _) = run(&ch, &cluster(), &tw, vec![]);
        assert_eq!(reason(&p, "Ready"), "True/ChannelReady", "current {current}");
    }
}

/// Another cluster's channel, as its marker names it.
const THEIRS: &str = "https://crm.example.com/hook#wao-owner=c2/crm/sales/crm-prod";
const THEM: &str = "c2/crm/sales/crm-prod";

fn takeover_from(from: Option<&str>) -> WhatsAppChannel {
    let mut ch = channel();
    ch.spec.binding_policy = BindingPolicy::Takeover;
    ch.spec.takeover = Some(crate::api::TakeoverSpec { from: from.map(str::to_owned) });
    ch
}

fn at_twilio(url: &str) -> Twilio {
    Twilio { target: Ok(Some(Target::Sender(sender(Some(url), "ONLINE")))), ..Twilio::default() }
}

fn message_of(p: &Plan, t: &str) -> String {
    cond(p, t).map(|c| c.message.clone()).unwrap_or_default()
}

#[test]
fn takeover_moves_a_foreign_receiver_and_records_it() {
    // Unmarked (set by hand): `from` names its URL.
    let ch = takeover_from(Some("https://other.example.com"));
    let (p, _) = run(&ch, &cluster(), &at_twilio("https://other.example.com"), vec![]);
    assert_eq!(twilio_writes(&p).len(), 1);
    assert!(p.events.iter().any(|e| e.reason == Reason::TakenOver && e.type_ == EventType::Warning));
    assert_eq!(
        p.status.sender.as_ref().and_then(|s| s.previous_webhook_url.as_deref()),
        Some("https://other.example.com")
    );
}

#[test]
fn the_marker_names_the_owner_of_a_number_bound_elsewhere() {
    let (p, _) = run(&channel(), &cluster(), &at_twilio(THEIRS), vec![]);
    assert!(twilio_writes(&p).is_empty());
    assert_eq!(reason(&p, "NumberBound"), "False/BoundElsewhere");
    let m = message_of(&p, "NumberBound");
    assert!(m.contains("cluster c2, channel crm/sales, instance crm-prod") && m.contains(THEM), "{m}");
    assert_eq!(p.status.ownership.as_ref().and_then(|o| o.owner.as_deref()), Some(THEM));
    assert_eq!(p.status.phase, Some(Phase::Conflict));
}

#[test]
fn a_webhook_write_carries_the_marker_and_starts_the_history() {
    let (p, _) = run(&channel(), &cluster(), &at_twilio(""), vec![]);
    let Some(Step::SetWebhook(WebhookWrite::Sender { webhook, .. })) =
        p.steps.iter().find(|s| matches!(s, Step::SetWebhook(_)))
    else {
        panic!("a write: {:?}", p.steps)
    };
    assert_eq!(webhook.callback_url.as_deref(), Some(MARKED));
    let o = p.status.ownership.as_ref().expect("ownership");
    assert_eq!(o.owner.as_deref(), Some("c1/crm/sales/crm-prod"));
    assert_eq!(o.history.len(), 1);
    assert_eq!((o.history[0].cluster.as_str(), o.history[0].channel.as_str()), ("c1", "crm/sales"));
    assert_eq!(o.history[0].previous_owner, None);
    // A first claim is told by the write's Event, not a second one.
    assert_eq!(p.events.iter().filter(|e| e.reason == Reason::OwnerChanged).count(), 0);
    assert!(p
        .events
        .iter()
        .any(|e| e.reason == Reason::Configured && e.message.contains("owner marker c1/crm/sales/crm-prod")));
}

#[test]
fn the_spec_url_without_a_marker_is_marked_and_not_recorded_as_previous() {
    // Set before markers existed (or by hand): in sync but for the marker.
    let (p, _) = run(&channel(), &cluster(), &at_twilio(URL), vec![]);
    let Some(Step::SetWebhook(WebhookWrite::Sender { webhook, .. })) =
        p.steps.iter().find(|s| matches!(s, Step::SetWebhook(_)))
    else {
        panic!("a write: {:?}", p.steps)
    };
    assert_eq!(webhook.callback_url.as_deref(), Some(MARKED));
    assert_eq!(p.status.sender.as_ref().and_then(|s| s.previous_webhook_url.clone()), None);
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
}

#[test]
fn a_blind_or_mismatched_takeover_is_refused() {
    for (from, says) in [(None, "blind takeover"), (Some("c3/crm/sales/crm-prod"), "not the owner at Twilio")] {
        let (p, _) = run(&takeover_from(from), &cluster(), &at_twilio(THEIRS), vec![]);
        assert!(twilio_writes(&p).is_empty(), "{from:?}");
        assert_eq!(reason(&p, "NumberBound"), "False/TakeoverRefused", "{from:?}");
        let m = message_of(&p, "NumberBound");
        assert!(m.contains(says) && m.contains(THEM), "{m}");
        assert_eq!(p.status.phase, Some(Phase::Conflict));
    }
}

#[test]
fn a_matching_takeover_swaps_the_owner_and_records_it() {
    let (p, _) = run(&takeover_from(Some(THEM)), &cluster(), &at_twilio(THEIRS), vec![]);
    assert_eq!(twilio_writes(&p).len(), 1);
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
    let o = p.status.ownership.as_ref().expect("ownership");
    assert_eq!(o.owner.as_deref(), Some("c1/crm/sales/crm-prod"));
    assert_eq!(o.history.last().and_then(|h| h.previous_owner.as_deref()), Some(THEM));
    let reasons: Vec<Reason> = p.events.iter().map(|e| e.reason).collect();
    assert!(reasons.contains(&Reason::TakenOver) && reasons.contains(&Reason::OwnerChanged), "{reasons:?}");
    assert_eq!(p.status.sender.as_ref().and_then(|s| s.previous_webhook_url.as_deref()), Some(THEIRS));
}

#[test]
fn a_number_taken_from_this_channel_is_not_taken_back() {
    // This channel owned the number (its marker), then c2 took it; this channel is set to take
    // it over from c2 as well.
    let mut ch = takeover_from(Some(THEM));
    ch.status = Some(ready_status(wired(MARKED)));
    let (p, _) = run(&ch, &cluster(), &at_twilio(THEIRS), vec![]);
    assert!(twilio_writes(&p).is_empty(), "no flip back: {:?}", p.steps);
    assert_eq!(reason(&p, "NumberBound"), "False/TakeoverContested");
    assert!(message_of(&p, "NumberBound").contains(THEM));
    let o = p.status.ownership.clone().expect("ownership");
    assert_eq!(o.owner.as_deref(), Some(THEM));
    let lost = o.history.last().expect("the loss is recorded");
    assert_eq!((lost.cluster.as_str(), lost.previous_owner.as_deref()), ("c2", Some("c1/crm/sales/crm-prod")));
    assert!(p.events.iter().any(|e| e.reason == Reason::OwnerChanged && e.type_ == EventType::Warning));
    assert!(matches!(p.after, After::Requeue(d) if d >= Duration::from_secs(1800)), "stops: {:?}", p.after);
    // The next pass records nothing new.
    ch.status = Some(p.status.clone());
    let (again, _) = run(&ch, &cluster(), &at_twilio(THEIRS), vec![]);
    assert_eq!(again.status.ownership, Some(o.clone()));
    assert!(!again.events.iter().any(|e| e.reason == Reason::OwnerChanged));
    // An edit of the spec (a new generation) allows one more attempt.
    ch.metadata.generation = Some(2);
    let (retry, _) = run(&ch, &cluster(), &at_twilio(THEIRS), vec![]);
    assert_eq!(twilio_writes(&retry).len(), 1);
    // Exclusive: the loss is reported as bound elsewhere, naming the new owner.
    let mut ex = channel();
    ex.status = Some(ready_status(wired(MARKED)));
    let (p, _) = run(&ex, &cluster(), &at_twilio(THEIRS), vec![]);
    assert_eq!(reason(&p, "NumberBound"), "False/BoundElsewhere");
    assert!(message_of(&p, "NumberBound").contains("took it from this channel"));
}

#[test]
fn the_history_keeps_the_last_five_changes() {
    let mut ch = takeover_from(Some(THEM));
    let mut status = ready_status(wired("https://crm.example.com/old"));
    let old = crate::api::OwnerChange {
        time: time(NOW - 1000),
        cluster: "c9".into(),
        channel: "x/y".into(),
        instance: "z".into(),
        previous_owner: None,
        generation: Some(1),
    };
    status.ownership = Some(crate::api::OwnershipStatus { owner: None, history: vec![old; 5] });
    ch.status = Some(status);
    let (p, _) = run(&ch, &cluster(), &at_twilio(THEIRS), vec![]);
    let h = &p.status.ownership.as_ref().expect("ownership").history;
    assert_eq!(h.len(), 5);
    assert_eq!(h.last().map(|e| e.cluster.as_str()), Some("c1"), "this channel took it from c2");
}

#[test]
fn a_free_number_is_claimed_and_a_stale_binding_removed_first() {
    let mut cl = cluster();
    cl.binding.as_mut().expect("b").state = BindingState::Free;
    cl.held.clear();
    let (p, reads) = run(&channel(), &cl, &Twilio::default(), vec![]);
    assert!(matches!(p.steps.as_slice(), [Step::Claim { .. }]), "the claim ends the pass: {:?}", p.steps);
    assert!(reads.is_empty(), "no Twilio call before the number is this channel's");
    assert_eq!(p.status, WhatsAppChannelStatus::default(), "no status write for the claim");
    cl.binding.as_mut().expect("b").state =
        BindingState::Stale { uid: "old".into(), resource_version: Some("7".into()), holder: me() };
    let (p, _) = run(&channel(), &cl, &Twilio::default(), vec![]);
    assert!(matches!(p.steps.first(), Some(Step::DeleteStaleBinding { .. })));
    assert!(matches!(p.steps.get(1), Some(Step::Claim { .. })));
    assert_eq!(p.events.iter().map(|e| e.reason).collect::<Vec<_>>(), [Reason::Bound], "a takeover is news");
}

#[test]
fn claiming_a_free_number_is_no_event_of_its_own() {
    let mut cl = cluster();
    cl.binding.as_mut().expect("b").state = BindingState::Free;
    cl.held.clear();
    let (p, _) = run(&channel(), &cl, &Twilio::default(), vec![]);
    assert!(p.events.is_empty(), "{:?}", p.events);
}

#[test]
fn a_verification_that_finds_nothing_new_writes_nothing() {
    // Ready, verified 11 minutes ago (older than the interval): due, and Twilio agrees.
    let tw = Twilio { target: Ok(Some(Target::Sender(sender(Some(MARKED), "ONLINE")))), ..Twilio::default() };
    let mut first = channel();
    let (p, _) = run(&first, &cluster(), &tw, vec![]);
    first.status = Some(p.status.clone());
    let mut old = p.status.clone();
    old.last_verified_time = Some(time(NOW - 660));
    old.conditions.iter_mut().for_each(|c| c.last_transition_time = time(NOW - 660));
    let mut ch = channel();
    ch.status = Some(old.clone());
    let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
    assert_eq!(reads.first(), Some(&Read::Verify), "due");
    assert_eq!(p.status, old, "the status stays as it was: no API write");
    assert!(p.steps.is_empty() && p.events.is_empty());
    assert!(
        matches!(p.after, After::Requeue(d) if d >= Duration::from_secs(540)),
        "next check a full interval away: {:?}",
        p.after
    );
    // The next pass, shortly after, stands on this process's check rather than the old time.
    let mut cl = cluster();
    cl.attempt_left = Some(Duration::from_secs(590));
    let (p, reads) = run(&ch, &cl, &tw, vec![]);
    assert!(reads.is_empty(), "{reads:?}");
    assert!(
        matches!(p.after, After::Requeue(d) if d >= Duration::from_secs(530)),
        "no busy loop on the old time: {:?}",
        p.after
    );
    // Something new (the account was renamed) is written, with the time of this verification.
    let renamed = Verification { friendly_name: Some("renamed".into()), ..verified() };
    let tw = Twilio { verification: Ok(renamed), ..tw };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert_ne!(p.status, old);
    assert_eq!(p.status.last_verified_time, Some(time(NOW)));
}

#[test]
fn a_number_move_restores_and_releases_the_old_number_before_claiming_the_new() {
    let mut ch = channel();
    ch.spec.phone_number = OTHER_NUMBER.into();
    ch.status = Some(ready_status(wired(MARKED)));
    let mut cl = cluster();
    cl.binding = Some(BindingView { name: binding_name(OTHER_NUMBER), state: BindingState::Free });
    cl.wired = Some(BindingView { name: binding_name(NUMBER), state: BindingState::Mine { instance_stale: false } });
    let tw = Twilio { wired_target: Ok(Some(Target::Sender(sender(Some(MARKED), "ONLINE")))), ..Twilio::default() };
    let (p, reads) = run(&ch, &cl, &tw, vec![]);
    assert!(matches!(reads.as_slice(), [Read::WiredTarget(_, Locate::SenderSid(_))]), "{reads:?}");
    let kinds: Vec<&str> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::Record(_) => "record",
            Step::RestoreWebhook(_) => "restore",
            Step::Release(_) => "release",
            Step::Claim { .. } => "claim",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["record", "restore", "release"], "no claim of the new number in the same pass");
    let Some(Step::RestoreWebhook(WebhookWrite::Sender { webhook, .. })) = p.steps.get(1) else { panic!() };
    assert_eq!(webhook.callback_url.as_deref(), Some("https://old.example.com/hook"), "exactly the previous value");
    assert_eq!(p.status.sender, None);
    assert!(matches!(p.after, After::Requeue(d) if d < Duration::from_secs(1)));

    // Whatever fails, the old number stays held (no release step).
    let blocked = |cl: &ClusterView, tw: &Twilio, outcomes: Vec<Outcome>| {
        let (p, _) = run(&ch, cl, tw, outcomes);
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Release(_) | Step::Claim { .. })), "{:?}", p.steps);
        assert_eq!(cond(&p, "NumberBound").map(|c| c.reason.as_str()), Some("ReleasingPreviousNumber"));
        p
    };
    let mut bad_secret = cl.clone();
    bad_secret.secret.credentials = Err(SecretProblem { reason: Reason::SecretNotFound, message: "gone".into() });
    let p = blocked(&bad_secret, &tw, vec![]);
    assert!(matches!(p.after, After::Requeue(_)), "waits for the Secret");
    let p = blocked(&cl, &Twilio { wired_target: Err(server_error()), ..tw.clone() }, vec![]);
    assert!(matches!(p.after, After::Backoff(_)));
    let p = blocked(&cl, &tw, vec![Outcome::RestoreFailed(server_error())]);
    assert!(matches!(p.after, After::Backoff(_)));
    // On a rate-limit hold: no Twilio call, nothing released.
    let mut held = cl.clone();
    held.hold = Some(Duration::from_secs(5));
    let (p, reads) = run(&ch, &held, &tw, vec![]);
    assert!(reads.is_empty() && p.steps.is_empty());

    // Someone else changed the old number's webhook since: left alone, released.
    let tw2 =
        Twilio { wired_target: Ok(Some(Target::Sender(sender(Some("https://other.example.com"), "ONLINE")))), ..tw };
    let (p, _) = run(&ch, &cl, &tw2, vec![]);
    assert!(twilio_writes(&p).is_empty());
    assert!(p.steps.iter().any(|s| matches!(s, Step::Release(_))));
    // With skip-cleanup: released without touching Twilio.
    let mut skip = ch.clone();
    skip.metadata.annotations =
        Some([(crate::controller::SKIP_CLEANUP_ANNOTATION.to_owned(), "true".to_owned())].into());
    let (p, reads) = run(&skip, &cl, &tw2, vec![]);
    assert!(reads.is_empty() && twilio_writes(&p).is_empty());
    assert!(p.steps.iter().any(|s| matches!(s, Step::Release(_))));
}

#[test]
fn an_already_released_old_number_is_forgotten_and_the_new_one_claimed() {
    let mut ch = channel();
    ch.spec.phone_number = OTHER_NUMBER.into();
    ch.status = Some(ready_status(wired(MARKED)));
    let mut cl = cluster();
    cl.binding = Some(BindingView { name: binding_name(OTHER_NUMBER), state: BindingState::Free });
    cl.wired = Some(BindingView { name: binding_name(NUMBER), state: BindingState::Free });
    cl.held.clear();
    let (p, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert!(matches!(p.steps.first(), Some(Step::Claim { .. })));
}

fn deleting(mut ch: WhatsAppChannel) -> WhatsAppChannel {
    ch.metadata.deletion_timestamp = Some(time(NOW - 1));
    ch.metadata.finalizers = Some(vec![crate::controller::FINALIZER.into()]);
    ch
}

#[test]
fn cleanup_restores_exactly_then_releases_then_finalizes() {
    let mut ch = deleting(channel());
    ch.status = Some(ready_status(wired(MARKED)));
    let tw = Twilio { wired_target: Ok(Some(Target::Sender(sender(Some(MARKED), "ONLINE")))), ..Twilio::default() };
    let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
    assert_eq!(reads.len(), 1);
    assert!(matches!(p.after, After::Finalize));
    assert!(matches!(p.steps.last(), Some(Step::Release(_))));
    assert!(p.events.iter().any(|e| e.reason == Reason::WebhookReleased));
    // An empty previous webhook is cleared; a number is restored with its method.
    let mut s = wired(MARKED);
    s.kind = SenderKind::IncomingPhoneNumber;
    s.sid = Some(PN.into());
    s.previous_webhook_url = None;
    s.previous_webhook_method = None;
    ch.status = Some(ready_status(s));
    let tw = Twilio { wired_target: Ok(Some(Target::Number(number(MARKED)))), ..Twilio::default() };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert!(p
        .steps
        .iter()
        .any(|s| matches!(s, Step::RestoreWebhook(WebhookWrite::Number { url, .. }) if url.is_empty())));
}

#[test]
fn cleanup_table() {
    struct Case {
        name: &'static str,
        ch: fn(&mut WhatsAppChannel),
        cl: fn(&mut ClusterView),
        tw: Twilio,
        outcomes: Vec<Outcome>,
        finalize: bool,
        restore: bool,
        backoff: bool,
    }
    let here =
        || Twilio { wired_target: Ok(Some(Target::Sender(sender(Some(MARKED), "ONLINE")))), ..Twilio::default() };
    let cases = vec![
        Case {
            name: "orphan",
            ch: |c| c.spec.deletion_policy = DeletionPolicy::Orphan,
            cl: |_| {},
            tw: here(),
            outcomes: vec![],
            finalize: true,
            restore: false,
            backoff: false,
        },
        Case {
            name: "skip-cleanup",
            ch: |c| {
                c.metadata.annotations =
                    Some([(crate::controller::SKIP_CLEANUP_ANNOTATION.to_owned(), "true".to_owned())].into());
            },
            cl: |c| {
                c.secret.credentials = Err(SecretProblem { reason: Reason::SecretNotFound, message: "gone".into() })
            },
            tw: here(),
            outcomes: vec![],
            finalize: true,
            restore: false,
            backoff: false,
        },
        Case {
            name: "not the holder",
            ch: |_| {},
            cl: |c| {
                c.binding.as_mut().expect("b").state = BindingState::HeldBy {
                    holder: ChannelReference { namespace: "a".into(), name: "b".into(), uid: "c".into() },
                    instance: "x".into(),
                };
                c.held.clear();
            },
            tw: here(),
            outcomes: vec![],
            finalize: true,
            restore: false,
            backoff: false,
        },
        Case {
            name: "changed by someone else",
            ch: |_| {},
            cl: |_| {},
            tw: Twilio {
                wired_target: Ok(Some(Target::Sender(sender(Some("https://x.example.com"), "ONLINE")))),
                ..Twilio::default()
            },
            outcomes: vec![],
            finalize: true,
            restore: false,
            backoff: false,
        },
        Case {
            name: "sender gone",
            ch: |_| {},
            cl: |_| {},
            tw: Twilio { wired_target: Ok(None), ..Twilio::default() },
            outcomes: vec![],
            finalize: true,
            restore: false,
            backoff: false,
        },
        Case {
            name: "Secret gone",
            ch: |_| {},
            cl: |c| {
                c.secret.credentials = Err(SecretProblem { reason: Reason::SecretNotFound, message: "gone".into() })
            },
            tw: here(),
            outcomes: vec![],
            finalize: false,
            restore: false,
            backoff: false,
        },
        Case {
            name: "Twilio down",
            ch: |_| {},
            cl: |_| {},
            tw: Twilio { wired_target: Err(server_error()), ..Twilio::default() },
            outcomes: vec![],
            finalize: false,
            restore: false,
            backoff: true,
        },
        Case {
            name: "restore failed",
            ch: |_| {},
            cl: |_| {},
            tw: here(),
            outcomes: vec![Outcome::RestoreFailed(server_error())],
            finalize: false,
            restore: true,
            backoff: true,
        },
        Case {
            name: "on hold",
            ch: |_| {},
            cl: |c| c.hold = Some(Duration::from_secs(2)),
            tw: here(),
            outcomes: vec![],
            finalize: false,
            restore: false,
            backoff: false,
        },
    ];
    for case in cases {
        let mut ch = deleting(channel());
        ch.status = Some(ready_status(wired(MARKED)));
        (case.ch)(&mut ch);
        let mut cl = cluster();
        (case.cl)(&mut cl);
        let (p, _) = run(&ch, &cl, &case.tw, case.outcomes);
        assert_eq!(matches!(p.after, After::Finalize), case.finalize, "{}: {:?}", case.name, p.after);
        assert_eq!(p.steps.iter().any(|s| matches!(s, Step::RestoreWebhook(_))), case.restore, "{}", case.name);
        assert_eq!(matches!(p.after, After::Backoff(_)), case.backoff, "{}", case.name);
        assert_eq!(p.status.phase, Some(Phase::Deleting), "{}", case.name);
        if !case.finalize {
            assert!(!p.steps.iter().any(|s| matches!(s, Step::Release(_))), "{}: holds until restored", case.name);
        }
    }
}

fn with_confirmation(c: Option<ConfirmationStatus>) -> WhatsAppChannel {
    let mut ch = channel();
    ch.spec.confirmation_phone_number = Some("+14155550123".into());
    let mut s = ready_status(wired(MARKED));
    s.last_verified_time = None;
    s.confirmation = c;
    ch.status = Some(s);
    ch
}

fn attempt(sid: Option<&str>, status: &str, sent_ago: i64) -> ConfirmationStatus {
    ConfirmationStatus {
        to: "+14155550123".into(),
        from: NUMBER.into(),
        requested_time: Some(time(NOW - sent_ago)),
        message_sid: sid.map(str::to_owned),
        sent_time: sid.map(|_| time(NOW - sent_ago)),
        status: Some(status.into()),
        error_code: None,
        resend_token: None,
        content_sid: None,
        reference: Some("wao-000000000001".into()),
    }
}

#[test]
fn confirmation_state_machine() {
    const SM: &str = "SM00000000000000000000000000000001";
    struct Case {
        name: &'static str,
        record: Option<ConfirmationStatus>,
        found: Result<Option<Message>, TwilioError>,
        outcomes: Vec<Outcome>,
        resend: Option<&'static str>,
        sends: bool,
        read: Option<&'static str>,
        expect: &'static str,
    }
    let cases = vec![
        Case {
            name: "first send",
            record: None,
            found: Ok(None),
            outcomes: vec![],
            resend: None,
            sends: true,
            read: None,
            expect: "Unknown/MessageSent",
        },
        Case {
            name: "sent",
            record: None,
            found: Ok(None),
            outcomes: vec![Outcome::Sent(message(SM, "queued", None))],
            resend: None,
            sends: true,
            read: None,
            expect: "True/MessageSent",
        },
        Case {
            name: "refused",
            record: None,
            found: Ok(None),
            outcomes: vec![Outcome::SendFailed(TwilioError::InvalidInput("no".into()))],
            resend: None,
            sends: true,
            read: None,
            expect: "False/MessageFailed",
        },
        Case {
            name: "not in sandbox",
            record: None,
            found: Ok(None),
            outcomes: vec![Outcome::SendFailed(TwilioError::Rejected {
                status: 400,
                code: Some(63015),
                message: "join".into(),
                more_info: None,
            })],
            resend: None,
            sends: true,
            read: None,
            expect: "False/RecipientNotInSandbox",
        },
        Case {
            name: "attempt without SID, found",
            record: Some(attempt(None, "sending", 10)),
            found: Ok(Some(message(SM, "delivered", None))),
            outcomes: vec![],
            resend: None,
            sends: false,
            read: Some("find"),
            expect: "True/MessageSent",
        },
        Case {
            name: "attempt without SID, not found",
            record: Some(attempt(None, "sending", 10)),
            found: Ok(None),
            outcomes: vec![],
            resend: None,
            sends: true,
            read: Some("find"),
            expect: "Unknown/MessageSent",
        },
        Case {
            name: "following delivery",
            record: Some(attempt(Some(SM), "queued", 10)),
            found: Ok(Some(message(SM, "delivered", None))),
            outcomes: vec![],
            resend: None,
            sends: false,
            read: Some("fetch"),
            expect: "True/MessageSent",
        },
        Case {
            name: "undelivered",
            record: Some(attempt(Some(SM), "sent", 10)),
            found: Ok(Some(message(SM, "undelivered", Some(63016)))),
            outcomes: vec![],
            resend: None,
            sends: false,
            read: Some("fetch"),
            expect: "False/MessageFailed",
        },
        Case {
            name: "followed long enough",
            record: Some(attempt(Some(SM), "sent", 3600)),
            found: Ok(None),
            outcomes: vec![],
            resend: None,
            sends: false,
            read: None,
            expect: "True/MessageSent",
        },
        Case {
            name: "final",
            record: Some(attempt(Some(SM), "delivered", 10)),
            found: Ok(None),
            outcomes: vec![],
            resend: None,
            sends: false,
            read: None,
            expect: "True/MessageSent",
        },
        Case {
            name: "resend",
            record: Some(attempt(Some(SM), "delivered", 10)),
            found: Ok(None),
            outcomes: vec![],
            resend: Some("2"),
            sends: true,
            read: None,
            expect: "Unknown/MessageSent",
        },
    ];
    for case in cases {
        let mut ch = with_confirmation(case.record.clone());
        if let Some(t) = case.resend {
            ch.metadata.annotations =
                Some([(crate::controller::RESEND_CONFIRMATION_ANNOTATION.to_owned(), t.to_owned())].into());
        }
        let tw = Twilio { message: case.found.clone(), ..Twilio::default() };
        let (p, reads) = run(&ch, &cluster(), &tw, case.outcomes);
        let sends = p.steps.iter().any(|s| matches!(s, Step::SendMessage(_)));
        assert_eq!(sends, case.sends, "{}: {:?}", case.name, p.steps);
        if sends {
            let record = p.steps.iter().position(|s| matches!(s, Step::Record(_))).expect("recorded");
            let send = p.steps.iter().position(|s| matches!(s, Step::SendMessage(_))).expect("send");
            assert!(record < send, "{}: the attempt is recorded before the send", case.name);
            let Step::Record(r) = &p.steps[record] else { unreachable!() };
            let c = r.confirmation.as_ref().expect("attempt");
            assert!(c.message_sid.is_none() && c.requested_time.is_some(), "{}", case.name);
        }
        let read = reads.iter().find_map(|r| match r {
            Read::FetchMessage(_) => Some("fetch"),
            Read::FindSent { .. } => Some("find"),
            _ => None,
        });
        assert_eq!(read, case.read, "{}", case.name);
        assert_eq!(reason(&p, "ConfirmationSent"), case.expect, "{}", case.name);
    }
}

#[test]
fn events_are_one_per_meaningful_change() {
    // A new channel: the Ready transition and the webhook action, not one per condition.
    let tw = Twilio { target: Ok(Some(Target::Sender(sender(None, "ONLINE")))), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    let reasons: Vec<Reason> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [Reason::ChannelReady, Reason::Configured]);
    // A failure: one Warning.
    let tw = Twilio { verification: Err(unauthorized()), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(p.events.len(), 1);
    assert_eq!((p.events[0].type_, p.events[0].reason), (EventType::Warning, Reason::InvalidCredentials));
}

#[test]
fn a_rate_limit_hold_makes_no_twilio_call_and_keeps_the_status() {
    let mut cl = cluster();
    cl.hold = Some(Duration::from_secs(7));
    let mut ch = channel();
    ch.status = Some(ready_status(wired(MARKED)));
    let (p, reads) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert!(reads.is_empty());
    assert_eq!(Some(&p.status), ch.status.as_ref());
    assert!(matches!(p.after, After::Wait(d) if d <= Duration::from_secs(7)), "waits, not settled: {:?}", p.after);
}

#[test]
fn the_secret_is_protected_under_delete_policy_only() {
    let mut cl = cluster();
    cl.secret.protected = false;
    let (p, _) = run(&channel(), &cl, &Twilio::default(), vec![]);
    assert!(p.steps.iter().any(|s| matches!(s, Step::ProtectSecret { .. })));
    let mut ch = channel();
    ch.spec.deletion_policy = DeletionPolicy::Orphan;
    let (p, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::ProtectSecret { .. })));
}

fn failing(code: u32) -> receiver::ReceiverView {
    receiver::ReceiverView {
        window: Duration::from_secs(900),
        state: receiver::ReceiverState::Failing {
            count: 3,
            last_code: code,
            last_time: chrono::DateTime::from_timestamp(NOW - 60, 0).expect("time"),
            explanation: Some("HTTP retrieval failure".into()),
            truncated: false,
        },
    }
}

#[test]
fn a_failing_receiver_is_reported_once_without_touching_ready() {
    let mut cl = cluster();
    cl.receiver = Some(failing(11200));
    let mut ch = channel();
    ch.status = Some(ready_status(wired(MARKED)));
    let (p, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    let c = cond(&p, "ReceiverHealthy").expect("condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "WebhookFailing"));
    assert!(c.message.contains("3 failed") && c.message.contains("11200"), "{}", c.message);
    assert_eq!(cond(&p, "Ready").map(|c| c.status.as_str()), Some("True"), "not part of Ready by default");
    let warnings: Vec<_> = p.events.iter().filter(|e| e.reason == Reason::WebhookFailing).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].type_, EventType::Warning);
    // The next pass: still failing, no second Event; then recovered: a Normal one.
    ch.status = Some(p.status.clone());
    let (again, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert!(!again.events.iter().any(|e| e.reason == Reason::WebhookFailing), "{:?}", again.events);
    cl.receiver =
        Some(receiver::ReceiverView { window: Duration::from_secs(900), state: receiver::ReceiverState::Healthy });
    ch.status = Some(again.status.clone());
    let (healed, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert_eq!(reason(&healed, "ReceiverHealthy"), "True/ReceiverHealthy");
    assert!(healed.events.iter().any(|e| e.type_ == EventType::Normal && e.reason == Reason::ReceiverHealthy));
}

#[test]
fn a_pass_before_the_first_alert_listing_keeps_the_reported_receiver_health() {
    // A restarted process whose verification is due: the account's alerts are not read yet.
    let mut cl = cluster();
    cl.receiver = Some(failing(11200));
    let mut ch = channel();
    ch.status = Some(ready_status(wired(MARKED)));
    let (reported, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    let mut old = reported.status.clone();
    old.last_verified_time = Some(time(NOW - 3600));
    ch.status = Some(old.clone());
    cl.receiver = None;
    let (p, tw) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert!(tw.iter().any(|r| matches!(r, Read::Verify)), "verified: {tw:?}");
    assert_eq!(cond(&p, "ReceiverHealthy"), cond(&reported, "ReceiverHealthy"), "kept as reported");
    assert_eq!(p.status, old, "a verification that found nothing new writes nothing");
    assert!(p.events.is_empty(), "{:?}", p.events);
}

#[test]
fn affects_ready_makes_a_failing_receiver_block_ready() {
    let mut cl = cluster();
    cl.receiver = Some(failing(11237));
    let mut ch = channel();
    ch.spec.receiver_health.affects_ready = true;
    ch.status = Some(ready_status(wired(MARKED)));
    let (p, _) = run(&ch, &cl, &Twilio::default(), vec![]);
    assert_eq!(reason(&p, "ReceiverHealthy"), "False/ReceiverTLSInvalid");
    let ready = cond(&p, "Ready").expect("ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "ReceiverTLSInvalid"));
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(cond(&p, "Reconciling").map(|c| c.status.as_str()), Some("True"));
    assert!(
        matches!(p.after, After::Requeue(d) if d > Duration::from_secs(60)),
        "no faster verification: {:?}",
        p.after
    );
    let told: Vec<_> = p.events.iter().filter(|e| e.reason == Reason::ReceiverTLSInvalid).collect();
    assert_eq!(told.len(), 1, "one Event, Ready's: {:?}", p.events);
    assert!(told[0].message.starts_with("Ready is False"), "{:?}", told[0]);
}

mod confirmation;
mod credentials;
mod observe;
mod receiver_tls;
mod routing;
