//! The security log scan: failed logins by user and source address over the last hours, bursts
//! past a fail2ban-like threshold, and lines matching suspicious patterns, from `auth.log`-style
//! files (their rotated and gzipped parts included, streamed) and from `journalctl -o json`.

use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::{Month, OffsetDateTime, PrimitiveDateTime};

/// Where to read and what counts.
#[derive(Debug, Clone, PartialEq)]
pub struct LogScanConfig {
    /// `auth.log`-style files; `<name>.1`, `<name>.2.gz`... beside each are read too.
    pub files: Vec<PathBuf>,
    /// The `journalctl` to run for the journal; None: the journal is not read.
    pub journalctl: Option<PathBuf>,
    /// How far back to look.
    pub window_hours: u64,
    /// Failures from one address within `burst_seconds` that make a burst (fail2ban: 5).
    pub burst_count: usize,
    /// ...the span they must fall in (fail2ban: 10 minutes).
    pub burst_seconds: i64,
    /// Case-insensitive substrings that mark a line as suspicious.
    pub patterns: Vec<String>,
    /// Deadline for `journalctl`.
    pub timeout_ms: u64,
}

/// A run of failures from one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Burst {
    /// The source address.
    pub source: String,
    /// Failures within the span.
    pub count: usize,
    /// When the densest span began.
    #[serde(with = "time::serde::rfc3339")]
    pub first: OffsetDateTime,
}

/// What the scan counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogScanReport {
    /// Failed logins per user name.
    pub failed_by_user: BTreeMap<String, u64>,
    /// Failed logins per source address (`local` for none).
    pub failed_by_source: BTreeMap<String, u64>,
    /// Sources past the burst threshold.
    pub bursts: Vec<Burst>,
    /// Lines per suspicious pattern.
    pub pattern_hits: BTreeMap<String, u64>,
    /// Lines read inside the window.
    pub lines: u64,
    /// Checks: `failed logins`, one per burst, one per pattern hit, one per source that could
    /// not be read (Unknown).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(LogScanReport);

/// One failed login.
struct Failure {
    at: OffsetDateTime,
    user: String,
    source: String,
}

/// Scans every source for the last `window_hours` before `ctx.now`. It only reads: a dry run is
/// the same run.
pub async fn scan_logs(cfg: &LogScanConfig, ctx: &RunCtx) -> Result<LogScanReport, Infallible> {
    let now = ctx.now;
    let since = now - time::Duration::hours(i64::try_from(cfg.window_hours).unwrap_or(i64::MAX / 3600));
    let mut scan =
        Scan { cfg, since, now, failures: Vec::new(), hits: BTreeMap::new(), lines: 0, problems: Vec::new() };
    for file in &cfg.files {
        scan.file_and_rotations(file);
    }
    if let Some(journalctl) = &cfg.journalctl {
        scan.journal(journalctl).await;
    }
    Ok(scan.finish())
}

struct Scan<'a> {
    cfg: &'a LogScanConfig,
    since: OffsetDateTime,
    now: OffsetDateTime,
    failures: Vec<Failure>,
    hits: BTreeMap<String, u64>,
    lines: u64,
    problems: Vec<Check>,
}

impl Scan<'_> {
    fn file_and_rotations(&mut self, path: &Path) {
        if let Err(e) = std::fs::metadata(path) {
            self.problems.push(Check::new(
                path.display().to_string(),
                Status::Unknown,
                format!("cannot read: {e}"),
            ));
            return;
        }
        let mut parts = vec![path.to_owned()];
        parts.extend(rotations(path));
        let since = std::time::SystemTime::from(self.since);
        for part in parts {
            // A rotated part last written before the window holds nothing inside it.
            if part != path && std::fs::metadata(&part).and_then(|m| m.modified()).is_ok_and(|m| m < since) {
                continue;
            }
            let opened = std::fs::File::open(&part);
            let reader: Box<dyn Read> = match opened {
                Ok(f) if part.extension().is_some_and(|x| x == "gz") => {
                    Box::new(flate2::read::MultiGzDecoder::new(f))
                }
                Ok(f) => Box::new(f),
                Err(e) => {
                    self.problems.push(Check::new(
                        part.display().to_string(),
                        Status::Unknown,
                        format!("cannot read: {e}"),
                    ));
                    continue;
                }
            };
            let mut reader = BufReader::with_capacity(256 * 1024, reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        if let Some((at, rest)) = syslog_time(&text, self.now) {
                            self.line(at, rest, None);
                        }
                    }
                    Err(e) => {
                        self.problems.push(Check::new(
                            part.display().to_string(),
                            Status::Unknown,
                            format!("read stopped: {e}"),
                        ));
                        break;
                    }
                }
            }
        }
    }

    async fn journal(&mut self, journalctl: &Path) {
        let mut cmd = tokio::process::Command::new(journalctl);
        cmd.args(["-o", "json", "--no-pager", "--since"])
            .arg(format!("@{}", self.since.unix_timestamp()))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(Duration::from_millis(self.cfg.timeout_ms), cmd.output()).await {
            Err(_) => return self.journal_problem(format!("no answer within {} ms", self.cfg.timeout_ms)),
            Ok(Err(e)) => return self.journal_problem(format!("cannot run {}: {e}", journalctl.display())),
            Ok(Ok(o)) if !o.status.success() => {
                return self.journal_problem(format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Ok(Ok(o)) => o,
        };
        for raw in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(entry) = journal_entry(raw) {
                self.line(entry.at, &entry.message, entry.program.as_deref());
            }
        }
    }

    fn journal_problem(&mut self, why: String) {
        self.problems.push(Check::new("journal", Status::Unknown, why));
    }

    /// One line inside or outside the window: `rest` is the text after the timestamp (`host
    /// prog[pid]: message` from a file), or the bare message with its program from the journal.
    fn line(&mut self, at: OffsetDateTime, rest: &str, program: Option<&str>) {
        if at < self.since || at > self.now {
            return;
        }
        self.lines += 1;
        let lower = rest.to_lowercase();
        for p in &self.cfg.patterns {
            if lower.contains(&p.to_lowercase()) {
                *self.hits.entry(p.clone()).or_default() += 1;
            }
        }
        let program = program.map(str::to_owned).or_else(|| syslog_program(rest));
        if let Some((user, source)) = failed_login(rest, program.as_deref()) {
            self.failures.push(Failure { at, user, source });
        }
    }

    fn finish(mut self) -> LogScanReport {
        let mut by_user: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_source: BTreeMap<String, Vec<OffsetDateTime>> = BTreeMap::new();
        for f in &self.failures {
            *by_user.entry(f.user.clone()).or_default() += 1;
            by_source.entry(f.source.clone()).or_default().push(f.at);
        }
        let mut bursts = Vec::new();
        for (source, times) in &mut by_source {
            times.sort();
            // The densest span of burst_seconds: two pointers over the sorted times.
            let (mut best, mut start, mut lo) = (0, times[0], 0);
            for hi in 0..times.len() {
                while (times[hi] - times[lo]).whole_seconds() > self.cfg.burst_seconds {
                    lo += 1;
                }
                if hi - lo + 1 > best {
                    (best, start) = (hi - lo + 1, times[lo]);
                }
            }
            if best >= self.cfg.burst_count {
                bursts.push(Burst { source: source.clone(), count: best, first: start });
            }
        }
        let failed_by_source: BTreeMap<String, u64> =
            by_source.iter().map(|(s, t)| (s.clone(), t.len() as u64)).collect();
        let total = self.failures.len();
        let top = |m: &BTreeMap<String, u64>| {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.iter().take(5).map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
        };
        let mut checks = vec![
            Check::new(
                "failed logins",
                Status::Ok,
                if total == 0 {
                    format!("none in the last {} h ({} lines)", self.cfg.window_hours, self.lines)
                } else {
                    format!(
                        "{total} in the last {} h; by user: {}; by source: {}",
                        self.cfg.window_hours,
                        top(&by_user),
                        top(&failed_by_source)
                    )
                },
            )
            .with_metric(Metric::new("failed_logins", total as f64, Unit::None)),
        ];
        for b in &bursts {
            checks.push(Check::new(
                format!("burst from {}", b.source),
                Status::Warn,
                format!(
                    "{} failed logins within {} s from {} (threshold {}), starting {}",
                    b.count,
                    self.cfg.burst_seconds,
                    b.source,
                    self.cfg.burst_count,
                    b.first
                        .format(time::macros::format_description!(
                            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
                        ))
                        .unwrap_or_default()
                ),
            ));
        }
        for (p, n) in &self.hits {
            checks.push(Check::new(format!("pattern {p}"), Status::Warn, format!("{n} lines match `{p}`")));
        }
        checks.append(&mut self.problems);
        LogScanReport {
            failed_by_user: by_user,
            failed_by_source,
            bursts,
            pattern_hits: self.hits,
            lines: self.lines,
            findings: Findings::from_checks(checks),
        }
    }
}

/// One entry of `journalctl -o json`.
struct JournalEntry {
    at: OffsetDateTime,
    message: String,
    program: Option<String>,
}

/// One line of `journalctl -o json`; None for a line that is not an entry with a time and a
/// message.
fn journal_entry(raw: &[u8]) -> Option<JournalEntry> {
    let entry = serde_json::from_slice::<serde_json::Value>(raw).ok()?;
    let usec = entry["__REALTIME_TIMESTAMP"].as_str()?.parse::<i128>().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(usec.checked_mul(1000)?).ok()?;
    // A message that is not UTF-8 comes as an array of bytes.
    let message = match &entry["MESSAGE"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(bytes) => String::from_utf8_lossy(
            &bytes.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect::<Vec<u8>>(),
        )
        .into_owned(),
        _ => return None,
    };
    let program = entry["SYSLOG_IDENTIFIER"].as_str().map(str::to_owned);
    Some(JournalEntry { at, message, program })
}

/// `auth.log.1`, `auth.log.2.gz`, ... beside `path`, newest first.
fn rotations(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(name)?.strip_prefix('.')?;
            let num = rest.strip_suffix(".gz").unwrap_or(rest).parse::<u32>().ok()?;
            e.file_type().ok()?.is_file().then(|| (num, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The time at the start of a syslog line, and the text after it: `Nov 26 19:29:49 ...` (the
/// year taken as the one that puts the time at or before `now`, plus a day of clock slack) or
/// RFC 3339 (`2026-11-26T19:29:49.123+00:00 ...`).
fn syslog_time(line: &str, now: OffsetDateTime) -> Option<(OffsetDateTime, &str)> {
    // Trimmed first, so that the first word starts the line and its length is an index into it.
    let line = line.trim_start();
    let first = line.split_whitespace().next()?;
    if first.len() >= 19 && first.as_bytes()[4] == b'-' {
        let at = OffsetDateTime::parse(first, &time::format_description::well_known::Rfc3339).ok()?;
        return Some((at, line[first.len()..].trim_start()));
    }
    let mon = month(line.get(..3)?)?;
    // `Jan  1` pads the day with a space.
    let (day, rest) = line.get(3..)?.trim_start().split_once(' ')?;
    let rest = rest.trim_start();
    let (clock, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let day: u8 = day.parse().ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let build = |year: i32| {
        let date = time::Date::from_calendar_date(year, mon, day).ok()?;
        Some(PrimitiveDateTime::new(date, time::Time::from_hms(h, m, s).ok()?).assume_utc())
    };
    let at = build(now.year())
        .filter(|t| *t <= now + time::Duration::days(1))
        .or_else(|| build(now.year() - 1))?;
    Some((at, rest))
}

fn month(m: &str) -> Option<Month> {
    Some(match m {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    })
}

/// `sshd` from `host sshd[123]: message`.
fn syslog_program(rest: &str) -> Option<String> {
    let tag = rest.split_whitespace().nth(1)?;
    let tag = tag.strip_suffix(':').unwrap_or(tag);
    Some(tag.split('[').next()?.to_owned())
}

/// The user and source of a failed login: sshd's `Failed <method> for [invalid user ]USER from
/// ADDR`, or a PAM `authentication failure` of another service (sshd's own PAM line would count
/// its failure twice). Since OpenSSH 9.8 sshd logs as `sshd-session` (and `sshd-auth` since 10.0).
fn failed_login(rest: &str, program: Option<&str>) -> Option<(String, String)> {
    if let Some(i) = rest.find("Failed ") {
        let after = &rest[i + 7..];
        let (_, after) = after.split_once(" for ")?;
        let after = after.strip_prefix("invalid user ").unwrap_or(after);
        let (user, after) = after.rsplit_once(" from ").map(|(u, a)| (u.to_owned(), a))?;
        let source = after.split_whitespace().next()?.to_owned();
        return Some((user, source));
    }
    let sshd = |p: &str| p == "sshd" || p.starts_with("sshd-");
    if rest.contains("authentication failure") && program.is_some_and(|p| !sshd(p)) {
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let user = field("user=").or_else(|| field("ruser=")).unwrap_or_else(|| "?".to_owned());
        let source = field("rhost=").unwrap_or_else(|| "local".to_owned());
        return Some((user, source));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn syslog_times_find_their_year() {
        let now = datetime!(2027-01-01 00:30 UTC);
        let (t, rest) = syslog_time("Dec 31 23:58:00 web sshd[1]: x", now).unwrap();
        assert_eq!(t, datetime!(2026-12-31 23:58 UTC));
        assert_eq!(rest, "web sshd[1]: x");
        let (t, _) = syslog_time("Jan  1 00:01:02 web sshd[1]: x", now).unwrap();
        assert_eq!(t, datetime!(2027-01-01 00:01:02 UTC));
        let (t, _) = syslog_time("2026-11-26T19:29:49.5+00:00 web sshd[1]: x", now).unwrap();
        assert_eq!(t.unix_timestamp(), datetime!(2026-11-26 19:29:49 UTC).unix_timestamp());
        assert!(syslog_time("garbage line", now).is_none());
        assert!(syslog_time("Feb 30 10:00:00 x", now).is_none());
    }

    #[test]
    fn blanks_before_the_time_are_skipped() {
        let now = datetime!(2027-01-01 00:30 UTC);
        let want = Some((datetime!(2026-11-26 19:29:49 UTC), "web sshd[1]: x"));
        // Leading blanks longer than the timestamp, in characters of three bytes each.
        assert_eq!(
            syslog_time(&format!("{}2026-11-26T19:29:49Z web sshd[1]: x", "\u{3000}".repeat(7)), now),
            want
        );
        assert_eq!(syslog_time("  2026-11-26T19:29:49Z web sshd[1]: x", now), want);
        assert_eq!(syslog_time("\tNov 26 19:29:49 web sshd[1]: x", now), want);
    }

    #[test]
    fn failed_logins_are_read_from_sshd_and_pam() {
        let f = |l: &str| failed_login(l, syslog_program(l).as_deref());
        assert_eq!(
            f("web sshd[9]: Failed password for invalid user admin from 203.0.113.7 port 4122 ssh2"),
            Some(("admin".into(), "203.0.113.7".into()))
        );
        assert_eq!(
            f("web sshd[9]: Failed publickey for root from 2001:db8::1 port 22 ssh2"),
            Some(("root".into(), "2001:db8::1".into()))
        );
        assert_eq!(
            f(
                "web sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/0 ruser=bob rhost=  user=bob"
            ),
            Some(("bob".into(), "local".into()))
        );
        assert_eq!(
            f("web sshd[9]: pam_unix(sshd:auth): authentication failure; rhost=203.0.113.7 user=root"),
            None
        );
        assert_eq!(
            f(
                "web sshd-session[9]: pam_unix(sshd:auth): authentication failure; rhost=203.0.113.7 user=root"
            ),
            None,
            "OpenSSH 9.8 and later"
        );
        assert_eq!(f("web sshd[9]: Accepted password for deploy from 10.0.0.2 port 50000 ssh2"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use time::format_description::well_known::Rfc3339;

        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

        /// Pieces of the lines the scan looks for, to reach its branches more often than chance.
        const FRAGMENTS: [&str; 30] = [
            "Failed ",
            "password",
            " for ",
            "invalid user ",
            " from ",
            " port ",
            "authentication failure",
            "; ",
            "user=",
            "ruser=",
            "rhost=",
            "web ",
            "sshd",
            "sudo",
            "[1]",
            ": ",
            " ",
            "  ",
            "\t",
            "Nov",
            "Feb 29",
            " 26 ",
            "19:29:49 ",
            "99:99:99 ",
            "2026-11-26T19:29:49.5+00:00 ",
            "2026-11-26T19:29:49Z",
            "é",
            "\u{3000}",
            "\u{85}",
            "203.0.113.7",
        ];

        /// A moment between 2000 and 2100.
        fn moment() -> impl Strategy<Value = OffsetDateTime> {
            (946_684_800_i64..4_102_444_800).prop_map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap())
        }

        /// A user name as `useradd` takes them.
        fn user() -> impl Strategy<Value = String> {
            "[a-z_][a-z0-9_.-]{0,31}"
        }

        fn address() -> impl Strategy<Value = String> {
            any::<std::net::IpAddr>().prop_map(|ip| ip.to_string())
        }

        fn host() -> impl Strategy<Value = String> {
            "[a-z][a-z0-9-]{0,20}"
        }

        /// A syslog timestamp for `at` (day padded with a space), or RFC 3339 with a fraction.
        fn stamp(at: OffsetDateTime, rfc3339: bool) -> String {
            if rfc3339 {
                at.format(&Rfc3339).unwrap()
            } else {
                let month = MONTHS[usize::from(u8::from(at.month())) - 1];
                format!("{month} {:>2} {:02}:{:02}:{:02}", at.day(), at.hour(), at.minute(), at.second())
            }
        }

        /// What the scan does with one line of a file, checked for what must hold whatever the
        /// line.
        fn read_line(line: &str, now: OffsetDateTime) -> Option<(String, String)> {
            let (_, rest) = syslog_time(line, now)?;
            assert!(line.ends_with(rest), "{line:?} -> {rest:?}");
            let found = failed_login(rest, syslog_program(rest).as_deref());
            if let Some((_, source)) = &found {
                assert!(!source.is_empty() && !source.contains(char::is_whitespace), "{line:?}");
            }
            found
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(50))]

            #[test]
            fn any_line_never_panics(
                line in prop_oneof![
                    any::<String>(),
                    prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
                ],
                now in moment(),
            ) {
                read_line(&line, now);
                Scan {
                    cfg: &LogScanConfig {
                        files: Vec::new(),
                        journalctl: None,
                        window_hours: 24,
                        burst_count: 5,
                        burst_seconds: 600,
                        patterns: vec!["É".into(), "break-in".into()],
                        timeout_ms: 1,
                    },
                    since: now - time::Duration::days(1),
                    now,
                    failures: Vec::new(),
                    hits: BTreeMap::new(),
                    lines: 0,
                    problems: Vec::new(),
                }
                .line(now, &line, None);
            }

            /// Fragments after any run of blanks, ASCII or not.
            #[test]
            fn any_fragments_never_panic(
                lead in "[ \t\u{a0}\u{85}\u{2003}\u{3000}]{0,12}",
                parts in prop::collection::vec(prop::sample::select(FRAGMENTS.to_vec()), 0..30),
                now in moment(),
            ) {
                read_line(&format!("{lead}{}", parts.concat()), now);
            }

            /// Any bytes, and any JSON object with the fields the scan reads holding any value.
            #[test]
            fn any_journal_line_never_panics(
                raw in prop::collection::vec(any::<u8>(), 0..200),
                usec in prop_oneof![
                    "-?[0-9]{1,45}".prop_map(serde_json::Value::from),
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<String>().prop_map(serde_json::Value::from),
                ],
                message in prop_oneof![
                    any::<String>().prop_map(serde_json::Value::from),
                    prop::collection::vec(any::<i64>(), 0..20).prop_map(serde_json::Value::from),
                    prop::collection::vec(0_u8..=255, 0..40).prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                ],
            ) {
                journal_entry(&raw);
                let entry = serde_json::json!({
                    "__REALTIME_TIMESTAMP": usec,
                    "MESSAGE": message,
                    "SYSLOG_IDENTIFIER": "sshd",
                });
                journal_entry(entry.to_string().as_bytes());
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(40))]

            /// `Failed <method> for [invalid user ]USER from ADDR port N ssh2`, from the sshd of
            /// OpenSSH before 9.8 or its `sshd-session` since, with either kind of timestamp at
            /// any time in the last 360 days (syslog's yearless one included): the time, the user
            /// and the address are read back.
            #[test]
            fn sshd_failures_are_read(
                now in moment(),
                ago_s in 0_i64..360 * 86_400,
                rfc3339 in any::<bool>(),
                host in host(),
                program in prop::sample::select(vec!["sshd", "sshd-session"]),
                pid in any::<u32>(),
                method in prop::sample::select(vec!["password", "publickey", "keyboard-interactive/pam", "none", "hostbased"]),
                invalid in any::<bool>(),
                user in user(),
                source in address(),
                port in 1_u16..,
            ) {
                let at = now - time::Duration::seconds(ago_s);
                let invalid = if invalid { "invalid user " } else { "" };
                let line = format!(
                    "{} {host} {program}[{pid}]: Failed {method} for {invalid}{user} from {source} port {port} ssh2\n",
                    stamp(at, rfc3339)
                );
                let (read_at, _) = syslog_time(&line, now).expect("a timestamp");
                prop_assert_eq!(read_at, at);
                prop_assert_eq!(read_line(&line, now), Some((user, source)));
            }

            /// Blanks before the timestamp, ASCII or not, change nothing.
            #[test]
            fn leading_blanks_change_nothing(
                lead in "[ \t\u{a0}\u{85}\u{2003}\u{3000}]{1,30}",
                now in moment(),
                ago_s in 0_i64..86_400,
                rfc3339 in any::<bool>(),
                user in user(),
                source in address(),
            ) {
                let line = format!(
                    "{} web sshd[1]: Failed password for {user} from {source} port 22 ssh2",
                    stamp(now - time::Duration::seconds(ago_s), rfc3339)
                );
                let led = format!("{lead}{line}");
                prop_assert_eq!(syslog_time(&led, now), syslog_time(&line, now));
            }

            /// A PAM `authentication failure` of another service counts, with `user=` (or
            /// `ruser=`) and `rhost=` (empty: a local login); sshd's own PAM line does not, since
            /// its `Failed password` line already counts that failure.
            #[test]
            fn pam_failures_are_read(
                now in moment(),
                program in prop::sample::select(vec!["sudo", "su", "login", "vsftpd", "dovecot", "sshd", "sshd-session"]),
                user in user(),
                source in prop::option::of(address()),
                user_field in any::<bool>(),
            ) {
                let rhost = source.clone().unwrap_or_default();
                let user_fields = if user_field { format!("ruser= rhost={rhost}  user={user}") } else { format!("ruser={user} rhost={rhost}") };
                let line = format!(
                    "{} web {program}: pam_unix({program}:auth): authentication failure; logname={user} uid=1000 euid=0 tty=/dev/pts/0 {user_fields}\n",
                    stamp(now, false)
                );
                let want = (!program.starts_with("sshd")).then(|| (user, source.unwrap_or_else(|| "local".into())));
                prop_assert_eq!(read_line(&line, now), want);
            }

            /// A journal entry, its message as a string or (not UTF-8 in general) as bytes: its
            /// time to the microsecond, its message and its program are read back, and an sshd
            /// failure in it is counted.
            #[test]
            fn journal_entries_are_read(
                at in moment(),
                micros in 0_i64..1_000_000,
                program in prop::sample::select(vec!["sshd", "sshd-session"]),
                user in user(),
                source in address(),
                port in 1_u16..,
                as_bytes in any::<bool>(),
            ) {
                let at = at + time::Duration::microseconds(micros);
                let message = format!("Failed password for {user} from {source} port {port} ssh2");
                let usec = at.unix_timestamp_nanos() / 1000;
                let entry = serde_json::json!({
                    "__REALTIME_TIMESTAMP": usec.to_string(),
                    "MESSAGE": if as_bytes { serde_json::Value::from(message.as_bytes()) } else { serde_json::Value::from(message.clone()) },
                    "SYSLOG_IDENTIFIER": program,
                    "_PID": "1234",
                });
                let read = journal_entry(entry.to_string().as_bytes()).expect("an entry");
                prop_assert_eq!(read.at, at);
                prop_assert_eq!(&read.message, &message);
                prop_assert_eq!(read.program.as_deref(), Some(program));
                prop_assert_eq!(failed_login(&read.message, read.program.as_deref()), Some((user, source)));
            }
        }
    }
}
