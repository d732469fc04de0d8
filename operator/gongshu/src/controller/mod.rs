//! One kube-runtime `Controller` per gongshu kind. Each reconcile is a short pipeline:
//! fetch what the rules need → validate (pure, `gongshu_api::rules`) → compute the status
//! (pure) → apply it with server-side apply → decide when to look again.
//!
//! Error policy: an invalid spec is not an error — the object is `Stalled` and waits for the
//! user's next edit; a failed API call is retried with per-object exponential backoff; every
//! successful reconcile requeues on a long safety timer because watch events can be missed.

mod apply;
pub mod backoff;
pub mod backup;
pub mod catalog;
pub mod exemption;
pub mod facts;
pub mod grant;
pub mod isolation;
pub mod open;
pub mod regulation;
pub mod review;
pub mod sla;

use std::{fmt, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use gongshu_api::{
    status::{STALLED, is_true},
    v1alpha1::CommonStatus,
};
use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    core::object::HasStatus,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::{Event, EventType},
        predicates,
        reflector::{self, ObjectRef},
        utils::PredicateConfig,
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{debug, instrument, warn};

pub use self::apply::{Applied, ApplyError};
use self::backoff::Backoff;
use crate::metrics::Metrics;

/// The one field manager of everything the operator writes with server-side apply.
pub const FIELD_MANAGER: &str = "gongshu.io/operator";
/// How long after a successful reconcile an object is looked at again anyway, plus up to a
/// tenth of it spread by object ([`spread`]).
///
/// Long on purpose: kube-runtime's watcher re-lists after any watch failure, so a missed event
/// is recovered without it, and every object's own timers (deadlines, expiry) are exact
/// wake-ups. It only bounds the damage of a bug; with 11,000 objects six hours is 31
/// reconciles a minute at rest (the scale benchmark), fifteen minutes would be 730.
pub const SAFETY_REQUEUE: Duration = Duration::from_secs(6 * 3600);
/// The controller name Events are reported under.
pub const REPORTER: &str = "gongshu-operator";
/// The exchange's base URL when none is configured: its Service in the operator's namespace.
pub const DEFAULT_EXCHANGE_URL: &str = "https://gongshu-exchange.gongshu-system.svc";
/// The operator's namespace unless configured (`--namespace`).
pub const DEFAULT_NAMESPACE: &str = "gongshu-system";
/// Reconciles each controller runs at once unless configured.
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// How soon a workflow controller looks again while its caches are still listing.
pub const CACHE_WAIT: Duration = Duration::from_secs(2);

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Publishes Events.
    pub recorder: crate::events::Publisher,
    /// Per-object retry delays.
    pub backoff: Backoff,
    /// The exchange's base URL, which active grants' endpoints are under.
    pub exchange_url: String,
    /// Reconciles each controller runs at once.
    pub concurrency: u16,
    /// Starts backup runs and drills; `None`: policies are scheduled but nothing is started.
    pub backups: Option<Arc<backup::Launcher>>,
    /// The operator's own namespace, where the exchange runs: the department namespaces'
    /// NetworkPolicies admit the exchange's pods there.
    pub namespace: String,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose Events name `instance` (the pod or process) as their reporter.
    pub fn new(client: Client, metrics: Metrics, instance: &str) -> Self {
        Self {
            recorder: crate::events::Publisher::new(client.clone(), REPORTER, instance),
            client,
            metrics,
            backoff: Backoff::default(),
            exchange_url: DEFAULT_EXCHANGE_URL.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
            backups: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }

    /// This context for an operator running in `namespace`.
    #[must_use]
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// This context starting backup runs as `config` says (none without it).
    #[must_use]
    pub fn with_backups(mut self, config: Option<backup::LauncherConfig>) -> Self {
        self.backups = config.map(|c| Arc::new(backup::Launcher::new(c)));
        self
    }

    /// This context with `n` reconciles at once per controller.
    #[must_use]
    pub fn with_concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// This context with active grants' endpoints under `url`.
    #[must_use]
    pub fn with_exchange_url(mut self, url: &str) -> Self {
        url.trim_end_matches('/').clone_into(&mut self.exchange_url);
        self
    }
}

/// When to look at an object again: at `wakeup` (a second late, so that the due time has
/// passed), but no later than [`SAFETY_REQUEUE`].
pub fn requeue_at(wakeup: Option<Timestamp>, now: Timestamp) -> Duration {
    wakeup
        .and_then(|at| Duration::try_from(at.duration_since(now)).ok())
        .map_or(SAFETY_REQUEUE, |d| {
            (d + Duration::from_secs(1)).min(SAFETY_REQUEUE)
        })
}

/// Publishes the workflow's Events about `obj`; a failure is logged, not retried (the status
/// already records what happened).
pub async fn publish_events<K: Kind>(
    ctx: &Context,
    obj: &K,
    events: &[gongshu_api::workflow::Event],
) {
    let reference = obj.object_ref(&());
    for e in events {
        let event = Event {
            type_: match e.type_ {
                gongshu_api::workflow::EventType::Normal => EventType::Normal,
                gongshu_api::workflow::EventType::Warning => EventType::Warning,
            },
            reason: e.reason.into(),
            note: Some(e.note.clone()),
            action: e.action.into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(%error, reason = e.reason, "cannot publish Event");
        }
    }
}

/// A gongshu kind as the shared parts of the controllers see it.
pub trait Kind:
    Resource<DynamicType = ()>
    + HasStatus<Status: Clone + PartialEq + Serialize + DeserializeOwned + fmt::Debug + Send + Sync>
    + Clone
    + DeserializeOwned
    + Serialize
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's label in metrics and logs.
    const CONTROLLER: &'static str;
    /// The API the object lives in.
    fn api(client: Client, obj: &Self) -> Api<Self>;
    /// The kstatus part of a status.
    fn common(status: &Self::Status) -> &CommonStatus;
}

/// A kind whose status follows from the object alone (its spec and its previous status), with
/// no other object to fetch and no outside state to change: for now `OpenDataset` and
/// `Review`.
pub trait SpecOnly: Kind {
    /// The status the rules in `gongshu_api::rules` give this object at `now`.
    fn desired_status(&self, now: Timestamp) -> Self::Status;
}

/// Reconciles a [`SpecOnly`] kind: validate and compute the status (pure), then apply it.
#[instrument(skip_all, fields(controller = K::CONTROLLER, namespace = obj.namespace().unwrap_or_default(), name = obj.name_any()))]
pub async fn reconcile_spec_only<K: SpecOnly>(
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, ApplyError> {
    let _timer = ctx.metrics.reconcile(K::CONTROLLER);
    let status = obj.desired_status(Timestamp::now());
    finish(&ctx, obj.as_ref(), status, SAFETY_REQUEUE).await
}

/// A controller watching every `K` in the cluster.
///
/// - Its cache keeps objects without their `managedFields` ([`crate::cache::slim`]): the
///   largest part of a reconciled object, and one no reconcile reads.
/// - Only a new `metadata.generation` (a spec edit, or an object seen for the first time)
///   triggers a reconcile: the status is the operator's own, so the watch event of its own
///   status write would only re-run a reconcile that writes nothing. Everything else that
///   matters (Reviews, catalogs, the Regulation, deadlines) triggers reconciles of its own.
///   This halves the reconciles of a backlog (the scale benchmark).
pub fn watch_all<K: Kind>(client: &Client) -> Controller<K> {
    let (reader, writer) = reflector::store();
    let objects = reflector::reflector(
        writer,
        watcher(
            Api::<K>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .modify(crate::cache::slim),
    )
    .applied_objects()
    .predicate_filter(predicates::generation, PredicateConfig::default());
    Controller::for_stream(objects, reader)
}

/// A reconcile error with a stable, low-cardinality category for metrics and Events.
pub trait Categorized: std::error::Error + Send + Sync + 'static {
    /// The category label.
    fn category(&self) -> &'static str;
}

fn key<K: Kind>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The end of every successful reconcile: applies `status` unless it is unchanged, publishes an
/// Event when the object enters or leaves `Stalled`, and tells the controller when to come
/// back — after the next edit if stalled, else after `requeue`.
pub async fn finish<K: Kind>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    requeue: Duration,
) -> Result<Action, ApplyError> {
    let changed = obj.status() != Some(&status);
    let applied = Applied::apply(&ctx.client, obj, status).await?;
    if changed {
        ctx.metrics.status_written(K::CONTROLLER);
    }
    let before = obj
        .status()
        .map(|s| K::common(s).conditions.as_slice())
        .unwrap_or_default();
    let after = &K::common(applied.status()).conditions;
    if let Some(transition) = gongshu_api::status::stalled_transition(before, after) {
        publish_stalled(ctx, obj, transition).await;
    }
    let key = key(obj);
    ctx.backoff.succeeded(&key);
    Ok(if is_true(after, STALLED) {
        Action::await_change()
    } else if requeue >= SAFETY_REQUEUE {
        Action::requeue(spread(SAFETY_REQUEUE, &key))
    } else {
        Action::requeue(requeue)
    })
}

/// `period` plus up to a tenth of it, fixed per `key`: objects reconciled together in a burst
/// (a restart, a relist) do not all come back in the same second.
fn spread(period: Duration, key: &str) -> Duration {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    // A fixed-key hasher: the spread of an object is the same in every process.
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    period + period / 10 * u32::try_from(hash % 1000).unwrap_or(0) / 1000
}

async fn publish_stalled<K: Kind>(
    ctx: &Context,
    obj: &K,
    transition: gongshu_api::status::StalledTransition,
) {
    use gongshu_api::status::StalledTransition::{Entered, Left};
    let event = match transition {
        Entered { reason, message } => Event {
            type_: EventType::Warning,
            reason,
            note: Some(message),
            action: "Reconcile".into(),
            secondary: None,
        },
        Left => Event {
            type_: EventType::Normal,
            reason: gongshu_api::status::RECOVERED.into(),
            note: Some("no longer stalled".into()),
            action: "Reconcile".into(),
            secondary: None,
        },
    };
    if let Err(error) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(%error, reason = %event.reason, "cannot publish Event");
    }
}

/// The error policy of every controller: count the failure, publish a Warning Event with its
/// category, and retry after the object's backoff delay.
pub fn error_policy<K: Kind, E: Categorized>(obj: Arc<K>, error: &E, ctx: Arc<Context>) -> Action {
    let category = error.category();
    ctx.metrics.error(K::CONTROLLER, category);
    let delay = ctx.backoff.failed(&key(obj.as_ref()));
    warn!(
        controller = K::CONTROLLER,
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any(),
        category,
        %error,
        retry_in = ?delay,
        "reconcile failed; retrying"
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "ReconcileFailed".into(),
        note: Some(format!("{category}: {error}; retrying in {delay:?}")),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    tokio::spawn(async move {
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            debug!(%error, "cannot publish Event");
        }
    });
    Action::requeue(delay)
}

/// Drives a controller's output stream to its end, logging what the error policy did not.
pub async fn drive<K, E>(
    controller: &'static str,
    stream: impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>>,
) where
    K: Resource,
    E: std::error::Error + 'static,
{
    stream
        .for_each(|result| async move {
            match result {
                Ok((object, action)) => debug!(controller, %object, ?action, "reconciled"),
                // Logged and counted by the error policy already.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(controller::Error::ObjectNotFound(object)) => {
                    debug!(controller, %object, "object gone before its reconcile");
                }
                Err(error) => warn!(controller, %error, "controller error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::spread;

    #[test]
    fn the_safety_requeue_is_spread_by_object_within_a_tenth() {
        let period = Duration::from_secs(6 * 3600);
        let spreads: std::collections::BTreeSet<Duration> = (0..200)
            .map(|i| spread(period, &format!("ShareGrant/ns/g{i}")))
            .collect();
        assert!(
            spreads
                .iter()
                .all(|d| *d >= period && *d <= period + period / 10)
        );
        assert!(spreads.len() > 150, "objects come back at different times");
        assert_eq!(
            spread(period, "a"),
            spread(period, "a"),
            "stable per object"
        );
    }
}
