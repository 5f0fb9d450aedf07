//! A stateful Twilio REST API simulator for the WhatsApp operator's tests and demo.
//!
//! One HTTP listener on 127.0.0.1 serves api.twilio.com's `/2010-04-01/...`,
//! messaging.twilio.com's `/v1/...` and `/v2/...`, conversations.twilio.com's
//! `/v1/Configuration/Addresses...`, accounts.twilio.com's `/v1/AuthTokens/...`, an OAuth2 token endpoint (`/connect/token`)
//! standing in for the CRM identity server, and a control API under `/_sim/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), twilio_sim::SimError> {
//! use twilio_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! sim.seed_yaml("accounts: [{friendly_name: prod, auth_token: secret}]")?;
//! let base = sim.base_url(); // point the Twilio client here
//! # let _ = base; Ok(()) }
//! ```
//!
//! See `README.md` for the seed schema, the control API and the behaviour decisions.

#![warn(missing_docs)]

mod accounts;
mod api2010;
mod auth;
mod config;
mod content;
mod control;
mod conversations;
mod errors;
mod faults;
mod handle;
mod http;
mod log;
mod messaging;
mod monitor;
mod oauth;
mod paging;
mod pipeline;
pub mod receiver;
mod router;
mod seed;
mod serde_util;
mod server;
mod shared;
mod sid;
pub mod spec;
pub mod state;
pub mod webhook;

pub use config::{SimConfig, WebhookUpdate};
pub use errors::SimError;
pub use faults::{ActiveFault, FaultAction, FaultRule};
pub use handle::{SimHandle, Simulator};
pub use log::{RequestKind, RequestRecord, RequestRecords, ViolationPhase, ViolationRecord, REDACTED};
pub use router::{implemented_operations, OperationInfo};
pub use seed::{
    SeedAccount, SeedAddressConfiguration, SeedContent, SeedFile, SeedKey, SeedNumber, SeedSandbox, SeedSender,
    SeedService, SeedSessionWindow,
};
