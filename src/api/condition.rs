//! Condition types and their stable `reason` strings: the one place they are defined.
//!
//! Each reason is documented in `docs/api.md`; tools (and users' alerts) may match on them, so a
//! reason is never renamed once released.

use std::fmt;

/// The `type` of a condition in `WhatsAppChannel.status.conditions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    /// The referenced Secret holds usable credentials and Twilio accepted them.
    CredentialsValid,
    /// The number exists on the Twilio account (incoming number, WhatsApp sender or sandbox).
    NumberVerified,
    /// This channel holds the number: no other channel or cluster receives its messages.
    NumberBound,
    /// The number's inbound webhook points at `spec.webhook.url`.
    WebhookConfigured,
    /// Credentials, number and webhook are verified: the seed product's "Connect" step.
    Connected,
    /// The one-time confirmation message to `spec.confirmationPhoneNumber` was sent.
    ConfirmationSent,
    /// The confirmation message reached the recipient (its final status at Twilio).
    ConfirmationDelivered,
    /// The optional identity server issued a token for the configured client.
    IdentityVerified,
    /// `--receiver-tls-check`: the receiver's TLS certificate (chain, host name, expiry), from a
    /// handshake only. Informational: not part of Ready.
    ReceiverTLS,
    /// The channel is switched on (`spec.active`) and connected.
    Active,
    /// Twilio's webhook requests to the receiver succeed: no failure alert (Monitor API) about
    /// `spec.webhook.url` within the quiet window. Not part of `Ready` unless
    /// `spec.receiverHealth.affectsReady`.
    ReceiverHealthy,
    /// Summary: the channel does everything its spec asks (`kubectl wait`, Argo CD, Flux).
    Ready,
    /// kstatus: present and True while the operator still works towards Ready.
    Reconciling,
    /// kstatus: present and True when only a change by the user can make progress.
    Stalled,
}

impl ConditionType {
    /// Every condition type, in the order they are reported.
    pub const ALL: [ConditionType; 14] = [
        Self::CredentialsValid,
        Self::NumberVerified,
        Self::NumberBound,
        Self::WebhookConfigured,
        Self::Connected,
        Self::ConfirmationSent,
        Self::ConfirmationDelivered,
        Self::IdentityVerified,
        Self::ReceiverTLS,
        Self::Active,
        Self::ReceiverHealthy,
        Self::Ready,
        Self::Reconciling,
        Self::Stalled,
    ];

    /// The string used in the Kubernetes API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialsValid => "CredentialsValid",
            Self::NumberVerified => "NumberVerified",
            Self::NumberBound => "NumberBound",
            Self::WebhookConfigured => "WebhookConfigured",
            Self::Connected => "Connected",
            Self::ConfirmationSent => "ConfirmationSent",
            Self::ConfirmationDelivered => "ConfirmationDelivered",
            Self::IdentityVerified => "IdentityVerified",
            Self::ReceiverTLS => "ReceiverTLS",
            Self::Active => "Active",
            Self::ReceiverHealthy => "ReceiverHealthy",
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// A stable, CamelCase `reason` for a condition or an Event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason { $( $(#[$doc])* $name, )* }

        impl Reason {
            /// Every reason, for documentation and tests.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The string used in the Kubernetes API.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$name => stringify!($name),)* }
            }
        }
    };
}

reasons! {
    /// The check succeeded.
    Verified,
    /// The referenced Secret does not exist in the channel's namespace.
    SecretNotFound,
    /// The Secret exists but lacks `authToken` (or `apiKeySid` + `apiKeySecret`).
    SecretKeyMissing,
    /// Twilio rejected the credentials (HTTP 401, error 20003).
    InvalidCredentials,
    /// The Twilio account is suspended.
    AccountSuspended,
    /// The Twilio account is closed.
    AccountClosed,
    /// The credential Twilio accepts changed: the primary auth token was refused and the
    /// secondary one (`authTokenSecondary`) verified, or back (Event only;
    /// `status.credentials`).
    CredentialsChanged,
    /// The number is neither an incoming phone number nor a WhatsApp sender of the account.
    NumberNotFound,
    /// The WhatsApp sender exists but is not online yet (Meta verification takes up to 24 hours).
    SenderNotReady,
    /// This channel holds the number.
    Bound,
    /// Another `WhatsAppChannel` holds the number.
    NumberInUse,
    /// The number's webhook points at a receiver this channel did not set (another cluster):
    /// the message names its owner, from the ownership marker, or its URL.
    BoundElsewhere,
    /// `bindingPolicy: Takeover` without `spec.takeover.from`, or naming another owner than
    /// the one at Twilio: a blind takeover is refused.
    TakeoverRefused,
    /// The owner `spec.takeover.from` names took the number from this channel since its spec
    /// last changed: taking it back would flip the number; the operator stopped.
    TakeoverContested,
    /// The inbound webhook points at `spec.webhook.url`.
    Configured,
    /// Twilio's API cannot set this webhook (the sandbox): a Console step is needed.
    ManualStepRequired,
    /// Credentials, number and webhook are verified.
    ChannelConnected,
    /// Not connected yet: another condition says why.
    NotConnected,
    /// The confirmation message was accepted by Twilio.
    MessageSent,
    /// The sandbox recipient has not joined the sandbox (Twilio error 63015).
    RecipientNotInSandbox,
    /// A Trial account may message verified caller IDs only, and the confirmation recipient is
    /// not one (Twilio error 21608).
    TrialRecipientUnverified,
    /// Twilio refused or failed the confirmation message.
    MessageFailed,
    /// The confirmation message was delivered to the recipient's phone.
    Delivered,
    /// The recipient read the confirmation message.
    Read,
    /// The confirmation message is on its way (queued, sent), or its final status is not known.
    DeliveryPending,
    /// Free text outside WhatsApp's 24-hour window (Twilio error 63016): set
    /// `spec.confirmation.template` to an approved template.
    OutsideSessionWindow,
    /// The confirmation template is not approved for WhatsApp (yet): submitted and pending, or
    /// never submitted.
    TemplateNotApproved,
    /// WhatsApp rejected (or paused, or disabled) the confirmation template.
    TemplateRejected,
    /// The confirmation template does not exist on the Twilio account.
    TemplateNotFound,
    /// The confirmation message failed for another reason; the message gives Twilio's code.
    DeliveryFailed,
    /// The identity server refused the client credentials.
    IdentityRejected,
    /// The identity server's client secret is missing.
    IdentitySecretMissing,
    /// The identity server failed transiently (5xx, 429, unreachable); retried with backoff.
    IdentityUnavailable,
    /// The outbound URL policy refuses `spec.identityServer.url` (plain http off loopback, a
    /// link-local or metadata address, or outside `--outbound-allow`): no request was sent.
    IdentityURLRefused,
    /// The receiver's certificate verified (chain and host name) and expires after the warning
    /// window; the message gives the expiry date.
    CertificateValid,
    /// The receiver's certificate verifies but expires within `--receiver-tls-warn-days`.
    CertificateExpiring,
    /// The receiver's certificate was refused: chain, host name, expired, or no TLS.
    CertificateInvalid,
    /// The outbound rules refuse the receiver's host or addresses: no connection was made.
    ReceiverNotAllowed,
    /// The channel is active.
    Activated,
    /// `spec.active` is false.
    Deactivated,
    /// The channel does everything its spec asks.
    ChannelReady,
    /// `spec.suspend` is true: the operator makes no Twilio calls.
    Suspended,
    /// The spec is invalid in a way the API server could not check.
    InvalidSpec,
    /// Twilio (or the identity server) failed transiently; the operator retries with backoff.
    TwilioUnavailable,
    /// Twilio rate-limited the operator (HTTP 429); it retries after the advised delay.
    RateLimited,
    /// Twilio refused a request permanently; the message says which and why.
    TwilioRejected,
    /// A webhook changed behind the operator's back was restored.
    WebhookRestored,
    /// `bindingPolicy: Takeover` moved the number away from another receiver.
    TakenOver,
    /// The number's owner at Twilio changed: this channel took it, or another owner took it
    /// from this channel (Event only; `status.ownership.history`).
    OwnerChanged,
    /// The previous webhook was put back (deletion or number change).
    WebhookReleased,
    /// The deletion cannot undo its Twilio changes yet; the message says why and how to proceed.
    CleanupBlocked,
    /// The channel is being deleted and its cleanup is under way.
    Deleting,
    /// The channel moved to another number and still holds the old one until it has restored
    /// that number's webhook and released it.
    ReleasingPreviousNumber,
    /// A Messaging Service whose pool holds the number's sender (or number) routes its inbound
    /// messages, and `spec.routing.messagingService` forbids changing it (or it is shared).
    OverriddenByMessagingService,
    /// A TwiML application set on the incoming phone number (`SmsApplicationSid`) routes its
    /// inbound messages; the operator does not change applications.
    OverriddenByApplication,
    /// A Conversations address configuration with auto-creation takes the number's inbound
    /// messages; the operator does not change address configurations.
    OverriddenByAddressConfiguration,
    /// The object that routes the number cannot call the receiver with `spec.webhook.method`
    /// (a WhatsApp sender calls with POST only).
    MethodNotSupported,
    /// `managementPolicy: Observe`: this condition would be met after a change the operator
    /// only plans (`status.plannedChanges`); switching to `Manage` makes it.
    ChangesPlanned,
    /// A full verification asked for by the `whatsapp-operator.io/verify-now` annotation ran.
    VerifiedNow,
    /// No failed webhook request to the receiver within the quiet window (Twilio's alerts).
    ReceiverHealthy,
    /// Twilio's webhook requests to the receiver failed at HTTP level (an answer 4xx/5xx,
    /// 11200; too many redirects, 11215; a body over the limit, 11750; …) within the quiet window.
    WebhookFailing,
    /// Twilio could not trust the receiver's TLS certificate or handshake (11220, 11235,
    /// 11236, 11237) within the quiet window.
    ReceiverTLSInvalid,
    /// The receiver could not be reached: by Twilio (`ReceiverHealthy`: no connection or no
    /// answer in time, 11205; a host name that does not resolve, 11210, within the quiet
    /// window), or by the certificate watch (`ReceiverTLS`: no handshake completed).
    ReceiverUnreachable,
    /// The credentials may not read the account's alerts (Monitor API answered 401/403): the
    /// receiver's health is unknown.
    AlertsUnreadable,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
