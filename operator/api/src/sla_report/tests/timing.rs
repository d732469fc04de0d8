//! When a figure counts: month bounds in Shanghai, steps across months, late and overdue steps
//! (SUP-1, SUP-2).

use super::*;

#[test]
fn sup_1_a_step_done_just_after_midnight_on_1_november_in_shanghai_counts_in_november() {
    let world = World {
        grants: vec![
            // 00:30 on 1 November in Shanghai, still 31 October in UTC.
            replied(
                "early",
                "2026-10-28T02:00:00Z",
                "2026-11-04T16:00:00Z",
                Some("2026-10-31T16:30:00Z"),
            ),
            // 00:00 on 1 December in Shanghai: December's.
            replied(
                "late-night",
                "2026-11-25T02:00:00Z",
                "2026-12-02T16:00:00Z",
                Some("2026-11-30T16:00:00Z"),
            ),
            // 23:59 on 31 October in Shanghai: October's.
            replied(
                "october",
                "2026-10-26T02:00:00Z",
                "2026-11-02T16:00:00Z",
                Some("2026-10-31T15:59:00Z"),
            ),
        ],
        ..World::default()
    };
    let report = world.report(november());
    assert_eq!(
        (report.from, report.until),
        (at("2026-10-31T16:00:00Z"), at("2026-11-30T16:00:00Z"))
    );
    assert_eq!(report.time_zone, "Asia/Shanghai");
    assert!(report.complete, "November is over on 2 December");
    assert_eq!(
        counts(figures(&report, PROVIDER, Step::ProviderReply)),
        (1, 0, 0, 0)
    );
    let october = world.report("2026-10".parse().unwrap());
    assert_eq!(
        counts(figures(&october, PROVIDER, Step::ProviderReply)),
        (1, 0, 0, 0)
    );
    let december = world
        .report_on("2026-12".parse().unwrap(), NOW, &Scope::All)
        .unwrap();
    assert_eq!(
        counts(figures(&december, PROVIDER, Step::ProviderReply)),
        (1, 0, 0, 0)
    );
    assert!(!december.complete, "December runs until the report");
}

#[test]
fn sup_1_a_step_started_in_october_and_done_in_november_counts_in_november() {
    let world = World {
        grants: vec![replied(
            "autumn",
            "2026-10-29T02:00:00Z",
            "2026-11-05T16:00:00Z",
            Some("2026-11-03T02:00:00Z"),
        )],
        ..World::default()
    };
    let f = figures(&world.report(november()), PROVIDER, Step::ProviderReply);
    assert_eq!((counts(f), f.on_time_rate), ((1, 0, 0, 0), Some(1.0)));
    let october = world.report("2026-10".parse().unwrap());
    assert_eq!(row(&october, PROVIDER).steps, [], "nothing done in October");
}

#[test]
fn sup_2_a_reply_done_late_is_late_when_done_and_a_breach_when_it_fell_due() {
    let world = World {
        grants: vec![
            // Due 30 October, done 3 November: October's breach, November's late step.
            replied(
                "slow",
                "2026-10-23T02:00:00Z",
                "2026-10-30T16:00:00Z",
                Some("2026-11-03T02:00:00Z"),
            ),
            // Due and done late in November: both.
            replied(
                "slower",
                "2026-11-02T02:00:00Z",
                "2026-11-09T16:00:00Z",
                Some("2026-11-10T02:00:00Z"),
            ),
            // Done exactly at its due time: late (the step is due before then).
            replied(
                "last-second",
                "2026-11-02T02:00:00Z",
                "2026-11-09T16:00:00Z",
                Some("2026-11-09T16:00:00Z"),
            ),
            replied(
                "prompt",
                "2026-11-02T02:00:00Z",
                "2026-11-09T16:00:00Z",
                Some("2026-11-04T02:00:00Z"),
            ),
        ],
        ..World::default()
    };
    let f = figures(&world.report(november()), PROVIDER, Step::ProviderReply);
    assert_eq!(counts(f), (1, 3, 2, 0));
    assert_eq!(f.on_time_rate, Some(0.25));
    let october = world.report("2026-10".parse().unwrap());
    assert_eq!(
        counts(figures(&october, PROVIDER, Step::ProviderReply)),
        (0, 0, 1, 0)
    );
}

#[test]
fn sup_2_a_reply_pending_past_its_due_time_is_a_breach_and_open_overdue_at_report_time() {
    let world = World {
        grants: vec![
            replied(
                "forgotten",
                "2026-11-16T02:00:00Z",
                "2026-11-23T16:00:00Z",
                None,
            ),
            // Overdue since October: open now, but October's breach.
            replied(
                "older",
                "2026-10-20T02:00:00Z",
                "2026-10-27T16:00:00Z",
                None,
            ),
            // Due after the report: neither.
            replied(
                "in-time",
                "2026-11-27T02:00:00Z",
                "2026-12-04T16:00:00Z",
                None,
            ),
        ],
        ..World::default()
    };
    let report = world.report(november());
    let f = figures(&report, PROVIDER, Step::ProviderReply);
    assert_eq!((counts(f), f.on_time_rate), ((0, 0, 1, 2), None));
    assert_eq!(row(&report, PROVIDER).totals.open_overdue, 2);
    // Reported during November, on the 20th: the first reply is not due yet.
    let early = world
        .report_on(november(), "2026-11-20T02:00:00Z", &Scope::All)
        .unwrap();
    assert_eq!(
        counts(figures(&early, PROVIDER, Step::ProviderReply)),
        (0, 0, 0, 1)
    );
}

#[test]
fn a_month_that_has_not_begun_cannot_be_reported() {
    let err = World::default()
        .report_on("2027-01".parse().unwrap(), NOW, &Scope::All)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("2027-01 has not begun yet in Asia/Shanghai"),
        "{err}"
    );
}
