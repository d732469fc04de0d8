//! SEC-1: retention keeps recent, daily, weekly and monthly backups and a verified one; SH-13:
//! audit-log backups are kept at least 1095 days.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use Reason::*;
use proptest::prelude::*;

use super::*;
use crate::rules::test_support::now;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A plain backup completed at `completed` (UTC), named after it.
fn backup(completed: &str) -> Candidate {
    Candidate {
        id: completed.to_owned(),
        completed: ts(completed),
        verified: false,
        audit: false,
    }
}

fn verified(completed: &str) -> Candidate {
    Candidate {
        verified: true,
        ..backup(completed)
    }
}

fn audit(completed: &str) -> Candidate {
    Candidate {
        audit: true,
        ..backup(completed)
    }
}

fn retention(last: i32, daily: i32, weekly: i32, monthly: i32) -> Retention {
    Retention {
        keep_last: last,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
    }
}

fn plan_utc(backups: &[Candidate], retention: &Retention, now: Timestamp) -> Vec<Decision> {
    plan(backups, retention, &TimeZone::UTC, now)
}

/// The kept backups' ids with their reasons, newest first.
fn kept(decisions: &[Decision]) -> Vec<(&str, Vec<Reason>)> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.id.as_str(), d.reasons.clone()))
        .collect()
}

/// Three backups a day (01:00, 09:00 and 17:00 UTC) from 23 February to 1 March 2026.
fn three_a_day_for_a_week() -> Vec<Candidate> {
    [
        "2026-02-23",
        "2026-02-24",
        "2026-02-25",
        "2026-02-26",
        "2026-02-27",
        "2026-02-28",
        "2026-03-01",
    ]
    .into_iter()
    .flat_map(|day| ["01", "09", "17"].map(|h| backup(&format!("{day}T{h}:00:00Z"))))
    .collect()
}

#[test]
fn nothing_to_plan_without_backups() {
    assert_eq!(plan_utc(&[], &retention(7, 7, 4, 12), now()), []);
}

#[test]
fn keep_last_keeps_the_newest_and_deletes_the_rest_sec_1() {
    let backups: Vec<_> = (0..10)
        .map(|h| backup(&format!("2026-03-01T{h:02}:00:00Z")))
        .collect();
    let decisions = plan_utc(&backups, &retention(3, 0, 0, 0), now());
    assert_eq!(decisions.len(), 10);
    assert_eq!(
        kept(&decisions),
        [
            ("2026-03-01T09:00:00Z", vec![KeepLast]),
            ("2026-03-01T08:00:00Z", vec![KeepLast]),
            ("2026-03-01T07:00:00Z", vec![KeepLast]),
        ]
    );
    assert!(
        decisions[3..]
            .iter()
            .all(|d| !d.keep && d.reasons.is_empty())
    );
}

#[test]
fn decisions_come_newest_first_whatever_the_input_order() {
    let mut backups = vec![
        backup("2026-03-01T01:00:00Z"),
        backup("2026-03-01T03:00:00Z"),
        backup("2026-03-01T02:00:00Z"),
    ];
    // Same instant: the id breaks the tie.
    backups.push(Candidate {
        id: "b".into(),
        ..backup("2026-03-01T03:00:00Z")
    });
    let ids: Vec<_> = plan_utc(&backups, &retention(1, 0, 0, 0), now())
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        ids,
        [
            "2026-03-01T03:00:00Z",
            "b",
            "2026-03-01T02:00:00Z",
            "2026-03-01T01:00:00Z"
        ]
    );
}

#[test]
fn keep_daily_keeps_the_newest_backup_of_each_recent_day_sec_1() {
    let decisions = plan_utc(&three_a_day_for_a_week(), &retention(1, 5, 0, 0), now());
    assert_eq!(
        kept(&decisions),
        [
            ("2026-03-01T17:00:00Z", vec![KeepLast, Daily]),
            ("2026-02-28T17:00:00Z", vec![Daily]),
            ("2026-02-27T17:00:00Z", vec![Daily]),
            ("2026-02-26T17:00:00Z", vec![Daily]),
            ("2026-02-25T17:00:00Z", vec![Daily]),
        ]
    );
    assert_eq!(decisions.iter().filter(|d| !d.keep).count(), 21 - 5);
}

#[test]
fn keep_daily_counts_days_with_backups_not_calendar_days_as_restic_does() {
    let backups = [
        backup("2026-03-01T17:00:00Z"),
        backup("2026-03-01T09:00:00Z"),
        backup("2026-02-25T09:00:00Z"),
        backup("2026-02-20T09:00:00Z"),
    ];
    assert_eq!(
        kept(&plan_utc(&backups, &retention(1, 2, 0, 0), now())),
        [
            ("2026-03-01T17:00:00Z", vec![KeepLast, Daily]),
            ("2026-02-25T09:00:00Z", vec![Daily]),
        ]
    );
}

#[test]
fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
    // 2026-W01 runs from Monday 29 December 2025 to Sunday 4 January 2026.
    let backups = [
        backup("2026-01-05T02:00:00Z"), // Monday, 2026-W02
        backup("2026-01-03T02:00:00Z"), // Saturday, 2026-W01
        backup("2025-12-29T02:00:00Z"), // Monday, 2026-W01
        backup("2025-12-28T02:00:00Z"), // Sunday, 2025-W52
        backup("2025-12-27T02:00:00Z"), // Saturday, 2025-W52
    ];
    assert_eq!(
        kept(&plan_utc(
            &backups,
            &retention(1, 0, 3, 0),
            ts("2026-01-06T00:00:00Z")
        )),
        [
            ("2026-01-05T02:00:00Z", vec![KeepLast, Weekly]),
            ("2026-01-03T02:00:00Z", vec![Weekly]),
            ("2025-12-28T02:00:00Z", vec![Weekly]),
        ]
    );
}

#[test]
fn keep_monthly_keeps_the_newest_backup_of_each_recent_month() {
    let backups: Vec<_> = [
        "2026-02-15",
        "2026-02-01",
        "2026-01-31",
        "2026-01-15",
        "2025-12-31",
        "2025-12-15",
        "2025-11-30",
    ]
    .map(|d| backup(&format!("{d}T02:00:00Z")))
    .into();
    assert_eq!(
        kept(&plan_utc(&backups, &retention(1, 0, 0, 3), now())),
        [
            ("2026-02-15T02:00:00Z", vec![KeepLast, Monthly]),
            ("2026-01-31T02:00:00Z", vec![Monthly]),
            ("2025-12-31T02:00:00Z", vec![Monthly]),
        ]
    );
}

#[test]
fn a_backup_kept_for_several_reasons_lists_them_all() {
    let backups = [
        backup("2026-03-01T17:00:00Z"), // Sunday, 2026-W09
        backup("2026-02-28T17:00:00Z"), // Saturday, 2026-W09
        backup("2026-02-22T17:00:00Z"), // Sunday, 2026-W08
        backup("2026-01-20T17:00:00Z"),
    ];
    assert_eq!(
        kept(&plan_utc(&backups, &retention(1, 3, 2, 2), now())),
        [
            (
                "2026-03-01T17:00:00Z",
                vec![KeepLast, Daily, Weekly, Monthly]
            ),
            ("2026-02-28T17:00:00Z", vec![Daily, Monthly]),
            ("2026-02-22T17:00:00Z", vec![Daily, Weekly]),
        ]
    );
}

#[test]
fn the_newest_verified_backup_is_kept_when_no_other_verified_one_is_sec_1() {
    let backups = [
        backup("2026-03-01T17:00:00Z"),
        backup("2026-02-28T17:00:00Z"),
        verified("2026-02-27T17:00:00Z"),
        backup("2026-02-26T17:00:00Z"),
        verified("2026-02-25T17:00:00Z"),
    ];
    let decisions = plan_utc(&backups, &retention(2, 0, 0, 0), now());
    assert_eq!(
        kept(&decisions),
        [
            ("2026-03-01T17:00:00Z", vec![KeepLast]),
            ("2026-02-28T17:00:00Z", vec![KeepLast]),
            ("2026-02-27T17:00:00Z", vec![OnlyVerified]),
        ]
    );
    // The older verified backup goes: one verified backup is enough.
    assert!(!decisions[4].keep);
}

#[test]
fn a_verified_backup_kept_by_the_rules_needs_no_extra_protection() {
    let backups = [
        verified("2026-03-01T17:00:00Z"),
        backup("2026-02-28T17:00:00Z"),
        verified("2026-02-27T17:00:00Z"),
    ];
    assert_eq!(
        kept(&plan_utc(&backups, &retention(1, 0, 0, 0), now())),
        [("2026-03-01T17:00:00Z", vec![KeepLast])]
    );
}

#[test]
fn without_verified_backups_nothing_is_kept_for_verification() {
    let decisions = plan_utc(&three_a_day_for_a_week(), &retention(1, 0, 0, 0), now());
    assert!(decisions.iter().all(|d| !d.reasons.contains(&OnlyVerified)));
    assert_eq!(decisions.iter().filter(|d| d.keep).count(), 1);
}

#[test]
fn audit_backups_younger_than_1095_days_are_never_deleted_sh_13() {
    let now = ts("2026-03-02T08:00:00Z");
    let days_ago = |d: i64| now - SignedDuration::from_hours(24 * d);
    let at = |d| days_ago(d).to_string();
    let backups = [
        backup(&at(1)),
        audit(&at(2)),
        backup(&at(3)),
        audit(&at(AUDIT_MIN_KEEP_DAYS - 1)),
        audit(&at(AUDIT_MIN_KEEP_DAYS)),
        audit(&at(AUDIT_MIN_KEEP_DAYS + 1)),
    ];
    let decisions = plan_utc(&backups, &retention(1, 0, 0, 0), now);
    assert_eq!(
        kept(&decisions),
        [
            (at(1).as_str(), vec![KeepLast]),
            (at(2).as_str(), vec![AuditMinimum]),
            (at(AUDIT_MIN_KEEP_DAYS - 1).as_str(), vec![AuditMinimum]),
        ]
    );
    // At 1095 days the minimum is met and the retention decides.
    assert!(!decisions[4].keep && !decisions[5].keep);
}

#[test]
fn an_audit_backup_kept_by_the_rules_also_names_sh_13() {
    let backups = [audit("2026-03-01T17:00:00Z")];
    assert_eq!(
        kept(&plan_utc(&backups, &retention(1, 1, 0, 0), now())),
        [("2026-03-01T17:00:00Z", vec![KeepLast, Daily, AuditMinimum])]
    );
}

#[test]
fn days_follow_the_policy_time_zone() {
    // 15:30 UTC is 23:30 in Shanghai, 16:30 UTC is already the next day there.
    let backups = [
        backup("2026-02-27T16:30:00Z"), // 28 Feb 00:30 Shanghai
        backup("2026-02-27T15:30:00Z"), // 27 Feb 23:30 Shanghai
        backup("2026-02-27T10:00:00Z"), // 27 Feb 18:00 Shanghai
        backup("2026-02-26T12:00:00Z"), // 26 Feb 20:00 Shanghai
    ];
    let daily = retention(1, 2, 0, 0);
    let shanghai = TimeZone::get("Asia/Shanghai").unwrap();
    assert_eq!(
        kept(&plan(&backups, &daily, &shanghai, now())),
        [
            ("2026-02-27T16:30:00Z", vec![KeepLast, Daily]),
            ("2026-02-27T15:30:00Z", vec![Daily]),
        ]
    );
    assert_eq!(
        kept(&plan_utc(&backups, &daily, now())),
        [
            ("2026-02-27T16:30:00Z", vec![KeepLast, Daily]),
            ("2026-02-26T12:00:00Z", vec![Daily]),
        ]
    );
}

#[test]
fn a_negative_count_keeps_nothing() {
    let backups = [backup("2026-03-01T17:00:00Z")];
    let decisions = plan_utc(&backups, &retention(-1, -1, -1, -1), now());
    assert_eq!(
        decisions,
        [Decision {
            id: "2026-03-01T17:00:00Z".into(),
            keep: false,
            reasons: vec![]
        }]
    );
}

#[test]
fn reasons_read_as_short_text() {
    let texts: Vec<_> = [KeepLast, Daily, Weekly, Monthly, OnlyVerified, AuditMinimum]
        .map(|r| r.to_string())
        .into();
    assert_eq!(
        texts,
        [
            "last",
            "daily",
            "weekly",
            "monthly",
            "only verified backup",
            "audit log younger than 1095 days (SH-13)"
        ]
    );
}

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    // Up to four years back from the tests' `now`, so some audit backups pass 1095 days.
    let start = now().as_second() - 4 * 366 * 86_400;
    prop::collection::vec(
        (0..4 * 366 * 86_400i64, any::<bool>(), any::<bool>()),
        0..40,
    )
    .prop_map(move |raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (offset, verified, audit))| Candidate {
                id: format!("b{i}"),
                completed: Timestamp::from_second(start + offset).unwrap(),
                verified,
                audit,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn every_plan_keeps_what_the_rules_protect_sec_1_sh_13(
        backups in candidates(),
        last in 1..10i32,
        daily in 0..10i32,
        weekly in 0..6i32,
        monthly in 0..6i32,
    ) {
        let decisions = plan_utc(&backups, &retention(last, daily, weekly, monthly), now());
        prop_assert_eq!(decisions.len(), backups.len());
        let by_id = |id: &str| backups.iter().find(|b| b.id == id).unwrap();
        let completed: Vec<_> = decisions.iter().map(|d| by_id(&d.id).completed).collect();
        prop_assert!(completed.windows(2).all(|w| w[0] >= w[1]));
        for d in &decisions {
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
            let b = by_id(&d.id);
            if b.audit && now().duration_since(b.completed) < SignedDuration::from_hours(24 * AUDIT_MIN_KEEP_DAYS) {
                prop_assert!(d.keep);
            }
        }
        let kept_last = decisions.iter().filter(|d| d.reasons.contains(&KeepLast)).count();
        prop_assert_eq!(kept_last, backups.len().min(last as usize));
        if backups.iter().any(|b| b.verified) {
            prop_assert!(decisions.iter().any(|d| d.keep && by_id(&d.id).verified));
        }
    }
}
