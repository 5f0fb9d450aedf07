//! A validator for the subset of OpenAPI 3.0 schema that twilio-oai uses: `$ref` (local, with
//! `nullable` allowed beside it), `type`, `nullable`, `enum`, `pattern`, `format`,
//! `minLength`/`maxLength`, `minimum`/`maximum`, `properties`, `required` and `items`.
//! The specs use no `allOf`/`oneOf`/`anyOf`/`additionalProperties`.
//!
//! Objects with declared `properties` are closed in both directions (an undeclared key is an
//! `unknown-property`), and in responses every declared property must be present (Twilio
//! serialises every field, `null` when unset: `missing-property`). Exceptions to both rules are
//! learnt from the spec's own examples, per operation, in a [`Tolerance`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use regex::Regex;
use serde_json::Value;

use super::Violation;

/// Maximum `$ref` chain / nesting depth followed before giving up (guards against cycles).
const MAX_DEPTH: usize = 64;

/// Whether a value travels to Twilio (request) or comes back from it (response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Request values: only `format: uri` is checked among formats; `required` lists apply.
    Request,
    /// Response values: date formats are checked too, and every declared property must be present.
    Response,
}

/// Keys the spec's own examples add to, or leave out of, a schema's declared properties.
/// Keyed by the wildcard JSON pointer of the object (array indices written `*`) and the key.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tolerance {
    /// Undeclared keys an example uses, e.g. (`""`, `tags`) for CreateMessage's 201.
    pub(crate) extra: HashSet<(String, String)>,
    /// Declared keys an example leaves out, e.g. (`""`, `url`) for CreateChannelsSender's 202.
    pub(crate) missing: HashSet<(String, String)>,
}

/// Compiled `pattern`s, shared by all checks of one contract.
#[derive(Debug, Default)]
pub(crate) struct PatternCache {
    compiled: Mutex<HashMap<String, Option<Regex>>>,
}

impl PatternCache {
    /// Whether `value` matches `pattern`; a pattern that does not compile matches everything.
    fn is_match(&self, pattern: &str, value: &str) -> bool {
        let regex = {
            let mut map = match self.compiled.lock() {
                Ok(map) => map,
                Err(poisoned) => poisoned.into_inner(),
            };
            map.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).ok()).clone()
        };
        regex.is_none_or(|re| re.is_match(value))
    }
}

/// A schema after following its `$ref` chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved<'a> {
    /// The target schema object.
    pub(crate) schema: &'a Value,
    /// `nullable: true` on the target or on any node of the chain.
    pub(crate) nullable: bool,
}

impl<'a> Resolved<'a> {
    /// The declared `type`, if any.
    pub(crate) fn ty(&self) -> Option<&'a str> {
        self.schema.get("type").and_then(Value::as_str)
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.schema.get(key)
    }
    fn properties(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty())
    }
    fn required(&self) -> impl Iterator<Item = &'a str> {
        self.schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    }
    fn ignores_format(&self) -> bool {
        self.schema.pointer("/x-twilio/ignoreFormat").and_then(Value::as_bool) == Some(true)
    }
}

/// Follows `$ref`s (local `#/...` pointers into `doc`).
pub(crate) fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Result<Resolved<'a>, Violation> {
    let mut node = schema;
    let mut nullable = false;
    for _ in 0..MAX_DEPTH {
        nullable |= node.get("nullable").and_then(Value::as_bool) == Some(true);
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return Ok(Resolved { schema: node, nullable });
        };
        node = reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .ok_or_else(|| Violation::new("spec-error", format!("unresolvable $ref `{reference}`")))?;
    }
    Err(Violation::new("spec-error", "$ref chain too deep (cycle?)"))
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A short description of a JSON value for messages.
pub(crate) fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_string(),
        Value::Object(_) => return "an object".to_string(),
    };
    let mut text = value.to_string();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    format!("{kind} {text}")
}

/// Walks JSON values and text parameters against schemas of one spec document.
pub(crate) struct Validator<'a> {
    doc: &'a Value,
    patterns: &'a PatternCache,
    mode: Mode,
    tolerance: Option<&'a Tolerance>,
    learn: Option<&'a mut Tolerance>,
    /// The violations found so far.
    pub(crate) out: Vec<Violation>,
}

impl<'a> Validator<'a> {
    /// A validator for `doc` (the spec the schemas come from).
    pub(crate) fn new(
        doc: &'a Value,
        patterns: &'a PatternCache,
        mode: Mode,
        tolerance: Option<&'a Tolerance>,
    ) -> Self {
        Validator { doc, patterns, mode, tolerance, learn: None, out: Vec::new() }
    }

    /// A validator that records undeclared and missing keys into `learn` instead of reporting them.
    pub(crate) fn learning(doc: &'a Value, patterns: &'a PatternCache, mode: Mode, learn: &'a mut Tolerance) -> Self {
        Validator { doc, patterns, mode, tolerance: None, learn: Some(learn), out: Vec::new() }
    }

    /// The spec document schemas are resolved in.
    pub(crate) fn doc(&self) -> &'a Value {
        self.doc
    }

    fn push(&mut self, rule: &str, message: String) {
        self.out.push(Violation::new(rule, message));
    }

    /// Validates a JSON value; `what` names the root in messages (e.g. `body`).
    pub(crate) fn json(&mut self, schema: &Value, value: &Value, what: &str) {
        let mut pointer = String::new();
        let mut wild = String::new();
        self.json_at(schema, value, what, &mut pointer, &mut wild, 0);
    }

    fn json_at(
        &mut self,
        schema: &Value,
        value: &Value,
        what: &str,
        ptr: &mut String,
        wild: &mut String,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let at = if ptr.is_empty() { what.to_string() } else { format!("{what} {ptr}") };
        let resolved = match resolve(self.doc, schema) {
            Ok(r) => r,
            Err(v) => return self.out.push(v),
        };
        let ty = resolved.ty();
        if value.is_null() {
            if let (false, Some(expected)) = (resolved.nullable, ty) {
                self.push("type", format!("{at}: expected {expected}, got null (not nullable)"));
            }
            return;
        }
        let type_ok = match ty {
            None => true,
            Some("string") => value.is_string(),
            Some("integer") => value.as_i64().is_some() || value.as_u64().is_some(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            Some(_) => true,
        };
        if !type_ok {
            let expected = ty.unwrap_or("a value");
            self.push("type", format!("{at}: expected {expected}, got {}", describe(value)));
            return;
        }
        let learning = self.learn.is_some();
        if let Some(choices) = resolved.get("enum").and_then(Value::as_array).filter(|_| !learning) {
            if !choices.contains(value) {
                self.push("enum", format!("{at}: expected one of {}, got {}", list(choices), describe(value)));
            }
        }
        match value {
            Value::String(_) | Value::Number(_) if learning => {}
            Value::String(s) => self.string_rules(&resolved, s, &at),
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    self.number_rules(&resolved, x, &at);
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = resolved.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let (plen, wlen) = (ptr.len(), wild.len());
                        ptr.push_str(&format!("/{i}"));
                        wild.push_str("/*");
                        self.json_at(item_schema, item, what, ptr, wild, depth + 1);
                        ptr.truncate(plen);
                        wild.truncate(wlen);
                    }
                }
            }
            Value::Object(map) => self.object_rules(&resolved, map, what, &at, ptr, wild, depth),
            Value::Bool(_) | Value::Null => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn object_rules(
        &mut self,
        resolved: &Resolved<'_>,
        map: &serde_json::Map<String, Value>,
        what: &str,
        at: &str,
        ptr: &mut String,
        wild: &mut String,
        depth: usize,
    ) {
        for name in resolved.required() {
            if !map.contains_key(name) {
                self.push("required", format!("{at}: required property `{name}` is missing"));
            }
        }
        let Some(props) = resolved.properties() else {
            return;
        };
        for (key, value) in map {
            let (plen, wlen) = (ptr.len(), wild.len());
            ptr.push('/');
            ptr.push_str(&escape(key));
            wild.push('/');
            wild.push_str(&escape(key));
            match props.get(key) {
                Some(prop) => self.json_at(prop, value, what, ptr, wild, depth + 1),
                None => {
                    wild.truncate(wlen);
                    let id = (wild.clone(), key.clone());
                    if let Some(learn) = self.learn.as_deref_mut() {
                        learn.extra.insert(id);
                    } else if !self.tolerance.is_some_and(|t| t.extra.contains(&id)) {
                        let known: Vec<&str> = props.keys().map(String::as_str).collect();
                        self.push(
                            "unknown-property",
                            format!(
                                "{what} {ptr}: property `{key}` is not declared by the spec (declared: {})",
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            ptr.truncate(plen);
            wild.truncate(wlen);
        }
        if self.mode == Mode::Response {
            for key in props.keys().filter(|k| !map.contains_key(*k)) {
                let id = (wild.clone(), key.clone());
                if let Some(learn) = self.learn.as_deref_mut() {
                    learn.missing.insert(id);
                } else if !self.tolerance.is_some_and(|t| t.missing.contains(&id)) {
                    self.push(
                        "missing-property",
                        format!("{at}: property `{key}` is missing (Twilio serialises every declared field, null when unset)"),
                    );
                }
            }
        }
    }

    /// `pattern`, length and `format` rules. An empty string passes them all: Twilio writes an
    /// unset field as `""` (e.g. `sms_application_sid` in the IncomingPhoneNumber examples)
    /// and clears a field with `Name=`. Only `enum` (checked by the callers) rejects `""`.
    fn string_rules(&mut self, resolved: &Resolved<'_>, s: &str, at: &str) {
        if s.is_empty() {
            return;
        }
        if let Some(pattern) = resolved.get("pattern").and_then(Value::as_str) {
            if !self.patterns.is_match(pattern, s) {
                self.push("pattern", format!("{at}: {:?} does not match pattern {pattern}", truncate(s)));
            }
        }
        let chars = s.chars().count();
        if let Some(min) = resolved.get("minLength").and_then(Value::as_u64) {
            if (chars as u64) < min {
                self.push("min-length", format!("{at}: {:?} is shorter than minLength {min}", truncate(s)));
            }
        }
        if let Some(max) = resolved.get("maxLength").and_then(Value::as_u64) {
            if chars as u64 > max {
                self.push("max-length", format!("{at}: string of {chars} characters exceeds maxLength {max}"));
            }
        }
        if let Some(format) = resolved.get("format").and_then(Value::as_str) {
            if !resolved.ignores_format() {
                if let Some(problem) = format_problem(format, s, self.mode) {
                    self.push("format", format!("{at}: {:?} is not a valid `{format}` ({problem})", truncate(s)));
                }
            }
            if self.mode == Mode::Request && format == "phone-number" && looks_plus_decoded(s) {
                self.push(
                    "plus-decoding",
                    format!(
                        "{at}: {s:?} has a space where E.164 has `+`: a literal `+` in a form or query value \
                         decodes as a space; encode it as %2B"
                    ),
                );
            }
        }
    }

    fn number_rules(&mut self, resolved: &Resolved<'_>, x: f64, at: &str) {
        if let Some(min) = resolved.get("minimum").and_then(Value::as_f64) {
            if x < min {
                self.push("minimum", format!("{at}: {x} is less than minimum {min}"));
            }
        }
        if let Some(max) = resolved.get("maximum").and_then(Value::as_f64) {
            if x > max {
                self.push("maximum", format!("{at}: {x} is greater than maximum {max}"));
            }
        }
    }

    /// Validates one form or query value (text) against a scalar schema; `at` names it in
    /// messages (e.g. ``form parameter `SmsMethod` ``).
    ///
    /// An empty value is accepted for string parameters (Twilio's form APIs use `Name=` to
    /// clear a field) unless the parameter has an `enum` that does not list `""`; it is not an
    /// integer, number or boolean.
    pub(crate) fn text(&mut self, schema: &Value, raw: &str, at: &str) {
        let resolved = match resolve(self.doc, schema) {
            Ok(r) => r,
            Err(v) => return self.out.push(v),
        };
        let enum_check = |this: &mut Self, value: &Value| {
            if let Some(choices) = resolved.get("enum").and_then(Value::as_array) {
                if !choices.contains(value) {
                    this.push("enum", format!("{at}: expected one of {}, got {:?}", list(choices), truncate(raw)));
                }
            }
        };
        match resolved.ty() {
            Some("integer") => match raw.trim().parse::<i64>() {
                Ok(n) => {
                    enum_check(self, &Value::from(n));
                    self.number_rules(&resolved, n as f64, at);
                }
                Err(_) => self.push("type", format!("{at}: expected integer, got {:?}", truncate(raw))),
            },
            Some("number") => match raw.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => self.number_rules(&resolved, x, at),
                _ => self.push("type", format!("{at}: expected number, got {:?}", truncate(raw))),
            },
            Some("boolean") => {
                if !raw.eq_ignore_ascii_case("true") && !raw.eq_ignore_ascii_case("false") {
                    self.push("type", format!("{at}: expected boolean (true|false), got {:?}", truncate(raw)));
                }
            }
            Some("object") | Some("array") => {
                // Form APIs do not nest; nothing declares such parameters in the served specs.
            }
            _ => {
                enum_check(self, &Value::String(raw.to_string()));
                self.string_rules(&resolved, raw, at);
            }
        }
    }
}

/// Why `s` is not a valid `format` value (loosely), or `None` if it is (or the format is not checked).
fn format_problem(format: &str, s: &str, mode: Mode) -> Option<&'static str> {
    match (format, mode) {
        ("uri", _) => {
            // "" is an unset URL; relative `uri`s appear in responses (2010 API paging).
            let relative_ok = mode == Mode::Response && s.starts_with('/');
            if s.chars().any(char::is_whitespace) {
                Some("contains whitespace")
            } else if s.is_empty() || relative_ok || has_scheme(s) {
                None
            } else {
                Some("expected an absolute URI with a scheme")
            }
        }
        ("date-time", Mode::Response) => {
            chrono::DateTime::parse_from_rfc3339(s).err().map(|_| "expected ISO 8601 / RFC 3339")
        }
        ("date-time-rfc-2822", Mode::Response) => chrono::DateTime::parse_from_rfc2822(s)
            .err()
            .map(|_| "expected RFC 2822, e.g. Thu, 30 Jul 2015 20:00:00 +0000"),
        ("date", Mode::Response) => {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").err().map(|_| "expected YYYY-MM-DD")
        }
        _ => None,
    }
}

/// `scheme:rest` with a non-empty rest (RFC 3986 scheme syntax).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

/// `" 15551234567"` or `"whatsapp: 15551234567"`: an E.164 `+` that was sent unencoded.
fn looks_plus_decoded(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| w[0] == b' ' && w[1].is_ascii_digit() && (i == 0 || bytes[i - 1] == b':'))
}

fn list(choices: &[Value]) -> String {
    let items: Vec<String> = choices.iter().map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)).collect();
    format!("[{}]", items.join(", "))
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 80 {
        s.chars().take(77).collect::<String>() + "..."
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, value: Value, mode: Mode) -> Vec<String> {
        let doc = json!({"components": {"schemas": {"e": {"type": "string", "enum": ["a", "b"]}}}});
        let patterns = PatternCache::default();
        let mut v = Validator::new(&doc, &patterns, mode, None);
        v.json(&schema, &value, "body");
        v.out.into_iter().map(|v| v.rule).collect()
    }

    #[test]
    fn refs_types_nullable_and_enums() {
        let schema = json!({"type": "object", "properties": {
            "e": {"$ref": "#/components/schemas/e"},
            "n": {"$ref": "#/components/schemas/e", "nullable": true},
            "i": {"type": "integer", "minimum": 1}}});
        assert!(check(schema.clone(), json!({"e": "a", "n": null, "i": 2}), Mode::Response).is_empty());
        assert_eq!(check(schema.clone(), json!({"e": "c", "n": null, "i": 2}), Mode::Response), ["enum"]);
        assert_eq!(check(schema.clone(), json!({"e": null, "n": null, "i": 2}), Mode::Response), ["type"]);
        assert_eq!(check(schema.clone(), json!({"e": "a", "n": null, "i": 1.5}), Mode::Response), ["type"]);
        assert_eq!(check(schema.clone(), json!({"e": "a", "n": null, "i": 0}), Mode::Response), ["minimum"]);
        assert_eq!(check(schema.clone(), json!({"e": "a", "i": 1}), Mode::Response), ["missing-property"]);
        assert!(check(schema.clone(), json!({"e": "a"}), Mode::Request).is_empty());
        assert_eq!(check(schema, json!({"e": "a", "n": "a", "i": 3, "x": 1}), Mode::Request), ["unknown-property"]);
    }

    #[test]
    fn loose_formats() {
        assert_eq!(format_problem("uri", "https://a.example/x?y=1", Mode::Request), None);
        assert_eq!(format_problem("uri", "", Mode::Request), None);
        assert!(format_problem("uri", "example.com/hook", Mode::Request).is_some());
        assert!(format_problem("uri", "/2010-04-01/Accounts/AC1.json", Mode::Request).is_some());
        assert_eq!(format_problem("uri", "/2010-04-01/Accounts/AC1.json", Mode::Response), None);
        assert_eq!(format_problem("date-time-rfc-2822", "Thu, 30 Jul 2015 20:00:00 +0000", Mode::Response), None);
        assert!(format_problem("date-time-rfc-2822", "2015-07-30T20:00:00Z", Mode::Response).is_some());
        assert_eq!(format_problem("date-time", "2015-07-30T20:12:31Z", Mode::Response), None);
        assert_eq!(format_problem("date-time", "not a date", Mode::Request), None);
        assert!(looks_plus_decoded(" 15551234567"));
        assert!(looks_plus_decoded("whatsapp: 15551234567"));
        assert!(!looks_plus_decoded("+15551234567"));
        assert!(!looks_plus_decoded("Hello 2 you"));
    }
}
