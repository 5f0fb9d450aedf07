//! Content templates (Content API v1) and WhatsApp's 24-hour window: free-form messages outside
//! the window fail with 63016, approved templates go through, template variables are checked.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use twilio_sim::state::SessionWindowPatch;
use twilio_sim::SimConfig;

const APPROVED: &str = "HX00000000000000000000000000000011";
const PENDING: &str = "HX00000000000000000000000000000012";
const REJECTED: &str = "HX00000000000000000000000000000013";
const FROM: &str = "whatsapp:+15551230001";

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{PROD}/Messages.json")
}

/// The example seed, with the 24-hour window enforced for the production account.
async fn strict() -> Sim {
    let sim = Sim::start_with(SimConfig { strict: true, ..SimConfig::default() }).await;
    let enforce = SessionWindowPatch { enforce: Some(true), ..SessionWindowPatch::default() };
    sim.handle.update_session_window(PROD, &enforce).unwrap();
    sim
}

/// Sends, then reads the message back (which settles it).
async fn send_and_settle(sim: &Sim, form: &[(&str, &str)]) -> Value {
    let (status, created) = json(sim.post_form(&messages_path(), form).await).await;
    assert_eq!(status, StatusCode::CREATED, "{form:?}: {created}");
    assert_eq!(created["status"], "queued");
    let sid = created["sid"].as_str().unwrap();
    let (_, m) = json(sim.get(&format!("/2010-04-01/Accounts/{PROD}/Messages/{sid}.json")).await).await;
    m
}

#[tokio::test]
async fn free_form_needs_an_open_window_and_approved_templates_do_not() {
    let sim = strict().await;
    // Never wrote, and wrote two days ago: 63016.
    for to in ["whatsapp:+15557770004", "whatsapp:+15557770005"] {
        let m = send_and_settle(&sim, &[("To", to), ("From", FROM), ("Body", "Connected")]).await;
        assert_eq!((m["status"].as_str(), m["error_code"].as_u64()), (Some("failed"), Some(63016)), "{to}: {m}");
        assert!(m["error_message"].as_str().unwrap().contains("outside the allowed window"));
    }
    // Wrote just now: delivered.
    let m = send_and_settle(&sim, &[("To", "whatsapp:+15557770009"), ("From", FROM), ("Body", "Connected")]).await;
    assert_eq!(m["status"], "delivered");
    // An approved template outside the window: delivered, its text rendered with the variables.
    let vars = json!({"1": "crm-prod", "2": "wa-abc"}).to_string();
    let m = send_and_settle(
        &sim,
        &[("To", "whatsapp:+15557770004"), ("From", FROM), ("ContentSid", APPROVED), ("ContentVariables", &vars)],
    )
    .await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["body"], "Your WhatsApp number is connected to crm-prod. Ref wa-abc");
    // Templates WhatsApp did not approve are free-form to WhatsApp: 63016 outside the window.
    for sid in [PENDING, REJECTED] {
        let m = send_and_settle(&sim, &[("To", "whatsapp:+15557770004"), ("From", FROM), ("ContentSid", sid)]).await;
        assert_eq!(m["error_code"], 63016, "{sid}: {m}");
    }
    // The user writes (the control call): the window opens for free-form messages.
    let patch = SessionWindowPatch {
        sender: Some(FROM.into()),
        recipient: Some("+15557770004".into()),
        ..SessionWindowPatch::default()
    };
    let windows = sim.handle.update_session_window(PROD, &patch).unwrap();
    assert!(windows.iter().any(|w| w.recipient == "+15557770004"));
    let m = send_and_settle(&sim, &[("To", "whatsapp:+15557770004"), ("From", FROM), ("Body", "Connected")]).await;
    assert_eq!(m["status"], "delivered");
    // Over HTTP too, closing the window by dating the last message 25 hours back.
    let at = (chrono::Utc::now() - chrono::Duration::hours(25)).to_rfc3339();
    let resp = sim
        .client
        .post(sim.url(&format!("/_sim/accounts/{PROD}/session-window")))
        .json(&json!({"sender": "+15551230001", "recipient": "+15557770004", "last_inbound": at}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let m = send_and_settle(&sim, &[("To", "whatsapp:+15557770004"), ("From", FROM), ("Body", "Connected")]).await;
    assert_eq!(m["error_code"], 63016);
    assert!(sim.handle.violations().is_empty(), "{:#?}", sim.handle.violations());
}

#[tokio::test]
async fn the_window_is_not_enforced_unless_asked() {
    let sim = Sim::start_with(SimConfig { strict: true, ..SimConfig::default() }).await;
    let m = send_and_settle(&sim, &[("To", "whatsapp:+15557770004"), ("From", FROM), ("Body", "Connected")]).await;
    assert_eq!(m["status"], "delivered", "{m}");
    let (status, body) = json(
        sim.client
            .post(sim.url(&format!("/_sim/accounts/{PROD}/session-window")))
            .json(&json!({"sender": "+15551230001"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn template_sids_and_variables_are_checked() {
    let sim = strict().await;
    let to = ("To", "whatsapp:+15557770009");
    let cases: &[(&[(&str, &str)], u64)] = &[
        // Well formed, but no template of the account.
        (&[to, ("From", FROM), ("ContentSid", "HX00000000000000000000000000000099")], 21655),
        (&[to, ("From", FROM), ("ContentSid", APPROVED), ("ContentVariables", "not json")], 21656),
        (&[to, ("From", FROM), ("ContentSid", APPROVED), ("ContentVariables", "[\"a\"]")], 21656),
        (&[to, ("From", FROM), ("ContentSid", APPROVED), ("ContentVariables", "{\"1\": 5}")], 21656),
    ];
    for (form, code) in cases {
        let (status, body) = json(sim.post_form(&messages_path(), form).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert_twilio_error(&body, 400, *code);
    }
    assert!(sim.handle.state().account(PROD).unwrap().messages.is_empty(), "nothing was created");
}

#[tokio::test]
async fn content_api_lists_fetches_creates_and_reports_approval() {
    let sim = strict().await;
    let (status, page) = json(sim.get("/v1/Content?PageSize=2").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["contents"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["key"], "contents");
    assert!(page["meta"]["next_page_url"].as_str().is_some());
    let (status, c) = json(sim.get(&format!("/v1/Content/{APPROVED}")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["account_sid"], PROD);
    assert_eq!(c["types"]["twilio/text"]["body"], "Your WhatsApp number is connected to {{1}}. Ref {{2}}");
    assert!(c["links"]["approval_fetch"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/Content/{APPROVED}/ApprovalRequests")));
    for (sid, want) in [(APPROVED, "approved"), (PENDING, "pending"), (REJECTED, "rejected")] {
        let (status, a) = json(sim.get(&format!("/v1/Content/{sid}/ApprovalRequests")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(a["whatsapp"]["status"], want, "{sid}");
    }
    let (_, a) = json(sim.get(&format!("/v1/Content/{REJECTED}/ApprovalRequests")).await).await;
    assert_eq!(a["whatsapp"]["rejection_reason"], "The template's format is invalid");
    // Another account's template is not found.
    let resp = sim.req(Method::GET, &format!("/v1/Content/{APPROVED}"), TEST, TEST_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Create, submit for approval, delete.
    let body = json!({"friendly_name": "hello", "language": "en", "variables": {"1": "you"},
                      "types": {"twilio/text": {"body": "Hello {{1}}"}}});
    let (status, c) = json(sim.post_json("/v1/Content", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let sid = c["sid"].as_str().unwrap().to_string();
    let (_, a) = json(sim.get(&format!("/v1/Content/{sid}/ApprovalRequests")).await).await;
    assert_eq!(a["whatsapp"]["status"], "unsubmitted");
    let submit = json!({"name": "hello", "category": "UTILITY"});
    let (status, a) = json(sim.post_json(&format!("/v1/Content/{sid}/ApprovalRequests/whatsapp"), &submit).await).await;
    assert_eq!((status, a["status"].as_str()), (StatusCode::CREATED, Some("received")), "{a}");
    let (status, _) = json(sim.post_json("/v1/Content", &json!({"language": "en"})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.delete(&format!("/v1/Content/{sid}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.get(&format!("/v1/Content/{sid}")).await.status(), StatusCode::NOT_FOUND);
    let bad: Vec<_> =
        sim.handle.violations().into_iter().filter(|v| v.phase != twilio_sim::ViolationPhase::Request).collect();
    assert!(bad.is_empty(), "responses conform: {bad:#?}");
}
