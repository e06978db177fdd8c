//! SQL migrations: versioned `.sql` files applied in order, each recorded in
//! `schema_migrations` with its checksum, under an advisory lock.
//!
//! A file is `<version>_<name>.sql` (`0003_add_checks_index.sql`). It runs in one transaction
//! together with its `schema_migrations` row, unless its first line is
//! `-- kyb:no-transaction`; such a file holds one statement (`CREATE INDEX CONCURRENTLY ...`),
//! since PostgreSQL runs several statements sent at once as one transaction block.

use kyb_core::{Check, Findings, PgTarget, PgTimeout, RunCtx, Status};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The advisory lock every migration run takes.
pub const MIGRATE_LOCK_KEY: i64 = 0x6b79_625f_6d69_6772;

const NO_TRANSACTION: &str = "-- kyb:no-transaction";

/// Where the migrations are and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateConfig {
    /// The database.
    pub postgres: PgTarget,
    /// The directory of `.sql` files.
    pub dir: PathBuf,
    /// Connecting and the bookkeeping queries answer within this.
    pub connect_timeout_ms: u64,
    /// How long to wait for another runner's lock before refusing.
    pub lock_wait_ms: u64,
    /// `lock_timeout` of each migration, so a busy table fails the run instead of queueing the
    /// application's queries behind it.
    pub lock_timeout_ms: u64,
    /// `statement_timeout` of each migration (0: none).
    pub statement_timeout_ms: u64,
}

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number before the first `_`.
    pub version: i64,
    /// The rest of the file name, without `.sql`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of its bytes, hex.
    pub checksum: String,
    /// It runs outside a transaction.
    pub no_transaction: bool,
    /// The SQL.
    pub sql: String,
}

/// One migration this run applied (or, in a dry run, would apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Wall time; 0 in a dry run.
    pub duration_ms: u64,
}

/// What the run did and the state afterwards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrateReport {
    /// Applied now, in order.
    pub applied: Vec<Applied>,
    /// Migrations that were already applied.
    pub already: usize,
    /// One check per migration applied (in a dry run, that would be applied), named
    /// `<version>_<name>`; `migrate` with the counts; and after a real run the checks of the
    /// result: `migrations` (latest version, failed ones) and `tables` (the table count).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(MigrateReport);

impl MigrateReport {
    /// A check per migration in `applied`, then `migrate` with the counts.
    fn count(&mut self, dry_run: bool) {
        let verb = if dry_run { "would apply" } else { "applied" };
        for a in &self.applied {
            let name = format!("{:04}_{}", a.version, a.name);
            self.findings.checks.push(Check::new(
                name,
                Status::Ok,
                format!("{verb} in {} ms", a.duration_ms),
            ));
        }
        let summary = format!("{} {verb}, {} already applied", self.applied.len(), self.already);
        self.findings.checks.push(Check::new("migrate", Status::Ok, summary));
    }
}

/// A migration run that stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The directory or a file could not be read, or a file name has no version.
    #[error("{path}: {why}")]
    Files {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The server could not be reached in time or refused the login: the message names the
    /// root cause and what to check.
    #[error(transparent)]
    Connect {
        /// The cause.
        source: kyb_core::PgConnectError,
    },
    /// A bookkeeping step did not answer in time.
    #[error(transparent)]
    Timeout(kyb_core::PgTimeout),
    /// Another runner holds the lock.
    #[error("another migration run holds the lock on {target} (waited {waited_ms} ms)")]
    LockHeld {
        /// `user@host:port/db`.
        target: String,
        /// How long this run waited.
        waited_ms: u64,
    },
    /// A bookkeeping query failed.
    #[error("query failed on {target}")]
    Query {
        /// `user@host:port/db`.
        target: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An applied migration's file changed since.
    #[error(
        "migration {version} ({path}) was applied with checksum {applied} but the file now has {now}: \
         applied migrations must not be edited; add a new one"
    )]
    Edited {
        /// Its version.
        version: i64,
        /// The file.
        path: PathBuf,
        /// The checksum recorded.
        applied: String,
        /// The file's checksum now.
        now: String,
    },
    /// An earlier run's migration failed and nobody has repaired it.
    #[error(
        "migration {version} failed in an earlier run and blocks this one: repair the database, then \
         DELETE FROM {table} WHERE version = {version} AND NOT success"
    )]
    Blocked {
        /// Its version.
        version: i64,
        /// The table that records the migrations.
        table: String,
    },
    /// A migration failed now (its failure is recorded and blocks later runs).
    #[error("migration {version} ({path}) failed{}", if *.rolled_back { "; its transaction was rolled back" } else { "" })]
    Failed {
        /// Its version.
        version: i64,
        /// The file.
        path: PathBuf,
        /// Nothing of it remains (it ran in a transaction).
        rolled_back: bool,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The migrations in `dir`, ordered by version. Two files with one version are an error.
pub fn read_migrations(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let err = |path: &Path, why: String| MigrateError::Files { path: path.to_owned(), why };
    let entries =
        std::fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read the migrations directory: {e}")))?;
    let mut out: Vec<Migration> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = file.strip_suffix(".sql") else { continue };
        let (version, name) = stem.split_once('_').unwrap_or((stem, ""));
        let version: i64 = version.parse().map_err(|_| {
            err(&path, "a migration file is named <version>_<name>.sql, the version a number".into())
        })?;
        let bytes = std::fs::read(&path).map_err(|e| err(&path, format!("cannot read: {e}")))?;
        let sql = String::from_utf8(bytes.clone()).map_err(|_| err(&path, "not UTF-8".into()))?;
        if let Some(other) = out.iter().find(|m| m.version == version) {
            return Err(err(&path, format!("version {version} is also {}", other.path.display())));
        }
        out.push(Migration {
            version,
            name: name.to_owned(),
            no_transaction: sql.lines().next().is_some_and(|l| l.trim() == NO_TRANSACTION),
            checksum: kyb_core::digest::hex(&Sha256::digest(&bytes)),
            path,
            sql,
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

impl Migration {
    /// A migration built into a program (`include_str!`), for a schema it owns.
    pub fn builtin(version: i64, name: &str, sql: &str) -> Migration {
        Migration {
            version,
            name: name.to_owned(),
            path: PathBuf::from(format!("<built-in>/{version:04}_{name}.sql")),
            checksum: kyb_core::digest::hex(&Sha256::digest(sql.as_bytes())),
            no_transaction: sql.lines().next().is_some_and(|l| l.trim() == NO_TRANSACTION),
            sql: sql.to_owned(),
        }
    }
}

/// Applies the migrations of `cfg.dir` not yet applied, in order, recorded in
/// `schema_migrations`, and checks the result. In a dry run (`ctx.dry_run`) it lists them and
/// applies none.
pub async fn migrate(cfg: &MigrateConfig, ctx: &RunCtx) -> Result<MigrateReport, MigrateError> {
    let migrations = read_migrations(&cfg.dir)?;
    apply(cfg, &migrations, "schema_migrations", ctx).await
}

/// Applies `migrations` (read from files or [`Migration::builtin`]) as [`migrate`] does,
/// recorded in `table`; a schema-qualified `table` (`kyb_maint.schema_migrations`) gets its
/// schema created first. `cfg.dir` is not read. `table` is the caller's constant, never input.
pub async fn apply(
    cfg: &MigrateConfig,
    migrations: &[Migration],
    table: &str,
    ctx: &RunCtx,
) -> Result<MigrateReport, MigrateError> {
    let t = &cfg.postgres;
    let target = t.name();
    let step = Duration::from_millis(cfg.connect_timeout_ms);
    let pg = t.client_config("kyb-update", step);
    let (mut client, conn) = tokio::time::timeout(step, pg.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| MigrateError::Connect { source: t.connect_timeout(cfg.connect_timeout_ms) })?
        .map_err(|e| MigrateError::Connect { source: t.connect_error(e) })?;
    tokio::spawn(conn);
    let query = |source| MigrateError::Query { target: target.clone(), source };

    // The bookkeeping answers within the connect deadline; a migration gets its own timeouts.
    let bookkeeping = format!("SET statement_timeout = {0}; SET lock_timeout = {0}", cfg.connect_timeout_ms);
    tokio::time::timeout(step, client.batch_execute(&bookkeeping))
        .await
        .map_err(|_| {
            MigrateError::Timeout(PgTimeout {
                what: "setting timeouts",
                target: target.clone(),
                timeout_ms: cfg.connect_timeout_ms,
            })
        })?
        .map_err(query)?;
    lock(&client, cfg, &target).await?;
    let schema = table.split_once('.').map(|(schema, _)| format!("CREATE SCHEMA IF NOT EXISTS {schema};"));
    client
        .batch_execute(&format!(
            "{}CREATE TABLE IF NOT EXISTS {table} (\
                 version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, \
                 success boolean NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), \
                 duration_ms bigint NOT NULL DEFAULT 0)",
            schema.unwrap_or_default()
        ))
        .await
        .map_err(query)?;
    let rows = client
        .query(&format!("SELECT version, checksum, success FROM {table} ORDER BY version"), &[])
        .await
        .map_err(query)?;
    if let Some(r) = rows.iter().find(|r| !r.get::<_, bool>(2)) {
        return Err(MigrateError::Blocked { version: r.get(0), table: table.to_owned() });
    }
    let applied_before: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for m in migrations {
        if let Some((_, sum)) = applied_before.iter().find(|(v, _)| *v == m.version)
            && *sum != m.checksum
        {
            return Err(MigrateError::Edited {
                version: m.version,
                path: m.path.clone(),
                applied: sum.clone(),
                now: m.checksum.clone(),
            });
        }
    }
    let pending: Vec<&Migration> =
        migrations.iter().filter(|m| !applied_before.iter().any(|(v, _)| *v == m.version)).collect();
    let mut report = MigrateReport {
        applied: Vec::new(),
        already: migrations.len() - pending.len(),
        findings: Findings::default(),
    };
    if ctx.dry_run {
        report.applied = pending
            .iter()
            .map(|m| Applied { version: m.version, name: m.name.clone(), duration_ms: 0 })
            .collect();
        report.count(true);
        return Ok(report);
    }
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            cfg.lock_timeout_ms, cfg.statement_timeout_ms
        ))
        .await
        .map_err(query)?;
    for m in pending {
        let clock = Instant::now();
        let record = &format!(
            "INSERT INTO {table} (version, name, checksum, success, duration_ms) VALUES ($1, $2, $3, $4, $5)"
        );
        let outcome = if m.no_transaction {
            client.batch_execute(&m.sql).await
        } else {
            let tx = client.transaction().await.map_err(query)?;
            match tx.batch_execute(&m.sql).await {
                Ok(()) => {
                    let ms = duration(clock);
                    tx.execute(record, &[&m.version, &m.name, &m.checksum, &true, &ms])
                        .await
                        .map_err(query)?;
                    tx.commit().await.map_err(query)?;
                    report.applied.push(Applied {
                        version: m.version,
                        name: m.name.clone(),
                        duration_ms: clock.elapsed().as_millis() as u64,
                    });
                    continue;
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        };
        let ms = duration(clock);
        match outcome {
            Ok(()) => {
                client
                    .execute(record, &[&m.version, &m.name, &m.checksum, &true, &ms])
                    .await
                    .map_err(query)?;
                report.applied.push(Applied {
                    version: m.version,
                    name: m.name.clone(),
                    duration_ms: ms as u64,
                });
            }
            Err(source) => {
                // Recorded so the next run stops here until someone looks.
                client
                    .execute(record, &[&m.version, &m.name, &m.checksum, &false, &ms])
                    .await
                    .map_err(query)?;
                return Err(MigrateError::Failed {
                    version: m.version,
                    path: m.path.clone(),
                    rolled_back: !m.no_transaction,
                    source,
                });
            }
        }
    }
    client.batch_execute(&bookkeeping).await.map_err(query)?;
    // The runbook's verification: tables present, no failed migration.
    let v = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')), \
                        (SELECT count(*) FROM {table} WHERE NOT success), \
                        (SELECT coalesce(max(version), 0) FROM {table})"
            ),
            &[],
        )
        .await
        .map_err(query)?;
    let (tables, failed, latest): (i64, i64, i64) = (v.get(0), v.get(1), v.get(2));
    report.count(false);
    report.findings.checks.push(Check::new(
        "migrations",
        if failed == 0 { Status::Ok } else { Status::Crit },
        format!(
            "{} applied now, {} before; at version {latest}; {failed} failed",
            report.applied.len(),
            report.already
        ),
    ));
    report.findings.checks.push(Check::new(
        "tables",
        Status::Ok,
        format!("{tables} tables after the migrations"),
    ));
    Ok(report)
}

fn duration(clock: Instant) -> i64 {
    i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Takes the migration lock, polling with backoff up to `lock_wait_ms`.
async fn lock(
    client: &tokio_postgres::Client,
    cfg: &MigrateConfig,
    target: &str,
) -> Result<(), MigrateError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(cfg.lock_wait_ms);
    let mut pause = Duration::from_millis(20);
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATE_LOCK_KEY])
            .await
            .map_err(|source| MigrateError::Query { target: target.to_owned(), source })?
            .get(0);
        if got {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(MigrateError::LockHeld {
                target: target.to_owned(),
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
