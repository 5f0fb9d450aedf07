//! The screen of `whatsapp-operator status`, as a pure function of what was read.

use std::fmt::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{PlannedChange, Route, WhatsAppChannel, WhatsAppNumberBinding};
use crate::controller::{clock, VERIFY_NOW_ANNOTATION};
use crate::twilio::redact_url;

/// How many of the channel's most recent Events are shown.
pub const EVENTS_SHOWN: usize = 10;

/// What the screen shows, as read from Kubernetes.
pub struct Snapshot {
    /// The channel.
    pub channel: WhatsAppChannel,
    /// The name of its number's binding (absent when the number does not parse).
    pub binding_name: Option<String>,
    /// The binding, if any, or why it could not be read.
    pub binding: Result<Option<WhatsAppNumberBinding>, String>,
    /// The channel's Events, or why they could not be read.
    pub events: Result<Vec<Event>, String>,
}

/// A compact age like kubectl's: `42s`, `5m`, `3h`, `2d`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn ago(t: &Timestamp, now: &Time) -> String {
    age(clock::between(&Time(*t), now))
}

fn url(u: Option<&str>) -> String {
    u.filter(|u| !u.is_empty()).map(redact_url).unwrap_or_else(|| "(none)".into())
}

fn route(r: &Route) -> String {
    let kind = serde_json::to_value(r.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let sid = r.sid.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
    let method = r.method.as_deref().map(|m| format!(" {m}")).unwrap_or_default();
    format!("{kind}{sid}{method} {}", url(r.url.as_deref()))
}

fn planned(c: &PlannedChange) -> String {
    let what = c.sid.as_deref().or(c.name.as_deref()).map(|w| format!(" {w}")).unwrap_or_default();
    let field = c.field.as_deref().map(|f| format!(" {f}:")).unwrap_or_default();
    let shown = |v: Option<&str>| url(v);
    format!("{:?} {}{what}{field} {} -> {}", c.action, c.kind, shown(c.from.as_deref()), shown(c.to.as_deref()))
}

/// The time an Event was last seen.
fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Renders the screen at `now`.
pub fn render(s: &Snapshot, now: &Time) -> String {
    let ch = &s.channel;
    let spec = &ch.spec;
    let status = ch.status.clone().unwrap_or_default();
    let mut out = String::new();
    let ns = ch.namespace().unwrap_or_default();
    let name = ch.name_any();
    let _ = writeln!(out, "WhatsAppChannel {ns}/{name}");
    let _ = writeln!(out, "  Number:    {} ({}), instance {}", spec.phone_number, spec.mode.as_str(), spec.instance);
    let suspended = if spec.suspend { ", suspended" } else { "" };
    let _ = writeln!(
        out,
        "  Policy:    managementPolicy {}, deletionPolicy {:?}{suspended}",
        spec.management_policy.as_str(),
        spec.deletion_policy
    );
    let phase = status.phase.map(|p| p.as_str()).unwrap_or("(none)");
    let generation = ch.metadata.generation.map(|g| g.to_string()).unwrap_or_else(|| "-".into());
    let observed = status.observed_generation.map(|g| g.to_string()).unwrap_or_else(|| "-".into());
    let stale = if status.observed_generation != ch.metadata.generation { " (status not caught up)" } else { "" };
    let _ = writeln!(out, "  Phase:     {phase} (generation {generation}, observed {observed}){stale}");
    let verified = status
        .last_verified_time
        .as_ref()
        .map(|t| format!("{} ({} ago)", t.0, ago(&t.0, now)))
        .unwrap_or_else(|| "never".into());
    let _ = writeln!(out, "  Verified:  {verified}");
    if let Some(a) = &status.account {
        let kind = a.type_.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
        let used = status
            .credentials
            .as_ref()
            .map(|c| format!(", credential {} {}", c.source.as_str(), c.fingerprint))
            .unwrap_or_default();
        let _ = writeln!(out, "  Account:   {}{kind}{used}", a.sid);
    }
    if let Some(v) = ch.annotations().get(VERIFY_NOW_ANNOTATION) {
        let state = if status.verify_now.as_deref() == Some(v.as_str()) { "answered" } else { "pending" };
        let _ = writeln!(out, "  VerifyNow: {v} ({state})");
    }

    let _ = writeln!(out, "\nConditions:");
    if status.conditions.is_empty() {
        let _ = writeln!(out, "  (none yet)");
    } else {
        let _ = writeln!(out, "  {:<18} {:<7} {:<32} {:<5} MESSAGE", "TYPE", "STATUS", "REASON", "AGE");
        for c in &status.conditions {
            let _ = writeln!(
                out,
                "  {:<18} {:<7} {:<32} {:<5} {}",
                c.type_,
                c.status,
                c.reason,
                ago(&c.last_transition_time.0, now),
                c.message
            );
        }
    }

    match &status.routing {
        Some(r) => {
            let _ = writeln!(out, "\nRouting at Twilio: {}", r.reason);
            let _ = writeln!(out, "  expected: {}", route(&r.expected));
            let _ = writeln!(out, "  actual:   {}", route(&r.actual));
        }
        None => {
            let _ = writeln!(out, "\nRouting at Twilio: (not verified yet)");
        }
    }
    if let Some(w) = &status.sender {
        let kind = serde_json::to_value(w.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let sid = w.sid.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
        let _ = writeln!(out, "  managed:  {kind}{sid} for {}", w.phone_number);
        let _ = writeln!(out, "    set by this channel: {}", url(w.configured_url.as_deref()));
        if let Some(p) = &w.pending_webhook_url {
            let _ = writeln!(out, "    about to be set:     {}", url(Some(p)));
        }
        let restore = match (spec.deletion_policy, &w.previous_webhook_url) {
            (crate::api::DeletionPolicy::Orphan, _) => "",
            _ if spec.management_policy == crate::api::ManagementPolicy::Observe => {
                ", left as is on deletion (Observe)"
            }
            (_, Some(_)) => ", restored on deletion",
            (_, None) => ", cleared on deletion",
        };
        let _ = writeln!(out, "    before this channel: {}{restore}", url(w.previous_webhook_url.as_deref()));
    }

    let _ = writeln!(out, "\nOwner:");
    match (&s.binding_name, &s.binding) {
        (None, _) => {
            let _ = writeln!(out, "  (no binding: spec.phoneNumber is not a valid number)");
        }
        (Some(b), Err(e)) => {
            let _ = writeln!(out, "  binding {b}: cannot read it: {e}");
        }
        (Some(b), Ok(None)) => {
            let why = if spec.management_policy == crate::api::ManagementPolicy::Observe {
                "managementPolicy Observe claims nothing"
            } else {
                "not claimed yet"
            };
            let _ = writeln!(out, "  binding {b}: none; the number is free ({why})");
        }
        (Some(b), Ok(Some(binding))) => {
            let r = &binding.spec.channel_ref;
            let mine = ch.uid().as_deref() == Some(r.uid.as_str());
            let who = if mine { "this channel" } else { "ANOTHER channel: this one cannot use the number" };
            let _ = writeln!(
                out,
                "  binding {b}: held by {}/{} ({who}), instance {}",
                r.namespace, r.name, binding.spec.instance
            );
        }
    }
    let ownership = status.ownership.clone().unwrap_or_default();
    let marker = ownership.owner.as_deref().unwrap_or("none (the webhook URL carries no ownership marker)");
    let _ = writeln!(out, "  marker at Twilio: {marker}");
    for h in &ownership.history {
        let before = h.previous_owner.as_deref().map(|p| format!(", before: {p}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "    {} ago: {}/{}/{} took the number{before}",
            ago(&h.time.0, now),
            h.cluster,
            h.channel,
            h.instance
        );
    }

    if !status.planned_changes.is_empty() {
        let _ = writeln!(out, "\nPlanned changes (managementPolicy Observe; Manage applies them):");
        for c in &status.planned_changes {
            let _ = writeln!(out, "  {}", planned(c));
        }
    } else if spec.management_policy == crate::api::ManagementPolicy::Observe {
        let _ = writeln!(out, "\nPlanned changes: none (Twilio is as the spec asks)");
    }

    let _ = writeln!(out, "\nConfirmation:");
    match (&status.confirmation, &spec.confirmation_phone_number) {
        (Some(c), _) => {
            let sid = c.message_sid.as_deref().unwrap_or("(no SID yet)");
            let state = c.status.as_deref().unwrap_or("unknown");
            let code = c.error_code.map(|e| format!(", Twilio error {e}")).unwrap_or_default();
            let when = c
                .sent_time
                .as_ref()
                .or(c.requested_time.as_ref())
                .map(|t| format!(", {} ({} ago)", t.0, ago(&t.0, now)))
                .unwrap_or_default();
            let _ = writeln!(out, "  to {} from {}: message {sid}, {state}{code}{when}", c.to, c.from);
            let content = match &c.content_sid {
                Some(t) => format!("template {t}"),
                None => "free text".to_owned(),
            };
            let reference = c.reference.as_deref().map(|r| format!(", reference {r}")).unwrap_or_default();
            let _ = writeln!(out, "  content:   {content}{reference}");
        }
        (None, Some(to)) => {
            let _ = writeln!(out, "  to {to}: not sent yet");
        }
        (None, None) => {
            let _ = writeln!(out, "  (none asked: spec.confirmationPhoneNumber is not set)");
        }
    }
    if spec.confirmation_phone_number.is_some() {
        if let Some(t) = spec.confirmation.as_ref().and_then(|c| c.template.as_ref()) {
            let _ = writeln!(out, "  spec:      template {}", t.content_sid);
        }
        let delivery = status.conditions.iter().find(|c| c.type_ == "ConfirmationDelivered");
        match delivery {
            Some(d) => {
                let _ = writeln!(out, "  delivery:  {} {}: {}", d.status, d.reason, d.message);
            }
            None => {
                let _ = writeln!(out, "  delivery:  (not known yet)");
            }
        }
    }

    match &s.events {
        Err(e) => {
            let _ = writeln!(out, "\nEvents: cannot list them: {e}");
        }
        Ok(events) if events.is_empty() => {
            let _ = writeln!(out, "\nEvents: (none)");
        }
        Ok(events) => {
            let mut sorted: Vec<&Event> = events.iter().collect();
            sorted.sort_by_key(|e| event_time(e));
            let shown = &sorted[sorted.len().saturating_sub(EVENTS_SHOWN)..];
            let _ = writeln!(out, "\nEvents (last {} of {}):", shown.len(), sorted.len());
            let _ = writeln!(out, "  {:<5} {:<8} {:<28} {:<5} MESSAGE", "AGE", "TYPE", "REASON", "COUNT");
            for e in shown {
                let when = event_time(e).map(|t| ago(&t, now)).unwrap_or_else(|| "-".into());
                let count = e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1);
                let _ = writeln!(
                    out,
                    "  {:<5} {:<8} {:<28} {:<5} {}",
                    when,
                    e.type_.as_deref().unwrap_or("-"),
                    e.reason.as_deref().unwrap_or("-"),
                    count,
                    e.message.as_deref().unwrap_or("")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChangeAction, ManagementPolicy, Phase, RouteKind, RoutingStatus, WhatsAppChannelStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("time"))
    }

    fn channel() -> WhatsAppChannel {
        let spec = serde_json::from_value(serde_json::json!({
            "phoneNumber": "+14155550100",
            "instance": "crm-prod",
            "twilio": {"accountSid": "AC5eed5eed5eed5eed5eed5eed5eed5eed", "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": "https://crm.example.com/hook"},
            "managementPolicy": "Observe",
        }))
        .expect("spec");
        let mut ch = WhatsAppChannel::new("sales", spec);
        ch.metadata.namespace = Some("crm".into());
        ch.metadata.uid = Some("uid-1".into());
        ch.metadata.generation = Some(2);
        ch
    }

    #[test]
    fn an_observed_channel_shows_its_plan_and_an_unclaimed_number() {
        let mut ch = channel();
        assert_eq!(ch.spec.management_policy, ManagementPolicy::Observe);
        let route = |url: Option<&str>| Route {
            kind: RouteKind::WhatsAppSender,
            sid: Some("XE1".into()),
            url: url.map(Into::into),
            method: Some("POST".into()),
        };
        ch.status = Some(WhatsAppChannelStatus {
            observed_generation: Some(2),
            phase: Some(Phase::Planned),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "ChangesPlanned".into(),
                message: "1 change planned".into(),
                observed_generation: Some(2),
                last_transition_time: t(1000),
            }],
            routing: Some(RoutingStatus {
                expected: route(Some("https://crm.example.com/hook")),
                actual: route(None),
                reason: "ChangesPlanned".into(),
            }),
            ownership: Some(crate::api::OwnershipStatus {
                owner: Some("c1/crm/sales/crm-prod".into()),
                history: vec![crate::api::OwnerChange {
                    time: t(700),
                    cluster: "c1".into(),
                    channel: "crm/sales".into(),
                    instance: "crm-prod".into(),
                    previous_owner: Some("c0/crm/old/crm-test".into()),
                    generation: Some(1),
                }],
            }),
            planned_changes: vec![PlannedChange {
                action: ChangeAction::Update,
                kind: "WhatsAppSender".into(),
                sid: Some("XE1".into()),
                name: None,
                field: Some("webhook.callback_url".into()),
                from: Some("https://admin:s3cret@old.example.com/x".into()),
                to: Some("https://crm.example.com/hook".into()),
            }],
            ..Default::default()
        });
        let snap = Snapshot {
            channel: ch,
            binding_name: Some("whatsapp-14155550100".into()),
            binding: Ok(None),
            events: Ok(vec![]),
        };
        let out = render(&snap, &t(1300));
        for want in [
            "WhatsAppChannel crm/sales",
            "managementPolicy Observe",
            "Phase:     Planned (generation 2, observed 2)",
            "Ready              False   ChangesPlanned                   5m    1 change planned",
            "Routing at Twilio: ChangesPlanned",
            "  expected: WhatsAppSender XE1 POST https://crm.example.com/hook",
            "  actual:   WhatsAppSender XE1 POST (none)",
            "binding whatsapp-14155550100: none; the number is free (managementPolicy Observe claims nothing)",
            "Update WhatsAppSender XE1 webhook.callback_url: https://***@old.example.com/x -> https://crm.example.com/hook",
            "  marker at Twilio: c1/crm/sales/crm-prod",
            "    10m ago: c1/crm/sales/crm-prod took the number, before: c0/crm/old/crm-test",
            "Events: (none)",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("s3cret"), "userinfo is redacted:\n{out}");
    }

    #[test]
    fn the_confirmation_shows_its_template_reference_and_delivery() {
        let mut ch = channel();
        ch.spec.confirmation_phone_number = Some("+14155550123".into());
        ch.spec.confirmation = serde_json::from_value(serde_json::json!({
            "template": {"contentSid": "HX00000000000000000000000000000011", "referenceVariable": "2"}
        }))
        .expect("confirmation");
        ch.status = Some(WhatsAppChannelStatus {
            conditions: vec![Condition {
                type_: "ConfirmationDelivered".into(),
                status: "False".into(),
                reason: "OutsideSessionWindow".into(),
                message: "outside the 24-hour window: set spec.confirmation.template".into(),
                observed_generation: Some(2),
                last_transition_time: t(1000),
            }],
            confirmation: Some(crate::api::ConfirmationStatus {
                to: "+14155550123".into(),
                from: "+14155550100".into(),
                requested_time: Some(t(1000)),
                message_sid: Some("SM1".into()),
                sent_time: Some(t(1000)),
                status: Some("failed".into()),
                error_code: Some(63016),
                resend_token: None,
                content_sid: None,
                reference: Some("wao-0123456789ab".into()),
            }),
            ..Default::default()
        });
        let snap = Snapshot { channel: ch, binding_name: None, binding: Ok(None), events: Ok(vec![]) };
        let out = render(&snap, &t(1300));
        for want in [
            "  to +14155550123 from +14155550100: message SM1, failed, Twilio error 63016",
            "  content:   free text, reference wao-0123456789ab",
            "  spec:      template HX00000000000000000000000000000011",
            "  delivery:  False OutsideSessionWindow: outside the 24-hour window: set spec.confirmation.template",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn the_account_and_the_credential_in_use_are_shown() {
        let mut ch = channel();
        ch.status = Some(crate::api::WhatsAppChannelStatus {
            account: Some(crate::api::AccountStatus {
                sid: "AC5eed5eed5eed5eed5eed5eed5eed5eed".into(),
                type_: Some("Trial".into()),
                ..Default::default()
            }),
            credentials: Some(crate::api::CredentialsStatus {
                source: crate::api::CredentialSource::Secondary,
                fingerprint: "sha256:0123456789ab".into(),
            }),
            ..Default::default()
        });
        let snapshot = Snapshot { channel: ch, binding_name: None, binding: Ok(None), events: Ok(Vec::new()) };
        let text = render(&snapshot, &t(1_800_000_000));
        assert!(
            text.contains(
                "  Account:   AC5eed5eed5eed5eed5eed5eed5eed5eed (Trial), credential secondary sha256:0123456789ab"
            ),
            "{text}"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(Duration::from_secs(42)), "42s");
        assert_eq!(age(Duration::from_secs(300)), "5m");
        assert_eq!(age(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(age(Duration::from_secs(3 * 86_400)), "3d");
    }
}
