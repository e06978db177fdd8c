//! One crate task as a task report. Every task crate exposes its tasks in one shape,
//! `async fn(&Config, &RunCtx) -> Result<Report, Error>`; [`run`] is the one place that turns
//! such a call into a timed [`TaskReport`], for the flows and the binaries alike.

use kyb_core::{Check, Report, RunCtx, Status, TaskReport, error_chain};
use std::time::Instant;

/// How a task crate's error shows in a task report. By default the task could not run: Unknown,
/// with the error's whole chain as the summary.
pub trait TaskError: std::error::Error {
    /// A finding about what the task works on instead (the database is down: Crit), when the
    /// error says something about it rather than about the task.
    fn finding(&self) -> Option<Check> {
        None
    }
}

impl TaskError for std::convert::Infallible {}
impl TaskError for kyb_backup::BackupError {}
impl TaskError for kyb_health::HealthError {}
impl TaskError for kyb_logrotate::LogrotateError {}
impl TaskError for kyb_secaudit::SecAuditError {}
impl TaskError for kyb_update::TuneError {}

impl TaskError for kyb_dbmaint::DbMaintError {
    /// The database down or another run holding its lock is a Crit finding about the database.
    fn finding(&self) -> Option<Check> {
        Some(Check::new("database", Status::Crit, error_chain(self)))
    }
}

/// Why a task has nothing to do: the check it reports and the reason, e.g. `("database", "no
/// [postgres] configured")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    /// The name of the one check the report holds.
    pub check: &'static str,
    /// What the config leaves out.
    pub why: &'static str,
}

/// Runs `task` on `cfg` in `ctx`, timed. Its report's findings become the task report; an error
/// becomes a finding or an Unknown report as [`TaskError`] says. Its start and its outcome are
/// logged as they happen (see [`log_outcome`]).
pub async fn run<C: ?Sized, R: Report, E: TaskError>(
    name: &str,
    cfg: &C,
    ctx: &RunCtx,
    task: impl AsyncFnOnce(&C, &RunCtx) -> Result<R, E>,
) -> TaskReport {
    tracing::info!(task = name, dry_run = ctx.dry_run, "task started");
    let clock = Instant::now();
    let report = match task(cfg, ctx).await {
        Ok(report) => TaskReport::from_report(name, report, clock.elapsed()),
        Err(e) => match e.finding() {
            Some(check) => {
                let mut t = TaskReport::from_checks(name, vec![check], clock.elapsed());
                t.summary = error_chain(&e);
                t
            }
            None => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
        },
    };
    log_outcome(&report);
    report
}

/// Logs a finished task at the level its status calls for: a Crit or Unknown task is an error,
/// a Warn a warning, an Ok task information. So `KYB_LOG=warn` shows exactly the tasks that need
/// a look, each when it ends.
pub fn log_outcome(t: &TaskReport) {
    let (task, status, ms) = (t.name.as_str(), t.status.to_string(), t.duration_ms);
    match t.status {
        Status::Crit | Status::Unknown => {
            tracing::error!(task, status, duration_ms = ms, "{}", t.summary);
        }
        Status::Warn => tracing::warn!(task, status, duration_ms = ms, "{}", t.summary),
        Status::Ok => tracing::info!(task, status, duration_ms = ms, "{}", t.summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyb_core::Findings;
    use time::OffsetDateTime;

    #[derive(Debug, thiserror::Error)]
    #[error("disk gone")]
    struct Gone;
    impl TaskError for Gone {}

    async fn finds(limit: &u32, ctx: &RunCtx) -> Result<Findings, Gone> {
        let mut f = Findings::from_checks(vec![Check::new("n", Status::Warn, format!("over {limit}"))]);
        if ctx.dry_run {
            f.actions.push("would trim".into());
        }
        Ok(f)
    }

    async fn fails(_: &u32, _: &RunCtx) -> Result<Findings, Gone> {
        Err(Gone)
    }

    /// What `log_outcome` writes, as one JSON line, for a task ending with `status`.
    fn logged(status: Status) -> serde_json::Value {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || Sink(std::sync::Arc::clone(&sink)))
            .finish();
        let t =
            TaskReport::from_checks("backup", vec![Check::new("age", status, "30 h")], Default::default());
        tracing::subscriber::with_default(subscriber, || log_outcome(&t));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        serde_json::from_str(text.trim()).unwrap()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_task_is_logged_at_the_level_of_its_status() {
        for (status, level) in [
            (Status::Ok, "INFO"),
            (Status::Warn, "WARN"),
            (Status::Crit, "ERROR"),
            (Status::Unknown, "ERROR"),
        ] {
            let line = logged(status);
            assert_eq!(
                (line["level"].as_str(), line["task"].as_str()),
                (Some(level), Some("backup")),
                "{line}"
            );
            assert_eq!(line["status"], status.to_string(), "{line}");
        }
    }

    #[tokio::test]
    async fn findings_and_errors_each_have_one_shape() {
        let ctx = RunCtx::new(OffsetDateTime::UNIX_EPOCH).with_dry_run(true);
        let t = run("trim", &7, &ctx, finds).await;
        assert_eq!((t.status, t.summary.as_str(), t.actions.len()), (Status::Warn, "n WARN: over 7", 1));
        let t = run("trim", &7, &ctx, fails).await;
        assert_eq!((t.status, t.summary.as_str()), (Status::Unknown, "disk gone"));
        let db = kyb_dbmaint::DbMaintError::LockHeld { target: "kyb@db:5432/kyb".into(), waited_ms: 5 };
        let t = run("db", &7, &ctx, async |_: &u32, _: &RunCtx| Err::<Findings, _>(db)).await;
        assert_eq!((t.status, t.checks[0].name.as_str()), (Status::Crit, "database"));
    }
}
