//! The working-day calendar every deadline is counted on (REQUIREMENTS.md, "How a deadline is
//! counted"; Civil Code arts. 200–204).
//!
//! A working day (工作日) is a Monday to Friday that is not a public holiday, or a weekend day
//! that the State Council declared a make-up working day (调休). Holidays and make-up days change
//! every year, so they are data the authority maintains (the `Regulation`'s calendar); a year
//! without data falls back to "weekends off" and [`WorkCalendar::covers`] lets callers warn.
//!
//! Counting follows the Civil Code: the day of the triggering event does not count, counting
//! starts the next day, and "within N working days" ends at the close of business of the N-th
//! working day after the trigger's local date — by default 24:00, i.e. the start of the next
//! calendar day (art. 203 allows an earlier close where the body keeps business hours).
//!
//! All arithmetic is on civil dates in the calendar's time zone; instants are converted through
//! jiff's time-zone rules, so zones with daylight saving time are handled too.

mod cn;
mod error;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeSet,
    ops::Bound::{Excluded, Included},
};

use jiff::{
    SignedDuration, Span, Timestamp,
    civil::{Date, Time, Weekday},
    tz::{self, TimeZone},
};

pub use self::{
    cn::{CN_2026_HOLIDAYS, CN_2026_MAKEUP_WORKDAYS, calendar_2026_cn},
    error::CalendarError,
};

/// The time zone a calendar uses unless told otherwise: the five regulations are all Chinese.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// How many consecutive non-working days a search walks before it gives up with
/// [`CalendarError::NoWorkingDay`] (ten years: a calendar whose data declares a decade of
/// holidays is a data error, not a reason to loop).
pub const MAX_NON_WORKING_RUN: u32 = 3660;

/// A working-day calendar: time zone, close of business and per-year holiday data.
///
/// Build one with [`WorkCalendar::new`] (or [`Default`]: Asia/Shanghai, 24:00, no year data)
/// and the `with_*` methods, or from a `Regulation`'s fields with [`WorkCalendar::from_parts`].
#[derive(Clone, Debug)]
pub struct WorkCalendar {
    tz: TimeZone,
    close_of_business: Option<Time>,
    years: BTreeSet<i16>,
    holidays: BTreeSet<Date>,
    makeup_workdays: BTreeSet<Date>,
    drill_day: Option<SignedDuration>,
}

impl Default for WorkCalendar {
    /// Asia/Shanghai, days ending at 24:00, weekends only (no year data).
    fn default() -> Self {
        // The bundled tz database always has Asia/Shanghai; should it ever be missing, UTC+8 is
        // the same clock (China has kept no daylight saving time since 1991).
        let tz =
            TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or_else(|_| TimeZone::fixed(tz::offset(8)));
        Self::new(tz)
    }
}

impl WorkCalendar {
    /// A weekends-only calendar in `tz` whose days end at 24:00.
    pub fn new(tz: TimeZone) -> Self {
        Self {
            tz,
            close_of_business: None,
            years: BTreeSet::new(),
            holidays: BTreeSet::new(),
            makeup_workdays: BTreeSet::new(),
            drill_day: None,
        }
    }

    /// A weekends-only calendar in the IANA time zone `name` (e.g. `"Asia/Shanghai"`).
    pub fn for_time_zone(name: &str) -> Result<Self, CalendarError> {
        TimeZone::get(name)
            .map(Self::new)
            .map_err(|_| CalendarError::UnknownTimeZone {
                name: name.to_owned(),
            })
    }

    /// Builds a calendar from the plain fields a `Regulation` carries: a time-zone name, an
    /// optional close of business (`None` = 24:00) and, per year, its holidays and make-up
    /// working days. Every check of [`WorkCalendar::with_year`] applies.
    pub fn from_parts(
        tz_name: &str,
        close_of_business: Option<Time>,
        years: impl IntoIterator<Item = (i16, Vec<Date>, Vec<Date>)>,
    ) -> Result<Self, CalendarError> {
        let mut calendar = Self::for_time_zone(tz_name)?;
        if let Some(close) = close_of_business {
            calendar = calendar.with_close_of_business(close)?;
        }
        for (year, holidays, makeup_workdays) in years {
            calendar = calendar.with_year(year, holidays, makeup_workdays)?;
        }
        Ok(calendar)
    }

    /// Ends each working day at `close` local time instead of 24:00 (Civil Code art. 203).
    ///
    /// `00:00` is refused: a day that closes as it opens has no business hours, and deadlines
    /// would fall on the previous day.
    pub fn with_close_of_business(mut self, close: Time) -> Result<Self, CalendarError> {
        if close == Time::midnight() {
            return Err(CalendarError::CloseAtMidnight);
        }
        self.close_of_business = Some(close);
        Ok(self)
    }

    /// Drill mode, for demos, tests and alert drills (DESIGN.md, "SLA engine"): every working
    /// day lasts `length` of wall-clock time, counted from the trigger instant, so "within N
    /// working days" ends `N × length` after the trigger. Weekends, holidays and the close of
    /// business no longer matter to [`deadline`](Self::deadline).
    ///
    /// Refuses a length that is not positive or longer than a day: a drill is faster than the
    /// real clock, never slower.
    pub fn with_drill_day(mut self, length: SignedDuration) -> Result<Self, CalendarError> {
        if !length.is_positive() || length > SignedDuration::from_hours(24) {
            return Err(CalendarError::DrillDayLength { length });
        }
        self.drill_day = Some(length);
        Ok(self)
    }

    /// The length of a drill-mode working day, if the calendar is in drill mode.
    pub fn drill_day(&self) -> Option<SignedDuration> {
        self.drill_day
    }

    /// Adds one year's data: the dates that are not working days (`holidays`, weekend dates
    /// allowed) and the weekend dates that are (`makeup_workdays`, 调休).
    ///
    /// Refuses a year given twice, a date outside `year`, a make-up day that is not a Saturday
    /// or Sunday, and a date listed both ways. Duplicates within one list are harmless.
    pub fn with_year(
        mut self,
        year: i16,
        holidays: impl IntoIterator<Item = Date>,
        makeup_workdays: impl IntoIterator<Item = Date>,
    ) -> Result<Self, CalendarError> {
        if self.years.contains(&year) {
            return Err(CalendarError::DuplicateYear { year });
        }
        let holidays: BTreeSet<Date> = holidays.into_iter().collect();
        let makeup_workdays: BTreeSet<Date> = makeup_workdays.into_iter().collect();
        for &date in holidays.iter().chain(&makeup_workdays) {
            if date.year() != year {
                return Err(CalendarError::DateOutsideYear { date, year });
            }
        }
        for &date in &makeup_workdays {
            if !is_weekend(date) {
                return Err(CalendarError::MakeupDayNotWeekend {
                    date,
                    weekday: date.weekday(),
                });
            }
            if holidays.contains(&date) {
                return Err(CalendarError::HolidayAndMakeupDay { date });
            }
        }
        self.insert_year(year, holidays, makeup_workdays);
        Ok(self)
    }

    /// Adds a year's data without checking it; for built-in data whose validity a test proves.
    fn insert_year(
        &mut self,
        year: i16,
        holidays: impl IntoIterator<Item = Date>,
        makeup: impl IntoIterator<Item = Date>,
    ) {
        self.years.insert(year);
        self.holidays.extend(holidays);
        self.makeup_workdays.extend(makeup);
    }

    /// The time zone local dates are taken in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The close of business; `None` means 24:00 (the start of the next calendar day).
    pub fn close_of_business(&self) -> Option<Time> {
        self.close_of_business
    }

    /// Whether holiday data was given for `year`. Without it the calendar counts only weekends
    /// as days off that year, which is almost certainly wrong in China: callers should warn.
    pub fn covers(&self, year: i16) -> bool {
        self.years.contains(&year)
    }

    /// The years holiday data was given for, in ascending order.
    pub fn years(&self) -> impl Iterator<Item = i16> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day: a make-up working day, or a Monday to Friday that is
    /// not a holiday.
    pub fn is_working_day(&self, date: Date) -> bool {
        if self.makeup_workdays.contains(&date) {
            return true;
        }
        !is_weekend(date) && !self.holidays.contains(&date)
    }

    /// The local date of `instant` in the calendar's time zone.
    pub fn local_date(&self, instant: Timestamp) -> Date {
        self.tz.to_datetime(instant).date()
    }

    /// The first working day strictly after `date`.
    ///
    /// Fails with [`CalendarError::NoWorkingDay`] after [`MAX_NON_WORKING_RUN`] non-working
    /// days, and with [`CalendarError::OutOfRange`] past jiff's last date (9999-12-31).
    pub fn next_working_day(&self, date: Date) -> Result<Date, CalendarError> {
        let mut day = date;
        for _ in 0..MAX_NON_WORKING_RUN {
            day = day.tomorrow()?;
            if self.is_working_day(day) {
                return Ok(day);
            }
        }
        Err(CalendarError::NoWorkingDay {
            after: date,
            searched_days: MAX_NON_WORKING_RUN,
        })
    }

    /// The `n`-th working day after `date` (`date` itself never counts); `date` itself when
    /// `n` is 0.
    pub fn nth_working_day_after(&self, date: Date, n: u32) -> Result<Date, CalendarError> {
        let mut day = date;
        let mut remaining = n;
        // Past the last listed date only weekends matter, so whole weeks can be skipped: this
        // keeps an absurd override (billions of working days) from walking day by day.
        let data_end = self
            .holidays
            .last()
            .max(self.makeup_workdays.last())
            .copied();
        while remaining > 0 {
            if data_end.is_none_or(|end| day >= end) && remaining > 5 {
                return weekdays_only_nth(day, remaining);
            }
            day = self.next_working_day(day)?;
            remaining -= 1;
        }
        Ok(day)
    }

    /// The instant the working day `date` ends: its close of business, or 24:00 (the start of
    /// the next calendar day) when none is set.
    ///
    /// A local time that a daylight-saving change skips or repeats resolves to the *later*
    /// instant, so a day never ends before its wall clock has shown the closing time for the
    /// last time.
    pub fn end_of_day(&self, date: Date) -> Result<Timestamp, CalendarError> {
        let end = match self.close_of_business {
            Some(close) => date.to_datetime(close),
            None => date.tomorrow()?.to_datetime(Time::midnight()),
        };
        Ok(self.tz.to_ambiguous_timestamp(end).later()?)
    }

    /// The deadline of a step that must be done "within `working_days` working days" of
    /// `trigger` (REQUIREMENTS.md, "How a deadline is counted").
    ///
    /// The trigger's local date never counts, whatever the hour (an event at 23:59 and one at
    /// 00:01 on the same local date have the same deadline); the deadline is
    /// [`end_of_day`](Self::end_of_day) of the `working_days`-th working day after it.
    /// `working_days == 0` means the end of the trigger's own local day, working or not (with
    /// an early close of business, that can be before the trigger).
    ///
    /// The result `D` satisfies, for every `n`:
    /// `working_days_between(trigger, D - 1ns) == n` — the last instant before the deadline
    /// lies on the `n`-th working day. With the default 24:00 close, `D` is the start of the
    /// next calendar day; with an earlier close it is that time on the `n`-th working day.
    ///
    /// In drill mode ([`with_drill_day`](Self::with_drill_day)) the deadline is
    /// `trigger + working_days × length`.
    pub fn deadline(
        &self,
        trigger: Timestamp,
        working_days: u32,
    ) -> Result<Timestamp, CalendarError> {
        if let Some(length) = self.drill_day {
            let span = length
                .checked_mul(i32::try_from(working_days).unwrap_or(i32::MAX))
                .ok_or(CalendarError::DrillDayLength { length })?;
            return Ok(trigger.checked_add(span)?);
        }
        let day = self.nth_working_day_after(self.local_date(trigger), working_days)?;
        self.end_of_day(day)
    }

    /// The number of working days `d` with `local_date(from) < d <= local_date(to)`; negative
    /// when `to` is before `from`, so the count is antisymmetric and additive
    /// (`between(a, b) + between(b, c) == between(a, c)`).
    pub fn working_days_between(&self, from: Timestamp, to: Timestamp) -> i64 {
        self.working_days_between_dates(self.local_date(from), self.local_date(to))
    }

    /// [`working_days_between`](Self::working_days_between) on local dates: the working days
    /// `d` with `from < d <= to`, negated when `to < from`.
    pub fn working_days_between_dates(&self, from: Date, to: Date) -> i64 {
        if from <= to {
            self.count_working_days(from, to)
        } else {
            -self.count_working_days(to, from)
        }
    }

    /// The working days in `(from, to]`, with `from <= to`, in time proportional to the number
    /// of listed dates in the range rather than to its length.
    fn count_working_days(&self, from: Date, to: Date) -> i64 {
        let range = (Excluded(from), Included(to));
        let holidays_on_weekdays = self
            .holidays
            .range(range)
            .filter(|&&d| !is_weekend(d))
            .count();
        // Make-up days are weekend days by construction (`with_year`).
        let makeup_days = self.makeup_workdays.range(range).count();
        weekdays_between(from, to) - to_i64(holidays_on_weekdays) + to_i64(makeup_days)
    }
}

/// Whether `date` is a Saturday or a Sunday.
fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Monday to Friday dates in `(from, to]`, with `from <= to`.
fn weekdays_between(from: Date, to: Date) -> i64 {
    let days = from.duration_until(to).as_secs() / 86_400;
    let start = i64::from(from.weekday().to_monday_zero_offset());
    let tail = (1..=days % 7).filter(|k| (start + k) % 7 < 5).count();
    days / 7 * 5 + to_i64(tail)
}

/// The `n`-th Monday-to-Friday after `date`, counting only weekends as days off.
fn weekdays_only_nth(date: Date, n: u32) -> Result<Date, CalendarError> {
    if n == 0 {
        return Ok(date);
    }
    // From a weekday, every five working days are exactly one week later.
    let mut day = next_weekday(date)?;
    day = day.checked_add(Span::new().try_weeks(i64::from((n - 1) / 5))?)?;
    for _ in 0..(n - 1) % 5 {
        day = next_weekday(day)?;
    }
    Ok(day)
}

/// The first Monday-to-Friday strictly after `date`.
fn next_weekday(date: Date) -> Result<Date, CalendarError> {
    let mut day = date.tomorrow()?;
    while is_weekend(day) {
        day = day.tomorrow()?;
    }
    Ok(day)
}
