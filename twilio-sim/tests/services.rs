//! Messaging v1 Services and their PhoneNumbers / ChannelSenders pools.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const SERVICE_KEYS: &[&str] = &[
    "sid",
    "account_sid",
    "friendly_name",
    "date_created",
    "date_updated",
    "inbound_request_url",
    "inbound_method",
    "fallback_url",
    "fallback_method",
    "status_callback",
    "sticky_sender",
    "mms_converter",
    "smart_encoding",
    "scan_message_content",
    "fallback_to_long_code",
    "area_code_geomatch",
    "synchronous_validation",
    "validity_period",
    "url",
    "links",
    "usecase",
    "us_app_to_person_registered",
    "use_inbound_webhook_on_number",
];

#[tokio::test]
async fn list_and_fetch_services() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.get("/v1/Services").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(&["services", "meta"]));
    assert_eq!(keys(&body["meta"]), sorted(META_KEYS));
    assert_eq!(body["meta"]["key"], "services");
    let s = &body["services"][0];
    assert_eq!(keys(s), sorted(SERVICE_KEYS));
    assert_eq!(s["sid"], MG1);
    assert_eq!(s["inbound_request_url"], "https://service.example.com/inbound");
    assert_eq!(s["use_inbound_webhook_on_number"], false);
    assert_eq!(s["fallback_url"], Value::Null);
    assert!(s["date_created"].as_str().unwrap().ends_with('Z'));
    let base = sim.handle.base_url();
    assert_eq!(s["url"], format!("{base}/v1/Services/{MG1}"));
    assert_eq!(s["links"]["channel_senders"], format!("{base}/v1/Services/{MG1}/ChannelSenders"));

    let (status, body) = json(sim.get(&format!("/v1/Services/{MG1}")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(SERVICE_KEYS));
    let (status, body) = json(sim.get("/v1/Services/MG0000000000000000000000000000dead").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
}

#[tokio::test]
async fn update_service_form() {
    let sim = Sim::start().await;
    let path = format!("/v1/Services/{MG1}");
    let (status, body) = json(
        sim.post_form(
            &path,
            &[("InboundRequestUrl", "https://new.example.com/in"), ("UseInboundWebhookOnNumber", "true")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["inbound_request_url"], "https://new.example.com/in");
    assert_eq!(body["use_inbound_webhook_on_number"], true);
    assert_eq!(body["friendly_name"], "Acme Support");
    let (status, body) = json(sim.post_form(&path, &[("UseInboundWebhookOnNumber", "maybe")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);
    let (status, _) = json(sim.post_form(&path, &[("InboundMethod", "PUT")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = json(sim.post_form(&path, &[("InboundRequestUrl", "")]).await).await;
    assert_eq!(body["inbound_request_url"], Value::Null);
    // Create and delete.
    let (status, body) = json(sim.post_form("/v1/Services", &[("FriendlyName", "Other")]).await).await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = body["sid"].as_str().unwrap().to_string();
    assert_eq!(sim.delete(&format!("/v1/Services/{sid}")).await.status(), StatusCode::NO_CONTENT);
    let (status, _) = json(sim.post_form("/v1/Services", &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn phone_number_pool() {
    let sim = Sim::start().await;
    let path = format!("/v1/Services/{MG1}/PhoneNumbers");
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["meta"]["key"], "phone_numbers");
    let n = &body["phone_numbers"][0];
    assert_eq!(
        keys(n),
        sorted(&[
            "sid",
            "account_sid",
            "service_sid",
            "date_created",
            "date_updated",
            "phone_number",
            "country_code",
            "capabilities",
            "url"
        ])
    );
    assert_eq!(n["sid"], PN2);
    assert_eq!(n["country_code"], "US");
    let (status, _) = json(sim.get(&format!("{path}/{PN2}")).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(sim.get(&format!("{path}/{PN1}")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = json(sim.post_form(&path, &[("PhoneNumberSid", PN1)]).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["sid"], PN1);
    let (status, _) = json(sim.post_form(&path, &[("PhoneNumberSid", PN1)]).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) =
        json(sim.post_form(&path, &[("PhoneNumberSid", "PN0000000000000000000000000000dead")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21421);
    assert_eq!(sim.delete(&format!("{path}/{PN1}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.delete(&format!("{path}/{PN1}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn channel_sender_pool() {
    let sim = Sim::start().await;
    let path = format!("/v1/Services/{MG1}/ChannelSenders");
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["meta"]["key"], "senders");
    let s = &body["senders"][0];
    assert_eq!(
        keys(s),
        sorted(&[
            "account_sid",
            "messaging_service_sid",
            "sid",
            "sender",
            "sender_type",
            "country_code",
            "date_created",
            "date_updated",
            "url"
        ])
    );
    assert_eq!(s["sender"], "whatsapp:+15551230001");
    assert_eq!(s["sender_type"], "WhatsApp");
    let (status, _) = json(sim.get(&format!("{path}/{XE1}")).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(sim.post_form(&path, &[("Sid", XE2)]).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(sim.delete(&format!("{path}/{XE2}")).await.status(), StatusCode::NO_CONTENT);
    let (status, _) = json(sim.get("/v1/Services/MG0000000000000000000000000000dead/ChannelSenders").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
