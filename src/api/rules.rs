//! The rules of a channel's spec that the CRD schema cannot express (Kubernetes 1.20 has no CEL):
//! the operator reports a broken one as `InvalidSpec` before any Twilio call, and
//! `whatsapp-operator check` refuses it offline. One list, so both decide alike.
//!
//! `Sandbox` mode's number is also a schema rule (an `allOf` added by [`crate::crdgen`]); it is
//! checked here too for channels stored before the schema had it.

use crate::api::{ChannelMode, ConditionType, WhatsAppChannelSpec, SANDBOX_NUMBER};
use crate::twilio::E164;

/// A broken rule: which field, which condition reports it, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// The field at fault, as a path below `spec` (e.g. `confirmationPhoneNumber`).
    pub field: &'static str,
    /// The condition the operator sets to `False` with reason `InvalidSpec`.
    pub condition: ConditionType,
    /// What is wrong and what to do, naming the field.
    pub message: String,
    /// Whether the CRD schema enforces the rule too (it is checked here for channels stored
    /// before it did): `check` leaves it to the schema then.
    pub in_schema: bool,
}

/// Every rule `spec` breaks, in a stable order. A number that is not E.164 is the schema's
/// concern (and the operator's own parse): the rules that need one skip it.
pub fn spec_problems(spec: &WhatsAppChannelSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let number = E164::parse(&spec.phone_number).ok();
    if let Some(number) = &number {
        if spec.mode == ChannelMode::Sandbox && number.as_str() != SANDBOX_NUMBER {
            problems.push(SpecProblem {
                field: "phoneNumber",
                condition: ConditionType::NumberVerified,
                message: format!("mode Sandbox uses Twilio's sandbox number {SANDBOX_NUMBER}, not {number}"),
                in_schema: true,
            });
        }
    }
    let from = match spec.mode {
        ChannelMode::Sandbox => E164::parse(SANDBOX_NUMBER).ok(),
        ChannelMode::Business => number,
    };
    let to = spec.confirmation_phone_number.as_deref().and_then(|n| E164::parse(n).ok());
    if let (Some(from), Some(to)) = (from, to) {
        if from == to {
            problems.push(SpecProblem {
                field: "confirmationPhoneNumber",
                condition: ConditionType::ConfirmationSent,
                message: format!(
                    "spec.confirmationPhoneNumber {to} is the number the confirmation message would be sent from: \
                     a number cannot message itself (Twilio error 21266); use another phone, or remove the field"
                ),
                in_schema: false,
            });
        }
    }
    let template = spec.confirmation.as_ref().and_then(|c| c.template.as_ref());
    if let Some((t, v)) = template.and_then(|t| t.reference_variable.as_ref().map(|v| (t, v))) {
        if t.variables.contains_key(v) {
            problems.push(SpecProblem {
                field: "confirmation.template.referenceVariable",
                condition: ConditionType::ConfirmationSent,
                message: format!(
                    "spec.confirmation.template.referenceVariable {v:?} is also set in spec.confirmation.template.variables: \
                     the operator fills that placeholder with the message's reference; remove it from variables"
                ),
                in_schema: false,
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(number: &str, mode: ChannelMode, confirmation: Option<&str>) -> WhatsAppChannelSpec {
        serde_json::from_value(serde_json::json!({
            "phoneNumber": number,
            "instance": "crm",
            "mode": mode,
            "confirmationPhoneNumber": confirmation,
            "twilio": {"accountSid": "AC5eed5eed5eed5eed5eed5eed5eed5eed", "credentialsSecretRef": {"name": "t"}},
            "webhook": {"url": "https://receiver.example.com/hook"},
            "queue": "q",
        }))
        .expect("spec")
    }

    fn fields(spec: &WhatsAppChannelSpec) -> Vec<&'static str> {
        spec_problems(spec).iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_sound_spec_breaks_no_rule() {
        assert!(fields(&spec("+14155550100", ChannelMode::Business, Some("+14155550123"))).is_empty());
        assert!(fields(&spec(SANDBOX_NUMBER, ChannelMode::Sandbox, Some("+14155550123"))).is_empty());
        assert!(fields(&spec("+14155550100", ChannelMode::Business, None)).is_empty());
    }

    #[test]
    fn sandbox_mode_needs_the_sandbox_number() {
        let problems = spec_problems(&spec("+14155550100", ChannelMode::Sandbox, None));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].condition, ConditionType::NumberVerified);
        assert_eq!(problems[0].message, "mode Sandbox uses Twilio's sandbox number +14155238886, not +14155550100");
    }

    #[test]
    fn the_confirmation_cannot_go_to_the_sending_number_in_any_spelling() {
        let problems = spec_problems(&spec("+14155550100", ChannelMode::Business, Some("+1 (415) 555-0100")));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].condition, ConditionType::ConfirmationSent);
        assert!(problems[0].message.starts_with("spec.confirmationPhoneNumber +14155550100 is the number"));
        // In Sandbox mode the message comes from the sandbox number.
        assert_eq!(
            fields(&spec(SANDBOX_NUMBER, ChannelMode::Sandbox, Some(SANDBOX_NUMBER))),
            ["confirmationPhoneNumber"]
        );
    }

    #[test]
    fn the_reference_variable_is_the_operators_own() {
        let mut s = spec("+14155550100", ChannelMode::Business, Some("+14155550123"));
        s.confirmation = serde_json::from_value(serde_json::json!({
            "template": {"contentSid": "HX00000000000000000000000000000011", "variables": {"1": "a", "2": "b"}, "referenceVariable": "2"}
        }))
        .unwrap();
        assert_eq!(fields(&s), ["confirmation.template.referenceVariable"]);
        s.confirmation.as_mut().and_then(|c| c.template.as_mut()).unwrap().variables.remove("2");
        assert!(spec_problems(&s).is_empty());
    }

    #[test]
    fn numbers_that_are_not_e164_are_left_to_the_schema() {
        assert!(fields(&spec("not a number", ChannelMode::Sandbox, Some("not a number"))).is_empty());
    }
}
