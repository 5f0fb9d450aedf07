//! The validating admission webhook against the real API server: the webhook runs in-process on
//! a free loopback port, registered with a `ValidatingWebhookConfiguration` of the test's own,
//! scoped by a namespace label to the test's namespaces (so other tests never call it). It decides
//! from a cache: the running operator's, or, without an operator, one filled by watches of the
//! test's own ([`watch_cache`]).

mod common;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use whatsapp_operator::admission::{self, AdmissionConfig, AdmissionError, Registration, Webhook};
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};
use whatsapp_operator::binding;
use whatsapp_operator::controller::cache::{self, Cache};
use whatsapp_operator::controller::stored::StoredChannel;
use whatsapp_operator::controller::{self, FINALIZER};
use whatsapp_operator::twilio::E164;

use common::operator::*;
use common::{within, TestEnv, TIMEOUT};

const LABEL: &str = "whatsapp-operator.io/admission-test";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const TOKEN: &str = "tok-0123456789abcdef0123456789ab";

/// A webhook running in-process; [`Hook::stop`] stops it (and the watches of its cache, if the
/// test started them) and removes its configuration.
struct Hook {
    client: Client,
    name: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), AdmissionError>>,
    watches: Option<tokio::task::JoinHandle<()>>,
}

impl Hook {
    async fn stop(self) {
        let _ = self.stop.send(());
        let served = within(TIMEOUT, self.task).await;
        if let Some(w) = self.watches {
            w.abort();
        }
        admission::unregister(&self.client, &self.name, None).await.expect("remove the webhook configuration");
        served.expect("webhook task").expect("webhook served");
    }
}

/// A cache of channels (in `namespace`, or all) and bindings, filled by watches wired as the
/// controller wires its own, without a controller (so nothing binds a number). Secrets are not
/// watched: the webhook never reads them.
fn watch_cache(client: &Client, namespace: Option<&str>) -> (Cache, tokio::task::JoinHandle<()>) {
    let (channels, channel_writer) = reflector::store();
    let (bindings, binding_writer) = reflector::store();
    let cache = Cache {
        channels,
        bindings,
        secrets: Default::default(),
        channel_index: Default::default(),
        holder_index: Default::default(),
        listed: Default::default(),
        trim: Default::default(),
    };
    cache.note_listed(2, &watcher::Event::<()>::InitDone);
    let channel_api: Api<StoredChannel> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let c = cache.clone();
    let channel_stream =
        watcher(channel_api, watcher::Config::default()).default_backoff().reflect(channel_writer).map(move |ev| {
            if let Ok(ev) = &ev {
                c.follow_channel(ev);
            }
        });
    let c = cache.clone();
    let binding_stream = watcher(Api::<WhatsAppNumberBinding>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(cache::slim_meta)
        .reflect(binding_writer)
        .map(move |ev| {
            if let Ok(ev) = &ev {
                c.follow_binding(ev);
            }
        });
    let task = tokio::spawn(futures::stream::select(channel_stream, binding_stream).for_each(|()| async {}));
    (cache, task)
}

/// Namespaces labelled `LABEL=<key>`: the test's own (labelled here) and `extra` new ones.
async fn scoped_namespaces(env: &TestEnv, extra: &[&str]) -> (String, Vec<String>) {
    let key = env.ns.clone();
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .patch(&env.ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {LABEL: key}}})))
        .await
        .expect("label the test namespace");
    let mut created = Vec::new();
    for suffix in extra {
        let name = format!("{}-{suffix}", env.ns);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
            LABEL: key, "whatsapp-operator.io/test": "admission"}}}))
        .expect("namespace");
        namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
        created.push(name);
    }
    (key, created)
}

fn registration(key: &str) -> Registration {
    Registration {
        name: format!("wao-test-{key}"),
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(LABEL.to_owned(), key.to_owned())].into()),
            ..LabelSelector::default()
        }),
    }
}

fn loopback() -> AdmissionConfig {
    AdmissionConfig::new("127.0.0.1:0".parse().expect("addr"))
}

/// Binds the webhook, registers it through the library API, and serves it from `cache` (with
/// `watches`, the task that fills it, stopped with the webhook).
async fn start_registered(
    client: &Client,
    key: &str,
    cache: Cache,
    watches: Option<tokio::task::JoinHandle<()>>,
) -> Hook {
    let webhook = Webhook::bind(loopback()).await.expect("bind the webhook");
    let reg = registration(key);
    admission::register(client, &reg, webhook.url(), webhook.ca_bundle()).await.expect("register the webhook");
    let healthz = format!("https://{}/healthz", webhook.local_addr());
    let ca = reqwest::Certificate::from_pem(webhook.ca_bundle()).expect("CA PEM");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(webhook.run(client.clone(), cache, async move {
        let _ = stopped.await;
    }));
    // The generated certificate verifies against the CA the API server is given.
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().expect("https client");
    let health = http.get(&healthz).send().await.expect("GET /healthz");
    assert_eq!(health.text().await.expect("body"), "ok");
    Hook { client: client.clone(), name: reg.name, stop, task, watches }
}

/// Runs `scenario` (in its own task, so a failure still stops the webhook and removes its
/// configuration), then stops `hook`.
async fn guarded(hook: Hook, scenario: impl Future<Output = ()> + Send + 'static) {
    let outcome = tokio::spawn(scenario).await;
    hook.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn manifest(ns: &str, name: &str, number: &str, instance: &str) -> WhatsAppChannel {
    serde_json::from_value(json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "phoneNumber": number,
            "instance": instance,
            "twilio": {"accountSid": ACCOUNT, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "sales",
        },
    }))
    .expect("channel manifest")
}

async fn create(client: &Client, ch: &WhatsAppChannel) -> Result<WhatsAppChannel, kube::Error> {
    let api: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &ch.namespace().expect("ns"));
    api.create(&PostParams::default(), ch).await
}

/// The message of a 409 denial; fails the test on anything else.
fn denial(result: Result<WhatsAppChannel, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 409 => s.message,
        other => panic!("expected a 409 denial, got {other:?}"),
    }
}

/// `kubectl apply [--dry-run=server]` of a channel: (success, stderr).
async fn kubectl_apply(ch: &WhatsAppChannel, dry_run: bool) -> (bool, String) {
    let yaml = serde_yaml::to_string(ch).expect("yaml");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut cmd = common::kubectl();
        cmd.args(["apply", "-f", "-"]);
        if dry_run {
            cmd.arg("--dry-run=server");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write manifest");
        let out = child.wait_with_output().expect("kubectl output");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .expect("kubectl task")
}

/// Waits until the API server calls the webhook for the namespace of `conflicting`: a server
/// dry run of it comes back with the would-be denial as a warning.
async fn wait_until_active(conflicting: &WhatsAppChannel) {
    within(TIMEOUT, async {
        loop {
            let (_, stderr) = kubectl_apply(conflicting, true).await;
            if stderr.contains("the request would be rejected") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// Claims `number` for `ch` directly, as the controller would.
async fn bind(client: &Client, ch: &WhatsAppChannel) -> WhatsAppNumberBinding {
    let number = E164::parse(&ch.spec.phone_number).expect("number");
    let b = binding::binding_for(ch, &number).expect("binding");
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    api.create(&PostParams::default(), &b).await.expect("create binding")
}

async fn wait_gone(client: &Client, ns: &str, name: &str) {
    let api: Api<WhatsAppChannel> = Api::namespaced(client.clone(), ns);
    within(TIMEOUT, async {
        while api.get_opt(name).await.expect("get channel").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_number_is_refused_naming_the_holder_until_it_is_released() {
    let env = common::setup("adm-held").await;
    let (key, others) = scoped_namespaces(&env, &["b"]).await;
    // The cache sees ns_b's channels only (as with `--namespace`): the holder in ns_a is read with
    // a GET; its binding (cluster-wide) is in the cache.
    let (cache, watches) = watch_cache(&env.client, Some(&others[0]));
    let hook = start_registered(&env.client, &key, cache, Some(watches)).await;
    let (client, ns_a, ns_b) = (env.client.clone(), env.ns.clone(), others[0].clone());
    guarded(hook, async move {
        let number = random_number();
        let a = create(&client, &manifest(&ns_a, "sales", &number, "crm-prod"))
            .await
            .expect("the first channel is admitted");
        let held = bind(&client, &a).await;
        let b = manifest(&ns_b, "support", &number, "crm-test");
        wait_until_active(&b).await;

        // The API: 409, the holder named.
        let msg = denial(create(&client, &b).await);
        assert!(
            msg.contains(&format!(
                "{number} is already served by WhatsAppChannel {ns_a}/sales (instance crm-prod); \
                 one number serves one application instance"
            )),
            "{msg}"
        );
        // kubectl apply: refused, the same message.
        let (ok, stderr) = kubectl_apply(&b, false).await;
        assert!(!ok && stderr.contains(&format!("served by WhatsAppChannel {ns_a}/sales")), "{stderr}");

        // Another number is admitted; so is an update that keeps the number.
        let other = random_number();
        let c = create(&client, &manifest(&ns_b, "other", &other, "crm-test"))
            .await
            .expect("a different number is admitted");
        let channels_a: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &ns_a);
        channels_a
            .patch(
                "sales",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"queue": "support"}, "metadata": {"labels": {"team": "a"}}})),
            )
            .await
            .expect("an update keeping the number is admitted");
        // Moving another channel onto the number is refused.
        let channels_b: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &ns_b);
        let moved = channels_b
            .patch(&c.name_any(), &PatchParams::default(), &Patch::Merge(json!({"spec": {"phoneNumber": number}})))
            .await;
        let msg = match moved {
            Err(kube::Error::Api(s)) if s.code == 409 => s.message,
            other => panic!("expected a 409 denial, got {other:?}"),
        };
        assert!(msg.contains(&format!("{ns_a}/sales")), "{msg}");

        // Once the holder is deleted and its binding released, the number is free.
        channels_a.delete("sales", &DeleteParams::default()).await.expect("delete the holder");
        wait_gone(&client, &ns_a, "sales").await;
        let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());
        bindings.delete(&held.name_any(), &DeleteParams::default()).await.expect("release the binding");
        create(&client, &b).await.expect("the number is admitted once released");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_unbound_channel_wins_and_the_webhook_registers_and_removes_itself() {
    let env = common::setup("adm-race").await;
    let (key, others) = scoped_namespaces(&env, &["b"]).await;
    let reg = registration(&key);
    let mut config = loopback();
    config.registration = Some(reg.clone());
    let (cache, watches) = watch_cache(&env.client, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(admission::serve(env.client.clone(), cache, config, async move {
        let _ = stopped.await;
    }));
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    within(TIMEOUT, async {
        while configs.get_opt(&reg.name).await.expect("get config").is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let hook = Hook { client: env.client.clone(), name: reg.name.clone(), stop, task, watches: Some(watches) };
    let (client, ns_a, ns_b) = (env.client.clone(), env.ns.clone(), others[0].clone());
    let name = reg.name.clone();
    guarded(hook, async move {
        let number = random_number();
        // A exists but is not bound yet (no operator runs): it still wins.
        create(&client, &manifest(&ns_a, "first", &number, "crm-prod")).await.expect("the first channel is admitted");
        let b = manifest(&ns_b, "second", &number, "crm-test");
        wait_until_active(&b).await;
        let msg = denial(create(&client, &b).await);
        assert!(
            msg.contains(&format!(
                "{number} is already requested by WhatsAppChannel {ns_a}/first (instance crm-prod), created earlier"
            )),
            "{msg}"
        );
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let stored = configs.get(&name).await.expect("registered");
        let hooks = stored.webhooks.expect("webhooks");
        let policies: Vec<_> = hooks.iter().map(|h| (h.name.as_str(), h.failure_policy.as_deref())).collect();
        assert_eq!(
            policies,
            [
                (admission::register::WEBHOOK_NAME, Some("Fail")),
                (admission::register::UPDATE_WEBHOOK_NAME, Some("Ignore"))
            ]
        );
        assert!(hooks.iter().all(|h| h.client_config.ca_bundle.is_some()));
    })
    .await;
    // The server removed its configuration on shutdown (Hook::stop also deletes it; it was
    // already gone, which unregister accepts).
    assert!(configs.get_opt(&reg.name).await.expect("get config").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_operator_running_the_number_moves_only_after_the_holder_is_gone() {
    let env = common::setup("adm-operator").await;
    let (key, _) = scoped_namespaces(&env, &[]).await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n    status: ONLINE\n"
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    // As `run --admission-addr` does: the webhook decides from the operator's own cache.
    let (cache, prepared) = controller::prepare(env.client.clone(), config(&env, &sim));
    let hook = start_registered(&env.client, &key, cache, None).await;
    let operator = tokio::spawn(async move {
        if let Err(e) = controller::run_prepared(prepared, std::future::pending()).await {
            panic!("operator failed: {e}");
        }
    });
    let ns = env.ns.clone();
    let client = env.client.clone();
    guarded(hook, async move {
        let env = TestEnv { client, ns };
        let spec = |instance: &str| {
            json!({
                "phoneNumber": number,
                "instance": instance,
                "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
                "webhook": {"url": RECEIVER},
                "queue": "sales",
            })
        };
        create_channel(&env, "prod", spec("crm-prod")).await;
        // The operator's own writes (finalizer, status) pass the webhook.
        wait_condition(&env, "prod", "NumberBound", "True", None).await;
        let mut second = manifest(&env.ns, "staging", &number, "crm-staging");
        second.spec.twilio.account_sid = account.clone();
        wait_until_active(&second).await;
        let msg = denial(create(&env.client, &second).await);
        assert!(msg.contains(&format!("served by WhatsAppChannel {}/prod (instance crm-prod)", env.ns)), "{msg}");

        let channels: Api<WhatsAppChannel> = Api::namespaced(env.client.clone(), &env.ns);
        channels.delete("prod", &DeleteParams::default()).await.expect("delete the holder");
        // The operator's cleanup (finalizer removal is an update) is not blocked by the webhook.
        wait_gone(&env.client, &env.ns, "prod").await;
        create(&env.client, &second).await.expect("admitted once the holder is gone");
        wait_condition(&env, "staging", "NumberBound", "True", None).await;
    })
    .await;
    operator.abort();
    assert_conforming(&sim);
}

/// The message of a refusal because the API server could not call the webhook; fails the test
/// on anything else.
fn unreachable_refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => s.message,
        other => panic!("expected a refusal for an unreachable webhook, got {other:?}"),
    }
}

/// Removes every finalizer of channel `name`.
async fn remove_finalizers(channels: &Api<WhatsAppChannel>, name: &str) -> Result<WhatsAppChannel, kube::Error> {
    channels.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await
}

/// A status write as the operator makes it: to the status subresource.
async fn write_status(channels: &Api<WhatsAppChannel>, name: &str) -> Result<WhatsAppChannel, kube::Error> {
    let status = json!({"status": {"phase": "Pending", "observedGeneration": 1}});
    channels.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_is_down_refuses_creates_but_never_blocks_finalizer_removal_or_status_writes() {
    let env = common::setup("adm-down").await;
    let (key, _) = scoped_namespaces(&env, &[]).await;
    // Channels with the operator's finalizer, created while no configuration exists.
    for name in ["held", "probe"] {
        let mut ch = manifest(&env.ns, name, &random_number(), "crm-prod");
        ch.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        create(&env.client, &ch).await.expect("created while no webhook is registered");
    }
    // The operator's configuration for a webhook that is down: bound (for a URL and a CA), then
    // dropped, so nothing listens on its port.
    let webhook = Webhook::bind(loopback()).await.expect("bind the webhook");
    let (url, ca) = (webhook.url().to_owned(), webhook.ca_bundle().to_vec());
    drop(webhook);
    let reg = registration(&key);
    admission::register(&env.client, &reg, &url, &ca).await.expect("register the webhook");

    let (client, ns, name) = (env.client.clone(), env.ns.clone(), reg.name.clone());
    let scenario = tokio::spawn(async move {
        let channels: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &ns);
        let pp = PatchParams::default();

        // A create is refused (failurePolicy Fail), once the API server uses the configuration.
        let fresh = manifest(&ns, "fresh", &random_number(), "crm-prod");
        let dry_run = PostParams { dry_run: true, ..PostParams::default() };
        within(TIMEOUT, async {
            while channels.create(&dry_run, &fresh).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let msg = unreachable_refusal(channels.create(&PostParams::default(), &fresh).await);
        assert!(msg.contains(admission::register::WEBHOOK_NAME), "{msg}");
        assert!(channels.get_opt("fresh").await.expect("get").is_none(), "nothing was created");

        // (b) A status write passes.
        let written = write_status(&channels, "held").await.expect("a status write passes");
        assert!(written.status.is_some_and(|s| s.observed_generation == Some(1)));
        // Updates pass (failurePolicy Ignore): metadata, and even a new number (unchecked; the
        // binding the controller creates remains the guarantee).
        channels
            .patch("held", &pp, &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})))
            .await
            .expect("a label update passes");
        channels
            .patch("held", &pp, &Patch::Merge(json!({"spec": {"phoneNumber": random_number()}})))
            .await
            .expect("a number change passes, unchecked");
        // (a) Deleting the channel and removing its finalizer pass: the deletion completes.
        channels.delete("held", &DeleteParams::default()).await.expect("a delete passes (not matched)");
        let held = channels.get("held").await.expect("kept by its finalizer");
        assert!(held.metadata.deletion_timestamp.is_some());
        remove_finalizers(&channels, "held").await.expect("removing the finalizer passes");
        wait_gone(&client, &ns, "held").await;

        // For contrast, the same configuration with `Fail` for updates as well (the design this
        // one replaces): an update is refused, so the finalizer of a deleted channel could not be
        // removed while the webhook is down. Status writes still pass: the status subresource is
        // not matched by the rules.
        let mut strict = admission::webhook_configuration(&registration(&key), &url, &ca);
        for hook in strict.webhooks.iter_mut().flatten() {
            hook.failure_policy = Some("Fail".to_owned());
        }
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        configs
            .patch(&name, &PatchParams::apply(controller::FIELD_MANAGER).force(), &Patch::Apply(&strict))
            .await
            .expect("apply the strict configuration");
        let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"probe": v}}}));
        within(TIMEOUT, async {
            let mut n = 0;
            loop {
                n += 1;
                match channels.patch("probe", &pp, &label(&n.to_string())).await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    other => {
                        let msg = unreachable_refusal(other);
                        assert!(msg.contains(admission::register::UPDATE_WEBHOOK_NAME), "{msg}");
                        return;
                    }
                }
            }
        })
        .await;
        channels.delete("probe", &DeleteParams::default()).await.expect("a delete passes (not matched)");
        unreachable_refusal(remove_finalizers(&channels, "probe").await);
        write_status(&channels, "probe").await.expect("a status write passes even under Fail");

        // Back to the operator's configuration: the finalizer goes, the deletion completes.
        admission::register(&client, &registration(&key), &url, &ca).await.expect("register again");
        within(TIMEOUT, async {
            while remove_finalizers(&channels, "probe").await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        wait_gone(&client, &ns, "probe").await;
    })
    .await;
    admission::unregister(&env.client, &reg.name, None).await.expect("remove the webhook configuration");
    if let Err(e) = scenario {
        std::panic::resume_unwind(e.into_panic());
    }
}
