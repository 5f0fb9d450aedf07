//! The control API under /_sim/ and seeding.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json as j, Value};
use twilio_sim::{SimConfig, Simulator};

#[tokio::test]
async fn seeds_from_the_example_file() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.yaml"));
    let sids = sim.seed_file(path).unwrap();
    assert_eq!(sids, vec![PROD.to_string(), TEST.to_string(), SUSPENDED.to_string()]);
    let state = sim.state();
    let prod = state.account("Acme Production").unwrap();
    assert_eq!(prod.incoming_phone_numbers.len(), 2);
    assert_eq!(prod.senders.len(), 2);
    assert_eq!(prod.keys.len(), 2);
    assert_eq!(prod.services[0].channel_senders[0].sid, XE1);
    let test = state.account(TEST).unwrap();
    let sandbox = test.sandbox.as_ref().unwrap();
    assert_eq!(sandbox.number, "+14155238886");
    assert_eq!(sandbox.join_code, "silver-tiger");
    assert_eq!(sandbox.participants.len(), 2);
    assert!(sandbox.participants[1].expired);
    assert_eq!(state.identity_clients[0].client_id, "crm-messaging");
    // Re-seeding replaces accounts with the same SID instead of duplicating them.
    sim.seed_file(path).unwrap();
    assert_eq!(sim.state().accounts.len(), 3);
}

#[tokio::test]
async fn seeding_over_http_and_derived_sids() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let c = client();
    let yaml = "accounts:\n  - friendly_name: derived\n    incoming_phone_numbers: [{phone_number: '+15550001111'}]\n";
    let resp = c.post(format!("{}/_sim/seed", sim.base_url())).body(yaml).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    let sid = body["accounts"][0].as_str().unwrap().to_string();
    assert!(sid.starts_with("AC") && sid.len() == 34);
    // Same file on another simulator: same SIDs.
    let other = Simulator::start(SimConfig::default()).await.unwrap();
    assert_eq!(other.seed_yaml(yaml).unwrap(), vec![sid.clone()]);
    assert_eq!(
        sim.state().accounts[0].incoming_phone_numbers[0].sid,
        other.state().accounts[0].incoming_phone_numbers[0].sid
    );
    let resp = c
        .post(format!("{}/_sim/seed", sim.base_url()))
        .body("accounts: [{friendly_name: x, sid: nope}]")
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let resp = c.post(format!("{}/_sim/reset", sim.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(sim.state().accounts.is_empty());
}

#[tokio::test]
async fn state_requests_and_violations_endpoints() {
    let sim = Sim::start().await;
    let (status, state) = json(sim.control_get("/_sim/state").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["accounts"].as_array().unwrap().len(), 3);
    assert_eq!(state["accounts"][0]["incoming_phone_numbers"][0]["sid"], PN1);

    sim.post_form(
        &format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers/{PN1}.json"),
        &[("SmsUrl", "https://r.example.com/a")],
    )
    .await;
    let (status, log) = json(sim.control_get("/_sim/requests").await).await;
    assert_eq!(status, StatusCode::OK);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "control calls are not logged");
    let rec = &log[0];
    assert_eq!(rec["seq"], 1);
    assert_eq!(rec["kind"], "twilio");
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["route"], "UpdateIncomingPhoneNumber");
    assert_eq!(rec["principal"], PROD);
    assert_eq!(rec["account_sid"], PROD);
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["user_agent"], "twilio-sim-tests/1.0");
    assert_eq!(rec["form"], j!([["SmsUrl", "https://r.example.com/a"]]));
    assert_eq!(rec["operation_id"], Value::Null);
    assert!(!serde_json::to_string(&log).unwrap().contains(PROD_TOKEN));

    let resp = sim.client.delete(sim.url("/_sim/requests")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(sim.handle.requests().is_empty());
    let (status, v) = json(sim.control_get("/_sim/violations").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, j!([]));
    let (status, ops) = json(sim.control_get("/_sim/operations").await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ops.as_array().unwrap().iter().any(|o| o["operation_id"] == "UpdateIncomingPhoneNumber"));
    let (status, body) = json(sim.control_get("/_sim/nope").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn console_changes_over_http() {
    let sim = Sim::start().await;
    let post = |path: String, body: Value| sim.client.post(sim.url(&path)).json(&body).send();

    let (status, n) = json(
        post(
            format!("/_sim/accounts/{PROD}/numbers/%2B15551230001"),
            j!({"sms_url": "https://hijack.example.com", "sms_method": "GET"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(n["sms_url"], "https://hijack.example.com");
    let (_, api) = json(sim.get(&format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers/{PN1}.json")).await).await;
    assert_eq!(api["sms_url"], "https://hijack.example.com");
    assert_eq!(api["sms_method"], "GET");

    let (status, s) = json(post(format!("/_sim/accounts/{PROD}/senders/whatsapp%3A%2B15551230001"), j!({"status": "OFFLINE", "webhook": {"callback_url": "https://other.example.com", "callback_method": "POST"}, "offline_reasons": [{"code": "30008", "message": "No delivery", "more_info": null}]})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let (_, api) = json(sim.get(&format!("/v2/Channels/Senders/{XE1}")).await).await;
    assert_eq!(api["status"], "OFFLINE");
    assert_eq!(api["webhook"]["callback_url"], "https://other.example.com");
    assert_eq!(api["offline_reasons"][0]["code"], "30008");

    let (status, a) =
        json(post(format!("/_sim/accounts/{PROD}"), j!({"status": "suspended", "type": "Trial"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["status"], "suspended");
    let (_, api) = json(sim.get(&format!("/2010-04-01/Accounts/{PROD}.json")).await).await;
    assert_eq!(api["status"], "suspended");
    assert_eq!(api["type"], "Trial");

    let (status, t) =
        json(post(format!("/_sim/accounts/{TEST}/auth-token"), j!({"auth_token": "rotated"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t["auth_token"], "rotated");

    let (status, sb) = json(post(format!("/_sim/accounts/{TEST}/sandbox"), j!({"inbound_url": "https://new.example.com/wa", "participants": ["+15550000001", {"phone_number": "+15550000002", "expired": true}]})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb["inbound_url"], "https://new.example.com/wa");
    let (status, sb) = json(sim.control_get(&format!("/_sim/accounts/{TEST}/sandbox")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb["participants"].as_array().unwrap().len(), 2);
    let resp = sim.client.delete(sim.url(&format!("/_sim/accounts/{TEST}/sandbox"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, _) = json(sim.control_get(&format!("/_sim/accounts/{TEST}/sandbox")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, svc) = json(
        post(
            format!("/_sim/accounts/{PROD}/services/{MG1}"),
            j!({"inbound_request_url": null, "use_inbound_webhook_on_number": true}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(svc["inbound_request_url"], Value::Null);

    let (status, body) = json(
        post(format!("/_sim/accounts/{PROD}/numbers/PN0000000000000000000000000000dead"), j!({"sms_url": "x"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("not found"));
    let (status, _) = json(post(format!("/_sim/accounts/{PROD}"), j!({"bogus": 1})).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // None of this shows in the Twilio request log except the API reads above.
    assert!(sim.handle.requests().iter().all(|r| !r.path.starts_with("/_sim")));
}

#[tokio::test]
async fn faults_and_concurrency_over_http() {
    let sim = Sim::start().await;
    let resp = sim
        .client
        .post(sim.url("/_sim/faults"))
        .json(
            &j!({"method": "GET", "path": "Accounts", "times": 1, "action": {"type": "rate_limit", "retry_after": 3}}),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["id"].as_u64().unwrap();
    let (_, list) = json(sim.control_get("/_sim/faults").await).await;
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["remaining"], 1);
    let resp = sim.get(&format!("/2010-04-01/Accounts/{PROD}.json")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3");
    let resp = sim
        .client
        .post(sim.url("/_sim/faults"))
        .json(&j!({"action": {"type": "drop_after_apply"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = sim.client.delete(sim.url("/_sim/faults")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(sim.handle.faults().is_empty());
    let resp =
        sim.client.post(sim.url("/_sim/faults")).json(&j!({"action": {"type": "explode"}})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = sim.client.delete(sim.url("/_sim/faults/999")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp =
        sim.client.put(sim.url("/_sim/concurrency")).json(&j!({"account": PROD, "limit": 0})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sim.get(&format!("/2010-04-01/Accounts/{PROD}.json")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let resp =
        sim.client.put(sim.url("/_sim/concurrency")).json(&j!({"account": PROD, "limit": null})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sim.get(&format!("/2010-04-01/Accounts/{PROD}.json")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn control_responses_have_headers_and_shutdown_is_graceful() {
    let sim = Sim::start().await;
    let resp = sim.control_get("/_sim/health").await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers().contains_key("twilio-request-id"));
    let url = sim.url("/_sim/health");
    sim.handle.shutdown().await;
    assert!(sim.client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let addr = sim.addr();
    let clone = sim.clone();
    drop(sim);
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok(), "a clone keeps it alive");
    drop(clone);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "server still listening");
        tokio::task::yield_now().await;
    }
}
