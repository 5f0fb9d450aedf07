//! The running simulator (strict mode) answers every implemented operation within Twilio's
//! contract: conforming requests are accepted and no response violates the spec.

use reqwest::{Client, Method, StatusCode};
use twilio_sim::{SimConfig, SimHandle, Simulator};

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "prod-auth-token-0001";

struct Caller {
    sim: SimHandle,
    http: Client,
}

impl Caller {
    async fn call(&self, method: Method, path: &str, body: Body<'_>) -> (StatusCode, String) {
        self.call_as(ACCOUNT, TOKEN, method, path, body).await
    }

    async fn call_as(
        &self,
        user: &str,
        password: &str,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> (StatusCode, String) {
        let url = format!("{}{path}", self.sim.base_url());
        let req = self.http.request(method.clone(), &url).basic_auth(user, Some(password));
        let req = match body {
            Body::None => req,
            Body::Form(pairs) => req.form(pairs),
            Body::Json(value) => req.json(&value),
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }
}

enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
    Json(serde_json::Value),
}

fn expect(what: &str, got: (StatusCode, String), want: u16) -> serde_json::Value {
    assert_eq!(got.0.as_u16(), want, "{what}: {}", got.1);
    serde_json::from_str(&got.1).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn every_implemented_operation_answers_within_the_contract() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = SimConfig { strict: true, ..SimConfig::default() };
    let sim = Simulator::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.yaml");
    sim.seed_file(std::path::Path::new(seed)).expect("seed");
    let http = Client::builder().user_agent("spec-simulator-test").build().expect("client");
    let c = Caller { sim: sim.clone(), http };
    let acct = format!("/2010-04-01/Accounts/{ACCOUNT}");
    let pn1 = "PN00000000000000000000000000000001";
    let mg = "MG00000000000000000000000000000001";
    let xe = "XE00000000000000000000000000000001";

    expect("FetchAccount", c.call(Method::GET, &format!("{acct}.json"), Body::None).await, 200);
    let path = format!("{acct}/IncomingPhoneNumbers.json?PhoneNumber=%2B15551230001&PageSize=20");
    expect("ListIncomingPhoneNumber", c.call(Method::GET, &path, Body::None).await, 200);
    let number = format!("{acct}/IncomingPhoneNumbers/{pn1}.json");
    expect("FetchIncomingPhoneNumber", c.call(Method::GET, &number, Body::None).await, 200);
    let form = [("SmsUrl", "https://receiver.example.com/in"), ("SmsMethod", "POST")];
    let got = c.call(Method::POST, &number, Body::Form(&form)).await;
    expect("UpdateIncomingPhoneNumber", got, 200);

    let form =
        [("To", "whatsapp:+15557770001"), ("From", "whatsapp:+15551230001"), ("Body", "Your channel is connected")];
    let messages = format!("{acct}/Messages.json");
    let created = expect("CreateMessage", c.call(Method::POST, &messages, Body::Form(&form)).await, 201);
    let sm = created["sid"].as_str().unwrap_or_default().to_string();
    let path = format!("{messages}?To=whatsapp%3A%2B15557770001&PageSize=20");
    expect("ListMessage", c.call(Method::GET, &path, Body::None).await, 200);
    let path = format!("{acct}/Messages/{sm}.json");
    expect("FetchMessage", c.call(Method::GET, &path, Body::None).await, 200);

    expect("ListService", c.call(Method::GET, "/v1/Services", Body::None).await, 200);
    let service = format!("/v1/Services/{mg}");
    expect("FetchService", c.call(Method::GET, &service, Body::None).await, 200);
    let form = [("InboundRequestUrl", "https://receiver.example.com/in"), ("UseInboundWebhookOnNumber", "false")];
    expect("UpdateService", c.call(Method::POST, &service, Body::Form(&form)).await, 200);
    let path = format!("{service}/PhoneNumbers");
    expect("ListPhoneNumber", c.call(Method::GET, &path, Body::None).await, 200);
    let path = format!("{service}/ChannelSenders");
    expect("ListChannelSender", c.call(Method::GET, &path, Body::None).await, 200);

    let path = "/v2/Channels/Senders?Channel=whatsapp&PageSize=20";
    expect("ListChannelsSender", c.call(Method::GET, path, Body::None).await, 200);
    let sender = format!("/v2/Channels/Senders/{xe}");
    expect("FetchChannelsSender", c.call(Method::GET, &sender, Body::None).await, 200);
    let webhook = serde_json::json!({"webhook": {
        "callback_url": "https://receiver.example.com/in", "callback_method": "POST",
        "fallback_url": null, "fallback_method": null,
        "status_callback_url": null, "status_callback_method": null}});
    expect("UpdateChannelsSender", c.call(Method::POST, &sender, Body::Json(webhook)).await, 202);

    expect("ListContent", c.call(Method::GET, "/v1/Content?PageSize=20", Body::None).await, 200);
    let hx = "HX00000000000000000000000000000011";
    expect("FetchContent", c.call(Method::GET, &format!("/v1/Content/{hx}"), Body::None).await, 200);
    let path = format!("/v1/Content/{hx}/ApprovalRequests");
    expect("FetchApprovalFetch", c.call(Method::GET, &path, Body::None).await, 200);
    let content = serde_json::json!({"friendly_name": "hello", "language": "en",
        "variables": {"1": "you"}, "types": {"twilio/text": {"body": "Hello {{1}}"}}});
    let created = expect("CreateContent", c.call(Method::POST, "/v1/Content", Body::Json(content)).await, 201);
    let new_hx = created["sid"].as_str().unwrap_or_default().to_string();
    let submit = serde_json::json!({"name": "hello", "category": "UTILITY"});
    let path = format!("/v1/Content/{new_hx}/ApprovalRequests/whatsapp");
    expect("CreateApprovalCreate", c.call(Method::POST, &path, Body::Json(submit)).await, 201);
    let form = [
        ("To", "whatsapp:+15557770004"),
        ("From", "whatsapp:+15551230001"),
        ("ContentSid", hx),
        ("ContentVariables", r#"{"1":"crm-prod"}"#),
    ];
    expect("CreateMessage with a template", c.call(Method::POST, &messages, Body::Form(&form)).await, 201);

    // Errors: the classic error shape.
    let got = c.call_as(ACCOUNT, "wrong", Method::GET, &format!("{acct}.json"), Body::None).await;
    expect("FetchAccount with a wrong token", got, 401);
    let other = "AC00000000000000000000000000000002";
    let got = c.call_as(other, "test-auth-token-0002", Method::GET, &number, Body::None).await;
    expect("another account's number", got, 404);
    let missing = format!("{acct}/IncomingPhoneNumbers/PN000000000000000000000000000000ff.json");
    expect("unknown number", c.call(Method::GET, &missing, Body::None).await, 404);

    // Deletes last.
    let sender2 = "/v2/Channels/Senders/XE00000000000000000000000000000002";
    expect("DeleteChannelsSender", c.call(Method::DELETE, sender2, Body::None).await, 204);
    let number2 = format!("{acct}/IncomingPhoneNumbers/PN00000000000000000000000000000002.json");
    expect("DeleteIncomingPhoneNumber", c.call(Method::DELETE, &number2, Body::None).await, 204);
    expect("DeleteContent", c.call(Method::DELETE, &format!("/v1/Content/{new_hx}"), Body::None).await, 204);

    let violations = sim.violations();
    assert!(
        violations.is_empty(),
        "contract violations:\n{}",
        violations.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join("\n")
    );
    let unmatched: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.operation_id.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(unmatched.is_empty(), "requests without an operation: {unmatched:?}");
}
