//! One number, one instance, against real API servers and the strict Twilio simulator: a dozen
//! channels racing for one number in two namespaces under two operator processes, the takeover
//! when the holder is deleted, and two clusters sharing one Twilio account.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use twilio_sim::{RequestRecord, SimHandle};
use whatsapp_operator::api::{Phase, WhatsAppChannel, WhatsAppNumberBinding};

use common::control_plane::ControlPlane;
use common::operator::*;
use common::{within, TestEnv};

const TOKEN: &str = "tok-0123456789abcdef0123456789ab";
const KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "key-secret-0123456789abcdef0123";
const SENDERS: &str = "/v2/Channels/Senders";
/// How many channels race for the number.
const RACERS: usize = 12;
/// How long any single wait in this file may take.
const WAIT: Duration = Duration::from_secs(30);

/// Operator processes (the real binary); killed when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `whatsapp-operator run` scoped to `ns`, against the cluster in `KUBECONFIG`.
fn spawn_operator(ns: &str, sim: &SimHandle, instance: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--namespace", ns, "--instance", instance, "--metrics-addr", "127.0.0.1:0"])
        .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
        .args(["--backoff-base", "100ms", "--backoff-max", "2s"])
        .env("RUST_LOG", "info,kube=warn,hyper=warn,tower=warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the operator binary")
}

/// A second namespace (same test label), sharing the first one's client.
async fn second_namespace(env: &TestEnv, suffix: &str) -> TestEnv {
    let ns = format!("{}-{suffix}", env.ns);
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": {
        "whatsapp-operator.io/test": "binding"}}}))
    .expect("namespace");
    Api::<Namespace>::all(env.client.clone()).create(&PostParams::default(), &obj).await.expect("create namespace");
    TestEnv { client: env.client.clone(), ns }
}

/// One account (auth token [`TOKEN`], API key [`KEY_SID`]) with an ONLINE sender for `number`,
/// seeded with the `whatsapp:` prefix the way Twilio spells sender ids.
fn seed(sim: &SimHandle, account: &str, number: &str) {
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  keys:\n  - sid: {KEY_SID}\n    friendly_name: second-namespace\n    secret: {KEY_SECRET}\n  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n    status: ONLINE\n"
    ))
    .expect("seed");
}

fn spec(number: &str, account: &str, instance: &str, url: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": instance,
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": url},
        "queue": "sales",
    })
}

fn receiver(instance: &str) -> String {
    format!("https://{instance}.example.com/api/webhook/LeadGen/whatsapp")
}

/// `ns/name` of a channel.
fn key(ch: &WhatsAppChannel) -> String {
    format!("{}/{}", ch.namespace().unwrap_or_default(), ch.name_any())
}

/// Every channel in `envs`.
async fn all_channels(envs: &[&TestEnv]) -> Vec<WhatsAppChannel> {
    let mut out = Vec::new();
    for env in envs {
        let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
        out.extend(api.list(&ListParams::default()).await.expect("list channels").items);
    }
    out
}

/// The bindings of `number`, cluster-wide.
async fn bindings_of(client: &Client, number: &str) -> Vec<WhatsAppNumberBinding> {
    Api::<WhatsAppNumberBinding>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list bindings")
        .items
        .into_iter()
        .filter(|b| b.spec.phone_number == number)
        .collect()
}

/// The sender's webhook URL at the simulator.
fn sender_webhook(sim: &SimHandle, number: &str) -> Option<String> {
    sim.state()
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{number}"))
        .and_then(|s| s.webhook.callback_url.clone())
        .map(|u| common::unmarked(&u))
}

/// Webhook writes (sender updates) in `reqs`.
fn webhook_writes(reqs: &[RequestRecord]) -> Vec<&RequestRecord> {
    reqs.iter().filter(|r| r.is_write() && r.path.starts_with(&format!("{SENDERS}/XE"))).collect()
}

fn written_url(r: &RequestRecord) -> String {
    common::unmarked(r.json.as_ref().and_then(|j| j["webhook"]["callback_url"].as_str()).unwrap_or_default())
}

/// `(type, reason, note, reportingInstance)` of the Events about a channel.
async fn events(env: &TestEnv, name: &str) -> Vec<(String, String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
                e.reporting_instance.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an Event about the channel with `reason` whose note contains `needle`.
async fn wait_event(env: &TestEnv, name: &str, reason: &str, needle: &str) -> (String, String, String, String) {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let all = events(env, name).await;
            if let Some(e) = all.into_iter().find(|e| e.1 == reason && e.2.contains(needle)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    match found {
        Ok(e) => e,
        Err(_) => panic!("{}/{name}: no {reason} Event mentioning {needle:?}: {:#?}", env.ns, events(env, name).await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_channels_in_two_processes_bind_once_and_the_next_takes_over_on_delete() {
    let env_a = common::setup("bind-race").await;
    let env_b = second_namespace(&env_a, "b").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed(&sim, &account, &number);
    // Each namespace authenticates differently, so the simulator's log tells the processes apart.
    create_secret(&env_a, "twilio", &[("authToken", TOKEN)]).await;
    create_secret(&env_b, "twilio", &[("apiKeySid", KEY_SID), ("apiKeySecret", KEY_SECRET)]).await;
    let principal = |ns: &str| {
        if ns == env_a.ns {
            account.clone()
        } else {
            KEY_SID.to_owned()
        }
    };
    // Two operator processes, one per namespace: both race for the same cluster-wide binding.
    let instances = [format!("op-{}", env_a.ns), format!("op-{}", env_b.ns)];
    let _procs =
        Processes(vec![spawn_operator(&env_a.ns, &sim, &instances[0]), spawn_operator(&env_b.ns, &sim, &instances[1])]);

    // Twelve channels for one number, six per namespace, each its own instance and receiver,
    // created all at once.
    let racers: Vec<(&TestEnv, String, String)> = (0..RACERS)
        .map(|i| {
            let env = if i % 2 == 0 { &env_a } else { &env_b };
            (env, format!("crm-{i}"), receiver(&format!("crm-{i}")))
        })
        .collect();
    futures::future::join_all(
        racers.iter().map(|(env, name, url)| create_channel(env, name, spec(&number, &account, name, url))),
    )
    .await;
    let started = Instant::now();

    // Every channel decides NumberBound; exactly one holds the number.
    for (env, name, _) in &racers {
        wait_for(env, name, "NumberBound decided", |ch| {
            current(ch, "NumberBound").is_some_and(|c| c.status != "Unknown")
        })
        .await;
    }
    let channels = all_channels(&[&env_a, &env_b]).await;
    assert_eq!(channels.len(), RACERS);
    let holders: Vec<&WhatsAppChannel> = channels.iter().filter(|c| has(c, "NumberBound", "True", "Bound")).collect();
    assert_eq!(holders.len(), 1, "exactly one holder: {:?}", holders.iter().map(|c| key(c)).collect::<Vec<_>>());
    let holder = holders[0].clone();
    let holder_key = key(&holder);
    let holder_url = holder.spec.webhook.url.clone();
    let holder_env = racers
        .iter()
        .find(|(env, name, _)| env.ns == holder.namespace().unwrap_or_default() && *name == holder.name_any())
        .map(|(env, _, _)| *env)
        .expect("holder is a racer");
    let ready =
        wait_for(holder_env, &holder.name_any(), "holder Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let elapsed = started.elapsed();
    let at_twilio =
        ready.status.as_ref().and_then(|s| s.sender.as_ref()).and_then(|s| s.webhook_url.clone()).unwrap_or_default();
    assert_eq!(common::unmarked(&at_twilio), holder_url);
    assert!(
        common::marker(&at_twilio).is_some_and(|m| m.ends_with(&format!("/{holder_key}/{}", holder.spec.instance))),
        "{at_twilio}"
    );
    for ch in channels.iter().filter(|c| key(c) != holder_key) {
        let c = current(ch, "NumberBound").expect("decided");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "NumberInUse"), "{}", key(ch));
        assert!(c.message.contains(&holder_key), "{}: names the holder: {}", key(ch), c.message);
        assert!(c.message.contains(&holder.spec.instance), "{}: names its instance", key(ch));
        assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(Phase::Conflict));
        assert!(ch.status.as_ref().is_some_and(|s| s.sender.is_none()), "{}: no Twilio", key(ch));
    }

    // One binding, named after the number, naming the holder.
    let bindings = bindings_of(&env_a.client, &number).await;
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    assert_eq!(bindings[0].name_any(), format!("whatsapp-{}", number.trim_start_matches('+')));
    assert_eq!(Some(&bindings[0].spec.channel_ref.uid), holder.uid().as_ref());
    assert_eq!(bindings[0].spec.instance, holder.spec.instance);

    // Twilio: one webhook write in total, the holder's; the other process made no call at all.
    // The seed's `whatsapp:` sender id matched the channel's bare number.
    let reqs = sim.requests();
    let writes = webhook_writes(&reqs);
    assert_eq!(writes.len(), 1, "one webhook write in total: {writes:#?}");
    assert_eq!(written_url(writes[0]), holder_url);
    assert_eq!(reqs.iter().filter(|r| r.is_write()).count(), 1, "no other Twilio writes");
    let holder_principal = principal(&holder.namespace().unwrap_or_default());
    let others: Vec<_> = reqs
        .iter()
        .filter(|r| r.principal.as_deref() != Some(holder_principal.as_str()))
        .map(|r| (&r.method, &r.path, &r.principal))
        .collect();
    assert!(others.is_empty(), "the losing process made no Twilio call: {others:#?}");
    // One verification by the holder: the operator's own Secret protection patch must not
    // invalidate it (it once did, through the Secret's resourceVersion).
    let lookups: Vec<_> = reqs.iter().filter(|r| r.is("GET", SENDERS)).map(|r| (r.seq, r.time)).collect();
    assert_eq!(lookups.len(), 1, "one sender lookup: {lookups:?}");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(holder_url.as_str()));

    // Events: Configured for the holder (claiming a free number is no Event of its own),
    // NumberInUse naming it for every loser; both processes reported.
    let (t, _, _, _) = wait_event(holder_env, &holder.name_any(), "Configured", &holder_url).await;
    assert_eq!(t, "Normal");
    let mut reporters = std::collections::BTreeSet::new();
    for (env, name, _) in racers.iter().filter(|(e, n, _)| format!("{}/{n}", e.ns) != holder_key) {
        let (t, _, _, by) = wait_event(env, name, "NumberInUse", &holder_key).await;
        assert_eq!(t, "Warning");
        reporters.insert(by);
    }
    assert_eq!(reporters, instances.iter().cloned().collect(), "both processes reconciled losers");

    // Delete the holder: the binding's release wakes the others (no 30 min retry); one takes
    // over and the number's webhook gets one more receiver write.
    let mark = reqs.last().map_or(0, |r| r.seq);
    let deleted_at = Instant::now();
    Api::<WhatsAppChannel>::namespaced(env_a.client.clone(), &holder_env.ns)
        .delete(&holder.name_any(), &DeleteParams::default())
        .await
        .expect("delete the holder");
    let successor = within(WAIT, async {
        loop {
            let now = all_channels(&[&env_a, &env_b]).await;
            let ready: Vec<WhatsAppChannel> =
                now.into_iter().filter(|c| has(c, "Ready", "True", "ChannelReady")).collect();
            if let [one] = ready.as_slice() {
                if key(one) != holder_key {
                    return one.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let takeover = deleted_at.elapsed();
    let successor_key = key(&successor);
    let successor_url = successor.spec.webhook.url.clone();
    assert!(
        Api::<WhatsAppChannel>::namespaced(env_a.client.clone(), &holder_env.ns)
            .get_opt(&holder.name_any())
            .await
            .expect("get")
            .is_none(),
        "the old holder is gone"
    );
    assert!(has(&successor, "NumberBound", "True", "Bound"));

    let bindings = bindings_of(&env_a.client, &number).await;
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    assert_eq!(Some(&bindings[0].spec.channel_ref.uid), successor.uid().as_ref());
    for (env, name, _) in &racers {
        let k = format!("{}/{name}", env.ns);
        if k == holder_key || k == successor_key {
            continue;
        }
        let needle = successor_key.clone();
        wait_for(env, name, "NumberInUse naming the successor", move |ch| {
            current(ch, "NumberBound")
                .is_some_and(|c| c.status == "False" && c.reason == "NumberInUse" && c.message.contains(&needle))
        })
        .await;
    }
    let after: Vec<RequestRecord> = sim.requests().into_iter().filter(|r| r.seq > mark).collect();
    let writes = webhook_writes(&after);
    let set: Vec<String> = writes.iter().map(|r| written_url(r)).filter(|u| !u.is_empty()).collect();
    assert_eq!(set, vec![successor_url.clone()], "one receiver write, the successor's: {writes:#?}");
    assert!(writes.len() <= 2, "besides it only the old holder's release (clearing its URL): {writes:#?}");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(successor_url.as_str()));
    assert_conforming(&sim);
    eprintln!(
        "binding race: holder {holder_key} Ready after {elapsed:?}; {successor_key} took over after {takeover:?}"
    );
}

/// Requests from the operator with this `User-Agent`.
fn from(reqs: &[RequestRecord], agent: &str) -> Vec<RequestRecord> {
    reqs.iter().filter(|r| r.user_agent.as_deref() == Some(agent)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_reports_bound_elsewhere_and_takes_over_only_when_told() {
    let second = tokio::task::spawn_blocking(ControlPlane::start);
    let env1 = common::setup("bind-xc").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed(&sim, &account, &number);
    let (u1, u2) = (receiver("crm-cluster-1"), receiver("crm-cluster-2"));
    let (agent1, agent2) = ("whatsapp-operator/test-cluster-1", "whatsapp-operator/test-cluster-2");

    // Cluster 1: channel A on the number, verified every 2 s.
    let mut cfg1 = config(&env1, &sim);
    cfg1.verify_interval = Duration::from_secs(2);
    cfg1.permanent_retry_interval = Duration::from_secs(2);
    cfg1.twilio.user_agent = agent1.to_owned();
    let _op1 = start_operator(&env1.client, cfg1);
    create_secret(&env1, "twilio", &[("authToken", TOKEN)]).await;
    create_channel(&env1, "a", spec(&number, &account, "crm-cluster-1", &u1)).await;
    wait_for(&env1, "a", "A Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u1.as_str()));

    // Cluster 2: the same namespace name, its own CRDs, binding and operator.
    let second = second.await.expect("start the second control plane");
    let env2 = TestEnv { client: second.client().await, ns: env1.ns.clone() };
    common::install_crds(&env2.client).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": env2.ns}})).expect("namespace");
    Api::<Namespace>::all(env2.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace in cluster 2");
    create_secret(&env2, "twilio", &[("authToken", TOKEN)]).await;
    let mut cfg2 = config(&env2, &sim);
    cfg2.twilio.user_agent = agent2.to_owned();
    cfg2.instance = Some(format!("cluster-2-{}", env2.ns));
    let _op2 = start_operator(&env2.client, cfg2);

    // B holds its own cluster's binding but finds U1 at Twilio: BoundElsewhere, no write.
    create_channel(&env2, "b", spec(&number, &account, "crm-cluster-2", &u2)).await;
    let b = wait_for(&env2, "b", "B BoundElsewhere", |ch| has(ch, "NumberBound", "False", "BoundElsewhere")).await;
    let msg = &current(&b, "NumberBound").expect("NumberBound").message;
    assert!(msg.contains(&u1), "names the current receiver: {msg}");
    // The ownership marker names cluster 1 (its kube-system UID), channel A and its instance.
    let cluster1 = whatsapp_operator::controller::read_cluster_id(&env1.client).await.expect("cluster 1 id");
    let cluster2 = whatsapp_operator::controller::read_cluster_id(&env2.client).await.expect("cluster 2 id");
    assert_ne!(cluster1, cluster2, "two clusters, two identities");
    let owner_a = format!("{cluster1}/{}/a/crm-cluster-1", env1.ns);
    assert!(msg.contains(&owner_a) && msg.contains(&format!("cluster {cluster1}")), "names the owner: {msg}");
    assert_eq!(
        b.status.as_ref().and_then(|s| s.ownership.as_ref()).and_then(|o| o.owner.as_deref()),
        Some(owner_a.as_str())
    );
    assert_eq!(b.status.as_ref().and_then(|s| s.phase), Some(Phase::Conflict));
    assert!(has(&b, "Ready", "False", "BoundElsewhere"));
    assert_eq!(bindings_of(&env2.client, &number).await.len(), 1, "cluster 2's own binding");
    assert!(webhook_writes(&from(&sim.requests(), agent2)).is_empty(), "B wrote nothing");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u1.as_str()));
    let (t, _, _, _) = wait_event(&env2, "b", "BoundElsewhere", &u1).await;
    assert_eq!(t, "Warning");

    // A blind takeover (no spec.takeover.from), then one naming another owner: refused, no write.
    let b_api = Api::<WhatsAppChannel>::namespaced(env2.client.clone(), &env2.ns);
    let patch_b = |spec: serde_json::Value| {
        let b_api = b_api.clone();
        async move {
            b_api.patch("b", &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await.expect("patch B")
        }
    };
    patch_b(json!({"bindingPolicy": "Takeover"})).await;
    let b = wait_for(&env2, "b", "B TakeoverRefused", |ch| has(ch, "NumberBound", "False", "TakeoverRefused")).await;
    let msg = &current(&b, "NumberBound").expect("NumberBound").message;
    assert!(msg.contains("blind takeover") && msg.contains(&owner_a), "{msg}");
    wait_event(&env2, "b", "TakeoverRefused", "blind").await;
    let wrong = format!("{cluster2}/{}/a/crm-cluster-1", env1.ns);
    patch_b(json!({"takeover": {"from": wrong}})).await;
    let b = wait_for(&env2, "b", "B refused (mismatch)", |ch| {
        has(ch, "NumberBound", "False", "TakeoverRefused")
            && current(ch, "NumberBound").is_some_and(|c| c.message.contains("not the owner at Twilio"))
    })
    .await;
    assert!(has(&b, "Ready", "False", "TakeoverRefused"));
    assert!(webhook_writes(&from(&sim.requests(), agent2)).is_empty(), "B wrote nothing");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u1.as_str()));

    // Compare-and-swap: naming the owner at Twilio, B moves the number to U2 and records U1 as
    // the previous receiver.
    patch_b(json!({"takeover": {"from": owner_a}})).await;
    let b = wait_for(&env2, "b", "B Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u2.as_str()));
    let owner_b = format!("{cluster2}/{}/b/crm-cluster-2", env2.ns);
    let ownership = b.status.as_ref().and_then(|s| s.ownership.clone()).expect("B's ownership");
    assert_eq!(ownership.owner.as_deref(), Some(owner_b.as_str()));
    let last = ownership.history.last().expect("B's history");
    assert_eq!((last.cluster.as_str(), last.previous_owner.as_deref()), (cluster2.as_str(), Some(owner_a.as_str())));
    wait_event(&env2, "b", "OwnerChanged", &owner_a).await;
    let sender = b.status.and_then(|s| s.sender).expect("B's sender status");
    assert_eq!(sender.previous_webhook_url.as_deref().map(common::unmarked).as_deref(), Some(u1.as_str()));
    assert_eq!(sender.webhook_url.as_deref().map(common::unmarked).as_deref(), Some(u2.as_str()));
    let b_writes: Vec<String> = webhook_writes(&from(&sim.requests(), agent2)).into_iter().map(written_url).collect();
    assert_eq!(b_writes, vec![u2.clone()], "B wrote once");
    let (t, _, note, _) = wait_event(&env2, "b", "TakenOver", &u2).await;
    assert_eq!(t, "Warning");
    assert!(note.contains(&u1), "{note}");

    // A's next verification finds U2: BoundElsewhere, without writing U1 back.
    let a = wait_for(&env1, "a", "A BoundElsewhere", |ch| has(ch, "NumberBound", "False", "BoundElsewhere")).await;
    let msg = &current(&a, "NumberBound").expect("NumberBound").message;
    assert!(msg.contains(&u2) && msg.contains(&owner_b), "names cluster 2's receiver and owner: {msg}");
    assert!(has(&a, "Ready", "False", "BoundElsewhere"));
    wait_event(&env1, "a", "BoundElsewhere", &u2).await;
    // A saw B take the number from it: recorded in its history, with a Warning.
    let (t, _, _, _) = wait_event(&env1, "a", "OwnerChanged", &owner_b).await;
    assert_eq!(t, "Warning");
    let history = a.status.as_ref().and_then(|s| s.ownership.clone()).map(|o| o.history).unwrap_or_default();
    assert!(
        history.last().is_some_and(|h| h.cluster == cluster2 && h.previous_owner.as_deref() == Some(owner_a.as_str())),
        "{history:?}"
    );
    // Two more of A's checks (each lookup — a fetch of the sender it recorded — starts a new
    // pass, so the first has finished):
    // still no write, and the webhook stays U2.
    let mark = sim.requests().last().map_or(0, |r| r.seq);
    within(WAIT, async {
        loop {
            let later = from(&sim.requests(), agent1)
                .into_iter()
                .filter(|r| r.seq > mark && r.method == "GET" && r.path.starts_with(SENDERS))
                .count();
            if later >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let a_writes: Vec<String> = webhook_writes(&from(&sim.requests(), agent1)).into_iter().map(written_url).collect();
    assert_eq!(a_writes, vec![u1.clone()], "A wrote only its first configuration");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u2.as_str()));
    let a = Api::<WhatsAppChannel>::namespaced(env1.client.clone(), &env1.ns).get("a").await.expect("get A");
    assert!(has(&a, "NumberBound", "False", "BoundElsewhere"));
    assert_conforming(&sim);
}

/// Two clusters, each set to take the number over from the other: the number moves once (to the
/// second), then stays; the first reports `TakeoverContested` naming the second and records the
/// loss, the second is Ready with the takeover in its history. No flip back, however many
/// verifications follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_set_to_take_over_do_not_flip_the_number() {
    let second = tokio::task::spawn_blocking(ControlPlane::start);
    let env1 = common::setup("bind-flip").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed(&sim, &account, &number);
    let (u1, u2) = (receiver("crm-flip-1"), receiver("crm-flip-2"));
    let (agent1, agent2) = ("whatsapp-operator/test-flip-1", "whatsapp-operator/test-flip-2");
    let second = second.await.expect("start the second control plane");
    let env2 = TestEnv { client: second.client().await, ns: env1.ns.clone() };
    common::install_crds(&env2.client).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": env2.ns}})).expect("namespace");
    Api::<Namespace>::all(env2.client.clone()).create(&PostParams::default(), &ns).await.expect("namespace 2");
    let cluster1 = whatsapp_operator::controller::read_cluster_id(&env1.client).await.expect("cluster 1 id");
    let cluster2 = whatsapp_operator::controller::read_cluster_id(&env2.client).await.expect("cluster 2 id");
    let owner_a = format!("{cluster1}/{}/a/crm-flip-1", env1.ns);
    let owner_b = format!("{cluster2}/{}/b/crm-flip-2", env2.ns);
    fn takeover(from: &str, mut s: serde_json::Value) -> serde_json::Value {
        s["bindingPolicy"] = json!("Takeover");
        s["takeover"] = json!({"from": from});
        s
    }

    // Both verify every second.
    let quick = |env: &TestEnv, agent: &str| {
        let mut cfg = config(env, &sim);
        cfg.verify_interval = Duration::from_secs(1);
        cfg.permanent_retry_interval = Duration::from_secs(1);
        cfg.twilio.user_agent = agent.to_owned();
        cfg
    };
    let _op1 = start_operator(&env1.client, quick(&env1, agent1));
    let mut cfg2 = quick(&env2, agent2);
    cfg2.instance = Some(format!("flip-2-{}", env2.ns));
    let _op2 = start_operator(&env2.client, cfg2);
    create_secret(&env1, "twilio", &[("authToken", TOKEN)]).await;
    create_secret(&env2, "twilio", &[("authToken", TOKEN)]).await;

    // A (cluster 1) claims the free number, set to take it over from B should B own it.
    create_channel(&env1, "a", takeover(&owner_b, spec(&number, &account, "crm-flip-1", &u1))).await;
    wait_for(&env1, "a", "A Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    // B (cluster 2) takes it over from A, its owner: the one move.
    create_channel(&env2, "b", takeover(&owner_a, spec(&number, &account, "crm-flip-2", &u2))).await;
    let b = wait_for(&env2, "b", "B Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let last = b.status.as_ref().and_then(|s| s.ownership.as_ref()).and_then(|o| o.history.last().cloned());
    assert_eq!(last.and_then(|l| l.previous_owner).as_deref(), Some(owner_a.as_str()), "B took it from A");

    // A notices it lost the number to the owner it is set to take over from: it does not take it
    // back, and says why.
    let a =
        wait_for(&env1, "a", "A TakeoverContested", |ch| has(ch, "NumberBound", "False", "TakeoverContested")).await;
    let msg = &current(&a, "NumberBound").expect("NumberBound").message;
    assert!(msg.contains(&owner_b) && msg.contains("does not take it back"), "{msg}");
    assert!(has(&a, "Ready", "False", "TakeoverContested"));
    assert_eq!(a.status.as_ref().and_then(|s| s.phase), Some(Phase::Conflict));
    let (t, _, _, _) = wait_event(&env1, "a", "OwnerChanged", &owner_b).await;
    assert_eq!(t, "Warning");
    wait_event(&env1, "a", "TakeoverContested", &owner_b).await;

    // Several verifications later: still B's, one write each, A still contested.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let writes =
        |agent: &str| webhook_writes(&from(&sim.requests(), agent)).into_iter().map(written_url).collect::<Vec<_>>();
    assert_eq!(writes(agent1), vec![u1.clone()], "A wrote only its first claim");
    assert_eq!(writes(agent2), vec![u2.clone()], "B wrote only its takeover");
    assert_eq!(sender_webhook(&sim, &number).as_deref(), Some(u2.as_str()));
    let at_twilio = sim
        .state()
        .accounts
        .iter()
        .flat_map(|acc| acc.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{number}"))
        .and_then(|s| s.webhook.callback_url.clone())
        .unwrap_or_default();
    assert_eq!(common::marker(&at_twilio).as_deref(), Some(owner_b.as_str()));
    let a = Api::<WhatsAppChannel>::namespaced(env1.client.clone(), &env1.ns).get("a").await.expect("get A");
    assert!(has(&a, "NumberBound", "False", "TakeoverContested"));
    let history = a.status.and_then(|s| s.ownership).map(|o| o.history).unwrap_or_default();
    assert_eq!(history.len(), 2, "A's claim and its loss: {history:?}");
    let b = Api::<WhatsAppChannel>::namespaced(env2.client.clone(), &env2.ns).get("b").await.expect("get B");
    assert!(has(&b, "Ready", "True", "ChannelReady"));
    assert_conforming(&sim);
}
