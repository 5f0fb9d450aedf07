//! Messaging v2 Channels Senders.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json as j, Value};
use twilio_sim::{RequestRecords, SimConfig, WebhookUpdate};

fn sender_path(sid: &str) -> String {
    format!("/v2/Channels/Senders/{sid}")
}

#[tokio::test]
async fn list_requires_channel_and_uses_the_meta_envelope() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.get("/v2/Channels/Senders").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);

    let (status, body) = json(sim.get("/v2/Channels/Senders?Channel=whatsapp").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(&["senders", "meta"]));
    assert_eq!(keys(&body["meta"]), sorted(META_KEYS));
    let base = sim.handle.base_url();
    assert_eq!(body["meta"]["key"], "senders");
    assert_eq!(body["meta"]["page_size"], 20);
    assert_eq!(
        body["meta"]["first_page_url"],
        format!("{base}/v2/Channels/Senders?PageSize=20&Page=0&Channel=whatsapp")
    );
    assert_eq!(body["meta"]["next_page_url"], Value::Null);
    let senders = body["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 2);
    assert_eq!(keys(&senders[0]), sorted(SENDER_KEYS));

    // Paging with absolute URLs.
    let (_, body) = json(sim.get("/v2/Channels/Senders?Channel=whatsapp&PageSize=1").await).await;
    let next = body["meta"]["next_page_url"].as_str().unwrap().to_string();
    assert!(next.starts_with(base) && next.contains("PageToken=PA"), "{next}");
    let resp = sim.client.get(&next).basic_auth(PROD, Some(PROD_TOKEN)).send().await.unwrap();
    let (_, body) = json(resp).await;
    assert_eq!(body["senders"][0]["sid"], XE2);
    assert_eq!(body["meta"]["next_page_url"], Value::Null);

    // RCS: no senders; unknown channel: 400.
    let (_, body) = json(sim.get("/v2/Channels/Senders?Channel=rcs").await).await;
    assert_eq!(body["senders"], j!([]));
    let (status, _) = json(sim.get("/v2/Channels/Senders?Channel=sms").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fetch_returns_the_spec_shape_and_t_request_id() {
    let sim = Sim::start().await;
    let resp = sim.get(&sender_path(XE1)).await;
    assert!(resp.headers()["t-request-id"].to_str().unwrap().starts_with("RQ"));
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(SENDER_KEYS));
    assert_eq!(body["sid"], XE1);
    assert_eq!(body["status"], "ONLINE");
    assert_eq!(body["sender_id"], "whatsapp:+15551230001");
    assert_eq!(
        keys(&body["webhook"]),
        sorted(&[
            "callback_url",
            "callback_method",
            "fallback_url",
            "fallback_method",
            "status_callback_url",
            "status_callback_method"
        ])
    );
    assert_eq!(body["webhook"]["callback_url"], "https://old-receiver.example.com/whatsapp");
    assert_eq!(
        keys(&body["configuration"]),
        sorted(&["waba_id", "verification_method", "verification_code", "voice_application_sid"])
    );
    assert_eq!(
        keys(&body["profile"]),
        sorted(&["name", "about", "address", "description", "emails", "logo_url", "vertical", "websites"])
    );
    assert_eq!(keys(&body["properties"]), sorted(&["quality_rating", "messaging_limit"]));
    assert_eq!(body["offline_reasons"], Value::Null);
    assert_eq!(body["url"], format!("{}/v2/Channels/Senders/{XE1}", sim.handle.base_url()));

    let (status, body) = json(sim.get(&sender_path("XE0000000000000000000000000000dead")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
    // Another account cannot see it.
    let resp = sim.req(Method::GET, &sender_path(XE1), TEST, TEST_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn update_webhook_replaces_the_object_by_default() {
    let sim = Sim::start().await;
    let new = "https://receiver.example.com/whatsapp";
    let (status, body) = json(
        sim.post_json(&sender_path(XE1), &j!({"webhook": {"callback_url": new, "callback_method": "POST"}})).await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(keys(&body), sorted(SENDER_KEYS));
    assert_eq!(body["webhook"]["callback_url"], new);
    assert_eq!(body["webhook"]["fallback_url"], Value::Null);
    assert_eq!(body["profile"]["name"], "Acme", "omitted objects are kept");
    assert_eq!(body["status"], "ONLINE");
    let log = sim.handle.requests();
    let upd = log.route("UpdateChannelsSender");
    assert_eq!(upd.len(), 1);
    assert_eq!(upd[0].json.as_ref().unwrap()["webhook"]["callback_url"], new);
}

#[tokio::test]
async fn update_webhook_merges_when_configured() {
    let sim = Sim::start_with(SimConfig { webhook_update: WebhookUpdate::Merge, ..SimConfig::default() }).await;
    let (_, body) =
        json(sim.post_json(&sender_path(XE1), &j!({"webhook": {"fallback_url": "https://fb.example.com"}})).await)
            .await;
    assert_eq!(body["webhook"]["callback_url"], "https://old-receiver.example.com/whatsapp");
    assert_eq!(body["webhook"]["fallback_url"], "https://fb.example.com");
    let (_, body) = json(sim.post_json(&sender_path(XE1), &j!({"webhook": {"callback_url": null}})).await).await;
    assert_eq!(body["webhook"]["callback_url"], Value::Null);
}

#[tokio::test]
async fn update_validates_and_handles_verification() {
    let sim = Sim::start().await;
    let (status, body) = json(
        sim.post_json(
            &sender_path(XE1),
            &j!({"webhook": {"callback_url": "https://a.example.com", "callback_method": "GET"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21403);
    let resp = sim
        .req(Method::POST, &sender_path(XE1), PROD, PROD_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // OTP moves PENDING_VERIFICATION to VERIFYING; the code is never echoed nor logged.
    let (status, body) =
        json(sim.post_json(&sender_path(XE2), &j!({"configuration": {"verification_code": "123456"}})).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "VERIFYING");
    assert_eq!(body["configuration"]["verification_code"], Value::Null);
    let log = sim.handle.requests();
    assert_eq!(log.last().unwrap().json.as_ref().unwrap()["configuration"]["verification_code"], twilio_sim::REDACTED);
}

#[tokio::test]
async fn create_and_delete_senders() {
    let sim = Sim::start().await;
    let (status, body) = json(
        sim.post_json("/v2/Channels/Senders", &j!({"sender_id": "whatsapp:+15551230009", "profile": {"name": "New"}}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "CREATING");
    let sid = body["sid"].as_str().unwrap().to_string();
    let (status, _) =
        json(sim.post_json("/v2/Channels/Senders", &j!({"sender_id": "whatsapp:+15551230009"})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = json(sim.post_json("/v2/Channels/Senders", &j!({"sender_id": "+15551230009"})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let resp = sim.delete(&sender_path(&sid)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.delete(&sender_path(&sid)).await.status(), StatusCode::NOT_FOUND);
    // Deleting a pooled sender drops it from the service.
    assert_eq!(sim.delete(&sender_path(XE1)).await.status(), StatusCode::NO_CONTENT);
    assert!(sim.handle.account(PROD).unwrap().service(MG1).unwrap().channel_senders.is_empty());
    assert_eq!(sim.handle.requests().route("DeleteChannelsSender").len(), 3);
}

/// An account with `n` WhatsApp senders `whatsapp:+1555000NNNN`, in that order.
fn many_senders_seed(n: usize) -> twilio_sim::SeedFile {
    let senders = (0..n)
        .map(|i| twilio_sim::SeedSender {
            sid: None,
            sender_id: format!("whatsapp:+1555{i:07}"),
            status: twilio_sim::state::SenderStatus::Online,
            webhook: Default::default(),
            configuration: Default::default(),
            profile: Default::default(),
            properties: None,
            offline_reasons: None,
        })
        .collect();
    twilio_sim::SeedFile {
        accounts: vec![twilio_sim::SeedAccount {
            sid: Some(BIG.into()),
            friendly_name: "big".into(),
            auth_token: Some(BIG_TOKEN.into()),
            whatsapp_senders: senders,
            ..Default::default()
        }],
        identity_clients: Vec::new(),
    }
}

const BIG: &str = "AC00000000000000000000000000000b16";
const BIG_TOKEN: &str = "big-auth-token";

/// Follows `next_page_url` from `first`; returns the sender ids and the page sizes seen.
async fn walk(sim: &Sim, first: &str) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    let mut url = sim.url(first);
    loop {
        let resp = sim.client.get(&url).basic_auth(BIG, Some(BIG_TOKEN)).send().await.unwrap();
        let (status, body) = json(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["senders"].as_array().unwrap();
        sizes.push(page.len());
        ids.extend(page.iter().map(|s| s["sender_id"].as_str().unwrap().to_string()));
        match body["meta"]["next_page_url"].as_str() {
            Some(next) => {
                assert!(next.contains("PageToken=PA") && next.contains("Channel=whatsapp"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
        assert!(sizes.len() <= 200, "paging does not end");
    }
    (ids, sizes)
}

#[tokio::test]
async fn large_accounts_page_with_the_spec_maximum_page_size() {
    let config = SimConfig { strict: true, ..SimConfig::default() };
    assert!(config.resolved_spec_dir().join("twilio_messaging_v2.json").exists(), "run hack/fetch-twilio-specs.sh");
    let sim = Sim::start_with(config).await;
    sim.handle.seed(&many_senders_seed(2_500)).unwrap();
    let expected: Vec<String> = (0..2_500).map(|i| format!("whatsapp:+1555{i:07}")).collect();

    // PageSize=1000 (the spec's maximum): three pages, every sender once, in creation order.
    let (ids, sizes) = walk(&sim, "/v2/Channels/Senders?Channel=whatsapp&PageSize=1000").await;
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(ids, expected);
    let (_, body) = json(
        sim.req(Method::GET, "/v2/Channels/Senders?Channel=whatsapp&PageSize=1000", BIG, BIG_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["meta"]["page_size"], 1000);
    // The default page size (20) pages through everything too.
    let (ids, sizes) = walk(&sim, "/v2/Channels/Senders?Channel=whatsapp").await;
    assert_eq!(sizes.len(), 125);
    assert_eq!(ids, expected);
    assert!(sim.handle.violations().is_empty(), "{:?}", sim.handle.violations());

    // Above the spec's maximum: a contract violation in strict mode.
    let resp = sim
        .req(Method::GET, "/v2/Channels/Senders?Channel=whatsapp&PageSize=1001", BIG, BIG_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
