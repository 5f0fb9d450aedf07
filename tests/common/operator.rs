//! The operator and the Twilio simulator, started in-process for one test.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::Client;
use serde_json::json;
use twilio_sim::{SimConfig, SimHandle, Simulator};
use whatsapp_operator::api::WhatsAppChannel;
use whatsapp_operator::controller::{self, OperatorConfig};
use whatsapp_operator::twilio::TwilioConfig;

use super::{within, TestEnv, TIMEOUT};

/// The Twilio simulator in strict mode: every request is checked against Twilio's OpenAPI specs,
/// and the test fails when it ends (drops the simulator) if any request or response broke the
/// contract — whether or not the test body checked.
pub async fn start_sim() -> StrictSim {
    let handle = Simulator::start(SimConfig { strict: true, ..SimConfig::default() })
        .await
        .expect("start the Twilio simulator (strict mode needs `make twilio-specs`)");
    StrictSim(handle)
}

/// A strict simulator that fails the test on any contract violation when dropped.
pub struct StrictSim(pub SimHandle);

impl std::ops::Deref for StrictSim {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.0
    }
}

impl Drop for StrictSim {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_conforming(&self.0);
        }
    }
}

/// Fails the test if the operator sent any request that breaks Twilio's contract.
pub fn assert_conforming(sim: &SimHandle) {
    let v = sim.violations();
    assert!(v.is_empty(), "the operator sent requests that break Twilio's OpenAPI contract: {v:#?}");
}

/// A running operator; stopped when dropped.
pub struct Operator {
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Whether it still runs (it has neither failed nor stopped).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Operator settings for tests: the test's namespace, the simulator, quick backoff.
pub fn config(env: &TestEnv, sim: &SimHandle) -> OperatorConfig {
    let mut cfg = OperatorConfig::new(TwilioConfig::with_single_base_url(sim.base_url()));
    cfg.namespace = Some(env.ns.clone());
    cfg.backoff_base = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_secs(2);
    cfg.instance = Some(format!("test-{}", env.ns));
    // Receiver health off: the tests that count Twilio calls count the channels' own
    // (tests/inbound.rs turns it on).
    cfg.alerts_interval = Duration::ZERO;
    cfg
}

/// Starts the operator in-process with `cfg`.
pub fn start_operator(client: &Client, cfg: OperatorConfig) -> Operator {
    let client = client.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = controller::run(client, cfg, std::future::pending()).await {
            panic!("operator failed: {e}");
        }
    });
    Operator { task }
}

/// Starts the operator in-process with `cfg`, counting into `metrics` (give the client the same
/// metrics' layer to count its API requests) and reconciling only while `leadership` leads.
pub fn start_operator_with(
    client: &Client,
    cfg: OperatorConfig,
    metrics: std::sync::Arc<whatsapp_operator::telemetry::Metrics>,
    leadership: Option<whatsapp_operator::leader::Leadership>,
) -> Operator {
    let (_, mut prepared) = controller::prepare(client.clone(), cfg);
    prepared = prepared.with_metrics(metrics);
    if let Some(l) = leadership {
        prepared = prepared.with_leadership(l);
    }
    let task = tokio::spawn(async move {
        if let Err(e) = controller::run_prepared(prepared, std::future::pending()).await {
            panic!("operator failed: {e}");
        }
    });
    Operator { task }
}

/// A random North American number no other test uses (bindings are cluster-wide).
pub fn random_number() -> String {
    use rand::Rng;
    let n: u32 = rand::rng().random_range(0..10_000_000);
    format!("+1628{n:07}")
}

/// A random Account SID.
pub fn random_account_sid() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex: String = (0..32).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect();
    format!("AC{hex}")
}

/// Creates a Secret with string data.
pub async fn create_secret(env: &TestEnv, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let data: serde_json::Map<String, serde_json::Value> =
        data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).expect("secret");
    api.create(&PostParams::default(), &secret).await.expect("create secret");
}

/// Replaces a Secret's string data.
pub async fn update_secret(env: &TestEnv, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let data: serde_json::Map<String, serde_json::Value> =
        data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let mut secret = api.get(name).await.expect("get secret");
    let fresh: Secret = serde_json::from_value(json!({"stringData": data})).expect("secret");
    secret.data = None;
    secret.string_data = fresh.string_data;
    api.replace(name, &PostParams::default(), &secret).await.expect("replace secret");
}

/// A channel spec for `number` of `account` (credentials in the Secret `twilio`) with webhook
/// `url`, instance `crm-prod` and queue `sales`.
pub fn channel_spec(account: &str, number: &str, url: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": url},
        "queue": "sales",
    })
}

/// Creates a channel from a JSON spec.
pub async fn create_channel(env: &TestEnv, name: &str, spec: serde_json::Value) -> WhatsAppChannel {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let ch: WhatsAppChannel = serde_json::from_value(json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("channel manifest");
    api.create(&PostParams::default(), &ch).await.expect("create channel")
}

/// Waits until the channel's condition `type_` has `status` (and `reason`, if given) for the
/// current generation.
pub async fn wait_condition(
    env: &TestEnv,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> WhatsAppChannel {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let (t, s, r) = (type_.to_owned(), status.to_owned(), reason.map(str::to_owned));
    let cond = move |obj: Option<&WhatsAppChannel>| {
        let Some(ch) = obj else { return false };
        let Some(st) = ch.status.as_ref() else { return false };
        st.observed_generation == ch.metadata.generation
            && st.conditions.iter().any(|c| c.type_ == t && c.status == s && r.as_ref().is_none_or(|r| &c.reason == r))
    };
    let result = tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, cond)).await;
    match result {
        Ok(Ok(Some(ch))) => ch,
        other => {
            let current = api.get(name).await.ok().and_then(|c| c.status);
            panic!("{name}: condition {type_}={status} ({reason:?}) not reached: {other:?}\nstatus: {current:#?}");
        }
    }
}

/// Gets a channel.
pub async fn get_channel(env: &TestEnv, name: &str) -> WhatsAppChannel {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    api.get(name).await.expect("get channel")
}

/// The condition `type_` of a channel.
pub fn condition<'a>(
    ch: &'a WhatsAppChannel,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    ch.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {:#?}", ch.status))
}

/// `(type, reason, note)` of the Events about a channel.
pub async fn events_for(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits until an Event with `reason` exists for the channel.
pub async fn wait_event(env: &TestEnv, name: &str, reason: &str) -> (String, String, String) {
    within(TIMEOUT, async {
        loop {
            if let Some(e) = events_for(env, name).await.into_iter().find(|e| e.1 == reason) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

/// The auth token of the account a [`Fixture`] seeds.
pub const FIXTURE_TOKEN: &str = "tok-0123456789abcdef0123456789ab";

/// A test's world: its namespace, a strict simulator seeded with one account (random SID,
/// [`FIXTURE_TOKEN`]), a random number, and the credentials Secret `twilio`.
pub struct Fixture {
    /// The namespace and client.
    pub env: TestEnv,
    /// The simulator.
    pub sim: StrictSim,
    /// The seeded account.
    pub account: String,
    /// A number for the test (seeded only if `seed_extra` does).
    pub number: String,
}

impl Fixture {
    /// Builds the fixture; `seed_extra(account, number)` returns YAML lines appended to the
    /// account's seed entry (two-space indented keys such as `  whatsapp_senders: ...`).
    pub async fn new(prefix: &str, seed_extra: impl FnOnce(&str, &str) -> String) -> Fixture {
        let env = super::setup(prefix).await;
        let sim = start_sim().await;
        let account = random_account_sid();
        let number = random_number();
        let yaml = format!(
            "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {FIXTURE_TOKEN}\n{}",
            seed_extra(&account, &number)
        );
        sim.seed_yaml(&yaml).expect("seed");
        create_secret(&env, "twilio", &[("authToken", FIXTURE_TOKEN)]).await;
        Fixture { env, sim, account, number }
    }
}

/// Seed YAML for one WhatsApp sender of `number` with `status`, inside an account entry.
pub fn sender_seed(number: &str, status: &str) -> String {
    format!("  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n    status: {status}\n")
}

/// The condition `type_` if it describes the channel's current generation.
pub fn current<'a>(
    ch: &'a WhatsAppChannel,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let st = ch.status.as_ref()?;
    if st.observed_generation != ch.metadata.generation {
        return None;
    }
    st.conditions.iter().find(|c| c.type_ == type_ && c.observed_generation == ch.metadata.generation)
}

/// Whether the channel's current condition `type_` has `status` and `reason`.
pub fn has(ch: &WhatsAppChannel, type_: &str, status: &str, reason: &str) -> bool {
    current(ch, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

/// Waits (at most `timeout`) until `pred` holds for the channel; fails the test naming `what`
/// and showing the status otherwise.
pub async fn wait_for_within(
    env: &TestEnv,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&WhatsAppChannel) -> bool + Send + 'static,
) -> WhatsAppChannel {
    let api: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let cond = move |obj: Option<&WhatsAppChannel>| obj.is_some_and(&pred);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(ch))) => ch,
        other => {
            let status = api.get_opt(name).await.ok().flatten().and_then(|c| c.status);
            panic!("{}/{name}: {what} not reached: {other:?}\nstatus: {status:#?}", env.ns);
        }
    }
}

/// Waits (at most [`TIMEOUT`]) until `pred` holds for the channel.
pub async fn wait_for(
    env: &TestEnv,
    name: &str,
    what: &str,
    pred: impl Fn(&WhatsAppChannel) -> bool + Send + 'static,
) -> WhatsAppChannel {
    wait_for_within(env, name, what, TIMEOUT, pred).await
}
