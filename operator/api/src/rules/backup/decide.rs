//! What the operator does with a `BackupPolicy` at a given moment (SEC-1): which run or drill
//! to start, what its status says, when to look again.
//!
//! The operator owns the scheduling fields of the status (`nextRun`, `lastScheduled`,
//! `missedRuns`, `nextDrill`, `lastDrillScheduled`) and the conditions. The runner owns what
//! it reports (`running`, `lastBackup`, `lastFailure`, `lastVerifiedRestore`,
//! `lastFailedDrill`); the operator only reads those, except when a runner is lost (its
//! progress report went stale: it was killed), which the operator records as a failure so the
//! run is retried.

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    human, parse_schedule,
    schedule::{self, Next},
    validate,
};
use crate::{
    rules::{accepted_unless_invalid, syntax::parse_duration},
    status::{self, Outcome},
    v1alpha1::{BackupFailure, BackupPolicySpec, BackupPolicyStatus},
    workflow::Event,
};

/// Ready reason: backups run and the newest is within the RPO.
pub const BACKED_UP: &str = "BackedUp";
/// Ready reason: no backup has completed yet, and the RPO has not passed.
pub const SCHEDULED: &str = "Scheduled";
/// Ready reason: scheduling is suspended.
pub const SUSPENDED: &str = "Suspended";
/// Ready reason and Event: the newest backup is older than the RPO.
pub const RPO_BREACHED: &str = "RpoBreached";
/// Ready reason: the last run failed; it is being retried.
pub const BACKUP_FAILED: &str = "BackupFailed";
/// Condition type: the last restore drill succeeded.
pub const RESTORE_VERIFIED: &str = "RestoreVerified";
/// `RestoreVerified` reason: a drill succeeded.
pub const DRILL_SUCCEEDED: &str = "DrillSucceeded";
/// `RestoreVerified` reason: the last drill failed.
pub const DRILL_FAILED: &str = "DrillFailed";
/// `RestoreVerified` reason: no drill has run yet.
pub const NO_DRILL_YET: &str = "NoDrillYet";
/// Event: a scheduled run was not started because it was past the starting deadline.
pub const RUN_MISSED: &str = "RunMissed";
/// Event and failure category: a runner stopped reporting before it finished.
pub const RUNNER_LOST: &str = "RunnerLost";
/// Event: a runner's Job failed, or its pod never started, without the runner reporting why
/// (the failure's category is the Job's reason: `DeadlineExceeded`, `BackoffLimitExceeded`,
/// `PodFailurePolicy`, or [`RUNNER_NOT_STARTED`]).
pub const RUNNER_FAILED: &str = "RunnerFailed";
/// Failure category: the runner's pod was not running within the start timeout (image not
/// pulled, unschedulable, …); the operator deleted its Job.
pub const RUNNER_NOT_STARTED: &str = "RunnerNotStarted";

/// Timings of the scheduler (shortened in the e2e suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A run whose last progress report is older than this is lost.
    pub lost_after: SignedDuration,
    /// The delay before the first retry of a failed run; doubled for each further failure.
    pub retry_base: SignedDuration,
    /// The longest delay between retries.
    pub retry_max: SignedDuration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lost_after: SignedDuration::from_secs(60),
            retry_base: SignedDuration::from_secs(60),
            retry_max: SignedDuration::from_mins(30),
        }
    }
}

/// What the controller knows besides the object.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The policy's uid (spreads the jitter).
    pub uid: &'a str,
    /// The policy's creation time.
    pub created: Timestamp,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// A run this operator started is still going (a live child process or an active Job).
    pub backup_active: bool,
    /// A drill this operator started is still going.
    pub drill_active: bool,
    /// The timings.
    pub timing: Timing,
    /// Runners that ended without their own report, as far as the operator can tell (failed
    /// Jobs, pods that never started); recorded unless the runner reported after `created`.
    pub ended: &'a [Ended],
    /// What the runner in use cannot do with this spec ([`super::job::problems`] for Jobs):
    /// the policy stalls on them as on an invalid spec.
    pub refused: &'a [crate::rules::Problem],
}

/// A runner the operator saw fail from outside: its Job failed or never got a running pod.
/// The runner cannot report this itself when its pod never ran (SEC-1: the failure must still
/// show and be retried).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// A drill (`gongshu backup verify`), else a backup run.
    pub drill: bool,
    /// The runner's name (its Job's), recorded as the failure's `backupId`.
    pub name: String,
    /// When the runner was started (the Job's creation); a report of the runner's own at or
    /// after this time means it reported, and nothing is recorded here.
    pub created: Timestamp,
    /// The failure's category (the Job's condition reason).
    pub reason: String,
    /// What happened (the Job's condition message).
    pub message: String,
}

/// Records the failures of `ended` runners that did not report themselves; `true` when
/// something was recorded (the runner's fields changed).
fn record_ended(
    status: &mut BackupPolicyStatus,
    ended: &[Ended],
    now: Timestamp,
    events: &mut Vec<Event>,
) -> bool {
    let mut recorded = false;
    for end in ended {
        let since = |t: Option<&Time>| t.is_some_and(|t| t.0 >= end.created);
        let reported = if end.drill {
            since(status.last_verified_restore.as_ref().map(|r| &r.at))
                || since(status.last_failed_drill.as_ref().map(|f| &f.at))
        } else {
            since(status.last_backup.as_ref().map(|b| &b.completed_at))
                || since(status.last_failure.as_ref().map(|f| &f.at))
        };
        if reported {
            continue;
        }
        let what = if end.drill { "drill" } else { "backup" };
        let message = format!("the {what} runner {} failed: {}", end.name, end.message);
        let previous = if end.drill {
            &status.last_failed_drill
        } else {
            &status.last_failure
        };
        let failure = BackupFailure {
            backup_id: end.name.clone(),
            at: time(now),
            category: end.reason.clone(),
            message: message.clone(),
            attempts: previous.as_ref().map_or(0, |f| f.attempts) + 1,
        };
        events.push(Event::warning(
            RUNNER_FAILED,
            if end.drill { "Drill" } else { "Backup" },
            format!("{}: {message}", end.reason),
        ));
        if end.drill {
            status.last_failed_drill = Some(failure);
        } else {
            // A killed runner (OOMKilled) leaves its last progress report behind.
            status.running = None;
            status.last_failure = Some(failure);
        }
        recorded = true;
    }
    recorded
}

/// Something to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// A backup run for the scheduled time `scheduled`.
    Backup {
        /// The scheduled time (the retried one, for a retry).
        scheduled: Timestamp,
    },
    /// A restore drill of the newest backup.
    Drill {
        /// The drill's scheduled time.
        scheduled: Timestamp,
    },
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write: the operator's fields, and, when `lost`, the runner's.
    pub status: BackupPolicyStatus,
    /// The runner was lost or ended without reporting: `running` is cleared and
    /// `lastFailure` (or `lastFailedDrill`) set in `status`, which the operator writes.
    pub lost: bool,
    /// What to start, after the status is written.
    pub launch: Vec<Launch>,
    /// When to look again.
    pub wake: Option<Timestamp>,
    /// A run is in progress (started here or reporting progress): look again soon to notice
    /// its end.
    pub busy: bool,
    /// Events for what happened.
    pub events: Vec<Event>,
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

/// Decides what to do with a policy at `now`.
pub fn decide(
    spec: &BackupPolicySpec,
    previous: Option<&BackupPolicyStatus>,
    ctx: &Context<'_>,
    now: Timestamp,
) -> Decision {
    let mut status = previous.cloned().unwrap_or_default();
    let mut decision = Decision {
        status: BackupPolicyStatus::default(),
        lost: false,
        launch: Vec::new(),
        wake: None,
        busy: false,
        events: Vec::new(),
    };
    let mut problems = validate(spec, now);
    problems.extend(ctx.refused.iter().cloned());
    let (Ok(tz), Ok(cron), Ok(rpo), true) = (
        TimeZone::get(&spec.time_zone),
        parse_schedule(&spec.schedule),
        parse_duration(&spec.rpo),
        problems.is_empty(),
    ) else {
        let outcome = accepted_unless_invalid(&problems, "");
        status.next_run = None;
        status.next_drill = None;
        status::apply_outcome(&mut status.common, &outcome, ctx.generation, now);
        decision.status = status;
        return decision;
    };

    // A runner whose Job failed without a report: record it, so the run is retried.
    decision.lost = record_ended(&mut status, ctx.ended, now, &mut decision.events);
    // A runner that stopped reporting was killed: record the failure, so the run is retried.
    let mut active = ctx.backup_active;
    if let Some(running) = &status.running
        && !ctx.backup_active
    {
        let stale_at = running.updated_at.0 + ctx.timing.lost_after;
        if now >= stale_at {
            let attempts = status.last_failure.as_ref().map_or(0, |f| f.attempts) + 1;
            let message = format!(
                "the runner of backup {} stopped reporting at {} ({} of {} bytes read); \
                 nothing it wrote is listed as a backup",
                running.id,
                running.updated_at.0,
                running.bytes_done,
                running
                    .bytes_total
                    .map_or_else(|| "?".to_owned(), |t| t.to_string()),
            );
            decision
                .events
                .push(Event::warning(RUNNER_LOST, "Backup", message.clone()));
            status.last_failure = Some(BackupFailure {
                backup_id: running.id.clone(),
                at: time(now),
                category: RUNNER_LOST.to_owned(),
                message,
                attempts,
            });
            status.running = None;
            decision.lost = true;
        } else {
            active = true;
            decision.wake = Some(stale_at);
        }
    }

    if spec.suspend {
        status.next_run = None;
        status.next_drill = None;
        let last_good = status.last_backup.as_ref().map(|b| b.completed_at.0);
        let outcome = match schedule::rpo_overdue(last_good, ctx.created, rpo, now) {
            // Suspending does not hide a breach (SEC-1).
            Some(_) => Outcome::Settled {
                ready: false,
                reason: RPO_BREACHED,
                message: format!(
                    "SEC-1: {}; scheduling is suspended (spec.suspend)",
                    rpo_message(&status, spec, ctx, now)
                ),
            },
            None => Outcome::Settled {
                ready: true,
                reason: SUSPENDED,
                message: "scheduling is suspended (spec.suspend); a running backup finishes".into(),
            },
        };
        status::apply_outcome(&mut status.common, &outcome, ctx.generation, now);
        decision.busy = active;
        decision.status = status;
        return decision;
    }

    // The schedule.
    let last_scheduled = status.last_scheduled.as_ref().map(|t| t.0);
    // The operator's own jitter delay does not count against the starting deadline.
    let jitter = SignedDuration::from_secs(spec.jitter_seconds.unwrap_or(0));
    let deadline = spec
        .starting_deadline_seconds
        .map(|d| SignedDuration::from_secs(d) + jitter);
    let mut next_run = None;
    match schedule::next(&cron, &tz, last_scheduled, ctx.created, deadline, now) {
        Next::Run { scheduled, missed } if !active => {
            let delay = schedule::jitter(ctx.uid, scheduled, jitter);
            let start = scheduled + delay;
            if now >= start {
                status.last_scheduled = Some(time(scheduled));
                add_missed(&mut status, missed);
                decision.launch.push(Launch::Backup { scheduled });
                active = true;
                next_run = first_after(&cron, &tz, now);
            } else {
                next_run = Some(start);
            }
        }
        Next::Run { scheduled, .. } => {
            // The previous run is still going: this one starts when it ends (no overlap), if
            // it is still within the starting deadline then.
            next_run = Some(scheduled);
        }
        Next::Skip {
            scheduled,
            missed,
            next,
        } => {
            status.last_scheduled = Some(time(scheduled));
            add_missed(&mut status, missed);
            decision.events.push(Event::warning(
                RUN_MISSED,
                "Schedule",
                format!(
                    "the run scheduled for {scheduled} was not started: it is more than {}s \
                     late (spec.startingDeadlineSeconds); {missed} run(s) missed",
                    spec.starting_deadline_seconds.unwrap_or(0)
                ),
            ));
            next_run = Some(next);
        }
        Next::Wait { next } => next_run = Some(next),
        Next::Never => {}
    }

    // Retries of a failed run, until the next scheduled run supersedes them.
    if let Some(failure) = &status.last_failure
        && !active
        && decision.launch.is_empty()
    {
        let shift = u32::try_from(failure.attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
        let delay = ctx
            .timing
            .retry_base
            .checked_mul(1 << shift)
            .unwrap_or(ctx.timing.retry_max)
            .min(ctx.timing.retry_max);
        let retry_at = failure.at.0 + delay;
        if next_run.is_none_or(|n| retry_at < n) {
            if now >= retry_at {
                let scheduled = last_scheduled.unwrap_or(now);
                decision.launch.push(Launch::Backup { scheduled });
            } else {
                decision.wake = earliest(decision.wake, Some(retry_at));
            }
        }
    }
    status.next_run = next_run.map(time);
    // A run due but waiting for the one in progress is noticed through `busy`, not a wake-up
    // in the past.
    decision.wake = earliest(decision.wake, next_run.filter(|t| *t > now));

    // Drills, once there is a backup to restore.
    status.next_drill = None;
    if let Some(verification) = &spec.verification
        && status.last_backup.is_some()
        && let Ok(drills) = parse_schedule(&verification.schedule)
    {
        let last = status.last_drill_scheduled.as_ref().map(|t| t.0);
        match schedule::next(&drills, &tz, last, ctx.created, None, now) {
            Next::Run { scheduled, .. } if !ctx.drill_active => {
                status.last_drill_scheduled = Some(time(scheduled));
                decision.launch.push(Launch::Drill { scheduled });
                status.next_drill = first_after(&drills, &tz, now).map(time);
            }
            Next::Run { scheduled, .. } => status.next_drill = Some(time(scheduled)),
            Next::Skip { next, .. } | Next::Wait { next } => status.next_drill = Some(time(next)),
            Next::Never => {}
        }
        decision.wake = earliest(decision.wake, status.next_drill.as_ref().map(|t| t.0));
    }

    // Conditions.
    let last_good = status.last_backup.as_ref().map(|b| b.completed_at.0);
    let overdue = schedule::rpo_overdue(last_good, ctx.created, rpo, now);
    let outcome = match (&overdue, &status.last_failure) {
        (Some(_), failure) => {
            let mut message = format!("SEC-1: {}", rpo_message(&status, spec, ctx, now));
            if let Some(f) = failure {
                message.push_str(&format!(
                    "; the last run failed ({}: {})",
                    f.category, f.message
                ));
            }
            Outcome::Settled {
                ready: false,
                reason: RPO_BREACHED,
                message,
            }
        }
        (None, Some(f)) => Outcome::Settled {
            ready: false,
            reason: BACKUP_FAILED,
            message: format!(
                "backup {} failed ({} attempt(s)): {}: {}",
                f.backup_id, f.attempts, f.category, f.message
            ),
        },
        (None, None) => match &status.last_backup {
            Some(b) => Outcome::Settled {
                ready: true,
                reason: BACKED_UP,
                message: format!(
                    "the newest backup {} completed at {} ({} bytes stored)",
                    b.id, b.completed_at.0, b.bytes
                ),
            },
            None => Outcome::Settled {
                ready: true,
                reason: SCHEDULED,
                message: "no backup yet; the first runs at the next scheduled time".into(),
            },
        },
    };
    if overdue.is_some()
        && previous.is_none_or(|p| {
            status::find(&p.common.conditions, status::READY)
                .is_none_or(|c| c.reason != RPO_BREACHED)
        })
        && let Outcome::Settled { message, .. } = &outcome
    {
        decision
            .events
            .push(Event::warning(RPO_BREACHED, "Check", message.clone()));
    }
    if overdue.is_none() {
        // The moment the newest backup gets older than the RPO.
        let due = last_good.unwrap_or(ctx.created) + rpo;
        decision.wake = earliest(decision.wake, Some(due));
    }
    status::apply_outcome(&mut status.common, &outcome, ctx.generation, now);
    if spec.verification.is_some() {
        let (ok, reason, message) = match (&status.last_failed_drill, &status.last_verified_restore)
        {
            (Some(f), _) => (
                false,
                DRILL_FAILED,
                format!("{}: {}", f.category, f.message),
            ),
            (None, Some(r)) => (
                true,
                DRILL_SUCCEEDED,
                format!(
                    "backup {} restored at {}: {}",
                    r.backup_id, r.at.0, r.checked
                ),
            ),
            (None, None) => (
                false,
                NO_DRILL_YET,
                "no restore drill has run yet".to_owned(),
            ),
        };
        status::set_condition(
            &mut status.common.conditions,
            status::condition(RESTORE_VERIFIED, ok, reason, message, ctx.generation, now),
        );
    }
    decision.busy = active || !decision.launch.is_empty();
    decision.status = status;
    decision
}

/// How old the newest backup is against the RPO, for the `RpoBreached` message.
fn rpo_message(
    status: &BackupPolicyStatus,
    spec: &BackupPolicySpec,
    ctx: &Context<'_>,
    now: Timestamp,
) -> String {
    match &status.last_backup {
        Some(b) => format!(
            "the newest backup ({}) completed {} ago, more than the RPO of {}",
            b.id,
            human(now.duration_since(b.completed_at.0)),
            spec.rpo
        ),
        None => format!(
            "no backup has completed in the {} since the policy was created; the RPO is {}",
            human(now.duration_since(ctx.created)),
            spec.rpo
        ),
    }
}

fn add_missed(status: &mut BackupPolicyStatus, missed: u32) {
    if missed > 0 {
        status.missed_runs = Some(status.missed_runs.unwrap_or(0) + i64::from(missed));
    }
}

fn first_after(cron: &croner::Cron, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    cron.find_next_occurrence(&now.to_zoned(tz.clone()), false)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests;
