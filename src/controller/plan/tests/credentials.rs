//! Which credential verified: `status.credentials`, the Event when it changes, a Trial account,
//! and a confirmation to a recipient a Trial account may not message (21608).

use super::*;
use crate::api::{CredentialSource, CredentialsStatus};
use crate::twilio::AccountType;

fn used(source: CredentialSource, fingerprint: &str) -> CredentialsStatus {
    CredentialsStatus { source, fingerprint: fingerprint.into() }
}

fn events(p: &Plan, r: Reason) -> Vec<&Note> {
    p.events.iter().filter(|n| n.reason == r).collect()
}

#[test]
fn the_credential_that_verified_is_recorded_and_a_change_is_an_event() {
    let tw = Twilio { credential: Some(used(CredentialSource::Primary, "sha256:aaaaaaaaaaaa")), ..Twilio::default() };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(p.status.credentials, tw.credential);
    assert!(events(&p, Reason::CredentialsChanged).is_empty(), "the first verification is no change");

    // The primary was refused, the secondary verified: recorded, named in the condition, one Event.
    let mut ch = channel();
    ch.status = Some(WhatsAppChannelStatus { credentials: tw.credential.clone(), ..Default::default() });
    let secondary = used(CredentialSource::Secondary, "sha256:bbbbbbbbbbbb");
    let tw = Twilio { credential: Some(secondary.clone()), ..Twilio::default() };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert_eq!(p.status.credentials.as_ref(), Some(&secondary));
    assert_eq!(reason(&p, "CredentialsValid"), "True/Verified");
    let message = &cond(&p, "CredentialsValid").expect("condition").message;
    assert!(message.contains("authTokenSecondary (sha256:bbbbbbbbbbbb)"), "{message}");
    let changed = events(&p, Reason::CredentialsChanged);
    assert_eq!(changed.len(), 1);
    assert!(changed[0].message.contains("secondary") && changed[0].message.contains("sha256:aaaaaaaaaaaa"));

    // The same again: no Event.
    ch.status = Some(WhatsAppChannelStatus { credentials: Some(secondary), ..Default::default() });
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert!(events(&p, Reason::CredentialsChanged).is_empty());
}

#[test]
fn refused_credentials_clear_what_verified_and_say_both_were_tried() {
    let mut ch = channel();
    ch.status = Some(WhatsAppChannelStatus {
        credentials: Some(used(CredentialSource::Primary, "sha256:aaaaaaaaaaaa")),
        ..Default::default()
    });
    let tw = Twilio {
        verification: Err(unauthorized()),
        credential: Some(used(CredentialSource::Secondary, "sha256:bbbbbbbbbbbb")),
        ..Twilio::default()
    };
    let (p, _) = run(&ch, &cluster(), &tw, vec![]);
    assert_eq!(reason(&p, "CredentialsValid"), "False/InvalidCredentials");
    assert!(cond(&p, "CredentialsValid").expect("condition").message.contains("authToken and authTokenSecondary"));
    assert_eq!(p.status.credentials, None);
    assert!(!p.forget_verification, "the refusal is the cached answer");
}

#[test]
fn a_trial_account_is_reported() {
    let tw = Twilio {
        verification: Ok(Verification { account_type: Some(AccountType::Trial), ..verified() }),
        ..Twilio::default()
    };
    let (p, _) = run(&channel(), &cluster(), &tw, vec![]);
    assert_eq!(p.status.account.as_ref().and_then(|a| a.type_.as_deref()), Some("Trial"));
    let message = &cond(&p, "CredentialsValid").expect("condition").message;
    assert!(message.contains("Trial account") && message.contains("verified caller IDs"), "{message}");
}

#[test]
fn a_trial_recipient_that_is_not_verified_is_reported_without_retrying() {
    let mut ch = channel();
    ch.spec.confirmation_phone_number = Some("+14155550123".into());
    let refused = TwilioError::Rejected {
        status: 400,
        code: Some(21608),
        message: "The number +14155550123 is unverified. Trial accounts cannot send messages to unverified numbers"
            .into(),
        more_info: None,
    };
    let (p, _) = run(&ch, &cluster(), &Twilio::default(), vec![Outcome::SendFailed(refused)]);
    assert_eq!(reason(&p, "ConfirmationSent"), "False/TrialRecipientUnverified");
    let message = &cond(&p, "ConfirmationSent").expect("condition").message;
    assert!(message.contains("+14155550123") && message.contains("21608"), "{message}");
    let confirmation = p.status.confirmation.clone().expect("confirmation");
    assert_eq!((confirmation.status.as_deref(), confirmation.error_code), (Some("failed"), Some(21608)));
    assert!(matches!(p.after, After::Requeue(_)), "no backoff: {:?}", p.after);

    // The next pass reports it again, without sending.
    ch.status = Some(WhatsAppChannelStatus { confirmation: Some(confirmation), ..p.status.clone() });
    let (p, _) = run(&ch, &cluster(), &Twilio::default(), vec![]);
    assert!(twilio_writes(&p).is_empty(), "{:?}", p.steps);
    assert_eq!(reason(&p, "ConfirmationSent"), "False/TrialRecipientUnverified");
}
