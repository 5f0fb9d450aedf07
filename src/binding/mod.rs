//! One number, one instance: the atomic claim of a number by one `WhatsAppChannel`.
//!
//! A claim is a cluster-scoped `WhatsAppNumberBinding` named after the normalized number. The API
//! server creates an object of a given name at most once, so of any number of racing channels
//! (and operator processes) exactly one wins; the others see who holds the number. What a
//! binding means is decided purely ([`state`], [`is_current_holder`]) from the operator's caches;
//! the writes are a create, an exact delete (UID and resourceVersion preconditions) and an
//! instance update.

use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::api::binding::ChannelReference;
use crate::api::{ChannelMode, WhatsAppChannel, WhatsAppNumberBinding, WhatsAppNumberBindingSpec};
use crate::twilio::E164;

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

/// What the binding of a number means for a channel that wants it (see [`state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingState {
    /// No binding: the number is free to claim.
    Free,
    /// This channel holds the number; `instance_stale` says the binding names another instance.
    Mine {
        /// The binding's instance differs from the channel's.
        instance_stale: bool,
    },
    /// Another channel holds the number.
    HeldBy {
        /// The holder.
        holder: ChannelReference,
        /// The holder's application instance.
        instance: String,
    },
    /// The holder is gone, or neither asks for the number nor is still wired to it: the binding
    /// may be removed (exactly that binding: its UID and resourceVersion).
    Stale {
        /// The stale binding's UID.
        uid: String,
        /// Its resourceVersion.
        resource_version: Option<String>,
        /// The holder it names.
        holder: ChannelReference,
    },
}

/// Decides what `existing` (the binding of `number`, from the store) means for `me`, given
/// `holder_now`: the channel at the binding holder's namespace/name, from the store. Pure.
pub fn state(
    existing: Option<&WhatsAppNumberBinding>,
    holder_now: Option<&WhatsAppChannel>,
    me: &WhatsAppChannel,
    number: &E164,
) -> BindingState {
    let Some(existing) = existing else {
        return BindingState::Free;
    };
    let holder = &existing.spec.channel_ref;
    if Some(holder.uid.as_str()) == me.uid().as_deref() {
        return BindingState::Mine { instance_stale: existing.spec.instance != me.spec.instance };
    }
    let scope_account = existing_scope(existing);
    if is_current_holder(holder, holder_now, number, scope_account.as_deref()) {
        return BindingState::HeldBy { holder: holder.clone(), instance: existing.spec.instance.clone() };
    }
    BindingState::Stale {
        uid: existing.uid().unwrap_or_default(),
        resource_version: existing.resource_version(),
        holder: holder.clone(),
    }
}

/// The sandbox account a binding is scoped to, read back from its name.
fn existing_scope(b: &WhatsAppNumberBinding) -> Option<String> {
    let name = b.name_any();
    let digits = b.spec.phone_number.trim_start_matches('+');
    name.strip_prefix(&format!("whatsapp-{digits}-")).map(str::to_owned)
}

/// The outcome of a create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The binding was created: this channel holds the number.
    Held,
    /// A binding of that name exists already (another channel won, or the store lags behind).
    Exists,
}

/// Creates `desired`. Of racing creates the API server admits exactly one.
pub async fn create(client: &Client, desired: &WhatsAppNumberBinding) -> Result<Created, kube::Error> {
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    match api.create(&PostParams::default(), desired).await {
        Ok(_) => Ok(Created::Held),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Created::Exists),
        Err(e) => Err(e),
    }
}

/// Deletes binding `name` if it is still the object with `uid` (and `resource_version`, when
/// given); a binding already gone or replaced is left alone.
pub async fn delete_exact(
    client: &Client,
    name: &str,
    uid: &str,
    resource_version: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: resource_version.map(str::to_owned),
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Points binding `name` (held by this channel) at `instance`.
pub async fn set_instance(client: &Client, name: &str, instance: &str) -> Result<(), kube::Error> {
    let api: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"instance": instance}});
    api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    Ok(())
}

/// Whether a binding's `holder` still holds `number` (in `scope_account`, see [`scope`]), given
/// `current`: the channel now at the holder's namespace/name, if any. It holds the number while it
/// is the same channel (same UID) and either still asks for that number or is still wired to it
/// (its status records the number: a channel moving to another number keeps the old one until it
/// has restored that number's webhook and released it). Pure; claims and the admission webhook
/// share it.
pub fn is_current_holder(
    holder: &ChannelReference,
    current: Option<&WhatsAppChannel>,
    number: &E164,
    scope_account: Option<&str>,
) -> bool {
    let Some(ch) = current else {
        return false;
    };
    let same = ch.uid().as_deref() == Some(holder.uid.as_str())
        && ch.namespace().as_deref() == Some(holder.namespace.as_str())
        && ch.name_any() == holder.name;
    if !same {
        return false;
    }
    let scope_of = |account: Option<&str>| account.map(str::to_ascii_lowercase);
    let asks = E164::parse(&ch.spec.phone_number).is_ok_and(|n| &n == number)
        && scope_of(scope(ch)) == scope_of(scope_account);
    asks || wired_to(ch, number, scope_account)
}

/// Whether `ch`'s status says it is wired to `number` (in `scope_account`): set when it
/// configured the number, cleared only once it released it.
pub fn wired_to(ch: &WhatsAppChannel, number: &E164, scope_account: Option<&str>) -> bool {
    let Some(status) = ch.status.as_ref() else {
        return false;
    };
    let Some(sender) = status.sender.as_ref() else {
        return false;
    };
    let wired_scope = match sender.kind {
        crate::api::SenderKind::Sandbox => status.account.as_ref().map(|a| a.sid.to_ascii_lowercase()),
        _ => None,
    };
    E164::parse(&sender.phone_number).is_ok_and(|n| &n == number)
        && wired_scope == scope_account.map(str::to_ascii_lowercase)
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
