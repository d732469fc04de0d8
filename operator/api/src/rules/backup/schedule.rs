//! When a `BackupPolicy` runs (SEC-1): the run that is due, the runs missed while the operator
//! was down, a deterministic start delay, and whether the newest good backup is older than the
//! RPO.
//!
//! The semantics follow Kubernetes CronJob's `startingDeadlineSeconds`: only the most recent
//! scheduled time is ever started, and only if it is not older than the starting deadline;
//! earlier times that passed unstarted are counted as missed. Times are computed on the wall
//! clock of the policy's time zone, so a daily `30 2 * * *` stays at 02:30 across daylight
//! saving changes (and runs at 03:00 on a spring-forward night in Europe/Berlin, where 02:30
//! does not exist).

use croner::Cron;
use jiff::{SignedDuration, Timestamp, Zoned, tz::TimeZone};
use sha2::{Digest, Sha256};

/// How many missed runs are counted at most. After a long downtime an every-minute schedule
/// would otherwise walk hundreds of thousands of times; past this many, `missed` saturates.
pub const MISSED_COUNT_CAP: u32 = 1000;

/// What the scheduler does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Start the run scheduled for `scheduled` now; `missed` earlier scheduled times since the
    /// last run were not started (downtime) and are only reported.
    Run {
        /// The scheduled time of the run to start.
        scheduled: Timestamp,
        /// Earlier scheduled times that passed unstarted, at most [`MISSED_COUNT_CAP`].
        missed: u32,
    },
    /// The latest scheduled time `scheduled` is older than the starting deadline: do not start
    /// it, record it as missed (with `missed` counting it and any earlier ones), wait for
    /// `next`.
    Skip {
        /// The scheduled time that is too late to start; record it as the last scheduled.
        scheduled: Timestamp,
        /// Scheduled times that passed unstarted, `scheduled` included, at most
        /// [`MISSED_COUNT_CAP`] + 1.
        missed: u32,
        /// The next scheduled time after now.
        next: Timestamp,
    },
    /// Nothing is due; the next run is at `next`.
    Wait {
        /// The next scheduled time.
        next: Timestamp,
    },
    /// The schedule has no time left before the year 5000, croner's search limit (a schedule
    /// like `0 0 30 2 *` that never matches).
    Never,
}

/// What to do at `now` for a policy running on `schedule` in `tz`.
///
/// `last_scheduled`: the scheduled time of the last run started (or skipped); `None` for a new
/// policy, then `created` (the policy's creation time) is the anchor (a new policy does NOT
/// run immediately for times before its creation). `starting_deadline`: how late a run may
/// still start; `None` starts it however late.
///
/// The run due is the most recent scheduled time `t` with anchor < `t` ≤ `now`. When the
/// anchor lies after `now` (a clock stepped back), nothing is due until the first time after
/// the anchor, so no run is repeated.
pub fn next(
    schedule: &Cron,
    tz: &TimeZone,
    last_scheduled: Option<Timestamp>,
    created: Timestamp,
    starting_deadline: Option<SignedDuration>,
    now: Timestamp,
) -> Next {
    let anchor = last_scheduled.unwrap_or(created);
    let Some(first) = after(schedule, tz, anchor) else {
        return Next::Never;
    };
    if first > now {
        return Next::Wait { next: first };
    }
    // `first` ≤ `now`, so the latest time at or before `now` exists and is at least `first`;
    // the fallback only guards against a search error.
    let scheduled = latest_until(schedule, tz, now).map_or(first, |t| t.max(first));
    let missed = count_between(schedule, tz, anchor, scheduled);
    let in_time =
        starting_deadline.is_none_or(|deadline| now.duration_since(scheduled) <= deadline);
    if in_time {
        return Next::Run { scheduled, missed };
    }
    match after(schedule, tz, now) {
        Some(next) => Next::Skip {
            scheduled,
            missed: missed.saturating_add(1),
            next,
        },
        None => Next::Never,
    }
}

/// The first scheduled time strictly after `t`.
fn after(schedule: &Cron, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    schedule
        .find_next_occurrence(&zoned(tz, t), false)
        .ok()
        .map(|z| z.timestamp())
}

/// The latest scheduled time at or before `t`.
fn latest_until(schedule: &Cron, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    schedule
        .find_previous_occurrence(&zoned(tz, t), true)
        .ok()
        .map(|z| z.timestamp())
}

/// How many scheduled times lie strictly between `from` and `to`, at most
/// [`MISSED_COUNT_CAP`].
fn count_between(schedule: &Cron, tz: &TimeZone, from: Timestamp, to: Timestamp) -> u32 {
    let count = schedule
        .iter_after(zoned(tz, from))
        .map(|z| z.timestamp())
        .take_while(|t| *t < to)
        .take(MISSED_COUNT_CAP as usize)
        .count();
    u32::try_from(count).unwrap_or(MISSED_COUNT_CAP)
}

fn zoned(tz: &TimeZone, t: Timestamp) -> Zoned {
    t.to_zoned(tz.clone())
}

/// A deterministic delay in [0, `max`) for the run of `policy_uid` scheduled at `scheduled`,
/// so a restarted operator picks the same delay (no re-randomizing) and policies sharing a
/// schedule spread out. Zero when `max` is zero or negative.
///
/// The delay comes from SHA-256 rather than std's `DefaultHasher`, whose output may change
/// between Rust releases and would move every delay after an operator upgrade.
pub fn jitter(policy_uid: &str, scheduled: Timestamp, max: SignedDuration) -> SignedDuration {
    let Ok(range) = u128::try_from(max.as_nanos()) else {
        return SignedDuration::ZERO;
    };
    if range == 0 {
        return SignedDuration::ZERO;
    }
    let mut hasher = Sha256::new();
    hasher.update(policy_uid.as_bytes());
    // A separator keeps ("ab", t) and ("a", "b" ++ t) apart.
    hasher.update([0]);
    hasher.update(scheduled.as_nanosecond().to_be_bytes());
    let digest = hasher.finalize();
    let mut word = [0u8; 16];
    word.copy_from_slice(&digest[..16]);
    let offset = u128::from_be_bytes(word) % range;
    // `offset` < `range`, which came from an i128.
    SignedDuration::from_nanos_i128(i128::try_from(offset).unwrap_or(0))
}

/// How far past the RPO the newest good backup is: `Some(overdue)` when `now` − `last_good` >
/// `rpo` (SEC-1); when there was never a good backup, measured from `created`.
pub fn rpo_overdue(
    last_good: Option<Timestamp>,
    created: Timestamp,
    rpo: SignedDuration,
    now: Timestamp,
) -> Option<SignedDuration> {
    let age = now.duration_since(last_good.unwrap_or(created));
    let overdue = age.checked_sub(rpo)?;
    overdue.is_positive().then_some(overdue)
}

#[cfg(test)]
mod tests;
