//! SEC-1: what the operator starts for a `BackupPolicy`, what its status says, and when it
//! looks again.
//!
//! The fixture runs nightly at 02:00 in Shanghai (UTC+8, no DST), which is 18:00 UTC the day
//! before, with an RPO of 26h and a restore drill on Sundays at 03:30 Shanghai (Saturdays
//! 19:30 UTC). The tests run on Monday 2026-11-23 at 10:00 UTC (18:00 in Shanghai).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::*;
use crate::{
    v1alpha1::{BackupRecord, Progress, RestoreRecord},
    workflow::EventType,
};

const UID: &str = "6f1c2a9e-3b7d-4e5f-8a0b-1c2d3e4f5a6b";

fn spec() -> BackupPolicySpec {
    serde_yaml::from_str(include_str!("../../fixtures/backup.yaml")).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    ts("2026-11-23T10:00:00Z")
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

/// The 02:00 Shanghai run before `now()`, and the ones around it.
const RUN_BEFORE_YESTERDAY: &str = "2026-11-21T18:00:00Z";
const LAST_RUN: &str = "2026-11-22T18:00:00Z";
const NEXT_RUN: &str = "2026-11-23T18:00:00Z";
const RUN_AFTER_NEXT: &str = "2026-11-24T18:00:00Z";
/// The Sunday 03:30 Shanghai drill before `now()`, and the next one.
const LAST_DRILL: &str = "2026-11-21T19:30:00Z";
const NEXT_DRILL: &str = "2026-11-28T19:30:00Z";

/// A policy created long ago, nothing running.
fn ctx() -> Context<'static> {
    Context {
        uid: UID,
        created: ts("2026-01-01T00:00:00Z"),
        generation: Some(4),
        backup_active: false,
        drill_active: false,
        timing: Timing::default(),
        ended: &[],
        refused: &[],
    }
}

fn created_at(at: Timestamp) -> Context<'static> {
    Context {
        created: at,
        ..ctx()
    }
}

fn record(id: &str, completed: Timestamp) -> BackupRecord {
    BackupRecord {
        id: id.into(),
        started_at: Time(completed - mins(20)),
        completed_at: Time(completed),
        bytes: 1 << 20,
        source_bytes: 4 << 20,
        duration_seconds: 1200,
        sha256: "ab".repeat(32),
    }
}

fn failure(at: Timestamp, attempts: i64) -> BackupFailure {
    BackupFailure {
        backup_id: "20261122-180000".into(),
        at: Time(at),
        category: "Upload".into(),
        message: "the off-site bucket refused the upload".into(),
        attempts,
    }
}

fn progress(updated: Timestamp) -> Progress {
    Progress {
        id: "20261122-180000".into(),
        started_at: Time(ts(LAST_RUN)),
        updated_at: Time(updated),
        bytes_done: 512,
        bytes_total: Some(2048),
        bytes_per_second: 64,
    }
}

/// The status of a policy whose last run, scheduled at `last_scheduled`, succeeded half an
/// hour later, and whose drill of `LAST_DRILL` was started.
fn backed_up(last_scheduled: &str) -> BackupPolicyStatus {
    let scheduled = ts(last_scheduled);
    BackupPolicyStatus {
        last_scheduled: Some(Time(scheduled)),
        last_backup: Some(record("20261122-180000", scheduled + mins(30))),
        last_drill_scheduled: Some(Time(ts(LAST_DRILL))),
        ..Default::default()
    }
}

/// [`backed_up`], before any drill was started.
fn backed_up_never_drilled(last_scheduled: &str) -> BackupPolicyStatus {
    BackupPolicyStatus {
        last_drill_scheduled: None,
        ..backed_up(last_scheduled)
    }
}

/// The status of a policy that last started the run of `last_scheduled`, no backup recorded.
fn scheduled(last_scheduled: &str) -> BackupPolicyStatus {
    BackupPolicyStatus {
        last_scheduled: Some(Time(ts(last_scheduled))),
        ..Default::default()
    }
}

fn condition<'a>(status: &'a BackupPolicyStatus, type_: &str) -> &'a Condition {
    status::find(&status.common.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"))
}

fn ready(decision: &Decision) -> &Condition {
    condition(&decision.status, status::READY)
}

fn backup_launches(decision: &Decision) -> Vec<Timestamp> {
    decision
        .launch
        .iter()
        .filter_map(|l| match l {
            Launch::Backup { scheduled } => Some(*scheduled),
            Launch::Drill { .. } => None,
        })
        .collect()
}

fn drill_launches(decision: &Decision) -> Vec<Timestamp> {
    decision
        .launch
        .iter()
        .filter_map(|l| match l {
            Launch::Drill { scheduled } => Some(*scheduled),
            Launch::Backup { .. } => None,
        })
        .collect()
}

fn event_reasons(decision: &Decision) -> Vec<&'static str> {
    decision.events.iter().map(|e| e.reason).collect()
}

fn next_run(decision: &Decision) -> Option<Timestamp> {
    decision.status.next_run.as_ref().map(|t| t.0)
}

// --- An invalid spec ---

#[test]
fn an_invalid_spec_stalls_and_starts_nothing() {
    let mut bad_zone = spec();
    bad_zone.time_zone = "Asia/Beijing".into();
    let mut bad_schedule = spec();
    bad_schedule.schedule = "@daily".into();
    let mut rpo_too_short = spec();
    rpo_too_short.rpo = "1h".into();
    let mut plain_http = spec();
    plain_http.destinations.offsite.endpoint = "http://s3.offsite.example.org".into();
    for (what, spec) in [
        ("time zone", bad_zone),
        ("schedule", bad_schedule),
        ("SEC-1 rpo shorter than the schedule's gap", rpo_too_short),
        ("SEC-2 plain http", plain_http),
    ] {
        let mut previous = scheduled(RUN_BEFORE_YESTERDAY);
        previous.next_run = Some(Time(ts(LAST_RUN)));
        let d = decide(&spec, Some(&previous), &ctx(), now());
        assert!(d.launch.is_empty(), "{what}: {:?}", d.launch);
        assert_eq!(d.status.next_run, None, "{what}");
        assert_eq!(d.wake, None, "{what}");
        assert!(!d.lost, "{what}");
        let stalled = condition(&d.status, status::STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            (status::TRUE, status::INVALID_SPEC),
            "{what}"
        );
        assert_eq!(ready(&d).status, status::FALSE, "{what}");
        assert_eq!(d.status.common.observed_generation, Some(4), "{what}");
        // The scheduling state is kept for when the spec is fixed.
        assert_eq!(
            d.status.last_scheduled,
            Some(Time(ts(RUN_BEFORE_YESTERDAY))),
            "{what}"
        );
    }
}

#[test]
fn an_invalid_spec_does_not_declare_a_stale_runner_lost() {
    let mut spec = spec();
    spec.rpo = "1h".into();
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - hours(1))),
        ..scheduled(LAST_RUN)
    };
    let d = decide(&spec, Some(&previous), &ctx(), now());
    assert!(!d.lost);
    assert_eq!(d.status.running, previous.running);
    assert!(d.events.is_empty(), "{:?}", d.events);
}

// --- The schedule (SEC-1: backups at regular intervals) ---

#[test]
fn a_new_policy_waits_for_the_first_scheduled_time_after_its_creation() {
    // Created after the last 02:00 in Shanghai: it does not run for a time before it existed.
    let ctx = created_at(ts("2026-11-23T03:00:00Z"));
    let d = decide(&spec(), None, &ctx, now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
    assert_eq!(d.status.last_scheduled, None);
    assert_eq!(d.status.missed_runs, None);
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::TRUE, SCHEDULED)
    );
    assert!(d.wake.is_some_and(|w| w <= ts(NEXT_RUN)), "{:?}", d.wake);
    assert!(d.wake.is_some_and(|w| w > now()), "{:?}", d.wake);
    assert_eq!(condition(&d.status, status::STALLED).status, status::FALSE);
    assert_eq!(
        condition(&d.status, status::RECONCILING).status,
        status::FALSE
    );
    assert_eq!(d.status.common.observed_generation, Some(4));
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn a_new_policy_runs_the_first_scheduled_time_after_its_creation_once_it_has_passed() {
    let ctx = created_at(ts("2026-11-22T12:00:00Z"));
    let d = decide(&spec(), None, &ctx, now());
    assert_eq!(backup_launches(&d), [ts(LAST_RUN)]);
    assert_eq!(d.status.last_scheduled, Some(Time(ts(LAST_RUN))));
    assert_eq!(d.status.missed_runs, None);
}

#[test]
fn a_scheduled_time_that_passed_starts_a_run_and_moves_next_run_on() {
    let d = decide(
        &spec(),
        Some(&backed_up(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        now(),
    );
    assert_eq!(
        d.launch,
        [Launch::Backup {
            scheduled: ts(LAST_RUN)
        }]
    );
    assert_eq!(d.status.last_scheduled, Some(Time(ts(LAST_RUN))));
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
    assert_eq!(d.status.missed_runs, None, "nothing was missed");
    assert!(!d.lost);
}

#[test]
fn a_run_started_is_not_started_again_by_the_next_decide() {
    let first = decide(
        &spec(),
        Some(&backed_up(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        now(),
    );
    let second = decide(&spec(), Some(&first.status), &ctx(), now() + secs(10));
    assert!(second.launch.is_empty(), "{:?}", second.launch);
    assert_eq!(next_run(&second), Some(ts(NEXT_RUN)));
}

#[test]
fn nothing_is_due_between_two_scheduled_times() {
    let d = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
    assert_eq!(d.wake, Some(ts(NEXT_RUN)));
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn runs_missed_during_downtime_are_counted_and_only_the_latest_is_started() {
    // The operator was down since the run of the 19th (UTC): the 20th and 21st were missed.
    let d = decide(
        &spec(),
        Some(&scheduled("2026-11-19T18:00:00Z")),
        &ctx(),
        now(),
    );
    assert_eq!(backup_launches(&d), [ts(LAST_RUN)]);
    assert_eq!(d.status.missed_runs, Some(2));
    assert_eq!(d.status.last_scheduled, Some(Time(ts(LAST_RUN))));
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
}

#[test]
fn missed_runs_add_up_over_downtimes() {
    let previous = BackupPolicyStatus {
        missed_runs: Some(5),
        ..scheduled("2026-11-19T18:00:00Z")
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert_eq!(d.status.missed_runs, Some(7));
}

#[test]
fn a_run_later_than_the_starting_deadline_is_skipped_with_a_warning() {
    let mut spec = spec();
    spec.starting_deadline_seconds = Some(3600);
    // 16h after the scheduled time, far past the hour allowed.
    let d = decide(&spec, Some(&backed_up(RUN_BEFORE_YESTERDAY)), &ctx(), now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.last_scheduled, Some(Time(ts(LAST_RUN))));
    assert_eq!(d.status.missed_runs, Some(1));
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
    let missed: Vec<_> = d.events.iter().filter(|e| e.reason == RUN_MISSED).collect();
    assert_eq!(missed.len(), 1, "{:?}", d.events);
    assert_eq!(missed[0].type_, EventType::Warning);
    assert_eq!(missed[0].action, "Schedule");
    assert!(missed[0].note.contains("3600s"), "{}", missed[0].note);
    assert!(
        missed[0].note.contains(&ts(LAST_RUN).to_string()),
        "{}",
        missed[0].note
    );
}

#[test]
fn a_skipped_run_counts_the_runs_missed_before_it() {
    let mut spec = spec();
    spec.starting_deadline_seconds = Some(3600);
    let d = decide(
        &spec,
        Some(&scheduled("2026-11-19T18:00:00Z")),
        &ctx(),
        now(),
    );
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    // The 20th and 21st, and the 22nd that is too late.
    assert_eq!(d.status.missed_runs, Some(3));
    assert_eq!(event_reasons(&d), [RUN_MISSED, RPO_BREACHED]);
}

#[test]
fn a_run_within_the_starting_deadline_starts() {
    let mut spec = spec();
    spec.starting_deadline_seconds = Some(3600);
    let d = decide(
        &spec,
        Some(&backed_up(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        ts(LAST_RUN) + mins(59),
    );
    assert_eq!(backup_launches(&d), [ts(LAST_RUN)]);
    assert!(!event_reasons(&d).contains(&RUN_MISSED));
}

#[test]
fn a_due_run_does_not_overlap_the_run_still_going() {
    let ctx = Context {
        backup_active: true,
        ..ctx()
    };
    let d = decide(&spec(), Some(&backed_up(RUN_BEFORE_YESTERDAY)), &ctx, now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    // It starts when the current run ends; until then nextRun shows the time that is due.
    assert_eq!(next_run(&d), Some(ts(LAST_RUN)));
    assert_eq!(
        d.status.last_scheduled,
        Some(Time(ts(RUN_BEFORE_YESTERDAY)))
    );
    assert_eq!(d.status.missed_runs, None);
}

#[test]
fn the_due_run_starts_once_the_run_going_ends() {
    let busy = Context {
        backup_active: true,
        ..ctx()
    };
    let waiting = decide(
        &spec(),
        Some(&backed_up(RUN_BEFORE_YESTERDAY)),
        &busy,
        now(),
    );
    let d = decide(&spec(), Some(&waiting.status), &ctx(), now() + mins(5));
    assert_eq!(backup_launches(&d), [ts(LAST_RUN)]);
}

#[test]
fn jitter_delays_the_start_by_a_stable_amount_below_the_maximum() {
    let mut spec = spec();
    spec.jitter_seconds = Some(3600);
    let scheduled = ts(LAST_RUN);
    let delay = schedule::jitter(UID, scheduled, secs(3600));
    assert!(delay > secs(1) && delay < secs(3600), "{delay:?}");
    let start = scheduled + delay;
    let previous = backed_up(RUN_BEFORE_YESTERDAY);

    let before = decide(&spec, Some(&previous), &ctx(), start - secs(1));
    assert!(before.launch.is_empty(), "{:?}", before.launch);
    assert_eq!(next_run(&before), Some(start));
    assert_eq!(before.wake, Some(start));
    assert_eq!(
        before.status.last_scheduled,
        Some(Time(ts(RUN_BEFORE_YESTERDAY)))
    );

    let at = decide(&spec, Some(&previous), &ctx(), start);
    assert_eq!(at.launch, [Launch::Backup { scheduled }]);
    assert_eq!(at.status.last_scheduled, Some(Time(scheduled)));
    assert_eq!(next_run(&at), Some(ts(NEXT_RUN)));
}

#[test]
fn zero_jitter_starts_at_the_scheduled_time() {
    let mut spec = spec();
    spec.jitter_seconds = Some(0);
    let d = decide(
        &spec,
        Some(&backed_up(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        ts(LAST_RUN),
    );
    assert_eq!(backup_launches(&d), [ts(LAST_RUN)]);
}

#[test]
fn a_run_delayed_by_its_own_jitter_is_not_missed_for_the_starting_deadline() {
    let mut spec = spec();
    spec.jitter_seconds = Some(3600);
    spec.starting_deadline_seconds = Some(300);
    let scheduled = ts(LAST_RUN);
    let delay = schedule::jitter(UID, scheduled, secs(3600));
    assert!(
        delay > secs(300),
        "the test needs a delay past the deadline: {delay:?}"
    );
    let previous = backed_up(RUN_BEFORE_YESTERDAY);

    let before = decide(&spec, Some(&previous), &ctx(), scheduled + secs(1));
    assert_eq!(next_run(&before), Some(scheduled + delay));

    let d = decide(&spec, Some(&previous), &ctx(), scheduled + delay);
    assert!(!event_reasons(&d).contains(&RUN_MISSED), "{:?}", d.events);
    assert_eq!(backup_launches(&d), [scheduled]);
}

#[test]
fn sec_1_a_schedule_that_never_comes_is_refused() {
    // 30 February never comes; 29 February not within the RPO either.
    for never in ["0 0 29 2 *", "0 0 30 2 *"] {
        let mut spec = spec();
        spec.schedule = never.into();
        let d = decide(&spec, Some(&backed_up(LAST_RUN)), &ctx(), now());
        assert!(d.launch.is_empty(), "{never}: {:?}", d.launch);
        assert_eq!(
            condition(&d.status, status::STALLED).status,
            status::TRUE,
            "{never}: {:#?}",
            d.status
        );
    }
}

#[test]
fn a_suspended_policy_starts_nothing_and_says_so() {
    let mut spec = spec();
    spec.suspend = true;
    let mut previous = backed_up(LAST_RUN);
    previous.last_scheduled = Some(Time(ts(RUN_BEFORE_YESTERDAY)));
    previous.next_run = Some(Time(ts(LAST_RUN)));
    previous.next_drill = Some(Time(ts(LAST_DRILL)));
    let d = decide(&spec, Some(&previous), &ctx(), now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.next_run, None);
    assert_eq!(d.status.next_drill, None);
    assert_eq!(
        d.status.last_scheduled,
        Some(Time(ts(RUN_BEFORE_YESTERDAY)))
    );
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::TRUE, SUSPENDED)
    );
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn sec_1_suspending_a_policy_does_not_hide_an_rpo_breach() {
    let mut spec = spec();
    spec.suspend = true;
    let d = decide(&spec, Some(&backed_up(RUN_BEFORE_YESTERDAY)), &ctx(), now());
    assert!(d.launch.is_empty());
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::FALSE, RPO_BREACHED)
    );
    assert!(ready.message.contains("suspended"), "{}", ready.message);
}

// --- Runners that stop reporting ---

#[test]
fn a_run_reporting_progress_counts_as_active_until_its_report_goes_stale() {
    // A runner this operator did not start (e.g. before a restart) is still reporting.
    let updated = now() - secs(30);
    let previous = BackupPolicyStatus {
        running: Some(progress(updated)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert!(!d.lost);
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.running, previous.running);
    assert_eq!(d.wake, Some(updated + Timing::default().lost_after));
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn a_run_reporting_progress_is_not_overlapped_by_a_due_run() {
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - secs(30))),
        ..backed_up(RUN_BEFORE_YESTERDAY)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert!(!d.lost);
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(next_run(&d), Some(ts(LAST_RUN)));
}

#[test]
fn a_run_reporting_progress_is_checked_again_when_its_report_would_go_stale_even_with_a_run_due() {
    let updated = now() - secs(30);
    let previous = BackupPolicyStatus {
        running: Some(progress(updated)),
        ..backed_up(RUN_BEFORE_YESTERDAY)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert_eq!(d.wake, Some(updated + Timing::default().lost_after));
}

#[test]
fn a_run_whose_report_went_stale_is_lost_and_recorded_as_a_failure() {
    let updated = now() - mins(5);
    let previous = BackupPolicyStatus {
        running: Some(progress(updated)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert!(d.lost);
    assert_eq!(d.status.running, None);
    let failure = d.status.last_failure.as_ref().unwrap();
    assert_eq!(failure.category, RUNNER_LOST);
    assert_eq!(failure.backup_id, "20261122-180000");
    assert_eq!(failure.at, Time(now()));
    assert_eq!(failure.attempts, 1);
    assert!(
        failure.message.contains("512 of 2048 bytes"),
        "{}",
        failure.message
    );
    let lost: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.reason == RUNNER_LOST)
        .collect();
    assert_eq!(lost.len(), 1, "{:?}", d.events);
    assert_eq!(lost[0].type_, EventType::Warning);
    assert_eq!(lost[0].action, "Backup");
    assert_eq!(lost[0].note, failure.message);
    // Retried after the first backoff, not at once.
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.wake, Some(now() + Timing::default().retry_base));
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::FALSE, BACKUP_FAILED)
    );
}

#[test]
fn a_lost_runner_counts_one_more_attempt_than_the_failure_before() {
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - mins(5))),
        last_failure: Some(failure(now() - mins(30), 2)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert!(d.lost);
    let failure = d.status.last_failure.as_ref().unwrap();
    assert_eq!(failure.attempts, 3);
    assert_eq!(failure.category, RUNNER_LOST);
}

#[test]
fn a_report_exactly_lost_after_old_is_stale() {
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - Timing::default().lost_after)),
        ..backed_up(LAST_RUN)
    };
    assert!(decide(&spec(), Some(&previous), &ctx(), now()).lost);
}

#[test]
fn a_runner_this_operator_sees_running_is_never_lost() {
    let ctx = Context {
        backup_active: true,
        ..ctx()
    };
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - hours(2))),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(!d.lost);
    assert_eq!(d.status.running, previous.running);
    assert!(!event_reasons(&d).contains(&RUNNER_LOST));
}

#[test]
fn a_stale_runner_is_lost_even_while_suspended() {
    let mut spec = spec();
    spec.suspend = true;
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - mins(5))),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec, Some(&previous), &ctx(), now());
    assert!(d.lost);
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(ready(&d).reason, SUSPENDED);
}

// --- Retries of a failed run ---

/// A policy whose run of `LAST_RUN` failed at `at` after `attempts` attempts, at `now`.
fn after_failure(at: Timestamp, attempts: i64, now: Timestamp) -> Decision {
    let previous = BackupPolicyStatus {
        last_failure: Some(failure(at, attempts)),
        ..backed_up(LAST_RUN)
    };
    decide(&spec(), Some(&previous), &ctx(), now)
}

#[test]
fn a_failed_run_is_retried_after_a_backoff_that_doubles_per_attempt() {
    // retry_base 60s: 60s, 120s, 240s, 480s, ...
    for (attempts, delay) in [
        (1, secs(60)),
        (2, secs(120)),
        (3, secs(240)),
        (5, secs(960)),
    ] {
        let at = now() - hours(1);
        let before = after_failure(at, attempts, at + delay - secs(1));
        assert!(before.launch.is_empty(), "{attempts}: {:?}", before.launch);
        assert_eq!(before.wake, Some(at + delay), "{attempts}");

        let due = after_failure(at, attempts, at + delay);
        assert_eq!(
            due.launch,
            [Launch::Backup {
                scheduled: ts(LAST_RUN)
            }],
            "{attempts}: the retry is of the failed scheduled run"
        );
        assert_eq!(
            due.status.last_scheduled,
            Some(Time(ts(LAST_RUN))),
            "{attempts}"
        );
    }
}

#[test]
fn the_backoff_between_retries_is_capped_at_retry_max() {
    let retry_max = Timing::default().retry_max;
    for attempts in [6, 10, 21, 64, 1000, i64::MAX] {
        let at = now() - hours(1);
        let before = after_failure(at, attempts, at + retry_max - secs(1));
        assert!(before.launch.is_empty(), "{attempts}: {:?}", before.launch);
        assert_eq!(before.wake, Some(at + retry_max), "{attempts}");
        let due = after_failure(at, attempts, at + retry_max);
        assert_eq!(backup_launches(&due), [ts(LAST_RUN)], "{attempts}");
    }
}

#[test]
fn a_failure_without_a_counted_attempt_is_retried_after_the_base_delay() {
    let at = now() - hours(1);
    let d = after_failure(at, 0, at + secs(30));
    assert_eq!(d.wake, Some(at + secs(60)));
}

#[test]
fn the_backoff_follows_the_timing_given() {
    let ctx = Context {
        timing: Timing {
            lost_after: secs(5),
            retry_base: secs(2),
            retry_max: secs(10),
        },
        ..ctx()
    };
    let at = now() - hours(1);
    let previous = BackupPolicyStatus {
        last_failure: Some(failure(at, 3)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx, at + secs(7));
    assert_eq!(d.wake, Some(at + secs(8)));
    let previous = BackupPolicyStatus {
        last_failure: Some(failure(at, 9)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx, at + secs(9));
    assert_eq!(d.wake, Some(at + secs(10)));
}

#[test]
fn a_retry_that_would_land_after_the_next_scheduled_run_is_left_to_that_run() {
    // Failed at 17:40 UTC after 6 attempts: the retry would be at 18:10, after the 18:00 run.
    let at = ts("2026-11-23T17:40:00Z");
    let d = after_failure(at, 6, ts("2026-11-23T17:45:00Z"));
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.wake, Some(ts(NEXT_RUN)));
    assert_eq!(next_run(&d), Some(ts(NEXT_RUN)));
}

#[test]
fn the_next_scheduled_run_supersedes_a_pending_retry() {
    let at = ts("2026-11-23T17:40:00Z");
    let d = after_failure(at, 6, ts(NEXT_RUN));
    assert_eq!(
        d.launch,
        [Launch::Backup {
            scheduled: ts(NEXT_RUN)
        }]
    );
    assert_eq!(next_run(&d), Some(ts(RUN_AFTER_NEXT)));
}

#[test]
fn no_retry_starts_while_a_run_is_going() {
    let ctx = Context {
        backup_active: true,
        ..ctx()
    };
    let previous = BackupPolicyStatus {
        last_failure: Some(failure(now() - hours(1), 1)),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
}

#[test]
fn a_failure_within_the_rpo_makes_the_policy_not_ready() {
    let d = after_failure(now() - mins(10), 2, now());
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::FALSE, BACKUP_FAILED)
    );
    assert!(
        ready.message.contains("20261122-180000"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("2 attempt(s)"), "{}", ready.message);
    assert!(ready.message.contains("Upload"), "{}", ready.message);
    assert!(!event_reasons(&d).contains(&RPO_BREACHED));
}

// --- The RPO (SEC-1) ---

#[test]
fn a_backup_within_the_rpo_makes_the_policy_ready() {
    let d = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::TRUE, BACKED_UP)
    );
    assert!(
        ready.message.contains("20261122-180000"),
        "{}",
        ready.message
    );
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn sec_1_the_policy_is_checked_again_when_the_newest_backup_gets_older_than_the_rpo() {
    // A backup at 10:00 UTC yesterday is 26h old at 12:00 today, before the 18:00 run.
    let completed = ts("2026-11-22T10:00:00Z");
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-100000", completed)),
        ..scheduled(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert_eq!(d.wake, Some(completed + hours(26)));
    assert_eq!(ready(&d).reason, BACKED_UP);
}

#[test]
fn sec_1_a_backup_exactly_as_old_as_the_rpo_is_within_it() {
    let completed = now() - hours(26);
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-080000", completed)),
        ..scheduled(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert_eq!(ready(&d).reason, BACKED_UP);
}

#[test]
fn sec_1_a_newest_backup_older_than_the_rpo_breaches_it() {
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-060000", ts("2026-11-22T06:00:00Z"))),
        ..scheduled(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::FALSE, RPO_BREACHED)
    );
    assert!(ready.message.contains("SEC-1"), "{}", ready.message);
    assert!(
        ready.message.contains("20261122-060000"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("1d 4h"), "{}", ready.message);
    assert!(ready.message.contains("26h"), "{}", ready.message);
    let breached: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.reason == RPO_BREACHED)
        .collect();
    assert_eq!(breached.len(), 1, "{:?}", d.events);
    assert_eq!(breached[0].type_, EventType::Warning);
    assert_eq!(breached[0].action, "Check");
    assert_eq!(breached[0].note, ready.message);
    // Nothing changes on its own until the next run.
    assert_eq!(d.wake, Some(ts(NEXT_RUN)));
}

#[test]
fn sec_1_an_rpo_breach_is_announced_once() {
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-060000", ts("2026-11-22T06:00:00Z"))),
        ..scheduled(LAST_RUN)
    };
    let first = decide(&spec(), Some(&previous), &ctx(), now());
    assert_eq!(event_reasons(&first), [RPO_BREACHED]);
    let second = decide(&spec(), Some(&first.status), &ctx(), now() + mins(5));
    assert_eq!(ready(&second).reason, RPO_BREACHED);
    assert!(second.events.is_empty(), "{:?}", second.events);
}

#[test]
fn sec_1_an_rpo_breach_is_announced_when_a_ready_policy_falls_behind() {
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-060000", ts("2026-11-22T06:00:00Z"))),
        ..scheduled(LAST_RUN)
    };
    // Ready at 07:00, within the RPO; at 10:00 the backup is 28h old.
    let earlier = decide(&spec(), Some(&previous), &ctx(), ts("2026-11-23T07:00:00Z"));
    assert_eq!(ready(&earlier).reason, BACKED_UP);
    let d = decide(&spec(), Some(&earlier.status), &ctx(), now());
    assert_eq!(event_reasons(&d), [RPO_BREACHED]);
}

#[test]
fn sec_1_a_policy_that_never_backed_up_breaches_the_rpo_from_its_creation() {
    let ctx = created_at(ts("2026-11-20T00:00:00Z"));
    let previous = scheduled(LAST_RUN);
    let d = decide(&spec(), Some(&previous), &ctx, now());
    let ready = ready(&d);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        (status::FALSE, RPO_BREACHED)
    );
    assert!(ready.message.contains("SEC-1"), "{}", ready.message);
    assert!(
        ready.message.contains("no backup has completed"),
        "{}",
        ready.message
    );
    assert_eq!(event_reasons(&d), [RPO_BREACHED]);
}

#[test]
fn sec_1_a_new_policy_is_checked_again_when_its_rpo_would_pass_without_a_backup() {
    // Created at 12:00 UTC, its first run starts at 18:00; should it not complete, the RPO
    // passes at 14:00 tomorrow, before the next run (18:00 tomorrow).
    let created = ts("2026-11-23T12:00:00Z");
    let d = decide(&spec(), None, &created_at(created), ts(NEXT_RUN));
    assert_eq!(backup_launches(&d), [ts(NEXT_RUN)]);
    assert_eq!(next_run(&d), Some(ts(RUN_AFTER_NEXT)));
    assert_eq!(d.wake, Some(created + hours(26)));
}

#[test]
fn sec_1_an_rpo_breach_names_the_last_failure() {
    let previous = BackupPolicyStatus {
        last_backup: Some(record("20261122-060000", ts("2026-11-22T06:00:00Z"))),
        last_failure: Some(failure(now() - mins(10), 4)),
        ..scheduled(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    let ready = ready(&d);
    assert_eq!(ready.reason, RPO_BREACHED);
    assert!(
        ready.message.contains("the last run failed (Upload:"),
        "{}",
        ready.message
    );
}

// --- Restore drills (SEC-1: verified restores) ---

#[test]
fn no_drill_runs_before_there_is_a_backup_to_restore() {
    let d = decide(
        &spec(),
        Some(&scheduled(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        now(),
    );
    assert!(drill_launches(&d).is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.next_drill, None);
    assert_eq!(d.status.last_drill_scheduled, None);
}

#[test]
fn a_drill_whose_time_passed_restores_the_newest_backup() {
    let d = decide(
        &spec(),
        Some(&backed_up_never_drilled(LAST_RUN)),
        &ctx(),
        now(),
    );
    assert_eq!(
        d.launch,
        [Launch::Drill {
            scheduled: ts(LAST_DRILL)
        }]
    );
    assert_eq!(d.status.last_drill_scheduled, Some(Time(ts(LAST_DRILL))));
    assert_eq!(d.status.next_drill, Some(Time(ts(NEXT_DRILL))));
}

#[test]
fn a_drill_and_a_backup_both_due_are_both_started() {
    let d = decide(
        &spec(),
        Some(&backed_up_never_drilled(RUN_BEFORE_YESTERDAY)),
        &ctx(),
        now(),
    );
    assert_eq!(
        d.launch,
        [
            Launch::Backup {
                scheduled: ts(LAST_RUN)
            },
            Launch::Drill {
                scheduled: ts(LAST_DRILL)
            },
        ]
    );
}

#[test]
fn a_drill_does_not_overlap_the_drill_still_going() {
    let ctx = Context {
        drill_active: true,
        ..ctx()
    };
    let d = decide(
        &spec(),
        Some(&backed_up_never_drilled(LAST_RUN)),
        &ctx,
        now(),
    );
    assert!(drill_launches(&d).is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.last_drill_scheduled, None);
    assert_eq!(d.status.next_drill, Some(Time(ts(LAST_DRILL))));
}

#[test]
fn a_drill_done_waits_for_the_next_drill_time() {
    let previous = BackupPolicyStatus {
        last_drill_scheduled: Some(Time(ts(LAST_DRILL))),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.next_drill, Some(Time(ts(NEXT_DRILL))));
    assert!(d.wake.is_some_and(|w| w <= ts(NEXT_DRILL)), "{:?}", d.wake);
}

#[test]
fn the_next_drill_is_a_time_to_wake_up_for() {
    // Saturday 19:00 UTC, after the run of 18:00: the drill at 19:30 comes before the next
    // run (tomorrow 18:00) and the RPO (tomorrow 20:30).
    let previous = backed_up("2026-11-28T18:00:00Z");
    let d = decide(&spec(), Some(&previous), &ctx(), ts("2026-11-28T19:00:00Z"));
    assert_eq!(d.wake, Some(ts(NEXT_DRILL)));
}

#[test]
fn a_policy_without_verification_has_no_drills_and_no_restore_condition() {
    let mut spec = spec();
    spec.verification = None;
    let d = decide(&spec, Some(&backed_up(LAST_RUN)), &ctx(), now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.status.next_drill, None);
    assert!(status::find(&d.status.common.conditions, RESTORE_VERIFIED).is_none());
}

#[test]
fn restore_verified_says_no_drill_has_run_yet() {
    let d = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    let verified = condition(&d.status, RESTORE_VERIFIED);
    assert_eq!(
        (verified.status.as_str(), verified.reason.as_str()),
        (status::FALSE, NO_DRILL_YET)
    );
    assert_eq!(verified.observed_generation, Some(4));
}

#[test]
fn restore_verified_names_the_backup_a_drill_restored() {
    let previous = BackupPolicyStatus {
        last_verified_restore: Some(RestoreRecord {
            backup_id: "20261122-180000".into(),
            at: Time(ts("2026-11-22T19:45:00Z")),
            checked: "3 sources, 1204 rows".into(),
        }),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    let verified = condition(&d.status, RESTORE_VERIFIED);
    assert_eq!(
        (verified.status.as_str(), verified.reason.as_str()),
        (status::TRUE, DRILL_SUCCEEDED)
    );
    assert!(
        verified.message.contains("20261122-180000"),
        "{}",
        verified.message
    );
    assert!(
        verified.message.contains("3 sources, 1204 rows"),
        "{}",
        verified.message
    );
}

#[test]
fn restore_verified_reports_a_failed_drill() {
    let previous = BackupPolicyStatus {
        last_failed_drill: Some(BackupFailure {
            category: "Checksum".into(),
            message: "residents.parquet does not match its sha256".into(),
            ..failure(ts("2026-11-22T19:45:00Z"), 1)
        }),
        last_verified_restore: Some(RestoreRecord {
            backup_id: "20261115-180000".into(),
            at: Time(ts("2026-11-15T19:45:00Z")),
            checked: "3 sources".into(),
        }),
        ..backed_up(LAST_RUN)
    };
    let d = decide(&spec(), Some(&previous), &ctx(), now());
    let verified = condition(&d.status, RESTORE_VERIFIED);
    assert_eq!(
        (verified.status.as_str(), verified.reason.as_str()),
        (status::FALSE, DRILL_FAILED)
    );
    assert_eq!(
        verified.message,
        "Checksum: residents.parquet does not match its sha256"
    );
}

// --- Conditions over time ---

#[test]
fn ready_keeps_its_transition_time_while_its_status_does_not_change() {
    let first = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    assert_eq!(ready(&first).last_transition_time, Time(now()));
    let later = now() + hours(1);
    let second = decide(&spec(), Some(&first.status), &ctx(), later);
    assert_eq!(ready(&second).status, status::TRUE);
    assert_eq!(ready(&second).last_transition_time, Time(now()));
    assert_eq!(
        condition(&second.status, RESTORE_VERIFIED).last_transition_time,
        Time(now())
    );
}

#[test]
fn ready_takes_a_new_transition_time_when_its_status_changes() {
    let first = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    let mut failed = first.status.clone();
    let at = now() + hours(1);
    failed.last_failure = Some(failure(at, 1));
    let second = decide(&spec(), Some(&failed), &ctx(), at);
    assert_eq!(ready(&second).reason, BACKUP_FAILED);
    assert_eq!(ready(&second).last_transition_time, Time(at));
}

#[test]
fn deciding_twice_at_the_same_moment_gives_the_same_status() {
    let first = decide(&spec(), Some(&backed_up(LAST_RUN)), &ctx(), now());
    let second = decide(&spec(), Some(&first.status), &ctx(), now());
    assert_eq!(second.status, first.status);
    assert!(second.launch.is_empty(), "{:?}", second.launch);
}

fn ended(drill: bool, created: Timestamp, reason: &str) -> Ended {
    Ended {
        drill,
        name: "nightly-r202611221800-0".into(),
        created,
        reason: reason.into(),
        message: "Job was active longer than specified deadline".into(),
    }
}

#[test]
fn a_runner_job_that_failed_without_a_report_is_recorded_and_retried_after_the_backoff() {
    // SEC-1: a Job whose pod never ran cannot report; the operator records it for the runner.
    // The retry of the run after the last one's backup, started ten minutes ago.
    let previous = backed_up(LAST_RUN);
    let ended = [ended(false, now() - mins(10), "DeadlineExceeded")];
    let ctx = Context {
        ended: &ended,
        ..ctx()
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(d.lost, "the runner's fields must be written");
    let failure = d.status.last_failure.as_ref().unwrap();
    assert_eq!(failure.category, "DeadlineExceeded");
    assert_eq!(failure.backup_id, "nightly-r202611221800-0");
    assert_eq!(failure.attempts, 1);
    assert!(failure.message.contains("longer than specified deadline"));
    assert_eq!(event_reasons(&d), vec![RUNNER_FAILED]);
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    assert_eq!(d.wake, Some(now() + Timing::default().retry_base));
    assert_eq!(ready(&d).reason, BACKUP_FAILED);
    // The next decide, once the backoff passed, retries the same scheduled time.
    let later = now() + Timing::default().retry_base;
    let again = decide(&spec(), Some(&d.status), &ctx, later);
    assert!(!again.lost, "recorded once");
    assert_eq!(backup_launches(&again), vec![ts(LAST_RUN)]);
}

#[test]
fn a_failed_job_whose_runner_reported_its_failure_is_not_recorded_again() {
    let previous = BackupPolicyStatus {
        last_failure: Some(failure(ts(LAST_RUN) + mins(3), 1)),
        ..scheduled(LAST_RUN)
    };
    let ended = [ended(false, ts(LAST_RUN), "PodFailurePolicy")];
    let ctx = Context {
        ended: &ended,
        ..ctx()
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(!d.lost);
    assert_eq!(d.status.last_failure, previous.last_failure);
    assert!(!event_reasons(&d).contains(&RUNNER_FAILED));
}

#[test]
fn a_killed_runner_job_clears_its_progress_and_counts_one_more_attempt() {
    // OOMKilled mid-run: the progress report stays behind, the Job failed.
    let previous = BackupPolicyStatus {
        running: Some(progress(now() - secs(10))),
        last_failure: Some(failure(ts(LAST_RUN) - hours(1), 2)),
        ..scheduled(LAST_RUN)
    };
    let ended = [ended(false, ts(LAST_RUN), "PodFailurePolicy")];
    let ctx = Context {
        ended: &ended,
        ..ctx()
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(d.lost);
    assert_eq!(d.status.running, None);
    assert_eq!(d.status.last_failure.as_ref().unwrap().attempts, 3);
    assert!(!event_reasons(&d).contains(&RUNNER_LOST));
}

#[test]
fn a_drill_job_that_never_started_is_a_failed_drill() {
    let previous = backed_up(LAST_RUN);
    let ended = [ended(true, ts(LAST_DRILL), RUNNER_NOT_STARTED)];
    let ctx = Context {
        ended: &ended,
        ..ctx()
    };
    let d = decide(&spec(), Some(&previous), &ctx, now());
    assert!(d.lost);
    assert_eq!(d.status.last_failure, None);
    let failed = d.status.last_failed_drill.as_ref().unwrap();
    assert_eq!(failed.category, RUNNER_NOT_STARTED);
    assert_eq!(condition(&d.status, RESTORE_VERIFIED).reason, DRILL_FAILED);
}

#[test]
fn what_the_runner_refuses_stalls_the_policy_and_starts_nothing() {
    // SEC-1: a Job runner cannot read a path source; the policy says so instead of failing runs.
    let refused = [crate::rules::Problem::rule(
        "SEC-1",
        "spec.sources[1].auditLog",
        "the operator runs backups as Jobs",
    )];
    let ctx = Context {
        refused: &refused,
        ..ctx()
    };
    let d = decide(&spec(), Some(&scheduled(RUN_BEFORE_YESTERDAY)), &ctx, now());
    assert!(d.launch.is_empty(), "{:?}", d.launch);
    let stalled = condition(&d.status, status::STALLED);
    assert_eq!(stalled.status, status::TRUE);
    assert!(
        stalled.message.contains("spec.sources[1].auditLog"),
        "{}",
        stalled.message
    );
}
