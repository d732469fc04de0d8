//! Backup destinations: a local directory and an off-site S3 bucket, both through
//! `object_store` so one code path writes, lists, reads and deletes either.
//!
//! Objects go up as multipart uploads; a part that fails is retried with exponential backoff
//! by `object_store`; S3 parts carry a SHA-256 checksum the server verifies; a local object
//! is written to a staging file and renamed into place when complete. An upload that fails
//! is aborted, so no partial object is left under its final name.

use std::{io, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    BackoffConfig, Certificate, ClientOptions, ObjectStore, PutPayload, RetryConfig,
    WriteMultipart,
    aws::{AmazonS3Builder, Checksum},
    local::LocalFileSystem,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    manifest::{Layout, MANIFEST, Manifest, VERIFIED},
    pipeline::Gather,
};

/// Parts uploaded at once per object and destination.
const PARTS_IN_FLIGHT: usize = 4;

/// A destination failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A destination cannot be set up.
    #[error("{destination}: {reason}")]
    Config {
        /// `local` or `offsite`.
        destination: &'static str,
        /// Why.
        reason: String,
    },
    /// A read, write, list or delete failed (after `object_store`'s retries).
    #[error("{destination}: {path}: {source}")]
    Object {
        /// `local` or `offsite`.
        destination: &'static str,
        /// The object.
        path: String,
        /// The error.
        #[source]
        source: object_store::Error,
    },
    /// A stored object is not what the manifest says.
    #[error("{destination}: {path}: {reason}")]
    Corrupt {
        /// `local` or `offsite`.
        destination: &'static str,
        /// The object.
        path: String,
        /// What differs.
        reason: String,
    },
}

/// S3 settings of the off-site destination.
#[derive(Clone)]
pub struct S3Settings {
    /// Endpoint URL.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never logged).
    pub secret_access_key: String,
    /// How long one request is retried before the run gives up.
    pub retry_timeout: Duration,
    /// PEM certificates trusted for the endpoint besides the system's roots (an S3 server
    /// with a private CA; the credentials Secret's `caBundle`). A Job's pod cannot mount a
    /// CA file, so the bundle travels in the Secret.
    pub ca_bundle: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One destination of a policy's backups.
#[derive(Clone)]
pub struct Destination {
    /// `local` or `offsite`.
    pub name: &'static str,
    store: Arc<dyn ObjectStore>,
    /// Where the policy's backups are in it.
    pub layout: Layout,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("store", &self.store.to_string())
            .field("layout", &self.layout)
            .finish()
    }
}

/// A backup found in a destination.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// The backup id.
    pub id: String,
    /// Its manifest; `None` for the leftovers of an interrupted run.
    pub manifest: Option<Manifest>,
    /// A restore drill succeeded on it.
    pub verified: bool,
}

impl Destination {
    /// The local directory `dir` (created if missing).
    pub fn local(dir: &std::path::Path, layout: Layout) -> Result<Self, StoreError> {
        let config = |reason: String| StoreError::Config {
            destination: "local",
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| config(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| config(format!("{}: {e}", dir.display())))?
            .with_automatic_cleanup(true);
        Ok(Self {
            name: "local",
            store: Arc::new(store),
            layout,
        })
    }

    /// The S3 bucket of `settings`.
    pub fn s3(settings: &S3Settings, layout: Layout) -> Result<Self, StoreError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: 16,
            retry_timeout: settings.retry_timeout,
        };
        let config = |reason: String| StoreError::Config {
            destination: "offsite",
            reason,
        };
        let mut options = ClientOptions::new();
        if let Some(pem) = &settings.ca_bundle {
            let roots = Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| config(format!("caBundle: {e}")))?;
            if roots.is_empty() {
                return Err(config("caBundle holds no PEM certificate".into()));
            }
            for root in roots {
                options = options.with_root_certificate(root);
            }
        }
        let store = AmazonS3Builder::new()
            .with_client_options(options)
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(retry)
            .build()
            .map_err(|e| config(e.to_string()))?;
        Ok(Self {
            name: "offsite",
            store: Arc::new(store),
            layout,
        })
    }

    fn error(&self, path: &object_store::path::Path, source: object_store::Error) -> StoreError {
        StoreError::Object {
            destination: self.name,
            path: path.to_string(),
            source,
        }
    }

    /// Writes a small object (a manifest, a marker) in one request.
    pub async fn put(&self, id: &str, name: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.layout.object(id, name);
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| self.error(&path, e))?;
        Ok(())
    }

    /// Every backup of the policy in this destination, oldest first.
    pub async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let root = self.layout.root();
        let listing = self
            .store
            .list_with_delimiter(Some(root))
            .await
            .map_err(|e| self.error(root, e))?;
        let mut found = Vec::new();
        for prefix in listing.common_prefixes {
            let Some(id) = prefix.filename().map(str::to_owned) else {
                continue;
            };
            let manifest = self.manifest(&id).await?;
            let verified = manifest.is_some() && self.exists(&id, VERIFIED).await?;
            found.push(Listed {
                id,
                manifest,
                verified,
            });
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// The manifest of backup `id`, or `None` if it has none (an interrupted run).
    pub async fn manifest(&self, id: &str) -> Result<Option<Manifest>, StoreError> {
        let path = self.layout.object(id, MANIFEST);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(|e| self.error(&path, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                destination: self.name,
                path: path.to_string(),
                reason: format!("not a manifest: {e}"),
            })
    }

    async fn exists(&self, id: &str, name: &str) -> Result<bool, StoreError> {
        let path = self.layout.object(id, name);
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(&path, e)),
        }
    }

    /// Deletes every object of backup `id`, the manifest first so that a deletion cut short
    /// leaves leftovers, never a listed backup with missing objects.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        for first in [VERIFIED, MANIFEST] {
            let path = self.layout.object(id, first);
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&path, e)),
            }
        }
        let prefix = self.layout.backup(id);
        let paths: Vec<_> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.error(&prefix, e))?;
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&path, e)),
            }
        }
        Ok(())
    }

    /// Streams object `name` of backup `id` into `tx`, checking its size and SHA-256 against
    /// the manifest; a mismatch or a failed read is sent as the stream's last item.
    pub async fn download(
        &self,
        id: &str,
        name: &str,
        cipher_bytes: u64,
        cipher_sha256: &str,
        tx: mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<(), StoreError> {
        let path = self.layout.object(id, name);
        let outcome = async {
            let mut stream = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.error(&path, e))?
                .into_stream();
            let (mut sha, mut bytes) = (Sha256::new(), 0u64);
            // Reads arrive in small pieces (8 KiB from a local file).
            let mut gather = Gather::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error(&path, e))?;
                sha.update(&chunk);
                bytes += chunk.len() as u64;
                if let Some(full) = gather.push(&chunk)
                    && tx.send(Ok(full)).await.is_err()
                {
                    // The reader stopped (it failed and says why itself).
                    return Ok(());
                }
            }
            if let Some(rest) = gather.rest()
                && tx.send(Ok(rest)).await.is_err()
            {
                return Ok(());
            }
            let sha = hex::encode(sha.finalize());
            if bytes != cipher_bytes || sha != cipher_sha256 {
                return Err(StoreError::Corrupt {
                    destination: self.name,
                    path: path.to_string(),
                    reason: format!(
                        "{bytes} bytes with SHA-256 {sha}; the manifest says {cipher_bytes} \
                         bytes with SHA-256 {cipher_sha256}"
                    ),
                });
            }
            Ok(())
        }
        .await;
        if let Err(error) = &outcome {
            let _ = tx
                .send(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                )))
                .await;
        }
        outcome
    }
}

/// Uploads the chunks `rx` delivers as object `name` of backup `id` to every destination at
/// once. The objects are completed only if `produced` then says the producer succeeded (a
/// closed channel alone may be a producer that failed); otherwise, or on any failure, every
/// upload is aborted. `Ok(false)`: aborted because the producer failed.
pub async fn upload(
    destinations: &[Destination],
    id: &str,
    name: &str,
    mut rx: mpsc::Receiver<Bytes>,
    produced: tokio::sync::oneshot::Receiver<bool>,
) -> Result<bool, StoreError> {
    let mut writers = Vec::with_capacity(destinations.len());
    for d in destinations {
        let path = d.layout.object(id, name);
        match d.store.put_multipart(&path).await {
            Ok(upload) => writers.push((d, path, WriteMultipart::new(upload))),
            Err(e) => {
                abort(writers).await;
                return Err(d.error(&path, e));
            }
        }
    }
    let mut failed = None;
    'chunks: while let Some(chunk) = rx.recv().await {
        for (d, path, writer) in &mut writers {
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                failed = Some(d.error(path, e));
                break 'chunks;
            }
            writer.put(chunk.clone());
        }
    }
    if let Some(error) = failed {
        abort(writers).await;
        return Err(error);
    }
    if produced.await != Ok(true) {
        abort(writers).await;
        return Ok(false);
    }
    let mut writers = writers.into_iter();
    while let Some((d, path, writer)) = writers.next() {
        if let Err(e) = writer.finish().await {
            abort(writers.collect()).await;
            return Err(d.error(&path, e));
        }
    }
    Ok(true)
}

async fn abort(writers: Vec<(&Destination, object_store::path::Path, WriteMultipart)>) {
    for (d, path, writer) in writers {
        if let Err(error) = writer.abort().await {
            tracing::warn!(destination = d.name, %path, %error, "cannot abort an upload");
        }
    }
}
