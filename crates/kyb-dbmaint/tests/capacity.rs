//! Capacity history and the disk-full forecast against a real PostgreSQL: first use, growth
//! fits, two runs at once, dry runs, a trend CSV that cannot be written, an older table.

use kyb_core::{Check, RunCtx, Status};
use kyb_dbmaint::*;
use kyb_testkit::{TestDb, fresh_database};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

const KIB: i64 = 1024;

fn cfg(db: &TestDb) -> DbConfig {
    DbConfig {
        postgres: db.pg_target(),
        connect_timeout_ms: 10_000,
        lock_timeout_ms: 300,
        statement_timeout_ms: 60_000,
        lock_wait_ms: 500,
    }
}

/// An empty directory of this test's own, under cargo's scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("capacity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn capcfg(trend_csv: Option<PathBuf>, data_disk: Option<PathBuf>) -> CapacityConfig {
    CapacityConfig { trend_csv, data_disk, fit_days: 90, days_left_warn: 90.0, days_left_crit: 30.0 }
}

/// The tasks' config of `db` with the size history of `c`.
fn tasks(db: &DbConfig, c: &CapacityConfig) -> DbMaintConfig {
    DbMaintConfig::new(db.clone(), ReportConfig::default(), c.clone())
}

/// A run now that records.
fn run_now() -> RunCtx {
    RunCtx::new(OffsetDateTime::now_utc())
}

fn check<'a>(r: &'a CapacityReport, name: &str) -> &'a Check {
    r.findings
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:?}", r.findings.checks))
}

async fn rows(db: &TestDb, database: &str) -> i64 {
    db.connect()
        .await
        .query_one("SELECT count(*) FROM kyb_maint.db_size_history WHERE database = $1", &[&database])
        .await
        .unwrap()
        .get(0)
}

async fn table_exists(db: &TestDb) -> bool {
    db.connect()
        .await
        .query_one("SELECT to_regclass('kyb_maint.db_size_history') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0)
}

/// Adds one sample a day for the `days` days before `now`, on the line through `(now, at_now)`
/// with slope `per_day`.
async fn synthetic(db: &TestDb, database: &str, now: OffsetDateTime, at_now: i64, per_day: i64, days: i32) {
    db.connect()
        .await
        .execute(
            "INSERT INTO kyb_maint.db_size_history (recorded_at, database, size_bytes) \
             SELECT $1::timestamptz - make_interval(days => d), $2, $3::bigint - d * $4::bigint \
             FROM generate_series(1, $5::int) d",
            &[&now, &database, &at_now, &per_day, &days],
        )
        .await
        .unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn first_run_creates_the_table_and_csv_and_later_runs_append() {
    let db = fresh_database("capfirst").await;
    let dir = scratch("first");
    let csv = dir.join("database-size-trend.csv");
    let c = capcfg(Some(csv.clone()), Some(dir.clone()));

    let now = OffsetDateTime::now_utc();
    let r = capacity(&tasks(&cfg(&db), &c), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.database, db.dbname);
    assert!(r.size_bytes > 0);
    assert_eq!(r.samples, 1);
    assert_eq!(r.growth_bytes_per_day, None);
    assert_eq!(r.findings.artifacts, vec![csv.clone()]);
    assert!(r.findings.actions.is_empty(), "a run lists no plan: {:?}", r.findings.actions);
    let names: Vec<_> = r.findings.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["database size", "growth", "disk forecast"]);
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    assert_eq!(check(&r, "growth").summary, "not enough history yet (1 samples)");
    assert!(r.disk_free_bytes.is_some() && r.disk_total_bytes.is_some());
    assert_eq!(rows(&db, &db.dbname).await, 1);
    let first = lines(&csv);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0], "recorded_at,size_bytes");
    let at =
        now.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap();
    assert!(at.ends_with('Z'), "{at}");
    assert_eq!(first[1], format!("{at},{}", r.size_bytes));

    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert_eq!(r.samples, 2);
    assert_eq!(r.growth_bytes_per_day, None, "two samples seconds apart say nothing about growth");
    assert_eq!(check(&r, "growth").summary, "not enough history yet (2 samples)");
    assert_eq!(check(&r, "growth").status, Status::Ok);
    assert_eq!(rows(&db, &db.dbname).await, 2);
    let second = lines(&csv);
    assert_eq!(second.len(), 3, "{second:?}");
    assert_eq!(second[..2], first[..]);
}

#[tokio::test]
async fn growing_history_gives_the_fitted_slope_and_a_forecast() {
    let db = fresh_database("capgrow").await;
    let dir = scratch("grow");
    let mut c = capcfg(None, Some(dir.clone()));
    let now = OffsetDateTime::now_utc();
    let first = capacity(&tasks(&cfg(&db), &c), &RunCtx::new(now)).await.unwrap();
    // Sizes on a line ending at the real size, so the real samples sit on it too.
    let per_day = 100 * KIB;
    synthetic(&db, &db.dbname, now, first.size_bytes, per_day, 30).await;

    // Warn: the forecast is always within a trillion days, never within a thousandth of one.
    c.days_left_warn = 1e12;
    c.days_left_crit = 1e-3;
    let now = OffsetDateTime::now_utc();
    let r = capacity(&tasks(&cfg(&db), &c), &RunCtx::new(now)).await.unwrap();
    assert_eq!(r.samples, 32);
    let growth = r.growth_bytes_per_day.unwrap();
    assert!((growth / per_day as f64 - 1.0).abs() < 0.01, "growth {growth} B/day, expected about {per_day}");
    // The same fit computed by the server, over the same samples.
    let oracle: f64 = db
        .connect()
        .await
        .query_one(
            "SELECT regr_slope(size_bytes::float8, extract(epoch FROM recorded_at)::float8) * 86400 \
             FROM kyb_maint.db_size_history WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((growth / oracle - 1.0).abs() < 1e-6, "growth {growth}, regr_slope {oracle}");

    let free = r.disk_free_bytes.unwrap();
    let st = rustix::fs::statvfs(&dir).unwrap();
    let free_now = st.f_bavail * st.f_frsize;
    assert!(free.abs_diff(free_now) < st.f_blocks * st.f_frsize / 20, "free {free}, statvfs now {free_now}");
    let days = r.days_until_full.unwrap();
    assert!((days - free as f64 / growth).abs() < 1e-6 * days, "{days}");
    let forecast = check(&r, "disk forecast");
    assert_eq!(forecast.status, Status::Warn, "{forecast:?}");
    if let Some(full_on) = r.full_on {
        let expected = (now + time::Duration::seconds_f64(days * 86_400.0)).date();
        assert_eq!(full_on, expected);
        assert!(forecast.summary.contains(&full_on.to_string()), "{}", forecast.summary);
    }
    let metric = forecast.metrics.iter().find(|m| m.label == "days_until_full").unwrap();
    assert_eq!((metric.value, metric.warn, metric.crit), (days, Some(1e12), Some(1e-3)));
    assert!(forecast.metrics.iter().any(|m| m.label == "disk_free_bytes" && m.value == free as f64));
    let g = check(&r, "growth");
    assert_eq!(g.status, Status::Ok);
    assert!(g.metrics.iter().any(|m| m.label == "growth_bytes_per_day" && m.value == growth));

    c.days_left_crit = 1e12;
    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert_eq!(check(&r, "disk forecast").status, Status::Crit, "{:?}", r.findings.checks);

    c.days_left_warn = 1e-6;
    c.days_left_crit = 1e-9;
    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert_eq!(check(&r, "disk forecast").status, Status::Ok, "{:?}", r.findings.checks);
}

#[tokio::test]
async fn shrinking_history_is_not_growing() {
    let db = fresh_database("capshrink").await;
    let dir = scratch("shrink");
    let c = CapacityConfig { days_left_warn: 1e12, days_left_crit: 1e12, ..capcfg(None, Some(dir)) };
    let now = OffsetDateTime::now_utc();
    let first = capacity(&tasks(&cfg(&db), &c), &RunCtx::new(now)).await.unwrap();
    synthetic(&db, &db.dbname, now, first.size_bytes, -100 * KIB, 30).await;

    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert!(r.growth_bytes_per_day.unwrap() < 0.0, "{:?}", r.growth_bytes_per_day);
    assert_eq!(r.days_until_full, None);
    assert_eq!(r.full_on, None);
    let forecast = check(&r, "disk forecast");
    assert_eq!(forecast.status, Status::Ok, "even the harshest thresholds: {forecast:?}");
    assert!(forecast.summary.starts_with("not growing"), "{}", forecast.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_on_a_fresh_database_both_record() {
    let db = fresh_database("capconc").await;
    let dir = scratch("conc");
    let csv = dir.join("database-size-trend.csv");
    let c = capcfg(Some(csv.clone()), Some(dir));
    let config = tasks(&cfg(&db), &c);
    let (first, second) = (run_now(), run_now());
    let (a, b) = tokio::join!(capacity(&config, &first), capacity(&config, &second));
    let (a, b) = (a.unwrap(), b.unwrap());
    for r in [&a, &b] {
        assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    }
    assert_eq!(rows(&db, &db.dbname).await, 2);
    let csv_lines = lines(&csv);
    assert_eq!(csv_lines.len(), 3, "{csv_lines:?}");
    assert_eq!(csv_lines.iter().filter(|l| *l == "recorded_at,size_bytes").count(), 1, "{csv_lines:?}");
}

#[tokio::test]
async fn dry_run_records_nothing() {
    let db = fresh_database("capdry").await;
    let dir = scratch("dry");
    let csv = dir.join("database-size-trend.csv");
    let c = capcfg(Some(csv.clone()), Some(dir));

    let r = capacity(&tasks(&cfg(&db), &c), &run_now().with_dry_run(true)).await.unwrap();
    assert!(r.size_bytes > 0);
    assert_eq!(r.samples, 1, "the current size, measured but not stored");
    assert!(r.findings.artifacts.is_empty());
    let would_append = format!("would append a line to {}", csv.display());
    assert_eq!(r.findings.actions, ["would record the size in kyb_maint.db_size_history", &would_append]);
    assert!(!table_exists(&db).await, "a dry run created the history table");
    let schema: bool = db
        .connect()
        .await
        .query_one("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'kyb_maint')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!schema, "a dry run created the schema");
    assert!(!csv.exists(), "a dry run wrote the CSV");

    capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    let r = capacity(&tasks(&cfg(&db), &c), &run_now().with_dry_run(true)).await.unwrap();
    assert_eq!(r.samples, 2, "the stored sample and the current one");
    assert_eq!(rows(&db, &db.dbname).await, 1);
    assert_eq!(lines(&csv).len(), 2);
    // Without a CSV there is only the table to record into.
    let r = capacity(&tasks(&cfg(&db), &capcfg(None, None)), &run_now().with_dry_run(true)).await.unwrap();
    assert_eq!(r.findings.actions, ["would record the size in kyb_maint.db_size_history"]);
}

#[tokio::test]
async fn a_csv_that_cannot_be_written_is_crit_and_the_row_still_counts() {
    let db = fresh_database("capcsv").await;
    let dir = scratch("csv");
    let not_a_dir = dir.join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    for (n, csv) in
        [dir.join("missing").join("database-size-trend.csv"), not_a_dir.join("database-size-trend.csv")]
            .into_iter()
            .enumerate()
    {
        let c = capcfg(Some(csv.clone()), Some(dir.clone()));
        let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
        let bad = check(&r, "trend csv");
        assert_eq!(bad.status, Status::Crit);
        assert!(bad.summary.contains(&csv.display().to_string()), "{}", bad.summary);
        assert!(r.findings.artifacts.is_empty());
        assert_eq!(r.samples, n + 1);
        assert_eq!(rows(&db, &db.dbname).await, i64::try_from(n).unwrap() + 1);
        assert!(!csv.exists());
    }
}

#[tokio::test]
async fn an_older_table_is_brought_up_to_date() {
    let db = fresh_database("capupgrade").await;
    // As a first version might have left it: the table, a sample, no index.
    db.connect()
        .await
        .batch_execute(
            "CREATE SCHEMA kyb_maint;
             CREATE TABLE kyb_maint.db_size_history \
                 (recorded_at timestamptz NOT NULL, database name NOT NULL, size_bytes bigint NOT NULL);
             INSERT INTO kyb_maint.db_size_history VALUES (now() - interval '1 day', current_database(), 1);",
        )
        .await
        .unwrap();
    let dir = scratch("upgrade");
    let c = capcfg(None, Some(dir));
    for run in 1..=2 {
        let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
        assert_eq!(r.samples, run + 1);
        assert!(r.growth_bytes_per_day.is_some());
    }
    let indexed: bool = db
        .connect()
        .await
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_indexes WHERE schemaname = 'kyb_maint' \
             AND tablename = 'db_size_history' AND indexdef LIKE '%(database, recorded_at)%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(indexed);
}

#[tokio::test]
async fn other_databases_history_is_not_used() {
    let db = fresh_database("capother").await;
    let dir = scratch("other");
    let c = capcfg(None, Some(dir));
    let now = OffsetDateTime::now_utc();
    let first = capacity(&tasks(&cfg(&db), &c), &RunCtx::new(now)).await.unwrap();
    synthetic(&db, "other", now, 50_000_000_000, 1_000_000_000, 60).await;

    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert_eq!(r.samples, 2);
    assert_eq!(r.growth_bytes_per_day, None);
    assert_eq!(check(&r, "growth").summary, "not enough history yet (2 samples)");

    // Flat history of our own beside the other database's steep one.
    synthetic(&db, &db.dbname, now, first.size_bytes, 0, 30).await;
    let r = capacity(&tasks(&cfg(&db), &c), &run_now()).await.unwrap();
    assert_eq!(r.samples, 33);
    let growth = r.growth_bytes_per_day.unwrap();
    assert!(growth.abs() < 100.0 * KIB as f64, "{growth}");
    assert_eq!(rows(&db, "other").await, 60);
}

#[tokio::test]
async fn without_data_disk_a_local_server_reports_its_data_directory() {
    let db = fresh_database("capdatadir").await;
    let data_dir: Option<String> = db
        .connect()
        .await
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    let local = db.host.starts_with('/')
        || db.host == "localhost"
        || db.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let visible = local && data_dir.as_deref().is_some_and(|d| Path::new(d).exists());

    let r = capacity(&tasks(&cfg(&db), &capcfg(None, None)), &run_now()).await.unwrap();
    let forecast = check(&r, "disk forecast");
    if visible {
        assert!(r.disk_free_bytes.is_some(), "{forecast:?}");
        assert!(forecast.summary.contains(data_dir.as_deref().unwrap_or_default()), "{}", forecast.summary);
    } else {
        assert_eq!(forecast.status, Status::Unknown);
        assert!(forecast.summary.contains("data_disk"), "{}", forecast.summary);
        assert_eq!(r.disk_free_bytes, None);
    }
}

#[tokio::test]
async fn a_role_that_may_not_create_the_history_table_is_told_what_to_grant() {
    let db = fresh_database("capprivilege").await;
    let plain_db = db.plain_role().await;
    let role = plain_db.user.clone();
    let plain = cfg(&plain_db);
    let err =
        capacity(&tasks(&plain, &capcfg(None, Some(scratch("privilege")))), &run_now()).await.unwrap_err();
    assert!(matches!(err, DbMaintError::Privilege { .. }), "{err:?}");
    let text = kyb_core::error_chain(&err);
    let grant = format!("GRANT CREATE ON DATABASE \"{}\" TO \"{role}\"", db.dbname);
    assert!(text.starts_with("creating the size history table failed on "), "{text}");
    assert!(text.contains(&grant) && text.contains("permission denied for database"), "{text}");
    assert!(!table_exists(&db).await);
    db.drop_role(&plain_db).await;
}
