//! Messages (`SM...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `message_enum_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Queued.
    Queued,
    /// Sending.
    Sending,
    /// Sent.
    Sent,
    /// Failed (see `error_code`).
    Failed,
    /// Delivered.
    Delivered,
    /// Undelivered (see `error_code`).
    Undelivered,
    /// Receiving.
    Receiving,
    /// Received.
    Received,
    /// Accepted (Messaging Service, no From).
    Accepted,
    /// Scheduled.
    Scheduled,
    /// Read (WhatsApp).
    Read,
    /// Partially delivered.
    PartiallyDelivered,
    /// Canceled.
    Canceled,
}

impl MessageStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Receiving => "receiving",
            MessageStatus::Received => "received",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Read => "read",
            MessageStatus::PartiallyDelivered => "partially_delivered",
            MessageStatus::Canceled => "canceled",
        }
    }
}

/// Where a message ends up once it is first observed after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOutcome {
    /// Final status.
    pub status: MessageStatus,
    /// Error code for failed/undelivered.
    pub error_code: Option<u32>,
    /// Error message for failed/undelivered.
    pub error_message: Option<String>,
}

/// An outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `SM` + 32 hex.
    pub sid: String,
    /// To (with channel prefix).
    pub to: String,
    /// From (with channel prefix); `None` while a Messaging Service has not picked one.
    pub from: Option<String>,
    /// Body text.
    pub body: String,
    /// Content template, if any.
    pub content_sid: Option<String>,
    /// Content variables JSON string, if any.
    pub content_variables: Option<String>,
    /// Status callback URL.
    pub status_callback: Option<String>,
    /// Messaging Service, if any.
    pub messaging_service_sid: Option<String>,
    /// Number of media URLs.
    pub num_media: usize,
    /// Current status.
    pub status: MessageStatus,
    /// Error code (failed/undelivered).
    pub error_code: Option<u32>,
    /// Error message (failed/undelivered).
    pub error_message: Option<String>,
    /// What the next observation turns the message into (`None`: settled).
    pub pending: Option<MessageOutcome>,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Sent time.
    pub date_sent: Option<DateTime<Utc>>,
    /// Last update time.
    pub date_updated: DateTime<Utc>,
}

impl Message {
    /// Moves a freshly created message to its outcome (the simulator's "delivery"); `true`
    /// when it changed (its status callback is due).
    pub fn settle(&mut self, now: DateTime<Utc>) -> bool {
        let Some(outcome) = self.pending.take() else {
            return false;
        };
        {
            if matches!(outcome.status, MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read) {
                self.date_sent = Some(now);
            }
            self.status = outcome.status;
            self.error_code = outcome.error_code;
            self.error_message = outcome.error_message;
            self.date_updated = now;
        }
        true
    }
}
