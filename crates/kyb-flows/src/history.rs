//! The run history in PostgreSQL: every flow run, its tasks, their checks and the checks'
//! numbers as rows in schema `kyb_maint` (created and upgraded by kyb-update's migration
//! runner), so runs can be listed and any number charted over time.
//!
//! Nothing is lost when the history cannot be written: the run goes to a local spool (JSON
//! lines, `<maintenance_dir>/history-spool.jsonl`) and the next run that reaches the database
//! flushes it. A run is keyed by flow, host and start, so a spooled run flushed twice is one run.

use crate::report::FlowReport;
use kyb_core::{Check, PgTarget, Status, TaskReport, error_chain};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_postgres::Client;

/// The name of the task that reports the recording.
pub const TASK: &str = "history";

/// The table kyb-update's runner records the history schema's migrations in.
const MIGRATIONS_TABLE: &str = "kyb_maint.schema_migrations";

/// The history schema, oldest first; a later version appends and never edits.
fn migrations() -> Vec<kyb_update::Migration> {
    vec![kyb_update::Migration::builtin(1, "run_history", include_str!("history/0001_run_history.sql"))]
}

/// `[history]`: whether and how long the flows keep their runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// Record every flow run (not dry runs) in the `[postgres]` database, schema `kyb_maint`.
    /// The role needs CREATE on the database for the first run; without it each run is Warn
    /// and waits in the spool.
    pub enabled: bool,
    /// Runs older than this many days are deleted by the monthly flow (1 to 36500).
    #[schemars(range(min = 1, max = 36500))]
    pub keep_days: u32,
}

impl Default for HistorySection {
    fn default() -> HistorySection {
        HistorySection { enabled: true, keep_days: 400 }
    }
}

impl HistorySection {
    /// Refuses a retention outside 1 to 36500 days.
    pub fn validate(&self) -> Result<(), kyb_core::config::FieldError> {
        if !(1..=36_500).contains(&self.keep_days) {
            let why = format!("must be between 1 and 36500 days, got {}", self.keep_days);
            return Err(kyb_core::config::FieldError::new("keep_days", why));
        }
        Ok(())
    }
}

/// Where the history goes: `[history]` resolved against `[postgres]` and `[paths]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The database.
    pub postgres: PgTarget,
    /// Connecting, and each statement, must answer within this.
    pub timeout_ms: u64,
    /// How many days of runs the monthly flow keeps.
    pub keep_days: u32,
    /// The local spool of runs not yet in the database.
    pub spool: PathBuf,
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The server could not be reached or refused the login.
    #[error(transparent)]
    Connect(kyb_core::PgConnectError),
    /// A step did not answer in time.
    #[error("{what} on {target} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The step.
        what: &'static str,
        /// `user@host:port/db`.
        target: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// A statement failed.
    #[error("{what} failed on {target}")]
    Query {
        /// The step.
        what: &'static str,
        /// `user@host:port/db`.
        target: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The schema could not be created or brought up to date.
    #[error("{}", schema_message(.source))]
    Schema {
        /// The cause.
        #[source]
        source: kyb_update::MigrateError,
    },
    /// The spool could not be read or written.
    #[error("spool {path}")]
    Spool {
        /// The spool file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn schema_message(e: &kyb_update::MigrateError) -> String {
    let denied = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    if denied {
        "the role may not create the history tables in schema kyb_maint: GRANT CREATE ON DATABASE \
         to it for the first run (or create the schema as its owner)"
            .into()
    } else {
        "cannot create or update the history tables".into()
    }
}

/// Records `report` (and flushes the spool first), deleting runs older than `keep_days` when
/// `prune`; when the database cannot take it, spools it. The outcome is the `history` task:
/// Ok when recorded, Warn when spooled, Crit when it could not even be spooled. The caller logs
/// it.
pub(crate) async fn record(cfg: &HistoryConfig, report: &FlowReport, prune: bool) -> TaskReport {
    let clock = Instant::now();
    tracing::info!(task = TASK, "task started");
    let check = match store(cfg, report, prune).await {
        Ok(done) => Check::new("history", Status::Ok, done),
        Err(e) => {
            let why = error_chain(&e);
            match spool(&cfg.spool, report) {
                Ok(waiting) => Check::new(
                    "history",
                    Status::Warn,
                    format!(
                        "not recorded: {why}; kept in {} ({waiting} run(s) waiting), for the next run to flush",
                        cfg.spool.display()
                    ),
                ),
                Err(se) => Check::new(
                    "history",
                    Status::Crit,
                    format!("not recorded ({why}) and not spooled: {}", error_chain(&se)),
                ),
            }
        }
    };
    let mut task = TaskReport::from_checks(TASK, vec![check], clock.elapsed());
    task.summary.clone_from(&task.checks[0].summary);
    task
}

async fn store(cfg: &HistoryConfig, report: &FlowReport, prune: bool) -> Result<String, HistoryError> {
    let mut client = connect(cfg).await?;
    ensure_schema(&client, cfg).await?;
    let flushed = flush(&mut client, cfg).await?;
    within(cfg, "recording the run", insert(&mut client, report, &cfg.postgres.name())).await??;
    let mut done = String::from("run recorded");
    if flushed > 0 {
        done.push_str(&format!("; {flushed} spooled run(s) flushed"));
    }
    if prune {
        let pruned = within(
            cfg,
            "pruning old runs",
            client.execute(
                "DELETE FROM kyb_maint.runs WHERE started_at < now() - make_interval(days => $1)",
                &[&i32::try_from(cfg.keep_days).unwrap_or(i32::MAX)],
            ),
        )
        .await?
        .map_err(query_err("pruning old runs", cfg))?;
        done.push_str(&format!("; {pruned} run(s) older than {} days deleted", cfg.keep_days));
    }
    Ok(done)
}

fn query_err(what: &'static str, cfg: &HistoryConfig) -> impl Fn(tokio_postgres::Error) -> HistoryError {
    let target = cfg.postgres.name();
    move |source| HistoryError::Query { what, target: target.clone(), source }
}

async fn within<T>(
    cfg: &HistoryConfig,
    what: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, HistoryError> {
    tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), work)
        .await
        .map_err(|_| HistoryError::Timeout { what, target: cfg.postgres.name(), timeout_ms: cfg.timeout_ms })
}

async fn connect(cfg: &HistoryConfig) -> Result<Client, HistoryError> {
    let t = &cfg.postgres;
    let step = Duration::from_millis(cfg.timeout_ms);
    let (client, conn) =
        tokio::time::timeout(step, t.client_config("kyb-maint", step).connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| HistoryError::Connect(t.connect_timeout(cfg.timeout_ms)))?
            .map_err(|e| HistoryError::Connect(t.connect_error(e)))?;
    tokio::spawn(conn);
    let settings = format!("SET statement_timeout = {0}; SET lock_timeout = {0}", cfg.timeout_ms);
    within(cfg, "setting timeouts", client.batch_execute(&settings))
        .await?
        .map_err(query_err("setting timeouts", cfg))?;
    Ok(client)
}

/// Brings the schema up to date through kyb-update's runner, which is asked only when the
/// recorded version is behind (it takes the migration lock the app's migrations share).
async fn ensure_schema(client: &Client, cfg: &HistoryConfig) -> Result<(), HistoryError> {
    let latest = migrations().last().map_or(0, |m| m.version);
    let what = "reading the history schema version";
    let exists: bool = within(
        cfg,
        what,
        client.query_one("SELECT to_regclass('kyb_maint.schema_migrations') IS NOT NULL", &[]),
    )
    .await?
    .map_err(query_err(what, cfg))?
    .get(0);
    let current: i64 = match exists {
        false => 0,
        true => within(
            cfg,
            what,
            client.query_one(
                "SELECT coalesce(max(version), 0) FROM kyb_maint.schema_migrations WHERE success",
                &[],
            ),
        )
        .await?
        .map_err(query_err(what, cfg))?
        .get(0),
    };
    if current >= latest {
        return Ok(());
    }
    let run = kyb_update::MigrateConfig {
        postgres: cfg.postgres.clone(),
        dir: PathBuf::new(),
        connect_timeout_ms: cfg.timeout_ms,
        lock_wait_ms: cfg.timeout_ms,
        lock_timeout_ms: cfg.timeout_ms,
        statement_timeout_ms: cfg.timeout_ms.saturating_mul(6),
    };
    let ctx = kyb_core::RunCtx::new(OffsetDateTime::now_utc());
    kyb_update::apply_migrations(&run, &migrations(), MIGRATIONS_TABLE, &ctx)
        .await
        .map(drop)
        .map_err(|source| HistoryError::Schema { source })
}

/// Inserts the spooled runs, then removes the spool; returns how many were new.
async fn flush(client: &mut Client, cfg: &HistoryConfig) -> Result<usize, HistoryError> {
    let spool_err = |source| HistoryError::Spool { path: cfg.spool.clone(), source };
    let text = match std::fs::read_to_string(&cfg.spool) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(spool_err(e)),
    };
    let mut flushed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // A line cut short by a crash while spooling holds no run to keep.
        let Ok(run) = serde_json::from_str::<FlowReport>(line) else {
            tracing::warn!(spool = %cfg.spool.display(), "skipping an unreadable spooled run");
            continue;
        };
        if within(cfg, "flushing the spool", insert(client, &run, &cfg.postgres.name())).await?? {
            flushed += 1;
        }
    }
    std::fs::remove_file(&cfg.spool).map_err(spool_err)?;
    Ok(flushed)
}

/// Appends `report` to the spool; returns how many runs it holds now.
fn spool(path: &Path, report: &FlowReport) -> std::io::Result<usize> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = kyb_core::fs::open_append(path, 0o600)?;
    // One write: a reader never sees half a run unless the machine stops mid-write.
    file.write_all(&line)?;
    file.sync_data()?;
    Ok(std::fs::read_to_string(path)?.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Inserts one run with its tasks, checks and numbers in one transaction; false when the run
/// (flow, host, start) is there already.
async fn insert(client: &mut Client, run: &FlowReport, target: &str) -> Result<bool, HistoryError> {
    let q = |what| move |source| HistoryError::Query { what, target: target.to_owned(), source };
    let tx = client.transaction().await.map_err(q("starting the transaction"))?;
    let id: Option<i64> = tx
        .query_opt(
            "INSERT INTO kyb_maint.runs (flow, host, started_at, duration_ms, status, failed_tasks, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (flow, host, started_at) DO NOTHING RETURNING id",
            &[
                &run.flow,
                &run.host,
                &run.started_at,
                &i64::try_from(run.duration_ms).unwrap_or(i64::MAX),
                &run.status.to_string(),
                &i32::try_from(run.failed_tasks).unwrap_or(i32::MAX),
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await
        .map_err(q("recording the run"))?
        .map(|r| r.get(0));
    let Some(id) = id else {
        return Ok(false);
    };
    let task_sql = tx
        .prepare(
            "INSERT INTO kyb_maint.task_results (run_id, task, status, duration_ms, summary) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(q("recording the tasks"))?;
    let check_sql = tx
        .prepare(
            "INSERT INTO kyb_maint.check_results (run_id, task, position, name, status, summary) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(q("recording the checks"))?;
    let metric_sql = tx
        .prepare(
            "INSERT INTO kyb_maint.metrics (run_id, task, position, name, labels, value, unit, warn, crit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(q("recording the metrics"))?;
    let mut seen = std::collections::HashSet::new();
    for t in run.tasks.iter().filter(|t| seen.insert(t.name.as_str())) {
        let ms = i64::try_from(t.duration_ms).unwrap_or(i64::MAX);
        tx.execute(&task_sql, &[&id, &t.name, &t.status.to_string(), &ms, &t.summary])
            .await
            .map_err(q("recording the tasks"))?;
        for (position, c) in (0i32..).zip(&t.checks) {
            tx.execute(&check_sql, &[&id, &t.name, &position, &c.name, &c.status.to_string(), &c.summary])
                .await
                .map_err(q("recording the checks"))?;
            let none = serde_json::Value::Object(serde_json::Map::new());
            for m in &c.metrics {
                let unit = serde_json::to_value(m.unit).ok().and_then(|u| u.as_str().map(str::to_owned));
                let unit = unit.unwrap_or_default();
                tx.execute(
                    &metric_sql,
                    &[&id, &t.name, &position, &m.label, &none, &m.value, &unit, &m.warn, &m.crit],
                )
                .await
                .map_err(q("recording the metrics"))?;
            }
            for g in &c.gauges {
                let labels: serde_json::Map<String, serde_json::Value> =
                    g.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
                let labels = serde_json::Value::Object(labels);
                let none: Option<f64> = None;
                tx.execute(
                    &metric_sql,
                    &[&id, &t.name, &position, &g.name, &labels, &g.value, &"", &none, &none],
                )
                .await
                .map_err(q("recording the metrics"))?;
            }
        }
    }
    tx.commit().await.map_err(q("committing the run"))?;
    Ok(true)
}

/// Which runs [`runs`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this flow.
    pub flow: Option<String>,
    /// With this task's result and numbers (and only runs that have it).
    pub task: Option<String>,
    /// Only runs started at or after this.
    pub since: Option<OffsetDateTime>,
    /// At most this many, the newest.
    pub limit: i64,
}

/// One recorded run, as `kyb-maint history` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// The flow.
    pub flow: String,
    /// The host.
    pub host: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Wall time.
    pub duration_ms: i64,
    /// Its status (`OK`, `WARN`, `CRIT`, `UNKNOWN`).
    pub status: String,
    /// Tasks that ended Crit or Unknown.
    pub failed_tasks: i32,
    /// The asked task's result, with `--task`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRow>,
}

/// One task's result in a run, with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    /// The task.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Its summary.
    pub summary: String,
    /// Its numbers.
    pub metrics: Vec<MetricRow>,
}

/// One number of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// The metric's label or the gauge's name.
    pub name: String,
    /// A gauge's labels.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The value.
    pub value: f64,
    /// Its unit, as Nagios perfdata spells it (empty for a gauge).
    pub unit: String,
}

/// The recorded runs `q` asks for, newest first.
pub async fn runs(cfg: &HistoryConfig, q: &HistoryQuery) -> Result<Vec<RunRow>, HistoryError> {
    let client = connect(cfg).await?;
    let what = "reading the history";
    let exists: bool =
        within(cfg, what, client.query_one("SELECT to_regclass('kyb_maint.runs') IS NOT NULL", &[]))
            .await?
            .map_err(query_err(what, cfg))?
            .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = within(
        cfg,
        what,
        client.query(
            "SELECT r.id, r.flow, r.host, r.started_at, r.duration_ms, r.status, r.failed_tasks, \
                    t.status, t.summary \
             FROM kyb_maint.runs r \
             LEFT JOIN kyb_maint.task_results t ON t.run_id = r.id AND t.task = $2 \
             WHERE ($1::text IS NULL OR r.flow = $1) \
               AND ($2::text IS NULL OR t.task IS NOT NULL) \
               AND ($3::timestamptz IS NULL OR r.started_at >= $3) \
             ORDER BY r.started_at DESC LIMIT $4",
            &[&q.flow, &q.task, &q.since, &q.limit],
        ),
    )
    .await?
    .map_err(query_err(what, cfg))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0);
        let task = match &q.task {
            Some(name) => {
                let metrics = within(
                    cfg,
                    what,
                    client.query(
                        "SELECT name, labels, value, unit FROM kyb_maint.metrics \
                         WHERE run_id = $1 AND task = $2 ORDER BY position, name",
                        &[&id, name],
                    ),
                )
                .await?
                .map_err(query_err(what, cfg))?
                .into_iter()
                .map(|m| MetricRow {
                    name: m.get(0),
                    labels: m.get::<_, serde_json::Value>(1).as_object().cloned().unwrap_or_default(),
                    value: m.get(2),
                    unit: m.get(3),
                })
                .collect();
                Some(TaskRow { name: name.clone(), status: r.get(7), summary: r.get(8), metrics })
            }
            None => None,
        };
        out.push(RunRow {
            flow: r.get(1),
            host: r.get(2),
            started_at: r.get(3),
            duration_ms: r.get(4),
            status: r.get(5),
            failed_tasks: r.get(6),
            task,
        });
    }
    Ok(out)
}

/// The rows of `sql` over the history (task, metric, series name, Unix seconds, value), for
/// the forecasts.
pub(crate) async fn series(
    cfg: &HistoryConfig,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<(String, String, String, f64, f64)>, HistoryError> {
    let client = connect(cfg).await?;
    let what = "reading the history";
    let rows = within(cfg, what, client.query(sql, params)).await?.map_err(query_err(what, cfg))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect())
}

/// How many runs wait in the spool.
pub fn spooled(cfg: &HistoryConfig) -> usize {
    std::fs::read_to_string(&cfg.spool).map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
}
