//! The API server itself enforces the `WhatsAppChannel` schema: good manifests apply, bad ones
//! are rejected at apply time.

mod common;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn channels(env: &common::TestEnv) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("whatsapp-operator.io", "v1alpha1", "WhatsAppChannel");
    Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::from_gvk(&gvk))
}

fn valid_spec() -> Value {
    json!({
        "phoneNumber": "+14155550100",
        "instance": "crm-prod",
        "twilio": {
            "accountSid": "AC5eed5eed5eed5eed5eed5eed5eed5eed",
            "credentialsSecretRef": {"name": "twilio"}
        },
        "webhook": {"url": "https://receiver.example.com/api/webhook/LeadGen/whatsapp"},
        "queue": "sales"
    })
}

async fn create(env: &common::TestEnv, name: &str, spec: Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("manifest");
    channels(env).create(&PostParams::default(), &obj).await
}

/// Asserts the API server rejected the manifest as invalid, naming `field`.
async fn assert_rejected(env: &common::TestEnv, name: &str, spec: Value, field: &str) {
    match create(env, name, spec).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            assert!(status.message.contains(field), "message should name {field}: {}", status.message);
        }
        other => panic!("expected the API server to reject {name}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_channel_is_accepted_with_defaults() {
    let env = common::setup("api-valid").await;
    let created = create(&env, "valid", valid_spec()).await.expect("valid channel accepted");
    let spec = &created.data["spec"];
    assert_eq!(spec["mode"], "Business");
    assert_eq!(spec["active"], true);
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(spec["bindingPolicy"], "Exclusive");
    assert_eq!(spec["webhook"]["method"], "POST");
}

#[tokio::test]
async fn a_bad_phone_number_is_rejected() {
    let env = common::setup("api-phone").await;
    let mut spec = valid_spec();
    spec["phoneNumber"] = json!("14155550100");
    assert_rejected(&env, "no-plus", spec, "spec.phoneNumber").await;
    let mut spec = valid_spec();
    spec["phoneNumber"] = json!("+1 (415) 555-0100");
    assert_rejected(&env, "formatted", spec, "spec.phoneNumber").await;
    let mut spec = valid_spec();
    spec["confirmationPhoneNumber"] = json!("+0123");
    assert_rejected(&env, "bad-confirmation", spec, "spec.confirmationPhoneNumber").await;
}

#[tokio::test]
async fn an_http_webhook_is_rejected() {
    let env = common::setup("api-webhook").await;
    let mut spec = valid_spec();
    spec["webhook"]["url"] = json!("http://receiver.example.com/hook");
    assert_rejected(&env, "http-webhook", spec, "spec.webhook.url").await;
    let mut spec = valid_spec();
    spec["webhook"]["method"] = json!("PUT");
    assert_rejected(&env, "put-webhook", spec, "spec.webhook.method").await;
}

#[tokio::test]
async fn urls_with_userinfo_are_rejected() {
    let env = common::setup("api-userinfo").await;
    for (name, url) in [
        ("webhook-userinfo", "https://user:pass@receiver.example.com/hook"),
        ("webhook-user", "https://user@receiver.example.com/hook"),
    ] {
        let mut spec = valid_spec();
        spec["webhook"]["url"] = json!(url);
        assert_rejected(&env, name, spec, "spec.webhook.url").await;
    }
    for (name, url) in [
        ("identity-userinfo", "https://client:secret@id.example.com"),
        ("identity-loopback-userinfo", "http://client:secret@127.0.0.1:5000"),
    ] {
        let mut spec = valid_spec();
        spec["identityServer"] =
            json!({"url": url, "clientId": "crm-app", "clientSecretRef": {"name": "crm-identity"}});
        assert_rejected(&env, name, spec, "spec.identityServer.url").await;
    }
    // An `@` after the authority is not userinfo.
    let mut spec = valid_spec();
    spec["webhook"]["url"] = json!("https://receiver.example.com/hooks/@team/whatsapp?notify=ops@example.com");
    spec["identityServer"] = json!({
        "url": "https://id.example.com/tenants/@crm",
        "clientId": "crm-app",
        "clientSecretRef": {"name": "crm-identity"}
    });
    create(&env, "at-in-path", spec).await.expect("an @ in the path or query is accepted");
}

#[tokio::test]
async fn a_bad_account_sid_is_rejected() {
    let env = common::setup("api-sid").await;
    for (name, sid) in [
        ("sk-sid", "SK5eed5eed5eed5eed5eed5eed5eed5eed"),
        ("short-sid", "AC5eed"),
        ("non-hex", "ACzzzz5eed5eed5eed5eed5eed5eed5eed"),
    ] {
        let mut spec = valid_spec();
        spec["twilio"]["accountSid"] = json!(sid);
        assert_rejected(&env, name, spec, "spec.twilio.accountSid").await;
    }
}

#[tokio::test]
async fn missing_required_fields_are_rejected() {
    let env = common::setup("api-required").await;
    for field in ["phoneNumber", "instance", "twilio", "webhook"] {
        let mut spec = valid_spec();
        spec.as_object_mut().expect("object").remove(field);
        assert_rejected(&env, &format!("no-{}", field.to_lowercase()), spec, &format!("spec.{field}")).await;
    }
    let mut spec = valid_spec();
    spec["twilio"].as_object_mut().expect("object").remove("credentialsSecretRef");
    assert_rejected(&env, "no-secret-ref", spec, "spec.twilio.credentialsSecretRef").await;
}

#[tokio::test]
async fn an_active_channel_needs_a_queue() {
    let env = common::setup("api-queue").await;
    let mut spec = valid_spec();
    spec.as_object_mut().expect("object").remove("queue");
    assert_rejected(&env, "active-no-queue", spec.clone(), "queue").await;
    spec["active"] = json!(false);
    create(&env, "inactive-no-queue", spec).await.expect("an inactive channel needs no queue");
}

#[tokio::test]
async fn enums_languages_and_instances_are_checked() {
    let env = common::setup("api-enums").await;
    let cases = [
        ("mode", json!("Production"), "spec.mode"),
        ("deletionPolicy", json!("Retain"), "spec.deletionPolicy"),
        ("bindingPolicy", json!("Steal"), "spec.bindingPolicy"),
        ("language", json!("english language"), "spec.language"),
        ("instance", json!("CRM_Prod"), "spec.instance"),
    ];
    for (field, value, path) in cases {
        let mut spec = valid_spec();
        spec[field] = value;
        assert_rejected(&env, &format!("bad-{}", field.to_lowercase()), spec, path).await;
    }
}

#[tokio::test]
async fn kubectl_applies_the_crds_and_the_examples() {
    let env = common::setup("api-examples").await;
    let root = env!("CARGO_MANIFEST_DIR");
    let out = common::kubectl().args(["apply", "-f", &format!("{root}/crds/")]).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl apply -f crds/: {}", String::from_utf8_lossy(&out.stderr));
    let out = common::kubectl()
        .args(["apply", "-n", &env.ns, "-f", &format!("{root}/examples/")])
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl apply -f examples/: {}", String::from_utf8_lossy(&out.stderr));
    let out = common::kubectl().args(["get", "wac", "-n", &env.ns, "-o", "name"]).output().expect("run kubectl");
    let names = String::from_utf8_lossy(&out.stdout);
    let count = names.lines().count();
    let files = std::fs::read_dir(format!("{root}/examples")).expect("examples/").count();
    assert_eq!(count, files, "one channel per example file: {names}");
    // `kubectl explain` teaches the API from the schema's descriptions.
    let out = common::kubectl().args(["explain", "wac.spec.twilio"]).output().expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("credentialsSecretRef"), "kubectl explain: {text}");
}
