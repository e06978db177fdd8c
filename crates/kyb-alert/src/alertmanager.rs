//! Failed tasks as Alertmanager alerts (API v2), and their resolution once the task is healthy.
//!
//! kyb-maint keeps no state of its own for this: before it posts, it asks each Alertmanager which
//! of its alerts for this flow and host are still active, so the run that finds a task healthy
//! again resolves the alert even when the run before it could not reach Alertmanager, and a
//! Kubernetes pod with no disk of its own works the same way.

use crate::AlertingConfig;
use crate::client::{self, HttpError};
use ::http::Method;
use kyb_core::{Check, Findings, RunCtx, Status, TaskReport};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use url::Url;

/// The `alertname` of every alert kyb-maint sends.
pub const ALERT_NAME: &str = "KybMaintTaskFailed";

/// The annotation's summary is cut here: a task's summary can list many checks.
const MAX_SUMMARY_CHARS: usize = 1000;
/// An Alertmanager's answer to the query of active alerts is cut here.
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// What a run found, as the alerts need it.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcome<'a> {
    /// The flow (`daily`) or, for a binary's own run, its task (`backup-create`).
    pub flow: &'a str,
    /// The host the run was on.
    pub host: &'a str,
    /// When the run started.
    pub started_at: OffsetDateTime,
    /// How long an alert stays firing without word from a later run: past the next run's
    /// usual time, so that a run that never comes does not resolve it.
    pub hold: Duration,
    /// Its tasks.
    pub tasks: &'a [TaskReport],
}

/// What [`notify`] did: one check per Alertmanager (Ok when it took the alerts, Warn when it
/// could not be reached in time), and which tasks fired or resolved.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct AlertReport {
    /// The checks and notes.
    #[serde(flatten)]
    pub findings: Findings,
    /// The tasks sent as firing.
    pub firing: Vec<String>,
    /// The tasks whose earlier alert was resolved, on any Alertmanager.
    pub resolved: Vec<String>,
}

kyb_core::impl_report!(AlertReport);

/// Sends every Crit or Unknown task of `run` to each of `cfg.alertmanager_urls` as a firing
/// `KybMaintTaskFailed` alert (labels `alertname`, `flow`, `task`, `host`, `severity`; a
/// `summary` annotation; `startsAt`; `endsAt` = now + `run.hold`), and resolves (`endsAt` = now)
/// the alerts an Alertmanager still holds for this flow and host whose task is now healthy or
/// gone. Each Alertmanager gets `cfg.timeout_ms` for all of it, in parallel, so a hung one
/// delays the run by that much at most. Never fails: an Alertmanager that cannot be reached is
/// a Warn check. In a dry run nothing is sent and the plan is the actions.
pub async fn notify(cfg: &AlertingConfig, run: &RunOutcome<'_>, ctx: &RunCtx) -> AlertReport {
    let failing: Vec<&TaskReport> = run.tasks.iter().filter(|t| t.status >= Status::Crit).collect();
    let mut report =
        AlertReport { firing: failing.iter().map(|t| t.name.clone()).collect(), ..AlertReport::default() };
    if ctx.dry_run {
        for url in &cfg.alertmanager_urls {
            report.findings.actions.push(match failing.len() {
                0 => format!("would resolve at {url} any {ALERT_NAME} alert of {} on {}", run.flow, run.host),
                n => format!("would send {n} firing alert(s) to {url}: {}", report.firing.join(", ")),
            });
        }
        return report;
    }
    let now = OffsetDateTime::now_utc();
    let sends = cfg.alertmanager_urls.iter().map(async |url| {
        let work = deliver(url, run, &failing, now);
        let outcome = match tokio::time::timeout(cfg.timeout_ms.duration(), work).await {
            Ok(outcome) => outcome.map_err(|e| kyb_core::error_chain(&e)),
            Err(_) => Err(format!("no answer within {} ms", cfg.timeout_ms.get())),
        };
        (url, outcome)
    });
    for (url, outcome) in futures_util::future::join_all(sends).await {
        let name = format!("alertmanager {url}");
        let check = match outcome {
            Ok(resolved) => {
                let said = format!("{} firing, {} resolved", failing.len(), resolved.len());
                for task in resolved {
                    if !report.resolved.contains(&task) {
                        report.resolved.push(task);
                    }
                }
                Check::new(name, Status::Ok, said)
            }
            Err(why) => Check::new(name, Status::Warn, format!("alerts not delivered: {why}")),
        };
        report.findings.checks.push(check);
    }
    report.resolved.sort();
    report
}

/// Why one Alertmanager did not take the alerts.
#[derive(Debug, thiserror::Error)]
enum DeliverError {
    #[error("the URL does not parse: {0}")]
    Url(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("its list of alerts is not the API v2 JSON")]
    Json(#[source] serde_json::Error),
}

/// The part of an active alert this needs.
#[derive(Debug, Deserialize)]
struct ActiveAlert {
    labels: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
}

/// Posts to one Alertmanager; returns the tasks whose alerts it resolved.
async fn deliver(
    base: &str,
    run: &RunOutcome<'_>,
    failing: &[&TaskReport],
    now: OffsetDateTime,
) -> Result<Vec<String>, DeliverError> {
    let base = client::base_url(base).map_err(DeliverError::Url)?;
    let alerts = client::join(&base, &["api", "v2", "alerts"]);
    let active = active_alerts(&alerts, run).await?;
    let mut body: Vec<Value> = failing.iter().map(|t| firing(run, t, now)).collect();
    let mut resolved = Vec::new();
    for a in active {
        let Some(task) = a.labels.get("task") else { continue };
        if failing.iter().any(|t| &t.name == task) {
            continue;
        }
        // The labels as the Alertmanager holds them identify the alert; the start is kept.
        let starts_at = a.starts_at.unwrap_or_else(|| stamp(run.started_at));
        body.push(json!({ "labels": a.labels, "startsAt": starts_at, "endsAt": stamp(now) }));
        resolved.push(task.clone());
    }
    if !body.is_empty() {
        let bytes = serde_json::to_vec(&body).expect("alerts serialize");
        client::send(Method::POST, &alerts, Some(("application/json", bytes)), 64 << 10).await?;
    }
    Ok(resolved)
}

/// The alerts this Alertmanager holds for `run`'s flow and host (silenced and inhibited ones
/// too: they resolve the same way).
async fn active_alerts(alerts: &Url, run: &RunOutcome<'_>) -> Result<Vec<ActiveAlert>, DeliverError> {
    let mut query = alerts.clone();
    query
        .query_pairs_mut()
        .append_pair("filter", &matcher("alertname", ALERT_NAME))
        .append_pair("filter", &matcher("flow", run.flow))
        .append_pair("filter", &matcher("host", run.host));
    let answer = client::send(Method::GET, &query, None, MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&answer).map_err(DeliverError::Json)
}

/// An equality matcher, `name="value"`, with the value quoted as Alertmanager parses it.
fn matcher(name: &str, value: &str) -> String {
    format!("{name}={}", serde_json::to_string(value).expect("strings serialize"))
}

fn firing(run: &RunOutcome<'_>, t: &TaskReport, now: OffsetDateTime) -> Value {
    let severity = "critical";
    let mut summary = format!("{} {} on {} ({} run): {}", t.name, t.status, run.host, run.flow, t.summary);
    if let Some((cut, _)) = summary.char_indices().nth(MAX_SUMMARY_CHARS) {
        summary.truncate(cut);
        summary.push('…');
    }
    json!({
        "labels": {
            "alertname": ALERT_NAME,
            "flow": run.flow,
            "task": t.name,
            "host": run.host,
            "severity": severity,
        },
        "annotations": { "summary": summary, "status": t.status.to_string() },
        "startsAt": stamp(run.started_at),
        "endsAt": stamp(now + run.hold),
    })
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_quote_their_values() {
        assert_eq!(matcher("flow", "daily"), "flow=\"daily\"");
        assert_eq!(matcher("host", "a\"b\\c"), r#"host="a\"b\\c""#);
    }

    #[test]
    fn a_firing_alert_has_the_labels_and_holds_past_the_next_run() {
        let started = time::macros::datetime!(2026-12-01 02:00 UTC);
        let t = TaskReport::failed("health", "x".repeat(5000), std::time::Duration::ZERO);
        let tasks = [t.clone()];
        let run = RunOutcome {
            flow: "daily",
            host: "h1",
            started_at: started,
            hold: Duration::hours(26),
            tasks: &tasks,
        };
        let now = started + Duration::minutes(3);
        let a = firing(&run, &t, now);
        assert_eq!(a["labels"]["alertname"], ALERT_NAME);
        assert_eq!(
            (a["labels"]["flow"].as_str(), a["labels"]["task"].as_str()),
            (Some("daily"), Some("health"))
        );
        assert_eq!(
            (a["labels"]["host"].as_str(), a["labels"]["severity"].as_str()),
            (Some("h1"), Some("critical"))
        );
        assert_eq!(a["startsAt"], "2026-12-01T02:00:00Z");
        assert_eq!(a["endsAt"], "2026-12-02T04:03:00Z");
        let summary = a["annotations"]["summary"].as_str().unwrap();
        assert!(summary.starts_with("health UNKNOWN on h1 (daily run): xxx"), "{summary}");
        assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS + 1);
    }
}
