//! Phone numbers and WhatsApp channel addresses.
//!
//! [`E164::parse`] is the one normalization used everywhere a number is compared: the number
//! lookup at Twilio, sender matching, and the operator's one-number-one-instance binding.

use std::fmt;

/// The channel prefix of a WhatsApp address (`whatsapp:+14155238886`).
pub const WHATSAPP_PREFIX: &str = "whatsapp:";

/// Why a phone number is not valid E.164.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing left after removing formatting.
    #[error("the phone number is empty")]
    Empty,
    /// A character other than digits, a leading `+`, or the formatting we strip.
    #[error("the phone number contains {0:?}, which is not allowed; use E.164 such as +14155550100")]
    InvalidCharacter(char),
    /// Not `+`, a non-zero digit, and 2 to 15 digits in all.
    #[error("the phone number is not E.164 (a '+', a non-zero digit, 2 to 15 digits in all), e.g. +14155550100")]
    NotE164,
}

/// A phone number in E.164 form (`+` then 2 to 15 digits, the first not `0`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

impl E164 {
    /// Normalizes and validates a number.
    ///
    /// Strips surrounding and inner whitespace, `-`, `.`, `(`, `)`, `/` and a `whatsapp:`
    /// prefix (any case); then requires `^\+[1-9]\d{1,14}$`. A number without `+` is rejected
    /// rather than guessed at: `0044…`, `44…` and national forms are ambiguous.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let mut rest = input.trim();
        if rest.len() >= WHATSAPP_PREFIX.len()
            && rest.is_char_boundary(WHATSAPP_PREFIX.len())
            && rest[..WHATSAPP_PREFIX.len()].eq_ignore_ascii_case(WHATSAPP_PREFIX)
        {
            rest = &rest[WHATSAPP_PREFIX.len()..];
        }
        let mut out = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => out.push(c),
                '+' if out.is_empty() => out.push(c),
                c if c.is_whitespace() => {}
                '-' | '.' | '(' | ')' | '/' => {}
                other => return Err(AddressError::InvalidCharacter(other)),
            }
        }
        if out.is_empty() {
            return Err(AddressError::Empty);
        }
        let digits = out.strip_prefix('+').ok_or(AddressError::NotE164)?;
        if !(2..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(AddressError::NotE164);
        }
        Ok(Self(out))
    }

    /// The number, e.g. `+14155238886`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The WhatsApp channel address, e.g. `whatsapp:+14155238886`.
    pub fn whatsapp(&self) -> String {
        format!("{WHATSAPP_PREFIX}{}", self.0)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for E164 {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Normalizes a phone number to E.164 (see [`E164::parse`]).
pub fn normalize_phone(input: &str) -> Result<String, AddressError> {
    E164::parse(input).map(|n| n.0)
}

/// Formats a WhatsApp address (`whatsapp:+E164`) from any accepted spelling of a number.
pub fn whatsapp_address(input: &str) -> Result<String, AddressError> {
    E164::parse(input).map(|n| n.whatsapp())
}

/// Whether two spellings denote the same number (both must be valid).
pub fn same_number(a: &str, b: &str) -> bool {
    matches!((E164::parse(a), E164::parse(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let ok = [
            ("+14155238886", "+14155238886"),
            ("  +1 415 523 8886 ", "+14155238886"),
            ("+1 (415) 523-8886", "+14155238886"),
            ("+44.20.7946.0958", "+442079460958"),
            ("whatsapp:+14155238886", "+14155238886"),
            ("WhatsApp: +1-415-523-8886", "+14155238886"),
            ("+49 30/1234567", "+49301234567"),
            ("+1\u{a0}415\u{a0}5238886", "+14155238886"),
            ("+12", "+12"),
            ("+123456789012345", "+123456789012345"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_phone(input).as_deref(), Ok(want), "{input:?}");
        }
        let bad = [
            ("", AddressError::Empty),
            ("   ", AddressError::Empty),
            ("whatsapp:", AddressError::Empty),
            ("14155238886", AddressError::NotE164),
            ("+04155238886", AddressError::NotE164),
            ("+1", AddressError::NotE164),
            ("+1234567890123456", AddressError::NotE164),
            ("+1415523888a", AddressError::InvalidCharacter('a')),
            ("+1 415 ext 5", AddressError::InvalidCharacter('e')),
            ("++14155238886", AddressError::InvalidCharacter('+')),
            ("+1415+5238886", AddressError::InvalidCharacter('+')),
            ("sms:+14155238886", AddressError::InvalidCharacter('s')),
            ("+1%2B415", AddressError::InvalidCharacter('%')),
        ];
        for (input, want) in bad {
            assert_eq!(normalize_phone(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn whatsapp_addresses() {
        assert_eq!(whatsapp_address("+1 415 523 8886").as_deref(), Ok("whatsapp:+14155238886"));
        assert_eq!(whatsapp_address("whatsapp:+14155238886").as_deref(), Ok("whatsapp:+14155238886"));
        assert!(same_number("whatsapp:+14155238886", "+1 (415) 523-8886"));
        assert!(!same_number("+14155238886", "+14155238887"));
        assert!(!same_number("junk", "junk"));
        let n: E164 = "+14155238886".parse().unwrap();
        assert_eq!(n.to_string(), "+14155238886");
    }
}
