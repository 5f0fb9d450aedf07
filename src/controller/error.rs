//! Errors that abort a reconcile and are retried with backoff. Problems a user can fix are not
//! errors: they become conditions (see `crate::api::Reason`).

use std::time::Duration;

use crate::twilio::TwilioError;

/// A failure the reconciler retries with per-object exponential backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed (network, conflict, 5xx).
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Twilio failed transiently (5xx, 429, timeout).
    #[error("{0}")]
    Twilio(#[from] TwilioError),
    /// The identity server failed transiently.
    #[error("{0}")]
    Identity(#[from] crate::twilio::IdentityError),
    /// A deletion cannot undo its Twilio changes yet (the message says why and how to proceed).
    #[error("cleanup blocked: {0}")]
    CleanupBlocked(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// An object lacks a field the API server always sets (namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// Not a failure: the pass stopped early (a newer version of the channel, a claim the cache
    /// had not seen yet) and looks again after this long, without backoff.
    #[error("looking again in {0:?}")]
    Waiting(Duration),
    /// The pass did not finish within its deadline (a stuck Twilio or identity server).
    #[error("the pass did not finish within {0:?}")]
    Deadline(Duration),
    /// The store's copy of the channel cannot be unpacked (never expected).
    #[error(transparent)]
    Store(#[from] super::stored::UnpackError),
}

impl Error {
    /// The delay the server asked for, if any (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Twilio(e) => e.retry_after(),
            Self::Identity(e) => e.retry_after(),
            _ => None,
        }
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Twilio(e) => e.reason(),
            Self::Identity(e) => e.reason(),
            Self::Finalizer(_) => "finalizer",
            Self::CleanupBlocked(_) => "cleanup_blocked",
            Self::MissingField(_) => "missing_field",
            Self::Waiting(_) => "waiting",
            Self::Deadline(_) => "deadline",
            Self::Store(_) => "store",
        }
    }
}

/// The reconciler's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
