//! The custom resources of the `whatsapp-operator.io` API group.
//!
//! Every type here is plain data: it derives its OpenAPI schema (with the validation the API
//! server enforces) through schemars, and `crate::crdgen` renders the CRDs from it.

pub mod binding;
pub mod channel;
pub mod condition;
pub mod rules;

pub use binding::{WhatsAppNumberBinding, WhatsAppNumberBindingSpec};
pub use channel::*;
pub use condition::{ConditionType, Reason};

/// The API group of every resource this operator serves.
pub const GROUP: &str = "whatsapp-operator.io";
/// The API version of every resource this operator serves.
pub const VERSION: &str = "v1alpha1";
