//! State shared by the server tasks and the handle.

use std::sync::{Mutex, MutexGuard};

use crate::config::SimConfig;
use crate::faults::{FaultSet, Limiter};
use crate::log::RequestLog;
use crate::sid::SidGen;
use crate::spec::Contract;
use crate::state::SimState;

/// Everything a request needs, behind one `Arc`.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub base_url: String,
    pub state: Mutex<SimState>,
    pub log: Mutex<RequestLog>,
    pub faults: Mutex<FaultSet>,
    pub limiter: Mutex<Limiter>,
    pub request_ids: Mutex<SidGen>,
    /// How webhook requests are made (the control API changes it).
    pub webhook: Mutex<crate::webhook::WebhookSettings>,
    /// The status callbacks sent, in order.
    pub callbacks: Mutex<Vec<crate::webhook::Attempt>>,
    /// Loaded in strict mode only.
    pub contract: Option<Contract>,
    /// Loaded when `$TWILIO_SIM_COVERAGE_FILE` is set (the strict contract, or one loaded only
    /// to name operations for the coverage log).
    pub coverage: Option<Contract>,
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the simulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A fresh `RQ...` request id.
    pub fn request_id(&self) -> String {
        lock(&self.request_ids).random("RQ")
    }
}
