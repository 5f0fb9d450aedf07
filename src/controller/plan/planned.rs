//! `managementPolicy: Observe`: the plan's writes rendered as `status.plannedChanges` instead of
//! run. The plan itself is the one `Manage` would run (same decisions, same steps); only the
//! executor's part is replaced by this rendering, so that switching to `Manage` makes exactly
//! the writes listed here (as long as Twilio and the cluster stay as they were observed).

use crate::api::{ChangeAction, PlannedChange};
use crate::controller::protection;
use crate::twilio::redact_url;

use super::{Step, Target, WebhookWrite};

/// The changes `steps` would make. `seen`: the Twilio objects the pass read, whose current
/// values are the changes' `from`.
pub(super) fn render(steps: &[Step], seen: &[Target], namespace: &str) -> Vec<PlannedChange> {
    steps.iter().flat_map(|s| render_step(s, seen, namespace)).collect()
}

/// The changes planned earlier, with `fresh` ones (from a pass that did not verify again)
/// replacing those on the same object and field, or added at the end.
pub(super) fn merge(old: &[PlannedChange], fresh: Vec<PlannedChange>) -> Vec<PlannedChange> {
    let same = |a: &PlannedChange, b: &PlannedChange| {
        (a.action, &a.kind, &a.sid, &a.name, &a.field) == (b.action, &b.kind, &b.sid, &b.name, &b.field)
    };
    let mut merged = old.to_vec();
    for f in fresh {
        match merged.iter_mut().find(|o| same(o, &f)) {
            Some(o) => *o = f,
            None => merged.push(f),
        }
    }
    merged
}

fn change(action: ChangeAction, kind: &str) -> PlannedChange {
    PlannedChange { action, kind: kind.to_owned(), sid: None, name: None, field: None, from: None, to: None }
}

fn render_step(step: &Step, seen: &[Target], namespace: &str) -> Vec<PlannedChange> {
    use ChangeAction::*;
    const BINDING: &str = "WhatsAppNumberBinding";
    match step {
        Step::Record(_) => Vec::new(),
        Step::DeleteStaleBinding { name, .. } | Step::Release(super::HeldBinding { name, .. }) => {
            vec![PlannedChange { name: Some(name.clone()), ..change(Delete, BINDING) }]
        }
        Step::Claim { name, spec } => vec![PlannedChange {
            name: Some(name.clone()),
            field: Some("spec.channelRef".into()),
            to: Some(format!("{}/{} (instance {})", spec.channel_ref.namespace, spec.channel_ref.name, spec.instance)),
            ..change(Create, BINDING)
        }],
        Step::SetInstance { name, instance } => vec![PlannedChange {
            name: Some(name.clone()),
            field: Some("spec.instance".into()),
            to: Some(instance.clone()),
            ..change(Update, BINDING)
        }],
        Step::ProtectSecret { name } => vec![PlannedChange {
            name: Some(format!("{namespace}/{name}")),
            field: Some("metadata.finalizers".into()),
            to: Some(protection::SECRET_FINALIZER.to_owned()),
            ..change(Update, "Secret")
        }],
        Step::SetWebhook(w) | Step::RestoreWebhook(w) => webhook(w, seen),
        Step::SendMessage(m) => vec![PlannedChange {
            field: Some("to".into()),
            to: Some(m.to.clone()),
            from: None,
            ..change(Create, "Message")
        }],
    }
}

/// A webhook write as field changes: the URL, and the method when it changes too.
fn webhook(w: &WebhookWrite, seen: &[Target]) -> Vec<PlannedChange> {
    let (kind, sid, url, method, url_field, method_field) = match w {
        WebhookWrite::Sender { sid, webhook } => (
            "WhatsAppSender",
            sid,
            webhook.callback_url.clone().unwrap_or_default(),
            webhook.callback_method.unwrap_or_default().as_str().to_owned(),
            "webhook.callback_url",
            "webhook.callback_method",
        ),
        WebhookWrite::Number { sid, url, method } => {
            ("IncomingPhoneNumber", sid, url.clone(), method.as_str().to_owned(), "sms_url", "sms_method")
        }
        WebhookWrite::Service { sid, url, method } => {
            ("MessagingService", sid, url.clone(), method.as_str().to_owned(), "inbound_request_url", "inbound_method")
        }
    };
    let (from_url, from_method) = seen.iter().find(|t| t.sid() == sid).map(Target::hook).unwrap_or_default();
    // Userinfo someone put in a URL at Twilio stays out of the status (unlike
    // `sender.previousWebhookUrl`, a plan need not be restorable).
    let some = |s: String| Some(s).filter(|s| !s.is_empty()).map(|s| redact_url(&s));
    let field = |field: &str, from: String, to: String| PlannedChange {
        sid: Some(sid.clone()),
        field: Some(field.to_owned()),
        from: some(from),
        to: some(to),
        ..change(ChangeAction::Update, kind)
    };
    let method_changes = !from_method.is_empty() && from_method != method;
    let mut changes = Vec::new();
    if from_url != url || !method_changes {
        changes.push(field(url_field, from_url, url));
    }
    if method_changes {
        changes.push(field(method_field, from_method, method));
    }
    changes
}
