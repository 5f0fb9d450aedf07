//! Secrets stay secret. A leak scan: recognisable credentials (a fixed prefix and random hex) are
//! seeded, the operator binary runs with trace-level logs (plain, then JSON after a restart) and
//! its admission webhook, every path is driven — success with an Auth Token, with a Main and a
//! Standard API key, and with a secondary Auth Token after a revoked primary (a rotation),
//! the confirmation message and the identity server, a wrong token (401/20003), Twilio 5xx, a
//! rate limit, a missing number, a missing Secret, a refused identity client, an admission denial,
//! deletion — and every output is searched for each credential, raw, in base64 (at every
//! alignment, so also inside an encoded `user:token`) and as a list of byte values (how `Debug`
//! prints a Kubernetes Secret's data): the logs, Events, the channels' status, error messages,
//! `kubectl describe`, the bindings, `/metrics` and the webhook's answers.
//!
//! And a Secret reference cannot cross namespaces: the schema has no `namespace` field, the API
//! server drops one, and the operator looks the Secret up in the channel's own namespace.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use twilio_sim::{FaultAction, FaultRule};
use whatsapp_operator::admission::{self, Registration};
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};

use common::operator::*;
use common::{within, TestEnv, TIMEOUT};

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const LABEL: &str = "whatsapp-operator.io/secrets-test";

/// A credential nobody could mistake: `leak<role>` and 32 random hex digits.
fn canary(role: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex: String = (0..32).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect();
    format!("leak{role}{hex}")
}

/// Where `secret` shows in `text`, if it does: raw, base64 (standard or URL-safe alphabet, at any
/// of the three alignments, so also inside a longer encoded value such as `AC…:token`), or as a
/// run of byte values (`[108, 101, 97, …]`, how `Debug` prints `ByteString`s).
fn leak(text: &str, secret: &str) -> Option<&'static str> {
    if text.contains(secret) {
        return Some("raw");
    }
    for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
        for pad in 0..3usize {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = engine.encode(&bytes);
            // Drop the characters that also encode the padding or what follows the secret.
            let needle = &encoded[(pad * 4).div_ceil(3)..encoded.len() - 4];
            if text.contains(needle) {
                return Some("base64");
            }
        }
    }
    let numbers: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() <= 3)
        .filter_map(|s| s.parse().ok())
        .collect();
    let wanted: Vec<u32> = secret.bytes().map(u32::from).collect();
    numbers.windows(wanted.len()).any(|w| w == wanted.as_slice()).then_some("byte values")
}

#[test]
fn the_scan_finds_every_form_it_promises_to() {
    let secret = canary("tok");
    let sid = random_account_sid();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{secret}"));
    let data = base64::engine::general_purpose::STANDARD.encode(&secret);
    let debug = format!("{:?}", k8s_openapi::ByteString(secret.as_bytes().to_vec()));
    let pretty = format!("{:#?}", k8s_openapi::ByteString(secret.as_bytes().to_vec()));
    assert_eq!(leak(&format!("token={secret}"), &secret), Some("raw"));
    assert_eq!(leak(&format!("Authorization: Basic {basic}"), &secret), Some("base64"));
    assert_eq!(leak(&format!("{{\"authToken\":\"{data}\"}}"), &secret), Some("base64"));
    assert_eq!(leak(&format!("data: {{\"authToken\": {debug}}}"), &secret), Some("byte values"));
    assert_eq!(leak(&pretty, &secret), Some("byte values"));
    for pad in ["", "x", "xy"] {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{pad}{secret}!"));
        assert_eq!(leak(&encoded, &secret), Some("base64"), "alignment {}", pad.len());
    }
    assert_eq!(leak(&format!("{sid} <redacted> {}", &secret[..20]), &secret), None);
}

/// What the operator process writes on standard error, collected by a thread.
struct Operator {
    child: Child,
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Operator {
    /// Stops the process and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&log).into_owned()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The webhook's serving certificate: a CA (the `caBundle`) and a leaf for 127.0.0.1, as PEM
/// files in `dir`. Returns the CA.
fn certificate(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params").signed_by(&key, &issuer).expect("leaf");
    std::fs::write(dir.join("tls.crt"), leaf.pem()).expect("write the certificate");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write the key");
    ca.pem()
}

/// Starts the operator binary at trace level in `format` (`plain` or `json`), with `/metrics` on
/// `metrics` and the webhook on `webhook`.
fn start(
    env: &TestEnv,
    sim: &StrictSim,
    format: &str,
    metrics: u16,
    webhook: u16,
    certs: &std::path::Path,
) -> Operator {
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--namespace", &env.ns, "--log-format", format])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
        .args(["--backoff-base", "100ms", "--backoff-max", "2s"])
        .args(["--admission-addr", &format!("127.0.0.1:{webhook}")])
        .arg("--admission-tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--admission-tls-key")
        .arg(certs.join("tls.key"))
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the operator binary");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut stderr, mut stdout) = (child.stderr.take().expect("stderr"), child.stdout.take().expect("stdout"));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let out_sink = sink.clone();
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            if let Ok(mut l) = out_sink.lock() {
                l.extend_from_slice(&buf);
            }
        });
        let mut chunk = [0u8; 65536];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut l) = sink.lock() {
                l.extend_from_slice(&chunk[..n]);
            }
        }
        let _ = out.join();
    });
    Operator { child, log, reader: Some(reader) }
}

async fn get(url: &str) -> Option<String> {
    let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

async fn wait_ready(metrics: u16) {
    within(TIMEOUT, async {
        while get(&format!("http://127.0.0.1:{metrics}/readyz")).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

fn spec(account: &str, number: &str, secret: &str) -> serde_json::Value {
    json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": secret}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    })
}

/// Everything a user or a scraper can see of the test's namespace, as text.
async fn outputs(env: &TestEnv, metrics: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let channels: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    for ch in channels.list(&ListParams::default()).await.expect("list channels") {
        out.push((format!("channel {}", ch.metadata.name.as_deref().unwrap_or("")), to_json(&ch)));
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &env.ns);
    for e in events.list(&ListParams::default()).await.expect("list events") {
        out.push(("an Event".to_owned(), to_json(&e)));
    }
    let bindings: Api<WhatsAppNumberBinding> = Api::all(env.client.clone());
    for b in bindings.list(&ListParams::default()).await.expect("list bindings") {
        out.push(("a binding".to_owned(), to_json(&b)));
    }
    let described = common::kubectl_run(&["describe", "wac", "-n", &env.ns]).await;
    out.push(("kubectl describe".to_owned(), String::from_utf8_lossy(&described.stdout).into_owned()));
    let text = get(&format!("http://127.0.0.1:{metrics}/metrics")).await.expect("/metrics");
    out.push(("/metrics".to_owned(), text));
    out
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_logs_events_status_errors_metrics_or_webhook_answers() {
    let env = common::setup("leaks").await;
    let sim = start_sim().await;
    let (token, key_secret, wrong, token_b, token_c, client_secret, wrong_client) =
        (canary("tok"), canary("key"), canary("bad"), canary("tokb"), canary("tokc"), canary("oid"), canary("badoid"));
    // A Standard API key, and an Auth Token rotation: a revoked primary and a valid secondary.
    let (std_secret, revoked, secondary) = (canary("skey"), canary("old"), canary("sec"));
    let canaries = [
        &token,
        &key_secret,
        &wrong,
        &token_b,
        &token_c,
        &client_secret,
        &wrong_client,
        &std_secret,
        &revoked,
        &secondary,
    ];
    let (a, b, c, d) = (random_account_sid(), random_account_sid(), random_account_sid(), random_account_sid());
    let key_sid = format!("SK{}", &random_account_sid()[2..]);
    let std_sid = format!("SK{}", &random_account_sid()[2..]);
    let n: Vec<String> = (0..9).map(|_| random_number()).collect();
    let senders = |numbers: &[&String]| -> String {
        numbers.iter().map(|x| format!("  - sender_id: whatsapp:{x}\n    status: ONLINE\n")).collect()
    };
    sim.seed_yaml(&format!(
        "accounts:\n\
         - sid: {a}\n  friendly_name: prod\n  auth_token: {token}\n  keys:\n  - friendly_name: ci\n    sid: {key_sid}\n    secret: {key_secret}\n    kind: main\n  - friendly_name: std\n    sid: {std_sid}\n    secret: {std_secret}\n    kind: standard\n  whatsapp_senders:\n{}\
         - sid: {d}\n  friendly_name: rotated\n  auth_token: {secondary}\n  whatsapp_senders:\n{}\
         - sid: {b}\n  friendly_name: flaky\n  auth_token: {token_b}\n  whatsapp_senders:\n{}\
         - sid: {c}\n  friendly_name: busy\n  auth_token: {token_c}\n  whatsapp_senders:\n{}\
         identity_clients:\n- client_id: crm\n  client_secret: {client_secret}\n",
        senders(&[&n[0], &n[1], &n[2], &n[6], &n[7]]),
        senders(&[&n[8]]),
        senders(&[&n[3]]),
        senders(&[&n[4]]),
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", &token)]).await;
    create_secret(&env, "twilio-key", &[("apiKeySid", &key_sid), ("apiKeySecret", &key_secret)]).await;
    create_secret(&env, "twilio-wrong", &[("authToken", &wrong)]).await;
    create_secret(&env, "twilio-std", &[("apiKeySid", &std_sid), ("apiKeySecret", &std_secret)]).await;
    create_secret(&env, "twilio-rotated", &[("authToken", &revoked), ("authTokenSecondary", &secondary)]).await;
    create_secret(&env, "twilio-b", &[("authToken", &token_b)]).await;
    create_secret(&env, "twilio-c", &[("authToken", &token_c)]).await;
    create_secret(&env, "identity", &[("clientSecret", &client_secret)]).await;
    create_secret(&env, "identity-wrong", &[("clientSecret", &wrong_client)]).await;
    sim.add_fault(FaultRule::new(FaultAction::Error { status: 503, code: None, message: None }).account(&b))
        .expect("5xx for account b");
    sim.add_fault(FaultRule::new(FaultAction::RateLimit { retry_after: Some(1) }).account(&c)).expect("429 for c");

    // The webhook, scoped to this namespace (other tests never call it), served by the binary.
    let certs = std::env::temp_dir().join(format!("wao-secrets-{}", common::random_suffix()));
    std::fs::create_dir_all(&certs).expect("temp dir");
    let ca = certificate(&certs);
    let (metrics, webhook) = (free_port(), free_port());
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .patch(&env.ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {LABEL: env.ns}}})))
        .await
        .expect("label the namespace");
    let registration = Registration {
        name: format!("wao-secrets-{}", env.ns),
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(LABEL.to_owned(), env.ns.clone())].into()),
            ..LabelSelector::default()
        }),
    };
    let url = format!("https://127.0.0.1:{webhook}{}", admission::VALIDATE_PATH);
    let mut logs = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    let operator = start(&env, &sim, "plain", metrics, webhook, &certs);
    wait_ready(metrics).await;
    admission::register(&env.client, &registration, &url, ca.as_bytes()).await.expect("register the webhook");

    let identity =
        |secret: &str| json!({"url": sim.base_url(), "clientId": "crm", "clientSecretRef": {"name": secret}});
    let mut ok = spec(&a, &n[0], "twilio");
    ok["confirmationPhoneNumber"] = json!("+14155550123");
    ok["identityServer"] = identity("identity");
    create_channel(&env, "ok-token", ok).await;
    create_channel(&env, "ok-key", spec(&a, &n[1], "twilio-key")).await;
    create_channel(&env, "bad-token", spec(&a, &n[2], "twilio-wrong")).await;
    create_channel(&env, "ok-std-key", spec(&a, &n[7], "twilio-std")).await;
    create_channel(&env, "rotated", spec(&d, &n[8], "twilio-rotated")).await;
    create_channel(&env, "twilio-5xx", spec(&b, &n[3], "twilio-b")).await;
    create_channel(&env, "rate-limited", spec(&c, &n[4], "twilio-c")).await;
    create_channel(&env, "no-number", spec(&a, &n[5], "twilio")).await;
    create_channel(&env, "no-secret", spec(&a, &random_number(), "missing")).await;
    let mut refused = spec(&a, &n[6], "twilio");
    refused["identityServer"] = identity("identity-wrong");
    create_channel(&env, "identity-refused", refused).await;

    wait_condition(&env, "ok-token", "Ready", "True", None).await;
    wait_condition(&env, "ok-token", "ConfirmationSent", "True", Some("MessageSent")).await;
    wait_condition(&env, "ok-token", "IdentityVerified", "True", Some("Verified")).await;
    wait_condition(&env, "ok-key", "Ready", "True", None).await;
    wait_condition(&env, "ok-std-key", "Ready", "True", None).await;
    let rotated = wait_condition(&env, "rotated", "Ready", "True", None).await;
    let used = rotated.status.and_then(|s| s.credentials).expect("status.credentials");
    assert_eq!(used.source, whatsapp_operator::api::CredentialSource::Secondary, "the revoked primary was refused");
    wait_condition(&env, "bad-token", "CredentialsValid", "False", Some("InvalidCredentials")).await;
    wait_condition(&env, "twilio-5xx", "CredentialsValid", "Unknown", Some("TwilioUnavailable")).await;
    wait_condition(&env, "rate-limited", "CredentialsValid", "Unknown", Some("RateLimited")).await;
    wait_condition(&env, "no-number", "NumberVerified", "False", Some("NumberNotFound")).await;
    wait_condition(&env, "no-secret", "CredentialsValid", "False", Some("SecretNotFound")).await;
    wait_condition(&env, "identity-refused", "IdentityVerified", "False", Some("IdentityRejected")).await;

    // The admission webhook's answers: a denial (the API), and a dry run's warning (kubectl).
    let channels: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
    let mut dup: WhatsAppChannel = serde_json::from_value(json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1", "kind": "WhatsAppChannel",
        "metadata": {"name": "dup", "namespace": env.ns}, "spec": spec(&a, &n[0], "twilio"),
    }))
    .expect("channel");
    let denial = within(TIMEOUT, async {
        loop {
            match channels.create(&PostParams::default(), &dup).await {
                Err(kube::Error::Api(s)) if s.code == 409 => return s.message,
                Ok(_) => panic!("the webhook admitted a held number"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    assert!(denial.contains("already served by WhatsAppChannel"), "{denial}");
    seen.push(("the webhook's denial".to_owned(), denial));
    dup.metadata.namespace = Some(env.ns.clone());
    let yaml = serde_yaml::to_string(&dup).expect("yaml");
    let path = certs.join("dup.yaml");
    std::fs::write(&path, yaml).expect("write the manifest");
    let dry = common::kubectl_run(&["apply", "--dry-run=server", "-f", path.to_str().expect("path")]).await;
    let dry = format!("{}{}", String::from_utf8_lossy(&dry.stdout), String::from_utf8_lossy(&dry.stderr));
    assert!(dry.contains("would be rejected") || dry.contains("already served"), "{dry}");
    seen.push(("kubectl apply --dry-run=server".to_owned(), dry));
    seen.extend(outputs(&env, metrics).await);
    sim.clear_faults();

    // A restart, now with JSON logs: the Ready channels are picked up again, then deleted (their
    // webhooks restored at Twilio, with the credentials).
    logs.push(("the plain log".to_owned(), operator.stop()));
    let operator = start(&env, &sim, "json", metrics, webhook, &certs);
    wait_ready(metrics).await;
    wait_condition(&env, "twilio-5xx", "Ready", "True", None).await;
    for name in [
        "ok-token",
        "ok-key",
        "ok-std-key",
        "rotated",
        "bad-token",
        "twilio-5xx",
        "rate-limited",
        "no-number",
        "identity-refused",
    ] {
        channels.delete(name, &DeleteParams::default()).await.expect("delete a channel");
    }
    within(TIMEOUT, async {
        while channels.list(&ListParams::default()).await.expect("list").items.len() > 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        sim.requests().iter().any(|r| r.is_write() && r.path.contains("/v2/Channels/Senders/XE")),
        "the deletions restored webhooks at Twilio"
    );
    seen.extend(outputs(&env, metrics).await);
    logs.push(("the JSON log".to_owned(), operator.stop()));
    admission::unregister(&env.client, &registration.name, None).await.expect("remove the webhook configuration");
    let _ = std::fs::remove_dir_all(&certs);

    // The logs are trace-level and cover the paths: the scan looks where the credentials were used.
    let (plain, json_log) = (&logs[0].1, &logs[1].1);
    assert!(plain.contains("TRACE") && json_log.contains("\"level\":\"TRACE\""), "trace-level logs captured");
    assert!(plain.contains(&a) && plain.contains(&b) && plain.contains(&c), "the log covers every account");
    let mut found = Vec::new();
    for (what, text) in logs.iter().chain(seen.iter()) {
        for secret in canaries {
            if let Some(form) = leak(text, secret) {
                let at = text.find(&secret[..8]).map(|i| &text[i.saturating_sub(200)..(i + 200).min(text.len())]);
                found.push(format!("{what}: {} ({form}) near {at:?}", &secret[..8]));
            }
        }
    }
    assert!(found.is_empty(), "credentials leaked:\n{}", found.join("\n"));
}

#[tokio::test]
async fn a_secret_reference_cannot_cross_namespaces() {
    let f = Fixture::new("secret-ns", |_, n| sender_seed(n, "ONLINE")).await;
    // The other namespace holds a Secret with the account's real token.
    let other = format!("{}-other", f.env.ns);
    let namespaces: Api<Namespace> = Api::all(f.env.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": other}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create the other namespace");
    let elsewhere = TestEnv { client: f.env.client.clone(), ns: other.clone() };
    create_secret(&elsewhere, "twilio-elsewhere", &[("authToken", FIXTURE_TOKEN)]).await;
    let _operator = start_operator(&f.env.client, config(&f.env, &f.sim));

    let mut s = spec(&f.account, &f.number, "twilio-elsewhere");
    s["twilio"]["credentialsSecretRef"]["namespace"] = json!(other);
    let created = create_channel(&f.env, "cross", s).await;
    // The API server dropped the field: the stored reference has a name only.
    let channels: Api<kube::api::DynamicObject> =
        Api::namespaced_with(f.env.client.clone(), &f.env.ns, &kube::core::ApiResource::erase::<WhatsAppChannel>(&()));
    let stored = channels.get("cross").await.expect("get the channel");
    assert_eq!(stored.data["spec"]["twilio"]["credentialsSecretRef"], json!({"name": "twilio-elsewhere"}));
    assert_eq!(created.spec.twilio.credentials_secret_ref.name, "twilio-elsewhere");
    let ch = wait_condition(&f.env, "cross", "CredentialsValid", "False", Some("SecretNotFound")).await;
    let message = &condition(&ch, "CredentialsValid").message;
    assert!(
        message.contains(&f.env.ns) && !message.contains(&other),
        "looked up in the channel's namespace: {message}"
    );
    assert!(f.sim.requests().is_empty(), "no Twilio call with another namespace's credentials");
    // `check` refuses the manifest outright.
    let manifest: PathBuf = std::env::temp_dir().join(format!("wao-cross-{}.yaml", common::random_suffix()));
    std::fs::write(
        &manifest,
        serde_yaml::to_string(&json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1", "kind": "WhatsAppChannel",
            "metadata": {"name": "cross"},
            "spec": {"phoneNumber": f.number, "instance": "crm", "queue": "q",
                     "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio-elsewhere", "namespace": other}},
                     "webhook": {"url": RECEIVER}},
        }))
        .expect("yaml"),
    )
    .expect("write the manifest");
    let out =
        Command::new(env!("CARGO_BIN_EXE_whatsapp-operator")).arg("check").arg(&manifest).output().expect("check");
    let _ = std::fs::remove_file(&manifest);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("a Secret reference cannot name another namespace"), "{text}");
}
