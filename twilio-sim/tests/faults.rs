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
    // The log still holds it, abandoned by the client.
    let handle = sim.handle.clone();
    wait_until(Duration::from_secs(5), || handle.requests().len() == 2).await;
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.abandoned && rec.status.is_none(), "{rec:?}");
    assert_eq!(rec.fault.as_deref(), Some("latency 2000ms"), "an abandoned request names its fault");
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

#[tokio::test]
async fn latency_after_apply_times_the_client_out_after_the_write_is_applied() {
    let sim = Sim::start().await;
    sim.handle
        .add_fault(
            FaultRule::new(FaultAction::LatencyAfterApply { ms: 1_000 }).method("POST").path(r"/Messages\.json$"),
        )
        .unwrap();
    let started = Instant::now();
    let err = sim
        .req(reqwest::Method::POST, &messages_path(), PROD, PROD_TOKEN)
        .form(SEND)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The message exists although the client saw no answer.
    assert_eq!(sim.handle.account(PROD).unwrap().messages.len(), 1, "the write was applied");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    // The request is logged as abandoned by the client, with the handler's status.
    let handle = sim.handle.clone();
    wait_until(Duration::from_secs(5), || !handle.requests().is_empty()).await;
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.abandoned && !rec.dropped, "{rec:?}");
    assert_eq!(rec.status, Some(201));
    assert_eq!(rec.fault.as_deref(), Some("latency_after_apply 1000ms"));
    // A patient client gets the 201, late.
    let t = Instant::now();
    assert_eq!(sim.post_form(&messages_path(), SEND).await.status(), StatusCode::CREATED);
    assert!(t.elapsed() >= Duration::from_millis(1_000));
    let rec = sim.handle.requests().pop().unwrap();
    assert!(!rec.abandoned && !rec.dropped);
    let held = (rec.answered.unwrap() - rec.time).num_milliseconds();
    assert!(held >= 1_000, "answered {held} ms after arrival");
    assert_eq!(sim.handle.account(PROD).unwrap().messages.len(), 2);
    // Reads are untouched by a POST-only rule.
    let t = Instant::now();
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    assert!(t.elapsed() < Duration::from_millis(1_000));
}

#[tokio::test]
async fn percent_faults_a_share_of_the_requests_reproducibly() {
    let run = |seed| async move {
        let sim = Sim::start_with(twilio_sim::SimConfig { rng_seed: Some(seed), ..Default::default() }).await;
        sim.handle
            .add_fault(FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).percent(30))
            .unwrap();
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(sim.get(&account_path()).await.status().as_u16());
        }
        let faulted: Vec<_> = sim.handle.requests().iter().map(|r| r.fault.is_some()).collect();
        (statuses, faulted)
    };
    let (statuses, faulted) = run(11).await;
    let failed = statuses.iter().filter(|s| **s == 503).count();
    assert!((35..=85).contains(&failed), "about 30 % of 200 requests answered 503, got {failed}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503));
    assert_eq!(faulted.iter().filter(|f| **f).count(), failed, "the log names each faulted request");
    assert_eq!(run(11).await.0, statuses, "the same seed draws the same requests");
}

#[tokio::test]
async fn percent_and_latency_after_apply_over_the_control_api() {
    let sim = Sim::start().await;
    let resp = sim
        .client
        .post(sim.url("/_sim/faults"))
        .json(&serde_json::json!({"percent": 100, "action": {"type": "latency_after_apply", "ms": 300}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let faults = sim.handle.faults();
    assert_eq!(faults[0].rule.percent, Some(100));
    assert_eq!(faults[0].rule.action, FaultAction::LatencyAfterApply { ms: 300 });
    let t = Instant::now();
    assert_eq!(sim.get(&account_path()).await.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let resp = sim
        .client
        .post(sim.url("/_sim/faults"))
        .json(&serde_json::json!({"percent": 0, "action": {"type": "drop_before_apply"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "percent 0 is refused");
}

#[tokio::test]
async fn stall_before_apply_times_the_client_out_and_applies_nothing() {
    let sim = Sim::start().await;
    sim.handle
        .add_fault(FaultRule::new(FaultAction::StallBeforeApply { ms: 600 }).method("POST").path(r"/Messages\.json$"))
        .unwrap();
    let err = sim
        .req(reqwest::Method::POST, &messages_path(), PROD, PROD_TOKEN)
        .form(SEND)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let handle = sim.handle.clone();
    wait_until(Duration::from_secs(5), || !handle.requests().is_empty()).await;
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.abandoned, "{rec:?}");
    assert_eq!(rec.status, None, "no handler ran");
    assert_eq!(rec.fault.as_deref(), Some("stall_before_apply 600ms"));
    // A patient client sees the connection close after the stall, not an answer.
    let t = Instant::now();
    let err = sim.req(reqwest::Method::POST, &messages_path(), PROD, PROD_TOKEN).form(SEND).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(600));
    let rec = sim.handle.requests().pop().unwrap();
    assert!(rec.dropped && !rec.abandoned && rec.status.is_none(), "{rec:?}");
    assert!((rec.answered.unwrap() - rec.time).num_milliseconds() >= 600);
    // Let the first stall end: still nothing applied.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(sim.handle.account(PROD).unwrap().messages.is_empty(), "nothing was applied");
}
