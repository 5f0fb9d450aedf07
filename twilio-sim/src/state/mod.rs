//! The simulator's in-memory state: accounts and everything they own, plus identity clients.
//!
//! The state lives behind one lock in the server; these types are also the snapshot returned by
//! [`crate::SimHandle::state`] and `GET /_sim/state`.

mod account;
mod address;
mod alert;
mod content;
mod identity;
mod message;
mod number;
mod routing;
mod sandbox;
mod sender;
mod service;

pub use account::{Account, AccountPatch, AccountStatus, AccountType, ApiKey, ApiKeyKind};
pub use address::{AddressConfiguration, AutoCreation};
pub use alert::{describe as describe_error_code, Alert};
pub use content::{ApprovalStatus, Content, SessionWindow, SessionWindowPatch, SESSION_WINDOW};
pub use identity::IdentityClient;
pub use message::{Message, MessageOutcome, MessageStatus};
pub use number::{Capabilities, IncomingNumber, NumberPatch};
pub use routing::{InboundRoute, RouteKind};
pub use sandbox::{Participant, ParticipantSpec, Sandbox, SandboxPatch, MEMBERSHIP, SANDBOX_NUMBER};
pub use sender::{
    OfflineReason, ProfileEmail, ProfileWebsite, Sender, SenderConfiguration, SenderPatch, SenderProfile,
    SenderProperties, SenderStatus, SenderWebhook,
};
pub use service::{MessagingService, PoolEntry, ServicePatch};

pub(crate) use number::{country_code, is_e164};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::errors::SimError;
use crate::sid::SidGen;

/// A copy of the whole state (secrets included: it is what the Console would show).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Accounts in creation order.
    pub accounts: Vec<Account>,
    /// OAuth2 clients.
    pub identity_clients: Vec<IdentityClient>,
}

impl StateSnapshot {
    /// The account with this SID or friendly name.
    pub fn account(&self, key: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.sid == key || a.friendly_name == key)
    }
}

/// The mutable state.
#[derive(Debug)]
pub(crate) struct SimState {
    pub accounts: Vec<Account>,
    pub identity_clients: Vec<IdentityClient>,
    pub sids: SidGen,
    /// Messages whose status callback is due: (account SID, message SID).
    pub callbacks_due: Vec<(String, String)>,
}

impl SimState {
    pub fn new(rng_seed: Option<u64>) -> SimState {
        SimState {
            accounts: Vec::new(),
            identity_clients: Vec::new(),
            sids: SidGen::new(rng_seed),
            callbacks_due: Vec::new(),
        }
    }

    /// Removes every account and client.
    pub fn reset(&mut self) {
        self.accounts.clear();
        self.identity_clients.clear();
    }

    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot { accounts: self.accounts.clone(), identity_clients: self.identity_clients.clone() }
    }

    pub fn account(&self, sid: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.sid == sid)
    }

    pub fn account_mut(&mut self, sid: &str) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.sid == sid)
    }

    /// The account with this SID or friendly name (console lookups).
    fn console_account(&mut self, key: &str) -> Result<&mut Account, SimError> {
        self.accounts
            .iter_mut()
            .find(|a| a.sid == key || a.friendly_name == key)
            .ok_or_else(|| SimError::NotFound(format!("account {key}")))
    }

    /// The account owning API key `sk`, and the key.
    pub fn find_key(&self, sk: &str) -> Option<(&Account, &ApiKey)> {
        self.accounts.iter().find_map(|a| a.keys.iter().find(|k| k.sid == sk).map(|k| (a, k)))
    }

    pub fn update_account(&mut self, key: &str, patch: &AccountPatch) -> Result<Account, SimError> {
        let acct = self.console_account(key)?;
        if let Some(s) = patch.status {
            acct.status = s;
        }
        if let Some(t) = patch.account_type {
            acct.account_type = t;
        }
        if let Some(n) = &patch.friendly_name {
            acct.friendly_name = n.clone();
        }
        if let Some(tok) = &patch.auth_token {
            if tok.is_empty() {
                return Err(SimError::Invalid("auth_token must not be empty".into()));
            }
            acct.auth_token = tok.clone();
        }
        acct.date_updated = Utc::now();
        Ok(acct.clone())
    }

    pub fn rotate_auth_token(&mut self, key: &str, token: Option<String>) -> Result<String, SimError> {
        let token = match token {
            Some(t) if !t.is_empty() => t,
            Some(_) => return Err(SimError::Invalid("auth_token must not be empty".into())),
            None => self.sids.hex32(),
        };
        let acct = self.console_account(key)?;
        acct.auth_token = token.clone();
        acct.date_updated = Utc::now();
        Ok(token)
    }

    pub fn update_number(
        &mut self,
        account: &str,
        number: &str,
        patch: &NumberPatch,
    ) -> Result<IncomingNumber, SimError> {
        for m in [&patch.sms_method, &patch.sms_fallback_method].into_iter().flatten() {
            if m != "GET" && m != "POST" {
                return Err(SimError::Invalid(format!("method {m}: use GET or POST")));
            }
        }
        let acct = self.console_account(account)?;
        let n = acct.number_mut(number).ok_or_else(|| SimError::NotFound(format!("number {number}")))?;
        n.apply(patch, Utc::now());
        Ok(n.clone())
    }

    pub fn update_sender(&mut self, account: &str, sender: &str, patch: &SenderPatch) -> Result<Sender, SimError> {
        let acct = self.console_account(account)?;
        let s = acct.sender_mut(sender).ok_or_else(|| SimError::NotFound(format!("sender {sender}")))?;
        s.apply(patch, Utc::now());
        Ok(s.clone())
    }

    pub fn update_service(
        &mut self,
        account: &str,
        service: &str,
        patch: &ServicePatch,
    ) -> Result<MessagingService, SimError> {
        let acct = self.console_account(account)?;
        let s = acct.service_mut(service).ok_or_else(|| SimError::NotFound(format!("messaging service {service}")))?;
        s.apply(patch, Utc::now());
        Ok(s.clone())
    }

    pub fn update_sandbox(&mut self, account: &str, patch: &SandboxPatch) -> Result<Sandbox, SimError> {
        let default_code = crate::seed::default_join_code(account);
        let acct = self.console_account(account)?;
        let sandbox = acct.sandbox.get_or_insert_with(|| Sandbox::new(default_code));
        sandbox.apply(patch, Utc::now());
        Ok(sandbox.clone())
    }

    /// Records that `recipient` wrote to `sender` (opening the 24-hour window), and/or switches
    /// the account's window enforcement.
    pub fn update_session_window(
        &mut self,
        account: &str,
        patch: &SessionWindowPatch,
    ) -> Result<Vec<SessionWindow>, SimError> {
        let strip = |n: &str| n.trim_start_matches("whatsapp:").to_string();
        let pair = match (&patch.sender, &patch.recipient) {
            (Some(s), Some(r)) => Some((strip(s), strip(r))),
            (None, None) => None,
            _ => return Err(SimError::Invalid("give both sender and recipient, or neither".into())),
        };
        if let Some((s, r)) = &pair {
            if !is_e164(s) || !is_e164(r) {
                return Err(SimError::Invalid(format!("sender {s:?} and recipient {r:?} must be E.164")));
            }
        }
        let acct = self.console_account(account)?;
        if let Some(e) = patch.enforce {
            acct.enforce_session_window = e;
        }
        if let Some((sender, recipient)) = pair {
            acct.session_windows.retain(|w| !(w.sender == sender && w.recipient == recipient));
            let last_inbound = patch.last_inbound.unwrap_or_else(Utc::now);
            acct.session_windows.push(SessionWindow { sender, recipient, last_inbound });
        }
        Ok(acct.session_windows.clone())
    }

    pub fn remove_sandbox(&mut self, account: &str) -> Result<(), SimError> {
        self.console_account(account)?.sandbox = None;
        Ok(())
    }

    pub fn set_message_status(
        &mut self,
        account: &str,
        sid: &str,
        outcome: MessageOutcome,
    ) -> Result<Message, SimError> {
        let acct = self.console_account(account)?;
        let m = acct
            .messages
            .iter_mut()
            .find(|m| m.sid == sid)
            .ok_or_else(|| SimError::NotFound(format!("message {sid}")))?;
        m.pending = Some(outcome);
        let due = m.settle(Utc::now()) && m.status_callback.is_some();
        let (account_sid, m) = (acct.sid.clone(), m.clone());
        if due {
            self.callbacks_due.push((account_sid, m.sid.clone()));
        }
        Ok(m)
    }
}
