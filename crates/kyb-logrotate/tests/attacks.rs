//! Symlinks, hard links and hostile directory contents: nothing outside the configured roots is
//! deleted, chowned or changed, nothing crashes, and the report says what was left alone.

use kyb_core::Status;
use kyb_logrotate::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

fn policy(path: &Path) -> LogPolicy {
    LogPolicy {
        path: path.to_owned(),
        size_bytes: 1,
        every: None,
        keep_days: 1,
        keep_count: Some(1),
        compress: true,
        delay_compress: false,
        compress_level: 6,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        mode: 0o640,
        reopen: Reopen::Nothing,
        reopen_timeout_ms: 1_000,
    }
}

/// Content, mode, owner and link count of a file, to prove it was not touched.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, u32, u64) {
    let m = std::fs::metadata(path).unwrap();
    (std::fs::read(path).unwrap(), m.mode(), m.uid(), m.nlink())
}

fn age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).unwrap();
}

#[tokio::test]
async fn links_pointing_outside_are_left_alone_and_reported() {
    let outside = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (o, l) = (outside.path(), logs.path());
    for name in ["victim-a", "victim-b", "secret"] {
        std::fs::write(o.join(name), format!("{name} must survive\n")).unwrap();
        std::fs::set_permissions(o.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
        age(&o.join(name), 90);
    }
    std::fs::create_dir(o.join("dir")).unwrap();
    std::fs::write(o.join("dir/inside"), "keep").unwrap();

    std::fs::write(l.join("app.log"), "live lines\n").unwrap();
    // A rotated-looking symlink to a file outside.
    std::os::unix::fs::symlink(o.join("victim-a"), l.join("app.log-20200101-000000.gz")).unwrap();
    // A rotated-looking hard link to a file outside (old, and beyond the count).
    std::fs::hard_link(o.join("victim-b"), l.join("app.log-20200102-000000")).unwrap();
    // A symlinked subdirectory.
    std::os::unix::fs::symlink(o.join("dir"), l.join("sub")).unwrap();
    // A hard-linked live log.
    std::fs::hard_link(o.join("secret"), l.join("other.log")).unwrap();
    // A live log that is a symlink.
    std::os::unix::fs::symlink(o.join("secret"), l.join("linked.log")).unwrap();

    // Taken after the links exist, so link counts match too.
    let before: Vec<_> =
        ["victim-a", "victim-b", "secret", "dir/inside"].iter().map(|n| fingerprint(&o.join(n))).collect();
    let logs_cfg =
        vec![policy(&l.join("app.log")), policy(&l.join("other.log")), policy(&l.join("linked.log"))];
    let now = OffsetDateTime::now_utc();
    let rotated = rotate(&RotateConfig { logs: logs_cfg.clone(), dry_run: false }, now).await.unwrap();
    let pruned = prune(
        &PruneConfig { logs: logs_cfg, reports_dir: None, reports_max_age_days: 30, dry_run: false },
        now,
    )
    .await
    .unwrap();

    let after: Vec<_> =
        ["victim-a", "victim-b", "secret", "dir/inside"].iter().map(|n| fingerprint(&o.join(n))).collect();
    assert_eq!(before, after, "files outside the log directory changed");
    // The links themselves are still there: skipped, not removed.
    assert!(l.join("app.log-20200101-000000.gz").symlink_metadata().is_ok());
    assert!(l.join("app.log-20200102-000000").exists());
    assert!(l.join("sub").symlink_metadata().unwrap().file_type().is_symlink());

    let skipped: Vec<String> = rotated
        .skipped
        .iter()
        .chain(&pruned.skipped)
        .map(|s| format!("{} {}", s.path.file_name().unwrap().to_string_lossy(), s.reason))
        .collect();
    for (name, why) in [
        ("other.log", "hard-linked"),
        ("linked.log", "not a regular file"),
        ("app.log-20200101-000000.gz", "symlink"),
        ("app.log-20200102-000000", "hard-linked"),
    ] {
        assert!(
            skipped.iter().any(|s| s.starts_with(name) && s.contains(why)),
            "{name}: {why} not in {skipped:?}"
        );
    }
    let status =
        |r: &FilesReport, name: &str| r.checks.iter().find(|c| c.name.ends_with(name)).unwrap().status;
    assert_eq!(status(&rotated, "/other.log"), Status::Warn);
    assert_eq!(status(&rotated, "/linked.log"), Status::Warn);
    // app.log itself rotated fine; the planted hard link beside it is why its check warns.
    let app = rotated.checks.iter().find(|c| c.name.ends_with("/app.log")).unwrap();
    assert_eq!(app.status, Status::Warn);
    assert!(app.summary.contains("rotated") && app.summary.contains("hard-linked"), "{}", app.summary);
    assert_eq!(status(&pruned, "/app.log"), Status::Warn, "{:?}", pruned.checks);
}

#[tokio::test]
async fn temp_cleanup_removes_links_themselves_never_their_targets() {
    let outside = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (o, t) = (outside.path(), temp.path());
    std::fs::create_dir(o.join("dir")).unwrap();
    std::fs::write(o.join("dir/precious"), "keep").unwrap();
    std::fs::write(o.join("file"), "keep too").unwrap();
    std::os::unix::fs::symlink(o.join("dir"), t.join("kyb-dirlink")).unwrap();
    std::fs::create_dir(t.join("kyb-job")).unwrap();
    std::os::unix::fs::symlink(o.join("file"), t.join("kyb-job/link")).unwrap();
    std::fs::hard_link(o.join("file"), t.join("kyb-job/hard")).unwrap();
    let cfg = TempConfig {
        dir: t.to_owned(),
        prefix: "kyb-".into(),
        max_age_secs: 60,
        timeout_ms: 5_000,
        dry_run: false,
    };
    let r = clean_temp(&cfg, OffsetDateTime::now_utc() + time::Duration::hours(2)).await.unwrap();
    assert_eq!(std::fs::read_to_string(o.join("dir/precious")).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(o.join("file")).unwrap(), "keep too");
    assert_eq!(std::fs::metadata(o.join("file")).unwrap().nlink(), 1, "our hard link went, the file stayed");
    assert!(std::fs::read_dir(t).unwrap().next().is_none(), "the temp entries themselves are gone");
    assert_eq!(r.checks[0].status, Status::Ok, "{:?}", r.checks);
    assert_eq!(r.counts.freed_bytes, 0, "a hard link frees nothing");
}

#[tokio::test]
async fn non_utf8_names_are_handled_and_reported_readably() {
    let logs = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let l = logs.path();
    std::fs::write(l.join("app.log"), "live\n").unwrap();
    std::fs::write(l.join(OsStr::from_bytes(b"app.log-\xff\xfe")), "not a rotated name").unwrap();
    std::fs::write(l.join(OsStr::from_bytes(b"app.log-20200101-000000\xff")), "not one either").unwrap();
    std::fs::write(temp.path().join(OsStr::from_bytes(b"kyb-\xff\xfe-upload")), "old temp").unwrap();
    let logs_cfg = vec![policy(&l.join("app.log"))];
    let now = OffsetDateTime::now_utc();
    rotate(&RotateConfig { logs: logs_cfg.clone(), dry_run: false }, now).await.unwrap();
    prune(&PruneConfig { logs: logs_cfg, reports_dir: None, reports_max_age_days: 30, dry_run: false }, now)
        .await
        .unwrap();
    assert!(l.join(OsStr::from_bytes(b"app.log-\xff\xfe")).exists());
    assert!(l.join(OsStr::from_bytes(b"app.log-20200101-000000\xff")).exists());
    let cfg = TempConfig {
        dir: temp.path().to_owned(),
        prefix: "kyb-".into(),
        max_age_secs: 60,
        timeout_ms: 5_000,
        dry_run: false,
    };
    let r = clean_temp(&cfg, now + time::Duration::hours(2)).await.unwrap();
    assert_eq!(r.counts.deleted_files, 1);
    assert!(r.actions[0].to_string().contains("kyb-\u{fffd}\u{fffd}-upload"), "{}", r.actions[0]);
}

#[tokio::test]
async fn files_vanishing_mid_walk_are_not_errors() {
    let temp = tempfile::tempdir().unwrap();
    let t = temp.path().to_owned();
    for i in 0..4_000 {
        std::fs::write(t.join(format!("kyb-{i:05}")), "x").unwrap();
    }
    // Someone else deletes the same files while the cleanup walks them.
    let t2 = t.clone();
    let rival = std::thread::spawn(move || {
        for i in (0..4_000).rev() {
            let _ = std::fs::remove_file(t2.join(format!("kyb-{i:05}")));
        }
    });
    let cfg = TempConfig {
        dir: t.clone(),
        prefix: "kyb-".into(),
        max_age_secs: 60,
        timeout_ms: 30_000,
        dry_run: false,
    };
    let r = clean_temp(&cfg, OffsetDateTime::now_utc() + time::Duration::hours(2)).await.unwrap();
    rival.join().unwrap();
    assert_eq!(r.checks[0].status, Status::Ok, "{:?}", r.checks);
    assert!(std::fs::read_dir(&t).unwrap().next().is_none());
    assert!(r.counts.deleted_files <= 4_000);
}

#[tokio::test]
async fn a_foreign_gz_beside_a_rotated_file_does_not_cost_the_file() {
    let logs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let l = logs.path();
    std::fs::write(l.join("app.log"), "").unwrap();
    // Rotated files kept plain (a held file, delay_compress) with something else at X.gz:
    // a symlink, a directory, a truncated gzip.
    for (i, planted) in ["link", "dir", "truncated"].iter().enumerate() {
        let stem = format!("app.log-2026112{i}-020000");
        std::fs::write(l.join(&stem), format!("only copy {i}\n")).unwrap();
        let gz = l.join(format!("{stem}.gz"));
        match *planted {
            "link" => {
                std::fs::write(outside.path().join("x.gz"), "whatever").unwrap();
                std::os::unix::fs::symlink(outside.path().join("x.gz"), &gz).unwrap();
            }
            "dir" => std::fs::create_dir(&gz).unwrap(),
            _ => std::fs::write(&gz, b"\x1f\x8b\x08\x00 not finished").unwrap(),
        }
    }
    let r = rotate(
        &RotateConfig { logs: vec![policy(&l.join("app.log"))], dry_run: false },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let stem = format!("app.log-2026112{i}-020000");
        assert_eq!(
            std::fs::read_to_string(l.join(&stem)).unwrap(),
            format!("only copy {i}\n"),
            "{stem} was lost"
        );
    }
    assert_eq!(r.checks[0].status, Status::Warn);
    assert!(r.checks[0].summary.contains("is not the compressed"), "{}", r.checks[0].summary);
}

#[tokio::test]
async fn after_a_crash_between_rename_and_signal_the_writer_is_still_told() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    // The state a kill between rename and signal leaves: a rotated file, no live log.
    std::fs::write(l.join("app.log-20261126-020000"), "rotated, never signalled\n").unwrap();
    // A stand-in writer whose pid is in the pid file: SIGHUP ends it, which shows it was sent.
    let mut writer = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(l.join("app.pid"), format!("{}\n", writer.id())).unwrap();
    let p = LogPolicy {
        reopen: Reopen::PidFile { path: l.join("app.pid"), signal: ReopenSignal::Hup },
        ..policy(&l.join("app.log"))
    };
    rotate(&RotateConfig { logs: vec![p], dry_run: false }, OffsetDateTime::now_utc()).await.unwrap();
    assert!(l.join("app.log").exists(), "live log recreated");
    let status = writer.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(1), "SIGHUP reached the writer");
}
