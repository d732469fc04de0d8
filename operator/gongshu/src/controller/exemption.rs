//! The `ChannelExemption` controller: runs a filing's workflow (CH-1;
//! `gongshu_api::workflow::exemption`) from the authority's Reviews and the objects it covers,
//! and, when a filing that says `enforce: true` ends, deletes what it covered: on expiry, on
//! revocation, and when the department withdraws it by deleting it (a finalizer, on such
//! filings only, holds the deletion until the covered objects are gone).

use std::sync::Arc;

use futures::StreamExt;
use gongshu_api::{
    v1alpha1::{
        ChannelExemption, ChannelExemptionStatus, CommonStatus, ExemptionPhase, ExposedObject,
        Review, SubjectKind,
    },
    workflow::exemption::{ExemptionFacts, evaluate},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
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
    /// The finalizer could not be added or removed.
    #[error("cannot update the finalizers of ChannelExemption {namespace}/{name}: {source}")]
    Finalizer {
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

/// Holds the deletion of a filing with `enforce: true` until what it covered is removed.
pub const FINALIZER: &str = "gongshu.io/channel-exemption";

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Delete { .. } => "channel_delete",
            Self::Finalizer { .. } => "finalizer",
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
    let has_finalizer = exemption.finalizers().iter().any(|f| f == FINALIZER);
    if exemption.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            withdraw(&ctx, &channels, &exemption, &exposed).await?;
        }
        return Ok(Action::await_change());
    }
    if exemption.spec.enforce != has_finalizer {
        set_finalizer(&ctx.client, &exemption, exemption.spec.enforce).await?;
    }
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

/// The department deleted a filing with `enforce: true`: if it was in force, what it covered
/// goes with it (a withdrawal, CH-1); then the deletion proceeds.
async fn withdraw(
    ctx: &Context,
    channels: &Channels,
    exemption: &ChannelExemption,
    exposed: &[ExposedObject],
) -> Result<(), Error> {
    let namespace = exemption.namespace().unwrap_or_default();
    let in_force = exemption
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p == ExemptionPhase::Approved);
    if in_force {
        for object in exposed {
            remove(&ctx.client, channels, &namespace, object).await?;
        }
        if !exposed.is_empty() {
            let names: Vec<String> = exposed
                .iter()
                .map(|o| format!("{} {}", o.kind.as_str(), o.name))
                .collect();
            let event = gongshu_api::workflow::Event::normal(
                gongshu_api::workflow::exemption::EVENT_REMOVED,
                "Delete",
                format!(
                    "deleted with the withdrawn exemption (enforce: true): {}",
                    names.join(", ")
                ),
            );
            publish_events(ctx, exemption, &[event]).await;
        }
    }
    set_finalizer(&ctx.client, exemption, false).await
}

/// Adds or removes [`FINALIZER`], keeping the others.
async fn set_finalizer(
    client: &Client,
    exemption: &ChannelExemption,
    on: bool,
) -> Result<(), Error> {
    let mut finalizers: Vec<String> = exemption
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if on {
        finalizers.push(FINALIZER.to_owned());
    }
    // The resourceVersion makes this a compare-and-swap: a finalizer another controller added
    // meanwhile is not lost.
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": exemption.resource_version(),
    }});
    let namespace = exemption.namespace().unwrap_or_default();
    match Api::<ChannelExemption>::namespaced(client.clone(), &namespace)
        .patch(
            &exemption.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Finalizer {
            namespace,
            name: exemption.name_any(),
            source,
        }),
    }
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
