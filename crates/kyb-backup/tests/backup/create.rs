//! Making backups with real pg_dump: what a run writes and how it fails, what it hands the
//! PostgreSQL tools, and archives of configuration files.

use crate::support::{DUMP, create_cfg, drill_cfg, gunzip, metadata, one_of_each, seeded, verify_cfg};
use kyb_backup::*;
use kyb_core::{RunCtx, Secret, Status, Unit};
use kyb_testkit::fresh_database;
use std::path::Path;
use time::OffsetDateTime;

#[tokio::test]
async fn create_then_verify_round_trip() {
    let db = seeded("bkround").await;
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, dir.path()), &RunCtx::new(now)).await.unwrap();
    let meta = metadata(&made);
    assert!(made.dir.join(DUMP).is_file());
    assert!(!made.dir.join("database.dump.gz.partial").exists());
    // The stored file is a gzip of a custom-format archive, and the sidecar is sha256sum's format.
    assert!(gunzip(&std::fs::read(made.dir.join(DUMP)).unwrap()).starts_with(b"PGDMP"));
    assert_eq!(
        std::fs::read_to_string(made.dir.join("database.dump.gz.sha256")).unwrap(),
        format!("{}  {DUMP}\n", meta.checksum)
    );
    assert!(meta.dump_bytes > meta.size_bytes);
    let rows = |t: &str| meta.tables.iter().find(|r| r.table == t).map(|r| r.rows);
    assert_eq!(
        (rows("public.companies"), rows("public.owners"), rows("public.checks")),
        (Some(60_000), Some(40_000), Some(20_000))
    );
    assert_eq!(meta.checksum.len(), 64);
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(made.dir.join("backup_metadata.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["backup_file"], DUMP);
    assert_eq!(on_disk["format"], "custom");
    for key in [
        "size_bytes",
        "database",
        "server_version",
        "pg_dump_version",
        "started_at",
        "finished_at",
        "duration_ms",
    ] {
        assert!(!on_disk[key].is_null(), "{key} missing from the metadata");
    }
    assert_eq!(on_disk["checksum"], meta.checksum);
    // The report: the backup with its size and duration, and the two files that make it.
    let checks = &made.findings.checks;
    assert_eq!(checks.len(), 1, "{checks:?}");
    let db_name = db.pg_target().dbname;
    assert_eq!((checks[0].name.as_str(), checks[0].status), ("backup", Status::Ok));
    assert!(checks[0].summary.starts_with(&format!("custom dump of {db_name}: ")), "{}", checks[0].summary);
    assert!(checks[0].summary.ends_with(&format!(" in {} ms", meta.duration_ms)), "{}", checks[0].summary);
    let metric = |label: &str| checks[0].metrics.iter().find(|m| m.label == label).map(|m| (m.value, m.unit));
    assert_eq!(metric("backup_size"), Some((meta.size_bytes as f64, Unit::Bytes)));
    assert_eq!(metric("backup_duration"), Some((meta.duration_ms as f64 / 1000.0, Unit::Seconds)));
    assert_eq!(made.findings.artifacts, [made.dir.join(DUMP), made.dir.join("backup_metadata.json")]);
    assert!(made.findings.actions.is_empty() && made.findings.headline.is_none());
    for which in [Which::Today, Which::Latest, Which::Dir(made.dir.clone())] {
        let r = verify(&verify_cfg(dir.path(), which.clone()), &RunCtx::new(now)).await.unwrap();
        // For the textfile: the backup's age (made this second), its limit, and its size.
        let gauges: Vec<_> =
            r.findings.checks.iter().flat_map(|c| &c.gauges).map(|g| (g.name.as_str(), g.value)).collect();
        assert_eq!(gauges.len(), 3, "{gauges:?}");
        assert!(
            gauges[0].0 == "kyb_maint_backup_age_seconds" && (0.0..120.0).contains(&gauges[0].1),
            "{gauges:?}"
        );
        let limit = verify_cfg(dir.path(), Which::Today).max_age_hours as f64 * 3600.0;
        assert_eq!(gauges[1], ("kyb_maint_backup_max_age_seconds", limit));
        assert_eq!(gauges[2], ("kyb_maint_backup_size_bytes", meta.size_bytes as f64));
        assert!(
            r.findings.checks.iter().all(|c| c.status == Status::Ok),
            "{which:?}: {:?}",
            r.findings.checks
        );
        assert_eq!(r.findings.checks.len(), 7, "{:?}", r.findings.checks);
    }
}

#[tokio::test]
async fn a_failing_pg_dump_leaves_nothing_and_keeps_the_previous_backup() {
    let db = seeded("bkfail").await;
    let root = tempfile::tempdir().unwrap();
    let first = create(&create_cfg(&db, root.path()), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    let before = std::fs::read(first.dir.join(DUMP)).unwrap();

    // A lock held elsewhere makes pg_dump give up (its lock wait timeout): a real dump failure.
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE owners IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let cfg = CreateConfig { lock_wait_timeout_ms: 300, ..create_cfg(&db, root.path()) };
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let err = create(&cfg, &RunCtx::new(later)).await.unwrap_err();
    assert!(matches!(err, BackupError::Dump { .. }), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("lock"), "{err}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    // A database that does not exist fails before anything is made.
    let mut gone = create_cfg(&db, root.path());
    gone.postgres.dbname = "no_such_database_kyb".into();
    assert!(create(&gone, &RunCtx::new(later)).await.is_err());

    let dirs: Vec<_> =
        std::fs::read_dir(root.path().join("full")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs, vec![first.dir.clone()], "only the first backup may exist");
    assert_eq!(std::fs::read(first.dir.join(DUMP)).unwrap(), before);
}

#[tokio::test]
async fn a_cancelled_backup_stops_pg_dump_and_leaves_nothing() {
    let db = one_of_each("bkcancelled").await;
    let root = tempfile::tempdir().unwrap();
    let first = create(&create_cfg(&db, root.path()), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    // A lock held elsewhere keeps pg_dump waiting, its partial file made, until it is cancelled.
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let ctx = RunCtx::new(OffsetDateTime::now_utc() + time::Duration::seconds(5));
    let cfg = CreateConfig { lock_wait_timeout_ms: 120_000, ..create_cfg(&db, root.path()) };
    let running = tokio::spawn({
        let ctx = ctx.clone();
        async move { create(&cfg, &ctx).await }
    });
    let stamp = time::macros::format_description!("[year][month][day]_[hour][minute][second]");
    let dir = root.path().join("full").join(format!("backup_{}", ctx.now.format(stamp).unwrap()));
    let partial = dir.join("database.dump.gz.partial");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !partial.exists() {
        assert!(std::time::Instant::now() < deadline && !running.is_finished(), "the dump never began");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    ctx.cancel.cancel();
    let err = running.await.unwrap().unwrap_err();
    assert!(matches!(err, BackupError::DumpCancelled), "{err:?}");
    assert_eq!(err.to_string(), "cancelled; pg_dump stopped and the partial backup removed");
    holder.batch_execute("ROLLBACK").await.unwrap();
    let dirs: Vec<_> =
        std::fs::read_dir(root.path().join("full")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs, vec![first.dir.clone()], "only the first backup may exist");
}

#[tokio::test]
async fn an_unusable_backup_dir_is_a_clear_error() {
    let db = fresh_database("bkdir").await;
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = create(&create_cfg(&db, &file), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap_err();
    assert!(matches!(err, BackupError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_named_with_the_cause() {
    let db = fresh_database("bkdown").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = create_cfg(&db, root.path());
    cfg.postgres.host = "127.0.0.1".into();
    cfg.postgres.port = port;
    let err = create(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap_err();
    assert!(matches!(err, BackupError::Connect(_)), "{err:?}");
    let text = kyb_core::error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; check "
        )),
        "{text}"
    );
    assert!(
        std::fs::read_dir(root.path().join("full")).map_or(true, |mut d| d.next().is_none()),
        "nothing left"
    );
}

#[tokio::test]
async fn a_pg_dump_older_than_the_server_is_refused_before_dumping() {
    let db = fresh_database("bkold").await;
    let root = tempfile::tempdir().unwrap();
    // No older pg_dump can be installed here: a stand-in that reports version 12 and fails if
    // it is ever asked to dump.
    let bindir = root.path().join("bin");
    std::fs::create_dir(&bindir).unwrap();
    let script = bindir.join("pg_dump");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 12.22'; exit 0; fi\necho dumped >&2; exit 99\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = CreateConfig { pg_bindir: Some(bindir), ..create_cfg(&db, &root.path().join("backups")) };
    let err = create(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap_err();
    assert!(matches!(err, BackupError::PgDumpTooOld { pg_dump: 12, server } if server >= 13), "{err:?}");
    assert!(err.to_string().contains("older than the server"), "{err}");
    assert!(!root.path().join("backups/full").exists(), "nothing may be made");
}

#[tokio::test]
async fn the_server_stopping_mid_dump_leaves_nothing_and_keeps_the_previous_backup() {
    let server = tokio::task::spawn_blocking(|| kyb_testkit::ScratchServer::start("bkstop"))
        .await
        .unwrap()
        .expect("a scratch PostgreSQL server");
    let s = &server.stack;
    let t = PgTarget {
        host: "127.0.0.1".into(),
        port: s.pg_port,
        user: s.pg_user.clone(),
        password: Some(Secret::new(s.password.clone())),
        dbname: "kyb".into(),
    };
    let root = tempfile::tempdir().unwrap();
    let cfg = CreateConfig {
        backup_dir: root.path().to_owned(),
        postgres: t,
        format: Format::Plain,
        compression_level: 6,
        pg_bindir: None,
        timeout_ms: 120_000,
        lock_wait_timeout_ms: 5_000,
    };
    s.psql("kyb", "CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 1000) g").unwrap();
    let first = create(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    let before = std::fs::read(first.dir.join("database.sql.gz")).unwrap();
    // Enough rows that the dump takes a few seconds.
    s.psql(
        "kyb",
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS a, md5((g * 3)::text) AS b \
         FROM generate_series(1, 2000000) g",
    )
    .unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let running = tokio::spawn({
        let cfg = cfg.clone();
        async move { create(&cfg, &RunCtx::new(later)).await }
    });
    // Stop the server once the dump is well under way.
    let partial = |root: &Path| {
        std::fs::read_dir(root.join("full"))
            .unwrap()
            .flatten()
            .map(|e| e.path().join("database.sql.gz.partial"))
            .find_map(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while partial(root.path()) < 256 * 1024 && !running.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the dump never got going");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!running.is_finished(), "the dump finished before the server could be stopped");
    server.stop_now().unwrap();
    let err = running.await.unwrap().unwrap_err();
    assert!(matches!(err, BackupError::Dump { .. }), "{err:?}");
    let dirs: Vec<_> =
        std::fs::read_dir(root.path().join("full")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs, vec![first.dir.clone()], "only the first backup may exist");
    assert_eq!(std::fs::read(first.dir.join("database.sql.gz")).unwrap(), before);
}

/// A tmpfs of `kib` KiB at a new directory, unmounted on drop. Needs root (CI runs as root).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test fills a small tmpfs and needs root to mount one: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_full_backup_disk_is_a_clear_error_and_leaves_nothing() {
    let db = seeded("bkfull").await;
    let disk = SmallDisk::mount(512);
    let err =
        create(&create_cfg(&db, disk.0.path()), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap_err();
    assert!(matches!(err, BackupError::Write { .. }), "{err:?}");
    let text = kyb_core::error_chain(&err);
    assert!(text.contains("No space left on device"), "{text}");
    let left: Vec<_> = std::fs::read_dir(disk.0.path().join("full")).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn an_unwritable_backup_dir_is_a_clear_error() {
    let db = fresh_database("bkro").await;
    let disk = SmallDisk::mount(64);
    let out =
        std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(disk.0.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err =
        create(&create_cfg(&db, disk.0.path()), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap_err();
    let text = kyb_core::error_chain(&err);
    assert!(text.contains("Read-only file system"), "{text}");
}

#[tokio::test]
async fn row_counts_match_the_dump_while_rows_keep_arriving() {
    let db = seeded("bkbusy").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let writer = db.connect().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inserting = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writer
                    .batch_execute("INSERT INTO checks (company_id, status) VALUES (1, 'ok')")
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }
    });
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(inserting.await.unwrap() > 0);
    let recorded = metadata(&made).tables.iter().find(|t| t.table == "public.checks").unwrap().rows;
    let d = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert!(
        d.findings.checks.iter().all(|c| c.status == Status::Ok),
        "recorded {recorded}: {:?}",
        d.findings.checks
    );
}

#[tokio::test]
async fn a_configured_path_that_is_a_link_is_archived_with_its_target() {
    let root = tempfile::tempdir().unwrap();
    let release = root.path().join("releases/v42/configs");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::write(release.join("app.toml"), "listen = \"0.0.0.0:8080\"\n").unwrap();
    let current = root.path().join("current-configs");
    std::os::unix::fs::symlink(&release, &current).unwrap();
    let cfg = ArchiveConfig {
        backup_dir: root.path().join("backups"),
        sources: vec![ArchiveSource { name: "application-config".into(), paths: vec![current.clone()] }],
        compression_level: 6,
        timeout_ms: 60_000,
    };
    let r = archive(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    let entries = &r.manifest.as_ref().unwrap().archives[0].entries;
    assert!(entries.iter().any(|e| e.path == current && e.kind == "symlink"), "{entries:?}");
    let real = std::fs::canonicalize(&release).unwrap();
    assert!(entries.iter().any(|e| e.path == real.join("app.toml") && e.kind == "file"), "{entries:?}");
}

#[tokio::test]
async fn an_archive_run_killed_mid_write_is_swept_by_the_next_but_a_live_one_is_not() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("app.toml"), "workers = 8\n").unwrap();
    let cfg = ArchiveConfig {
        backup_dir: root.path().join("backups"),
        sources: vec![ArchiveSource { name: "application-config".into(), paths: vec![etc] }],
        compression_level: 6,
        timeout_ms: 60_000,
    };
    let monthly = root.path().join("backups/monthly");
    // Killed outright: its directory holds a partial archive and no one holds its lock.
    let killed = monthly.join("monthly_20261101_020000");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("application-config.tar.gz.partial"), vec![0x1f; 2048]).unwrap();
    // Still being written by a live run, which holds the directory locked.
    let live = monthly.join("monthly_20261102_020000");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("application-config.tar.gz.partial"), b"in progress").unwrap();
    let holder = std::fs::File::open(&live).unwrap();
    rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();

    let r = archive(&cfg, &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    let swept = r.findings.checks.iter().find(|c| c.name == "partials").expect("a partials check");
    assert_eq!(swept.status, Status::Ok, "{swept:?}");
    assert!(
        swept
            .summary
            .starts_with("removed 1 stale partial file left by a killed run: monthly_20261101_020000/"),
        "{}",
        swept.summary
    );
    assert!(!killed.exists(), "the killed run's directory held nothing else");
    assert!(live.join("application-config.tar.gz.partial").exists(), "a live run's file is left alone");
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    drop(holder);
}

#[tokio::test]
async fn every_file_a_backup_run_writes_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = one_of_each("bkmodes").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("app.toml"), "x = 1\n").unwrap();
    let cfg = ArchiveConfig {
        backup_dir: root.path().to_owned(),
        sources: vec![ArchiveSource { name: "app".into(), paths: vec![etc] }],
        compression_level: 1,
        timeout_ms: 60_000,
    };
    let archived = archive(&cfg, &RunCtx::new(now)).await.unwrap();
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    for file in [
        made.dir.join(DUMP),
        made.dir.join("database.dump.gz.sha256"),
        made.dir.join("backup_metadata.json"),
        archived.dir.join("app.tar.gz"),
        archived.dir.join("manifest.json"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&made.dir), 0o700);
    assert_eq!(mode(&archived.dir), 0o700);
}

/// The stand-in's log lines of each run of `tool`: it records its environment and, when it has
/// one, its PGPASSFILE's modes and contents, then execs the real tool.
fn wrap_pg_tools(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let real = pg_bindir(None).expect("PostgreSQL client binaries");
    let bin = root.join("bin");
    let logs = root.join("logs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let script = format!(
            "#!/bin/sh\n\
             {{\n\
               echo \"ARGS $*\"\n\
               tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/ENV /'\n\
               if [ -n \"$PGPASSFILE\" ]; then\n\
                 echo \"PASSFILE $PGPASSFILE\"\n\
                 echo \"PASSFILE_MODE $(stat -c %a \"$PGPASSFILE\")\"\n\
                 echo \"PASSDIR_MODE $(stat -c %a \"$(dirname \"$PGPASSFILE\")\")\"\n\
                 printf 'PASSFILE_LINE %s\\n' \"$(cat \"$PGPASSFILE\")\"\n\
               fi\n\
             }} > {logs}/{tool}.$$\n\
             exec {real}/{tool} \"$@\"\n",
            logs = logs.display(),
            real = real.display(),
        );
        let path = bin.join(tool);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    (bin, logs)
}

/// Each logged run: (tool, its lines).
fn tool_runs(logs: &Path) -> Vec<(String, Vec<String>)> {
    let mut runs: Vec<(String, Vec<String>)> = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let tool = name.split('.').next().unwrap().to_owned();
            (tool, std::fs::read_to_string(e.path()).unwrap().lines().map(str::to_owned).collect())
        })
        .collect();
    runs.sort();
    runs
}

#[tokio::test]
async fn pg_tools_get_the_password_in_a_private_passfile_and_nothing_else_of_our_environment() {
    let db = one_of_each("bkpassfile").await;
    let admin = db.connect().await;
    // A role of its own whose password needs .pgpass escaping, and which the server asks for it
    // (scram-sha-256): the dump and the restore succeed only if the file carries it right.
    let role = format!("kyb_pw_{}", std::process::id());
    let password = r"se:cr\et:";
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}' IN ROLE pg_read_all_data;
             DROP EXTENSION IF EXISTS pg_stat_statements;"
        ))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let (bin, logs) = wrap_pg_tools(root.path());
    let mut t = db.pg_target();
    t.user = role.clone();
    t.password = Some(Secret::new(password));
    let now = OffsetDateTime::now_utc();
    let cfg = CreateConfig {
        postgres: t.clone(),
        pg_bindir: Some(bin.clone()),
        ..create_cfg(&db, &root.path().join("backups"))
    };
    let made = create(&cfg, &RunCtx::new(now)).await.unwrap();
    let drill =
        DrillConfig { postgres: t, pg_bindir: Some(bin), ..drill_cfg(&db, &root.path().join("backups")) };
    let r = restore_drill(&drill, &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    admin.batch_execute(&format!("DROP ROLE {role}")).await.unwrap();
    assert!(made.dir.join(DUMP).exists());

    let runs = tool_runs(&logs);
    let allowed = ["PATH", "HOME", "LC_ALL", "PGCONNECT_TIMEOUT", "PGAPPNAME", "PGPASSFILE"];
    let mut with_password = 0;
    for (tool, lines) in &runs {
        let keys: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ENV "))
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        // The test process's own variables (CARGO_*, RUST_*) never reach a child.
        assert!(keys.iter().all(|k| allowed.contains(k)), "{tool}: {keys:?}");
        assert!(keys.contains(&"LC_ALL") && keys.contains(&"PGCONNECT_TIMEOUT"), "{tool}: {keys:?}");
        assert!(!lines.iter().any(|l| l.contains(password)), "{tool}: the password in plain sight");
        let value = |key: &str| lines.iter().find_map(|l| l.strip_prefix(key)).map(str::trim);
        let connects = !lines[0].contains("--version")
            && !lines[0].contains("--file=/dev/null")
            && !lines[0].contains("--list");
        if !connects {
            assert!(value("PASSFILE ").is_none(), "{tool} {}: needs no password", lines[0]);
            continue;
        }
        with_password += 1;
        assert_eq!(value("PASSFILE_MODE "), Some("600"), "{tool}");
        assert_eq!(value("PASSDIR_MODE "), Some("700"), "{tool}");
        assert_eq!(value("PASSFILE_LINE "), Some(format!(r"*:*:*:{role}:se\:cr\\et\:").as_str()), "{tool}");
        let file = Path::new(value("PASSFILE ").unwrap());
        assert!(!file.exists() && !file.parent().unwrap().exists(), "{tool}: {} left behind", file.display());
    }
    // pg_dump for the backup, pg_restore for the drill.
    assert_eq!(with_password, 2, "{runs:#?}");
    assert!(runs.iter().any(|(t, _)| t == "pg_dump") && runs.iter().any(|(t, _)| t == "pg_restore"));
}
