//! The OAuth2 client-credentials token endpoint (identity server stand-in).

mod common;

use common::*;
use reqwest::StatusCode;
use twilio_sim::{RequestKind, REDACTED};

#[tokio::test]
async fn client_credentials_in_the_form() {
    let sim = Sim::start().await;
    let resp = sim
        .client
        .post(sim.url("/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crm-messaging"),
            ("client_secret", "crm-client-secret"),
            ("scope", "messaging"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(&["access_token", "expires_in", "token_type", "scope"]));
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "messaging");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32);

    let log = sim.handle.requests();
    let rec = log.last().unwrap();
    assert_eq!(rec.kind, RequestKind::OAuth);
    assert_eq!(rec.principal.as_deref(), Some("crm-messaging"));
    assert_eq!(rec.form_value("client_secret"), Some(REDACTED));
    let dump = serde_json::to_string(&log).unwrap();
    assert!(!dump.contains("crm-client-secret") && !dump.contains(&token));
}

#[tokio::test]
async fn client_credentials_via_basic_and_all_scopes_by_default() {
    let sim = Sim::start().await;
    let resp = sim
        .client
        .post(sim.url("/connect/token"))
        .basic_auth("crm-messaging", Some("crm-client-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "messaging channels");
}

#[tokio::test]
async fn bad_client_grant_and_scope_errors() {
    let sim = Sim::start().await;
    let post = |form: Vec<(&'static str, &'static str)>| sim.client.post(sim.url("/connect/token")).form(&form).send();
    let (status, body) = json(
        post(vec![("grant_type", "client_credentials"), ("client_id", "crm-messaging"), ("client_secret", "nope")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = json(
        post(vec![("grant_type", "client_credentials"), ("client_id", "ghost"), ("client_secret", "x")]).await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = json(
        post(vec![("grant_type", "password"), ("client_id", "crm-messaging"), ("client_secret", "crm-client-secret")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (status, body) = json(
        post(vec![
            ("grant_type", "client_credentials"),
            ("client_id", "crm-messaging"),
            ("client_secret", "crm-client-secret"),
            ("scope", "admin"),
        ])
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");

    // Basic with a wrong secret: 401 with WWW-Authenticate (RFC 6749 §5.2).
    let resp = sim
        .client
        .post(sim.url("/connect/token"))
        .basic_auth("crm-messaging", Some("nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let resp = sim.client.get(sim.url("/connect/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn discovery_document() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.client.get(sim.url("/.well-known/openid-configuration")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_endpoint"], format!("{}/connect/token", sim.handle.base_url()));
}

#[tokio::test]
async fn secrets_in_a_query_string_are_redacted_in_the_log() {
    let sim = Sim::start().await;
    let resp = sim
        .client
        .get(sim.url("/connect/token?client_id=crm-messaging&client_secret=crm-client-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let rec = sim.handle.requests().pop().unwrap();
    assert_eq!(rec.query_value("client_secret"), Some(REDACTED));
    assert!(!rec.query.unwrap().contains("crm-client-secret"));
}
