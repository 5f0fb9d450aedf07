//! Reading a channel's Twilio credentials (and identity-server secret) from its namespace.
//!
//! Only Secret *metadata* is watched. The data of a Secret a pass needs is read once per
//! resourceVersion (the metadata store says when it changed) and kept for the channels that
//! share it; a Secret the store does not have is reported missing without a request.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::core::PartialObjectMeta;
use kube::{Api, Client, ResourceExt};

use crate::api::Reason;
use crate::twilio::{Credentials, Secret};

use super::single_flight::Slots;

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

/// A Secret's data (nothing else of it is kept), and its resourceVersion.
pub struct SecretData {
    /// The Secret's resourceVersion.
    pub resource_version: String,
    data: std::collections::BTreeMap<String, k8s_openapi::ByteString>,
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData").field("resource_version", &self.resource_version).finish_non_exhaustive()
    }
}

impl SecretData {
    /// The value of `key`, if present and non-empty.
    pub fn get(&self, key: &str) -> Option<Secret> {
        let bytes = self.data.get(key)?;
        let value = String::from_utf8(bytes.0.clone()).ok()?;
        let value = value.trim();
        (!value.is_empty()).then(|| Secret::new(value))
    }
}

fn not_found(ns: &str, name: &str) -> SecretProblem {
    SecretProblem {
        reason: Reason::SecretNotFound,
        message: format!("Secret {ns}/{name} does not exist; create it with key {AUTH_TOKEN_KEY} (or {API_KEY_SID_KEY} and {API_KEY_SECRET_KEY})"),
    }
}

/// Secret data read for passes, one read per Secret and resourceVersion (single-flight: passes
/// that need the same Secret at once wait for one GET).
#[derive(Debug, Default)]
pub struct SecretReader {
    /// Per Secret (namespace, name): its last read data.
    slots: Slots<(String, String), Option<Arc<SecretData>>>,
}

impl SecretReader {
    /// The data of Secret `ns/name`, whose metadata the store shows as `meta` (absent: the
    /// Secret does not exist, and nothing is read).
    pub async fn read(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
        meta: Option<&PartialObjectMeta<K8sSecret>>,
    ) -> Result<Result<Arc<SecretData>, SecretProblem>, kube::Error> {
        let key = (ns.to_owned(), name.to_owned());
        let Some(meta) = meta else {
            self.slots.forget(&key);
            return Ok(Err(not_found(ns, name)));
        };
        let version = meta.resource_version().unwrap_or_default();
        let slot = self.slots.slot(key);
        let mut last = slot.lock().await;
        if let Some(hit) = last.as_ref().filter(|d| d.resource_version == version) {
            return Ok(Ok(hit.clone()));
        }
        let api: Api<K8sSecret> = Api::namespaced(client.clone(), ns);
        let Some(secret) = api.get_opt(name).await? else {
            *last = None;
            return Ok(Err(not_found(ns, name)));
        };
        let data = Arc::new(SecretData {
            resource_version: secret.resource_version().unwrap_or_default(),
            data: secret.data.unwrap_or_default(),
        });
        *last = Some(data.clone());
        Ok(Ok(data))
    }

    /// Forgets Secret `ns/name` (deleted).
    pub fn forget(&self, ns: &str, name: &str) {
        self.slots.forget(&(ns.to_owned(), name.to_owned()));
    }
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
