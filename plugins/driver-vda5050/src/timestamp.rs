//! The header `timestamp`: ISO 8601 in UTC with milliseconds
//! (`2026-11-26T11:22:44.123Z`), from the host's milliseconds since the
//! Unix epoch.
//!
//! Written here rather than taken from a date crate: it is one conversion
//! from days to a civil date, and the component stays small.

use std::fmt::Write;

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

/// `now_ms` (milliseconds since 1970-01-01T00:00:00Z) as
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`. Years past 9999 are written with more
/// digits rather than wrapped.
pub fn iso8601_utc(now_ms: u64) -> String {
    let days = now_ms / DAY_MS;
    let ms_of_day = now_ms % DAY_MS;
    let (year, month, day) = civil_from_days(days);
    let hours = ms_of_day / 3_600_000;
    let minutes = ms_of_day / 60_000 % 60;
    let seconds = ms_of_day / 1_000 % 60;
    let millis = ms_of_day % 1_000;
    let mut text = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z"
    );
    text
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: shift the epoch to 0000-03-01 so
/// the leap day is the last day of a year, split into 400-year eras of
/// 146,097 days, then into years of the era, then months of 153 days per
/// five. Unsigned throughout: the host's clock never precedes 1970, and
/// `u64` milliseconds reach only year 584,556,019, well within range.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_and_an_ordinary_instant_are_formatted_with_milliseconds() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(68_256), "1970-01-01T00:01:08.256Z");
        assert_eq!(iso8601_utc(1_795_692_164_123), "2026-11-26T11:22:44.123Z");
    }

    #[test]
    fn leap_days_of_leap_years_are_dates() {
        // 2000 is a leap year (divisible by 400), 2024 an ordinary one.
        assert_eq!(iso8601_utc(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(iso8601_utc(951_868_800_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn century_years_not_divisible_by_400_have_no_leap_day() {
        assert_eq!(iso8601_utc(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso8601_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn years_end_on_the_last_of_december() {
        assert_eq!(iso8601_utc(94_694_399_999), "1972-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc(946_684_799_999), "1999-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc(946_684_800_000), "2000-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..146_097 {
            let (year, month, day) = civil_from_days(days);
            let (last_year, last_month, last_day) = previous;
            let next_day = (year, month, day) == (last_year, last_month, last_day + 1);
            let next_month = (year, month, day) == (last_year, last_month + 1, 1);
            let next_year = (year, month, day) == (last_year + 1, 1, 1) && last_month == 12;
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (year, month, day)
            );
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let month_days =
                [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            assert!(day <= month_days[month as usize - 1], "{:?}", (year, month, day));
            previous = (year, month, day);
        }
    }

    #[test]
    fn the_largest_clock_value_is_formatted_without_overflow() {
        assert!(iso8601_utc(u64::MAX).ends_with(".615Z"));
    }
}
