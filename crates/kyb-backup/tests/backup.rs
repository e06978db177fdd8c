//! Backups of a real database with real pg_dump and pg_restore.

use kyb_backup::*;
use kyb_core::{Secret, Status};
use kyb_testkit::{TestDb, fresh_database};
use std::path::Path;
use time::OffsetDateTime;

/// A database with several tables, an index, a sequence, a view and over 100k rows.
async fn seeded(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            "CREATE SEQUENCE invoice_no START 1000;
             CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, country text, meta jsonb);
             CREATE TABLE owners (id bigint PRIMARY KEY, company_id bigint REFERENCES companies(id), name text, share numeric(5,2));
             CREATE TABLE checks (id bigserial PRIMARY KEY, company_id bigint, status text, checked_at timestamptz DEFAULT now());
             CREATE INDEX owners_company ON owners (company_id);
             INSERT INTO companies SELECT g, 'Company ' || g, (ARRAY['DE','FR','NL','US'])[1 + g % 4], jsonb_build_object('employees', g % 500)
               FROM generate_series(1, 60000) g;
             INSERT INTO owners SELECT g, 1 + g % 60000, 'Owner ' || g, (g % 100) FROM generate_series(1, 40000) g;
             INSERT INTO checks (company_id, status) SELECT 1 + g % 60000, (ARRAY['ok','review','rejected'])[1 + g % 3] FROM generate_series(1, 20000) g;
             CREATE VIEW company_owners AS SELECT c.name, o.name AS owner FROM companies c JOIN owners o ON o.company_id = c.id;",
        )
        .await
        .unwrap();
    db
}

fn create_cfg(db: &TestDb, dir: &Path) -> CreateConfig {
    CreateConfig {
        backup_dir: dir.to_owned(),
        postgres: db.pg_target(),
        format: Format::Custom,
        compression_level: 1,
        pg_bindir: None,
        timeout_ms: 120_000,
        lock_wait_timeout_ms: 5_000,
    }
}

const DUMP: &str = "database.dump.gz";

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, bytes).unwrap();
    enc.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces the backup's file with `bytes` and records their size and checksum: damage done
/// before the dump was hashed, which only reading the archive can find.
fn replace_consistently(made: &CreateReport, bytes: &[u8]) {
    std::fs::write(made.dir.join(&made.metadata.backup_file), bytes).unwrap();
    let mut meta = made.metadata.clone();
    meta.checksum = sha256_hex(bytes);
    meta.size_bytes = bytes.len() as u64;
    std::fs::write(made.dir.join("backup_metadata.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

fn verify_cfg(dir: &Path, which: Which) -> VerifyConfig {
    VerifyConfig { backup_dir: dir.to_owned(), which, max_age_hours: 26, pg_bindir: None, timeout_ms: 60_000 }
}

fn status_of(r: &VerifyReport, name: &str) -> Status {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:?}", r.checks))
        .status
}

fn summary_of<'a>(r: &'a VerifyReport, name: &str) -> &'a str {
    &r.checks.iter().find(|c| c.name == name).unwrap().summary
}

#[tokio::test]
async fn create_then_verify_round_trip() {
    let db = seeded("bkround").await;
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, dir.path()), now).await.unwrap();
    assert!(made.dir.join(DUMP).is_file());
    assert!(!made.dir.join("database.dump.gz.partial").exists());
    // The stored file is a gzip of a custom-format archive, and the sidecar is sha256sum's format.
    assert!(gunzip(&std::fs::read(made.dir.join(DUMP)).unwrap()).starts_with(b"PGDMP"));
    assert_eq!(
        std::fs::read_to_string(made.dir.join("database.dump.gz.sha256")).unwrap(),
        format!("{}  {DUMP}\n", made.metadata.checksum)
    );
    assert!(made.metadata.dump_bytes > made.metadata.size_bytes);
    let rows = |t: &str| made.metadata.tables.iter().find(|r| r.table == t).map(|r| r.rows);
    assert_eq!(
        (rows("public.companies"), rows("public.owners"), rows("public.checks")),
        (Some(60_000), Some(40_000), Some(20_000))
    );
    assert_eq!(made.metadata.checksum.len(), 64);
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
    assert_eq!(on_disk["checksum"], made.metadata.checksum);
    for which in [Which::Today, Which::Latest, Which::Dir(made.dir.clone())] {
        let r = verify(&verify_cfg(dir.path(), which.clone()), now).await.unwrap();
        assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{which:?}: {:?}", r.checks);
        assert_eq!(r.checks.len(), 7, "{:?}", r.checks);
    }
}

#[tokio::test]
async fn damaged_backups_are_each_crit_with_their_reason() {
    let db = seeded("bkdamage").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    let pristine = std::fs::read(made.dir.join(DUMP)).unwrap();
    let meta = std::fs::read_to_string(made.dir.join("backup_metadata.json")).unwrap();
    let check = |which: &'static str| {
        let dir = made.dir.clone();
        let root = root.path().to_owned();
        async move {
            let r = verify(&verify_cfg(&root, Which::Dir(dir)), now).await.unwrap();
            (status_of(&r, which), summary_of(&r, which).to_owned())
        }
    };
    let restore = || {
        std::fs::write(made.dir.join(DUMP), &pristine).unwrap();
        std::fs::write(made.dir.join("backup_metadata.json"), &meta).unwrap();
    };

    let mut flipped = pristine.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(made.dir.join(DUMP), &flipped).unwrap();
    let (s, why) = check("checksum").await;
    assert_eq!(s, Status::Crit);
    assert!(why.contains("checksum mismatch"), "{why}");

    std::fs::write(made.dir.join(DUMP), &pristine[..pristine.len() / 3]).unwrap();
    let (s, why) = check("size").await;
    assert_eq!(s, Status::Crit);
    assert!(why.contains("truncated"), "{why}");
    assert_eq!(check("checksum").await.0, Status::Crit);
    let (s, why) = check("archive").await;
    assert!(s == Status::Crit && why.contains("gzip stream is damaged"), "{why}");
    // Truncated before it was hashed: size and checksum agree, reading the archive does not.
    replace_consistently(&made, &pristine[..pristine.len() / 3]);
    assert_eq!(check("checksum").await.0, Status::Ok);
    let (s, why) = check("archive").await;
    assert!(s == Status::Crit && why.contains("gzip stream is damaged"), "{why}");
    // A whole gzip stream of a cut-short archive: pg_restore finds it.
    let raw = gunzip(&pristine);
    replace_consistently(&made, &gzip(&raw[..raw.len() * 2 / 3]));
    let (s, why) = check("archive").await;
    assert!(s == Status::Crit && why.contains("pg_restore cannot read it"), "{why}");
    restore();

    std::fs::remove_file(made.dir.join("backup_metadata.json")).unwrap();
    let (s, why) = check("metadata").await;
    assert_eq!((s, why.as_str()), (Status::Crit, "backup_metadata.json is missing"));

    std::fs::write(made.dir.join("backup_metadata.json"), "{ not json").unwrap();
    let (s, why) = check("metadata").await;
    assert!(s == Status::Crit && why.contains("malformed"), "{why}");

    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    std::fs::write(made.dir.join("backup_metadata.json"), v.to_string()).unwrap();
    let (s, why) = check("metadata").await;
    assert!(s == Status::Crit && why.contains("missing field `checksum`"), "{why}");

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.dump"), "not yours").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.dump"), made.dir.join("link.dump")).unwrap();
    for bad in ["../../etc/passwd", "/etc/passwd", "link.dump", ".."] {
        let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
        v["backup_file"] = serde_json::Value::from(bad);
        std::fs::write(made.dir.join("backup_metadata.json"), v.to_string()).unwrap();
        let (s, why) = check("backup_file").await;
        assert_eq!(s, Status::Crit, "{bad}: {why}");
        assert!(why.contains("outside") || why.contains("symlink"), "{bad}: {why}");
    }
    restore();
    assert_eq!(check("checksum").await.0, Status::Ok);
}

#[tokio::test]
async fn no_backup_today_is_crit() {
    let dir = tempfile::tempdir().unwrap();
    let old_dir = dir.path().join("full/backup_20200101_020000");
    std::fs::create_dir_all(&old_dir).unwrap();
    // A finished run's directory (its metadata is there), however damaged.
    std::fs::write(old_dir.join("backup_metadata.json"), "{}").unwrap();
    let r = verify(&verify_cfg(dir.path(), Which::Today), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(status_of(&r, "backup"), Status::Crit);
    assert!(summary_of(&r, "backup").contains("no backup from today"), "{:?}", r.checks);
    let old = verify(&verify_cfg(dir.path(), Which::Latest), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(status_of(&old, "age"), Status::Crit);
    assert_eq!(status_of(&old, "metadata"), Status::Crit);
}

#[tokio::test]
async fn a_failing_pg_dump_leaves_nothing_and_keeps_the_previous_backup() {
    let db = seeded("bkfail").await;
    let root = tempfile::tempdir().unwrap();
    let first = create(&create_cfg(&db, root.path()), OffsetDateTime::now_utc()).await.unwrap();
    let before = std::fs::read(first.dir.join(DUMP)).unwrap();

    // A lock held elsewhere makes pg_dump give up (its lock wait timeout): a real dump failure.
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE owners IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let cfg = CreateConfig { lock_wait_timeout_ms: 300, ..create_cfg(&db, root.path()) };
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let err = create(&cfg, later).await.unwrap_err();
    assert!(matches!(err, BackupError::Dump { .. }), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("lock"), "{err}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    // A database that does not exist fails before anything is made.
    let mut gone = create_cfg(&db, root.path());
    gone.postgres.dbname = "no_such_database_kyb".into();
    assert!(create(&gone, later).await.is_err());

    let dirs: Vec<_> =
        std::fs::read_dir(root.path().join("full")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs, vec![first.dir.clone()], "only the first backup may exist");
    assert_eq!(std::fs::read(first.dir.join(DUMP)).unwrap(), before);
}

#[tokio::test]
async fn an_unusable_backup_dir_is_a_clear_error() {
    let db = fresh_database("bkdir").await;
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = create(&create_cfg(&db, &file), OffsetDateTime::now_utc()).await.unwrap_err();
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
    let err = create(&cfg, OffsetDateTime::now_utc()).await.unwrap_err();
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

fn drill_cfg(db: &TestDb, dir: &Path) -> DrillConfig {
    DrillConfig {
        backup_dir: dir.to_owned(),
        which: Which::Latest,
        postgres: db.pg_target(),
        pg_bindir: None,
        max_age_hours: 26,
        timeout_ms: 120_000,
    }
}

async fn scratch_exists(db: &TestDb, name: &str) -> bool {
    let c = db.connect().await;
    c.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

#[tokio::test]
async fn restore_drill_round_trip_matches_the_source() {
    let db = seeded("bkdrill").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    create(&create_cfg(&db, root.path()), now).await.unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    let objects = &r.checks.iter().find(|c| c.name == "objects").expect("an objects check").summary;
    assert!(objects.contains("3 tables, ") && objects.contains("1 view"), "{objects}");
    for table in ["public.companies", "public.owners", "public.checks"] {
        assert!(
            r.checks.iter().any(|c| c.name == format!("rows {table}")),
            "{table} not compared: {:?}",
            r.checks
        );
    }
    assert!(r.restore_ms > 0);
    assert!(r.scratch_db.starts_with("kyb_dr_"));
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn a_corrupt_backup_fails_the_drill_and_the_scratch_database_goes() {
    let db = seeded("bkdrillbad").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    // Damage rows, not the archive's framing: a tab where a space was gives every "Owner 1…" row
    // an extra column. The archive reads fine; only restoring it fails.
    let mut raw = gunzip(&std::fs::read(made.dir.join(DUMP)).unwrap());
    assert!(replace_all(&mut raw, b"Owner 1", b"Owner\t1") > 1000);
    replace_consistently(&made, &gzip(&raw));

    let r = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    let status = |n: &str| r.checks.iter().find(|c| c.name == n).map(|c| c.status);
    assert_eq!(status("verify"), Some(Status::Ok), "{:?}", r.checks);
    assert_eq!(status("restore"), Some(Status::Crit), "{:?}", r.checks);
    assert_eq!(status("cleanup"), Some(Status::Ok), "{:?}", r.checks);
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn a_backup_that_does_not_verify_is_not_restored() {
    let db = seeded("bkdrillnov").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    std::fs::remove_file(made.dir.join("backup_metadata.json")).unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert_eq!(r.checks.len(), 2, "{:?}", r.checks);
    assert_eq!(r.checks[0].status, Status::Crit);
    assert!(r.checks[0].summary.contains("not restored"), "{}", r.checks[0].summary);
    // Without its metadata it is no complete backup, and is named as unfinished.
    assert_eq!((r.checks[1].name.as_str(), r.checks[1].status), ("incomplete", Status::Warn));
    let name = made.dir.file_name().unwrap().to_str().unwrap();
    assert!(r.checks[1].summary.contains(name), "{}", r.checks[1].summary);
    assert!(!scratch_exists(&db, &r.scratch_db).await);
}

#[tokio::test]
async fn plain_format_round_trip_and_a_cut_short_script() {
    let db = seeded("bkplain").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let cfg = CreateConfig { format: Format::Plain, ..create_cfg(&db, root.path()) };
    let made = create(&cfg, now).await.unwrap();
    assert_eq!(made.metadata.backup_file, "database.sql.gz");
    assert_eq!(made.metadata.format, "plain");
    let sql = gunzip(&std::fs::read(made.dir.join("database.sql.gz")).unwrap());
    assert!(String::from_utf8_lossy(&sql).contains("CREATE TABLE public.companies"));

    let r = verify(&verify_cfg(root.path(), Which::Latest), now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    let d = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert!(d.checks.iter().all(|c| c.status == Status::Ok), "{:?}", d.checks);
    // A plain script has no archive TOC: its object headers are compared instead.
    let objects = &d.checks.iter().find(|c| c.name == "objects").expect("an objects check").summary;
    assert!(objects.contains("3 tables, ") && objects.contains("1 view"), "{objects}");
    assert!(!scratch_exists(&db, &d.scratch_db).await);

    // A whole gzip stream of half a script: verify says so.
    replace_consistently(&made, &gzip(&sql[..sql.len() / 2]));
    let r = verify(&verify_cfg(root.path(), Which::Latest), now).await.unwrap();
    let (s, why) = (status_of(&r, "archive"), summary_of(&r, "archive"));
    assert!(s == Status::Crit && why.contains("cut short"), "{why}");

    // Rows that no longer fit their table: psql stops at the first error, the drill is Crit.
    let mut bad = sql.clone();
    assert!(replace_all(&mut bad, b"Owner 1", b"Owner\t1") > 1000);
    replace_consistently(&made, &gzip(&bad));
    let d = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    let restore = d.checks.iter().find(|c| c.name == "restore").unwrap();
    assert_eq!(restore.status, Status::Crit, "{:?}", d.checks);
    assert!(restore.summary.contains("psql failed"), "{}", restore.summary);
    assert!(!scratch_exists(&db, &d.scratch_db).await, "scratch database left behind");
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
    let err = create(&cfg, OffsetDateTime::now_utc()).await.unwrap_err();
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
    let first = create(&cfg, OffsetDateTime::now_utc()).await.unwrap();
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
        async move { create(&cfg, later).await }
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
    let err = create(&create_cfg(&db, disk.0.path()), OffsetDateTime::now_utc()).await.unwrap_err();
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
    let err = create(&create_cfg(&db, disk.0.path()), OffsetDateTime::now_utc()).await.unwrap_err();
    let text = kyb_core::error_chain(&err);
    assert!(text.contains("Read-only file system"), "{text}");
}

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
        dry_run: false,
        pg_bindir: None,
        timeout_ms: 60_000,
    }
}

#[tokio::test]
async fn retention_keeps_the_minimum_of_good_backups_even_when_all_are_old() {
    let db = seeded("bkprune").await;
    let src = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, src.path()), now).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = copies(&made, root.path(), now, &[40, 50, 60, 70, 80]);
    // The newest of them is damaged: it does not count, and is kept (no newer good one exists).
    std::fs::write(dirs[0].join(DUMP), b"garbage").unwrap();

    // Dry run: the plan, nothing deleted.
    let plan = prune(&PruneConfig { dry_run: true, ..prune_cfg(root.path(), 2, None, Some(30)) }, now)
        .await
        .unwrap();
    let doomed: Vec<_> = plan.decisions.iter().filter(|d| d.delete).map(|d| d.dir.clone()).collect();
    assert_eq!(doomed, vec![dirs[3].clone(), dirs[4].clone()], "{:#?}", plan.decisions);
    assert!(dirs.iter().all(|d| d.exists()), "a dry run deleted something");
    assert!(plan.checks[0].summary.contains("would delete 2"), "{}", plan.checks[0].summary);

    let r = prune(&prune_cfg(root.path(), 2, None, Some(30)), now).await.unwrap();
    assert_eq!(r.checks[0].status, Status::Ok, "{:?}", r.checks);
    assert!(dirs[0].exists(), "a damaged backup with no newer good one is kept");
    assert!(dirs[1].exists() && dirs[2].exists(), "the two newest good backups are kept");
    assert!(!dirs[3].exists() && !dirs[4].exists());
    assert!(!r.decisions[0].good && r.decisions[1].good);
}

#[tokio::test]
async fn retention_by_count_and_age_removes_old_bad_backups_and_never_the_newest_good() {
    let db = seeded("bkprune2").await;
    let src = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, src.path()), now).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dirs = copies(&made, root.path(), now, &[0, 1, 2, 3, 4]);
    std::fs::remove_file(dirs[2].join("backup_metadata.json")).unwrap();
    // A link to a file outside: removing the backup removes the link, never its target.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep-me"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path().join("keep-me"), dirs[4].join("extra")).unwrap();

    let r = prune(&prune_cfg(root.path(), 1, Some(2), None), now).await.unwrap();
    let kept: Vec<bool> = dirs.iter().map(|d| d.exists()).collect();
    // The bad one is kept until it is past the age limit; good ones beyond the newest 2 go.
    assert_eq!(kept, vec![true, true, true, false, false], "{:#?}", r.decisions);
    assert!(outside.path().join("keep-me").exists());
    assert!(r.checks.iter().any(|c| c.name == "unverified" && c.status == Status::Warn), "{:?}", r.checks);
    // Past the age limit, with newer good backups, it goes.
    let r = prune(&prune_cfg(root.path(), 1, Some(2), Some(1)), now).await.unwrap();
    assert!(!dirs[2].exists(), "{:#?}", r.decisions);
    assert!(dirs[0].exists());

    // One good backup and every limit at its tightest: it stays.
    let r =
        prune(&prune_cfg(root.path(), 1, Some(1), Some(0)), now + time::Duration::days(400)).await.unwrap();
    assert!(dirs[0].exists(), "{:#?}", r.decisions);
    assert!(!dirs[1].exists());
}

#[tokio::test]
async fn a_cancelled_drill_drops_its_scratch_database() {
    let db = seeded("bkcancel").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    create(&create_cfg(&db, root.path()), now).await.unwrap();
    // The drill's clock, a few hours on, names its scratch database apart from other tests'.
    let drill_now = now + time::Duration::seconds(3 * 3600 + 1717);
    let prefix = format!(
        "kyb\\_dr\\_{:04}{:02}{:02}\\_{:02}{:02}{:02}\\_%",
        drill_now.year(),
        u8::from(drill_now.month()),
        drill_now.day(),
        drill_now.hour(),
        drill_now.minute(),
        drill_now.second()
    );
    // Cancel as soon as the scratch database exists, mid-restore.
    let watcher = db.connect().await;
    let cancel = async move {
        loop {
            let n: i64 = watcher
                .query_one("SELECT count(*) FROM pg_database WHERE datname LIKE $1", &[&prefix])
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let r = restore_drill_until(&drill_cfg(&db, root.path()), drill_now, cancel).await.unwrap();
    let restore = r.checks.iter().find(|c| c.name == "restore").unwrap();
    assert_eq!(restore.status, Status::Crit, "{:?}", r.checks);
    assert!(restore.summary.contains("cancelled"), "{}", restore.summary);
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
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
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(inserting.await.unwrap() > 0);
    let recorded = made.metadata.tables.iter().find(|t| t.table == "public.checks").unwrap().rows;
    let d = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert!(d.checks.iter().all(|c| c.status == Status::Ok), "recorded {recorded}: {:?}", d.checks);
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
    let r = archive(&cfg, OffsetDateTime::now_utc()).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    let entries = &r.manifest.archives[0].entries;
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

    let r = archive(&cfg, OffsetDateTime::now_utc()).await.unwrap();
    let swept = r.checks.iter().find(|c| c.name == "partials").expect("a partials check");
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
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    drop(holder);
}

/// A database of one table with one row, an index on it, a view, a sequence, a function and a
/// trigger: every kind the drill compares, and counts of one.
async fn one_of_each(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric NOT NULL);
             INSERT INTO ledger VALUES (1, 10);
             CREATE INDEX ledger_amount ON ledger (amount);
             CREATE SEQUENCE voucher_no START 500;
             CREATE VIEW big_entries AS SELECT id FROM ledger WHERE amount > 5;
             CREATE FUNCTION entry_total(lo bigint, hi bigint) RETURNS numeric LANGUAGE sql STABLE
               AS 'SELECT sum(amount) FROM public.ledger WHERE id BETWEEN lo AND hi';
             CREATE FUNCTION ledger_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE TRIGGER ledger_touched BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_touch();",
        )
        .await
        .unwrap();
    db
}

fn check_of<'a>(checks: &'a [kyb_core::Check], name: &str) -> &'a kyb_core::Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[tokio::test]
async fn the_drill_compares_every_object_the_archive_lists() {
    let db = one_of_each("bkobjects").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    assert_eq!(check_of(&r.checks, "tables").summary, "1 table restored, as at backup time");
    assert_eq!(check_of(&r.checks, "rows public.ledger").summary, "1 row, as at backup time");
    let objects = &check_of(&r.checks, "objects").summary;
    for kind in ["1 table", "1 view", "1 sequence", "2 functions", "1 index", "1 constraint", "1 trigger"] {
        assert!(objects.contains(&format!("{kind},")) || objects.ends_with(kind), "{kind}: {objects}");
    }

    // An archive whose entries create other objects than they list: the view, the sequence,
    // one function and the index come back under other names. pg_restore succeeds and every
    // table and row is there; only comparing each object with the list finds the gaps.
    let mut raw = gunzip(&std::fs::read(made.dir.join(DUMP)).unwrap());
    assert!(replace_all(&mut raw, b"public.big_entries", b"public.big_entriez") >= 1);
    assert!(replace_all(&mut raw, b"public.voucher_no", b"public.voucher_nx") >= 2);
    assert!(replace_all(&mut raw, b"public.entry_total(", b"public.entry_totax(") >= 1);
    assert!(replace_all(&mut raw, b"INDEX ledger_amount ON", b"INDEX ledger_amounx ON") == 1);
    replace_consistently(&made, &gzip(&raw));
    let r = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert_eq!(check_of(&r.checks, "restore").status, Status::Ok, "{:?}", r.checks);
    assert_eq!(check_of(&r.checks, "tables").status, Status::Ok, "{:?}", r.checks);
    let objects = check_of(&r.checks, "objects");
    assert_eq!(objects.status, Status::Crit, "{:?}", r.checks);
    for missing in [
        "view public.big_entries",
        "sequence public.voucher_no",
        "function public.entry_total(bigint, bigint)",
        "index public.ledger_amount",
    ] {
        assert!(objects.summary.contains(missing), "{missing}: {}", objects.summary);
    }
    assert!(objects.summary.starts_with("4 of the "), "{}", objects.summary);
    assert!(!objects.summary.contains("ledger_touch"), "{}", objects.summary);
    assert_eq!(check_of(&r.checks, "cleanup").status, Status::Ok);
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn every_file_a_backup_run_writes_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = one_of_each("bkmodes").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), now).await.unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("app.toml"), "x = 1\n").unwrap();
    let cfg = ArchiveConfig {
        backup_dir: root.path().to_owned(),
        sources: vec![ArchiveSource { name: "app".into(), paths: vec![etc] }],
        compression_level: 1,
        timeout_ms: 60_000,
    };
    let archived = archive(&cfg, now).await.unwrap();
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
    let made = create(&cfg, now).await.unwrap();
    let drill =
        DrillConfig { postgres: t, pg_bindir: Some(bin), ..drill_cfg(&db, &root.path().join("backups")) };
    let r = restore_drill(&drill, now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
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
    let made = create(&create_cfg(&db, root.path()), base).await.unwrap();
    let leftover = killed_run_leftover(root.path(), base + time::Duration::minutes(1));
    let now = base + time::Duration::minutes(2);

    for which in [Which::Today, Which::Latest] {
        let r = verify(&verify_cfg(root.path(), which.clone()), now).await.unwrap();
        assert_eq!(r.backup.as_ref(), Some(&made.dir), "{which:?}: the newest complete backup");
        let (warn, rest): (Vec<_>, Vec<_>) = r.checks.iter().partition(|c| c.name == "partials");
        assert!(rest.iter().all(|c| c.status == Status::Ok), "{which:?}: {:?}", r.checks);
        assert_eq!(warn.len(), 1, "{which:?}: {:?}", r.checks);
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
    let d = restore_drill(&drill_cfg(&db, root.path()), now).await.unwrap();
    assert_eq!(check_of(&d.checks, "restore").status, Status::Ok, "{:?}", d.checks);
    assert_eq!(check_of(&d.checks, "partials").status, Status::Warn);

    // Prune's plan names it and deletes nothing; the next backup sweeps it.
    let plan =
        prune(&PruneConfig { dry_run: true, ..prune_cfg(root.path(), 1, None, None) }, now).await.unwrap();
    let swept = check_of(&plan.checks, "partials");
    assert!(swept.summary.starts_with("would remove 1 stale partial file"), "{}", swept.summary);
    assert!(plan.decisions.iter().all(|d| d.dir != leftover), "{:#?}", plan.decisions);
    assert!(leftover.join("database.dump.gz.partial").exists());
    let next = create(&create_cfg(&db, root.path()), now).await.unwrap();
    let swept = check_of(&next.checks, "partials");
    assert_eq!(swept.status, Status::Ok);
    assert!(swept.summary.starts_with("removed 1 stale partial file"), "{}", swept.summary);
    assert!(!leftover.exists(), "the killed run's directory stays");
    let r = verify(&verify_cfg(root.path(), Which::Latest), now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    assert_eq!(r.backup.as_ref(), Some(&next.dir));
}

#[tokio::test]
async fn a_partial_file_a_live_run_is_writing_is_left_alone() {
    let db = one_of_each("bklive").await;
    let root = tempfile::tempdir().unwrap();
    let base = noon_today();
    let made = create(&create_cfg(&db, root.path()), base).await.unwrap();
    // A table lock held elsewhere keeps the next pg_dump waiting, its partial file made and
    // empty, for as long as the test needs.
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let at = base + time::Duration::minutes(1);
    let running = tokio::spawn({
        let cfg = CreateConfig { lock_wait_timeout_ms: 120_000, ..create_cfg(&db, root.path()) };
        async move { create(&cfg, at).await }
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
    let r = verify(&verify_cfg(root.path(), Which::Latest), now).await.unwrap();
    assert_eq!(r.backup.as_ref(), Some(&made.dir));
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    let p = prune(&prune_cfg(root.path(), 1, Some(1), Some(0)), now + time::Duration::days(3)).await.unwrap();
    assert!(partial.exists(), "prune removed a partial file a live run is writing");
    assert!(made.dir.exists(), "{:#?}", p.decisions);
    let in_progress = check_of(&p.checks, "in progress");
    assert!(in_progress.summary.contains(&dir_name(at)), "{}", in_progress.summary);
    assert!(p.checks.iter().all(|c| c.name != "partials"), "{:?}", p.checks);
    assert_eq!(list(root.path()).unwrap()[0].state, "in progress");
    assert!(!running.is_finished());

    holder.batch_execute("ROLLBACK").await.unwrap();
    let finished = running.await.unwrap().unwrap();
    assert_eq!(finished.dir, live);
    assert!(!partial.exists() && live.join(DUMP).exists());
    let r = verify(&verify_cfg(root.path(), Which::Latest), now).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
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
    let made = create(&create_cfg(&db, src.path()), now).await.unwrap();
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
    let r = prune(&prune_cfg(root.path(), 1, None, Some(30)), now).await;
    let made_again = create(&create_cfg(&db, root.path()), now + time::Duration::seconds(1)).await;
    drop(mounts);
    let (r, made_again) = (r.unwrap(), made_again.unwrap());
    let refused: Vec<_> = r.checks.iter().filter(|c| c.summary.contains("mount point")).collect();
    assert_eq!(refused.len(), 2, "{:#?}", r.checks);
    assert!(refused.iter().all(|c| c.status == Status::Warn));
    assert!(made_again.checks.iter().all(|c| c.name != "partials"), "{:?}", made_again.checks);
    for f in [DUMP, "backup_metadata.json", "database.dump.gz.sha256"] {
        assert!(outside.path().join(f).exists(), "{f} went through the bind mount");
    }
    assert_eq!(std::fs::read_to_string(outside.path().join("single")).unwrap(), "keep");
    assert!(dirs[1].exists() && dirs[2].join("extra").exists() && leftover.exists());
}
