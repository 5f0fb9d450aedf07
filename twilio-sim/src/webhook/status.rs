//! Status callbacks of outbound messages: when a message settles and has a `StatusCallback`,
//! the simulator POSTs Twilio's status fields to it, signed and timed like an inbound webhook;
//! a failure becomes an alert.

use std::sync::Arc;

use crate::shared::{lock, Shared};

use super::deliver;
use super::inbound::Request;

/// Sends the status callbacks that came due (in background tasks).
/// Outside a Tokio runtime (a handle used from plain code) they stay due until the next request.
pub(crate) fn spawn_due(shared: &Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let due = std::mem::take(&mut lock(&shared.state).callbacks_due);
    for (account, sid) in due {
        let shared = shared.clone();
        runtime.spawn(async move { deliver_status(&shared, &account, &sid).await });
    }
}

async fn deliver_status(shared: &Arc<Shared>, account_sid: &str, sid: &str) {
    let found = {
        let state = lock(&shared.state);
        state.account(account_sid).and_then(|a| {
            let m = a.messages.iter().find(|m| m.sid == sid)?;
            let url = m.status_callback.clone()?;
            let mut params: Vec<(String, String)> = vec![
                ("MessageSid".into(), m.sid.clone()),
                ("SmsSid".into(), m.sid.clone()),
                ("AccountSid".into(), a.sid.clone()),
                ("MessageStatus".into(), m.status.as_str().into()),
                ("SmsStatus".into(), m.status.as_str().into()),
                ("To".into(), m.to.clone()),
                ("From".into(), m.from.clone().unwrap_or_default()),
                ("ApiVersion".into(), "2010-04-01".into()),
            ];
            if let Some(code) = m.error_code {
                params.push(("ErrorCode".into(), code.to_string()));
            }
            if let Some(svc) = &m.messaging_service_sid {
                params.push(("MessagingServiceSid".into(), svc.clone()));
            }
            Some((url, a.auth_token.clone(), params))
        })
    };
    let Some((url, token, params)) = found else { return };
    let settings = lock(&shared.webhook).clone();
    let Ok(client) = deliver::client(&settings) else { return };
    let request = Request {
        shared,
        settings: &settings,
        client: &client,
        token: &token,
        account_sid,
        message_sid: sid,
        service_sid: "",
    };
    let attempt = request.request(&url, "POST", &params, false).await;
    lock(&shared.callbacks).push(attempt);
}
