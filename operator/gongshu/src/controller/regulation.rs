//! The `Regulation` controller: builds the work calendar from the object (naming the year or
//! date of any error), publishes the deadline table in force with its overrides (SH-4), and
//! warns when the calendar lacks a year that deadlines are counted in. Only the `Regulation`
//! named `default` is in force; its status also carries the channel scan (CH-1): every object
//! in a department namespace that exposes workloads outside the exchange without an approved
//! exemption, found whatever the admission mode (objects made before the webhook, while it was
//! off, or admitted in audit mode).

use std::{collections::BTreeSet, sync::Arc};

use futures::StreamExt;
use gongshu_api::{
    rules::channel::{self, NamespaceScan},
    status::{self, set_condition},
    v1alpha1::{ChannelReport, ChannelViolation, CommonStatus, Regulation, RegulationStatus},
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType},
        watcher,
    },
};
use tracing::{instrument, warn};

use super::{
    ApplyError, Context, Kind, SAFETY_REQUEUE,
    facts::{Facts, REGULATION},
    finish, watch_all,
};
use crate::channels::Channels;

/// Condition type on the `default` Regulation: objects in department namespaces expose
/// workloads outside the exchange (CH-1) (abnormal-true).
pub const CHANNEL_VIOLATIONS: &str = "ChannelViolations";
/// Reason: the scan found violations.
pub const FOUND: &str = "Found";
/// Reason: the scan found none.
pub const NONE_FOUND: &str = "NoneFound";
/// Event reason on an object that exposes workloads outside the exchange.
pub const EVENT_PARALLEL_CHANNEL: &str = "ParallelChannel";

impl Kind for Regulation {
    const CONTROLLER: &'static str = "regulation";

    fn api(client: Client, _: &Self) -> Api<Self> {
        Api::all(client)
    }

    fn common(status: &RegulationStatus) -> &CommonStatus {
        &status.common
    }
}

/// The controller, watching Regulations and, for the scan, every change of an exposure, a
/// filing or a namespace (which may become a department), debounced by the controller's
/// configuration.
pub fn controller(client: &Client, channels: &Channels) -> Controller<Regulation> {
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|n| futures::future::ready(n.ok().map(|_| ())));
    watch_all::<Regulation>(client)
        .reconcile_all_on(channels.changes().map(|_| ()))
        .reconcile_all_on(namespaces)
}

/// Reconciles one Regulation; the `default` one also gets the channel scan.
#[instrument(skip_all, fields(kind = "Regulation", name = regulation.name_any()))]
pub async fn reconcile(
    regulation: Arc<Regulation>,
    ctx: Arc<Context>,
    facts: Facts,
    channels: Channels,
) -> Result<Action, ApplyError> {
    use gongshu_api::rules::regulation as rules;
    let _timer = ctx.metrics.reconcile(Regulation::CONTROLLER);
    let now = Timestamp::now();
    let checked = rules::check(&regulation.spec);
    let mut status = rules::status(
        &regulation.name_any(),
        &regulation.spec,
        regulation.status.as_ref(),
        regulation.metadata.generation,
        &checked,
        now,
    );
    let previous = regulation.status.as_ref().and_then(|s| s.channels.clone());
    let in_force = regulation.name_any() == REGULATION;
    if in_force && facts.is_synced() && channels.is_synced() {
        let scanned = scan(&facts, &channels, now);
        ctx.metrics
            .set_channel_violations(scanned.counts.iter().map(|((ns, kind), n)| {
                (
                    facts.department_of(ns).unwrap_or_else(|| ns.clone()),
                    *kind,
                    *n,
                )
            }));
        set_condition(
            &mut status.common.conditions,
            status::condition(
                CHANNEL_VIOLATIONS,
                scanned.report.violations > 0,
                if scanned.report.violations > 0 {
                    FOUND
                } else {
                    NONE_FOUND
                },
                channel::summary(&scanned.report),
                regulation.metadata.generation,
                now,
            ),
        );
        status.channels = Some(scanned.report);
    } else if !in_force {
        status.channels = None;
    }
    let action = finish(&ctx, regulation.as_ref(), status.clone(), SAFETY_REQUEUE).await?;
    if let Some(report) = &status.channels {
        publish_new_violations(&ctx, &channels, previous.as_ref(), report).await;
    }
    Ok(action)
}

/// The scan over the department namespaces that hold exposures.
fn scan(facts: &Facts, channels: &Channels, now: Timestamp) -> channel::Scanned {
    let namespaces: Vec<(String, Vec<channel::Exposure>, Vec<channel::Filing>)> = channels
        .namespaces()
        .into_iter()
        .filter(|ns| facts.department_of(ns).is_some())
        .map(|ns| {
            let exposures = channels.exposures_in(&ns);
            let filings = channels.filings_in(&ns);
            (ns, exposures, filings)
        })
        .collect();
    channel::report(
        namespaces
            .iter()
            .map(|(ns, exposures, filings)| NamespaceScan {
                namespace: ns,
                exposures: exposures.iter().collect(),
                filings,
            }),
        now,
    )
}

/// A Warning Event on each object newly listed as a violation.
async fn publish_new_violations(
    ctx: &Context,
    channels: &Channels,
    previous: Option<&ChannelReport>,
    report: &ChannelReport,
) {
    let known: BTreeSet<&ChannelViolation> = previous.iter().flat_map(|p| &p.objects).collect();
    for violation in report.objects.iter().filter(|v| !known.contains(v)) {
        let Some(resource) = channels.resource(violation.kind) else {
            continue;
        };
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            namespace: Some(violation.namespace.clone()),
            name: Some(violation.name.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: EVENT_PARALLEL_CHANNEL.into(),
            note: Some(format!(
                "{} {} {}: it exposes department workloads outside the exchange without an approved ChannelExemption (CH-1; {})",
                violation.kind.as_str(),
                violation.name,
                violation.how,
                channel::ARTICLES
            )),
            action: "Scan".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(%error, "cannot publish Event");
        }
    }
}
