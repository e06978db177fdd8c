//! The report of one flow run, and its text rendering.

use kyb_core::{Status, TaskReport};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use time::OffsetDateTime;

/// The outcome of a flow run: what every task found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowReport {
    /// `daily`, `weekly` or `monthly`.
    pub flow: String,
    /// Host the flow ran on.
    pub host: String,
    /// The most severe status of the tasks: Crit over Unknown over Warn over Ok (see
    /// [`Status::worst`]), so a Crit task is never reported under an Unknown headline.
    pub status: Status,
    /// When the run started (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Tasks that ended Crit or Unknown.
    pub failed_tasks: usize,
    /// The tasks, in flow order.
    pub tasks: Vec<TaskReport>,
    /// The text and JSON copies saved in the reports directory.
    pub report_files: Vec<PathBuf>,
}

impl FlowReport {
    /// The report of one task run on its own, by a task binary (`kyb-backup create`).
    pub fn single(task: TaskReport, started_at: OffsetDateTime, dry_run: bool) -> FlowReport {
        let name = task.name.clone();
        FlowReport::of(name, vec![task], started_at, dry_run)
    }

    /// The report of tasks a binary ran itself, outside a flow (`kyb-dbmaint reports`).
    pub fn of(name: String, tasks: Vec<TaskReport>, started_at: OffsetDateTime, dry_run: bool) -> FlowReport {
        FlowReport {
            flow: name,
            host: hostname(),
            status: Status::worst(tasks.iter().map(|t| t.status)),
            started_at,
            duration_ms: tasks.iter().map(|t| t.duration_ms).max().unwrap_or(0),
            dry_run,
            failed_tasks: tasks.iter().filter(|t| t.status >= Status::Crit).count(),
            tasks,
            report_files: Vec::new(),
        }
    }

    /// Adds a task that ran after the others (delivering the alerts, saving the report), with
    /// its status counted in the run's.
    pub fn add_task(&mut self, task: TaskReport) {
        self.failed_tasks += usize::from(task.status >= Status::Crit);
        self.status = Status::worst([self.status, task.status]);
        self.tasks.push(task);
    }

    /// Exit code for flows: 0 when every task is Ok or Warn, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.status <= Status::Warn { 0 } else { 1 }
    }
}

/// The human-readable report: a header, a task table, then every check.
pub fn render_text(r: &FlowReport) -> String {
    let mut out = String::new();
    let when = r
        .started_at
        .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
        .unwrap_or_default();
    let title = format!("kyb-maint {} report", r.flow);
    let _ = writeln!(out, "{title}{}", if r.dry_run { " (dry run: nothing changed)" } else { "" });
    let _ = writeln!(out, "{}", "=".repeat(title.len()));
    let _ = writeln!(out, "Host:     {}", r.host);
    let _ = writeln!(out, "Started:  {when}");
    let _ = writeln!(
        out,
        "Status:   {} ({} of {} tasks failed, {} ms)",
        r.status,
        r.failed_tasks,
        r.tasks.len(),
        r.duration_ms
    );
    out.push('\n');
    let name_w = r.tasks.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:<name_w$}  {:<7}  {:>8}  SUMMARY", "TASK", "STATUS", "TIME");
    for t in &r.tasks {
        let _ = writeln!(out, "{:<name_w$}  {:<7}  {:>5} ms  {}", t.name, t.status, t.duration_ms, t.summary);
    }
    for t in &r.tasks {
        if t.checks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", t.name);
        let check_w = t.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &t.checks {
            let _ = writeln!(out, "  {:<7}  {:<check_w$}  {}", c.status, c.name, c.summary);
        }
        for n in &t.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if !t.actions.is_empty() {
            let _ = writeln!(out, "  {}:", if r.dry_run { "would do" } else { "done" });
            for a in &t.actions {
                let _ = writeln!(out, "    {a}");
            }
        }
    }
    let files: Vec<_> = r.report_files.iter().chain(r.tasks.iter().flat_map(|t| &t.artifacts)).collect();
    if !files.is_empty() {
        out.push_str("\nFiles\n");
        for f in files {
            let _ = writeln!(out, "  {}", f.display());
        }
    }
    out
}

/// This machine's name, as the report says where it ran.
pub(crate) fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyb_core::Check;
    use std::time::Duration;

    #[test]
    fn text_report_layout() {
        let r = FlowReport {
            flow: "daily".into(),
            host: "web-1".into(),
            status: Status::Crit,
            started_at: time::macros::datetime!(2026-11-26 02:00:00 UTC),
            duration_ms: 1234,
            dry_run: false,
            failed_tasks: 1,
            tasks: vec![
                TaskReport::from_checks(
                    "health",
                    vec![
                        Check::new("app", Status::Crit, "HTTP 500 in 3 ms"),
                        Check::new("redis", Status::Ok, "PING ok"),
                    ],
                    Duration::from_millis(4),
                ),
                TaskReport::from_checks(
                    "system",
                    vec![Check::new("cpu", Status::Ok, "3.0% busy")],
                    Duration::from_millis(250),
                ),
            ],
            report_files: vec![],
        };
        let expected = "\
kyb-maint daily report
======================
Host:     web-1
Started:  2026-11-26 02:00:00 UTC
Status:   CRIT (1 of 2 tasks failed, 1234 ms)

TASK    STATUS       TIME  SUMMARY
health  CRIT         4 ms  app CRIT: HTTP 500 in 3 ms
system  OK         250 ms  1 check ok

health
  CRIT     app    HTTP 500 in 3 ms
  OK       redis  PING ok

system
  OK       cpu  3.0% busy
";
        assert_eq!(render_text(&r), expected);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn a_crit_task_outranks_an_unknown_one_in_the_headline() {
        let task = |name: &str, status| {
            TaskReport::from_checks(name, vec![Check::new("c", status, "x")], Duration::from_millis(1))
        };
        let tasks = vec![
            task("certificates", Status::Crit),
            task("restore-drill", Status::Unknown),
            task("backup-prune", Status::Warn),
        ];
        let at = time::macros::datetime!(2026-12-01 02:00:00 UTC);
        let r = FlowReport::of("monthly".into(), tasks, at, false);
        assert_eq!(r.status, Status::Crit);
        assert_eq!(r.failed_tasks, 2);
        assert!(render_text(&r).contains("\nStatus:   CRIT (2 of 3 tasks failed"), "{}", render_text(&r));
        // Unknown still outranks Warn, and fails the run.
        let r = FlowReport::of(
            "monthly".into(),
            vec![task("a", Status::Warn), task("b", Status::Unknown)],
            at,
            false,
        );
        assert_eq!((r.status, r.exit_code()), (Status::Unknown, 1));
        // And within a task, a Crit check outranks an Unknown one.
        let t = TaskReport::from_checks(
            "security-certs",
            vec![Check::new("a", Status::Unknown, "unreadable"), Check::new("b", Status::Crit, "expired")],
            Duration::ZERO,
        );
        assert_eq!(t.status, Status::Crit);
    }
}
