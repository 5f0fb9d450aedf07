//! Seeding the state from YAML (`POST /_sim/seed`, `--seed FILE`, [`crate::SimHandle::seed`]).
//!
//! See `README.md` for the schema and `examples/seed.yaml` for an example. SIDs, auth tokens and
//! key secrets are optional: when absent they are derived deterministically from the account's
//! friendly name and the resource's natural key, so the same file always yields the same SIDs.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::errors::SimError;
use crate::sid::{derived, derived_hex, is_sid};
use crate::state::{
    is_e164, Account, AccountStatus, AccountType, AddressConfiguration, ApiKey, ApiKeyKind, ApprovalStatus,
    AutoCreation, Capabilities, Content, IdentityClient, IncomingNumber, MessagingService, OfflineReason,
    ParticipantSpec, PoolEntry, Sandbox, Sender, SenderConfiguration, SenderProfile, SenderProperties, SenderStatus,
    SenderWebhook, SessionWindow, SimState,
};

/// A seed file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Accounts (an account whose SID already exists is replaced as a whole).
    #[serde(default)]
    pub accounts: Vec<SeedAccount>,
    /// OAuth2 clients of the identity server (same `client_id` replaces).
    #[serde(default)]
    pub identity_clients: Vec<IdentityClient>,
}

impl SeedFile {
    /// Parses YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<SeedFile, SimError> {
        Ok(serde_yaml::from_str(text)?)
    }
}

/// An account in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    /// `AC...`; derived from `friendly_name` when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// Display name (required; also the natural key for derived SIDs).
    pub friendly_name: String,
    /// Default `active`.
    #[serde(default)]
    pub status: AccountStatus,
    /// Default `Full`.
    #[serde(default, rename = "type")]
    pub account_type: AccountType,
    /// Derived when absent.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// A secondary auth token (a rotation in progress); none when absent.
    #[serde(default)]
    pub secondary_auth_token: Option<String>,
    /// Verified caller IDs (E.164): the recipients a Trial account may message.
    #[serde(default)]
    pub outgoing_caller_ids: Vec<String>,
    /// Parent account (SID or friendly name) for a subaccount.
    #[serde(default)]
    pub parent: Option<String>,
    /// API keys.
    #[serde(default)]
    pub keys: Vec<SeedKey>,
    /// Owned numbers.
    #[serde(default)]
    pub incoming_phone_numbers: Vec<SeedNumber>,
    /// WhatsApp senders.
    #[serde(default)]
    pub whatsapp_senders: Vec<SeedSender>,
    /// Messaging Services.
    #[serde(default)]
    pub messaging_services: Vec<SeedService>,
    /// The WhatsApp sandbox, if the account uses it.
    #[serde(default)]
    pub sandbox: Option<SeedSandbox>,
    /// Conversations address configurations.
    #[serde(default)]
    pub address_configurations: Vec<SeedAddressConfiguration>,
    /// Content templates (Content API v1).
    #[serde(default)]
    pub contents: Vec<SeedContent>,
    /// Fail free-form WhatsApp messages outside the 24-hour window with 63016 (default false).
    #[serde(default)]
    pub enforce_session_window: bool,
    /// Users who wrote to a business number (their 24-hour window is open).
    #[serde(default)]
    pub session_windows: Vec<SeedSessionWindow>,
}

/// A content template in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedContent {
    /// `HX...`; derived from the account and `friendly_name` when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// Name (natural key).
    pub friendly_name: String,
    /// Default `en`.
    #[serde(default)]
    pub language: Option<String>,
    /// Default placeholder values.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
    /// The text of a `twilio/text` template (`{{1}}` placeholders), when `types` is absent.
    #[serde(default)]
    pub body: Option<String>,
    /// Content types as the API takes them (default `{"twilio/text": {"body": <body>}}`).
    #[serde(default)]
    pub types: Option<serde_json::Value>,
    /// WhatsApp approval: `approved`, `pending`, `rejected`, `unsubmitted` (default), ...
    #[serde(default)]
    pub approval: ApprovalStatus,
    /// Why WhatsApp rejected it.
    #[serde(default)]
    pub rejection_reason: Option<String>,
    /// Default `UTILITY`.
    #[serde(default)]
    pub category: Option<String>,
}

/// A user who wrote to a business number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSessionWindow {
    /// The business number (E.164).
    pub sender: String,
    /// The user (E.164).
    pub recipient: String,
    /// When the user wrote (default now).
    #[serde(default)]
    pub last_inbound: Option<chrono::DateTime<Utc>>,
}

/// A Conversations address configuration in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAddressConfiguration {
    /// `IG...`; derived when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// `whatsapp:+E164` (or a bare E.164 for a `whatsapp` configuration, prefixed here).
    pub address: String,
    /// Default `whatsapp`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Default: enabled, type `default`.
    #[serde(default)]
    pub auto_creation: Option<AutoCreation>,
}

/// An API key in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    /// `SK...`; derived when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// Label (natural key).
    pub friendly_name: String,
    /// Derived when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// `main` or `standard` (default).
    #[serde(default)]
    pub kind: ApiKeyKind,
}

/// A number in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNumber {
    /// `PN...`; derived when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// E.164 (required).
    pub phone_number: String,
    /// Default: formatted number.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Default voice+sms+mms.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// Inbound message webhook.
    #[serde(default)]
    pub sms_url: Option<String>,
    /// Default POST.
    #[serde(default)]
    pub sms_method: Option<String>,
    /// Fallback webhook.
    #[serde(default)]
    pub sms_fallback_url: Option<String>,
    /// Default POST.
    #[serde(default)]
    pub sms_fallback_method: Option<String>,
    /// `AP...`.
    #[serde(default)]
    pub sms_application_sid: Option<String>,
    /// Status callback URL.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Voice webhook.
    #[serde(default)]
    pub voice_url: Option<String>,
}

/// A WhatsApp sender in a seed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSender {
    /// `XE...`; derived when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// `whatsapp:+E164` or bare `+E164`.
    pub sender_id: String,
    /// Default `ONLINE`.
    #[serde(default = "default_sender_status")]
    pub status: SenderStatus,
    /// Webhook.
    #[serde(default)]
    pub webhook: SenderWebhook,
    /// Configuration.
    #[serde(default)]
    pub configuration: SenderConfiguration,
    /// Profile.
    #[serde(default)]
    pub profile: SenderProfile,
    /// Properties (default quality HIGH, limit 1K).
    #[serde(default)]
    pub properties: Option<SenderProperties>,
    /// Offline reasons.
    #[serde(default)]
    pub offline_reasons: Option<Vec<OfflineReason>>,
}

fn default_sender_status() -> SenderStatus {
    SenderStatus::Online
}

/// A Messaging Service in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedService {
    /// `MG...`; derived when absent.
    #[serde(default)]
    pub sid: Option<String>,
    /// Name (natural key).
    pub friendly_name: String,
    /// Inbound URL (absent: inbound disabled).
    #[serde(default)]
    pub inbound_request_url: Option<String>,
    /// Default POST.
    #[serde(default)]
    pub inbound_method: Option<String>,
    /// Fallback URL.
    #[serde(default)]
    pub fallback_url: Option<String>,
    /// Default POST.
    #[serde(default)]
    pub fallback_method: Option<String>,
    /// Status callback.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Default false.
    #[serde(default)]
    pub use_inbound_webhook_on_number: bool,
    /// Pool numbers: E.164 or PN SIDs of this account's numbers.
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// Pool senders: `whatsapp:+E164`, E.164 or XE SIDs of this account's senders.
    #[serde(default)]
    pub channel_senders: Vec<String>,
}

/// A sandbox in a seed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSandbox {
    /// Two-word join code; derived when absent.
    #[serde(default)]
    pub join_code: Option<String>,
    /// Console "WHEN A MESSAGE COMES IN".
    #[serde(default)]
    pub inbound_url: Option<String>,
    /// Default POST.
    #[serde(default)]
    pub inbound_method: Option<String>,
    /// Console status callback URL.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// Participants: E.164 strings or `{phone_number, joined_at, expired}`.
    #[serde(default)]
    pub participants: Vec<ParticipantSpec>,
}

/// A deterministic two-word sandbox join code for an account.
pub(crate) fn default_join_code(account: &str) -> String {
    const A: &[&str] = &["silver", "purple", "quiet", "brave", "lucky", "rapid", "golden", "windy"];
    const B: &[&str] = &["tiger", "river", "maple", "falcon", "harbor", "comet", "meadow", "canyon"];
    let h = derived_hex(&["join", account]);
    let n = u32::from_str_radix(&h[..8], 16).unwrap_or(0) as usize;
    format!("{}-{}", A[n % A.len()], B[(n / A.len()) % B.len()])
}

fn check_sid(sid: &str, prefix: &str) -> Result<(), SimError> {
    if is_sid(sid, prefix) {
        Ok(())
    } else {
        Err(SimError::Seed(format!("{sid:?} is not a {prefix} SID ({prefix} + 32 hex digits)")))
    }
}

fn check_method(m: &Option<String>, allowed: &[&str]) -> Result<(), SimError> {
    match m {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(SimError::Seed(format!("method {v:?}: expected one of {allowed:?}")))
        }
        _ => Ok(()),
    }
}

/// Applies a seed file; returns the SIDs of the seeded accounts.
pub(crate) fn apply(state: &mut SimState, seed: &SeedFile) -> Result<Vec<String>, SimError> {
    let mut built = Vec::new();
    for sa in &seed.accounts {
        built.push(build_account(sa)?);
    }
    // Resolve parents against the file first, then the existing state.
    for (i, sa) in seed.accounts.iter().enumerate() {
        if let Some(parent) = &sa.parent {
            let owner = built
                .iter()
                .chain(state.accounts.iter())
                .find(|a| &a.sid == parent || &a.friendly_name == parent)
                .map(|a| a.sid.clone())
                .ok_or_else(|| SimError::Seed(format!("unknown parent account {parent:?}")))?;
            built[i].owner_account_sid = owner;
        }
    }
    let mut sids = Vec::new();
    for acct in built {
        sids.push(acct.sid.clone());
        match state.accounts.iter_mut().find(|a| a.sid == acct.sid) {
            Some(existing) => *existing = acct,
            None => state.accounts.push(acct),
        }
    }
    for client in &seed.identity_clients {
        state.identity_clients.retain(|c| c.client_id != client.client_id);
        state.identity_clients.push(client.clone());
    }
    Ok(sids)
}

fn build_account(sa: &SeedAccount) -> Result<Account, SimError> {
    let now = Utc::now();
    let sid = match &sa.sid {
        Some(s) => {
            check_sid(s, "AC")?;
            s.clone()
        }
        None => derived("AC", &[&sa.friendly_name]),
    };
    let mut acct = Account {
        sid: sid.clone(),
        friendly_name: sa.friendly_name.clone(),
        status: sa.status,
        account_type: sa.account_type,
        auth_token: sa.auth_token.clone().unwrap_or_else(|| derived_hex(&["auth_token", &sid])),
        secondary_auth_token: sa.secondary_auth_token.clone(),
        outgoing_caller_ids: Vec::new(),
        owner_account_sid: sid.clone(),
        date_created: now,
        date_updated: now,
        keys: Vec::new(),
        incoming_phone_numbers: Vec::new(),
        senders: Vec::new(),
        services: Vec::new(),
        messages: Vec::new(),
        sandbox: None,
        address_configurations: Vec::new(),
        contents: Vec::new(),
        session_windows: Vec::new(),
        enforce_session_window: sa.enforce_session_window,
        alerts: Vec::new(),
    };
    for c in &sa.contents {
        let csid = match &c.sid {
            Some(x) => {
                check_sid(x, "HX")?;
                x.clone()
            }
            None => derived("HX", &[&sid, &c.friendly_name]),
        };
        let types = match (&c.types, &c.body) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => serde_json::json!({"twilio/text": {"body": b}}),
            (None, None) => return Err(SimError::Seed(format!("content {:?}: give body or types", c.friendly_name))),
        };
        acct.contents.push(Content {
            sid: csid,
            friendly_name: c.friendly_name.clone(),
            language: c.language.clone().unwrap_or_else(|| "en".into()),
            variables: c.variables.clone(),
            types,
            approval: c.approval,
            approval_name: c.friendly_name.to_lowercase().replace(' ', "_"),
            category: c.category.clone().unwrap_or_else(|| "UTILITY".into()),
            rejection_reason: c.rejection_reason.clone().unwrap_or_default(),
            date_created: now,
            date_updated: now,
        });
    }
    for w in &sa.session_windows {
        let (s, r) = (w.sender.trim_start_matches("whatsapp:"), w.recipient.trim_start_matches("whatsapp:"));
        if !is_e164(s) || !is_e164(r) {
            return Err(SimError::Seed(format!("session window {s:?} -> {r:?}: E.164 numbers expected")));
        }
        acct.session_windows.push(SessionWindow {
            sender: s.to_string(),
            recipient: r.to_string(),
            last_inbound: w.last_inbound.unwrap_or(now),
        });
    }
    for k in &sa.keys {
        let ksid = match &k.sid {
            Some(s) => {
                check_sid(s, "SK")?;
                s.clone()
            }
            None => derived("SK", &[&sid, &k.friendly_name]),
        };
        acct.keys.push(ApiKey {
            secret: k.secret.clone().unwrap_or_else(|| derived_hex(&["secret", &ksid])),
            sid: ksid,
            friendly_name: k.friendly_name.clone(),
            kind: k.kind,
        });
    }
    for n in &sa.incoming_phone_numbers {
        acct.incoming_phone_numbers.push(build_number(&sid, n, now)?);
    }
    for id in &sa.outgoing_caller_ids {
        if !is_e164(id) {
            return Err(SimError::Seed(format!("outgoing caller ID {id:?} is not E.164")));
        }
        acct.outgoing_caller_ids.push(id.clone());
    }
    // A set, not `acct.sender()`: seeding thousands of senders must stay linear.
    let mut sender_ids = std::collections::HashSet::new();
    for s in &sa.whatsapp_senders {
        let sender = build_sender(&sid, s, now)?;
        if !sender_ids.insert(sender.sender_id.clone()) {
            return Err(SimError::Seed(format!("duplicate sender {}", sender.sender_id)));
        }
        acct.senders.push(sender);
    }
    for c in &sa.address_configurations {
        let type_ = c.type_.clone().unwrap_or_else(|| "whatsapp".into());
        let address = match (type_.as_str(), c.address.starts_with('+')) {
            ("whatsapp", true) => format!("whatsapp:{}", c.address),
            _ => c.address.clone(),
        };
        let sid = match &c.sid {
            Some(x) => {
                check_sid(x, "IG")?;
                x.clone()
            }
            None => derived("IG", &[&sid, &address]),
        };
        acct.address_configurations.push(AddressConfiguration {
            sid,
            type_,
            address,
            friendly_name: c.friendly_name.clone(),
            auto_creation: c.auto_creation.clone().unwrap_or(AutoCreation {
                enabled: true,
                type_: "default".into(),
                ..AutoCreation::default()
            }),
            address_country: None,
            date_created: now,
            date_updated: now,
        });
    }
    for s in &sa.messaging_services {
        let svc = build_service(&acct, s, now)?;
        acct.services.push(svc);
    }
    if let Some(sb) = &sa.sandbox {
        check_method(&sb.inbound_method, &["GET", "POST"])?;
        let mut sandbox = Sandbox::new(sb.join_code.clone().unwrap_or_else(|| default_join_code(&sid)));
        sandbox.inbound_url = sb.inbound_url.clone();
        if let Some(m) = &sb.inbound_method {
            sandbox.inbound_method = m.clone();
        }
        sandbox.status_callback_url = sb.status_callback_url.clone();
        for p in &sb.participants {
            if !is_e164(p.phone_number()) {
                return Err(SimError::Seed(format!("sandbox participant {:?} is not E.164", p.phone_number())));
            }
            sandbox.participants.push(p.to_participant(now));
        }
        acct.sandbox = Some(sandbox);
    }
    Ok(acct)
}

fn build_number(account_sid: &str, n: &SeedNumber, now: chrono::DateTime<Utc>) -> Result<IncomingNumber, SimError> {
    if !is_e164(&n.phone_number) {
        return Err(SimError::Seed(format!("phone_number {:?} is not E.164", n.phone_number)));
    }
    check_method(&n.sms_method, &["GET", "POST"])?;
    check_method(&n.sms_fallback_method, &["GET", "POST"])?;
    let sid = match &n.sid {
        Some(s) => {
            check_sid(s, "PN")?;
            s.clone()
        }
        None => derived("PN", &[account_sid, &n.phone_number]),
    };
    if let Some(app) = &n.sms_application_sid {
        check_sid(app, "AP")?;
    }
    let mut num = IncomingNumber::new(sid, n.phone_number.clone(), now);
    if let Some(f) = &n.friendly_name {
        num.friendly_name = f.clone();
    }
    if let Some(c) = n.capabilities {
        num.capabilities = c;
    }
    num.sms_url = n.sms_url.clone();
    num.sms_fallback_url = n.sms_fallback_url.clone();
    num.sms_application_sid = n.sms_application_sid.clone();
    num.status_callback = n.status_callback.clone();
    num.voice_url = n.voice_url.clone();
    if let Some(m) = &n.sms_method {
        num.sms_method = m.clone();
    }
    if let Some(m) = &n.sms_fallback_method {
        num.sms_fallback_method = m.clone();
    }
    Ok(num)
}

fn build_sender(account_sid: &str, s: &SeedSender, now: chrono::DateTime<Utc>) -> Result<Sender, SimError> {
    let sender_id =
        if s.sender_id.starts_with("whatsapp:") { s.sender_id.clone() } else { format!("whatsapp:{}", s.sender_id) };
    let number = sender_id.trim_start_matches("whatsapp:");
    if !is_e164(number) {
        return Err(SimError::Seed(format!("sender_id {:?} is not whatsapp:+E164", s.sender_id)));
    }
    check_method(&s.webhook.callback_method, &["POST", "PUT"])?;
    check_method(&s.webhook.fallback_method, &["POST", "PUT"])?;
    let sid = match &s.sid {
        Some(x) => {
            check_sid(x, "XE")?;
            x.clone()
        }
        None => derived("XE", &[account_sid, &sender_id]),
    };
    Ok(Sender {
        sid,
        sender_id,
        status: s.status,
        webhook: s.webhook.clone(),
        configuration: s.configuration.clone(),
        profile: s.profile.clone(),
        properties: s.properties.clone().unwrap_or(SenderProperties {
            quality_rating: Some("HIGH".into()),
            messaging_limit: Some("1K Customers/24hr".into()),
        }),
        offline_reasons: s.offline_reasons.clone(),
        date_created: now,
        date_updated: now,
    })
}

fn build_service(acct: &Account, s: &SeedService, now: chrono::DateTime<Utc>) -> Result<MessagingService, SimError> {
    check_method(&s.inbound_method, &["GET", "POST"])?;
    check_method(&s.fallback_method, &["GET", "POST"])?;
    let sid = match &s.sid {
        Some(x) => {
            check_sid(x, "MG")?;
            x.clone()
        }
        None => derived("MG", &[&acct.sid, &s.friendly_name]),
    };
    let mut svc = MessagingService::new(sid, s.friendly_name.clone(), now);
    svc.inbound_request_url = s.inbound_request_url.clone();
    svc.fallback_url = s.fallback_url.clone();
    svc.status_callback = s.status_callback.clone();
    svc.use_inbound_webhook_on_number = s.use_inbound_webhook_on_number;
    if let Some(m) = &s.inbound_method {
        svc.inbound_method = m.clone();
    }
    if let Some(m) = &s.fallback_method {
        svc.fallback_method = m.clone();
    }
    for key in &s.phone_numbers {
        let n = acct.number(key).ok_or_else(|| {
            SimError::Seed(format!(
                "service {:?}: unknown phone number {key:?} (seed it under incoming_phone_numbers)",
                s.friendly_name
            ))
        })?;
        svc.phone_numbers.push(PoolEntry { sid: n.sid.clone(), date_created: now });
    }
    for key in &s.channel_senders {
        let snd = acct.sender(key).ok_or_else(|| {
            SimError::Seed(format!(
                "service {:?}: unknown sender {key:?} (seed it under whatsapp_senders)",
                s.friendly_name
            ))
        })?;
        svc.channel_senders.push(PoolEntry { sid: snd.sid.clone(), date_created: now });
    }
    Ok(svc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_sids_are_stable() {
        let yaml = r#"
accounts:
  - friendly_name: prod
    incoming_phone_numbers: [{phone_number: "+15551230001"}]
"#;
        let seed = SeedFile::from_yaml(yaml).unwrap();
        let mut s1 = SimState::new(None);
        let mut s2 = SimState::new(None);
        apply(&mut s1, &seed).unwrap();
        apply(&mut s2, &seed).unwrap();
        assert_eq!(s1.accounts[0].sid, s2.accounts[0].sid);
        assert_eq!(s1.accounts[0].incoming_phone_numbers[0].sid, s2.accounts[0].incoming_phone_numbers[0].sid);
        assert_eq!(s1.accounts[0].auth_token, s2.accounts[0].auth_token);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = [
            "accounts: [{friendly_name: a, sid: AC12}]",
            "accounts: [{friendly_name: a, incoming_phone_numbers: [{phone_number: '555'}]}]",
            "accounts: [{friendly_name: a, messaging_services: [{friendly_name: s, phone_numbers: ['+15550000000']}]}]",
            "accounts: [{friendly_name: a, parent: nobody}]",
            "accounts: [{friendly_name: a, bogus: 1}]",
            "accounts: [{friendly_name: a, whatsapp_senders: [{sender_id: '+15550000001'}, {sender_id: 'whatsapp:+15550000001'}]}]",
        ];
        for yaml in bad {
            let mut st = SimState::new(None);
            let res = SeedFile::from_yaml(yaml).and_then(|s| apply(&mut st, &s));
            assert!(res.is_err(), "{yaml} should fail");
        }
    }
}
