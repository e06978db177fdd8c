//! Symlinks, hard links and hostile directory contents: nothing outside the configured roots is
//! deleted, chowned or changed, nothing crashes, and the report says what was left alone.

use kyb_core::{RunCtx, Status};
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
        uid: Some(rustix::process::geteuid().as_raw()),
        gid: Some(rustix::process::getegid().as_raw()),
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
    let rotated = rotate(&RotateConfig { logs: logs_cfg.clone() }, &RunCtx::new(now)).await.unwrap();
    let pruned = prune(
        &RetentionConfig { logs: logs_cfg, reports_dir: None, reports_max_age_days: 30 },
        &RunCtx::new(now),
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
    let status = |r: &FilesReport, name: &str| {
        r.findings.checks.iter().find(|c| c.name.ends_with(name)).unwrap().status
    };
    assert_eq!(status(&rotated, "/other.log"), Status::Warn);
    assert_eq!(status(&rotated, "/linked.log"), Status::Warn);
    // app.log itself rotated fine; the planted hard link beside it is why its check warns.
    let app = rotated.findings.checks.iter().find(|c| c.name.ends_with("/app.log")).unwrap();
    assert_eq!(app.status, Status::Warn);
    assert!(app.summary.contains("rotated") && app.summary.contains("hard-linked"), "{}", app.summary);
    assert_eq!(status(&pruned, "/app.log"), Status::Warn, "{:?}", pruned.findings.checks);
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
    let cfg = TempConfig { dir: t.to_owned(), prefix: "kyb-".into(), max_age_secs: 60, timeout_ms: 5_000 };
    let r =
        clean_temp(&cfg, &RunCtx::new(OffsetDateTime::now_utc() + time::Duration::hours(2))).await.unwrap();
    assert_eq!(std::fs::read_to_string(o.join("dir/precious")).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(o.join("file")).unwrap(), "keep too");
    assert_eq!(std::fs::metadata(o.join("file")).unwrap().nlink(), 1, "our hard link went, the file stayed");
    assert!(std::fs::read_dir(t).unwrap().next().is_none(), "the temp entries themselves are gone");
    assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
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
    rotate(&RotateConfig { logs: logs_cfg.clone() }, &RunCtx::new(now)).await.unwrap();
    prune(
        &RetentionConfig { logs: logs_cfg, reports_dir: None, reports_max_age_days: 30 },
        &RunCtx::new(now),
    )
    .await
    .unwrap();
    assert!(l.join(OsStr::from_bytes(b"app.log-\xff\xfe")).exists());
    assert!(l.join(OsStr::from_bytes(b"app.log-20200101-000000\xff")).exists());
    let cfg = TempConfig {
        dir: temp.path().to_owned(),
        prefix: "kyb-".into(),
        max_age_secs: 60,
        timeout_ms: 5_000,
    };
    let r = clean_temp(&cfg, &RunCtx::new(now + time::Duration::hours(2))).await.unwrap();
    assert_eq!(r.counts.deleted_files, 1);
    assert!(r.steps[0].to_string().contains("kyb-\u{fffd}\u{fffd}-upload"), "{}", r.steps[0]);
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
    let cfg = TempConfig { dir: t.clone(), prefix: "kyb-".into(), max_age_secs: 60, timeout_ms: 30_000 };
    let r =
        clean_temp(&cfg, &RunCtx::new(OffsetDateTime::now_utc() + time::Duration::hours(2))).await.unwrap();
    rival.join().unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
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
        &RotateConfig { logs: vec![policy(&l.join("app.log"))] },
        &RunCtx::new(OffsetDateTime::now_utc()),
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
    assert_eq!(r.findings.checks[0].status, Status::Warn);
    assert!(
        r.findings.checks[0].summary.contains("is not the compressed"),
        "{}",
        r.findings.checks[0].summary
    );
}

/// A real writer (`kyb-log-writer`): appends numbered lines, reopens its log by path on SIGHUP
/// with a handler of its own (so it hears SIGHUP even where this test runs with SIGHUP ignored,
/// as under `nohup`, which a plain `sleep` would inherit), and on SIGTERM says how many it wrote.
struct Writer {
    child: std::process::Child,
    pid: i32,
}

impl Writer {
    fn start(log: &Path, pid_file: &Path) -> Writer {
        let child = std::process::Command::new(kyb_testkit::binary("kyb-log-writer"))
            .args(["--per-ms", "1", "--path"])
            .arg(log)
            .arg("--pid-file")
            .arg(pid_file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Its pid file is written after its signal handlers are in place.
        wait_for(|| std::fs::read_to_string(pid_file).is_ok_and(|t| t.trim() == pid.to_string()), "pid file");
        wait_for(|| std::fs::metadata(log).is_ok_and(|m| m.len() > 0), "first lines");
        Writer { child, pid }
    }

    /// Stops the writer; the numbers of the lines it wrote.
    fn stop(self) -> u64 {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.pid).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    }
}

fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Every line number from 0 to `n`, once, across the live log and its rotated files.
fn assert_no_line_lost(dir: &Path, n: u64) {
    let mut seen = vec![false; n as usize];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("app.log") {
            continue;
        }
        let mut text = String::new();
        if name.ends_with(".gz") {
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
                &mut text,
            )
            .unwrap();
        } else {
            text = std::fs::read_to_string(&path).unwrap();
        }
        for line in text.lines() {
            let i: usize = line["{\"n\":".len()..line.find(',').unwrap()].parse().unwrap();
            assert!(!seen[i], "line {i} twice");
            seen[i] = true;
        }
    }
    assert!(seen.iter().all(|s| *s), "lost lines: {:?}", seen.iter().positions_false());
}

trait PositionsFalse {
    fn positions_false(self) -> Vec<usize>;
}

impl<'a, I: Iterator<Item = &'a bool>> PositionsFalse for I {
    fn positions_false(self) -> Vec<usize> {
        self.enumerate().filter(|(_, b)| !**b).map(|(i, _)| i).take(10).collect()
    }
}

fn signalled(l: &Path) -> LogPolicy {
    LogPolicy {
        reopen: Reopen::PidFile { path: l.join("app.pid"), signal: ReopenSignal::Hup },
        reopen_timeout_ms: 10_000,
        ..policy(&l.join("app.log"))
    }
}

#[tokio::test]
async fn after_a_crash_between_rename_and_signal_the_writer_is_still_told() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    let writer = Writer::start(&l.join("app.log"), &l.join("app.pid"));
    // The state a kill between rename and signal leaves: the writer appends to the rotated
    // file, and there is no live log.
    std::fs::rename(l.join("app.log"), l.join("app.log-20261126-020000")).unwrap();
    let r = rotate(&RotateConfig { logs: vec![signalled(l)] }, &RunCtx::new(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert!(r.steps.iter().any(|a| matches!(a, Action::Signal { pid, .. } if *pid == writer.pid)));
    assert_ne!(r.findings.checks[0].status, Status::Crit, "{:?}", r.findings.checks);
    assert!(r.findings.checks[0].summary.contains("recreated"), "{}", r.findings.checks[0].summary);
    // The writer heard it: its new lines go to the new live log, and the rotated file, let go,
    // was compressed.
    wait_for(|| std::fs::metadata(l.join("app.log")).is_ok_and(|m| m.len() > 0), "lines in the new log");
    assert!(l.join("app.log-20261126-020000.gz").exists(), "{:?}", r.findings.checks);
    assert!(!l.join("app.log-20261126-020000").exists());
    let n = writer.stop();
    assert_no_line_lost(l, n);
}

/// The reproduction: a wrong pid in the pid file at rotation time (a process that has
/// exited), so the rename is done but the writer never told (Crit); then the right pid again.
/// Returns the writer, still appending to the rotated file, and that file's name.
async fn a_writer_never_told(l: &Path, p: &LogPolicy) -> (Writer, String) {
    let writer = Writer::start(&l.join("app.log"), &l.join("app.pid"));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(l.join("app.pid"), format!("{gone_pid}\n")).unwrap();
    let first = rotate(&RotateConfig { logs: vec![p.clone()] }, &RunCtx::new(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert_eq!(first.findings.checks[0].status, Status::Crit, "{:?}", first.findings.checks);
    let rotated: Vec<_> = std::fs::read_dir(l)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("app.log-"))
        .collect();
    assert_eq!(rotated.len(), 1, "the rename was done: {rotated:?}");
    std::fs::write(l.join("app.pid"), format!("{}\n", writer.pid)).unwrap();
    (writer, rotated[0].clone())
}

#[tokio::test]
async fn a_writer_never_told_is_signalled_again_on_the_next_run() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    let p = LogPolicy { size_bytes: 1, ..signalled(l) };
    let (writer, rotated) = a_writer_never_told(l, &p).await;
    let second =
        rotate(&RotateConfig { logs: vec![p] }, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    let check = &second.findings.checks[0];
    assert_eq!(check.status, Status::Warn, "{check:?}");
    assert!(check.summary.contains(&format!("writer pid {} still held", writer.pid)), "{}", check.summary);
    assert!(check.summary.contains("signalled again"), "{}", check.summary);
    assert!(l.join(format!("{rotated}.gz")).exists(), "compressed once let go: {check:?}");
    assert!(!l.join(&rotated).exists());
    wait_for(|| std::fs::metadata(l.join("app.log")).is_ok_and(|m| m.len() > 0), "lines in the live log");
    let n = writer.stop();
    assert_no_line_lost(l, n);
}

#[tokio::test]
async fn without_compression_a_writer_never_told_is_still_signalled_again() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    let p = LogPolicy { size_bytes: 1, compress: false, ..signalled(l) };
    let (writer, rotated) = a_writer_never_told(l, &p).await;
    // Not due to rotate again: only the writer's hold on the rotated file is left to mend.
    let p = LogPolicy { size_bytes: 1 << 40, ..p };
    let second =
        rotate(&RotateConfig { logs: vec![p] }, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    let check = &second.findings.checks[0];
    assert_eq!(check.status, Status::Warn, "{check:?}");
    assert!(check.summary.contains("signalled again"), "{}", check.summary);
    assert!(second.steps.iter().any(|a| matches!(a, Action::Signal { pid, .. } if *pid == writer.pid)));
    assert!(l.join(&rotated).exists(), "kept plain: compression is off");
    wait_for(|| std::fs::metadata(l.join("app.log")).is_ok_and(|m| m.len() > 0), "lines in the live log");
    let n = writer.stop();
    assert_no_line_lost(l, n);
}

#[tokio::test]
async fn a_writer_that_never_reopens_is_crit_and_its_file_kept() {
    for compress in [true, false] {
        let logs = tempfile::tempdir().unwrap();
        let l = logs.path();
        std::fs::write(l.join("app.log"), "before\n").unwrap();
        // A writer that holds its log and ignores SIGHUP.
        let log = std::fs::OpenOptions::new().append(true).open(l.join("app.log")).unwrap();
        let mut deaf = std::process::Command::new("sh")
            .args(["-c", "trap '' HUP; echo ready; exec sleep 60"])
            .stdout(log)
            .spawn()
            .unwrap();
        wait_for(|| std::fs::read_to_string(l.join("app.log")).is_ok_and(|t| t.contains("ready")), "sh");
        std::fs::write(l.join("app.pid"), format!("{}\n", deaf.id())).unwrap();
        let p = LogPolicy { size_bytes: 1, reopen_timeout_ms: 600, compress, ..signalled(l) };
        let r =
            rotate(&RotateConfig { logs: vec![p] }, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
        let _ = deaf.kill();
        deaf.wait().unwrap();
        let check = &r.findings.checks[0];
        assert_eq!(check.status, Status::Crit, "compress={compress}: {check:?}");
        assert!(
            check.summary.contains(&format!("writer pid {} does not reopen its log", deaf.id())),
            "{}",
            check.summary
        );
        let signals = r.steps.iter().filter(|a| matches!(a, Action::Signal { .. })).count();
        assert_eq!(signals, 4, "signalled once, then again a bounded number of times: {:?}", r.steps);
        let rotated: Vec<_> = std::fs::read_dir(l)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("app.log-"))
            .collect();
        assert_eq!(rotated.len(), 1, "kept uncompressed: {rotated:?}");
        assert!(!rotated[0].ends_with(".gz"));
        assert!(std::fs::read_to_string(l.join(&rotated[0])).unwrap().contains("before\nready\n"));
    }
}

#[tokio::test]
async fn a_pid_file_that_is_a_fifo_or_a_device_does_not_hang_the_rotation() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    for (i, special) in ["fifo", "/dev/zero"].iter().enumerate() {
        std::fs::write(l.join("app.log"), "over the size limit\n").unwrap();
        let pid_file = l.join(format!("app-{i}.pid"));
        if *special == "fifo" {
            assert!(std::process::Command::new("mkfifo").arg(&pid_file).status().unwrap().success());
        } else {
            std::os::unix::fs::symlink(special, &pid_file).unwrap();
        }
        let p = LogPolicy {
            size_bytes: 1,
            reopen: Reopen::PidFile { path: pid_file.clone(), signal: ReopenSignal::Hup },
            ..policy(&l.join("app.log"))
        };
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            rotate(&RotateConfig { logs: vec![p] }, &RunCtx::new(OffsetDateTime::now_utc())),
        )
        .await
        .expect("a special pid file must not hang the rotation")
        .unwrap();
        assert_eq!(r.findings.checks[0].status, Status::Crit, "{:?}", r.findings.checks);
        assert!(
            r.findings.checks[0].summary.contains("not a regular file"),
            "{}",
            r.findings.checks[0].summary
        );
    }
}
