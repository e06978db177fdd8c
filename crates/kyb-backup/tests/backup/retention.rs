//! What stays and what goes: prune's retention, the leftovers of killed and live runs, and
//! bind mounts that deleting must never go through.

use crate::support::{DUMP, check_of, create_cfg, drill_cfg, one_of_each, seeded, verify_cfg};
use kyb_backup::*;
use kyb_core::{RunCtx, Status};
use std::path::Path;
use time::OffsetDateTime;

/// `backup_YYYYMMDD_HHMMSS` of `t`.
fn dir_name(t: OffsetDateTime) -> String {
    format!(
        "backup_{:04}{:02}{:02}_{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Backup directories with the given ages in days, each a copy of `made` (a good backup).
fn copies(made: &CreateReport, root: &Path, now: OffsetDateTime, days: &[i64]) -> Vec<std::path::PathBuf> {
    days.iter()
        .map(|d| {
            let dir = root.join("full").join(dir_name(now - time::Duration::days(*d)));
            std::fs::create_dir_all(&dir).unwrap();
            for f in [DUMP, "backup_metadata.json", "database.dump.gz.sha256"] {
                std::fs::copy(made.dir.join(f), dir.join(f)).unwrap();
            }
            dir
        })
        .collect()
}

fn prune_cfg(
    root: &Path,
    keep_min: usize,
    keep_last: Option<usize>,
    max_age_days: Option<u64>,
) -> PruneConfig {
    PruneConfig {
        backup_dir: root.to_owned(),
        keep_min,
        keep_last,
        max_age_days,
        pg_bindir: None,
        timeout_ms: 60_000,
    }
}

#[tokio::test]
async fn retention_keeps_the_minimum_of_good_backups_even_when_all_are_old() {
    let db = seeded("bkprune").await;
    let src = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, src.path()), &RunCtx::new(now)).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = copies(&made, root.path(), now, &[40, 50, 60, 70, 80]);
    // The newest of them is damaged: it does not count, and is kept (no newer good one exists).
    std::fs::write(dirs[0].join(DUMP), b"garbage").unwrap();

    // Dry run: the plan, nothing deleted.
    let plan = prune(&prune_cfg(root.path(), 2, None, Some(30)), &RunCtx::new(now).with_dry_run(true))
        .await
        .unwrap();
    let doomed: Vec<_> = plan.decisions.iter().filter(|d| d.delete).map(|d| d.dir.clone()).collect();
    assert_eq!(doomed, vec![dirs[3].clone(), dirs[4].clone()], "{:#?}", plan.decisions);
    assert!(dirs.iter().all(|d| d.exists()), "a dry run deleted something");
    assert!(
        plan.findings.checks[0].summary.contains("would delete 2"),
        "{}",
        plan.findings.checks[0].summary
    );
    // Every decision is an action line, newest backup first.
    let line = |verb: &str, i: usize, why: &str| format!("{verb} {} ({why})", dirs[i].display());
    let kept = "good; one of the 2 newest good backups, always kept";
    let acts = &plan.findings.actions;
    assert_eq!(acts.len(), 5, "{acts:#?}");
    assert!(acts[0].starts_with(&format!("keep {} (does not verify (", dirs[0].display())), "{}", acts[0]);
    assert!(acts[0].ends_with("; kept: no newer good backup exists)"), "{}", acts[0]);
    assert_eq!(acts[1..3], [line("keep", 1, kept), line("keep", 2, kept)]);
    assert_eq!(
        acts[3..],
        [line("would delete", 3, "good, but 70 days old"), line("would delete", 4, "good, but 80 days old")]
    );

    // Cancelled (Ctrl-C) while it verifies: it stops before it deletes any backup.
    let cancelled = RunCtx::new(now);
    cancelled.cancel.cancel();
    let err = prune(&prune_cfg(root.path(), 2, None, Some(30)), &cancelled).await.unwrap_err();
    assert!(matches!(err, BackupError::Cancelled), "{err:?}");
    assert_eq!(err.to_string(), "cancelled");
    assert!(dirs.iter().all(|d| d.exists()), "a cancelled prune deleted something");

    let r = prune(&prune_cfg(root.path(), 2, None, Some(30)), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks);
    assert!(dirs[0].exists(), "a damaged backup with no newer good one is kept");
    assert!(dirs[1].exists() && dirs[2].exists(), "the two newest good backups are kept");
    assert!(!dirs[3].exists() && !dirs[4].exists());
    assert!(!r.decisions[0].good && r.decisions[1].good);
    assert_eq!(r.findings.actions[1..3], acts[1..3]);
    assert_eq!(
        r.findings.actions[3..],
        [line("delete", 3, "good, but 70 days old"), line("delete", 4, "good, but 80 days old")]
    );
}

#[tokio::test]
async fn retention_by_count_and_age_removes_old_bad_backups_and_never_the_newest_good() {
    let db = seeded("bkprune2").await;
    let src = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, src.path()), &RunCtx::new(now)).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = copies(&made, root.path(), now, &[0, 1, 2, 3, 4]);
    std::fs::remove_file(dirs[2].join("backup_metadata.json")).unwrap();
    // A link to a file outside: removing the backup removes the link, never its target.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep-me"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path().join("keep-me"), dirs[4].join("extra")).unwrap();

    let r = prune(&prune_cfg(root.path(), 1, Some(2), None), &RunCtx::new(now)).await.unwrap();
    let kept: Vec<bool> = dirs.iter().map(|d| d.exists()).collect();
    // The bad one is kept until it is past the age limit; good ones beyond the newest 2 go.
    assert_eq!(kept, vec![true, true, true, false, false], "{:#?}", r.decisions);
    assert!(outside.path().join("keep-me").exists());
    assert!(
        r.findings.checks.iter().any(|c| c.name == "unverified" && c.status == Status::Warn),
        "{:?}",
        r.findings.checks
    );
    // Past the age limit, with newer good backups, it goes.
    let r = prune(&prune_cfg(root.path(), 1, Some(2), Some(1)), &RunCtx::new(now)).await.unwrap();
    assert!(!dirs[2].exists(), "{:#?}", r.decisions);
    assert!(dirs[0].exists());

    // One good backup and every limit at its tightest: it stays.
    let r =
        prune(&prune_cfg(root.path(), 1, Some(1), Some(0)), &RunCtx::new(now + time::Duration::days(400)))
            .await
            .unwrap();
    assert!(dirs[0].exists(), "{:#?}", r.decisions);
    assert!(!dirs[1].exists());
}

/// `base`, today at noon (UTC): a clock for runs that must fall on one day whatever the time.
fn noon_today() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_time(time::macros::time!(12:00))
}

/// What a run killed mid-dump leaves: its directory with a partial file and no metadata, and no
/// process holding the directory's lock (the kernel dropped it with the process).
fn killed_run_leftover(root: &Path, at: OffsetDateTime) -> std::path::PathBuf {
    let dir = root.join("full").join(dir_name(at));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("database.dump.gz.partial"), vec![0x1f; 4096]).unwrap();
    dir
}

#[tokio::test]
async fn a_killed_runs_partial_beside_a_good_backup_is_a_warn_and_is_swept() {
    let db = one_of_each("bkstale").await;
    let root = tempfile::tempdir().unwrap();
    let base = noon_today();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(base)).await.unwrap();
    let leftover = killed_run_leftover(root.path(), base + time::Duration::minutes(1));
    let now = base + time::Duration::minutes(2);

    for which in [Which::Today, Which::Latest] {
        let r = verify(&verify_cfg(root.path(), which.clone()), &RunCtx::new(now)).await.unwrap();
        assert_eq!(r.backup.as_ref(), Some(&made.dir), "{which:?}: the newest complete backup");
        let (warn, rest): (Vec<_>, Vec<_>) = r.findings.checks.iter().partition(|c| c.name == "partials");
        assert!(rest.iter().all(|c| c.status == Status::Ok), "{which:?}: {:?}", r.findings.checks);
        assert_eq!(warn.len(), 1, "{which:?}: {:?}", r.findings.checks);
        assert_eq!(warn[0].status, Status::Warn);
        let name = leftover.file_name().unwrap().to_str().unwrap();
        assert!(
            warn[0].summary.contains(&format!(
                "1 stale partial file left by a killed run: {name}/database.dump.gz.partial (4096 bytes); the next `kyb-backup create` or `prune` removes it"
            )),
            "{}",
            warn[0].summary
        );
    }
    let listed = list(root.path()).unwrap();
    assert_eq!(listed[0].state, "killed: partial file left");
    assert_eq!(listed[1].state, "complete");

    // The drill restores the good backup and carries the Warn along.
    let d = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert_eq!(check_of(&d.findings.checks, "restore").status, Status::Ok, "{:?}", d.findings.checks);
    assert_eq!(check_of(&d.findings.checks, "partials").status, Status::Warn);

    // Prune's plan names it and deletes nothing; the next backup sweeps it.
    let plan =
        prune(&prune_cfg(root.path(), 1, None, None), &RunCtx::new(now).with_dry_run(true)).await.unwrap();
    let swept = check_of(&plan.findings.checks, "partials");
    assert!(swept.summary.starts_with("would remove 1 stale partial file"), "{}", swept.summary);
    assert!(plan.decisions.iter().all(|d| d.dir != leftover), "{:#?}", plan.decisions);
    assert!(leftover.join("database.dump.gz.partial").exists());
    let next = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let swept = check_of(&next.findings.checks, "partials");
    assert_eq!(swept.status, Status::Ok);
    assert!(swept.summary.starts_with("removed 1 stale partial file"), "{}", swept.summary);
    assert!(!leftover.exists(), "the killed run's directory stays");
    let r = verify(&verify_cfg(root.path(), Which::Latest), &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    assert_eq!(r.backup.as_ref(), Some(&next.dir));
}

#[tokio::test]
async fn a_partial_file_a_live_run_is_writing_is_left_alone() {
    let db = one_of_each("bklive").await;
    let root = tempfile::tempdir().unwrap();
    let base = noon_today();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(base)).await.unwrap();
    // A table lock held elsewhere keeps the next pg_dump waiting, its partial file made and
    // empty, for as long as the test needs.
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let at = base + time::Duration::minutes(1);
    let running = tokio::spawn({
        let cfg = CreateConfig { lock_wait_timeout_ms: 120_000, ..create_cfg(&db, root.path()) };
        async move { create(&cfg, &RunCtx::new(at)).await }
    });
    let live = root.path().join("full").join(dir_name(at));
    let partial = live.join("database.dump.gz.partial");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !partial.exists() {
        assert!(
            std::time::Instant::now() < deadline && !running.is_finished(),
            "the run never began writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let now = base + time::Duration::minutes(2);
    let r = verify(&verify_cfg(root.path(), Which::Latest), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.backup.as_ref(), Some(&made.dir));
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    let p = prune(&prune_cfg(root.path(), 1, Some(1), Some(0)), &RunCtx::new(now + time::Duration::days(3)))
        .await
        .unwrap();
    assert!(partial.exists(), "prune removed a partial file a live run is writing");
    assert!(made.dir.exists(), "{:#?}", p.decisions);
    let in_progress = check_of(&p.findings.checks, "in progress");
    assert!(in_progress.summary.contains(&dir_name(at)), "{}", in_progress.summary);
    assert!(p.findings.checks.iter().all(|c| c.name != "partials"), "{:?}", p.findings.checks);
    assert_eq!(list(root.path()).unwrap()[0].state, "in progress");
    assert!(!running.is_finished());

    holder.batch_execute("ROLLBACK").await.unwrap();
    let finished = running.await.unwrap().unwrap();
    assert_eq!(finished.dir, live);
    assert!(!partial.exists() && live.join(DUMP).exists());
    let r = verify(&verify_cfg(root.path(), Which::Latest), &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
}

/// `mount --bind FROM TO`, undone on drop. Needs root (CI runs as root).
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> BindMount {
        let out = std::process::Command::new("mount").arg("--bind").arg(from).arg(to).output().unwrap();
        assert!(
            out.status.success(),
            "this test bind-mounts and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        BindMount(to.to_owned())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn retention_never_deletes_through_a_bind_mount() {
    let db = seeded("bkmount").await;
    let src = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, src.path()), &RunCtx::new(now)).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = copies(&made, root.path(), now, &[0, 40, 50]);
    // An old backup directory that is a bind mount of a good backup elsewhere, and another
    // holding a file bind-mounted from elsewhere: both would be deleted by age.
    let outside = tempfile::tempdir().unwrap();
    for f in [DUMP, "backup_metadata.json", "database.dump.gz.sha256"] {
        std::fs::copy(made.dir.join(f), outside.path().join(f)).unwrap();
    }
    std::fs::write(outside.path().join("single"), "keep").unwrap();
    std::fs::write(dirs[2].join("extra"), "").unwrap();
    // A killed run's directory whose partial file is a bind mount.
    let leftover = killed_run_leftover(root.path(), now - time::Duration::minutes(1));
    let mounts = [
        BindMount::new(outside.path(), &dirs[1]),
        BindMount::new(&outside.path().join("single"), &dirs[2].join("extra")),
        BindMount::new(&outside.path().join("single"), &leftover.join("database.dump.gz.partial")),
    ];
    let r = prune(&prune_cfg(root.path(), 1, None, Some(30)), &RunCtx::new(now)).await;
    let made_again =
        create(&create_cfg(&db, root.path()), &RunCtx::new(now + time::Duration::seconds(1))).await;
    drop(mounts);
    let (r, made_again) = (r.unwrap(), made_again.unwrap());
    let refused: Vec<_> = r.findings.checks.iter().filter(|c| c.summary.contains("mount point")).collect();
    assert_eq!(refused.len(), 2, "{:#?}", r.findings.checks);
    assert!(refused.iter().all(|c| c.status == Status::Warn));
    assert!(
        made_again.findings.checks.iter().all(|c| c.name != "partials"),
        "{:?}",
        made_again.findings.checks
    );
    for f in [DUMP, "backup_metadata.json", "database.dump.gz.sha256"] {
        assert!(outside.path().join(f).exists(), "{f} went through the bind mount");
    }
    assert_eq!(std::fs::read_to_string(outside.path().join("single")).unwrap(), "keep");
    assert!(dirs[1].exists() && dirs[2].join("extra").exists() && leftover.exists());
}
