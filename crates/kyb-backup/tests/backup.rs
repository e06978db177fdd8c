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

fn target(db: &TestDb) -> PgTarget {
    PgTarget {
        host: db.host.clone(),
        port: db.port,
        user: db.user.clone(),
        password: db.password.clone().map(Secret::new),
        dbname: db.dbname.clone(),
    }
}

fn create_cfg(db: &TestDb, dir: &Path) -> CreateConfig {
    CreateConfig {
        backup_dir: dir.to_owned(),
        postgres: target(db),
        pg_bindir: None,
        timeout_ms: 120_000,
        lock_wait_timeout_ms: 5_000,
    }
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
    assert!(made.dir.join("database.dump").is_file());
    assert!(!made.dir.join("database.dump.partial").exists());
    let rows = |t: &str| made.metadata.tables.iter().find(|r| r.table == t).map(|r| r.rows);
    assert_eq!(
        (rows("public.companies"), rows("public.owners"), rows("public.checks")),
        (Some(60_000), Some(40_000), Some(20_000))
    );
    assert_eq!(made.metadata.checksum.len(), 64);
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(made.dir.join("backup_metadata.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["backup_file"], "database.dump");
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
    let pristine = std::fs::read(made.dir.join("database.dump")).unwrap();
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
        std::fs::write(made.dir.join("database.dump"), &pristine).unwrap();
        std::fs::write(made.dir.join("backup_metadata.json"), &meta).unwrap();
    };

    let mut flipped = pristine.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(made.dir.join("database.dump"), &flipped).unwrap();
    let (s, why) = check("checksum").await;
    assert_eq!(s, Status::Crit);
    assert!(why.contains("checksum mismatch"), "{why}");

    std::fs::write(made.dir.join("database.dump"), &pristine[..pristine.len() / 3]).unwrap();
    let (s, why) = check("size").await;
    assert_eq!(s, Status::Crit);
    assert!(why.contains("truncated"), "{why}");
    assert_eq!(check("checksum").await.0, Status::Crit);
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
    std::fs::create_dir_all(dir.path().join("full/backup_20200101_020000")).unwrap();
    let r = verify(&verify_cfg(dir.path(), Which::Today), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(status_of(&r, "backup"), Status::Crit);
    assert!(summary_of(&r, "backup").contains("no backup from today"), "{:?}", r.checks);
    let old = verify(&verify_cfg(dir.path(), Which::Latest), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(status_of(&old, "age"), Status::Crit);
}

#[tokio::test]
async fn a_failing_pg_dump_leaves_nothing_and_keeps_the_previous_backup() {
    let db = seeded("bkfail").await;
    let root = tempfile::tempdir().unwrap();
    let first = create(&create_cfg(&db, root.path()), OffsetDateTime::now_utc()).await.unwrap();
    let before = std::fs::read(first.dir.join("database.dump")).unwrap();

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
    assert_eq!(std::fs::read(first.dir.join("database.dump")).unwrap(), before);
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

fn drill_cfg(db: &TestDb, dir: &Path) -> DrillConfig {
    DrillConfig {
        backup_dir: dir.to_owned(),
        which: Which::Latest,
        postgres: target(db),
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
    // Damage the table data (the archive's table of contents comes first and stays intact), then
    // record the damaged file's checksum: corruption that happened before the dump was hashed.
    let path = made.dir.join("database.dump");
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for i in (len / 2..len - 64).step_by(997) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut meta = made.metadata.clone();
    meta.checksum = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
    };
    std::fs::write(made.dir.join("backup_metadata.json"), serde_json::to_vec(&meta).unwrap()).unwrap();

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
    assert_eq!(r.checks.len(), 1, "{:?}", r.checks);
    assert_eq!(r.checks[0].status, Status::Crit);
    assert!(r.checks[0].summary.contains("not restored"), "{}", r.checks[0].summary);
    assert!(!scratch_exists(&db, &r.scratch_db).await);
}
