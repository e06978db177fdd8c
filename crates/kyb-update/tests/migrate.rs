//! Migrations against a real PostgreSQL: ordered and idempotent, edits refused, failures
//! recorded and blocking, two runners at once.

use kyb_core::{RunCtx, Status};
use kyb_testkit::{TestDb, fresh_database};
use kyb_update::*;
use std::path::Path;

fn cfg(db: &TestDb, dir: &Path) -> MigrateConfig {
    MigrateConfig {
        postgres: db.pg_target(),
        dir: dir.to_owned(),
        connect_timeout_ms: 10_000,
        lock_wait_ms: 500,
        lock_timeout_ms: 5_000,
        statement_timeout_ms: 0,
    }
}

fn ctx() -> RunCtx {
    RunCtx::new(time::OffsetDateTime::now_utc())
}

/// The summaries of the report's checks, by name.
fn summaries(r: &MigrateReport) -> Vec<(&str, &str)> {
    r.findings.checks.iter().map(|c| (c.name.as_str(), c.summary.as_str())).collect()
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn base(dir: &Path) {
    write(
        dir,
        "0001_companies.sql",
        "CREATE TABLE companies (id bigserial PRIMARY KEY, name text NOT NULL);\n",
    );
    write(
        dir,
        "0002_company_names.sql",
        "-- kyb:no-transaction\nCREATE INDEX CONCURRENTLY companies_name_idx ON companies (name);\n",
    );
    write(
        dir,
        "0010_seed.sql",
        "INSERT INTO companies (name) VALUES ('Acme'), ('Globex');\nALTER TABLE companies ADD COLUMN country text;\n",
    );
    write(dir, "README.md", "not a migration\n");
}

async fn rows(db: &TestDb) -> Vec<(i64, bool)> {
    db.connect()
        .await
        .query("SELECT version, success FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn applies_in_order_once_and_refuses_an_edited_migration() {
    let db = fresh_database("migorder").await;
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let plan = migrate(&cfg(&db, dir.path()), &ctx().with_dry_run(true)).await.unwrap();
    assert_eq!(plan.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2, 10]);
    assert_eq!(rows(&db).await, [], "a dry run applies nothing");
    assert_eq!(
        summaries(&plan),
        [
            ("0001_companies", "would apply in 0 ms"),
            ("0002_company_names", "would apply in 0 ms"),
            ("0010_seed", "would apply in 0 ms"),
            ("migrate", "3 would apply, 0 already applied"),
        ]
    );
    assert_eq!(plan.findings.status(), Status::Ok);

    let r = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap();
    assert_eq!(r.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2, 10]);
    assert_eq!(rows(&db).await, [(1, true), (2, true), (10, true)]);
    let n: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM companies WHERE country IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let names: Vec<&str> = r.findings.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["0001_companies", "0002_company_names", "0010_seed", "migrate", "migrations", "tables"]
    );
    assert!(r.findings.checks[0].summary.starts_with("applied in "), "{:?}", r.findings.checks);
    assert_eq!(r.findings.checks[3].summary, "3 applied, 0 already applied");
    assert!(r.findings.checks[4].summary.contains("at version 10"), "{:?}", r.findings.checks);

    let again = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already, 3);
    assert_eq!(summaries(&again)[0], ("migrate", "0 applied, 3 already applied"));

    write(
        dir.path(),
        "0001_companies.sql",
        "CREATE TABLE companies (id bigserial PRIMARY KEY, name text);\n",
    );
    let err = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap_err();
    assert!(matches!(err, MigrateError::Edited { version: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("must not be edited"), "{err}");
}

#[tokio::test]
async fn a_failing_migration_is_recorded_leaves_nothing_and_blocks_the_next_run() {
    let db = fresh_database("migfail").await;
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    write(
        dir.path(),
        "0011_broken.sql",
        "CREATE TABLE audit_log (id int);\nINSERT INTO no_such_table VALUES (1);\n",
    );
    write(dir.path(), "0012_after.sql", "CREATE TABLE later (id int);\n");
    let err = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap_err();
    assert!(matches!(err, MigrateError::Failed { version: 11, rolled_back: true, .. }), "{err:?}");
    assert!(kyb_core::error_chain(&err).contains("no_such_table"), "{}", kyb_core::error_chain(&err));
    assert_eq!(rows(&db).await, [(1, true), (2, true), (10, true), (11, false)]);
    let c = db.connect().await;
    let exists = |t: &'static str| {
        let c = &c;
        async move { c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&t]).await.unwrap().get::<_, bool>(0) }
    };
    assert!(!exists("audit_log").await, "a transactional file leaves nothing behind");
    assert!(!exists("later").await, "nothing after the failure ran");

    // Fixed, but not repaired: the failure still blocks.
    write(dir.path(), "0011_broken.sql", "CREATE TABLE audit_log (id int);\n");
    let err = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap_err();
    assert!(matches!(err, MigrateError::Blocked { version: 11, .. }), "{err:?}");
    c.batch_execute("DELETE FROM schema_migrations WHERE version = 11 AND NOT success").await.unwrap();
    let r = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap();
    assert_eq!(r.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [11, 12]);
}

#[tokio::test]
async fn two_runners_at_once_take_turns_or_refuse() {
    let db = fresh_database("migconc").await;
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    write(dir.path(), "0020_slow.sql", "SELECT pg_sleep(1);\n");
    let waiting = MigrateConfig { lock_wait_ms: 30_000, ..cfg(&db, dir.path()) };
    let run = ctx();
    let (a, b) = tokio::join!(migrate(&waiting, &run), migrate(&waiting, &run));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied.len() + b.applied.len(), 4, "each migration applied once: {a:?} {b:?}");

    // A runner that will not wait: refused while the other holds the lock.
    let holder = db.connect().await;
    holder.query_one("SELECT pg_advisory_lock($1)", &[&kyb_update::MIGRATE_LOCK_KEY]).await.unwrap();
    let err = migrate(&cfg(&db, dir.path()), &ctx()).await.unwrap_err();
    assert!(matches!(err, MigrateError::LockHeld { .. }), "{err:?}");
}

#[test]
fn files_are_read_in_version_order_and_bad_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let m = read_migrations(dir.path()).unwrap();
    assert_eq!(
        m.iter().map(|m| (m.version, m.no_transaction)).collect::<Vec<_>>(),
        [(1, false), (2, true), (10, false)]
    );
    write(dir.path(), "0010_duplicate.sql", "SELECT 1;");
    assert!(read_migrations(dir.path()).unwrap_err().to_string().contains("version 10 is also"));
    std::fs::remove_file(dir.path().join("0010_duplicate.sql")).unwrap();
    write(dir.path(), "add_things.sql", "SELECT 1;");
    assert!(read_migrations(dir.path()).unwrap_err().to_string().contains("<version>_<name>.sql"));
    assert!(read_migrations(&dir.path().join("missing")).is_err());
}
