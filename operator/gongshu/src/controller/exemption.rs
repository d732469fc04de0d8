//! The `ChannelExemption` controller: runs a filing's workflow (CH-1;
//! `gongshu_api::workflow::exemption`) from the authority's Reviews and the objects it covers,
//! and, when an ended filing says `enforce: true`, deletes what it covered.

use std::sync::Arc;

use futures::StreamExt;
use gongshu_api::{
    v1alpha1::{
        ChannelExemption, ChannelExemptionStatus, CommonStatus, ExposedObject, Review, SubjectKind,
    },
    workflow::exemption::{ExemptionFacts, evaluate},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::DeleteParams,
    core::DynamicObject,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tracing::{info, instrument};

use super::{
    ApplyError, CACHE_WAIT, Categorized, Context, Kind, facts::Facts, finish, publish_events,
    requeue_at, watch_all,
};
use crate::channels::Channels;

impl Kind for ChannelExemption {
    const CONTROLLER: &'static str = "channelexemption";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &ChannelExemptionStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `ChannelExemption` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A covered object could not be deleted after the filing ended (`enforce`).
    #[error("cannot delete {kind} {namespace}/{name} after its exemption ended: {source}")]
    Delete {
        /// The object's kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
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
            Self::Delete { .. } => "channel_delete",
            Self::Apply(e) => e.category(),
        }
    }
}

/// The controller, watching filings, the Reviews about them, the exposures they cover and the
/// `Regulation` in force (which names the authority).
pub fn controller(
    client: &Client,
    facts: &Facts,
    channels: &Channels,
) -> Controller<ChannelExemption> {
    watch_all::<ChannelExemption>(client)
        .watches(
            Api::<Review>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            |review: Review| {
                let s = review.spec.subject;
                (s.kind == SubjectKind::ChannelExemption)
                    .then(|| ObjectRef::new(&s.name).within(&s.namespace))
            },
        )
        .reconcile_all_on(channels.changes().map(|_| ()))
        .reconcile_all_on(facts.regulation_changes())
}

/// Reconciles one filing.
#[instrument(skip_all, fields(kind = "ChannelExemption", namespace = exemption.namespace().unwrap_or_default(), name = exemption.name_any()))]
pub async fn reconcile(
    exemption: Arc<ChannelExemption>,
    ctx: Arc<Context>,
    facts: Facts,
    channels: Channels,
) -> Result<Action, Error> {
    // An empty cache reads as "covers nothing that exists": a left-over would go unreported.
    if !facts.is_synced() || !channels.is_synced() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let _timer = ctx.metrics.reconcile(ChannelExemption::CONTROLLER);
    let namespace = exemption.namespace().unwrap_or_default();
    let name = exemption.name_any();
    let reviews = facts.reviews_of(SubjectKind::ChannelExemption, &namespace, &name);
    let regulation = facts.regulation();
    let exposures = channels.exposures_in(&namespace);
    let exposed: Vec<ExposedObject> = exemption
        .spec
        .covers
        .iter()
        .filter(|c| {
            exposures
                .iter()
                .any(|e| e.kind == c.kind && e.name == c.name)
        })
        .cloned()
        .collect();
    let now = Timestamp::now();
    let outcome = evaluate(&ExemptionFacts {
        namespace: &namespace,
        name: &name,
        spec: &exemption.spec,
        generation: exemption.metadata.generation.unwrap_or_default(),
        created: exemption
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0),
        reviews: &reviews,
        authority_namespace: &regulation.facts.authority_namespace,
        previous: exemption.status.as_ref(),
        exposed: &exposed,
        now,
    });
    for object in &outcome.remove {
        remove(&ctx.client, &channels, &namespace, object).await?;
    }
    let evaluation = outcome.evaluation;
    let requeue = requeue_at(evaluation.next_wakeup, now);
    let action = finish(&ctx, exemption.as_ref(), evaluation.status, requeue).await?;
    publish_events(&ctx, exemption.as_ref(), &evaluation.events).await;
    Ok(action)
}

/// Deletes a covered object; one already gone is fine.
async fn remove(
    client: &Client,
    channels: &Channels,
    namespace: &str,
    object: &ExposedObject,
) -> Result<(), Error> {
    // Exposed objects are only known for kinds the view watches, so the resource is there.
    let Some(resource) = channels.resource(object.kind) else {
        return Ok(());
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    match api.delete(&object.name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(kind = object.kind.as_str(), %namespace, name = %object.name, "deleted a covered object after its exemption ended (enforce)");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: object.kind.as_str(),
            namespace: namespace.to_owned(),
            name: object.name.clone(),
            source,
        }),
    }
}
