//! The decisions of a pass, as one pure function: [`plan`] maps what a pass observed (the
//! channel, the cluster as the caches show it, what Twilio answered) to either one more read it
//! needs ([`Next::Read`]) or the whole [`Plan`]: the ordered writes (Kubernetes and Twilio), the
//! intents recorded in status before any Twilio write, the final status, the Events and what
//! happens next.
//!
//! The observer answers reads until the plan is complete; the executor runs the steps in order
//! and, when a Twilio write fails or returns something the status must keep (a message SID),
//! adds that outcome to the view and plans again: the new plan keeps the steps already run and
//! reports the outcome. Nothing here does I/O or reads a clock; `now` is an input.
//!
//! Where each decision lives: [`live`] (a channel that exists: claim, credentials, verification
//! due, number, webhook, identity), [`confirm`] (the confirmation message's state machine),
//! [`release`] (deletion, and a channel moving off a number it is wired to), [`report`] (the
//! summary, the final status and the Events).

mod confirm;
mod live;
mod ownership;
mod planned;
pub mod receiver;
mod receiver_tls;
mod release;
mod report;
mod routing;
#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use crate::api::{Reason, WhatsAppChannel, WhatsAppChannelStatus, WhatsAppNumberBindingSpec};
use crate::binding::BindingState;
use crate::twilio::{
    ContentApproval, IdentityError, IncomingPhoneNumber, Message, MessagingService, NewMessage, RoutingFacts, Sender,
    SenderWebhook, SmsMethod, TwilioError, Verification, E164,
};

use super::credentials::SecretProblem;

pub use live::{verified_inputs, SANDBOX_NUMBER};
pub use report::ready_transition;

/// Settings the decisions depend on.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// How long a verification at Twilio stands.
    pub verify_interval: Duration,
    /// How often a sender that is not online yet is looked at.
    pub sender_poll_interval: Duration,
    /// How often a permanent failure is looked at again without a change.
    pub permanent_retry_interval: Duration,
    /// This cluster's identity in ownership markers (`--cluster-id`).
    pub cluster_id: String,
    /// `--receiver-tls-check`: warn this long before the receiver's certificate expires
    /// (`None`: the watch is off).
    pub receiver_tls_warn: Option<Duration>,
}

/// A binding as the caches show it, for one number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingView {
    /// The binding's name.
    pub name: String,
    /// What it means for this channel.
    pub state: BindingState,
}

/// A binding this channel holds, by name and UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldBinding {
    /// The binding's name.
    pub name: String,
    /// Its UID (the delete precondition).
    pub uid: String,
}

/// What the credentials Secret looks like to a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretView {
    /// The Secret's name.
    pub name: String,
    /// The credentials' fingerprint, or what is wrong with the Secret.
    pub credentials: Result<String, SecretProblem>,
    /// Whether it carries the in-use finalizer.
    pub protected: bool,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// The cluster as the operator's caches show it to one pass.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// The binding of the number the spec asks for (absent when the number does not parse).
    pub binding: Option<BindingView>,
    /// The binding of the number the status says the channel is wired to, when that is another
    /// binding than the spec's (a number move, or a mode or account change in the sandbox).
    pub wired: Option<BindingView>,
    /// Every binding this channel holds.
    pub held: Vec<HeldBinding>,
    /// The credentials Secret.
    pub secret: SecretView,
    /// The identity server's client secret fingerprint, or what is wrong (when configured).
    pub identity_secret: Option<Result<String, SecretProblem>>,
    /// How long the channel's Twilio account is still on a rate-limit hold.
    pub hold: Option<Duration>,
    /// How long the last Twilio check of this channel (in this process) still stands for the
    /// same inputs (`None`: there is none, or it no longer stands).
    pub attempt_left: Option<Duration>,
    /// The receiver's health from the account's alerts (`None`: not read yet, or not watched).
    pub receiver: Option<receiver::ReceiverView>,
}

/// An object at Twilio whose webhook routes a number's inbound messages: its carrier (sender or
/// incoming number), or the Messaging Service whose pool holds the carrier.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A WhatsApp sender (Messaging v2).
    Sender(Sender),
    /// An incoming phone number.
    Number(IncomingPhoneNumber),
    /// A Messaging Service (Messaging v1).
    Service(MessagingService),
}

/// A Twilio write that failed, or returned what the status keeps.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Setting the spec number's webhook failed.
    WebhookFailed(TwilioError),
    /// Restoring a released number's webhook failed.
    RestoreFailed(TwilioError),
    /// The confirmation message was accepted.
    Sent(Message),
    /// Sending the confirmation message failed.
    SendFailed(TwilioError),
}

/// What Twilio (and the identity server) answered so far in this pass.
#[derive(Clone, Debug, Default)]
pub struct TwilioView {
    /// The credentials verification.
    pub verification: Option<Result<Verification, TwilioError>>,
    /// Which credential of the Secret that verification used (with [`TwilioView::verification`]).
    pub credential: Option<crate::api::CredentialsStatus>,
    /// The carrier of the spec's number.
    pub target: Option<Result<Option<Target>, TwilioError>>,
    /// What else may route the spec's number (its Messaging Service, an address configuration).
    pub routing: Option<Result<RoutingFacts, TwilioError>>,
    /// The carrier of the number the channel is wired to and releases.
    pub wired_target: Option<Result<Option<Target>, TwilioError>>,
    /// The confirmation message looked up (by SID, or an earlier attempt found by listing).
    pub message: Option<Result<Option<Message>, TwilioError>>,
    /// The confirmation template's WhatsApp approval (`None` inside: no such template).
    pub template: Option<Result<Option<ContentApproval>, TwilioError>>,
    /// The identity server's answer.
    pub identity: Option<Result<(), IdentityError>>,
    /// The receiver's TLS handshake (`--receiver-tls-check`).
    pub receiver_tls: Option<super::receiver_tls::ReceiverTls>,
    /// Outcomes of this pass's Twilio writes, in order.
    pub outcomes: Vec<Outcome>,
}

/// Everything [`plan`] decides from.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// The channel (spec, metadata, the status before this pass).
    pub ch: &'a WhatsAppChannel,
    /// The cluster.
    pub cluster: &'a ClusterView,
    /// Twilio's answers so far.
    pub twilio: &'a TwilioView,
    /// The time of the pass.
    pub now: &'a Time,
    /// Settings.
    pub config: &'a PlanConfig,
}

/// Where to find a number's webhook carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locate {
    /// Fetch the sender with this SID (known from status).
    SenderSid(String),
    /// Fetch the incoming number with this SID (known from status).
    NumberSid(String),
    /// Fetch the Messaging Service with this SID (known from status; releases only: a live
    /// channel looks up its carrier, then what routes it).
    ServiceSid(String),
    /// Look the number up: the account's WhatsApp senders first, then its incoming numbers.
    Lookup,
}

/// A read the plan needs before it can decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Verify the credentials (shared per account).
    Verify,
    /// Find the carrier of the spec's number.
    Target(E164, Locate),
    /// Find the carrier of the number being released.
    WiredTarget(E164, Locate),
    /// What else may route the spec's number, whose carrier has this SID (shared per account);
    /// `true`: from a listing started during this pass (the spec changed after an override was
    /// reported: a fix at Twilio is seen at once).
    Routing(E164, String, bool),
    /// Fetch the confirmation message by SID.
    FetchMessage(String),
    /// Look for a message an earlier attempt may have sent.
    FindSent {
        /// `whatsapp:` recipient.
        to: String,
        /// `whatsapp:` sender.
        from: String,
        /// How the message is recognised among the sender's messages to the recipient.
        matching: SentMatch,
        /// Messages created before this are not it.
        since: Option<Time>,
    },
    /// The WhatsApp approval of the confirmation template (shared per account and template).
    Template(String),
    /// Ask the identity server for a token.
    Identity,
    /// Shake hands with the receiver (TLS only, shared per `host:port`).
    ReceiverTls,
}

/// How an earlier attempt's message is recognised when it is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SentMatch {
    /// Its text holds this reference (`status.confirmation.reference`).
    Reference(String),
    /// Its text is exactly this (an attempt recorded before references existed).
    Body(String),
    /// Any message but a free-text confirmation of the operator's (a template without a
    /// reference variable): sender, recipient and time only.
    Any,
}

impl SentMatch {
    /// Whether `body` (a listed message's text) is the attempt's message.
    pub fn matches(&self, body: Option<&str>) -> bool {
        match self {
            Self::Reference(r) => body.is_some_and(|b| b.contains(r.as_str())),
            Self::Body(text) => body == Some(text.as_str()),
            // Not the free text that failed before the template was set.
            Self::Any => !body.is_some_and(|b| b.contains(" Ref wao-")),
        }
    }
}

/// A webhook write at Twilio.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookWrite {
    /// A sender's whole `webhook` object (fields the operator does not own are kept).
    Sender {
        /// The sender SID.
        sid: String,
        /// The webhook to set.
        webhook: SenderWebhook,
    },
    /// An incoming number's SmsUrl and SmsMethod.
    Number {
        /// The number SID.
        sid: String,
        /// The URL (empty clears it).
        url: String,
        /// The method.
        method: SmsMethod,
    },
    /// A Messaging Service's InboundRequestUrl and InboundMethod.
    Service {
        /// The service SID.
        sid: String,
        /// The URL (empty clears it).
        url: String,
        /// The method.
        method: SmsMethod,
    },
}

/// One write of a plan, run in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Removes a stale binding (exactly that object).
    DeleteStaleBinding {
        /// Its name.
        name: String,
        /// Its UID.
        uid: String,
        /// Its resourceVersion.
        resource_version: Option<String>,
    },
    /// Creates the binding: the claim of the number.
    Claim {
        /// The binding's name.
        name: String,
        /// Its spec.
        spec: WhatsAppNumberBindingSpec,
    },
    /// Updates the instance a held binding names.
    SetInstance {
        /// The binding's name.
        name: String,
        /// The instance.
        instance: String,
    },
    /// Releases a binding this channel holds.
    Release(HeldBinding),
    /// Adds the in-use finalizer to the credentials Secret (in the channel's namespace).
    ProtectSecret {
        /// The Secret's name.
        name: String,
    },
    /// Writes the status now, against the version the pass read: intents first (the URL about
    /// to be set, the URL about to be overwritten, a confirmation attempt). A conflict ends the
    /// pass before any Twilio write.
    Record(Box<WhatsAppChannelStatus>),
    /// Sets the spec number's webhook.
    SetWebhook(WebhookWrite),
    /// Puts a released number's webhook back as it was.
    RestoreWebhook(WebhookWrite),
    /// Sends the confirmation message.
    SendMessage(NewMessage),
}

/// An Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// The reason (stable).
    pub reason: Reason,
    /// The message.
    pub message: String,
}

/// What happens after the pass.
#[derive(Debug)]
pub enum After {
    /// Look again after this long (jitter added by the executor).
    Requeue(Duration),
    /// Look again after this long without counting the pass as settled: the account is on a
    /// rate-limit hold, so nothing was checked, and the channel's backoff is neither reset nor
    /// grown (a channel failing under a 429 storm keeps backing off exponentially).
    Wait(Duration),
    /// A transient failure: back off (at least the server's Retry-After).
    Backoff(super::Error),
    /// The deletion's cleanup is done: the finalizer may go.
    Finalize,
}

/// The decisions of one pass.
#[derive(Debug)]
pub struct Plan {
    /// The writes, in order.
    pub steps: Vec<Step>,
    /// The status at the end (written only when it differs from the one read; not at all after
    /// [`After::Finalize`]).
    pub status: WhatsAppChannelStatus,
    /// Events.
    pub events: Vec<Note>,
    /// What happens next.
    pub after: After,
    /// The digest of the inputs this pass verified at Twilio, and how long that check stands
    /// (remembered in memory, so that watch events do not lead to more Twilio calls).
    pub verified: Option<(String, Duration)>,
    /// Forget the account's cached verifications (Twilio refused credentials it had accepted).
    pub forget_verification: bool,
    /// Forget this channel's last Twilio check (this pass reported an outcome without Twilio).
    pub forget_attempt: bool,
    /// Put the channel's account on a rate-limit hold this long (zero: the default hold).
    pub hold: Option<Duration>,
}

/// One more read, or the plan.
#[derive(Debug)]
pub enum Next {
    /// The plan needs this read first.
    Read(Read),
    /// The plan.
    Plan(Box<Plan>),
}

/// Plans a pass: a live channel, or one being deleted.
pub fn plan(input: Input<'_>) -> Next {
    if input.ch.metadata.deletion_timestamp.is_some() {
        release::cleanup(input)
    } else {
        live::apply(input)
    }
}

/// The status the channel had before this pass.
pub fn old_status(ch: &WhatsAppChannel) -> WhatsAppChannelStatus {
    ch.status.clone().unwrap_or_default()
}

/// The body of the confirmation message (free text), without its reference.
pub fn confirmation_body(ch: &WhatsAppChannel) -> String {
    use kube::ResourceExt;
    format!(
        "This WhatsApp number is now connected to {} (channel {}/{}). Sent once by whatsapp-operator.",
        ch.spec.instance,
        ch.namespace().unwrap_or_default(),
        ch.name_any()
    )
}

/// The free-text confirmation carrying its reference (how it is found again).
pub fn confirmation_text(ch: &WhatsAppChannel, reference: &str) -> String {
    format!("{} Ref {reference}", confirmation_body(ch))
}

/// The value of the verify-now annotation when no verification has answered it yet.
pub fn verify_now_requested(ch: &WhatsAppChannel) -> Option<&str> {
    use kube::ResourceExt;
    let value = ch.annotations().get(super::VERIFY_NOW_ANNOTATION)?;
    let answered = ch.status.as_ref().and_then(|s| s.verify_now.as_deref());
    (answered != Some(value.as_str())).then_some(value.as_str())
}

/// Whether the channel asks to finish deletions (and moves) without touching Twilio.
pub fn skip_cleanup(ch: &WhatsAppChannel) -> bool {
    use kube::ResourceExt;
    ch.annotations().get(super::SKIP_CLEANUP_ANNOTATION).is_some_and(|v| v == "true")
}
