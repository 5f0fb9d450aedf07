//! Bad input: the corpus of malformed channels in `tests/corpus/bad-channels/` (one manifest per
//! file; what must happen to each is in `tests/corpus/bad-channels.yaml`) applied to the real API
//! server with the operator running, and given to `whatsapp-operator check`.
//!
//! Each case is either `refused` by the API server (the CRD schema: the message names the field)
//! or, where the schema cannot express the rule, accepted and reported by the operator as a
//! `condition` with a stable reason and a clear message; the simulator must then have heard
//! nothing at all, although it knows the account and the Secret `twilio` holds its token (so a
//! call that slipped through would succeed, not fail quietly). `check` must report an error for
//! every case. The channels in `tests/corpus/odd-but-valid/` (injection strings that are just
//! text, right-to-left script, every length at its limit, an encoded URL) must pass all three:
//! admitted, Ready, and clean for `check`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;
use whatsapp_operator::api::WhatsAppChannel;

use common::operator::*;
use common::TestEnv;

/// The Account SID every corpus channel names.
const CORPUS_ACCOUNT: &str = "AC5eed5eed5eed5eed5eed5eed5eed5eed";

/// What must happen to one corpus file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The API server refuses the channel; its message contains this.
    refused: Option<String>,
    /// The channel is admitted and shows this condition.
    condition: Option<ExpectedCondition>,
    /// The channel is admitted and goes Ready (odd but valid input).
    ready: Option<bool>,
    /// `check` reports an error containing this (bad input only).
    check: Option<String>,
}

/// A condition the operator must report: `status: False`, this reason, a message containing this.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedCondition {
    #[serde(rename = "type")]
    type_: String,
    reason: String,
    message: String,
}

/// One corpus file: its name, its documents (Secrets first, the channel last), what must happen.
struct Case {
    file: String,
    docs: Vec<Value>,
    expect: Expect,
}

impl Case {
    fn channel(&self) -> &Value {
        self.docs.last().expect("a channel in every case")
    }

    fn name(&self) -> &str {
        self.channel()["metadata"]["name"].as_str().unwrap_or("<unnamed>")
    }
}

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)
}

/// The corpus `name`: every file of `tests/corpus/<name>/` with its entry of
/// `tests/corpus/<name>.yaml`, and no entry without a file.
fn corpus(name: &str) -> Vec<Case> {
    let index_path = corpus_dir(&format!("{name}.yaml"));
    let index = std::fs::read_to_string(&index_path).expect("the corpus index");
    let mut index: BTreeMap<String, Expect> = serde_yaml::from_str(&index).expect("the corpus index parses");
    let mut cases = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir(name)).expect("the corpus directory").collect();
    files.sort_by_key(|e| e.as_ref().map(|e| e.file_name()).ok());
    for entry in files {
        let path = entry.expect("a directory entry").path();
        let file = path.file_name().and_then(|f| f.to_str()).expect("a UTF-8 file name").to_owned();
        let expect = index.remove(&file).unwrap_or_else(|| panic!("{file} has no entry in {index_path:?}"));
        let text = std::fs::read_to_string(&path).expect("a corpus file");
        let docs = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
            .collect();
        cases.push(Case { file, docs, expect });
    }
    assert!(index.is_empty(), "entries without a file in {index_path:?}: {:?}", index.keys());
    cases
}

fn channels(env: &TestEnv) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("whatsapp-operator.io", "v1alpha1", "WhatsAppChannel");
    Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::from_gvk(&gvk))
}

/// Creates the case's Secrets, then its channel: the API server's answer to the channel.
async fn apply(env: &TestEnv, case: &Case) -> Result<DynamicObject, kube::Error> {
    let (channel, secrets) = case.docs.split_last().expect("a channel in every case");
    let secret_api: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    for secret in secrets {
        let secret: Secret = serde_json::from_value(secret.clone()).expect("a Secret");
        secret_api.create(&PostParams::default(), &secret).await.unwrap_or_else(|e| panic!("{}: {e}", case.file));
    }
    let obj: DynamicObject = serde_json::from_value(channel.clone()).expect("a manifest");
    channels(env).create(&PostParams::default(), &obj).await
}

/// The numbers of the corpus's Business channels, as WhatsApp senders of the corpus account.
fn seed(cases: &[Case]) -> String {
    let mut numbers: Vec<&str> = cases
        .iter()
        .filter_map(|c| c.channel()["spec"]["phoneNumber"].as_str())
        .filter(|n| whatsapp_operator::twilio::E164::parse(n).is_ok_and(|e| e.as_str() == *n))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut yaml = format!(
        "accounts:\n- sid: {CORPUS_ACCOUNT}\n  friendly_name: corpus\n  auth_token: {}\n  whatsapp_senders:\n",
        common::operator::FIXTURE_TOKEN
    );
    for n in numbers.iter().filter(|n| **n != whatsapp_operator::api::SANDBOX_NUMBER) {
        yaml.push_str(&format!("  - sender_id: whatsapp:{n}\n    status: ONLINE\n"));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_channel_is_refused_or_reported_and_twilio_hears_nothing() {
    let cases = corpus("bad-channels");
    let env = common::setup("bad-input").await;
    let sim = start_sim().await;
    sim.seed_yaml(&seed(&cases)).expect("seed");
    // The corpus account's real token: a Twilio call that slipped through would succeed.
    create_secret(&env, "twilio", &[("authToken", FIXTURE_TOKEN)]).await;
    let _operator = start_operator(&env.client, config(&env, &sim));

    let mut admitted = Vec::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let result = apply(&env, case).await;
        match (&case.expect.refused, &case.expect.condition, result) {
            (Some(fragment), None, Err(kube::Error::Api(status)))
                if status.code == 422 && status.message.contains(fragment.as_str()) => {}
            (None, Some(_), Ok(_)) => admitted.push(case),
            (_, _, other) => {
                wrong.push(format!("{}: expected {:?}, the API server answered {other:?}", case.file, case.expect))
            }
        }
    }
    assert!(wrong.is_empty(), "{} cases went wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert!(!admitted.is_empty(), "the corpus has cases the schema cannot express");
    for case in admitted {
        let want = case.expect.condition.as_ref().expect("a condition");
        let (t, r, m) = (want.type_.clone(), want.reason.clone(), want.message.clone());
        let ch = wait_for(&env, case.name(), &format!("{}: {t}=False/{r}", case.file), move |ch| {
            common::operator::current(ch, &t)
                .is_some_and(|c| c.status == "False" && c.reason == r && c.message.contains(m.as_str()))
        })
        .await;
        // Ready says why, with the same stable reason; the channel is stalled, not retried.
        assert!(has(&ch, "Ready", "False", &want.reason), "{}: {:#?}", case.file, ch.status);
        assert!(has(&ch, "Stalled", "True", &want.reason), "{}: {:#?}", case.file, ch.status);
    }
    let heard = sim.requests();
    assert!(heard.is_empty(), "the simulator heard {} requests for bad input: {heard:#?}", heard.len());

    // Refused means nothing was stored.
    let stored: Vec<String> = channels(&env)
        .list(&Default::default())
        .await
        .expect("list channels")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let expected: Vec<&str> =
        cases.iter().filter(|c| c.expect.condition.is_some()).map(|c| c.name()).collect::<Vec<_>>();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    let mut expected_sorted: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected_sorted.sort();
    assert_eq!(stored_sorted, expected_sorted, "only the admitted cases are stored");
    delete_all(&env, &stored).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_valid_channels_are_admitted_and_go_ready() {
    let cases = corpus("odd-but-valid");
    let env = common::setup("odd-input").await;
    let sim = start_sim().await;
    sim.seed_yaml(&seed(&cases)).expect("seed");
    create_secret(&env, "twilio", &[("authToken", FIXTURE_TOKEN)]).await;
    let _operator = start_operator(&env.client, config(&env, &sim));
    for case in &cases {
        assert_eq!(case.expect.ready, Some(true), "{}: odd-but-valid cases go Ready", case.file);
        apply(&env, case).await.unwrap_or_else(|e| panic!("{}: refused: {e}", case.file));
    }
    for case in &cases {
        let ch = wait_condition(&env, case.name(), "Ready", "True", Some("ChannelReady")).await;
        // The text arrives unchanged: the queue as written, the webhook as written at Twilio.
        let spec = &case.channel()["spec"];
        let status = ch.status.as_ref().expect("status");
        assert_eq!(status.queue.as_deref(), spec["queue"].as_str(), "{}", case.file);
        let url = spec["webhook"]["url"].as_str().expect("a webhook URL");
        let sender = status.sender.as_ref().expect("a sender");
        assert_eq!(sender.webhook_url.as_deref().map(common::unmarked).as_deref(), Some(url), "{}", case.file);
    }
    let names: Vec<String> = cases.iter().map(|c| c.name().to_owned()).collect();
    delete_all(&env, &names).await;
}

/// Deletes the channels and waits until they are gone (their bindings released), so that a run
/// against a long-lived cluster finds the numbers free again.
async fn delete_all(env: &TestEnv, names: &[String]) {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    for name in names {
        api.delete(name, &DeleteParams::default()).await.expect("delete a channel");
    }
    common::within(common::TIMEOUT, async {
        for name in names {
            while api.get_opt(name).await.expect("get a channel").is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    })
    .await;
}

/// Runs `whatsapp-operator check PATH`: (exit code, stdout).
fn check(path: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run whatsapp-operator check");
    assert!(out.stderr.is_empty(), "check could not read the corpus: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().expect("exited"), String::from_utf8(out.stdout).expect("UTF-8 output"))
}

#[test]
fn check_rejects_every_bad_channel_and_passes_the_odd_but_valid_ones() {
    // One file at a time: each case must be refused on its own, not for sharing a number.
    let dir = corpus_dir("bad-channels");
    for case in corpus("bad-channels") {
        let path = dir.join(&case.file);
        let fragment = case.expect.check.as_deref().unwrap_or_else(|| panic!("{}: no check fragment", case.file));
        let (code, out) = check(&path);
        assert_eq!(code, 1, "{}: {out}", case.file);
        let prefix = format!("{}:", path.display());
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with(&prefix) && l.contains(": error: ")).collect();
        assert!(
            errors.iter().any(|l| l.contains(fragment)),
            "{}: check reported no error with {fragment:?}; it said: {errors:#?}",
            case.file
        );
    }
    let (code, out) = check(&corpus_dir("odd-but-valid"));
    let cases = corpus("odd-but-valid");
    assert_eq!((code, out), (0, format!("checked {0} channels in {0} files: 0 errors, 0 warnings\n", cases.len())));
}
