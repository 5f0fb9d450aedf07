//! The `ValidatingWebhookConfiguration` that sends channel creates and updates to the webhook.
//!
//! Two webhooks, one per operation, because they fail differently when the API server cannot
//! reach the webhook (the operator is down, a wrong URL or certificate):
//!
//! - **creates** ([`WEBHOOK_NAME`]) with `failurePolicy: Fail`: refused, so a broken installation
//!   shows at once and no channel is created unchecked. A create is never part of a cleanup.
//! - **updates** ([`UPDATE_WEBHOOK_NAME`]) with `failurePolicy: Ignore`: admitted unchecked. The
//!   API server cannot tell (without `matchConditions`, Kubernetes 1.27+) which updates change
//!   the number before it calls the webhook, and under `Fail` an unreachable webhook would block
//!   every update: removing the operator's finalizer (a deletion would hang), labels, the
//!   operator's own writes. An update that moves a channel onto a taken number while the webhook
//!   is down is still caught by the binding the controller creates atomically (the channel ends
//!   in `Conflict`).
//!
//! Both match the `whatsappchannels` resource only, not its `status` subresource: status writes
//! never reach the webhook. Deletes are not matched.

use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};

use super::AdmissionError;
use crate::api::{GROUP, VERSION};
use crate::controller::FIELD_MANAGER;

/// The default name of the `ValidatingWebhookConfiguration`.
pub const DEFAULT_CONFIGURATION_NAME: &str = "whatsapp-operator";
/// The name of the webhook for creates inside it (shown in the API server's denials).
pub const WEBHOOK_NAME: &str = "whatsappchannels.whatsapp-operator.io";
/// The name of the webhook for updates inside it.
pub const UPDATE_WEBHOOK_NAME: &str = "updates.whatsappchannels.whatsapp-operator.io";
/// How long the API server waits for an answer.
pub const TIMEOUT_SECONDS: i32 = 5;

/// How the operator registers its webhook with the API server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registration {
    /// The `ValidatingWebhookConfiguration`'s name (default [`DEFAULT_CONFIGURATION_NAME`]).
    pub name: String,
    /// Only channels in namespaces matching this selector are sent to the webhook (all when
    /// `None`).
    pub namespace_selector: Option<LabelSelector>,
}

impl Registration {
    /// The default registration: [`DEFAULT_CONFIGURATION_NAME`], every namespace.
    pub fn new() -> Self {
        Self { name: DEFAULT_CONFIGURATION_NAME.to_owned(), namespace_selector: None }
    }
}

/// The configuration for a webhook at `url` whose serving certificate `ca_bundle` (PEM) verifies:
/// creates of `whatsappchannels` with `failurePolicy: Fail` ([`WEBHOOK_NAME`]), updates with
/// `failurePolicy: Ignore` ([`UPDATE_WEBHOOK_NAME`]); no side effects, v1 reviews, the status
/// subresource never matched (see the module documentation).
pub fn webhook_configuration(
    registration: &Registration,
    url: &str,
    ca_bundle: &[u8],
) -> ValidatingWebhookConfiguration {
    let hook = |name: &str, operation: &str, failure_policy: &str| ValidatingWebhook {
        name: name.to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        client_config: WebhookClientConfig {
            url: Some(url.to_owned()),
            ca_bundle: Some(ByteString(ca_bundle.to_vec())),
            service: None,
        },
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec![GROUP.to_owned()]),
            api_versions: Some(vec![VERSION.to_owned()]),
            // The resource only: `whatsappchannels/status` (status writes) is not matched.
            resources: Some(vec!["whatsappchannels".to_owned()]),
            operations: Some(vec![operation.to_owned()]),
            scope: Some("Namespaced".to_owned()),
        }]),
        failure_policy: Some(failure_policy.to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        side_effects: "None".to_owned(),
        timeout_seconds: Some(TIMEOUT_SECONDS),
        namespace_selector: registration.namespace_selector.clone(),
        ..ValidatingWebhook::default()
    };
    let mut config = ValidatingWebhookConfiguration::default();
    config.metadata.name = Some(registration.name.clone());
    config.metadata.labels = Some([("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned())].into());
    config.webhooks = Some(vec![hook(WEBHOOK_NAME, "CREATE", "Fail"), hook(UPDATE_WEBHOOK_NAME, "UPDATE", "Ignore")]);
    config
}

/// Writes (creates or refreshes, by server-side apply) the configuration for the webhook at
/// `url`, trusted through `ca_bundle` (PEM). Returns the stored object.
pub async fn register(
    client: &Client,
    registration: &Registration,
    url: &str,
    ca_bundle: &[u8],
) -> Result<ValidatingWebhookConfiguration, AdmissionError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let desired = webhook_configuration(registration, url, ca_bundle);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&registration.name, &pp, &Patch::Apply(&desired))
        .await
        .map_err(|source| AdmissionError::Register { name: registration.name.clone(), source })
}

/// Removes the configuration `name`; with `written`, only while it is still that object
/// unchanged (another process that registered since keeps its own). Gone already is fine.
pub async fn unregister(
    client: &Client,
    name: &str,
    written: Option<&ValidatingWebhookConfiguration>,
) -> Result<(), AdmissionError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let dp = DeleteParams {
        preconditions: written.map(|w| Preconditions { uid: w.uid(), resource_version: w.resource_version() }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(AdmissionError::Register { name: name.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_fail_closed_updates_fail_open_and_status_is_never_matched() {
        let reg = Registration::new();
        let config = webhook_configuration(&reg, "https://127.0.0.1:9443/validate-whatsappchannel", b"PEM");
        let value = serde_json::to_value(&config).expect("json");
        assert_eq!(value["metadata"]["name"], "whatsapp-operator");
        let hooks = value["webhooks"].as_array().expect("webhooks");
        assert_eq!(hooks.len(), 2);
        for (hook, name, operation, policy) in
            [(&hooks[0], WEBHOOK_NAME, "CREATE", "Fail"), (&hooks[1], UPDATE_WEBHOOK_NAME, "UPDATE", "Ignore")]
        {
            assert_eq!(hook["name"], name);
            assert_eq!(hook["failurePolicy"], policy, "{name}");
            assert_eq!(hook["sideEffects"], "None");
            assert_eq!(hook["timeoutSeconds"], 5);
            assert_eq!(hook["matchPolicy"], "Equivalent");
            assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
            assert_eq!(hook["clientConfig"]["url"], "https://127.0.0.1:9443/validate-whatsappchannel");
            assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
            // `whatsappchannels` only: not `whatsappchannels/status`, not `*/*`; no DELETE.
            assert_eq!(
                hook["rules"],
                serde_json::json!([{
                    "apiGroups": ["whatsapp-operator.io"],
                    "apiVersions": ["v1alpha1"],
                    "resources": ["whatsappchannels"],
                    "operations": [operation],
                    "scope": "Namespaced",
                }])
            );
            assert!(hook.get("namespaceSelector").is_none());
        }
    }
}
