//! Routing precedence against the simulator, which models the same precedence
//! (`SimHandle::inbound_route`): for each case the operator configures the object that really
//! routes the number, or reports the override with its stable reason, and `status.routing`
//! shows expected and actual side by side. The Messaging Services and address configurations
//! are listed once for the whole account, however many channels.

mod common;

use serde_json::json;
use twilio_sim::state::{RouteKind as SimKind, ServicePatch};
use whatsapp_operator::api::{RouteKind, SenderKind, WhatsAppChannel};

use common::operator::*;

const SHARED: &str = "https://shared.example.com/inbound";

fn number(base: &str, i: u32) -> String {
    format!("{}{i}", &base[..base.len() - 1])
}

fn spec(number: &str, url: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "twilio": {"accountSid": "ACCOUNT", "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": url},
        "queue": "sales",
    })
}

fn routing_reason(ch: &WhatsAppChannel) -> String {
    ch.status.as_ref().and_then(|s| s.routing.as_ref()).map(|r| r.reason.clone()).unwrap_or_default()
}

fn decided(ch: &WhatsAppChannel) -> bool {
    current(ch, "WebhookConfigured").is_some_and(|c| c.status != "Unknown")
        || current(ch, "NumberBound").is_some_and(|c| c.status == "False")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_that_really_routes_the_number_is_configured_or_reported() {
    // Numbers: 0 in a shared service, 1 alone in a service, 2 an incoming number with a TwiML
    // application, 3 with a Conversations address configuration, 4 a plain sender, 5 a
    // plain sender with GET, 6 the other member of the shared service (not a channel).
    let f = Fixture::new("routing", |_, base| {
        let n = |i| number(base, i);
        format!(
            "  whatsapp_senders:\n{}  incoming_phone_numbers:\n  - {{phone_number: \"{}\", sms_url: \"https://app-owned.example.com\", sms_application_sid: AP00000000000000000000000000000001}}\n  messaging_services:\n  - {{friendly_name: shared, inbound_request_url: \"{SHARED}\", channel_senders: [\"{}\", \"{}\"]}}\n  - {{friendly_name: dedicated, channel_senders: [\"{}\"]}}\n  address_configurations:\n  - {{address: \"{}\", auto_creation: {{enabled: true, type: webhook, webhook_url: \"https://conversations.example.com/hook\", webhook_method: post}}}}\n",
            [0, 1, 3, 4, 5, 6].iter().map(|i| format!("  - {{sender_id: \"whatsapp:{}\", status: ONLINE}}\n", n(*i))).collect::<String>(),
            n(2), n(0), n(6), n(1), n(3)
        )
    })
    .await;
    let (env, sim, account) = (&f.env, &f.sim, f.account.clone());
    let _op = start_operator(&env.client, config(env, sim));
    let url = |name: &str| format!("https://{name}.example.com/hook");
    for i in 0..6 {
        let mut s = spec(&number(&f.number, i), &url(&format!("crm-{i}")));
        s["twilio"]["accountSid"] = json!(account);
        if i == 5 {
            s["webhook"]["method"] = json!("GET");
        }
        create_channel(env, &format!("n{i}"), s).await;
    }
    let route = |i: u32| sim.inbound_route(&account, &number(&f.number, i)).expect("a route");

    // The shared service is left alone and reported; Twilio still routes to it.
    let ch = wait_for(env, "n0", "decided", decided).await;
    assert!(has(&ch, "WebhookConfigured", "False", "OverriddenByMessagingService"), "{:#?}", ch.status);
    assert!(has(&ch, "Ready", "False", "OverriddenByMessagingService"));
    assert!(has(&ch, "Stalled", "True", "OverriddenByMessagingService"));
    let message = condition(&ch, "WebhookConfigured").message.clone();
    assert!(message.contains("UseInboundWebhookOnNumber") && message.contains("shared with 1 other"), "{message}");
    let r = ch.status.as_ref().and_then(|s| s.routing.clone()).expect("routing");
    assert_eq!((r.expected.kind, r.actual.kind), (RouteKind::WhatsAppSender, RouteKind::MessagingService));
    assert_eq!(r.actual.url.as_deref(), Some(SHARED));
    assert_eq!(
        r.expected.url.as_deref().map(common::unmarked),
        Some(url("crm-0")),
        "expected: the URL with its marker"
    );
    assert!(r.expected.url.as_deref().and_then(common::marker).is_some());
    assert_eq!((route(0).kind, route(0).sid), (SimKind::MessagingService, r.actual.sid.clone().unwrap()));
    assert_eq!(route(0).url.as_deref(), Some(SHARED), "nothing was written to the shared service");

    // The dedicated service is configured: Twilio now routes number 1 to its receiver.
    let ch = wait_for(env, "n1", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let sender = ch.status.as_ref().and_then(|s| s.sender.clone()).expect("sender");
    assert_eq!(sender.kind, SenderKind::MessagingService);
    assert_eq!(
        (route(1).kind, route(1).url.as_deref().map(common::unmarked)),
        (SimKind::MessagingService, Some(url("crm-1")))
    );
    assert!(route(1)
        .url
        .as_deref()
        .and_then(common::marker)
        .is_some_and(|m| m.ends_with(&format!("/{}/n1/crm-prod", env.ns))));
    let own = sim.account(&account).unwrap().sender(&format!("whatsapp:{}", number(&f.number, 1))).unwrap().clone();
    assert_eq!(own.webhook.callback_url, None, "the sender's own webhook, which does not route, is untouched");

    // The TwiML application and the address configuration are reported, never changed.
    for (name, reason, kind, i) in [
        ("n2", "OverriddenByApplication", SimKind::Application, 2),
        ("n3", "OverriddenByAddressConfiguration", SimKind::AddressConfiguration, 3),
    ] {
        let ch = wait_for(env, name, "decided", decided).await;
        assert!(has(&ch, "WebhookConfigured", "False", reason), "{name}: {:#?}", ch.status);
        assert_eq!(routing_reason(&ch), reason);
        let actual = ch.status.as_ref().and_then(|s| s.routing.clone()).expect("routing").actual;
        assert_eq!((route(i).kind, Some(route(i).sid)), (kind, actual.sid), "{name}");
    }
    // The plain sender is configured; GET on a sender is MethodNotSupported.
    wait_for(env, "n4", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    assert_eq!(
        (route(4).kind, route(4).url.as_deref().map(common::unmarked)),
        (SimKind::WhatsAppSender, Some(url("crm-4")))
    );
    let ch = wait_for(env, "n5", "decided", decided).await;
    assert!(has(&ch, "WebhookConfigured", "False", "MethodNotSupported"), "{:#?}", ch.status);
    assert_eq!(route(5).url, None);

    // Six channels, one listing of the account's services (and one of its address configurations).
    let reqs = sim.requests();
    let count = |path: &str| reqs.iter().filter(|r| r.is("GET", path)).count();
    assert_eq!(count("/v1/Services"), 1, "one listing for six channels");
    assert_eq!(count("/v1/Configuration/Addresses"), 1);
    let writes: Vec<_> = reqs.iter().filter(|r| r.is_write()).map(|r| r.path.clone()).collect();
    assert_eq!(writes.len(), 2, "the dedicated service and the plain sender only: {writes:#?}");

    // Doing what the message says: the shared service defers to the sender's webhook; the next
    // verification (here: a spec change) configures the sender, and Twilio routes there.
    let shared = sim.account(&account).unwrap().service("shared").unwrap().sid.clone();
    let patch = ServicePatch { use_inbound_webhook_on_number: Some(true), ..ServicePatch::default() };
    sim.update_service(&account, &shared, &patch).expect("console change");
    let api: kube::Api<WhatsAppChannel> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"spec": {"webhook": {"url": url("crm-0b")}}});
    api.patch("n0", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("patch");
    let ch = wait_for(env, "n0", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    assert_eq!(routing_reason(&ch), "Configured");
    assert_eq!(
        (route(0).kind, route(0).url.as_deref().map(common::unmarked)),
        (SimKind::WhatsAppSender, Some(url("crm-0b")))
    );

    // Deleting the channel that configured the dedicated service restores the service (it had
    // no inbound URL: cleared).
    api.delete("n1", &Default::default()).await.expect("delete");
    common::within(common::TIMEOUT, async {
        while api.get_opt("n1").await.expect("get").is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!((route(1).kind, route(1).url), (SimKind::MessagingService, None));
}
