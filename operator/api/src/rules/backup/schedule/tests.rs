//! SEC-1: backups run at regular intervals, and a gap longer than the RPO is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use super::*;
use crate::rules::backup::parse_schedule;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(expression: &str) -> Cron {
    parse_schedule(expression).unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

/// 02:00 every day in Shanghai (UTC+8, no DST) is 18:00 UTC the day before.
fn nightly_in_shanghai(last: Option<&str>, deadline: Option<SignedDuration>, now: &str) -> Next {
    next(
        &cron("0 2 * * *"),
        &tz("Asia/Shanghai"),
        last.map(ts),
        ts("2026-03-02T08:00:00Z"),
        deadline,
        ts(now),
    )
}

#[test]
fn a_new_policy_does_not_run_for_times_before_its_creation_sec_1() {
    // Created at 16:00 Shanghai; 02:00 that morning is already past and is not a missed run.
    assert_eq!(
        nightly_in_shanghai(None, None, "2026-03-02T08:01:00Z"),
        Next::Wait {
            next: ts("2026-03-02T18:00:00Z")
        }
    );
}

#[test]
fn a_new_policy_runs_at_its_first_time_after_creation_sec_1() {
    assert_eq!(
        nightly_in_shanghai(None, None, "2026-03-02T18:00:30Z"),
        Next::Run {
            scheduled: ts("2026-03-02T18:00:00Z"),
            missed: 0
        }
    );
}

#[test]
fn a_run_is_due_at_exactly_its_scheduled_time() {
    assert_eq!(
        nightly_in_shanghai(None, Some(SignedDuration::ZERO), "2026-03-02T18:00:00Z"),
        Next::Run {
            scheduled: ts("2026-03-02T18:00:00Z"),
            missed: 0
        }
    );
}

#[test]
fn after_a_run_the_policy_waits_for_the_next_time() {
    assert_eq!(
        nightly_in_shanghai(Some("2026-03-02T18:00:00Z"), None, "2026-03-03T10:00:00Z"),
        Next::Wait {
            next: ts("2026-03-03T18:00:00Z")
        }
    );
}

#[test]
fn after_downtime_only_the_latest_time_runs_and_earlier_ones_are_missed_sec_1() {
    // Last run 2 March 02:00 Shanghai; the operator was down until 6 March 03:00. The runs of
    // 3, 4 and 5 March are missed; the one of 6 March starts.
    assert_eq!(
        nightly_in_shanghai(Some("2026-03-01T18:00:00Z"), None, "2026-03-05T19:00:00Z"),
        Next::Run {
            scheduled: ts("2026-03-05T18:00:00Z"),
            missed: 3
        }
    );
}

#[test]
fn a_run_within_the_starting_deadline_still_starts() {
    for now in ["2026-03-05T19:00:00Z", "2026-03-05T20:00:00Z"] {
        assert_eq!(
            nightly_in_shanghai(Some("2026-03-04T18:00:00Z"), Some(hours(2)), now),
            Next::Run {
                scheduled: ts("2026-03-05T18:00:00Z"),
                missed: 0
            },
            "{now}"
        );
    }
}

#[test]
fn a_run_past_the_starting_deadline_is_skipped_and_counted_as_missed() {
    assert_eq!(
        nightly_in_shanghai(
            Some("2026-03-01T18:00:00Z"),
            Some(hours(2)),
            "2026-03-05T20:00:01Z"
        ),
        Next::Skip {
            scheduled: ts("2026-03-05T18:00:00Z"),
            missed: 4,
            next: ts("2026-03-06T18:00:00Z")
        }
    );
}

#[test]
fn a_skipped_time_recorded_as_last_scheduled_is_not_started_again() {
    assert_eq!(
        nightly_in_shanghai(
            Some("2026-03-05T18:00:00Z"),
            Some(hours(2)),
            "2026-03-05T20:00:02Z"
        ),
        Next::Wait {
            next: ts("2026-03-06T18:00:00Z")
        }
    );
}

#[test]
fn a_clock_stepped_back_does_not_repeat_the_last_run() {
    // The last run was scheduled at 18:00, but the clock now reads 17:00 the same day.
    assert_eq!(
        nightly_in_shanghai(Some("2026-03-05T18:00:00Z"), None, "2026-03-05T17:00:00Z"),
        Next::Wait {
            next: ts("2026-03-06T18:00:00Z")
        }
    );
}

#[test]
fn missed_runs_are_counted_up_to_the_cap_after_a_long_downtime() {
    let now = ts("2026-03-02T08:00:30Z");
    let result = next(
        &cron("* * * * *"),
        &TimeZone::UTC,
        Some(ts("2025-03-02T08:00:00Z")),
        ts("2025-01-01T00:00:00Z"),
        None,
        now,
    );
    assert_eq!(
        result,
        Next::Run {
            scheduled: ts("2026-03-02T08:00:00Z"),
            missed: MISSED_COUNT_CAP
        }
    );
}

#[test]
fn a_daily_run_in_the_spring_forward_gap_runs_once_when_the_clock_resumes() {
    // Berlin skips 02:00-03:00 CET on 29 March 2026; 02:30 does not exist that night, so the
    // run happens at 03:00 CEST (01:00 UTC), and the next one at 02:30 CEST again.
    let berlin = tz("Europe/Berlin");
    let schedule = cron("30 2 * * *");
    let created = ts("2026-03-01T00:00:00Z");
    let last = Some(ts("2026-03-28T01:30:00Z"));
    let at = |now: &str, last| next(&schedule, &berlin, last, created, None, ts(now));
    assert_eq!(
        at("2026-03-29T00:45:00Z", last),
        Next::Wait {
            next: ts("2026-03-29T01:00:00Z")
        }
    );
    assert_eq!(
        at("2026-03-29T01:00:10Z", last),
        Next::Run {
            scheduled: ts("2026-03-29T01:00:00Z"),
            missed: 0
        }
    );
    assert_eq!(
        at("2026-03-29T01:00:20Z", Some(ts("2026-03-29T01:00:00Z"))),
        Next::Wait {
            next: ts("2026-03-30T00:30:00Z")
        }
    );
}

#[test]
fn an_hourly_schedule_counts_real_hours_across_spring_forward() {
    // From 00:00 CET to 05:00 CEST on 29 March 2026 only four real hours pass: 01:00 CET,
    // 03:00, 04:00 and 05:00 CEST. The last runs; three are missed.
    assert_eq!(
        next(
            &cron("0 * * * *"),
            &tz("Europe/Berlin"),
            Some(ts("2026-03-28T23:00:00Z")),
            ts("2026-03-01T00:00:00Z"),
            None,
            ts("2026-03-29T03:00:05Z"),
        ),
        Next::Run {
            scheduled: ts("2026-03-29T03:00:00Z"),
            missed: 3
        }
    );
}

#[test]
fn a_daily_run_in_the_fall_back_hour_runs_once() {
    // On 25 October 2026 Berlin repeats 02:00-03:00; 02:30 happens at 00:30 and 01:30 UTC.
    let berlin = tz("Europe/Berlin");
    let schedule = cron("30 2 * * *");
    let created = ts("2026-10-01T00:00:00Z");
    let first = next(
        &schedule,
        &berlin,
        Some(ts("2026-10-24T00:30:00Z")),
        created,
        None,
        ts("2026-10-25T00:30:05Z"),
    );
    assert_eq!(
        first,
        Next::Run {
            scheduled: ts("2026-10-25T00:30:00Z"),
            missed: 0
        }
    );
    let Next::Run { scheduled, .. } = first else {
        unreachable!()
    };
    assert_eq!(
        next(
            &schedule,
            &berlin,
            Some(scheduled),
            created,
            None,
            ts("2026-10-25T01:45:00Z")
        ),
        Next::Wait {
            next: ts("2026-10-26T01:30:00Z")
        }
    );
}

#[test]
fn a_schedule_that_never_matches_never_runs() {
    assert_eq!(
        next(
            &cron("0 0 30 2 *"),
            &TimeZone::UTC,
            None,
            ts("2026-03-01T00:00:00Z"),
            None,
            ts("2026-03-02T00:00:00Z"),
        ),
        Next::Never
    );
}

#[test]
fn jitter_is_the_same_for_the_same_run_across_restarts() {
    let at = ts("2026-03-02T18:00:00Z");
    let a = jitter("3f1c-policy", at, SignedDuration::from_secs(3600));
    let b = jitter("3f1c-policy", at, SignedDuration::from_secs(3600));
    assert_eq!(a, b);
}

#[test]
fn jitter_is_pinned_so_an_operator_upgrade_keeps_delays() {
    // A changed value here moves every policy's delay: only change it on purpose.
    assert_eq!(
        jitter(
            "3f1c-policy",
            ts("2026-03-02T18:00:00Z"),
            SignedDuration::from_secs(3600)
        ),
        SignedDuration::from_nanos_i128(PINNED_JITTER_NANOS)
    );
}

/// 12m 19.944435080s.
const PINNED_JITTER_NANOS: i128 = 739_944_435_080;

#[test]
fn jitter_stays_below_its_maximum() {
    let max = SignedDuration::from_secs(90);
    for i in 0..500 {
        let at = ts("2026-03-02T18:00:00Z") + SignedDuration::from_mins(i);
        let d = jitter(&format!("policy-{i}"), at, max);
        assert!(d >= SignedDuration::ZERO && d < max, "{i}: {d:?}");
    }
}

#[test]
fn jitter_spreads_policies_sharing_a_schedule() {
    let at = ts("2026-03-02T18:00:00Z");
    let max = SignedDuration::from_secs(3600);
    let delays: BTreeSet<_> = (0..100)
        .map(|i| jitter(&format!("policy-{i}"), at, max))
        .collect();
    assert!(delays.len() > 95, "{} distinct delays", delays.len());
    let mean = delays.iter().map(|d| d.as_secs()).sum::<i64>() / delays.len() as i64;
    assert!((1200..2400).contains(&mean), "mean {mean}s");
}

#[test]
fn jitter_changes_from_one_run_to_the_next() {
    let max = SignedDuration::from_secs(3600);
    let a = jitter("p", ts("2026-03-02T18:00:00Z"), max);
    let b = jitter("p", ts("2026-03-03T18:00:00Z"), max);
    assert_ne!(a, b);
}

#[test]
fn jitter_is_zero_without_a_maximum() {
    let at = ts("2026-03-02T18:00:00Z");
    assert_eq!(jitter("p", at, SignedDuration::ZERO), SignedDuration::ZERO);
    assert_eq!(jitter("p", at, hours(-1)), SignedDuration::ZERO);
    assert_eq!(
        jitter("p", at, SignedDuration::from_nanos(1)),
        SignedDuration::ZERO
    );
}

#[test]
fn a_backup_within_the_rpo_is_not_overdue_sec_1() {
    let created = ts("2026-01-01T00:00:00Z");
    let last = Some(ts("2026-03-01T18:00:00Z"));
    assert_eq!(
        rpo_overdue(last, created, hours(26), ts("2026-03-02T08:00:00Z")),
        None
    );
    // Exactly at the RPO is still in time.
    assert_eq!(
        rpo_overdue(last, created, hours(26), ts("2026-03-02T20:00:00Z")),
        None
    );
}

#[test]
fn a_backup_older_than_the_rpo_is_overdue_by_the_difference_sec_1() {
    assert_eq!(
        rpo_overdue(
            Some(ts("2026-03-01T18:00:00Z")),
            ts("2026-01-01T00:00:00Z"),
            hours(26),
            ts("2026-03-02T23:30:00Z")
        ),
        Some(SignedDuration::from_mins(210))
    );
}

#[test]
fn without_a_good_backup_the_rpo_counts_from_creation_sec_1() {
    let created = ts("2026-03-01T00:00:00Z");
    assert_eq!(
        rpo_overdue(None, created, hours(26), ts("2026-03-02T01:00:00Z")),
        None
    );
    assert_eq!(
        rpo_overdue(None, created, hours(26), ts("2026-03-02T03:00:00Z")),
        Some(hours(1))
    );
}
