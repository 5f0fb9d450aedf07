//! In-use protection of credentials Secrets, the way Kubernetes protects volumes in use
//! (`kubernetes.io/pvc-protection`): while a channel may still need its Secret to undo its
//! Twilio changes, the Secret carries the finalizer [`SECRET_FINALIZER`]. A
//! `kubectl delete -f dir/` that removes a Secret and its channels together then leaves the
//! Secret terminating (still readable) until the channels' cleanup has used it, and the
//! operator removes the finalizer once no channel needs the Secret any more.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::{DeletionPolicy, WhatsAppChannel};
use crate::binding;
use crate::twilio::E164;

/// The finalizer the operator puts on credentials Secrets in use.
pub const SECRET_FINALIZER: &str = "whatsapp-operator.io/credentials-in-use";

/// Whether `ch` may need its credentials Secret later: to restore the webhook on deletion.
pub fn needs_secret(ch: &WhatsAppChannel, secret: &str) -> bool {
    ch.spec.deletion_policy == DeletionPolicy::Delete
        && ch.spec.twilio.credentials_secret_ref.name == secret
        && ch.finalizers().iter().any(|f| f == super::FINALIZER)
}

/// Adds the finalizer to `secret` unless it is there (or the Secret is already terminating:
/// finalizers cannot be added then). Returns the new `resourceVersion` when it wrote.
pub async fn protect(client: &Client, secret: &ObjectMeta) -> Result<Option<String>, kube::Error> {
    let finalizers = secret.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == SECRET_FINALIZER) || secret.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let (Some(ns), Some(name)) = (&secret.namespace, &secret.name) else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut finalizers = finalizers;
    finalizers.push(SECRET_FINALIZER.to_owned());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": secret.resource_version}});
    let patched = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(patched.resource_version())
}

/// Whether the Secret carries the finalizer.
pub fn is_protected(secret: &ObjectMeta) -> bool {
    secret.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == SECRET_FINALIZER))
}

/// Removes the finalizer from Secret `ns/name` if no channel other than `except_uid` needs it.
pub async fn release_if_unused(
    client: &Client,
    ns: &str,
    name: &str,
    except_uid: Option<&str>,
) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(secret) = secrets.get_metadata_opt(name).await? else {
        return Ok(());
    };
    if !secret.finalizers().iter().any(|f| f == SECRET_FINALIZER) {
        return Ok(());
    }
    let channels: Api<WhatsAppChannel> = Api::namespaced(client.clone(), ns);
    for ch in channels.list(&ListParams::default()).await?.items {
        if ch.uid().as_deref() == except_uid || !needs_secret(&ch, name) {
            continue;
        }
        // A channel being deleted needs the Secret only until its cleanup released its number
        // (cleanup releases the binding before it gets here), so channels deleted together do
        // not keep the Secret for each other.
        let still_needed = match (ch.metadata.deletion_timestamp.is_some(), E164::parse(&ch.spec.phone_number)) {
            (true, Ok(number)) => binding::is_held_by(client, &ch, &number, binding::scope(&ch)).await?,
            (true, Err(_)) => false,
            (false, _) => true,
        };
        if still_needed {
            return Ok(());
        }
    }
    let finalizers: Vec<&String> = secret.finalizers().iter().filter(|f| *f != SECRET_FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": secret.resource_version()}});
    match secrets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
