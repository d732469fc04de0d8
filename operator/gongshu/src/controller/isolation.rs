//! Network isolation of department namespaces (CH-1, CH-2): keeps, in every namespace labelled
//! `gongshu.io/department`, the NetworkPolicy `gongshu-isolation` (own pods and the exchange
//! only) and one policy per Service an approved `ChannelExemption` covers, all built by
//! `gongshu_api::rules::isolation`; deletes them where they are no longer wanted (the label
//! removed, `spec.channels.networkIsolation: false`, the exemption expired or withdrawn).
//!
//! One reconcile per namespace, leader only. A Namespace is not a gongshu kind: it has no
//! status of ours, so the reconcile writes only NetworkPolicies and this controller has its own
//! small error policy. It reconciles a namespace when its labels change, when one of its
//! policies or exemptions changes, when a Service an exemption there covers changes, and every
//! namespace when the `default` Regulation's channel policy changes.

use std::{
    collections::BTreeSet,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::{Stream, StreamExt};
use gongshu_api::{
    rules::{
        isolation::{self, Role},
        summarize,
    },
    v1alpha1::{ChannelExemption, ChannelPolicy, LABEL_DEPARTMENT},
};
use jiff::Timestamp;
use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        predicates,
        reflector::{self, ObjectRef, Store},
        utils::PredicateConfig,
        watcher,
    },
};
use tracing::{instrument, warn};

use super::{CACHE_WAIT, Categorized, Context, FIELD_MANAGER, drive, facts::Facts, requeue_at};
use crate::{cache::slim, shutdown::Shutdown};

/// The controller's label in metrics and logs.
pub const CONTROLLER: &str = "isolation";
/// How many of this controller's own caches must list once before it deletes anything.
const CACHES: usize = 2;

type NamespaceMeta = PartialObjectMeta<Namespace>;

/// A failed reconcile of one namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A NetworkPolicy could not be applied.
    #[error("cannot apply NetworkPolicy {namespace}/{name}: {source}")]
    Apply {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A NetworkPolicy no longer wanted could not be deleted.
    #[error("cannot delete NetworkPolicy {namespace}/{name}: {source}")]
    Delete {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A Service an approved exemption covers could not be read.
    #[error("cannot read Service {namespace}/{name}: {source}")]
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        let (step, source) = match self {
            Self::Apply { source, .. } => ("policy_apply", source),
            Self::Delete { source, .. } => ("policy_delete", source),
            Self::Service { source, .. } => ("service_read", source),
        };
        match source {
            kube::Error::Api(status) if status.code == 403 => "forbidden",
            kube::Error::Api(status) if status.code == 422 => "invalid",
            _ => step,
        }
    }
}

/// What every reconcile of this controller reads.
struct Shared {
    ctx: Arc<Context>,
    facts: Facts,
    /// Every exemption in the cluster.
    exemptions: Store<ChannelExemption>,
    /// The NetworkPolicies built here ([`isolation::SELECTOR`]), in every namespace.
    policies: Store<NetworkPolicy>,
    /// How many of `exemptions` and `policies` have listed once.
    synced: Arc<AtomicUsize>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Whether every cache has listed: before that, a missing exemption or policy would read
    /// as "none", and an approved exemption's hole would be closed.
    fn is_synced(&self) -> bool {
        self.facts.is_synced() && self.synced.load(Ordering::Acquire) >= CACHES
    }

    fn exemptions_in(&self, namespace: &str) -> Vec<Arc<ChannelExemption>> {
        self.exemptions
            .state()
            .into_iter()
            .filter(|e| e.namespace().as_deref() == Some(namespace))
            .collect()
    }
}

/// A store of `K` and the stream that fills it as the controller polls it; `synced` is
/// incremented once the first list is in the store.
fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    synced: &Arc<AtomicUsize>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let synced = synced.clone();
    let mut listed = false;
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff().modify(slim))
        .inspect(move |event| {
            if !listed && matches!(event, Ok(watcher::Event::InitDone)) {
                listed = true;
                synced.fetch_add(1, Ordering::AcqRel);
            }
        })
        .touched_objects();
    (reader, stream)
}

/// Fires when the `default` Regulation's channel policy differs from the one last seen (its
/// status, rewritten by the channel scan, does not concern isolation).
fn channel_policy_changes(facts: &Facts) -> impl Stream<Item = ()> + Send + 'static {
    let last = Arc::new(Mutex::new(facts.channel_policy()));
    let changes = facts.regulation_changes();
    let facts = facts.clone();
    changes.filter(move |()| {
        let now = facts.channel_policy();
        let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = *last != now;
        *last = now;
        futures::future::ready(changed)
    })
}

/// Runs the controller until `stop` fires.
pub async fn run(ctx: Arc<Context>, facts: Facts, config: controller::Config, stop: Shutdown) {
    let client = ctx.client.clone();
    let synced = Arc::new(AtomicUsize::new(0));
    let (exemptions, exemption_events) = cached(
        Api::<ChannelExemption>::all(client.clone()),
        watcher::Config::default().any_semantic(),
        &synced,
    );
    let (policies, policy_events) = cached(
        Api::<NetworkPolicy>::all(client.clone()),
        watcher::Config::default()
            .any_semantic()
            .labels(isolation::SELECTOR),
        &synced,
    );
    // Labels are all a reconcile reads of a namespace, and only their change matters.
    let (namespaces, writer) = reflector::store();
    let namespace_events = reflector::reflector(
        writer,
        watcher(
            Api::<NamespaceMeta>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .modify(slim),
    )
    .applied_objects()
    .predicate_filter(predicates::labels, PredicateConfig::default());
    // Services change often and most are not covered: a metadata watch, no store, and only
    // those an exemption covers trigger a reconcile.
    let covering = exemptions.clone();
    let service_events = watcher(
        Api::<PartialObjectMeta<Service>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .touched_objects();
    let shared = Arc::new(Shared {
        ctx,
        facts: facts.clone(),
        exemptions,
        policies,
        synced,
    });
    let controller = Controller::for_stream(namespace_events, namespaces)
        .watches_stream(exemption_events, |e: ChannelExemption| {
            e.namespace().map(|ns| ObjectRef::new(&ns))
        })
        .watches_stream(policy_events, |p: NetworkPolicy| {
            p.namespace().map(|ns| ObjectRef::new(&ns))
        })
        .watches_stream(service_events, move |s: PartialObjectMeta<Service>| {
            let (namespace, name) = (s.namespace()?, s.name_any());
            covering
                .state()
                .iter()
                .any(|e| {
                    e.namespace().as_deref() == Some(namespace.as_str())
                        && isolation::covered_services(e).any(|c| c == name)
                })
                .then(|| ObjectRef::new(&namespace))
        })
        .reconcile_all_on(channel_policy_changes(&facts))
        .with_config(config)
        .graceful_shutdown_on(stop.signalled());
    drive(CONTROLLER, controller.run(reconcile, error_policy, shared)).await;
}

/// Reconciles one namespace.
#[instrument(skip_all, fields(controller = CONTROLLER, namespace = namespace.name_any()))]
async fn reconcile(namespace: Arc<NamespaceMeta>, shared: Arc<Shared>) -> Result<Action, Error> {
    if !shared.is_synced() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    if namespace.metadata.deletion_timestamp.is_some() {
        // Its policies go with it.
        return Ok(Action::await_change());
    }
    let ctx = &shared.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let name = namespace.name_any();
    let now = Timestamp::now();
    let policy = shared.facts.channel_policy();
    let (wanted, wakeup) = if isolated(&namespace, &ctx.namespace, &policy) {
        wanted(&shared, &name, &policy, now).await?
    } else {
        (Vec::new(), None)
    };
    let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &name);
    for obj in &wanted {
        let policy_name = obj.name_any();
        policies
            .patch(
                &policy_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
            .map_err(|source| Error::Apply {
                namespace: name.clone(),
                name: policy_name,
                source,
            })?;
    }
    let keep: BTreeSet<String> = wanted.iter().map(ResourceExt::name_any).collect();
    let stale = shared.policies.state().into_iter().filter(|p| {
        p.namespace().as_deref() == Some(name.as_str())
            && Role::of(p).is_some()
            && !keep.contains(&p.name_any())
    });
    for obj in stale {
        match policies
            .delete(&obj.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    namespace: name,
                    name: obj.name_any(),
                    source,
                });
            }
        }
    }
    ctx.backoff.succeeded(&key(&name));
    Ok(Action::requeue(requeue_at(wakeup, now)))
}

/// Whether `namespace` is a department namespace to isolate under `policy`. The exchange's
/// own namespace never is: isolating it would cut the departments off the one channel.
fn isolated(namespace: &NamespaceMeta, exchange_namespace: &str, policy: &ChannelPolicy) -> bool {
    policy.network_isolation
        && namespace.labels().contains_key(LABEL_DEPARTMENT)
        && namespace.name_any() != exchange_namespace
}

/// The policies department namespace `namespace` should have at `now`, and when that changes
/// next by itself (the earliest end of an approved exemption there).
async fn wanted(
    shared: &Shared,
    namespace: &str,
    policy: &ChannelPolicy,
    now: Timestamp,
) -> Result<(Vec<NetworkPolicy>, Option<Timestamp>), Error> {
    let problems = isolation::check(policy);
    if !problems.is_empty() {
        warn!(
            problems = summarize(&problems),
            "egress CIDRs of the default Regulation left out"
        );
    }
    let mut wanted = vec![isolation::department_policy(
        namespace,
        &shared.ctx.namespace,
        policy,
    )];
    let mut wakeup: Option<Timestamp> = None;
    let services = Api::<Service>::namespaced(shared.ctx.client.clone(), namespace);
    for exemption in shared.exemptions_in(namespace) {
        let Some(until) = isolation::opens_until(&exemption, now) else {
            continue;
        };
        wakeup = Some(wakeup.map_or(until, |w| w.min(until)));
        let mut covered = Vec::new();
        for name in isolation::covered_services(&exemption) {
            let found = services
                .get_opt(name)
                .await
                .map_err(|source| Error::Service {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                })?;
            covered.extend(found);
        }
        wanted.extend(isolation::exemption_policies(&exemption, &covered, now));
    }
    Ok((wanted, wakeup))
}

fn key(namespace: &str) -> String {
    format!("Namespace//{namespace}/{CONTROLLER}")
}

/// Counts the failure and retries after the namespace's backoff delay.
fn error_policy(namespace: Arc<NamespaceMeta>, error: &Error, shared: Arc<Shared>) -> Action {
    let category = error.category();
    let ctx = &shared.ctx;
    ctx.metrics.error(CONTROLLER, category);
    let delay = ctx.backoff.failed(&key(&namespace.name_any()));
    warn!(
        controller = CONTROLLER,
        namespace = namespace.name_any(),
        category,
        %error,
        retry_in = ?delay,
        "reconcile failed; retrying"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> NamespaceMeta {
        let mut ns = NamespaceMeta {
            types: None,
            metadata: Default::default(),
            _phantom: std::marker::PhantomData,
        };
        ns.metadata.name = Some(name.into());
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        ns
    }

    #[test]
    fn only_department_namespaces_other_than_the_exchanges_are_isolated_ch_1() {
        let on = ChannelPolicy::default();
        let department = namespace("dept-tax", &[(LABEL_DEPARTMENT, "tax")]);
        assert!(isolated(&department, "gongshu-system", &on));
        assert!(!isolated(
            &namespace("kube-system", &[]),
            "gongshu-system",
            &on
        ));
        let exchange = namespace("gongshu-system", &[(LABEL_DEPARTMENT, "authority")]);
        assert!(!isolated(&exchange, "gongshu-system", &on));
        let off = ChannelPolicy {
            network_isolation: false,
            ..ChannelPolicy::default()
        };
        assert!(!isolated(&department, "gongshu-system", &off));
    }
}
