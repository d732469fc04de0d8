//! `gongshu exchange`: the data plane, the one lawful channel (CH-1). It serves active grants
//! from the providers' sources to the consumers' ServiceAccounts, with the approved fields
//! only, and audits every access (SEC-2, SH-13).
//!
//! - [`auth`]: who is calling (TokenReview, cached);
//! - `gongshu_api::rules::exchange`: may they (the pure access decision);
//! - [`postgres`], [`files`]: reading the sources, projected in the query ([`sql`]);
//! - [`handlers`]: the routes, [`problem`]: their one error shape (RFC 9457);
//! - `crate::audit`: the hash-chained log every access goes to before it is answered;
//! - [`metrics`]: requests and the audit log on Prometheus, served with `/healthz` and
//!   `/readyz` on a separate plain-HTTP admin listener (`crate::admin`), never on the data
//!   port, so that scraping needs no grant.

pub mod auth;
pub mod cursor;
pub mod departments;
pub mod files;
pub mod handlers;
pub mod metrics;
pub mod postgres;
pub mod problem;
pub mod sql;
pub mod table;
pub mod usage;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum_server::tls_rustls::RustlsConfig;
use gongshu_api::v1alpha1::{DataCatalog, ShareGrant};
use kube::{
    Api, Client,
    runtime::{reflector::Store, watcher},
};
use tracing::{error, info};

use self::{
    auth::Authenticator, cursor::Cursors, departments::Departments, metrics::ExchangeMetrics,
    postgres::Postgres, problem::Problem, usage::Usage,
};
use crate::{
    admin,
    audit::{self, AuditLog, Record},
    cache,
    shutdown::{self, Shutdown},
};

/// How the exchange runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTPS listen address.
    pub addr: SocketAddr,
    /// Plain-HTTP admin listen address (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    /// How often the audit chain is verified against its checkpoint (and once at start).
    pub audit_verify_every: Duration,
    /// PEM serving certificate (chain).
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Directory of the audit segments.
    pub audit_dir: PathBuf,
    /// Namespace and name of the audit checkpoint ConfigMap; `None` keeps no checkpoint.
    pub checkpoint: Option<(String, String)>,
    /// How often grant usage is written to the grants' status.
    pub usage_interval: Duration,
    /// 32-byte key file sealing page cursors; random per process when absent.
    pub cursor_key_file: Option<PathBuf>,
    /// Directory file sources' paths are resolved under (where data volumes are mounted).
    pub file_root: PathBuf,
    /// Longest a `table` replica goes unrefreshed, whatever the item's update frequency.
    pub table_refresh_ceiling: Option<Duration>,
    /// Label selector of the grants this exchange serves (all when `None`): splits grants
    /// between exchanges, e.g. one per group of departments.
    pub grant_selector: Option<String>,
}

/// Why the exchange stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No Kubernetes client.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The certificate, key or cursor key could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The cursor key is not 32 bytes.
    #[error("the cursor key file {0} must hold exactly 32 bytes")]
    CursorKey(String),
    /// The audit log could not be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] audit::AuditError),
    /// The metrics could not be registered.
    #[error("cannot register the exchange's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The admin listener could not be bound.
    #[error("cannot listen on the admin address {addr}: {source}")]
    Bind {
        /// Listen address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("exchange server on {addr} failed: {source}")]
    Serve {
        /// Listen address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the routes share.
pub struct Exchange {
    grants: Store<ShareGrant>,
    catalogs: Store<DataCatalog>,
    synced: Arc<AtomicUsize>,
    auth: Authenticator,
    postgres: Postgres,
    cursors: Cursors,
    audit: AuditLog,
    usage: Usage,
    file_root: PathBuf,
    departments: Departments,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

/// One item of a cached catalog, read in place.
#[derive(Clone, Debug)]
pub struct ItemRef {
    catalog: Arc<DataCatalog>,
    index: usize,
}

impl std::ops::Deref for ItemRef {
    type Target = gongshu_api::v1alpha1::CatalogItem;

    fn deref(&self) -> &Self::Target {
        &self.catalog.spec.items[self.index]
    }
}

/// Caches the exchange lists before it serves: grants and catalogs.
const CACHES: usize = 2;

impl Exchange {
    /// The catalog item `grant` is for, from its provider's catalog in the cache (not copied:
    /// this runs on every request).
    pub fn item_of(&self, grant: &ShareGrant) -> Option<ItemRef> {
        let provider = grant.status.as_ref()?.provider.as_ref()?;
        let catalog = self.catalogs.get(
            &kube::runtime::reflector::ObjectRef::new(&provider.catalog)
                .within(&provider.namespace),
        )?;
        let index = catalog
            .spec
            .items
            .iter()
            .position(|i| i.identifier == grant.spec.item)?;
        Some(ItemRef { catalog, index })
    }

    /// Whether every cache has listed.
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) >= CACHES
    }

    /// Appends `record` to the audit log and counts a served access towards the grant's
    /// usage. An access that cannot be audited is not answered (SEC-2, SH-13).
    async fn audited(&self, record: Record) -> Result<(), Problem> {
        let served = (200..300).contains(&record.status);
        if served && let Some(grant) = &record.grant {
            self.usage.add(grant, record.rows);
        }
        self.audit.append(record).await.map(drop).map_err(|e| {
            error!(error = %e, "cannot append to the audit log; refusing the access");
            Problem::unavailable("the access could not be audited, so it is not served")
        })
    }
}

/// What the exchange's admin server answers: its registry, and ready once its caches listed.
struct Admin {
    metrics: ExchangeMetrics,
    exchange: Arc<Exchange>,
    shutdown: Shutdown,
}

impl admin::Admin for Admin {
    fn render_metrics(&self) -> Result<String, prometheus::Error> {
        self.metrics.render()
    }

    fn readiness(&self) -> (bool, &'static str) {
        if self.shutdown.is_triggered() {
            (false, "shutting down")
        } else if self.exchange.ready() {
            (true, "ready: grants and catalogs listed")
        } else {
            (
                false,
                "starting: the grant and catalog caches have not listed yet",
            )
        }
    }
}

/// Runs the exchange until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), ExchangeError> {
    let client = Client::try_default().await.map_err(ExchangeError::Client)?;
    let (trigger, shutdown) = shutdown::channel();
    shutdown::on_signals(trigger).map_err(ExchangeError::Signals)?;
    serve(config, client, shutdown).await
}

/// Serves until `shutdown`.
pub async fn serve(
    config: Config,
    client: Client,
    shutdown: Shutdown,
) -> Result<(), ExchangeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read_error = |path: &PathBuf| {
        let path = path.display().to_string();
        move |source| ExchangeError::Read { path, source }
    };
    let tls = RustlsConfig::from_pem_file(&config.cert_file, &config.key_file)
        .await
        .map_err(read_error(&config.cert_file))?;
    let cursors = match &config.cursor_key_file {
        None => Cursors::random(),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(read_error(path))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| ExchangeError::CursorKey(path.display().to_string()))?;
            Cursors::new(key)
        }
    };
    let metrics = ExchangeMetrics::new()?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .map_err(|source| ExchangeError::Bind {
            addr: config.admin_addr,
            source,
        })?;
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin_addr);
    let checkpoint = config.checkpoint.as_ref().map(|(namespace, name)| {
        audit::Checkpointer::new(client.clone(), namespace.clone()).with_name(name.clone())
    });
    // Before the log opens: its writer soon rewrites the checkpoint from the files.
    let monitor = audit::Monitor::before_open(
        config.audit_dir.clone(),
        checkpoint.clone(),
        metrics.audit.clone(),
    )
    .await;
    let audit = AuditLog::open(
        audit::Options {
            metrics: metrics.audit.clone(),
            ..audit::Options::new(config.audit_dir.clone())
        },
        checkpoint,
        shutdown.clone().wait(),
    )
    .await?;
    tokio::spawn(monitor.run(config.audit_verify_every, shutdown.clone()));

    let synced = Arc::new(AtomicUsize::new(0));
    let grants_config = match &config.grant_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let grants = cache::reflect(
        watcher(Api::<ShareGrant>::all(client.clone()), grants_config),
        &synced,
        &shutdown,
        "exchange grants",
        |_| {},
    );
    let catalogs = cache::reflect(
        watcher(
            Api::<DataCatalog>::all(client.clone()),
            watcher::Config::default(),
        ),
        &synced,
        &shutdown,
        "exchange catalogs",
        |_| {},
    );
    let usage = Usage::default();
    let exchange = Arc::new(Exchange {
        grants: grants.clone(),
        catalogs,
        synced,
        auth: Authenticator::new(client.clone()),
        postgres: Postgres::new(client.clone()),
        cursors,
        audit,
        usage,
        file_root: config.file_root.clone(),
        departments: Departments::watch(client.clone(), &shutdown),
    });
    info!(addr = %admin_addr, "admin server listening (/metrics, /healthz, /readyz)");
    let admin = Admin {
        metrics: metrics.clone(),
        exchange: exchange.clone(),
        shutdown: shutdown.clone(),
    };
    let admin_stop = shutdown.clone();
    tokio::spawn(async move {
        if let Err(error) = admin::serve(admin_listener, admin, admin_stop.wait()).await {
            error!(%error, "exchange admin server failed");
        }
    });
    tokio::spawn(table::run(
        exchange.clone(),
        client.clone(),
        config.table_refresh_ceiling,
        shutdown.clone(),
    ));
    tokio::spawn(usage::flush_every(
        exchange.clone(),
        client.clone(),
        config.usage_interval,
        shutdown.clone(),
    ));

    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.wait().await;
        stopping.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    info!(addr = %config.addr, audit = %config.audit_dir.display(), "exchange listening (HTTPS)");
    let served = crate::https::bind(config.addr, tls)
        .handle(handle)
        .serve(
            handlers::router(exchange.clone())
                .layer(axum::middleware::from_fn_with_state(
                    metrics,
                    metrics::track,
                ))
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .map_err(|source| ExchangeError::Serve {
            addr: config.addr,
            source,
        });
    // Usage counted since the last flush is written before the process ends.
    usage::flush(&exchange, &client).await;
    served
}
