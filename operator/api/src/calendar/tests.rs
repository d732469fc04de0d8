//! Hand-computed deadlines and validation cases (REQUIREMENTS.md, "How a deadline is counted").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::{
    Timestamp, ToSpan,
    civil::{Date, Time, Weekday, date, time},
    tz::TimeZone,
};

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shanghai_2026() -> WorkCalendar {
    calendar_2026_cn()
}

fn berlin() -> WorkCalendar {
    WorkCalendar::for_time_zone("Europe/Berlin").unwrap()
}

#[test]
fn official_2026_data_passes_validation() {
    let validated = WorkCalendar::from_parts(
        "Asia/Shanghai",
        None,
        [(
            2026,
            CN_2026_HOLIDAYS.to_vec(),
            CN_2026_MAKEUP_WORKDAYS.to_vec(),
        )],
    )
    .unwrap();
    let built_in = calendar_2026_cn();
    for offset in 0..366 {
        let day = date(2025, 12, 31).checked_add(offset.days()).unwrap();
        assert_eq!(
            validated.is_working_day(day),
            built_in.is_working_day(day),
            "{day}"
        );
    }
}

#[test]
fn every_2026_make_up_working_day_is_a_weekend_day_as_the_notice_says() {
    let expected = [
        (date(2026, 1, 4), Weekday::Sunday),
        (date(2026, 2, 14), Weekday::Saturday),
        (date(2026, 2, 28), Weekday::Saturday),
        (date(2026, 5, 9), Weekday::Saturday),
        (date(2026, 9, 20), Weekday::Sunday),
        (date(2026, 10, 10), Weekday::Saturday),
    ];
    assert_eq!(CN_2026_MAKEUP_WORKDAYS.len(), expected.len());
    for (day, weekday) in expected {
        assert!(CN_2026_MAKEUP_WORKDAYS.contains(&day));
        assert_eq!(day.weekday(), weekday, "{day}");
    }
}

#[test]
fn the_2026_holiday_periods_match_the_weekdays_the_notice_names() {
    // (first day, its weekday, last day, its weekday, days) as printed in the notice.
    let periods = [
        (
            date(2026, 1, 1),
            Weekday::Thursday,
            date(2026, 1, 3),
            Weekday::Saturday,
            3,
        ),
        (
            date(2026, 2, 15),
            Weekday::Sunday,
            date(2026, 2, 23),
            Weekday::Monday,
            9,
        ),
        (
            date(2026, 4, 4),
            Weekday::Saturday,
            date(2026, 4, 6),
            Weekday::Monday,
            3,
        ),
        (
            date(2026, 5, 1),
            Weekday::Friday,
            date(2026, 5, 5),
            Weekday::Tuesday,
            5,
        ),
        (
            date(2026, 6, 19),
            Weekday::Friday,
            date(2026, 6, 21),
            Weekday::Sunday,
            3,
        ),
        (
            date(2026, 9, 25),
            Weekday::Friday,
            date(2026, 9, 27),
            Weekday::Sunday,
            3,
        ),
        (
            date(2026, 10, 1),
            Weekday::Thursday,
            date(2026, 10, 7),
            Weekday::Wednesday,
            7,
        ),
    ];
    let mut total = 0;
    for (first, first_wd, last, last_wd, days) in periods {
        assert_eq!(
            (first.weekday(), last.weekday()),
            (first_wd, last_wd),
            "{first}..{last}"
        );
        let listed = CN_2026_HOLIDAYS
            .iter()
            .filter(|d| (first..=last).contains(*d))
            .count();
        assert_eq!(listed, days, "{first}..{last}");
        total += days;
    }
    assert_eq!(CN_2026_HOLIDAYS.len(), total);
}

#[test]
fn make_up_sunday_after_new_year_2026_is_a_working_day_and_holidays_are_not() {
    let cal = shanghai_2026();
    assert!(cal.is_working_day(date(2026, 1, 4)));
    assert!(!cal.is_working_day(date(2026, 1, 2)));
    assert!(!cal.is_working_day(date(2026, 3, 1)));
    assert!(cal.is_working_day(date(2026, 3, 2)));
    assert!(cal.covers(2026));
    assert!(!cal.covers(2027));
    assert_eq!(cal.years().collect::<Vec<_>>(), [2026]);
}

#[test]
fn request_received_friday_before_spring_festival_counts_the_make_up_saturday() {
    // Fri 13 Feb (trigger, does not count) → Sat 14 (make-up, WD1) → 15–23 holiday →
    // Tue 24 (WD2) → Wed 25 (WD3); due at 24:00 on the 25th.
    let cal = shanghai_2026();
    let trigger = ts("2026-02-13T10:00:00+08:00");
    assert_eq!(
        cal.deadline(trigger, 3).unwrap(),
        ts("2026-02-26T00:00:00+08:00")
    );
    assert_eq!(
        cal.deadline(trigger, 1).unwrap(),
        ts("2026-02-15T00:00:00+08:00")
    );
    assert_eq!(
        cal.working_days_between(trigger, ts("2026-02-25T23:59:59+08:00")),
        3
    );
}

#[test]
fn five_working_days_from_the_eve_of_national_day_end_on_13_october() {
    // Wed 30 Sep → 1–7 Oct holiday → Thu 8 (1), Fri 9 (2), Sat 10 make-up (3), Mon 12 (4),
    // Tue 13 (5).
    let cal = shanghai_2026();
    let trigger = ts("2026-09-30T16:00:00+08:00");
    assert_eq!(
        cal.deadline(trigger, 5).unwrap(),
        ts("2026-10-14T00:00:00+08:00")
    );
}

#[test]
fn close_of_business_ends_the_last_working_day_at_17_30_civil_code_203() {
    let cal = shanghai_2026()
        .with_close_of_business(time(17, 30, 0, 0))
        .unwrap();
    assert_eq!(cal.close_of_business(), Some(time(17, 30, 0, 0)));
    let trigger = ts("2026-09-30T16:00:00+08:00");
    assert_eq!(
        cal.deadline(trigger, 5).unwrap(),
        ts("2026-10-13T17:30:00+08:00")
    );
}

#[test]
fn trigger_counts_by_its_shanghai_date_not_its_utc_date() {
    // 17:00 UTC on Thursday the 12th is 01:00 on Friday the 13th in Shanghai.
    let trigger = ts("2026-02-12T17:00:00Z");
    let shanghai = shanghai_2026();
    assert_eq!(shanghai.local_date(trigger), date(2026, 2, 13));
    assert_eq!(
        shanghai.deadline(trigger, 3).unwrap(),
        ts("2026-02-26T00:00:00+08:00")
    );
    // Counted on UTC dates the same data would give Fri 13, Sat 14, Tue 24.
    let utc = WorkCalendar::new(TimeZone::UTC)
        .with_year(
            2026,
            CN_2026_HOLIDAYS.to_vec(),
            CN_2026_MAKEUP_WORKDAYS.to_vec(),
        )
        .unwrap();
    assert_eq!(
        utc.deadline(trigger, 3).unwrap(),
        ts("2026-02-25T00:00:00Z")
    );
}

#[test]
fn zero_working_days_means_the_end_of_the_triggers_own_day() {
    let cal = shanghai_2026();
    // A holiday: N = 0 still ends that very day.
    let trigger = ts("2026-10-01T09:00:00+08:00");
    assert_eq!(
        cal.deadline(trigger, 0).unwrap(),
        ts("2026-10-02T00:00:00+08:00")
    );
    let early = cal.with_close_of_business(time(17, 30, 0, 0)).unwrap();
    let evening = ts("2026-10-01T20:00:00+08:00");
    assert_eq!(
        early.deadline(evening, 0).unwrap(),
        ts("2026-10-01T17:30:00+08:00")
    );
}

#[test]
fn berlin_deadline_across_the_spring_dst_change_ends_at_local_midnight() {
    // DST starts Sun 29 Mar 2026; Fri 27 + 1 WD = Mon 30, which ends at 00:00 CEST (+02:00).
    let cal = berlin();
    let trigger = ts("2026-03-27T12:00:00+01:00");
    assert_eq!(
        cal.deadline(trigger, 1).unwrap(),
        ts("2026-03-30T22:00:00Z")
    );
    let early = berlin().with_close_of_business(time(17, 30, 0, 0)).unwrap();
    assert_eq!(
        early.deadline(trigger, 1).unwrap(),
        ts("2026-03-30T15:30:00Z")
    );
}

#[test]
fn berlin_deadline_across_the_autumn_dst_change_ends_at_local_midnight() {
    // DST ends Sun 25 Oct 2026; Fri 23 + 1 WD = Mon 26, which ends at 00:00 CET (+01:00).
    let cal = berlin();
    let trigger = ts("2026-10-23T12:00:00+02:00");
    assert_eq!(
        cal.deadline(trigger, 1).unwrap(),
        ts("2026-10-26T23:00:00Z")
    );
}

#[test]
fn close_of_business_inside_a_dst_gap_resolves_after_the_gap() {
    // 02:30 does not exist in Berlin on Sun 29 Mar 2026; make that Sunday a working day.
    let cal = WorkCalendar::from_parts(
        "Europe/Berlin",
        Some(time(2, 30, 0, 0)),
        [(2026, vec![], vec![date(2026, 3, 29)])],
    )
    .unwrap();
    let trigger = ts("2026-03-28T12:00:00+01:00");
    assert_eq!(
        cal.deadline(trigger, 1).unwrap(),
        ts("2026-03-29T01:30:00Z")
    );
}

#[test]
fn day_whose_midnight_is_skipped_by_dst_ends_when_the_next_day_begins() {
    // São Paulo skipped 00:00–01:00 on Sun 4 Nov 2018; Sat 3 Nov made a working day.
    let cal = WorkCalendar::from_parts(
        "America/Sao_Paulo",
        None,
        [(2018, vec![], vec![date(2018, 11, 3)])],
    )
    .unwrap();
    let trigger = ts("2018-11-02T12:00:00-03:00");
    let due = cal.deadline(trigger, 1).unwrap();
    assert_eq!(due, ts("2018-11-04T01:00:00-02:00"));
    assert_eq!(cal.working_days_between(trigger, due - 1.nanosecond()), 1);
}

#[test]
fn next_working_day_skips_the_new_year_holiday_to_the_make_up_sunday() {
    let cal = shanghai_2026();
    assert_eq!(
        cal.next_working_day(date(2025, 12, 31)).unwrap(),
        date(2026, 1, 4)
    );
    assert_eq!(
        cal.nth_working_day_after(date(2025, 12, 31), 0).unwrap(),
        date(2025, 12, 31)
    );
    assert_eq!(
        cal.nth_working_day_after(date(2025, 12, 31), 2).unwrap(),
        date(2026, 1, 5)
    );
}

#[test]
fn a_decade_of_holidays_ends_the_search_with_no_working_day() {
    let mut cal = WorkCalendar::default();
    for year in 2030..=2040 {
        let first = date(year, 1, 1);
        let days: Vec<Date> = first
            .series(1.day())
            .take_while(|d| d.year() == year)
            .collect();
        cal = cal.with_year(year, days, vec![]).unwrap();
    }
    let err = cal.next_working_day(date(2029, 12, 31)).unwrap_err();
    assert!(
        matches!(err, CalendarError::NoWorkingDay { after, .. } if after == date(2029, 12, 31))
    );
    assert_eq!(err.category(), "no_working_day");
}

#[test]
fn an_absurd_number_of_working_days_fails_fast_as_out_of_range() {
    let cal = shanghai_2026();
    let err = cal
        .deadline(ts("2026-01-05T09:00:00+08:00"), u32::MAX)
        .unwrap_err();
    assert!(matches!(err, CalendarError::OutOfRange(_)), "{err}");
    // A big but representable count still works through the week-skipping path.
    let due = cal
        .deadline(ts("2026-01-05T09:00:00+08:00"), 1_000_000)
        .unwrap();
    assert_eq!(
        cal.working_days_between(ts("2026-01-05T09:00:00+08:00"), due - 1.nanosecond()),
        1_000_000
    );
}

#[test]
fn working_days_between_counts_the_half_open_range_of_local_dates() {
    let cal = shanghai_2026();
    assert_eq!(
        cal.working_days_between_dates(date(2026, 2, 13), date(2026, 2, 25)),
        3
    );
    assert_eq!(
        cal.working_days_between_dates(date(2026, 2, 25), date(2026, 2, 13)),
        -3
    );
    assert_eq!(
        cal.working_days_between_dates(date(2026, 3, 2), date(2026, 3, 2)),
        0
    );
    // 2026: 365 days, 104 weekend days, 6 make-up days, 33 holiday dates of which 19 weekdays.
    assert_eq!(
        cal.working_days_between_dates(date(2025, 12, 31), date(2026, 12, 31)),
        261 - 19 + 6
    );
}

#[test]
fn a_date_listed_as_holiday_and_make_up_day_is_refused() {
    let err = WorkCalendar::default()
        .with_year(2026, vec![date(2026, 2, 14)], vec![date(2026, 2, 14)])
        .unwrap_err();
    assert!(
        matches!(err, CalendarError::HolidayAndMakeupDay { date: d } if d == date(2026, 2, 14))
    );
    assert_eq!(err.category(), "invalid_calendar");
}

#[test]
fn a_make_up_day_on_a_weekday_is_refused() {
    let err = WorkCalendar::default()
        .with_year(2026, vec![], vec![date(2026, 2, 13)])
        .unwrap_err();
    assert!(matches!(
        err,
        CalendarError::MakeupDayNotWeekend {
            weekday: Weekday::Friday,
            ..
        }
    ));
}

#[test]
fn a_date_outside_its_declared_year_is_refused() {
    let err = WorkCalendar::default()
        .with_year(2026, vec![date(2027, 1, 1)], vec![])
        .unwrap_err();
    assert!(matches!(
        err,
        CalendarError::DateOutsideYear { year: 2026, .. }
    ));
    let err = WorkCalendar::default()
        .with_year(2026, vec![], vec![date(2025, 12, 27)])
        .unwrap_err();
    assert!(matches!(
        err,
        CalendarError::DateOutsideYear { year: 2026, .. }
    ));
}

#[test]
fn a_year_given_twice_is_refused() {
    let err = WorkCalendar::from_parts(
        "Asia/Shanghai",
        None,
        [(2026, vec![], vec![]), (2026, vec![], vec![])],
    )
    .unwrap_err();
    assert!(matches!(err, CalendarError::DuplicateYear { year: 2026 }));
}

#[test]
fn an_unknown_time_zone_is_refused() {
    let err = WorkCalendar::from_parts("Asia/Gongshu", None, []).unwrap_err();
    assert!(matches!(&err, CalendarError::UnknownTimeZone { name } if name == "Asia/Gongshu"));
    assert_eq!(err.category(), "unknown_time_zone");
}

#[test]
fn close_of_business_at_midnight_is_refused() {
    let err = WorkCalendar::default()
        .with_close_of_business(Time::midnight())
        .unwrap_err();
    assert!(matches!(err, CalendarError::CloseAtMidnight));
}

#[test]
fn default_calendar_is_shanghai_at_24_00_without_year_data() {
    let cal = WorkCalendar::default();
    assert_eq!(cal.time_zone().iana_name(), Some("Asia/Shanghai"));
    assert_eq!(cal.close_of_business(), None);
    assert!(!cal.covers(2026));
    // Weekends only: Fri 2 Jan 2026 is a working day here, unlike in `calendar_2026_cn`.
    assert!(cal.is_working_day(date(2026, 1, 2)));
}

#[test]
fn a_drill_day_turns_working_days_into_fixed_lengths() {
    let drill = WorkCalendar::default()
        .with_drill_day(SignedDuration::from_secs(3))
        .unwrap();
    let trigger: Timestamp = "2026-10-01T10:00:00Z".parse().unwrap(); // a holiday
    assert_eq!(
        drill.deadline(trigger, 5).unwrap(),
        "2026-10-01T10:00:15Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(drill.deadline(trigger, 0).unwrap(), trigger);
    assert_eq!(drill.drill_day(), Some(SignedDuration::from_secs(3)));
}

#[test]
fn a_drill_day_must_be_positive_and_at_most_a_day() {
    for secs in [0, -1, 86_401] {
        let err = WorkCalendar::default()
            .with_drill_day(SignedDuration::from_secs(secs))
            .unwrap_err();
        assert_eq!(err.category(), "invalid_calendar");
    }
}
