//! Simulator configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::spec::Contract;

/// How `POST /v2/Channels/Senders/{Sid}` treats webhook sub-fields the request omits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookUpdate {
    /// The request's `webhook` object replaces the stored one; omitted sub-fields become null
    /// (the conservative reading: a client that always sends the full object works either way).
    #[default]
    Replace,
    /// Omitted sub-fields keep their stored values; explicit nulls clear.
    Merge,
}

/// How the simulator is started.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to bind; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// Check every Twilio request and response against the OpenAPI contract.
    pub strict: bool,
    /// Directory with `twilio_api_v2010.json`, `twilio_messaging_v1.json`,
    /// `twilio_messaging_v2.json` (strict mode). Default: see [`SimConfig::resolved_spec_dir`].
    pub spec_dir: Option<PathBuf>,
    /// Seed for runtime-generated SIDs and tokens (messages, purchased numbers); random when `None`.
    pub rng_seed: Option<u64>,
    /// Sender webhook update semantics.
    pub webhook_update: WebhookUpdate,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How webhook requests (inbound messages) are made: Twilio's timeouts by default.
    pub webhook: crate::webhook::WebhookSettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            strict: false,
            spec_dir: None,
            rng_seed: None,
            webhook_update: WebhookUpdate::default(),
            max_body_bytes: 1024 * 1024,
            webhook: crate::webhook::WebhookSettings::default(),
        }
    }
}

impl SimConfig {
    /// The spec directory strict mode loads: `spec_dir`, else [`Contract::default_dir`]
    /// (`$TWILIO_OAI_SPEC_DIR`, else the cache of `hack/fetch-twilio-specs.sh`).
    pub fn resolved_spec_dir(&self) -> PathBuf {
        if let Some(dir) = &self.spec_dir {
            return dir.clone();
        }
        Contract::default_dir().unwrap_or_else(|_| PathBuf::from("twilio-oai/json"))
    }
}
