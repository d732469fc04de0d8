//! One stretch of running the controllers: wait until the CRDs are installed, start one
//! controller per kind, report readiness once every kind's initial list is complete, and stop
//! them all when `stop` fires (shutdown, or a lost lease).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use gongshu_api::v1alpha1::{
    BackupPolicy, ChannelExemption, DataCatalog, OpenDataset, Regulation, Review, ShareGrant,
};
use kube::{
    Api, Client, Resource,
    api::ListParams,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tracing::{debug, error, info, warn};

use crate::{
    channels::Channels,
    controller::{
        ApplyError, Context, Kind, backup, catalog, drive, error_policy, exemption, facts::Facts,
        grant, isolation, reconcile_spec_only, regulation, sla::SlaCollector, watch_all,
    },
    health::Health,
    shutdown::Shutdown,
};

/// How often a leader without CRDs looks for them again.
const CRD_RETRY: Duration = Duration::from_secs(10);
/// How many CRD retries pass between two error logs (one a minute).
const CRD_LOG_EVERY: u32 = 6;
/// How long the scan and the filings wait for a burst of changes to settle.
const SCAN_DEBOUNCE: Duration = Duration::from_secs(1);
/// How long in-flight reconciles may take to finish once the controllers are told to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The CRD behind `K`, e.g. `datacatalogs.gongshu.io`.
fn crd_name<K: Resource<DynamicType = ()>>() -> String {
    format!("{}.{}", K::plural(&()), K::group(&()))
}

/// Whether the apiserver serves `K`: a 404 on list means its CRD is not installed.
async fn served<K>(client: &Client) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The gongshu CRDs the apiserver does not serve.
pub async fn missing_crds(client: &Client) -> Result<Vec<String>, kube::Error> {
    let mut missing = Vec::new();
    macro_rules! check {
        ($($kind:ty),*) => {$(
            if !served::<$kind>(client).await? {
                missing.push(crd_name::<$kind>());
            }
        )*};
    }
    check!(
        Regulation,
        DataCatalog,
        ShareGrant,
        OpenDataset,
        BackupPolicy,
        Review,
        ChannelExemption
    );
    Ok(missing)
}

/// Waits until every CRD is served; `false` if `stop` fired first.
async fn await_crds(client: &Client, stop: &Shutdown) -> bool {
    for attempt in 0u32.. {
        let loud = attempt % CRD_LOG_EVERY == 0;
        match missing_crds(client).await {
            Ok(missing) if missing.is_empty() => return true,
            Ok(missing) if loud => error!(
                missing = missing.join(", "),
                "gongshu CRDs are not installed; install them with `kubectl apply --server-side -f crds/` \
                 (or `gongshu crd | kubectl apply --server-side -f -`); checking again every {CRD_RETRY:?}"
            ),
            Err(e) if loud => {
                warn!(error = %e, "cannot check whether the gongshu CRDs are installed; retrying")
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(CRD_RETRY) => {}
            () = stop.clone().wait() => return false,
        }
    }
    false
}

/// Completes the initial list of `K`'s objects (metadata only), as the controller's cache does,
/// retrying with backoff until it succeeds.
async fn initial_list<K>(client: Client)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let api = Api::<PartialObjectMeta<K>>::all(client);
    let events = watcher(api, watcher::Config::default().any_semantic()).default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => return,
            Ok(_) => {}
            Err(e) => {
                debug!(kind = K::kind(&()).as_ref(), error = %e, "initial list failed; retrying")
            }
        }
    }
}

/// Marks the process ready once every kind's initial list is complete.
async fn initial_lists(client: Client, health: Arc<Health>) {
    tokio::join!(
        initial_list::<Regulation>(client.clone()),
        initial_list::<DataCatalog>(client.clone()),
        initial_list::<ShareGrant>(client.clone()),
        initial_list::<OpenDataset>(client.clone()),
        initial_list::<BackupPolicy>(client.clone()),
        initial_list::<Review>(client.clone()),
        initial_list::<ChannelExemption>(client),
    );
    health.set_lists_ready(true);
    info!("initial lists complete; ready");
}

/// Drops the backup series of each policy deleted while this term lasts.
async fn forget_deleted_policies(ctx: Arc<Context>) {
    let api = Api::<PartialObjectMeta<BackupPolicy>>::all(ctx.client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Delete(policy)) = event {
            let namespace = policy.metadata.namespace.unwrap_or_default();
            let name = policy.metadata.name.unwrap_or_default();
            ctx.metrics.forget_backup(&namespace, &name);
        }
    }
}

/// Runs every controller until `stop` fires, then lets in-flight reconciles finish for at most
/// [`DRAIN_TIMEOUT`].
pub async fn run(ctx: Arc<Context>, health: Arc<Health>, stop: Shutdown) {
    if !await_crds(&ctx.client, &stop).await {
        return;
    }
    let client = &ctx.client;
    // The workflow controllers' caches live as long as this term: a new leader lists afresh.
    let facts = Facts::start(client, &stop);
    let catalogs = catalog::controller(client, &facts);
    let grants = grant::controller(client, &facts);
    // The SLA gauges, for this term only: a standby exports none.
    let sla = SlaCollector::new(grants.store(), catalogs.store(), facts.clone());
    let sla = match sla.map(|c| (ctx.metrics.register(Box::new(c.clone())), c)) {
        Ok((Ok(()), collector)) => Some(collector),
        Ok((Err(e), _)) | Err(e) => {
            warn!(error = %e, "cannot register the SLA gauges");
            None
        }
    };
    let datasets = watch_all::<OpenDataset>(client);
    let mut policies = watch_all::<BackupPolicy>(client);
    if ctx
        .backups
        .as_deref()
        .and_then(backup::Launcher::jobs)
        .is_some()
    {
        // A runner Job's change (started, failed, completed) reconciles its policy at once.
        let selector = format!(
            "app.kubernetes.io/component={}",
            crate::backup_job::COMPONENT
        );
        policies = policies.owns(
            Api::<k8s_openapi::api::batch::v1::Job>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        );
    }
    let reviews = watch_all::<Review>(client);
    let channels = Channels::start(client, &stop);
    let regulations = regulation::controller(client, &channels);
    let exemptions = exemption::controller(client, &facts, &channels);

    // A deleted policy's backup series go with it (no finalizer: the deletion is only seen).
    let forget = tokio::spawn(forget_deleted_policies(ctx.clone()));
    // Readiness is not taken from the controllers' own `Store::wait_until_ready`: its
    // one-shot channel keeps a single waker, so a second waiter in another task can steal the
    // wake-up the controller itself waits for before its first reconcile (kube-runtime 5).
    let readiness = tokio::spawn(initial_lists(client.clone(), health.clone()));

    let config = kube::runtime::controller::Config::default().concurrency(ctx.concurrency);
    // The scan (CH-1) runs on every exposure or filing change: a burst of them (a relist, a
    // namespace applied at once) is one reconcile a second.
    let debounced = config.clone().debounce(SCAN_DEBOUNCE);
    macro_rules! start {
        ($controller:expr, $kind:ty, $reconcile:expr, $error:ty) => {
            start!($controller, $kind, $reconcile, $error, config.clone())
        };
        ($controller:expr, $kind:ty, $reconcile:expr, $error:ty, $config:expr) => {
            drive(
                <$kind as Kind>::CONTROLLER,
                $controller
                    .with_config($config)
                    .graceful_shutdown_on(stop.clone().signalled())
                    .run($reconcile, error_policy::<$kind, $error>, ctx.clone()),
            )
        };
    }
    info!(concurrency = ctx.concurrency, "starting controllers");
    let controllers = async {
        tokio::join!(
            start!(
                catalogs,
                DataCatalog,
                |obj, ctx| catalog::reconcile(obj, ctx, facts.clone()),
                catalog::Error
            ),
            start!(
                grants,
                ShareGrant,
                |obj, ctx| grant::reconcile(obj, ctx, facts.clone()),
                grant::Error
            ),
            start!(datasets, OpenDataset, reconcile_spec_only, ApplyError),
            start!(policies, BackupPolicy, backup::reconcile, backup::Error),
            start!(reviews, Review, reconcile_spec_only, ApplyError),
            start!(
                regulations,
                Regulation,
                |obj, ctx| regulation::reconcile(obj, ctx, facts.clone(), channels.clone()),
                ApplyError,
                debounced.clone()
            ),
            start!(
                exemptions,
                ChannelExemption,
                |obj, ctx| exemption::reconcile(obj, ctx, facts.clone(), channels.clone()),
                exemption::Error,
                debounced.clone()
            ),
            isolation::run(ctx.clone(), facts.clone(), config.clone(), stop.clone()),
        )
    };
    let drain_deadline = async {
        stop.clone().wait().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        _ = controllers => info!("controllers stopped"),
        () = drain_deadline => warn!(timeout = ?DRAIN_TIMEOUT, "reconciles did not finish in time; abandoning them"),
    }
    readiness.abort();
    forget.abort();
    ctx.metrics.clear_backups();
    health.set_lists_ready(false);
    if let Some(sla) = sla
        && let Err(e) = ctx.metrics.unregister(Box::new(sla))
    {
        warn!(error = %e, "cannot unregister the SLA gauges");
    }
}
