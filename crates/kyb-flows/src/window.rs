//! Maintenance windows: the weekly UTC slots in which heavy database work (VACUUM, REINDEX) may
//! run, and the emergency override.

use std::fmt;
use std::str::FromStr;
use time::{Duration, OffsetDateTime, Weekday};

/// One weekly slot, e.g. `Sun 02:00-06:00` (UTC). An end before the start crosses midnight
/// into the next day; `24:00` is the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The day the slot starts.
    pub day: Weekday,
    /// Start, in minutes after midnight UTC.
    pub start_min: u16,
    /// End, in minutes after midnight UTC (`1440` for 24:00).
    pub end_min: u16,
}

/// A window spelling that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a window like `Sun 02:00-06:00` (UTC): {why}")]
pub struct WindowError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

const WEEK_MIN: i64 = 7 * 1440;

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Window, WindowError> {
        let err = |why| WindowError { text: text.to_owned(), why };
        let (day, times) =
            text.trim().split_once(' ').ok_or_else(|| err("expected a day, a space, then times"))?;
        let day = day.trim().to_ascii_lowercase();
        let prefix = day.get(..3).unwrap_or_default();
        let day = DAYS
            .iter()
            .find(|(name, _)| *name == prefix && is_day_name(&day))
            .map(|(_, d)| *d)
            .ok_or_else(|| err("the day must be Mon, Tue, Wed, Thu, Fri, Sat or Sun"))?;
        // The times are UTC; saying so is allowed.
        let times = times.trim();
        let times = times.strip_suffix("UTC").or_else(|| times.strip_suffix("utc")).unwrap_or(times);
        let (start, end) = times.trim().split_once('-').ok_or_else(|| err("expected HH:MM-HH:MM"))?;
        let start_min = minutes(start).ok_or_else(|| err("the start must be HH:MM, 00:00 to 23:59"))?;
        let end_min = minutes(end).ok_or_else(|| err("the end must be HH:MM, 00:00 to 24:00"))?;
        if start_min == 1440 {
            return Err(err("the start must be before 24:00"));
        }
        if start_min == end_min {
            return Err(err("the window is empty (start equals end)"));
        }
        Ok(Window { day, start_min, end_min })
    }
}

fn is_day_name(day: &str) -> bool {
    const FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    FULL.iter().any(|f| f.starts_with(day))
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = DAYS.iter().find(|(_, d)| *d == self.day).map_or("?", |(n, _)| n);
        let mut day = day.to_owned();
        day[..1].make_ascii_uppercase();
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{day} {}-{} UTC", hm(self.start_min), hm(self.end_min))
    }
}

impl Window {
    /// Minutes from Monday 00:00 UTC to the start, and the length.
    fn span(&self) -> (i64, i64) {
        let start = i64::from(self.day.number_days_from_monday()) * 1440 + i64::from(self.start_min);
        let len = if self.end_min > self.start_min {
            i64::from(self.end_min - self.start_min)
        } else {
            i64::from(self.end_min) + 1440 - i64::from(self.start_min)
        };
        (start, len)
    }
}

/// Minutes since Monday 00:00 UTC of `now`'s week.
fn week_minute(now: OffsetDateTime) -> i64 {
    let now = now.to_offset(time::UtcOffset::UTC);
    i64::from(now.weekday().number_days_from_monday()) * 1440
        + i64::from(now.hour()) * 60
        + i64::from(now.minute())
}

/// Where heavy work may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// False: heavy work runs whenever it is started.
    pub enforce: bool,
    /// The slots.
    pub allowed: Vec<Window>,
}

impl Default for Windows {
    /// The runbook's: Sunday 02:00-06:00 and Wednesday 02:00-04:00 UTC.
    fn default() -> Windows {
        Windows {
            enforce: true,
            allowed: vec![
                Window { day: Weekday::Sunday, start_min: 120, end_min: 360 },
                Window { day: Weekday::Wednesday, start_min: 120, end_min: 240 },
            ],
        }
    }
}

impl Windows {
    /// True when heavy work may start at `now`.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        !self.enforce || self.minutes_to_open(now) == Some(0)
    }

    /// When the next window opens (`now` itself when one is open), or None without windows.
    pub fn next_open(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let wait = self.minutes_to_open(now)?;
        if wait == 0 {
            return Some(now);
        }
        let start_of_minute = now.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        Some(start_of_minute + Duration::minutes(wait))
    }

    fn minutes_to_open(&self, now: OffsetDateTime) -> Option<i64> {
        let at = week_minute(now);
        self.allowed
            .iter()
            .map(|w| {
                let (start, len) = w.span();
                // Offset into the window, wrapping round the week.
                let into = (at - start).rem_euclid(WEEK_MIN);
                if into < len { 0 } else { WEEK_MIN - into }
            })
            .min()
    }

    /// The slots as one line, for reports.
    pub fn describe(&self) -> String {
        self.allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn w(s: &str) -> Window {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(w("Sun 02:00-06:00"), Window { day: Weekday::Sunday, start_min: 120, end_min: 360 });
        assert_eq!(w("wednesday 02:00-04:00").to_string(), "Wed 02:00-04:00 UTC");
        assert_eq!(w("Sat 23:00-24:00").end_min, 1440);
        assert_eq!(w("Sun 02:00-06:00 UTC"), w("Sun 02:00-06:00"), "what Display prints reads back");
        for bad in [
            "Sun",
            "Sun 2:00-6:00",
            "Xyz 02:00-03:00",
            "Sun 06:00-06:00",
            "Sun 25:00-26:00",
            "Sun 02:00",
            "Su 02:00-03:00",
            "Sünday 02:00-03:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn open_and_next() {
        let ws = Windows::default();
        // 2026-11-29 is a Sunday.
        assert!(ws.is_open(datetime!(2026-11-29 02:00 UTC)));
        assert!(ws.is_open(datetime!(2026-11-29 05:59 UTC)));
        assert!(!ws.is_open(datetime!(2026-11-29 06:00 UTC)));
        assert!(!ws.is_open(datetime!(2026-11-26 19:30 UTC)));
        assert_eq!(ws.next_open(datetime!(2026-11-26 19:30:15 UTC)), Some(datetime!(2026-11-29 02:00 UTC)));
        assert_eq!(ws.next_open(datetime!(2026-11-29 07:00 UTC)), Some(datetime!(2026-12-02 02:00 UTC)));
        let off = Windows { enforce: false, ..Windows::default() };
        assert!(off.is_open(datetime!(2026-11-26 19:30 UTC)));
    }

    #[test]
    fn a_window_may_cross_midnight_and_the_week() {
        let ws = Windows { enforce: true, allowed: vec![w("Sun 23:00-01:00")] };
        assert!(ws.is_open(datetime!(2026-11-29 23:30 UTC)));
        assert!(ws.is_open(datetime!(2026-11-30 00:30 UTC)), "Monday 00:30 is inside");
        assert!(!ws.is_open(datetime!(2026-11-30 01:00 UTC)));
        assert_eq!(ws.next_open(datetime!(2026-11-30 01:00 UTC)), Some(datetime!(2026-12-06 23:00 UTC)));
    }
}
