//! In-use protection of credentials Secrets, the way Kubernetes protects volumes in use
//! (`kubernetes.io/pvc-protection`): while a channel may still need its Secret to undo its
//! Twilio changes, the Secret carries the finalizer [`SECRET_FINALIZER`]. A
//! `kubectl delete -f dir/` that removes a Secret and its channels together then leaves the
//! Secret terminating (still readable) until the channels' cleanup has used it.
//!
//! A small controller of its own ([`reconcile`]) removes the finalizer once no channel needs the
//! Secret: woken by the Secret's own events and by channels finishing their cleanup, and decided
//! from the caches (no LIST). It never wedges: a namespace being deleted, a Secret replaced
//! (`kubectl replace --force`), or channels gone all end with the finalizer removed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::{DeletionPolicy, WhatsAppChannel};

use super::cache::{secret_key, Cache};
use super::{Context, Error};

/// The finalizer the operator puts on credentials Secrets in use.
pub const SECRET_FINALIZER: &str = "whatsapp-operator.io/credentials-in-use";

/// Whether `ch` may need its credentials Secret later: to restore the webhook on deletion
/// (never under `managementPolicy: Observe`, whose deletion leaves Twilio alone).
pub fn needs_secret(ch: &WhatsAppChannel, secret: &str) -> bool {
    ch.spec.deletion_policy == DeletionPolicy::Delete
        && ch.spec.management_policy == crate::api::ManagementPolicy::Manage
        && ch.spec.twilio.credentials_secret_ref.name == secret
        && ch.finalizers().iter().any(|f| f == super::FINALIZER)
}

/// Whether a Secret with these finalizers carries the operator's.
pub fn is_protected(finalizers: &[String]) -> bool {
    finalizers.iter().any(|f| f == SECRET_FINALIZER)
}

/// The Secret watch's `event` as the Secret controller's store sees it: only the Secrets that
/// carry the operator's finalizer (a few among the cluster's many); one that loses it leaves,
/// and one listed without it is not listed (`None`).
pub fn protected_only(
    event: &watcher::Event<PartialObjectMeta<Secret>>,
) -> Option<watcher::Event<PartialObjectMeta<Secret>>> {
    use watcher::Event;
    let protected = |s: &PartialObjectMeta<Secret>| is_protected(s.finalizers());
    Some(match event {
        Event::Apply(s) if protected(s) => Event::Apply(s.clone()),
        Event::Apply(s) | Event::Delete(s) => Event::Delete(s.clone()),
        Event::InitApply(s) if protected(s) => Event::InitApply(s.clone()),
        Event::InitApply(_) => return None,
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    })
}

/// Whether any channel (from the caches) still needs Secret `ns/name`: one that may restore a
/// webhook with it on deletion. A channel being deleted needs it only while it still holds a
/// number (its cleanup releases the bindings last), so channels deleted together do not keep
/// the Secret for each other.
pub fn still_needed(cache: &Cache, ns: &str, name: &str) -> bool {
    cache.channels_filed_under(&secret_key(ns, name)).iter().any(|ch| {
        if !needs_secret(ch, name) {
            return false;
        }
        if ch.metadata.deletion_timestamp.is_none() {
            return true;
        }
        ch.uid().is_some_and(|uid| !cache.bindings_held_by(&uid).is_empty())
    })
}

/// Adds the finalizer to credentials Secrets, once per Secret version however many channels ask
/// at the same time: the first pass patches, the others wait for it and then find it done (the
/// store may show the old version a little longer; the patch was made from that version).
#[derive(Debug, Default)]
pub struct Protector {
    /// Per Secret (`ns/name`): the version this process last protected it from.
    slots: super::single_flight::Slots<String, Option<String>>,
}

impl Protector {
    /// Adds the finalizer to Secret `ns/name`, unless the store shows it is there, the Secret
    /// is terminating, or this process already protected the version the store shows.
    pub async fn protect(&self, client: &Client, cache: &Cache, ns: &str, name: &str) -> Result<(), kube::Error> {
        let slot = self.slots.slot(secret_key(ns, name));
        let mut done = slot.lock().await;
        let Some(meta) = cache.secret(ns, name) else {
            return Ok(());
        };
        if is_protected(&meta.finalizers) || meta.deletion_timestamp.is_some() {
            return Ok(());
        }
        let version = Some(meta.resource_version).filter(|v| !v.is_empty());
        if version.is_some() && *done == version {
            return Ok(());
        }
        let mut finalizers = meta.finalizers;
        finalizers.push(SECRET_FINALIZER.to_owned());
        patch_finalizers(client, ns, name, &finalizers, version.clone()).await?;
        *done = version;
        Ok(())
    }
}

async fn patch_finalizers(
    client: &Client,
    ns: &str,
    name: &str,
    finalizers: &[String],
    resource_version: Option<String>,
) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}});
    api.patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// How long a Secret deleted while its channels are not being deleted keeps the finalizer: long
/// enough for `kubectl delete -f dir/` to reach the channels too (they then need the Secret for
/// their cleanup), short enough that a replacement (`kubectl replace --force`, Argo CD's
/// Replace) is not held up for long.
pub const REPLACE_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether a terminating Secret is needed only by channels that are not being deleted: then
/// it is being replaced or retired, not torn down with its channels.
fn only_live_users(cache: &Cache, ns: &str, name: &str) -> bool {
    cache
        .channels_filed_under(&secret_key(ns, name))
        .iter()
        .filter(|ch| needs_secret(ch, name))
        .all(|ch| ch.metadata.deletion_timestamp.is_none())
}

/// The Secret controller's reconcile: removes the finalizer from a Secret no channel needs, and
/// from a deleted Secret whose channels are not being deleted after [`REPLACE_GRACE`].
pub async fn reconcile(secret: Arc<PartialObjectMeta<Secret>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
        return Ok(Action::await_change());
    };
    // Before every store has listed, "no channel needs it" may only mean "not listed yet".
    if !ctx.cache.ready() {
        return Ok(Action::requeue(std::time::Duration::from_millis(200)));
    }
    if !is_protected(secret.finalizers()) {
        return Ok(Action::await_change());
    }
    if still_needed(&ctx.cache, &ns, &name) {
        let Some(deleted) = secret.metadata.deletion_timestamp.as_ref() else {
            return Ok(Action::await_change());
        };
        if !only_live_users(&ctx.cache, &ns, &name) {
            return Ok(Action::await_change());
        }
        let waited = super::clock::age(deleted);
        if waited < REPLACE_GRACE {
            return Ok(Action::requeue(REPLACE_GRACE - waited + std::time::Duration::from_millis(100)));
        }
        tracing::info!(secret = %format!("{ns}/{name}"), "a credentials Secret in use was deleted while its channels stay: releasing it (they report SecretNotFound until it is recreated)");
    }
    let finalizers: Vec<String> = secret.finalizers().iter().filter(|f| *f != SECRET_FINALIZER).cloned().collect();
    match patch_finalizers(&ctx.client, &ns, &name, &finalizers, secret.resource_version()).await {
        Ok(()) => {
            tracing::debug!(secret = %format!("{ns}/{name}"), "released a credentials Secret no channel needs");
            Ok(Action::await_change())
        }
        // Changed since the store saw it (its event wakes this again) or gone.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// The Secret controller's error policy: retry with the operator's base backoff.
pub fn error_policy(_secret: Arc<PartialObjectMeta<Secret>>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "cannot release a credentials Secret; retrying");
    Action::requeue(super::backoff::with_jitter(ctx.config.backoff_base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use watcher::Event;

    fn secret(name: &str, protected: bool) -> PartialObjectMeta<Secret> {
        let finalizers = protected.then(|| vec![SECRET_FINALIZER.to_owned()]);
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                finalizers,
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    fn names(store: &reflector::Store<PartialObjectMeta<Secret>>) -> Vec<String> {
        let mut names: Vec<_> = store.state().iter().map(|s| s.name_any()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_secret_controller_stores_only_protected_secrets() {
        let (store, mut writer) = reflector::store();
        let mut follow = |ev: Event<PartialObjectMeta<Secret>>| {
            if let Some(ev) = protected_only(&ev) {
                writer.apply_watcher_event(&ev);
            }
        };
        follow(Event::Init);
        follow(Event::InitApply(secret("in-use", true)));
        follow(Event::InitApply(secret("unrelated", false)));
        follow(Event::InitApply(secret("also-in-use", true)));
        follow(Event::InitDone);
        assert_eq!(names(&store), ["also-in-use", "in-use"]);
        // Released: it leaves the store; protected later: it enters it.
        follow(Event::Apply(secret("in-use", false)));
        follow(Event::Apply(secret("unrelated", true)));
        assert_eq!(names(&store), ["also-in-use", "unrelated"]);
        follow(Event::Delete(secret("also-in-use", true)));
        assert_eq!(names(&store), ["unrelated"]);
    }
}
