//! IncomingPhoneNumbers: list/filter/paging, fetch, update, purchase, release.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use twilio_sim::RequestRecords;

fn numbers_path() -> String {
    format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers.json")
}

fn number_path(sid: &str) -> String {
    format!("/2010-04-01/Accounts/{PROD}/IncomingPhoneNumbers/{sid}.json")
}

#[tokio::test]
async fn list_returns_the_2010_envelope_and_spec_fields() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.get(&numbers_path()).await).await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = PAGE_2010_KEYS.to_vec();
    expected.push("incoming_phone_numbers");
    assert_eq!(keys(&body), sorted(&expected));
    assert_eq!(body["page"], 0);
    assert_eq!(body["page_size"], 50);
    assert_eq!(body["start"], 0);
    assert_eq!(body["end"], 1);
    assert_eq!(body["next_page_uri"], Value::Null);
    assert_eq!(body["previous_page_uri"], Value::Null);
    assert_eq!(body["first_page_uri"], format!("{}?PageSize=50&Page=0", numbers_path()));
    let items = body["incoming_phone_numbers"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let n = &items[0];
    assert_eq!(keys(n), sorted(NUMBER_KEYS));
    assert_eq!(n["sid"], PN1);
    assert_eq!(n["phone_number"], "+15551230001");
    assert_eq!(n["friendly_name"], "(555) 123-0001");
    assert_eq!(n["sms_url"], "https://old-receiver.example.com/sms");
    assert_eq!(n["sms_method"], "POST");
    assert_eq!(n["sms_fallback_url"], "");
    assert_eq!(n["voice_url"], Value::Null);
    assert_eq!(n["sms_application_sid"], Value::Null);
    assert_eq!(n["capabilities"], serde_json::json!({"voice": true, "sms": true, "mms": true, "fax": false}));
    assert_eq!(n["uri"], number_path(PN1));
    assert_eq!(items[1]["sms_url"], "");
}

#[tokio::test]
async fn phone_number_filter_decodes_percent_2b_and_reproduces_the_plus_quirk() {
    let sim = Sim::start().await;
    // Properly encoded: %2B → '+'.
    let (status, body) = json(sim.get(&format!("{}?PhoneNumber=%2B15551230002", numbers_path())).await).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["incoming_phone_numbers"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["sid"], PN2);
    assert_eq!(body["uri"], format!("{}?PhoneNumber=%2B15551230002&PageSize=50&Page=0", numbers_path()));
    // A literal '+' decodes to a space: nothing matches, and the echo shows it.
    let (status, body) = json(sim.get(&format!("{}?PhoneNumber=+15551230002", numbers_path())).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["incoming_phone_numbers"], serde_json::json!([]));
    assert_eq!(body["first_page_uri"], format!("{}?PhoneNumber=+15551230002&PageSize=50&Page=0", numbers_path()));
    let log = sim.handle.requests();
    assert_eq!(log[1].query_value("PhoneNumber"), Some(" 15551230002"));
    // Unknown number: empty list, 200.
    let (status, body) = json(sim.get(&format!("{}?PhoneNumber=%2B19990000000", numbers_path())).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["incoming_phone_numbers"], serde_json::json!([]));
    // FriendlyName filter.
    let (_, body) = json(sim.get(&format!("{}?FriendlyName=%28555%29%20123-0001", numbers_path())).await).await;
    assert_eq!(body["incoming_phone_numbers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn paging_follows_next_page_uri_with_page_tokens() {
    let sim = Sim::start().await;
    let many: Vec<String> = (0..5).map(|i| format!("{{phone_number: '+1555999000{i}'}}")).collect();
    sim.handle
        .seed_yaml(&format!(
            "accounts: [{{friendly_name: pager, sid: AC000000000000000000000000000000aa, auth_token: t, incoming_phone_numbers: [{}]}}]",
            many.join(",")
        ))
        .unwrap();
    let account = "AC000000000000000000000000000000aa";
    let mut next = Some(format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json?PageSize=2"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(path) = next {
        let resp = sim.req(Method::GET, &path, account, "t").send().await.unwrap();
        let (status, body) = json(resp).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["page"], pages);
        assert_eq!(body["page_size"], 2);
        if pages > 0 {
            assert!(body["uri"].as_str().unwrap().contains("PageToken=PA"));
            assert!(body["previous_page_uri"].as_str().unwrap().contains("PageToken=PB"));
        }
        for n in body["incoming_phone_numbers"].as_array().unwrap() {
            seen.push(n["phone_number"].as_str().unwrap().to_string());
        }
        next = body["next_page_uri"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..5).map(|i| format!("+1555999000{i}")).collect::<Vec<_>>());
    // Page without token, and PageSize capped at 1000.
    let resp = sim
        .req(
            Method::GET,
            &format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json?PageSize=2&Page=2"),
            account,
            "t",
        )
        .send()
        .await
        .unwrap();
    let (_, body) = json(resp).await;
    assert_eq!(body["start"], 4);
    assert_eq!(body["end"], 4);
    let resp = sim
        .req(
            Method::GET,
            &format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json?PageSize=5000"),
            account,
            "t",
        )
        .send()
        .await
        .unwrap();
    let (_, body) = json(resp).await;
    assert_eq!(body["page_size"], 1000);
    let resp = sim
        .req(
            Method::GET,
            &format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json?PageSize=abc"),
            account,
            "t",
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 20001);
}

#[tokio::test]
async fn fetch_one_and_unknown_sid() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.get(&number_path(PN2)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(NUMBER_KEYS));
    assert_eq!(body["phone_number"], "+15551230002");
    let missing = number_path("PN0000000000000000000000000000dead");
    let (status, body) = json(sim.get(&missing).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
    assert_eq!(body["message"], format!("The requested resource {missing} was not found"));
}

#[tokio::test]
async fn update_is_partial_and_returns_the_full_resource() {
    let sim = Sim::start().await;
    let url = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
    let (status, body) = json(sim.post_form(&number_path(PN1), &[("SmsUrl", url)]).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), sorted(NUMBER_KEYS));
    assert_eq!(body["sms_url"], url);
    assert_eq!(body["sms_method"], "POST");
    assert_eq!(body["friendly_name"], "(555) 123-0001");

    let (_, body) = json(sim.post_form(&number_path(PN1), &[("SmsMethod", "GET")]).await).await;
    assert_eq!(body["sms_url"], url, "omitted params are kept");
    assert_eq!(body["sms_method"], "GET");

    // The log lets tests assert exactly which writes happened.
    let log = sim.handle.requests();
    let posts = log.to("POST", &number_path(PN1));
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].form_value("SmsUrl"), Some(url));
    assert_eq!(posts[0].route.as_deref(), Some("UpdateIncomingPhoneNumber"));
    assert_eq!(posts[0].content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(log.writes().len(), 2);
    let state = sim.handle.state();
    assert_eq!(state.account(PROD).unwrap().number(PN1).unwrap().sms_url.as_deref(), Some(url));
}

#[tokio::test]
async fn sms_application_sid_and_sms_url_clear_each_other() {
    let sim = Sim::start().await;
    let app = "AP00000000000000000000000000000001";
    let (_, body) = json(sim.post_form(&number_path(PN1), &[("SmsApplicationSid", app)]).await).await;
    assert_eq!(body["sms_application_sid"], app);
    assert_eq!(body["sms_url"], "");
    let (_, body) = json(sim.post_form(&number_path(PN1), &[("SmsUrl", "https://x.example.com/a")]).await).await;
    assert_eq!(body["sms_application_sid"], Value::Null);
    assert_eq!(body["sms_url"], "https://x.example.com/a");
    let (_, body) = json(sim.post_form(&number_path(PN1), &[("SmsUrl", "")]).await).await;
    assert_eq!(body["sms_url"], "");
}

#[tokio::test]
async fn update_rejects_bad_values_without_changing_state() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.post_form(&number_path(PN1), &[("SmsMethod", "PUT")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21403);
    let (status, body) =
        json(sim.post_form(&number_path(PN1), &[("SmsUrl", "not a url"), ("SmsMethod", "GET")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21502);
    let (status, _) = json(sim.post_form(&number_path(PN1), &[("SmsApplicationSid", "XX1")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let n = sim.handle.account(PROD).unwrap().number(PN1).unwrap().clone();
    assert_eq!(n.sms_method, "POST");
    assert_eq!(n.sms_url.as_deref(), Some("https://old-receiver.example.com/sms"));
    let (status, body) = json(
        sim.post_form(&number_path("PN0000000000000000000000000000dead"), &[("SmsUrl", "https://a.example.com")]).await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_twilio_error(&body, 404, 20404);
}

#[tokio::test]
async fn purchase_and_release_work_and_are_logged() {
    let sim = Sim::start().await;
    let (status, body) = json(sim.post_form(&numbers_path(), &[("PhoneNumber", "+15558880001")]).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&body), sorted(NUMBER_KEYS));
    let sid = body["sid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("PN") && sid.len() == 34);
    // Already owned.
    let (status, body) = json(sim.post_form(&numbers_path(), &[("PhoneNumber", "+15551230001")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_twilio_error(&body, 400, 21422);
    // By area code.
    let (status, body) = json(sim.post_form(&numbers_path(), &[("AreaCode", "415")]).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["phone_number"].as_str().unwrap().starts_with("+1415"));
    // Neither.
    let (status, _) = json(sim.post_form(&numbers_path(), &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let resp = sim.delete(&number_path(&sid)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().get("content-type").is_none());
    assert!(resp.text().await.unwrap().is_empty());
    assert_eq!(sim.delete(&number_path(&sid)).await.status(), StatusCode::NOT_FOUND);

    let log = sim.handle.requests();
    assert_eq!(log.route("CreateIncomingPhoneNumber").len(), 4);
    assert_eq!(log.route("DeleteIncomingPhoneNumber").len(), 2);
    // Releasing a pooled number drops it from the Messaging Service.
    assert_eq!(sim.delete(&number_path(PN2)).await.status(), StatusCode::NO_CONTENT);
    let acct = sim.handle.account(PROD).unwrap();
    assert!(acct.service(MG1).unwrap().phone_numbers.is_empty());
}
