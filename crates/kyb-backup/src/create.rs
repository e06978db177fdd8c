//! `create`: pg_dump streamed through gzip and SHA-256 into a `.partial` file, published by rename.

use crate::BackupError;
use crate::metadata::{Metadata, TableRows};
use crate::partial::{self, METADATA, RunDir};
use crate::pgbin::{PassFile, isolate, major_version, pg_bindir};
pub use kyb_core::PgTarget;
use kyb_core::fs::{atomic_write, create_new};
use kyb_core::gzip::{Header, gzip};
use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit, duration_ms, human_bytes};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// How the dump is stored. Both are one gzip stream, compressed in-process on every core while
/// being hashed in the same pass.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `pg_dump -Fc -Z0`, gzipped: `database.dump.gz`, restored with
    /// `gunzip -c database.dump.gz | pg_restore -d DB`.
    #[default]
    Custom,
    /// Plain SQL, gzipped: `database.sql.gz` (the runbook's format), restored with psql.
    Plain,
}

impl Format {
    /// The stored file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Custom => "database.dump.gz",
            Format::Plain => "database.sql.gz",
        }
    }

    /// The name in metadata and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Plain => "plain",
        }
    }
}

/// What [`create`] dumps and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateConfig {
    /// Backups go to `<backup_dir>/full/backup_YYYYMMDD_HHMMSS/`.
    pub backup_dir: PathBuf,
    /// The database.
    pub postgres: PgTarget,
    /// Custom (default) or plain SQL.
    pub format: Format,
    /// gzip level, 1 (fastest) to 9.
    pub compression_level: u32,
    /// Where pg_dump lives; found by [`pg_bindir`] when `None`.
    pub pg_bindir: Option<PathBuf>,
    /// Deadline for the whole backup.
    pub timeout_ms: u64,
    /// How long pg_dump waits for a table lock before failing (`--lock-wait-timeout`), so a
    /// long-held lock fails the backup instead of stalling it.
    pub lock_wait_timeout_ms: u64,
}

/// Byte counters of a running backup, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes pg_dump has produced so far.
    pub dumped: AtomicU64,
    /// Compressed bytes written so far.
    pub written: AtomicU64,
}

/// A finished backup, or in a dry run the plan of one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CreateReport {
    /// The backup's directory; in a dry run, the one it would make.
    pub dir: PathBuf,
    /// Its metadata, as written; `None` in a dry run, which dumps nothing.
    pub metadata: Option<Metadata>,
    /// `backup`: what was dumped, with its size and duration as metrics (in a dry run, the plan,
    /// which is also the one action); then, for housekeeping done on the way, `partials` when
    /// partial files of killed runs were removed (Ok) or could not be (Warn). The artifacts are
    /// the backup file and `backup_metadata.json`.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(CreateReport);

/// Dumps the database, named after `ctx.now`; in a dry run, reports the plan and writes nothing.
/// On any failure, cancellation (`ctx.cancel`) included, nothing that looks like a backup is
/// left: pg_dump is stopped, the `.partial` file and the new directory are removed, and earlier
/// backups are not touched. The new directory is locked while it is written; partial files in
/// directories no run holds (left by a run that was killed) are removed first.
pub async fn create(cfg: &CreateConfig, ctx: &RunCtx) -> Result<CreateReport, BackupError> {
    create_with_progress(cfg, ctx, &Arc::new(Progress::default())).await
}

/// [`create`], counting bytes into `progress` as it goes.
pub async fn create_with_progress(
    cfg: &CreateConfig,
    ctx: &RunCtx,
    progress: &Arc<Progress>,
) -> Result<CreateReport, BackupError> {
    if ctx.dry_run {
        return Ok(plan(cfg, ctx.now));
    }
    let timeout_ms = cfg.timeout_ms;
    let dumping =
        tokio::time::timeout(Duration::from_millis(timeout_ms), create_inner(cfg, ctx.now, progress));
    let dumped = tokio::select! {
        dumped = dumping => dumped,
        // Dropping the run kills pg_dump, and its guard removes what was written.
        () = ctx.cancel.cancelled() => return Err(BackupError::DumpCancelled),
    };
    match dumped {
        Ok(made) => made,
        Err(_) => Err(BackupError::Timeout { what: "the backup", timeout_ms }),
    }
}

/// A dry run's report: the dump it would make, as its one check and action.
fn plan(cfg: &CreateConfig, now: OffsetDateTime) -> CreateReport {
    let plan = format!(
        "would dump {}/{} with pg_dump ({}, gzip level {}) into {}/full/backup_<time>/",
        cfg.postgres.host,
        cfg.postgres.dbname,
        cfg.format.as_str(),
        cfg.compression_level,
        cfg.backup_dir.display()
    );
    let mut findings = Findings::from_checks(vec![Check::new("backup", Status::Ok, &plan)]);
    findings.actions.push(plan);
    CreateReport { dir: cfg.backup_dir.join("full").join(dir_name(now)), metadata: None, findings }
}

/// The `backup` check of a finished backup: what was dumped, how big, how long.
fn made_check(m: &Metadata) -> Check {
    Check::new(
        "backup",
        Status::Ok,
        format!(
            "{} dump of {}: {} ({} before compression) in {} ms",
            m.format,
            m.database,
            human_bytes(m.size_bytes),
            human_bytes(m.dump_bytes),
            m.duration_ms
        ),
    )
    .with_metric(Metric::new("backup_size", m.size_bytes as f64, Unit::Bytes))
    .with_metric(Metric::new("backup_duration", m.duration_ms as f64 / 1000.0, Unit::Seconds))
}

async fn create_inner(
    cfg: &CreateConfig,
    now: OffsetDateTime,
    progress: &Arc<Progress>,
) -> Result<CreateReport, BackupError> {
    let bindir = pg_bindir(cfg.pg_bindir.as_deref()).ok_or(BackupError::NoPgBinaries)?;
    let pg_dump = bindir.join("pg_dump");
    let mut ask = Command::new(&pg_dump);
    isolate(ask.as_std_mut(), None);
    let version = ask.arg("--version").output().await.map_err(|e| BackupError::Dump {
        status: "not started".to_owned(),
        stderr: format!("{}: {e}", pg_dump.display()),
    })?;
    let pg_dump_version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let (client, server_version, server_major) = open_session(cfg).await?;
    let dump_major = major_version(&pg_dump_version).ok_or_else(|| BackupError::Dump {
        status: format!("{} --version", pg_dump.display()),
        stderr: format!("cannot tell its version from {pg_dump_version:?}"),
    })?;
    if dump_major < server_major {
        return Err(BackupError::PgDumpTooOld { pg_dump: dump_major, server: server_major });
    }

    let swept = partial::sweep(&partial::stale(&cfg.backup_dir.join("full")), false);
    let (dir, lock) = new_backup_dir(&cfg.backup_dir, now)?;
    // Until the metadata is written, the directory is removed again whatever happens.
    let mut unfinished =
        Unfinished { dir: dir.clone(), file: cfg.format.file_name(), done: false, _lock: lock };
    let started = Instant::now();
    // pg_dump and the row counts read the same exported snapshot, so the counts the drill
    // compares with are those of the data in the dump, however busy the database is. The
    // counts run while pg_dump works; the exporting transaction stays open until both are done.
    let query_err = |source| BackupError::Query { target: target_name(&cfg.postgres), source };
    let snapshot: String =
        client.query_one("SELECT pg_export_snapshot()", &[]).await.map_err(query_err)?.get(0);
    let (dumped, (table_count, tables)) =
        tokio::join!(dump(&pg_dump, cfg, &dir, now, &snapshot, progress), row_counts(&client));
    let dumped = dumped?;
    let _ = client.batch_execute("COMMIT").await;
    let finished = OffsetDateTime::now_utc();
    let metadata = Metadata {
        backup_file: cfg.format.file_name().to_owned(),
        checksum: dumped.checksum,
        format: cfg.format.as_str().to_owned(),
        compression: "gzip".to_owned(),
        size_bytes: dumped.stored_bytes,
        dump_bytes: dumped.dump_bytes,
        database: cfg.postgres.dbname.clone(),
        server_version,
        pg_dump_version,
        started_at: now.format(&Rfc3339).unwrap_or_default(),
        finished_at: finished.format(&Rfc3339).unwrap_or_default(),
        duration_ms: duration_ms(started.elapsed()),
        table_count,
        tables,
    };
    let path = dir.join(METADATA);
    let json = metadata.to_json();
    // `sha256sum -c` reads this one.
    let sums = format!("{}  {}\n", metadata.checksum, metadata.backup_file);
    let sums_path = dir.join(format!("{}.sha256", metadata.backup_file));
    atomic_write(&sums_path, sums.as_bytes(), crate::FILE_MODE)
        .map_err(|e| BackupError::Write { path: sums_path, source: std::io::Error::other(e) })?;
    atomic_write(&path, &json, crate::FILE_MODE)
        .map_err(|e| BackupError::Write { path, source: std::io::Error::other(e) })?;
    unfinished.done = true;
    // The backup first, then what was swept on the way: partial files of killed runs.
    let mut findings = Findings::from_checks(std::iter::once(made_check(&metadata)).chain(swept).collect());
    findings.artifacts = vec![dir.join(&metadata.backup_file), dir.join(METADATA)];
    Ok(CreateReport { dir, metadata: Some(metadata), findings })
}

/// A backup directory still being made: dropped before `done`, it removes what was written.
/// Its lock is released only after that (fields drop after `drop`).
struct Unfinished {
    dir: PathBuf,
    file: &'static str,
    done: bool,
    _lock: RunDir,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let names = [
            format!("{}.partial", self.file),
            self.file.to_owned(),
            format!("{}.sha256", self.file),
            METADATA.to_owned(),
        ];
        for name in names {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A session for the dump's bookkeeping: the server's version (full and major), and a
/// repeatable-read transaction begun, ready to export its snapshot.
async fn open_session(cfg: &CreateConfig) -> Result<(tokio_postgres::Client, String, u32), BackupError> {
    let t = &cfg.postgres;
    let query_err = |source| BackupError::Query { target: target_name(t), source };
    let client = connect(t, &t.dbname).await?;
    client
        .batch_execute(&format!(
            // One core for the counts: parallel scans would take the CPU pg_dump's backend needs.
            "SET lock_timeout = {}; SET statement_timeout = {}; SET max_parallel_workers_per_gather = 0; \
             SET idle_in_transaction_session_timeout = 0; \
             BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
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
    let major = u32::try_from(row.get::<_, i32>(1) / 10_000).unwrap_or(0);
    Ok((client, row.get(0), major))
}

/// The number of tables and the exact row counts of the ten largest, in the session's
/// snapshot. A query that fails (a lock not granted within the lock timeout) leaves its number
/// out; each runs under a savepoint, so one failure does not abort the transaction whose
/// snapshot pg_dump uses.
async fn row_counts(client: &tokio_postgres::Client) -> (Option<i64>, Vec<TableRows>) {
    const USER_TABLES: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't'";
    let table_count = guarded(client, &format!("SELECT count(*) {USER_TABLES}"))
        .await
        .and_then(|rows| rows.first().map(|r| r.get::<_, i64>(0)));
    // format('%I.%I') quotes the names, so the count queries below are safe to build.
    let largest = guarded(
        client,
        &format!(
            "SELECT format('%I.%I', n.nspname, c.relname) {USER_TABLES} \
             ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 10"
        ),
    )
    .await
    .unwrap_or_default();
    let mut tables = Vec::new();
    for r in largest {
        let table: String = r.get(0);
        if let Some(rows) = guarded(client, &format!("SELECT count(*) FROM {table}")).await
            && let Some(row) = rows.first()
        {
            tables.push(TableRows { table, rows: row.get(0) });
        }
    }
    (table_count, tables)
}

/// Runs `sql` under a savepoint: `None`, and the transaction still usable, when it fails.
async fn guarded(client: &tokio_postgres::Client, sql: &str) -> Option<Vec<tokio_postgres::Row>> {
    client.batch_execute("SAVEPOINT kyb_count").await.ok()?;
    match client.query(sql, &[]).await {
        Ok(rows) => {
            let _ = client.batch_execute("RELEASE SAVEPOINT kyb_count").await;
            Some(rows)
        }
        Err(_) => {
            let _ = client.batch_execute("ROLLBACK TO SAVEPOINT kyb_count").await;
            None
        }
    }
}

/// `user@host:port/db`, for messages.
pub(crate) fn target_name(t: &PgTarget) -> String {
    t.name()
}

/// A connection to `dbname` on `t`'s server.
pub(crate) async fn connect(t: &PgTarget, dbname: &str) -> Result<tokio_postgres::Client, BackupError> {
    let mut pg = t.client_config("kyb-backup", Duration::from_secs(10));
    pg.dbname(dbname);
    let (client, conn) =
        pg.connect(tokio_postgres::NoTls).await.map_err(|e| BackupError::Connect(t.connect_error(e)))?;
    tokio::spawn(conn);
    Ok(client)
}

/// `<backup_dir>/full/backup_YYYYMMDD_HHMMSS` (with `_N` when taken), created empty (mode
/// 0700) and locked by this run.
fn new_backup_dir(backup_dir: &Path, now: OffsetDateTime) -> Result<(PathBuf, RunDir), BackupError> {
    let full = backup_dir.join("full");
    std::fs::create_dir_all(&full).map_err(|source| BackupError::Write { path: full.clone(), source })?;
    let first = dir_name(now);
    for n in 0..1000 {
        let name = if n == 0 { first.clone() } else { format!("{first}_{n}") };
        let dir = full.join(name);
        match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), crate::DIR_MODE)
            .create(&dir)
        {
            Ok(()) => {
                let locked = partial::lock_new(&dir).map_err(|source| {
                    let _ = std::fs::remove_dir(&dir);
                    BackupError::Write { path: dir.clone(), source }
                })?;
                return Ok((dir, locked));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BackupError::Write { path: dir, source }),
        }
    }
    Err(BackupError::Write { path: full, source: std::io::Error::other("no free backup directory name") })
}

/// `backup_YYYYMMDD_HHMMSS` of `now`: the name a backup made then is given (unless taken).
fn dir_name(now: OffsetDateTime) -> String {
    let stamp = now
        .format(format_description!("[year][month][day]_[hour][minute][second]"))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!("backup_{stamp}")
}

/// Nice value of the compression threads.
const COMPRESS_NICE: i32 = 10;

/// What [`dump`] wrote.
struct Dumped {
    checksum: String,
    dump_bytes: u64,
    stored_bytes: u64,
}

/// Runs pg_dump into a pipe; on other threads, gzips its output on every core, hashes the
/// compressed stream and writes it to `<file>.partial`; on success fsyncs and renames it.
async fn dump(
    pg_dump: &Path,
    cfg: &CreateConfig,
    dir: &Path,
    now: OffsetDateTime,
    snapshot: &str,
    progress: &Arc<Progress>,
) -> Result<Dumped, BackupError> {
    let t = &cfg.postgres;
    let name = cfg.format.file_name();
    let partial = dir.join(format!("{name}.partial"));
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Write { path, source }
    };
    let file = create_new(&partial, crate::FILE_MODE).map_err(write_err(&partial))?;
    let (reader, writer) = std::io::pipe().map_err(write_err(&partial))?;
    // A 1 MiB pipe (the default is 64 KiB) lets pg_dump write whole blocks and wakes the reader
    // less often. Unprivileged processes may be capped lower; the default still works.
    let _ = rustix::pipe::fcntl_setpipe_size(&reader, 1 << 20);
    let mut cmd = Command::new(pg_dump);
    match cfg.format {
        Format::Custom => cmd.args(["--format=custom", "--compress=0"]),
        Format::Plain => cmd.arg("--format=plain"),
    };
    cmd.args(["--no-password", "--host", &t.host, "--port", &t.port.to_string()])
        .args(["--username", &t.user, "--dbname", &t.dbname])
        .arg(format!("--lock-wait-timeout={}", cfg.lock_wait_timeout_ms))
        .arg(format!("--snapshot={snapshot}"))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Kept until pg_dump has exited: it reads the file when it connects.
    let pass = PassFile::for_target(t).map_err(|why| BackupError::Password { tool: "pg_dump", why })?;
    isolate(cmd.as_std_mut(), pass.as_ref());
    let spawned = cmd.spawn();
    // The pipe's write end must live in pg_dump only, so that its exit ends our reading.
    drop(cmd);
    let mut child = spawned.map_err(|e| BackupError::Dump {
        status: "not started".to_owned(),
        stderr: format!("{}: {e}", pg_dump.display()),
    })?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let level = cfg.compression_level.clamp(1, 9);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let inner = name.trim_end_matches(".gz").as_bytes().to_vec();
    let mtime = u32::try_from(now.unix_timestamp()).unwrap_or(0);
    let progress = Arc::clone(progress);
    // A thread of its own, not one from tokio's pool: it lowers its priority (and its workers
    // inherit that), so the database server and pg_dump, the serial part of the pipeline, get
    // the CPU first and compression takes what is left. It cannot be raised again unprivileged,
    // hence no pool thread.
    let (done_tx, compress) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kyb-backup-gzip".to_owned())
        .spawn(move || {
            let _ = rustix::process::setpriority_process(None, COMPRESS_NICE);
            let run = || -> std::io::Result<(String, u64, u64)> {
                let (flush_tx, flush_rx) = std::sync::mpsc::sync_channel::<()>(1);
                let syncing = file.try_clone()?;
                std::thread::scope(|scope| {
                    scope.spawn(move || {
                        while flush_rx.recv().is_ok() {
                            let _ = syncing.sync_data();
                        }
                    });
                    let input = Counting { inner: reader, progress: &progress };
                    let mut out = Hashing {
                        file,
                        hasher: Sha256::new(),
                        progress: &progress,
                        unflushed: 0,
                        flush: Some(flush_tx),
                    };
                    let gzipped = gzip(input, &mut out, level, threads, &Header { name: &inner, mtime });
                    // Stops the flusher.
                    out.flush = None;
                    let (dump_bytes, stored_bytes) = gzipped?;
                    out.file.sync_all()?;
                    Ok((kyb_core::digest::hex(&out.hasher.finalize()), dump_bytes, stored_bytes))
                })
            };
            let _ = done_tx.send(run());
        })
        .map_err(write_err(&partial))?;
    let status = child.wait().await;
    drop(pass);
    let compressed = compress.await;
    let stderr = errors.await.unwrap_or_default();
    // A write failure (a full disk) also makes pg_dump fail, on a broken pipe: report the cause.
    let (checksum, dump_bytes, stored_bytes) = match compressed {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(BackupError::Write { path: partial, source: e }),
        Err(_) => {
            return Err(BackupError::Write {
                path: partial,
                source: std::io::Error::other("the compression thread died"),
            });
        }
    };
    let status = status.map_err(write_err(&partial))?;
    if !status.success() {
        return Err(BackupError::Dump { status: status.to_string(), stderr: stderr.trim().to_owned() });
    }
    let done = dir.join(name);
    std::fs::rename(&partial, &done).map_err(write_err(&done))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_err(dir))?;
    Ok(Dumped { checksum, dump_bytes, stored_bytes })
}

/// pg_dump's output, counted.
struct Counting<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.dumped.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The stored file, hashed and counted as it is written.
struct Hashing<'a> {
    file: std::fs::File,
    hasher: Sha256,
    progress: &'a Progress,
    /// Bytes written since the flusher was last woken.
    unflushed: u64,
    /// Wakes the flusher thread, which `fdatasync`s what is written so far: the final fsync
    /// then has little left to wait for.
    flush: Option<std::sync::mpsc::SyncSender<()>>,
}

/// Write-behind step: the flusher syncs after this many new bytes.
const FLUSH_EVERY: u64 = 32 << 20;

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.progress.written.fetch_add(n as u64, Ordering::Relaxed);
        self.unflushed += n as u64;
        if self.unflushed >= FLUSH_EVERY {
            self.unflushed = 0;
            // Busy flusher: skip this wake-up, the next one covers these bytes too.
            if let Some(tx) = &self.flush {
                let _ = tx.try_send(());
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
