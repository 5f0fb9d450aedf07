//! FetchAccount / UpdateAccount, authentication and authorization.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use twilio_sim::RequestRecords;

fn account_path(sid: &str) -> String {
    format!("/2010-04-01/Accounts/{sid}.json")
}

#[tokio::test]
async fn fetch_account_returns_the_spec_fields() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.get(&account_path(PROD)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&body),
        sorted(&[
            "auth_token",
            "date_created",
            "date_updated",
            "friendly_name",
            "owner_account_sid",
            "sid",
            "status",
            "subresource_uris",
            "type",
            "uri"
        ])
    );
    assert_eq!(body["sid"], PROD);
    assert_eq!(body["status"], "active");
    assert_eq!(body["type"], "Full");
    assert_eq!(body["friendly_name"], "Acme Production");
    assert_eq!(body["owner_account_sid"], PROD);
    assert_eq!(body["uri"], format!("/2010-04-01/Accounts/{PROD}.json"));
    assert_eq!(
        body["subresource_uris"]["incoming_phone_numbers"],
        format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers.json")
    );
    assert!(body["date_created"].as_str().unwrap().ends_with(" +0000"));
}

#[tokio::test]
async fn responses_carry_json_content_type_and_request_id() {
    let sim = Sim::start().await;
    let resp = sim.get(&account_path(PROD)).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    let rid = resp.headers()["twilio-request-id"].to_str().unwrap();
    assert!(rid.starts_with("RQ") && rid.len() == 34, "{rid}");
    let logged = sim.handle.requests();
    assert_eq!(logged.last().unwrap().request_id, rid);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401_20003() {
    let sim = Sim::start().await;
    let resp = sim.req(Method::GET, &account_path(PROD), PROD, "wrong").send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_twilio_error(&body, 401, 20003);
    assert_eq!(body["message"], "Authenticate");
    assert_eq!(body["detail"], "Your AccountSid or AuthToken was incorrect.");

    let resp = sim.client.get(sim.url(&account_path(PROD))).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_twilio_error(&body, 401, 20003);

    // An API key SID used as the account SID (a common mistake).
    let resp = sim.req(Method::GET, &account_path(STD_KEY), STD_KEY, PROD_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn valid_credentials_for_another_account_are_404() {
    let sim = Sim::start().await;
    let path = account_path(TEST);
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
    assert_eq!(body["message"], format!("The requested resource {path} was not found"));
    // Also for an API key of another account.
    let numbers = format!("/2010-04-01/Accounts/{TEST}/IncomingPhoneNumbers.json");
    let resp = sim.req(Method::GET, &numbers, STD_KEY, STD_SECRET).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn suspended_account_can_fetch_itself_but_nothing_else() {
    let sim = Sim::start().await;
    let resp = sim.req(Method::GET, &account_path(SUSPENDED), SUSPENDED, SUSPENDED_TOKEN).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "suspended");

    let numbers = format!("/2010-04-01/Accounts/{SUSPENDED}/IncomingPhoneNumbers.json");
    let resp = sim.req(Method::GET, &numbers, SUSPENDED, SUSPENDED_TOKEN).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_twilio_error(&body, 401, 20003);

    // Closed through the console: same behaviour.
    sim.handle
        .update_account(
            PROD,
            &twilio_sim::state::AccountPatch {
                status: Some(twilio_sim::state::AccountStatus::Closed),
                ..Default::default()
            },
        )
        .unwrap();
    let (status, body) = json(sim.get(&account_path(PROD)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "closed");
    let resp = sim.get(&format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers.json")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_keys_standard_cannot_fetch_the_account_main_can() {
    let sim = Sim::start().await;
    let resp = sim.req(Method::GET, &account_path(PROD), STD_KEY, STD_SECRET).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_twilio_error(&body, 401, 20003);

    let numbers = format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers.json?PageSize=1");
    let resp = sim.req(Method::GET, &numbers, STD_KEY, STD_SECRET).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = sim.req(Method::GET, &account_path(PROD), MAIN_KEY, MAIN_SECRET).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = sim.req(Method::GET, &account_path(PROD), STD_KEY, "wrong").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let log = sim.handle.requests();
    let principals: Vec<_> = log.iter().map(|r| r.principal.clone()).collect();
    assert_eq!(
        principals,
        vec![Some(STD_KEY.to_string()), Some(STD_KEY.to_string()), Some(MAIN_KEY.to_string()), None]
    );
}

#[tokio::test]
async fn parent_credentials_reach_a_subaccount() {
    let sim = Sim::start().await;
    sim.handle
        .seed_yaml(&format!(
            "accounts: [{{friendly_name: child, sid: AC000000000000000000000000000000c1, parent: {PROD}}}]"
        ))
        .unwrap();
    let (status, body) = json(sim.get(&account_path("AC000000000000000000000000000000c1")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["owner_account_sid"], PROD);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let sim = Sim::start().await;
    let path = format!("/2010-04-01/Accounts/{PROD}/Calls.json");
    let (status, body) = json(sim.get(&path).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
    assert_eq!(body["message"], format!("The requested resource {path} was not found"));

    let resp = sim.req(Method::PUT, &account_path(PROD), PROD, PROD_TOKEN).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_twilio_error(&body, 405, 20004);
}

#[tokio::test]
async fn update_account_is_logged_and_changes_state() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.post_form(&account_path(PROD), &[("FriendlyName", "Renamed")]).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["friendly_name"], "Renamed");
    let log = sim.handle.requests();
    let updates = log.route("UpdateAccount");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].form_value("FriendlyName"), Some("Renamed"));
    assert_eq!(updates[0].account_sid.as_deref(), Some(PROD));
}

#[tokio::test]
async fn rotated_token_replaces_the_old_one() {
    let sim = Sim::start().await;
    let new = sim.handle.rotate_auth_token(PROD, None).unwrap();
    assert_ne!(new, PROD_TOKEN);
    assert_eq!(sim.get(&account_path(PROD)).await.status(), StatusCode::UNAUTHORIZED);
    let resp = sim.req(Method::GET, &account_path(PROD), PROD, &new).send().await.unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["auth_token"], new);
}
