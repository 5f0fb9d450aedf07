//! Checks every request shape the client produces against Twilio's OpenAPI specs, with the
//! simulator's contract checker (`twilio_sim::spec::Contract`, strict: unknown parameters,
//! enums, patterns, content types). Needs the specs (`hack/fetch-twilio-specs.sh`).

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::testutil::{MockServer, Recorded, Reply, AC, SK};
use super::*;

const PN: &str = "PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const XE: &str = "XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn check(requests: &[Recorded]) -> Vec<String> {
    let contract = match twilio_sim::spec::Contract::load_default() {
        Ok(contract) => contract,
        Err(e) => {
            panic!("Twilio OpenAPI specs not available (run hack/fetch-twilio-specs.sh): {e}")
        }
    };
    requests
        .iter()
        .map(|r| {
            let parts = twilio_sim::spec::RequestParts {
                method: &r.method,
                path: &r.path,
                query: r.query.as_deref(),
                content_type: r.content_type.as_deref(),
                body: r.body.as_bytes(),
            };
            match contract.check_request(&parts) {
                Ok(op) => op.operation_id,
                Err(v) => panic!("{} {}?{}: {v}", r.method, r.path, r.query.as_deref().unwrap_or("")),
            }
        })
        .collect()
}

#[tokio::test]
async fn every_request_conforms_to_the_spec() {
    let number_page1 = format!(
        r#"{{"incoming_phone_numbers": [], "next_page_uri": "/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json?PhoneNumber=%2B14155550100&PageSize=50&Page=1&PageToken=PA1"}}"#
    );
    let sender_page1 = r#"{"senders": [], "meta": {"next_page_url": "https://messaging.twilio.com/v2/Channels/Senders?PageSize=50&Page=1&Channel=whatsapp&PageToken=PT1"}}"#;
    let message_page1 = format!(
        r#"{{"messages": [], "next_page_uri": "/2010-04-01/Accounts/{AC}/Messages.json?To=whatsapp%3A%2B15552229999&PageSize=50&Page=1&PageToken=PA2"}}"#
    );
    let server = MockServer::start(vec![
        Reply::json(200, "{}"),
        Reply::json(200, r#"{"incoming_phone_numbers": []}"#),
        Reply::json(200, number_page1),
        Reply::json(200, r#"{"incoming_phone_numbers": []}"#),
        Reply::json(200, "{}"),
        Reply::json(200, "{}"),
        Reply::json(200, sender_page1),
        Reply::json(200, r#"{"senders": [], "meta": {"next_page_url": null}}"#),
        Reply::json(200, "{}"),
        Reply::json(202, "{}"),
        Reply::json(202, "{}"),
        Reply::json(200, "{}"),
        Reply::json(201, "{}"),
        Reply::json(201, "{}"),
        Reply::json(200, "{}"),
        Reply::json(200, "{}"),
        Reply::json(200, message_page1),
        Reply::json(200, r#"{"messages": []}"#),
        Reply::json(200, r#"{"whatsapp": {"status": "approved"}}"#),
    ])
    .await;
    let client = server.client();
    let token = Credentials::auth_token(AC, Secret::new("t"));
    let key = Credentials::api_key(AC, SK, Secret::new("s"));

    client.verify_credentials(&token).await.unwrap();
    client.verify_credentials(&key).await.unwrap();
    client.find_incoming_number(&token, "+14155550100").await.unwrap();
    client.update_incoming_number_webhook(&token, PN, "https://r.example/hook?x=1", SmsMethod::Get).await.unwrap();
    client.update_incoming_number_webhook(&token, PN, "", SmsMethod::Post).await.unwrap();
    client.list_whatsapp_senders(&token).await.unwrap();
    client.fetch_sender(&token, XE).await.unwrap();
    let full = SenderWebhook {
        callback_url: Some("https://r.example/hook".into()),
        callback_method: Some(SenderWebhookMethod::Post),
        fallback_url: Some("https://f.example".into()),
        fallback_method: Some(SenderWebhookMethod::Put),
        status_callback_url: Some("https://s.example".into()),
        status_callback_method: Some("POST".into()),
    };
    client.update_sender_webhook(&token, XE, &full).await.unwrap();
    let minimal = SenderWebhook::default().with_callback("https://r.example/hook", SenderWebhookMethod::Post);
    client.update_sender_webhook(&token, XE, &minimal).await.unwrap();
    client.fetch_messaging_service(&token, "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();
    let mut message = NewMessage {
        from: "whatsapp:+14155238886".into(),
        to: "whatsapp:+15552229999".into(),
        content: MessageContent::Body("Connected.".into()),
        status_callback: Some("https://op.example/status".into()),
    };
    client.create_message(&token, &message).await.unwrap();
    message.content = MessageContent::Template {
        content_sid: "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        variables: BTreeMap::from([("1".to_owned(), "crm-prod".to_owned())]),
    };
    client.create_message(&token, &message).await.unwrap();
    client.fetch_message(&token, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();
    client.fetch_message(&token, "MMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();
    let query = MessageQuery {
        to: Some("whatsapp:+15552229999".into()),
        from: Some("whatsapp:+14155238886".into()),
        date_sent_after: Some(chrono::Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()),
        limit: 50,
    };
    client.list_messages(&token, &query).await.unwrap();
    client.fetch_content_approval(&token, "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();

    let operations = check(&server.requests());
    assert_eq!(
        operations,
        [
            "FetchAccount",
            "ListIncomingPhoneNumber",
            "ListIncomingPhoneNumber",
            "ListIncomingPhoneNumber",
            "UpdateIncomingPhoneNumber",
            "UpdateIncomingPhoneNumber",
            "ListChannelsSender",
            "ListChannelsSender",
            "FetchChannelsSender",
            "UpdateChannelsSender",
            "UpdateChannelsSender",
            "FetchService",
            "CreateMessage",
            "CreateMessage",
            "FetchMessage",
            "FetchMessage",
            "ListMessage",
            "ListMessage",
            "FetchApprovalFetch",
        ]
    );
}

#[tokio::test]
async fn the_alerts_listing_conforms_and_is_bounded() {
    let page = |next: Option<&str>| {
        let next = next.map_or("null".to_owned(), |n| format!("\"{n}\""));
        let alerts: Vec<String> = (0..2)
            .map(|i| format!(r#"{{"sid": "NO{i:032}", "error_code": "11200", "request_url": "https://r.example/hook", "date_generated": "2026-12-01T12:00:0{i}Z"}}"#))
            .collect();
        format!(r#"{{"alerts": [{}], "meta": {{"next_page_url": {next}, "key": "alerts"}}}}"#, alerts.join(","))
    };
    let next =
        "https://monitor.twilio.com/v1/Alerts?StartDate=2026-12-01T11%3A45%3A00Z&PageSize=2&Page=1&PageToken=PANO1";
    let server = MockServer::start(vec![
        Reply::json(200, page(Some(next))),
        Reply::json(200, page(Some(next))),
        Reply::json(200, page(None)),
    ])
    .await;
    let client = server.client();
    let token = Credentials::auth_token(AC, Secret::new("t"));
    let since = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 11, 45, 0).unwrap();
    let bounded = client.list_alerts(&token, since, 2, 1).await.unwrap();
    assert_eq!((bounded.pages, bounded.alerts.len(), bounded.truncated), (1, 2, true));
    let all = client.list_alerts(&token, since, 2, 5).await.unwrap();
    assert_eq!((all.pages, all.alerts.len(), all.truncated), (2, 4, false), "until the link ends");
    let requests = server.requests();
    assert_eq!(check(&requests), ["ListAlert", "ListAlert", "ListAlert"]);
    assert_eq!(requests[0].query.as_deref(), Some("StartDate=2026-12-01T11%3A45%3A00Z&PageSize=2"));
}
