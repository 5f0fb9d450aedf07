//! [`SecretMetas`]: what the operator keeps of every watched Secret, a tenth of a reflector's.
//!
//! A cluster holds many Secrets no channel uses (10,000 in the bench), and the operator reads of
//! each only whether it exists, its version, its finalizers and its deletion. A reflector store
//! keeps every one as typed metadata with its `ObjectRef` key (about 1 KiB each); this map keeps
//! the name, the version and the rest only when set (about 0.1 KiB). It follows the Secret
//! watch's events as a reflector does, relists included: a Secret not seen again between `Init`
//! and `InitDone` is gone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;

/// What the operator knows of one Secret without its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMeta {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `metadata.deletionTimestamp`.
    pub deletion_timestamp: Option<Time>,
}

impl SecretMeta {
    /// The parts of `s` the operator reads.
    pub fn of(s: &PartialObjectMeta<Secret>) -> Self {
        let m = &s.metadata;
        Self {
            resource_version: m.resource_version.clone().unwrap_or_default(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            deletion_timestamp: m.deletion_timestamp.clone(),
        }
    }
}

/// Secrets by namespace, then name.
type Map = HashMap<Arc<str>, HashMap<Box<str>, SecretMeta>>;

/// The metadata of every watched Secret, filled from the Secret watch (cheap to clone: shared).
#[derive(Clone, Debug, Default)]
pub struct SecretMetas {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    live: Map,
    /// The Secrets listed since the last `Init`, while a listing is under way; swapped in at
    /// `InitDone`.
    listing: Option<Map>,
}

fn insert(map: &mut Map, s: &PartialObjectMeta<Secret>) {
    let (Some(ns), Some(name)) = (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) else {
        return;
    };
    let meta = SecretMeta::of(s);
    match map.get_mut(ns) {
        Some(names) => {
            names.insert(name.into(), meta);
        }
        None => {
            map.insert(ns.into(), HashMap::from([(name.into(), meta)]));
        }
    }
}

fn remove(map: &mut Map, s: &PartialObjectMeta<Secret>) {
    let (Some(ns), Some(name)) = (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) else {
        return;
    };
    if let Some(names) = map.get_mut(ns) {
        names.remove(name);
        if names.is_empty() {
            map.remove(ns);
        }
    }
}

impl SecretMetas {
    /// Applies one event of the Secret watch.
    pub fn follow(&self, event: &Event<PartialObjectMeta<Secret>>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(s) => insert(&mut inner.live, s),
            Event::Delete(s) => remove(&mut inner.live, s),
            Event::Init => inner.listing = Some(Map::new()),
            Event::InitApply(s) => match inner.listing.as_mut() {
                Some(listing) => insert(listing, s),
                None => insert(&mut inner.live, s),
            },
            Event::InitDone => {
                if let Some(listing) = inner.listing.take() {
                    inner.live = listing;
                }
            }
        }
    }

    /// The metadata of Secret `ns/name`.
    pub fn get(&self, ns: &str, name: &str) -> Option<SecretMeta> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.live.get(ns).and_then(|names| names.get(name)).cloned()
    }

    /// How many Secrets it holds.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.live.values().map(HashMap::len).sum()
    }

    /// Whether it holds no Secret.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(ns: &str, name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                annotations: Some([("kubectl.kubernetes.io/last-applied-configuration".into(), "{}".into())].into()),
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    #[test]
    fn follows_applies_and_deletes() {
        let metas = SecretMetas::default();
        metas.follow(&Event::Apply(secret("a", "twilio", "1")));
        metas.follow(&Event::Apply(secret("b", "twilio", "2")));
        let mut updated = secret("a", "twilio", "3");
        updated.metadata.finalizers = Some(vec!["whatsapp-operator.io/in-use".into()]);
        metas.follow(&Event::Apply(updated));
        let a = metas.get("a", "twilio").expect("a/twilio");
        assert_eq!((a.resource_version.as_str(), a.finalizers.len()), ("3", 1));
        assert_eq!(metas.get("b", "twilio").map(|m| m.resource_version), Some("2".into()));
        metas.follow(&Event::Delete(secret("b", "twilio", "2")));
        assert_eq!(metas.get("b", "twilio"), None);
        assert_eq!(metas.len(), 1);
    }

    #[test]
    fn a_relist_replaces_what_it_holds_at_init_done() {
        let metas = SecretMetas::default();
        metas.follow(&Event::Apply(secret("a", "kept", "1")));
        metas.follow(&Event::Apply(secret("a", "gone", "1")));
        metas.follow(&Event::Init);
        metas.follow(&Event::InitApply(secret("a", "kept", "5")));
        // Until the listing is done the old contents answer.
        assert_eq!(metas.get("a", "gone").map(|m| m.resource_version), Some("1".into()));
        metas.follow(&Event::InitDone);
        assert_eq!(metas.get("a", "gone"), None, "not listed again: deleted while unwatched");
        assert_eq!(metas.get("a", "kept").map(|m| m.resource_version), Some("5".into()));
        assert_eq!(metas.len(), 1);
    }
}
