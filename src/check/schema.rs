//! A validator for the structural-schema subset our CRDs use, applied to a CRD's own
//! `openAPIV3Schema` so that `check` enforces exactly what the API server enforces.
//!
//! Like the API server it first prunes unknown fields and non-nullable nulls, then applies
//! `default`s, then validates: `type`, `required`, `properties`, `additionalProperties`,
//! `items`, `pattern`, `enum`, `minLength`/`maxLength`, `nullable` and `anyOf`. `format` and
//! `x-kubernetes-*` extensions are not checked. A schema using any other keyword is refused
//! when the validator is built, so a new kind of rule cannot be skipped silently.

use std::collections::{HashMap, HashSet};
use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

use super::report::Severity;

/// The keywords the validator understands (plus every `x-kubernetes-*` extension).
const KEYWORDS: [&str; 16] = [
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "pattern",
    "enum",
    "minLength",
    "maxLength",
    "nullable",
    "anyOf",
    "default",
    "description",
    "title",
    "format",
    "example",
];

/// Fields every object has besides its schema's: the API server handles them itself.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One step of a path into a document: an object key or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path into a document, displayed as `spec.twilio.accountSid` or `items[0].spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
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
    /// The schema uses a keyword the validator does not implement.
    #[error("schema at {path:?} uses {keyword:?}, which the checker does not implement")]
    Unsupported {
        /// Where in the schema.
        path: String,
        /// The keyword.
        keyword: String,
    },
    /// A `pattern` does not compile.
    #[error("schema at {path:?} has an invalid pattern {pattern:?}: {source}")]
    Pattern {
        /// Where in the schema.
        path: String,
        /// The pattern.
        pattern: String,
        /// The cause.
        #[source]
        source: regex::Error,
    },
    /// A (sub-)schema is not a JSON object.
    #[error("schema at {path:?} is not an object")]
    NotAnObject {
        /// Where in the schema.
        path: String,
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
    root: Value,
    patterns: HashMap<String, Regex>,
}

impl Schema {
    /// Compiles a schema given as JSON (e.g. a CRD version's `openAPIV3Schema`).
    pub fn new(root: Value) -> Result<Self, SchemaError> {
        let mut patterns = HashMap::new();
        compile(&root, "", &mut patterns)?;
        Ok(Self { root, patterns })
    }

    /// Prunes, defaults and validates a whole object (its `apiVersion`, `kind` and `metadata`
    /// are left to the caller). `value` is left as the API server would store it.
    pub fn check(&self, value: &mut Value) -> Vec<Finding> {
        let mut walk = Walk { patterns: &self.patterns, findings: Vec::new(), defaulted: HashSet::new() };
        walk.prune_and_default(&self.root, value, &FieldPath::default(), true);
        walk.validate(&self.root, value, &FieldPath::default());
        walk.findings
    }
}

fn compile(schema: &Value, path: &str, patterns: &mut HashMap<String, Regex>) -> Result<(), SchemaError> {
    let Value::Object(s) = schema else {
        return Err(SchemaError::NotAnObject { path: path.to_owned() });
    };
    for (keyword, sub) in s {
        if !KEYWORDS.contains(&keyword.as_str()) && !keyword.starts_with("x-kubernetes-") {
            return Err(SchemaError::Unsupported { path: path.to_owned(), keyword: keyword.clone() });
        }
        match (keyword.as_str(), sub) {
            ("properties", Value::Object(props)) => {
                for (name, p) in props {
                    compile(p, &format!("{path}.{name}"), patterns)?;
                }
            }
            ("items", items) => compile(items, &format!("{path}[]"), patterns)?,
            ("additionalProperties", Value::Object(_)) => compile(sub, &format!("{path}.*"), patterns)?,
            ("anyOf", Value::Array(branches)) => {
                for (i, b) in branches.iter().enumerate() {
                    compile(b, &format!("{path}(anyOf {i})"), patterns)?;
                }
            }
            ("pattern", Value::String(p)) if !patterns.contains_key(p) => {
                let re = Regex::new(p).map_err(|source| SchemaError::Pattern {
                    path: path.to_owned(),
                    pattern: p.clone(),
                    source,
                })?;
                patterns.insert(p.clone(), re);
            }
            _ => {}
        }
    }
    Ok(())
}

struct Walk<'a> {
    patterns: &'a HashMap<String, Regex>,
    findings: Vec<Finding>,
    defaulted: HashSet<FieldPath>,
}

impl Walk<'_> {
    fn push(&mut self, severity: Severity, at: &FieldPath, message: String) {
        self.findings.push(Finding { severity, at: at.clone(), message });
    }

    /// What the API server does before validation: drop unknown fields and nulls that the
    /// schema does not allow, then fill in defaults (and default inside what was filled in).
    fn prune_and_default(&mut self, schema: &Value, value: &mut Value, path: &FieldPath, root: bool) {
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
                let open = preserve || additional.is_some_and(|a| a.is_object() || a == &Value::Bool(true));
                if !open && (props.is_some() || schema.get("type") == Some(&Value::from("object"))) {
                    let known =
                        |k: &str| props.is_some_and(|p| p.contains_key(k)) || (root && ROOT_FIELDS.contains(&k));
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

    fn validate(&mut self, schema: &Value, value: &Value, path: &FieldPath) {
        if value.is_null() && nullable(schema) {
            return;
        }
        let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if int_or_string {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                let message = format!("{} must be an integer or a string, got {}", shown(path), describe(value));
                return self.push(Severity::Error, path, message);
            }
        } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            if !has_type(value, expected) {
                let hint =
                    if expected == "string" && (value.is_number() || value.is_boolean()) { " (quote it)" } else { "" };
                let message = format!("{} must be of type {expected}, got {}{hint}", shown(path), describe(value));
                return self.push(Severity::Error, path, message);
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(render).collect();
                let message = format!("{} {} is not one of {}", shown(path), render(value), list.join(", "));
                self.push(Severity::Error, path, message);
            }
        }
        match value {
            Value::String(s) => self.validate_string(schema, s, path),
            Value::Object(map) => self.validate_object(schema, map, path),
            Value::Array(items) => {
                if let Some(sub) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(sub, item, &path.index(i));
                    }
                }
            }
            _ => {}
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            self.validate_any_of(branches, value, path);
        }
    }

    fn validate_string(&mut self, schema: &Value, s: &str, path: &FieldPath) {
        let len = s.chars().count();
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if (len as u64) < min {
                let message = format!("{} {} is shorter than {min} characters", shown(path), render_str(s));
                self.push(Severity::Error, path, message);
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len as u64 > max {
                let message = format!("{} is longer than {max} characters ({len})", shown(path));
                self.push(Severity::Error, path, message);
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if self.patterns.get(pattern).is_some_and(|re| !re.is_match(s)) {
                let message = format!("{} {} does not match {pattern}", shown(path), render_str(s));
                self.push(Severity::Error, path, message);
            }
        }
    }

    fn validate_object(&mut self, schema: &Value, map: &Map<String, Value>, path: &FieldPath) {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = required.as_str().filter(|k| !map.contains_key(*k)) {
                let message = format!("missing required field {}", path.key(key));
                self.push(Severity::Error, path, message);
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, child) in map {
            if let Some(sub) = props.and_then(|p| p.get(key)).or(additional) {
                self.validate(sub, child, &path.key(key));
            }
        }
    }

    /// Value validation only, as in structural schemas: the value must pass at least one branch.
    fn validate_any_of(&mut self, branches: &[Value], value: &Value, path: &FieldPath) {
        let passes = |branch: &Value| {
            let mut probe = Walk { patterns: self.patterns, findings: Vec::new(), defaulted: HashSet::new() };
            probe.validate(branch, value, path);
            !probe.findings.iter().any(|f| f.severity == Severity::Error)
        };
        if branches.is_empty() || branches.iter().any(passes) {
            return;
        }
        let alternatives: Vec<String> = branches.iter().map(describe_branch).collect();
        let mut message = format!("{} must satisfy one of: {}", shown(path), alternatives.join(", or "));
        // Show the current value of each field a branch pins to a value.
        let mut notes: Vec<String> = Vec::new();
        for branch in branches {
            for (key, sub) in branch.get("properties").and_then(Value::as_object).into_iter().flatten() {
                let current = value.get(key).filter(|_| sub.get("enum").is_some());
                if let Some(current) = current {
                    let defaulted = if self.defaulted.contains(&path.key(key)) { ", the default" } else { "" };
                    let note = format!("{key} is {}{defaulted}", render(current));
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
        }
        if !notes.is_empty() {
            message.push_str(&format!(" ({})", notes.join("; ")));
        }
        self.push(Severity::Error, path, message);
    }
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

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
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
    fn every_crd_schema_is_within_the_supported_subset() {
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
                r#"error: spec.instance "CRM" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ @spec.instance"#,
                r#"error: spec.mode "sandbox" is not one of "Business", "Sandbox" @spec.mode"#,
                r#"error: spec.phoneNumber "+1 415" does not match ^\+[1-9][0-9]{1,14}$ @spec.phoneNumber"#,
                r#"error: spec.queue "" is shorter than 1 characters @spec.queue"#,
                r#"error: spec.suspend must be of type boolean, got string "maybe" @spec.suspend"#,
                r#"error: spec.webhook.url "http://receiver.example.com/hook" does not match ^https://[^\s/?#@]+([/?#][^\s]*)?$ @spec.webhook.url"#,
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
    fn unsupported_keywords_and_bad_patterns_are_refused() {
        let err = Schema::new(json!({"properties": {"a": {"type": "integer", "minimum": 1}}})).expect_err("minimum");
        assert!(matches!(&err, SchemaError::Unsupported { keyword, path } if keyword == "minimum" && path == ".a"));
        let err = Schema::new(json!({"items": {"pattern": "("}})).expect_err("pattern");
        assert!(matches!(err, SchemaError::Pattern { .. }));
        assert!(Schema::new(json!({"properties": {"a": {"x-kubernetes-list-type": "map"}}})).is_ok());
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
