//! Rotated-file names: `<log>-YYYYMMDD-HHMMSS[-N][.gz]`, parsed strictly so that retention
//! touches nothing else.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use time::OffsetDateTime;

/// What a rotated name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `app.log-20261126-020000`: rotated, not compressed.
    Plain,
    /// `app.log-20261126-020000.gz`: compressed.
    Gz,
    /// `app.log-20261126-020000.gz.tmp`: a compression that did not finish.
    GzTmp,
}

/// A parsed rotated name. Orders by time stamp, then counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    /// `YYYYMMDDHHMMSS` as a number, for ordering.
    pub(crate) stamp: u64,
    /// The collision counter (0 when absent).
    pub(crate) counter: u32,
    /// The form.
    pub(crate) form: Form,
    /// The name without `.gz` / `.gz.tmp`.
    pub(crate) stem: OsString,
}

/// Parses `name` as a rotated name of the log `base` (`app.log`), or `None`.
pub(crate) fn parse(base: &OsStr, name: &OsStr) -> Option<Rotated> {
    let (stamp, counter, form, stem_len) = parse_parts(base, name)?;
    Some(Rotated { stamp, counter, form, stem: OsString::from_vec(name.as_bytes()[..stem_len].to_vec()) })
}

/// [`parse`] without allocating: time stamp, counter, form and the length of the stem. Retention
/// and recovery run this on every entry of directories that may hold hundreds of thousands.
pub(crate) fn parse_parts(base: &OsStr, name: &OsStr) -> Option<(u64, u32, Form, usize)> {
    let name = name.as_bytes();
    let rest = name.strip_prefix(base.as_bytes())?.strip_prefix(b"-")?;
    let (date, rest) = split_digits(rest, 8)?;
    let rest = rest.strip_prefix(b"-")?;
    let (clock, mut rest) = split_digits(rest, 6)?;
    let mut counter = 0u32;
    if let Some(after) = rest.strip_prefix(b"-") {
        let len = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 6 {
            return None;
        }
        counter = digits(&after[..len]) as u32;
        rest = &after[len..];
    }
    let form = match rest {
        b"" => Form::Plain,
        b".gz" => Form::Gz,
        b".gz.tmp" => Form::GzTmp,
        _ => return None,
    };
    Some((digits(date) * 1_000_000 + digits(clock), counter, form, name.len() - rest.len()))
}

/// The value of a run of ASCII digits (at most 14, so no overflow).
fn digits(s: &[u8]) -> u64 {
    s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

fn split_digits(s: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (s.len() >= n && s[..n].iter().all(u8::is_ascii_digit)).then(|| s.split_at(n))
}

/// `<base>-YYYYMMDD-HHMMSS` for `now` (UTC).
pub(crate) fn stem_for(base: &OsStr, now: OffsetDateTime) -> OsString {
    let mut out = base.to_owned();
    out.push(format!(
        "-{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    ));
    out
}

/// `name` with `suffix` appended.
pub(crate) fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut out = name.to_owned();
    out.push(suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Option<Rotated> {
        parse(OsStr::new("app.log"), OsStr::new(name))
    }

    #[test]
    fn accepts_only_strict_forms() {
        let r = p("app.log-20261126-020000").unwrap();
        assert_eq!((r.stamp, r.counter, r.form), (20261126020000, 0, Form::Plain));
        let r = p("app.log-20261126-020000-3.gz").unwrap();
        assert_eq!(
            (r.counter, r.form, r.stem.as_os_str()),
            (3, Form::Gz, OsStr::new("app.log-20261126-020000-3"))
        );
        assert_eq!(p("app.log-20261126-020000.gz.tmp").unwrap().form, Form::GzTmp);
        for bad in [
            "app.log",
            "app.log.1",
            "app.log-2026112-020000",
            "app.log-20261126-020000.bak",
            "app.log-20261126-020000-",
            "app.log-20261126-020000.gz.gz",
            "xapp.log-20261126-020000",
            "app.log-20261126-020000-1234567",
        ] {
            assert!(p(bad).is_none(), "{bad} must not parse");
        }
    }

    #[test]
    fn stems_carry_date_and_time() {
        let now = time::macros::datetime!(2026-11-26 02:03:04 UTC);
        assert_eq!(stem_for(OsStr::new("app.log"), now), OsString::from("app.log-20261126-020304"));
    }
}
