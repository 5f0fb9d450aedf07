//! Ownership of a number at Twilio, as the marker on its webhook URL tells it: the owner shown in
//! `status.ownership`, and its history (the owner changes this channel made or saw), each with
//! an `OwnerChanged` Event.

use kube::runtime::events::EventType;
use kube::ResourceExt;

use crate::api::{OwnerChange, OwnershipStatus, Reason};
use crate::controller::owner::{self, Owner};
use crate::twilio::E164;

use super::report::Builder;
use super::Input;

/// How many owner changes `status.ownership.history` keeps.
pub const HISTORY: usize = 5;

/// This channel, as its marker names it.
pub(super) fn me(input: Input<'_>) -> Owner {
    let ch = input.ch;
    Owner {
        cluster: input.config.cluster_id.clone(),
        namespace: ch.namespace().unwrap_or_default(),
        name: ch.name_any(),
        instance: ch.spec.instance.clone(),
    }
}

fn entry_owner(e: &OwnerChange) -> Owner {
    let (namespace, name) = e.channel.split_once('/').unwrap_or(("", &e.channel));
    Owner {
        cluster: e.cluster.clone(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        instance: e.instance.clone(),
    }
}

fn last(b: &Builder<'_>) -> Option<OwnerChange> {
    b.status.ownership.as_ref().and_then(|o| o.history.last().cloned())
}

fn push(b: &mut Builder<'_>, new: &Owner, previous: Option<&Owner>) {
    let entry = OwnerChange {
        time: b.input.now.clone(),
        cluster: new.cluster.clone(),
        channel: new.channel(),
        instance: new.instance.clone(),
        previous_owner: previous.map(Owner::to_string),
        generation: b.input.ch.metadata.generation,
    };
    let o = b.status.ownership.get_or_insert_with(OwnershipStatus::default);
    o.history.push(entry);
    let excess = o.history.len().saturating_sub(HISTORY);
    o.history.drain(..excess);
}

/// Records in the status that `owner` (if any) owns the number now.
pub(super) fn show(b: &mut Builder<'_>, owner: Option<&Owner>) {
    let o = b.status.ownership.get_or_insert_with(OwnershipStatus::default);
    o.owner = owner.map(Owner::to_string);
}

/// Notices that another owner (`current`) took the number from this channel (whose marker is on
/// one of `ours`, the URLs it set): records it once, with a Warning Event. True when the owner at
/// Twilio took it from this channel (now or in an earlier pass).
pub(super) fn observe_loss(b: &mut Builder<'_>, me: &Owner, current: Option<&Owner>, ours: &[String]) -> bool {
    // Another cluster only: within this one the binding decides, and this channel holds it.
    let Some(current) = current.filter(|c| c.cluster != me.cluster) else {
        return false;
    };
    let last = last(b);
    if let Some(l) = &last {
        if entry_owner(l).same_channel(current) {
            return l.previous_owner.as_deref().and_then(Owner::parse).is_some_and(|p| p.same_channel(me));
        }
    }
    let had_it = ours.iter().any(|u| owner::read(u).owner.is_some_and(|o| o.same_channel(me)));
    if !had_it {
        return false;
    }
    push(b, current, Some(me));
    let number = &b.input.ch.spec.phone_number;
    b.note(
        EventType::Warning,
        Reason::OwnerChanged,
        format!(
            "{current} (cluster {}, channel {}) took {number} from this channel",
            current.cluster,
            current.channel()
        ),
    );
    true
}

/// The owner that took the number from this channel since its spec last changed: the last
/// history entry, when it records a loss at the channel's current generation.
pub(super) fn lost_to(b: &Builder<'_>, me: &Owner) -> Option<Owner> {
    let l = last(b)?;
    let from_me = l.previous_owner.as_deref().and_then(Owner::parse).is_some_and(|p| p.same_channel(me));
    (from_me && l.generation == b.input.ch.metadata.generation).then(|| entry_owner(&l))
}

/// Records that this channel owns the number now (its marked URL is, or is being, written);
/// `previous` is the owner whose marker it replaced. A change is recorded once, with an
/// `OwnerChanged` Event (a first claim of an unmarked number: in the write's `Configured` Event).
pub(super) fn gained(b: &mut Builder<'_>, me: &Owner, previous: Option<&Owner>, number: &E164) {
    show(b, Some(me));
    if last(b).is_some_and(|l| entry_owner(&l).same_channel(me)) {
        return;
    }
    push(b, me, previous);
    // A first claim of a number nobody marked is told by the write's own Event.
    if previous.is_none() {
        if let Some(n) =
            b.notes.iter_mut().rev().find(|n| matches!(n.reason, Reason::Configured | Reason::WebhookRestored))
        {
            n.message.push_str(&format!("; owner marker {me}"));
            return;
        }
    }
    let was = previous.map_or_else(|| "no marked owner".to_owned(), Owner::to_string);
    b.note(EventType::Normal, Reason::OwnerChanged, format!("{me} owns {number} now (was {was})"));
}
