//! monitor.twilio.com v1: the Debugger's alerts (`/v1/Alerts[/{Sid}]`).

pub(crate) mod alerts;
