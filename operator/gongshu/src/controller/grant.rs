//! The `ShareGrant` controller: runs a grant's workflow (SH-4; `gongshu_api::workflow::grant`)
//! from the item it requests, the Reviews about it and the `Regulation` in force, and gives an
//! active grant its exchange endpoint.
//!
//! No finalizer: nothing outside the apiserver depends on a grant yet, and the exchange stops
//! serving a deleted grant as soon as its own watch sees the deletion. A finalizer costs every
//! grant an extra write (and an admission call) at scale; the exchange issue adds one only for
//! `table` grants, whose replicated rows must be dropped.

use std::sync::Arc;

use gongshu_api::{
    sla,
    status::set_condition,
    v1alpha1::{CommonStatus, DataCatalog, Review, ShareGrant, ShareGrantStatus, SubjectKind},
    workflow::grant::{GrantFacts, ItemFacts, evaluate, is_final, served_terms},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tracing::{debug, instrument};

use super::{
    ApplyError, CACHE_WAIT, Categorized, Context, Kind, catalog::regulation_condition,
    facts::Facts, finish, publish_events, requeue_at, watch_all,
};

impl Kind for ShareGrant {
    const CONTROLLER: &'static str = "sharegrant";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &ShareGrantStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `ShareGrant` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalogs could not be read to confirm a missing or unapproved item.
    #[error("cannot read the catalogs to confirm item {item}: {source}")]
    Catalogs {
        /// The requested item.
        item: String,
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
            Self::Catalogs { .. } => "catalog_read",
            Self::Apply(e) => e.category(),
        }
    }
}

/// The controller, watching grants everywhere, the Reviews about them, the catalogs declaring
/// the items they request, and the `Regulation` in force.
pub fn controller(client: &Client, facts: &Facts) -> Controller<ShareGrant> {
    let grants = watch_all::<ShareGrant>(client);
    let store = grants.store();
    grants
        .watches(
            Api::<Review>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            |review: Review| {
                let s = review.spec.subject;
                (s.kind == SubjectKind::ShareGrant)
                    .then(|| ObjectRef::new(&s.name).within(&s.namespace))
            },
        )
        .watches(
            Api::<DataCatalog>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            move |catalog: DataCatalog| {
                store
                    .state()
                    .into_iter()
                    .filter(|g| {
                        catalog
                            .spec
                            .items
                            .iter()
                            .any(|i| i.identifier == g.spec.item)
                    })
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(facts.regulation_changes())
}

/// Reconciles one grant.
#[instrument(skip_all, fields(kind = "ShareGrant", namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
pub async fn reconcile(
    grant: Arc<ShareGrant>,
    ctx: Arc<Context>,
    facts: Facts,
) -> Result<Action, Error> {
    // Never evaluate against caches that have not listed: a missing item denies the grant, and
    // Denied is final.
    if !facts.is_synced() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let _timer = ctx.metrics.reconcile(ShareGrant::CONTROLLER);
    apply(&grant, &ctx, &facts).await
}

/// The item the grant requests, from the cache; when the cache has it missing or unapproved
/// for a grant that is still open, confirmed by reading the catalogs, since the cache may lag
/// the approval that the webhook already saw, and a denial is final.
async fn item(
    grant: &ShareGrant,
    ctx: &Context,
    facts: &Facts,
) -> Result<Option<ItemFacts>, Error> {
    let id = &grant.spec.item;
    let cached = facts.cached_item(id);
    let open = !grant
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(is_final);
    if !open || cached.as_ref().is_some_and(|i| i.approved) {
        return Ok(cached);
    }
    debug!(item = %id, "item missing or unapproved in the cache; reading the catalogs");
    let catalogs = Api::<DataCatalog>::all(ctx.client.clone())
        .list(&Default::default())
        .await
        .map_err(|source| Error::Catalogs {
            item: id.clone(),
            source,
        })?;
    Ok(facts.item_in(catalogs.items.iter(), id))
}

async fn apply(grant: &ShareGrant, ctx: &Context, facts: &Facts) -> Result<Action, Error> {
    let item = item(grant, ctx, facts).await?;
    let namespace = grant.namespace().unwrap_or_default();
    let name = grant.name_any();
    let reviews = facts.reviews_of(SubjectKind::ShareGrant, &namespace, &name);
    let regulation = facts.regulation();
    let now = Timestamp::now();
    let created = grant
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let generation = grant.metadata.generation.unwrap_or_default();
    let mut outcome = evaluate(&GrantFacts {
        namespace: &namespace,
        name: &name,
        spec: &grant.spec,
        generation,
        created,
        item: item.as_ref(),
        reviews: &reviews,
        regulation: &regulation.facts,
        previous: grant.status.as_ref(),
        now,
    });
    outcome.status.endpoint =
        served_terms(&outcome.status).map(|_| endpoint(&ctx.exchange_url, &namespace, &name));
    set_condition(
        &mut outcome.status.common.conditions,
        regulation_condition(regulation.fallback.as_deref(), Some(generation), now),
    );
    let requeue = requeue_at(outcome.next_wakeup, now);
    let before = grant
        .status
        .as_ref()
        .map(|s| s.deadlines.as_slice())
        .unwrap_or_default();
    let consumer = facts
        .department_of(&namespace)
        .unwrap_or_else(|| "unknown".to_owned());
    let provider = outcome
        .status
        .provider
        .as_ref()
        .map(|p| p.department.clone());
    let breached: Vec<(String, &'static str)> =
        sla::newly_breached(before, &outcome.status.deadlines)
            .map(|d| {
                (
                    sla::department_of(&d.actor, &consumer, provider.as_deref()),
                    d.step.as_str(),
                )
            })
            .collect();
    for pending in sla::grant_steps(&consumer, &namespace, &name, &outcome.status) {
        if pending.due.is_some() {
            ctx.metrics
                .deadline_pending(&pending.department, pending.step.as_str());
        }
    }
    let action = finish(ctx, grant, outcome.status, requeue).await?;
    for (department, step) in &breached {
        ctx.metrics.deadline_breached(department, step);
    }
    publish_events(ctx, grant, &outcome.events).await;
    Ok(action)
}

/// `<exchange>/v1/grants/<namespace>/<name>`: where the grant's consumers call the exchange.
pub fn endpoint(exchange_url: &str, namespace: &str, name: &str) -> String {
    format!("{exchange_url}/v1/grants/{namespace}/{name}")
}
