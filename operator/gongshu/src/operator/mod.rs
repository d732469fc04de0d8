//! `gongshu operator`: the admin server, leader election and the controllers, joined with
//! graceful shutdown.

pub mod term;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use kube::Client;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::{
    admin::{self, AdminState},
    controller::Context,
    exchange_deploy::{self, ExchangeDeployment},
    health::{Health, Role},
    leader::{Elector, LEASE_NAME, decide::Timing},
    metrics::Metrics,
    shutdown::{self, Shutdown},
};

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's own namespace, where its Lease lives.
    pub namespace: String,
    /// This process's identity in the Lease and in Events.
    pub identity: String,
    /// Where the admin server listens.
    pub admin_addr: SocketAddr,
    /// Whether to campaign for the Lease; without it the process leads unconditionally.
    pub leader_election: bool,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// The admission webhook, served by every replica; off without a certificate.
    pub webhook: Option<crate::admission::WebhookConfig>,
    /// The exchange's base URL, which active grants' endpoints are under.
    pub exchange_url: String,
    /// Reconciles each controller runs at once.
    pub reconcile_concurrency: u16,
    /// The exchange the leader deploys and keeps deployed; none where it runs as a process.
    pub exchange: Option<ExchangeDeployment>,
    /// How backup runs are started; `None` schedules policies without starting anything.
    pub backups: Option<crate::controller::backup::LauncherConfig>,
}

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The metrics registry could not be built.
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The admin address could not be bound.
    #[error("cannot listen on {addr} (--admin-addr, GONGSHU_ADMIN_ADDR): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// No Kubernetes configuration was found or it is invalid.
    #[error(
        "cannot configure the Kubernetes client (set KUBECONFIG, or run in a pod with a ServiceAccount): {0}"
    )]
    Client(#[source] kube::Error),
    /// The admin server failed.
    #[error("admin server failed: {0}")]
    Admin(#[source] std::io::Error),
}

/// Runs the operator until SIGTERM or SIGINT, then stops the controllers, releases the Lease
/// and stops the admin server.
pub async fn run(config: Config) -> Result<(), OperatorError> {
    let client = Client::try_default().await.map_err(OperatorError::Client)?;
    let metrics = Metrics::new()?;
    let health = Arc::new(Health::default());
    let (trigger, shutdown) = shutdown::channel();
    shutdown::on_signals(trigger).map_err(OperatorError::Signals)?;

    let listener = TcpListener::bind(config.admin_addr)
        .await
        .map_err(|source| OperatorError::Bind {
            addr: config.admin_addr,
            source,
        })?;
    let admin_addr = listener.local_addr().unwrap_or(config.admin_addr);
    info!(addr = %admin_addr, "admin server listening (/metrics, /healthz, /readyz)");
    let state = AdminState {
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let admin = tokio::spawn(admin::serve(listener, state, shutdown.clone().wait()));
    let stopping = health.clone();
    let on_stop = shutdown.clone();
    tokio::spawn(async move {
        on_stop.wait().await;
        stopping.set_role(Role::Stopping);
    });

    info!(
        identity = %config.identity,
        namespace = %config.namespace,
        leader_election = config.leader_election,
        "operator starting"
    );
    // Every replica serves admission, leader or not, so it keeps answering during elections.
    let webhook = config.webhook.clone().map(|webhook| {
        tokio::spawn(crate::admission::serve(
            webhook,
            client.clone(),
            metrics.clone(),
            shutdown.clone(),
        ))
    });
    if webhook.is_none() {
        warn!(
            "no webhook certificate (--webhook-cert-file): cross-object rules are not enforced at admission"
        );
    }

    let ctx = Arc::new(
        Context::new(client.clone(), metrics.clone(), &config.identity)
            .with_exchange_url(&config.exchange_url)
            .with_namespace(&config.namespace)
            .with_concurrency(config.reconcile_concurrency)
            .with_backups(config.backups.clone()),
    );

    if config.leader_election {
        lead_when_elected(&config, client, ctx, &health, &metrics, &shutdown).await;
    } else {
        warn!("leader election is off: run only one such process per cluster");
        health.set_role(Role::Leading);
        metrics.set_leader(true);
        lead(&config, ctx, health.clone(), shutdown.clone()).await;
        metrics.set_leader(false);
    }

    health.set_role(Role::Stopping);
    if let Some(webhook) = webhook {
        match webhook.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "admission webhook failed"),
            Err(e) => error!(error = %e, "admission webhook task failed"),
        }
    }
    match admin.await {
        Ok(result) => result.map_err(OperatorError::Admin)?,
        Err(e) => error!(error = %e, "admin server task failed"),
    }
    info!("operator stopped");
    Ok(())
}

/// One term as leader: the controllers and, if configured, keeping the exchange deployed,
/// both until `stop` fires.
async fn lead(config: &Config, ctx: Arc<Context>, health: Arc<Health>, stop: Shutdown) {
    let exchange = config.exchange.clone().map(|exchange| {
        tokio::spawn(exchange_deploy::keep_applied(
            ctx.client.clone(),
            exchange,
            stop.clone(),
        ))
    });
    term::run(ctx, health, stop).await;
    if let Some(task) = exchange {
        // `stop` has fired; an apply still in flight is abandoned, the next leader repeats it.
        task.abort();
    }
}

/// Campaigns for the Lease; while holding it runs the controllers; on losing it stops them and
/// campaigns again; on shutdown stops them and releases the Lease.
async fn lead_when_elected(
    config: &Config,
    client: Client,
    ctx: Arc<Context>,
    health: &Arc<Health>,
    metrics: &Metrics,
    shutdown: &Shutdown,
) {
    let timing = Timing::from_lease_duration(config.lease_duration);
    let mut elector = Elector::new(client, &config.namespace, &config.identity, timing);
    loop {
        health.set_role(Role::Standby);
        metrics.set_leader(false);
        if !elector.campaign(health, shutdown).await {
            return;
        }
        info!(lease = LEASE_NAME, namespace = %config.namespace, identity = %config.identity, "acquired the lease; leading");
        health.set_role(Role::Leading);
        metrics.set_leader(true);
        let term = elector.hold();
        let stop = shutdown::either(shutdown.clone(), term.lost());
        lead(config, ctx.clone(), health.clone(), stop).await;
        metrics.set_leader(false);
        let Some(returned) = term.end().await else {
            error!("the lease renewal task failed; stopping");
            return;
        };
        elector = returned;
        if shutdown.is_triggered() {
            match elector.release().await {
                Ok(true) => info!(lease = LEASE_NAME, "released the lease"),
                Ok(false) => info!(
                    lease = LEASE_NAME,
                    "the lease was not ours any more; nothing to release"
                ),
                Err(e) => {
                    warn!(error = %e, "cannot release the lease; a standby takes over when it expires")
                }
            }
            return;
        }
        warn!("lost the lease; controllers stopped; standing by");
    }
}
