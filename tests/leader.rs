//! Leader election with two replicas of the real binary on the same namespace: only the leader
//! reconciles, so each of twenty channels gets exactly one confirmation message and one webhook
//! write, whichever process leads — also when the leader is killed (SIGKILL) mid-run and the
//! other takes over.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use twilio_sim::SimHandle;
use whatsapp_operator::api::WhatsAppChannel;

use common::operator::*;
use common::within;

const TOKEN: &str = "tok-0123456789abcdef0123456789ab";
const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const CHANNELS: usize = 20;
const LEASE: &str = "whatsapp-operator-test";

/// One operator replica with leader election on; killed when dropped.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(ns: &str, sim: &SimHandle, identity: &str) -> Replica {
    let child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--namespace", ns, "--instance", identity, "--metrics-addr", "127.0.0.1:0"])
        .args(["--leader-elect", "--leader-election-namespace", ns, "--leader-election-id", LEASE])
        .args(["--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"])
        .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
        .args(["--backoff-base", "100ms", "--backoff-max", "2s"])
        .env("RUST_LOG", "warn,whatsapp_operator::leader=info")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    Replica(child)
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt(LEASE).await.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

/// Messages sent and webhook writes per channel number, from the simulator's log.
fn writes(sim: &SimHandle) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut messages = BTreeMap::new();
    let mut hooks = BTreeMap::new();
    for r in sim.requests() {
        if !r.is_write() || r.status.is_some_and(|s| s >= 300) {
            continue;
        }
        if r.path.ends_with("/Messages.json") {
            let from = r.form_value("From").unwrap_or_default().trim_start_matches("whatsapp:").to_owned();
            *messages.entry(from).or_insert(0) += 1;
        } else if r.path.starts_with("/v2/Channels/Senders/XE") {
            *hooks.entry(r.path.clone()).or_insert(0) += 1;
        }
    }
    (messages, hooks)
}

async fn all_ready(env: &common::TestEnv, names: &[String]) {
    for name in names {
        wait_condition(env, name, "Ready", "True", None).await;
        wait_condition(env, name, "ConfirmationSent", "True", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_killed_leader_is_replaced() {
    let env = common::setup("leader").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let numbers: Vec<String> = (0..CHANNELS * 2).map(|_| random_number()).collect();
    let senders: String = numbers.iter().map(|n| format!("  - sender_id: whatsapp:{n}\n")).collect();
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n{senders}"
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let spec = |number: &str| {
        json!({
            "phoneNumber": number,
            "instance": "crm-prod",
            "confirmationPhoneNumber": "+14155550123",
            "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "sales",
        })
    };

    let mut replicas = BTreeMap::new();
    for id in ["replica-a", "replica-b"] {
        replicas.insert(id.to_owned(), replica(&env.ns, &sim, id));
    }
    let leader = within(common::TIMEOUT, async {
        loop {
            if let Some(h) = holder(&env.client, &env.ns).await {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(replicas.contains_key(&leader), "the lease names a replica: {leader}");

    // Round 1: twenty channels under a stable leader.
    let first: Vec<String> = (0..CHANNELS).map(|i| format!("ch-{i}")).collect();
    for (name, number) in first.iter().zip(&numbers) {
        create_channel(&env, name, spec(number)).await;
    }
    all_ready(&env, &first).await;
    let (messages, hooks) = writes(&sim);
    assert_eq!(messages.len(), CHANNELS, "a message for every channel: {messages:?}");
    assert!(messages.values().all(|n| *n == 1), "exactly one message per channel: {messages:?}");
    assert_eq!(hooks.len(), CHANNELS);
    assert!(hooks.values().all(|n| *n == 1), "exactly one webhook write per channel: {hooks:?}");
    let events: Vec<String> = {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
        let list = api.list(&Default::default()).await.expect("events");
        list.items.into_iter().filter_map(|e| e.reporting_instance).collect()
    };
    assert!(events.iter().all(|i| *i == leader), "only the leader published Events: {events:?}");

    // Round 2: twenty more channels; the leader is killed while it works on them.
    let second: Vec<String> = (CHANNELS..CHANNELS * 2).map(|i| format!("ch-{i}")).collect();
    for (name, number) in second.iter().zip(&numbers[CHANNELS..]) {
        create_channel(&env, name, spec(number)).await;
    }
    within(common::TIMEOUT, async {
        loop {
            let ready = {
                let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
                let list = api.list(&Default::default()).await.expect("list");
                list.items
                    .iter()
                    .filter(|c| second.contains(&c.metadata.name.clone().unwrap_or_default()))
                    .filter(|c| {
                        c.status
                            .as_ref()
                            .is_some_and(|s| s.conditions.iter().any(|x| x.type_ == "Ready" && x.status == "True"))
                    })
                    .count()
            };
            if ready >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut killed = replicas.remove(&leader).expect("the leader's process");
    killed.0.kill().expect("SIGKILL the leader");
    let _ = killed.0.wait();
    let survivor = replicas.keys().next().cloned().expect("the other replica");
    within(common::TIMEOUT, async {
        while holder(&env.client, &env.ns).await.as_deref() != Some(survivor.as_str()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    all_ready(&env, &second).await;
    let (messages, hooks) = writes(&sim);
    assert_eq!(messages.len(), CHANNELS * 2, "a message for every channel: {messages:?}");
    assert!(messages.values().all(|n| *n == 1), "exactly one message per channel, across the takeover: {messages:?}");
    assert_eq!(hooks.len(), CHANNELS * 2);
    assert!(hooks.values().all(|n| *n == 1), "exactly one webhook write per channel, across the takeover: {hooks:?}");
    assert_conforming(&sim);
}
