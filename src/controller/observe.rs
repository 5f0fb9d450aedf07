//! Observing, for one pass: the cluster from the caches (no request for anything watched; the
//! data of the one Secret a pass needs), and the Twilio reads the plan asks for. Nothing here
//! writes, except that a 429 puts the account on hold for every channel of it.

use std::time::Instant;

use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{SenderKind, WhatsAppChannel};
use crate::binding::{self, BindingState};
use crate::twilio::{CredentialRole, CredentialSet, Credentials, MessageQuery, Secret, TwilioError, E164};

use super::credentials::{self, SecretProblem};
use super::plan::{self, BindingView, ClusterView, HeldBinding, Locate, Read, SecretView, Target, TwilioView};
use super::protection;
use super::receiver_tls::ReceiverTls;
use super::{Context, Error};

/// What a pass observed, and the secrets its reads and writes use (never part of the plan).
pub struct Observed {
    /// The cluster.
    pub cluster: ClusterView,
    /// Twilio's answers so far.
    pub twilio: TwilioView,
    /// The channel's Twilio credential in use (the one that verified), when usable.
    pub credentials: Option<Credentials>,
    /// Every credential of the channel's Secret (the primary, and a secondary auth token).
    pub credential_set: Option<CredentialSet>,
    /// The identity server's client secret, when configured and present.
    pub identity_secret: Option<Secret>,
    /// When the pass began observing (a listing started since is newer than what it saw).
    pub started: Instant,
}

/// The binding name (and scope) of the number a channel's status says it is wired to.
fn wired_binding_name(ch: &WhatsAppChannel) -> Option<String> {
    let status = ch.status.as_ref()?;
    let sender = status.sender.as_ref()?;
    let number = E164::parse(&sender.phone_number).ok()?;
    let scope = match sender.kind {
        SenderKind::Sandbox => Some(status.account.as_ref()?.sid.clone()),
        _ => None,
    };
    Some(binding::binding_name(&number, scope.as_deref()))
}

fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What the binding `name` of `number` means for `ch`, from the caches. A binding the caches
/// call stale is removed, so that verdict is confirmed first with a read of its holder: the
/// holder may be in a namespace this process does not watch, or newer than the channel store.
async fn binding_view(ctx: &Context, ch: &WhatsAppChannel, name: String, number: &E164) -> Result<BindingView, Error> {
    let cache = &ctx.cache;
    let existing = cache.binding(&name);
    let holder = existing.as_ref().map(|b| b.spec.channel_ref.clone());
    let cached = holder.as_ref().and_then(|h| cache.channel(&h.namespace, &h.name));
    let mut state = binding::state(existing.as_deref(), cached.as_ref(), ch, number);
    if let (BindingState::Stale { .. }, Some(h)) = (&state, &holder) {
        let api: kube::Api<WhatsAppChannel> = kube::Api::namespaced(ctx.client.clone(), &h.namespace);
        let fresh = api.get_opt(&h.name).await?;
        state = binding::state(existing.as_deref(), fresh.as_ref(), ch, number);
    }
    Ok(BindingView { name, state })
}

/// Observes the cluster for `ch` from the caches.
pub async fn cluster(ctx: &Context, ch: &WhatsAppChannel) -> Result<Observed, Error> {
    let started = Instant::now();
    let ns = ch.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let uid = ch.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let cache = &ctx.cache;
    let number = E164::parse(&ch.spec.phone_number).ok();
    let spec_binding = match &number {
        Some(n) => Some(binding_view(ctx, ch, binding::binding_name(n, binding::scope(ch)), n).await?),
        None => None,
    };
    let wired = match (wired_binding_name(ch), ch.status.as_ref().and_then(|s| s.sender.as_ref())) {
        (Some(name), Some(sender)) if Some(&name) != spec_binding.as_ref().map(|b| &b.name) => {
            match E164::parse(&sender.phone_number) {
                Ok(n) => Some(binding_view(ctx, ch, name, &n).await?),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let held = cache
        .bindings_held_by(&uid)
        .iter()
        .map(|b| HeldBinding { name: b.name_any(), uid: b.uid().unwrap_or_default() })
        .collect();

    let secret_name = ch.spec.twilio.credentials_secret_ref.name.clone();
    let meta = cache.secret(&ns, &secret_name);
    let data = if ch.spec.suspend {
        None
    } else {
        Some(ctx.secrets.read(&ctx.client, &ns, &secret_name, meta.as_ref()).await?)
    };
    let creds = match &data {
        Some(Ok(d)) => credentials::twilio_credentials(d, &ns, &secret_name, &ch.spec.twilio.account_sid),
        Some(Err(p)) => Err(p.clone()),
        None => Err(SecretProblem { reason: crate::api::Reason::Suspended, message: "not read".into() }),
    };
    let secret = SecretView {
        name: secret_name.clone(),
        credentials: creds.as_ref().map(CredentialSet::fingerprint).map_err(Clone::clone),
        protected: meta.as_ref().is_some_and(|m| protection::is_protected(&m.finalizers)),
        deleting: meta.as_ref().is_some_and(|m| m.deletion_timestamp.is_some()),
    };
    let (identity_view, identity_secret) = match (&ch.spec.identity_server, ch.spec.suspend) {
        (Some(id), false) => {
            let name = &id.client_secret_ref.name;
            let read = if *name == secret_name {
                data.clone().unwrap_or_else(|| {
                    Err(SecretProblem { reason: crate::api::Reason::Suspended, message: String::new() })
                })
            } else {
                ctx.secrets.read(&ctx.client, &ns, name, cache.secret(&ns, name).as_ref()).await?
            };
            match read.map(|d| d.get(&id.client_secret_ref.key)) {
                Ok(Some(s)) => (Some(Ok(digest(s.expose()))), Some(s)),
                Ok(None) => (
                    Some(Err(SecretProblem {
                        reason: crate::api::Reason::IdentitySecretMissing,
                        message: format!("Secret {name} lacks a non-empty {}", id.client_secret_ref.key),
                    })),
                    None,
                ),
                Err(p) => (Some(Err(p)), None),
            }
        }
        _ => (None, None),
    };
    let attempt_left = match &secret.credentials {
        Ok(f) => ctx.attempts.left(&uid, &plan::verified_inputs(ch, f, identity_view.as_ref())),
        Err(_) => None,
    };
    // Registered after a pass that verified the credentials (`execute`): refused credentials
    // read no alerts, nor blind the account's poller.
    let receiver = match (&creds, ch.metadata.deletion_timestamp.is_some() || ch.spec.suspend) {
        (Ok(_), false) => ctx.receiver.view(&ch.spec.twilio.account_sid, &ns, &ch.name_any(), &receiver_matcher(ch)),
        _ => {
            ctx.receiver.forget(&ch.spec.twilio.account_sid, &ns, &ch.name_any());
            None
        }
    };
    let cluster = ClusterView {
        binding: spec_binding,
        wired,
        held,
        secret,
        identity_secret: identity_view,
        hold: ctx.holds.remaining(&ch.spec.twilio.account_sid),
        attempt_left,
        receiver,
    };
    let credential_set = creds.ok();
    let credentials = credential_set.as_ref().and_then(|set| {
        let last = ch.status.as_ref().and_then(|s| s.credentials.as_ref());
        set.get(credentials::role_in_use(set, ctx.verifications.verified_role(set), last)).cloned()
    });
    Ok(Observed { cluster, twilio: TwilioView::default(), credentials, credential_set, identity_secret, started })
}

/// What identifies the channel's alerts: its webhook URL (without the fragment) and the SIDs
/// of the objects whose webhook it configured.
pub fn receiver_matcher(ch: &WhatsAppChannel) -> plan::receiver::ReceiverMatcher {
    let status = ch.status.as_ref();
    let sids = [
        status.and_then(|s| s.sender.as_ref()).and_then(|s| s.sid.clone()),
        status.and_then(|s| s.routing.as_ref()).and_then(|r| r.actual.sid.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let url = plan::receiver::without_fragment(&ch.spec.webhook.url).into();
    plan::receiver::ReceiverMatcher { url, sids }
}

/// Answers one read of the plan into `obs.twilio`. When Twilio refuses the primary credential on
/// a read that did not verify (the secondary token was promoted since the last verification), the
/// shared verification is redone, and with the secondary accepted the read is made again with it.
pub async fn read(ctx: &Context, ch: &WhatsAppChannel, obs: &mut Observed, read: Read) {
    if read == Read::ReceiverTls {
        // No credentials involved: a TLS handshake with the receiver, shared per host:port.
        let found = match &ctx.receiver_tls {
            Some(checks) => checks.check(&ch.spec.webhook.url).await.0,
            None => ReceiverTls::Unreachable("the receiver TLS watch is off".into()),
        };
        obs.twilio.receiver_tls = Some(found);
        return;
    }
    read_once(ctx, ch, obs, read.clone()).await;
    if read != Read::Verify && refused(&obs.twilio, &read) && fall_back(ctx, obs).await {
        read_once(ctx, ch, obs, read).await;
    }
}

/// Whether Twilio refused the credentials on `read` (401/403).
fn refused(view: &TwilioView, read: &Read) -> bool {
    let unauthorized = |e: &TwilioError| matches!(e, TwilioError::Unauthorized { .. });
    match read {
        Read::Verify => view.verification.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized)),
        Read::Target(..) => view.target.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized)),
        Read::WiredTarget(..) => view.wired_target.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized)),
        Read::Routing(..) => view.routing.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized)),
        Read::FetchMessage(_) | Read::FindSent { .. } => {
            view.message.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized))
        }
        Read::Template(_) => view.template.as_ref().is_some_and(|r| r.as_ref().is_err_and(unauthorized)),
        Read::Identity | Read::ReceiverTls => false,
    }
}

/// Switches `obs` to the Secret's secondary auth token if the pass used the primary and the
/// account's shared verification, redone once (not when it already says secondary), accepts the
/// secondary. Returns whether it switched.
async fn fall_back(ctx: &Context, obs: &mut Observed) -> bool {
    let Some(set) = obs.credential_set.clone() else {
        return false;
    };
    let Some(secondary) = set.secondary() else {
        return false;
    };
    if obs.credentials.as_ref() == Some(secondary) {
        return false;
    }
    if ctx.verifications.verified_role(&set) != Some(CredentialRole::Secondary) {
        ctx.verifications.invalidate(set.account_sid(), &set.fingerprint());
    }
    let (verified, _) = ctx.verifications.verify(&ctx.twilio, &set, ctx.config.verify_interval).await;
    if verified.outcome.is_err() || verified.role != CredentialRole::Secondary {
        return false;
    }
    obs.credentials = Some(secondary.clone());
    true
}

/// One read, with the credential `obs` holds now.
async fn read_once(ctx: &Context, ch: &WhatsAppChannel, obs: &mut Observed, read: Read) {
    let Some(creds) = obs.credentials.clone() else {
        // The plan reads Twilio only with usable credentials; answer as Twilio would not.
        let e = TwilioError::InvalidInput("no usable credentials".into());
        record(&mut obs.twilio, read, Err(e));
        return;
    };
    let account = ch.spec.twilio.account_sid.clone();
    let twilio = &ctx.twilio;
    // The verify-now annotation asks for Twilio as it is now: no shared answer older than this
    // pass stands (the credentials' verification, the sender and routing listings).
    let verify_now = plan::verify_now_requested(ch).is_some();
    let poll = if verify_now { obs.started.elapsed() } else { ctx.config.sender_poll_interval };
    let noted = |r: Result<(), &TwilioError>| {
        if let Err(e) = r {
            ctx.note_rate_limit(&account, e);
        }
    };
    match read {
        Read::Verify => {
            let Some(set) = obs.credential_set.clone() else {
                record(&mut obs.twilio, read, Err(TwilioError::InvalidInput("no usable credentials".into())));
                return;
            };
            if verify_now {
                ctx.verifications.invalidate(&account, &set.fingerprint());
            }
            let (verified, _) = ctx.verifications.verify(twilio, &set, ctx.config.verify_interval).await;
            noted(verified.outcome.as_ref().map(|_| ()));
            // The later reads and writes of this pass use the credential that verified.
            if let Some(used) = set.get(verified.role) {
                obs.credentials = Some(used.clone());
            }
            obs.twilio.credential = credentials::credential_status(&set, verified.role);
            obs.twilio.verification = Some(verified.outcome);
        }
        Read::Target(number, how) => {
            let found = locate(ctx, &creds, &number, &how, poll).await;
            noted(found.as_ref().map(|_| ()));
            obs.twilio.target = Some(found);
        }
        Read::WiredTarget(number, how) => {
            let found = locate(ctx, &creds, &number, &how, poll).await;
            noted(found.as_ref().map(|_| ()));
            obs.twilio.wired_target = Some(found);
        }
        Read::Routing(number, carrier, fresh) => {
            let max_age = if fresh { obs.started.elapsed().min(poll) } else { poll };
            let facts = ctx.routing.facts(twilio, &creds, &number, &carrier, max_age).await;
            noted(facts.as_ref().map(|_| ()));
            obs.twilio.routing = Some(facts);
        }
        Read::FetchMessage(sid) => {
            let found = match twilio.fetch_message(&creds, &sid).await {
                Ok(m) => Ok(Some(m)),
                Err(TwilioError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
            noted(found.as_ref().map(|_| ()));
            obs.twilio.message = Some(found);
        }
        Read::FindSent { to, from, matching, since } => {
            let query = MessageQuery { to: Some(to), from: Some(from), date_sent_after: None, limit: 50 };
            let since = since.as_ref().and_then(super::clock::to_chrono);
            let found = twilio.list_messages(&creds, &query).await.map(|ms| {
                ms.into_iter().find(|m| {
                    matching.matches(m.body.as_deref()) && since.is_none_or(|s| m.date_created.is_none_or(|d| d >= s))
                })
            });
            noted(found.as_ref().map(|_| ()));
            obs.twilio.message = Some(found);
        }
        Read::Template(content_sid) => {
            let approval = ctx.templates.approval(twilio, &creds, &content_sid, ctx.config.verify_interval).await;
            noted(approval.as_ref().map(|_| ()));
            obs.twilio.template = Some(approval);
        }
        Read::Identity => {
            let answer = match (&ch.spec.identity_server, &obs.identity_secret) {
                (Some(id), Some(secret)) => {
                    let ttl = ctx.config.verify_interval;
                    ctx.identity_checks.check(&ctx.identity, &id.url, &id.client_id, secret, ttl).await
                }
                _ => Ok(()),
            };
            obs.twilio.identity = Some(answer);
        }
        // Answered by `read` before any credentials are needed.
        Read::ReceiverTls => {}
    }
}

fn record(view: &mut TwilioView, read: Read, e: Result<(), TwilioError>) {
    let Err(e) = e else {
        return;
    };
    match read {
        Read::Verify => view.verification = Some(Err(e)),
        Read::Target(..) => view.target = Some(Err(e)),
        Read::WiredTarget(..) => view.wired_target = Some(Err(e)),
        Read::Routing(..) => view.routing = Some(Err(e)),
        Read::FetchMessage(_) | Read::FindSent { .. } => view.message = Some(Err(e)),
        Read::Template(_) => view.template = Some(Err(e)),
        Read::Identity => view.identity = Some(Ok(())),
        Read::ReceiverTls => {}
    }
}

/// Finds a number's webhook carrier: by the SID in status, else the account's senders (one
/// shared listing per account and interval, none older than `max_age`), then its incoming
/// numbers.
async fn locate(
    ctx: &Context,
    creds: &Credentials,
    number: &E164,
    how: &Locate,
    max_age: std::time::Duration,
) -> Result<Option<Target>, TwilioError> {
    let twilio = &ctx.twilio;
    match how {
        Locate::SenderSid(sid) => {
            // Gone, or now another number's: look the number up.
            if let Some(s) = twilio.fetch_sender(creds, sid).await?.filter(|s| s.e164().as_ref() == Some(number)) {
                return Ok(Some(Target::Sender(s)));
            }
        }
        Locate::NumberSid(sid) => {
            if let Some(n) = twilio.fetch_incoming_number(creds, sid).await? {
                if E164::parse(&n.phone_number).is_ok_and(|p| &p == number) {
                    return Ok(Some(Target::Number(n)));
                }
            }
        }
        // The Messaging Service this channel configured (a release restores it).
        Locate::ServiceSid(sid) => {
            return match twilio.fetch_messaging_service(creds, sid).await {
                Ok(s) => Ok(Some(Target::Service(s))),
                Err(TwilioError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        Locate::Lookup => {}
    }
    let started = Instant::now();
    let sender = ctx.senders.lookup(twilio, creds, number, max_age).await?;
    tracing::trace!(number = %number, took = ?started.elapsed(), "sender lookup");
    if let Some(s) = sender {
        return Ok(Some(Target::Sender(s)));
    }
    Ok(twilio.find_incoming_number(creds, number.as_str()).await?.map(Target::Number))
}

/// Shares the state a pass reads with the plan's input.
pub fn input<'a>(
    ch: &'a WhatsAppChannel,
    obs: &'a Observed,
    now: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    config: &'a plan::PlanConfig,
) -> plan::Input<'a> {
    plan::Input { ch, cluster: &obs.cluster, twilio: &obs.twilio, now, config }
}
