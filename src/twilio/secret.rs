//! Secrets and Twilio credentials. Nothing here ever prints a secret.

use std::fmt;

use sha2::{Digest, Sha256};

use super::error::TwilioError;

/// A secret string (auth token, API key secret, OAuth2 client secret or access token).
///
/// `Debug` and `Display` print `<redacted>`; the value is reachable only through
/// [`Secret::expose`]. There is deliberately no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value as given (no trimming).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a request authenticates (HTTP Basic in both cases).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `AccountSid:AuthToken`.
    AuthToken(Secret),
    /// `SKxxx:secret`. A Standard key cannot read `/Accounts/{Sid}.json`.
    ApiKey {
        /// The API key SID (`SK` + 32 hex digits).
        sid: String,
        /// The API key secret.
        secret: Secret,
    },
}

/// Twilio credentials: the account the URLs name, and how to authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    account_sid: String,
    auth: Auth,
}

impl Credentials {
    /// Account SID + auth token. Surrounding whitespace (e.g. a trailing newline from a Secret
    /// created with `echo`) is trimmed from every part: Twilio values never contain any.
    pub fn auth_token(account_sid: impl Into<String>, token: Secret) -> Self {
        Self {
            account_sid: account_sid.into().trim().to_owned(),
            auth: Auth::AuthToken(Secret::new(token.expose().trim())),
        }
    }

    /// Account SID + API key SID and secret (trimmed like [`Credentials::auth_token`]).
    pub fn api_key(account_sid: impl Into<String>, key_sid: impl Into<String>, secret: Secret) -> Self {
        Self {
            account_sid: account_sid.into().trim().to_owned(),
            auth: Auth::ApiKey { sid: key_sid.into().trim().to_owned(), secret: Secret::new(secret.expose().trim()) },
        }
    }

    /// The account SID (`AC…`) used in request paths.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// How requests authenticate.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Whether these are API-key credentials.
    pub fn is_api_key(&self) -> bool {
        matches!(self.auth, Auth::ApiKey { .. })
    }

    /// Checks the shapes locally: `AC`/`SK` + 32 hex digits and a non-empty secret.
    /// Every client call does this first; the reconciler may call it to fail early.
    pub fn validate(&self) -> Result<(), TwilioError> {
        check_sid("account SID", "AC", &self.account_sid)?;
        let secret = match &self.auth {
            Auth::AuthToken(token) => token,
            Auth::ApiKey { sid, secret } => {
                check_sid("API key SID", "SK", sid)?;
                secret
            }
        };
        if secret.is_empty() {
            return Err(TwilioError::InvalidInput("the credential secret is empty".into()));
        }
        Ok(())
    }

    /// A stable, non-reversible identifier of these credentials (32 hex digits of a
    /// domain-separated SHA-256 over account SID, key SID and secret).
    ///
    /// Equal credentials give equal fingerprints across processes and restarts, so callers can
    /// share one verification per account+credentials, or notice a rotation, without keeping
    /// the secret as a map key. Twilio secrets carry 128 bits of entropy, so the fingerprint
    /// does not make them guessable; still, prefer keeping it in memory over publishing it.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"whatsapp-operator/twilio-credentials/v1\0");
        hash.update(self.account_sid.as_bytes());
        match &self.auth {
            Auth::AuthToken(token) => {
                hash.update(b"\0token\0\0");
                hash.update(token.expose().as_bytes());
            }
            Auth::ApiKey { sid, secret } => {
                hash.update(b"\0key\0");
                hash.update(sid.as_bytes());
                hash.update(b"\0");
                hash.update(secret.expose().as_bytes());
            }
        }
        hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What status may show of the secret (auth token or API key secret): `sha256:` and the
    /// first 12 hex digits of its SHA-256, so a user can tell which token is in use
    /// (`printf %s "$TOKEN" | sha256sum | cut -c1-12`). 48 bits of a hash of a 128-bit Twilio
    /// secret reveal nothing usable about it.
    pub fn public_fingerprint(&self) -> String {
        let secret = match &self.auth {
            Auth::AuthToken(token) => token,
            Auth::ApiKey { secret, .. } => secret,
        };
        let digest = Sha256::digest(secret.expose().as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// The HTTP Basic user name and password.
    pub(crate) fn basic(&self) -> (&str, &str) {
        match &self.auth {
            Auth::AuthToken(token) => (&self.account_sid, token.expose()),
            Auth::ApiKey { sid, secret } => (sid, secret.expose()),
        }
    }
}

/// Which credential of a Secret a request authenticates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialRole {
    /// The Secret's `authToken` (or its API key).
    Primary,
    /// The Secret's `authTokenSecondary`: Twilio's secondary auth token during a rotation.
    Secondary,
}

/// The credentials a Secret holds: one credential, or during an auth-token rotation the primary
/// token and a secondary one (Twilio accepts both while a secondary token exists; promoting it
/// makes the old primary fail with 401 20003).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSet {
    primary: Credentials,
    secondary: Option<Credentials>,
}

impl CredentialSet {
    /// One credential.
    pub fn single(primary: Credentials) -> Self {
        Self { primary, secondary: None }
    }

    /// A primary auth token and a secondary one (of the same account).
    pub fn with_secondary(primary: Credentials, secondary: Credentials) -> Self {
        Self { primary, secondary: Some(secondary) }
    }

    /// The account SID (`AC…`).
    pub fn account_sid(&self) -> &str {
        self.primary.account_sid()
    }

    /// The credential in `role`, if the Secret holds one.
    pub fn get(&self, role: CredentialRole) -> Option<&Credentials> {
        match role {
            CredentialRole::Primary => Some(&self.primary),
            CredentialRole::Secondary => self.secondary.as_ref(),
        }
    }

    /// The primary credential.
    pub fn primary(&self) -> &Credentials {
        &self.primary
    }

    /// The secondary auth token, if any.
    pub fn secondary(&self) -> Option<&Credentials> {
        self.secondary.as_ref()
    }

    /// A stable, non-reversible identifier of the whole set: the primary's
    /// [`Credentials::fingerprint`] when there is no secondary (so adding the notion of a
    /// secondary changes no existing digest), else a digest over both.
    pub fn fingerprint(&self) -> String {
        match &self.secondary {
            None => self.primary.fingerprint(),
            Some(secondary) => {
                let mut hash = Sha256::new();
                hash.update(b"whatsapp-operator/twilio-credential-set/v1\0");
                hash.update(self.primary.fingerprint().as_bytes());
                hash.update(b"\0");
                hash.update(secondary.fingerprint().as_bytes());
                hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

/// Whether `value` is `prefix` followed by 32 hexadecimal digits (a Twilio SID).
pub fn is_sid(prefix: &str, value: &str) -> bool {
    prefix.len() == 2
        && value.len() == 34
        && value.starts_with(prefix)
        && value.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// [`is_sid`] as an [`TwilioError::InvalidInput`]. The value itself is not secret and is named
/// in the message only when it is short enough to be a SID-like string.
pub(crate) fn check_sid(what: &str, prefix: &str, value: &str) -> Result<(), TwilioError> {
    if is_sid(prefix, value) {
        Ok(())
    } else {
        Err(TwilioError::InvalidInput(format!("{what} must be {prefix} followed by 32 hexadecimal digits")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SK: &str = "SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
        let creds = Credentials::auth_token(AC, s.clone());
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains(AC));
        let key = Credentials::api_key(AC, SK, Secret::new("key-secret-value"));
        assert!(!format!("{key:?}").contains("key-secret-value"));
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn credentials_are_trimmed_and_validated() {
        let creds = Credentials::auth_token(format!(" {AC}\n"), Secret::new("tok\n"));
        assert_eq!(creds.account_sid(), AC);
        assert_eq!(creds.basic(), (AC, "tok"));
        assert!(creds.validate().is_ok());
        let key = Credentials::api_key(AC, SK, Secret::new("s"));
        assert_eq!(key.basic(), (SK, "s"));
        assert!(key.is_api_key());
        assert!(key.validate().is_ok());

        assert!(Credentials::auth_token("AC123", Secret::new("t")).validate().is_err());
        assert!(Credentials::auth_token(SK, Secret::new("t")).validate().is_err());
        assert!(Credentials::auth_token(AC, Secret::new(" ")).validate().is_err());
        assert!(Credentials::api_key(AC, AC, Secret::new("s")).validate().is_err());
    }

    #[test]
    fn fingerprint_is_stable_and_distinguishes() {
        let a = Credentials::auth_token(AC, Secret::new("one"));
        let b = Credentials::auth_token(AC, Secret::new("one"));
        let c = Credentials::auth_token(AC, Secret::new("two"));
        let d = Credentials::api_key(AC, SK, Secret::new("one"));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
        assert!(!a.fingerprint().contains("one"));
    }

    #[test]
    fn public_fingerprint_is_a_sha256_prefix_of_the_secret_only() {
        let a = Credentials::auth_token(AC, Secret::new("tok-value"));
        // printf %s tok-value | sha256sum
        let full: String = Sha256::digest(b"tok-value").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a.public_fingerprint(), format!("sha256:{}", &full[..12]));
        assert!(!a.public_fingerprint().contains("tok-value"));
        let key = Credentials::api_key(AC, SK, Secret::new("tok-value"));
        assert_eq!(key.public_fingerprint(), a.public_fingerprint());
    }

    #[test]
    fn a_set_without_secondary_keeps_the_credentials_fingerprint() {
        let one = Credentials::auth_token(AC, Secret::new("one"));
        let two = Credentials::auth_token(AC, Secret::new("two"));
        let single = CredentialSet::single(one.clone());
        assert_eq!(single.fingerprint(), one.fingerprint());
        let pair = CredentialSet::with_secondary(one.clone(), two.clone());
        assert_ne!(pair.fingerprint(), one.fingerprint());
        assert_ne!(pair.fingerprint(), CredentialSet::with_secondary(two.clone(), one.clone()).fingerprint());
        assert_eq!(pair.get(CredentialRole::Secondary), Some(&two));
        assert_eq!(single.get(CredentialRole::Secondary), None);
        assert_eq!(pair.account_sid(), AC);
    }

    #[test]
    fn sids() {
        assert!(is_sid("AC", AC));
        assert!(is_sid("PN", "PN0123456789abcdefABCDEF0123456789"));
        assert!(!is_sid("PN", "PN0123456789abcdefABCDEF012345678g"));
        assert!(!is_sid("PN", "PN/../../Accounts"));
        assert!(!is_sid("AC", ""));
    }
}
