//! What the webhook judges against: reflector caches of catalogs, grants, regulations and
//! namespace labels, kept in every replica. Until each has listed once the webhook refuses to
//! judge (failing closed), because an empty cache would admit a duplicate item.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use gongshu_api::v1alpha1::{DataCatalog, LABEL_DEPARTMENT, Regulation, ShareGrant};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        reflector::{self, Store},
        watcher,
    },
};

use crate::{cache::reflect, shutdown::Shutdown};

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
            "admission",
            |_| {},
        );
        let grants = reflect(
            watcher(
                Api::<ShareGrant>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
            "admission",
            |_| {},
        );
        let regulations = reflect(
            watcher(
                Api::<Regulation>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
            "admission",
            |_| {},
        );
        // Labels are all the webhook needs of a namespace: a metadata-only watch.
        let namespaces = reflect(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
            "admission",
            |_| {},
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
