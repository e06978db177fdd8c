//! A finished run sent on (`[alerting]`): its failed tasks to Alertmanager, its metrics to a
//! Pushgateway. What was delivered, and what could not be, is the run's `alerting` task.

use crate::{Config, FlowReport, textfile};
use kyb_alert::{AlertingConfig, Group, RunOutcome};
use kyb_core::{Check, Findings, RunCtx, Status, TaskReport, error_chain};
use std::time::Instant;

/// The name of the task that reports the delivery.
pub const TASK: &str = "alerting";

/// Sends `report` on as `[alerting]` says and adds the `alerting` task to it: Ok when every
/// endpoint took what it was sent, Warn for each that could not be reached in time (the run
/// goes on either way, and its report is still saved). Nothing happens without `[alerting]`,
/// nor to a report that was delivered already ([`run_flow`](crate::run_flow) delivers its
/// own); in a dry run the task lists what would be sent.
pub async fn deliver(cfg: &Config, report: &mut FlowReport) {
    if report.tasks.iter().any(|t| t.name == TASK) {
        return;
    }
    if let Some(task) = alerting_task(cfg, report).await {
        crate::task::log_outcome(&task);
        report.add_task(task);
    }
}

/// The `alerting` task of a run whose report is `report` (see [`deliver`]), not yet logged.
pub(crate) async fn alerting_task(cfg: &Config, report: &FlowReport) -> Option<TaskReport> {
    let alerting = cfg.alerting.as_ref()?;
    let ctx = &RunCtx::new(report.started_at).with_dry_run(report.dry_run);
    let clock = Instant::now();
    tracing::info!(task = TASK, dry_run = ctx.dry_run, "task started");
    let mut findings = Findings::default();
    if !alerting.alertmanager_urls.is_empty() {
        let run = RunOutcome {
            flow: &report.flow,
            host: &report.host,
            started_at: report.started_at,
            hold: hold(&report.flow),
            tasks: &report.tasks,
        };
        let sent = kyb_alert::notify(alerting, &run, ctx).await;
        findings.checks.extend(sent.findings.checks);
        findings.actions.extend(sent.findings.actions);
    }
    if let Some(url) = &alerting.pushgateway_url {
        let group = Group { instance: &report.host, flow: &report.flow };
        if ctx.dry_run {
            findings.actions.push(format!(
                "would push the run's metrics to {url} (job=\"kyb-maint\", instance=\"{}\", flow=\"{}\")",
                group.instance, group.flow
            ));
        } else {
            // The group shows how the alerts went too.
            let mut pushed = report.clone();
            pushed.add_task(TaskReport::from_report(TASK, findings.clone(), clock.elapsed()));
            let name = format!("pushgateway {url}");
            findings.checks.push(match push(alerting, group, &pushed).await {
                Ok(()) => Check::new(name, Status::Ok, "metrics pushed"),
                Err(e) => Check::new(name, Status::Warn, format!("metrics not pushed: {}", error_chain(&e))),
            });
        }
    }
    Some(TaskReport::from_report(TASK, findings, clock.elapsed()))
}

/// The run's metrics as `--textfile` writes them, the last success carried over from the
/// group's when this run failed.
async fn push(
    cfg: &AlertingConfig,
    group: Group<'_>,
    report: &FlowReport,
) -> Result<(), kyb_alert::PushError> {
    let last_success = match report.status <= Status::Warn {
        true => None,
        // A Pushgateway that cannot answer this will not take the push either: that error says why.
        false => kyb_alert::pushed_value(cfg, group, textfile::LAST_SUCCESS).await.ok().flatten(),
    };
    kyb_alert::push(cfg, group, &textfile::render(report, last_success)).await
}

/// How long a failed task's alert stays firing with no word from a later run: past the
/// flow's next run, so a run that comes late does not let it lapse.
fn hold(flow: &str) -> time::Duration {
    match flow {
        "weekly" => time::Duration::days(8),
        "monthly" => time::Duration::days(32),
        "quarterly" => time::Duration::days(93),
        _ => time::Duration::hours(26),
    }
}
