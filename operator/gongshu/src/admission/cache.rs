//! What the webhook judges against, kept in every replica: the catalog index (maintained event
//! by event, never rebuilt per request), the item each grant requests, the regulations and the
//! namespace labels. Until each has listed once the webhook refuses to judge (failing closed),
//! because an empty cache would admit a duplicate item.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use gongshu_api::{
    index::CatalogIndex,
    rules::channel,
    v1alpha1::{
        ChannelMode, DataCatalog, ItemReview, LABEL_CHANNEL_MODE, LABEL_DEPARTMENT, Regulation,
        ShareGrant,
    },
    workflow::catalog::is_item_approved,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        reflector::{self, Store},
        watcher,
    },
};

use crate::{
    cache::{Change, feed, reflect, relisting},
    channels::Filings,
    shutdown::Shutdown,
};

/// A grant by (namespace, name), as the webhook needs it: the item it requests.
type GrantItems = HashMap<(String, String), String>;

/// The webhook's view of the cluster.
#[derive(Debug)]
pub struct Caches {
    catalogs: Arc<RwLock<CatalogIndex>>,
    grants: Arc<RwLock<GrantItems>>,
    pub regulations: Store<Regulation>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Channel filings by namespace (CH-1).
    pub filings: Filings,
    synced: Arc<AtomicUsize>,
}

/// How many caches must list once before the webhook judges.
const CACHES: usize = 5;

impl Caches {
    /// Starts the watches; they run until `shutdown`.
    pub fn start(client: Client, shutdown: Shutdown) -> Self {
        let synced = Arc::new(AtomicUsize::new(0));
        let catalogs = Arc::new(RwLock::new(CatalogIndex::default()));
        feed(
            watcher(
                Api::<DataCatalog>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
            "admission",
            relisting(
                catalogs.clone(),
                |index: &mut CatalogIndex, event: Change<'_, DataCatalog>| match event {
                    Change::Apply(c) => index.upsert(&approved_as_declared(c.clone())),
                    Change::Delete(c) => {
                        index.remove(&c.namespace().unwrap_or_default(), &c.name_any());
                    }
                },
            ),
        );
        let grants = Arc::new(RwLock::new(GrantItems::new()));
        feed(
            watcher(
                Api::<ShareGrant>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            &shutdown,
            "admission",
            relisting(
                grants.clone(),
                |items: &mut GrantItems, event: Change<'_, ShareGrant>| match event {
                    Change::Apply(g) => {
                        items.insert(grant_key(g), g.spec.item.clone());
                    }
                    Change::Delete(g) => {
                        items.remove(&grant_key(g));
                    }
                },
            ),
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
        let filings = Filings::start(&client, &synced, &shutdown, "admission", None);
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
            filings,
            synced,
        }
    }

    /// Runs `f` on the catalog index.
    pub fn with_catalogs<T>(&self, f: impl FnOnce(&CatalogIndex) -> T) -> T {
        f(&self.catalogs.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The item grant `namespace/name` requests, if the grant exists.
    pub fn grant_item(&self, namespace: &str, name: &str) -> Option<String> {
        self.grants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
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

    /// The channel mode in force in `namespace` (CH-1): its `gongshu.io/channel-mode` label,
    /// else the `default` Regulation's policy.
    pub fn channel_mode(&self, namespace: &str) -> ChannelMode {
        let label = self
            .namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .and_then(|ns| ns.labels().get(LABEL_CHANNEL_MODE).cloned());
        let policy = self
            .regulations
            .get(&reflector::ObjectRef::new("default"))
            .map(|r| r.spec.channels.clone())
            .unwrap_or_default();
        channel::mode(label.as_deref(), &policy)
    }

    /// The authority namespace of the `Regulation` named `default`, or the default namespace.
    pub fn authority_namespace(&self) -> String {
        self.regulations
            .get(&reflector::ObjectRef::new("default"))
            .map(|r| r.spec.authority_namespace.clone())
            .unwrap_or_else(|| "gongshu-system".to_owned())
    }
}

fn grant_key(grant: &ShareGrant) -> (String, String) {
    (grant.namespace().unwrap_or_default(), grant.name_any())
}

/// `catalog` with an item's recorded approval withdrawn when the item changed since: an
/// approval covers the item as it was declared then (CAT-2), as the grant workflow sees it
/// (`workflow::catalog::is_item_approved`).
fn approved_as_declared(mut catalog: DataCatalog) -> DataCatalog {
    if let Some(status) = catalog.status.as_mut() {
        let approved: Vec<bool> = status
            .items
            .iter()
            .map(|s| is_item_approved(&catalog.spec, status, &s.identifier))
            .collect();
        for (item, approved) in status.items.iter_mut().zip(approved) {
            if item.review == ItemReview::Approved && !approved {
                item.review = ItemReview::Pending;
            }
        }
    }
    catalog
}
