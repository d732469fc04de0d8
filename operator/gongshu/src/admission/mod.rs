//! The validating admission webhook: the rules that need other objects than the one admitted
//! (`gongshu_api::admission`), served over TLS by every operator replica, leader or not, so
//! admission keeps answering during leader changes.
//!
//! The serving certificate comes from files (cert-manager, the chart, or the local harness)
//! and is reloaded when they change. With `--webhook-url` the operator registers its own
//! `ValidatingWebhookConfiguration`, so the list of admitted kinds lives beside the handlers.

mod cache;
mod handler;
mod register;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;
use kube::Client;
use tracing::{info, warn};

pub use self::register::{WEBHOOK_CONFIGURATION, register};
use self::{
    cache::Caches,
    handler::{Webhook, router},
};
use crate::{metrics::Metrics, shutdown::Shutdown};

/// How the webhook serves.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// PEM serving certificate (chain).
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Where the apiserver reaches the webhook, and the CA that signed its certificate: when
    /// set, the operator registers the `ValidatingWebhookConfiguration` itself.
    pub registration: Option<Registration>,
}

/// What the operator writes into its `ValidatingWebhookConfiguration`.
#[derive(Clone, Debug)]
pub struct Registration {
    /// `https://host:port/validate` as the apiserver reaches it.
    pub url: String,
    /// PEM CA bundle the apiserver verifies the serving certificate with.
    pub ca_file: PathBuf,
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
    let tls_error = |source| WebhookError::Tls {
        cert: config.cert_file.display().to_string(),
        key: config.key_file.display().to_string(),
        source,
    };
    let tls = RustlsConfig::from_pem_file(&config.cert_file, &config.key_file)
        .await
        .map_err(tls_error)?;
    tokio::spawn(reload_on_change(
        tls.clone(),
        config.clone(),
        shutdown.clone(),
    ));

    let caches = Arc::new(Caches::start(client.clone(), shutdown.clone()));
    if let Some(registration) = &config.registration {
        register(&client, registration).await?;
        info!(configuration = WEBHOOK_CONFIGURATION, url = %registration.url, "registered the admission webhook");
    }

    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.wait().await;
        stopping.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    info!(addr = %config.addr, "admission webhook listening (/validate)");
    axum_server::bind_rustls(config.addr, tls)
        .handle(handle)
        .serve(router(Webhook { caches, metrics }).into_make_service())
        .await
        .map_err(|source| WebhookError::Serve {
            addr: config.addr,
            source,
        })
}

/// Reloads the certificate when its file changes (rotation by cert-manager or the chart).
async fn reload_on_change(tls: RustlsConfig, config: WebhookConfig, shutdown: Shutdown) {
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut last = modified(&config.cert_file);
    loop {
        tokio::select! {
            () = shutdown.clone().wait() => return,
            () = tokio::time::sleep(RELOAD_EVERY) => {}
        }
        let now = modified(&config.cert_file);
        if now != last {
            match tls
                .reload_from_pem_file(&config.cert_file, &config.key_file)
                .await
            {
                Ok(()) => {
                    info!(cert = %config.cert_file.display(), "reloaded the webhook certificate")
                }
                Err(error) => {
                    warn!(%error, "cannot reload the webhook certificate; serving the old one")
                }
            }
            last = now;
        }
    }
}
