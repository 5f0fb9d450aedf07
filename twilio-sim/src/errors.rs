//! Error types: [`SimError`] for the library API, [`ApiError`] for Twilio-shaped HTTP error bodies.

use serde_json::{json, Value};

/// An error of the simulator's Rust API (starting, seeding, console changes, fault rules).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving the listener failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A seed file could not be parsed.
    #[error("invalid seed file: {0}")]
    SeedParse(#[from] serde_yaml::Error),
    /// A seed file parsed but is inconsistent (unknown reference, duplicate, bad value).
    #[error("invalid seed: {0}")]
    Seed(String),
    /// The OpenAPI contract could not be loaded (strict mode).
    #[error("cannot load the Twilio OpenAPI contract: {0}")]
    Contract(String),
    /// A console change or lookup named something that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A console change carried an invalid value.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// A fault rule is invalid (e.g. a bad path regex).
    #[error("invalid fault rule: {0}")]
    InvalidFault(String),
}

/// A Twilio REST error response: `{"code","message","more_info","status"}` plus optional `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Twilio error code (e.g. 20003).
    pub code: u32,
    /// The `message` field.
    pub message: String,
    /// The optional `detail` field.
    pub detail: Option<String>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// A generic error with the given status, code and message.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), detail: None, headers: Vec::new() }
    }

    /// Adds a `detail` string.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 401 20003 "Authenticate" with a detail explaining why.
    pub fn authenticate(detail: impl Into<String>) -> Self {
        ApiError::new(401, 20003, "Authenticate").with_detail(detail)
    }

    /// 404 20404 "The requested resource <path> was not found".
    pub fn not_found(path: &str) -> Self {
        ApiError::new(404, 20404, format!("The requested resource {path} was not found"))
    }

    /// 405 20004 "Method not allowed".
    pub fn method_not_allowed() -> Self {
        ApiError::new(405, 20004, "Method not allowed")
    }

    /// 400 with the given code and message.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        ApiError::new(400, code, message)
    }

    /// 429 20429 "Too Many Requests".
    pub fn too_many_requests() -> Self {
        ApiError::new(429, 20429, "Too Many Requests")
    }

    /// The JSON body Twilio returns for this error.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        });
        if let (Some(detail), Some(obj)) = (&self.detail, body.as_object_mut()) {
            obj.insert("detail".into(), Value::String(detail.clone()));
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
