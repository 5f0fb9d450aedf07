//! Twilio's official OpenAPI contract (twilio-oai), used to check every request the simulator
//! receives and every response it returns.
//!
//! INTERFACE AGREED BETWEEN THE SIMULATOR SERVER AND THIS MODULE (bodies to be implemented).

use std::path::Path;

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

/// The loaded contract: the operations of the specs the simulator serves.
pub struct Contract { /* to be implemented */ }

impl Contract {
    /// Loads `twilio_api_v2010.json`, `twilio_messaging_v1.json` and `twilio_messaging_v2.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Contract, String> { todo!("{dir:?}") }
    /// Matches a request to its operation and checks path params, query params, content type and body.
    pub fn check_request(&self, req: &RequestParts<'_>) -> Result<OperationRef, Violation> { todo!("{req:?}") }
    /// Checks a response body (JSON, or empty for 204) against the operation's schema for `status`.
    pub fn check_response(&self, op: &OperationRef, status: u16, body: &[u8]) -> Result<(), Violation> { todo!("{op:?}{status}{body:?}") }
}
