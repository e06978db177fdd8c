//! ANALYZE and VACUUM against a real PostgreSQL: hostile names, lock contention, two runs at
//! once, a server that is not there.

use kyb_core::Status;
use kyb_dbmaint::*;
use kyb_testkit::{TestDb, fresh_database};
use std::time::{Duration, Instant};

fn cfg(db: &TestDb) -> DbConfig {
    DbConfig {
        postgres: db.pg_target(),
        connect_timeout_ms: 5_000,
        lock_timeout_ms: 300,
        statement_timeout_ms: 60_000,
        lock_wait_ms: 500,
    }
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
    let plan = analyze(&cfg(&db), true).await.unwrap();
    assert_eq!(plan.statements.len(), 4, "{:?}", plan.statements);
    assert!(plan.checks.is_empty());
    assert!(
        plan.statements.contains(&r#"ANALYZE "Odd Schema"."Robert'); DROP TABLE plain_rows;--""#.to_owned())
    );
    assert!(!last_analyzed(&db, "plain_rows").await, "a dry run ran ANALYZE");

    let r = analyze(&cfg(&db), false).await.unwrap();
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:?}", r.checks);
    assert_eq!(r.checks.len(), 4);
    assert!(last_analyzed(&db, "Robert'); DROP TABLE plain_rows;--").await);
    assert!(last_analyzed(&db, "plain_rows").await, "plain_rows must still exist and be analyzed");

    let v = vacuum_analyze(&cfg(&db), false).await.unwrap();
    assert!(v.checks.iter().all(|c| c.status == Status::Ok), "{:?}", v.checks);
    let vacuumed: bool = db
        .connect()
        .await
        .query_one(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'UPPER case'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(vacuumed);
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
        (analyze(&plain, false).await.unwrap(), "ANALYZE"),
        (vacuum_analyze(&plain, false).await.unwrap(), "VACUUM"),
    ] {
        assert!(r.statements.is_empty(), "{r:?}");
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
    let r = analyze(&plain, false).await.unwrap();
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
    let r = analyze(&plain, false).await.unwrap();
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
    let r = analyze(&cfg(&db), false).await.unwrap();
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
    let err = analyze(&cfg(&db), false).await.unwrap_err();
    assert!(matches!(err, DbMaintError::LockHeld { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(500), "gave up before lock_wait_ms");
    assert!(err.to_string().contains("holds the maintenance lock"), "{err}");
    // Released: the next run gets it, and two runs at once take turns.
    other.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await.unwrap();
    let c = DbConfig { lock_wait_ms: 60_000, ..cfg(&db) };
    let (a, b) = tokio::join!(analyze(&c, false), analyze(&c, false));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
}

#[tokio::test]
async fn a_database_that_is_down_is_a_clear_error_without_a_hang() {
    let db = fresh_database("dmdown").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = cfg(&db);
    c.postgres.port = dead;
    let started = Instant::now();
    let err = analyze(&c, false).await.unwrap_err();
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
