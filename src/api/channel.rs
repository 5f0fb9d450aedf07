//! `WhatsAppChannel`: one WhatsApp number served by one application instance through Twilio.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// E.164: a `+`, a non-zero digit, at most 15 digits in all.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{1,14}$";
/// A Twilio Content SID (a content template): `HX` and 32 hexadecimal digits.
pub const CONTENT_SID_PATTERN: &str = r"^HX[0-9a-fA-F]{32}$";
/// A content template variable name, e.g. `1` or `name`.
pub const TEMPLATE_VARIABLE_PATTERN: &str = r"^[A-Za-z0-9_]{1,32}$";
/// A Twilio Account SID: `AC` and 32 hexadecimal digits.
pub const ACCOUNT_SID_PATTERN: &str = r"^AC[0-9a-fA-F]{32}$";
/// A webhook receiver URL: https only, ASCII only (RFC 3986: anything else percent-encoded),
/// without userinfo. The host is a DNS name (letters, digits, `-`, `_`, dots) or a bracketed
/// IPv6 literal, with an optional port; `https://user:pass@host` is refused, an `@` in the path
/// or query is fine. The path, query and fragment hold RFC 3986 characters and `%XX` escapes
/// only: no spaces, controls, quotes, `<>`, `{}`, `|`, `\`, `^` or backticks.
pub const HTTPS_URL_PATTERN: &str = concat!(
    r"^https://([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?",
    r"([/?#]([-A-Za-z0-9._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*)?$"
);
/// An identity-server URL: https as [`HTTPS_URL_PATTERN`], or http on the loopback interface
/// for local development.
pub const IDENTITY_URL_PATTERN: &str = concat!(
    r"^(https://([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])|http://(127\.0\.0\.1|localhost|\[::1\]))",
    r"(:[0-9]{1,5})?([/?#]([-A-Za-z0-9._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*)?$"
);
/// A DNS-1123 label: the application instance name.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: the name of a Secret (and of any object).
pub const DNS_SUBDOMAIN_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key of a Secret: letters, digits, `-`, `_` and `.`.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// A BCP 47 language tag such as `en`, `en-US`, `pt-BR` or `zh-Hant-TW`.
pub const BCP47_PATTERN: &str = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$";
/// Display text (a queue name): no control characters (newlines, tabs, `ESC`), no invisible
/// format characters (zero-width spaces and joiners, the byte-order mark, right-to-left and
/// other bidirectional overrides), no line or paragraph separators, and no space at either end.
/// Empty text matches: lengths are the schema's `minLength`.
pub const TEXT_PATTERN: &str = r"^([^\p{Cc}\p{Cf}\p{Z}]([^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*[^\p{Cc}\p{Cf}\p{Z}])?)?$";
/// An OAuth2 client id: printable ASCII and spaces (RFC 6749, appendix A.1).
pub const CLIENT_ID_PATTERN: &str = r"^[\x20-\x7E]+$";
/// Twilio's WhatsApp sandbox number, shared by every account: the only number in `Sandbox` mode.
pub const SANDBOX_NUMBER: &str = "+14155238886";

/// The desired state of a WhatsApp channel: which number, which application instance, which
/// Twilio account, where inbound messages go, and how the channel behaves in the CRM.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "whatsapp-operator.io",
    version = "v1alpha1",
    kind = "WhatsAppChannel",
    plural = "whatsappchannels",
    singular = "whatsappchannel",
    shortname = "wac",
    category = "whatsapp",
    namespaced,
    status = "WhatsAppChannelStatus",
    doc = "A WhatsApp messaging channel: one number, served through Twilio by one application instance.",
    printcolumn = r#"{"name":"Number","type":"string","jsonPath":".spec.phoneNumber"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instance"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Queue","type":"string","jsonPath":".status.queue"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppChannelSpec {
    /// The WhatsApp number in E.164 form (e.g. `+14155550100`): a number of the Twilio account,
    /// registered as a WhatsApp sender or bought from Twilio; in `Sandbox` mode the sandbox
    /// number `+14155238886`. A number serves exactly one channel, and so one instance.
    #[schemars(regex(pattern = E164_PATTERN))]
    pub phone_number: String,

    /// The application instance this number serves (e.g. `crm-prod`), a DNS-1123 label. A
    /// number may serve only one instance; the operator guarantees it.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub instance: String,

    /// A phone (E.164) that receives one confirmation WhatsApp message once the channel is
    /// connected; not the channel's own number. In `Sandbox` mode it must have joined the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub confirmation_phone_number: Option<String>,

    /// How the confirmation message to `confirmationPhoneNumber` is sent (nothing is sent
    /// without that field). Without it the operator sends free text, which
    /// WhatsApp delivers only inside a 24-hour window (the recipient wrote to the number in
    /// the last 24 hours, or joined the sandbox): elsewhere it fails with Twilio error 63016,
    /// reported as `ConfirmationDelivered=False, OutsideSessionWindow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationSpec>,

    /// The Twilio account that owns the number, and where its credentials are.
    pub twilio: TwilioSpec,

    /// Where Twilio delivers inbound messages: the application's receiver.
    pub webhook: WebhookSpec,

    /// `Business` for a registered WhatsApp number, `Sandbox` for Twilio's shared test number
    /// (then `phoneNumber` must be `+14155238886`).
    #[serde(default)]
    pub mode: ChannelMode,

    /// Whether the channel takes messages in the application (the guide's "Active" switch).
    /// Switching it off keeps the Twilio wiring; the channel reports `Active=False`.
    #[serde(default = "default_true")]
    pub active: bool,

    /// The chat queue that handles the channel's messages (1-253 characters of visible text:
    /// no control or invisible formatting characters, no space at either end). Required while
    /// `active` is true; `queue: null` counts as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 253), regex(pattern = TEXT_PATTERN))]
    pub queue: Option<String>,

    /// The language of quick-reply templates, a BCP 47 tag such as `en` or `pt-BR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 35), regex(pattern = BCP47_PATTERN))]
    pub language: Option<String>,

    /// Suspends reconciliation: no Twilio calls at all, not even reads, until set back to
    /// false. Takes precedence over `managementPolicy`.
    #[serde(default)]
    pub suspend: bool,

    /// How far the operator may act: `Manage` (the default) claims the number and changes
    /// Twilio as the spec asks; `Observe` only reads, verifies and reports: what it would change
    /// is listed in `status.plannedChanges`, nothing is written to Twilio, the number is not
    /// claimed, and deleting the channel leaves Twilio untouched. Switching back to `Manage`
    /// applies the planned changes.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// What deleting the channel does at Twilio: `Delete` restores the number's previous
    /// webhook (or clears it); `Orphan` leaves Twilio untouched. The number and sender are
    /// never released or deleted either way.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// What to do when the number's webhook points at another receiver that this channel did
    /// not set: `Exclusive` refuses (`BoundElsewhere`); `Takeover` moves the number here, only
    /// from the owner `takeover.from` names (`TakeoverRefused` otherwise), and records the
    /// previous URL.
    #[serde(default)]
    pub binding_policy: BindingPolicy,

    /// The takeover's compare-and-swap: the owner `bindingPolicy: Takeover` expects to replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover: Option<TakeoverSpec>,

    /// The application's identity server, used by the app to authenticate to the messaging
    /// service. When set, the operator checks that it issues a token for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_server: Option<IdentityServerSpec>,

    /// What the operator may change when an object other than the number's own WhatsApp sender
    /// or incoming phone number routes its inbound messages (a Messaging Service). TwiML
    /// applications and Conversations address configurations are never changed: they are
    /// reported (`OverriddenByApplication`, `OverriddenByAddressConfiguration`).
    #[serde(default)]
    pub routing: RoutingSpec,

    /// How the health of the receiver at `webhook.url` counts. The operator reads the Twilio
    /// account's Debugger alerts (Monitor API) and reports failed webhook requests as the
    /// `ReceiverHealthy` condition; by default that condition does not change `Ready`.
    #[serde(default)]
    pub receiver_health: ReceiverHealthSpec,
}

/// How the `ReceiverHealthy` condition counts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverHealthSpec {
    /// When true, `ReceiverHealthy=False` (Twilio's requests to the receiver fail) also makes
    /// `Ready` False with the same reason and the phase `Degraded`. Default false: the
    /// channel's Twilio configuration is right either way, and the receiver is the
    /// application's (Argo CD's health check still shows the channel as Degraded).
    #[serde(default)]
    pub affects_ready: bool,
}

/// What the operator may change to make inbound messages reach `webhook.url`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingSpec {
    /// When the number's sender (or incoming number) sits in a Messaging Service that routes its
    /// inbound messages (the service's `use_inbound_webhook_on_number` is false): `IfDedicated`
    /// sets the service's inbound request URL only when the service's pools hold nothing but
    /// this number; `Always` sets it even when other numbers use the service (their messages
    /// move too); `Never` leaves the service alone. A service left alone is reported as
    /// `WebhookConfigured=False, OverriddenByMessagingService`.
    #[serde(default)]
    pub messaging_service: MessagingServicePolicy,
}

/// Whether the operator may set a Messaging Service's inbound request URL.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MessagingServicePolicy {
    /// Only a service that serves this number alone (the default).
    #[default]
    IfDedicated,
    /// Any service, also one shared with other numbers.
    Always,
    /// Never: report `OverriddenByMessagingService`.
    Never,
}

fn default_true() -> bool {
    true
}

/// The Twilio account of a channel.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwilioSpec {
    /// The Twilio Account SID (the guide's "App Id"): `AC` followed by 32 hex digits.
    #[schemars(regex(pattern = ACCOUNT_SID_PATTERN))]
    pub account_sid: String,

    /// A Secret in the channel's namespace (a reference cannot name another namespace) holding
    /// either `authToken` (the guide's "Token"), or `apiKeySid` and `apiKeySecret` for a Twilio
    /// API key. Never put a token in the spec.
    pub credentials_secret_ref: LocalSecretReference,
}

/// A reference to a Secret in the channel's own namespace. There is no `namespace` field: the
/// API server drops one (pruning), so a channel can never read another namespace's Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// The Secret's name (a DNS-1123 subdomain).
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// A key of a Secret in the channel's own namespace (no `namespace` field, as for
/// [`LocalSecretReference`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretKeyReference {
    /// The Secret's name (a DNS-1123 subdomain).
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The key within the Secret.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}

/// The inbound webhook of the number.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The receiver URL: https only, ASCII only (percent-encode anything else), no
    /// `user:password@` userinfo; e.g. `https://sm-receiver.example.com/api/webhook/LeadGen/whatsapp`.
    #[schemars(length(max = 2048), regex(pattern = HTTPS_URL_PATTERN))]
    pub url: String,
    /// The HTTP method Twilio uses to call the receiver. WhatsApp senders accept only `POST`
    /// (`GET` on one: `WebhookConfigured=False, MethodNotSupported`).
    #[serde(default)]
    pub method: WebhookMethod,
}

/// HTTP method of a webhook.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WebhookMethod {
    /// HTTP POST (the default).
    #[default]
    #[serde(rename = "POST")]
    Post,
    /// HTTP GET (incoming phone numbers only).
    #[serde(rename = "GET")]
    Get,
}

impl WebhookMethod {
    /// The method as Twilio spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Get => "GET",
        }
    }
}

/// How the channel reaches WhatsApp.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ChannelMode {
    /// A WhatsApp Business number registered through Twilio.
    #[default]
    Business,
    /// Twilio's WhatsApp sandbox: a shared test number that talks only to joined participants.
    Sandbox,
}

impl ChannelMode {
    /// The mode as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Business => "Business",
            Self::Sandbox => "Sandbox",
        }
    }
}

/// How far the operator may act on a channel.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Claim the number and make Twilio match the spec (the default).
    #[default]
    Manage,
    /// Read and verify only; report the changes `Manage` would make in `status.plannedChanges`.
    Observe,
}

impl ManagementPolicy {
    /// The policy as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manage => "Manage",
            Self::Observe => "Observe",
        }
    }
}

/// What deleting the channel does at Twilio.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Restore the number's previous webhook (or clear it) and release the binding.
    #[default]
    Delete,
    /// Leave Twilio untouched and release the binding.
    Orphan,
}

/// What to do when the number is wired to a receiver this channel did not set.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BindingPolicy {
    /// Refuse and report `BoundElsewhere`.
    #[default]
    Exclusive,
    /// Move the number to this channel, recording the previous URL.
    Takeover,
}

/// The owner a takeover expects to replace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TakeoverSpec {
    /// The owner at Twilio to take the number from, as `status.ownership.owner` (or a
    /// `BoundElsewhere` message) names it: `<cluster-id>/<namespace>/<name>/<instance>`, read
    /// from the ownership marker on the number's webhook URL. For a receiver without a marker
    /// (set by hand), its URL. Any other owner at Twilio is not taken over (`TakeoverRefused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub from: Option<String>,
}

/// The application's identity server (the guide's IdentityServerUrl, IdentityServerClientId and
/// IdentityServerClientSecret).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityServerSpec {
    /// The identity server's base URL; the token endpoint is `<url>/connect/token`. https, or
    /// http on loopback for local development; ASCII only, no `user:password@` userinfo.
    #[schemars(length(max = 2048), regex(pattern = IDENTITY_URL_PATTERN))]
    pub url: String,
    /// The OAuth2 client id (printable ASCII).
    #[schemars(length(min = 1, max = 256), regex(pattern = CLIENT_ID_PATTERN))]
    pub client_id: String,
    /// The Secret key holding the OAuth2 client secret (key defaults to `clientSecret`).
    pub client_secret_ref: LocalSecretKeyReference,
}

/// The observed state of a channel. Conditions follow Kubernetes API conventions: `Ready` is
/// the summary for `kubectl wait`, Argo CD and Flux health checks; `Reconciling` and `Stalled`
/// carry kstatus' meaning; `observedGeneration` says which spec they describe.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppChannelStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The channel's conditions: CredentialsValid, NumberVerified, NumberBound,
    /// WebhookConfigured, Connected, ConfirmationSent, IdentityVerified, Active and Ready, plus
    /// kstatus' Reconciling (still working) and Stalled (needs a change) while they are True.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// A one-word summary for `kubectl get`: Pending, Ready, Inactive, Waiting, Conflict,
    /// Failed, Degraded, Suspended, Deleting or Planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The chat queue in effect (set once the channel is active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,

    /// The template language in effect (set once the channel is active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,

    /// The Twilio account, as Twilio reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,

    /// Which credential of the Secret Twilio accepted at the last verification (a fingerprint,
    /// never the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsStatus>,

    /// The Twilio resource whose webhook the operator manages for the number (its WhatsApp
    /// sender, incoming number, or the Messaging Service it configures), and that webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<SenderStatus>,

    /// Routing side by side: where inbound messages should go (`expected`) and the object that
    /// routes them at Twilio now (`actual`), with the reason when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStatus>,

    /// Who owns the number at Twilio, by the ownership marker on its webhook URL, and the last
    /// owner changes this channel took part in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<OwnershipStatus>,

    /// The one confirmation message sent for this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationStatus>,

    /// When a verification at Twilio (credentials, number, webhook) last changed this status.
    /// The periodic checks every `--verify-interval` that find nothing new leave the status
    /// untouched (no API write in steady state); the operator's metrics count every check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,

    /// A digest of what the last verification at Twilio used: the spec fields that matter to
    /// Twilio and fingerprints of the referenced credentials (never their data). When it
    /// changes, the operator verifies again at once; otherwise every `--verify-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_inputs: Option<String>,

    /// The value of the `whatsapp-operator.io/verify-now` annotation last answered by a full
    /// verification at Twilio: setting the annotation to a new value verifies again at once,
    /// once per value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_now: Option<String>,

    /// Under `managementPolicy: Observe`: the writes `Manage` would make now, in order (the
    /// number's claim, Twilio webhook updates, the confirmation message), like a dry-run plan.
    /// Empty when the observed state needs no change, and under `Manage`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned_changes: Vec<PlannedChange>,
}

/// One change the operator would make, were the channel managed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// `Create`, `Update` or `Delete`.
    pub action: ChangeAction,
    /// The object's kind: at Twilio `WhatsAppSender`, `IncomingPhoneNumber`,
    /// `MessagingService` or `Message`; in Kubernetes `WhatsAppNumberBinding` or `Secret`.
    pub kind: String,
    /// The Twilio SID of the object changed (absent for one to be created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The Kubernetes name of the object changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field changed (Twilio's name, e.g. `webhook.callback_url`, `sms_url`,
    /// `inbound_request_url`; for a message `to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Its value now (absent: unset, or the object does not exist yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Its value after the change (absent: cleared, or the object is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What a planned change does to its object.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ChangeAction {
    /// The object is created.
    Create,
    /// A field of the object is changed.
    Update,
    /// The object is deleted.
    Delete,
}

/// Ownership of the number at Twilio.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipStatus {
    /// The owner the marker on the routing webhook URL names now,
    /// `<cluster-id>/<namespace>/<name>/<instance>` (absent: no marker, e.g. a URL set by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The last owner changes (at most 5, oldest first) this channel made or saw: it took the
    /// number, or another owner took it from this channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<OwnerChange>,
}

/// One owner change of the number.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerChange {
    /// When the operator made or saw the change.
    pub time: Time,
    /// The new owner's cluster (`--cluster-id`).
    pub cluster: String,
    /// The new owner's channel, `namespace/name`.
    pub channel: String,
    /// The new owner's instance.
    pub instance: String,
    /// The owner before, when it had a marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<String>,
    /// This channel's `metadata.generation` when the change was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// A one-word summary of the channel's state.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Not reconciled yet.
    Pending,
    /// Connected, active and everything the spec asks is done.
    Ready,
    /// Connected, but `spec.active` is false.
    Inactive,
    /// Waiting on something outside the operator (a sender coming online, a Console step,
    /// a sandbox participant).
    Waiting,
    /// The number belongs to another channel or receiver.
    Conflict,
    /// A problem the user must fix (credentials, number, spec); see the conditions.
    Failed,
    /// A transient Twilio problem; the operator retries with backoff.
    Degraded,
    /// `spec.suspend` is true.
    Suspended,
    /// Being deleted.
    Deleting,
    /// `managementPolicy: Observe`, and `status.plannedChanges` lists what `Manage` would change.
    Planned,
}

impl Phase {
    /// Every phase's name, as the API spells it.
    pub const NAMES: [&'static str; 10] = [
        "Pending",
        "Ready",
        "Inactive",
        "Waiting",
        "Conflict",
        "Failed",
        "Degraded",
        "Suspended",
        "Deleting",
        "Planned",
    ];

    /// The phase's name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Inactive => "Inactive",
            Self::Waiting => "Waiting",
            Self::Conflict => "Conflict",
            Self::Failed => "Failed",
            Self::Degraded => "Degraded",
            Self::Suspended => "Suspended",
            Self::Deleting => "Deleting",
            Self::Planned => "Planned",
        }
    }
}

/// The Twilio account as Twilio reports it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The Account SID.
    pub sid: String,
    /// The account's friendly name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    /// `Trial` or `Full`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    /// `active`, `suspended` or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The credential the last verification used.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsStatus {
    /// `primary` (the Secret's `authToken`), `secondary` (its `authTokenSecondary`, after
    /// Twilio refused the primary) or `apiKey` (`apiKeySid` + `apiKeySecret`).
    pub source: CredentialSource,
    /// `sha256:` and the first 12 hex digits of the SHA-256 of the secret value (compare with
    /// `printf %s "$TOKEN" | sha256sum | cut -c1-12`).
    pub fingerprint: String,
}

/// Which credential of the Secret verified.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CredentialSource {
    /// The Secret's `authToken`.
    Primary,
    /// The Secret's `authTokenSecondary`.
    Secondary,
    /// The Secret's API key.
    ApiKey,
}

impl CredentialSource {
    /// The string used in the Kubernetes API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
            Self::ApiKey => "apiKey",
        }
    }
}

/// Which kind of Twilio resource carries the number's inbound webhook.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SenderKind {
    /// A Messaging v2 WhatsApp sender (`XE...`); its webhook is `webhook.callback_url`.
    WhatsAppSender,
    /// An incoming phone number (`PN...`); its webhook is `sms_url`.
    IncomingPhoneNumber,
    /// A Messaging Service (`MG...`) whose pool holds the number; its webhook is
    /// `inbound_request_url`.
    MessagingService,
    /// The WhatsApp sandbox; its webhook is set in the Twilio Console only.
    Sandbox,
}

/// A kind of Twilio object that can route a number's inbound messages.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RouteKind {
    /// A WhatsApp sender (`XE...`, `webhook.callback_url`).
    WhatsAppSender,
    /// An incoming phone number (`PN...`, `sms_url`).
    IncomingPhoneNumber,
    /// A Messaging Service (`MG...`, `inbound_request_url`).
    MessagingService,
    /// A TwiML application set on the number (`AP...`, `sms_application_sid`).
    Application,
    /// A Conversations address configuration (`IG...`) with auto-creation.
    AddressConfiguration,
    /// The WhatsApp sandbox (Console only).
    Sandbox,
}

/// One side of the routing: an object and where it sends inbound messages.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The object's kind.
    pub kind: RouteKind,
    /// Its SID (absent for the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The URL inbound messages go to (absent: none, or not readable through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Expected and actual routing of the number's inbound messages.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatus {
    /// What the spec asks: the object the operator configures (or would, if allowed) with
    /// `spec.webhook.url` and `spec.webhook.method`.
    pub expected: Route,
    /// The object that routes the number's inbound messages at Twilio now, after the operator's
    /// write if any.
    pub actual: Route,
    /// `Configured` when they agree; otherwise why not: `OverriddenByMessagingService`,
    /// `OverriddenByApplication`, `OverriddenByAddressConfiguration`, `MethodNotSupported`,
    /// `BoundElsewhere`, `ManualStepRequired` (sandbox).
    pub reason: String,
}

/// The Twilio resource that receives the number's messages.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderStatus {
    /// Which kind of resource.
    pub kind: SenderKind,
    /// The number it carries (E.164).
    pub phone_number: String,
    /// Its SID (`XE...` or `PN...`); absent for the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The sender's status at Twilio (WhatsApp senders), e.g. `ONLINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The inbound webhook URL Twilio has now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The HTTP method of that webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_method: Option<String>,
    /// The receiver URL this channel last wrote or confirmed on this resource: while the number
    /// still points there it is this channel's to change, restore or release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_url: Option<String>,
    /// The receiver URL the operator is about to write: recorded before the write, so that
    /// after a crash or a failed request the number still counts as this channel's to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_webhook_url: Option<String>,
    /// The webhook URL before this channel took the number over (Twilio's default URL
    /// included): restored exactly on deletion, or when the channel moves to another number,
    /// under `deletionPolicy: Delete`. Absent when the number had none (it is cleared then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_webhook_url: Option<String>,
    /// The HTTP method of the previous webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_webhook_method: Option<String>,
}

/// How the confirmation message is sent.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmationSpec {
    /// An approved WhatsApp template (Twilio Content API): business-initiated messages outside
    /// the 24-hour window need one. `Business` mode only: in `Sandbox` mode free text is sent
    /// (a sandbox recipient has joined, which opens the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ConfirmationTemplate>,
}

/// A content template for the confirmation message.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmationTemplate {
    /// The template's Content SID (`HX` and 32 hexadecimal digits), approved for WhatsApp. The
    /// operator checks its approval at Twilio before sending.
    #[schemars(regex(pattern = CONTENT_SID_PATTERN))]
    pub content_sid: String,
    /// Values of the template's placeholders by name, e.g. `{"1": "crm-prod"}` (sent as
    /// `ContentVariables`; missing ones take the template's defaults).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20))]
    pub variables: std::collections::BTreeMap<String, String>,
    /// The placeholder the operator fills with the message's reference (`wao-` and 12
    /// hexadecimal digits, also in `status.confirmation.reference`), e.g. `"2"`. With it, a
    /// message whose send timed out is found again by that reference; without it, by sender,
    /// recipient and time only (any message from the number to the recipient since the
    /// attempt counts as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TEMPLATE_VARIABLE_PATTERN))]
    pub reference_variable: Option<String>,
}

/// The confirmation message.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmationStatus {
    /// The recipient (E.164).
    pub to: String,
    /// The number it was sent for (E.164): a new number gets a new message.
    pub from: String,
    /// When the operator asked Twilio to send it. Set before the request, so that after a
    /// crash or an ambiguous failure the operator looks the message up instead of sending again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_time: Option<Time>,
    /// The Twilio Message SID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_sid: Option<String>,
    /// When Twilio accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_time: Option<Time>,
    /// The message's last known status at Twilio (e.g. `queued`, `delivered`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Twilio's error code when the message failed (e.g. 63015).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// The value of the `whatsapp-operator.io/resend-confirmation` annotation this message
    /// answered: setting the annotation to a new value sends the message again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_token: Option<String>,
    /// The template sent (its Content SID); absent for free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// The message's reference (`wao-` and 12 hexadecimal digits), chosen before the request
    /// and carried in the text (or the template's `referenceVariable`): how the message is
    /// found again after a crash or an ambiguous failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use regex::Regex;

    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(value)
    }

    #[test]
    fn webhook_urls_without_userinfo() {
        for ok in [
            "https://receiver.example.com/api/webhook/LeadGen/whatsapp",
            "https://receiver.example.com",
            "https://receiver.example.com:8443/x?y=1#z",
            "https://receiver.example.com/hooks/@team/whatsapp",
            "https://receiver.example.com/x?notify=ops@example.com",
            "https://receiver.example.com?notify=ops@example.com",
            "https://receiver.example.com#user@frag",
        ] {
            assert!(matches(HTTPS_URL_PATTERN, ok), "{ok} should be accepted");
            assert!(matches(IDENTITY_URL_PATTERN, ok), "{ok} should be accepted");
        }
        for refused in [
            "https://user:pass@receiver.example.com/x",
            "https://user@receiver.example.com",
            "https://:pass@receiver.example.com",
            "https://@receiver.example.com",
            "https://receiver.example.com@evil.example/x",
            "https://user:pass@receiver.example.com?x=1",
            "http://receiver.example.com/x",
            "https://receiver.example.com/a b",
            "https:///x",
        ] {
            assert!(!matches(HTTPS_URL_PATTERN, refused), "{refused} should be refused");
            assert!(!matches(IDENTITY_URL_PATTERN, refused), "{refused} should be refused");
        }
    }

    #[test]
    fn identity_urls_allow_loopback_http_only_without_userinfo() {
        for ok in ["http://127.0.0.1:5000", "http://localhost/identity", "http://[::1]:8080/x@y"] {
            assert!(matches(IDENTITY_URL_PATTERN, ok), "{ok} should be accepted");
        }
        for refused in [
            "http://user:pass@127.0.0.1:5000",
            "http://user@localhost",
            "http://127.0.0.1@evil.example",
            "http://localhost:5000@evil.example/x",
            "http://id.example.com",
        ] {
            assert!(!matches(IDENTITY_URL_PATTERN, refused), "{refused} should be refused");
        }
    }

    #[test]
    fn the_schema_uses_the_patterns() {
        let crd = serde_json::to_value(WhatsAppChannel::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["webhook"]["properties"]["url"]["pattern"], HTTPS_URL_PATTERN);
        assert_eq!(spec["identityServer"]["properties"]["url"]["pattern"], IDENTITY_URL_PATTERN);
    }
}
