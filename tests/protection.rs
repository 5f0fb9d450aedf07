//! The in-use protection of credentials Secrets never wedges: a namespace deleted with its
//! channels and Secret completes (the webhooks restored first), a Secret replaced with
//! `kubectl replace --force` completes and the channels pick up the new one, and the documented
//! uninstall steps leave nothing stuck Terminating.

mod common;

use std::time::Duration;

use common::operator::*;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use serde_json::json;
use whatsapp_operator::api::WhatsAppChannel;

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const PREVIOUS: &str = "https://old-crm.example.com/hook";
const IN_USE: &str = "whatsapp-operator.io/credentials-in-use";

async fn fixture(prefix: &str) -> Fixture {
    Fixture::new(prefix, |_, number| {
        format!(
            "{}    webhook: {{callback_url: \"{PREVIOUS}\", callback_method: POST}}\n",
            sender_seed(number, "ONLINE")
        )
    })
    .await
}

fn spec(f: &Fixture) -> serde_json::Value {
    json!({
        "phoneNumber": f.number,
        "instance": "crm-prod",
        "bindingPolicy": "Takeover",
        "takeover": {"from": PREVIOUS},
        "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    })
}

fn sender_webhook(f: &Fixture) -> Option<String> {
    f.sim
        .state()
        .accounts
        .iter()
        .flat_map(|a| a.senders.iter())
        .find(|s| s.sender_id == format!("whatsapp:{}", f.number))
        .and_then(|s| s.webhook.callback_url.clone())
        .map(|u| common::unmarked(&u))
}

/// Polls `check` until it holds, failing the test after the harness timeout.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let waited = tokio::time::timeout(Duration::from_secs(90), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not reached in time");
}

async fn protected(f: &Fixture) -> bool {
    let secrets: Api<Secret> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    secrets.get_opt("twilio").await.expect("get secret").is_some_and(|s| s.finalizers().iter().any(|x| x == IN_USE))
}

#[tokio::test]
async fn deleting_the_namespace_restores_the_webhook_and_completes() {
    let f = fixture("prot-ns").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f)).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(RECEIVER));
    eventually("the Secret is protected", || protected(&f)).await;

    let namespaces: Api<Namespace> = Api::all(f.env.client.clone());
    namespaces.delete(&f.env.ns, &DeleteParams::default()).await.expect("delete namespace");
    eventually("the namespace is gone", || async {
        namespaces.get_opt(&f.env.ns).await.expect("get namespace").is_none()
    })
    .await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS), "restored with the terminating Secret's credentials");
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn a_secret_replaced_with_force_completes_and_is_picked_up() {
    let f = fixture("prot-replace").await;
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f)).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    eventually("the Secret is protected", || protected(&f)).await;
    let old_uid = Api::<Secret>::namespaced(f.env.client.clone(), &f.env.ns).get("twilio").await.expect("get").uid();

    // kubectl replace --force: delete, wait for it to be gone, create anew.
    let dir = std::env::temp_dir().join(format!("wao-{}", f.env.ns));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("secret.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: twilio}}\nstringData: {{authToken: {FIXTURE_TOKEN}}}\n"
        ),
    )
    .expect("write manifest");
    let out =
        common::kubectl_run(&["replace", "--force", "-n", &f.env.ns, "-f", &file.to_string_lossy(), "--timeout=80s"])
            .await;
    assert!(out.status.success(), "kubectl replace --force: {}", String::from_utf8_lossy(&out.stderr));
    let new = Api::<Secret>::namespaced(f.env.client.clone(), &f.env.ns).get("twilio").await.expect("the new Secret");
    assert_ne!(new.uid(), old_uid, "replaced");
    // The channel is Ready on the new Secret (in the gap it reported SecretNotFound), which is
    // protected in turn.
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    eventually("the new Secret is protected", || protected(&f)).await;

    // And the channel's deletion still restores the webhook with it.
    Api::<WhatsAppChannel>::namespaced(f.env.client.clone(), &f.env.ns)
        .delete("ch", &DeleteParams::default())
        .await
        .expect("delete channel");
    eventually("the channel is gone", || async {
        Api::<WhatsAppChannel>::namespaced(f.env.client.clone(), &f.env.ns).get_opt("ch").await.expect("get").is_none()
    })
    .await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS));
    std::fs::remove_dir_all(&dir).ok();
    assert_conforming(&f.sim);
}

#[tokio::test]
async fn the_documented_uninstall_leaves_nothing_terminating() {
    let f = fixture("prot-uninstall").await;
    let op = start_operator(&f.env.client, config(&f.env, &f.sim));
    create_channel(&f.env, "ch", spec(&f)).await;
    wait_condition(&f.env, "ch", "Ready", "True", None).await;
    eventually("the Secret is protected", || protected(&f)).await;

    // 1. Delete the channels and wait until they are gone.
    let out =
        common::kubectl_run(&["delete", "whatsappchannels", "--all", "-n", &f.env.ns, "--wait=true", "--timeout=60s"])
            .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // 2. The Secrets lost their finalizer, the bindings are gone.
    eventually("the Secret is released", || async { !protected(&f).await }).await;
    let bindings: Api<whatsapp_operator::api::WhatsAppNumberBinding> = Api::all(f.env.client.clone());
    let name = format!("whatsapp-{}", f.number.trim_start_matches('+'));
    eventually("the binding is released", || async { bindings.get_opt(&name).await.expect("get").is_none() }).await;
    // 3. Uninstall the operator: the Secret can be deleted at once, the namespace too.
    drop(op);
    let secrets: Api<Secret> = Api::namespaced(f.env.client.clone(), &f.env.ns);
    secrets.delete("twilio", &DeleteParams::default()).await.expect("delete secret");
    eventually("the Secret is gone", || async { secrets.get_opt("twilio").await.expect("get").is_none() }).await;
    assert_eq!(sender_webhook(&f).as_deref(), Some(PREVIOUS));
    assert_conforming(&f.sim);
}
