//! Reading a channel's Twilio credentials (and identity-server secret) from its namespace.

use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::{Api, Client, ResourceExt};

use crate::api::Reason;
use crate::twilio::{Credentials, Secret};

/// Secret keys the credentials may use.
pub const AUTH_TOKEN_KEY: &str = "authToken";
/// API key SID key.
pub const API_KEY_SID_KEY: &str = "apiKeySid";
/// API key secret key.
pub const API_KEY_SECRET_KEY: &str = "apiKeySecret";

/// A problem the user fixes by creating or editing the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretProblem {
    /// `SecretNotFound` or `SecretKeyMissing`.
    pub reason: Reason,
    /// What is wrong, naming the Secret and keys (never values).
    pub message: String,
}

/// A Secret's data, and its resourceVersion.
pub struct SecretData {
    /// The Secret's resourceVersion.
    pub resource_version: String,
    secret: K8sSecret,
}

impl SecretData {
    /// The Secret's metadata.
    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.secret.metadata
    }

    /// The value of `key`, if present and non-empty.
    pub fn get(&self, key: &str) -> Option<Secret> {
        let bytes = self.secret.data.as_ref()?.get(key)?;
        let value = String::from_utf8(bytes.0.clone()).ok()?;
        let value = value.trim();
        (!value.is_empty()).then(|| Secret::new(value))
    }
}

/// Reads Secret `name` in `ns`.
pub async fn read(client: &Client, ns: &str, name: &str) -> Result<Result<SecretData, SecretProblem>, kube::Error> {
    let api: Api<K8sSecret> = Api::namespaced(client.clone(), ns);
    Ok(match api.get_opt(name).await? {
        Some(secret) => Ok(SecretData { resource_version: secret.resource_version().unwrap_or_default(), secret }),
        None => Err(SecretProblem {
            reason: Reason::SecretNotFound,
            message: format!("Secret {ns}/{name} does not exist; create it with key {AUTH_TOKEN_KEY} (or {API_KEY_SID_KEY} and {API_KEY_SECRET_KEY})"),
        }),
    })
}

/// The Twilio credentials in `data` for `account_sid`.
pub fn twilio_credentials(
    data: &SecretData,
    ns: &str,
    name: &str,
    account_sid: &str,
) -> Result<Credentials, SecretProblem> {
    if let Some(token) = data.get(AUTH_TOKEN_KEY) {
        return Ok(Credentials::auth_token(account_sid, token));
    }
    match (data.get(API_KEY_SID_KEY), data.get(API_KEY_SECRET_KEY)) {
        (Some(sid), Some(secret)) => Ok(Credentials::api_key(account_sid, sid.expose(), secret)),
        (Some(_), None) => Err(missing(ns, name, &format!("{API_KEY_SECRET_KEY} (it has {API_KEY_SID_KEY})"))),
        (None, Some(_)) => Err(missing(ns, name, &format!("{API_KEY_SID_KEY} (it has {API_KEY_SECRET_KEY})"))),
        (None, None) => {
            Err(missing(ns, name, &format!("{AUTH_TOKEN_KEY}, or {API_KEY_SID_KEY} and {API_KEY_SECRET_KEY}")))
        }
    }
}

fn missing(ns: &str, name: &str, keys: &str) -> SecretProblem {
    SecretProblem { reason: Reason::SecretKeyMissing, message: format!("Secret {ns}/{name} lacks a non-empty {keys}") }
}
