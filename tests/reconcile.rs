//! Reconcile against the real API server and the strict Twilio simulator: verify credentials,
//! find the number, wire the webhook, confirm once, report Connected, Active and Ready.

mod common;

use common::operator::*;
use serde_json::json;

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const TOKEN: &str = FIXTURE_TOKEN;

/// A namespace, a simulator seeded with one account, its credentials Secret `twilio`.
async fn fixture(prefix: &str, seed_extra: impl FnOnce(&str, &str) -> String) -> Fixture {
    Fixture::new(prefix, seed_extra).await
}

fn spec(f: &Fixture) -> serde_json::Value {
    json!({
        "phoneNumber": f.number,
        "instance": "crm-prod",
        "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
        "language": "en",
    })
}

#[tokio::test]
async fn a_business_sender_is_connected_confirmed_once_and_ready() {
    let f = fixture("rec-sender", |_, n| sender_seed(n, "ONLINE")).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["confirmationPhoneNumber"] = json!("+14155550123");
    create_channel(&f.env, "sales", s).await;

    let ch = wait_condition(&f.env, "sales", "Ready", "True", Some("ChannelReady")).await;
    for (t, reason) in [
        ("CredentialsValid", "Verified"),
        ("NumberVerified", "Verified"),
        ("NumberBound", "Bound"),
        ("WebhookConfigured", "Configured"),
        ("Connected", "ChannelConnected"),
        ("Active", "Activated"),
    ] {
        let c = condition(&ch, t);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", reason), "{t}: {c:?}");
    }
    let st = ch.status.clone().expect("status");
    assert_eq!(st.phase, Some(whatsapp_operator::api::Phase::Ready));
    assert_eq!(st.queue.as_deref(), Some("sales"));
    assert_eq!(st.language.as_deref(), Some("en"));
    assert_eq!(st.account.as_ref().map(|a| a.sid.as_str()), Some(f.account.as_str()));
    let sender = st.sender.expect("sender status");
    assert_eq!(sender.kind, whatsapp_operator::api::SenderKind::WhatsAppSender);
    let at_twilio = sender.webhook_url.clone().unwrap_or_default();
    assert_eq!(common::unmarked(&at_twilio), RECEIVER);
    // The ownership marker names this cluster (the kube-system namespace's UID), the channel and
    // its instance; status.ownership says the same and starts the history.
    let cluster = whatsapp_operator::controller::read_cluster_id(&f.env.client).await.expect("kube-system uid");
    let owner = format!("{cluster}/{}/sales/crm-prod", f.env.ns);
    assert_eq!(common::marker(&at_twilio).as_deref(), Some(owner.as_str()), "{at_twilio}");
    let ownership = st.ownership.clone().expect("status.ownership");
    assert_eq!(ownership.owner.as_deref(), Some(owner.as_str()));
    assert_eq!(ownership.history.len(), 1);
    assert_eq!(ownership.history[0].channel, format!("{}/sales", f.env.ns));
    assert!(st.last_verified_time.is_some());

    // Twilio side: one account fetch, one webhook write with the receiver, one message.
    let ch = wait_condition(&f.env, "sales", "ConfirmationSent", "True", Some("MessageSent")).await;
    let reqs = f.sim.requests();
    let writes: Vec<_> = reqs.iter().filter(|r| r.is_write()).collect();
    let webhook_writes: Vec<_> = writes.iter().filter(|r| r.path.starts_with("/v2/Channels/Senders/XE")).collect();
    assert_eq!(webhook_writes.len(), 1, "one sender update: {writes:#?}");
    let written =
        webhook_writes[0].json.as_ref().and_then(|j| j["webhook"]["callback_url"].as_str()).unwrap_or_default();
    assert_eq!(common::unmarked(written), RECEIVER);
    assert_eq!(common::marker(written).as_deref(), Some(owner.as_str()));
    let messages: Vec<_> = writes.iter().filter(|r| r.path.ends_with("/Messages.json")).collect();
    assert_eq!(messages.len(), 1, "exactly one confirmation message");
    assert_eq!(messages[0].form_value("To"), Some("whatsapp:+14155550123"));
    assert_eq!(messages[0].form_value("From"), Some(format!("whatsapp:{}", f.number).as_str()));
    assert_eq!(writes.len(), 2, "no other Twilio writes: {writes:#?}");
    assert_eq!(reqs.iter().filter(|r| r.path.ends_with(&format!("/Accounts/{}.json", f.account))).count(), 1);
    let conf = ch.status.and_then(|s| s.confirmation).expect("confirmation status");
    assert!(conf.message_sid.as_deref().is_some_and(|s| s.starts_with("SM")));
    assert!(conf.sent_time.is_some());

    // Events on transitions.
    for reason in ["Configured", "MessageSent", "ChannelReady"] {
        let (type_, _, note) = wait_event(&f.env, "sales", reason).await;
        assert_eq!(type_, "Normal", "{reason}: {note}");
    }

    // kubectl wait works on the Ready condition.
    let out =
        common::kubectl_run(&["wait", "--for=condition=Ready", "wac/sales", "-n", &f.env.ns, "--timeout=30s"]).await;
    assert!(out.status.success(), "kubectl wait: {}", String::from_utf8_lossy(&out.stderr));
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn an_incoming_number_gets_its_sms_url_and_an_in_sync_one_is_not_written() {
    let f = fixture("rec-pn", |_, n| {
        let other = random_number();
        format!(
            "  incoming_phone_numbers:\n  - phone_number: \"{n}\"\n  - phone_number: \"{other}\"\n    sms_url: {RECEIVER}\n    sms_method: POST\n"
        )
    })
    .await;
    let in_sync = f.sim.state();
    let other = in_sync
        .accounts
        .iter()
        .flat_map(|a| a.incoming_phone_numbers.iter())
        .find(|n| n.phone_number != f.number)
        .map(|n| n.phone_number.clone())
        .expect("second number");
    // In sync: the receiver with the ownership marker of the channel "synced" of this cluster.
    let cluster = whatsapp_operator::controller::read_cluster_id(&f.env.client).await.expect("kube-system uid");
    let owner = whatsapp_operator::controller::owner::Owner {
        cluster,
        namespace: f.env.ns.clone(),
        name: "synced".into(),
        instance: "crm-prod".into(),
    };
    let marked = whatsapp_operator::controller::owner::mark(RECEIVER, &owner);
    let patch = serde_json::from_value(json!({"sms_url": marked})).expect("number patch");
    f.sim.update_number(&f.account, &other, &patch).expect("mark the in-sync number");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["webhook"]["method"] = json!("GET");
    create_channel(&f.env, "pn", s).await;
    let mut s2 = spec(&f);
    s2["phoneNumber"] = json!(other);
    create_channel(&f.env, "synced", s2).await;

    let ch = wait_condition(&f.env, "pn", "Ready", "True", None).await;
    let sender = ch.status.and_then(|s| s.sender).expect("sender");
    assert_eq!(sender.kind, whatsapp_operator::api::SenderKind::IncomingPhoneNumber);
    assert_eq!(sender.webhook_method.as_deref(), Some("GET"));
    wait_condition(&f.env, "synced", "Ready", "True", None).await;

    let writes: Vec<_> = f.sim.requests().into_iter().filter(|r| r.is_write()).collect();
    assert_eq!(writes.len(), 1, "only the unconfigured number is written: {writes:#?}");
    let written = writes[0].form_value("SmsUrl").unwrap_or_default();
    assert_eq!(common::unmarked(written), RECEIVER);
    assert!(common::marker(written).is_some_and(|m| m.ends_with(&format!("/{}/pn/crm-prod", f.env.ns))), "{written}");
    assert_eq!(writes[0].form_value("SmsMethod"), Some("GET"));
    assert!(writes[0].path.contains("/IncomingPhoneNumbers/PN"));
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_missing_secret_or_key_is_reported_and_fixed_by_a_secret_watch() {
    let f = fixture("rec-secret", |_, n| sender_seed(n, "ONLINE")).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["twilio"]["credentialsSecretRef"]["name"] = json!("later");
    create_channel(&f.env, "later", s).await;
    let ch = wait_condition(&f.env, "later", "CredentialsValid", "False", Some("SecretNotFound")).await;
    assert!(condition(&ch, "CredentialsValid").message.contains("later"));
    assert_eq!(condition(&ch, "Ready").status, "False");
    wait_event(&f.env, "later", "SecretNotFound").await;

    create_secret(&f.env, "later", &[("token", "wrong key name")]).await;
    wait_condition(&f.env, "later", "CredentialsValid", "False", Some("SecretKeyMissing")).await;
    assert!(f.sim.requests().is_empty(), "no Twilio call without credentials");

    update_secret(&f.env, "later", &[("authToken", TOKEN)]).await;
    wait_condition(&f.env, "later", "Ready", "True", None).await;
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn invalid_credentials_wait_for_a_secret_change_without_a_retry_storm() {
    let f = fixture("rec-badtoken", |_, n| sender_seed(n, "ONLINE")).await;
    create_secret(&f.env, "wrong", &[("authToken", "not-the-token")]).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["twilio"]["credentialsSecretRef"]["name"] = json!("wrong");
    create_channel(&f.env, "bad", s).await;
    let ch = wait_condition(&f.env, "bad", "CredentialsValid", "False", Some("InvalidCredentials")).await;
    let msg = &condition(&ch, "CredentialsValid").message;
    assert!(!msg.contains("not-the-token"), "no secret in status: {msg}");
    assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Failed));

    // Another channel reconciles to Ready meanwhile; the bad one made exactly one call.
    let mut good = spec(&f);
    good["phoneNumber"] = json!(random_number());
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  incoming_phone_numbers:\n  - phone_number: \"{}\"\n{}",
            f.account,
            good["phoneNumber"].as_str().unwrap_or_default(),
            sender_seed(&f.number, "ONLINE")
        ))
        .expect("reseed");
    create_channel(&f.env, "good", good).await;
    wait_condition(&f.env, "good", "Ready", "True", None).await;
    let unauthorized = f.sim.requests().iter().filter(|r| r.status == Some(401)).count();
    assert_eq!(unauthorized, 1, "one refused verification, no retry storm");

    update_secret(&f.env, "wrong", &[("authToken", TOKEN)]).await;
    wait_condition(&f.env, "bad", "Ready", "True", None).await;
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn suspended_and_closed_accounts_have_reasons_of_their_own() {
    let f = fixture("rec-suspended", |_, n| sender_seed(n, "ONLINE")).await;
    let closed = random_account_sid();
    f.sim
        .seed_yaml(&format!(
            "accounts:\n- sid: {closed}\n  friendly_name: old\n  auth_token: {TOKEN}\n  status: closed\n"
        ))
        .expect("seed closed");
    f.sim
        .update_account(&f.account, &serde_json::from_value(json!({"status": "suspended"})).expect("patch"))
        .expect("suspend");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "suspended", spec(&f)).await;
    let mut s = spec(&f);
    s["twilio"]["accountSid"] = json!(closed);
    s["phoneNumber"] = json!(random_number());
    create_channel(&f.env, "closed", s).await;
    let ch = wait_condition(&f.env, "suspended", "CredentialsValid", "False", Some("AccountSuspended")).await;
    assert_eq!(ch.status.and_then(|s| s.account).and_then(|a| a.status).as_deref(), Some("suspended"));
    wait_condition(&f.env, "closed", "CredentialsValid", "False", Some("AccountClosed")).await;
    assert!(f.sim.requests().iter().all(|r| !r.is_write()), "no writes on a blocked account");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn one_verification_per_account_is_shared_by_its_channels() {
    let numbers: Vec<String> = (0..4).map(|_| random_number()).collect();
    let seed: String = numbers.iter().map(|n| format!("  - phone_number: \"{n}\"\n")).collect();
    let f = fixture("rec-shared", move |_, _| format!("  incoming_phone_numbers:\n{seed}")).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    for (i, n) in numbers.iter().enumerate() {
        let mut s = spec(&f);
        s["phoneNumber"] = json!(n);
        create_channel(&f.env, &format!("ch{i}"), s).await;
    }
    for i in 0..numbers.len() {
        wait_condition(&f.env, &format!("ch{i}"), "Ready", "True", None).await;
    }
    let fetches =
        f.sim.requests().iter().filter(|r| r.path == format!("/2010-04-01/Accounts/{}.json", f.account)).count();
    assert_eq!(fetches, 1, "one FetchAccount for four channels of one account");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn an_unknown_number_and_a_sender_not_online_are_reported() {
    let pending = random_number();
    let p = pending.clone();
    let f = fixture("rec-notfound", move |_, _| sender_seed(&p, "PENDING_VERIFICATION")).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "unknown", spec(&f)).await;
    let mut s = spec(&f);
    s["phoneNumber"] = json!(pending);
    create_channel(&f.env, "pending", s).await;
    let ch = wait_condition(&f.env, "unknown", "NumberVerified", "False", Some("NumberNotFound")).await;
    assert_eq!(ch.status.and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Failed));
    let ch = wait_condition(&f.env, "pending", "NumberVerified", "False", Some("SenderNotReady")).await;
    assert!(condition(&ch, "NumberVerified").message.contains("PENDING_VERIFICATION"));
    assert_eq!(ch.status.and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Waiting));
    assert!(f.sim.requests().iter().all(|r| !r.is_write()), "no writes");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_sandbox_channel_needs_a_console_step_and_a_joined_recipient() {
    let f = fixture("rec-sandbox", |_, _| {
        "  sandbox:\n    join_code: happy-tiger\n    participants: [\"+14155550123\"]\n".to_owned()
    })
    .await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let sandbox = |confirm: &str| {
        json!({
            "mode": "Sandbox",
            "phoneNumber": "+14155238886",
            "instance": "crm-test",
            "confirmationPhoneNumber": confirm,
            "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "test",
        })
    };
    create_channel(&f.env, "joined", sandbox("+14155550123")).await;
    let ch = wait_condition(&f.env, "joined", "Ready", "True", None).await;
    let hook = condition(&ch, "WebhookConfigured");
    assert_eq!((hook.status.as_str(), hook.reason.as_str()), ("Unknown", "ManualStepRequired"));
    assert!(hook.message.contains("Sandbox settings") && hook.message.contains(RECEIVER), "{}", hook.message);
    wait_condition(&f.env, "joined", "ConfirmationSent", "True", None).await;
    let sent: Vec<_> =
        f.sim.requests().into_iter().filter(|r| r.path.ends_with("/Messages.json") && r.is_write()).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].form_value("From"), Some("whatsapp:+14155238886"));
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_sandbox_recipient_who_has_not_joined_gets_a_condition_not_a_loop() {
    let f = fixture("rec-sandbox-nj", |_, _| "  sandbox:\n    join_code: happy-tiger\n".to_owned()).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(
        &f.env,
        "stranger",
        json!({
            "mode": "Sandbox",
            "phoneNumber": "+14155238886",
            "instance": "crm-test",
            "confirmationPhoneNumber": "+14155550999",
            "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "test",
        }),
    )
    .await;
    let ch = wait_condition(&f.env, "stranger", "ConfirmationSent", "False", Some("RecipientNotInSandbox")).await;
    assert!(condition(&ch, "ConfirmationSent").message.contains("join"));
    assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Waiting));
    let sends = f.sim.requests().iter().filter(|r| r.path.ends_with("/Messages.json") && r.is_write()).count();
    assert_eq!(sends, 1, "one attempt, no loop");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn deactivating_keeps_the_wiring_and_reports_inactive() {
    let f = fixture("rec-active", |_, n| sender_seed(n, "ONLINE")).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let mut s = spec(&f);
    s["active"] = json!(false);
    create_channel(&f.env, "off", s).await;
    let ch = wait_condition(&f.env, "off", "Active", "False", Some("Deactivated")).await;
    assert_eq!(condition(&ch, "Ready").status, "True");
    let st = ch.status.expect("status");
    assert_eq!(st.phase, Some(whatsapp_operator::api::Phase::Inactive));
    assert_eq!(st.queue, None);
    assert_eq!(condition(&get_channel(&f.env, "off").await, "Connected").status, "True");
}

#[tokio::test]
async fn the_identity_server_is_checked_with_client_credentials_once_per_client() {
    let (rejected_number, shared_number) = (random_number(), random_number());
    let (r, sh) = (rejected_number.clone(), shared_number.clone());
    let f = fixture("rec-identity", move |_, n| {
        format!(
            "{}  incoming_phone_numbers:\n  - phone_number: \"{r}\"\n  - phone_number: \"{sh}\"\n",
            sender_seed(n, "ONLINE")
        )
    })
    .await;
    f.sim
        .seed_yaml("identity_clients:\n- client_id: crm-prod\n  client_secret: s3cret-identity\n")
        .expect("seed identity");
    create_secret(&f.env, "identity", &[("clientSecret", "s3cret-identity")]).await;
    create_secret(&f.env, "identity-wrong", &[("clientSecret", "nope")]).await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    let with_identity = |number: &str, secret: &str| {
        let mut s = spec(&f);
        s["phoneNumber"] = json!(number);
        s["identityServer"] =
            json!({"url": f.sim.base_url(), "clientId": "crm-prod", "clientSecretRef": {"name": secret}});
        s
    };
    create_channel(&f.env, "ok", with_identity(&f.number, "identity")).await;
    create_channel(&f.env, "shared", with_identity(&shared_number, "identity")).await;
    create_channel(&f.env, "rejected", with_identity(&rejected_number, "identity-wrong")).await;
    for name in ["ok", "shared"] {
        wait_condition(&f.env, name, "IdentityVerified", "True", None).await;
        wait_condition(&f.env, name, "Ready", "True", None).await;
    }
    let ch = wait_condition(&f.env, "rejected", "IdentityVerified", "False", Some("IdentityRejected")).await;
    assert_eq!(condition(&ch, "Ready").status, "False");
    assert!(!condition(&ch, "IdentityVerified").message.contains("nope"));
    let token_requests: Vec<_> = f.sim.requests().into_iter().filter(|r| r.path == "/connect/token").collect();
    assert_eq!(token_requests.len(), 2, "one check per client and secret, shared by the channels using them");
    assert!(token_requests.iter().all(|r| r.form_value("grant_type") == Some("client_credentials")));
}
