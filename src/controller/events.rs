//! Publishes the plan's Kubernetes Events (events.k8s.io/v1), counting repeats.
//!
//! The same Event again (same object, type, reason and note) within [`SERIES_WINDOW`] patches the
//! first one's `series` (count and last time) instead of creating another, as `kubectl describe`
//! and the Events API expect; a different note is a new Event (notes are immutable). What is
//! remembered per Event is a hash, a count and the time of its first publication (which names
//! it), 24 bytes, not the Event: a fleet's cold start publishes a few Events per channel, and
//! keeping each whole for the window would hold tens of MiB at 10,000 channels (kube's
//! `Recorder` does, and scans them all on every publish).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Client};

/// How long a published Event is counted rather than published again.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// One remembered Event, in 16 bytes (a fleet's cold start remembers a few per channel): when
/// it was first published, which also names it, and how often it was seen.
struct Seen {
    /// The first publication's wall time, nanoseconds since the epoch: the Event is named
    /// `{object}.{stamp:x}`.
    stamp: i64,
    /// The first publication's monotonic time, seconds after [`Remembered::origin`].
    first: u32,
    count: i32,
}

/// Publishes Events about the operator's objects.
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    seen: Mutex<Remembered>,
}

/// The Events of the window, by the hash of what makes two of them the same (the object
/// included, so its name is known when the Event is seen again).
#[derive(Default)]
struct Remembered {
    by_key: HashMap<u64, Seen>,
    /// The monotonic time the `first` seconds count from (the first publication's).
    origin: Option<Instant>,
    last_sweep: Option<Instant>,
}

/// The name of the Event about `object` first published at `stamp`.
fn event_name(object: &str, stamp: i64) -> String {
    format!("{object}.{stamp:x}")
}

impl Remembered {
    /// `clock` as seconds after the origin (set by the first call).
    fn secs(&mut self, clock: Instant) -> u32 {
        let origin = *self.origin.get_or_insert(clock);
        u32::try_from(clock.saturating_duration_since(origin).as_secs()).unwrap_or(u32::MAX)
    }

    /// Forgets the Events older than the window, at most once a minute (amortised: a sweep is a
    /// scan of every remembered Event).
    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        self.last_sweep = Some(now);
        let secs = self.secs(now);
        self.by_key.retain(|_, s| within_window(secs, s.first));
    }

    /// Decides the publication of Event `key` about `object` at `now` (`clock`) and remembers it.
    fn next(&mut self, key: u64, object: &str, now: Timestamp, clock: Instant) -> Publication {
        self.sweep(clock);
        let secs = self.secs(clock);
        match self.by_key.get_mut(&key) {
            Some(s) if within_window(secs, s.first) => {
                s.count += 1;
                Publication::Count { name: event_name(object, s.stamp), count: s.count }
            }
            _ => {
                let stamp = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
                self.by_key.insert(key, Seen { stamp, first: secs, count: 1 });
                Publication::Create { name: event_name(object, stamp) }
            }
        }
    }
}

/// Whether an Event first published at `first` still counts at `secs`.
fn within_window(secs: u32, first: u32) -> bool {
    u64::from(secs.saturating_sub(first)) < SERIES_WINDOW.as_secs()
}

/// What a publication does: create a new Event, or count one more of an earlier one.
#[derive(Debug, PartialEq, Eq)]
enum Publication {
    Create { name: String },
    Count { name: String, count: i32 },
}

impl EventPublisher {
    /// A publisher reporting as `controller` (and `instance`, default the controller's name).
    pub fn new(client: Client, controller: &str, instance: Option<&str>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or(controller).to_owned(),
            seen: Mutex::default(),
        }
    }

    /// Publishes an Event about `regarding` (or counts it, when the same one was published
    /// within the window). Errors are the API server's.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) -> Result<(), kube::Error> {
        let key = key(regarding, type_, reason, note, action);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        let mut publication = self.remembered().next(key, object, now, Instant::now());
        if let Publication::Count { name, count } = &publication {
            let patch = serde_json::json!({
                "series": EventSeries { count: *count, last_observed_time: MicroTime(now) },
            });
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // The API server already let it expire: publish it again.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let mut seen = self.remembered();
                    seen.by_key.remove(&key);
                    publication = seen.next(key, object, now, Instant::now());
                }
                Err(e) => return Err(e),
            }
        }
        if let Publication::Create { name } = publication {
            let ev = self.event(name, regarding, type_, reason, note, action, now);
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                self.remembered().by_key.remove(&key);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The remembered Events (a poisoned lock is still a usable map).
    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many Events are remembered.
    pub fn remembered_count(&self) -> usize {
        self.remembered().by_key.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        name: String,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
        now: Timestamp,
    ) -> Event {
        Event {
            metadata: ObjectMeta { name: Some(name), namespace: regarding.namespace.clone(), ..Default::default() },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            type_: Some(match type_ {
                EventType::Normal => "Normal".to_owned(),
                EventType::Warning => "Warning".to_owned(),
            }),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

/// What makes two Events the same: the object (by UID, else kind/namespace/name), the type,
/// reason, note and action. Not the object's resourceVersion, which every status write changes.
fn key(regarding: &ObjectReference, type_: EventType, reason: &str, note: &str, action: &str) -> u64 {
    let mut h = DefaultHasher::new();
    match &regarding.uid {
        Some(uid) => uid.hash(&mut h),
        None => (&regarding.kind, &regarding.namespace, &regarding.name).hash(&mut h),
    }
    (type_ == EventType::Warning, reason, note, action).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str, rv: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("WhatsAppChannel".into()),
            namespace: Some("ns".into()),
            name: Some("ch".into()),
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_event_is_the_same_across_status_writes() {
        let a = key(&reference("u1", "1"), EventType::Warning, "TwilioUnavailable", "503", "Reconcile");
        let b = key(&reference("u1", "2"), EventType::Warning, "TwilioUnavailable", "503", "Reconcile");
        assert_eq!(a, b);
    }

    #[test]
    fn another_note_object_or_type_is_another_event() {
        let base = key(&reference("u1", "1"), EventType::Normal, "MessageSent", "SM1", "Reconcile");
        assert_ne!(base, key(&reference("u1", "1"), EventType::Normal, "MessageSent", "SM2", "Reconcile"));
        assert_ne!(base, key(&reference("u2", "1"), EventType::Normal, "MessageSent", "SM1", "Reconcile"));
        assert_ne!(base, key(&reference("u1", "1"), EventType::Warning, "MessageSent", "SM1", "Reconcile"));
    }

    #[test]
    fn a_repeat_within_the_window_is_counted_and_a_later_one_is_new() {
        let mut r = Remembered::default();
        let (now, t0) = (Timestamp::now(), Instant::now());
        let Publication::Create { name } = r.next(7, "ch", now, t0) else { panic!("first is created") };
        assert!(name.starts_with("ch."));
        assert_eq!(
            r.next(7, "ch", now, t0 + Duration::from_secs(1)),
            Publication::Count { name: name.clone(), count: 2 }
        );
        assert_eq!(r.next(7, "ch", now, t0 + Duration::from_secs(2)), Publication::Count { name, count: 3 });
        assert!(matches!(r.next(7, "ch", now, t0 + SERIES_WINDOW), Publication::Create { .. }));
        assert!(matches!(r.next(8, "ch", now, t0 + SERIES_WINDOW), Publication::Create { .. }));
    }

    #[test]
    fn a_remembered_event_is_small_and_keeps_its_name() {
        assert_eq!(std::mem::size_of::<Seen>(), 16);
        let mut r = Remembered::default();
        let (now, t0) = (Timestamp::now(), Instant::now());
        let Publication::Create { name } = r.next(7, "ch-1", now, t0) else { panic!("created") };
        assert_eq!(name, format!("ch-1.{:x}", now.as_nanosecond()), "named as before");
        let Publication::Count { name: again, .. } = r.next(7, "ch-1", Timestamp::now(), t0) else { panic!("counted") };
        assert_eq!(again, name);
    }

    #[test]
    fn the_window_is_swept_at_most_once_a_minute() {
        let mut r = Remembered::default();
        let t0 = Instant::now();
        let first = r.secs(t0);
        r.by_key.insert(1, Seen { stamp: 1, first, count: 1 });
        r.sweep(t0);
        assert_eq!(r.by_key.len(), 1, "young enough to stay");
        let later = t0 + SERIES_WINDOW + Duration::from_secs(1);
        r.sweep(later);
        assert!(r.by_key.is_empty(), "older than the window");
        r.by_key.insert(2, Seen { stamp: 2, first, count: 1 });
        r.sweep(later + Duration::from_secs(1));
        assert_eq!(r.by_key.len(), 1, "no second sweep within a minute");
    }
}
