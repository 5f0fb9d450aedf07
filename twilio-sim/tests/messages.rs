//! Messages: create checks, delivery outcomes, sandbox rules, list filters.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use twilio_sim::state::{SandboxPatch, SenderPatch, SenderStatus};

fn messages_path(account: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Messages.json")
}

async fn send_test(sim: &Sim, form: &[(&str, &str)]) -> (StatusCode, Value) {
    json(sim.req(Method::POST, &messages_path(TEST), TEST, TEST_TOKEN).form(form).send().await.unwrap()).await
}

async fn get_test(sim: &Sim, path: &str) -> (StatusCode, Value) {
    json(sim.req(Method::GET, path, TEST, TEST_TOKEN).send().await.unwrap()).await
}

#[tokio::test]
async fn create_from_an_online_sender_is_queued_then_delivered() {
    let sim = Sim::start().await;
    let (status, body) = json(
        sim.post_form(
            &messages_path(PROD),
            &[
                ("To", "whatsapp:+15557770001"),
                ("From", "whatsapp:+15551230001"),
                ("Body", "Hello"),
                ("StatusCallback", "https://cb.example.com/s"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&body), sorted(MESSAGE_KEYS));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(body["to"], "whatsapp:+15557770001");
    assert_eq!(body["from"], "whatsapp:+15551230001");
    assert_eq!(body["num_media"], "0");
    assert_eq!(body["num_segments"], "1");
    assert_eq!(body["error_code"], Value::Null);
    assert_eq!(body["date_sent"], Value::Null);
    let sid = body["sid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("SM") && sid.len() == 34);
    assert_eq!(body["uri"], format!("/2010-04-01/Accounts/{PROD}/Messages/{sid}.json"));
    assert_eq!(keys(&body["subresource_uris"]), vec!["media".to_string()]);

    let (status, body) = json(sim.get(&format!("/2010-04-01/Accounts/{PROD}/Messages/{sid}.json")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(MESSAGE_KEYS));
    assert_eq!(body["status"], "delivered");
    assert!(body["date_sent"].as_str().unwrap().ends_with("+0000"));
}

#[tokio::test]
async fn create_rejects_channel_mismatch_bad_to_and_unknown_sender() {
    let sim = Sim::start().await;
    let cases: &[(&[(&str, &str)], u64)] = &[
        (&[("To", "+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", "x")], 21910),
        (&[("To", "whatsapp:+15557770001"), ("From", "+15551230001"), ("Body", "x")], 21910),
        (&[("To", "whatsapp:12345"), ("From", "whatsapp:+15551230001"), ("Body", "x")], 21211),
        (&[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15559999999"), ("Body", "x")], 63007),
        // A sender pending verification cannot send.
        (&[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230002"), ("Body", "x")], 63007),
        // The sandbox number of an account without a sandbox.
        (&[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+14155238886"), ("Body", "x")], 63007),
        (&[("From", "whatsapp:+15551230001"), ("Body", "x")], 21604),
        (&[("To", "whatsapp:+15557770001"), ("Body", "x")], 21603),
        (&[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001")], 21602),
        (&[("To", "+15557770001"), ("From", "+15550000000"), ("Body", "x")], 21606),
    ];
    for (form, code) in cases {
        let (status, body) = json(sim.post_form(&messages_path(PROD), form).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert_twilio_error(&body, 400, *code);
    }
    let (_, body) = json(
        sim.post_form(
            &messages_path(PROD),
            &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15559999999"), ("Body", "x")],
        )
        .await,
    )
    .await;
    assert_eq!(body["message"], "Twilio could not find a Channel with the specified From address");
    assert!(sim.handle.account(PROD).unwrap().messages.is_empty());

    // A sender going OFFLINE behind the operator's back stops sending.
    sim.handle
        .update_sender(PROD, XE1, &SenderPatch { status: Some(SenderStatus::Offline), ..Default::default() })
        .unwrap();
    let (status, _) = json(
        sim.post_form(
            &messages_path(PROD),
            &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", "x")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sandbox_sends_to_participants_and_fails_others_with_63015() {
    let sim = Sim::start().await;
    let from = "whatsapp:+14155238886";
    let (status, joined) = send_test(&sim, &[("To", "whatsapp:+15557770001"), ("From", from), ("Body", "hi")]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, stranger) = send_test(&sim, &[("To", "whatsapp:+15550000001"), ("From", from), ("Body", "hi")]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(stranger["status"], "queued");
    let (status, expired) = send_test(
        &sim,
        &[
            ("To", "whatsapp:+15557770002"),
            ("From", from),
            ("ContentSid", "HX00000000000000000000000000000001"),
            ("ContentVariables", "{\"1\":\"x\"}"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let fetch = |m: &Value| format!("/2010-04-01/Accounts/{TEST}/Messages/{}.json", m["sid"].as_str().unwrap());
    let (_, m) = get_test(&sim, &fetch(&joined)).await;
    assert_eq!(m["status"], "delivered");
    for msg in [&stranger, &expired] {
        let (_, m) = get_test(&sim, &fetch(msg)).await;
        assert_eq!(m["status"], "failed");
        assert_eq!(m["error_code"], 63015);
        assert_eq!(m["date_sent"], Value::Null);
        assert!(m["error_message"].as_str().unwrap().contains("joined the Sandbox"));
    }
    // The participant joins through the console: the next message goes through.
    sim.handle
        .update_sandbox(
            TEST,
            &SandboxPatch {
                add_participants: Some(vec![twilio_sim::state::ParticipantSpec::Number("+15550000001".into())]),
                ..Default::default()
            },
        )
        .unwrap();
    let (_, again) = send_test(&sim, &[("To", "whatsapp:+15550000001"), ("From", from), ("Body", "hi")]).await;
    let (_, m) = get_test(&sim, &fetch(&again)).await;
    assert_eq!(m["status"], "delivered");
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let sim = Sim::start().await;
    for i in 0..3 {
        let body = format!("m{i}");
        let (status, _) = json(
            sim.post_form(
                &messages_path(PROD),
                &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", &body)],
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = json(
        sim.post_form(
            &messages_path(PROD),
            &[("To", "whatsapp:+15557770009"), ("From", "whatsapp:+15551230001"), ("Body", "other")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let path = format!("{}?To=whatsapp%3A%2B15557770001&DateSent%3E={today}&PageSize=2", messages_path(PROD));
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = PAGE_2010_KEYS.to_vec();
    expected.push("messages");
    assert_eq!(keys(&body), sorted(&expected));
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["body"], "m2");
    assert_eq!(msgs[0]["status"], "delivered");
    assert_eq!(keys(&msgs[0]), sorted(MESSAGE_KEYS));
    let next = body["next_page_uri"].as_str().unwrap().to_string();
    assert!(next.contains("DateSent%3E="), "{next}");
    let (_, body) = json(sim.get(&next).await).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["body"], "m0");
    assert_eq!(body["next_page_uri"], Value::Null);

    let (_, body) = json(sim.get(&format!("{}?DateSent%3C=2000-01-01", messages_path(PROD))).await).await;
    assert_eq!(body["messages"], serde_json::json!([]));
    let (_, body) =
        json(sim.get(&format!("{}?From=whatsapp%3A%2B15551230001&DateSent={today}", messages_path(PROD))).await).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 4);
    let (status, body) = json(sim.get(&format!("{}?DateSent=yesterday", messages_path(PROD))).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);
}

#[tokio::test]
async fn fetch_and_delete_unknown_messages() {
    let sim = Sim::start().await;
    let path = format!("/2010-04-01/Accounts/{PROD}/Messages/SM0000000000000000000000000000dead.json");
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
    assert_eq!(sim.delete(&path).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn messaging_service_without_from_is_accepted() {
    let sim = Sim::start().await;
    let (status, body) = json(
        sim.post_form(
            &messages_path(PROD),
            &[("To", "whatsapp:+15557770001"), ("MessagingServiceSid", MG1), ("Body", "hi")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["from"], Value::Null);
    assert_eq!(body["messaging_service_sid"], MG1);
    let sid = body["sid"].as_str().unwrap();
    let (_, m) = json(sim.get(&format!("/2010-04-01/Accounts/{PROD}/Messages/{sid}.json")).await).await;
    assert_eq!(m["from"], "whatsapp:+15551230001");
    let (status, body) = json(
        sim.post_form(
            &messages_path(PROD),
            &[
                ("To", "whatsapp:+15557770001"),
                ("MessagingServiceSid", "MG0000000000000000000000000000dead"),
                ("Body", "hi"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21701);
}
