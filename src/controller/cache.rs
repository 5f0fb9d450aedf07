//! What the operator knows of the cluster without asking: reflector stores of channels and
//! number bindings, the metadata of Secrets ([`SecretMetas`]), and the indexes between them.
//!
//! Objects are slimmed before they enter a store: managedFields always, and annotations the
//! operator never reads (kubectl's `last-applied-configuration` carries a client-side-applied
//! Secret's data a second time). Channels are stored packed ([`StoredChannel`]). Secret *data*
//! never enters a store; a pass reads it for the one Secret it needs (see
//! [`super::credentials::SecretReader`]).

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::ResourceExt;

use crate::api::{WhatsAppChannel, WhatsAppNumberBinding};
use crate::binding;
use crate::twilio::E164;

use super::index::Index;
use super::secret_meta::{SecretMeta, SecretMetas};
use super::stored::StoredChannel;
use super::{RESEND_CONFIRMATION_ANNOTATION, SKIP_CLEANUP_ANNOTATION, VERIFY_NOW_ANNOTATION};

/// A channel's identity in the indexes: namespace and name (shared, not copied, by its entries).
pub type ChannelKey = std::sync::Arc<(String, String)>;

/// The stores and indexes every pass and watch mapper reads.
#[derive(Clone)]
pub struct Cache {
    /// Every watched channel, packed.
    pub channels: Store<StoredChannel>,
    /// Every number binding (cluster-scoped).
    pub bindings: Store<WhatsAppNumberBinding>,
    /// The metadata of every watched Secret, compact.
    pub secrets: SecretMetas,
    /// Channels by the Secrets they reference ([`secret_key`]) and by the binding name of their
    /// number ([`binding_key`]).
    pub channel_index: std::sync::Arc<Index<ChannelKey>>,
    /// Binding names by their holder's UID.
    pub holder_index: std::sync::Arc<Index<String>>,
    /// Whether the channel, binding and Secret watches have listed once.
    pub listed: std::sync::Arc<[std::sync::atomic::AtomicBool; 3]>,
    /// Gives the listings' garbage back to the system as they go (see `memory`).
    pub trim: std::sync::Arc<super::memory::Trimmer>,
}

/// The index key of Secret `ns/name`.
pub fn secret_key(ns: &str, name: &str) -> String {
    format!("secret:{ns}/{name}")
}

/// The index key of the binding named `name`.
pub fn binding_key(name: &str) -> String {
    format!("binding:{name}")
}

/// The keys a channel is filed under: its Secrets, and the binding names of the number it asks
/// for and of the number its status says it is wired to (until that one is released).
pub fn channel_keys(ch: &WhatsAppChannel) -> Vec<String> {
    let ns = ch.namespace().unwrap_or_default();
    let mut keys = vec![secret_key(&ns, &ch.spec.twilio.credentials_secret_ref.name)];
    if let Some(id) = &ch.spec.identity_server {
        keys.push(secret_key(&ns, &id.client_secret_ref.name));
    }
    if let Ok(n) = E164::parse(&ch.spec.phone_number) {
        keys.push(binding_key(&binding::binding_name(&n, binding::scope(ch))));
    }
    if let Some(wired) = ch.status.as_ref().and_then(|s| s.sender.as_ref()) {
        if let Ok(n) = E164::parse(&wired.phone_number) {
            let scope = ch.status.as_ref().and_then(|s| s.account.as_ref()).map(|a| a.sid.as_str());
            let scope = (wired.kind == crate::api::SenderKind::Sandbox).then_some(scope).flatten();
            keys.push(binding_key(&binding::binding_name(&n, scope)));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The index identity of a channel.
pub fn channel_id<K: kube::Resource>(ch: &K) -> Option<ChannelKey> {
    Some(std::sync::Arc::new((ch.meta().namespace.clone()?, ch.meta().name.clone()?)))
}

/// The keys a stored channel is filed under (none if it cannot be unpacked).
pub fn stored_channel_keys(ch: &StoredChannel) -> Vec<String> {
    ch.unpack().map(|c| channel_keys(&c)).unwrap_or_default()
}

/// The channel reference of an index identity.
pub fn channel_ref(key: &ChannelKey) -> ObjectRef<StoredChannel> {
    ObjectRef::new(&key.1).within(&key.0)
}

/// Slims a channel before it enters the store: only the operator's own annotations are kept.
pub fn slim_channel(ch: &mut WhatsAppChannel) {
    ch.managed_fields_mut().clear();
    ch.annotations_mut().retain(|k, _| {
        k == RESEND_CONFIRMATION_ANNOTATION || k == SKIP_CLEANUP_ANNOTATION || k == VERIFY_NOW_ANNOTATION
    });
}

/// Slims a binding (or Secret metadata) before it enters the store: what the operator reads of
/// their metadata is their identity, version, finalizers and deletion. Nothing else is kept.
pub fn slim_meta<K: kube::Resource>(obj: &mut K) {
    let m = std::mem::take(obj.meta_mut());
    *obj.meta_mut() = kube::api::ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        finalizers: m.finalizers,
        deletion_timestamp: m.deletion_timestamp,
        ..Default::default()
    };
}

/// Slims a Secret's metadata before it enters the store, as [`slim_meta`]: a cluster holds
/// many Secrets that no channel uses, and what the operator reads of one without its data is
/// whether it exists, its version, its finalizers and its deletion.
pub fn slim_secret_meta(s: &mut PartialObjectMeta<Secret>) {
    slim_meta(s);
    s.types = None;
}

impl Cache {
    /// Whether every store has its initial listing: a pass never decides from a store that has
    /// not seen the cluster yet (a Secret or binding "missing" only because it was not listed
    /// yet). Tracked from the watch streams' `InitDone`, not by awaiting the stores (their
    /// readiness signal wakes only one waiter, and the controllers already wait on it).
    pub fn ready(&self) -> bool {
        self.listed.iter().all(|f| f.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Notes that the watch stream `which` (0 channels, 1 bindings, 2 Secrets) finished a listing.
    pub fn note_listed<K>(&self, which: usize, event: &Event<K>) {
        match event {
            Event::InitApply(_) => self.trim.listed_one(),
            Event::InitDone => {
                if let Some(f) = self.listed.get(which) {
                    f.store(true, std::sync::atomic::Ordering::Release);
                }
                super::memory::release_free_heap();
            }
            _ => {}
        }
    }

    /// Files a channel watch event in the channel index.
    pub fn follow_channel(&self, event: &Event<StoredChannel>) {
        self.note_listed(0, event);
        self.channel_index.follow(event, channel_id, stored_channel_keys);
    }

    /// Files a binding watch event in the holder index.
    pub fn follow_binding(&self, event: &Event<WhatsAppNumberBinding>) {
        self.note_listed(1, event);
        self.holder_index.follow(event, |b| Some(b.name_any()), |b| vec![b.spec.channel_ref.uid.clone()]);
    }

    /// The references of the channels filed under `key`.
    pub fn channels_under(&self, key: &str) -> Vec<ObjectRef<StoredChannel>> {
        self.channel_index.get(key).iter().map(channel_ref).collect()
    }

    /// The channels filed under `key`, from the store, unpacked.
    pub fn channels_filed_under(&self, key: &str) -> Vec<WhatsAppChannel> {
        self.channel_index.get(key).iter().filter_map(|k| self.channel(&k.0, &k.1)).collect()
    }

    /// The channel `ns/name`, from the store, unpacked.
    pub fn channel(&self, ns: &str, name: &str) -> Option<WhatsAppChannel> {
        self.channels.get(&ObjectRef::new(name).within(ns)).and_then(|c| c.unpack().ok())
    }

    /// The binding named `name`, from the store.
    pub fn binding(&self, name: &str) -> Option<std::sync::Arc<WhatsAppNumberBinding>> {
        self.bindings.get(&ObjectRef::new(name))
    }

    /// The bindings whose holder has UID `uid`.
    pub fn bindings_held_by(&self, uid: &str) -> Vec<std::sync::Arc<WhatsAppNumberBinding>> {
        self.holder_index.get(uid).iter().filter_map(|name| self.binding(name)).collect()
    }

    /// The metadata of Secret `ns/name`, from the store.
    pub fn secret(&self, ns: &str, name: &str) -> Option<SecretMeta> {
        self.secrets.get(ns, name)
    }
}
