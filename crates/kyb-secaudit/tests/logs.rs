//! The log scan on synthetic auth logs: a burst from one address, spread-out failures, a rotated
//! `.gz` part, a line of invalid UTF-8, a year boundary, and a stand-in journalctl.

use kyb_core::{RunCtx, Status};
use kyb_secaudit::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use time::macros::datetime;

fn cfg(files: Vec<std::path::PathBuf>) -> LogScanConfig {
    LogScanConfig {
        files,
        journalctl: None,
        window_hours: 24,
        burst_count: 5,
        burst_seconds: 600,
        patterns: vec!["POSSIBLE BREAK-IN".into(), "command not allowed".into()],
        timeout_ms: 2_000,
    }
}

#[tokio::test]
async fn counts_are_exact_across_rotation_gzip_bad_bytes_and_the_new_year() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    // Now is 00:30 on New Year's Day: the last day spans two years.
    let now = datetime!(2027-01-01 00:30 UTC);
    let mut current = Vec::new();
    // A burst: six failures from one address inside four minutes, across midnight.
    for (i, t) in
        ["23:58:00", "23:58:40", "23:59:20", "Jan  1 00:00:05", "Jan  1 00:01:00", "Jan  1 00:01:50"]
            .iter()
            .enumerate()
    {
        let stamp = if t.starts_with("Jan") { (*t).to_owned() } else { format!("Dec 31 {t}") };
        writeln!(
            current,
            "{stamp} web sshd[{i}]: Failed password for invalid user admin from 203.0.113.7 port 4{i}22 ssh2"
        )
        .unwrap();
    }
    writeln!(
        current,
        "Jan  1 00:10:00 web sshd[77]: Accepted publickey for deploy from 10.0.0.2 port 50000 ssh2"
    )
    .unwrap();
    // Invalid UTF-8 in a user name: still counted, under a replacement character.
    current.extend_from_slice(b"Jan  1 00:11:00 web sshd[78]: Failed password for invalid user \xff\xfeadm from 198.51.100.9 port 1 ssh2\n");
    writeln!(current, "Jan  1 00:12:00 web sshd[79]: reverse mapping checking getaddrinfo for x [198.51.100.9] failed - POSSIBLE BREAK-IN ATTEMPT!").unwrap();
    std::fs::write(&log, current).unwrap();

    // The rotated part: spread-out failures for root, one an hour, plus one older than the window.
    let mut older = String::new();
    for h in 2..8 {
        older.push_str(&format!(
            "Dec 31 {h:02}:15:00 web sshd[1{h}]: Failed password for root from 192.0.2.{h} port 22 ssh2\n"
        ));
    }
    older.push_str("Dec 30 22:00:00 web sshd[5]: Failed password for root from 192.0.2.99 port 22 ssh2\n");
    older.push_str("Dec 31 09:00:00 web sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/0 ruser=bob rhost=  user=bob\n");
    let gz = std::fs::File::create(dir.path().join("auth.log.1.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(older.as_bytes()).unwrap();
    enc.finish().unwrap();
    // Rotated when it was last written to, on the last day of the year: inside the window.
    let at = rustix::fs::Timespec { tv_sec: datetime!(2026-12-31 09:00 UTC).unix_timestamp(), tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: at, last_modification: at };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dir.path().join("auth.log.1.gz"),
        &times,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    // An older part, last written before the window: not even opened.
    std::fs::write(dir.path().join("auth.log.2.gz"), "not gzip at all").unwrap();
    let old = rustix::fs::Timespec { tv_sec: datetime!(2026-12-20 09:00 UTC).unix_timestamp(), tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: old, last_modification: old };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dir.path().join("auth.log.2.gz"),
        &times,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();

    let r = scan_logs(&cfg(vec![log.clone()]), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.failed_by_source.get("203.0.113.7"), Some(&6));
    assert_eq!(r.failed_by_source.get("198.51.100.9"), Some(&1));
    assert_eq!(r.failed_by_source.get("192.0.2.99"), None, "outside the 24 h window");
    assert_eq!(r.failed_by_user.get("root"), Some(&6));
    assert_eq!(r.failed_by_user.get("admin"), Some(&6));
    assert_eq!(r.failed_by_user.get("bob"), Some(&1));
    assert_eq!(r.failed_by_source.get("local"), Some(&1));
    assert_eq!(r.failed_by_user.get("\u{fffd}\u{fffd}adm"), Some(&1), "{:?}", r.failed_by_user);
    assert_eq!(r.failed_by_user.values().sum::<u64>(), 14);
    assert_eq!(r.bursts.len(), 1, "{:?}", r.bursts);
    assert_eq!((r.bursts[0].source.as_str(), r.bursts[0].count), ("203.0.113.7", 6));
    assert_eq!(r.bursts[0].first, datetime!(2026-12-31 23:58 UTC));
    assert_eq!(r.pattern_hits.get("POSSIBLE BREAK-IN"), Some(&1));
    let burst = r.findings.checks.iter().find(|c| c.name == "burst from 203.0.113.7").unwrap();
    assert_eq!(burst.status, Status::Warn);
    assert!(
        r.findings.checks[0].summary.starts_with("14 in the last 24 h"),
        "{}",
        r.findings.checks[0].summary
    );

    // A stricter threshold leaves the spread-out failures alone: one an hour is never a burst.
    let r = scan_logs(&LogScanConfig { burst_count: 2, ..cfg(vec![log.clone()]) }, &RunCtx::new(now))
        .await
        .unwrap();
    let sources: Vec<&str> = r.bursts.iter().map(|b| b.source.as_str()).collect();
    assert_eq!(sources, ["203.0.113.7"]);
}

#[tokio::test]
async fn a_missing_source_is_unknown_not_ok_and_the_journal_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let r = scan_logs(&cfg(vec![dir.path().join("auth.log")]), &RunCtx::new(now)).await.unwrap();
    let missing = r.findings.checks.iter().find(|c| c.name.ends_with("auth.log")).unwrap();
    assert_eq!(missing.status, Status::Unknown);

    // A stand-in journalctl printing what `journalctl -o json` prints.
    let usec = (now - time::Duration::minutes(5)).unix_timestamp() * 1_000_000;
    let script = dir.path().join("journalctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo '{{\"__REALTIME_TIMESTAMP\":\"{usec}\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"MESSAGE\":\"Failed password for root from 203.0.113.50 port 22 ssh2\"}}'\n\
             echo '{{\"__REALTIME_TIMESTAMP\":\"{usec}\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"MESSAGE\":[70,97,105,108,101,100,32,112,97,115,115,119,111,114,100,32,102,111,114,32,255,32,102,114,111,109,32,49,46,50,46,51,46,52,32,112,111,114,116,32,49]}}'\n\
             echo 'not json'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = LogScanConfig { journalctl: Some(script), ..cfg(vec![]) };
    let r = scan_logs(&c, &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.failed_by_source.get("203.0.113.50"), Some(&1), "{:?}", r.failed_by_source);
    assert_eq!(r.failed_by_source.get("1.2.3.4"), Some(&1), "a byte-array message: {:?}", r.failed_by_source);
    assert!(r.findings.checks.iter().all(|c| c.status != Status::Unknown), "{:#?}", r.findings.checks);

    let c = LogScanConfig { journalctl: Some(dir.path().join("no-journalctl")), ..cfg(vec![]) };
    let r = scan_logs(&c, &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.findings.checks.iter().find(|c| c.name == "journal").unwrap().status, Status::Unknown);
}
