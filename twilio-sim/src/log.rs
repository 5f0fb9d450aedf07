//! The request log: one [`RequestRecord`] per Twilio or OAuth request (control calls are not
//! logged). Secrets never enter the log: the `Authorization` header is reduced to the principal,
//! and secret-bearing body fields are replaced by `"[REDACTED]"`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The placeholder stored instead of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Body and query keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "password",
    "secret",
    "auth_token",
    "authtoken",
    "access_token",
    "refresh_token",
    "verification_code",
];

/// Whether the value of `key` must be redacted.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str())
}

/// Which surface a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A Twilio REST API path.
    Twilio,
    /// The OAuth2 identity server stand-in (`/connect/...`, `/.well-known/...`).
    #[serde(rename = "oauth")]
    OAuth,
}

/// Whether a contract violation was found in the request or in the simulator's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationPhase {
    /// The client sent something the contract does not allow (answered 400 20001).
    Request,
    /// The simulator answered something the contract does not allow (a simulator bug).
    Response,
}

/// A contract violation recorded in strict mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRecord {
    /// `seq` of the request.
    pub seq: u64,
    /// Request or response.
    pub phase: ViolationPhase,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Matched operation, if any.
    pub operation_id: Option<String>,
    /// Stable rule name.
    pub rule: String,
    /// Human-readable message.
    pub message: String,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival order, from 1.
    pub seq: u64,
    /// Arrival time.
    pub time: DateTime<Utc>,
    /// When the response was sent or the connection dropped (after any injected latency).
    #[serde(default)]
    pub answered: Option<DateTime<Utc>>,
    /// Twilio or OAuth.
    pub kind: RequestKind,
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Decoded query parameters (secret values redacted).
    pub query_params: Vec<(String, String)>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Decoded form body (secret values redacted), for form requests.
    pub form: Option<Vec<(String, String)>>,
    /// Parsed JSON body (secret values redacted), for JSON requests.
    pub json: Option<Value>,
    /// Account the request addressed (path AccountSid, or the credentials' account).
    pub account_sid: Option<String>,
    /// Authenticated principal: `AC...`/`SK...` SID, or OAuth `client_id`. `None` when
    /// authentication failed or was not attempted.
    pub principal: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Twilio-Request-Id` sent back.
    pub request_id: String,
    /// Response status; `None` when the connection was dropped before a response was produced.
    pub status: Option<u16>,
    /// Whether the connection was dropped instead of sending the response.
    pub dropped: bool,
    /// Whether the client closed the connection before the answer was ready (e.g. its timeout
    /// expired during an injected delay); `status` is the handler's if it had run.
    #[serde(default)]
    pub abandoned: bool,
    /// The injected fault that shaped this request, if any (e.g. `latency 200ms`, `drop_after_apply`).
    pub fault: Option<String>,
    /// The simulator route that handled it (named like the spec's operationId), if any.
    pub route: Option<String>,
    /// The spec operationId from the contract checker (strict mode only).
    pub operation_id: Option<String>,
    /// Contract violations found for this request (strict mode only).
    pub violations: Vec<ViolationRecord>,
}

impl RequestRecord {
    /// Whether method and path are exactly these.
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path == path
    }

    /// The first decoded form value of `name`.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        self.form.as_ref()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first decoded query value of `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query_params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether this request can change state (anything but GET/HEAD/OPTIONS).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// Filters over a slice of records, for test assertions.
pub trait RequestRecords {
    /// Records with this method and exact path.
    fn to(&self, method: &str, path: &str) -> Vec<&RequestRecord>;
    /// Records whose route (operationId-style name, e.g. `UpdateIncomingPhoneNumber`) matches.
    fn route(&self, route: &str) -> Vec<&RequestRecord>;
    /// State-changing Twilio requests.
    fn writes(&self) -> Vec<&RequestRecord>;
}

impl RequestRecords for [RequestRecord] {
    fn to(&self, method: &str, path: &str) -> Vec<&RequestRecord> {
        self.iter().filter(|r| r.is(method, path)).collect()
    }

    fn route(&self, route: &str) -> Vec<&RequestRecord> {
        self.iter().filter(|r| r.route.as_deref() == Some(route)).collect()
    }

    fn writes(&self) -> Vec<&RequestRecord> {
        self.iter().filter(|r| r.kind == RequestKind::Twilio && r.is_write()).collect()
    }
}

/// Redacts secret values in decoded pairs.
pub(crate) fn redact_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| if is_secret_key(k) { (k.clone(), REDACTED.to_string()) } else { (k.clone(), v.clone()) })
        .collect()
}

/// Redacts secret values in a JSON document, recursively.
pub(crate) fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// The log store.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    next_seq: u64,
    records: Vec<RequestRecord>,
    violations: Vec<ViolationRecord>,
}

impl RequestLog {
    /// Reserves the next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Stores a finished record and its violations.
    pub fn push(&mut self, record: RequestRecord) {
        self.violations.extend(record.violations.iter().cloned());
        self.records.push(record);
    }

    /// Records in arrival order.
    pub fn records(&self) -> Vec<RequestRecord> {
        let mut out = self.records.clone();
        out.sort_by_key(|r| r.seq);
        out
    }

    /// Violations in arrival order.
    pub fn violations(&self) -> Vec<ViolationRecord> {
        let mut out = self.violations.clone();
        out.sort_by_key(|v| v.seq);
        out
    }

    pub fn clear_records(&mut self) {
        self.records.clear();
    }

    pub fn clear_violations(&mut self) {
        self.violations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_but_not_page_tokens() {
        let pairs =
            vec![("client_secret".to_string(), "s3cret".to_string()), ("PageToken".to_string(), "PA123".to_string())];
        let out = redact_pairs(&pairs);
        assert_eq!(out[0].1, REDACTED);
        assert_eq!(out[1].1, "PA123");
        let mut v = serde_json::json!({"configuration": {"verification_code": "123456"}});
        redact_json(&mut v);
        assert_eq!(v["configuration"]["verification_code"], REDACTED);
    }
}
