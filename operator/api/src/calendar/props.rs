//! Properties of deadline counting that must hold for every trigger, count and calendar.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::{
    SignedDuration, Timestamp, ToSpan,
    civil::{Date, date, time},
};
use proptest::prelude::*;

use super::*;

/// 2024-01-01 to 2028-12-31 in seconds: around the 2026 data, and across DST changes.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_704_067_200_i64..1_861_920_000).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn day() -> impl Strategy<Value = Date> {
    (0_i64..5 * 366).prop_map(|d| date(2024, 1, 1).checked_add(d.days()).unwrap())
}

/// Shanghai and Berlin, with and without the 2026 data, at 24:00 and 17:30.
fn calendar() -> impl Strategy<Value = WorkCalendar> {
    (0_usize..6).prop_map(|i| {
        let close = time(17, 30, 0, 0);
        match i {
            0 => WorkCalendar::default(),
            1 => calendar_2026_cn(),
            2 => calendar_2026_cn().with_close_of_business(close).unwrap(),
            3 => WorkCalendar::for_time_zone("Europe/Berlin").unwrap(),
            4 => WorkCalendar::for_time_zone("Europe/Berlin")
                .unwrap()
                .with_close_of_business(close)
                .unwrap(),
            _ => WorkCalendar::from_parts(
                "Europe/Berlin",
                None,
                [(
                    2026,
                    CN_2026_HOLIDAYS.to_vec(),
                    CN_2026_MAKEUP_WORKDAYS.to_vec(),
                )],
            )
            .unwrap(),
        }
    })
}

/// Day-by-day reference for `working_days_between_dates`.
fn naive_between(cal: &WorkCalendar, from: Date, to: Date) -> i64 {
    let (lo, hi, sign) = if from <= to {
        (from, to, 1)
    } else {
        (to, from, -1)
    };
    let mut n = 0;
    let mut d = lo;
    while d < hi {
        d = d.tomorrow().unwrap();
        n += i64::from(cal.is_working_day(d));
    }
    sign * n
}

proptest! {
    #[test]
    fn deadline_is_strictly_monotone_in_working_days(cal in calendar(), t in instant(), n in 0_u32..60) {
        prop_assert!(cal.deadline(t, n).unwrap() < cal.deadline(t, n + 1).unwrap());
    }

    #[test]
    fn deadline_of_at_least_one_working_day_is_after_the_trigger(
        cal in calendar(), t in instant(), n in 1_u32..60,
    ) {
        prop_assert!(cal.deadline(t, n).unwrap() > t);
    }

    #[test]
    fn last_instant_before_the_deadline_is_on_the_nth_working_day(
        cal in calendar(), t in instant(), n in 0_u32..60,
    ) {
        let due = cal.deadline(t, n).unwrap();
        prop_assert_eq!(cal.working_days_between(t, due - 1.nanosecond()), i64::from(n));
    }

    #[test]
    fn deadline_falls_at_close_of_business_of_a_working_day(
        cal in calendar(), t in instant(), n in 1_u32..60,
    ) {
        let due = cal.deadline(t, n).unwrap();
        let last_day = cal.local_date(due - 1.nanosecond());
        prop_assert!(cal.is_working_day(last_day));
        prop_assert_eq!(cal.end_of_day(last_day).unwrap(), due);
        let local = cal.time_zone().to_datetime(due);
        match cal.close_of_business() {
            Some(close) => prop_assert_eq!(local, last_day.to_datetime(close)),
            None => prop_assert_eq!(local, last_day.tomorrow().unwrap().to_datetime(Time::midnight())),
        }
    }

    #[test]
    fn working_days_between_is_antisymmetric(cal in calendar(), a in instant(), b in instant()) {
        prop_assert_eq!(cal.working_days_between(a, b), -cal.working_days_between(b, a));
    }

    #[test]
    fn working_days_between_is_additive(cal in calendar(), a in instant(), b in instant(), c in instant()) {
        prop_assert_eq!(
            cal.working_days_between(a, b) + cal.working_days_between(b, c),
            cal.working_days_between(a, c),
        );
    }

    #[test]
    fn counting_by_arithmetic_matches_counting_day_by_day(cal in calendar(), a in day(), b in day()) {
        prop_assert_eq!(cal.working_days_between_dates(a, b), naive_between(&cal, a, b));
    }

    #[test]
    fn nth_working_day_matches_stepping_day_by_day(cal in calendar(), d in day(), n in 0_u32..400) {
        let mut stepped = d;
        for _ in 0..n {
            stepped = cal.next_working_day(stepped).unwrap();
        }
        prop_assert_eq!(cal.nth_working_day_after(d, n).unwrap(), stepped);
    }

    #[test]
    fn with_weekends_only_five_working_days_from_a_weekday_span_exactly_one_week(
        d in day(), weeks in 1_u32..40,
    ) {
        prop_assume!(!matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday));
        let cal = WorkCalendar::default();
        let expected = d.checked_add(i64::from(weeks).weeks()).unwrap();
        prop_assert_eq!(cal.nth_working_day_after(d, 5 * weeks).unwrap(), expected);
        // In Shanghai (no DST) that is exactly 7 × 24 hours per five working days.
        let t = d.to_datetime(time(9, 0, 0, 0)).to_zoned(cal.time_zone().clone()).unwrap().timestamp();
        let span = cal.deadline(t, 5 * weeks).unwrap().duration_since(cal.deadline(t, 0).unwrap());
        prop_assert_eq!(span, SignedDuration::from_hours(i64::from(7 * 24 * weeks)));
    }
}
