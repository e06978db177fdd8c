//! `create`: pg_dump streamed through SHA-256 into a `.partial` file, published by rename.

use crate::BackupError;
use crate::metadata::{Metadata, TableRows};
use crate::pgbin::{major_version, pg_bindir};
use kyb_core::fs::{atomic_write, create_new};
use kyb_core::{Secret, duration_ms};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The database to dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Password, handed to pg_dump in its environment (never on its command line).
    pub password: Option<Secret>,
    /// Database.
    pub dbname: String,
}

/// What [`create`] dumps and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateConfig {
    /// Backups go to `<backup_dir>/full/backup_YYYYMMDD_HHMMSS/`.
    pub backup_dir: PathBuf,
    /// The database.
    pub postgres: PgTarget,
    /// Where pg_dump lives; found by [`pg_bindir`] when `None`.
    pub pg_bindir: Option<PathBuf>,
    /// Deadline for the whole backup.
    pub timeout_ms: u64,
    /// How long pg_dump waits for a table lock before failing (`--lock-wait-timeout`), so a
    /// long-held lock fails the backup instead of stalling it.
    pub lock_wait_timeout_ms: u64,
}

/// A finished backup.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateReport {
    /// The backup's directory.
    pub dir: PathBuf,
    /// Its metadata, as written.
    pub metadata: Metadata,
}

const DUMP_FILE: &str = "database.dump";

/// Dumps the database. On any failure nothing that looks like a backup is left: the `.partial`
/// file and the new directory are removed, and earlier backups are not touched.
pub async fn create(cfg: &CreateConfig, now: OffsetDateTime) -> Result<CreateReport, BackupError> {
    let timeout_ms = cfg.timeout_ms;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), create_inner(cfg, now)).await {
        Ok(result) => result,
        Err(_) => Err(BackupError::Timeout { what: "the backup", timeout_ms }),
    }
}

async fn create_inner(cfg: &CreateConfig, now: OffsetDateTime) -> Result<CreateReport, BackupError> {
    let bindir = pg_bindir(cfg.pg_bindir.as_deref()).ok_or(BackupError::NoPgBinaries)?;
    let pg_dump = bindir.join("pg_dump");
    let version = Command::new(&pg_dump).arg("--version").output().await.map_err(|e| BackupError::Dump {
        status: "not started".to_owned(),
        stderr: format!("{}: {e}", pg_dump.display()),
    })?;
    let pg_dump_version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let (server_version, server_major, tables) = inspect(cfg).await?;
    let dump_major = major_version(&pg_dump_version).unwrap_or(0);
    if dump_major < server_major {
        return Err(BackupError::PgDumpTooOld { pg_dump: dump_major, server: server_major });
    }

    let dir = new_backup_dir(&cfg.backup_dir, now)?;
    let started = Instant::now();
    let result = dump(&pg_dump, cfg, &dir).await;
    let (checksum, size_bytes) = match result {
        Ok(done) => done,
        Err(e) => {
            // Nothing half-made may look like a backup.
            let _ = std::fs::remove_file(dir.join(format!("{DUMP_FILE}.partial")));
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    let finished = OffsetDateTime::now_utc();
    let metadata = Metadata {
        backup_file: DUMP_FILE.to_owned(),
        checksum,
        format: "custom".to_owned(),
        size_bytes,
        database: cfg.postgres.dbname.clone(),
        server_version,
        pg_dump_version,
        started_at: now.format(&Rfc3339).unwrap_or_default(),
        finished_at: finished.format(&Rfc3339).unwrap_or_default(),
        duration_ms: duration_ms(started.elapsed()),
        tables,
    };
    let path = dir.join("backup_metadata.json");
    let mut json = serde_json::to_vec_pretty(&metadata).expect("metadata serializes");
    json.push(b'\n');
    atomic_write(&path, &json, 0o640)
        .map_err(|e| BackupError::Write { path, source: std::io::Error::other(e) })?;
    Ok(CreateReport { dir, metadata })
}

/// Server version and the exact row counts of the ten largest tables. A count that cannot be
/// had within the lock wait timeout is left out (pg_dump then meets the same lock and says so).
async fn inspect(cfg: &CreateConfig) -> Result<(String, u32, Vec<TableRows>), BackupError> {
    let t = &cfg.postgres;
    let target = target_name(t);
    let query_err = |source| BackupError::Query { target: target.clone(), source };
    let client = connect(t, &t.dbname).await?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            cfg.lock_wait_timeout_ms, cfg.timeout_ms
        ))
        .await
        .map_err(query_err)?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(query_err)?;
    let version: String = row.get(0);
    let major = u32::try_from(row.get::<_, i32>(1) / 10_000).unwrap_or(0);
    // format('%I.%I') quotes the names, so the count query below is safe to build.
    let largest = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 10",
            &[],
        )
        .await
        // Sizing needs a share lock on each table: under someone's exclusive lock this gives
        // up, and pg_dump, meeting the same lock, reports it.
        .unwrap_or_default();
    let mut tables = Vec::new();
    for r in largest {
        let table: String = r.get(0);
        if let Ok(row) = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await {
            tables.push(TableRows { table, rows: row.get(0) });
        }
    }
    Ok((version, major, tables))
}

/// `user@host:port/db`, for messages.
pub(crate) fn target_name(t: &PgTarget) -> String {
    format!("{}@{}:{}/{}", t.user, t.host, t.port, t.dbname)
}

/// A connection to `dbname` on `t`'s server.
pub(crate) async fn connect(t: &PgTarget, dbname: &str) -> Result<tokio_postgres::Client, BackupError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&t.host).port(t.port).user(&t.user).dbname(dbname).application_name("kyb-backup");
    if let Some(pw) = &t.password {
        pg.password(pw.expose());
    }
    let (client, conn) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|source| BackupError::Query { target: target_name(t), source })?;
    tokio::spawn(conn);
    Ok(client)
}

/// `<backup_dir>/full/backup_YYYYMMDD_HHMMSS` (with `_N` when taken), created empty.
fn new_backup_dir(backup_dir: &Path, now: OffsetDateTime) -> Result<PathBuf, BackupError> {
    let full = backup_dir.join("full");
    std::fs::create_dir_all(&full).map_err(|source| BackupError::Write { path: full.clone(), source })?;
    let stamp = now
        .format(format_description!("[year][month][day]_[hour][minute][second]"))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    for n in 0..1000 {
        let name = if n == 0 { format!("backup_{stamp}") } else { format!("backup_{stamp}_{n}") };
        let dir = full.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BackupError::Write { path: dir, source }),
        }
    }
    Err(BackupError::Write { path: full, source: std::io::Error::other("no free backup directory name") })
}

/// Runs pg_dump into `dir/database.dump.partial`, hashing as it writes; on success renames it
/// to `database.dump`. Returns the sha256 and size.
async fn dump(pg_dump: &Path, cfg: &CreateConfig, dir: &Path) -> Result<(String, u64), BackupError> {
    let t = &cfg.postgres;
    let partial = dir.join(format!("{DUMP_FILE}.partial"));
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Write { path, source }
    };
    let file = create_new(&partial, 0o600).map_err(write_err(&partial))?;
    let mut out = tokio::fs::File::from_std(file);
    let mut cmd = Command::new(pg_dump);
    cmd.args(["--format=custom", "--no-password", "--host", &t.host, "--port", &t.port.to_string()])
        .args(["--username", &t.user, "--dbname", &t.dbname])
        .arg(format!("--lock-wait-timeout={}", cfg.lock_wait_timeout_ms))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(pw) = &t.password {
        cmd.env("PGPASSWORD", pw.expose());
    }
    let mut child = cmd.spawn().map_err(|e| BackupError::Dump {
        status: "not started".to_owned(),
        stderr: format!("{}: {e}", pg_dump.display()),
    })?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stdout.read(&mut buf).await.map_err(write_err(&partial))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).await.map_err(write_err(&partial))?;
        size += n as u64;
    }
    let status = child.wait().await.map_err(write_err(&partial))?;
    let stderr = errors.await.unwrap_or_default();
    if !status.success() {
        return Err(BackupError::Dump { status: status.to_string(), stderr: stderr.trim().to_owned() });
    }
    out.sync_all().await.map_err(write_err(&partial))?;
    drop(out);
    let done = dir.join(DUMP_FILE);
    std::fs::rename(&partial, &done).map_err(write_err(&done))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_err(dir))?;
    let checksum = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((checksum, size))
}
