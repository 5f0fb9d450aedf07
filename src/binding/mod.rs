//! One number, one instance: the atomic claim of a number by one `WhatsAppChannel`.
//!
//! A claim is a cluster-scoped `WhatsAppNumberBinding` named after the normalized number. The API
//! server creates an object of a given name at most once, so of any number of racing channels
//! (and operator processes) exactly one wins; the others see who holds the number.

use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::api::binding::ChannelReference;
use crate::api::{ChannelMode, WhatsAppChannel, WhatsAppNumberBinding, WhatsAppNumberBindingSpec};
use crate::twilio::E164;

/// The result of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This channel holds the number.
    Held,
    /// Another channel holds it.
    HeldBy {
        /// The holder.
        holder: ChannelReference,
        /// The holder's application instance.
        instance: String,
    },
}

/// The binding's object name for a normalized number: `whatsapp-` and the digits. Twilio's
/// sandbox number is shared by every Twilio account, and each account has a sandbox of its own,
/// so a sandbox binding is scoped to the account (`sandbox_account`).
pub fn binding_name(number: &E164, sandbox_account: Option<&str>) -> String {
    let digits = number.as_str().trim_start_matches('+');
    match sandbox_account {
        Some(account) => format!("whatsapp-{digits}-{}", account.to_ascii_lowercase()),
        None => format!("whatsapp-{digits}"),
    }
}

/// The account a channel's binding is scoped to: its account in `Sandbox` mode, none otherwise.
pub fn scope(ch: &WhatsAppChannel) -> Option<&str> {
    (ch.spec.mode == ChannelMode::Sandbox).then_some(ch.spec.twilio.account_sid.as_str())
}

/// This channel as a binding holder.
pub fn channel_ref(ch: &WhatsAppChannel) -> Option<ChannelReference> {
    Some(ChannelReference { namespace: ch.namespace()?, name: ch.name_any(), uid: ch.uid()? })
}

/// The binding by which `ch` holds `number` (`None` for a channel without namespace or uid,
/// which the API server always sets).
pub fn binding_for(ch: &WhatsAppChannel, number: &E164) -> Option<WhatsAppNumberBinding> {
    Some(WhatsAppNumberBinding::new(
        &binding_name(number, scope(ch)),
        WhatsAppNumberBindingSpec {
            phone_number: number.as_str().to_owned(),
            instance: ch.spec.instance.clone(),
            channel_ref: channel_ref(ch)?,
        },
    ))
}

/// Claims `number` for `ch`. A binding left by a channel that no longer exists, or that has moved
/// to another number, is removed (with a UID precondition, so only that stale binding) and the
/// claim retried.
pub async fn claim(client: &Client, ch: &WhatsAppChannel, number: &E164) -> Result<Claim, kube::Error> {
    let Some(desired) = binding_for(ch, number) else {
        return Err(kube::Error::Service("channel has no namespace or uid".into()));
    };
    let me = desired.spec.channel_ref.clone();
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let name = desired.name_any();
    for _ in 0..3 {
        // Read first: a channel that already holds its number makes no write (nor a failed
        // create) on every reconcile.
        let Some(existing) = api.get_opt(&name).await? else {
            match api.create(&PostParams::default(), &desired).await {
                Ok(_) => return Ok(Claim::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
        };
        let holder = &existing.spec.channel_ref;
        if holder.uid == me.uid {
            if existing.spec.instance != ch.spec.instance {
                let mut updated = existing.clone();
                updated.spec.instance = ch.spec.instance.clone();
                api.replace(&name, &PostParams::default(), &updated).await?;
            }
            return Ok(Claim::Held);
        }
        if holder_is_current(client, holder, number, scope(ch)).await? {
            return Ok(Claim::HeldBy { holder: holder.clone(), instance: existing.spec.instance.clone() });
        }
        tracing::info!(binding = %name, holder = %format!("{}/{}", holder.namespace, holder.name), "removing a stale number binding");
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: existing.uid(), resource_version: existing.resource_version() }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    // Lost three races in a row: report whoever holds it now.
    let existing = api.get(&name).await?;
    Ok(Claim::HeldBy { holder: existing.spec.channel_ref.clone(), instance: existing.spec.instance.clone() })
}

/// Whether the binding's holder still exists (same UID) and still asks for this number. A holder
/// being deleted still holds the number: its cleanup (restoring the webhook) must finish first,
/// and releasing the binding then wakes the channels waiting for it.
async fn holder_is_current(
    client: &Client,
    holder: &ChannelReference,
    number: &E164,
    scope_account: Option<&str>,
) -> Result<bool, kube::Error> {
    let channels: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &holder.namespace);
    let current = channels.get_opt(&holder.name).await?;
    Ok(is_current_holder(holder, current.as_ref(), number, scope_account))
}

/// Whether a binding's `holder` still holds `number` (in `scope_account`, see [`scope`]), given
/// `current`: the channel now at the holder's namespace/name, if any. It holds the number while it
/// is the same channel (same UID) and still asks for that number. Pure; [`claim`] and the
/// admission webhook share it.
pub fn is_current_holder(
    holder: &ChannelReference,
    current: Option<&WhatsAppChannel>,
    number: &E164,
    scope_account: Option<&str>,
) -> bool {
    let Some(ch) = current else {
        return false;
    };
    ch.uid().as_deref() == Some(holder.uid.as_str())
        && ch.namespace().as_deref() == Some(holder.namespace.as_str())
        && ch.name_any() == holder.name
        && E164::parse(&ch.spec.phone_number).is_ok_and(|n| &n == number)
        && scope(ch) == scope_account
}

/// Whether `ch` holds the binding of `number` (scoped as [`binding_name`] says).
pub async fn is_held_by(
    client: &Client,
    ch: &WhatsAppChannel,
    number: &E164,
    sandbox_account: Option<&str>,
) -> Result<bool, kube::Error> {
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let b = api.get_opt(&binding_name(number, sandbox_account)).await?;
    Ok(b.is_some_and(|b| Some(b.spec.channel_ref.uid.as_str()) == ch.uid().as_deref()))
}

/// Releases `number` if `ch` holds it; a binding held by another channel is left alone.
/// `sandbox_account` is the account the binding was scoped to (see [`binding_name`]).
pub async fn release(
    client: &Client,
    ch: &WhatsAppChannel,
    number: &E164,
    sandbox_account: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let name = binding_name(number, sandbox_account);
    let Some(existing) = api.get_opt(&name).await? else {
        return Ok(());
    };
    if Some(existing.spec.channel_ref.uid.as_str()) != ch.uid().as_deref() {
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: existing.uid(), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_names_come_from_the_normalized_number() {
        for spelling in ["+1 (415) 555-0100", "whatsapp:+14155550100", "+1-415-555-0100", "+14155550100"] {
            let n = E164::parse(spelling).expect("valid");
            assert_eq!(binding_name(&n, None), "whatsapp-14155550100", "{spelling}");
        }
        let sandbox = E164::parse("+14155238886").expect("valid");
        assert_eq!(
            binding_name(&sandbox, Some("AC5EED5eed5eed5eed5eed5eed5eed5eed")),
            "whatsapp-14155238886-ac5eed5eed5eed5eed5eed5eed5eed5eed"
        );
    }
}
