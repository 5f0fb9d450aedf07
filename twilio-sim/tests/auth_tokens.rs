//! The Auth Token rotation (accounts.twilio.com `/v1/AuthTokens/...`) and Trial accounts'
//! verified recipients (21608), in strict mode: every request and answer within the contract.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use twilio_sim::SimConfig;

const SECONDARY: &str = "/v1/AuthTokens/Secondary";
const PROMOTE: &str = "/v1/AuthTokens/Promote";

fn account_path(sid: &str) -> String {
    format!("/2010-04-01/Accounts/{sid}.json")
}

async fn strict() -> Sim {
    let config = SimConfig { strict: true, ..SimConfig::default() };
    assert!(
        config.resolved_spec_dir().join("twilio_accounts_v1.json").exists(),
        "no twilio_accounts_v1.json in {} (run hack/fetch-twilio-specs.sh)",
        config.resolved_spec_dir().display()
    );
    Sim::start_with(config).await
}

async fn status_with(sim: &Sim, token: &str) -> StatusCode {
    sim.req(Method::GET, &account_path(PROD), PROD, token).send().await.expect("send").status()
}

#[tokio::test]
async fn a_secondary_token_authenticates_until_promoted_then_the_old_primary_fails() {
    let sim = strict().await;
    let (status, body) = json(sim.post_form(SECONDARY, &[]).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(keys(&body), sorted(&["account_sid", "date_created", "date_updated", "secondary_auth_token", "url"]));
    assert_eq!(body["account_sid"], PROD);
    let secondary = body["secondary_auth_token"].as_str().expect("token").to_owned();
    assert_ne!(secondary, PROD_TOKEN);

    // During the rotation both tokens authenticate.
    assert_eq!(status_with(&sim, PROD_TOKEN).await, StatusCode::OK);
    assert_eq!(status_with(&sim, &secondary).await, StatusCode::OK);

    let (status, body) = json(sim.post_form(PROMOTE, &[]).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), sorted(&["account_sid", "auth_token", "date_created", "date_updated", "url"]));
    assert_eq!(body["auth_token"], secondary.as_str());
    assert_eq!(status_with(&sim, PROD_TOKEN).await, StatusCode::UNAUTHORIZED, "the old primary fails");
    assert_eq!(status_with(&sim, &secondary).await, StatusCode::OK);

    // Nothing left to promote.
    let resp = sim.req(Method::POST, PROMOTE, PROD, &secondary).send().await.expect("send");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);
    let violations = sim.handle.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn a_deleted_secondary_no_longer_authenticates_and_api_keys_cannot_rotate() {
    let sim = strict().await;
    let (_, body) = json(sim.post_form(SECONDARY, &[]).await).await;
    let secondary = body["secondary_auth_token"].as_str().expect("token").to_owned();
    assert_eq!(sim.delete(SECONDARY).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(status_with(&sim, &secondary).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&sim, PROD_TOKEN).await, StatusCode::OK);

    for (key, secret) in [(STD_KEY, STD_SECRET), (MAIN_KEY, MAIN_SECRET)] {
        let resp = sim.req(Method::POST, SECONDARY, key, secret).send().await.expect("send");
        let (status, body) = json(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
        assert_twilio_error(&body, 401, 20003);
    }
    let violations = sim.handle.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn a_secondary_token_can_be_seeded() {
    let sim = Sim::start().await;
    sim.handle
        .seed_yaml(&format!(
            "accounts:\n- sid: {PROD}\n  friendly_name: prod\n  auth_token: primary-0001\n  secondary_auth_token: secondary-0001\n"
        ))
        .expect("seed");
    assert_eq!(status_with(&sim, "primary-0001").await, StatusCode::OK);
    assert_eq!(status_with(&sim, "secondary-0001").await, StatusCode::OK);
    assert_eq!(status_with(&sim, PROD_TOKEN).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_trial_account_messages_verified_caller_ids_only() {
    let sim = strict().await;
    let trial = "AC00000000000000000000000000000009";
    sim.handle
        .seed_yaml(&format!(
            "accounts:\n- sid: {trial}\n  friendly_name: trial\n  auth_token: trial-token\n  type: Trial\n  outgoing_caller_ids: [\"+15557770009\"]\n  whatsapp_senders:\n  - sender_id: whatsapp:+15551239999\n    status: ONLINE\n"
        ))
        .expect("seed");
    let messages = format!("/2010-04-01/Accounts/{trial}/Messages.json");
    let send = |to: &'static str| {
        sim.req(Method::POST, &messages, trial, "trial-token")
            .form(&[("To", to), ("From", "whatsapp:+15551239999"), ("Body", "hello")])
            .send()
    };
    let (status, body) = json(send("whatsapp:+15557770001").await.expect("send")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_twilio_error(&body, 400, 21608);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("+15557770001 is unverified")), "{body}");
    let (status, body) = json(send("whatsapp:+15557770009").await.expect("send")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let violations = sim.handle.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}
