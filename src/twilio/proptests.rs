//! Property tests: number parsing and normalization, and decoding of every Twilio (and identity
//! server) response type from arbitrary bytes, malformed JSON and JSON of the wrong shape. None
//! may panic; every failure is a typed error with a stable reason, and a success body that
//! fails to decode never shows up in the error.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::account::{Account, ProbePage};
use super::client::classify;
use super::messages::{Message, MessagePage};
use super::numbers::{IncomingPhoneNumber, NumberPage};
use super::senders::{Sender, SenderPage};
use super::services::MessagingService;
use super::{AddressError, ErrorBody, TwilioError, E164};

// --- Numbers --------------------------------------------------------------------------------

/// The formatting [`E164::parse`] strips.
fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("/".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("\t".to_owned()),
    ]
}

/// A valid E.164 number: `+`, a non-zero digit, 1 to 14 more digits.
fn e164() -> impl Strategy<Value = String> {
    ("[1-9]", "[0-9]{1,14}").prop_map(|(first, rest)| format!("+{first}{rest}"))
}

/// `number` spelled with separators between its characters, an optional `whatsapp:` prefix in
/// any case, and surrounding whitespace.
fn spelling() -> impl Strategy<Value = (String, String)> {
    e164().prop_flat_map(|number| {
        let n = number.chars().count();
        (
            Just(number),
            proptest::collection::vec(separator(), n),
            proptest::option::of("[wW][hH][aA][tT][sS][aA][pP][pP]:"),
            "[ \t]{0,3}",
            "[ \t]{0,3}",
        )
            .prop_map(|(number, seps, prefix, lead, trail)| {
                let mut spelled = format!("{lead}{}", prefix.unwrap_or_default());
                for (i, c) in number.chars().enumerate() {
                    // No separator between the `+` and the prefix: only after the `+` on.
                    if i > 0 {
                        spelled.push_str(&seps[i]);
                    }
                    spelled.push(c);
                }
                spelled.push_str(&trail);
                (number, spelled)
            })
    })
}

fn is_canonical(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&digits.len()) && !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any text: a canonical number or a typed error, never a panic; and normalizing is
    /// idempotent.
    #[test]
    fn any_text_parses_to_a_canonical_number_or_an_error(input in any::<String>()) {
        match E164::parse(&input) {
            Ok(n) => {
                prop_assert!(is_canonical(n.as_str()), "{:?} → {:?}", input, n);
                prop_assert_eq!(E164::parse(n.as_str()), Ok(n.clone()));
                prop_assert_eq!(E164::parse(&n.whatsapp()), Ok(n.clone()));
                let name = crate::binding::binding_name(&n, None);
                prop_assert!(name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Text made of the characters numbers are written with, which hits the validation paths
    /// far more often than arbitrary text.
    #[test]
    fn number_like_text_parses_or_is_refused(input in "[+0-9 ().\\-/a-z:]{0,24}") {
        let parsed = E164::parse(&input);
        if let Ok(n) = &parsed {
            prop_assert!(is_canonical(n.as_str()));
            // Every digit of the input is kept, in order, and nothing else is added.
            let kept: String = n.as_str().chars().filter(char::is_ascii_digit).collect();
            let all: String = input.chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(kept, all);
        }
    }

    /// Every accepted spelling of a number normalizes to that number.
    #[test]
    fn formatting_never_changes_the_number((number, spelled) in spelling()) {
        prop_assert_eq!(E164::parse(&spelled).map(|n| n.as_str().to_owned()), Ok(number));
    }

    /// A letter or symbol the parser does not strip is refused by name, wherever it is.
    #[test]
    fn a_foreign_character_is_refused((number, _) in spelling(), at in any::<prop::sample::Index>(), bad in "[a-zA-Z#*,;%_=]") {
        let mut chars: Vec<char> = number.chars().collect();
        let i = at.index(chars.len() + 1).max(1);
        let c = bad.chars().next().unwrap_or('x');
        chars.insert(i, c);
        let input: String = chars.into_iter().collect();
        prop_assert_eq!(E164::parse(&input), Err(AddressError::InvalidCharacter(c)));
    }

    /// Too many or too few digits, a leading zero, or no `+` is `NotE164`.
    #[test]
    fn wrong_lengths_and_leading_zeros_are_not_e164(
        digits in "[0-9]{16,30}",
        short in "[1-9]",
        zero in "0[0-9]{1,14}",
        number in e164(),
    ) {
        prop_assert_eq!(E164::parse(&format!("+{digits}")), Err(AddressError::NotE164));
        prop_assert_eq!(E164::parse(&format!("+{short}")), Err(AddressError::NotE164));
        prop_assert_eq!(E164::parse(&format!("+{zero}")), Err(AddressError::NotE164));
        prop_assert_eq!(E164::parse(&number[1..]), Err(AddressError::NotE164));
    }
}

// --- Response decoding ----------------------------------------------------------------------

/// A value that must never appear in an error: seeded into every generated body.
const MARKER: &str = "SEKRIT-MARKER-7f3a";

/// Field names of the response types (and their nested objects), so that generated JSON puts
/// wrong types where the decoders look.
const FIELDS: &[&str] = &[
    "sid",
    "friendly_name",
    "status",
    "type",
    "owner_account_sid",
    "date_created",
    "date_updated",
    "date_sent",
    "auth_token",
    "phone_number",
    "capabilities",
    "sms",
    "mms",
    "voice",
    "fax",
    "sms_url",
    "sms_method",
    "sms_fallback_url",
    "sms_fallback_method",
    "sms_application_sid",
    "status_callback",
    "status_callback_method",
    "incoming_phone_numbers",
    "next_page_uri",
    "senders",
    "meta",
    "next_page_url",
    "sender_id",
    "webhook",
    "callback_url",
    "callback_method",
    "fallback_url",
    "fallback_method",
    "properties",
    "quality_rating",
    "messaging_limit",
    "offline_reasons",
    "code",
    "message",
    "more_info",
    "inbound_request_url",
    "inbound_method",
    "use_inbound_webhook_on_number",
    "messages",
    "body",
    "to",
    "from",
    "direction",
    "error_code",
    "error_message",
    "num_segments",
    "price",
    "access_token",
    "token_type",
    "expires_in",
    "scope",
    "error",
    "error_description",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(FIELDS).prop_map(str::to_owned), 1 => "[a-z_]{0,12}"]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::String(MARKER.to_owned())),
        Just(Value::String(format!("+1415{MARKER}"))),
        Just(Value::String("Thu, 30 Jul 2015 20:00:00 +0000".to_owned())),
        Just(Value::String("ONLINE".to_owned())),
        Just(Value::String("https://u:p@h/x".to_owned())),
        Just(Value::String(String::new())),
        "\\PC{0,16}".prop_map(|s| Value::String(format!("{s}{MARKER}"))),
    ]
}

/// JSON of any shape, keyed mostly by the response types' field names.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON of any shape, that JSON cut short or corrupted, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json().prop_map(|v| v.to_string().into_bytes()),
        1 => (json(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let mut bytes = v.to_string().into_bytes();
            let at = cut.index(bytes.len() + 1);
            bytes.truncate(at);
            bytes
        }),
        1 => (json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, b)| {
            let mut bytes = v.to_string().into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(|mut b| { b.extend_from_slice(MARKER.as_bytes()); b }),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![4 => Just(200u16), 1 => Just(201u16), 1 => 100u16..600]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("text/html; charset=utf-8".to_owned()),
        Just(format!("text/{MARKER}")),
    ])
}

/// Decodes `body` as `T` the way the client does, and checks the outcome.
fn check<T: DeserializeOwned>(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    is_post: bool,
) -> Result<(), TestCaseError> {
    let result = classify::<T>("op", status, Some(MARKER), content_type, body, is_post);
    match result {
        Ok(_) => prop_assert!((200..300).contains(&status), "success from HTTP {}", status),
        Err(e) => {
            let reason = e.reason();
            prop_assert!(reason.starts_with("Twilio") && reason.chars().all(|c| c.is_ascii_alphanumeric()));
            prop_assert_eq!(e.status(), Some(status));
            // A body that is not a Twilio error body is never shown, nor any header.
            let shown = format!("{e} {e:?}");
            if (200..400).contains(&status) || ErrorBody::parse(body).is_none() {
                prop_assert!(!shown.contains(MARKER), "HTTP {}: {}", status, shown);
            }
            if (300..400).contains(&status) {
                prop_assert!(matches!(e, TwilioError::Redirected { .. }), "{:?}", e);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Every response type the client decodes, from every kind of body and status.
    #[test]
    fn every_response_type_decodes_or_fails_typed(
        status in status(),
        content_type in content_type(),
        body in body(),
        is_post in any::<bool>(),
    ) {
        let ct = content_type.as_deref();
        check::<Account>(status, ct, &body, is_post)?;
        check::<ProbePage>(status, ct, &body, is_post)?;
        check::<IncomingPhoneNumber>(status, ct, &body, is_post)?;
        check::<NumberPage>(status, ct, &body, is_post)?;
        check::<Sender>(status, ct, &body, is_post)?;
        check::<SenderPage>(status, ct, &body, is_post)?;
        check::<MessagingService>(status, ct, &body, is_post)?;
        check::<Message>(status, ct, &body, is_post)?;
        check::<MessagePage>(status, ct, &body, is_post)?;
        // Twilio's error body: parsed or `None`, its kept message one bounded line.
        if let Some(parsed) = ErrorBody::parse(&body) {
            if let Some(message) = &parsed.message {
                prop_assert!(message.chars().count() <= super::error::MAX_MESSAGE_CHARS);
                // One line, and a URL's userinfo redacted.
                prop_assert!(!message.contains('\n') && !message.contains("://u:p@"), "{:?}", message);
            }
            if let Some(link) = &parsed.more_info {
                prop_assert!(link.starts_with("https://") && !link.contains('@'));
            }
        }
    }

    /// Objects shaped like the real responses but with every field of the wrong type: the
    /// lists hold such objects too.
    #[test]
    fn lists_of_wrongly_typed_items_decode_or_fail_typed(
        items in proptest::collection::vec(proptest::collection::btree_map(key(), leaf(), 0..12), 0..4),
        list in proptest::sample::select(&["incoming_phone_numbers", "senders", "messages"][..]),
        next in leaf(),
    ) {
        let items: Vec<Value> = items.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect();
        let page = serde_json::json!({ list: items, "next_page_uri": next.clone(), "meta": {"next_page_url": next} });
        let body = page.to_string().into_bytes();
        check::<NumberPage>(200, Some("application/json"), &body, false)?;
        check::<SenderPage>(200, Some("application/json"), &body, false)?;
        check::<MessagePage>(200, Some("application/json"), &body, false)?;
    }

    /// The identity server's token response: a token or a typed error, never the body.
    #[test]
    fn identity_responses_decode_or_fail_typed(status in status(), content_type in content_type(), body in body()) {
        match super::identity::classify(status, None, content_type.as_deref(), &body) {
            Ok(token) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!token.access_token.expose().is_empty());
                let shown = format!("{:?}", token.access_token);
                prop_assert!(!shown.contains(MARKER), "{}", shown);
            }
            Err(e) => {
                prop_assert!(e.reason().starts_with("Identity"));
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(MARKER), "HTTP {}: {}", status, shown);
            }
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    // 100,000 levels where a decoder reads: serde_json stops at its recursion limit (128) with
    // a Decode error instead of overflowing the stack.
    let open = |s: &str| s.repeat(100_000);
    let array = format!("{}{}", open("["), open("]"));
    let in_sid = format!(r#"{{"sid":{}1{}}}"#, open(r#"{"x":"#), open("}"));
    let in_senders = format!(r#"{{"senders":{array}}}"#);
    let in_token = format!(r#"{{"access_token":{array}}}"#);
    for body in [&array, &in_sid] {
        let account = classify::<Account>("op", 200, None, Some("application/json"), body.as_bytes(), false);
        assert!(matches!(account, Err(TwilioError::Decode { .. })), "{account:?}");
    }
    for body in [&array, &in_senders] {
        let page = classify::<SenderPage>("op", 200, None, Some("application/json"), body.as_bytes(), false);
        assert!(matches!(page, Err(TwilioError::Decode { .. })), "{:?}", page.map(|_| ()));
    }
    for body in [&array, &in_token] {
        assert!(super::identity::classify(200, None, None, body.as_bytes()).is_err());
    }
    // Where no decoder looks (an unknown field), serde_json skips the nesting without
    // recursing: the rest of the body still decodes.
    let skipped = format!(r#"{{"x":{}1{},"sid":"AC1"}}"#, r#"{"x":"#.repeat(100_000), "}".repeat(100_000));
    let account = classify::<Account>("op", 200, None, None, skipped.as_bytes(), false).expect("skipped");
    assert_eq!(account.sid, "AC1");
}
