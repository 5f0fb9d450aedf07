//! Twilio's official OpenAPI contract (twilio-oai), used to check every request the simulator
//! receives and every response it returns.
//!
//! The simulator serves five specs on one listener ([`SPECS`]); the paths it indexes are
//! disjoint (`/2010-04-01/...`, messaging `/v1/Services...`, `/v2/...`, content `/v1/Content...`,
//! of the Conversations spec only `/v1/Configuration/Addresses...`, of the Accounts spec only
//! `/v1/AuthTokens...` and of the Monitor spec only `/v1/Alerts...`, [`PATH_PREFIXES`]:
//! Conversations' `/v1/Services/{Sid}` would otherwise shadow the Messaging Services on the one
//! host). [`Contract::check_request`] matches a request to
//! its operation and checks it; [`Contract::check_response`] checks what the simulator answers.
//! Violations carry a stable `rule` name:
//!
//! | rule | meaning |
//! |---|---|
//! | `unknown-path` | no path template of the specs matches |
//! | `method-not-allowed` | the template exists, the method does not |
//! | `pattern`, `enum`, `type`, `format`, `minimum`, `maximum`, `min-length`, `max-length` | a path/query/form/JSON value breaks its schema |
//! | `plus-decoding` | a phone number holds a space where E.164 has `+` (an unencoded `+`) |
//! | `unknown-parameter` | a query or form key the operation does not declare |
//! | `duplicate-parameter` | a non-array query or form key given more than once |
//! | `required` | a required query parameter, form field, JSON property or request body is absent |
//! | `content-type` | the request body's media type is not the one the operation declares |
//! | `unexpected-body` | a body where the operation (or a 204) has none |
//! | `invalid-json` | a body that should be JSON is not |
//! | `unknown-property` | a JSON key not declared on an object with declared `properties` |
//! | `missing-property` | a response object lacks a declared property (Twilio always sends every field) |
//! | `status` | a non-error status the operation does not declare |
//! | `error-shape` | an error body whose `status` disagrees with the HTTP status |
//! | `unknown-operation`, `spec-error` | the caller or the spec itself is inconsistent |
//!
//! See `docs/twilio.md` for what the specs leave open and what we assumed.

pub mod coverage;
mod paths;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use paths::Template;
use schema::{Mode, PatternCache, Tolerance, Validator};

/// The spec files (stems) the simulator serves, in `dir/<stem>.json`.
pub const SPECS: [&str; 7] = [
    "twilio_api_v2010",
    "twilio_messaging_v1",
    "twilio_messaging_v2",
    "twilio_conversations_v1",
    "twilio_content_v1",
    "twilio_accounts_v1",
    "twilio_monitor_v1",
];

/// Specs of which only paths under these prefixes are indexed (the others: every path).
pub const PATH_PREFIXES: &[(&str, &[&str])] = &[
    ("twilio_conversations_v1", &["/v1/Configuration/Addresses"]),
    ("twilio_accounts_v1", &["/v1/AuthTokens"]),
    ("twilio_monitor_v1", &["/v1/Alerts"]),
];

/// Whether `template` of `spec` is indexed.
fn indexed(spec: &str, template: &str) -> bool {
    PATH_PREFIXES.iter().find(|(s, _)| *s == spec).is_none_or(|(_, ps)| ps.iter().any(|p| template.starts_with(p)))
}

/// Environment variable naming the directory that holds the spec files.
pub const SPEC_DIR_ENV: &str = "TWILIO_OAI_SPEC_DIR";

/// The twilio-oai release (npm `@twilio-alpha/mcp` version) that `hack/fetch-twilio-specs.sh` pins.
pub const SPEC_VERSION: &str = "0.7.0";

/// HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One request as the simulator received it, before any handler ran.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, upper case (`GET`, `POST`, `DELETE`).
    pub method: &'a str,
    /// The path without the query string, e.g. `/2010-04-01/Accounts/AC.../IncomingPhoneNumbers.json`.
    pub path: &'a str,
    /// The raw query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The raw request body.
    pub body: &'a [u8],
}

/// The spec operation a request was matched to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperationRef {
    /// The spec file's stem, e.g. `twilio_api_v2010`.
    pub spec: String,
    /// The OpenAPI `operationId`, e.g. `UpdateIncomingPhoneNumber`.
    pub operation_id: String,
    /// The templated spec path, e.g. `/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json`.
    pub path_template: String,
    /// Upper-case HTTP method.
    pub method: String,
}

/// A broken rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A stable rule name, e.g. `unknown-parameter`, `enum`, `pattern`, `content-type`, `unknown-path`.
    pub rule: String,
    /// A human-readable message naming the parameter or JSON pointer and what was expected.
    pub message: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { rule: rule.into(), message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.rule, self.message)
    }
}

impl std::error::Error for Violation {}

/// Everything [`Contract::inspect_request`] found about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestReport {
    /// The matched operation, when path and method matched (even if parameters are wrong).
    pub operation: Option<OperationRef>,
    /// Every broken rule, in request order (path, query, content type, body).
    pub violations: Vec<Violation>,
}

/// Why the specs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or one of the spec files does not exist.
    #[error(
        "Twilio OpenAPI spec not found at {path}: run `make twilio-specs` (or `hack/fetch-twilio-specs.sh`), \
         or set {SPEC_DIR_ENV} to a directory holding twilio_api_v2010.json, twilio_messaging_v1.json, \
         twilio_messaging_v2.json, twilio_conversations_v1.json, twilio_content_v1.json, twilio_accounts_v1.json \
         and twilio_monitor_v1.json"
    )]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// Neither `TWILIO_OAI_SPEC_DIR`, `TWILIO_OAI_CACHE`, `XDG_CACHE_HOME` nor `HOME` is set.
    #[error(
        "cannot locate the twilio-oai cache: set {SPEC_DIR_ENV} (or HOME); run `make twilio-specs` \
         (or `hack/fetch-twilio-specs.sh`) to fetch the specs"
    )]
    NoCacheDir,
    /// A spec file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A spec file is not JSON.
    #[error("parsing {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A spec file is JSON but not the OpenAPI document we expect.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The loaded contract: the operations of the specs the simulator serves.
///
/// Cheap to clone (shared). Loading the same directory twice in one process reuses the
/// parsed specs.
#[derive(Clone)]
pub struct Contract {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    specs: Vec<SpecDoc>,
    /// All path templates, most specific first.
    routes: Vec<Route>,
    /// Operations by (spec, METHOD, template).
    ops: HashMap<(String, String, String), OpEntry>,
    /// (spec, operationId) to the key of `ops`.
    by_id: HashMap<(String, String), (String, String, String)>,
    patterns: PatternCache,
    error_schema: Value,
}

struct SpecDoc {
    name: String,
    doc: Value,
}

struct Route {
    spec: usize,
    template_text: String,
    template: Template,
    /// Upper-case method to operationId.
    methods: BTreeMap<String, String>,
}

struct OpEntry {
    spec: usize,
    operation_id: String,
    /// Lower-case method, the key in the spec's path item.
    method_key: String,
    /// Undeclared keys used by the request body examples.
    request_tolerance: Tolerance,
    /// Per response status key: keys the examples add or omit.
    response_tolerance: HashMap<String, Tolerance>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract").field("dir", &self.inner.dir).field("operations", &self.inner.ops.len()).finish()
    }
}

/// Contracts already parsed in this process, by canonical directory.
fn cache() -> &'static Mutex<HashMap<PathBuf, Arc<Inner>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Inner>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Contract {
    /// Loads the [`SPECS`] (`twilio_api_v2010.json`, …) from `dir`.
    pub fn load(dir: &Path) -> Result<Contract, String> {
        Contract::try_load(dir).map_err(|e| e.to_string())
    }

    /// Loads the specs from [`Contract::default_dir`]; the error says how to fetch them.
    pub fn load_default() -> Result<Contract, String> {
        Contract::default_dir().and_then(|dir| Contract::try_load(&dir)).map_err(|e| e.to_string())
    }

    /// The spec directory: `$TWILIO_OAI_SPEC_DIR`, else the cache of `hack/fetch-twilio-specs.sh`,
    /// `${TWILIO_OAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator/twilio-oai}/0.7.0/json`.
    pub fn default_dir() -> Result<PathBuf, LoadError> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = var(SPEC_DIR_ENV) {
            return Ok(dir);
        }
        let root = match var("TWILIO_OAI_CACHE") {
            Some(root) => root,
            None => var("XDG_CACHE_HOME")
                .or_else(|| var("HOME").map(|home| home.join(".cache")))
                .ok_or(LoadError::NoCacheDir)?
                .join("whatsapp-operator")
                .join("twilio-oai"),
        };
        Ok(root.join(SPEC_VERSION).join("json"))
    }

    /// Like [`Contract::load`], with a typed error.
    pub fn try_load(dir: &Path) -> Result<Contract, LoadError> {
        let key = dir.canonicalize().map_err(|_| LoadError::NotFound { path: dir.to_path_buf() })?;
        if let Some(inner) = lock(cache()).get(&key) {
            return Ok(Contract { inner: Arc::clone(inner) });
        }
        let inner = Arc::new(Inner::load(&key)?);
        lock(cache()).insert(key, Arc::clone(&inner));
        Ok(Contract { inner })
    }

    /// The directory the specs were loaded from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The operation `operation_id` of `spec` (a stem of [`SPECS`]), if the spec declares it.
    pub fn operation(&self, spec: &str, operation_id: &str) -> Option<OperationRef> {
        let key = self.inner.by_id.get(&(spec.to_string(), operation_id.to_string()))?;
        Some(self.inner.op_ref(key))
    }

    /// Every operation of the served specs, sorted by spec, template and method.
    pub fn operations(&self) -> Vec<OperationRef> {
        let mut all: Vec<OperationRef> = self.inner.ops.keys().map(|key| self.inner.op_ref(key)).collect();
        all.sort_by(|a, b| (&a.spec, &a.path_template, &a.method).cmp(&(&b.spec, &b.path_template, &b.method)));
        all
    }

    /// Matches a request to its operation and checks path params, query params, content type and body.
    ///
    /// On several violations the first one's rule is returned and the message lists them all.
    pub fn check_request(&self, req: &RequestParts<'_>) -> Result<OperationRef, Violation> {
        let report = self.inspect_request(req);
        match (report.operation, combine(report.violations)) {
            (_, Some(violation)) => Err(violation),
            (Some(op), None) => Ok(op),
            (None, None) => Err(Violation::new("unknown-path", format!("{} {}", req.method, req.path))),
        }
    }

    /// Like [`Contract::check_request`], but returns the matched operation (if any) together with
    /// every violation.
    pub fn inspect_request(&self, req: &RequestParts<'_>) -> RequestReport {
        self.inner.inspect_request(req)
    }

    /// Checks a response body (JSON, or empty for 204) against the operation's schema for `status`.
    ///
    /// A status the operation does not declare is checked, if it is 4xx/5xx, against the classic
    /// Twilio error shape `{code, message, more_info, status, detail?, details?}`.
    pub fn check_response(&self, op: &OperationRef, status: u16, body: &[u8]) -> Result<(), Violation> {
        match combine(self.response_violations(op, status, body)) {
            Some(violation) => Err(violation),
            None => Ok(()),
        }
    }

    /// Every violation of a response; see [`Contract::check_response`].
    pub fn response_violations(&self, op: &OperationRef, status: u16, body: &[u8]) -> Vec<Violation> {
        self.inner.response_violations(op, status, body)
    }
}

/// Locks a mutex, ignoring poisoning (the guarded data stays consistent: inserts only).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One violation standing for all: the first one's rule, every message.
fn combine(mut violations: Vec<Violation>) -> Option<Violation> {
    if violations.is_empty() {
        return None;
    }
    let first = violations.remove(0);
    if violations.is_empty() {
        return Some(first);
    }
    let shown: Vec<String> = violations.iter().take(5).map(ToString::to_string).collect();
    let more = violations.len().saturating_sub(shown.len());
    let mut message = format!("{}; also: {}", first.message, shown.join("; "));
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    Some(Violation { rule: first.rule, message })
}

/// The media type of a `Content-Type` value, lower case, without parameters.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%2B` a plus), keeping
/// repeated keys and empty values.
fn decode_form(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes).map_err(|e| e.to_string())
}

/// Groups decoded pairs by key, keeping first-seen order.
fn group(pairs: &[(String, String)]) -> Vec<(&str, Vec<&str>)> {
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for (key, value) in pairs {
        match grouped.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value),
            None => grouped.push((key, vec![value])),
        }
    }
    grouped
}

/// A declared query parameter or form field.
struct Declared<'a> {
    schema: &'a Value,
    required: bool,
}

impl Inner {
    fn load(dir: &Path) -> Result<Inner, LoadError> {
        let mut specs = Vec::new();
        for name in SPECS {
            let path = dir.join(format!("{name}.json"));
            if !path.is_file() {
                return Err(LoadError::NotFound { path });
            }
            let text = std::fs::read(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
            let doc: Value =
                serde_json::from_slice(&text).map_err(|source| LoadError::Json { path: path.clone(), source })?;
            if !doc.get("paths").is_some_and(Value::is_object) {
                return Err(LoadError::Invalid { path, reason: "no `paths` object".into() });
            }
            specs.push(SpecDoc { name: name.to_string(), doc });
        }
        let patterns = PatternCache::default();
        let mut routes = Vec::new();
        let mut ops = HashMap::new();
        let mut by_id = HashMap::new();
        for (index, spec) in specs.iter().enumerate() {
            let file = dir.join(format!("{}.json", spec.name));
            let Some(items) = spec.doc.get("paths").and_then(Value::as_object) else {
                continue;
            };
            for (template_text, item) in items.iter().filter(|(t, _)| indexed(&spec.name, t)) {
                let mut methods = BTreeMap::new();
                for method_key in METHODS {
                    let Some(op) = item.get(method_key) else {
                        continue;
                    };
                    let operation_id =
                        op.get("operationId").and_then(Value::as_str).ok_or_else(|| LoadError::Invalid {
                            path: file.clone(),
                            reason: format!("{method_key} {template_text}: no operationId"),
                        })?;
                    let method = method_key.to_ascii_uppercase();
                    methods.insert(method.clone(), operation_id.to_string());
                    let key = (spec.name.clone(), method, template_text.clone());
                    by_id.insert((spec.name.clone(), operation_id.to_string()), key.clone());
                    let (request_tolerance, response_tolerance) = learn_tolerance(&spec.doc, &patterns, op);
                    ops.insert(
                        key,
                        OpEntry {
                            spec: index,
                            operation_id: operation_id.to_string(),
                            method_key: method_key.to_string(),
                            request_tolerance,
                            response_tolerance,
                        },
                    );
                }
                routes.push(Route {
                    spec: index,
                    template_text: template_text.clone(),
                    template: Template::parse(template_text),
                    methods,
                });
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.template.specificity()));
        Ok(Inner { dir: dir.to_path_buf(), specs, routes, ops, by_id, patterns, error_schema: error_schema() })
    }

    fn op_ref(&self, key: &(String, String, String)) -> OperationRef {
        let operation_id = self.ops.get(key).map(|e| e.operation_id.clone()).unwrap_or_default();
        OperationRef { spec: key.0.clone(), operation_id, path_template: key.2.clone(), method: key.1.clone() }
    }

    fn op_value(&self, entry: &OpEntry, template: &str) -> Option<&Value> {
        self.specs[entry.spec].doc.get("paths")?.get(template)?.get(&entry.method_key)
    }

    fn inspect_request(&self, req: &RequestParts<'_>) -> RequestReport {
        let method = req.method.to_ascii_uppercase();
        let mut first_failure: Option<Vec<Violation>> = None;
        for route in &self.routes {
            let Some(params) = route.template.matches(req.path) else {
                continue;
            };
            let spec = &self.specs[route.spec];
            let wanted = route.methods.get(&method);
            // Path parameter schemas come from the requested method's operation, else any.
            let schema_method = wanted.map(|_| method.clone()).or_else(|| route.methods.keys().next().cloned());
            let schema_op = schema_method.and_then(|m| {
                let entry = self.ops.get(&(spec.name.clone(), m, route.template_text.clone()))?;
                self.op_value(entry, &route.template_text)
            });
            let mut v = Validator::new(&spec.doc, &self.patterns, Mode::Request, None);
            for (name, value) in &params {
                if let Some(schema) = schema_op.and_then(|op| declared_param(&spec.doc, op, "path", name)) {
                    v.text(schema.schema, value, &format!("path parameter `{name}`"));
                }
            }
            if !v.out.is_empty() {
                first_failure.get_or_insert(v.out);
                continue;
            }
            let Some(operation_id) = wanted else {
                let allowed: Vec<&str> = route.methods.keys().map(String::as_str).collect();
                return RequestReport {
                    operation: None,
                    violations: vec![Violation::new(
                        "method-not-allowed",
                        format!("{method} {}: {} allows {}", req.path, route.template_text, allowed.join(", ")),
                    )],
                };
            };
            let key = (spec.name.clone(), method.clone(), route.template_text.clone());
            let operation = OperationRef {
                spec: spec.name.clone(),
                operation_id: operation_id.clone(),
                path_template: route.template_text.clone(),
                method: method.clone(),
            };
            let violations = match (self.ops.get(&key), schema_op) {
                (Some(entry), Some(op)) => self.check_operation(spec, entry, op, req),
                _ => vec![Violation::new(
                    "spec-error",
                    format!("{method} {}: operation not indexed", route.template_text),
                )],
            };
            return RequestReport { operation: Some(operation), violations };
        }
        let violations = first_failure.unwrap_or_else(|| {
            vec![Violation::new(
                "unknown-path",
                format!("{method} {}: no path of {} matches", req.path, SPECS.join(", ")),
            )]
        });
        RequestReport { operation: None, violations }
    }

    /// Query, content type and body checks of a matched operation.
    fn check_operation(&self, spec: &SpecDoc, entry: &OpEntry, op: &Value, req: &RequestParts<'_>) -> Vec<Violation> {
        let doc = &spec.doc;
        let mut v = Validator::new(doc, &self.patterns, Mode::Request, Some(&entry.request_tolerance));

        // Query parameters.
        let query = match decode_form(req.query.unwrap_or_default().as_bytes()) {
            Ok(pairs) => pairs,
            Err(e) => {
                v.out.push(Violation::new("invalid-query", format!("query string is not form-encoded: {e}")));
                Vec::new()
            }
        };
        let declared: Vec<(String, Declared<'_>)> = op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| schema::resolve(doc, p).ok())
            .filter(|p| p.schema.get("in").and_then(Value::as_str) == Some("query"))
            .filter_map(|p| {
                let name = p.schema.get("name")?.as_str()?.to_string();
                let required = p.schema.get("required").and_then(Value::as_bool) == Some(true);
                Some((name, Declared { schema: p.schema.get("schema")?, required }))
            })
            .collect();
        check_pairs(&mut v, &query, &declared, "query parameter", &entry.request_tolerance);

        // Body.
        let request_body = op.get("requestBody").and_then(|b| schema::resolve(doc, b).ok()).map(|r| r.schema);
        let Some(request_body) = request_body else {
            if !req.body.is_empty() {
                v.out.push(Violation::new(
                    "unexpected-body",
                    format!("{} takes no request body, got {} bytes", entry.operation_id, req.body.len()),
                ));
            }
            return v.out;
        };
        let content = request_body.get("content").and_then(Value::as_object);
        let declared_types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
        let body_required = request_body.get("required").and_then(Value::as_bool) == Some(true);
        let media = match req.content_type.map(essence) {
            Some(t) => t,
            None if req.body.is_empty() => match declared_types.first() {
                Some(t) if body_required => {
                    let message = format!("a request body ({t}) is required");
                    v.out.push(Violation::new("required", message));
                    return v.out;
                }
                // Nothing sent: an empty form is still checked for required fields.
                Some(t) if t.as_str() == "application/x-www-form-urlencoded" => t.to_string(),
                _ => return v.out,
            },
            None => String::new(),
        };
        let Some(media_schema) = content.and_then(|c| c.get(&media)).and_then(|m| m.get("schema")) else {
            let names: Vec<&str> = declared_types.iter().map(|s| s.as_str()).collect();
            let got = if media.is_empty() { "no Content-Type".to_string() } else { media };
            v.out.push(Violation::new(
                "content-type",
                format!("{} expects a body of type {}, got {got}", entry.operation_id, names.join(" or ")),
            ));
            return v.out;
        };
        match media.as_str() {
            "application/x-www-form-urlencoded" => {
                let pairs = match decode_form(req.body) {
                    Ok(pairs) => pairs,
                    Err(e) => {
                        v.out.push(Violation::new("invalid-form", format!("body is not form-encoded: {e}")));
                        return v.out;
                    }
                };
                let Ok(resolved) = schema::resolve(doc, media_schema) else {
                    return v.out;
                };
                let required: Vec<&str> = resolved
                    .schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let fields: Vec<(String, Declared<'_>)> = resolved
                    .schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(name, schema)| {
                        (name.clone(), Declared { schema, required: required.contains(&name.as_str()) })
                    })
                    .collect();
                check_pairs(&mut v, &pairs, &fields, "form parameter", &entry.request_tolerance);
            }
            "application/json" => {
                if req.body.is_empty() {
                    if body_required {
                        v.out.push(Violation::new("required", "a JSON request body is required"));
                    }
                    return v.out;
                }
                match serde_json::from_slice::<Value>(req.body) {
                    Ok(value) => v.json(media_schema, &value, "body"),
                    Err(e) => v.out.push(Violation::new("invalid-json", format!("body is not JSON: {e}"))),
                }
            }
            other => {
                // No other media types are declared by the served specs.
                tracing::debug!(media = other, "request body of an unchecked media type");
            }
        }
        v.out
    }

    fn response_violations(&self, op: &OperationRef, status: u16, body: &[u8]) -> Vec<Violation> {
        let key = (op.spec.clone(), op.method.to_ascii_uppercase(), op.path_template.clone());
        let Some((entry, value)) = self.ops.get(&key).and_then(|e| Some((e, self.op_value(e, &op.path_template)?)))
        else {
            return vec![Violation::new(
                "unknown-operation",
                format!("{} {} {} is not an operation of the contract", op.spec, op.method, op.path_template),
            )];
        };
        let doc = &self.specs[entry.spec].doc;
        let responses = value.get("responses").and_then(Value::as_object);
        let status_key = status.to_string();
        let declared = responses.and_then(|r| {
            r.get(&status_key)
                .map(|x| (status_key.clone(), x))
                .or_else(|| r.get("default").map(|x| ("default".to_string(), x)))
        });
        let Some((status_key, response)) = declared else {
            if status >= 400 {
                return self.check_error_body(status, body);
            }
            let known: Vec<&String> = responses.map(|r| r.keys().collect()).unwrap_or_default();
            let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
            return vec![Violation::new(
                "status",
                format!("{} does not declare status {status} (declares {})", entry.operation_id, known.join(", ")),
            )];
        };
        let Ok(response) = schema::resolve(doc, response).map(|r| r.schema) else {
            return vec![Violation::new(
                "spec-error",
                format!("{}: unresolvable response {status_key}", entry.operation_id),
            )];
        };
        let content = response.get("content").and_then(Value::as_object).filter(|c| !c.is_empty());
        let media_schema =
            content.and_then(|c| c.get("application/json").or_else(|| c.values().next())).and_then(|m| m.get("schema"));
        let Some(media_schema) = media_schema.filter(|_| status != 204) else {
            if body.is_empty() {
                return Vec::new();
            }
            return vec![Violation::new(
                "unexpected-body",
                format!("{} {status} has no body in the spec, got {} bytes", entry.operation_id, body.len()),
            )];
        };
        let parsed = match serde_json::from_slice::<Value>(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                return vec![Violation::new(
                    "invalid-json",
                    format!("{} {status} body is not JSON: {e}", entry.operation_id),
                )]
            }
        };
        let tolerance = entry.response_tolerance.get(&status_key);
        let mut v = Validator::new(doc, &self.patterns, Mode::Response, tolerance);
        v.json(media_schema, &parsed, "body");
        v.out
    }

    /// Checks an error body against the classic Twilio error shape.
    fn check_error_body(&self, status: u16, body: &[u8]) -> Vec<Violation> {
        let parsed = match serde_json::from_slice::<Value>(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                return vec![Violation::new(
                    "invalid-json",
                    format!("error body ({status}) must be Twilio's JSON error object {{code, message, more_info, status}}: {e}"),
                )]
            }
        };
        let empty = Value::Null;
        let mut v = Validator::new(&empty, &self.patterns, Mode::Request, None);
        v.json(&self.error_schema, &parsed, "error body");
        let mut out = v.out;
        if let Some(reported) = parsed.get("status").and_then(Value::as_u64) {
            if reported != u64::from(status) {
                out.push(Violation::new(
                    "error-shape",
                    format!("error body /status is {reported} but the HTTP status is {status}"),
                ));
            }
        }
        out
    }
}

/// Checks decoded query or form pairs against the declared parameters.
fn check_pairs(
    v: &mut Validator<'_>,
    pairs: &[(String, String)],
    declared: &[(String, Declared<'_>)],
    what: &str,
    tolerance: &Tolerance,
) {
    for (name, values) in group(pairs) {
        let Some((_, param)) = declared.iter().find(|(n, _)| n == name) else {
            if !tolerance.extra.contains(&(String::new(), name.to_string())) {
                let known: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
                let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                v.out.push(Violation::new(
                    "unknown-parameter",
                    format!("{what} `{name}` is not declared (declared: {known})"),
                ));
            }
            continue;
        };
        let at = format!("{what} `{name}`");
        let resolved = schema::resolve(v.doc(), param.schema).ok();
        if resolved.and_then(|r| r.ty()) == Some("array") {
            if let Some(items) = resolved.and_then(|r| r.schema.get("items")) {
                for value in values {
                    v.text(items, value, &at);
                }
            }
        } else {
            if values.len() > 1 {
                v.out.push(Violation::new(
                    "duplicate-parameter",
                    format!("{at} is given {} times; it takes one value", values.len()),
                ));
            }
            v.text(param.schema, values[0], &at);
        }
    }
    for (name, param) in declared {
        if param.required && !pairs.iter().any(|(k, _)| k == name) {
            v.out.push(Violation::new("required", format!("{what} `{name}` is required")));
        }
    }
}

/// The parameter `name` declared `in` a location by an operation.
fn declared_param<'a>(doc: &'a Value, op: &'a Value, location: &str, name: &str) -> Option<Declared<'a>> {
    op.get("parameters")?.as_array()?.iter().filter_map(|p| schema::resolve(doc, p).ok()).find_map(|p| {
        let s = p.schema;
        (s.get("in")?.as_str()? == location && s.get("name")?.as_str()? == name).then(|| Declared {
            schema: s.get("schema").unwrap_or(&Value::Null),
            required: s.get("required").and_then(Value::as_bool) == Some(true),
        })
    })
}

/// Learns, from an operation's examples, which undeclared keys its request examples use and
/// which keys its response examples add or leave out.
fn learn_tolerance(doc: &Value, patterns: &PatternCache, op: &Value) -> (Tolerance, HashMap<String, Tolerance>) {
    let examples = media_examples;
    let mut request = Tolerance::default();
    let body = op.get("requestBody").and_then(|b| schema::resolve(doc, b).ok()).map(|r| r.schema);
    for media in body.and_then(|b| b.get("content")).and_then(Value::as_object).into_iter().flatten().map(|(_, m)| m) {
        let Some(schema) = media.get("schema") else {
            continue;
        };
        for example in examples(media) {
            let mut learner = Validator::learning(doc, patterns, Mode::Request, &mut request);
            learner.json(schema, example, "example");
        }
    }
    let mut responses = HashMap::new();
    for (status, response) in op.get("responses").and_then(Value::as_object).into_iter().flatten() {
        let mut tolerance = Tolerance::default();
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            continue;
        };
        for media in content.values() {
            let Some(schema) = media.get("schema") else {
                continue;
            };
            for example in examples(media) {
                let mut learner = Validator::learning(doc, patterns, Mode::Response, &mut tolerance);
                learner.json(schema, example, "example");
            }
        }
        responses.insert(status.clone(), tolerance);
    }
    (request, responses)
}

/// The `examples.*.value`s and the `example` of a media type object.
fn media_examples(media: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = media
        .get("examples")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(_, e)| e.get("value"))
        .collect();
    all.extend(media.get("example"));
    all
}

/// The classic Twilio REST error body, used for error statuses the spec does not declare.
/// Sources: twilio-go `client/error.go` (`TwilioRestError`), real 401/404 bodies.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "more_info", "status"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "more_info": {"type": "string", "format": "uri"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "details": {"type": "object"}
        }
    })
}

#[cfg(test)]
mod tests;
