//! The calendar month a report covers, bounded by midnights in the regulation's time zone.

use std::{fmt, str::FromStr};

use jiff::{Timestamp, civil, tz::TimeZone};
use serde::{Serialize, Serializer};

/// A calendar month, written `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i16,
    month: i8,
}

/// Why a month cannot be read or bounded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    /// Not `YYYY-MM`.
    #[error("{0:?} is not a month: write it YYYY-MM, e.g. 2026-11")]
    Syntax(String),
    /// A month number outside 1–12, or a year outside 1970–9998.
    #[error("{0:?} is not a month: the year must be 1970–9998 and the month 01–12")]
    Range(String),
    /// Its first midnight cannot be placed in the time zone.
    #[error("the start of {month} cannot be placed in the time zone: {reason}")]
    Bounds {
        /// The month.
        month: Month,
        /// What jiff said.
        reason: String,
    },
}

impl Month {
    /// Month `month` (1–12) of `year` (1970–9998).
    pub fn new(year: i16, month: i8) -> Result<Self, MonthError> {
        if (1970..=9998).contains(&year) && (1..=12).contains(&month) {
            Ok(Self { year, month })
        } else {
            Err(MonthError::Range(format!("{year:04}-{month:02}")))
        }
    }

    /// The month `instant` falls in, in `tz`.
    pub fn of(instant: Timestamp, tz: &TimeZone) -> Self {
        let date = tz.to_datetime(instant).date();
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The year.
    pub fn year(self) -> i16 {
        self.year
    }

    /// The month number, 1–12.
    pub fn month(self) -> i8 {
        self.month
    }

    /// The following month.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The instant the month starts in `tz`: 00:00 local time on its first day.
    pub fn start(self, tz: &TimeZone) -> Result<Timestamp, MonthError> {
        civil::date(self.year, self.month, 1)
            .to_datetime(civil::Time::midnight())
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| MonthError::Bounds {
                month: self,
                reason: e.to_string(),
            })
    }

    /// `[start, end)` of the month in `tz`: from 00:00 on its first day to 00:00 on the first
    /// day of the next month.
    pub fn bounds(self, tz: &TimeZone) -> Result<(Timestamp, Timestamp), MonthError> {
        Ok((self.start(tz)?, self.next().start(tz)?))
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || MonthError::Syntax(s.to_owned());
        let (year, month) = s.split_once('-').ok_or_else(syntax)?;
        let digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return Err(syntax());
        }
        let year: i16 = year.parse().map_err(|_| syntax())?;
        let month: i8 = month.parse().map_err(|_| syntax())?;
        Self::new(year, month).map_err(|_| MonthError::Range(s.to_owned()))
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn a_month_is_written_yyyy_mm() {
        assert_eq!(
            "2026-11".parse::<Month>().unwrap(),
            Month::new(2026, 11).unwrap()
        );
        assert_eq!(Month::new(2026, 1).unwrap().to_string(), "2026-01");
        for bad in [
            "2026-1",
            "26-11",
            "2026-11-01",
            "2026/11",
            "november",
            "",
            "２０２６-11",
        ] {
            assert!(
                matches!(bad.parse::<Month>(), Err(MonthError::Syntax(_))),
                "{bad}"
            );
        }
        for bad in ["2026-00", "2026-13", "1969-12"] {
            assert!(
                matches!(bad.parse::<Month>(), Err(MonthError::Range(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sup_1_a_month_runs_from_midnight_to_midnight_in_shanghai() {
        let (from, until) = Month::new(2026, 11).unwrap().bounds(&shanghai()).unwrap();
        assert_eq!(from, "2026-10-31T16:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(until, "2026-11-30T16:00:00Z".parse::<Timestamp>().unwrap());
        let (_, until) = Month::new(2026, 12).unwrap().bounds(&shanghai()).unwrap();
        assert_eq!(until, "2026-12-31T16:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn the_month_of_an_instant_is_its_local_month() {
        let just_after = "2026-10-31T16:30:00Z".parse().unwrap();
        assert_eq!(Month::of(just_after, &shanghai()).to_string(), "2026-11");
        assert_eq!(Month::of(just_after, &TimeZone::UTC).to_string(), "2026-10");
        assert_eq!(Month::new(2026, 12).unwrap().next().to_string(), "2027-01");
    }
}
