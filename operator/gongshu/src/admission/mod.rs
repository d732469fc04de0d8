//! The validating admission webhook: the rules that need other objects than the one admitted
//! (`gongshu_api::admission`) and the one-channel rules (`gongshu_api::rules::channel`),
//! served over TLS by every operator replica, leader or not, so admission keeps answering
//! during leader changes.
//!
//! The serving certificate comes from files (cert-manager, the chart, or an administrator) and
//! is reloaded when they change, or the operator makes and rotates its own (`certs`). With a
//! URL the operator registers its own `ValidatingWebhookConfiguration`, so the list of
//! admitted kinds lives beside the handlers.

mod cache;
pub mod certs;
mod handler;
mod register;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;
use jiff::Timestamp;
use kube::Client;
use tracing::{info, warn};

pub use self::register::{WEBHOOK_CONFIGURATION, published_bundle, register};
use self::{
    cache::Caches,
    certs::{ManagedTls, Material, Plan},
    handler::{Webhook, router},
};
use crate::{metrics::Metrics, shutdown::Shutdown};

/// How the webhook serves.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Where its certificate comes from.
    pub tls: WebhookTls,
    /// Where the apiserver reaches it: when set, the operator registers the
    /// `ValidatingWebhookConfiguration` itself.
    pub url: Option<Target>,
}

/// How the apiserver reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A URL, `https://host:port/validate` (a local process, or a name the apiserver resolves).
    Url(String),
    /// A Service in the cluster, port 443, path `/validate`: the apiserver resolves it itself,
    /// where it may not resolve `*.svc` names through DNS.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url) => f.write_str(url),
            Self::Service { namespace, name } => {
                write!(f, "service {namespace}/{name}:443/validate")
            }
        }
    }
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum WebhookTls {
    /// PEM files kept by someone else, reloaded when they change.
    Files {
        /// Serving certificate (chain).
        cert_file: PathBuf,
        /// Private key.
        key_file: PathBuf,
        /// CA bundle the apiserver verifies the certificate with (needed to register).
        ca_file: Option<PathBuf>,
    },
    /// The operator's own CA and certificate in a Secret, rotated (`certs`).
    Managed(ManagedTls),
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate or key could not be read.
    #[error("cannot load the webhook certificate {cert} / key {key}: {source}")]
    Tls {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle could not be read.
    #[error("cannot read the webhook CA bundle {path}: {source}")]
    CaBundle {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Registration was asked for without a CA bundle.
    #[error(
        "--webhook-url with --webhook-cert-file needs --webhook-ca-file (the caBundle the apiserver verifies the certificate with)"
    )]
    NoCaBundle,
    /// The managed certificate could not be made or read.
    #[error(transparent)]
    Managed(#[from] certs::CertError),
    /// The configuration could not be applied.
    #[error("cannot register the ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION}: {0}")]
    Register(#[source] kube::Error),
    /// The server failed.
    #[error("webhook server on {addr} failed: {source}")]
    Serve {
        /// Listen address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// How often the certificate files are checked for rotation.
const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How long to wait before trying again to make the first managed certificate.
const MANAGED_RETRY: Duration = Duration::from_secs(2);

/// Serves admission reviews until `shutdown`.
pub async fn serve(
    config: WebhookConfig,
    client: Client,
    metrics: Metrics,
    shutdown: Shutdown,
) -> Result<(), WebhookError> {
    // The process-wide TLS provider (the same `ring` kube's client uses); a second install is
    // harmless and reported as an error we can ignore.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match &config.tls {
        WebhookTls::Files {
            cert_file,
            key_file,
            ca_file,
        } => {
            let tls_error = |source| WebhookError::Tls {
                cert: cert_file.display().to_string(),
                key: key_file.display().to_string(),
                source,
            };
            let tls = RustlsConfig::from_pem_file(cert_file, key_file)
                .await
                .map_err(tls_error)?;
            tokio::spawn(reload_on_change(
                tls.clone(),
                cert_file.clone(),
                key_file.clone(),
                shutdown.clone(),
            ));
            if let Some(url) = &config.url {
                let ca_file = ca_file.as_ref().ok_or(WebhookError::NoCaBundle)?;
                let ca = std::fs::read(ca_file).map_err(|source| WebhookError::CaBundle {
                    path: ca_file.display().to_string(),
                    source,
                })?;
                register(&client, url, ca).await?;
                info!(configuration = WEBHOOK_CONFIGURATION, %url, "registered the admission webhook");
            }
            tls
        }
        WebhookTls::Managed(managed) => {
            let material = first_material(&client, managed, &shutdown).await?;
            let tls = RustlsConfig::from_pem(
                material.cert.clone().into_bytes(),
                material.key.clone().into_bytes(),
            )
            .await
            .map_err(|source| WebhookError::Tls {
                cert: format!("Secret {}/{}", managed.namespace, managed.secret),
                key: "tls.key".into(),
                source,
            })?;
            if let Some(url) = &config.url {
                register(&client, url, material.bundle.clone().into_bytes()).await?;
                info!(configuration = WEBHOOK_CONFIGURATION, %url, "registered the admission webhook");
            }
            tokio::spawn(rotate(
                client.clone(),
                managed.clone(),
                tls.clone(),
                material,
                config.url.clone(),
                shutdown.clone(),
            ));
            tls
        }
    };

    let caches = Arc::new(Caches::start(client.clone(), shutdown.clone()));
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.wait().await;
        stopping.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    info!(addr = %config.addr, "admission webhook listening (/validate)");
    crate::https::bind(config.addr, tls)
        .handle(handle)
        .serve(router(Webhook { caches, metrics }).into_make_service())
        .await
        .map_err(|source| WebhookError::Serve {
            addr: config.addr,
            source,
        })
}

/// Reloads the certificate when its file changes (rotation by cert-manager or the chart).
async fn reload_on_change(
    tls: RustlsConfig,
    cert_file: PathBuf,
    key_file: PathBuf,
    shutdown: Shutdown,
) {
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut last = modified(&cert_file);
    loop {
        tokio::select! {
            () = shutdown.clone().wait() => return,
            () = tokio::time::sleep(RELOAD_EVERY) => {}
        }
        let now = modified(&cert_file);
        if now != last {
            match tls.reload_from_pem_file(&cert_file, &key_file).await {
                Ok(()) => info!(cert = %cert_file.display(), "reloaded the webhook certificate"),
                Err(error) => {
                    warn!(%error, "cannot reload the webhook certificate; serving the old one")
                }
            }
            last = now;
        }
    }
}

/// The managed material to start serving with, made if missing; retried until it can be read
/// (the webhook cannot serve without it) or `shutdown`.
async fn first_material(
    client: &Client,
    managed: &ManagedTls,
    shutdown: &Shutdown,
) -> Result<Material, WebhookError> {
    loop {
        let published = published_bundle(client).await;
        match managed
            .tick(client, published.as_deref(), Timestamp::now())
            .await
        {
            Ok((material, plan)) => {
                if plan != Plan::Keep {
                    info!(?plan, secret = %managed.secret, "webhook certificate");
                }
                return Ok(material);
            }
            Err(error) if !shutdown.is_triggered() => {
                warn!(%error, "cannot make or read the webhook certificate; retrying");
                tokio::time::sleep(MANAGED_RETRY).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Keeps the managed certificate fresh: serves each new serving certificate and publishes each
/// new bundle, whichever replica made them.
async fn rotate(
    client: Client,
    managed: ManagedTls,
    tls: RustlsConfig,
    mut serving: Material,
    url: Option<Target>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = shutdown.clone().wait() => return,
            () = tokio::time::sleep(managed.check_every()) => {}
        }
        let published = published_bundle(&client).await;
        let material = match managed
            .tick(&client, published.as_deref(), Timestamp::now())
            .await
        {
            Ok((material, plan)) => {
                if plan != Plan::Keep {
                    info!(?plan, secret = %managed.secret, "rotated the webhook certificate");
                }
                material
            }
            Err(error) => {
                warn!(%error, "cannot check the webhook certificate; serving the current one");
                continue;
            }
        };
        if let Some(url) = &url
            && published.as_deref() != Some(material.bundle.as_str())
        {
            match register(&client, url, material.bundle.clone().into_bytes()).await {
                Ok(()) => info!("published the webhook CA bundle"),
                Err(error) => warn!(%error, "cannot publish the webhook CA bundle; retrying"),
            }
        }
        if material.cert != serving.cert {
            match tls
                .reload_from_pem(
                    material.cert.clone().into_bytes(),
                    material.key.clone().into_bytes(),
                )
                .await
            {
                Ok(()) => {
                    info!("serving the renewed webhook certificate");
                    serving = material;
                }
                Err(error) => {
                    warn!(%error, "cannot load the renewed webhook certificate; serving the old one")
                }
            }
        }
    }
}
