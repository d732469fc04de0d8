//! What the webhook judges against: reflector caches of catalogs, grants, regulations and
//! namespace labels, kept in every replica. Until each has listed once the webhook refuses to
//! judge (failing closed), because an empty cache would admit a duplicate item.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures::StreamExt;
use gongshu_api::v1alpha1::{DataCatalog, LABEL_DEPARTMENT, Regulation, ShareGrant};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::shutdown::Shutdown;

/// The webhook's view of the cluster.
#[derive(Debug)]
pub struct Caches {
    pub catalogs: Store<DataCatalog>,
    pub grants: Store<ShareGrant>,
    pub regulations: Store<Regulation>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    synced: Arc<AtomicUsize>,
}

/// How many caches must list once before the webhook judges.
const CACHES: usize = 4;

impl Caches {
    /// Starts the watches; they run until `shutdown`.
    pub fn start(client: Client, shutdown: Shutdown) -> Self {
        let synced = Arc::new(AtomicUsize::new(0));
        let catalogs = reflect(
            watcher(
                Api::<DataCatalog>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
        );
        let grants = reflect(
            watcher(
                Api::<ShareGrant>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
        );
        let regulations = reflect(
            watcher(
                Api::<Regulation>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
        );
        // Labels are all the webhook needs of a namespace: a metadata-only watch.
        let namespaces = reflect(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
        );
        Self {
            catalogs,
            grants,
            regulations,
            namespaces,
            synced,
        }
    }

    /// Whether every cache has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) >= CACHES
    }

    /// The department code of a namespace, from its label.
    pub fn department_of(&self, namespace: &str) -> Option<String> {
        let key = reflector::ObjectRef::new(namespace);
        self.namespaces
            .get(&key)
            .and_then(|ns| ns.labels().get(LABEL_DEPARTMENT).cloned())
    }

    /// The authority namespace of the `Regulation` named `default`, or the default namespace.
    pub fn authority_namespace(&self) -> String {
        self.regulations
            .get(&reflector::ObjectRef::new("default"))
            .map(|r| r.spec.authority_namespace.clone())
            .unwrap_or_else(|| "gongshu-system".to_owned())
    }
}

fn reflect<K>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    synced: &Arc<AtomicUsize>,
    shutdown: &Shutdown,
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
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let run = stream
            .default_backoff()
            .reflect(writer)
            .for_each(|event| async {
                if let Err(error) = event {
                    warn!(kind = %K::kind(&()), %error, "admission cache watch failed; retrying");
                }
            });
        tokio::select! {
            () = run => {}
            () = stop.wait() => {}
        }
    });
    tokio::spawn(async move {
        if ready.wait_until_ready().await.is_ok() {
            synced.fetch_add(1, Ordering::AcqRel);
        }
    });
    reader
}
