//! Dates and times of the school day: ISO dates in the school's local time, minutes since
//! midnight, weeks from Monday, A/B week parity. Pure functions but for [`now`], the one reading
//! of the clock for school dates; never reads the system time zone.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Date, Duration, Month, OffsetDateTime, UtcOffset, Weekday};

/// Parse `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// `YYYY-MM-DD`.
pub fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// `16/10/2026`, as dates are written in Togo.
pub fn french(d: Date) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), d.month() as u8, d.year())
}

/// Parse a time of day `HH:MM` (or `HHhMM`, `H:MM`, `HH`) into minutes since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (h, m) = match s.split_once([':', 'h']) {
        Some((h, "")) => (h, "0"),
        Some((h, m)) => (h, m),
        None => (s.as_str(), "0"),
    };
    if h.trim().len() > 2 || m.trim().len() > 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// Minutes since midnight as `07:30`.
pub fn hm(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A duration in minutes as hours, as school records count them: `2 h`, `1 h 30`, `0 h 15`.
pub fn hours(minutes: i64) -> String {
    match minutes % 60 {
        0 => format!("{} h", minutes / 60),
        m => format!("{} h {m:02}", minutes / 60),
    }
}

/// 1 = Monday … 7 = Sunday.
pub fn weekday_number(d: Date) -> i64 {
    i64::from(d.weekday().number_from_monday())
}

/// The Monday of the week of `d`.
pub fn monday_of(d: Date) -> Date {
    d - Duration::days(weekday_number(d) - 1)
}

/// Is the week of `d` an "A" week, counting from the Monday `week_a`?
pub fn is_week_a(d: Date, week_a: Date) -> bool {
    let weeks = (monday_of(d) - monday_of(week_a)).whole_weeks();
    weeks.rem_euclid(2) == 0
}

/// French day names, Monday first (index = weekday number − 1).
pub const DAY_KEYS: [&str; 7] = [
    "day.1", "day.2", "day.3", "day.4", "day.5", "day.6", "day.7",
];

/// The school's clock: today's date and the minute of the day, at the configured offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub date: Date,
    pub minute: i64,
}

pub fn now(utc_offset_minutes: i32) -> Now {
    at(utc_now(), utc_offset_minutes)
}

/// The school's clock, one per box (in `AppState`), handed to whatever needs "today": the
/// date and minute at the school's configured offset from UTC. Every decision that depends on
/// the day — a pupil's minority, the current period, the lesson under way — reads it here, so
/// that two parts of the box never disagree about which day it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub utc_offset_minutes: i32,
}

impl Clock {
    pub fn of(config: &crate::config::Config) -> Clock {
        Clock {
            utc_offset_minutes: config.utc_offset_minutes,
        }
    }

    pub fn now(&self) -> Now {
        now(self.utc_offset_minutes)
    }

    pub fn today(&self) -> Date {
        self.now().date
    }

    /// Today as `YYYY-MM-DD`, as dates are stored.
    pub fn today_iso(&self) -> String {
        iso(self.today())
    }

    /// A unix time as the school's date and minute.
    pub fn local(&self, unix: i64) -> Now {
        at(
            OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            self.utc_offset_minutes,
        )
    }
}

/// Seconds added to the system clock for the school's dates (0 but for a demo set on a chosen
/// day, and the tests). Session lifetimes, audit times and certificates keep the real clock.
static SHIFT_SECS: AtomicI64 = AtomicI64::new(0);

/// The instant the school's dates are read from: the system clock, moved by [`set_clock`].
pub fn utc_now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(SHIFT_SECS.load(Ordering::Relaxed))
}

/// From now on, school dates run as if the clock had read `at` at this instant (it keeps
/// ticking from there). For `serve --demo --date`, where a training session in the holidays
/// still needs a school day with lessons, and for tests, which must not depend on the day
/// they run.
pub fn set_clock(at: OffsetDateTime) {
    let shift = (at - OffsetDateTime::now_utc()).whole_seconds();
    SHIFT_SECS.store(shift, Ordering::Relaxed);
}

pub fn at(t: OffsetDateTime, utc_offset_minutes: i32) -> Now {
    let offset = UtcOffset::from_whole_seconds(utc_offset_minutes.clamp(-12 * 60, 14 * 60) * 60)
        .unwrap_or(UtcOffset::UTC);
    let local = t.to_offset(offset);
    Now {
        date: local.date(),
        minute: i64::from(local.hour()) * 60 + i64::from(local.minute()),
    }
}

pub fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn dates_and_times_parse_strictly() {
        assert_eq!(parse_date("2026-11-23"), Some(date!(2026 - 11 - 23)));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("23/11/2026"), None);
        assert_eq!(parse_time("07:30"), Some(450));
        assert_eq!(parse_time("7h30"), Some(450));
        assert_eq!(parse_time("15h"), Some(900));
        assert_eq!(parse_time("24:00"), Some(1440));
        assert_eq!(parse_time("25:00"), None);
        assert_eq!(parse_time("10:60"), None);
        assert_eq!(parse_time("midi"), None);
        assert_eq!(hm(450), "07:30");
        assert_eq!(hours(120), "2 h");
        assert_eq!(hours(90), "1 h 30");
        assert_eq!(hours(5), "0 h 05");
    }

    #[test]
    fn weeks_start_on_monday_and_alternate() {
        let monday = date!(2026 - 11 - 23);
        assert_eq!(weekday_number(monday), 1);
        assert_eq!(monday_of(date!(2026 - 11 - 29)), monday);
        assert!(is_week_a(date!(2026 - 11 - 25), monday));
        assert!(!is_week_a(date!(2026 - 12 - 02), monday));
        assert!(is_week_a(date!(2026 - 12 - 09), monday));
        assert!(
            !is_week_a(date!(2026 - 11 - 16), monday),
            "the week before is B"
        );
    }

    #[test]
    fn the_school_clock_uses_its_offset() {
        let t = datetime!(2026-11-23 23:30 UTC);
        assert_eq!(at(t, 0).minute, 23 * 60 + 30);
        let plus_one = at(t, 60);
        assert_eq!(plus_one.date, date!(2026 - 11 - 24));
        assert_eq!(plus_one.minute, 30);
    }
}
