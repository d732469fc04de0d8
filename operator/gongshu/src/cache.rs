//! Reflector caches with a shared "every cache has listed once" counter, for the parts of the
//! operator that must not judge from an empty cache (the admission webhook, the workflow
//! controllers).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures::{Stream, StreamExt};
use kube::{
    Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::shutdown::Shutdown;

/// A store of `K` fed by `stream` until `stop`; `synced` is incremented once the store has
/// completed its first list, and `on_event` sees every event after the store applied it.
/// `purpose` names the cache in logs.
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
        let run = reflector::reflector(writer, stream.default_backoff()).for_each(|event| {
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
