//! The exchange's tamper-evident audit log (SEC-2): every access to the data exchange appends
//! one [`Record`] to a hash chain kept in sealed segment files, whose heads are checkpointed
//! into a ConfigMap so that editing, deleting or reordering records or whole files is detected
//! by [`verify`] (`gongshu audit verify`). Records are kept at least 1095 days ([`retire`]).
//!
//! One writer task owns the files; [`AuditLog`] handles send it records over a channel. The
//! task batches: everything queued is serialised and written with one `write(2)` per segment,
//! then each appender is answered. `fdatasync` runs every [`Options::sync_every`], on seal and
//! on shutdown, so an append survives `kill -9` of the process (page cache) at once and a
//! power loss after at most `sync_every`.

mod checkpoint;
pub mod cli;
mod format;
mod metrics;
mod monitor;
mod retention;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use self::writer::{Command, Writer};
pub use self::{
    checkpoint::{
        CHECKPOINT_NAME, Checkpointer, RETIRED_PREFIX, SegmentHead, checkpoint_data, mark_retired,
    },
    format::segment_name,
    metrics::AuditMetrics,
    monitor::{Monitor, verify_live},
    retention::{MIN_KEEP_DAYS, retire},
    verify::{Finding, Report, verify},
};

/// One access to the data exchange, as the exchange reports it. The log adds the sequence
/// number, the time and the chain links.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// `system:serviceaccount:<namespace>:<name>`, or `anonymous`.
    pub caller: String,
    /// The ShareGrant used, `namespace/name`.
    pub grant: Option<String>,
    /// The catalog item accessed.
    pub item: Option<String>,
    /// The fields returned or asked about.
    pub fields: Vec<String>,
    /// `api`, `file`, `verify` or `table`.
    pub mode: Option<String>,
    /// What was done: `lookup`, `query`, `download`, `verify`, …
    pub operation: String,
    /// Rows returned.
    pub rows: u64,
    /// HTTP status of the answer.
    pub status: u16,
    /// Problem type or title, for failures.
    pub problem: Option<String>,
    /// Time to answer, in microseconds.
    pub latency_us: u64,
    /// Peer address.
    pub remote: Option<String>,
}

/// Where and how the log writes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// A segment is sealed once it holds this many bytes.
    pub segment_max_bytes: u64,
    /// A segment is sealed once its first record is this old.
    pub segment_max_age: Duration,
    /// How often written records are forced to disk (`fdatasync`).
    pub sync_every: Duration,
    /// Counts appends and checkpoints (registered by the exchange; on no registry by default).
    pub metrics: AuditMetrics,
}

impl Options {
    /// The defaults (64 MiB or 24 h segments, a sync every second) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_max_bytes: 64 * 1024 * 1024,
            segment_max_age: Duration::from_secs(24 * 60 * 60),
            sync_every: Duration::from_secs(1),
            metrics: AuditMetrics::default(),
        }
    }
}

/// Everything that can go wrong with the audit log, naming the file or record concerned.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing an audit file failed.
    #[error("audit file {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The last record of a segment could not be read back (found when opening the log).
    #[error("audit file {file}: {reason}")]
    Corrupt {
        /// Segment file name.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record could not be serialised.
    #[error("audit record seq {seq} could not be serialised: {source}")]
    Serialize {
        /// Its sequence number.
        seq: u64,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The writer task has stopped (shutdown), so nothing more is recorded.
    #[error("the audit log is closed")]
    Closed,
    /// Retention was asked to drop records younger than SEC-2 allows.
    #[error(
        "SEC-2: audit records are kept at least {MIN_KEEP_DAYS} days; refusing to retire \
         segments after {keep_days} days"
    )]
    Retention {
        /// The refused retention.
        keep_days: u32,
    },
    /// Reading or writing the checkpoint ConfigMap failed.
    #[error("audit checkpoint ConfigMap {namespace}/{name}: {source}")]
    Checkpoint {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The checkpoint ConfigMap is missing although one was named.
    #[error("audit checkpoint ConfigMap {namespace}/{name} does not exist")]
    CheckpointMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A checkpoint entry is not `<first>:<last>:<hash>:<sealed|open>`.
    #[error("audit checkpoint entry {key}={value:?} is malformed")]
    CheckpointEntry {
        /// The key (segment file name).
        key: String,
        /// The value found.
        value: String,
    },
}

impl AuditError {
    /// A stable label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Corrupt { .. } => "corrupt",
            Self::Serialize { .. } => "serialize",
            Self::Closed => "closed",
            Self::Retention { .. } => "retention",
            Self::Checkpoint { .. } | Self::CheckpointMissing { .. } => "checkpoint",
            Self::CheckpointEntry { .. } => "checkpoint_entry",
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Handle to the audit log: cheap to clone, every clone feeds the same writer task.
#[derive(Clone, Debug)]
pub struct AuditLog {
    commands: mpsc::Sender<Command>,
}

/// Appends waiting for the writer before `append` itself waits (back-pressure).
const QUEUE: usize = 16 * 1024;

impl AuditLog {
    /// Opens (creating) the directory, recovers the last segment (dropping a partial trailing
    /// line left by a crash) and spawns the writer task, which runs until `shutdown` resolves
    /// or every handle is dropped, then syncs and writes a last checkpoint.
    pub async fn open(
        options: Options,
        checkpoint: Option<Checkpointer>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<AuditLog, AuditError> {
        let writer = Writer::recover(options).await?;
        let (commands, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(writer.run(receiver, checkpoint, shutdown));
        Ok(AuditLog { commands })
    }

    /// Appends `record`; returns its sequence number once its line has been written to the
    /// segment file (it then survives `kill -9` of the process).
    pub async fn append(&self, record: Record) -> Result<u64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append(record, reply)).await?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// The chain head: the last sequence number (0 before the first record) and its hash.
    pub async fn head(&self) -> Result<(u64, String), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Head(reply)).await?;
        answer.await.map_err(|_| AuditError::Closed)
    }

    /// The checkpoint data the writer would write now (see [`checkpoint_data`]).
    pub async fn checkpoint(&self) -> Result<BTreeMap<String, String>, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Checkpoint(reply)).await?;
        answer.await.map_err(|_| AuditError::Closed)
    }

    /// Runs [`retire`] in the writer (so it never races a seal) and records the removed
    /// segments as retired in the checkpoint; returns their names.
    pub async fn retire(&self, keep_days: u32, now: Timestamp) -> Result<Vec<String>, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Retire {
            keep_days,
            now,
            reply,
        })
        .await?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Resolves once the writer task has stopped (after its last sync).
    pub async fn closed(&self) {
        self.commands.closed().await;
    }

    async fn send(&self, command: Command) -> Result<(), AuditError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| AuditError::Closed)
    }
}
