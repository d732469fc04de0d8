//! What the workflow controllers read besides their own object: reflector caches of Reviews,
//! Regulations, catalogs and namespace labels, shared by the catalog and grant controllers.
//! Until every cache has listed once the controllers do not evaluate (they requeue), because
//! an empty cache reads as "no Review" or "no such item", and a grant denied for a missing item
//! stays denied (SH-4).

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};

use futures::Stream;
use gongshu_api::{
    calendar::calendar_2026_cn,
    presets::Preset,
    v1alpha1::{ChannelPolicy, DataCatalog, LABEL_DEPARTMENT, Regulation, Review, SubjectKind},
    workflow::{RegulationFacts, ReviewFacts, grant::ItemFacts},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::broadcast;

use crate::{
    cache::{KeyIndex, reflect},
    shutdown::Shutdown,
};

/// The name of the `Regulation` in force.
pub const REGULATION: &str = "default";
/// The preset in force when no valid `Regulation` named `default` exists.
pub const FALLBACK_PRESET: Preset = Preset::Hebei;

/// How many caches must list once before the controllers evaluate.
const CACHES: usize = 4;

/// The regulation in force, built from the `default` Regulation at a `resourceVersion` (`None`:
/// there was none).
type Versioned = (Option<String>, Arc<InForce>);

/// The controllers' shared view of the cluster.
#[derive(Clone)]
pub struct Facts {
    reviews: Store<Review>,
    /// Reviews by [`subject_key`].
    reviews_by_subject: KeyIndex<Review>,
    regulations: Store<Regulation>,
    /// The regulation in force, with the `resourceVersion` of the `default` Regulation it was
    /// built from: building the calendar per reconcile was a measurable cost at 10,000 grants.
    in_force: Arc<Mutex<Option<Versioned>>>,
    catalogs: Store<DataCatalog>,
    /// Catalogs by the identifiers of the items they declare.
    catalogs_by_item: KeyIndex<DataCatalog>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    synced: Arc<AtomicUsize>,
    regulation_changed: broadcast::Sender<()>,
}

impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

/// The regulation in force, and why it is not the `default` Regulation's if it is not.
#[derive(Clone, Debug)]
pub struct InForce {
    /// The facts the workflows count deadlines with.
    pub facts: RegulationFacts,
    /// Set when the fallback preset is used: what is wrong with the `default` Regulation.
    pub fallback: Option<String>,
}

impl Facts {
    /// Starts the watches; they run until `stop`.
    pub fn start(client: &Client, stop: &Shutdown) -> Self {
        let synced = Arc::new(AtomicUsize::new(0));
        let (regulation_changed, _) = broadcast::channel(16);
        let changed = regulation_changed.clone();
        let regulations = reflect(
            watcher(
                Api::<Regulation>::all(client.clone()),
                watcher::Config::default(),
            ),
            &synced,
            stop,
            "controllers",
            move |event| {
                // Only edits after the initial list: those are what changes deadlines.
                if let watcher::Event::Apply(r) | watcher::Event::Delete(r) = event
                    && r.name_any() == REGULATION
                {
                    let _ = changed.send(());
                }
            },
        );
        let (reviews_by_subject, index_reviews) = KeyIndex::new(|r: &Review| {
            let s = &r.spec.subject;
            vec![subject_key(s.kind, &s.namespace, &s.name)]
        });
        let (catalogs_by_item, index_catalogs) = KeyIndex::new(|c: &DataCatalog| {
            c.spec.items.iter().map(|i| i.identifier.clone()).collect()
        });
        Self {
            reviews: reflect(
                watcher(
                    Api::<Review>::all(client.clone()),
                    watcher::Config::default(),
                ),
                &synced,
                stop,
                "controllers",
                index_reviews,
            ),
            reviews_by_subject,
            regulations,
            in_force: Arc::default(),
            catalogs: reflect(
                watcher(
                    Api::<DataCatalog>::all(client.clone()),
                    watcher::Config::default(),
                ),
                &synced,
                stop,
                "controllers",
                index_catalogs,
            ),
            catalogs_by_item,
            // Labels are all the controllers need of a namespace: a metadata-only watch.
            namespaces: reflect(
                watcher(
                    Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                    watcher::Config::default(),
                ),
                &synced,
                stop,
                "controllers",
                |_| {},
            ),
            synced,
            regulation_changed,
        }
    }

    /// Whether every cache has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) >= CACHES
    }

    /// Fires whenever the `default` Regulation is created, changed or deleted.
    pub fn regulation_changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.regulation_changed.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    /// The regulation in force: the `default` Regulation's, or the fallback preset on the 2026
    /// national work calendar when it is missing or invalid. Built once per version of the
    /// `default` Regulation.
    pub fn regulation(&self) -> Arc<InForce> {
        let current = self.regulations.get(&ObjectRef::new(REGULATION));
        let version = current.as_ref().and_then(|r| r.resource_version());
        let mut cached = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, in_force)) = cached.as_ref()
            && *seen == version
        {
            return in_force.clone();
        }
        let in_force = Arc::new(Self::in_force(current.as_deref()));
        *cached = Some((version, in_force.clone()));
        in_force
    }

    fn in_force(current: Option<&Regulation>) -> InForce {
        let fallback = |why: String| InForce {
            facts: RegulationFacts::new(FALLBACK_PRESET, calendar_2026_cn()),
            fallback: Some(format!(
                "{why}; counting deadlines with the {FALLBACK_PRESET:?} preset on the 2026 national work calendar"
            )),
        };
        match current {
            None => fallback(format!("no Regulation named {REGULATION}")),
            Some(r) => match RegulationFacts::from_spec(&r.spec) {
                Ok(facts) => InForce {
                    facts,
                    fallback: None,
                },
                Err(problems) => fallback(format!(
                    "Regulation {REGULATION} is invalid: {}",
                    gongshu_api::rules::summarize(&problems)
                )),
            },
        }
    }

    /// The channel policy in force (CH-1): the `default` Regulation's `spec.channels`, the
    /// defaults without one.
    pub fn channel_policy(&self) -> ChannelPolicy {
        self.regulations
            .get(&ObjectRef::new(REGULATION))
            .map(|r| r.spec.channels.clone())
            .unwrap_or_default()
    }

    /// The Reviews whose subject is the `kind` object `namespace/name`.
    pub fn reviews_of(&self, kind: SubjectKind, namespace: &str, name: &str) -> Vec<ReviewFacts> {
        self.reviews_by_subject
            .get(&subject_key(kind, namespace, name))
            .iter()
            .filter_map(|r| self.reviews.get(r))
            .filter(|r| {
                let s = &r.spec.subject;
                s.kind == kind && s.namespace == namespace && s.name == name
            })
            .filter_map(|r| ReviewFacts::from_review(&r))
            .collect()
    }

    /// The department code of a namespace, from its label.
    pub fn department_of(&self, namespace: &str) -> Option<String> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| ns.labels().get(LABEL_DEPARTMENT).cloned())
    }

    /// Item `identifier` from the cached catalogs (see [`item_in`](Self::item_in)).
    pub fn cached_item(&self, identifier: &str) -> Option<ItemFacts> {
        let declaring: Vec<Arc<DataCatalog>> = self
            .catalogs_by_item
            .get(identifier)
            .iter()
            .filter_map(|c| self.catalogs.get(c))
            .collect();
        self.item_in(declaring.iter().map(AsRef::as_ref), identifier)
    }

    /// Item `identifier` from the one catalog among `catalogs` that declares it; `None` if none
    /// or several do (several is a CAT-4 conflict the webhook prevents).
    pub fn item_in<'a>(
        &self,
        catalogs: impl IntoIterator<Item = &'a DataCatalog>,
        identifier: &str,
    ) -> Option<ItemFacts> {
        let mut declaring = catalogs
            .into_iter()
            .filter(|c| c.spec.items.iter().any(|i| i.identifier == identifier));
        let catalog = declaring.next()?;
        if declaring.next().is_some() {
            return None;
        }
        let namespace = catalog.namespace().unwrap_or_default();
        let department = self.department_of(&namespace).unwrap_or_else(|| {
            catalog
                .spec
                .items
                .iter()
                .find(|i| i.identifier == identifier)
                .map(|i| i.source_department.clone())
                .unwrap_or_default()
        });
        ItemFacts::from_catalog(catalog, &department, identifier)
    }
}

/// The index key of a Review's subject.
fn subject_key(kind: SubjectKind, namespace: &str, name: &str) -> String {
    format!("{kind:?}/{namespace}/{name}")
}
