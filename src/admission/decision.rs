//! The admission decision, as pure functions: which number a request claims ([`claimant`]),
//! and whether the cluster lets it have it ([`judge`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::admission::Operation;
use kube::ResourceExt;

use crate::api::binding::ChannelReference;
use crate::api::{WhatsAppChannel, WhatsAppNumberBinding};
use crate::binding;
use crate::twilio::E164;

/// A channel, as a request would have it, asking for a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    /// The channel's namespace.
    pub namespace: String,
    /// The channel's name.
    pub name: String,
    /// The channel's UID, when the request carries one.
    pub uid: Option<String>,
    /// When the channel was created; `None` for a create (it is the newest channel there is).
    pub created: Option<Time>,
    /// The normalized number.
    pub number: E164,
    /// The Twilio account a sandbox number is scoped to (see [`binding::scope`]).
    pub scope_account: Option<String>,
}

impl Claimant {
    /// The name of the `WhatsAppNumberBinding` that would hold the number.
    pub fn binding_name(&self) -> String {
        binding::binding_name(&self.number, self.scope_account.as_deref())
    }

    /// Whether `ch` is this very channel (same UID, or same namespace and name).
    fn is(&self, ch: &WhatsAppChannel) -> bool {
        let same_uid = self.uid.is_some() && ch.uid() == self.uid;
        same_uid || (ch.namespace().as_deref() == Some(self.namespace.as_str()) && ch.name_any() == self.name)
    }

    /// Whether a binding's `holder` is this channel: on an update the same object (UID); on a
    /// create the same namespace/name, since a recreated channel takes over its old binding.
    fn is_holder(&self, holder: &ChannelReference) -> bool {
        match (&self.uid, &self.created) {
            (Some(uid), Some(_)) => holder.uid == *uid,
            _ => holder.namespace == self.namespace && holder.name == self.name,
        }
    }

    /// The number as messages show it.
    fn number_display(&self) -> String {
        match &self.scope_account {
            Some(account) => format!("{} (the sandbox of {account})", self.number.as_str()),
            None => self.number.as_str().to_owned(),
        }
    }
}

/// What the webhook answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admit.
    Allow,
    /// Admit, with a warning for the client.
    Warn(String),
    /// Reject (HTTP 409 Conflict) with this message.
    Deny(String),
}

/// The claim a request makes, or `None` when it needs no look-up: anything but a create or an
/// update, an object that is being deleted, a number that does not parse (the CRD schema rejects
/// it), and an update that keeps the claim: the same number, the same mode and, in `Sandbox`
/// mode, the same account, i.e. the same binding name. So metadata-only updates (labels,
/// annotations, finalizers), other spec fields, and the account of a `Business` channel (its
/// binding is not scoped to the account) are never judged.
pub fn claimant(
    operation: &Operation,
    namespace: Option<&str>,
    object: Option<&WhatsAppChannel>,
    old: Option<&WhatsAppChannel>,
) -> Option<Claimant> {
    if !matches!(operation, Operation::Create | Operation::Update) {
        return None;
    }
    let ch = object?;
    if ch.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let number = E164::parse(&ch.spec.phone_number).ok()?;
    let scope_account = binding::scope(ch).map(str::to_owned);
    if *operation == Operation::Update {
        let claim = binding::binding_name(&number, scope_account.as_deref());
        if old.and_then(claims).is_some_and(|old_claim| old_claim == claim) {
            return None;
        }
    }
    let namespace = ch.namespace().or_else(|| namespace.map(str::to_owned))?;
    Some(Claimant {
        namespace,
        name: ch.name_any(),
        uid: ch.uid(),
        created: match operation {
            Operation::Create => None,
            _ => ch.metadata.creation_timestamp.clone(),
        },
        number,
        scope_account,
    })
}

/// Whether `claimant` may have its number, given what the cache knows of it: `binding`, the
/// number's `WhatsAppNumberBinding` (only one named [`Claimant::binding_name`] counts); `holder`,
/// the channel now at that binding's holder namespace/name (only the same object, by UID,
/// counts); and `rivals`, the other channels asking for the number (those asking for another
/// number or sandbox scope, and the claimant itself, are ignored).
///
/// Denied when the number's binding names another channel that still holds it (see
/// [`binding::is_current_holder`]), or when another channel, not being deleted, that was created
/// earlier (then by namespace/name) asks for the same number: it will get the binding first.
/// A holder that is being deleted only earns a warning: the number moves once it is gone.
pub fn judge(
    claimant: &Claimant,
    binding: Option<&WhatsAppNumberBinding>,
    holder: Option<&WhatsAppChannel>,
    rivals: &[&WhatsAppChannel],
) -> Verdict {
    let number = claimant.number_display();
    let binding_name = claimant.binding_name();
    if let Some(b) = binding.filter(|b| b.name_any() == binding_name) {
        let held_by = &b.spec.channel_ref;
        if !claimant.is_holder(held_by) {
            let scope = claimant.scope_account.as_deref();
            if binding::is_current_holder(held_by, holder, &claimant.number, scope) {
                let who = format!("WhatsAppChannel {}/{}", held_by.namespace, held_by.name);
                if holder.is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
                    return Verdict::Warn(format!(
                        "{number} is still held by {who}, which is being deleted; this channel takes the number once it is gone"
                    ));
                }
                return Verdict::Deny(format!(
                    "{number} is already served by {who} (instance {}); one number serves one application instance",
                    b.spec.instance
                ));
            }
        }
    }

    let my_key = order_key(claimant.created.as_ref(), &claimant.namespace, &claimant.name);
    let earliest = rivals
        .iter()
        .copied()
        .filter(|c| !claimant.is(c) && c.metadata.deletion_timestamp.is_none())
        .filter(|c| claims(c).as_deref() == Some(binding_name.as_str()))
        .map(|c| (c, c.namespace().unwrap_or_default(), c.name_any()))
        .filter(|(c, ns, name)| order_key(c.metadata.creation_timestamp.as_ref(), ns, name) < my_key)
        .min_by(|(a, ans, an), (b, bns, bn)| {
            order_key(a.metadata.creation_timestamp.as_ref(), ans, an).cmp(&order_key(
                b.metadata.creation_timestamp.as_ref(),
                bns,
                bn,
            ))
        });
    if let Some((c, ns, name)) = earliest {
        return Verdict::Deny(format!(
            "{number} is already requested by WhatsAppChannel {ns}/{name} (instance {}), created earlier; \
             one number serves one application instance",
            c.spec.instance
        ));
    }
    Verdict::Allow
}

/// The binding name of the number (and sandbox scope) `ch` asks for; `None` for a number that
/// does not parse.
fn claims(ch: &WhatsAppChannel) -> Option<String> {
    E164::parse(&ch.spec.phone_number).ok().map(|n| binding::binding_name(&n, binding::scope(ch)))
}

/// Creation order: by creation time (unknown last), then namespace, then name.
fn order_key<'a>(created: Option<&'a Time>, ns: &'a str, name: &'a str) -> (bool, Option<&'a Time>, &'a str, &'a str) {
    (created.is_none(), created, ns, name)
}

/// A dry run is admitted: a denial becomes a warning, so `kubectl apply --dry-run=server` shows
/// what the real request would meet.
pub fn for_dry_run(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Deny(msg) => Verdict::Warn(format!("the request would be rejected: {msg}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NUMBER: &str = "+14155550100";

    fn channel(ns: &str, name: &str, uid: &str, number: &str, created: &str) -> WhatsAppChannel {
        serde_json::from_value(json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppChannel",
            "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": created},
            "spec": {
                "phoneNumber": number,
                "instance": format!("{name}-instance"),
                "twilio": {"accountSid": "AC0123456789abcdef0123456789abcdef", "credentialsSecretRef": {"name": "twilio"}},
                "webhook": {"url": "https://receiver.example.com/hook"},
                "queue": "sales",
            },
        }))
        .expect("channel")
    }

    fn bound(ch: &WhatsAppChannel) -> WhatsAppNumberBinding {
        let number = E164::parse(&ch.spec.phone_number).expect("number");
        binding::binding_for(ch, &number).expect("binding")
    }

    fn create(ch: &WhatsAppChannel) -> Claimant {
        claimant(&Operation::Create, ch.namespace().as_deref(), Some(ch), None).expect("a claim")
    }

    #[test]
    fn a_number_held_by_another_channel_is_denied_naming_the_holder() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let b = channel("other", "support", "uid-b", NUMBER, "2024-02-01T00:00:00Z");
        let verdict = judge(&create(&b), Some(&bound(&a)), Some(&a), &[&a]);
        assert_eq!(
            verdict,
            Verdict::Deny(
                "+14155550100 is already served by WhatsAppChannel crm/sales (instance sales-instance); \
                 one number serves one application instance"
                    .into()
            )
        );
    }

    #[test]
    fn a_stale_binding_does_not_block() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let b = channel("other", "support", "uid-b", NUMBER, "2024-02-01T00:00:00Z");
        // The holder is gone.
        assert_eq!(judge(&create(&b), Some(&bound(&a)), None, &[]), Verdict::Allow);
        // The holder was recreated (another UID).
        let recreated = channel("crm", "sales", "uid-a2", NUMBER, "2024-03-01T00:00:00Z");
        let c = claimant(&Operation::Update, Some("other"), Some(&b), None).expect("claim");
        assert_eq!(judge(&c, Some(&bound(&a)), Some(&recreated), &[&recreated]), Verdict::Allow);
        // The holder moved to another number.
        let moved = channel("crm", "sales", "uid-a", "+14155550199", "2024-01-01T00:00:00Z");
        assert_eq!(judge(&create(&b), Some(&bound(&a)), Some(&moved), &[&moved]), Verdict::Allow);
    }

    #[test]
    fn the_holder_itself_and_its_recreation_are_admitted() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let update = claimant(&Operation::Update, Some("crm"), Some(&a), None).expect("claim");
        assert_eq!(judge(&update, Some(&bound(&a)), Some(&a), &[&a]), Verdict::Allow);
        // Same namespace/name, new object: the controller replaces the old binding.
        let again = channel("crm", "sales", "uid-new", NUMBER, "2024-05-01T00:00:00Z");
        assert_eq!(judge(&create(&again), Some(&bound(&a)), None, &[]), Verdict::Allow);
    }

    #[test]
    fn an_unbound_earlier_channel_wins() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let b = channel("other", "support", "uid-b", NUMBER, "2024-02-01T00:00:00Z");
        let Verdict::Deny(msg) = judge(&create(&b), None, None, &[&a]) else { panic!("denied") };
        assert!(msg.contains("requested by WhatsAppChannel crm/sales (instance sales-instance)"), "{msg}");

        // An update of the older channel to the number is the older claim: admitted.
        let mut older = channel("z", "first", "uid-0", "+14155550199", "2023-01-01T00:00:00Z");
        let old = older.clone();
        older.spec.phone_number = NUMBER.into();
        let c = claimant(&Operation::Update, Some("z"), Some(&older), Some(&old)).expect("claim");
        assert_eq!(judge(&c, None, None, &[&a, &old]), Verdict::Allow);

        // Same second: namespace/name decides.
        let same_time = channel("aaa", "x", "uid-c", "+14155550199", "2024-01-01T00:00:00Z");
        let mut moving = same_time.clone();
        moving.spec.phone_number = NUMBER.into();
        let c = claimant(&Operation::Update, Some("aaa"), Some(&moving), Some(&same_time)).expect("claim");
        assert_eq!(judge(&c, None, None, &[&a]), Verdict::Allow);
        let mut late = channel("zzz", "x", "uid-d", "+14155550199", "2024-01-01T00:00:00Z");
        let old = late.clone();
        late.spec.phone_number = NUMBER.into();
        let c = claimant(&Operation::Update, Some("zzz"), Some(&late), Some(&old)).expect("claim");
        assert!(matches!(judge(&c, None, None, &[&a]), Verdict::Deny(_)));
    }

    #[test]
    fn deleting_channels_do_not_block_and_a_deleting_holder_only_warns() {
        let mut a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        a.metadata.deletion_timestamp = a.metadata.creation_timestamp.clone();
        let b = channel("other", "support", "uid-b", NUMBER, "2024-02-01T00:00:00Z");
        assert_eq!(judge(&create(&b), None, None, &[&a]), Verdict::Allow);
        let Verdict::Warn(msg) = judge(&create(&b), Some(&bound(&a)), Some(&a), &[&a]) else { panic!("a warning") };
        assert!(msg.contains("crm/sales, which is being deleted"), "{msg}");
    }

    #[test]
    fn other_numbers_and_sandbox_scopes_do_not_conflict() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let b = channel("other", "support", "uid-b", "+14155550101", "2024-02-01T00:00:00Z");
        assert_eq!(judge(&create(&b), Some(&bound(&a)), Some(&a), &[&a]), Verdict::Allow);

        let sandbox = |ns: &str, account: &str, uid: &str| {
            let mut ch = channel(ns, "sandbox", uid, "+14155238886", "2024-01-01T00:00:00Z");
            ch.spec.mode = crate::api::ChannelMode::Sandbox;
            ch.spec.twilio.account_sid = account.into();
            ch
        };
        let s1 = sandbox("one", "AC00000000000000000000000000000001", "uid-s1");
        let s2 = sandbox("two", "AC00000000000000000000000000000002", "uid-s2");
        assert_eq!(judge(&create(&s2), Some(&bound(&s1)), Some(&s1), &[&s1]), Verdict::Allow);
        let s3 = sandbox("three", "AC00000000000000000000000000000001", "uid-s3");
        let Verdict::Deny(msg) = judge(&create(&s3), Some(&bound(&s1)), Some(&s1), &[&s1]) else { panic!("denied") };
        assert!(msg.starts_with("+14155238886 (the sandbox of AC00000000000000000000000000000001)"), "{msg}");
    }

    #[test]
    fn only_creates_and_updates_changing_number_mode_or_sandbox_account_are_checked() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        assert_eq!(claimant(&Operation::Delete, Some("crm"), None, Some(&a)), None);
        assert_eq!(claimant(&Operation::Connect, Some("crm"), Some(&a), Some(&a)), None);
        assert!(claimant(&Operation::Create, Some("crm"), Some(&a), None).is_some());
        let update = |new: &WhatsAppChannel, old: &WhatsAppChannel| {
            claimant(&Operation::Update, Some("crm"), Some(new), Some(old))
        };

        // Other spec fields, labels, annotations, finalizers, status: not judged.
        let mut edited = a.clone();
        edited.spec.queue = Some("support".into());
        edited.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
        edited.metadata.annotations = Some([("note".to_owned(), "x".to_owned())].into());
        edited.metadata.finalizers = Some(vec!["whatsapp-operator.io/cleanup".into()]);
        assert_eq!(update(&edited, &a), None);
        let mut unfinalized = edited.clone();
        unfinalized.metadata.finalizers = None;
        assert_eq!(update(&unfinalized, &edited), None);
        // The number in another spelling is the same number.
        let mut spelled = a.clone();
        spelled.spec.phone_number = "+1 415 555 0100".into();
        assert_eq!(update(&spelled, &a), None);
        // A Business channel's binding is not scoped to its account.
        let mut other_account = a.clone();
        other_account.spec.twilio.account_sid = "AC00000000000000000000000000000009".into();
        assert_eq!(update(&other_account, &a), None);

        // A new number: judged.
        edited.spec.phone_number = "+14155550101".into();
        let c = update(&edited, &a).expect("checked");
        assert_eq!(c.binding_name(), "whatsapp-14155550101");
        assert!(c.created.is_some());
        // A new mode: judged (the sandbox binding is scoped to the account).
        let mut sandbox = a.clone();
        sandbox.spec.mode = crate::api::ChannelMode::Sandbox;
        let c = update(&sandbox, &a).expect("checked");
        assert_eq!(c.binding_name(), "whatsapp-14155550100-ac0123456789abcdef0123456789abcdef");
        assert!(update(&a, &sandbox).is_some(), "back to Business");
        // A Sandbox channel's new account: judged.
        let mut moved = sandbox.clone();
        moved.spec.twilio.account_sid = "AC00000000000000000000000000000009".into();
        assert!(update(&moved, &sandbox).is_some());
        // An old object whose number did not parse: judged.
        let mut broken = a.clone();
        broken.spec.phone_number = "not a number".into();
        assert!(update(&a, &broken).is_some());

        // An object being deleted: never judged (its finalizers may go).
        let mut deleting = edited.clone();
        deleting.metadata.deletion_timestamp = a.metadata.creation_timestamp.clone();
        assert_eq!(update(&deleting, &a), None);
    }

    #[test]
    fn only_the_numbers_binding_and_its_holder_count() {
        let a = channel("crm", "sales", "uid-a", NUMBER, "2024-01-01T00:00:00Z");
        let b = channel("other", "support", "uid-b", NUMBER, "2024-02-01T00:00:00Z");
        // A binding of another number, or a channel at another namespace/name as the holder.
        let elsewhere = channel("crm", "billing", "uid-x", "+14155550101", "2023-01-01T00:00:00Z");
        assert_eq!(judge(&create(&b), Some(&bound(&elsewhere)), Some(&elsewhere), &[&elsewhere]), Verdict::Allow);
        let impostor = channel("crm", "billing", "uid-a", NUMBER, "2025-01-01T00:00:00Z");
        assert_eq!(judge(&create(&b), Some(&bound(&a)), Some(&impostor), &[]), Verdict::Allow);
        // The claimant itself among the rivals (its stored, older self) does not count.
        let update = claimant(&Operation::Update, Some("other"), Some(&b), None).expect("claim");
        assert_eq!(judge(&update, None, None, &[&b]), Verdict::Allow);
    }

    #[test]
    fn a_dry_run_is_admitted_with_the_denial_as_a_warning() {
        assert_eq!(
            for_dry_run(Verdict::Deny("taken".into())),
            Verdict::Warn("the request would be rejected: taken".into())
        );
        assert_eq!(for_dry_run(Verdict::Allow), Verdict::Allow);
    }
}
