//! Fault injection and the per-account concurrency limit.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use twilio_sim::{FaultAction, FaultRule};

fn account_path() -> String {
    format!("/2010-04-01/Accounts/{PROD}.json")
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{PROD}/Messages.json")
}

const SEND: &[(&str, &str)] =
    &[("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", "confirm")];

#[tokio::test]
async fn error_status_with_twilio_body_then_expires() {
    let sim = Sim::start().await;
    sim.handle
        .add_fault(FaultRule::new(FaultAction::Error { status: 500, code: None, message: None }).times(1))
        .unwrap();
    let (status, body) = json(sim.get(&account_path()).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_twilio_error(&body, 500, 20500);
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    assert!(sim.handle.faults().is_empty());

    sim.handle
        .add_fault(
            FaultRule::new(FaultAction::Error {
                status: 503,
                code: Some(20503),
                message: Some("Service Unavailable".into()),
            })
            .method("GET"),
        )
        .unwrap();
    let (status, body) = json(sim.get(&account_path()).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_twilio_error(&body, 503, 20503);
    assert_eq!(sim.handle.requests().last().unwrap().fault.as_deref(), Some("error 503"));
    sim.handle.clear_faults();
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rate_limit_with_and_without_retry_after() {
    let sim = Sim::start().await;
    sim.handle.add_fault(FaultRule::new(FaultAction::RateLimit { retry_after: Some(7) }).times(1)).unwrap();
    sim.handle.add_fault(FaultRule::new(FaultAction::RateLimit { retry_after: None }).times(1)).unwrap();
    let resp = sim.get(&account_path()).await;
    assert_eq!(resp.headers()["retry-after"], "7");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_twilio_error(&body, 429, 20429);
    let resp = sim.get(&account_path()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_the_response() {
    let sim = Sim::start().await;
    sim.handle.add_fault(FaultRule::new(FaultAction::Latency { ms: 300 }).path(r"\.json$").times(1)).unwrap();
    let t = Instant::now();
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.handle.requests()[0].fault.as_deref(), Some("latency 300ms"));
    // A client timeout shorter than the latency sees a timeout.
    sim.handle.add_fault(FaultRule::new(FaultAction::Latency { ms: 2_000 }).times(1)).unwrap();
    let err = sim
        .client
        .get(sim.url(&account_path()))
        .basic_auth(PROD, Some(PROD_TOKEN))
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

#[tokio::test]
async fn drop_before_apply_leaves_state_untouched() {
    let sim = Sim::start().await;
    sim.handle
        .add_fault(FaultRule::new(FaultAction::DropBeforeApply).method("POST").path(r"/Messages\.json$").times(1))
        .unwrap();
    let err = sim.req(reqwest::Method::POST, &messages_path(), PROD, PROD_TOKEN).form(SEND).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert!(sim.handle.account(PROD).unwrap().messages.is_empty());
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.dropped);
    assert_eq!(rec.status, None);
    // The next attempt goes through.
    assert_eq!(sim.post_form(&messages_path(), SEND).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn drop_after_apply_creates_the_message_but_loses_the_response() {
    let sim = Sim::start().await;
    sim.handle.add_fault(FaultRule::new(FaultAction::DropAfterApply).method("POST").account(PROD).times(1)).unwrap();
    let res = sim.req(reqwest::Method::POST, &messages_path(), PROD, PROD_TOKEN).form(SEND).send().await;
    assert!(res.is_err(), "the client must not get the 201");
    let msgs = sim.handle.account(PROD).unwrap().messages;
    assert_eq!(msgs.len(), 1, "the message was created");
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.dropped);
    assert_eq!(rec.status, Some(201));
    assert_eq!(rec.fault.as_deref(), Some("drop_after_apply"));
    // A dedupe lookup finds it.
    let (_, body) = json(sim.get(&format!("{}?To=whatsapp%3A%2B15557770001", messages_path())).await).await;
    assert_eq!(body["messages"][0]["sid"], msgs[0].sid.as_str());
}

#[tokio::test]
async fn rules_match_on_account_and_method_only() {
    let sim = Sim::start().await;
    sim.handle
        .add_fault(FaultRule::new(FaultAction::Error { status: 500, code: None, message: None }).account(TEST))
        .unwrap();
    sim.handle
        .add_fault(FaultRule::new(FaultAction::Error { status: 502, code: None, message: None }).method("DELETE"))
        .unwrap();
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    let resp = sim
        .req(reqwest::Method::GET, &format!("/2010-04-01/Accounts/{TEST}.json"), TEST, TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let faults = sim.handle.faults();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0].hits, 1);
    assert!(sim.handle.remove_fault(faults[0].id));
    assert!(sim.handle.add_fault(FaultRule::new(FaultAction::DropBeforeApply).path("(unclosed")).is_err());
}

#[tokio::test]
async fn concurrency_limit_returns_429_for_excess_requests() {
    let sim = Sim::start().await;
    sim.handle.set_concurrency_limit(Some(PROD), Some(1));
    sim.handle.add_fault(FaultRule::new(FaultAction::Latency { ms: 1_500 }).times(1)).unwrap();
    let slow = {
        let req = sim.req(reqwest::Method::GET, &account_path(), PROD, PROD_TOKEN);
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    let handle = sim.handle.clone();
    wait_until(Duration::from_secs(5), || handle.in_flight(PROD) == 1).await;
    let resp = sim.get(&account_path()).await;
    assert_eq!(resp.headers()["twilio-concurrent-requests"], "1");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_twilio_error(&body, 429, 20429);
    // Other accounts are not limited.
    let other = sim
        .req(reqwest::Method::GET, &format!("/2010-04-01/Accounts/{TEST}.json"), TEST, TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    assert_eq!(sim.handle.in_flight(PROD), 0);
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    sim.handle.set_concurrency_limit(Some(PROD), None);
}
