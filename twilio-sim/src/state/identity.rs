//! OAuth2 clients of the CRM identity server stand-in.

use serde::{Deserialize, Serialize};

/// A client allowed to use the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret` (never logged).
    pub client_secret: String,
    /// Scopes the client may request; all of them are granted when none is requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Access token lifetime in seconds.
    #[serde(default = "default_lifetime")]
    pub access_token_lifetime: u64,
}

fn default_lifetime() -> u64 {
    3600
}
