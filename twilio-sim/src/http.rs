//! The simulator's own small request/response types, independent of hyper.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::errors::ApiError;

/// A fully buffered incoming request.
#[derive(Debug, Clone)]
pub(crate) struct SimRequest {
    /// Upper-case method.
    pub method: String,
    /// Path without query string.
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SimRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// Whether the body is declared as `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.content_type().is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    }

    /// Whether the body is declared as JSON.
    pub fn is_json(&self) -> bool {
        self.content_type().is_some_and(|c| c.starts_with("application/json"))
    }

    /// Decoded query parameters (`+` decodes to a space, like any form decoder).
    pub fn query_params(&self) -> Params {
        Params::parse(self.query.as_deref().unwrap_or("").as_bytes())
    }

    /// Decoded form body parameters (empty when the body is not a form).
    pub fn form_params(&self) -> Params {
        if self.is_form() {
            Params::parse(&self.body)
        } else {
            Params::default()
        }
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::bad_request(20001, format!("Invalid JSON body: {e}")))
    }
}

/// Ordered `name=value` pairs from a query string or form body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes; undecodable input yields no pairs.
    pub fn parse(raw: &[u8]) -> Params {
        Params(serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).unwrap_or_default())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All values of `name`.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// A response before it is turned into a hyper response.
#[derive(Debug, Clone)]
pub(crate) struct SimResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// JSON body; empty for 204.
    pub body: Vec<u8>,
}

impl SimResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> SimResponse {
        SimResponse { status, headers: Vec::new(), body: serde_json::to_vec(value).unwrap_or_default() }
    }

    /// A 204 with no body.
    pub fn no_content() -> SimResponse {
        SimResponse { status: 204, headers: Vec::new(), body: Vec::new() }
    }

    /// A Twilio error response.
    pub fn error(err: &ApiError) -> SimResponse {
        let mut resp = SimResponse::json(err.status, &err.body());
        resp.headers.extend(err.headers.iter().cloned());
        resp
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> SimResponse {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<ApiError> for SimResponse {
    fn from(err: ApiError) -> Self {
        SimResponse::error(&err)
    }
}
