//! Checks an object against a CRD version's `openAPIV3Schema` the way the API server does, so
//! that `check` enforces what the API server enforces.
//!
//! The validation is the [`jsonschema`] crate's, in draft 4, the dialect OpenAPI v3.0 schemas
//! extend: `type`, `required`, `properties`, `additionalProperties`, `items`, `enum`, `pattern`
//! (with the `regex` engine, RE2 syntax like the API server's Go regular expressions), lengths,
//! bounds, `uniqueItems`, `allOf`, `anyOf`, `oneOf` and `not`. What stays here is what structural
//! schemas add to JSON Schema, which no JSON Schema validator does:
//!
//! - What the API server does to an object before validating it ([`Schema::check`]): it prunes
//!   unknown fields (not under `x-kubernetes-preserve-unknown-fields`, and not the `apiVersion`,
//!   `kind` and `metadata` of the root or of an `x-kubernetes-embedded-resource`), drops nulls in
//!   non-nullable fields and applies `default`s. Each silent change is reported as a warning, and
//!   `anyOf` and the rest are validated against the defaulted object, as in the cluster.
//! - The OpenAPI and Kubernetes keywords, translated into JSON Schema before compiling:
//!   `nullable` adds `null` to `type` and `enum` and lets a null past `anyOf`, `allOf`, `oneOf`
//!   and `not` (as the API server does); `x-kubernetes-int-or-string` becomes
//!   `type: [integer, string]`; `x-kubernetes-list-type: set` becomes `uniqueItems`. The other
//!   `x-kubernetes-*` extensions, `example`, `externalDocs` and `format` are dropped.
//! - Messages in the manifest's terms: the field (`spec.twilio.accountSid`), what is wrong, and for
//!   an `anyOf` the alternatives and the values (or defaults) that miss them.
//! - YAML 1.1 booleans (`yes`, `off`) in boolean fields, read as kubectl reads them, with a
//!   warning because YAML 1.2 tools such as kustomize read strings.
//!
//! Not checked: `format` (the API server's formats are its own, e.g. Go durations and date-times
//! without a zone, not JSON Schema's) and the key uniqueness of `x-kubernetes-list-type: map`.
//! `x-kubernetes-validations` (CEL rules) cannot be evaluated here: a schema with them is refused
//! when the checker is built, so that such rules are not skipped silently.

use std::collections::HashSet;
use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, JsonType, PatternOptions, ValidationError, Validator};
use serde_json::{json, Map, Value};

use super::report::Severity;

/// Fields every object has besides its schema's: the API server handles them itself.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// OpenAPI keywords that are not JSON Schema (or whose meaning differs), dropped before compiling.
const DROPPED: [&str; 4] = ["nullable", "format", "example", "externalDocs"];

/// The keywords that combine sub-schemas; a null in a nullable field skips them.
const COMBINATORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];

/// One step of a path into a document: an object key or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path into a document, displayed as `spec.twilio.accountSid` or `items[0].spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Why a schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema uses a rule the checker cannot enforce (CEL `x-kubernetes-validations`).
    #[error("schema at {path:?} uses {keyword:?}, which the checker cannot enforce")]
    Unsupported {
        /// Where in the schema (a JSON pointer).
        path: String,
        /// The keyword.
        keyword: String,
    },
    /// The schema, translated to JSON Schema, does not compile (e.g. an invalid `pattern`).
    #[error("schema at {path:?} is invalid: {message}")]
    Invalid {
        /// Where in the translated schema (a JSON pointer).
        path: String,
        /// What the JSON Schema compiler says.
        message: String,
    },
    /// A pattern of the checker's own does not compile.
    #[error("schema at {path:?} has an invalid pattern {pattern:?}: {source}")]
    Pattern {
        /// Where the pattern applies.
        path: String,
        /// The pattern.
        pattern: String,
        /// The cause.
        #[source]
        source: regex::Error,
    },
}

/// Something wrong (or suspicious) in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Where it is: the field, or for a missing field the object that lacks it.
    pub at: FieldPath,
    /// What is wrong, naming the field.
    pub message: String,
}

/// A compiled `openAPIV3Schema`.
#[derive(Debug)]
pub struct Schema {
    /// The schema as written, which pruning and defaulting follow.
    root: Value,
    /// Its translation to JSON Schema, which the validator's error locations point into.
    json: Value,
    validator: Validator,
    /// The `anyOf`s the translation added to let nulls past a nullable field's combinators.
    null_wrappers: HashSet<String>,
}

/// A validation error in the manifest's terms.
struct Failure {
    at: FieldPath,
    /// Orders the failures of one field: the type first, `anyOf` last.
    rank: u8,
    message: String,
    /// The fields an `anyOf` pins to values (`enum`): when one of them has a wrong type or a value
    /// outside its own `enum`, that failure says it all.
    pinned: Vec<FieldPath>,
}

impl Schema {
    /// Compiles a schema given as JSON (e.g. a CRD version's `openAPIV3Schema`).
    pub fn new(root: Value) -> Result<Self, SchemaError> {
        let mut null_wrappers = HashSet::new();
        let json = translate(&root, "", &mut null_wrappers)?;
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .with_pattern_options(PatternOptions::regex())
            .build(&json)
            .map_err(|e| {
                let e = innermost(&e);
                SchemaError::Invalid { path: e.instance_path().to_string(), message: e.to_string() }
            })?;
        Ok(Self { root, json, validator, null_wrappers })
    }

    /// Prunes, defaults and validates a whole object (its `apiVersion`, `kind` and `metadata`
    /// are left to the caller). `value` is left as the API server would store it.
    pub fn check(&self, value: &mut Value) -> Vec<Finding> {
        let mut walk = Walk { findings: Vec::new(), defaulted: HashSet::new() };
        walk.prune_and_default(&self.root, value, &FieldPath::default(), true);
        let mut failures = Vec::new();
        for error in self.validator.iter_errors(value) {
            self.explain(&error, value, &walk.defaulted, &mut failures);
        }
        // A value of the wrong type fails nothing else worth saying.
        let mistyped: HashSet<FieldPath> = failures.iter().filter(|f| f.rank == 0).map(|f| f.at.clone()).collect();
        failures.retain(|f| f.rank == 0 || !mistyped.contains(&f.at));
        // Nor does a value outside its enum make the `anyOf`s that pin it worth a word.
        let invalid: HashSet<FieldPath> = failures.iter().filter(|f| f.rank <= 1).map(|f| f.at.clone()).collect();
        failures.retain(|f| !f.pinned.iter().any(|p| invalid.contains(p)));
        failures.sort_by(|a, b| (&a.at, a.rank).cmp(&(&b.at, b.rank)));
        let errors = failures.into_iter().map(|f| Finding { severity: Severity::Error, at: f.at, message: f.message });
        walk.findings.extend(errors);
        walk.findings
    }

    /// Turns one error of the validator into failures (none, or several for a null wrapper).
    fn explain(
        &self,
        error: &ValidationError<'_>,
        doc: &Value,
        defaulted: &HashSet<FieldPath>,
        out: &mut Vec<Failure>,
    ) {
        let at = field_path(doc, error.instance_path().as_str());
        let value: &Value = error.instance();
        let shown = shown(&at);
        let mut pinned = Vec::new();
        let (rank, message) = match error.kind() {
            ValidationErrorKind::Type { kind } => {
                let types: Vec<&str> = match kind {
                    TypeKind::Single(t) => vec![t.as_str()],
                    TypeKind::Multiple(set) => set.iter().map(JsonType::as_str).collect(),
                };
                let quote = types.contains(&"string") && (value.is_number() || value.is_boolean());
                let hint = if quote { " (quote it)" } else { "" };
                (0, format!("{shown} must be of type {}, got {}{hint}", types.join(" or "), describe(value)))
            }
            ValidationErrorKind::Enum { options } => {
                let list: Vec<String> = options.as_array().into_iter().flatten().map(render).collect();
                (1, format!("{shown} {} is not one of {}", render(value), list.join(", ")))
            }
            ValidationErrorKind::MinLength { limit } => {
                (2, format!("{shown} {} is shorter than {limit} characters", render(value)))
            }
            ValidationErrorKind::MaxLength { limit } => {
                let len = value.as_str().map_or(0, |s| s.chars().count());
                (3, format!("{shown} is longer than {limit} characters ({len})"))
            }
            ValidationErrorKind::Pattern { pattern } => {
                (4, format!("{shown} {} does not match {pattern}", render(value)))
            }
            ValidationErrorKind::Required { property } => {
                (5, format!("missing required field {}", at.key(property.as_str().unwrap_or_default())))
            }
            ValidationErrorKind::AnyOf { context } if self.null_wrappers.contains(error.schema_path().as_str()) => {
                // Not null, so what counts is the second branch: the field's own combinators.
                for inner in context.get(1).into_iter().flatten() {
                    self.explain(inner, doc, defaulted, out);
                }
                return;
            }
            ValidationErrorKind::AnyOf { .. } => {
                let branches = self.branches(error);
                let mut message = format!("{shown} must satisfy one of: {}", describe_branches(branches));
                // Show the current value of each field a branch pins to a value.
                let mut notes: Vec<String> = Vec::new();
                for branch in branches {
                    for (key, sub) in branch.get("properties").and_then(Value::as_object).into_iter().flatten() {
                        if sub.get("enum").is_some() {
                            pinned.push(at.key(key));
                        }
                        let current = value.get(key).filter(|_| sub.get("enum").is_some());
                        if let Some(current) = current {
                            let default = if defaulted.contains(&at.key(key)) { ", the default" } else { "" };
                            let note = format!("{key} is {}{default}", render(current));
                            if !notes.contains(&note) {
                                notes.push(note);
                            }
                        }
                    }
                }
                if !notes.is_empty() {
                    message.push_str(&format!(" ({})", notes.join("; ")));
                }
                (7, message)
            }
            ValidationErrorKind::OneOfNotValid { .. } => {
                (7, format!("{shown} must satisfy exactly one of: {}", describe_branches(self.branches(error))))
            }
            ValidationErrorKind::OneOfMultipleValid { .. } => {
                (7, format!("{shown} satisfies more than one of: {}", describe_branches(self.branches(error))))
            }
            // Bounds, counts, `uniqueItems`, `not`: the crate says it well enough.
            _ => (6, format!("{shown}: {error}")),
        };
        out.push(Failure { at, rank, message, pinned });
    }

    /// The branches of the `anyOf` or `oneOf` an error is about.
    fn branches(&self, error: &ValidationError<'_>) -> &[Value] {
        let branches = self.json.pointer(error.schema_path().as_str()).and_then(Value::as_array);
        branches.map_or(&[], Vec::as_slice)
    }
}

/// The schema in JSON Schema draft 4: the OpenAPI and Kubernetes keywords translated or dropped.
/// `at` is the JSON pointer of `schema` in the result; the pointers of the `anyOf`s added for
/// nullable fields go to `wrappers`.
fn translate(schema: &Value, at: &str, wrappers: &mut HashSet<String>) -> Result<Value, SchemaError> {
    let Value::Object(s) = schema else {
        return Ok(schema.clone());
    };
    let flag = |k: &str| s.get(k) == Some(&Value::Bool(true));
    let nullable = flag("nullable");
    let wrap = nullable && COMBINATORS.iter().any(|k| s.contains_key(*k));
    let (mut out, mut combined) = (Map::new(), Map::new());
    for (keyword, sub) in s {
        let combinator = COMBINATORS.contains(&keyword.as_str());
        let base = if wrap && combinator { format!("{at}/anyOf/1") } else { at.to_owned() };
        let here = format!("{base}/{}", escape(keyword));
        let translated = match (keyword.as_str(), sub) {
            ("x-kubernetes-validations", _) => {
                return Err(SchemaError::Unsupported { path: at.to_owned(), keyword: keyword.clone() });
            }
            ("x-kubernetes-list-type", list_type) => {
                if list_type == "set" {
                    out.insert("uniqueItems".to_owned(), Value::Bool(true));
                }
                continue;
            }
            (k, _) if k.starts_with("x-kubernetes-") || DROPPED.contains(&k) => continue,
            ("properties" | "patternProperties" | "definitions" | "dependencies", Value::Object(m)) => {
                let mut t = Map::new();
                for (name, v) in m {
                    t.insert(name.clone(), translate(v, &format!("{here}/{}", escape(name)), wrappers)?);
                }
                Value::Object(t)
            }
            ("items" | "allOf" | "anyOf" | "oneOf", Value::Array(list)) => {
                let list = list.iter().enumerate().map(|(i, v)| translate(v, &format!("{here}/{i}"), wrappers));
                Value::Array(list.collect::<Result<_, _>>()?)
            }
            ("items" | "additionalProperties" | "additionalItems" | "not", _) => translate(sub, &here, wrappers)?,
            _ => sub.clone(),
        };
        if wrap && combinator {
            combined.insert(keyword.clone(), translated);
        } else {
            out.insert(keyword.clone(), translated);
        }
    }
    if flag("x-kubernetes-int-or-string") && !out.contains_key("type") {
        out.insert("type".to_owned(), json!(["integer", "string"]));
    }
    if nullable {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".to_owned(), json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.contains(&Value::from("null")) => types.push(Value::from("null")),
            _ => {}
        }
        if let Some(Value::Array(options)) = out.get_mut("enum") {
            if !options.contains(&Value::Null) {
                options.push(Value::Null);
            }
        }
        if wrap {
            out.insert("anyOf".to_owned(), json!([{"type": "null"}, combined]));
            wrappers.insert(format!("{at}/anyOf"));
        }
    }
    Ok(Value::Object(out))
}

/// The most specific error that an `anyOf` or `oneOf` of the meta-schema hides: the deepest.
fn innermost<'e>(error: &'e ValidationError<'static>) -> &'e ValidationError<'static> {
    let inner = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context.iter().flatten().map(innermost).max_by_key(|e| e.instance_path().as_str().len())
        }
        _ => None,
    };
    inner.unwrap_or(error)
}

/// A key as a JSON pointer token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The field a JSON pointer into `doc` names (a numeric token is an index only in a list).
fn field_path(doc: &Value, pointer: &str) -> FieldPath {
    let mut path = FieldPath::default();
    let mut here = Some(doc);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let seg = match (here, token.parse::<usize>()) {
            (Some(Value::Array(_)), Ok(i)) => Seg::Index(i),
            _ => Seg::Key(token),
        };
        here = here.and_then(|v| match &seg {
            Seg::Index(i) => v.get(i),
            Seg::Key(k) => v.get(k),
        });
        path.0.push(seg);
    }
    path
}

/// What the API server does to an object before validating it.
struct Walk {
    findings: Vec<Finding>,
    defaulted: HashSet<FieldPath>,
}

impl Walk {
    fn push(&mut self, severity: Severity, at: &FieldPath, message: String) {
        self.findings.push(Finding { severity, at: at.clone(), message });
    }

    /// Drops unknown fields and nulls that the schema does not allow, then fills in defaults
    /// (and defaults inside what was filled in).
    fn prune_and_default(&mut self, schema: &Value, value: &mut Value, path: &FieldPath, root: bool) {
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                let flag = |k: &str| schema.get(k) == Some(&Value::Bool(true));
                let open = flag("x-kubernetes-preserve-unknown-fields")
                    || additional.is_some_and(|a| a.is_object() || a == &Value::Bool(true));
                let embedded = root || flag("x-kubernetes-embedded-resource");
                if !open && (props.is_some() || schema.get("type") == Some(&Value::from("object"))) {
                    let known =
                        |k: &str| props.is_some_and(|p| p.contains_key(k)) || (embedded && ROOT_FIELDS.contains(&k));
                    let unknown: Vec<String> = map.keys().filter(|k| !known(k)).cloned().collect();
                    for key in unknown {
                        map.remove(&key);
                        let hint = props
                            .and_then(|p| closest(&key, p.keys()))
                            .map(|s| format!("; did you mean {s}?"))
                            .unwrap_or_default();
                        let message =
                            format!("unknown field {}: the API server drops it silently{hint}", path.key(&key));
                        self.push(Severity::Warning, &path.key(&key), message);
                    }
                }
                for (key, sub) in props.into_iter().flatten() {
                    let at = path.key(key);
                    if map.get(key) == Some(&Value::Null) && !nullable(sub) {
                        map.remove(key);
                        let message = format!("{at} is null, which it may not be: the API server drops it");
                        self.push(Severity::Warning, &at, message);
                    }
                    if let (None, Some(default)) = (map.get(key), sub.get("default")) {
                        map.insert(key.clone(), default.clone());
                        self.defaulted.insert(at.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        self.prune_and_default(sub, child, &at, false);
                    }
                }
                if let Some(sub) = additional.filter(|a| a.is_object()) {
                    for (key, child) in map.iter_mut() {
                        if !props.is_some_and(|p| p.contains_key(key)) {
                            self.prune_and_default(sub, child, &path.key(key), false);
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.prune_and_default(sub, item, &path.index(i), false);
                    }
                }
            }
            Value::String(s) if schema.get("type") == Some(&Value::from("boolean")) => {
                if let Some(b) = yaml11_bool(s) {
                    let message = format!(
                        "{path} {} is {b} for kubectl (YAML 1.1) but a string for YAML 1.2 tools such as \
                         kustomize: write {b}",
                        render_str(s)
                    );
                    *value = Value::Bool(b);
                    self.push(Severity::Warning, path, message);
                }
            }
            _ => {}
        }
    }
}

/// The alternatives of an `anyOf` or `oneOf`, e.g. `queue is set, or active is false`.
fn describe_branches(branches: &[Value]) -> String {
    let alternatives: Vec<String> = branches.iter().map(describe_branch).collect();
    alternatives.join(", or ")
}

/// A short description of an `anyOf` branch, e.g. `queue is set` or `active is false`.
fn describe_branch(branch: &Value) -> String {
    let props = branch.get("properties").and_then(Value::as_object);
    let pinned = |k: &str| props.and_then(|p| p.get(k)).and_then(|s| s.get("enum")).is_some();
    let mut parts: Vec<String> = Vec::new();
    for key in branch.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(key) = key.as_str().filter(|k| !pinned(k)) {
            parts.push(format!("{key} is set"));
        }
    }
    for (key, sub) in props.into_iter().flatten() {
        match sub.get("enum").and_then(Value::as_array).map(Vec::as_slice) {
            Some([one]) => parts.push(format!("{key} is {}", render(one))),
            Some(many) => {
                let list: Vec<String> = many.iter().map(render).collect();
                parts.push(format!("{key} is one of {}", list.join(", ")));
            }
            None => parts.push(format!("{key} is valid")),
        }
    }
    if parts.is_empty() {
        "(an alternative without rules)".to_owned()
    } else {
        parts.join(" and ")
    }
}

/// YAML 1.1 booleans that YAML 1.2 parsers (serde_yaml, kustomize) read as strings.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable") == Some(&Value::Bool(true))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `integer 14155550100`, `string "yes"`, `object`.
fn describe(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) | Value::Null => type_name(value).to_owned(),
        _ => format!("{} {}", type_name(value), render(value)),
    }
}

/// The path for messages; the root object is `the object`.
fn shown(path: &FieldPath) -> String {
    if path.0.is_empty() {
        "the object".to_owned()
    } else {
        path.to_string()
    }
}

/// A value as JSON, shortened when long.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => render_str(s),
        other => other.to_string(),
    }
}

fn render_str(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{}…", Value::from(head))
    } else {
        Value::from(s).to_string()
    }
}

/// The candidate closest to `word` (case-insensitive edit distance at most 2 or a third of it).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channel_schema() -> Schema {
        let crd =
            crate::crdgen::crds().into_iter().find(|c| c.spec.names.kind == "WhatsAppChannel").expect("channel CRD");
        let schema = crd.spec.versions[0].schema.as_ref().expect("schema");
        Schema::new(serde_json::to_value(schema.open_api_v3_schema.as_ref().expect("v3")).expect("json"))
            .expect("compiles")
    }

    fn valid() -> Value {
        json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppChannel",
            "metadata": {"name": "sales"},
            "spec": {
                "phoneNumber": "+14155550100",
                "instance": "crm-prod",
                "twilio": {
                    "accountSid": "AC5eed5eed5eed5eed5eed5eed5eed5eed",
                    "credentialsSecretRef": {"name": "twilio"}
                },
                "webhook": {"url": "https://receiver.example.com/hook"},
                "queue": "sales"
            }
        })
    }

    fn messages(mut value: Value) -> Vec<String> {
        channel_schema()
            .check(&mut value)
            .into_iter()
            .map(|f| format!("{}: {} @{}", f.severity, f.message, f.at))
            .collect()
    }

    fn with(spec_patch: Value) -> Value {
        let mut v = valid();
        for (k, x) in spec_patch.as_object().expect("object") {
            if x.is_null() {
                v["spec"].as_object_mut().expect("spec").remove(k);
            } else {
                v["spec"][k] = x.clone();
            }
        }
        v
    }

    #[test]
    fn every_crd_schema_compiles() {
        for crd in crate::crdgen::crds() {
            for version in &crd.spec.versions {
                let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
                let json = serde_json::to_value(schema).expect("json");
                if let Err(e) = Schema::new(json) {
                    panic!("{} {}: {e}", crd.spec.names.kind, version.name);
                }
            }
        }
    }

    #[test]
    fn a_valid_channel_passes_and_gets_the_api_servers_defaults() {
        let mut v = valid();
        assert_eq!(channel_schema().check(&mut v), vec![]);
        assert_eq!(v["spec"]["active"], json!(true));
        assert_eq!(v["spec"]["mode"], json!("Business"));
        assert_eq!(v["spec"]["webhook"]["method"], json!("POST"));
        assert_eq!(v["spec"]["bindingPolicy"], json!("Exclusive"));
        assert!(v["spec"].get("language").is_none(), "no default, not nullable-defaulted");
    }

    #[test]
    fn patterns_types_enums_and_lengths_are_enforced() {
        let got = messages(with(json!({
            "phoneNumber": "+1 415",
            "instance": "CRM",
            "mode": "sandbox",
            "webhook": {"url": "http://receiver.example.com/hook"},
            "suspend": "maybe",
            "queue": ""
        })));
        assert_eq!(
            got,
            vec![
                r#"error: spec.instance "CRM" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ @spec.instance"#
                    .to_owned(),
                r#"error: spec.mode "sandbox" is not one of "Business", "Sandbox" @spec.mode"#.to_owned(),
                r#"error: spec.phoneNumber "+1 415" does not match ^\+[1-9][0-9]{1,14}$ @spec.phoneNumber"#.to_owned(),
                r#"error: spec.queue "" is shorter than 1 characters @spec.queue"#.to_owned(),
                r#"error: spec.suspend must be of type boolean, got string "maybe" @spec.suspend"#.to_owned(),
                format!(
                    "error: spec.webhook.url \"http://receiver.example.com/hook\" does not match {} @spec.webhook.url",
                    crate::api::HTTPS_URL_PATTERN
                ),
            ]
        );
        let got = messages(with(json!({"phoneNumber": 14155550100u64, "instance": "x".repeat(64)})));
        assert_eq!(
            got,
            vec![
                "error: spec.instance is longer than 63 characters (64) @spec.instance",
                "error: spec.phoneNumber must be of type string, got integer 14155550100 (quote it) @spec.phoneNumber",
            ]
        );
    }

    #[test]
    fn required_fields_are_reported_at_their_parent() {
        let got = messages(with(json!({"instance": null, "twilio": {"accountSid": "ACx"}})));
        assert_eq!(
            got,
            vec![
                "error: missing required field spec.instance @spec",
                "error: missing required field spec.twilio.credentialsSecretRef @spec.twilio",
                r#"error: spec.twilio.accountSid "ACx" does not match ^AC[0-9a-fA-F]{32}$ @spec.twilio.accountSid"#,
            ]
        );
        let mut no_spec = valid();
        no_spec.as_object_mut().expect("object").remove("spec");
        assert_eq!(messages(no_spec), vec!["error: missing required field spec @"]);
    }

    #[test]
    fn any_of_sees_defaults_a_queue_is_required_while_active() {
        let want =
            "error: spec must satisfy one of: queue is set, or active is false (active is true, the default) @spec";
        assert_eq!(messages(with(json!({"queue": null}))), vec![want]);
        assert_eq!(
            messages(with(json!({"queue": null, "active": true}))),
            vec!["error: spec must satisfy one of: queue is set, or active is false (active is true) @spec"]
        );
        assert_eq!(messages(with(json!({"queue": null, "active": false}))), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_and_nulls_are_pruned_with_a_warning() {
        let mut v = with(json!({"phonenumber": "+1"}));
        v["spec"]["mode"] = Value::Null;
        v["spec"]["language"] = Value::Null;
        v["extra"] = json!(1);
        let findings = channel_schema().check(&mut v);
        let got: Vec<String> = findings.iter().map(|f| format!("{}: {}", f.severity, f.message)).collect();
        assert_eq!(
            got,
            vec![
                "warning: unknown field extra: the API server drops it silently",
                "warning: unknown field spec.phonenumber: the API server drops it silently; did you mean phoneNumber?",
                "warning: spec.mode is null, which it may not be: the API server drops it",
            ]
        );
        assert_eq!(v["spec"]["mode"], json!("Business"), "pruned, then defaulted");
        assert_eq!(v["spec"]["language"], Value::Null, "nullable: kept");
        assert!(v.get("extra").is_none() && v["spec"].get("phonenumber").is_none());
    }

    #[test]
    fn yaml_1_1_booleans_are_read_as_kubectl_reads_them() {
        let mut v = with(json!({"active": "no", "queue": null}));
        let got: Vec<String> = channel_schema().check(&mut v).into_iter().map(|f| f.message).collect();
        assert_eq!(
            got,
            vec![
                r#"spec.active "no" is false for kubectl (YAML 1.1) but a string for YAML 1.2 tools such as kustomize: write false"#
            ]
        );
        assert_eq!(v["spec"]["active"], json!(false));
        assert_eq!(messages(with(json!({"suspend": "maybe"}))).len(), 1, "other strings stay type errors");
    }

    #[test]
    fn cel_rules_and_invalid_schemas_are_refused() {
        let cel = json!({"properties": {"a": {"type": "string", "x-kubernetes-validations": [{"rule": "true"}]}}});
        let err = Schema::new(cel).expect_err("CEL");
        assert!(
            matches!(&err, SchemaError::Unsupported { keyword, path } if keyword == "x-kubernetes-validations" && path == "/properties/a"),
            "{err}"
        );
        let err = Schema::new(json!({"items": {"pattern": "("}})).expect_err("pattern");
        assert_eq!(err.to_string(), r#"schema at "/items/pattern" is invalid: "(" is not a "regex""#);
        assert!(Schema::new(json!({"properties": {"a": {"x-kubernetes-list-type": "map"}}})).is_ok());
    }

    #[test]
    fn json_schema_keywords_beyond_our_crds_are_enforced() {
        let schema = Schema::new(json!({
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                "hosts": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
            }
        }))
        .expect("schema");
        let mut v = json!({"replicas": 0, "hosts": ["a", "b", "c"], "tags": ["x", "x"]});
        let got: Vec<String> = schema.check(&mut v).into_iter().map(|f| f.message).collect();
        assert_eq!(
            got,
            vec![
                r#"hosts: ["a","b","c"] has more than 2 items"#,
                "replicas: 0 is less than the minimum of 1",
                r#"tags: ["x","x"] has non-unique elements"#,
            ]
        );
    }

    #[test]
    fn nullable_int_or_string_and_embedded_resources() {
        let schema = Schema::new(json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["A"], "nullable": true},
                "port": {"x-kubernetes-int-or-string": true},
                "route": {
                    "type": "object",
                    "nullable": true,
                    "properties": {"host": {"type": "string"}},
                    "anyOf": [{"required": ["host"]}]
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": true,
                    "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }
            }
        }))
        .expect("schema");
        let template = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"any": 1}});
        let mut v = json!({"mode": null, "route": null, "port": 80, "template": template});
        assert_eq!(schema.check(&mut v), vec![], "nulls pass where nullable, even an anyOf");
        let mut v = json!({"mode": "B", "route": {}, "port": true, "template": {"extra": 1}});
        let got: Vec<String> = schema.check(&mut v).into_iter().map(|f| f.message).collect();
        assert_eq!(
            got,
            vec![
                "unknown field template.extra: the API server drops it silently",
                r#"mode "B" is not one of "A", null"#,
                "port must be of type integer or string, got boolean true (quote it)",
                "route must satisfy one of: host is set",
            ]
        );
    }

    #[test]
    fn arrays_maps_and_int_or_string() {
        let schema = Schema::new(json!({
            "type": "object",
            "properties": {
                "list": {"type": "array", "items": {"type": "string", "enum": ["a"]}},
                "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                "port": {"x-kubernetes-int-or-string": true},
                "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }))
        .expect("schema");
        let mut v = json!({"list": ["a", "b"], "map": {"x": 1, "y": 1.5}, "port": "http", "open": {"any": 1}});
        let got: Vec<String> = schema.check(&mut v).into_iter().map(|f| f.message).collect();
        assert_eq!(got, vec![r#"list[1] "b" is not one of "a""#, "map.y must be of type integer, got number 1.5"]);
    }

    #[test]
    fn suggestions_use_edit_distance() {
        let keys = ["phoneNumber".to_owned(), "queue".to_owned()];
        assert_eq!(closest("phonenumber", &keys), Some("phoneNumber"));
        assert_eq!(closest("queu", &keys), Some("queue"));
        assert_eq!(closest("webhook", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
