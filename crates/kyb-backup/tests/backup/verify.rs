//! Checking backups: what verify finds in damaged ones, and restore drills into a scratch
//! database with real pg_restore and psql.

use crate::support::{
    DUMP, check_of, create_cfg, drill_cfg, gunzip, metadata, one_of_each, seeded, verify_cfg,
};
use kyb_backup::*;
use kyb_core::{RunCtx, Status, Unit};
use kyb_testkit::TestDb;
use time::OffsetDateTime;

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
    std::fs::write(made.dir.join(&metadata(made).backup_file), bytes).unwrap();
    let mut meta = metadata(made).clone();
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

fn status_of(r: &VerifyReport, name: &str) -> Status {
    r.findings
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:?}", r.findings.checks))
        .status
}

fn summary_of<'a>(r: &'a VerifyReport, name: &str) -> &'a str {
    &r.findings.checks.iter().find(|c| c.name == name).unwrap().summary
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
async fn damaged_backups_are_each_crit_with_their_reason() {
    let db = seeded("bkdamage").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let pristine = std::fs::read(made.dir.join(DUMP)).unwrap();
    let meta = std::fs::read_to_string(made.dir.join("backup_metadata.json")).unwrap();
    let check = |which: &'static str| {
        let dir = made.dir.clone();
        let root = root.path().to_owned();
        async move {
            let r = verify(&verify_cfg(&root, Which::Dir(dir)), &RunCtx::new(now)).await.unwrap();
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
    let r =
        verify(&verify_cfg(dir.path(), Which::Today), &RunCtx::new(OffsetDateTime::now_utc())).await.unwrap();
    assert_eq!(status_of(&r, "backup"), Status::Crit);
    assert!(summary_of(&r, "backup").contains("no backup from today"), "{:?}", r.findings.checks);
    let old = verify(&verify_cfg(dir.path(), Which::Latest), &RunCtx::new(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert_eq!(status_of(&old, "age"), Status::Crit);
    assert_eq!(status_of(&old, "metadata"), Status::Crit);
}

#[tokio::test]
async fn restore_drill_round_trip_matches_the_source() {
    let db = seeded("bkdrill").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    let objects = &r.findings.checks.iter().find(|c| c.name == "objects").expect("an objects check").summary;
    assert!(objects.contains("3 tables, ") && objects.contains("1 view"), "{objects}");
    for table in ["public.companies", "public.owners", "public.checks"] {
        assert!(
            r.findings.checks.iter().any(|c| c.name == format!("rows {table}")),
            "{table} not compared: {:?}",
            r.findings.checks
        );
    }
    assert!(r.restore_ms > 0);
    // The restore time is the measured recovery time: a metric, and the drill's headline.
    let rto = &check_of(&r.findings.checks, "restore").metrics;
    assert_eq!(rto.len(), 1, "{rto:?}");
    assert_eq!((rto[0].label.as_str(), rto[0].unit), ("restore_time", Unit::Seconds));
    assert_eq!(rto[0].value, r.restore_ms as f64 / 1000.0);
    let backup = r.backup.as_ref().expect("the backup restored");
    let headline =
        format!("restored {} in {} ms (the measured recovery time)", backup.display(), r.restore_ms);
    assert_eq!(r.findings.headline, Some(headline));
    assert!(r.scratch_db.starts_with("kyb_dr_"));
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn a_corrupt_backup_fails_the_drill_and_the_scratch_database_goes() {
    let db = seeded("bkdrillbad").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    // Damage rows, not the archive's framing: a tab where a space was gives every "Owner 1…" row
    // an extra column. The archive reads fine; only restoring it fails.
    let mut raw = gunzip(&std::fs::read(made.dir.join(DUMP)).unwrap());
    assert!(replace_all(&mut raw, b"Owner 1", b"Owner\t1") > 1000);
    replace_consistently(&made, &gzip(&raw));

    let r = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let status = |n: &str| r.findings.checks.iter().find(|c| c.name == n).map(|c| c.status);
    assert_eq!(status("verify"), Some(Status::Ok), "{:?}", r.findings.checks);
    assert_eq!(status("restore"), Some(Status::Crit), "{:?}", r.findings.checks);
    assert_eq!(status("cleanup"), Some(Status::Ok), "{:?}", r.findings.checks);
    // A drill that fails has no recovery time to give: its summary is what failed.
    assert_eq!(r.findings.headline, None);
    assert!(check_of(&r.findings.checks, "restore").metrics.is_empty());
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn a_backup_that_does_not_verify_is_not_restored() {
    let db = seeded("bkdrillnov").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    std::fs::remove_file(made.dir.join("backup_metadata.json")).unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.findings.checks.len(), 2, "{:?}", r.findings.checks);
    assert_eq!(r.findings.checks[0].status, Status::Crit);
    assert!(r.findings.checks[0].summary.contains("not restored"), "{}", r.findings.checks[0].summary);
    // Without its metadata it is no complete backup, and is named as unfinished.
    assert_eq!(
        (r.findings.checks[1].name.as_str(), r.findings.checks[1].status),
        ("incomplete", Status::Warn)
    );
    let name = made.dir.file_name().unwrap().to_str().unwrap();
    assert!(r.findings.checks[1].summary.contains(name), "{}", r.findings.checks[1].summary);
    assert!(!scratch_exists(&db, &r.scratch_db).await);
}

#[tokio::test]
async fn plain_format_round_trip_and_a_cut_short_script() {
    let db = seeded("bkplain").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let cfg = CreateConfig { format: Format::Plain, ..create_cfg(&db, root.path()) };
    let made = create(&cfg, &RunCtx::new(now)).await.unwrap();
    assert_eq!(metadata(&made).backup_file, "database.sql.gz");
    assert_eq!(metadata(&made).format, "plain");
    let sql = gunzip(&std::fs::read(made.dir.join("database.sql.gz")).unwrap());
    assert!(String::from_utf8_lossy(&sql).contains("CREATE TABLE public.companies"));

    let r = verify(&verify_cfg(root.path(), Which::Latest), &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    let d = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert!(d.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", d.findings.checks);
    // A plain script has no archive TOC: its object headers are compared instead.
    let objects = &d.findings.checks.iter().find(|c| c.name == "objects").expect("an objects check").summary;
    assert!(objects.contains("3 tables, ") && objects.contains("1 view"), "{objects}");
    assert!(!scratch_exists(&db, &d.scratch_db).await);

    // A whole gzip stream of half a script: verify says so.
    replace_consistently(&made, &gzip(&sql[..sql.len() / 2]));
    let r = verify(&verify_cfg(root.path(), Which::Latest), &RunCtx::new(now)).await.unwrap();
    let (s, why) = (status_of(&r, "archive"), summary_of(&r, "archive"));
    assert!(s == Status::Crit && why.contains("cut short"), "{why}");

    // Rows that no longer fit their table: psql stops at the first error, the drill is Crit.
    let mut bad = sql.clone();
    assert!(replace_all(&mut bad, b"Owner 1", b"Owner\t1") > 1000);
    replace_consistently(&made, &gzip(&bad));
    let d = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let restore = d.findings.checks.iter().find(|c| c.name == "restore").unwrap();
    assert_eq!(restore.status, Status::Crit, "{:?}", d.findings.checks);
    assert!(restore.summary.contains("psql failed"), "{}", restore.summary);
    assert!(!scratch_exists(&db, &d.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn a_cancelled_drill_drops_its_scratch_database() {
    let db = seeded("bkcancel").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
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
    let ctx = RunCtx::new(drill_now);
    let cancel = ctx.cancel.clone();
    let watcher = db.connect().await;
    let watching = tokio::spawn(async move {
        loop {
            let n: i64 = watcher
                .query_one("SELECT count(*) FROM pg_database WHERE datname LIKE $1", &[&prefix])
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                cancel.cancel();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    });
    let r = restore_drill(&drill_cfg(&db, root.path()), &ctx).await.unwrap();
    watching.abort();
    let restore = r.findings.checks.iter().find(|c| c.name == "restore").unwrap();
    assert_eq!(restore.status, Status::Crit, "{:?}", r.findings.checks);
    assert!(restore.summary.contains("cancelled"), "{}", restore.summary);
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}

#[tokio::test]
async fn the_drill_compares_every_object_the_archive_lists() {
    let db = one_of_each("bkobjects").await;
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let made = create(&create_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    let r = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    let gauge = r.findings.checks.iter().flat_map(|c| &c.gauges).next().expect("the restore time as a gauge");
    assert_eq!(
        (gauge.name.as_str(), gauge.value),
        ("kyb_maint_restore_drill_seconds", r.restore_ms as f64 / 1000.0)
    );
    assert_eq!(check_of(&r.findings.checks, "tables").summary, "1 table restored, as at backup time");
    assert_eq!(check_of(&r.findings.checks, "rows public.ledger").summary, "1 row, as at backup time");
    let objects = &check_of(&r.findings.checks, "objects").summary;
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
    let r = restore_drill(&drill_cfg(&db, root.path()), &RunCtx::new(now)).await.unwrap();
    assert_eq!(check_of(&r.findings.checks, "restore").status, Status::Ok, "{:?}", r.findings.checks);
    assert_eq!(check_of(&r.findings.checks, "tables").status, Status::Ok, "{:?}", r.findings.checks);
    let objects = check_of(&r.findings.checks, "objects");
    assert_eq!(objects.status, Status::Crit, "{:?}", r.findings.checks);
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
    assert_eq!(check_of(&r.findings.checks, "cleanup").status, Status::Ok);
    assert!(!scratch_exists(&db, &r.scratch_db).await, "scratch database left behind");
}
