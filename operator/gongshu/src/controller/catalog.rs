//! The `DataCatalog` controller: checks the catalog against its namespace's department label,
//! submits new and changed items for the authority's review and applies the authority's
//! `Review`s (CAT-2, CAT-9; `gongshu_api::workflow::catalog`). Namespace label changes,
//! Reviews of its items and changes of the `Regulation` re-trigger a catalog.

use std::sync::Arc;

use gongshu_api::{
    sla,
    status::{condition, set_condition},
    v1alpha1::{
        CommonStatus, DataCatalog, DataCatalogStatus, LABEL_DEPARTMENT, Review, SubjectKind,
    },
    workflow::catalog::{CatalogFacts, evaluate},
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tracing::instrument;

use super::{
    ApplyError, CACHE_WAIT, Categorized, Context, Kind, facts::Facts, finish, publish_events,
    requeue_at, watch_all,
};

/// Condition type: the `default` Regulation is missing or invalid, so a fallback preset counts
/// the deadlines (abnormal-true).
pub const REGULATION_DEFAULTED: &str = "RegulationDefaulted";
/// Reason of `RegulationDefaulted=True`.
pub const NO_VALID_REGULATION: &str = "NoValidRegulation";
/// Reason of `RegulationDefaulted=False`.
pub const REGULATION_IN_FORCE: &str = "RegulationInForce";

impl Kind for DataCatalog {
    const CONTROLLER: &'static str = "datacatalog";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &DataCatalogStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `DataCatalog` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog's namespace could not be read.
    #[error("cannot read namespace {namespace}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The status could not be written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Namespace { .. } => "namespace_read",
            Self::Apply(e) => e.category(),
        }
    }
}

/// The controller, watching catalogs everywhere, the namespaces they live in, the Reviews of
/// their items, and the `Regulation` in force.
pub fn controller(client: &Client, facts: &Facts) -> Controller<DataCatalog> {
    let catalogs = watch_all::<DataCatalog>(client);
    let store = catalogs.store();
    catalogs
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            move |namespace: Namespace| {
                let name = namespace.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|catalog| catalog.namespace().as_deref() == Some(name.as_str()))
                    .map(|catalog| ObjectRef::from_obj(catalog.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<Review>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            |review: Review| {
                let s = review.spec.subject;
                (s.kind == SubjectKind::CatalogItem)
                    .then(|| ObjectRef::new(&s.name).within(&s.namespace))
            },
        )
        .reconcile_all_on(facts.regulation_changes())
}

/// Reconciles one catalog.
#[instrument(skip_all, fields(kind = "DataCatalog", namespace = catalog.namespace().unwrap_or_default(), name = catalog.name_any()))]
pub async fn reconcile(
    catalog: Arc<DataCatalog>,
    ctx: Arc<Context>,
    facts: Facts,
) -> Result<Action, Error> {
    if !facts.is_synced() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let _timer = ctx.metrics.reconcile(DataCatalog::CONTROLLER);
    let namespace = catalog.namespace().unwrap_or_default();
    let name = catalog.name_any();
    // Read, not cached: the namespace watch that re-triggers this catalog may be ahead of a
    // cache, and a stale label would stall the catalog until the safety requeue.
    let ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&namespace)
        .await
        .map_err(|source| Error::Namespace {
            namespace: namespace.clone(),
            source,
        })?;
    let department = ns
        .as_ref()
        .and_then(|ns| ns.labels().get(LABEL_DEPARTMENT).cloned());
    let regulation = facts.regulation();
    let reviews = facts.reviews_of(SubjectKind::CatalogItem, &namespace, &name);
    let now = Timestamp::now();
    let created = catalog
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let generation = catalog.metadata.generation.unwrap_or_default();
    let mut outcome = evaluate(&CatalogFacts {
        namespace: &namespace,
        name: &name,
        department: department.as_deref(),
        spec: &catalog.spec,
        generation,
        created,
        reviews: &reviews,
        regulation: &regulation.facts,
        previous: catalog.status.as_ref(),
        now,
    });
    set_condition(
        &mut outcome.status.common.conditions,
        regulation_condition(regulation.fallback.as_deref(), Some(generation), now),
    );
    let requeue = requeue_at(outcome.next_wakeup, now);
    let own = department.as_deref().unwrap_or("unknown");
    let breached: Vec<(String, &'static str)> = outcome
        .status
        .workflow
        .iter()
        .flat_map(|item| {
            let before = catalog
                .status
                .as_ref()
                .and_then(|s| s.workflow.iter().find(|w| w.identifier == item.identifier))
                .map(|w| w.deadlines.as_slice())
                .unwrap_or_default();
            sla::newly_breached(before, &item.deadlines)
                .map(|d| (sla::department_of(&d.actor, own, None), d.step.as_str()))
                .collect::<Vec<_>>()
        })
        .collect();
    for pending in sla::catalog_steps(own, &namespace, &name, &outcome.status) {
        if pending.due.is_some() {
            ctx.metrics
                .deadline_pending(&pending.department, pending.step.as_str());
        }
    }
    let action = finish(&ctx, catalog.as_ref(), outcome.status, requeue).await?;
    for (department, step) in &breached {
        ctx.metrics.deadline_breached(department, step);
    }
    publish_events(&ctx, catalog.as_ref(), &outcome.events).await;
    Ok(action)
}

/// `RegulationDefaulted`: whether deadlines are counted with the fallback preset.
pub fn regulation_condition(
    fallback: Option<&str>,
    generation: Option<i64>,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    match fallback {
        Some(why) => condition(
            REGULATION_DEFAULTED,
            true,
            NO_VALID_REGULATION,
            why,
            generation,
            now,
        ),
        None => condition(
            REGULATION_DEFAULTED,
            false,
            REGULATION_IN_FORCE,
            "",
            generation,
            now,
        ),
    }
}
