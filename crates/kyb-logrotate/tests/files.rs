//! Rotation, compression, retention and temp cleanup on real files.

use kyb_core::{RunCtx, Status};
use kyb_logrotate::*;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use time::macros::datetime;

fn policy(path: &Path) -> LogPolicy {
    LogPolicy {
        path: path.to_owned(),
        size_bytes: 10,
        every: None,
        keep_days: 30,
        keep_count: None,
        compress: true,
        delay_compress: false,
        compress_level: 6,
        uid: Some(rustix::process::geteuid().as_raw()),
        gid: Some(rustix::process::getegid().as_raw()),
        mode: 0o640,
        reopen: Reopen::Nothing,
        reopen_timeout_ms: 2_000,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn gunzip(path: &Path) -> String {
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut out).unwrap();
    out
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

async fn rotate_at(logs: Vec<LogPolicy>, now: OffsetDateTime, dry_run: bool) -> FilesReport {
    rotate(&RotateConfig { logs }, &RunCtx::new(now).with_dry_run(dry_run)).await.unwrap()
}

mod rotation {
    use super::*;

    #[tokio::test]
    async fn rotates_compresses_and_recreates_with_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "line 1\nline 2\n").unwrap();
        let r = rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:00 UTC), false).await;
        assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000.gz"]);
        assert_eq!(gunzip(&dir.path().join("app.log-20261126-020000.gz")), "line 1\nline 2\n");
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!((meta.len(), meta.mode() & 0o7777), (0, 0o640));
        assert_eq!(
            (r.counts.rotated_files, r.counts.compressed_files, r.counts.compressed_in_bytes),
            (1, 1, 14)
        );
    }

    #[tokio::test]
    async fn without_an_owner_the_new_log_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        // Root in CI: the log belongs to another user, as a service's log does.
        std::fs::write(&log, "a line over the size limit\n").unwrap();
        std::os::unix::fs::chown(&log, Some(65534), Some(65533)).unwrap();
        let p = LogPolicy { uid: None, gid: None, ..policy(&log) };
        let r = rotate_at(vec![p.clone()], datetime!(2026-11-26 02:00:00 UTC), false).await;
        assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
        assert_eq!(r.counts.rotated_files, 1);
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (65534, 65533, 0o640));
        // After a crash that left no live log, the rotated file's owner is the one kept.
        std::fs::remove_file(&log).unwrap();
        std::fs::write(dir.path().join("app.log-20261127-020000"), "rotated, then killed\n").unwrap();
        std::os::unix::fs::chown(dir.path().join("app.log-20261127-020000"), Some(65532), Some(65531))
            .unwrap();
        rotate_at(vec![p], datetime!(2026-11-27 02:00:01 UTC), false).await;
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65532, 65531));
    }

    #[tokio::test]
    async fn below_the_size_nothing_happens() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "short\n").unwrap();
        let r = rotate_at(
            vec![LogPolicy { size_bytes: 1_000, ..policy(&log) }],
            datetime!(2026-11-26 02:00:00 UTC),
            false,
        )
        .await;
        assert!(r.steps.is_empty());
        assert!(r.findings.checks[0].summary.contains("not due"), "{}", r.findings.checks[0].summary);
        assert_eq!(names(dir.path()), ["app.log"]);
    }

    #[tokio::test]
    async fn same_second_rotations_get_counters() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let now = datetime!(2026-11-26 02:00:00 UTC);
        for i in 0..3 {
            std::fs::write(&log, format!("batch {i} is long enough\n")).unwrap();
            rotate_at(vec![policy(&log)], now, false).await;
        }
        assert_eq!(
            names(dir.path()),
            [
                "app.log",
                "app.log-20261126-020000-1.gz",
                "app.log-20261126-020000-2.gz",
                "app.log-20261126-020000.gz"
            ]
        );
        assert_eq!(gunzip(&dir.path().join("app.log-20261126-020000-2.gz")), "batch 2 is long enough\n");
    }

    #[tokio::test]
    async fn daily_schedule_rotates_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let p = LogPolicy { size_bytes: 1 << 30, every: Some(Interval::Daily), ..policy(&log) };
        std::fs::write(&log, "a\n").unwrap();
        rotate_at(vec![p.clone()], datetime!(2026-11-26 02:00:00 UTC), false).await;
        std::fs::write(&log, "b\n").unwrap();
        let same_day = rotate_at(vec![p.clone()], datetime!(2026-11-26 23:00:00 UTC), false).await;
        assert_eq!(same_day.counts.rotated_files, 0);
        let next_day = rotate_at(vec![p], datetime!(2026-11-27 00:00:01 UTC), false).await;
        assert_eq!(next_day.counts.rotated_files, 1);
        assert_eq!(
            names(dir.path()),
            ["app.log", "app.log-20261126-020000.gz", "app.log-20261127-000001.gz"]
        );
    }

    #[tokio::test]
    async fn delay_compress_leaves_the_newest_plain() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let p = LogPolicy { delay_compress: true, ..policy(&log) };
        std::fs::write(&log, "first rotation\n").unwrap();
        rotate_at(vec![p.clone()], datetime!(2026-11-26 02:00:00 UTC), false).await;
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000"]);
        std::fs::write(&log, "second rotation\n").unwrap();
        rotate_at(vec![p], datetime!(2026-11-27 02:00:00 UTC), false).await;
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000.gz", "app.log-20261127-020000"]);
    }

    #[tokio::test]
    async fn copytruncate_keeps_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "kept by copy\n").unwrap();
        let ino = std::fs::metadata(&log).unwrap().ino();
        let r = rotate_at(
            vec![LogPolicy { reopen: Reopen::CopyTruncate, ..policy(&log) }],
            datetime!(2026-11-26 02:00:00 UTC),
            false,
        )
        .await;
        assert!(r.steps[0].to_string().contains("lines written in between are lost"), "{}", r.steps[0]);
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!((meta.ino(), meta.len()), (ino, 0));
        assert_eq!(gunzip(&dir.path().join("app.log-20261126-020000.gz")), "kept by copy\n");
    }

    #[tokio::test]
    async fn an_open_rotated_file_is_not_compressed_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "still being written\n").unwrap();
        let writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let r = rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:00 UTC), false).await;
        assert_eq!(r.findings.checks[0].status, Status::Warn);
        assert!(r.findings.checks[0].summary.contains("still open"), "{}", r.findings.checks[0].summary);
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000"]);
        drop(writer);
        rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:05 UTC), false).await;
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000.gz"]);
    }

    #[tokio::test]
    async fn leftovers_of_an_interrupted_run_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "").unwrap();
        // Killed mid-compression: a partial .gz.tmp beside its source.
        std::fs::write(dir.path().join("app.log-20261125-020000"), "older lines\n").unwrap();
        std::fs::write(dir.path().join("app.log-20261125-020000.gz.tmp"), "partial").unwrap();
        // Killed between rename and unlink: a complete .gz beside its source.
        std::fs::write(dir.path().join("app.log-20261124-020000"), "oldest lines\n").unwrap();
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.path().join("app.log-20261124-020000.gz")).unwrap(),
            flate2::Compression::default(),
        );
        std::io::Write::write_all(&mut { gz }, b"oldest lines\n").unwrap();
        let r = rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:00 UTC), false).await;
        assert_eq!(
            names(dir.path()),
            ["app.log", "app.log-20261124-020000.gz", "app.log-20261125-020000.gz"]
        );
        assert_eq!(gunzip(&dir.path().join("app.log-20261125-020000.gz")), "older lines\n");
        let removed: Vec<String> =
            r.steps.iter().map(ToString::to_string).filter(|a| a.starts_with("remove")).collect();
        assert_eq!(removed.len(), 2, "{removed:?}");
    }

    #[tokio::test]
    async fn a_missing_live_log_is_recreated_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(dir.path().join("app.log-20261126-020000"), "rotated, then killed\n").unwrap();
        rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:01 UTC), false).await;
        assert_eq!(names(dir.path()), ["app.log", "app.log-20261126-020000.gz"]);
        assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o7777, 0o640);
    }

    #[tokio::test]
    async fn dry_run_plans_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "plan me, I am long enough\n").unwrap();
        std::fs::write(dir.path().join("app.log-20261125-020000.gz.tmp"), "partial").unwrap();
        let before: Vec<_> = names(dir.path());
        let mtime = std::fs::metadata(&log).unwrap().modified().unwrap();
        let r = rotate_at(vec![policy(&log)], datetime!(2026-11-26 02:00:00 UTC), true).await;
        let plan: Vec<String> = r.steps.iter().map(ToString::to_string).collect();
        let d = dir.path().display();
        assert_eq!(
            plan,
            [
                format!("remove {d}/app.log-20261125-020000.gz.tmp (interrupted compression)"),
                format!("rename {d}/app.log -> {d}/app.log-20261126-020000"),
                format!(
                    "create {d}/app.log owner {}:{} mode 0640",
                    policy(&log).uid.unwrap(),
                    policy(&log).gid.unwrap()
                ),
                format!("compress {d}/app.log-20261126-020000 -> {d}/app.log-20261126-020000.gz"),
            ]
        );
        assert_eq!(names(dir.path()), before);
        assert_eq!(std::fs::metadata(&log).unwrap().modified().unwrap(), mtime);
        // The report says the plan whole, as its action lines, with the totals it would reach.
        assert_eq!(r.findings.actions, plan);
        assert_eq!(r.findings.headline.as_deref(), Some("would have: rotated 1 file(s)"));
    }
}

mod retention {
    use super::*;

    fn prune_cfg(logs: Vec<LogPolicy>, reports: Option<PathBuf>) -> RetentionConfig {
        RetentionConfig { logs, reports_dir: reports, reports_max_age_days: 30 }
    }

    #[tokio::test]
    async fn removes_by_age_and_count_on_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "live\n").unwrap();
        for (name, days) in [
            ("app.log-20261001-000000.gz", 56),
            ("app.log-20261101-000000.gz", 25),
            ("app.log-20261110-000000.gz", 16),
            ("app.log-20261120-000000", 6),
            ("app.log-20261125-000000.gz", 1),
        ] {
            std::fs::write(dir.path().join(name), "x".repeat(100)).unwrap();
            set_mtime(&dir.path().join(name), Duration::from_secs(days * 86_400));
        }
        let p = LogPolicy { keep_days: 30, keep_count: Some(3), ..policy(&log) };
        let r = prune(&prune_cfg(vec![p], None), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "app.log",
                "app.log-20261110-000000.gz",
                "app.log-20261120-000000",
                "app.log-20261125-000000.gz"
            ]
        );
        assert_eq!((r.counts.deleted_files, r.counts.freed_bytes), (2, 200));
        let reasons: Vec<String> = r.steps.iter().map(ToString::to_string).collect();
        assert!(
            reasons[0].contains("older than 30 days") || reasons[1].contains("older than 30 days"),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|a| a.contains("beyond the newest 3")), "{reasons:?}");
    }

    #[tokio::test]
    async fn reports_older_than_their_age_go_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "daily-report-20261001-020000.txt",
            "daily-report-20261001-020000.json",
            "app-metrics-20261001-020000.prom",
            "notes.txt",
            "daily-report-20261125-020000.txt",
        ] {
            std::fs::write(dir.path().join(name), "r").unwrap();
        }
        for name in [
            "daily-report-20261001-020000.txt",
            "daily-report-20261001-020000.json",
            "app-metrics-20261001-020000.prom",
            "notes.txt",
        ] {
            set_mtime(&dir.path().join(name), Duration::from_secs(40 * 86_400));
        }
        let r =
            prune(&prune_cfg(vec![], Some(dir.path().to_owned())), &RunCtx::new(OffsetDateTime::now_utc()))
                .await
                .unwrap();
        assert_eq!(names(dir.path()), ["daily-report-20261125-020000.txt", "notes.txt"]);
        assert_eq!(r.counts.deleted_files, 3);
    }

    #[tokio::test]
    async fn unfinished_reports_of_killed_runs_go_while_a_live_writers_stay() {
        let dir = tempfile::tempdir().unwrap();
        // A writer killed with -9 between writing its temp file and renaming it.
        let mut killed = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let dead = killed.id();
        let dead_tmp = format!(".logrotate-report-20261126-020000.txt.{dead}.0.tmp");
        std::fs::write(dir.path().join(&dead_tmp), "half a rep").unwrap();
        killed.kill().unwrap();
        killed.wait().unwrap();
        // One being written right now, by a process that is running (this one).
        let live_tmp = format!(".daily-report-20261126-020000.json.{}.3.tmp", std::process::id());
        std::fs::write(dir.path().join(&live_tmp), "{").unwrap();
        // A name that is not a report's temp file, and a temp file older than this process
        // carrying its pid: a reused pid is not the writer.
        std::fs::write(dir.path().join(".notes.txt.1.0.tmp"), "keep").unwrap();
        let reused = format!(".weekly-report-20200101-020000.txt.{}.0.tmp", std::process::id());
        std::fs::write(dir.path().join(&reused), "stale").unwrap();
        set_mtime(&dir.path().join(&reused), Duration::from_secs(3 * 86_400 * 365));

        let cfg = prune_cfg(vec![], Some(dir.path().to_owned()));
        let plan = prune(&cfg, &RunCtx::new(OffsetDateTime::now_utc()).with_dry_run(true)).await.unwrap();
        assert_eq!(plan.counts.deleted_files, 2, "{:?}", plan.steps);
        assert_eq!(names(dir.path()).len(), 4, "a plan removes nothing");
        let r = prune(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
        assert_eq!(names(dir.path()), [live_tmp, ".notes.txt.1.0.tmp".to_owned()]);
        let reasons: Vec<String> = r.steps.iter().map(ToString::to_string).collect();
        assert!(
            reasons.iter().any(|a| a.contains(&dead_tmp) && a.contains(&format!("left by pid {dead}"))),
            "{reasons:?}"
        );
        assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
    }
}

mod temp {
    use super::*;

    fn cfg(dir: &Path) -> TempConfig {
        TempConfig { dir: dir.to_owned(), prefix: "kyb-".into(), max_age_secs: 60, timeout_ms: 10_000 }
    }

    /// Ages are measured against `now`; a `now` in the future makes freshly made entries old
    /// (their ctime cannot be set back).
    fn later() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::hours(2)
    }

    #[tokio::test]
    async fn removes_old_prefixed_entries_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("kyb-upload-1"), "12345").unwrap();
        std::fs::create_dir_all(d.join("kyb-job/inner")).unwrap();
        std::fs::write(d.join("kyb-job/inner/part"), "123").unwrap();
        std::fs::write(d.join("other-file"), "not ours").unwrap();
        let r = clean_temp(&cfg(d), &RunCtx::new(later())).await.unwrap();
        assert_eq!(names(d), ["other-file"]);
        assert_eq!((r.counts.deleted_files, r.counts.deleted_dirs, r.counts.freed_bytes), (2, 2, 8));
        assert_eq!(r.findings.checks[0].status, Status::Ok);
    }

    #[tokio::test]
    async fn young_sticky_and_locked_entries_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("kyb-young"), "fresh").unwrap();
        let young = clean_temp(&cfg(d), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
        assert_eq!(young.counts.deleted_files, 0);
        std::fs::create_dir(d.join("kyb-sticky")).unwrap();
        std::fs::set_permissions(d.join("kyb-sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(d.join("kyb-locked"), "in use").unwrap();
        // A directory someone holds a shared lock on, as systemd-tmpfiles' users do.
        std::fs::create_dir(d.join("kyb-dirlock")).unwrap();
        std::fs::write(d.join("kyb-dirlock/inner"), "in use").unwrap();
        let dir_held = std::fs::File::open(d.join("kyb-dirlock")).unwrap();
        rustix::fs::flock(&dir_held, rustix::fs::FlockOperation::LockShared).unwrap();
        let held = std::fs::File::open(d.join("kyb-locked")).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
        let r = clean_temp(&cfg(d), &RunCtx::new(later())).await.unwrap();
        assert_eq!(names(d), ["kyb-dirlock", "kyb-locked", "kyb-sticky"]);
        assert!(d.join("kyb-dirlock/inner").exists());
        let reasons: Vec<&str> = r.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons.iter().any(|s| s.contains("sticky")), "{reasons:?}");
        assert!(reasons.iter().any(|s| s.contains("locked")), "{reasons:?}");
        // Each entry left alone is an action line of its own.
        let sticky = format!("skip {} (sticky bit set; left alone)", d.join("kyb-sticky").display());
        assert!(r.findings.actions.contains(&sticky), "{:?}", r.findings.actions);
        let (skips, steps) = r.findings.actions.split_at(r.skipped.len());
        assert!(skips.iter().all(|a| a.starts_with("skip ")), "skips first: {skips:?}");
        let young = format!("remove {} (temp file past its age)", d.join("kyb-young").display());
        assert_eq!(steps, [young]);
        assert_eq!(r.findings.headline.as_deref(), Some("removed 1 file(s) and 0 dir(s), 5 B freed"));
    }

    #[tokio::test]
    async fn the_time_limit_stops_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..2_000 {
            std::fs::write(dir.path().join(format!("kyb-{i}")), "x").unwrap();
        }
        let r = clean_temp(&TempConfig { timeout_ms: 1, ..cfg(dir.path()) }, &RunCtx::new(later()))
            .await
            .unwrap();
        assert_eq!(r.findings.checks[0].status, Status::Warn);
        assert!(r.findings.checks[0].summary.contains("time limit"), "{}", r.findings.checks[0].summary);
        // Totals first, then the check that is not Ok.
        let headline = r.findings.headline.unwrap_or_default();
        let check = &r.findings.checks[0];
        assert!(headline.ends_with(&format!("; {} WARN: {}", check.name, check.summary)), "{headline}");
        assert!(r.counts.deleted_files < 2_000);
    }
}
