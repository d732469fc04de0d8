//! Restoring a backup, and the restore drill (a restore into a scratch target, checked).
//!
//! Every object is read back through the pipeline: its stored size and SHA-256, then, after
//! decryption and decompression, its plaintext SHA-256 are compared with the manifest;
//! PostgreSQL tables are loaded in one transaction and their row counts compared; archives
//! are unpacked under `<directory>/<source>/`.

use std::{io, io::Read, path::PathBuf, sync::Arc};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    archive,
    manifest::{Manifest, ObjectManifest, SourceKind},
    pg::{self, PgError},
    pipeline::{self, ChannelReader, DEPTH},
    store::{Destination, StoreError},
};

/// `age` identities that decrypt the backup.
pub type Identities = Arc<Vec<Box<dyn age::Identity + Send + Sync>>>;

/// A restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup does not exist or has no manifest (an interrupted run).
    #[error("{destination} has no complete backup {id}")]
    NotFound {
        /// `local` or `offsite`.
        destination: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Reading the destination failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Decryption, decompression, unpacking or a checksum failed.
    #[error("{object}: {error}")]
    Object {
        /// The object.
        object: String,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// Loading into PostgreSQL failed.
    #[error("{object}: {error}")]
    Postgres {
        /// The object.
        object: String,
        /// The error.
        #[source]
        error: PgError,
    },
    /// The backup has a source of a kind with no target given.
    #[error("source {0} needs a {1} target")]
    NoTarget(String, &'static str),
    /// A pipeline thread stopped.
    #[error("{0}: the pipeline thread stopped")]
    Thread(String),
}

/// Where to restore to. A source without a target is checked (downloaded, decrypted,
/// decompressed, hashed, rows counted) but written nowhere: what a drill does when it has no
/// scratch database.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The database PostgreSQL sources are loaded into.
    pub postgres: Option<String>,
    /// Drop tables that exist in the target before loading them.
    pub replace: bool,
    /// The directory path and audit sources are unpacked under (`<dir>/<source>/`).
    pub directory: Option<PathBuf>,
    /// Only these sources (all when empty).
    pub only: Vec<String>,
    /// Check sources without a target instead of failing.
    pub check_only: bool,
}

/// What a restore did, per object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects whose checksums matched.
    pub objects: u64,
    /// Plaintext bytes restored or checked.
    pub bytes: u64,
    /// Rows loaded or counted, all tables.
    pub rows: u64,
    /// Files unpacked or counted.
    pub files: u64,
}

impl Report {
    /// One line for logs and status: what was compared.
    pub fn summary(&self) -> String {
        format!(
            "{} objects' SHA-256 matched ({} bytes); {} rows and {} files as in the manifest",
            self.objects, self.bytes, self.rows, self.files
        )
    }
}

/// Reads backup `id`'s manifest from `from`.
pub async fn manifest(from: &Destination, id: &str) -> Result<Manifest, RestoreError> {
    from.manifest(id)
        .await?
        .ok_or_else(|| RestoreError::NotFound {
            destination: from.name,
            id: id.to_owned(),
        })
}

/// Restores `manifest`'s backup from `from` into `targets`.
pub async fn restore(
    from: &Destination,
    manifest: &Manifest,
    identities: &Identities,
    targets: &Targets,
) -> Result<Report, RestoreError> {
    let mut report = Report::default();
    let mut database = match &targets.postgres {
        Some(uri) => Some(
            pg::connect(uri)
                .await
                .map_err(|error| RestoreError::Postgres {
                    object: "target".into(),
                    error,
                })?,
        ),
        None => None,
    };
    let tx = match &mut database {
        Some(client) => Some(client.transaction().await.map_err(target("cannot begin"))?),
        None => None,
    };
    for source in &manifest.sources {
        if !targets.only.is_empty() && !targets.only.contains(&source.name) {
            continue;
        }
        for object in &source.objects {
            let (bytes_tx, bytes_rx) = mpsc::channel(DEPTH);
            let downloading = from.download(
                &manifest.id,
                &object.name,
                object.cipher_bytes,
                &object.cipher_sha256,
                bytes_tx,
            );
            let restoring = async {
                match (source.kind, &tx, &targets.directory) {
                    (SourceKind::Postgres, Some(tx), _) => {
                        load_table(tx, object, targets.replace, bytes_rx, identities).await
                    }
                    (SourceKind::Path | SourceKind::AuditLog, _, Some(dir)) => {
                        unpack(object, dir.join(&source.name), bytes_rx, identities).await
                    }
                    _ if targets.check_only => check(object, bytes_rx, identities).await,
                    (SourceKind::Postgres, ..) => {
                        Err(RestoreError::NoTarget(source.name.clone(), "PostgreSQL"))
                    }
                    _ => Err(RestoreError::NoTarget(source.name.clone(), "directory")),
                }
            };
            let (downloaded, restored) = tokio::join!(downloading, restoring);
            // A corrupt or unreadable object explains the reader's failure.
            downloaded?;
            let (rows, files) = restored?;
            report.objects += 1;
            report.bytes += object.plain_bytes;
            report.rows += rows;
            report.files += files;
        }
    }
    if let Some(tx) = tx {
        tx.commit()
            .await
            .map_err(target("cannot commit the restore"))?;
    }
    Ok(report)
}

/// A failed statement on the target database, as a restore error.
fn target(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RestoreError {
    move |source| RestoreError::Postgres {
        object: "target".into(),
        error: PgError::Query {
            context: context.into(),
            source,
        },
    }
}

/// Runs `consume` over the plaintext of `object` on a blocking thread, then checks the
/// plaintext's size and SHA-256.
async fn plaintext<T: Send + 'static>(
    object: &ObjectManifest,
    ciphertext: mpsc::Receiver<io::Result<Bytes>>,
    identities: &Identities,
    consume: impl FnOnce(&mut pipeline::Opened) -> io::Result<T> + Send + 'static,
) -> Result<T, RestoreError> {
    let identities = identities.clone();
    let (bytes, sha) = (object.plain_bytes, object.plain_sha256.clone());
    let name = object.name.clone();
    tokio::task::spawn_blocking(move || {
        let mut opened = pipeline::open(ChannelReader::new(ciphertext), &identities)?;
        let value = consume(&mut opened)?;
        let (read, read_sha) = opened.finish()?;
        if read != bytes || read_sha != sha {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "plaintext of {read} bytes with SHA-256 {read_sha}; the manifest says \
                     {bytes} bytes with SHA-256 {sha}"
                ),
            ));
        }
        Ok(value)
    })
    .await
    .map_err(|_| RestoreError::Thread(name.clone()))?
    .map_err(|error| RestoreError::Object {
        object: name,
        error,
    })
}

async fn check(
    object: &ObjectManifest,
    ciphertext: mpsc::Receiver<io::Result<Bytes>>,
    identities: &Identities,
) -> Result<(u64, u64), RestoreError> {
    let counting_rows = object.table.is_some();
    let rows = plaintext(object, ciphertext, identities, move |opened| {
        let mut rows = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = opened.read(&mut buf)?;
            if n == 0 {
                return Ok(rows);
            }
            if counting_rows {
                rows += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
    })
    .await?;
    if let Some(table) = &object.table
        && table.rows != rows
    {
        return Err(RestoreError::Postgres {
            object: object.name.clone(),
            error: PgError::RowCount {
                table: format!("{}.{}", table.schema, table.name),
                restored: rows,
                expected: table.rows,
            },
        });
    }
    Ok((rows, object.files.unwrap_or(0)))
}

async fn unpack(
    object: &ObjectManifest,
    dir: PathBuf,
    ciphertext: mpsc::Receiver<io::Result<Bytes>>,
    identities: &Identities,
) -> Result<(u64, u64), RestoreError> {
    let restored = plaintext(object, ciphertext, identities, move |opened| {
        archive::unpack(opened, &dir)
    })
    .await?;
    Ok((0, restored.files))
}

async fn load_table(
    tx: &tokio_postgres::Transaction<'_>,
    object: &ObjectManifest,
    replace: bool,
    ciphertext: mpsc::Receiver<io::Result<Bytes>>,
    identities: &Identities,
) -> Result<(u64, u64), RestoreError> {
    let Some(table) = &object.table else {
        return Err(RestoreError::Object {
            object: object.name.clone(),
            error: io::Error::new(io::ErrorKind::InvalidData, "no table in the manifest"),
        });
    };
    let (rows_tx, rows_rx) = mpsc::channel(DEPTH);
    let reading = plaintext(object, ciphertext, identities, move |opened| {
        loop {
            let mut buf = vec![0u8; pipeline::CHUNK / 4];
            let n = opened.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if rows_tx.blocking_send(Bytes::from(buf)).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the database stopped loading",
                ));
            }
        }
    });
    let loading = pg::restore(tx, table, replace, rows_rx);
    let (read, loaded) = tokio::join!(reading, loading);
    // A bad object makes the load see a short stream: the object's error says why.
    read?;
    let rows = loaded.map_err(|error| RestoreError::Postgres {
        object: object.name.clone(),
        error,
    })?;
    Ok((rows, 0))
}
