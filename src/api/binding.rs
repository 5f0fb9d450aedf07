//! `WhatsAppNumberBinding`: the cluster-wide claim of one number by one channel.
//!
//! Named after the normalized number, so its creation is the atomic step that decides which
//! channel (and so which application instance) a number serves.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which channel holds a number. Created and deleted by the operator only.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "whatsapp-operator.io",
    version = "v1alpha1",
    kind = "WhatsAppNumberBinding",
    plural = "whatsappnumberbindings",
    singular = "whatsappnumberbinding",
    shortname = "wanb",
    doc = "The cluster-wide claim of one WhatsApp number by one WhatsAppChannel (managed by the operator).",
    category = "whatsapp",
    printcolumn = r#"{"name":"Number","type":"string","jsonPath":".spec.phoneNumber"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instance"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.channelRef.namespace"}"#,
    printcolumn = r#"{"name":"Channel","type":"string","jsonPath":".spec.channelRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppNumberBindingSpec {
    /// The bound number, normalized to E.164.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{1,14}$"))]
    pub phone_number: String,
    /// The application instance the number serves.
    pub instance: String,
    /// The channel holding the number.
    pub channel_ref: ChannelReference,
}

/// A reference to a `WhatsAppChannel`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelReference {
    /// The channel's namespace.
    pub namespace: String,
    /// The channel's name.
    pub name: String,
    /// The channel's UID: a recreated channel of the same name is a different holder.
    pub uid: String,
}
