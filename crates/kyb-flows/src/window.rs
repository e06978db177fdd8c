//! Maintenance windows: the weekly UTC slots in which heavy database work (VACUUM, REINDEX) may
//! run, and the emergency override.

use kyb_core::config::FieldError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
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
    // `parse` alone would take a sign: `+6:00`.
    let two_digits = |f: &str| f.len() == 2 && f.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
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

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Written as it is read: `Sun 02:00-06:00`.
impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.to_string();
        s.serialize_str(text.strip_suffix(" UTC").unwrap_or(&text))
    }
}

impl schemars::JsonSchema for Window {
    fn schema_name() -> Cow<'static, str> {
        "Window".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
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

/// Minutes since Monday 00:00 UTC of `now`'s week. From the Unix time, which any offset
/// shares, since converting to UTC fails near the ends of the calendar.
fn week_minute(now: OffsetDateTime) -> i64 {
    // 1970-01-01 was a Thursday, three days after a Monday.
    (now.unix_timestamp().div_euclid(60) + 3 * 1440).rem_euclid(WEEK_MIN)
}

/// Heavy database work (VACUUM, REINDEX), and restarts of the monitoring stack, start only inside
/// one of these weekly UTC slots; outside them it is not run, and the task is a Warn that says
/// when the next one opens. `--emergency` (on `kyb-maint` and `kyb-dbmaint vacuum|reindex`) runs it
/// anyway. ANALYZE and the reports are not held to the windows.
///
/// ```toml
/// [window]
/// allowed = ["Sun 02:00-06:00", "Wed 02:00-04:00", "Sat 23:00-01:00"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Windows {
    /// `false`: heavy work runs whenever it is started.
    pub enforce: bool,
    /// The slots, each `Day HH:MM-HH:MM` (UTC; the day as `Mon`..`Sun` or spelled out). An end
    /// before the start crosses midnight; `24:00` ends the day. The defaults are the runbook's.
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
    /// Refuses enforced windows with no slot, which would never let heavy work run.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.enforce && self.allowed.is_empty() {
            return Err(FieldError::new(
                "allowed",
                "no window is given, so VACUUM and REINDEX could never run; list one, or set enforce = false",
            ));
        }
        Ok(())
    }

    /// True when heavy work may start at `now`.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        !self.enforce || self.minutes_to_open(now) == Some(0)
    }

    /// When the next window opens (`now` itself when one is open), in `now`'s offset; None
    /// without windows or past the end of the calendar.
    pub fn next_open(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let wait = self.minutes_to_open(now)?;
        if wait == 0 {
            return Some(now);
        }
        // The start of the UTC minute: an offset may have seconds of its own.
        let into_minute = Duration::seconds(now.unix_timestamp().rem_euclid(60))
            + Duration::nanoseconds(now.nanosecond().into());
        now.checked_sub(into_minute)?.checked_add(Duration::minutes(wait))
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

    /// Whether heavy work may start at `now`, as a run carries it.
    pub fn state(&self, now: OffsetDateTime) -> kyb_core::WindowState {
        if self.is_open(now) {
            kyb_core::WindowState::Open
        } else {
            kyb_core::WindowState::Closed { windows: self.describe(), next_open: self.next_open(now) }
        }
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
            "Sun +2:00-06:00",
            "Sun 02:00-06:+0",
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

    #[test]
    fn next_open_in_any_offset_and_at_the_end_of_the_calendar() {
        let ws = Windows::default();
        // An offset with seconds of its own: the window opens on the UTC minute all the same.
        let offset = time::UtcOffset::from_hms(0, 0, 30).unwrap();
        let now = datetime!(2026-11-26 19:30:15 UTC).to_offset(offset);
        assert_eq!(ws.next_open(now), Some(datetime!(2026-11-29 02:00 UTC).to_offset(offset)));
        // 9999-12-31 is a Friday; the next window would be in the year 10000.
        assert_eq!(ws.next_open(datetime!(9999-12-31 12:00 UTC)), None);
        // Its UTC time is past the calendar's end.
        assert!(!ws.is_open(datetime!(9999-12-31 23:00 -5)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const FULL: [&str; 7] =
            ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

        fn window() -> impl Strategy<Value = Window> {
            (0..7_usize, 0..1440_u16, 1..1440_u16).prop_map(|(d, start_min, len)| Window {
                day: DAYS[d].1,
                start_min,
                // Any end but the start; 24:00 where a window would end at midnight.
                end_min: match (start_min + len) % 1440 {
                    0 => 1440,
                    end => end,
                },
            })
        }

        /// Any instant the `time` crate holds, at any UTC offset (seconds included).
        fn instant() -> impl Strategy<Value = OffsetDateTime> {
            let min =
                OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp() + 86_400;
            let max =
                OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT).unix_timestamp() - 86_400;
            (min..max, 0..1_000_000_000_u32, -86_399..86_400_i32).prop_map(|(t, nanos, offset)| {
                let utc = OffsetDateTime::from_unix_timestamp(t).unwrap().replace_nanosecond(nanos).unwrap();
                utc.to_offset(time::UtcOffset::from_whole_seconds(offset).unwrap())
            })
        }

        /// `HH` (`0..=2` leading) or `MM` (`0..=5` leading), mostly well formed, else misspelled:
        /// one digit or three, a sign, digits other than ASCII, a letter.
        fn field(lead: char) -> impl Strategy<Value = String> {
            prop_oneof![
                12 => proptest::string::string_regex(&format!("[0-{lead}][0-9]")).unwrap(),
                1 => proptest::string::string_regex("[+][0-9]").unwrap(),
                1 => proptest::string::string_regex("[+-]?[0-9]{1,3}").unwrap(),
                1 => proptest::string::string_regex("[٠-٩]{1,2}").unwrap(),
                1 => proptest::string::string_regex("[0-9][a-z]").unwrap(),
            ]
        }

        /// Minutes after midnight for `HH` and `MM` exactly as the grammar allows them.
        fn oracle(h: &str, m: &str, end: bool) -> Option<u16> {
            let two_digits = |f: &str| f.len() == 2 && f.bytes().all(|b| b.is_ascii_digit());
            if !two_digits(h) || !two_digits(m) {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            match (h, m) {
                (24, 0) if end => Some(1440),
                (0..=23, 0..=59) => Some(h * 60 + m),
                _ => None,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(60))]

            /// Any text: a window, or an error that quotes the text; a window prints as text
            /// that reads back as the same window.
            #[test]
            fn any_text_is_a_window_or_a_clear_error(text in prop_oneof![
                any::<String>(),
                "[ A-Za-zé]{0,12} [ 0-9:+-]{0,16}( UTC| utc)?",
            ]) {
                match text.parse::<Window>() {
                    Ok(w) => prop_assert_eq!(w.to_string().parse::<Window>(), Ok(w)),
                    Err(e) => {
                        prop_assert_eq!(&e.text, &text);
                        prop_assert!(e.to_string().contains("is not a window like `Sun 02:00-06:00`"));
                    }
                }
            }

            /// Written the ways an operator would (three letters or the full name, any case,
            /// spaces around the dash, with or without UTC), a window reads as written, and
            /// prints the one way.
            #[test]
            fn written_windows_read_back(
                w in window(),
                letters in 3..=9_usize,
                upper in prop::collection::vec(any::<bool>(), 9),
                spaced in any::<bool>(),
                utc in prop::sample::select(vec!["", " UTC", " utc", "UTC"]),
            ) {
                let full = FULL[w.day.number_days_from_monday() as usize];
                let day: String = full
                    .chars()
                    .take(letters)
                    .zip(upper)
                    .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                    .collect();
                let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
                let dash = if spaced { " - " } else { "-" };
                let text = format!("{day} {}{dash}{}{utc}", hm(w.start_min), hm(w.end_min));
                prop_assert_eq!(text.parse::<Window>(), Ok(w));
                let printed = w.to_string();
                prop_assert!(printed.ends_with(" UTC") && printed.len() == "Sun 02:00-06:00 UTC".len(), "{}", printed);
                prop_assert_eq!(printed.parse::<Window>(), Ok(w));
            }

            /// Times are read exactly when each of their four fields is two ASCII digits in range.
            #[test]
            fn time_fields_are_two_ascii_digits(
                day in prop::sample::select(vec!["Sun", "wed", "Friday"]),
                fields in (field('2'), field('5'), field('2'), field('5')),
            ) {
                let fields = [fields.0, fields.1, fields.2, fields.3];
                let text = format!("{day} {}:{}-{}:{}", fields[0], fields[1], fields[2], fields[3]);
                let want = match (oracle(&fields[0], &fields[1], false), oracle(&fields[2], &fields[3], true)) {
                    (Some(start), Some(end)) if start != end => Some((start, end)),
                    _ => None,
                };
                let got = text.parse::<Window>().ok().map(|w| (w.start_min, w.end_min));
                prop_assert_eq!(got, want, "{}", text);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(60))]

            /// Every minute inside a window is open, whatever the week and the offset it is
            /// written in, and the minute its end is not (unless another window holds it).
            #[test]
            fn a_window_holds_its_minutes(
                w in window(),
                weeks in -50_000..50_000_i64,
                into in 0..10_080_i64,
                offset in -86_399..86_400_i32,
            ) {
                // 1970-01-05 was a Monday.
                let monday = OffsetDateTime::from_unix_timestamp(4 * 86_400).unwrap() + Duration::weeks(weeks);
                let (start, len) = w.span();
                let into = into % len;
                let at = (monday + Duration::minutes(start + into))
                    .to_offset(time::UtcOffset::from_whole_seconds(offset).unwrap());
                let ws = Windows { enforce: true, allowed: vec![w] };
                prop_assert!(ws.is_open(at), "{} at {}", w, at);
                prop_assert!(ws.is_open(at + Duration::seconds(59)), "{} at {}", w, at);
                prop_assert_eq!(ws.next_open(at), Some(at));
                prop_assert!(!ws.is_open(monday + Duration::minutes(start + len)), "{} ends", w);
            }

            /// The next opening is never before now, is open, comes at the start of a minute
            /// (or is now), and no minute before it is open; without windows there is none,
            /// and a window that is not enforced is always open.
            #[test]
            fn the_next_opening_is_the_first(
                allowed in prop::collection::vec(window(), 0..4),
                now in instant(),
                between in 0.0..1.0_f64,
            ) {
                let ws = Windows { enforce: true, allowed };
                let off = Windows { enforce: false, ..ws.clone() };
                prop_assert!(off.is_open(now));
                let Some(next) = ws.next_open(now) else {
                    // Only without windows, or past the last instant there is.
                    prop_assert!(ws.allowed.is_empty() || now.year() == 9999, "{:?} at {}", ws.allowed, now);
                    return Ok(());
                };
                prop_assert_eq!(next.offset(), now.offset());
                prop_assert!(next >= now);
                prop_assert!(ws.is_open(next), "{} is not open: {}", next, ws.describe());
                if next > now {
                    prop_assert!(!ws.is_open(now));
                    prop_assert_eq!(next.unix_timestamp() % 60, 0);
                    prop_assert_eq!(next.nanosecond(), 0);
                    let gap = (next - now).whole_seconds();
                    let probe = now + Duration::seconds(((gap - 1) as f64 * between) as i64);
                    prop_assert!(!ws.is_open(probe), "{} is open before {}: {}", probe, next, ws.describe());
                }
            }
        }
    }
}
