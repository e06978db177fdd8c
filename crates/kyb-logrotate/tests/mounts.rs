//! Bind mounts inside the temp, log and reports directories: a bind mount shares `st_dev` with
//! its parent, so only the mount ID tells it apart. Nothing under one is entered, planned or
//! removed, in a plan (dry run) or a run. Mounting needs root, as CI has.

use kyb_core::{RunCtx, Status};
use kyb_logrotate::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// `mount --bind FROM TO`, undone on drop (also when the test fails).
struct BindMount(PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> BindMount {
        let out = Command::new("mount").arg("--bind").arg(from).arg(to).output().unwrap();
        assert!(
            out.status.success(),
            "mount --bind {} {} (these tests need root): {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        BindMount(to.to_owned())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A directory outside every configured root, with old files and a subdirectory, and a
/// fingerprint of everything in it.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        let o = dir.path();
        std::fs::create_dir(o.join("sub")).unwrap();
        for name in ["precious", "sub/deep", "single"] {
            std::fs::write(o.join(name), format!("{name} must survive\n")).unwrap();
            age(&o.join(name), 90);
        }
        Outside { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fingerprint(&self) -> Vec<(String, Vec<u8>, u64)> {
        ["precious", "sub/deep", "single"]
            .iter()
            .map(|n| {
                let p = self.path(n);
                (n.to_string(), std::fs::read(&p).unwrap(), std::fs::metadata(&p).unwrap().ino())
            })
            .collect()
    }
}

fn age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).unwrap();
}

/// Temp cleanup of `dir` two days from now with no minimum age: everything old enough.
async fn clean_temp_of(dir: &Path, dry_run: bool) -> FilesReport {
    let cfg = TempConfig { dir: dir.to_owned(), prefix: "kyb-".into(), max_age_secs: 0, timeout_ms: 10_000 };
    clean_temp(&cfg, &RunCtx::new(OffsetDateTime::now_utc() + time::Duration::days(2)).with_dry_run(dry_run))
        .await
        .unwrap()
}

/// A policy under which `path` is due (any size), rotated files kept a day and at most five.
fn policy(path: &Path) -> LogPolicy {
    LogPolicy {
        path: path.to_owned(),
        size_bytes: 1,
        every: None,
        keep_days: 1,
        keep_count: Some(5),
        compress: true,
        delay_compress: false,
        compress_level: 6,
        uid: None,
        gid: None,
        mode: 0o640,
        reopen: Reopen::Nothing,
        reopen_timeout_ms: 1_000,
    }
}

fn planned(r: &FilesReport) -> Vec<String> {
    r.steps.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn temp_cleanup_never_enters_or_removes_a_bind_mount() {
    let outside = Outside::new();
    let temp = tempfile::tempdir().unwrap();
    let t = temp.path();
    std::fs::create_dir(t.join("kyb-b")).unwrap();
    std::fs::write(t.join("kyb-f"), "mount point").unwrap();
    std::fs::write(t.join("kyb-old"), "really temp").unwrap();
    let before = outside.fingerprint();
    let _dir = BindMount::new(outside.dir.path(), &t.join("kyb-b"));
    let _file = BindMount::new(&outside.path("single"), &t.join("kyb-f"));
    // Both are seen through the mounts, and would be old enough.
    assert!(t.join("kyb-b/sub/deep").exists());

    for dry_run in [true, false] {
        let r = clean_temp_of(t, dry_run).await;
        let plan = planned(&r);
        assert!(
            plan.iter().all(|a| !a.contains("kyb-b") && !a.contains("kyb-f")),
            "dry_run={dry_run}: {plan:?}"
        );
        assert!(plan.iter().any(|a| a.contains("kyb-old")), "the ordinary entry still goes: {plan:?}");
        for name in ["kyb-b", "kyb-f"] {
            assert!(
                r.skipped.iter().any(|s| s.path == t.join(name) && s.reason.contains("mount point")),
                "{name} not reported: {:?}",
                r.skipped
            );
        }
        assert_eq!(r.findings.checks[0].status, Status::Warn, "{:?}", r.findings.checks);
        assert!(r.findings.checks[0].summary.contains("mount point"), "{}", r.findings.checks[0].summary);
    }
    assert_eq!(outside.fingerprint(), before, "files outside the temp directory changed");
    assert!(!t.join("kyb-old").exists());
    assert!(t.join("kyb-b/sub/deep").exists(), "still mounted, still whole");
}

#[tokio::test]
async fn a_bind_mount_below_a_temp_entry_stops_the_walk_there() {
    let outside = Outside::new();
    let temp = tempfile::tempdir().unwrap();
    let t = temp.path();
    std::fs::create_dir_all(t.join("kyb-job/mnt")).unwrap();
    std::fs::write(t.join("kyb-job/scratch"), "temp").unwrap();
    let before = outside.fingerprint();
    let _m = BindMount::new(outside.dir.path(), &t.join("kyb-job/mnt"));
    for dry_run in [true, false] {
        let r = clean_temp_of(t, dry_run).await;
        let plan = planned(&r);
        assert!(plan.iter().all(|a| !a.contains("/mnt")), "{plan:?}");
        // kyb-job holds a mount point, so it is not empty and stays.
        assert!(plan.iter().all(|a| !a.ends_with("kyb-job (empty temp directory past its age)")), "{plan:?}");
        assert!(plan.iter().any(|a| a.contains("kyb-job/scratch")), "{plan:?}");
    }
    assert_eq!(outside.fingerprint(), before);
    assert!(t.join("kyb-job/mnt/sub/deep").exists());
}

#[tokio::test]
async fn retention_never_removes_a_mount_point_in_the_log_or_reports_directory() {
    let outside = Outside::new();
    let logs = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (l, rd) = (logs.path(), reports.path());
    std::fs::write(l.join("app.log"), "live\n").unwrap();
    // Rotated-looking names, old and beyond the count: a bind-mounted file and directory, and
    // an ordinary old rotated file that retention does remove.
    std::fs::write(l.join("app.log-20200101-000000.gz"), "").unwrap();
    std::fs::create_dir(l.join("app.log-20200102-000000")).unwrap();
    std::fs::write(l.join("app.log-20200103-000000.gz"), "old").unwrap();
    age(&l.join("app.log-20200103-000000.gz"), 90);
    std::fs::write(rd.join("daily-report-20200101-020000.txt"), "").unwrap();
    std::fs::create_dir(rd.join("weekly-report-20200101-020000.json")).unwrap();
    std::fs::write(rd.join("daily-report-20200102-020000.txt"), "old report").unwrap();
    age(&rd.join("daily-report-20200102-020000.txt"), 90);
    let before = outside.fingerprint();
    let _m = [
        BindMount::new(&outside.path("single"), &l.join("app.log-20200101-000000.gz")),
        BindMount::new(outside.dir.path(), &l.join("app.log-20200102-000000")),
        BindMount::new(&outside.path("precious"), &rd.join("daily-report-20200101-020000.txt")),
        BindMount::new(&outside.path("sub"), &rd.join("weekly-report-20200101-020000.json")),
    ];
    let policy = LogPolicy { size_bytes: 1 << 30, keep_count: Some(1), ..policy(&l.join("app.log")) };
    let now = OffsetDateTime::now_utc();
    for dry_run in [true, false] {
        let cfg = RetentionConfig {
            logs: vec![policy.clone()],
            reports_dir: Some(rd.to_owned()),
            reports_max_age_days: 1,
        };
        let r = prune(&cfg, &RunCtx::new(now).with_dry_run(dry_run)).await.unwrap();
        let plan = planned(&r);
        for mounted in [
            "app.log-20200101-000000.gz",
            "app.log-20200102-000000",
            "daily-report-20200101-020000.txt",
            "weekly-report-20200101-020000.json",
        ] {
            assert!(plan.iter().all(|a| !a.contains(mounted)), "dry_run={dry_run}: {mounted} in {plan:?}");
        }
        assert!(plan.iter().any(|a| a.contains("app.log-20200103-000000.gz")), "{plan:?}");
        assert!(plan.iter().any(|a| a.contains("daily-report-20200102-020000.txt")), "{plan:?}");
        assert!(
            r.skipped
                .iter()
                .any(|s| s.path.ends_with("app.log-20200101-000000.gz") && s.reason.contains("mount point")),
            "{:?}",
            r.skipped
        );
        assert!(
            r.skipped
                .iter()
                .any(|s| s.path.ends_with("daily-report-20200101-020000.txt")
                    && s.reason.contains("mount point")),
            "{:?}",
            r.skipped
        );
        assert!(r.findings.checks.iter().all(|c| c.status == Status::Warn), "{:?}", r.findings.checks);
    }
    // And rotation's own retention pass, from the same listing.
    let r = rotate(&RotateConfig { logs: vec![policy] }, &RunCtx::new(now)).await.unwrap();
    assert!(planned(&r).iter().all(|a| !a.contains("app.log-20200101-000000.gz")), "{:?}", r.steps);
    assert_eq!(outside.fingerprint(), before, "files outside the log and reports directories changed");
    assert!(!l.join("app.log-20200103-000000.gz").exists());
    assert!(!rd.join("daily-report-20200102-020000.txt").exists());
}

#[tokio::test]
async fn a_file_mounted_over_the_live_log_is_neither_rotated_nor_truncated() {
    let outside = Outside::new();
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    std::fs::write(l.join("app.log"), "").unwrap();
    let before = outside.fingerprint();
    let _m = BindMount::new(&outside.path("precious"), &l.join("app.log"));
    for reopen in [Reopen::CopyTruncate, Reopen::Nothing] {
        for dry_run in [true, false] {
            let policy = LogPolicy { reopen: reopen.clone(), ..policy(&l.join("app.log")) };
            let r = rotate(
                &RotateConfig { logs: vec![policy] },
                &RunCtx::new(OffsetDateTime::now_utc()).with_dry_run(dry_run),
            )
            .await
            .unwrap();
            assert!(r.steps.is_empty(), "{reopen:?} dry_run={dry_run}: {:?}", r.steps);
            assert_eq!(r.findings.checks[0].status, Status::Warn, "{:?}", r.findings.checks);
            assert!(
                r.findings.checks[0].summary.contains("a mount point"),
                "{}",
                r.findings.checks[0].summary
            );
        }
    }
    assert_eq!(outside.fingerprint(), before, "the file mounted over the log changed");
    let names: Vec<_> = std::fs::read_dir(l).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["app.log"], "nothing rotated beside it");
}
