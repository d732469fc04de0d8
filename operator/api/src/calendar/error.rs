//! What can go wrong building or querying a [`WorkCalendar`](super::WorkCalendar).

use jiff::civil::{Date, Weekday};

/// An invalid calendar, or a query the calendar cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The time-zone name is not in the tz database.
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone {
        /// The name as given.
        name: String,
    },
    /// A close of business at 00:00 would end each day as it begins.
    #[error("close of business must be after 00:00")]
    CloseAtMidnight,
    /// The same year's data was given twice.
    #[error("year {year} is listed more than once")]
    DuplicateYear {
        /// The repeated year.
        year: i16,
    },
    /// A holiday or make-up working day listed under a year it does not belong to.
    #[error("{date} is listed under year {year}")]
    DateOutsideYear {
        /// The misplaced date.
        date: Date,
        /// The year it was listed under.
        year: i16,
    },
    /// A make-up working day (调休) that is not a Saturday or Sunday: weekdays are working days
    /// already, so this is a typo in the data.
    #[error("make-up working day {date} is a {weekday:?}, not a Saturday or Sunday")]
    MakeupDayNotWeekend {
        /// The listed date.
        date: Date,
        /// Its day of the week.
        weekday: Weekday,
    },
    /// A date listed both as a holiday and as a make-up working day.
    #[error("{date} is listed both as a holiday and as a make-up working day")]
    HolidayAndMakeupDay {
        /// The contradictory date.
        date: Date,
    },
    /// A drill-mode working day that is not positive or longer than a calendar day, or a
    /// drill deadline too far away to represent.
    #[error("a drill working day must last between 1 second and 24 hours, not {length:#}")]
    DrillDayLength {
        /// The length as given.
        length: jiff::SignedDuration,
    },
    /// No working day follows `after` within `searched_days` days.
    #[error("no working day within {searched_days} days after {after}")]
    NoWorkingDay {
        /// The date the search started after.
        after: Date,
        /// How many days were searched.
        searched_days: u32,
    },
    /// A date or instant beyond what jiff represents (years -9999 to 9999).
    #[error("date out of range: {0}")]
    OutOfRange(#[from] jiff::Error),
}

impl CalendarError {
    /// A stable, low-cardinality label for metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::UnknownTimeZone { .. } => "unknown_time_zone",
            Self::CloseAtMidnight
            | Self::DuplicateYear { .. }
            | Self::DateOutsideYear { .. }
            | Self::MakeupDayNotWeekend { .. }
            | Self::HolidayAndMakeupDay { .. }
            | Self::DrillDayLength { .. } => "invalid_calendar",
            Self::NoWorkingDay { .. } => "no_working_day",
            Self::OutOfRange(_) => "out_of_range",
        }
    }
}
