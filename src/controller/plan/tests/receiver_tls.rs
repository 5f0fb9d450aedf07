//! `ReceiverTLS` in a pass: asked for only with the watch on, informational (never blocks
//! Ready), one Warning Event when it turns False, kept by a pass that stops before it.

use super::*;
use crate::controller::receiver_tls::ReceiverTls;

fn watching() -> PlanConfig {
    PlanConfig { receiver_tls_warn: Some(Duration::from_secs(14 * 86_400)), ..config() }
}

fn expiring() -> ReceiverTls {
    // NOW + 3 days.
    ReceiverTls::Verified { not_after: chrono::DateTime::from_timestamp(NOW + 3 * 86_400, 0).expect("time") }
}

#[test]
fn the_watch_is_off_by_default_and_asks_nothing() {
    let (p, reads) = run(&channel(), &cluster(), &Twilio::default(), vec![]);
    assert!(!reads.contains(&Read::ReceiverTls));
    assert!(cond(&p, "ReceiverTLS").is_none());
}

#[test]
fn an_expiring_certificate_warns_once_without_blocking_ready() {
    let tw = Twilio { receiver_tls: Some(expiring()), ..Twilio::default() };
    let (p, reads) = run_with(&channel(), &cluster(), &tw, vec![], watching());
    assert_eq!(reads.first(), Some(&Read::ReceiverTls), "the handshake comes first: {reads:?}");
    assert_eq!(reason(&p, "ReceiverTLS"), "False/CertificateExpiring");
    assert_eq!(reason(&p, "Ready"), "True/ChannelReady");
    let warnings: Vec<_> = p.events.iter().filter(|n| n.reason == Reason::CertificateExpiring).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].type_, EventType::Warning);

    // Still expiring at the next verification: no second Event.
    let mut ch = channel();
    ch.status = Some(p.status.clone());
    ch.status.as_mut().expect("status").last_verified_time = Some(time(NOW - 3600));
    let (p, _) = run_with(&ch, &cluster(), &tw, vec![], watching());
    assert_eq!(reason(&p, "ReceiverTLS"), "False/CertificateExpiring");
    assert!(p.events.iter().all(|n| n.reason != Reason::CertificateExpiring), "{:?}", p.events);
}

#[test]
fn a_pass_that_stops_early_keeps_the_last_receiver_condition() {
    let tw = Twilio { receiver_tls: Some(expiring()), ..Twilio::default() };
    let (p, _) = run_with(&channel(), &cluster(), &tw, vec![], watching());
    let mut ch = channel();
    ch.status = Some(p.status.clone());
    let mut cl = cluster();
    cl.secret.credentials = Err(SecretProblem { reason: Reason::SecretNotFound, message: "gone".into() });
    let (p, reads) = run_with(&ch, &cl, &tw, vec![], watching());
    assert!(reads.is_empty(), "{reads:?}");
    assert_eq!(reason(&p, "CredentialsValid"), "False/SecretNotFound");
    assert_eq!(reason(&p, "ReceiverTLS"), "False/CertificateExpiring");
}
