//! [`StoredChannel`]: a channel as the operator's store keeps it, a tenth of its typed size.
//!
//! A reconciled channel's status (eight conditions with their messages, the account, sender and
//! confirmation) is most of its memory: about 5 KiB typed, which at 10,000 channels is 50 MiB
//! for a store the passes read one object at a time. The store keeps instead the slimmed
//! metadata typed (what the runtime, the predicates and the indexes read) and spec and status
//! as deflated JSON (about 0.6 KiB), unpacked into a [`WhatsAppChannel`] when a pass or a
//! lookup needs the object. Packing happens as the watch decodes an object, so the typed object
//! with its managedFields never outlives its watch event.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use crate::api::{Phase, WhatsAppChannel, WhatsAppChannelSpec, WhatsAppChannelStatus};

/// The deflate level: the fastest (a channel's JSON is small; the level changes its packed
/// size by a few percent and the cost of packing severalfold).
const LEVEL: u8 = 1;
/// The most a packed channel may unpack to (the API server's own object limit is 1.5 MiB).
const UNPACKED_LIMIT: usize = 4 * 1024 * 1024;

/// A channel as the store keeps it: metadata typed, spec and status packed. Decoded from the
/// API server's JSON like a [`WhatsAppChannel`] (and slimmed as [`super::cache::slim_channel`]
/// does); [`StoredChannel::unpack`] gives the channel back.
#[derive(Clone, Debug)]
pub struct StoredChannel {
    /// The slimmed metadata.
    pub metadata: ObjectMeta,
    /// The status's phase (the metrics count channels by phase without unpacking them).
    pub phase: Option<Phase>,
    packed: Arc<[u8]>,
}

/// A packed channel that cannot be unpacked (never expected: the operator packed it itself).
#[derive(Debug, thiserror::Error)]
#[error("a stored channel cannot be unpacked: {0}")]
pub struct UnpackError(String);

impl StoredChannel {
    /// Packs `ch`, slimmed first.
    pub fn pack(mut ch: WhatsAppChannel) -> Result<Self, serde_json::Error> {
        super::cache::slim_channel(&mut ch);
        let WhatsAppChannel { metadata, spec, status } = ch;
        let json = serde_json::to_vec(&(&spec, &status))?;
        let phase = status.as_ref().and_then(|s| s.phase);
        Ok(Self { metadata, phase, packed: miniz_oxide::deflate::compress_to_vec(&json, LEVEL).into() })
    }

    /// The channel, whole again.
    pub fn unpack(&self) -> Result<WhatsAppChannel, UnpackError> {
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&self.packed, UNPACKED_LIMIT)
            .map_err(|e| UnpackError(format!("{:?}", e.status)))?;
        let (spec, status): (WhatsAppChannelSpec, Option<WhatsAppChannelStatus>) =
            serde_json::from_slice(&json).map_err(|e| UnpackError(e.to_string()))?;
        Ok(WhatsAppChannel { metadata: self.metadata.clone(), spec, status })
    }

    /// The packed size in bytes.
    pub fn packed_len(&self) -> usize {
        self.packed.len()
    }
}

impl<'de> Deserialize<'de> for StoredChannel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::pack(WhatsAppChannel::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Resource for StoredChannel {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        WhatsAppChannel::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        WhatsAppChannel::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        WhatsAppChannel::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        WhatsAppChannel::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reconciled() -> serde_json::Value {
        json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppChannel",
            "metadata": {
                "name": "ch", "namespace": "ns", "uid": "u1", "generation": 2, "resourceVersion": "7",
                "finalizers": ["whatsapp-operator.io/cleanup"],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}",
                    "whatsapp-operator.io/resend-confirmation": "1",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}],
            },
            "spec": {
                "phoneNumber": "+15550000000", "instance": "crm",
                "twilio": {"accountSid": "AC00000000000000000000000000000000", "credentialsSecretRef": {"name": "twilio"}},
                "webhook": {"url": "https://crm.example/api/webhook"},
            },
            "status": {
                "observedGeneration": 2, "phase": "Ready",
                "conditions": [{"type": "Ready", "status": "True", "reason": "ChannelReady", "message": "Connected and active",
                    "lastTransitionTime": "2026-12-01T14:47:00Z", "observedGeneration": 2}],
                "sender": {"kind": "WhatsAppSender", "phoneNumber": "+15550000000", "sid": "XE0123",
                    "webhookUrl": "https://crm.example/api/webhook", "webhookMethod": "POST"},
            },
        })
    }

    #[test]
    fn a_stored_channel_unpacks_to_the_slimmed_channel() {
        let stored: StoredChannel = serde_json::from_value(reconciled()).expect("decode");
        let mut expected: WhatsAppChannel = serde_json::from_value(reconciled()).expect("typed");
        super::super::cache::slim_channel(&mut expected);
        let json = |ch: &WhatsAppChannel| serde_json::to_value(ch).expect("json");
        assert_eq!(json(&stored.unpack().expect("unpack")), json(&expected));
        assert_eq!(stored.phase, Some(Phase::Ready));
        assert!(stored.metadata.managed_fields.is_none_or(|m| m.is_empty()), "managedFields dropped");
        let kept: Vec<_> = stored.metadata.annotations.iter().flat_map(|a| a.keys()).collect();
        assert_eq!(kept, ["whatsapp-operator.io/resend-confirmation"], "only the operator's annotations");
    }

    #[test]
    fn a_channel_without_status_round_trips() {
        let mut v = reconciled();
        v.as_object_mut().expect("object").remove("status");
        let stored: StoredChannel = serde_json::from_value(v).expect("decode");
        assert!(stored.unpack().expect("unpack").status.is_none());
        assert_eq!(stored.phase, None);
    }

    #[test]
    fn a_corrupt_store_entry_is_an_error_not_a_panic() {
        let mut stored: StoredChannel = serde_json::from_value(reconciled()).expect("decode");
        stored.packed = Arc::from(&b"not deflate"[..]);
        assert!(stored.unpack().is_err());
    }

    #[test]
    fn the_resource_is_the_channel() {
        assert_eq!(StoredChannel::kind(&()), WhatsAppChannel::kind(&()));
        assert_eq!(StoredChannel::api_version(&()), WhatsAppChannel::api_version(&()));
        assert_eq!(StoredChannel::plural(&()), WhatsAppChannel::plural(&()));
    }
}
