//! Verifying a live audit chain from inside the exchange (SEC-2): what `gongshu audit verify`
//! does, at start and then periodically, on a blocking thread so that hashing a large log
//! never holds up requests; the result is `gongshu_audit_chain_intact`.
//!
//! The checkpoint is read once before the log is opened, and what it said then takes
//! precedence over what the ConfigMap says later. The writer publishes the heads it recovered
//! from disk, so after a restart the ConfigMap would vouch for files edited while the process
//! was down; the heads recorded before the restart still catch them, at every verification of
//! this process. An entry only ever grows (more records, then sealed), so an older entry is a
//! valid, if weaker, check of the same segment.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use tokio::time::{MissedTickBehavior, interval};
use tracing::{error, info, warn};

use super::{AuditError, AuditMetrics, Checkpointer, Report, verify::walk};
use crate::shutdown::Shutdown;

/// Findings logged in full; the rest are counted.
const LOGGED_FINDINGS: usize = 10;

/// Verifies the audit chain in a directory the writer appends to.
#[derive(Debug)]
pub struct Monitor {
    dir: PathBuf,
    checkpointer: Option<Checkpointer>,
    /// The checkpoint as it was before this process opened the log.
    at_start: BTreeMap<String, String>,
    metrics: AuditMetrics,
}

impl Monitor {
    /// Reads the checkpoint as the previous process left it. Call before
    /// [`super::AuditLog::open`]: the writer soon overwrites it with what it finds on disk.
    pub async fn before_open(
        dir: PathBuf,
        checkpointer: Option<Checkpointer>,
        metrics: AuditMetrics,
    ) -> Self {
        let at_start = match &checkpointer {
            None => BTreeMap::new(),
            Some(checkpointer) => match checkpointer.read().await {
                Ok(data) => data.unwrap_or_default(),
                Err(error) => {
                    // Verification goes on against the ConfigMap as it is when it runs.
                    warn!(%error, "cannot read the audit checkpoint before opening the log");
                    BTreeMap::new()
                }
            },
        };
        Self {
            dir,
            checkpointer,
            at_start,
            metrics,
        }
    }

    /// Verifies now, then every `every`, until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: Shutdown) {
        let mut ticks = interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.clone().wait() => return,
            }
            // A verification that could not run leaves the last result (and its time) alone:
            // `gongshu_audit_last_verification_timestamp_seconds` then shows it is stale.
            let _ = self.verify().await;
        }
    }

    /// One verification, recorded in the metrics; `None` when it could not run (the
    /// checkpoint or a file could not be read).
    pub async fn verify(&self) -> Option<Report> {
        let mut report = self.walk().await?;
        if !report.is_intact() {
            // Once more before raising the alarm, with a fresh checkpoint: a segment retired
            // between reading the checkpoint and listing the files is not tampering.
            report = self.walk().await?;
        }
        self.metrics.verified(report.is_intact());
        if report.is_intact() {
            info!(
                records = report.records,
                segments = report.segments,
                "audit chain verified intact"
            );
        } else {
            let shown: Vec<String> = report
                .findings
                .iter()
                .take(LOGGED_FINDINGS)
                .map(ToString::to_string)
                .collect();
            error!(
                findings = report.findings.len(),
                first = %shown.join("; "),
                dir = %self.dir.display(),
                "audit chain broken (SEC-2): run `gongshu audit verify` for the full report"
            );
        }
        Some(report)
    }

    async fn walk(&self) -> Option<Report> {
        let checkpoint = match self.checkpoint().await {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                warn!(%error, "audit chain not verified: cannot read its checkpoint");
                return None;
            }
        };
        let dir = self.dir.clone();
        let walked = tokio::task::spawn_blocking(move || verify_live(&dir, checkpoint.as_ref()));
        match walked.await {
            Ok(Ok(report)) => Some(report),
            Ok(Err(error)) => {
                warn!(%error, "audit chain not verified");
                None
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The checkpoint to verify against: the ConfigMap now, overridden by what it said at
    /// start; `None` without a checkpoint at all (the files are still checked).
    async fn checkpoint(&self) -> Result<Option<BTreeMap<String, String>>, AuditError> {
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(None);
        };
        let now = checkpointer.read().await?;
        if now.is_none() && self.at_start.is_empty() {
            return Ok(None);
        }
        let mut data = now.unwrap_or_default();
        data.extend(self.at_start.clone());
        Ok(Some(data))
    }
}

/// [`super::verify`] of a directory a writer may be appending to: the newest segment's last
/// line may be incomplete, being written as it is read.
pub fn verify_live(
    dir: &std::path::Path,
    checkpoint: Option<&BTreeMap<String, String>>,
) -> Result<Report, AuditError> {
    walk(dir, checkpoint, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;

    use super::*;
    use crate::audit::{AuditLog, Options, Record};

    async fn filled(dir: &std::path::Path, count: u64) -> BTreeMap<String, String> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = AuditLog::open(Options::new(dir), None, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        for i in 0..count {
            log.append(Record {
                operation: format!("lookup-{i}"),
                status: 200,
                ..Record::default()
            })
            .await
            .unwrap();
        }
        let checkpoint = log.checkpoint().await.unwrap();
        stop.send(()).unwrap();
        log.closed().await;
        checkpoint
    }

    #[tokio::test]
    async fn a_line_being_written_is_not_tampering_but_a_cut_line_is() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = filled(dir.path(), 3).await;
        let segment = dir.path().join(crate::audit::segment_name(1));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(b"{\"hash\":\"00")
            .unwrap();
        let live = verify_live(dir.path(), Some(&checkpoint)).unwrap();
        assert!(live.is_intact(), "{live}");
        assert_eq!(live.records, 3);
        let offline = crate::audit::verify(dir.path(), Some(&checkpoint)).unwrap();
        assert!(!offline.is_intact(), "{offline}");
    }

    #[tokio::test]
    async fn the_monitor_sets_the_gauge_from_each_verification() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 3).await;
        let registry = prometheus::Registry::new();
        let metrics = AuditMetrics::new(&registry).unwrap();
        let monitor = Monitor::before_open(dir.path().into(), None, metrics.clone()).await;
        assert!(monitor.verify().await.unwrap().is_intact());
        assert!(metrics.chain_intact());
        let segment = dir.path().join(crate::audit::segment_name(1));
        let text = std::fs::read_to_string(&segment).unwrap();
        std::fs::write(&segment, text.replacen("lookup-1", "lookup-9", 1)).unwrap();
        assert!(!monitor.verify().await.unwrap().is_intact());
        assert!(!metrics.chain_intact());
    }
}
