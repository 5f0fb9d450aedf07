//! `managementPolicy: Observe` against the strict simulator and a real API server: the channel
//! is verified and its plan reported in `status.plannedChanges`, with zero Twilio writes (the
//! simulator's request log), no binding and no Secret finalizer; switching to `Manage` makes
//! exactly the planned writes. And the verify-now annotation: one full verification per value.

mod common;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use whatsapp_operator::api::{ChangeAction, Phase, WhatsAppChannel, WhatsAppNumberBinding};

use common::operator::*;

const RECEIVER: &str = "https://crm-observe.example.com/hook";
const CONFIRM_TO: &str = "+14155550123";

fn spec(account: &str, number: &str, policy: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "confirmationPhoneNumber": CONFIRM_TO,
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
        "managementPolicy": policy,
    })
}

fn binding_name(number: &str) -> String {
    format!("whatsapp-{}", number.trim_start_matches('+'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_writes_nothing_and_manage_then_makes_exactly_the_plan() {
    let f = Fixture::new("observe", |_, n| sender_seed(n, "ONLINE")).await;
    let (env, sim) = (&f.env, &f.sim);
    let _op = start_operator(&env.client, config(env, sim));
    create_channel(env, "sales", spec(&f.account, &f.number, "Observe")).await;

    let ch =
        wait_for(env, "sales", "Planned", |ch| ch.status.as_ref().and_then(|s| s.phase) == Some(Phase::Planned)).await;
    assert!(has(&ch, "Ready", "False", "ChangesPlanned"), "{:#?}", ch.status);
    assert!(has(&ch, "CredentialsValid", "True", "Verified"));
    assert!(has(&ch, "NumberVerified", "True", "Verified"));
    assert!(has(&ch, "NumberBound", "False", "ChangesPlanned"));
    assert!(has(&ch, "WebhookConfigured", "False", "ChangesPlanned"));
    assert!(has(&ch, "ConfirmationSent", "False", "ChangesPlanned"));
    assert!(current(&ch, "Reconciling").is_none() && current(&ch, "Stalled").is_none(), "kstatus: Current");
    let status = ch.status.clone().expect("status");
    let plan = status.planned_changes.clone();
    let kinds: Vec<_> = plan.iter().map(|c| (c.action, c.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeAction::Create, "WhatsAppNumberBinding"),
            (ChangeAction::Update, "Secret"),
            (ChangeAction::Update, "WhatsAppSender"),
            (ChangeAction::Create, "Message"),
        ],
        "{plan:#?}"
    );
    let webhook = &plan[2];
    let sender_sid = webhook.sid.clone().expect("the sender's SID");
    assert_eq!(
        (webhook.field.as_deref(), webhook.from.as_deref(), webhook.to.as_deref().map(common::unmarked).as_deref()),
        (Some("webhook.callback_url"), None, Some(RECEIVER))
    );
    let planned_marker = webhook.to.as_deref().and_then(common::marker);
    assert!(
        planned_marker.as_deref().is_some_and(|m| m.ends_with("/sales/crm-prod")),
        "the plan writes the ownership marker too: {planned_marker:?}"
    );
    assert_eq!(plan[3].to.as_deref(), Some(format!("whatsapp:{CONFIRM_TO}").as_str()));
    let routing = status.routing.clone().expect("routing");
    assert_eq!((routing.reason.as_str(), routing.actual.url.as_deref()), ("ChangesPlanned", None));

    // Zero writes: at Twilio (the request log), and in Kubernetes beyond the channel itself.
    let reqs = sim.requests();
    assert!(!reqs.is_empty(), "the observation read Twilio");
    let writes: Vec<_> = reqs.iter().filter(|r| r.is_write()).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(writes.is_empty(), "Observe wrote to Twilio: {writes:#?}");
    let bindings: Api<WhatsAppNumberBinding> = Api::all(env.client.clone());
    assert!(bindings.get_opt(&binding_name(&f.number)).await.expect("get").is_none(), "the number is not claimed");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let secret = secrets.get("twilio").await.expect("secret");
    assert!(secret.metadata.finalizers.unwrap_or_default().is_empty(), "the Secret is not marked in use");
    wait_event(env, "sales", "ChangesPlanned").await;
    assert!(sim.account(&f.account).expect("account").messages.is_empty(), "no message was sent");

    // Manage: exactly the planned writes, then Ready.
    sim.clear_requests();
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"spec": {"managementPolicy": "Manage"}});
    api.patch("sales", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("switch to Manage");
    let ch = wait_for(env, "sales", "Ready and confirmed", |ch| {
        has(ch, "Ready", "True", "ChannelReady") && has(ch, "ConfirmationSent", "True", "MessageSent")
    })
    .await;
    assert!(ch.status.as_ref().is_some_and(|s| s.planned_changes.is_empty()), "{:#?}", ch.status);
    let writes: Vec<_> = sim.requests().into_iter().filter(|r| r.is_write()).collect();
    let shown: Vec<_> = writes.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(writes.len(), 2, "one write per planned Twilio change: {shown:#?}");
    assert!(writes[0].path.ends_with(&format!("/Senders/{sender_sid}")), "{shown:#?}");
    let callback = writes[0].json.as_ref().and_then(|j| j.pointer("/webhook/callback_url")).and_then(|v| v.as_str());
    assert_eq!(callback, webhook.to.as_deref(), "{:?}", writes[0].json);
    assert!(writes[1].path.ends_with("/Messages.json"), "{shown:#?}");
    assert_eq!(writes[1].form_value("To"), plan[3].to.as_deref());
    assert!(bindings.get_opt(&binding_name(&f.number)).await.expect("get").is_some(), "claimed now");
    let secret = secrets.get("twilio").await.expect("secret");
    assert!(!secret.metadata.finalizers.unwrap_or_default().is_empty(), "the Secret is marked in use now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_now_runs_one_full_verification_per_value() {
    let f = Fixture::new("verifynow", |_, n| sender_seed(n, "ONLINE")).await;
    let (env, sim) = (&f.env, &f.sim);
    let _op = start_operator(&env.client, config(env, sim));
    let mut s = spec(&f.account, &f.number, "Manage");
    s.as_object_mut().expect("spec").remove("confirmationPhoneNumber");
    create_channel(env, "sales", s).await;
    wait_for(env, "sales", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;

    // Someone clears the webhook behind the operator's back; within the verify interval (10m)
    // nothing notices. The annotation verifies now: the webhook is restored.
    sim.update_sender(&f.account, &f.number, &serde_json::from_value(json!({"webhook": {}})).expect("patch"))
        .expect("clear the webhook");
    sim.clear_requests();
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let annotate = |v: &str| json!({"metadata": {"annotations": {"whatsapp-operator.io/verify-now": v}}});
    api.patch("sales", &PatchParams::default(), &Patch::Merge(&annotate("1"))).await.expect("annotate");
    wait_for(env, "sales", "verify-now answered", |ch| {
        ch.status.as_ref().and_then(|s| s.verify_now.as_deref()) == Some("1")
    })
    .await;
    wait_event(env, "sales", "VerifiedNow").await;
    wait_event(env, "sales", "WebhookRestored").await;
    let route = sim.inbound_route(&f.account, &f.number).expect("route");
    assert_eq!(route.url.as_deref().map(common::unmarked).as_deref(), Some(RECEIVER));
    let reqs = sim.requests();
    assert!(
        reqs.iter().any(|r| r.is("GET", &format!("/2010-04-01/Accounts/{}.json", f.account))),
        "the credentials were verified afresh"
    );

    // The same value again (an unrelated annotation change): no Twilio call.
    sim.clear_requests();
    let other = json!({"metadata": {"annotations": {"example.com/unrelated": "x", "whatsapp-operator.io/resend-confirmation": null}}});
    api.patch("sales", &PatchParams::default(), &Patch::Merge(&other)).await.expect("annotate");
    api.patch("sales", &PatchParams::default(), &Patch::Merge(&annotate("1"))).await.expect("annotate");
    // A new value, to know the operator looked: exactly one verification after it.
    api.patch("sales", &PatchParams::default(), &Patch::Merge(&annotate("2"))).await.expect("annotate");
    wait_for(env, "sales", "verify-now 2 answered", |ch| {
        ch.status.as_ref().and_then(|s| s.verify_now.as_deref()) == Some("2")
    })
    .await;
    let accounts =
        sim.requests().iter().filter(|r| r.is("GET", &format!("/2010-04-01/Accounts/{}.json", f.account))).count();
    assert_eq!(accounts, 1, "value 1 was not verified again; value 2 once");
}
