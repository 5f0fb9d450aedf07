//! Kubernetes faults, each on a control plane of the test's own (the shared one is never
//! disturbed): the API server restarted mid-run, watches cut and resumed past an etcd compaction
//! (410 Gone, answered by a relist), etcd compacted at head while the fleet converges, the
//! Lease stolen during a pass, and an API server that stops answering while a pass waits. The
//! operator runs in-process and must recover without restarting and without duplicate work
//! (the simulator counts every Twilio write).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use whatsapp_operator::api::WhatsAppChannel;
use whatsapp_operator::leader::{self, Leadership, LeaseConfig};
use whatsapp_operator::telemetry::kube_requests::KubeRequestLabels;
use whatsapp_operator::telemetry::Metrics;
use whatsapp_operator::test_hooks::{Hooks, Point};

use common::control_plane::ControlPlane;
use common::end_state::{self as fleet, Fleet, Member, Writes};
use common::operator::*;
use common::proxy::Proxy;
use common::{kube_requests, within, TestEnv, TIMEOUT};

const LEASE: &str = "whatsapp-operator-fault";

/// A private control plane, a namespace on it, a strict simulator with a fleet account of
/// `numbers` senders, and the credentials Secret.
async fn world(
    prefix: &str,
    apiserver_args: &'static str,
    numbers: usize,
) -> (ControlPlane, TestEnv, StrictSim, Fleet) {
    common::init_crypto();
    let cp = tokio::task::spawn_blocking(move || ControlPlane::start_with(apiserver_args))
        .await
        .expect("start a control plane");
    let env = common::setup_with(cp.client().await, prefix).await;
    let sim = start_sim().await;
    let fleet = Fleet::seed(&sim, numbers);
    create_secret(&env, "twilio", &[("authToken", FIXTURE_TOKEN)]).await;
    (cp, env, sim, fleet)
}

async fn create_members(env: &TestEnv, fleet: &Fleet, range: std::ops::Range<usize>) -> Vec<Member> {
    let mut members = Vec::new();
    for i in range {
        let name = format!("ch-{i}");
        let number = fleet.numbers[i].clone();
        create_channel(env, &name, fleet.spec(&env.ns, &name, &number)).await;
        members.push(Member { ns: env.ns.clone(), name, number });
    }
    members
}

/// Requests that got no answer (the API server was unreachable).
fn unanswered(metrics: &Metrics) -> u64 {
    ["watch", "list", "get", "patch", "create"]
        .iter()
        .flat_map(|v| {
            ["whatsappchannels", "whatsappnumberbindings", "secrets", "leases"].map(|r| {
                metrics
                    .kube_requests
                    .get_or_create(&KubeRequestLabels { verb: (*v).into(), resource: r.into(), code: "none".into() })
                    .get()
            })
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_mid_run_is_survived_without_duplicate_work() {
    let (mut cp, env, sim, fleet) = world("k8s-restart", "", 15).await;
    let metrics = Arc::new(Metrics::new());
    let client = cp.client_via(None, Some(&metrics)).await;
    let op = start_operator_with(&client, config(&env, &sim), metrics.clone(), None);

    let mut members = create_members(&env, &fleet, 0..5).await;
    fleet::wait_converged(&env.client, &members, TIMEOUT).await;
    let before = Writes::of(&sim);

    // Down: the operator's watches break and its requests go unanswered.
    let cut_off = unanswered(&metrics);
    tokio::task::block_in_place(|| cp.stop_apiserver());
    within(TIMEOUT, async {
        while unanswered(&metrics) == cut_off {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::task::block_in_place(|| cp.start_apiserver(&[]));
    // Created the moment it is back, while the operator is still backing off, then later. The
    // watches reconnect after their backoff (at most 10 s, `watch_backoff::MAX`) to an API
    // server whose watch cache is still filling; twice the usual patience, for a loaded machine
    // (CI runs this beside hundreds of tests on two cores).
    members.extend(create_members(&env, &fleet, 5..10).await);
    fleet::wait_converged(&env.client, &members, TIMEOUT * 2).await;
    members.extend(create_members(&env, &fleet, 10..15).await);
    fleet::wait_converged(&env.client, &members, TIMEOUT * 2).await;

    assert!(op.is_running(), "the operator recovered in place (it did not stop or fail)");
    let after = Writes::of(&sim);
    for m in &members[..5] {
        assert_eq!(
            after.messages.get(&m.number),
            before.messages.get(&m.number),
            "{}: no second confirmation message after the restart",
            m.name
        );
    }
    assert_eq!(
        after.webhooks.iter().filter(|(k, _)| before.webhooks.contains_key(*k)).collect::<Vec<_>>(),
        before.webhooks.iter().collect::<Vec<_>>(),
        "no webhook written again for the channels that were Ready before the restart"
    );
    fleet::assert_exactly_once(&env.client, &sim, &fleet, &members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_past_an_etcd_compaction_gets_410_and_relists_seeing_the_gap() {
    // No watch cache: watches are served by etcd, so a resume from a compacted revision is
    // answered 410 Gone (with the cache, its own window answers the same way).
    let (cp, env, sim, fleet) = world("k8s-410", "--watch-cache=false", 4).await;
    let proxy = Proxy::start(cp.api_addr()).await;
    let metrics = Arc::new(Metrics::new());
    let client = cp.client_via(Some(proxy.addr()), Some(&metrics)).await;
    let _op = start_operator_with(&client, config(&env, &sim), metrics.clone(), None);

    let mut members = create_members(&env, &fleet, 0..1).await;
    fleet::wait_converged(&env.client, &members, TIMEOUT).await;
    let lists = kube_requests(&metrics, "list", "whatsappchannels");
    assert_eq!(lists, 1, "one initial listing of the channels");

    // Disconnected: the cluster changes behind the operator's back, then etcd forgets the
    // history its watches would resume from.
    proxy.cut();
    members.extend(create_members(&env, &fleet, 1..3).await);
    let moved = fleet.spec(&env.ns, "ch-0-moved", &members[0].number);
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    api.patch("ch-0", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": moved})))
        .await
        .expect("change ch-0's webhook during the gap");
    let revision = cp.etcd_revision().await;
    cp.compact_etcd(revision).await;
    let unanswered_in_gap = unanswered(&metrics);
    within(TIMEOUT, async {
        // The operator tried to resume and could not (the proxy refuses) at least once.
        while unanswered(&metrics) == unanswered_in_gap {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    proxy.restore();

    // The changes made during the gap are seen: the new channels and the changed webhook. The
    // watches reconnect after their backoff (at most 10 s, `watch_backoff::MAX`), get 410 and
    // relist at once; twice the usual patience, for a loaded machine.
    fleet::wait_converged(&env.client, &members, TIMEOUT * 2).await;
    let ch0 = wait_for(&env, "ch-0", "the webhook change acted on", fleet::converged).await;
    assert_eq!(ch0.metadata.generation, Some(2), "Ready for the spec changed during the gap");
    let url = fleet::receiver(&env.ns, "ch-0-moved");
    let webhook = sim
        .state()
        .account(&fleet.account)
        .and_then(|a| a.senders.iter().find(|s| s.sender_id == format!("whatsapp:{}", members[0].number)).cloned())
        .and_then(|s| s.webhook.callback_url)
        .map(|u| common::unmarked(&u));
    assert_eq!(webhook.as_deref(), Some(url.as_str()), "the webhook changed during the gap was applied");
    assert!(
        kube_requests(&metrics, "list", "whatsappchannels") > lists,
        "the channel watch relisted (its resume from a compacted revision got 410 Gone)"
    );
    let writes = Writes::of(&sim);
    assert!(members.iter().all(|m| writes.messages.get(&m.number) == Some(&1)), "one message each: {writes:?}");
    assert_conforming(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_compacted_at_head_while_a_fleet_converges_changes_nothing() {
    let (cp, env, sim, fleet) = world("k8s-compact", "--watch-cache=false", 12).await;
    let metrics = Arc::new(Metrics::new());
    let client = cp.client_via(None, Some(&metrics)).await;
    let op = start_operator_with(&client, config(&env, &sim), metrics.clone(), None);

    // Compaction to the newest revision every 100 ms while the channels are created and
    // reconciled: a watch that lags behind it is cancelled (410) and must relist.
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = {
        let stop = stop.clone();
        let etcd = cp.etcd_url();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let range = serde_json::json!({"key": "Lw==", "limit": 1, "count_only": true});
                let answer: serde_json::Value =
                    http.post(format!("{etcd}/v3/kv/range")).json(&range).send().await?.json().await?;
                let revision = answer["header"]["revision"].as_str().unwrap_or("0").to_owned();
                let body = serde_json::json!({"revision": revision, "physical": false});
                if http.post(format!("{etcd}/v3/kv/compaction")).json(&body).send().await?.status().is_success() {
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<u32, reqwest::Error>(n)
        })
    };
    let mut members = Vec::new();
    for i in 0..12 {
        members.extend(create_members(&env, &fleet, i..i + 1).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet::wait_converged(&env.client, &members, TIMEOUT).await;
    stop.store(true, Ordering::SeqCst);
    let n = compactions.await.expect("compaction task").expect("etcd compactions");
    assert!(n >= 5, "etcd was compacted repeatedly during the run ({n} times)");
    assert!(op.is_running(), "the operator kept running");
    fleet::assert_exactly_once(&env.client, &sim, &fleet, &members).await;
}

/// A pass paused at [`Point::BeforeTwilioWrite`] (its intent recorded) until released; says
/// whether it went on after the release or was dropped.
struct PausedPass {
    paused: tokio::sync::Notify,
    release: tokio::sync::Notify,
    resumed: AtomicBool,
    dropped: AtomicBool,
    armed: AtomicBool,
}

struct DropFlag(Arc<PausedPass>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

fn pause_first_write() -> (Arc<PausedPass>, Hooks) {
    let p = Arc::new(PausedPass {
        paused: Default::default(),
        release: Default::default(),
        resumed: AtomicBool::new(false),
        dropped: AtomicBool::new(false),
        armed: AtomicBool::new(true),
    });
    let state = p.clone();
    let hooks = Hooks::new(move |point, _key| {
        let state = state.clone();
        async move {
            if point != Point::BeforeTwilioWrite || !state.armed.swap(false, Ordering::SeqCst) {
                return;
            }
            let flag = DropFlag(state.clone());
            state.paused.notify_one();
            state.release.notified().await;
            state.resumed.store(true, Ordering::SeqCst);
            std::mem::forget(flag);
        }
    });
    (p, hooks)
}

fn lease_config(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: ns.into(),
        name: LEASE.into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
    }
}

async fn wait_leads(l: &Leadership, leads: bool, within_: Duration) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(within_, async {
        if leads {
            l.gained().await
        } else {
            l.lost().await
        }
    })
    .await
}

/// Every status write to the channel so far: its resourceVersion and its conditions.
async fn status_version(client: &Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<WhatsAppChannel> = Api::namespaced(client.clone(), ns);
    api.get(name).await.ok().and_then(|c| c.resource_version())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_during_a_pass_stops_writing() {
    let (cp, env, sim, fleet) = world("k8s-lease", "", 1).await;
    let client = cp.client_via(None, None).await;
    let (old_lead, _old_elector) = leader::start(client.clone(), lease_config(&env.ns, "old"), std::future::pending());
    wait_leads(&old_lead, true, TIMEOUT).await.expect("the first replica leads");
    let (pass, hooks) = pause_first_write();
    let mut cfg = config(&env, &sim);
    cfg.hooks = hooks;
    let _old = start_operator_with(&client, cfg, Arc::new(Metrics::new()), Some(old_lead.clone()));
    let members = create_members(&env, &fleet, 0..1).await;
    within(TIMEOUT, pass.paused.notified()).await;
    let intent = get_channel(&env, "ch-0").await;
    let pending = intent.status.as_ref().and_then(|s| s.sender.as_ref()).and_then(|s| s.pending_webhook_url.clone());
    assert!(
        pending.is_some() || intent.status.as_ref().is_some_and(|s| s.confirmation.is_some()),
        "the intent is recorded"
    );

    // Another replica takes the Lease over while the pass waits at its Twilio write.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    // (A renewal may win the race: try again on a conflict.)
    within(TIMEOUT, async {
        loop {
            let mut lease = leases.get(LEASE).await.expect("the lease");
            let spec = lease.spec.as_mut().expect("lease spec");
            spec.holder_identity = Some("new".into());
            spec.lease_duration_seconds = Some(60);
            spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            match leases.replace(LEASE, &PostParams::default(), &lease).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => panic!("steal the lease: {e}"),
            }
        }
    })
    .await;
    let stolen = chrono::Utc::now();
    wait_leads(&old_lead, false, Duration::from_secs(5)).await.expect("the old leader sees it lost the Lease");
    let version = status_version(&env.client, &env.ns, "ch-0").await;

    // Released: a pass that went on now would write to Twilio and to the status.
    pass.release.notify_one();
    // An absence is asserted over a window: long enough for the released pass to write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(Writes::of(&sim).since(stolen), Vec::<String>::new(), "no Twilio write after the Lease was lost");
    assert_eq!(
        status_version(&env.client, &env.ns, "ch-0").await,
        version,
        "no status write by the old leader after it lost the Lease"
    );
    // How: the pass was abandoned the moment the elector saw the loss (a pass that got past
    // that would still stop at its next write, since it no longer leads).
    assert!(pass.dropped.load(Ordering::SeqCst) && !pass.resumed.load(Ordering::SeqCst), "the pass was abandoned");

    // The new leader (the identity now in the Lease) finishes the work.
    let (new_lead, _new_elector) = leader::start(client.clone(), lease_config(&env.ns, "new"), std::future::pending());
    wait_leads(&new_lead, true, TIMEOUT).await.expect("the new replica leads");
    let _new = start_operator_with(&client, config(&env, &sim), Arc::new(Metrics::new()), Some(new_lead));
    fleet::wait_converged(&env.client, &members, TIMEOUT).await;
    fleet::assert_exactly_once(&env.client, &sim, &fleet, &members).await;
    assert_conforming(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_a_frozen_api_server_steps_down_by_its_renew_deadline() {
    let (cp, env, sim, fleet) = world("k8s-frozen", "", 1).await;
    let client = cp.client_via(None, None).await;
    let config_ = lease_config(&env.ns, "old");
    let renew_deadline = config_.renew_deadline;
    let (lead, _elector) = leader::start(client.clone(), config_, std::future::pending());
    wait_leads(&lead, true, TIMEOUT).await.expect("leads");
    let (pass, hooks) = pause_first_write();
    let mut cfg = config(&env, &sim);
    cfg.hooks = hooks;
    let _op = start_operator_with(&client, cfg, Arc::new(Metrics::new()), Some(lead.clone()));
    let members = create_members(&env, &fleet, 0..1).await;
    within(TIMEOUT, pass.paused.notified()).await;

    // The API server stops answering (its connections stay open): a renewal hangs. Another
    // replica could take over once the Lease expires, so this one must stop by then.
    let frozen = std::time::Instant::now();
    cp.freeze_apiserver();
    let stepped_down = wait_leads(&lead, false, renew_deadline + Duration::from_secs(2)).await;
    let took = frozen.elapsed();
    pass.release.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = Writes::of(&sim).all.len();
    cp.thaw_apiserver();
    assert!(
        stepped_down.is_ok(),
        "the leader stepped down within its renew deadline ({renew_deadline:?}) of the freeze"
    );
    assert!(took < Duration::from_secs(4), "before the Lease (4 s) could pass to another replica: {took:?}");
    assert_eq!(writes, 0, "no Twilio write while cut off");

    // Thawed: it leads again and finishes.
    wait_leads(&lead, true, TIMEOUT).await.expect("leads again");
    fleet::wait_converged(&env.client, &members, TIMEOUT).await;
    fleet::assert_exactly_once(&env.client, &sim, &fleet, &members).await;
}
