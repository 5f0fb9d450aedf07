//! Inbound routing precedence (`SimHandle::inbound_route`, `GET /_sim/accounts/{key}/inbound/{number}`)
//! and the Conversations address configurations (`/v1/Configuration/Addresses`), held to
//! Twilio's OpenAPI contract in strict mode.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use twilio_sim::state::RouteKind;
use twilio_sim::{SimConfig, Simulator};

const ACCOUNT: &str = PROD;
const TOKEN: &str = PROD_TOKEN;

fn seed() -> String {
    format!(
        r#"
accounts:
- sid: {ACCOUNT}
  friendly_name: routing
  auth_token: {TOKEN}
  incoming_phone_numbers:
  - {{phone_number: "+15550000001", sms_url: "https://number.example/1"}}
  - {{phone_number: "+15550000002", sms_url: "https://number.example/2", sms_application_sid: AP00000000000000000000000000000002}}
  - {{phone_number: "+15550000003", sms_url: "https://number.example/3"}}
  - {{phone_number: "+15550000004", sms_url: "https://number.example/4"}}
  whatsapp_senders:
  - {{sender_id: "whatsapp:+15550000011", webhook: {{callback_url: "https://sender.example/11", callback_method: POST}}}}
  - {{sender_id: "whatsapp:+15550000012", webhook: {{callback_url: "https://sender.example/12", callback_method: POST}}}}
  - {{sender_id: "whatsapp:+15550000013", webhook: {{callback_url: "https://sender.example/13", callback_method: POST}}}}
  - {{sender_id: "whatsapp:+15550000014", webhook: {{callback_url: "https://sender.example/14", callback_method: POST}}}}
  messaging_services:
  - friendly_name: shared
    inbound_request_url: https://service.example/shared
    channel_senders: ["whatsapp:+15550000012"]
    phone_numbers: ["+15550000003"]
  - friendly_name: deferring
    inbound_request_url: https://service.example/deferring
    use_inbound_webhook_on_number: true
    channel_senders: ["whatsapp:+15550000013"]
    phone_numbers: ["+15550000004"]
  address_configurations:
  - address: "+15550000014"
    auto_creation: {{enabled: true, type: webhook, webhook_url: "https://conversations.example/hook", webhook_method: post}}
"#
    )
}

async fn sim() -> Sim {
    let handle = Simulator::start(SimConfig { strict: true, ..SimConfig::default() }).await.expect("start");
    handle.seed_yaml(&seed()).expect("seed");
    Sim { handle, client: client() }
}

fn route(sim: &Sim, number: &str) -> (RouteKind, String, Option<String>) {
    let r = sim.handle.inbound_route(ACCOUNT, number).unwrap_or_else(|| panic!("no route for {number}"));
    (r.kind, r.sid, r.url)
}

#[tokio::test]
async fn each_object_routes_by_twilios_precedence() {
    let sim = sim().await;
    let acct = sim.handle.account(ACCOUNT).expect("account");
    let svc = |name: &str| acct.service(name).expect("service").sid.clone();
    let sender = |n: &str| acct.sender(n).expect("sender").sid.clone();
    let number = |n: &str| acct.number(n).expect("number").sid.clone();
    let cases = [
        ("+15550000001", RouteKind::IncomingPhoneNumber, number("+15550000001"), Some("https://number.example/1")),
        ("+15550000002", RouteKind::Application, "AP00000000000000000000000000000002".into(), None),
        ("+15550000003", RouteKind::MessagingService, svc("shared"), Some("https://service.example/shared")),
        ("+15550000004", RouteKind::IncomingPhoneNumber, number("+15550000004"), Some("https://number.example/4")),
        ("+15550000011", RouteKind::WhatsAppSender, sender("+15550000011"), Some("https://sender.example/11")),
        ("+15550000012", RouteKind::MessagingService, svc("shared"), Some("https://service.example/shared")),
        ("+15550000013", RouteKind::WhatsAppSender, sender("+15550000013"), Some("https://sender.example/13")),
        (
            "+15550000014",
            RouteKind::AddressConfiguration,
            acct.address_configurations[0].sid.clone(),
            Some("https://conversations.example/hook"),
        ),
    ];
    for (n, kind, sid, url) in cases {
        assert_eq!(route(&sim, n), (kind, sid, url.map(str::to_owned)), "{n}");
    }
    assert!(sim.handle.inbound_route(ACCOUNT, "+15559999999").is_none());

    // The control API answers the same.
    let (status, body) = json(sim.control_get("/_sim/accounts/routing/inbound/%2B15550000012").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "MessagingService");
    assert_eq!(body["url"], "https://service.example/shared");

    // Through the API: the shared service hands routing back; the number's application goes.
    let path = format!("/v1/Services/{}", svc("shared"));
    let resp = sim.post_form(&path, &[("UseInboundWebhookOnNumber", "true")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(route(&sim, "+15550000012").0, RouteKind::WhatsAppSender);
    assert_eq!(route(&sim, "+15550000003").0, RouteKind::IncomingPhoneNumber);
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers/{}.json", number("+15550000002"));
    let resp = sim.post_form(&path, &[("SmsUrl", "https://number.example/2b")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(route(&sim, "+15550000002").2.as_deref(), Some("https://number.example/2b"));
    assert_eq!(route(&sim, "+15550000002").0, RouteKind::IncomingPhoneNumber);
    assert!(sim.handle.violations().is_empty(), "{:#?}", sim.handle.violations());
}

#[tokio::test]
async fn address_configurations_conform_and_take_inbound_while_enabled() {
    let sim = sim().await;
    let (status, body) = json(sim.get("/v1/Configuration/Addresses?Type=whatsapp&PageSize=50").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["key"], "address_configurations");
    let list = body["address_configurations"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["address"], "whatsapp:+15550000014");
    assert_eq!(list[0]["auto_creation"]["webhook_url"], "https://conversations.example/hook");
    let sid = list[0]["sid"].as_str().expect("sid").to_owned();
    assert!(sid.starts_with("IG"));
    let (status, body) = json(sim.get("/v1/Configuration/Addresses?Type=sms").await).await;
    assert_eq!((status, body["address_configurations"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    // Disabled auto-creation: the sender routes again.
    let path = format!("/v1/Configuration/Addresses/{sid}");
    let resp = sim.post_form(&path, &[("AutoCreation.Enabled", "false")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(route(&sim, "+15550000014").0, RouteKind::WhatsAppSender);

    // Create one for another number; fetch it by its address; delete it.
    let resp = sim
        .post_form(
            "/v1/Configuration/Addresses",
            &[("Type", "whatsapp"), ("Address", "whatsapp:+15550000011"), ("AutoCreation.Enabled", "true")],
        )
        .await;
    let (status, created) = json(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(route(&sim, "+15550000011").0, RouteKind::AddressConfiguration);
    let (status, fetched) =
        json(sim.get(&format!("/v1/Configuration/Addresses/{}", created["sid"].as_str().unwrap())).await).await;
    assert_eq!((status, &fetched["address"]), (StatusCode::OK, &Value::from("whatsapp:+15550000011")));
    let resp = sim.delete(&format!("/v1/Configuration/Addresses/{}", created["sid"].as_str().unwrap())).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(route(&sim, "+15550000011").0, RouteKind::WhatsAppSender);
    assert!(sim.handle.violations().is_empty(), "{:#?}", sim.handle.violations());
}
