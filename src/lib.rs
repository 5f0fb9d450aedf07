//! whatsapp-operator: WhatsApp messaging channels, backed by Twilio, as Kubernetes resources.
//!
//! Layout: [`api`] holds the custom resource types, [`crdgen`] renders their CRDs, [`twilio`]
//! is the typed Twilio client, [`cli`] the command line, [`admission`] the validating webhook,
//! [`leader`] the Lease-based leader election, [`status`] the `status` command, [`test_hooks`] the fault hooks of debug builds.

pub mod admission;
pub mod api;
pub mod binding;
pub mod check;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod leader;
pub mod status;
pub mod telemetry;
pub mod test_hooks;
pub mod twilio;
