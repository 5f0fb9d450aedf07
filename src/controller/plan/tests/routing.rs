//! Routing precedence: the object that really routes the number is the one configured, or the
//! override is reported with its stable reason and the routing shown side by side.

use crate::api::{MessagingServicePolicy, RouteKind};
use crate::twilio::{AddressConfiguration, MessagingService, RoutingFacts, ServiceFacts};

use super::*;

const MG: &str = "MG00000000000000000000000000000001";
const IG: &str = "IG00000000000000000000000000000001";
const SHARED_URL: &str = "https://shared.example.com/inbound";

fn service(url: Option<&str>, defer: bool) -> MessagingService {
    serde_json::from_value(serde_json::json!({
        "sid": MG, "friendly_name": "support", "inbound_request_url": url, "inbound_method": "POST",
        "use_inbound_webhook_on_number": defer,
    }))
    .expect("service")
}

fn in_service(url: Option<&str>, defer: bool, members: usize) -> Twilio {
    let facts = RoutingFacts {
        service: Some(ServiceFacts { service: service(url, defer), members }),
        address_configuration: None,
    };
    Twilio { routing: Ok(facts), ..Twilio::default() }
}

fn with_policy(policy: MessagingServicePolicy) -> WhatsAppChannel {
    let mut ch = channel();
    ch.spec.routing.messaging_service = policy;
    ch
}

fn routing(p: &Plan) -> &crate::api::RoutingStatus {
    p.status.routing.as_ref().expect("status.routing")
}

fn message(p: &Plan, t: &str) -> String {
    cond(p, t).map(|c| c.message.clone()).unwrap_or_default()
}

#[test]
fn a_dedicated_service_is_configured_instead_of_the_sender() {
    let (p, reads) = run(&channel(), &cluster(), &in_service(None, false, 1), vec![]);
    assert!(reads.iter().any(|r| matches!(r, Read::Routing(_, sid, false) if sid == XE)), "{reads:?}");
    let writes = twilio_writes(&p);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        matches!(writes[0], Step::SetWebhook(WebhookWrite::Service { sid, url, .. }) if sid == MG && url == MARKED),
        "{writes:?}"
    );
    assert_eq!(reason(&p, "WebhookConfigured"), "True/Configured");
    let sender = p.status.sender.as_ref().expect("sender");
    assert_eq!((sender.kind, sender.sid.as_deref()), (SenderKind::MessagingService, Some(MG)));
    assert_eq!(reason(&p, "NumberBound"), "True/Bound");
    let r = routing(&p);
    assert_eq!((r.expected.kind, r.actual.kind), (RouteKind::MessagingService, RouteKind::MessagingService));
    assert_eq!(r.actual.url.as_deref(), Some(MARKED));
    assert_eq!(r.reason, "Configured");
}

#[test]
fn a_dedicated_service_with_a_foreign_url_is_bound_elsewhere_like_a_sender() {
    let mut ch = channel();
    ch.spec.binding_policy = BindingPolicy::Exclusive;
    let (p, _) = run(&ch, &cluster(), &in_service(Some("https://other.example.com"), false, 1), vec![]);
    // An empty service MARKED is free; a foreign one is not.
    assert!(twilio_writes(&p).is_empty());
    assert_eq!(reason(&p, "NumberBound"), "False/BoundElsewhere");
    assert_eq!(routing(&p).reason, "BoundElsewhere");
    let (p, _) = run(&ch, &cluster(), &in_service(None, false, 1), vec![]);
    assert_eq!(twilio_writes(&p).len(), 1);
}

#[test]
fn overrides_are_reported_with_their_reason_and_no_write() {
    struct Case {
        name: &'static str,
        ch: WhatsAppChannel,
        tw: Twilio,
        reason: &'static str,
        actual: RouteKind,
        says: &'static [&'static str],
    }
    let application = {
        let mut n = number(MARKED);
        n.sms_application_sid = Some("AP00000000000000000000000000000001".into());
        Twilio { target: Ok(Some(Target::Number(n))), ..Twilio::default() }
    };
    let address = |also_service: bool| {
        let c: AddressConfiguration = serde_json::from_value(serde_json::json!({
            "sid": IG, "type": "whatsapp", "address": format!("whatsapp:{NUMBER}"),
            "auto_creation": {"enabled": true, "type": "webhook", "webhook_url": "https://conv.example.com", "webhook_method": "POST"},
        }))
        .expect("address configuration");
        let service = also_service.then(|| ServiceFacts { service: service(Some(MARKED), false), members: 1 });
        Twilio { routing: Ok(RoutingFacts { service, address_configuration: Some(c) }), ..Twilio::default() }
    };
    let cases = [
        Case {
            name: "a shared service",
            ch: channel(),
            tw: in_service(Some(SHARED_URL), false, 3),
            reason: "OverriddenByMessagingService",
            actual: RouteKind::MessagingService,
            says: &[MG, "shared with 2 other senders or numbers", "UseInboundWebhookOnNumber", "Always"],
        },
        Case {
            name: "a dedicated service under Never",
            ch: with_policy(MessagingServicePolicy::Never),
            tw: in_service(Some(SHARED_URL), false, 1),
            reason: "OverriddenByMessagingService",
            actual: RouteKind::MessagingService,
            says: &["spec.routing.messagingService is Never"],
        },
        Case {
            name: "a TwiML application on the number",
            ch: channel(),
            tw: application,
            reason: "OverriddenByApplication",
            actual: RouteKind::Application,
            says: &["AP00000000000000000000000000000001", "SmsApplicationSid", PN],
        },
        Case {
            name: "an address configuration (before a service)",
            ch: channel(),
            tw: address(true),
            reason: "OverriddenByAddressConfiguration",
            actual: RouteKind::AddressConfiguration,
            says: &[IG, "https://conv.example.com", "auto-creation"],
        },
    ];
    for c in cases {
        let (p, _) = run(&c.ch, &cluster(), &c.tw, vec![]);
        assert!(twilio_writes(&p).is_empty(), "{}: {:?}", c.name, p.steps);
        assert_eq!(reason(&p, "WebhookConfigured"), format!("False/{}", c.reason), "{}", c.name);
        assert_eq!(reason(&p, "Ready"), format!("False/{}", c.reason), "{}", c.name);
        assert_eq!(p.status.phase, Some(Phase::Failed), "{}", c.name);
        assert!(cond(&p, "Stalled").is_some_and(|s| s.status == "True"), "{}: kstatus Stalled", c.name);
        let m = message(&p, "WebhookConfigured");
        for s in c.says {
            assert!(m.contains(s), "{}: {m:?} lacks {s:?}", c.name);
        }
        let r = routing(&p);
        assert_eq!(r.reason, c.reason, "{}", c.name);
        assert_eq!(r.actual.kind, c.actual, "{}", c.name);
        assert_ne!(r.expected.kind, r.actual.kind, "{}: side by side", c.name);
        assert_eq!(r.expected.url.as_deref(), Some(MARKED), "{}", c.name);
        assert!(p.status.sender.is_some(), "{}: the carrier is still recorded", c.name);
    }
}

#[test]
fn a_service_that_defers_or_the_always_policy() {
    // Deferring to the sender's webhook: the sender routes (and is in sync here).
    let (p, _) = run(&channel(), &cluster(), &in_service(Some(SHARED_URL), true, 5), vec![]);
    assert!(twilio_writes(&p).is_empty());
    assert_eq!(reason(&p, "WebhookConfigured"), "True/Configured");
    assert_eq!(routing(&p).actual.kind, RouteKind::WhatsAppSender);
    // Always: a shared service is configured (with a takeover from its URL: it is foreign,
    // without an ownership marker).
    let mut ch = with_policy(MessagingServicePolicy::Always);
    ch.spec.binding_policy = BindingPolicy::Takeover;
    ch.spec.takeover = Some(crate::api::TakeoverSpec { from: Some(SHARED_URL.into()) });
    let (p, _) = run(&ch, &cluster(), &in_service(Some(SHARED_URL), false, 5), vec![]);
    let writes = twilio_writes(&p);
    assert!(matches!(writes.as_slice(), [Step::SetWebhook(WebhookWrite::Service { .. })]), "{writes:?}");
    let recorded = p.steps.iter().find_map(|s| match s {
        Step::Record(st) => st.sender.clone(),
        _ => None,
    });
    assert_eq!(recorded.and_then(|s| s.previous_webhook_url).as_deref(), Some(SHARED_URL));
}

#[test]
fn a_failed_routing_listing_is_reported_on_webhook_configured() {
    let tw = Twilio { routing: Err(server_error()), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(reason(&p, "WebhookConfigured"), "Unknown/TwilioUnavailable");
    assert!(matches!(p.after, After::Backoff(_)));
    let tw = Twilio { routing: Err(TwilioError::InvalidInput("bad".into())), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(reason(&p, "WebhookConfigured"), "False/TwilioRejected");
}

#[test]
fn a_configured_service_is_looked_up_by_carrier_live_and_restored_on_deletion() {
    let mut configured = wired(MARKED);
    configured.kind = SenderKind::MessagingService;
    configured.sid = Some(MG.into());
    configured.status = None;
    configured.previous_webhook_url = Some(SHARED_URL.into());
    let mut ch = channel();
    ch.status = Some(WhatsAppChannelStatus { last_verified_time: None, ..ready_status(configured.clone()) });
    let (_, reads) = run(&ch, &cluster(), &in_service(Some(MARKED), false, 1), vec![]);
    assert!(matches!(&reads[1], Read::Target(_, Locate::Lookup)), "{reads:?}");

    let mut ch = deleting(channel());
    ch.status = Some(ready_status(configured));
    let tw = Twilio { wired_target: Ok(Some(Target::Service(service(Some(MARKED), false)))), ..Twilio::default() };
    let (p, reads) = run(&ch, &cluster(), &tw, vec![]);
    assert!(matches!(&reads[0], Read::WiredTarget(_, Locate::ServiceSid(sid)) if sid == MG), "{reads:?}");
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::RestoreWebhook(WebhookWrite::Service { url, .. }) if url == SHARED_URL)),
        "{:?}",
        p.steps
    );
    assert!(matches!(p.after, After::Finalize));
}

#[test]
fn a_spec_edit_after_an_override_asks_for_fresh_facts() {
    let (reported, _) = run(&channel(), &cluster(), &in_service(Some(SHARED_URL), false, 3), vec![]);
    let mut ch = channel();
    ch.status = Some(reported.status.clone());
    // The periodic retry: the shared listing's usual age.
    let (_, reads) = run(&ch, &cluster(), &in_service(Some(SHARED_URL), true, 3), vec![]);
    assert!(reads.iter().any(|r| matches!(r, Read::Routing(_, _, false))), "{reads:?}");
    // An edit: fresh facts; with them the sender is configured.
    ch.metadata.generation = Some(2);
    let (p, reads) = run(&ch, &cluster(), &in_service(Some(SHARED_URL), true, 3), vec![]);
    assert!(reads.iter().any(|r| matches!(r, Read::Routing(_, _, true))), "{reads:?}");
    assert_eq!(reason(&p, "WebhookConfigured"), "True/Configured");
}
