//! Shared helpers for the simulator's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;
use twilio_sim::{SimConfig, SimHandle, Simulator};

pub const PROD: &str = "AC00000000000000000000000000000001";
pub const PROD_TOKEN: &str = "prod-auth-token-0001";
pub const STD_KEY: &str = "SK00000000000000000000000000000001";
pub const STD_SECRET: &str = "prod-key-secret-0001";
pub const MAIN_KEY: &str = "SK00000000000000000000000000000002";
pub const MAIN_SECRET: &str = "prod-key-secret-0002";
pub const PN1: &str = "PN00000000000000000000000000000001";
pub const PN2: &str = "PN00000000000000000000000000000002";
pub const XE1: &str = "XE00000000000000000000000000000001";
pub const XE2: &str = "XE00000000000000000000000000000002";
pub const MG1: &str = "MG00000000000000000000000000000001";
pub const TEST: &str = "AC00000000000000000000000000000002";
pub const TEST_TOKEN: &str = "test-auth-token-0002";
pub const SUSPENDED: &str = "AC00000000000000000000000000000003";
pub const SUSPENDED_TOKEN: &str = "suspended-auth-token-0003";

/// The example seed shipped with the crate.
pub fn example_seed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.yaml");
    std::fs::read_to_string(path).expect("examples/seed.yaml")
}

/// A simulator seeded with `examples/seed.yaml`, plus a client.
pub struct Sim {
    pub handle: SimHandle,
    pub client: Client,
}

pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().timeout(Duration::from_secs(20)).user_agent("twilio-sim-tests/1.0").build().expect("client")
}

impl Sim {
    pub async fn start() -> Sim {
        Sim::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> Sim {
        let handle = Simulator::start(config).await.expect("start");
        handle.seed_yaml(&example_seed()).expect("seed");
        Sim { handle, client: client() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.base_url(), path)
    }

    /// A request with Basic auth.
    pub fn req(&self, method: Method, path: &str, user: &str, pass: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).basic_auth(user, Some(pass))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path, PROD, PROD_TOKEN).send().await.expect("send")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.req(Method::POST, path, PROD, PROD_TOKEN).form(form).send().await.expect("send")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.req(Method::POST, path, PROD, PROD_TOKEN).json(body).send().await.expect("send")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path, PROD, PROD_TOKEN).send().await.expect("send")
    }

    /// GET on the control API.
    pub async fn control_get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("send")
    }
}

/// Status and JSON body.
pub async fn json(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, value)
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

/// Sorted owned strings.
pub fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Asserts a Twilio error body exactly (and `detail` when given).
pub fn assert_twilio_error(body: &Value, status: u16, code: u64) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"), "{body}");
    assert!(body["message"].is_string(), "{body}");
    let mut k = keys(body);
    k.retain(|x| x != "detail");
    assert_eq!(k, sorted(&["code", "message", "more_info", "status"]), "{body}");
}

/// Waits until `cond` holds, polling, or panics after `timeout`.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub const NUMBER_KEYS: &[&str] = &[
    "account_sid",
    "address_requirements",
    "address_sid",
    "api_version",
    "beta",
    "capabilities",
    "date_created",
    "date_updated",
    "emergency_status",
    "emergency_address_sid",
    "emergency_address_status",
    "friendly_name",
    "identity_sid",
    "origin",
    "phone_number",
    "sid",
    "sms_application_sid",
    "sms_fallback_method",
    "sms_fallback_url",
    "sms_method",
    "sms_url",
    "status_callback",
    "status_callback_method",
    "trunk_sid",
    "uri",
    "voice_application_sid",
    "voice_caller_id_lookup",
    "voice_fallback_method",
    "voice_fallback_url",
    "voice_method",
    "voice_url",
    "voice_receive_mode",
    "status",
    "bundle_sid",
];

pub const MESSAGE_KEYS: &[&str] = &[
    "account_sid",
    "api_version",
    "body",
    "date_created",
    "date_sent",
    "date_updated",
    "direction",
    "error_code",
    "error_message",
    "from",
    "messaging_service_sid",
    "num_media",
    "num_segments",
    "price",
    "price_unit",
    "sid",
    "status",
    "subresource_uris",
    "to",
    "uri",
];

pub const SENDER_KEYS: &[&str] =
    &["sid", "status", "sender_id", "configuration", "webhook", "profile", "properties", "offline_reasons", "url"];

pub const PAGE_2010_KEYS: &[&str] =
    &["page", "page_size", "start", "end", "first_page_uri", "next_page_uri", "previous_page_uri", "uri"];

pub const META_KEYS: &[&str] =
    &["page", "page_size", "first_page_url", "previous_page_url", "url", "next_page_url", "key"];
