//! TEMPORARY stand-in until the sender-directory branch lands (not committed).
use std::time::Duration;

use super::{Credentials, Sender, TwilioClient, TwilioError, E164};

/// Stand-in.
#[derive(Debug, Default)]
pub struct SenderDirectory;

impl SenderDirectory {
    /// Stand-in.
    pub fn new(_idle_after: Duration) -> Self {
        Self
    }
    /// Stand-in.
    pub async fn lookup(
        &self,
        twilio: &TwilioClient,
        creds: &Credentials,
        number: &E164,
        _max_age: Duration,
    ) -> Result<Option<Sender>, TwilioError> {
        twilio.find_whatsapp_sender(creds, number.as_str()).await
    }
    /// Stand-in.
    pub fn update(&self, _account_sid: &str, _sender: &Sender) {}
}

