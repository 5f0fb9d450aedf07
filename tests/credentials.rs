//! Credential realism against a real API server and the strict simulator: a Standard API key
//! (which may not read the Account resource) verified with a call it may make, once per account;
//! an Auth Token rotation (a secondary token, its promotion, the old primary refused) with the
//! credential in use reported as a fingerprint and the fallback shared per account; and a Trial
//! account whose confirmation recipient is not a verified caller ID (21608), reported without a
//! retry loop.

mod common;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use twilio_sim::RequestRecord;
use whatsapp_operator::api::{CredentialSource, CredentialsStatus, Phase, WhatsAppChannel};

use common::operator::*;

const RECEIVER: &str = "https://crm-creds.example.com/hook";
const KEY_SID: &str = "SK5eed5eed5eed5eed5eed5eed5eed0001";
const KEY_SECRET: &str = "standard-key-secret-0123456789ab";

fn spec(account: &str, number: &str) -> serde_json::Value {
    channel_spec(account, number, RECEIVER)
}

/// What the operator should show of `secret`: `sha256:` and 12 hex digits of its SHA-256.
fn shown(secret: &str) -> String {
    let hex: String = Sha256::digest(secret.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn credentials(ch: &WhatsAppChannel) -> Option<CredentialsStatus> {
    ch.status.as_ref().and_then(|s| s.credentials.clone())
}

fn fetch_account(account: &str) -> impl Fn(&&RequestRecord) -> bool + '_ {
    move |r| r.is("GET", &format!("/2010-04-01/Accounts/{account}.json"))
}

async fn ready(env: &common::TestEnv, name: &str) -> WhatsAppChannel {
    wait_for(env, name, "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await
}

/// Promotes the account's secondary Auth Token at the simulator (the primary is refused from now).
async fn promote_secondary(f: &Fixture) {
    let promoted = reqwest::Client::new()
        .post(format!("{}/v1/AuthTokens/Promote", f.sim.base_url()))
        .basic_auth(&f.account, Some(FIXTURE_TOKEN))
        .send()
        .await
        .expect("promote");
    assert_eq!(promoted.status(), 200);
}

/// Creates a secondary Auth Token for the fixture's account at the simulator and puts it into
/// the Secret `twilio` next to the primary; returns it.
async fn create_secondary(f: &Fixture) -> String {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/AuthTokens/Secondary", f.sim.base_url()))
        .basic_auth(&f.account, Some(FIXTURE_TOKEN))
        .send()
        .await
        .expect("create the secondary token")
        .json()
        .await
        .expect("JSON");
    let secondary = created["secondary_auth_token"].as_str().expect("secondary token").to_owned();
    update_secret(&f.env, "twilio", &[("authToken", FIXTURE_TOKEN), ("authTokenSecondary", &secondary)]).await;
    secondary
}

async fn verify_now(env: &common::TestEnv, name: &str, value: &str) -> WhatsAppChannel {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"metadata": {"annotations": {"whatsapp-operator.io/verify-now": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
    let value = value.to_owned();
    wait_for(env, name, "verify-now answered", move |ch| {
        ch.status.as_ref().and_then(|s| s.verify_now.as_deref()) == Some(value.as_str())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_api_key_is_verified_without_the_account_resource_once_per_account() {
    let numbers: Vec<String> = (0..3).map(|_| random_number()).collect();
    let seed = {
        let numbers = numbers.clone();
        move |_: &str, _: &str| {
            let mut yaml = format!(
                "  keys:\n  - sid: {KEY_SID}\n    friendly_name: operator\n    secret: {KEY_SECRET}\n    kind: standard\n  whatsapp_senders:\n"
            );
            for n in &numbers {
                yaml.push_str(&format!("  - sender_id: whatsapp:{n}\n    status: ONLINE\n"));
            }
            yaml
        }
    };
    let f = Fixture::new("apikey", seed).await;
    let (env, sim) = (&f.env, &f.sim);
    update_secret(env, "twilio", &[("apiKeySid", KEY_SID), ("apiKeySecret", KEY_SECRET)]).await;
    let _op = start_operator(&env.client, config(env, sim));
    for (i, n) in numbers.iter().enumerate() {
        create_channel(env, &format!("ch{i}"), spec(&f.account, n)).await;
    }
    for i in 0..numbers.len() {
        let ch = ready(env, &format!("ch{i}")).await;
        let used = credentials(&ch).expect("status.credentials");
        assert_eq!(used, CredentialsStatus { source: CredentialSource::ApiKey, fingerprint: shown(KEY_SECRET) });
        let account = ch.status.as_ref().and_then(|s| s.account.clone()).expect("status.account");
        assert_eq!((account.sid.as_str(), account.type_), (f.account.as_str(), None), "a key cannot read the type");
    }
    let reqs = sim.requests();
    assert_eq!(reqs.iter().filter(fetch_account(&f.account)).count(), 0, "no Account fetch with a Standard key");
    let refused: Vec<_> = reqs.iter().filter(|r| matches!(r.status, Some(401 | 403))).map(|r| &r.path).collect();
    assert!(refused.is_empty(), "nothing was refused: {refused:?}");
    let numbers_path = format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", f.account);
    let probes = reqs.iter().filter(|r| r.is("GET", &numbers_path) && r.query.as_deref() == Some("PageSize=1")).count();
    assert_eq!(probes, 1, "one verification call for the account's three channels");
    assert!(reqs.iter().all(|r| r.principal.as_deref() == Some(KEY_SID)), "every call used the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_token_rotation_falls_back_to_the_secondary_token_once_and_reports_it() {
    let numbers = [random_number(), random_number()];
    let seed = {
        let numbers = numbers.clone();
        move |_: &str, _: &str| {
            format!(
                "  whatsapp_senders:\n  - sender_id: whatsapp:{}\n    status: ONLINE\n  - sender_id: whatsapp:{}\n    status: ONLINE\n",
                numbers[0], numbers[1]
            )
        }
    };
    let f = Fixture::new("rotation", seed).await;
    let (env, sim) = (&f.env, &f.sim);
    let _op = start_operator(&env.client, config(env, sim));
    create_channel(env, "first", spec(&f.account, &numbers[0])).await;
    let ch = ready(env, "first").await;
    let primary = CredentialsStatus { source: CredentialSource::Primary, fingerprint: shown(FIXTURE_TOKEN) };
    assert_eq!(credentials(&ch), Some(primary.clone()));

    // The rotation starts at Twilio: a secondary token, which goes into the Secret next to the
    // primary. Twilio still accepts the primary: it stays in use.
    let secondary = create_secondary(&f).await;
    let ch = verify_now(env, "first", "1").await;
    assert!(has(&ch, "Ready", "True", "ChannelReady"));
    assert_eq!(credentials(&ch), Some(primary.clone()), "the primary still verifies");

    // The secondary is promoted: the old primary fails. One verification tries the primary,
    // then the secondary, and the channel stays Ready on it.
    promote_secondary(&f).await;
    sim.clear_requests();
    let ch = verify_now(env, "first", "2").await;
    let fallback = CredentialsStatus { source: CredentialSource::Secondary, fingerprint: shown(&secondary) };
    assert_eq!(credentials(&ch), Some(fallback.clone()));
    assert!(has(&ch, "Ready", "True", "ChannelReady"), "{:#?}", ch.status);
    assert!(!fallback.fingerprint.contains(&secondary) && !secondary.contains(&fallback.fingerprint[7..]));
    let message = &condition(&ch, "CredentialsValid").message;
    assert!(message.contains("authTokenSecondary") && !message.contains(&secondary), "{message}");
    let (kind, _, note) = wait_event(env, "first", "CredentialsChanged").await;
    assert_eq!(kind, "Normal");
    assert!(note.contains(&fallback.fingerprint) && note.contains(&primary.fingerprint), "{note}");
    assert!(!note.contains(&secondary) && !note.contains(FIXTURE_TOKEN), "{note}");

    // Another channel of the account with the same Secret: the shared verification, no call.
    create_channel(env, "second", spec(&f.account, &numbers[1])).await;
    let second = ready(env, "second").await;
    assert_eq!(credentials(&second), Some(fallback.clone()));
    let reqs = sim.requests();
    let verifications: Vec<Option<u16>> = reqs.iter().filter(fetch_account(&f.account)).map(|r| r.status).collect();
    assert_eq!(verifications, [Some(401), Some(200)], "one refused primary, one secondary, for both channels");

    // The rotation ends: the promoted token becomes authToken. Source primary, same fingerprint.
    update_secret(env, "twilio", &[("authToken", &secondary)]).await;
    let done = wait_for(env, "first", "the primary in use again", |ch| {
        credentials(ch).is_some_and(|c| c.source == CredentialSource::Primary)
    })
    .await;
    assert_eq!(credentials(&done).map(|c| c.fingerprint), Some(fallback.fingerprint.clone()));
    assert!(has(&done, "Ready", "True", "ChannelReady"));
    // Events are published after the status write: wait for the second one.
    let changes = common::within(common::TIMEOUT, async {
        loop {
            let notes: Vec<String> = events_for(env, "first")
                .await
                .into_iter()
                .filter(|e| e.1 == "CredentialsChanged")
                .map(|e| e.2)
                .collect();
            if notes.len() >= 2 {
                return notes;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(changes.len(), 2, "primary → secondary, secondary → primary: {changes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_account_reports_an_unverified_recipient_without_retrying() {
    const VERIFIED: &str = "+14155550199";
    const UNVERIFIED: &str = "+14155550123";
    let f = Fixture::new("trial", |_, n| {
        format!("  type: Trial\n  outgoing_caller_ids: [\"{VERIFIED}\"]\n{}", sender_seed(n, "ONLINE"))
    })
    .await;
    let (env, sim) = (&f.env, &f.sim);
    let _op = start_operator(&env.client, config(env, sim));
    let mut s = spec(&f.account, &f.number);
    s["confirmationPhoneNumber"] = json!(UNVERIFIED);
    create_channel(env, "trial", s).await;
    let ch = wait_condition(env, "trial", "ConfirmationSent", "False", Some("TrialRecipientUnverified")).await;
    let message = &condition(&ch, "ConfirmationSent").message;
    assert!(message.contains(UNVERIFIED) && message.contains("21608"), "{message}");
    let credentials_valid = condition(&ch, "CredentialsValid");
    assert!(credentials_valid.message.contains("Trial account"), "{}", credentials_valid.message);
    let status = ch.status.clone().expect("status");
    assert_eq!(status.account.and_then(|a| a.type_).as_deref(), Some("Trial"));
    assert_eq!(status.confirmation.and_then(|c| c.error_code), Some(21608));
    let ch =
        wait_for(env, "trial", "phase Failed", |ch| ch.status.as_ref().and_then(|s| s.phase) == Some(Phase::Failed))
            .await;
    assert!(has(&ch, "Ready", "False", "TrialRecipientUnverified"), "{:#?}", ch.status);

    // A full verification later: reported again from the status, not sent again.
    verify_now(env, "trial", "1").await;
    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", f.account);
    let sends = sim.requests().iter().filter(|r| r.is("POST", &messages)).count();
    assert_eq!(sends, 1, "one refused send, no retry loop");
    let ch = get_channel(env, "trial").await;
    assert!(has(&ch, "ConfirmationSent", "False", "TrialRecipientUnverified"));

    // A verified caller ID is messaged.
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"spec": {"confirmationPhoneNumber": VERIFIED}});
    api.patch("trial", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    wait_condition(env, "trial", "ConfirmationSent", "True", Some("MessageSent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_promoted_between_verifications_is_followed_at_the_next_refused_call() {
    let f = Fixture::new("promoted", |_, n| sender_seed(n, "ONLINE")).await;
    let (env, sim) = (&f.env, &f.sim);
    create_secondary(&f).await;
    let _op = start_operator(&env.client, config(env, sim));
    create_channel(env, "ch", spec(&f.account, &f.number)).await;
    let ch = ready(env, "ch").await;
    assert_eq!(credentials(&ch).map(|c| c.source), Some(CredentialSource::Primary));

    // Promoted within the verify interval: the deletion's first Twilio read is refused with the
    // old primary; the shared verification is redone once, the secondary verifies, and the
    // cleanup goes on with it.
    promote_secondary(&f).await;
    sim.clear_requests();
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    api.delete("ch", &Default::default()).await.expect("delete");
    common::within(common::TIMEOUT, async {
        while api.get_opt("ch").await.expect("get").is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let reqs = sim.requests();
    let verifications: Vec<Option<u16>> = reqs.iter().filter(fetch_account(&f.account)).map(|r| r.status).collect();
    assert_eq!(verifications, [Some(401), Some(200)], "the primary refused once, the secondary verified");
    let writes: Vec<(&str, &str, Option<u16>)> =
        reqs.iter().filter(|r| r.is_write()).map(|r| (r.method.as_str(), r.path.as_str(), r.status)).collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].1.starts_with("/v2/Channels/Senders/XE") && writes[0].2 == Some(202), "restored: {writes:?}");
    let refused = reqs.iter().filter(|r| r.status == Some(401)).count();
    assert_eq!(refused, 2, "the deletion's refused read and the refused verification of the primary only");
}
