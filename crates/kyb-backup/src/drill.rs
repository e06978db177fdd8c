//! `restore_drill`: a backup is proven by restoring it. Into a scratch database that is always
//! dropped afterwards, whatever happened. What is restored is compared object by object with
//! what the backup lists.

use crate::BackupError;
use crate::create::{PgTarget, connect, target_name};
use crate::metadata::Metadata;
use crate::pgbin::{PassFile, isolate, pg_bindir};
use crate::plural;
use crate::toc::{self, PlainScan, TocEntry};
use crate::verify::{Feed, feed};
use crate::verify::{VerifyConfig, Which, verify};
use flate2::read::GzDecoder;
use kyb_core::dir::DirHandle;
use kyb_core::{Check, Findings, Gauge, Metric, RunCtx, Status, Unit, duration_ms};
use rustix::fs::OFlags;
use std::ffi::OsStr;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use time::macros::format_description;
use tokio::process::Command;

/// What [`restore_drill`] restores, and where the scratch database is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillConfig {
    /// The backup root.
    pub backup_dir: PathBuf,
    /// Which backup (usually [`Which::Latest`]).
    pub which: Which,
    /// The server to restore on; its database is used to create and drop the scratch one.
    pub postgres: PgTarget,
    /// Where pg_restore lives; found by [`pg_bindir`] when `None`.
    pub pg_bindir: Option<PathBuf>,
    /// A backup older than this fails verification.
    pub max_age_hours: u64,
    /// Deadline for verification plus restore.
    pub timeout_ms: u64,
}

/// The drill's findings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrillReport {
    /// The backup restored.
    pub backup: Option<PathBuf>,
    /// The scratch database (dropped again); empty in a dry run, which makes none.
    pub scratch_db: String,
    /// The restore's wall time: the measured recovery time.
    pub restore_ms: u64,
    /// `verify` (and any Warn findings of verification, such as `partials`), `restore` (when
    /// it succeeded, with the restore time as its `restore_time` metric), `tables`, one
    /// row-count check per recorded table, `objects`, `cleanup`. When all are Ok, the headline
    /// gives the backup restored and the measured recovery time. In a dry run, one `drill` check
    /// with the plan, which is also the one action.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(DrillReport);

/// Verifies the backup (its age judged at `ctx.now`), restores it into
/// `kyb_dr_<timestamp>_<pid>_<n>` with `pg_restore --single-transaction --exit-on-error`,
/// compares table and row counts with the metadata and every schema, extension, table, view,
/// materialized view, sequence, index, function, procedure, type, domain, constraint and trigger
/// the backup lists (`pg_restore --list`, or a plain script's headers) with the restored catalog,
/// and drops the scratch database on success, on failure and when cancelled. In a dry run it
/// reports the plan and touches nothing.
///
/// A cancel (`ctx.cancel`: Ctrl-C, say) stops it: pg_restore is killed, the scratch database is
/// dropped before this returns, and the report's `verify` or `restore` check says `cancelled`.
pub async fn restore_drill(cfg: &DrillConfig, ctx: &RunCtx) -> Result<DrillReport, BackupError> {
    if ctx.dry_run {
        return Ok(plan(cfg));
    }
    let now = ctx.now;
    let bindir = pg_bindir(cfg.pg_bindir.as_deref()).ok_or(BackupError::NoPgBinaries)?;
    let stamp =
        now.format(format_description!("[year][month][day]_[hour][minute][second]")).unwrap_or_default();
    // Unique per drill, even for two drills of one process in the same second.
    static DRILLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = DRILLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch_db = format!("kyb_dr_{stamp}_{}_{n}", std::process::id());
    let mut report = DrillReport {
        backup: None,
        scratch_db: scratch_db.clone(),
        restore_ms: 0,
        findings: Findings::default(),
    };
    let vcfg = VerifyConfig {
        backup_dir: cfg.backup_dir.clone(),
        which: cfg.which.clone(),
        max_age_hours: cfg.max_age_hours,
        pg_bindir: Some(bindir.clone()),
        timeout_ms: cfg.timeout_ms,
    };
    let verified = tokio::select! {
        v = verify(&vcfg, ctx) => v?,
        () = ctx.cancel.cancelled() => {
            let cancelled = Check::new("verify", Status::Crit, "cancelled before the restore began");
            report.findings.checks.push(cancelled);
            return Ok(report);
        }
    };
    report.backup = verified.backup.clone();
    // A Warn (partial files of killed runs beside it) says nothing against this backup.
    let failed: Vec<String> = verified
        .findings
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Crit | Status::Unknown))
        .map(|c| format!("{}: {}", c.name, c.summary))
        .collect();
    let warnings: Vec<Check> =
        verified.findings.checks.iter().filter(|c| c.status == Status::Warn).cloned().collect();
    let (Some(dir), Some(meta)) = (verified.backup.filter(|_| failed.is_empty()), verified.metadata) else {
        report.findings.checks.push(Check::new(
            "verify",
            Status::Crit,
            format!("not restored: {}", failed.join("; ")),
        ));
        report.findings.checks.extend(warnings);
        return Ok(report);
    };
    report.findings.checks.push(Check::new("verify", Status::Ok, format!("{} verified", dir.display())));
    report.findings.checks.extend(warnings);

    let admin = connect(&cfg.postgres, &cfg.postgres.dbname).await?;
    let query_err = |source| BackupError::Query { target: target_name(&cfg.postgres), source };
    // From template0 with the source's encoding and locale: nothing added to template1 can
    // collide with the restore or change the table count.
    let create = admin
        .query_one(
            "SELECT format('CREATE DATABASE %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', \
             $1::text, pg_encoding_to_char(encoding), datcollate, datctype) \
             FROM pg_database WHERE datname = current_database()",
            &[&scratch_db],
        )
        .await
        .map_err(query_err)?
        .get::<_, String>(0);
    let step = Duration::from_millis(cfg.timeout_ms);
    match tokio::time::timeout(step, admin.batch_execute(&create)).await {
        Ok(done) => done.map_err(query_err)?,
        Err(_) => return Err(BackupError::Timeout { what: "CREATE DATABASE", timeout_ms: cfg.timeout_ms }),
    }
    // From here on the scratch database exists: the guard drops it however this ends.
    let guard = DropScratch { admin: Some(admin), name: scratch_db.clone() };
    let started = Instant::now();
    let restored = tokio::select! {
        r = tokio::time::timeout(
            Duration::from_millis(cfg.timeout_ms),
            restore(&bindir, &cfg.postgres, &scratch_db, &dir, &meta),
        ) => Some(r),
        () = ctx.cancel.cancelled() => None,
    };
    report.restore_ms = duration_ms(started.elapsed());
    match restored {
        None => report.findings.checks.push(Check::new(
            "restore",
            Status::Crit,
            format!("cancelled after {} ms; pg_restore stopped", report.restore_ms),
        )),
        Some(Ok(Ok(scanned))) => {
            // The measured recovery time, also as a number for monitoring.
            let rto = report.restore_ms;
            let restored = Check::new("restore", Status::Ok, format!("restored in {rto} ms"));
            let metric = Metric::new("restore_time", rto as f64 / 1000.0, Unit::Seconds);
            let gauge = Gauge::new("kyb_maint_restore_drill_seconds", rto as f64 / 1000.0);
            report.findings.checks.push(restored.with_metric(metric).with_gauge(gauge));
            let compare = async {
                sanity(cfg, &scratch_db, &meta, &mut report.findings.checks).await;
                let listed = match scanned {
                    Some(headers) => Ok(headers),
                    None => list_toc(&bindir, &dir, &meta).await,
                };
                report.findings.checks.push(objects(cfg, &scratch_db, listed).await);
            };
            if tokio::time::timeout(step, compare).await.is_err() {
                report.findings.checks.push(Check::new(
                    "tables",
                    Status::Crit,
                    format!("table, row and object counts not done within {} ms", cfg.timeout_ms),
                ));
            }
        }
        Some(Ok(Err(why))) => report.findings.checks.push(Check::new("restore", Status::Crit, why)),
        Some(Err(_)) => report.findings.checks.push(Check::new(
            "restore",
            Status::Crit,
            format!("not done within {} ms", cfg.timeout_ms),
        )),
    }
    report.findings.checks.push(guard.drop_now().await);
    if report.findings.status() == Status::Ok {
        report.findings.headline = Some(format!(
            "restored {} in {} ms (the measured recovery time)",
            dir.display(),
            report.restore_ms
        ));
    }
    Ok(report)
}

/// A dry run's report: the drill it would run, as its one check and action.
fn plan(cfg: &DrillConfig) -> DrillReport {
    let plan = format!(
        "would restore the latest backup in {} into a scratch database kyb_dr_<time> on {}:{}, then drop it",
        cfg.backup_dir.display(),
        cfg.postgres.host,
        cfg.postgres.port
    );
    let mut findings = Findings::from_checks(vec![Check::new("drill", Status::Ok, &plan)]);
    findings.actions.push(plan);
    DrillReport { backup: None, scratch_db: String::new(), restore_ms: 0, findings }
}

/// Streams the backup into `pg_restore` (custom) or `psql` (plain), decompressing on another
/// thread; either runs as one transaction that stops at the first error. A plain script's
/// object headers are collected on the way (`Some`); a custom archive is listed apart.
async fn restore(
    bindir: &Path,
    t: &PgTarget,
    db: &str,
    dir: &Path,
    meta: &Metadata,
) -> Result<Option<Vec<TocEntry>>, String> {
    let file = DirHandle::open(dir)
        .and_then(|d| d.open_file(OsStr::new(&meta.backup_file), OFlags::RDONLY))
        .map_err(|e| format!("cannot open {}: {e}", meta.backup_file))?;
    let program = bindir.join(if meta.format == "plain" { "psql" } else { "pg_restore" });
    let mut cmd = Command::new(&program);
    if meta.format == "plain" {
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--no-password"]).args([
            "--host",
            &t.host,
            "--port",
            &t.port.to_string(),
            "--username",
            &t.user,
            "--dbname",
            db,
        ]);
    } else {
        cmd.args(["--format=custom", "--single-transaction", "--exit-on-error", "--no-owner"])
            .args(["--no-privileges", "--no-password"])
            .args(["--host", &t.host, "--port", &t.port.to_string(), "--username", &t.user, "--dbname", db]);
    }
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    cmd.stdin(reader).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let tool = program.file_name().unwrap_or_default().to_string_lossy().into_owned();
    // Kept until the child has exited: it reads the file when it connects.
    let pass = PassFile::for_target(t).map_err(|why| format!("cannot hand the password to {tool}: {why}"))?;
    isolate(cmd.as_std_mut(), pass.as_ref());
    let spawned = cmd.spawn();
    // The pipe's read end must live in the child only, so that its exit ends our writing.
    drop(cmd);
    let child = spawned.map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let gz = meta.compression == "gzip";
    let plain = meta.format == "plain";
    let feeding = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let input = BufReader::with_capacity(1 << 20, file);
        let mut input: Scanned<Box<dyn Read + Send>> = Scanned {
            inner: if gz { Box::new(GzDecoder::new(input)) } else { Box::new(input) },
            scan: plain.then(PlainScan::default),
        };
        let fed = feed(&mut input, &mut writer);
        (fed, input.scan.map(PlainScan::finish))
    });
    let out = child.wait_with_output().await.map_err(|e| format!("{}: {e}", program.display()))?;
    drop(pass);
    let (fed, scanned) = feeding.await.map_err(|e| format!("decompression thread failed: {e}"))?;
    if let Err(Feed::Input(e)) = fed {
        return Err(format!("cannot decompress {}: {e}", meta.backup_file));
    }
    if out.status.success() {
        Ok(scanned)
    } else {
        Err(format!("{tool} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A reader whose bytes also pass through a plain script's header scan.
struct Scanned<R> {
    inner: R,
    scan: Option<PlainScan>,
}

impl<R: Read> Read for Scanned<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(scan) = &mut self.scan {
            scan.scan(&buf[..n]);
        }
        Ok(n)
    }
}

/// The custom archive's table of contents: `pg_restore --list` of the decompressed stream. It
/// reads only the archive's head, so the feeding stops early, on a closed pipe.
async fn list_toc(bindir: &Path, dir: &Path, meta: &Metadata) -> Result<Vec<TocEntry>, String> {
    let file = DirHandle::open(dir)
        .and_then(|d| d.open_file(OsStr::new(&meta.backup_file), OFlags::RDONLY))
        .map_err(|e| format!("cannot open {}: {e}", meta.backup_file))?;
    let program = bindir.join("pg_restore");
    let mut cmd = Command::new(&program);
    isolate(cmd.as_std_mut(), None);
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    cmd.args(["--list", "--format=custom"])
        .stdin(reader)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    drop(cmd);
    let child = spawned.map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let gz = meta.compression == "gzip";
    let feeding = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let input = BufReader::with_capacity(1 << 20, file);
        if gz { feed(&mut GzDecoder::new(input), &mut writer) } else { feed(&mut { input }, &mut writer) }
    });
    let out = child.wait_with_output().await.map_err(|e| format!("{}: {e}", program.display()))?;
    if let Ok(Err(Feed::Input(e))) = feeding.await {
        return Err(format!("cannot decompress {}: {e}", meta.backup_file));
    }
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(toc::parse_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Every object the backup lists, of the kinds compared, is in the restored database: one
/// `objects` check naming the missing ones.
async fn objects(cfg: &DrillConfig, db: &str, listed: Result<Vec<TocEntry>, String>) -> Check {
    let entries = match listed {
        Ok(e) => e,
        Err(why) => {
            return Check::new(
                "objects",
                Status::Unknown,
                format!("cannot list the backup's objects: {why}"),
            );
        }
    };
    let client = match connect(&cfg.postgres, db).await {
        Ok(c) => c,
        Err(e) => return Check::new("objects", Status::Crit, kyb_core::error_chain(&e)),
    };
    // pg_dump's own search_path: function tags name argument types schema-qualified.
    let rows = match client.batch_execute("SET search_path = ''").await {
        Ok(()) => client.query(toc::CATALOG_SQL, &[]).await,
        Err(e) => Err(e),
    };
    let restored: Vec<(String, String)> = match rows {
        Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        Err(e) => return Check::new("objects", Status::Crit, kyb_core::error_chain(&e)),
    };
    let compared = toc::compare(&entries, &restored);
    let total = compared.total();
    if total == 0 {
        return Check::new(
            "objects",
            Status::Crit,
            "the backup lists no tables, views or other objects to compare",
        );
    }
    if compared.missing.is_empty() {
        return Check::new(
            "objects",
            Status::Ok,
            format!(
                "all {} the backup lists are restored: {}",
                plural(total, "object"),
                compared.counts_text()
            ),
        );
    }
    const SHOWN: usize = 10;
    let named: Vec<String> = compared
        .missing
        .iter()
        .take(SHOWN)
        .map(|e| format!("{} {}", toc::kind_noun(e), e.display()))
        .collect();
    let more = compared.missing.len().saturating_sub(SHOWN);
    Check::new(
        "objects",
        Status::Crit,
        format!(
            "{} of the {} the backup lists {} missing after the restore: {}{}",
            compared.missing.len(),
            plural(total, "object"),
            if compared.missing.len() == 1 { "is" } else { "are" },
            named.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ),
    )
}

/// Tables exist, and the recorded row counts match.
async fn sanity(cfg: &DrillConfig, db: &str, meta: &Metadata, checks: &mut Vec<Check>) {
    let client = match connect(&cfg.postgres, db).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::new("tables", Status::Crit, kyb_core::error_chain(&e)));
            return;
        }
    };
    // The same query as at backup time.
    let count = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0));
    match (count, meta.table_count) {
        (Ok(n), Some(want)) if n == want => checks.push(Check::new(
            "tables",
            Status::Ok,
            format!("{} restored, as at backup time", plural(n, "table")),
        )),
        (Ok(n), Some(want)) => checks.push(Check::new(
            "tables",
            Status::Crit,
            format!("{} restored, {want} at backup time", plural(n, "table")),
        )),
        // Metadata from before table counts were recorded: at least something must be there.
        (Ok(n), None) if n > 0 => {
            checks.push(Check::new("tables", Status::Ok, format!("{} restored", plural(n, "table"))))
        }
        (Ok(_), None) => checks.push(Check::new("tables", Status::Crit, "no tables restored")),
        (Err(e), _) => checks.push(Check::new("tables", Status::Crit, kyb_core::error_chain(&e))),
    }
    for t in &meta.tables {
        // The name was written by format('%I.%I') at backup time: already quoted.
        let name = format!("rows {}", t.table);
        match client.query_one(&format!("SELECT count(*) FROM {}", t.table), &[]).await {
            Ok(r) if r.get::<_, i64>(0) == t.rows => checks.push(Check::new(
                name,
                Status::Ok,
                format!("{}, as at backup time", plural(t.rows, "row")),
            )),
            Ok(r) => checks.push(Check::new(
                name,
                Status::Crit,
                format!("{} restored, {} at backup time", plural(r.get::<_, i64>(0), "row"), t.rows),
            )),
            Err(e) => checks.push(Check::new(name, Status::Crit, kyb_core::error_chain(&e))),
        }
    }
}

/// How long dropping the scratch database may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(60);

/// Drops the scratch database when told to, or (if the drill is cancelled) when dropped.
struct DropScratch {
    admin: Option<tokio_postgres::Client>,
    name: String,
}

impl DropScratch {
    async fn drop_now(mut self) -> Check {
        let admin = self.admin.take().expect("admin connection present until dropped");
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Crit when it stays: a full copy of the data left on the server needs a person.
        match tokio::time::timeout(DROP_TIMEOUT, admin.batch_execute(&sql)).await {
            Ok(Ok(())) => {
                Check::new("cleanup", Status::Ok, format!("scratch database {} dropped", self.name))
            }
            Ok(Err(e)) => Check::new(
                "cleanup",
                Status::Crit,
                format!("cannot drop scratch database {}: {}", self.name, kyb_core::error_chain(&e)),
            ),
            Err(_) => Check::new(
                "cleanup",
                Status::Crit,
                format!(
                    "DROP DATABASE {} did not finish within {} s; drop it by hand",
                    self.name,
                    DROP_TIMEOUT.as_secs()
                ),
            ),
        }
    }
}

impl Drop for DropScratch {
    fn drop(&mut self) {
        let Some(admin) = self.admin.take() else { return };
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(DROP_TIMEOUT, admin.batch_execute(&sql)).await;
            });
        }
    }
}
