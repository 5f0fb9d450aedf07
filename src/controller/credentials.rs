//! Reading a channel's Twilio credentials (and identity-server secret) from its namespace.
//!
//! Only Secret *metadata* is watched. The data of a Secret a pass needs is read once per
//! resourceVersion (the metadata store says when it changed) and kept for the channels that
//! share it; a Secret the store does not have is reported missing without a request.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::{Api, Client, ResourceExt};

use crate::api::{CredentialSource, CredentialsStatus, Reason};
use crate::twilio::{CredentialRole, CredentialSet, Credentials, Secret};

use super::secret_meta::SecretMeta;
use super::single_flight::Slots;

/// Secret keys the credentials may use.
pub const AUTH_TOKEN_KEY: &str = "authToken";
/// The secondary auth token during a rotation (tried when Twilio refuses `authToken`).
pub const AUTH_TOKEN_SECONDARY_KEY: &str = "authTokenSecondary";
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
        meta: Option<&SecretMeta>,
    ) -> Result<Result<Arc<SecretData>, SecretProblem>, kube::Error> {
        let key = (ns.to_owned(), name.to_owned());
        let Some(meta) = meta else {
            self.slots.forget(&key);
            return Ok(Err(not_found(ns, name)));
        };
        let version = meta.resource_version.clone();
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

/// The Twilio credentials in `data` for `account_sid`: `authToken` (with `authTokenSecondary`
/// when present), else the API key.
pub fn twilio_credentials(
    data: &SecretData,
    ns: &str,
    name: &str,
    account_sid: &str,
) -> Result<CredentialSet, SecretProblem> {
    let secondary = data.get(AUTH_TOKEN_SECONDARY_KEY);
    if let Some(token) = data.get(AUTH_TOKEN_KEY) {
        let primary = Credentials::auth_token(account_sid, token);
        return Ok(match secondary {
            Some(s) => CredentialSet::with_secondary(primary, Credentials::auth_token(account_sid, s)),
            None => CredentialSet::single(primary),
        });
    }
    if secondary.is_some() {
        return Err(missing(
            ns,
            name,
            &format!("{AUTH_TOKEN_KEY} (it has {AUTH_TOKEN_SECONDARY_KEY}, which is only tried after the primary)"),
        ));
    }
    match (data.get(API_KEY_SID_KEY), data.get(API_KEY_SECRET_KEY)) {
        (Some(sid), Some(secret)) => Ok(CredentialSet::single(Credentials::api_key(account_sid, sid.expose(), secret))),
        (Some(_), None) => Err(missing(ns, name, &format!("{API_KEY_SECRET_KEY} (it has {API_KEY_SID_KEY})"))),
        (None, Some(_)) => Err(missing(ns, name, &format!("{API_KEY_SID_KEY} (it has {API_KEY_SECRET_KEY})"))),
        (None, None) => {
            Err(missing(ns, name, &format!("{AUTH_TOKEN_KEY}, or {API_KEY_SID_KEY} and {API_KEY_SECRET_KEY}")))
        }
    }
}

/// What status shows of the credential in `role` of `set` (its source and a fingerprint).
pub fn credential_status(set: &CredentialSet, role: CredentialRole) -> Option<CredentialsStatus> {
    let creds = set.get(role)?;
    let source = match role {
        CredentialRole::Secondary => CredentialSource::Secondary,
        CredentialRole::Primary if creds.is_api_key() => CredentialSource::ApiKey,
        CredentialRole::Primary => CredentialSource::Primary,
    };
    Some(CredentialsStatus { source, fingerprint: creds.public_fingerprint() })
}

/// The credential of `set` a pass uses before (or without) verifying: the one a fresh cached
/// verification accepted, else the secondary when the channel's status says the secondary with
/// this fingerprint verified last, else the primary.
pub fn role_in_use(
    set: &CredentialSet,
    cached: Option<CredentialRole>,
    last: Option<&CredentialsStatus>,
) -> CredentialRole {
    if let Some(role) = cached {
        return role;
    }
    let secondary = credential_status(set, CredentialRole::Secondary);
    match (last, secondary) {
        (Some(last), Some(secondary)) if *last == secondary => CredentialRole::Secondary,
        _ => CredentialRole::Primary,
    }
}

fn missing(ns: &str, name: &str, keys: &str) -> SecretProblem {
    SecretProblem { reason: Reason::SecretKeyMissing, message: format!("Secret {ns}/{name} lacks a non-empty {keys}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::CredentialRole;

    const AC: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        SecretData {
            resource_version: "1".into(),
            data: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    #[test]
    fn a_secondary_token_comes_with_the_primary() {
        let set = twilio_credentials(&data(&[("authToken", "one"), ("authTokenSecondary", "two\n")]), "ns", "s", AC)
            .expect("credentials");
        assert_eq!(set.primary(), &Credentials::auth_token(AC, Secret::new("one")));
        assert_eq!(set.get(CredentialRole::Secondary), Some(&Credentials::auth_token(AC, Secret::new("two"))));
        let single = twilio_credentials(&data(&[("authToken", "one"), ("authTokenSecondary", " ")]), "ns", "s", AC)
            .expect("credentials");
        assert!(single.secondary().is_none(), "a blank secondary is absent");
    }

    #[test]
    fn a_secondary_token_alone_is_a_missing_key() {
        let err = twilio_credentials(&data(&[("authTokenSecondary", "two")]), "ns", "s", AC).unwrap_err();
        assert_eq!(err.reason, Reason::SecretKeyMissing);
        assert!(err.message.contains("authToken") && !err.message.contains("two"), "{}", err.message);
    }

    #[test]
    fn the_credential_in_use_follows_the_cache_then_the_status() {
        let set = twilio_credentials(&data(&[("authToken", "one"), ("authTokenSecondary", "two")]), "ns", "s", AC)
            .expect("credentials");
        let secondary = credential_status(&set, CredentialRole::Secondary).expect("secondary");
        assert_eq!(secondary.source, CredentialSource::Secondary);
        assert!(secondary.fingerprint.starts_with("sha256:") && secondary.fingerprint.len() == 19);
        let primary = credential_status(&set, CredentialRole::Primary).expect("primary");
        assert_eq!(primary.source, CredentialSource::Primary);
        assert_eq!(role_in_use(&set, None, None), CredentialRole::Primary);
        assert_eq!(role_in_use(&set, None, Some(&secondary)), CredentialRole::Secondary);
        assert_eq!(role_in_use(&set, None, Some(&primary)), CredentialRole::Primary);
        assert_eq!(role_in_use(&set, Some(CredentialRole::Primary), Some(&secondary)), CredentialRole::Primary);
        // The status names a secondary the Secret no longer holds: the primary.
        let rotated = twilio_credentials(&data(&[("authToken", "two")]), "ns", "s", AC).expect("credentials");
        assert_eq!(role_in_use(&rotated, None, Some(&secondary)), CredentialRole::Primary);
    }

    #[test]
    fn an_api_key_has_no_secondary() {
        let set = twilio_credentials(
            &data(&[("apiKeySid", "SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), ("apiKeySecret", "k")]),
            "ns",
            "s",
            AC,
        )
        .expect("credentials");
        assert!(set.primary().is_api_key());
        assert!(set.secondary().is_none());
        let shown = credential_status(&set, CredentialRole::Primary).expect("status");
        assert_eq!(shown.source, CredentialSource::ApiKey);
    }
}
