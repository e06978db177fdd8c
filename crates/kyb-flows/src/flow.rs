//! The flows: which tasks each one runs, and running them under the run lock.

use crate::config::Config;
use crate::report::{FlowReport, render_text};
use crate::runlog::RunLog;
use crate::security::{self, Audit};
use crate::task::{Missing, TaskError};
use kyb_core::fs::{LockError, RunLock, atomic_write, unused_path};
use kyb_core::{Check, RunCtx, Status, TaskReport, duration_ms, error_chain};
use kyb_dbmaint::ReportKind;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::Instrument;

/// A maintenance flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
}

impl Flow {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Flow::Daily => "daily",
            Flow::Weekly => "weekly",
            Flow::Monthly => "monthly",
        }
    }

    /// The tasks this flow runs, in report order.
    pub fn tasks(self) -> &'static [Task] {
        match self {
            Flow::Daily => &[
                Task::Health,
                Task::System,
                Task::MetricsSnapshot,
                Task::BackupVerify,
                Task::LogRotation,
                Task::Retention,
                Task::TempCleanup,
            ],
            Flow::Weekly => &[
                Task::Performance,
                Task::MlCheck,
                Task::Monitoring,
                Task::Security(Audit::OsUpdates),
                Task::Security(Audit::Advisories),
                Task::DbAnalyze,
                Task::DbReport(ReportKind::UnusedIndexes),
                Task::DbReport(ReportKind::DuplicateIndexes),
                Task::DbReport(ReportKind::InvalidIndexes),
                Task::DbReport(ReportKind::TableSizes),
                Task::DbReport(ReportKind::Bloat),
                Task::DbReport(ReportKind::VacuumState),
                Task::DbReport(ReportKind::TopActivity),
                Task::DbReport(ReportKind::Wraparound),
                Task::DbReport(ReportKind::Sequences),
            ],
            Flow::Monthly => &[
                Task::BackupCreate,
                Task::BackupArchive,
                Task::RestoreDrill,
                Task::BackupPrune,
                Task::DbReport(ReportKind::SlowQueries),
                Task::DbReport(ReportKind::IndexRecommendations),
                Task::DbReport(ReportKind::CacheHit),
                Task::DbVacuum,
                Task::DbCapacity,
                Task::Security(Audit::Certificates),
                Task::Security(Audit::Permissions),
                Task::Security(Audit::SecurityLogs),
            ],
        }
    }
}

/// One task a flow can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// App, PostgreSQL and Redis probes.
    Health,
    /// CPU, memory, disk, load, uptime.
    System,
    /// Save the app's `/metrics`.
    MetricsSnapshot,
    /// Today's backup exists, is intact and readable.
    BackupVerify,
    /// Rotate and compress logs.
    LogRotation,
    /// Remove rotated logs and reports past retention.
    Retention,
    /// Remove idle temp files.
    TempCleanup,
    /// Dump the database: a new, verified-on-write backup.
    BackupCreate,
    /// tar.gz the configured configuration directories, with a manifest.
    BackupArchive,
    /// Restore the latest backup into a scratch database, check it, drop it.
    RestoreDrill,
    /// Delete backups past retention, never the newest good ones.
    BackupPrune,
    /// `ANALYZE` every table.
    DbAnalyze,
    /// `VACUUM (ANALYZE)` every table, inside a maintenance window.
    DbVacuum,
    /// One read-only database report.
    DbReport(ReportKind),
    /// Record the database size; growth and disk-full forecast.
    DbCapacity,
    /// Response times, percentiles, volume and 5xx rate from `/metrics`.
    Performance,
    /// Model accuracy, trend, usage and latency from `/metrics`.
    MlCheck,
    /// Prometheus, Grafana and Alertmanager.
    Monitoring,
    /// One part of the security audit.
    Security(Audit),
}

impl Task {
    /// Name in reports and the run log.
    pub fn name(self) -> &'static str {
        match self {
            Task::Health => "health",
            Task::System => "system",
            Task::MetricsSnapshot => "metrics-snapshot",
            Task::BackupVerify => "backup-verify",
            Task::LogRotation => "log-rotation",
            Task::Retention => "retention",
            Task::TempCleanup => "temp-cleanup",
            Task::BackupCreate => "backup-create",
            Task::BackupArchive => "backup-archive",
            Task::RestoreDrill => "restore-drill",
            Task::BackupPrune => "backup-prune",
            Task::DbAnalyze => "db-analyze",
            Task::DbVacuum => "db-vacuum",
            Task::DbReport(r) => r.task_name(),
            Task::DbCapacity => "db-capacity",
            Task::Performance => "performance",
            Task::MlCheck => "ml-models",
            Task::Monitoring => "monitoring",
            Task::Security(a) => a.name(),
        }
    }

    /// What a config without this task's settings leaves out: the one place that says it. Such a
    /// task is [`TaskReport::not_configured`]: Ok, with this check and reason.
    pub fn missing(self) -> Missing {
        let (check, why) = match self {
            Task::Health => ("health", "no [app], [postgres] or [redis] configured"),
            // Both always run: [system] and the retention of reports have defaults.
            Task::System | Task::Retention => (self.name(), "not configured"),
            Task::MetricsSnapshot => ("metrics snapshot", "skipped: no [app] configured"),
            Task::Performance | Task::MlCheck => ("metrics", "no [app] configured"),
            Task::BackupVerify => ("backup", "no [paths] backup_dir configured"),
            Task::BackupPrune => ("retention", "no [paths] backup_dir configured"),
            Task::BackupCreate => ("backup", "no [paths] backup_dir and [postgres] configured"),
            Task::RestoreDrill => ("drill", "no [paths] backup_dir and [postgres] configured"),
            Task::BackupArchive => ("archive", "no [[backup.archive]] configured"),
            Task::LogRotation => ("logs", "no [[logs]] configured"),
            Task::TempCleanup => ("temp", "no [paths] temp_dir configured"),
            Task::DbAnalyze | Task::DbVacuum | Task::DbReport(_) | Task::DbCapacity => {
                ("database", "no [postgres] configured")
            }
            Task::Monitoring => ("monitoring", "no [monitoring] URLs configured"),
            Task::Security(a) => a.missing(),
        };
        Missing { check, why }
    }

    /// Runs the task's crate function `f` with its settings, timed, as a task report (see
    /// [`crate::task::run`]); without settings, [`TaskReport::not_configured`] with
    /// [`Task::missing`]'s reason. The flows run every task this way, and so do the binaries.
    pub async fn run<C: ?Sized, R: kyb_core::Report, E: TaskError>(
        self,
        cfg: Option<&C>,
        ctx: &RunCtx,
        f: impl AsyncFnOnce(&C, &RunCtx) -> Result<R, E>,
    ) -> TaskReport {
        let Some(cfg) = cfg else {
            let Missing { check, why } = self.missing();
            let report = TaskReport::not_configured(self.name(), check, why, Duration::ZERO);
            crate::task::log_outcome(&report);
            return report;
        };
        crate::task::run(self.name(), cfg, ctx, f).await
    }

    /// Whether the task works on the shared database rather than on this host: with
    /// `[flows] fleet`, such a task runs on one host per period.
    pub fn database_wide(self) -> bool {
        matches!(
            self,
            Task::BackupCreate
                | Task::RestoreDrill
                | Task::DbAnalyze
                | Task::DbVacuum
                | Task::DbReport(_)
                | Task::DbCapacity
        )
    }

    /// Whether the task stops and cleans up on Ctrl-C or SIGTERM: those that write backups.
    fn stops_on_cancel(self) -> bool {
        matches!(self, Task::BackupCreate | Task::RestoreDrill | Task::BackupPrune)
    }

    /// Tasks that change files or the database run one after another, in flow order (retention
    /// must not race the compression of the file it ages out; the drill restores the backup just
    /// made; VACUUM must not slow the dump), and so do the database reports, which read the
    /// statistics the ANALYZE before them refreshes. The rest run concurrently with them.
    fn in_sequence(self) -> bool {
        matches!(
            self,
            Task::LogRotation
                | Task::Retention
                | Task::TempCleanup
                | Task::BackupCreate
                | Task::BackupArchive
                | Task::RestoreDrill
                | Task::BackupPrune
                | Task::DbAnalyze
                | Task::DbVacuum
                | Task::DbReport(_)
                | Task::DbCapacity
        )
    }
}

/// How to run a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Change nothing: no files written, the plan shown instead.
    pub dry_run: bool,
    /// Run heavy database work (VACUUM) outside the maintenance windows too.
    pub emergency: bool,
    /// A task still running at this instant is stopped and reported Unknown.
    pub deadline: Option<Instant>,
}

impl RunOptions {
    /// The run context of a run at `now` with these options and `cfg`'s maintenance windows: how
    /// the flows and the binaries hand a run's settings to the crates' tasks.
    pub fn ctx(self, cfg: &Config, now: OffsetDateTime) -> RunCtx {
        RunCtx::new(now)
            .with_dry_run(self.dry_run)
            .with_emergency(self.emergency)
            .with_deadline(self.deadline)
            .with_window(cfg.window.state(now))
    }
}

/// A flow that could not start or could not record its result.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The flow has no tasks yet.
    #[error("the {flow} flow has no tasks yet; nothing was run")]
    NoTasks {
        /// The flow.
        flow: &'static str,
    },
    /// Another copy of the same flow is running.
    #[error("another {flow} run is already running: {source}")]
    Locked {
        /// The flow.
        flow: String,
        /// Who holds its lock.
        #[source]
        source: LockError,
    },
    /// A different flow's run held the run lock for all of `[flows] lock_wait_ms`.
    #[error(
        "another kyb-maint run held the run lock for all of [flows] lock_wait_ms ({waited_ms} ms): {source}"
    )]
    LockWait {
        /// How long this run waited.
        waited_ms: u64,
        /// Who holds the lock.
        #[source]
        source: LockError,
    },
    /// A directory could not be created.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The run log could not be opened.
    #[error("cannot open run log {path}")]
    RunLog {
        /// The log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be saved.
    #[error("cannot save report {path}")]
    SaveReport {
        /// The report file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kyb_core::fs::FsError,
    },
}

/// Runs `flow`: takes the run lock, runs its tasks (each under its own deadlines, so one hung
/// dependency does not hold up the others), logs each result to the run log, and saves the text
/// and JSON reports in the reports directory. In a dry run nothing is written and no lock is
/// taken.
pub async fn run_flow(flow: Flow, cfg: &Config, opts: RunOptions) -> Result<FlowReport, FlowError> {
    let tasks = flow.tasks();
    if tasks.is_empty() {
        return Err(FlowError::NoTasks { flow: flow.name() });
    }
    run_tasks(flow.name(), tasks, cfg, opts).await
}

/// Runs `tasks` as a flow named `name`, as [`run_flow`] does: for binaries that run a part of
/// a flow on their own schedule (`kyb-logrotate run`).
pub async fn run_tasks(
    name: &str,
    tasks: &[Task],
    cfg: &Config,
    opts: RunOptions,
) -> Result<FlowReport, FlowError> {
    let paths = &cfg.paths;
    if !opts.dry_run {
        for dir in [&paths.maintenance_dir, &paths.run_logs_dir, &paths.reports_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|source| FlowError::CreateDir { path: dir.clone(), source })?;
        }
    }
    // A dry run reads only, so it takes no lock (taking one would write the lock file).
    let _locks = if opts.dry_run { None } else { Some(take_locks(name, cfg).await?) };
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let log_path = paths.run_logs_dir.join(format!("{}-maintenance.log", name));
    let mut log = if opts.dry_run {
        RunLog::disabled()
    } else {
        RunLog::open(&log_path).map_err(|source| FlowError::RunLog { path: log_path.clone(), source })?
    };
    log.line(&format!("{} flow started{}", name, if opts.dry_run { " (dry run)" } else { "" }));
    tracing::info!(flow = name, dry_run = opts.dry_run, "flow started");
    // Each task's line goes into the run log when the task ends, stamped then.
    let log = std::sync::Mutex::new(log);
    // At error level so that it is there whatever level is asked for: every event of the flow's
    // tasks, warnings and errors included, carries the flow's name.
    let span = tracing::error_span!("flow", flow = name);

    let ctx = opts.ctx(cfg, started_at);
    // Ctrl-C and SIGTERM are caught only when a task can act on them; otherwise they end the
    // process as they always do.
    let watcher = tasks.iter().any(|t| t.stops_on_cancel()).then(|| cancel_on_shutdown(&ctx));
    let probes = futures_util::future::join_all(
        tasks.iter().filter(|t| !t.in_sequence()).map(|t| run_task(*t, name, cfg, &ctx, &log)),
    );
    let file_tasks = async {
        let mut out = Vec::new();
        for t in tasks.iter().filter(|t| t.in_sequence()) {
            // Once the run is cancelled, the tasks still waiting are not started.
            if ctx.cancel.is_cancelled() {
                let why = "not started: the run was cancelled";
                out.push(ended(TaskReport::failed(t.name(), why, Duration::ZERO), &log));
                continue;
            }
            out.push(run_task(*t, name, cfg, &ctx, &log).await);
        }
        out
    };
    let (mut reports, file_reports) = async { tokio::join!(probes, file_tasks) }.instrument(span).await;
    if let Some(w) = watcher {
        w.abort();
    }
    reports.extend(file_reports);
    say_connection_failures_once(&mut reports);
    let mut report = FlowReport::of(name.to_owned(), reports, started_at, opts.dry_run);
    report.host.clone_from(&cfg.host);
    // Before the report is saved, so the report says whether the run was recorded and the
    // alerts went out; the history first, so a history that fails is alerted on too.
    if !opts.dry_run
        && let Some(history) = &cfg.history
    {
        let span = tracing::error_span!("flow", flow = name);
        let prune = name == Flow::Monthly.name();
        let t = crate::history::record(history, &report, prune).instrument(span).await;
        let recorded = t.status == Status::Ok;
        report.add_task(ended(t, &log));
        // The daily run looks ahead over the history it just added to.
        if let Some(f) = cfg.forecast.as_ref().filter(|_| recorded && name == Flow::Daily.name()) {
            let span = tracing::error_span!("flow", flow = name);
            let t = crate::forecast::forecast(f, &cfg.host, started_at).instrument(span).await;
            report.add_task(ended(t, &log));
        }
    }
    let span = tracing::error_span!("flow", flow = name);
    if let Some(t) = crate::deliver::alerting_task(cfg, &report).instrument(span).await {
        report.add_task(ended(t, &log));
    }
    report.duration_ms = duration_ms(clock.elapsed());
    let failed = report.failed_tasks;
    let mut log = log.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    log.line(&format!(
        "{} flow finished: {} ({} of {} tasks failed) in {} ms",
        name,
        report.status,
        failed,
        report.tasks.len(),
        report.duration_ms
    ));
    let status = report.status.to_string();
    tracing::info!(
        flow = name,
        status,
        failed_tasks = failed,
        duration_ms = report.duration_ms,
        "flow finished"
    );
    if !opts.dry_run
        && let Err(e) = save_report(&mut report, &paths.reports_dir)
    {
        // The tasks ran: their results still go out on stdout, and the run fails visibly.
        let line = error_chain(&e);
        log.line(&format!("{} flow: {line}", name));
        tracing::error!(flow = name, "{line}");
        report.report_files.clear();
        report.add_task(TaskReport::failed("save-report", line, std::time::Duration::ZERO));
    }
    Ok(report)
}

/// The flow's own lock, at once (a second copy of the same flow is a schedule's mistake: it is
/// refused), then the run lock shared by every flow, waiting up to `[flows] lock_wait_ms` for a
/// different flow's run to finish.
async fn take_locks(name: &str, cfg: &Config) -> Result<(RunLock, RunLock), FlowError> {
    let own = RunLock::try_acquire(&cfg.flow_lock_path(name))
        .map_err(|source| FlowError::Locked { flow: name.to_owned(), source })?;
    let started = Instant::now();
    let deadline = started + cfg.lock_wait;
    let mut pause = Duration::from_millis(20);
    let mut said = false;
    loop {
        match RunLock::try_acquire(&cfg.lock_path()) {
            Ok(lock) => return Ok((own, lock)),
            Err(source @ LockError::Held { .. }) => {
                let now = Instant::now();
                if now >= deadline {
                    let waited_ms = duration_ms(started.elapsed());
                    return Err(FlowError::LockWait { waited_ms, source });
                }
                if !said {
                    let wait_ms = duration_ms(cfg.lock_wait);
                    tracing::info!(flow = name, wait_ms, "{source}: waiting for that run to finish");
                    said = true;
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(source) => return Err(FlowError::Locked { flow: name.to_owned(), source }),
        }
    }
}

/// A database that cannot be reached fails every task that needs it with the same error: the
/// whole of it (cause and what to check) is said on the first of those tasks, and the others
/// give the cause in short and point at it.
fn say_connection_failures_once(reports: &mut [TaskReport]) {
    let mut first: Vec<(String, String)> = Vec::new();
    for r in reports.iter_mut() {
        let [check] = r.checks.as_mut_slice() else { continue };
        if check.status == Status::Ok || !check.summary.starts_with("cannot connect to ") {
            continue;
        }
        match first.iter().find(|(said, _)| *said == check.summary) {
            None => first.push((check.summary.clone(), r.name.clone())),
            Some((said, task)) => {
                let cause = said.split_once("; ").map_or(said.as_str(), |(cause, _)| cause);
                check.summary = format!("not run: {cause}; see {task}");
                r.summary = check.summary.clone();
            }
        }
    }
}

/// Saves `<flow>-report-YYYYMMDD-HHMMSS.txt` and `.json`, and lists them in the report.
fn save_report(report: &mut FlowReport, dir: &std::path::Path) -> Result<(), FlowError> {
    let stem = format!("{}-report-{}", report.flow, stamp(report.started_at));
    let txt = unused_path(dir, &stem, ".txt");
    // The JSON copy carries the same suffix as the text one.
    let json = txt.with_extension("json");
    report.report_files = vec![txt.clone(), json.clone()];
    let save = |path: &PathBuf, bytes: &[u8]| {
        atomic_write(path, bytes, 0o640)
            .map_err(|source| FlowError::SaveReport { path: path.clone(), source })
    };
    save(&txt, render_text(report).as_bytes())?;
    let mut body = serde_json::to_vec_pretty(report).expect("reports serialize");
    body.push(b'\n');
    save(&json, &body)
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// One task of `flow` under the run's deadline, if it has one; its line goes into the run log as
/// it ends.
async fn run_task(
    task: Task,
    flow: &str,
    cfg: &Config,
    ctx: &RunCtx,
    log: &std::sync::Mutex<RunLog>,
) -> TaskReport {
    let clock = Instant::now();
    let work = once_in_fleet(task, flow, cfg, ctx);
    let report = match ctx.deadline {
        None => work.await,
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(report) => report,
            Err(_) => {
                let stopped =
                    TaskReport::failed(task.name(), "stopped at the run's deadline", clock.elapsed());
                crate::task::log_outcome(&stopped);
                stopped
            }
        },
    };
    log_line(&report, log);
    report
}

/// A report made outside [`crate::task::run`] (a task not started): logged as it is made.
fn ended(report: TaskReport, log: &std::sync::Mutex<RunLog>) -> TaskReport {
    crate::task::log_outcome(&report);
    log_line(&report, log);
    report
}

fn log_line(r: &TaskReport, log: &std::sync::Mutex<RunLog>) {
    let line = format!("{} {} ({} ms): {}", r.name, r.status, r.duration_ms, r.summary);
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).line(&line);
}

/// `task`, and with `[flows] fleet` a database-wide one only when no host has done it this
/// period (see [`kyb_dbmaint::claim`]): otherwise an Ok report of who did.
async fn once_in_fleet(task: Task, flow: &str, cfg: &Config, ctx: &RunCtx) -> TaskReport {
    let db = match &cfg.dbmaint {
        Some(db) if cfg.fleet && task.database_wide() && !ctx.dry_run => &db.db,
        _ => return task_report(task, cfg, ctx).await,
    };
    let clock = Instant::now();
    let period = period(flow, ctx.now);
    let claimed = kyb_dbmaint::claim(db, task.name(), &period, &cfg.host, cfg.lock_wait, &ctx.cancel).await;
    let report = match claimed {
        Ok(kyb_dbmaint::Claim::Mine(claim)) => {
            let mut report = task_report(task, cfg, ctx).await;
            if let Err(e) = claim.record(report.status, &report.summary).await {
                let why = format!("not recorded for the other hosts: {}", error_chain(&e));
                report.checks.push(Check::new("fleet", Status::Warn, why));
                report.status = Status::worst([report.status, Status::Warn]);
            }
            return report;
        }
        Ok(kyb_dbmaint::Claim::Done(by)) => {
            let at = by.finished_at.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC"));
            let said = format!(
                "done by host {} at {} ({}) for {period}; not repeated",
                by.host,
                at.unwrap_or_default(),
                by.status
            );
            let mut r = TaskReport::from_checks(
                task.name(),
                vec![Check::new("fleet", Status::Ok, &said)],
                clock.elapsed(),
            );
            r.summary = said;
            r
        }
        Err(e) => {
            let mut r = TaskReport::from_checks(
                task.name(),
                vec![Check::new("database", Status::Crit, error_chain(&e))],
                clock.elapsed(),
            );
            r.summary = error_chain(&e);
            r
        }
    };
    crate::task::log_outcome(&report);
    report
}

/// The period a flow's database-wide work is done once in: the ISO week of a weekly run
/// (`2026-W49`), the month of a monthly one (`2026-12`), else the day (`2026-12-02`), in UTC.
fn period(flow: &str, now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    match flow {
        "weekly" => {
            let (year, week, _) = now.to_iso_week_date();
            format!("{year}-W{week:02}")
        }
        "monthly" => format!("{}-{:02}", now.year(), u8::from(now.month())),
        _ => now.date().to_string(),
    }
}

async fn task_report(task: Task, cfg: &Config, ctx: &RunCtx) -> TaskReport {
    let backup = cfg.backup.as_ref();
    let db = cfg.dbmaint.as_ref();
    match task {
        Task::Health => task.run(cfg.health.as_ref(), ctx, kyb_health::check_all).await,
        Task::System => task.run(Some(&cfg.system), ctx, kyb_health::system_metrics).await,
        Task::MetricsSnapshot => task.run(cfg.snapshot.as_ref(), ctx, kyb_health::snapshot_metrics).await,
        Task::BackupVerify => task.run(backup.map(|b| &b.verify), ctx, kyb_backup::verify).await,
        Task::BackupCreate => task.run(backup.and_then(|b| b.create.as_ref()), ctx, kyb_backup::create).await,
        Task::BackupArchive => {
            task.run(backup.and_then(|b| b.archive.as_ref()), ctx, kyb_backup::archive).await
        }
        Task::RestoreDrill => {
            task.run(backup.and_then(|b| b.drill.as_ref()), ctx, kyb_backup::restore_drill).await
        }
        Task::BackupPrune => task.run(backup.map(|b| &b.prune), ctx, kyb_backup::prune).await,
        Task::DbAnalyze => task.run(db, ctx, kyb_dbmaint::analyze).await,
        Task::DbVacuum => task.run(db, ctx, kyb_dbmaint::vacuum_analyze).await,
        Task::DbReport(r) => task.run(db, ctx, async |c, ctx| kyb_dbmaint::report(c, r, ctx).await).await,
        Task::DbCapacity => task.run(db, ctx, kyb_dbmaint::capacity).await,
        Task::Performance => task.run(cfg.performance.as_ref(), ctx, kyb_health::performance).await,
        Task::MlCheck => task.run(cfg.ml.as_ref(), ctx, kyb_mlcheck::check_models).await,
        Task::Monitoring => task.run(cfg.monitoring.as_ref(), ctx, kyb_health::check_monitoring).await,
        Task::Security(a) => security::audit(a, cfg, ctx).await,
        Task::LogRotation => task.run(cfg.rotation.as_ref(), ctx, kyb_logrotate::rotate).await,
        Task::Retention => task.run(Some(&cfg.retention), ctx, kyb_logrotate::prune).await,
        Task::TempCleanup => task.run(cfg.cleanup.temp.as_ref(), ctx, kyb_logrotate::clean_temp).await,
    }
}

/// Cancels `ctx`'s run on Ctrl-C or SIGTERM, so that tasks that write stop and clean up; abort the
/// handle once the run is over.
pub fn cancel_on_shutdown(ctx: &RunCtx) -> tokio::task::JoinHandle<()> {
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    })
}

/// Completes on Ctrl-C or SIGTERM, so that a drill can drop its scratch database on the way out.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Database-wide work is shared per day, ISO week or month, in UTC.
    #[test]
    fn a_flows_period_is_its_day_iso_week_or_month() {
        let at = time::macros::datetime!(2027-01-01 00:30 +02:00);
        assert_eq!(period("daily", at), "2026-12-31");
        assert_eq!(period("weekly", at), "2026-W53");
        assert_eq!(period("monthly", at), "2026-12");
        assert_eq!(period("logrotate", time::macros::datetime!(2026-12-02 10:00 UTC)), "2026-12-02");
    }

    /// With only `[paths]`, every task but the two that always run has nothing to do: each says
    /// so the one way, Ok with `Task::missing`'s check and reason.
    #[tokio::test]
    async fn every_task_left_out_of_the_config_is_ok_and_says_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[paths]\nmaintenance_dir = \"m\"\n[security]\nos_updates = false\n";
        let cfg = crate::config::parse(text, &dir.path().join("kyb-maint.toml")).unwrap();
        let ctx = RunOptions { dry_run: true, ..RunOptions::default() }.ctx(&cfg, OffsetDateTime::now_utc());
        let tasks = [Flow::Daily, Flow::Weekly, Flow::Monthly].iter().flat_map(|f| f.tasks());
        let mut seen = 0;
        for task in tasks.filter(|t| !matches!(t, Task::System | Task::Retention)) {
            let t = task_report(*task, &cfg, &ctx).await;
            let Missing { check, why } = task.missing();
            assert_eq!((t.status, t.summary.as_str()), (Status::Ok, why), "{}", t.name);
            assert_eq!((t.checks.len(), t.checks[0].name.as_str()), (1, check), "{}", t.name);
            seen += 1;
        }
        assert_eq!(seen, 32);
    }

    /// Each task's run-log line is written when the task ends: a quick task's before a slow
    /// one's, each with its own time, not all at the end of the flow.
    #[tokio::test]
    async fn run_log_lines_are_written_as_tasks_end() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[paths]\nmaintenance_dir = \"m\"\n[system]\ncpu_sample_ms = 2500\n";
        let cfg = crate::config::parse(text, &dir.path().join("kyb-maint.toml")).unwrap();
        run_tasks("test", &[Task::System, Task::Health], &cfg, RunOptions::default()).await.unwrap();
        let log = std::fs::read_to_string(dir.path().join("m/logs/test-maintenance.log")).unwrap();
        let stamp_of = |task: &str| {
            let line = log.lines().find(|l| l.contains(&format!("] {task} "))).expect(task);
            let at = time::PrimitiveDateTime::parse(
                &line[1..20],
                format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
            );
            (log.find(line).unwrap(), at.unwrap())
        };
        let (health_at, health_time) = stamp_of("health");
        let (system_at, system_time) = stamp_of("system");
        assert!(health_at < system_at, "{log}");
        assert!(system_time - health_time >= time::Duration::seconds(1), "{log}");
    }

    /// A different run holding the run lock is waited for up to `[flows] lock_wait_ms`, then the
    /// flow gives up saying so; the same flow's lock held is refused at once.
    #[tokio::test]
    async fn a_flow_waits_its_lock_wait_for_another_run_and_refuses_its_own_twin() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[paths]\nmaintenance_dir = \"m\"\n[flows]\nlock_wait_ms = 300\n";
        let cfg = crate::config::parse(text, &dir.path().join("kyb-maint.toml")).unwrap();
        std::fs::create_dir_all(&cfg.paths.maintenance_dir).unwrap();
        let other = RunLock::try_acquire(&cfg.lock_path()).unwrap();
        let started = Instant::now();
        let err = run_tasks("test", &[Task::Health], &cfg, RunOptions::default()).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(matches!(err, FlowError::LockWait { .. }), "{err}");
        assert!(err.to_string().contains("lock_wait_ms (3"), "{err}");
        drop(other);
        let twin = RunLock::try_acquire(&cfg.flow_lock_path("test")).unwrap();
        let started = Instant::now();
        let err = run_tasks("test", &[Task::Health], &cfg, RunOptions::default()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(err.to_string().starts_with("another test run is already running"), "{err}");
        drop(twin);
        run_tasks("test", &[Task::Health], &cfg, RunOptions::default()).await.unwrap();
    }

    #[tokio::test]
    async fn a_task_still_running_at_the_deadline_is_stopped_and_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[paths]\nmaintenance_dir = \"m\"\n[system]\ncpu_sample_ms = 10000\n";
        let cfg = crate::config::parse(text, &dir.path().join("kyb-maint.toml")).unwrap();
        // The CPU figure takes ten seconds to sample; the run has fifty milliseconds.
        let deadline = Instant::now() + Duration::from_millis(50);
        let opts = RunOptions { dry_run: true, deadline: Some(deadline), ..RunOptions::default() };
        let started = Instant::now();
        let report = run_tasks("test", &[Task::System], &cfg, opts).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let task = &report.tasks[0];
        assert_eq!((task.status, task.summary.as_str()), (Status::Unknown, "stopped at the run's deadline"));
        // Without a deadline nothing is cut short: a flow's tasks keep their own deadlines.
        assert_eq!(RunOptions::default().deadline, None);
    }
}
