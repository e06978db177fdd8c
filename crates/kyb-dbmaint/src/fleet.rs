//! Database-wide work done once per period by a fleet of hosts that share one database.
//!
//! Every host runs the same flows; a task that works on the database itself (a dump, VACUUM,
//! the reports) should run once per period, not once per host. [`claim`] takes a PostgreSQL
//! advisory lock for the task and period, so hosts that start together queue behind the first,
//! then reads `kyb_maint.fleet_runs`: when another host already finished the task this period
//! with Ok or Warn, the answer is [`Claim::Done`] and the caller reports that instead of
//! repeating the work. Otherwise the caller holds the lock while it works and
//! [`FleetClaim::record`]s the outcome. A failed run does not count as done: the next host
//! tries again.

use crate::DbMaintError;
use crate::session::{DbConfig, Session};
use kyb_core::{Cancel, Status};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The first key of the two-key advisory locks the fleet takes (`kybf`); the second is the
/// hash of task and period. Apart from the one-key lock of the maintenance statements.
const FLEET_LOCK_CLASS: i32 = 0x6b79_6266;

/// Serialises the schema statements, which can race in the catalogs when run concurrently.
const SCHEMA_LOCK_KEY: i64 = 0x6b79_625f_666c_6574;

/// The record table's schema: idempotent steps, only ever appended to.
const SCHEMA_STEPS: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS kyb_maint",
    "CREATE TABLE IF NOT EXISTS kyb_maint.fleet_runs (\
         task text NOT NULL, \
         period text NOT NULL, \
         host text NOT NULL, \
         started_at timestamptz NOT NULL, \
         finished_at timestamptz NOT NULL, \
         status text NOT NULL, \
         summary text NOT NULL, \
         PRIMARY KEY (task, period))",
];

/// Who did the task this period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneBy {
    /// The host that ran it.
    pub host: String,
    /// When it finished.
    pub finished_at: OffsetDateTime,
    /// How it ended (`OK` or `WARN`).
    pub status: String,
}

/// The answer of [`claim`].
#[derive(Debug)]
pub enum Claim {
    /// Another host (or an earlier run of this one) did the task this period.
    Done(DoneBy),
    /// This run does it: the lock is held until the claim is recorded or dropped.
    Mine(Box<FleetClaim>),
}

/// The right to do a task this period, held as an advisory lock on a connection of its own.
#[derive(Debug)]
pub struct FleetClaim {
    session: Session,
    cfg: DbConfig,
    task: String,
    period: String,
    host: String,
    started_at: OffsetDateTime,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("target", &self.target).finish_non_exhaustive()
    }
}

/// Waits up to `wait` (or until `cancel`) for the advisory lock of `task` in `period` on the
/// database of `db`, then says whether it is done already. `host` is the name this host goes by.
pub async fn claim(
    db: &DbConfig,
    task: &str,
    period: &str,
    host: &str,
    wait: Duration,
    cancel: &Cancel,
) -> Result<Claim, DbMaintError> {
    let session = Session::read_only(db).await?;
    ensure_schema(&session, db).await?;
    let key = format!("{task}/{period}");
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        let got: bool = session
            .query(
                db,
                "taking the fleet lock",
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&FLEET_LOCK_CLASS, &key],
            )
            .await?[0]
            .get(0);
        if got {
            break;
        }
        if started.elapsed() >= wait || cancel.is_cancelled() {
            return Err(DbMaintError::FleetBusy {
                task: task.to_owned(),
                period: period.to_owned(),
                target: session.target.clone(),
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(pause.min(wait.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    let rows = session
        .query(
            db,
            "reading the fleet record",
            "SELECT host, finished_at, status FROM kyb_maint.fleet_runs \
             WHERE task = $1 AND period = $2 AND status IN ('OK', 'WARN')",
            &[&task, &period],
        )
        .await?;
    if let Some(row) = rows.first() {
        let done = DoneBy { host: row.get(0), finished_at: row.get(1), status: row.get(2) };
        return Ok(Claim::Done(done));
    }
    Ok(Claim::Mine(Box::new(FleetClaim {
        session,
        cfg: db.clone(),
        task: task.to_owned(),
        period: period.to_owned(),
        host: host.to_owned(),
        started_at: OffsetDateTime::now_utc(),
    })))
}

impl FleetClaim {
    /// Records how the task ended, then lets the lock go (the connection closes): the hosts
    /// waiting for it read the record next.
    pub async fn record(self, status: Status, summary: &str) -> Result<(), DbMaintError> {
        let status = status.to_string();
        self.session
            .query(
                &self.cfg,
                "recording the fleet run",
                "INSERT INTO kyb_maint.fleet_runs \
                     (task, period, host, started_at, finished_at, status, summary) \
                 VALUES ($1, $2, $3, $4, now(), $5, $6) \
                 ON CONFLICT (task, period) DO UPDATE SET host = EXCLUDED.host, \
                     started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, \
                     status = EXCLUDED.status, summary = EXCLUDED.summary",
                &[&self.task, &self.period, &self.host, &self.started_at, &status, &summary],
            )
            .await?;
        Ok(())
    }
}

async fn ensure_schema(session: &Session, db: &DbConfig) -> Result<(), DbMaintError> {
    let mut statements = String::from("BEGIN; SELECT pg_advisory_xact_lock(");
    statements.push_str(&SCHEMA_LOCK_KEY.to_string());
    statements.push_str(");");
    for step in SCHEMA_STEPS {
        statements.push_str(step);
        statements.push(';');
    }
    statements.push_str("COMMIT;");
    let step = Duration::from_millis(db.connect_timeout_ms);
    tokio::time::timeout(step, session.client.batch_execute(&statements))
        .await
        .map_err(|_| session.timeout(db, "creating the fleet record table"))?
        .map_err(|source| match source.code() {
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => DbMaintError::Privilege {
                what: "creating the fleet record table",
                target: session.target.clone(),
                remedy: format!(
                    "the role needs CREATE on the database and to own kyb_maint.fleet_runs \
                     (GRANT CREATE ON DATABASE \"{}\" TO \"{}\")",
                    db.postgres.dbname.replace('"', "\"\""),
                    db.postgres.user.replace('"', "\"\"")
                ),
                source,
            },
            _ => DbMaintError::Query {
                what: "creating the fleet record table",
                target: session.target.clone(),
                source,
            },
        })
}
