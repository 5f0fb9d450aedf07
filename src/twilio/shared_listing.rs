//! [`SharedListings`]: a per-account listing (any value built from several Twilio requests),
//! shared by every caller of that account and credentials, single-flight, kept for the
//! callers' `max_age`: the pattern of [`super::SenderDirectory`], for other listings.
//!
//! A permanent error is kept like a listing; a transient one (429, 5xx, transport) is never
//! kept, but the callers that waited for the failed listing get its error instead of each
//! listing again. Keys are the account SID and the credentials' fingerprint, never a secret.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::TwilioError;
use super::secret::Credentials;

/// Account SID and credentials fingerprint.
type Key = (String, String);

/// Shared, single-flight listings of type `T`, one per account and credentials.
#[derive(Debug)]
pub(crate) struct SharedListings<T> {
    slots: Mutex<HashMap<Key, Arc<Slot<T>>>>,
    idle_after: Duration,
    listings: AtomicU64,
}

#[derive(Debug)]
struct Slot<T> {
    flight: tokio::sync::Mutex<()>,
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    value: Option<(Instant, Arc<T>)>,
    failure: Option<(Instant, TwilioError)>,
    attempts: u64,
    last_error: Option<TwilioError>,
    last_used: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> State<T> {
    fn answer(&self, max_age: Duration) -> Option<Result<Arc<T>, TwilioError>> {
        if let Some((_, v)) = self.value.as_ref().filter(|(at, _)| at.elapsed() < max_age) {
            return Some(Ok(v.clone()));
        }
        match &self.failure {
            Some((at, e)) if at.elapsed() < max_age => Some(Err(e.clone())),
            _ => None,
        }
    }
}

impl<T> SharedListings<T> {
    /// Empty; an account not asked about for `idle_after` is forgotten.
    pub fn new(idle_after: Duration) -> Self {
        Self { slots: Mutex::new(HashMap::new()), idle_after, listings: AtomicU64::new(0) }
    }

    /// The listing of `creds`' account younger than `max_age`, else a new one made by `list`
    /// (one at a time per account and credentials: concurrent callers wait for it).
    pub async fn get<F, Fut>(&self, creds: &Credentials, max_age: Duration, list: F) -> Result<Arc<T>, TwilioError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, TwilioError>>,
    {
        let slot = self.slot(creds);
        let seen = {
            let state = lock(&slot.state);
            if let Some(answer) = state.answer(max_age) {
                return answer;
            }
            state.attempts
        };
        let _flight = slot.flight.lock().await;
        {
            let state = lock(&slot.state);
            if let Some(answer) = state.answer(max_age) {
                return answer;
            }
            if let (true, Some(e)) = (state.attempts != seen, &state.last_error) {
                return Err(e.clone());
            }
        }
        self.listings.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let listed = list().await;
        let mut state = lock(&slot.state);
        state.attempts += 1;
        match listed {
            Ok(v) => {
                let v = Arc::new(v);
                state.value = Some((started, v.clone()));
                state.failure = None;
                state.last_error = None;
                Ok(v)
            }
            Err(e) => {
                if e.is_transient() {
                    state.last_error = Some(e.clone());
                } else {
                    state.value = None;
                    state.failure = Some((started, e.clone()));
                    state.last_error = None;
                }
                Err(e)
            }
        }
    }

    /// Changes every kept listing of `account_sid` (the operator's own write, seen without
    /// listing again).
    pub fn modify(&self, account_sid: &str, f: impl Fn(&mut T))
    where
        T: Clone,
    {
        let slots = lock(&self.slots);
        for slot in slots.iter().filter(|((a, _), _)| a == account_sid).map(|(_, s)| s) {
            let mut state = lock(&slot.state);
            if let Some((_, v)) = state.value.as_mut() {
                f(Arc::make_mut(v));
            }
        }
    }

    /// Forgets every listing of `account_sid`.
    pub fn invalidate(&self, account_sid: &str) {
        lock(&self.slots).retain(|(a, _), _| a != account_sid);
    }

    /// Listings started so far.
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    fn slot(&self, creds: &Credentials) -> Arc<Slot<T>> {
        let mut slots = lock(&self.slots);
        let idle_after = self.idle_after;
        slots.retain(|_, s| Arc::strong_count(s) > 1 || lock(&s.state).last_used.elapsed() < idle_after);
        let key = (creds.account_sid().to_owned(), creds.fingerprint());
        let slot = slots
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    flight: tokio::sync::Mutex::new(()),
                    state: Mutex::new(State {
                        value: None,
                        failure: None,
                        attempts: 0,
                        last_error: None,
                        last_used: Instant::now(),
                    }),
                })
            })
            .clone();
        lock(&slot.state).last_used = Instant::now();
        slot
    }
}
