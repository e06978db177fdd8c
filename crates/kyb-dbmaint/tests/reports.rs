//! The reports against a real PostgreSQL: each fixture makes one condition in a database of its
//! own, and each report finds exactly that condition, and nothing from the other test databases
//! on the same server.

use kyb_core::{Check, PgTarget, RunCtx, Secret, Status, Thresholds};
use kyb_dbmaint::*;
use kyb_testkit::{TestDb, fresh_database};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

fn cfg(db: &TestDb) -> DbConfig {
    DbConfig {
        postgres: db.pg_target(),
        connect_timeout_ms: 10_000,
        lock_timeout_ms: 1_000,
        statement_timeout_ms: 60_000,
        lock_wait_ms: 1_000,
    }
}

/// Thresholds small enough for fixtures of a few megabytes.
fn small() -> ReportConfig {
    ReportConfig {
        bloat_bytes: Thresholds::new(256.0 * 1024.0, 1024.0 * 1024.0),
        bloat_min_pct: 30.0,
        ..ReportConfig::default()
    }
}

/// The tasks' config of `db` judged by `rc`.
fn tasks(db: &DbConfig, rc: &ReportConfig) -> DbMaintConfig {
    let capacity = DbMaintSection::default().capacity(Path::new("unused-trend.csv"));
    DbMaintConfig::new(db.clone(), rc.clone(), capacity)
}

/// A run now.
fn run_now() -> RunCtx {
    RunCtx::new(OffsetDateTime::now_utc())
}

async fn run(db: &TestDb, rc: &ReportConfig, which: ReportKind) -> DbReport {
    report(&tasks(&cfg(db), rc), which, &run_now())
        .await
        .unwrap_or_else(|e| panic!("{}: {}", which.name(), kyb_core::error_chain(&e)))
}

/// The names of the rows that are not Ok.
fn flagged(r: &DbReport) -> Vec<String> {
    let mut names: Vec<String> =
        r.findings.checks.iter().filter(|c| c.status != Status::Ok).map(|c| c.name.clone()).collect();
    names.sort();
    names
}

fn row_of<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no row {name} in {checks:#?}"))
}

fn row<'a>(r: &'a DbReport, name: &str) -> &'a Check {
    r.findings
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no row {name} in {:#?}", r.findings.checks))
}

/// The `size` metric of a row.
fn size_metric(c: &Check) -> f64 {
    c.metrics.iter().find(|m| m.label == "size").unwrap_or_else(|| panic!("no size in {c:?}")).value
}

async fn setup(db: &TestDb, sql: &str) {
    let c = db.connect().await;
    c.batch_execute(sql).await.unwrap_or_else(|e| panic!("fixture: {e:?}"));
    // Counters reach the statistics views when a session flushes them; make it now.
    c.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
}

/// The config of a login role of its own for `db`, with no privileges beyond PUBLIC's.
/// Roles are server-wide: the caller drops it with [`drop_role`].
async fn plain_role(db: &TestDb) -> DbConfig {
    cfg(&db.plain_role().await)
}

async fn drop_role(db: &TestDb, c: &DbConfig) {
    db.drop_role(&TestDb { user: c.postgres.user.clone(), ..db.clone() }).await;
}

const ACCOUNTS: &str =
    "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL, region text, created date);
     INSERT INTO accounts SELECT g, 'user' || g || '@example.com', 'r' || (g % 7), date '2026-01-01' + g % 300
     FROM generate_series(1, 20000) g;";

#[tokio::test]
async fn unused_indexes_are_the_unscanned_non_unique_ones_with_the_stats_reset_time() {
    let db = fresh_database("rpunused").await;
    setup(
        &db,
        &format!(
            "{ACCOUNTS}
             CREATE UNIQUE INDEX accounts_email_key ON accounts (email);
             CREATE INDEX accounts_region_idx ON accounts (region);
             CREATE INDEX accounts_created_idx ON accounts (created);
             ANALYZE accounts;"
        ),
    )
    .await;
    // accounts_created_idx is used; accounts_region_idx never is.
    let c = db.connect().await;
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off").await.unwrap();
    for _ in 0..3 {
        c.query("SELECT id FROM accounts WHERE created = date '2026-02-01'", &[]).await.unwrap();
    }
    c.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    let rc = ReportConfig { unused_index_max_scans: 0, ..small() };
    let r = run(&db, &rc, ReportKind::UnusedIndexes).await;
    assert_eq!(flagged(&r), ["public.accounts_region_idx"], "{:#?}", r.findings.checks);
    let s = &row(&r, "public.accounts_region_idx").summary;
    assert!(s.contains("0 scans") && s.contains("public.accounts"), "{s}");
    assert!(
        r.findings.notes[0].contains("since statistics began") || r.findings.notes[0].contains("reset at"),
        "{:?}",
        r.findings.notes
    );

    // With PgHero's default (50 scans) the lightly used index counts too; a size floor drops both.
    let r = run(&db, &small(), ReportKind::UnusedIndexes).await;
    assert_eq!(flagged(&r), ["public.accounts_created_idx", "public.accounts_region_idx"]);
    let rc = ReportConfig { unused_index_min_bytes: 1 << 30, ..small() };
    let r = run(&db, &rc, ReportKind::UnusedIndexes).await;
    assert!(flagged(&r).is_empty(), "{:#?}", r.findings.checks);
}

#[tokio::test]
async fn duplicate_indexes_are_those_another_index_covers() {
    let db = fresh_database("rpdup").await;
    setup(
        &db,
        &format!(
            "{ACCOUNTS}
             CREATE INDEX accounts_email_idx ON accounts (email);
             CREATE INDEX accounts_email_created_idx ON accounts (email, created);
             CREATE INDEX accounts_id_idx ON accounts (id);
             CREATE INDEX accounts_region_lower_idx ON accounts (lower(region));
             CREATE INDEX accounts_region_idx ON accounts (region);
             CREATE INDEX accounts_region_partial_idx ON accounts (region) WHERE created > date '2026-06-01';
             CREATE INDEX accounts_email_hash ON accounts USING hash (email);"
        ),
    )
    .await;
    let r = run(&db, &small(), ReportKind::DuplicateIndexes).await;
    // email is a prefix of (email, created); id repeats the primary key. The expression, the
    // partial and the hash index answer other queries.
    assert_eq!(
        flagged(&r),
        ["public.accounts_email_idx", "public.accounts_id_idx"],
        "{:#?}",
        r.findings.checks
    );
    assert!(row(&r, "public.accounts_id_idx").summary.contains("accounts_pkey"));
    assert!(row(&r, "public.accounts_email_idx").summary.contains("accounts_email_created_idx"));
    // The space to reclaim is the index's own size.
    for name in ["public.accounts_email_idx", "public.accounts_id_idx"] {
        let size: i64 = db
            .connect()
            .await
            .query_one("SELECT pg_relation_size($1::text::regclass)", &[&name])
            .await
            .unwrap()
            .get(0);
        assert!(size > 0);
        assert_eq!(size_metric(row(&r, name)), size as f64, "{name}");
        assert!(
            row(&r, name).summary.contains(&kyb_core::human_bytes(size as u64)),
            "{}",
            row(&r, name).summary
        );
    }

    // Two identical indexes: one of them is reported, not both.
    let db = fresh_database("rpdup2").await;
    setup(
        &db,
        "CREATE TABLE t (a int, b int); CREATE INDEX t_a_1 ON t (a, b); CREATE INDEX t_a_2 ON t (a, b);",
    )
    .await;
    let r = run(&db, &small(), ReportKind::DuplicateIndexes).await;
    assert_eq!(flagged(&r), ["public.t_a_2"]);
}

#[tokio::test]
async fn an_index_left_by_a_failed_concurrent_build_is_invalid() {
    let db = fresh_database("rpinvalid").await;
    setup(&db, &format!("{ACCOUNTS} CREATE INDEX accounts_region_idx ON accounts (region);")).await;
    let c = db.connect().await;
    let err =
        c.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY accounts_region_key ON accounts (region)").await;
    assert!(err.is_err(), "the build must fail on duplicate regions");
    let r = run(&db, &small(), ReportKind::InvalidIndexes).await;
    assert_eq!(flagged(&r), ["public.accounts_region_key"], "{:#?}", r.findings.checks);
    let only = &r.findings.checks[0];
    assert_eq!(only.status, Status::Crit);
    assert!(only.summary.contains("DROP INDEX CONCURRENTLY public.accounts_region_key"), "{}", only.summary);
    // Nothing else is flagged as unused either: an invalid index is not a candidate to drop.
    let unused =
        run(&db, &ReportConfig { unused_index_max_scans: 0, ..small() }, ReportKind::UnusedIndexes).await;
    assert_eq!(flagged(&unused), ["public.accounts_region_idx"]);
}

/// A table bloated by mass updates and deletes (autovacuum off, so it stays that way), and a
/// freshly loaded one next to it.
async fn bloated(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    setup(
        &db,
        r#"CREATE TABLE "Bloat ""Tab""; x" (id int, payload text) WITH (autovacuum_enabled = false);
           INSERT INTO "Bloat ""Tab""; x" SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 100000) g;
           CREATE INDEX "Idx; DROP TABLE clean;--" ON "Bloat ""Tab""; x" (id);
           UPDATE "Bloat ""Tab""; x" SET payload = payload || 'x';
           DELETE FROM "Bloat ""Tab""; x" WHERE id % 10 <> 0;
           ANALYZE "Bloat ""Tab""; x";
           CREATE TABLE clean (id int PRIMARY KEY, payload text);
           INSERT INTO clean SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 100000) g;
           CREATE TABLE mixed (a bool, b int8, c bool, d int8, e bool, f timestamptz, g int2, h int8);
           INSERT INTO mixed SELECT g % 2 = 0, g, g % 3 = 0, g * 2, true, now(), 1, g FROM generate_series(1, 200000) g;
           CREATE INDEX mixed_abcd ON mixed (a, b, c, d);"#,
    )
    .await;
    setup(&db, "VACUUM ANALYZE clean").await;
    setup(&db, "VACUUM ANALYZE mixed").await;
    db
}

#[tokio::test]
async fn bloat_vacuum_state_sizes_and_activity_find_the_bloated_table() {
    let db = bloated("rpbloat").await;
    let table = r#"public."Bloat ""Tab""; x""#;
    let index = r#"public."Idx; DROP TABLE clean;--""#;

    let r = run(&db, &small(), ReportKind::Bloat).await;
    assert_eq!(flagged(&r), [table.to_owned(), index.to_owned()], "{:#?}", r.findings.checks);
    let pct = |c: &Check| c.metrics.iter().find(|m| m.label == "wasted_pct").unwrap().value;
    assert!(pct(row(&r, table)) > 70.0, "{:?}", row(&r, table));
    assert!(pct(row(&r, index)) > 70.0, "{:?}", row(&r, index));
    // The freshly loaded table and its key are estimated close to their real size.
    let all = run(
        &db,
        &ReportConfig { bloat_bytes: Thresholds::new(0.0, 1e12), bloat_min_pct: 0.0, ..small() },
        ReportKind::Bloat,
    )
    .await;
    // Freshly loaded tables and indexes, the one whose columns need alignment padding too.
    for clean in ["public.clean", "public.clean_pkey", "public.mixed", "public.mixed_abcd"] {
        if let Some(c) = all.findings.checks.iter().find(|c| c.name == clean) {
            assert!(pct(c) < 20.0, "{clean} estimated {}% wasted: {c:?}", pct(c));
        }
    }

    let v = run(&db, &small(), ReportKind::VacuumState).await;
    assert_eq!(flagged(&v), [table.to_owned()], "{:#?}", v.findings.checks);
    assert_eq!(row(&v, table).status, Status::Crit, "90% dead");

    let s = run(&db, &small(), ReportKind::TableSizes).await;
    let names: Vec<&str> = s.findings.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&table) && names.contains(&"public.clean"));
    let m = |c: &Check, l: &str| c.metrics.iter().find(|m| m.label == l).unwrap().value;
    let clean = row(&s, "public.clean");
    assert!(m(clean, "total") >= m(clean, "heap") + m(clean, "indexes"), "{clean:?}");
    assert!(m(clean, "toast") >= 0.0 && m(clean, "indexes") > 0.0);

    let a = run(&db, &small(), ReportKind::TopActivity).await;
    let names: Vec<&str> = a.findings.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [table, "public.mixed", "public.clean"], "busiest first");
    assert!(row(&a, table).summary.contains("90000 deletes"), "{}", row(&a, table).summary);
}

#[tokio::test]
async fn reindex_rebuilds_only_the_bloated_index_and_handles_hostile_names() {
    let db = bloated("rpreindex").await;
    let pages = |c: tokio_postgres::Client| async move {
        c.query_one(r#"SELECT relpages FROM pg_class WHERE relname = 'Idx; DROP TABLE clean;--'"#, &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    let before = pages(db.connect().await).await;
    let plan = reindex(&tasks(&cfg(&db), &small()), &run_now().with_dry_run(true)).await.unwrap();
    assert_eq!(
        plan.findings.actions,
        [r#"REINDEX INDEX CONCURRENTLY public."Idx; DROP TABLE clean;--""#],
        "{plan:?}"
    );
    let last = plan.findings.checks.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.status, last.summary.as_str()),
        ("plan", Status::Ok, "would run 1 statements")
    );
    assert_eq!(pages(db.connect().await).await, before, "a dry run changes nothing");

    let done = reindex(&tasks(&cfg(&db), &small()), &run_now()).await.unwrap();
    assert!(done.findings.checks.iter().all(|c| c.status == Status::Ok), "{:#?}", done.findings.checks);
    let after = pages(db.connect().await).await;
    assert!(after * 3 < before, "pages {before} -> {after}");
    let clean: i64 = db.connect().await.query_one("SELECT count(*) FROM clean", &[]).await.unwrap().get(0);
    assert_eq!(clean, 100_000, "no injection");

    // Nothing bloated is left: the next run has nothing to do.
    let again = reindex(&tasks(&cfg(&db), &small()), &run_now()).await.unwrap();
    assert!(again.findings.actions.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_role_that_does_not_own_the_table_skips_its_reindex_and_says_why() {
    let db = bloated("rpreindexpriv").await;
    let plain = plain_role(&db).await;
    // Without SELECT on the table the role does not even see its statistics.
    let r = report(&tasks(&plain, &small()), ReportKind::Bloat, &run_now()).await.unwrap();
    assert!(flagged(&r).is_empty(), "{:#?}", r.findings.checks);
    let why = format!("3 tables and their indexes were not estimated: {} may not read", plain.postgres.user);
    assert!(
        r.findings.notes.iter().any(|n| n.contains(&why) && n.contains("SELECT")),
        "{:?}",
        r.findings.notes
    );

    let user = &plain.postgres.user;
    setup(&db, &format!(r#"GRANT SELECT ON "Bloat ""Tab""; x" TO "{user}""#)).await;
    let r = reindex(&tasks(&plain, &small()), &run_now()).await.unwrap();
    assert!(r.findings.actions.is_empty(), "{r:?}");
    let row = row_of(&r.findings.checks, r#"public."Idx; DROP TABLE clean;--""#);
    assert_eq!(row.status, Status::Warn);
    let why = format!(
        "skipped: {} may not REINDEX it: only the table's owner or a superuser may",
        plain.postgres.user
    );
    assert_eq!(row.summary, why);
    setup(&db, &format!(r#"REVOKE SELECT ON "Bloat ""Tab""; x" FROM "{user}""#)).await;
    drop_role(&db, &plain).await;
}

#[tokio::test]
async fn long_queries_say_which_sessions_a_role_without_pg_read_all_stats_cannot_see() {
    let db = fresh_database("rplongpriv").await;
    let plain = plain_role(&db).await;
    // Another role's session in the database, idle in a transaction.
    let other = db.connect().await;
    other.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let r = report(&tasks(&plain, &small()), ReportKind::LongQueries, &run_now()).await.unwrap();
    let row = row_of(&r.findings.checks, "other roles' sessions");
    assert_eq!(row.status, Status::Unknown);
    let grant = format!("GRANT pg_read_all_stats TO {}", plain.postgres.user);
    assert!(
        row.summary.contains("lacks pg_read_all_stats") && row.summary.contains(&grant),
        "{}",
        row.summary
    );
    let r = report(&tasks(&plain, &small()), ReportKind::Connections, &run_now()).await.unwrap();
    assert!(r.findings.notes.iter().any(|n| n.contains(&grant)), "{:?}", r.findings.notes);

    setup(&db, &format!("GRANT pg_read_all_stats TO \"{}\"", plain.postgres.user)).await;
    let r = report(&tasks(&plain, &small()), ReportKind::LongQueries, &run_now()).await.unwrap();
    assert!(r.findings.checks.iter().all(|c| c.status != Status::Unknown), "{:#?}", r.findings.checks);
    let r = report(&tasks(&plain, &small()), ReportKind::Connections, &run_now()).await.unwrap();
    assert!(r.findings.notes.is_empty(), "{:?}", r.findings.notes);
    other.batch_execute("COMMIT").await.unwrap();
    drop_role(&db, &plain).await;
}

#[tokio::test]
async fn a_sequence_the_role_may_not_read_is_counted_not_passed_over() {
    let db = fresh_database("rpseqpriv").await;
    setup(&db, "CREATE TABLE orders (id serial PRIMARY KEY); INSERT INTO orders DEFAULT VALUES;").await;
    let plain = plain_role(&db).await;
    let r = report(&tasks(&plain, &small()), ReportKind::Sequences, &run_now()).await.unwrap();
    let why = format!("1 sequences not measured: {} may not read them", plain.postgres.user);
    assert!(r.findings.notes.iter().any(|n| n.starts_with(&why)), "{:?}", r.findings.notes);
    // The table's owner reads it, and has nothing to note.
    let r = report(&tasks(&cfg(&db), &small()), ReportKind::Sequences, &run_now()).await.unwrap();
    assert!(r.findings.notes.is_empty(), "{:?}", r.findings.notes);
    drop_role(&db, &plain).await;
}

#[tokio::test]
async fn sequences_are_measured_against_the_column_they_feed() {
    let db = fresh_database("rpseq").await;
    setup(
        &db,
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         SELECT setval('orders_id_seq', 2040109465);
         CREATE TABLE events (id bigserial PRIMARY KEY);
         SELECT setval('events_id_seq', 2040109465);
         CREATE SEQUENCE shared_counter AS bigint;
         CREATE TABLE tickets (n int DEFAULT nextval('shared_counter'));
         SELECT setval('shared_counter', 1900000000);
         CREATE SEQUENCE unused_seq;
         CREATE TABLE \"Small Ids\" (id smallint GENERATED ALWAYS AS IDENTITY);
         ALTER TABLE \"Small Ids\" ALTER COLUMN id RESTART WITH 32000;",
    )
    .await;
    let r = run(&db, &small(), ReportKind::Sequences).await;
    assert_eq!(
        flagged(&r),
        ["public.\"Small Ids_id_seq\"", "public.orders_id_seq", "public.shared_counter"],
        "{:#?}",
        r.findings.checks
    );
    let small_ids = row(&r, "public.\"Small Ids_id_seq\"");
    assert_eq!(small_ids.status, Status::Crit, "restarted at 32000 of 32767, not yet called: {small_ids:?}");
    let orders = row(&r, "public.orders_id_seq");
    assert_eq!(orders.status, Status::Crit, "{orders:?}");
    assert!(orders.summary.contains("column public.orders.id"), "{}", orders.summary);
    let shared = row(&r, "public.shared_counter");
    assert_eq!(shared.status, Status::Warn, "88% of int: {shared:?}");
    assert!(shared.summary.contains("column public.tickets.n"), "{}", shared.summary);
    // For Prometheus, the fullest one's share, without a sequence name as a label.
    let gauges: Vec<_> = r.findings.checks.iter().flat_map(|c| &c.gauges).collect();
    assert_eq!(gauges.len(), 1, "{gauges:?}");
    assert_eq!((gauges[0].name.as_str(), gauges[0].labels.len()), ("kyb_maint_sequence_used_ratio_max", 0));
    assert!(gauges[0].value > 0.97 && gauges[0].value <= 1.0, "Small Ids at 32000 of 32767: {gauges:?}");
}

#[tokio::test]
async fn wraparound_covers_the_database_and_toast_tables() {
    let db = fresh_database("rpxid").await;
    setup(&db, "CREATE TABLE docs (id int, body text); INSERT INTO docs VALUES (1, repeat('x', 100000));")
        .await;
    let r = run(&db, &small(), ReportKind::Wraparound).await;
    assert_eq!(
        r.findings.checks.len(),
        1,
        "only the database row at the default thresholds: {:#?}",
        r.findings.checks
    );
    assert_eq!(r.findings.checks[0].name, format!("database {}", db.dbname));
    assert_eq!(r.findings.checks[0].status, Status::Ok);
    // At a zero threshold every table is listed, the TOAST table under its owner's name.
    let rc = ReportConfig { xid_age: Thresholds::new(0.0, 1e12), ..small() };
    let r = run(&db, &rc, ReportKind::Wraparound).await;
    assert!(row(&r, "TOAST of public.docs").status == Status::Warn);
    assert!(row(&r, "public.docs").status == Status::Warn);
}

#[tokio::test]
async fn connections_count_against_max_connections() {
    let db = fresh_database("rpconn").await;
    let r = run(&db, &small(), ReportKind::Connections).await;
    assert_eq!(r.findings.checks.len(), 1);
    assert_eq!(r.findings.checks[0].status, Status::Ok, "{:?}", r.findings.checks[0]);
    assert!(r.findings.checks[0].summary.contains("max_connections 200"), "{}", r.findings.checks[0].summary);
    let rc = ReportConfig { connections_pct: Thresholds::new(0.0, 0.1), ..small() };
    let r = run(&db, &rc, ReportKind::Connections).await;
    assert_eq!(r.findings.checks[0].status, Status::Crit);
}

#[tokio::test]
async fn a_long_query_and_an_idle_transaction_in_other_sessions_are_found() {
    let db = fresh_database("rplong").await;
    let sleeper = db.connect().await;
    let cancel = sleeper.cancel_token();
    let running =
        tokio::spawn(async move { sleeper.batch_execute("SELECT pg_sleep(60) /* fixture */").await });
    let idle = db.connect().await;
    idle.batch_execute("BEGIN; SELECT 1 /* left open */").await.unwrap();
    let watcher = db.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND now() - query_start > interval '1 second' AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the fixture query never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rc = ReportConfig {
        query_seconds: Thresholds::new(0.5, 3600.0),
        idle_in_transaction_seconds: Thresholds::new(0.5, 3600.0),
        ..small()
    };
    let r = run(&db, &rc, ReportKind::LongQueries).await;
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    assert!(running.await.unwrap().is_err(), "cancelled");
    assert_eq!(r.findings.checks.len(), 2, "{:#?}", r.findings.checks);
    assert!(r.findings.checks.iter().all(|c| c.status == Status::Warn));
    assert!(
        r.findings
            .checks
            .iter()
            .any(|c| c.summary.contains("running for") && c.summary.contains("pg_sleep(60)"))
    );
    assert!(
        r.findings
            .checks
            .iter()
            .any(|c| c.summary.contains("idle in transaction") && c.summary.contains("left open"))
    );
    // At the defaults (a minute) neither is long yet.
    let r = run(&db, &small(), ReportKind::LongQueries).await;
    assert!(flagged(&r).is_empty(), "{:#?}", r.findings.checks);
}

#[tokio::test]
async fn cache_hit_and_index_recommendations_follow_the_reads() {
    let db = fresh_database("rpseqscan").await;
    setup(
        &db,
        "CREATE TABLE orders (id int PRIMARY KEY, customer int, status text);
         INSERT INTO orders SELECT g, g % 5000, 'open' FROM generate_series(1, 30000) g;
         CREATE TABLE lookups (id int PRIMARY KEY, name text);
         INSERT INTO lookups SELECT g, 'n' || g FROM generate_series(1, 30000) g;
         ANALYZE orders; ANALYZE lookups;",
    )
    .await;
    let c = db.connect().await;
    for i in 0..5 {
        c.query("SELECT count(*) FROM orders WHERE customer = $1", &[&i]).await.unwrap();
        c.query("SELECT name FROM lookups WHERE id = $1", &[&i]).await.unwrap();
    }
    c.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    let r = run(&db, &small(), ReportKind::IndexRecommendations).await;
    assert_eq!(flagged(&r), ["public.orders"], "{:#?}", r.findings.checks);
    assert!(r.findings.checks[0].summary.contains("customer"), "{}", r.findings.checks[0].summary);

    let r = run(&db, &small(), ReportKind::CacheHit).await;
    assert_eq!(r.findings.checks.len(), 2);
    assert!(r.findings.checks.iter().all(|c| c.status != Status::Unknown), "{:#?}", r.findings.checks);
    let rc =
        ReportConfig { cache_min_blocks: 1, cache_hit_warn_pct: 100.1, cache_hit_crit_pct: 0.0, ..small() };
    let r = run(&db, &rc, ReportKind::CacheHit).await;
    assert!(r.findings.checks.iter().any(|c| c.status == Status::Warn), "{:#?}", r.findings.checks);
}

#[tokio::test]
async fn slow_queries_come_from_pg_stat_statements_of_this_database_only() {
    let db = fresh_database("rpslow").await;
    setup(&db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();").await;
    let c = db.connect().await;
    for _ in 0..3 {
        c.query("SELECT pg_sleep(0.03) AS slow_fixture", &[]).await.unwrap();
    }
    let rc = ReportConfig { slow_query_min_calls: 3, ..small() };
    let r = run(&db, &rc, ReportKind::SlowQueries).await;
    assert_eq!(r.findings.checks.len(), 1, "{:#?}", r.findings.checks);
    assert_eq!(r.findings.checks[0].status, Status::Warn);
    assert!(
        r.findings.checks[0].summary.contains("slow_fixture")
            && r.findings.checks[0].summary.contains("3 calls")
    );
    assert!(r.findings.notes[0].contains("mean_exec_time"), "{:?}", r.findings.notes);

    // A role without pg_read_all_stats sees the times of other roles' statements, not their text.
    let plain = plain_role(&db).await;
    let r = report(&tasks(&plain, &rc), ReportKind::SlowQueries, &run_now()).await.unwrap();
    assert_eq!(r.findings.checks.len(), 1, "{:#?}", r.findings.checks);
    assert!(
        r.findings.checks[0].summary.contains("(text hidden from this role)"),
        "{}",
        r.findings.checks[0].summary
    );
    let grant = format!("GRANT pg_read_all_stats TO {}", plain.postgres.user);
    assert!(
        r.findings.notes[1].contains("lacks pg_read_all_stats") && r.findings.notes[1].contains(&grant),
        "{:?}",
        r.findings.notes
    );
    drop_role(&db, &plain).await;

    // The extension missing from the database: Unknown, saying what to do.
    let off = fresh_database("rpslowoff").await;
    setup(&off, "DROP EXTENSION IF EXISTS pg_stat_statements").await;
    let r = run(&off, &rc, ReportKind::SlowQueries).await;
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
    assert!(r.findings.checks[0].summary.contains("not installed"), "{}", r.findings.checks[0].summary);
}

#[tokio::test]
async fn slow_queries_without_the_library_preloaded_are_unknown() {
    let server = tokio::task::spawn_blocking(|| {
        let mut server = kyb_testkit::ScratchServer::start("rpnopreload")?;
        // Anything but pg_stat_statements (an empty list is not accepted in a config file).
        server.stack.psql("kyb", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        server.stack.psql("kyb", "ALTER SYSTEM SET shared_preload_libraries = 'plpgsql'")?;
        server.restart().map(|()| server)
    })
    .await
    .unwrap()
    .expect("a scratch PostgreSQL server without pg_stat_statements preloaded");
    let s = &server.stack;
    let c = DbConfig {
        postgres: PgTarget {
            host: "127.0.0.1".into(),
            port: s.pg_port,
            user: s.pg_user.clone(),
            password: Some(Secret::new(s.password.clone())),
            dbname: "kyb".into(),
        },
        ..cfg(&fresh_database("rpnopreloadcfg").await)
    };
    let r = report(&tasks(&c, &small()), ReportKind::SlowQueries, &run_now()).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Unknown, "{:#?}", r.findings.checks);
    assert!(r.findings.checks[0].summary.contains("not loaded"), "{}", r.findings.checks[0].summary);
}

#[tokio::test]
async fn a_report_on_a_database_that_is_down_is_an_error_without_a_hang() {
    let db = fresh_database("rpdown").await;
    let mut c = cfg(&db);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    c.postgres.port = port;
    let started = std::time::Instant::now();
    let err = report(&tasks(&c, &small()), ReportKind::Bloat, &run_now()).await.unwrap_err();
    assert!(matches!(err, DbMaintError::Connect { .. }), "{err:?}");
    let text = kyb_core::error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; check "
        )),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Every report at once: the one error, not one per report.
    let err = reports(&tasks(&c, &small()), &ReportKind::ALL, &run_now()).await.unwrap_err();
    assert_eq!(kyb_core::error_chain(&err), text);
}

#[tokio::test]
async fn the_login_failures_name_their_cause_and_what_to_check() {
    let db = fresh_database("rplogin").await;
    let cases = [
        (
            DbConfig { postgres: PgTarget { dbname: "no_such_db".into(), ..cfg(&db).postgres }, ..cfg(&db) },
            "database \"no_such_db\" does not exist; check the configured dbname",
        ),
        (
            DbConfig {
                postgres: PgTarget { password: Some(Secret::new("wrong-pw")), ..cfg(&db).postgres },
                ..cfg(&db)
            },
            "password authentication failed for user",
        ),
    ];
    for (c, expected) in cases {
        let err = report(&tasks(&c, &small()), ReportKind::Connections, &run_now()).await.unwrap_err();
        let text = kyb_core::error_chain(&err);
        assert!(
            text.starts_with(&format!("cannot connect to PostgreSQL at {}:{}: ", db.host, db.port)),
            "{text}"
        );
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("wrong-pw"), "{text}");
    }
}

#[tokio::test]
async fn several_reports_run_in_the_order_asked() {
    let db = fresh_database("rpmany").await;
    let which = [ReportKind::Connections, ReportKind::InvalidIndexes, ReportKind::Wraparound];
    let runs = reports(&tasks(&cfg(&db), &small()), &which, &run_now()).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.report).collect::<Vec<_>>(), which);
    for run in &runs {
        let r = run
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {}", run.report.name(), kyb_core::error_chain(e)));
        assert_eq!(r.report, run.report);
    }
}

#[tokio::test]
async fn partition_indexes_are_never_advised_to_be_dropped_alone() {
    let db = fresh_database("rppart").await;
    setup(
        &db,
        "CREATE TABLE events (id int, at date, v int) PARTITION BY RANGE (at);
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
         CREATE INDEX events_v ON events (v);
         CREATE INDEX events_v_again ON events (v);
         INSERT INTO events SELECT g, date '2026-03-01' + g % 500, g FROM generate_series(1, 5000) g;",
    )
    .await;
    let rc = ReportConfig { unused_index_max_scans: 0, ..small() };
    let r = run(&db, &rc, ReportKind::UnusedIndexes).await;
    assert!(flagged(&r).is_empty(), "a partition's index cannot be dropped alone: {:#?}", r.findings.checks);
    let r = run(&db, &small(), ReportKind::DuplicateIndexes).await;
    assert_eq!(flagged(&r), ["public.events_v_again"], "reported at the parent: {:#?}", r.findings.checks);
    // Sized over its partitions: the sum of the partitions' indexes.
    let size: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT sum(pg_relation_size(relid))::int8 FROM pg_partition_tree('public.events_v_again') WHERE isleaf",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(size > 0);
    assert_eq!(size_metric(&r.findings.checks[0]), size as f64, "{}", r.findings.checks[0].summary);
}
