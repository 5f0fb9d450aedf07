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

    /// The HTTP Basic user name and password.
    pub(crate) fn basic(&self) -> (&str, &str) {
        match &self.auth {
            Auth::AuthToken(token) => (&self.account_sid, token.expose()),
            Auth::ApiKey { sid, secret } => (sid, secret.expose()),
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
    fn sids() {
        assert!(is_sid("AC", AC));
        assert!(is_sid("PN", "PN0123456789abcdefABCDEF0123456789"));
        assert!(!is_sid("PN", "PN0123456789abcdefABCDEF012345678g"));
        assert!(!is_sid("PN", "PN/../../Accounts"));
        assert!(!is_sid("AC", ""));
    }
}
