//! The operator's settings, from the command line (see `whatsapp-operator run --help`).

use std::time::Duration;

use crate::twilio::{OutboundPolicy, TwilioConfig};

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Watch only this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// How often Twilio state (credentials, number, webhook) is verified per channel.
    pub verify_interval: Duration,
    /// How often a WhatsApp sender that is not online yet is checked again.
    pub sender_poll_interval: Duration,
    /// How often a channel with a permanent problem (bad credentials, missing number) is
    /// retried even without a change.
    pub permanent_retry_interval: Duration,
    /// First delay after a transient failure; doubles per failure, with jitter.
    pub backoff_base: Duration,
    /// Longest delay after transient failures.
    pub backoff_max: Duration,
    /// How many channels are reconciled at once.
    pub concurrency: u16,
    /// Twilio endpoints and timeouts.
    pub twilio: TwilioConfig,
    /// The identity reported in Events (`reportingInstance`), e.g. the pod name.
    pub instance: Option<String>,
    /// The longest a pass may take (Twilio paging included); one that takes longer is
    /// abandoned and retried with backoff, so a stuck server cannot hold a worker.
    pub pass_timeout: Duration,
    /// Where requests to URLs from channel specs (the identity server) may go.
    pub outbound: OutboundPolicy,
    /// The receiver certificate watch (`--receiver-tls-check`); `None`: off.
    pub receiver_tls: Option<super::receiver_tls::ReceiverTlsConfig>,
    /// This cluster's identity in the ownership markers at Twilio (`--cluster-id`); `None`:
    /// the UID of the `kube-system` namespace, read at start.
    pub cluster_id: Option<String>,
    /// How often each Twilio account's Debugger alerts are listed (one listing per account,
    /// shared by its channels) for `ReceiverHealthy`; zero turns receiver health off.
    pub alerts_interval: Duration,
    /// How long after its last failed webhook request a receiver counts as healthy again.
    pub receiver_quiet_window: Duration,
    /// Pages (of 200 alerts) one alerts listing reads at most.
    pub alerts_max_pages: usize,
    /// Test-only fault hooks (inert in release builds; see [`crate::test_hooks`]).
    pub hooks: crate::test_hooks::Hooks,
}

impl OperatorConfig {
    /// Settings with the documented defaults and the given Twilio endpoints.
    pub fn new(twilio: TwilioConfig) -> Self {
        Self {
            namespace: None,
            verify_interval: Duration::from_secs(600),
            sender_poll_interval: Duration::from_secs(900),
            permanent_retry_interval: Duration::from_secs(1800),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 64,
            twilio,
            instance: None,
            pass_timeout: Duration::from_secs(60),
            outbound: OutboundPolicy::default(),
            receiver_tls: None,
            cluster_id: None,
            alerts_interval: Duration::from_secs(60),
            receiver_quiet_window: Duration::from_secs(900),
            alerts_max_pages: 5,
            hooks: crate::test_hooks::Hooks::default(),
        }
    }
}
