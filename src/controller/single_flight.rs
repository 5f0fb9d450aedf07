//! [`Slots`]: one async lock per key, so that concurrent passes needing the same work (a
//! verification, a Secret read, a Secret's protection) wait for one of them to do it and then
//! find its result in the slot, instead of each doing it again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// A slot: the last result for its key, behind the lock its callers take turns on.
pub type Slot<V> = Arc<tokio::sync::Mutex<V>>;

/// One slot per key (created empty, `V::default()`, on first use).
#[derive(Debug)]
pub struct Slots<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for Slots<K, V> {
    fn default() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Default> Slots<K, V> {
    /// The slot of `key`. Lock it: the first caller does the work and leaves its result in the
    /// slot; the callers that waited read it.
    pub fn slot(&self, key: K) -> Slot<V> {
        self.lock().entry(key).or_default().clone()
    }

    /// The slot of `key` if there is one (none is created).
    pub fn existing<Q>(&self, key: &Q) -> Option<Slot<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    /// Forgets the slot of `key` (a caller holding it keeps its copy).
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every slot whose key matches (callers holding one keep their copy: what they
    /// leave in it is seen by nobody).
    pub fn forget_matching(&self, mut matches: impl FnMut(&K) -> bool) {
        self.lock().retain(|k, _| !matches(k));
    }

    /// Keeps the slots for which `keep` says so, and every slot a caller holds or waits for.
    /// `keep` sees the key and, when it is not locked, the slot's content.
    pub fn retain(&self, mut keep: impl FnMut(&K, Option<&V>) -> bool) {
        self.lock().retain(|k, slot| Arc::strong_count(slot) > 1 || keep(k, slot.try_lock().ok().as_deref()));
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_callers_of_one_key_do_the_work_once() {
        let slots: Slots<&str, Option<u32>> = Slots::default();
        let work = AtomicU32::new(0);
        let call = || async {
            let slot = slots.slot("k");
            let mut done = slot.lock().await;
            if done.is_none() {
                tokio::task::yield_now().await;
                *done = Some(work.fetch_add(1, Ordering::SeqCst));
            }
            done.unwrap_or_default()
        };
        let results = futures::future::join_all((0..8).map(|_| call())).await;
        assert_eq!(work.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| *r == 0));
    }

    #[tokio::test]
    async fn retain_keeps_held_slots_and_what_it_is_told() {
        let slots: Slots<u8, Option<u8>> = Slots::default();
        *slots.slot(1).lock().await = Some(1);
        *slots.slot(2).lock().await = None;
        let held = slots.slot(3);
        slots.retain(|_, v| v.is_some_and(Option::is_some));
        assert_eq!(slots.len(), 2, "1 has a result, 3 is held");
        drop(held);
        slots.forget(&1);
        slots.retain(|_, _| false);
        assert!(slots.is_empty());
    }
}
