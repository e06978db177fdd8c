//! The read-only database reports: each row a [`Check`] judged against [`ReportConfig`].

mod activity;
mod indexes;
mod limits;
mod statements;
mod tables;

pub(crate) use indexes::{IndexBloat, index_bloat};
pub(crate) use tables::bloat_status;

use crate::session::{DbConfig, Session};
use crate::{DbMaintConfig, DbMaintError};
use kyb_core::{Check, Findings, RunCtx, Status, Thresholds};
use serde::Serialize;

/// One of the reports. Each looks at the configured database only: rows of other databases on
/// the same server never appear.
///
/// With the `clap` feature each is a subcommand named as in [`ReportKind::name`], its doc
/// comment the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Subcommand))]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    /// Non-unique indexes scanned at most `unused_index_max_scans` times, with at least
    /// `unused_index_min_bytes`, and the statistics reset time that bounds the counts.
    UnusedIndexes,
    /// Indexes whose columns are a leading part of another index on the same table.
    DuplicateIndexes,
    /// Indexes left invalid, e.g. by a failed `CREATE INDEX CONCURRENTLY`.
    InvalidIndexes,
    /// Estimated wasted space of tables and B-tree indexes.
    Bloat,
    /// Table sizes: total, heap, indexes, TOAST.
    TableSizes,
    /// Dead tuples and the age of the last vacuum and analyze.
    VacuumState,
    /// Transaction-ID age of the database and of each table, TOAST tables included.
    Wraparound,
    /// Sequences measured against the largest value of the column they feed.
    Sequences,
    /// Connections against `max_connections`.
    Connections,
    /// Long-running queries and sessions idle in a transaction.
    LongQueries,
    /// Buffer cache hit ratio of tables and indexes.
    CacheHit,
    /// Large tables read mostly by sequential scans: where an index may help.
    IndexRecommendations,
    /// The ten tables with the most inserts, updates and deletes.
    TopActivity,
    /// The slowest statements by mean time, from `pg_stat_statements`.
    SlowQueries,
}

impl ReportKind {
    /// Every report, in the order the binary lists them.
    pub const ALL: [ReportKind; 14] = [
        ReportKind::UnusedIndexes,
        ReportKind::DuplicateIndexes,
        ReportKind::InvalidIndexes,
        ReportKind::Bloat,
        ReportKind::TableSizes,
        ReportKind::VacuumState,
        ReportKind::Wraparound,
        ReportKind::Sequences,
        ReportKind::Connections,
        ReportKind::LongQueries,
        ReportKind::CacheHit,
        ReportKind::IndexRecommendations,
        ReportKind::TopActivity,
        ReportKind::SlowQueries,
    ];

    /// The task name in flows and run logs: `db-unused-indexes`.
    pub fn task_name(self) -> &'static str {
        match self {
            ReportKind::UnusedIndexes => "db-unused-indexes",
            ReportKind::DuplicateIndexes => "db-duplicate-indexes",
            ReportKind::InvalidIndexes => "db-invalid-indexes",
            ReportKind::Bloat => "db-bloat",
            ReportKind::TableSizes => "db-table-sizes",
            ReportKind::VacuumState => "db-vacuum-state",
            ReportKind::Wraparound => "db-wraparound",
            ReportKind::Sequences => "db-sequences",
            ReportKind::Connections => "db-connections",
            ReportKind::LongQueries => "db-long-queries",
            ReportKind::CacheHit => "db-cache-hit",
            ReportKind::IndexRecommendations => "db-index-recommendations",
            ReportKind::TopActivity => "db-top-activity",
            ReportKind::SlowQueries => "db-slow-queries",
        }
    }

    /// Kebab-case name, as the binary's subcommands and task names spell it.
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::UnusedIndexes => "unused-indexes",
            ReportKind::DuplicateIndexes => "duplicate-indexes",
            ReportKind::InvalidIndexes => "invalid-indexes",
            ReportKind::Bloat => "bloat",
            ReportKind::TableSizes => "table-sizes",
            ReportKind::VacuumState => "vacuum-state",
            ReportKind::Wraparound => "wraparound",
            ReportKind::Sequences => "sequences",
            ReportKind::Connections => "connections",
            ReportKind::LongQueries => "long-queries",
            ReportKind::CacheHit => "cache-hit",
            ReportKind::IndexRecommendations => "index-recommendations",
            ReportKind::TopActivity => "top-activity",
            ReportKind::SlowQueries => "slow-queries",
        }
    }
}

/// The levels the reports judge by: the `[dbmaint]` section's report keys ([`crate::DbMaintSection`],
/// where each is explained), as [`crate::DbMaintSection::reports`] derives them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// [`unused_index_max_scans`](crate::DbMaintSection::unused_index_max_scans).
    pub unused_index_max_scans: i64,
    /// [`unused_index_min_bytes`](crate::DbMaintSection::unused_index_min_bytes).
    pub unused_index_min_bytes: i64,
    /// [`bloat_bytes`](crate::DbMaintSection::bloat_bytes).
    pub bloat_bytes: Thresholds,
    /// [`bloat_min_pct`](crate::DbMaintSection::bloat_min_pct).
    pub bloat_min_pct: f64,
    /// [`table_limit`](crate::DbMaintSection::table_limit).
    pub table_limit: usize,
    /// [`dead_tuple_pct`](crate::DbMaintSection::dead_tuple_pct).
    pub dead_tuple_pct: Thresholds,
    /// [`dead_tuple_min`](crate::DbMaintSection::dead_tuple_min).
    pub dead_tuple_min: i64,
    /// [`stale_hours`](crate::DbMaintSection::stale_hours).
    pub stale_hours: Thresholds,
    /// [`xid_age`](crate::DbMaintSection::xid_age).
    pub xid_age: Thresholds,
    /// [`sequence_pct`](crate::DbMaintSection::sequence_pct).
    pub sequence_pct: Thresholds,
    /// [`connections_pct`](crate::DbMaintSection::connections_pct).
    pub connections_pct: Thresholds,
    /// [`query_seconds`](crate::DbMaintSection::query_seconds).
    pub query_seconds: Thresholds,
    /// [`idle_in_transaction_seconds`](crate::DbMaintSection::idle_in_transaction_seconds).
    pub idle_in_transaction_seconds: Thresholds,
    /// The `warn` level of [`cache_hit_pct`](crate::DbMaintSection::cache_hit_pct).
    pub cache_hit_warn_pct: f64,
    /// The `crit` level of [`cache_hit_pct`](crate::DbMaintSection::cache_hit_pct).
    pub cache_hit_crit_pct: f64,
    /// [`cache_min_blocks`](crate::DbMaintSection::cache_min_blocks).
    pub cache_min_blocks: i64,
    /// [`recommend_min_rows`](crate::DbMaintSection::recommend_min_rows).
    pub recommend_min_rows: i64,
    /// [`recommend_max_index_pct`](crate::DbMaintSection::recommend_max_index_pct).
    pub recommend_max_index_pct: f64,
    /// [`slow_query_ms`](crate::DbMaintSection::slow_query_ms).
    pub slow_query_ms: Thresholds,
    /// [`slow_query_min_calls`](crate::DbMaintSection::slow_query_min_calls).
    pub slow_query_min_calls: i64,
    /// [`slow_query_limit`](crate::DbMaintSection::slow_query_limit).
    pub slow_query_limit: usize,
}

impl Default for ReportConfig {
    /// The levels of the `[dbmaint]` section's defaults: the numbers are kept there.
    fn default() -> Self {
        crate::DbMaintSection::default().reports()
    }
}

/// What one report found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbReport {
    /// Which report.
    pub report: ReportKind,
    /// One row per finding, a single Ok row when there is nothing to report; as notes, what the
    /// reader needs to weigh the rows, e.g. when the statistics were last reset.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(DbReport);

impl DbReport {
    fn new(report: ReportKind, checks: Vec<Check>, notes: Vec<String>) -> DbReport {
        DbReport { report, findings: Findings { checks, notes, ..Findings::default() } }
    }
}

/// Runs one report against the database (read only; no advisory lock, so it never waits behind
/// a maintenance run). It changes nothing, so a dry run is the same run.
pub async fn report(cfg: &DbMaintConfig, which: ReportKind, _ctx: &RunCtx) -> Result<DbReport, DbMaintError> {
    let s = Session::read_only(&cfg.db).await?;
    run(&Db { s: &s, cfg: &cfg.db }, &cfg.reports, which).await
}

/// One report of [`reports`]: what it found, or why it could not run, and how long it took.
#[derive(Debug)]
pub struct ReportRun {
    /// Which report.
    pub report: ReportKind,
    /// Its findings, or why this report alone could not run (a query refused for lack of
    /// privilege, a deadline).
    pub result: Result<DbReport, DbMaintError>,
    /// How long it took.
    pub duration: std::time::Duration,
}

/// Runs several reports one after another on one connection, in the order of `which`, each as
/// [`report`] would. `Err` only when the database cannot be reached, so that is said once.
pub async fn reports(
    cfg: &DbMaintConfig,
    which: &[ReportKind],
    _ctx: &RunCtx,
) -> Result<Vec<ReportRun>, DbMaintError> {
    let s = Session::read_only(&cfg.db).await?;
    let db = Db { s: &s, cfg: &cfg.db };
    let mut out = Vec::with_capacity(which.len());
    for &report in which {
        let started = std::time::Instant::now();
        let result = run(&db, &cfg.reports, report).await;
        out.push(ReportRun { report, result, duration: started.elapsed() });
    }
    Ok(out)
}

async fn run(db: &Db<'_>, rc: &ReportConfig, which: ReportKind) -> Result<DbReport, DbMaintError> {
    match which {
        ReportKind::UnusedIndexes => indexes::unused(db, rc).await,
        ReportKind::DuplicateIndexes => indexes::duplicates(db).await,
        ReportKind::InvalidIndexes => indexes::invalid(db).await,
        ReportKind::Bloat => tables::bloat(db, rc).await,
        ReportKind::TableSizes => tables::sizes(db, rc).await,
        ReportKind::VacuumState => tables::vacuum_state(db, rc).await,
        ReportKind::Wraparound => limits::wraparound(db, rc).await,
        ReportKind::Sequences => limits::sequences(db, rc).await,
        ReportKind::Connections => limits::connections(db, rc).await,
        ReportKind::LongQueries => activity::long_queries(db, rc).await,
        ReportKind::CacheHit => activity::cache_hit(db, rc).await,
        ReportKind::IndexRecommendations => tables::recommendations(db, rc).await,
        ReportKind::TopActivity => tables::top_activity(db).await,
        ReportKind::SlowQueries => statements::slow_queries(db, rc).await,
    }
}

/// A connection and its deadlines, for the report queries.
pub(crate) struct Db<'a> {
    pub(crate) s: &'a Session,
    pub(crate) cfg: &'a DbConfig,
}

impl Db<'_> {
    pub(crate) async fn query(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DbMaintError> {
        self.s.query(self.cfg, what, sql, params).await
    }
}

/// Sessions other roles have open that this role may not see into, and the role's quoted
/// name. Without `pg_read_all_stats` a role sees only its own sessions' state, query and type.
struct Hidden {
    /// Client sessions in this database whose state and query are hidden.
    here: i64,
    /// Backends anywhere on the server whose type is hidden (client sessions among them).
    anywhere: i64,
    role: String,
}

async fn hidden_sessions(db: &Db<'_>) -> Result<Hidden, DbMaintError> {
    let rows = db
        .query(
            "counting sessions hidden from this role",
            "SELECT count(*) FILTER (WHERE datname = current_database() AND state IS NULL AND usesysid IS NOT NULL), \
                    count(*) FILTER (WHERE backend_type IS NULL), format('%I', current_user) \
             FROM pg_stat_activity",
            &[],
        )
        .await?;
    Ok(Hidden { here: rows[0].get(0), anywhere: rows[0].get(1), role: rows[0].get(2) })
}

/// What to grant `role` (quoted) so that it sees every session and statement.
fn grant_read_all_stats(role: &str) -> String {
    format!("GRANT pg_read_all_stats TO {role}")
}

/// The rows, or one Ok row saying what was looked at when nothing was found.
fn or_all_clear(checks: Vec<Check>, name: &str, clear: String) -> Vec<Check> {
    if checks.is_empty() { vec![Check::new(name, Status::Ok, clear)] } else { checks }
}

/// Status of `value` where lower is worse.
fn classify_low(value: f64, warn_below: f64, crit_below: f64) -> Status {
    if value.is_nan() {
        Status::Unknown
    } else if value < crit_below {
        Status::Crit
    } else if value < warn_below {
        Status::Warn
    } else {
        Status::Ok
    }
}

/// Schemas the reports leave out: the catalogs, other sessions' temp schemas, and kyb-maint's
/// own bookkeeping (`kyb_maint`).
const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'kyb_maint') \
     AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'";

fn human(bytes: i64) -> String {
    kyb_core::human_bytes(u64::try_from(bytes).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_kebab_case() {
        let names: std::collections::HashSet<_> = ReportKind::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), ReportKind::ALL.len());
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        for r in ReportKind::ALL {
            assert_eq!(r.task_name(), format!("db-{}", r.name()));
        }
    }

    #[test]
    fn lower_is_worse() {
        assert_eq!(classify_low(99.5, 99.0, 90.0), Status::Ok);
        assert_eq!(classify_low(95.0, 99.0, 90.0), Status::Warn);
        assert_eq!(classify_low(80.0, 99.0, 90.0), Status::Crit);
    }
}
