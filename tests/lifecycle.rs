//! Day two: restarts, drift, spec changes, Secret rotation, suspend, deletion.

mod common;

use std::time::Duration;

use common::operator::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use whatsapp_operator::api::{Phase, WhatsAppChannel};

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const PREVIOUS: &str = "https://old-crm.example.com/hook";
const TOKEN: &str = FIXTURE_TOKEN;

/// One account with an ONLINE sender for the fixture's number (webhook initially
/// `initial_url`, may be empty) and the Secret `twilio`.
async fn fixture(prefix: &str, initial_url: &str) -> Fixture {
    let webhook = if initial_url.is_empty() {
        String::new()
    } else {
        format!("    webhook: {{callback_url: \"{initial_url}\", callback_method: POST}}\n")
    };
    Fixture::new(prefix, |_, number| format!("{}{webhook}", sender_seed(number, "ONLINE"))).await
}

fn spec(f: &Fixture) -> serde_json::Value {
    json!({
        "phoneNumber": f.number,
        "instance": "crm-prod",
        "confirmationPhoneNumber": "+14155550123",
        "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    })
}

fn channels(f: &Fixture) -> Api<WhatsAppChannel> {
    Api::namespaced(f.env.client.clone(), &f.env.ns)
}

async fn patch_spec(f: &Fixture, name: &str, spec: serde_json::Value) {
    channels(f).patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": spec}))).await.expect("patch spec");
}

fn sender_webhook(f: &Fixture) -> Option<String> {
    let state = f.sim.state();
    state
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{}", f.number))
        .and_then(|s| s.webhook.callback_url.clone())
        .map(|u| common::unmarked(&u))
}

fn message_posts(f: &Fixture) -> usize {
    f.sim.requests().iter().filter(|r| r.is_write() && r.path.ends_with("/Messages.json")).count()
}

#[tokio::test]
async fn a_restart_makes_no_twilio_writes_and_no_status_writes() {
    let f = fixture("life-restart", "").await;
    let op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let second = random_number();
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{}\n  - sender_id: whatsapp:{second}\n",
            f.account, f.number
        ))
        .expect("seed");
    let binding_names: Vec<String> =
        [&f.number, &second].iter().map(|n| format!("whatsapp-{}", n.trim_start_matches('+'))).collect();
    for (name, number) in [("a", f.number.clone()), ("b", second)] {
        let mut s = spec(&f);
        s["phoneNumber"] = json!(number);
        create_channel(&f.env, name, s).await;
        wait_condition(&f.env, name, "Ready", "True", None).await;
        wait_condition(&f.env, name, "ConfirmationSent", "True", None).await;
    }
    // Let the confirmation messages settle (delivered), then restart.
    for name in ["a", "b"] {
        common::within(common::TIMEOUT, async {
            loop {
                let ch = get_channel(&f.env, name).await;
                if ch.status.and_then(|s| s.confirmation).and_then(|c| c.status).as_deref() == Some("delivered") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
    }
    drop(op);
    let events_before = events_for(&f.env, "a").await.len() + events_for(&f.env, "b").await.len();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    let bindings: Api<whatsapp_operator::api::WhatsAppNumberBinding> = Api::all(f.env.client.clone());
    let others_before = (
        secrets.get("twilio").await.expect("secret").resource_version(),
        binding_versions(&bindings, &binding_names).await,
    );
    let before: Vec<(String, Option<String>)> = channels(&f)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|c| (c.name_any(), c.resource_version()))
        .collect();
    f.sim.clear_requests();

    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    // A new channel going Ready shows the restarted operator has worked through its queue.
    let (probe_account, probe_number) = (random_account_sid(), random_number());
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {probe_account}\n  friendly_name: probe\n  auth_token: {TOKEN}\n  incoming_phone_numbers:\n  - phone_number: \"{probe_number}\"\n"
        ))
        .expect("seed probe account");
    let mut probe = spec(&f);
    probe["phoneNumber"] = json!(probe_number);
    probe["twilio"]["accountSid"] = json!(probe_account);
    probe.as_object_mut().expect("object").remove("confirmationPhoneNumber");
    create_channel(&f.env, "probe", probe).await;
    wait_condition(&f.env, "probe", "Ready", "True", None).await;

    for (name, rv) in before {
        let now = get_channel(&f.env, &name).await;
        assert_eq!(now.resource_version(), rv, "{name}: no status write on restart");
    }
    let events_after = events_for(&f.env, "a").await.len() + events_for(&f.env, "b").await.len();
    assert_eq!(events_before, events_after, "no Events on an unchanged resync");
    let others_after = (
        secrets.get("twilio").await.expect("secret").resource_version(),
        binding_versions(&bindings, &binding_names).await,
    );
    assert_eq!(others_before, others_after, "no write to the credentials Secret or the bindings on restart");
    let reads_of_ready: Vec<_> =
        f.sim.requests().into_iter().filter(|r| r.account_sid.as_deref() == Some(f.account.as_str())).collect();
    assert!(
        reads_of_ready.is_empty(),
        "no Twilio call for the Ready channels of {} before verification is due: {reads_of_ready:#?}",
        f.account
    );
    assert_eq!(message_posts(&f), 0, "no second confirmation message");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn drift_is_restored_with_a_warning_but_a_foreign_receiver_is_not_fought() {
    let f = fixture("life-drift", "").await;
    let mut cfg = config(&f.env, &f.sim);
    cfg.verify_interval = Duration::from_secs(2);
    let _op = start_operator(&f.env.client, cfg);
    create_channel(&f.env, "drift", spec(&f)).await;
    wait_condition(&f.env, "drift", "Ready", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));

    // Cleared in the Console: restored at the next verification, with a Warning Event.
    f.sim
        .update_sender(&f.account, &f.number, &serde_json::from_value(json!({"webhook": {}})).expect("patch"))
        .expect("console change");
    let (type_, _, note) = wait_event(&f.env, "drift", "WebhookRestored").await;
    assert_eq!(type_, "Warning", "{note}");
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));

    // Pointed at another receiver (another cluster): reported, not fought over.
    let writes_before = f.sim.requests().iter().filter(|r| r.is_write()).count();
    f.sim
        .update_sender(
            &f.account,
            &f.number,
            &serde_json::from_value(json!({"webhook": {"callback_url": PREVIOUS, "callback_method": "POST"}}))
                .expect("patch"),
        )
        .expect("console change");
    let ch = wait_condition(&f.env, "drift", "NumberBound", "False", Some("BoundElsewhere")).await;
    assert!(condition(&ch, "NumberBound").message.contains(PREVIOUS));
    assert_eq!(ch.status.and_then(|s| s.phase), Some(Phase::Conflict));
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS));
    let writes_after = f.sim.requests().iter().filter(|r| r.is_write()).count();
    assert_eq!(writes_before, writes_after, "no write against a foreign receiver");

    // Takeover moves it back deliberately and records the previous URL.
    patch_spec(&f, "drift", json!({"bindingPolicy": "Takeover", "takeover": {"from": PREVIOUS}})).await;
    let ch = wait_condition(&f.env, "drift", "Ready", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));
    let sender = ch.status.and_then(|s| s.sender).expect("sender");
    assert_eq!(sender.previous_webhook_url.as_deref(), Some(PREVIOUS));
    wait_event(&f.env, "drift", "TakenOver").await;
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn spec_changes_rewire_toggle_and_confirm_as_needed() {
    let f = fixture("life-spec", "").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f)).await;
    wait_condition(&f.env, "ch", "ConfirmationSent", "True", None).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;

    // Toggling `active` and changing the queue touch no Twilio endpoint.
    f.sim.clear_requests();
    patch_spec(&f, "ch", json!({"active": false})).await;
    wait_condition(&f.env, "ch", "Active", "False", Some("Deactivated")).await;
    patch_spec(&f, "ch", json!({"active": true, "queue": "vip"})).await;
    let ch = wait_condition(&f.env, "ch", "Active", "True", None).await;
    assert_eq!(ch.status.and_then(|s| s.queue).as_deref(), Some("vip"));
    let twilio: Vec<_> = f.sim.requests().into_iter().filter(|r| !r.path.contains("/Messages/")).collect();
    assert!(twilio.is_empty(), "no Twilio calls for active/queue: {twilio:#?}");

    // A new webhook URL is written.
    let new_url = "https://receiver-v2.example.com/hook";
    patch_spec(&f, "ch", json!({"webhook": {"url": new_url}})).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    common::within(common::TIMEOUT, async {
        while sender_webhook(&f).as_deref() != Some(new_url) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(message_posts(&f), 0, "no new message for a new URL");

    // A new confirmation number gets exactly one message.
    patch_spec(&f, "ch", json!({"confirmationPhoneNumber": "+14155550777"})).await;
    let ch = wait_condition(&f.env, "ch", "ConfirmationSent", "True", None).await;
    assert_eq!(ch.status.and_then(|s| s.confirmation).map(|c| c.to).as_deref(), Some("+14155550777"));
    assert_eq!(message_posts(&f), 1);
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_rotated_secret_is_verified_at_once_without_a_new_message() {
    let f = fixture("life-rotate", "").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f)).await;
    wait_condition(&f.env, "ch", "ConfirmationSent", "True", None).await;
    f.sim.rotate_auth_token(&f.account, Some("tok-rotated-000000000000000000000".into())).expect("rotate");
    update_secret(&f.env, "twilio", &[("authToken", "tok-rotated-000000000000000000000")]).await;
    // Verified again through the Secret watch (the verify interval is 10 minutes).
    common::within(common::TIMEOUT, async {
        loop {
            let n =
                f.sim.requests().iter().filter(|r| r.path.ends_with(&format!("/Accounts/{}.json", f.account))).count();
            if n >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let ch = wait_condition(&f.env, "ch", "CredentialsValid", "True", None).await;
    assert_eq!(condition(&ch, "Ready").status, "True");
    assert_eq!(message_posts(&f), 1, "rotation does not re-send the confirmation");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn suspend_stops_twilio_calls_and_resume_reconciles_at_once() {
    let f = fixture("life-suspend", "").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["suspend"] = json!(true);
    create_channel(&f.env, "ch", s).await;
    let ch = wait_condition(&f.env, "ch", "Ready", "False", Some("Suspended")).await;
    assert_eq!(ch.status.and_then(|s| s.phase), Some(Phase::Suspended));
    assert!(f.sim.requests().is_empty(), "no Twilio calls while suspended");
    patch_spec(&f, "ch", json!({"suspend": false})).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn deletion_restores_the_previous_webhook_or_orphans_and_releases_the_number() {
    let f = fixture("life-delete", PREVIOUS).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    create_channel(&f.env, "ch", s.clone()).await;
    let ch = wait_condition(&f.env, "ch", "Ready", "True", None).await;
    assert_eq!(ch.status.and_then(|s| s.sender).and_then(|s| s.previous_webhook_url).as_deref(), Some(PREVIOUS));
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));

    channels(&f).delete("ch", &DeleteParams::default()).await.expect("delete");
    common::within(common::TIMEOUT, async {
        while channels(&f).get_opt("ch").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS), "Delete restores the previous webhook");

    // Orphan: Twilio untouched, binding released (a second channel can take the number).
    s["deletionPolicy"] = json!("Orphan");
    create_channel(&f.env, "orphan", s.clone()).await;
    wait_condition(&f.env, "orphan", "Ready", "True", None).await;
    let writes = f.sim.requests().iter().filter(|r| r.is_write()).count();
    channels(&f).delete("orphan", &DeleteParams::default()).await.expect("delete");
    create_channel(&f.env, "next", spec(&f)).await;
    wait_condition(&f.env, "next", "NumberBound", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER), "Orphan leaves Twilio untouched");
    assert!(f.sim.requests().iter().filter(|r| r.is_write()).count() >= writes);
    assert_conforming(&f.sim);
}

async fn wait_gone(f: &Fixture, name: &str) {
    common::within(common::TIMEOUT, async {
        while channels(f).get_opt(name).await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn kubectl_delete_of_a_directory_still_restores_the_webhook() {
    let f = fixture("life-delete-dir", PREVIOUS).await;
    let second = random_number();
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {}\n  friendly_name: prod\n  auth_token: {TOKEN}\n{}    webhook: {{callback_url: \"{PREVIOUS}\", callback_method: POST}}\n  - sender_id: whatsapp:{second}\n",
            f.account,
            sender_seed(&f.number, "ONLINE")
        ))
        .expect("seed");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    // The Secret and two channels sharing it, applied and deleted together.
    let dir = std::env::temp_dir().join(format!("wao-{}", f.env.ns));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{authToken: {TOKEN}}}\n---\n\
         apiVersion: whatsapp-operator.io/v1alpha1\nkind: WhatsAppChannel\nmetadata: {{name: ch}}\nspec:\n  phoneNumber: \"{}\"\n  instance: crm-prod\n  bindingPolicy: Takeover\n  takeover: {{from: \"{PREVIOUS}\"}}\n  twilio: {{accountSid: {}, credentialsSecretRef: {{name: creds}}}}\n  webhook: {{url: \"{RECEIVER}\"}}\n  queue: sales\n",
        f.number, f.account
    );
    std::fs::write(dir.join("channel.yaml"), manifest).expect("write manifest");
    let manifest2 = format!(
        "apiVersion: whatsapp-operator.io/v1alpha1\nkind: WhatsAppChannel\nmetadata: {{name: ch2}}\nspec:\n  phoneNumber: \"{second}\"\n  instance: crm-prod\n  twilio: {{accountSid: {}, credentialsSecretRef: {{name: creds}}}}\n  webhook: {{url: \"{RECEIVER}\"}}\n  queue: sales\n",
        f.account
    );
    std::fs::write(dir.join("channel2.yaml"), manifest2).expect("write manifest");
    let dir_arg = dir.to_string_lossy().to_string();
    let out = common::kubectl_run(&["apply", "-n", &f.env.ns, "-f", &dir_arg]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    wait_condition(&f.env, "ch2", "Ready", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));

    let out = common::kubectl_run(&["delete", "-n", &f.env.ns, "-f", &dir_arg, "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "kubectl delete -f dir/: {}", String::from_utf8_lossy(&out.stderr));
    wait_gone(&f, "ch").await;
    wait_gone(&f, "ch2").await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS), "the webhook was restored with the Secret's credentials");
    let second_hook = f
        .sim
        .state()
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{second}"))
        .and_then(|s| s.webhook.callback_url.clone());
    assert!(second_hook.unwrap_or_default().is_empty(), "the second number had no receiver before: cleared");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    common::within(common::TIMEOUT, async {
        while secrets.get_opt("creds").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_deletion_without_credentials_says_why_and_finishes_with_the_skip_annotation() {
    let f = fixture("life-delete-nocreds", PREVIOUS).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    create_channel(&f.env, "ch", s).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;

    // The Secret vanishes for good (its protection removed by hand, as if by another tool).
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    let secret = secrets.get("twilio").await.expect("secret");
    assert!(
        secret.finalizers().iter().any(|x| x == "whatsapp-operator.io/credentials-in-use"),
        "the Secret is protected while in use"
    );
    secrets
        .patch("twilio", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .expect("remove finalizer");
    secrets.delete("twilio", &DeleteParams::default()).await.expect("delete secret");
    channels(&f).delete("ch", &DeleteParams::default()).await.expect("delete channel");

    let ch = wait_condition(&f.env, "ch", "Ready", "False", Some("CleanupBlocked")).await;
    assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(Phase::Deleting));
    assert!(condition(&ch, "Ready").message.contains("skip-cleanup"));
    let (type_, _, note) = wait_event(&f.env, "ch", "CleanupBlocked").await;
    assert_eq!(type_, "Warning");
    assert!(note.contains("whatsapp-operator.io/skip-cleanup"), "{note}");
    assert!(channels(&f).get_opt("ch").await.expect("get").is_some(), "deletion waits instead of silently skipping");

    channels(&f)
        .patch(
            "ch",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"whatsapp-operator.io/skip-cleanup": "true"}}})),
        )
        .await
        .expect("annotate");
    wait_gone(&f, "ch").await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER), "skip-cleanup leaves Twilio untouched");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn moving_to_another_number_releases_and_restores_the_old_one() {
    let f = fixture("life-move", PREVIOUS).await;
    let new_number = random_number();
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{}\n    webhook: {{callback_url: \"{PREVIOUS}\", callback_method: POST}}\n  - sender_id: whatsapp:{new_number}\n",
            f.account, f.number
        ))
        .expect("seed");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["bindingPolicy"] = json!("Takeover");
    s["takeover"] = json!({"from": PREVIOUS});
    create_channel(&f.env, "ch", s).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));
    // A second channel waits for the old number.
    let mut waiting = spec(&f);
    waiting["webhook"]["url"] = json!("https://next.example.com/hook");
    create_channel(&f.env, "next", waiting).await;
    wait_condition(&f.env, "next", "NumberBound", "False", Some("NumberInUse")).await;

    patch_spec(&f, "ch", json!({"phoneNumber": new_number})).await;
    let ch = wait_condition(&f.env, "ch", "Ready", "True", None).await;
    let sender = ch.status.and_then(|s| s.sender).expect("sender");
    assert_eq!(sender.phone_number, new_number);
    let bindings: Api<whatsapp_operator::api::WhatsAppNumberBinding> = Api::all(f.env.client.clone());
    let new_binding =
        bindings.get(&format!("whatsapp-{}", new_number.trim_start_matches('+'))).await.expect("new number bound");
    assert_eq!(new_binding.spec.channel_ref.name, "ch");
    // The old number gets its previous webhook back and its binding passes to the waiting
    // channel, which (Exclusive) finds that foreign receiver and reports BoundElsewhere.
    let next = wait_condition(&f.env, "next", "NumberBound", "False", Some("BoundElsewhere")).await;
    assert!(condition(&next, "NumberBound").message.contains(PREVIOUS));
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS), "the old number's previous webhook is back");
    let old_binding = bindings.get(&format!("whatsapp-{}", f.number.trim_start_matches('+'))).await.expect("binding");
    assert_eq!(old_binding.spec.channel_ref.name, "next", "the old number's binding moved to the waiting channel");
}

async fn binding_versions(
    bindings: &Api<whatsapp_operator::api::WhatsAppNumberBinding>,
    names: &[String],
) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for name in names {
        out.push(bindings.get(name).await.expect("binding").resource_version());
    }
    out
}
