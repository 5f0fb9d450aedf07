//! Races and failures in the middle of a pass, against a real API server and the strict Twilio
//! simulator: a number move that must keep the old number until it is restored and released
//! (whatever blocks the release, across a restart), deletions and spec changes acted on during a
//! long backoff or an account's rate-limit hold, a status-write conflict that must not turn a
//! backoff into a hot loop, a Twilio write whose record survives a later failure in the same
//! pass, the pass deadline, and a Secret metadata change that is not a new credential.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::ResourceExt;
use serde_json::json;
use twilio_sim::{FaultAction, FaultRule, RequestRecord};
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};

use common::operator::*;
use common::{within, TestEnv, TIMEOUT};

const TOKEN: &str = FIXTURE_TOKEN;
/// The receiver a number had before any channel took it.
const PREVIOUS: &str = "https://previous-crm.example.com/hook";
const SENDERS: &str = "/v2/Channels/Senders";

fn receiver(name: &str) -> String {
    format!("https://{name}.example.com/api/webhook/LeadGen/whatsapp")
}

fn spec(number: &str, account: &str, secret: &str, url: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": secret}},
        "webhook": {"url": url},
        "queue": "sales",
    })
}

fn channels(env: &TestEnv) -> Api<WhatsAppChannel> {
    Api::namespaced(env.client.clone(), &env.ns)
}

async fn patch_spec(env: &TestEnv, name: &str, spec: serde_json::Value) {
    channels(env)
        .patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": spec})))
        .await
        .expect("patch spec");
}

async fn annotate(env: &TestEnv, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    channels(env).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
}

/// One account seeded with `auth_token` [`TOKEN`] and the given senders (`(number, webhook)`).
fn seed_account(sim: &StrictSim, account: &str, senders: &[(&str, &str)]) {
    let mut yaml = format!("accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n");
    if !senders.is_empty() {
        yaml.push_str("  whatsapp_senders:\n");
    }
    for (number, webhook) in senders {
        yaml.push_str(&format!("  - sender_id: whatsapp:{number}\n    status: ONLINE\n"));
        if !webhook.is_empty() {
            yaml.push_str(&format!("    webhook: {{callback_url: \"{webhook}\", callback_method: POST}}\n"));
        }
    }
    sim.seed_yaml(&yaml).expect("seed");
}

/// The webhook URL of `number`'s sender at the simulator (empty when unset).
fn webhook_of(sim: &StrictSim, number: &str) -> String {
    sim.state()
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{number}"))
        .and_then(|s| s.webhook.callback_url.clone())
        .map(|u| common::unmarked(&u))
        .unwrap_or_default()
}

/// The SID of `number`'s sender at the simulator.
fn sender_sid(sim: &StrictSim, number: &str) -> String {
    sim.state()
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{number}"))
        .map(|s| s.sid.clone())
        .expect("seeded sender")
}

/// Webhook writes to sender `sid` that Twilio accepted, with the URL each set.
fn accepted_writes(sim: &StrictSim, sid: &str) -> Vec<(RequestRecord, String)> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.is_write() && r.path == format!("{SENDERS}/{sid}") && r.status.is_some_and(|s| (200..300).contains(&s))
        })
        .map(|r| {
            let url = common::unmarked(
                r.json.as_ref().and_then(|j| j["webhook"]["callback_url"].as_str()).unwrap_or_default(),
            );
            (r, url)
        })
        .collect()
}

/// Waits until the channel's status describes its current generation.
async fn wait_observed(env: &TestEnv, name: &str) -> WhatsAppChannel {
    wait_for(env, name, "status for the current generation", |ch| {
        ch.status.as_ref().is_some_and(|s| s.observed_generation == ch.metadata.generation)
    })
    .await
}

/// Whether the channel is gone within `limit`.
async fn gone_within(env: &TestEnv, name: &str, limit: Duration) -> bool {
    let api = channels(env);
    tokio::time::timeout(limit, async {
        while api.get_opt(name).await.expect("get channel").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

/// Waits (at most `limit`) until the channel is gone.
async fn wait_gone(env: &TestEnv, name: &str, limit: Duration) {
    let api = channels(env);
    if !gone_within(env, name, limit).await {
        let status = api.get_opt(name).await.ok().flatten().and_then(|c| c.status);
        panic!("{}/{name} still exists after {limit:?}: {status:#?}", env.ns);
    }
}

/// Waits until `pred` holds for the simulator's request log.
async fn wait_requests(sim: &StrictSim, what: &str, pred: impl Fn(&[RequestRecord]) -> bool) {
    let ok = tokio::time::timeout(TIMEOUT, async {
        while !pred(&sim.requests()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "{what}: not seen in the request log within {TIMEOUT:?}");
}

/// The binding of `number`, if any.
async fn binding(env: &TestEnv, number: &str) -> Option<WhatsAppNumberBinding> {
    Api::<WhatsAppNumberBinding>::all(env.client.clone())
        .get_opt(&format!("whatsapp-{}", number.trim_start_matches('+')))
        .await
        .expect("get binding")
}

fn account_fetch(account: &str) -> String {
    format!("/2010-04-01/Accounts/{account}.json")
}

// ---------------------------------------------------------------------------------------------
// 1. A number move holds the old number until it is restored and released.

/// What keeps channel A from releasing its old number right away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blocker {
    /// The new number is held by another channel, and Twilio is slow to answer the old
    /// number's read.
    TargetHeld,
    /// A's credentials Secret is broken.
    SecretBroken,
    /// Twilio answers 503 for the old number's sender.
    Twilio5xx,
    /// Twilio answers 503, and the operator restarts meanwhile.
    Restart,
}

/// A on N1 (having taken it over from [`PREVIOUS`]) moves to N2 while `blocker` holds; C, asking
/// for N1 all along, must not get it until A has put [`PREVIOUS`] back and released it.
async fn a_moving_channel_holds_its_old_number(prefix: &str, blocker: Blocker) {
    let env = common::setup(prefix).await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let (n1, n2) = (random_number(), random_number());
    seed_account(&sim, &account, &[(&n1, PREVIOUS), (&n2, "")]);
    // A has a Secret of its own (it is the one broken below); B and C share another.
    create_secret(&env, "twilio-a", &[("authToken", TOKEN)]).await;
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let mut op = Some(start_operator(&env.client, config(&env, &sim)));
    let (url_a, url_b, url_c) = (receiver("crm-a"), receiver("crm-b"), receiver("crm-c"));
    let holder_a = format!("{}/a", env.ns);

    let mut a = spec(&n1, &account, "twilio-a", &url_a);
    a["bindingPolicy"] = json!("Takeover");
    a["takeover"] = json!({"from": PREVIOUS});
    create_channel(&env, "a", a).await;
    let ready = wait_for(&env, "a", "A Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let sender = ready.status.and_then(|s| s.sender).expect("A's sender status");
    assert_eq!(sender.previous_webhook_url.as_deref(), Some(PREVIOUS), "A recorded the URL it overwrote");
    assert_eq!(webhook_of(&sim, &n1), url_a);
    let sid1 = sender_sid(&sim, &n1);
    if blocker == Blocker::TargetHeld {
        create_channel(&env, "b", spec(&n2, &account, "twilio", &url_b)).await;
        wait_for(&env, "b", "B Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    }
    create_channel(&env, "c", spec(&n1, &account, "twilio", &url_c)).await;
    let c = wait_for(&env, "c", "C NumberInUse", |ch| has(ch, "NumberBound", "False", "NumberInUse")).await;
    assert!(current(&c, "NumberBound").is_some_and(|c| c.message.contains(&holder_a)), "names A: {c:#?}");

    // The move, with its blocker.
    match blocker {
        Blocker::TargetHeld => {
            // Slow enough for C to be looked at several times while A's pass is under way.
            let slow = FaultRule::new(FaultAction::Latency { ms: 5_000 })
                .method("GET")
                .path(&format!("{SENDERS}/{sid1}$"))
                .times(1);
            sim.add_fault(slow).expect("fault");
        }
        Blocker::SecretBroken => {
            update_secret(&env, "twilio-a", &[("unrelated", "x")]).await;
            wait_for(&env, "a", "A sees the broken Secret", |ch| {
                current(ch, "CredentialsValid").is_some_and(|c| c.status == "False")
            })
            .await;
        }
        Blocker::Twilio5xx | Blocker::Restart => {
            let storm = FaultRule::new(FaultAction::Error { status: 503, code: None, message: None })
                .path(&format!("{SENDERS}/{sid1}$"));
            sim.add_fault(storm).expect("fault");
        }
    }
    patch_spec(&env, "a", json!({"phoneNumber": n2})).await;

    if blocker != Blocker::TargetHeld {
        // A says it still holds N1, and why.
        let status = if blocker == Blocker::SecretBroken { "False" } else { "Unknown" };
        let a = wait_for(&env, "a", "A releasing the previous number", move |ch| {
            has(ch, "NumberBound", status, "ReleasingPreviousNumber")
        })
        .await;
        assert_eq!(a.status.and_then(|s| s.sender).map(|s| s.phone_number), Some(n1.clone()), "still wired to N1");
        if blocker == Blocker::Restart {
            // Stop the operator in the middle of the move and start a new one.
            drop(op.take());
            op = Some(start_operator(&env.client, config(&env, &sim)));
        }
    }

    // C is looked at again and again (a spec change of its own each time, so that each pass
    // shows in its status): each time N1 is still A's — unless A has already put the previous
    // receiver back.
    for i in 0..3 {
        patch_spec(&env, "c", json!({"queue": format!("poke-{i}")})).await;
        let c = wait_observed(&env, "c").await;
        let holder = binding(&env, &n1).await.map(|b| b.spec.channel_ref.name);
        let restored = accepted_writes(&sim, &sid1).iter().any(|(_, url)| url == PREVIOUS);
        if blocker == Blocker::TargetHeld && restored {
            break;
        }
        assert!(!restored, "poke {i}: A cannot have restored N1 yet");
        assert_eq!(holder.as_deref(), Some("a"), "poke {i}: N1 is still A's binding");
        let cond = current(&c, "NumberBound").expect("C's NumberBound");
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "NumberInUse"), "poke {i}: {cond:#?}");
        assert!(cond.message.contains(&holder_a), "poke {i}: names A: {}", cond.message);
        assert_eq!(webhook_of(&sim, &n1), url_a, "poke {i}: N1 still delivers to A");
    }

    // Lift the blocker: A restores N1, releases it, and C takes it.
    match blocker {
        Blocker::TargetHeld => {}
        Blocker::SecretBroken => update_secret(&env, "twilio-a", &[("authToken", TOKEN)]).await,
        Blocker::Twilio5xx | Blocker::Restart => sim.clear_faults(),
    }
    let taken = tokio::time::timeout(TIMEOUT, async {
        while binding(&env, &n1).await.map(|b| b.spec.channel_ref.name).as_deref() != Some("c") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if taken.is_err() {
        let a = channels(&env).get("a").await.ok().and_then(|c| c.status);
        let holder = binding(&env, &n1).await.map(|b| b.spec.channel_ref.name);
        panic!("C never got N1 (held by {holder:?}); A's status: {a:#?}");
    }
    assert_eq!(webhook_of(&sim, &n1), PREVIOUS, "C got N1 only after A had put the previous receiver back");
    let restores: Vec<_> = accepted_writes(&sim, &sid1).into_iter().filter(|(_, u)| u == PREVIOUS).collect();
    assert_eq!(restores.len(), 1, "one restore of N1: {restores:#?}");
    // C (Exclusive) finds that foreign receiver on N1 and leaves it alone.
    let c = wait_for(&env, "c", "C BoundElsewhere", |ch| has(ch, "NumberBound", "False", "BoundElsewhere")).await;
    assert!(current(&c, "NumberBound").is_some_and(|c| c.message.contains(PREVIOUS)), "{c:#?}");
    assert_eq!(webhook_of(&sim, &n1), PREVIOUS);
    if blocker == Blocker::TargetHeld {
        let holder_b = format!("{}/b", env.ns);
        let a = wait_for(&env, "a", "A NumberInUse", |ch| has(ch, "NumberBound", "False", "NumberInUse")).await;
        assert!(current(&a, "NumberBound").is_some_and(|c| c.message.contains(&holder_b)), "names B: {a:#?}");
        assert_eq!(webhook_of(&sim, &n2), url_b, "B keeps N2");
    } else {
        let a = wait_for(&env, "a", "A Ready on N2", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
        assert_eq!(a.status.and_then(|s| s.sender).map(|s| s.phone_number), Some(n2.clone()));
        assert_eq!(webhook_of(&sim, &n2), url_a);
    }
    drop(op);
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_move_to_a_number_held_elsewhere_releases_the_old_one_only_after_restoring_it() {
    a_moving_channel_holds_its_old_number("race-move-held", Blocker::TargetHeld).await;
}

#[tokio::test]
async fn a_move_with_a_broken_secret_keeps_the_old_number_until_it_is_restored() {
    a_moving_channel_holds_its_old_number("race-move-secret", Blocker::SecretBroken).await;
}

#[tokio::test]
async fn a_move_during_twilio_5xx_keeps_the_old_number_until_it_is_restored() {
    a_moving_channel_holds_its_old_number("race-move-5xx", Blocker::Twilio5xx).await;
}

#[tokio::test]
async fn a_move_interrupted_by_an_operator_restart_keeps_the_old_number() {
    a_moving_channel_holds_its_old_number("race-move-restart", Blocker::Restart).await;
}

// ---------------------------------------------------------------------------------------------
// 2. A deletion or a spec change is acted on during a backoff or an account's rate-limit hold.

/// How soon a deletion or a spec change during a backoff must be acted on: well within the
/// shortest backoff these tests configure (10 s after the first failure).
const PROMPT: Duration = Duration::from_secs(5);

/// Operator settings whose first backoff after a failure is 10–20 s, re-verifying Ready channels
/// every second (so that a storm reaches them).
fn long_backoff(env: &TestEnv, sim: &StrictSim) -> whatsapp_operator::controller::OperatorConfig {
    let mut cfg = config(env, sim);
    cfg.backoff_base = Duration::from_secs(20);
    cfg.backoff_max = Duration::from_secs(60);
    cfg.verify_interval = Duration::from_secs(1);
    cfg
}

fn storm(account: &str) -> FaultRule {
    FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).account(account)
}

fn failed_for(reqs: &[RequestRecord], account: &str, status: u16) -> bool {
    reqs.iter().any(|r| r.account_sid.as_deref() == Some(account) && r.status == Some(status))
}

#[tokio::test]
async fn deletions_and_spec_changes_are_acted_on_during_a_long_backoff() {
    let env = common::setup("race-backoff").await;
    let sim = start_sim().await;
    let (wired, unwired, changed) = (random_account_sid(), random_account_sid(), random_account_sid());
    let restoring = random_account_sid();
    let (number, taken) = (random_number(), random_number());
    seed_account(&sim, &wired, &[(&number, "")]);
    seed_account(&sim, &restoring, &[(&taken, PREVIOUS)]);
    seed_account(&sim, &unwired, &[]);
    seed_account(&sim, &changed, &[]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let _op = start_operator(&env.client, long_backoff(&env, &sim));

    // Ready channels hit by a storm at their next verification: backing off. One of them took
    // its number over from PREVIOUS.
    create_channel(&env, "wired", spec(&number, &wired, "twilio", &receiver("crm-w"))).await;
    let mut s = spec(&taken, &restoring, "twilio", &receiver("crm-r"));
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    create_channel(&env, "restoring", s).await;
    for name in ["wired", "restoring"] {
        wait_for(&env, name, "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    }
    sim.add_fault(storm(&wired)).expect("fault");
    let restoring_storm = sim.add_fault(storm(&restoring)).expect("fault");
    // Two channels that never got past verification: backing off too.
    sim.add_fault(storm(&unwired)).expect("fault");
    sim.add_fault(storm(&changed)).expect("fault");
    create_channel(&env, "unwired", spec(&random_number(), &unwired, "twilio", &receiver("crm-u"))).await;
    create_channel(&env, "changed", spec(&random_number(), &changed, "twilio", &receiver("crm-c"))).await;
    for name in ["unwired", "changed"] {
        wait_for(&env, name, "TwilioUnavailable", |ch| has(ch, "CredentialsValid", "Unknown", "TwilioUnavailable"))
            .await;
    }
    wait_requests(&sim, "a 503 for each Ready channel", |r| {
        failed_for(r, &wired, 503) && failed_for(r, &restoring, 503)
    })
    .await;

    // skip-cleanup and the deletion: gone at once, Twilio untouched.
    annotate(&env, "wired", "whatsapp-operator.io/skip-cleanup", "true").await;
    channels(&env).delete("wired", &DeleteParams::default()).await.expect("delete");
    // With the Secret present and nothing to restore: gone at once.
    channels(&env).delete("unwired", &DeleteParams::default()).await.expect("delete");
    // With the Secret present, Twilio back, the previous receiver to restore: done at once, not
    // after the backoff.
    assert!(sim.remove_fault(restoring_storm), "the storm was still on");
    channels(&env).delete("restoring", &DeleteParams::default()).await.expect("delete");
    // A spec change: looked at (and reported) at once, though it fails again.
    let before = channels(&env).get("changed").await.expect("get").metadata.generation;
    patch_spec(&env, "changed", json!({"webhook": {"url": receiver("crm-c2")}})).await;

    // All are watched at once, so that each outcome is reported.
    let reflected = async {
        tokio::time::timeout(PROMPT, async {
            loop {
                let ch = channels(&env).get("changed").await.expect("get");
                let seen = ch.status.as_ref().and_then(|s| s.observed_generation);
                if seen == ch.metadata.generation && seen != before {
                    return ch;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .ok()
    };
    let (wired_gone, unwired_gone, restored_gone, observed) = tokio::join!(
        gone_within(&env, "wired", PROMPT),
        gone_within(&env, "unwired", PROMPT),
        gone_within(&env, "restoring", PROMPT),
        reflected
    );
    assert!(
        wired_gone && unwired_gone && restored_gone && observed.is_some(),
        "within {PROMPT:?} of the change: skip-cleanup deletion done: {wired_gone}; deletion with the Secret present done: {unwired_gone}; deletion restoring the previous receiver done: {restored_gone}; spec change reflected: {}",
        observed.is_some()
    );
    assert_eq!(webhook_of(&sim, &taken), PREVIOUS, "the previous receiver is back");
    let observed = observed.expect("reflected");
    assert!(has(&observed, "CredentialsValid", "Unknown", "TwilioUnavailable"), "{:#?}", observed.status);
    assert_eq!(webhook_of(&sim, &number), receiver("crm-w"), "skip-cleanup leaves Twilio untouched");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_deletion_with_skip_cleanup_is_acted_on_during_a_rate_limit_hold() {
    let env = common::setup("race-hold").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed_account(&sim, &account, &[(&number, "")]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let _op = start_operator(&env.client, long_backoff(&env, &sim));
    create_channel(&env, "ch", spec(&number, &account, "twilio", &receiver("crm"))).await;
    wait_for(&env, "ch", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;

    // The next verification is refused for a minute: the account is on hold, the channel backs off.
    let limited = FaultRule::new(FaultAction::RateLimit { retry_after: Some(60) })
        .path(&format!("{}$", account_fetch(&account)))
        .times(1);
    sim.add_fault(limited).expect("fault");
    wait_requests(&sim, "the 429", |r| failed_for(r, &account, 429)).await;

    annotate(&env, "ch", "whatsapp-operator.io/skip-cleanup", "true").await;
    channels(&env).delete("ch", &DeleteParams::default()).await.expect("delete");
    wait_gone(&env, "ch", PROMPT).await;
    assert_eq!(webhook_of(&sim, &number), receiver("crm"), "skip-cleanup leaves Twilio untouched");
    assert!(binding(&env, &number).await.is_none(), "the number is released");
    assert_conforming(&sim);
}

// ---------------------------------------------------------------------------------------------
// 3. A conflicting status write neither resets the backoff nor drops the error.

#[tokio::test]
async fn a_conflicting_status_write_keeps_backing_off() {
    let env = common::setup("race-conflict").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    seed_account(&sim, &account, &[]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    // Every verification fails, slowly enough that the channel always changes during the pass.
    let path = format!("{}$", account_fetch(&account));
    sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 300 }).path(&path)).expect("fault");
    sim.add_fault(FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).path(&path))
        .expect("fault");
    let mut cfg = config(&env, &sim);
    cfg.backoff_base = Duration::from_millis(500);
    cfg.backoff_max = Duration::from_secs(30);
    let _op = start_operator(&env.client, cfg);
    create_channel(&env, "ch", spec(&random_number(), &account, "twilio", &receiver("crm"))).await;

    // Someone relabels the channel all the time: every status write of the operator's (against
    // the version its pass read) conflicts. Labels do not start passes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relabel = tokio::spawn({
        let (api, stop) = (channels(&env), stop.clone());
        async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let patch = json!({"metadata": {"labels": {"relabel": i.to_string()}}});
                let _ = api.patch("ch", &PatchParams::default(), &Patch::Merge(&patch)).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            i
        }
    });

    let fetches = |reqs: &[RequestRecord]| {
        reqs.iter().filter(|r| r.is("GET", &account_fetch(&account))).map(|r| r.time).collect::<Vec<_>>()
    };
    wait_requests(&sim, "five verifications", |r| fetches(r).len() >= 5).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let relabels = relabel.await.expect("relabel task");
    let times = fetches(&sim.requests());
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect();
    // Backoff after the n-th failure: at least half of 500 ms * 2^(n-1); a lost error would
    // retry every ~300 ms instead.
    assert!(gaps[3] >= 1_500, "the backoff keeps growing through the conflicts: gaps {gaps:?} ms");
    assert!(gaps[3] > gaps[0], "the delay grows: {gaps:?}");
    let ch = get_channel(&env, "ch").await;
    let written = ch.status.as_ref().is_some_and(|s| !s.conditions.is_empty());
    assert!(!written, "every status write conflicted ({relabels} relabels), so none landed: {:#?}", ch.status);
    assert_conforming(&sim);
}

// ---------------------------------------------------------------------------------------------
// 4. A failure after a Twilio write in the same pass never erases the record of that write.

fn message_posts(reqs: &[RequestRecord]) -> Vec<&RequestRecord> {
    reqs.iter().filter(|r| r.is_write() && r.path.ends_with("/Messages.json")).collect()
}

#[tokio::test]
async fn a_failed_send_after_the_first_webhook_write_still_lets_deletion_restore() {
    let env = common::setup("race-record-new").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed_account(&sim, &account, &[(&number, PREVIOUS)]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let sid = sender_sid(&sim, &number);
    // The confirmation message fails, slowly: the deletion lands while it is under way, so the
    // pass's final status write conflicts and only what was recorded before the writes stands.
    let messages = "/Messages.json$";
    sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 1_500 }).method("POST").path(messages)).expect("fault");
    sim.add_fault(
        FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).method("POST").path(messages),
    )
    .expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    let mut s = spec(&number, &account, "twilio", &receiver("crm"));
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    s["confirmationPhoneNumber"] = json!("+14155550123");
    create_channel(&env, "ch", s).await;

    wait_requests(&sim, "the webhook write", |_| !accepted_writes(&sim, &sid).is_empty()).await;
    channels(&env).delete("ch", &DeleteParams::default()).await.expect("delete");
    wait_gone(&env, "ch", TIMEOUT).await;
    let posts: Vec<_> = message_posts(&sim.requests()).into_iter().map(|r| r.status).collect();
    assert!(posts.contains(&Some(503)), "the send failed: {posts:?}");
    assert_eq!(webhook_of(&sim, &number), PREVIOUS, "the deletion put the previous receiver back");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_failed_send_after_a_takeover_on_a_ready_channel_still_lets_deletion_restore() {
    let env = common::setup("race-record-ready").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed_account(&sim, &account, &[(&number, "")]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let sid = sender_sid(&sim, &number);
    let _op = start_operator(&env.client, config(&env, &sim));
    let mut s = spec(&number, &account, "twilio", &receiver("crm"));
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    s["confirmationPhoneNumber"] = json!("+14155550123");
    create_channel(&env, "ch", s).await;
    wait_for(&env, "ch", "confirmed", |ch| has(ch, "ConfirmationSent", "True", "MessageSent")).await;
    wait_for(&env, "ch", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;

    // Behind the operator's back the number goes to another receiver; then one spec change asks
    // for a new URL (Takeover: written, recording PREVIOUS) and a new confirmation recipient,
    // whose message fails.
    sim.update_sender(
        &account,
        &number,
        &serde_json::from_value(json!({"webhook": {"callback_url": PREVIOUS, "callback_method": "POST"}}))
            .expect("patch"),
    )
    .expect("console change");
    sim.add_fault(
        FaultRule::new(FaultAction::Error { status: 503, code: None, message: None })
            .method("POST")
            .path("/Messages.json$"),
    )
    .expect("fault");
    let new_url = receiver("crm-v2");
    patch_spec(&env, "ch", json!({"webhook": {"url": new_url}, "confirmationPhoneNumber": "+14155550777"})).await;
    wait_requests(&sim, "the failed send", |r| message_posts(r).iter().any(|m| m.status == Some(503))).await;
    assert_eq!(webhook_of(&sim, &number), new_url, "the takeover was written before the send");

    channels(&env).delete("ch", &DeleteParams::default()).await.expect("delete");
    wait_gone(&env, "ch", TIMEOUT).await;
    assert_eq!(webhook_of(&sim, &number), PREVIOUS, "the deletion put the previous receiver back");
    let last = accepted_writes(&sim, &sid).pop().map(|(_, u)| u);
    assert_eq!(last.as_deref(), Some(PREVIOUS));
    assert_conforming(&sim);
}

// ---------------------------------------------------------------------------------------------
// 5. Every pass has a deadline.

#[tokio::test]
async fn a_stuck_account_does_not_hold_every_worker() {
    let env = common::setup("race-deadline").await;
    let sim = start_sim().await;
    let (slow, healthy) = (random_account_sid(), random_account_sid());
    seed_account(&sim, &slow, &[]);
    let healthy_numbers = [random_number(), random_number()];
    seed_account(&sim, &healthy, &[(&healthy_numbers[0], ""), (&healthy_numbers[1], "")]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    // The slow account answers after 40 s (the client would wait a minute).
    sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 40_000 }).account(&slow)).expect("fault");
    let mut cfg = config(&env, &sim);
    cfg.pass_timeout = Duration::from_secs(2);
    cfg.concurrency = 2;
    cfg.twilio.timeout = Duration::from_secs(60);
    let _op = start_operator(&env.client, cfg);

    for i in 0..3 {
        create_channel(&env, &format!("slow-{i}"), spec(&random_number(), &slow, "twilio", &receiver("crm"))).await;
    }
    // Both workers are in the slow account's passes.
    within(TIMEOUT, async {
        while sim.in_flight(&slow) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for (i, n) in healthy_numbers.iter().enumerate() {
        create_channel(&env, &format!("healthy-{i}"), spec(n, &healthy, "twilio", &receiver(&format!("crm-{i}"))))
            .await;
    }
    // Each slow pass is abandoned after 2 s: the healthy channels get workers long before the
    // slow account answers.
    for i in 0..healthy_numbers.len() {
        let name = format!("healthy-{i}");
        let ready = tokio::time::timeout(
            Duration::from_secs(20),
            await_condition(channels(&env), &name, |o: Option<&WhatsAppChannel>| {
                o.is_some_and(|ch| has(ch, "Ready", "True", "ChannelReady"))
            }),
        )
        .await;
        assert!(ready.is_ok(), "{name} Ready within 20 s while the slow account hangs");
    }
    for i in 0..3 {
        let ch = get_channel(&env, &format!("slow-{i}")).await;
        assert!(!ch.status.iter().flat_map(|s| s.conditions.iter()).any(|c| c.type_ == "Ready" && c.status == "True"));
    }
    assert_conforming(&sim);
}

// ---------------------------------------------------------------------------------------------
// 7. A label or annotation on the credentials Secret is not a new credential.

#[tokio::test]
async fn secret_metadata_changes_make_no_twilio_call() {
    let env = common::setup("race-fingerprint").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    seed_account(&sim, &account, &[(&number, "")]);
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec(&number, &account, "twilio", &receiver("crm"))).await;
    wait_for(&env, "ch", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    within(TIMEOUT, async {
        while secrets.get("twilio").await.expect("secret").finalizers().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // A spec change that reaches no Twilio endpoint, to see a pass through.
    let pass = |i: usize| {
        let env = &env;
        async move {
            patch_spec(env, "ch", json!({"queue": format!("q{i}")})).await;
            wait_for(env, "ch", "Ready after the queue change", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
        }
    };
    pass(0).await;
    sim.clear_requests();

    let changes = [
        json!({"metadata": {"labels": {"team": "sales"}}}),
        json!({"metadata": {"annotations": {"note": "rotated next quarter"}}}),
        json!({"metadata": {"labels": {"team": "support"}, "annotations": {"note": "moved"}}}),
    ];
    for (i, change) in changes.iter().enumerate() {
        secrets.patch("twilio", &PatchParams::default(), &Patch::Merge(change)).await.expect("patch secret");
        // Passes after the change (the Secret's own event, and a spec change of the channel).
        pass(i + 1).await;
        pass(i + 10).await;
    }
    let calls: Vec<_> = sim.requests().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(calls.is_empty(), "no Twilio call for Secret metadata changes: {calls:#?}");
    assert_conforming(&sim);
}
