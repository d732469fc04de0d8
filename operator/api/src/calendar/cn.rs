//! The PRC's 2026 public holidays and make-up working days, as published by the General Office
//! of the State Council on 2025-11-04 (国务院办公厅关于2026年部分节假日安排的通知,
//! 国办发明电〔2025〕7号; text checked against Xinhua's release). Later years are data the
//! authority adds to its `Regulation`; this table is a convenience and a test fixture.

use jiff::civil::{Date, date};

use super::WorkCalendar;

/// The days off of 2026: every date of the seven holiday periods, weekend dates included.
pub const CN_2026_HOLIDAYS: &[Date] = &[
    // 元旦: 1 Jan (Thu) – 3 Jan (Sat).
    date(2026, 1, 1),
    date(2026, 1, 2),
    date(2026, 1, 3),
    // 春节: 15 Feb (Sun) – 23 Feb (Mon).
    date(2026, 2, 15),
    date(2026, 2, 16),
    date(2026, 2, 17),
    date(2026, 2, 18),
    date(2026, 2, 19),
    date(2026, 2, 20),
    date(2026, 2, 21),
    date(2026, 2, 22),
    date(2026, 2, 23),
    // 清明节: 4 Apr (Sat) – 6 Apr (Mon).
    date(2026, 4, 4),
    date(2026, 4, 5),
    date(2026, 4, 6),
    // 劳动节: 1 May (Fri) – 5 May (Tue).
    date(2026, 5, 1),
    date(2026, 5, 2),
    date(2026, 5, 3),
    date(2026, 5, 4),
    date(2026, 5, 5),
    // 端午节: 19 Jun (Fri) – 21 Jun (Sun).
    date(2026, 6, 19),
    date(2026, 6, 20),
    date(2026, 6, 21),
    // 中秋节: 25 Sep (Fri) – 27 Sep (Sun).
    date(2026, 9, 25),
    date(2026, 9, 26),
    date(2026, 9, 27),
    // 国庆节: 1 Oct (Thu) – 7 Oct (Wed).
    date(2026, 10, 1),
    date(2026, 10, 2),
    date(2026, 10, 3),
    date(2026, 10, 4),
    date(2026, 10, 5),
    date(2026, 10, 6),
    date(2026, 10, 7),
];

/// The weekend dates of 2026 that are working days (调休, 上班).
pub const CN_2026_MAKEUP_WORKDAYS: &[Date] = &[
    date(2026, 1, 4),   // Sun, after New Year
    date(2026, 2, 14),  // Sat, before the Spring Festival
    date(2026, 2, 28),  // Sat, after the Spring Festival
    date(2026, 5, 9),   // Sat, after Labour Day
    date(2026, 9, 20),  // Sun, before National Day
    date(2026, 10, 10), // Sat, after National Day
];

/// An Asia/Shanghai calendar, days ending at 24:00, with the official 2026 holidays and make-up
/// working days ([`CN_2026_HOLIDAYS`], [`CN_2026_MAKEUP_WORKDAYS`]); other years weekends only.
pub fn calendar_2026_cn() -> WorkCalendar {
    let mut calendar = WorkCalendar::default();
    // Validity (every make-up day a weekend, no overlap, all in 2026) is proven by
    // `official_2026_data_passes_validation` in the tests.
    calendar.insert_year(
        2026,
        CN_2026_HOLIDAYS.iter().copied(),
        CN_2026_MAKEUP_WORKDAYS.iter().copied(),
    );
    calendar
}
