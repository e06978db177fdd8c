//! ANALYZE and VACUUM against a real PostgreSQL: hostile names, lock contention, two runs at
//! once, the maintenance windows, a server that is not there.

use kyb_core::{RunCtx, Status, WindowState};
use kyb_dbmaint::*;
use kyb_testkit::{TestDb, fresh_database};
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn db_cfg(db: &TestDb) -> DbConfig {
    DbConfig {
        postgres: db.pg_target(),
        connect_timeout_ms: 5_000,
        lock_timeout_ms: 300,
        statement_timeout_ms: 60_000,
        lock_wait_ms: 500,
    }
}

/// The tasks' config of `db`, with the default report levels.
fn tasks(db: DbConfig) -> DbMaintConfig {
    let capacity = DbMaintSection::default().capacity(Path::new("unused-trend.csv"));
    DbMaintConfig::new(db, ReportConfig::default(), capacity)
}

fn cfg(db: &TestDb) -> DbMaintConfig {
    tasks(db_cfg(db))
}

/// A run now that changes things.
fn run() -> RunCtx {
    RunCtx::new(OffsetDateTime::now_utc())
}

/// A dry run now.
fn plan() -> RunCtx {
    run().with_dry_run(true)
}

/// Tables whose names would break hand-built SQL, and an ordinary one.
async fn hostile(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            r#"CREATE TABLE plain_rows (id int PRIMARY KEY, v text);
               INSERT INTO plain_rows SELECT g, 'v' || g FROM generate_series(1, 5000) g;
               CREATE SCHEMA "Odd Schema";
               CREATE TABLE "Odd Schema"."Robert'); DROP TABLE plain_rows;--" (id int);
               INSERT INTO "Odd Schema"."Robert'); DROP TABLE plain_rows;--" SELECT generate_series(1, 100);
               CREATE TABLE "with ""quotes"" and; semicolons" (id int);
               CREATE TABLE "UPPER case" (id int);"#,
        )
        .await
        .unwrap();
    db
}

async fn last_analyzed(db: &TestDb, table: &str) -> bool {
    db.connect()
        .await
        .query_one("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1", &[&table])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn hostile_names_are_analyzed_and_vacuumed_without_injection() {
    let db = hostile("dmhostile").await;
    let p = analyze(&cfg(&db), &plan()).await.unwrap().findings;
    assert_eq!(p.actions.len(), 4, "{:?}", p.actions);
    let only_the_plan: Vec<_> =
        p.checks.iter().map(|c| (c.name.as_str(), c.status, c.summary.as_str())).collect();
    assert_eq!(only_the_plan, [("plan", Status::Ok, "would run 4 statements")]);
    assert!(p.actions.contains(&r#"ANALYZE "Odd Schema"."Robert'); DROP TABLE plain_rows;--""#.to_owned()));
    assert!(!last_analyzed(&db, "plain_rows").await, "a dry run ran ANALYZE");

    let r = analyze(&cfg(&db), &run()).await.unwrap().findings;
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    assert_eq!(r.checks.len(), 4);
    assert_eq!(r.actions.len(), 4, "the statements run: {:?}", r.actions);
    assert!(last_analyzed(&db, "Robert'); DROP TABLE plain_rows;--").await);
    assert!(last_analyzed(&db, "plain_rows").await, "plain_rows must still exist and be analyzed");

    let v = vacuum_analyze(&cfg(&db), &run()).await.unwrap().findings;
    assert!(v.checks.iter().all(|c| c.status == Status::Ok), "{:?}", v.checks);
    assert!(vacuumed(&db).await);
}

#[tokio::test]
async fn tables_the_role_may_not_maintain_are_skipped_with_the_reason_not_reported_done() {
    let db = hostile("dmpriv").await;
    // A login role of its own (roles are server-wide), owning nothing.
    let plain_db = db.plain_role().await;
    let role = plain_db.user.clone();
    let admin = db.connect().await;
    let plain = cfg(&plain_db);

    // The server would only warn and skip: the run must not call that done.
    for (r, verb) in [
        (analyze(&plain, &run()).await.unwrap().findings, "ANALYZE"),
        (vacuum_analyze(&plain, &run()).await.unwrap().findings, "VACUUM"),
    ] {
        assert!(r.actions.is_empty(), "{r:?}");
        assert_eq!(r.checks.len(), 4, "{:?}", r.checks);
        for check in &r.checks {
            assert_eq!(check.status, Status::Warn, "{check:?}");
            let why = format!(
                "skipped: {role} may not {verb} it: only the table's owner, the database's owner or a superuser may"
            );
            assert_eq!(check.summary, why);
        }
    }
    assert!(!last_analyzed(&db, "plain_rows").await);

    // The database's owner may.
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" OWNER TO \"{role}\"", db.dbname)).await.unwrap();
    let r = analyze(&plain, &run()).await.unwrap().findings;
    let odd = r#""Odd Schema"."Robert'); DROP TABLE plain_rows;--""#;
    for check in &r.checks {
        if check.name == odd {
            let why = format!(
                r#"skipped: {role} may not use schema "Odd Schema": GRANT USAGE ON SCHEMA "Odd Schema" TO {role}"#
            );
            assert_eq!((check.status, &check.summary), (Status::Warn, &why));
        } else {
            assert_eq!(check.status, Status::Ok, "{check:?}");
        }
    }
    admin.batch_execute(&format!("GRANT USAGE ON SCHEMA \"Odd Schema\" TO \"{role}\"")).await.unwrap();
    let r = analyze(&plain, &run()).await.unwrap().findings;
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    assert!(last_analyzed(&db, "plain_rows").await);
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" OWNER TO CURRENT_USER", db.dbname)).await.unwrap();
    admin.batch_execute(&format!("REVOKE USAGE ON SCHEMA \"Odd Schema\" FROM \"{role}\"")).await.unwrap();
    db.drop_role(&plain_db).await;
}

#[tokio::test]
async fn a_locked_table_times_out_and_the_rest_are_analyzed() {
    let db = hostile("dmlocked").await;
    let holder = db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE plain_rows IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let r = analyze(&cfg(&db), &run()).await.unwrap().findings;
    holder.batch_execute("ROLLBACK").await.unwrap();
    let locked = r.checks.iter().find(|c| c.name == "public.plain_rows").unwrap();
    assert_eq!(locked.status, Status::Warn, "{locked:?}");
    assert!(locked.summary.contains("lock timeout"), "{}", locked.summary);
    let others: Vec<_> = r.checks.iter().filter(|c| c.name != "public.plain_rows").collect();
    assert_eq!(others.len(), 3);
    assert!(others.iter().all(|c| c.status == Status::Ok), "{others:?}");
}

#[tokio::test]
async fn a_second_run_waits_for_the_advisory_lock_then_says_it_is_held() {
    let db = hostile("dmconcurrent").await;
    let other = db.connect().await;
    other.query_one("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await.unwrap();
    let started = Instant::now();
    let err = analyze(&cfg(&db), &run()).await.unwrap_err();
    assert!(matches!(err, DbMaintError::LockHeld { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(500), "gave up before lock_wait_ms");
    assert!(err.to_string().contains("holds the maintenance lock"), "{err}");
    // Released: the next run gets it, and two runs at once take turns.
    other.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await.unwrap();
    let c = tasks(DbConfig { lock_wait_ms: 60_000, ..db_cfg(&db) });
    let ctx = run();
    let (a, b) = tokio::join!(analyze(&c, &ctx), analyze(&c, &ctx));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
}

#[tokio::test]
async fn a_database_that_is_down_is_a_clear_error_without_a_hang() {
    let db = fresh_database("dmdown").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = cfg(&db);
    c.db.postgres.port = dead;
    let started = Instant::now();
    let err = analyze(&c, &run()).await.unwrap_err();
    assert!(matches!(err, DbMaintError::Connect { .. }), "{err:?}");
    let text = kyb_core::error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{dead}: connection refused; check "
        )),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Outside every window now; the next opens on a Sunday in 2030, or is not known.
fn closed(next_open: Option<OffsetDateTime>) -> WindowState {
    WindowState::Closed { windows: "Sun 02:00-06:00 UTC".into(), next_open }
}

async fn vacuumed(db: &TestDb) -> bool {
    db.connect()
        .await
        .query_one(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'UPPER case'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn vacuum_and_reindex_keep_to_the_windows_unless_it_is_an_emergency() {
    let db = hostile("dmwindow").await;
    let next = Some(time::macros::datetime!(2030-01-06 02:00 UTC));
    let outside =
        "outside the maintenance windows (Sun 02:00-06:00 UTC); the next opens 2030-01-06 02:00 UTC";

    // Not run, and not even connected to: a server that is down is not asked.
    let mut down = cfg(&db);
    down.db.postgres.port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for c in [cfg(&db), down] {
        for r in [
            vacuum_analyze(&c, &run().with_window(closed(next))).await.unwrap().findings,
            reindex(&c, &run().with_window(closed(next))).await.unwrap().findings,
        ] {
            let checks: Vec<_> =
                r.checks.iter().map(|c| (c.name.as_str(), c.status, c.summary.clone())).collect();
            let not_run = format!("not run: {outside}; --emergency runs it anyway");
            assert_eq!(checks, [("window", Status::Warn, not_run)]);
            assert!(r.actions.is_empty(), "{r:?}");
        }
    }
    assert!(!vacuumed(&db).await, "vacuumed outside the window");

    // A dry run still plans, and says a real run now would not run it.
    let p = vacuum_analyze(&cfg(&db), &plan().with_window(closed(next))).await.unwrap().findings;
    let window = &p.checks[0];
    assert_eq!(window.name, "window");
    assert_eq!(window.status, Status::Warn);
    assert_eq!(
        window.summary,
        format!("{outside}: a real run now would not run these (--emergency overrides)")
    );
    let last = p.checks.last().unwrap();
    assert_eq!((last.name.as_str(), last.summary.as_str()), ("plan", "would run 4 statements"));
    assert_eq!(p.checks.len(), 2, "{:?}", p.checks);
    assert!(p.actions.iter().all(|a| a.starts_with("VACUUM (ANALYZE) ")), "{:?}", p.actions);
    assert_eq!(p.actions.len(), 4);
    assert!(!vacuumed(&db).await, "a dry run vacuumed");

    // An emergency runs it, and says so first.
    let r = vacuum_analyze(&cfg(&db), &run().with_window(closed(None)).with_emergency(true)).await.unwrap();
    let window = &r.findings.checks[0];
    assert_eq!(window.name, "window");
    assert_eq!(window.status, Status::Ok);
    assert_eq!(
        window.summary,
        "outside the maintenance windows (Sun 02:00-06:00 UTC); run anyway (--emergency)"
    );
    assert_eq!(r.findings.checks.len(), 5, "{:?}", r.findings.checks);
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.findings.checks);
    assert!(vacuumed(&db).await);

    // ANALYZE is light: the windows do not apply.
    let r = analyze(&cfg(&db), &run().with_window(closed(next))).await.unwrap().findings;
    assert!(r.checks.iter().all(|c| c.name != "window" && c.status == Status::Ok), "{:?}", r.checks);
    assert!(last_analyzed(&db, "plain_rows").await);
}
