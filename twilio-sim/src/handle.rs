//! [`Simulator::start`] and the [`SimHandle`] tests drive the simulator with.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::errors::SimError;
use crate::faults::{ActiveFault, FaultRule, FaultSet, Limiter};
use crate::log::{RequestLog, RequestRecord, ViolationRecord};
use crate::seed::{self, SeedFile};
use crate::server;
use crate::shared::{lock, Shared};
use crate::sid::SidGen;
use crate::spec::{coverage, Contract};
use crate::state::{
    Account, AccountPatch, InboundRoute, IncomingNumber, Message, MessageOutcome, MessagingService, NumberPatch,
    Sandbox, SandboxPatch, Sender, SenderPatch, ServicePatch, SimState, StateSnapshot,
};

/// Entry point: starts a simulator on its own listener.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` (default `127.0.0.1:0`), loads the contract in strict mode, and
    /// serves in a background task of the current Tokio runtime.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let contract = if config.strict {
            Some(Contract::load(&config.resolved_spec_dir()).map_err(SimError::Contract)?)
        } else {
            None
        };
        let coverage = coverage_contract(&config, contract.as_ref());
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            state: Mutex::new(SimState::new(config.rng_seed)),
            request_ids: Mutex::new(SidGen::new(config.rng_seed.map(|s| s ^ 0x5eed))),
            webhook: Mutex::new(config.webhook.clone()),
            callbacks: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultSet::new(config.rng_seed.map(|s| s ^ 0xfa17))),
            config,
            base_url: base_url.clone(),
            log: Mutex::new(RequestLog::default()),
            limiter: Mutex::new(Limiter::default()),
            contract,
            coverage,
        });
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, shared.clone(), rx));
        tracing::info!(%base_url, "twilio-sim listening");
        Ok(SimHandle {
            shared,
            addr,
            lifecycle: Arc::new(Lifecycle { shutdown: Mutex::new(Some(tx)), task: Mutex::new(Some(task)) }),
        })
    }
}

/// The contract used to name operations in the coverage log, when that log is enabled.
fn coverage_contract(config: &SimConfig, strict: Option<&Contract>) -> Option<Contract> {
    std::env::var_os(coverage::COVERAGE_FILE_ENV).filter(|v| !v.is_empty())?;
    if let Some(c) = strict {
        return Some(c.clone());
    }
    match Contract::load(&config.resolved_spec_dir()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("coverage log disabled: {e}");
            None
        }
    }
}

/// Stops the server when the last handle is dropped.
struct Lifecycle {
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        if let Some(tx) = lock(&self.shutdown).take() {
            let _ = tx.send(());
        }
    }
}

/// A running simulator. Cheap to clone; the server shuts down when the last clone is dropped
/// or on [`SimHandle::shutdown`].
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    lifecycle: Arc<Lifecycle>,
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`: the base URL for every Twilio host, the identity server and
    /// the control API.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether strict (contract-checking) mode is on.
    pub fn is_strict(&self) -> bool {
        self.shared.contract.is_some()
    }

    /// The request log (Twilio and OAuth requests), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).records()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear_records();
    }

    /// Contract violations recorded in strict mode.
    pub fn violations(&self) -> Vec<ViolationRecord> {
        lock(&self.shared.log).violations()
    }

    /// Empties the violation list.
    pub fn clear_violations(&self) {
        lock(&self.shared.log).clear_violations();
    }

    /// Applies a seed; returns the seeded account SIDs.
    pub fn seed(&self, seed: &SeedFile) -> Result<Vec<String>, SimError> {
        seed::apply(&mut lock(&self.shared.state), seed)
    }

    /// Parses YAML and applies it; returns the seeded account SIDs.
    pub fn seed_yaml(&self, yaml: &str) -> Result<Vec<String>, SimError> {
        self.seed(&SeedFile::from_yaml(yaml)?)
    }

    /// Reads a YAML file and applies it; returns the seeded account SIDs.
    pub fn seed_file(&self, path: &Path) -> Result<Vec<String>, SimError> {
        self.seed_yaml(&std::fs::read_to_string(path)?)
    }

    /// Removes every account and identity client (log, faults and limits are kept).
    pub fn reset(&self) {
        lock(&self.shared.state).reset();
    }

    /// A copy of the whole state.
    pub fn state(&self) -> StateSnapshot {
        lock(&self.shared.state).snapshot()
    }

    /// One account by SID or friendly name.
    pub fn account(&self, key: &str) -> Option<Account> {
        self.state().account(key).cloned()
    }

    /// Where an inbound WhatsApp message to `e164` in `account` (SID or friendly name) would go
    /// now: the object that routes it by Twilio's precedence ([`crate::state::InboundRoute`]).
    pub fn inbound_route(&self, account: &str, e164: &str) -> Option<InboundRoute> {
        self.state().account(account)?.inbound_route(e164)
    }

    /// Console: changes an account's status, type, name or auth token.
    pub fn update_account(&self, account: &str, patch: &AccountPatch) -> Result<Account, SimError> {
        lock(&self.shared.state).update_account(account, patch)
    }

    /// Console: rotates the auth token (to `token`, or a random one); returns the new token.
    pub fn rotate_auth_token(&self, account: &str, token: Option<String>) -> Result<String, SimError> {
        lock(&self.shared.state).rotate_auth_token(account, token)
    }

    /// Console: changes a number (by PN SID or E.164) behind the operator's back.
    pub fn update_number(&self, account: &str, number: &str, patch: &NumberPatch) -> Result<IncomingNumber, SimError> {
        lock(&self.shared.state).update_number(account, number, patch)
    }

    /// Console: changes a sender (by XE SID, `whatsapp:+E164` or E.164): status, webhook, ...
    pub fn update_sender(&self, account: &str, sender: &str, patch: &SenderPatch) -> Result<Sender, SimError> {
        lock(&self.shared.state).update_sender(account, sender, patch)
    }

    /// Console: changes a Messaging Service (by MG SID or friendly name).
    pub fn update_service(
        &self,
        account: &str,
        service: &str,
        patch: &ServicePatch,
    ) -> Result<MessagingService, SimError> {
        lock(&self.shared.state).update_service(account, service, patch)
    }

    /// Console: changes (or creates) the account's sandbox: inbound URL, participants, code.
    pub fn update_sandbox(&self, account: &str, patch: &SandboxPatch) -> Result<Sandbox, SimError> {
        lock(&self.shared.state).update_sandbox(account, patch)
    }

    /// Records that `recipient` wrote to `sender` (the 24-hour window opens), and/or switches
    /// the account's window enforcement (`POST /_sim/accounts/{key}/session-window`).
    pub fn update_session_window(
        &self,
        account: &str,
        patch: &crate::state::SessionWindowPatch,
    ) -> Result<Vec<crate::state::SessionWindow>, SimError> {
        lock(&self.shared.state).update_session_window(account, patch)
    }

    /// Delivers an inbound WhatsApp message to `e164` of `account` as Twilio would: to the URL
    /// the routing precedence picks, signed, retried, then to the fallback URL; each failed
    /// request becomes a Monitor alert. Returns once every request is done.
    pub async fn inject_inbound(
        &self,
        account: &str,
        e164: &str,
        message: &crate::webhook::InboundMessage,
    ) -> Result<crate::webhook::Delivery, SimError> {
        crate::webhook::inject(&self.shared, account, e164, message).await
    }

    /// How webhook requests are made now.
    pub fn webhook_settings(&self) -> crate::webhook::WebhookSettings {
        lock(&self.shared.webhook).clone()
    }

    /// Changes how webhook requests are made (timeouts, retries, extra trusted roots).
    pub fn set_webhook_settings(&self, settings: crate::webhook::WebhookSettings) {
        *lock(&self.shared.webhook) = settings;
    }

    /// The status callbacks of outbound messages sent so far, in order.
    pub fn status_callbacks(&self) -> Vec<crate::webhook::Attempt> {
        lock(&self.shared.callbacks).clone()
    }

    /// The Monitor alerts of `account` (SID or friendly name), oldest first.
    pub fn alerts(&self, account: &str) -> Vec<crate::state::Alert> {
        self.account(account).map(|a| a.alerts).unwrap_or_default()
    }

    /// Forces a message's status (e.g. `undelivered` with an error code).
    pub fn set_message_status(&self, account: &str, sid: &str, outcome: MessageOutcome) -> Result<Message, SimError> {
        let m = lock(&self.shared.state).set_message_status(account, sid, outcome);
        crate::webhook::send_status_callbacks(&self.shared);
        m
    }

    /// Installs a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, SimError> {
        lock(&self.shared.faults).add(rule)
    }

    /// Removes one fault rule; `false` if it was not installed (or already expired).
    pub fn remove_fault(&self, id: u64) -> bool {
        lock(&self.shared.faults).remove(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// The installed (unexpired) fault rules.
    pub fn faults(&self) -> Vec<ActiveFault> {
        lock(&self.shared.faults).list()
    }

    /// Sets the concurrent-request limit for one account, or the default for all accounts when
    /// `account` is `None`; `limit: None` removes it. Excess requests get 429 20429.
    pub fn set_concurrency_limit(&self, account: Option<&str>, limit: Option<usize>) {
        lock(&self.shared.limiter).set(account, limit);
    }

    /// Requests of `account` currently in flight.
    pub fn in_flight(&self, account: &str) -> usize {
        lock(&self.shared.limiter).in_flight(account)
    }

    /// Stops accepting connections and waits (at most 5 s) for open ones to finish.
    pub async fn shutdown(&self) {
        if let Some(tx) = lock(&self.lifecycle.shutdown).take() {
            let _ = tx.send(());
        }
        let task = lock(&self.lifecycle.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
