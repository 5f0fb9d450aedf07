//! The operator as it is deployed: one process watching every namespace (`--namespace` unset), on
//! a control plane of its own (so that it sees no other test's channels). Channels in three
//! namespaces, two of them racing for one number, each with the credentials Secret of its own
//! namespace; and an account with more WhatsApp senders than one page holds.

mod common;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;
use twilio_sim::RequestRecord;
use whatsapp_operator::api::{SenderKind, WhatsAppChannel, WhatsAppNumberBinding};

use common::control_plane::ControlPlane;
use common::operator::*;
use common::TestEnv;

const TOKEN: &str = FIXTURE_TOKEN;
const KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "key-secret-0123456789abcdef0123";
const SENDERS: &str = "/v2/Channels/Senders";
/// More senders than Twilio's largest page (1000).
const SENDER_COUNT: usize = 1_500;
/// The index (in creation order, which is the listing order) of the paged channel's sender: on
/// the second page.
const PAGED_INDEX: usize = 1_200;
const INCOMING_URL: &str = "https://sms.example.com/incoming";

fn receiver(name: &str) -> String {
    format!("https://{name}.example.com/api/webhook/LeadGen/whatsapp")
}

async fn namespace(client: &Client, name: &str) -> TestEnv {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    TestEnv { client: client.clone(), ns: name.to_owned() }
}

fn condition_message(ch: &WhatsAppChannel, type_: &str) -> String {
    ch.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn sender_number(i: usize) -> String {
    format!("+1555{i:07}")
}

fn listings(reqs: &[RequestRecord], account: &str) -> Vec<RequestRecord> {
    reqs.iter().filter(|r| r.is("GET", SENDERS) && r.account_sid.as_deref() == Some(account)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_operator_serves_every_namespace_and_pages_through_senders() {
    common::init_crypto();
    let cluster = tokio::task::spawn_blocking(ControlPlane::start).await.expect("start a control plane");
    let client = cluster.client().await;
    common::install_crds(&client).await;
    let suffix = common::random_suffix();
    let mut envs = Vec::new();
    for i in 1..=3 {
        envs.push(namespace(&client, &format!("cluster-{suffix}-{i}")).await);
    }
    let (paged_env, env_a, env_b) = (&envs[0], &envs[1], &envs[2]);

    let sim = start_sim().await;
    // An account with 1,500 senders; the paged channel's number is the 1,201st, and it is an
    // incoming phone number too (what a lookup that stopped at the first page would fall back to).
    let (big, racing) = (random_account_sid(), random_account_sid());
    let paged_number = sender_number(PAGED_INDEX);
    let mut yaml =
        format!("accounts:\n- sid: {big}\n  friendly_name: big\n  auth_token: {TOKEN}\n  whatsapp_senders:\n");
    for i in 0..SENDER_COUNT {
        yaml.push_str(&format!("  - sender_id: whatsapp:{}\n    status: ONLINE\n", sender_number(i)));
    }
    yaml.push_str(&format!(
        "  incoming_phone_numbers:\n  - phone_number: \"{paged_number}\"\n    sms_url: {INCOMING_URL}\n"
    ));
    // The racing number's account, reached with the auth token from one namespace and with an
    // API key from the other.
    let racing_number = random_number();
    yaml.push_str(&format!(
        "- sid: {racing}\n  friendly_name: racing\n  auth_token: {TOKEN}\n  keys:\n  - sid: {KEY_SID}\n    friendly_name: ns-b\n    secret: {KEY_SECRET}\n  whatsapp_senders:\n  - sender_id: whatsapp:{racing_number}\n    status: ONLINE\n"
    ));
    sim.seed_yaml(&yaml).expect("seed");

    // Each namespace has a Secret `twilio` of its own; they differ.
    create_secret(paged_env, "twilio", &[("authToken", TOKEN)]).await;
    create_secret(env_a, "twilio", &[("authToken", TOKEN)]).await;
    create_secret(env_b, "twilio", &[("apiKeySid", KEY_SID), ("apiKeySecret", KEY_SECRET)]).await;

    let mut cfg = config(paged_env, &sim);
    cfg.namespace = None;
    cfg.instance = Some(format!("cluster-{suffix}"));
    let _op = start_operator(&client, cfg);

    // Two channels of the same name in two namespaces race for one number, at once.
    let (url_a, url_b) = (receiver("crm-a"), receiver("crm-b"));
    tokio::join!(
        create_channel(env_a, "crm", channel_spec(&racing, &racing_number, &url_a)),
        create_channel(env_b, "crm", channel_spec(&racing, &racing_number, &url_b)),
    );
    create_channel(paged_env, "paged", channel_spec(&big, &paged_number, &receiver("crm-paged"))).await;

    // The paged channel: found as the sender on the second page, not as the incoming number.
    let found =
        wait_for(paged_env, "paged", "NumberVerified", |ch| has(ch, "NumberVerified", "True", "Verified")).await;
    let sender = found.status.and_then(|s| s.sender).expect("sender status");
    assert_eq!(sender.kind, SenderKind::WhatsAppSender, "found as: {sender:#?}");
    let paged = wait_for(paged_env, "paged", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let sender = paged.status.and_then(|s| s.sender).expect("sender status");
    let state = sim.state();
    let account = state.account(&big).expect("account");
    assert_eq!(account.senders[PAGED_INDEX].sender_id, format!("whatsapp:{paged_number}"));
    assert_eq!(sender.sid.as_deref(), Some(account.senders[PAGED_INDEX].sid.as_str()));
    let paged = account.senders[PAGED_INDEX].webhook.callback_url.clone().unwrap_or_default();
    assert_eq!(common::unmarked(&paged), receiver("crm-paged"));
    assert!(
        common::marker(&paged).is_some_and(|m| m.ends_with(&format!("/{}/paged/crm-prod", paged_env.ns))),
        "{paged}"
    );
    let incoming =
        account.incoming_phone_numbers.iter().find(|n| n.phone_number == paged_number).expect("incoming number");
    assert_eq!(incoming.sms_url.as_deref(), Some(INCOMING_URL), "the incoming number is left alone");
    let pages = listings(&sim.requests(), &big);
    assert_eq!(pages.len(), 2, "1,500 senders: two pages of 1,000: {pages:#?}");

    // The race: one holder across namespaces; the other names it.
    let decided = |ch: &WhatsAppChannel| {
        has(ch, "NumberBound", "True", "Bound") || has(ch, "NumberBound", "False", "NumberInUse")
    };
    let a = wait_for(env_a, "crm", "NumberBound decided", decided).await;
    let b = wait_for(env_b, "crm", "NumberBound decided", decided).await;
    let a_holds = has(&a, "NumberBound", "True", "Bound");
    assert_ne!(a_holds, has(&b, "NumberBound", "True", "Bound"), "exactly one holder");
    let (holder_env, waiting_env, holder_url, waiting_url) =
        if a_holds { (env_a, env_b, &url_a, &url_b) } else { (env_b, env_a, &url_b, &url_a) };
    let waiting = if a_holds { &b } else { &a };
    let holder_key = format!("{}/crm", holder_env.ns);
    assert!(condition_message(waiting, "NumberBound").contains(&holder_key), "{:#?}", waiting.status);
    wait_for(holder_env, "crm", "holder Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let binding_name = format!("whatsapp-{}", racing_number.trim_start_matches('+'));
    let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    assert_eq!(bindings.get(&binding_name).await.expect("binding").spec.channel_ref.namespace, holder_env.ns);

    // The holder goes: the channel in the other namespace takes over, with its own Secret.
    Api::<WhatsAppChannel>::namespaced(client.clone(), &holder_env.ns)
        .delete("crm", &DeleteParams::default())
        .await
        .expect("delete the holder");
    wait_for(waiting_env, "crm", "successor Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    assert_eq!(bindings.get(&binding_name).await.expect("binding").spec.channel_ref.namespace, waiting_env.ns);
    let hook = sim
        .state()
        .account(&racing)
        .and_then(|a| a.senders.first().and_then(|s| s.webhook.callback_url.clone()))
        .map(|u| common::unmarked(&u))
        .unwrap_or_default();
    assert_eq!(&hook, waiting_url, "the successor's receiver (the holder's was {holder_url})");
    // Both namespaces' Secrets were used: the auth token from one, the API key from the other.
    let principals: std::collections::BTreeSet<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.account_sid.as_deref() == Some(racing.as_str()))
        .filter_map(|r| r.principal)
        .collect();
    assert_eq!(principals, [racing.clone(), KEY_SID.to_owned()].into_iter().collect(), "{principals:?}");
    assert_conforming(&sim);
}
