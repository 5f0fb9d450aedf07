//! Watching the fleet's channels from the outside, as `kubectl wait` would: when each one is
//! `Ready=True` for its current generation, and which inputs it last verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use whatsapp_operator::api::WhatsAppChannel;

use crate::Result;

/// One channel as last seen.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `Ready=True` for the current generation.
    pub ready: bool,
    /// When it was first seen Ready after the last [`Tracker::mark`].
    pub ready_at: Option<Instant>,
    /// `status.verifiedInputs`.
    pub verified_inputs: Option<String>,
}

#[derive(Default)]
struct State {
    channels: HashMap<String, Seen>,
    mark: Option<Instant>,
}

/// The watch and what it saw.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// `namespace/name`.
pub fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Tracker {
    /// Starts watching every channel of the cluster.
    pub fn start(client: &Client) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let api: Api<WhatsAppChannel> = Api::all(client.clone());
        let (s, n) = (state.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
            while let Some(ev) = stream.next().await {
                let Ok(ch) = ev else { continue };
                let k = key(&ch.namespace().unwrap_or_default(), &ch.name_any());
                let status = ch.status.as_ref();
                let ready = status.is_some_and(|st| {
                    st.conditions.iter().any(|c| {
                        c.type_ == "Ready" && c.status == "True" && c.observed_generation == ch.metadata.generation
                    })
                });
                let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
                let mark = st.mark;
                let seen = st.channels.entry(k).or_default();
                if ready && !seen.ready && mark.is_some() {
                    seen.ready_at = Some(Instant::now());
                }
                seen.ready = ready;
                seen.verified_inputs = status.and_then(|st| st.verified_inputs.clone());
                drop(st);
                n.notify_waiters();
            }
        });
        Self { state, changed, task }
    }

    /// Starts a new measurement: channels that turn Ready from now on get `ready_at`; those
    /// Ready already keep none.
    pub fn mark(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.mark = Some(Instant::now());
        for seen in st.channels.values_mut() {
            seen.ready_at = None;
        }
    }

    /// A copy of what was seen of `key`.
    pub fn seen(&self, key: &str) -> Option<Seen> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).channels.get(key).cloned()
    }

    /// Waits until `done` holds over the channels seen, for at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&HashMap<String, Seen>) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if done(&self.state.lock().unwrap_or_else(|e| e.into_inner()).channels) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out after {timeout:?} waiting for {what}").into());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), notified).await;
        }
    }

    /// Waits until every channel in `keys` is Ready; each one's time from the mark to Ready
    /// (zero for those Ready before it).
    pub async fn wait_ready(&self, keys: &[String], timeout: Duration) -> Result<Vec<Duration>> {
        self.wait_until(timeout, "every channel Ready", |chs| keys.iter().all(|k| chs.get(k).is_some_and(|s| s.ready)))
            .await?;
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mark = st.mark.unwrap_or_else(Instant::now);
        Ok(keys
            .iter()
            .map(|k| st.channels.get(k).and_then(|s| s.ready_at).map(|t| t.duration_since(mark)).unwrap_or_default())
            .collect())
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
