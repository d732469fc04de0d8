//! One backup: every source through the pipeline to every destination, then the manifest.

use std::{
    io,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::info;

use super::{
    archive,
    manifest::{
        FORMAT, MANIFEST, Manifest, ObjectManifest, SourceKind, SourceManifest, archive_object,
        table_object,
    },
    pg::{self, PgError},
    pipeline::{ChannelReader, DEPTH, Sealed, Sealer},
    store::{self, Destination, StoreError},
};

/// A backup run failed; nothing was listed as a backup.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A PostgreSQL source failed.
    #[error("source {source_name}: {error}")]
    Postgres {
        /// The source.
        source_name: String,
        /// The error.
        #[source]
        error: PgError,
    },
    /// Reading a path source, compressing or encrypting failed.
    #[error("source {source_name}: {error}")]
    Io {
        /// The source.
        source_name: String,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// A destination failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A pipeline thread panicked or was cancelled.
    #[error("source {0}: the pipeline thread stopped")]
    Thread(String),
}

impl RunError {
    /// A stable label for metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Io { .. } | Self::Thread(_) => "source",
            Self::Store(StoreError::Config { .. }) => "destination_config",
            Self::Store(_) => "destination",
        }
    }
}

/// A source, resolved from the policy (Secrets read, paths known).
#[derive(Clone)]
pub enum Source {
    /// Tables of a PostgreSQL database.
    Postgres {
        /// The source's name.
        name: String,
        /// Connection URI (never logged).
        uri: String,
        /// `schema.table`s, all user tables when empty.
        tables: Vec<String>,
    },
    /// A file or directory.
    Path {
        /// The source's name.
        name: String,
        /// The path.
        path: PathBuf,
        /// Whether it is the exchange's audit log.
        audit: bool,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres { name, tables, .. } => f
                .debug_struct("Postgres")
                .field("name", name)
                .field("tables", tables)
                .finish_non_exhaustive(),
            Self::Path { name, path, audit } => f
                .debug_struct("Path")
                .field("name", name)
                .field("path", path)
                .field("audit", audit)
                .finish(),
        }
    }
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Postgres { name, .. } | Self::Path { name, .. } => name,
        }
    }
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct Job {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub policy: String,
    /// The backup id.
    pub id: String,
    /// The scheduled time, when the scheduler started the run.
    pub scheduled_for: Option<Timestamp>,
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// zstd level.
    pub zstd_level: i32,
    /// Extra zstd worker threads (0: compress on the pipeline thread).
    pub zstd_workers: u32,
    /// `age` recipients.
    pub recipients: Vec<age::x25519::Recipient>,
    /// Where to write.
    pub destinations: Vec<Destination>,
}

/// Bytes read so far and the estimated total, shared with whoever reports progress.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Plaintext bytes read.
    pub done: Arc<AtomicU64>,
    /// Estimated plaintext bytes in all.
    pub total: Arc<AtomicU64>,
}

/// Runs `job`: writes every object, then the manifest to every destination.
pub async fn backup(job: &Job, progress: &Progress) -> Result<Manifest, RunError> {
    let started_at = Timestamp::now();
    let mut sources = Vec::with_capacity(job.sources.len());
    for source in &job.sources {
        let objects = match source {
            Source::Postgres { name, uri, tables } => postgres(job, progress, name, uri, tables)
                .await
                .map_err(|error| match error {
                    Failure::Pg(error) => RunError::Postgres {
                        source_name: name.clone(),
                        error,
                    },
                    Failure::Run(error) => error,
                })?,
            Source::Path { name, path, .. } => vec![path_source(job, progress, name, path).await?],
        };
        sources.push(SourceManifest {
            name: source.name().to_owned(),
            kind: match source {
                Source::Postgres { .. } => SourceKind::Postgres,
                Source::Path { audit: true, .. } => SourceKind::AuditLog,
                Source::Path { .. } => SourceKind::Path,
            },
            objects,
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        id: job.id.clone(),
        namespace: job.namespace.clone(),
        policy: job.policy.clone(),
        started_at,
        completed_at: Timestamp::now(),
        scheduled_for: job.scheduled_for,
        tool: format!("gongshu {}", env!("CARGO_PKG_VERSION")),
        zstd_level: job.zstd_level,
        recipients: job.recipients.iter().map(ToString::to_string).collect(),
        sources,
    };
    // The manifest goes last: until it is written everywhere, this is not a backup.
    let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
    for destination in &job.destinations {
        destination.put(&job.id, MANIFEST, bytes.clone()).await?;
    }
    info!(
        id = job.id,
        objects = manifest.objects().count(),
        plain_bytes = manifest.plain_bytes(),
        stored_bytes = manifest.cipher_bytes(),
        "backup complete"
    );
    Ok(manifest)
}

enum Failure {
    Pg(PgError),
    Run(RunError),
}

impl From<PgError> for Failure {
    fn from(e: PgError) -> Self {
        Self::Pg(e)
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

async fn postgres(
    job: &Job,
    progress: &Progress,
    name: &str,
    uri: &str,
    tables: &[String],
) -> Result<Vec<ObjectManifest>, Failure> {
    let mut client = pg::connect(uri).await?;
    let tx = pg::snapshot(&mut client).await?;
    let planned = pg::plan(&tx, tables).await?;
    progress.total.fetch_add(
        planned.iter().map(|p| p.estimate).sum::<u64>(),
        Ordering::Relaxed,
    );
    let mut objects = Vec::with_capacity(planned.len());
    for table in planned {
        let object = table_object(name, &table.table.schema, &table.table.name);
        let (plain_tx, plain_rx) = mpsc::channel(DEPTH);
        // `move`: the block must own the sender, so the channel closes when the dump ends.
        let (snapshot, planned) = (&tx, &table);
        let dumping = async move {
            let dumped = pg::dump(snapshot, planned, plain_tx.clone()).await;
            if let Err(error) = &dumped {
                // Fail the pipeline too, so the partial object is aborted, not completed.
                let _ = plain_tx
                    .send(Err(io::Error::other(error.to_string())))
                    .await;
            }
            dumped
        };
        let sealing = seal(job, progress, name, &object, move |mut sealer| {
            io::copy(&mut ChannelReader::new(plain_rx), &mut sealer)?;
            Ok((sealer.finish()?, ()))
        });
        let (dumped, sealed) = tokio::join!(dumping, sealing);
        // The dump's own error explains a pipeline that stopped because of it.
        let rows = dumped?;
        let (sealed, ()) = sealed?;
        objects.push(object_manifest(
            object,
            sealed,
            Some(super::manifest::TableManifest {
                rows,
                ..table.table
            }),
            None,
        ));
    }
    tx.commit().await.map_err(|source| PgError::Query {
        context: "cannot end the snapshot".into(),
        source,
    })?;
    Ok(objects)
}

async fn path_source(
    job: &Job,
    progress: &Progress,
    name: &str,
    path: &std::path::Path,
) -> Result<ObjectManifest, RunError> {
    let io_error = |error| RunError::Io {
        source_name: name.to_owned(),
        error,
    };
    let root = path.to_path_buf();
    let measured = tokio::task::spawn_blocking(move || archive::measure(&root))
        .await
        .map_err(|_| RunError::Thread(name.to_owned()))?
        .map_err(io_error)?;
    progress.total.fetch_add(measured.bytes, Ordering::Relaxed);
    let object = archive_object(name);
    let root = path.to_path_buf();
    let (sealed, archived) = seal(job, progress, name, &object, move |sealer| {
        let (archived, sealer) = archive::write(&root, sealer)?;
        Ok((sealer.finish()?, archived))
    })
    .await?;
    Ok(object_manifest(object, sealed, None, Some(archived.files)))
}

fn object_manifest(
    name: String,
    sealed: Sealed,
    table: Option<super::manifest::TableManifest>,
    files: Option<u64>,
) -> ObjectManifest {
    ObjectManifest {
        name,
        plain_bytes: sealed.plain_bytes,
        plain_sha256: sealed.plain_sha256,
        cipher_bytes: sealed.cipher_bytes,
        cipher_sha256: sealed.cipher_sha256,
        table,
        files,
    }
}

/// Runs `produce` on a blocking thread with a [`Sealer`] whose ciphertext is uploaded as
/// `object` to every destination at the same time.
async fn seal<T: Send + 'static>(
    job: &Job,
    progress: &Progress,
    source: &str,
    object: &str,
    produce: impl FnOnce(Sealer) -> io::Result<(Sealed, T)> + Send + 'static,
) -> Result<(Sealed, T), RunError> {
    let io_error = |error| RunError::Io {
        source_name: source.to_owned(),
        error,
    };
    let (tx, rx) = mpsc::channel(DEPTH);
    let sealer = Sealer::new(
        job.zstd_level,
        job.zstd_workers,
        &job.recipients,
        tx,
        progress.done.clone(),
    )
    .map_err(io_error)?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let producing = async {
        let produced = tokio::task::spawn_blocking(move || produce(sealer)).await;
        let _ = done_tx.send(matches!(produced, Ok(Ok(_))));
        produced
    };
    let (uploaded, produced) = tokio::join!(
        store::upload(&job.destinations, &job.id, object, rx, done_rx),
        producing
    );
    // An upload failure stops the producer with a broken pipe: report the upload's error.
    uploaded?;
    produced
        .map_err(|_| RunError::Thread(source.to_owned()))?
        .map_err(io_error)
}
