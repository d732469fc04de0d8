//! Retention: the oldest sealed segments go once their last record is older than the retention
//! period, which SEC-2 puts at no less than 1095 days.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::{AuditError, format};

/// SEC-2: audit records are kept at least this many days (three years).
pub const MIN_KEEP_DAYS: u32 = 1095;

/// Deletes the oldest sealed segments of `dir` whose last record is older than `keep_days` at
/// `now`; returns their names, oldest first, to be recorded as retired in the checkpoint
/// ([`super::Checkpointer::record_retired`]). Refuses `keep_days` below [`MIN_KEEP_DAYS`].
/// The last segment is never removed (it holds the chain head), nor anything after a
/// segment that is kept, so the chain on disk stays whole.
pub fn retire(dir: &Path, keep_days: u32, now: Timestamp) -> Result<Vec<String>, AuditError> {
    if keep_days < MIN_KEEP_DAYS {
        return Err(AuditError::Retention { keep_days });
    }
    let cutoff = now - SignedDuration::from_hours(i64::from(keep_days) * 24);
    let mut segments = format::list_segments(dir)?;
    segments.pop();
    let mut removed = Vec::new();
    for (_, name) in segments {
        let path = dir.join(&name);
        let tail = format::read_tail(&path)?;
        let last = tail
            .last_line
            .as_deref()
            .and_then(|line| format::decode(line).ok()?.timestamp());
        // A segment whose age cannot be read is kept: verification will report it.
        if last.is_none_or(|last| last >= cutoff) {
            break;
        }
        std::fs::remove_file(&path).map_err(|e| AuditError::io(&path, e))?;
        tracing::info!(file = %name, "retired audit segment");
        removed.push(name);
    }
    if !removed.is_empty() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(dir, e))?;
    }
    Ok(removed)
}
