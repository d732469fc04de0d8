//! Reflector caches with a shared "every cache has listed once" counter, for the parts of the
//! operator that must not judge from an empty cache (the admission webhook, the workflow
//! controllers).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::{Stream, StreamExt};
use kube::{
    Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::shutdown::Shutdown;

/// A store of `K` fed by `stream` until `stop`; `synced` is incremented once the store has
/// completed its first list, and `on_event` sees every event after the store applied it.
/// `purpose` names the cache in logs. Objects are kept without their `managedFields`
/// ([`slim`]).
pub fn reflect<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    synced: &Arc<AtomicUsize>,
    stop: &Shutdown,
    purpose: &'static str,
    on_event: impl Fn(&watcher::Event<K>) + Send + Sync + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let synced = synced.clone();
    let ready = reader.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        // `reflect` writes each event to the store before passing it on, so a change seen
        // here is already readable.
        let run =
            reflector::reflector(writer, stream.default_backoff().modify(slim)).for_each(|event| {
                match &event {
                    Ok(event) => on_event(event),
                    Err(error) => {
                        warn!(kind = %K::kind(&()), purpose, %error, "cache watch failed; retrying")
                    }
                }
                futures::future::ready(())
            });
        tokio::select! {
            () = run => {}
            () = stop.wait() => {}
        }
    });
    // The only waiter on this store, so it cannot steal another task's wake-up.
    tokio::spawn(async move {
        if ready.wait_until_ready().await.is_ok() {
            synced.fetch_add(1, Ordering::AcqRel);
        }
    });
    reader
}

/// Runs `stream` until `stop`, handing every event to `on_event`, for a view that keeps only
/// what it needs of each object instead of a store of whole objects; `synced` is incremented
/// at the end of the first list. `on_event` must treat `Init` … `InitDone` as a fresh list
/// (a relist after a watch failure replays every object).
pub fn feed<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    synced: &Arc<AtomicUsize>,
    stop: &Shutdown,
    purpose: &'static str,
    on_event: impl Fn(&watcher::Event<K>) + Send + Sync + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let synced = synced.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut listed = false;
        let run = stream.default_backoff().for_each(|event| {
            match event {
                Ok(event) => {
                    let done = matches!(event, watcher::Event::InitDone);
                    on_event(&event);
                    if done && !listed {
                        listed = true;
                        synced.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Err(error) => {
                    warn!(kind = %K::kind(&()), purpose, %error, "watch failed; retrying")
                }
            }
            futures::future::ready(())
        });
        tokio::select! {
            () = run => {}
            () = stop.wait() => {}
        }
    });
}

/// Drops what no cache reads and every object carries: `managedFields` (often larger than the
/// spec) and the last-applied annotation of client-side apply. At 10,000 grants this is most
/// of a cache's memory.
pub fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// One object's change, as a view derived from a watch applies it.
#[derive(Debug)]
pub enum Change<'a, K> {
    /// Created or changed.
    Apply(&'a K),
    /// Deleted.
    Delete(&'a K),
}

/// A watch-event handler that keeps `view` up to date with `apply`. A (re)list is applied to a
/// fresh view that replaces the live one only when complete, so objects deleted while the
/// watch was down disappear, and readers never see a half-listed view.
pub fn relisting<K, V>(
    view: Arc<RwLock<V>>,
    apply: impl Fn(&mut V, Change<'_, K>) + Send + Sync + 'static,
) -> impl Fn(&watcher::Event<K>) + Send + Sync + 'static
where
    V: Default + Send + Sync + 'static,
{
    let listing: Mutex<Option<V>> = Mutex::new(None);
    move |event| {
        let mut listing = listing.lock().unwrap_or_else(PoisonError::into_inner);
        let live = || view.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => *listing = Some(V::default()),
            watcher::Event::InitApply(obj) => {
                if let Some(fresh) = listing.as_mut() {
                    apply(fresh, Change::Apply(obj));
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = listing.take() {
                    *live() = fresh;
                }
            }
            watcher::Event::Apply(obj) => apply(&mut live(), Change::Apply(obj)),
            watcher::Event::Delete(obj) => apply(&mut live(), Change::Delete(obj)),
        }
    }
}

/// The objects of a store by the keys each declares (e.g. catalogs by item identifier, Reviews
/// by subject), so that a reconcile finds its few objects without scanning the store.
pub struct KeyIndex<K: Resource<DynamicType = ()>> {
    view: Arc<RwLock<Keys<K>>>,
}

impl<K: Resource<DynamicType = ()>> std::fmt::Debug for KeyIndex<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").finish_non_exhaustive()
    }
}

impl<K: Resource<DynamicType = ()>> Clone for KeyIndex<K> {
    fn clone(&self) -> Self {
        Self {
            view: self.view.clone(),
        }
    }
}

struct Keys<K: Resource<DynamicType = ()>> {
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    of_object: HashMap<ObjectRef<K>, Vec<String>>,
}

impl<K: Resource<DynamicType = ()>> Default for Keys<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            of_object: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Keys<K> {
    fn remove(&mut self, obj: &ObjectRef<K>) {
        for key in self.of_object.remove(obj).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&key) {
                set.remove(obj);
                if set.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

impl<K> KeyIndex<K>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    /// An empty index and the watch-event handler that maintains it with `keys_of`.
    pub fn new(
        keys_of: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> (Self, impl Fn(&watcher::Event<K>) + Send + Sync + 'static) {
        let view = Arc::new(RwLock::new(Keys::default()));
        let handler = relisting(view.clone(), move |keys: &mut Keys<K>, change| {
            let (obj, keep) = match change {
                Change::Apply(obj) => (obj, true),
                Change::Delete(obj) => (obj, false),
            };
            let reference = ObjectRef::from_obj(obj);
            keys.remove(&reference);
            if keep {
                let declared = keys_of(obj);
                for key in &declared {
                    keys.by_key
                        .entry(key.clone())
                        .or_default()
                        .insert(reference.clone());
                }
                keys.of_object.insert(reference, declared);
            }
        });
        (Self { view }, handler)
    }

    /// The objects declaring `key`.
    pub fn get(&self, key: &str) -> Vec<ObjectRef<K>> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{api::ObjectMeta, runtime::watcher::Event};

    use super::*;

    /// A ConfigMap `name` whose keys are `keys`.
    fn cm(name: &str, keys: &[&str]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(keys.iter().map(|k| ((*k).into(), String::new())).collect()),
            ..Default::default()
        }
    }

    fn names(index: &KeyIndex<ConfigMap>, key: &str) -> Vec<String> {
        let mut names: Vec<String> = index.get(key).into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn the_index_follows_edits_deletes_and_relists() {
        let (index, on_event) = KeyIndex::new(|c: &ConfigMap| {
            c.data.iter().flatten().map(|(k, _)| k.clone()).collect()
        });
        on_event(&Event::Init);
        on_event(&Event::InitApply(cm("a", &["x", "y"])));
        assert!(
            names(&index, "x").is_empty(),
            "a list in progress is not visible"
        );
        on_event(&Event::InitApply(cm("b", &["x"])));
        on_event(&Event::InitDone);
        assert_eq!(names(&index, "x"), ["a", "b"]);

        on_event(&Event::Apply(cm("a", &["z"])));
        assert_eq!(
            names(&index, "x"),
            ["b"],
            "a key the object no longer declares is gone"
        );
        assert_eq!(names(&index, "z"), ["a"]);

        on_event(&Event::Delete(cm("b", &["x"])));
        assert!(names(&index, "x").is_empty());

        // A relist after a watch failure: objects deleted meanwhile disappear.
        on_event(&Event::Init);
        on_event(&Event::InitApply(cm("c", &["y"])));
        on_event(&Event::InitDone);
        assert!(names(&index, "z").is_empty());
        assert_eq!(names(&index, "y"), ["c"]);
    }
}
