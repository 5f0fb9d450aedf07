//! Inbound WhatsApp messages delivered as Twilio would (`SimHandle::inject_inbound`,
//! `POST /_sim/accounts/{key}/inbound/{number}`): the routed URL, Twilio's form fields, a valid
//! `X-Twilio-Signature`, the fallback URL, and one Monitor alert per failed request with its
//! error code, listed and fetched through `/v1/Alerts` in strict mode.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use twilio_sim::receiver::Receiver;
use twilio_sim::webhook::{InboundMessage, WebhookSettings};
use twilio_sim::{SimConfig, SimHandle, Simulator};

const ACCOUNT: &str = PROD;
const TOKEN: &str = PROD_TOKEN;

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Fixture {
    sim: Sim,
    receiver: Receiver,
}

async fn fixture() -> Fixture {
    let receiver =
        Receiver::with_tokens(HashMap::from([(ACCOUNT.to_string(), TOKEN.to_string())])).await.expect("receiver");
    let r = receiver.base_url();
    let dead = format!("http://127.0.0.1:{}/hook", closed_port());
    let seed = format!(
        r#"
accounts:
- sid: {ACCOUNT}
  friendly_name: inbound
  auth_token: {TOKEN}
  incoming_phone_numbers:
  - {{phone_number: "+15550000001", sms_url: "{r}/ok?tenant=a#wao-owner=c/ns/ch/i"}}
  - {{phone_number: "+15550000002", sms_url: "{r}/status/502", sms_fallback_url: "{r}/fallback"}}
  - {{phone_number: "+15550000003", sms_url: "{r}/slow/3000"}}
  - {{phone_number: "+15550000004", sms_url: "{dead}"}}
  - {{phone_number: "+15550000005", sms_url: "{r}/big"}}
  - {{phone_number: "+15550000006", sms_url: "{r}/get", sms_method: GET}}
  whatsapp_senders:
  - {{sender_id: "whatsapp:+15550000011", webhook: {{callback_url: "{r}/sender", callback_method: POST}}}}
"#
    );
    let config = SimConfig {
        strict: true,
        webhook: WebhookSettings { timeout_ms: 500, connect_timeout_ms: 300, ..WebhookSettings::default() },
        ..SimConfig::default()
    };
    let handle = Simulator::start(config).await.expect("start");
    handle.seed_yaml(&seed).expect("seed");
    Fixture { sim: Sim { handle, client: client() }, receiver }
}

fn msg(body: &str) -> InboundMessage {
    InboundMessage { from: "+15551230000".into(), body: body.into(), profile_name: Some("Ada".into()) }
}

async fn inject(h: &SimHandle, to: &str, body: &str) -> twilio_sim::webhook::Delivery {
    h.inject_inbound(ACCOUNT, to, &msg(body)).await.expect("inject")
}

#[tokio::test]
async fn a_healthy_receiver_gets_twilios_fields_and_a_valid_signature() {
    let f = fixture().await;
    let d = inject(&f.sim.handle, "+15550000001", "hello").await;
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].url, format!("{}/ok?tenant=a", f.receiver.base_url()), "no fragment on the wire");
    let got = f.receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signature_valid, "{r:?}");
    assert_eq!(r.method, "POST");
    assert_eq!(r.param("From"), Some("whatsapp:+15551230000"));
    assert_eq!(r.param("To"), Some("whatsapp:+15550000001"));
    assert_eq!(r.param("Body"), Some("hello"));
    assert_eq!(r.param("AccountSid"), Some(ACCOUNT));
    assert_eq!(r.param("MessageSid"), Some(d.message_sid.as_str()));
    assert_eq!(r.param("WaId"), Some("15551230000"));
    assert_eq!(r.param("ProfileName"), Some("Ada"));
    assert_eq!(r.param("SmsStatus"), Some("received"));
    assert_eq!(r.param("NumMedia"), Some("0"));
    assert_eq!(r.param("ApiVersion"), Some("2010-04-01"));
    assert!(f.sim.handle.alerts(ACCOUNT).is_empty(), "no alert for a delivered message");

    // A sender's webhook, and a GET (parameters in the query, the signature over the URL alone).
    assert!(inject(&f.sim.handle, "+15550000011", "to the sender").await.delivered);
    assert!(inject(&f.sim.handle, "+15550000006", "by GET").await.delivered);
    let got = f.receiver.received();
    assert!(got[1].path.starts_with("/sender") && got[1].signature_valid, "{:?}", got[1]);
    assert!(got[2].method == "GET" && got[2].signature_valid && got[2].param("Body") == Some("by GET"), "{:?}", got[2]);
}

#[tokio::test]
async fn a_signature_with_another_token_is_refused_by_the_receiver() {
    let f = fixture().await;
    f.sim.handle.rotate_auth_token(ACCOUNT, Some("another-token".into())).expect("rotate");
    let d = inject(&f.sim.handle, "+15550000001", "signed with the new token").await;
    assert!(!d.delivered);
    assert_eq!(d.attempts[0].status, Some(403));
    assert_eq!(d.attempts[0].error_code, Some(11200));
    assert!(!f.receiver.received()[0].signature_valid);
}

#[tokio::test]
async fn each_failure_gets_its_error_code_and_an_alert() {
    let f = fixture().await;
    let h = &f.sim.handle;
    // 502, then the fallback URL answers.
    let d = inject(h, "+15550000002", "502").await;
    let failed_sid = d.message_sid.clone();
    assert_eq!(d.attempts.len(), 2, "{d:?}");
    assert_eq!((d.attempts[0].status, d.attempts[0].error_code), (Some(502), Some(11200)));
    assert!(d.attempts[1].fallback && d.attempts[1].error_code.is_none() && d.delivered, "{d:?}");
    // No answer in time.
    let d = inject(h, "+15550000003", "slow").await;
    assert_eq!(d.attempts[0].error_code, Some(11205), "{d:?}");
    assert!(d.attempts[0].elapsed_ms < 2500, "bounded by the timeout: {d:?}");
    // Connection refused (tried twice, one alert).
    let d = inject(h, "+15550000004", "refused").await;
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].error_code, Some(11205), "{d:?}");
    // An answer over 64 KiB.
    let d = inject(h, "+15550000005", "big").await;
    assert_eq!(d.attempts[0].error_code, Some(11750), "{d:?}");
    // A host off this machine: never contacted, a bad host name.
    h.update_number(
        ACCOUNT,
        "+15550000005",
        &serde_json::from_value(serde_json::json!({"sms_url": "https://crm.example.com/hook"})).expect("patch"),
    )
    .expect("update");
    let d = inject(h, "+15550000005", "far away").await;
    assert_eq!(d.attempts[0].error_code, Some(11210), "{d:?}");

    let alerts = h.alerts(ACCOUNT);
    let codes: Vec<&str> = alerts.iter().map(|a| a.error_code.as_str()).collect();
    assert_eq!(codes, ["11200", "11205", "11205", "11750", "11210"]);
    let first = &alerts[0];
    assert_eq!(first.request_url, format!("{}/status/502", f.receiver.base_url()));
    assert_eq!(first.request_method, "POST");
    assert_eq!(first.resource_sid.as_deref(), Some(failed_sid.as_str()), "the message");
    assert_eq!(
        first.service_sid.as_deref(),
        Some(d_sid(h, "+15550000002").as_str()),
        "the number whose webhook failed"
    );
    assert!(first.alert_text.contains("ErrorCode=11200") && first.alert_text.contains("httpResponse=502"));
    assert!(first.sid.starts_with("NO") && first.sid.len() == 34);
}

/// The SID of the incoming number `e164`.
fn d_sid(h: &SimHandle, e164: &str) -> String {
    h.account(ACCOUNT).and_then(|a| a.number(e164).map(|n| n.sid.clone())).expect("number")
}

#[tokio::test]
async fn alerts_are_listed_newest_first_paged_filtered_and_fetched_under_the_contract() {
    let f = fixture().await;
    let h = &f.sim.handle;
    for i in 0..5 {
        inject(h, "+15550000002", &format!("fail {i}")).await;
    }
    assert_eq!(h.alerts(ACCOUNT).len(), 5);
    // Two pages of 2 and one of 1, following meta.next_page_url.
    let mut url = f.sim.url("/v1/Alerts?PageSize=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, body) =
            json(f.sim.client.get(&url).basic_auth(ACCOUNT, Some(TOKEN)).send().await.expect("send")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        assert_eq!(body["meta"]["key"], "alerts");
        for a in body["alerts"].as_array().expect("alerts") {
            assert_eq!(a["error_code"], "11200");
            assert_eq!(a["account_sid"], ACCOUNT);
            assert!(a.get("request_variables").is_none(), "list items carry no request details");
            seen.push((
                a["date_generated"].as_str().unwrap_or_default().to_string(),
                a["sid"].as_str().unwrap_or_default().to_string(),
            ));
        }
        match body["meta"]["next_page_url"].as_str() {
            Some(next) => {
                let u = reqwest::Url::parse(next).expect("absolute next_page_url");
                url = f.sim.url(&format!("{}?{}", u.path(), u.query().unwrap_or("")));
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 5));
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first: {seen:?}");
    // StartDate in the future: none; LogLevel=error: all.
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (_, body) = json(f.sim.get(&format!("/v1/Alerts?StartDate={future}")).await).await;
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(0), "{body}");
    let (_, body) = json(f.sim.get("/v1/Alerts?LogLevel=error&PageSize=50").await).await;
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(5), "{body}");
    // Fetch: the details.
    let (status, one) = json(f.sim.get(&format!("/v1/Alerts/{}", seen[0].1)).await).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert!(one["request_variables"].as_str().is_some_and(|v| v.contains("Body=fail")), "{one}");
    assert_eq!(one["response_body"], "");
    let (status, _) = json(f.sim.get("/v1/Alerts/NO00000000000000000000000000000000").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Every Monitor request was held to the spec and logged under its operation.
    assert!(h.violations().is_empty(), "{:?}", h.violations());
    let records = h.requests();
    assert_eq!(records.iter().filter(|r| r.route.as_deref() == Some("ListAlert")).count(), 5);
    assert_eq!(records.iter().filter(|r| r.operation_id.as_deref() == Some("FetchAlert")).count(), 2);
}

#[tokio::test]
async fn the_control_api_injects_and_changes_the_timeouts() {
    let f = fixture().await;
    let (status, body) = json(
        f.sim
            .client
            .post(f.sim.url("/_sim/webhook-settings"))
            .json(&serde_json::json!({"timeout_ms": 4000, "connect_timeout_ms": 300, "connect_retries": 0}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = json(
        f.sim
            .client
            .post(f.sim.url(&format!("/_sim/accounts/{ACCOUNT}/inbound/+15550000003")))
            .json(&serde_json::json!({"from": "whatsapp:+15551230000", "body": "slow but in time"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["delivered"], true, "the longer timeout lets the slow receiver answer: {body}");
    assert_eq!(body["route"]["kind"], "IncomingPhoneNumber");
    let (status, _) = json(
        f.sim
            .client
            .post(f.sim.url(&format!("/_sim/accounts/{ACCOUNT}/inbound/+15559999999")))
            .json(&serde_json::json!({"from": "+15551230000"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn https_receivers_are_verified_like_twilio_does() {
    let tokens: twilio_sim::receiver::TokenLookup =
        std::sync::Arc::new(|sid: &str| (sid == ACCOUNT).then(|| TOKEN.to_string()));
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let trusted = Receiver::start_tls(any, tokens.clone()).await.expect("trusted receiver");
    let untrusted = Receiver::start_tls(any, tokens).await.expect("untrusted receiver");
    let seed = format!(
        r#"
accounts:
- sid: {ACCOUNT}
  friendly_name: tls
  auth_token: {TOKEN}
  incoming_phone_numbers:
  - {{phone_number: "+15550000001", sms_url: "{}/hook"}}
  - {{phone_number: "+15550000002", sms_url: "{}/hook"}}
"#,
        trusted.base_url(),
        untrusted.base_url()
    );
    let handle = Simulator::start(SimConfig { strict: true, ..SimConfig::default() }).await.expect("start");
    handle.seed_yaml(&seed).expect("seed");
    let ca = trusted.ca_pem().expect("ca").to_string();
    handle.set_webhook_settings(WebhookSettings { extra_roots_pem: vec![ca], ..WebhookSettings::default() });
    let ok = inject(&handle, "+15550000001", "over TLS").await;
    assert!(ok.delivered, "{ok:?}");
    assert!(trusted.received()[0].signature_valid, "the signature covers the https URL");
    let bad = inject(&handle, "+15550000002", "bad certificate").await;
    assert_eq!(bad.attempts[0].error_code, Some(11237), "{bad:?}");
    assert!(untrusted.received().is_empty(), "no request over an untrusted connection");
}

#[tokio::test]
async fn a_settled_message_calls_its_status_callback_signed() {
    let f = fixture().await;
    let h = &f.sim.handle;
    let callback = format!("{}/status-callback", f.receiver.base_url());
    let form = [
        ("To", "whatsapp:+15551230000"),
        ("From", "whatsapp:+15550000011"),
        ("Body", "hi"),
        ("StatusCallback", callback.as_str()),
    ];
    let (status, created) =
        json(f.sim.post_form(&format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"), &form).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let sid = created["sid"].as_str().expect("sid").to_string();
    let (_, fetched) = json(f.sim.get(&format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")).await).await;
    wait_until(Duration::from_secs(10), || !f.receiver.received().is_empty()).await;
    let got = f.receiver.received();
    let cb = &got[0];
    assert_eq!(cb.path, "/status-callback");
    assert!(cb.signature_valid, "{cb:?}");
    assert_eq!(cb.param("MessageSid"), Some(sid.as_str()));
    assert_eq!(cb.param("MessageStatus"), fetched["status"].as_str());
    assert_eq!(cb.param("To"), Some("whatsapp:+15551230000"));
    wait_until(Duration::from_secs(5), || h.status_callbacks().len() == 1).await;
    assert!(h.status_callbacks()[0].error_code.is_none());
    // Settled once: fetching again sends nothing more.
    json(f.sim.get(&format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")).await).await;
    assert_eq!(f.receiver.received().len(), 1);
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}
