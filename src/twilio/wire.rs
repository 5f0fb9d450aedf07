//! Serde helpers for Twilio's wire format: `null` and `""` both mean "unset", dates come as
//! RFC 2822 (2010 API) or RFC 3339 (Messaging APIs), numbers sometimes come as strings, and
//! enums grow new values without notice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Declares a string enum that keeps values it does not know in `Unknown(String)`.
///
/// Deserialization is case-insensitive and maps `null` to `Unknown("")`, so a new or missing
/// value from Twilio never fails a whole response.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this client does not know (kept verbatim; empty when Twilio sent `null`).
            Unknown(String),
        }

        impl $name {
            /// Every value this client knows, as Twilio spells it.
            pub const KNOWN: &'static [&'static str] = &[$($wire),*];

            /// The value as Twilio spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return Self::$variant; } )*
                Self::Unknown(value.to_owned())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Unknown(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value: Option<String> = serde::Deserialize::deserialize(deserializer)?;
                Ok(value.as_deref().map(Self::from).unwrap_or_default())
            }
        }
    };
}
pub(crate) use string_enum;

/// A closed enum of HTTP methods Twilio accepts for one kind of webhook: `as_str`, `ALLOWED`,
/// case-insensitive `FromStr` (anything else is `TwilioError::InvalidInput` with `$refusal`),
/// `Display` and `Serialize` as Twilio spells them.
macro_rules! method_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($refusal:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )*
        }

        impl $name {
            /// Every method accepted here, as Twilio spells it.
            pub const ALLOWED: &'static [&'static str] = &[$($wire),*];

            /// As Twilio spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )*
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::twilio::TwilioError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $( if s.eq_ignore_ascii_case($wire) { return Ok(Self::$variant); } )*
                Err($crate::twilio::TwilioError::InvalidInput($refusal.into()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use method_enum;

/// `null`, missing or `""` → `None`.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.filter(|s| !s.trim().is_empty()))
}

/// `null` or missing → `""`.
pub(crate) fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.unwrap_or_default())
}

/// A date in RFC 2822 (`Thu, 30 Jul 2015 20:00:00 +0000`) or RFC 3339; anything else → `None`.
pub(crate) fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.as_deref().and_then(parse_date))
}

/// Parses an RFC 2822 / HTTP-date or RFC 3339 timestamp.
pub(crate) fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// An integer sent as a number or as a numeric string; `null`, `""` or junk → `None`.
pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let value: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(value.as_ref().and_then(json_u32))
}

/// A JSON number or numeric string as `u32`.
pub(crate) fn json_u32(value: &serde_json::Value) -> Option<u32> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A closed enum parsed with `FromStr`; unknown, `null` or `""` → `None`.
pub(crate) fn opt_parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
{
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.as_deref().and_then(|s| s.parse().ok()))
}

/// A list that may be `null`.
pub(crate) fn vec_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let value: Option<Vec<T>> = Option::deserialize(d)?;
    Ok(value.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_both_formats() {
        let a = parse_date("Thu, 30 Jul 2015 20:00:00 +0000");
        let b = parse_date("2015-07-30T20:00:00Z");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(parse_date("Sun, 06 Nov 1994 08:49:37 GMT").map(|d| d.timestamp()), Some(784111777));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn numbers_as_strings() {
        assert_eq!(json_u32(&serde_json::json!(63007)), Some(63007));
        assert_eq!(json_u32(&serde_json::json!("30008")), Some(30008));
        assert_eq!(json_u32(&serde_json::json!(null)), None);
        assert_eq!(json_u32(&serde_json::json!(-1)), None);
    }
}
