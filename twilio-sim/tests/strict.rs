//! Strict mode: requests and responses checked against Twilio's OpenAPI contract.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json as j;
use twilio_sim::{SimConfig, ViolationPhase};

/// Strict mode needs the specs: `make test` fetches them (`hack/fetch-twilio-specs.sh`). A
/// missing spec directory fails the test rather than skipping it.
async fn strict_sim() -> Option<Sim> {
    let config = SimConfig { strict: true, ..SimConfig::default() };
    let dir = config.resolved_spec_dir();
    assert!(
        dir.join("twilio_api_v2010.json").exists(),
        "no Twilio specs in {} (run `make twilio-specs` or hack/fetch-twilio-specs.sh)",
        dir.display()
    );
    Some(Sim::start_with(config).await)
}

#[tokio::test]
async fn every_implemented_operation_answers_within_the_contract() {
    let Some(sim) = strict_sim().await else {
        return;
    };
    assert!(sim.handle.is_strict());
    let a = format!("/2010-04-01/Accounts/{PROD}");
    let mut statuses = Vec::new();
    let mut check = |s: StatusCode| statuses.push(s.as_u16());

    check(sim.get(&format!("{a}.json")).await.status());
    check(sim.get(&format!("{a}/IncomingPhoneNumbers.json?PhoneNumber=%2B15551230001&PageSize=1")).await.status());
    check(sim.get(&format!("{a}/IncomingPhoneNumbers/{PN1}.json")).await.status());
    check(
        sim.post_form(
            &format!("{a}/IncomingPhoneNumbers/{PN1}.json"),
            &[("SmsUrl", "https://r.example.com/wa"), ("SmsMethod", "POST")],
        )
        .await
        .status(),
    );
    check(sim.post_form(&format!("{a}/IncomingPhoneNumbers.json"), &[("PhoneNumber", "+15558880001")]).await.status());
    let sent = sim
        .post_form(
            &format!("{a}/Messages.json"),
            &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", "hi")],
        )
        .await;
    check(sent.status());
    let (_, m) = json(sent).await;
    check(sim.get(&format!("{a}/Messages/{}.json", m["sid"].as_str().unwrap())).await.status());
    check(sim.get(&format!("{a}/Messages.json?To=whatsapp%3A%2B15557770001&PageSize=1")).await.status());
    check(sim.get("/v2/Channels/Senders?Channel=whatsapp&PageSize=1").await.status());
    check(sim.get(&format!("/v2/Channels/Senders/{XE1}")).await.status());
    check(sim.post_json(&format!("/v2/Channels/Senders/{XE1}"), &j!({"webhook": {"callback_url": "https://r.example.com/wa", "callback_method": "POST", "fallback_url": null, "fallback_method": null, "status_callback_url": null, "status_callback_method": null}})).await.status());
    check(sim.get("/v1/Services").await.status());
    check(sim.get(&format!("/v1/Services/{MG1}")).await.status());
    check(
        sim.post_form(&format!("/v1/Services/{MG1}"), &[("InboundRequestUrl", "https://r.example.com/in")])
            .await
            .status(),
    );
    check(sim.get(&format!("/v1/Services/{MG1}/PhoneNumbers")).await.status());
    check(sim.get(&format!("/v1/Services/{MG1}/ChannelSenders")).await.status());
    // Errors are checked against the classic error shape.
    check(sim.get(&format!("{a}/IncomingPhoneNumbers/PN0000000000000000000000000000dead.json")).await.status());
    check(sim.delete(&format!("/v2/Channels/Senders/{XE2}")).await.status());

    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 201, 201, 200, 200, 200, 200, 202, 200, 200, 200, 200, 200, 404, 204]
    );
    let violations = sim.handle.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    let log = sim.handle.requests();
    assert_eq!(log[0].operation_id.as_deref(), Some("FetchAccount"));
    assert!(log.iter().all(|r| r.operation_id.is_some()));
}

#[tokio::test]
async fn non_conforming_requests_get_400_20001_and_are_recorded() {
    let Some(sim) = strict_sim().await else {
        return;
    };
    let path = format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers/{PN1}.json");
    let (status, body) = json(sim.post_form(&path, &[("SmsUrl", "https://r.example.com"), ("Bogus", "1")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("Request does not conform to Twilio's OpenAPI contract: "), "{message}");
    // The handler did not run.
    assert_eq!(
        sim.handle.account(PROD).unwrap().number(PN1).unwrap().sms_url.as_deref(),
        Some("https://old-receiver.example.com/sms")
    );
    let v = sim.handle.violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].phase, ViolationPhase::Request);
    assert_eq!(v[0].path, path);
    let rec = sim.handle.requests().pop().unwrap();
    assert_eq!(rec.violations, v);
    let (status, listed) = json(sim.control_get("/_sim/violations").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // An unencoded '+' in PhoneNumber is caught too.
    let (status, _) =
        json(sim.get(&format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers.json?PhoneNumber=+15551230001")).await)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Control and OAuth paths are never checked.
    assert_eq!(sim.control_get("/_sim/state").await.status(), StatusCode::OK);
    let resp = sim
        .client
        .post(sim.url("/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crm-messaging"),
            ("client_secret", "crm-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sim.handle.violations().len(), 2);
}

#[tokio::test]
async fn the_remaining_operations_answer_within_the_contract() {
    let Some(sim) = strict_sim().await else {
        return;
    };
    let a = format!("/2010-04-01/Accounts/{PROD}");
    let mut statuses = Vec::new();

    let (st, created) = json(
        sim.post_json("/v2/Channels/Senders", &j!({"sender_id": "whatsapp:+15551230009", "profile": {"name": "New"}}))
            .await,
    )
    .await;
    statuses.push(st.as_u16());
    let xe = created["sid"].as_str().unwrap().to_string();
    let (st, svc) =
        json(sim.post_form("/v1/Services", &[("FriendlyName", "Other"), ("UseInboundWebhookOnNumber", "true")]).await)
            .await;
    statuses.push(st.as_u16());
    let mg = svc["sid"].as_str().unwrap().to_string();
    statuses.push(
        sim.post_form(&format!("/v1/Services/{mg}/PhoneNumbers"), &[("PhoneNumberSid", PN1)]).await.status().as_u16(),
    );
    statuses.push(sim.get(&format!("/v1/Services/{mg}/PhoneNumbers/{PN1}")).await.status().as_u16());
    statuses.push(sim.delete(&format!("/v1/Services/{mg}/PhoneNumbers/{PN1}")).await.status().as_u16());
    statuses.push(sim.post_form(&format!("/v1/Services/{mg}/ChannelSenders"), &[("Sid", XE1)]).await.status().as_u16());
    statuses.push(sim.get(&format!("/v1/Services/{mg}/ChannelSenders/{XE1}")).await.status().as_u16());
    statuses.push(sim.delete(&format!("/v1/Services/{mg}/ChannelSenders/{XE1}")).await.status().as_u16());
    statuses.push(sim.delete(&format!("/v1/Services/{mg}")).await.status().as_u16());
    statuses.push(sim.delete(&format!("/v2/Channels/Senders/{xe}")).await.status().as_u16());
    statuses.push(sim.post_form(&format!("{a}.json"), &[("FriendlyName", "Renamed")]).await.status().as_u16());
    statuses.push(sim.delete(&format!("{a}/IncomingPhoneNumbers/{PN2}.json")).await.status().as_u16());
    let (st, m) = json(
        sim.post_form(
            &format!("{a}/Messages.json"),
            &[("To", "whatsapp:+15557770001"), ("MessagingServiceSid", MG1), ("Body", "hi")],
        )
        .await,
    )
    .await;
    statuses.push(st.as_u16());
    statuses.push(sim.get(&format!("{a}/Messages.json?PageSize=1&Page=0")).await.status().as_u16());
    statuses.push(sim.delete(&format!("{a}/Messages/{}.json", m["sid"].as_str().unwrap())).await.status().as_u16());
    // Errors: auth, not found, business rules.
    let resp = sim.req(reqwest::Method::GET, &format!("{a}.json"), PROD, "wrong").send().await.unwrap();
    statuses.push(resp.status().as_u16());
    statuses.push(
        sim.post_form(
            &format!("{a}/Messages.json"),
            &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15559999999"), ("Body", "x")],
        )
        .await
        .status()
        .as_u16(),
    );
    statuses.push(sim.get(&format!("/v2/Channels/Senders/{xe}")).await.status().as_u16());

    assert_eq!(
        statuses,
        vec![202, 201, 201, 200, 204, 201, 200, 204, 204, 204, 200, 204, 201, 200, 204, 401, 400, 404]
    );
    let violations = sim.handle.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}
