//! Reverse indexes kept beside the reflector stores, so that a watch event or a pass finds the
//! objects it concerns without scanning every channel or binding.
//!
//! An [`Index`] maps each object to the keys it is filed under (a channel under its Secrets and
//! its number's binding name; a binding under its holder's UID) and each key back to its
//! objects. It follows a watcher's events, relists included: objects not seen again between
//! `Init` and `InitDone` are dropped, as the reflector drops them from its store.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use kube::runtime::watcher::Event;

/// Objects (`O`) filed under keys (`String`).
///
/// Sized for fleets: each key string is held once (shared between both directions), and the
/// objects of a key are a sorted vector, not a tree (most keys, a number's binding name, have
/// one object; a tree node would cost half a KiB for it). Cheap-to-clone objects (`Arc`s)
/// avoid copies in both directions.
#[derive(Debug)]
pub struct Index<O> {
    inner: RwLock<Inner<O>>,
}

#[derive(Debug)]
struct Inner<O> {
    forward: HashMap<O, Box<[Arc<str>]>>,
    reverse: HashMap<Arc<str>, Vec<O>>,
    /// Objects seen since the last `Init`, while a relist is under way.
    relisting: Option<HashSet<O>>,
}

impl<O> Default for Index<O> {
    fn default() -> Self {
        Self { inner: RwLock::new(Inner { forward: HashMap::new(), reverse: HashMap::new(), relisting: None }) }
    }
}

impl<O: Clone + Eq + Hash + Ord> Index<O> {
    /// Files `obj` under exactly `keys` (replacing what it was filed under).
    pub fn apply(&self, obj: O, keys: Vec<String>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.apply(obj, keys);
    }

    /// Forgets `obj`.
    pub fn delete(&self, obj: &O) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.delete(obj);
    }

    /// The objects filed under `key`.
    pub fn get(&self, key: &str) -> Vec<O> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.reverse.get(key).map(|s| s.to_vec()).unwrap_or_default()
    }

    /// How many objects the index holds.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).forward.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Follows one watcher event: `id` names an object, `keys` files it.
    pub fn follow<K>(&self, event: &Event<K>, id: impl Fn(&K) -> Option<O>, keys: impl Fn(&K) -> Vec<String>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(k) => {
                if let Some(o) = id(k) {
                    inner.apply(o, keys(k));
                }
            }
            Event::Delete(k) => {
                if let Some(o) = id(k) {
                    inner.delete(&o);
                }
            }
            Event::Init => inner.relisting = Some(HashSet::new()),
            Event::InitApply(k) => {
                if let Some(o) = id(k) {
                    if let Some(seen) = inner.relisting.as_mut() {
                        seen.insert(o.clone());
                    }
                    inner.apply(o, keys(k));
                }
            }
            Event::InitDone => {
                if let Some(seen) = inner.relisting.take() {
                    let gone: Vec<O> = inner.forward.keys().filter(|o| !seen.contains(*o)).cloned().collect();
                    for o in gone {
                        inner.delete(&o);
                    }
                }
            }
        }
    }
}

impl<O: Clone + Eq + Hash + Ord> Inner<O> {
    fn apply(&mut self, obj: O, keys: Vec<String>) {
        if self.forward.get(&obj).is_some_and(|old| old.iter().map(|k| &**k).eq(keys.iter().map(String::as_str))) {
            return;
        }
        self.delete(&obj);
        let mut filed = Vec::with_capacity(keys.len());
        for k in keys {
            // The key string the reverse map already holds, if any.
            let key = match self.reverse.get_key_value(k.as_str()) {
                Some((key, _)) => key.clone(),
                None => Arc::from(k),
            };
            let objects = self.reverse.entry(key.clone()).or_default();
            if let Err(at) = objects.binary_search(&obj) {
                objects.insert(at, obj.clone());
            }
            filed.push(key);
        }
        self.forward.insert(obj, filed.into_boxed_slice());
    }

    fn delete(&mut self, obj: &O) {
        let Some(keys) = self.forward.remove(obj) else {
            return;
        };
        for k in keys.iter() {
            if let Some(objects) = self.reverse.get_mut(k) {
                if let Ok(at) = objects.binary_search(obj) {
                    objects.remove(at);
                }
                if objects.is_empty() {
                    self.reverse.remove(k);
                } else if objects.capacity() > 2 * objects.len() + 4 {
                    objects.shrink_to_fit();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn files_objects_under_their_keys_and_refiles_on_change() {
        let ix: Index<String> = Index::default();
        ix.apply("a".into(), keys(&["s1", "n1"]));
        ix.apply("b".into(), keys(&["s1"]));
        assert_eq!(ix.get("s1"), vec!["a".to_owned(), "b".to_owned()]);
        ix.apply("a".into(), keys(&["s2"]));
        assert_eq!(ix.get("s1"), vec!["b".to_owned()]);
        assert_eq!(ix.get("n1"), Vec::<String>::new());
        assert_eq!(ix.get("s2"), vec!["a".to_owned()]);
        ix.delete(&"b".to_owned());
        assert!(ix.get("s1").is_empty());
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn a_relist_drops_objects_not_listed_again() {
        let ix: Index<String> = Index::default();
        let id = |s: &(String, String)| Some(s.0.clone());
        let k = |s: &(String, String)| vec![s.1.clone()];
        ix.follow(&Event::Apply(("a".to_owned(), "x".to_owned())), id, k);
        ix.follow(&Event::Apply(("b".to_owned(), "x".to_owned())), id, k);
        ix.follow(&Event::Init, id, k);
        ix.follow(&Event::InitApply(("b".to_owned(), "y".to_owned())), id, k);
        ix.follow(&Event::<(String, String)>::InitDone, id, k);
        assert!(ix.get("x").is_empty(), "a was not listed again, b moved to y");
        assert_eq!(ix.get("y"), vec!["b".to_owned()]);
        ix.follow(&Event::Delete(("b".to_owned(), "y".to_owned())), id, k);
        assert!(ix.is_empty());
    }
}
