//! Which backups a `BackupPolicy`'s retention keeps (SEC-1) and which it deletes, with the
//! semantics of restic's `forget`, plus two protections restic does not have: the newest
//! verified backup is kept when no other verified one is, and audit-log backups are kept for
//! [`AUDIT_MIN_KEEP_DAYS`] (SH-13).
//!
//! Only complete backups are candidates: a backup still running or one that failed is not in
//! the repository's list of snapshots, and cleaning up after a failed run is the runner's job,
//! not retention's.

use std::fmt;

use jiff::{SignedDuration, Timestamp, civil::Date, tz::TimeZone};

use crate::v1alpha1::Retention;

/// Audit logs are kept at least three years (SH-13): an audit backup younger than this many
/// days is never deleted, whatever the retention says.
pub const AUDIT_MIN_KEEP_DAYS: i64 = 1095;

/// A complete backup that retention may keep or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Backup identifier.
    pub id: String,
    /// When the backup completed; it is filed under this instant's day, week and month.
    pub completed: Timestamp,
    /// Whether a restore drill succeeded from this backup.
    pub verified: bool,
    /// Whether the backup holds the audit log (SH-13).
    pub audit: bool,
}

/// Why a backup is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// One of the newest `keepLast`.
    KeepLast,
    /// The newest of its day, one of the last `keepDaily` days with backups.
    Daily,
    /// The newest of its ISO week, one of the last `keepWeekly` weeks with backups.
    Weekly,
    /// The newest of its month, one of the last `keepMonthly` months with backups.
    Monthly,
    /// The newest verified backup, kept because no other verified backup is.
    OnlyVerified,
    /// An audit-log backup younger than [`AUDIT_MIN_KEEP_DAYS`] (SH-13).
    AuditMinimum,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::KeepLast => "last",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::OnlyVerified => "only verified backup",
            Self::AuditMinimum => "audit log younger than 1095 days (SH-13)",
        })
    }
}

/// What retention does with one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The backup's identifier.
    pub id: String,
    /// Keep it (`reasons` is not empty) or delete it.
    pub keep: bool,
    /// Every reason it is kept, in the order of [`Reason`]'s variants.
    pub reasons: Vec<Reason>,
}

/// One decision per backup in `backups`, newest first (ties by id), under `retention` with
/// days, weeks and months on the calendar of `tz`, at `now`.
///
/// As in restic, `keepDaily: N` keeps the newest backup of each of the last N days *that have
/// backups*, not of the last N calendar days; weeks are ISO weeks (Monday to Sunday, week 1
/// holding the year's first Thursday). A negative count keeps nothing.
pub fn plan(
    backups: &[Candidate],
    retention: &Retention,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.completed.cmp(&a.completed).then_with(|| a.id.cmp(&b.id)));
    let dates: Vec<Date> = sorted
        .iter()
        .map(|b| tz.to_datetime(b.completed).date())
        .collect();
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); sorted.len()];
    let keep_last = count(retention.keep_last);
    for r in reasons.iter_mut().take(keep_last) {
        r.push(Reason::KeepLast);
    }
    for (period, n) in [
        (Period::Day, retention.keep_daily),
        (Period::Week, retention.keep_weekly),
        (Period::Month, retention.keep_monthly),
    ] {
        for i in newest_per_period(&dates, period, count(n)) {
            reasons[i].push(period.reason());
        }
    }
    let audit_min = SignedDuration::from_hours(24 * AUDIT_MIN_KEEP_DAYS);
    for (b, r) in sorted.iter().zip(reasons.iter_mut()) {
        if b.audit && now.duration_since(b.completed) < audit_min {
            r.push(Reason::AuditMinimum);
        }
    }
    if let Some(i) = unprotected_verified(&sorted, &reasons) {
        reasons[i].push(Reason::OnlyVerified);
    }
    sorted
        .into_iter()
        .zip(reasons)
        .map(|(b, mut reasons)| {
            reasons.sort();
            Decision {
                id: b.id.clone(),
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// A calendar period backups are grouped by.
#[derive(Clone, Copy, Debug)]
enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    fn reason(self) -> Reason {
        match self {
            Self::Day => Reason::Daily,
            Self::Week => Reason::Weekly,
            Self::Month => Reason::Monthly,
        }
    }

    /// The period `date` falls in, as comparable numbers.
    fn of(self, date: Date) -> (i16, i8, i8) {
        match self {
            Self::Day => (date.year(), date.month(), date.day()),
            Self::Week => {
                let week = date.iso_week_date();
                (week.year(), week.week(), 0)
            }
            Self::Month => (date.year(), date.month(), 0),
        }
    }
}

/// Indices into `dates` (sorted newest first) of the newest backup of each of the first `n`
/// distinct periods.
fn newest_per_period(dates: &[Date], period: Period, n: usize) -> Vec<usize> {
    let mut kept = Vec::new();
    let mut last = None;
    for (i, date) in dates.iter().enumerate() {
        if kept.len() == n {
            break;
        }
        let p = period.of(*date);
        if last != Some(p) {
            kept.push(i);
            last = Some(p);
        }
    }
    kept
}

/// The newest verified backup, if there are verified backups and none of them is kept.
fn unprotected_verified(sorted: &[&Candidate], reasons: &[Vec<Reason>]) -> Option<usize> {
    let any_verified_kept = sorted
        .iter()
        .zip(reasons)
        .any(|(b, r)| b.verified && !r.is_empty());
    if any_verified_kept {
        return None;
    }
    sorted.iter().position(|b| b.verified)
}

/// A retention count as a length; the schema forbids negative counts, which keep nothing.
fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests;
