//! The WhatsApp sandbox of an account (Console-only settings).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The shared sandbox number.
pub const SANDBOX_NUMBER: &str = "+14155238886";

/// How long a sandbox membership lasts.
pub const MEMBERSHIP: Duration = Duration::days(3);

/// A phone that joined the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// E.164.
    pub phone_number: String,
    /// When it sent the join code.
    pub joined_at: DateTime<Utc>,
    /// Forced expiry (otherwise it expires 3 days after `joined_at`).
    pub expired: bool,
}

impl Participant {
    /// Whether the membership is active at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.expired && now < self.joined_at + MEMBERSHIP
    }
}

/// A sandbox: shared number, join code, participants and the Console-only inbound settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Always `+14155238886`.
    pub number: String,
    /// The two-word code (users send `join <code>`).
    pub join_code: String,
    /// Participants.
    pub participants: Vec<Participant>,
    /// "WHEN A MESSAGE COMES IN" URL.
    pub inbound_url: Option<String>,
    /// GET or POST.
    pub inbound_method: String,
    /// Status callback URL.
    pub status_callback_url: Option<String>,
}

impl Sandbox {
    /// Whether `e164` is an active participant at `now`.
    pub fn has_active_participant(&self, e164: &str, now: DateTime<Utc>) -> bool {
        self.participants.iter().any(|p| p.phone_number == e164 && p.is_active(now))
    }
}

/// A participant in a console change: a bare E.164 string or an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParticipantSpec {
    /// Joined now.
    Number(String),
    /// Full form.
    Detailed {
        /// E.164.
        phone_number: String,
        /// Join time (default: now).
        #[serde(default)]
        joined_at: Option<DateTime<Utc>>,
        /// Forced expiry.
        #[serde(default)]
        expired: bool,
    },
}

impl ParticipantSpec {
    /// The participant this spec describes, joined at `now` unless stated.
    pub fn to_participant(&self, now: DateTime<Utc>) -> Participant {
        match self {
            ParticipantSpec::Number(n) => Participant { phone_number: n.clone(), joined_at: now, expired: false },
            ParticipantSpec::Detailed { phone_number, joined_at, expired } => Participant {
                phone_number: phone_number.clone(),
                joined_at: joined_at.unwrap_or(now),
                expired: *expired,
            },
        }
    }

    /// The E.164 number.
    pub fn phone_number(&self) -> &str {
        match self {
            ParticipantSpec::Number(n) => n,
            ParticipantSpec::Detailed { phone_number, .. } => phone_number,
        }
    }
}

/// A console change to a sandbox (creates the sandbox if the account has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxPatch {
    /// New join code.
    #[serde(default)]
    pub join_code: Option<String>,
    /// New inbound URL (`null` clears).
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    pub inbound_url: Option<Option<String>>,
    /// New inbound method.
    #[serde(default)]
    pub inbound_method: Option<String>,
    /// New status callback URL (`null` clears).
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    pub status_callback_url: Option<Option<String>>,
    /// Replaces the participant list.
    #[serde(default)]
    pub participants: Option<Vec<ParticipantSpec>>,
    /// Adds or refreshes participants.
    #[serde(default)]
    pub add_participants: Option<Vec<ParticipantSpec>>,
    /// Removes participants by E.164.
    #[serde(default)]
    pub remove_participants: Option<Vec<String>>,
}

impl Sandbox {
    /// A new sandbox with default code and no participants.
    pub fn new(join_code: String) -> Sandbox {
        Sandbox {
            number: SANDBOX_NUMBER.into(),
            join_code,
            participants: Vec::new(),
            inbound_url: None,
            inbound_method: "POST".into(),
            status_callback_url: None,
        }
    }

    /// Applies a console change.
    pub fn apply(&mut self, patch: &SandboxPatch, now: DateTime<Utc>) {
        if let Some(code) = &patch.join_code {
            self.join_code = code.clone();
        }
        if let Some(url) = &patch.inbound_url {
            self.inbound_url = url.clone();
        }
        if let Some(m) = &patch.inbound_method {
            self.inbound_method = m.clone();
        }
        if let Some(url) = &patch.status_callback_url {
            self.status_callback_url = url.clone();
        }
        if let Some(list) = &patch.participants {
            self.participants = list.iter().map(|p| p.to_participant(now)).collect();
        }
        if let Some(list) = &patch.add_participants {
            for spec in list {
                self.participants.retain(|p| p.phone_number != spec.phone_number());
                self.participants.push(spec.to_participant(now));
            }
        }
        if let Some(list) = &patch.remove_participants {
            self.participants.retain(|p| !list.contains(&p.phone_number));
        }
    }
}
