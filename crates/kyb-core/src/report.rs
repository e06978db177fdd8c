//! Checks, their metrics, and the report of one task.

use crate::{Status, duration_ms};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// One finding of a task: what was looked at, its status, and a line a human can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, e.g. `app`, `postgres`, `disk /var`.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// One line saying what was seen, with the reason when it is not Ok.
    pub summary: String,
    /// Measured numbers, rendered as Nagios perfdata and kept in JSON reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// The numbers worth alerting on, as the Prometheus gauges the textfile exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gauges: Vec<Gauge>,
}

/// A measured value as a Prometheus gauge: a fixed name (`kyb_maint_backup_age_seconds`) and
/// labels whose values come from the config or are capped in number (a mount, a certificate, a
/// model, one of the ten slowest endpoints), never free text, so the series a host exports stay
/// few and stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gauge {
    /// The metric name.
    pub name: String,
    /// Its labels, besides the flow's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    /// The value, in the unit the name ends with (`_seconds`, `_bytes`, `_ratio`).
    pub value: f64,
}

impl Gauge {
    /// The gauge `name` at `value`, without labels.
    pub fn new(name: &str, value: f64) -> Gauge {
        Gauge { name: name.to_owned(), labels: Vec::new(), value }
    }

    /// Adds the label `name="value"`.
    pub fn label(mut self, name: &str, value: impl Into<String>) -> Gauge {
        self.labels.push((name.to_owned(), value.into()));
        self
    }
}

impl Check {
    /// A check without metrics. The summary is kept to one line (line breaks, as in PostgreSQL's
    /// `DETAIL:` lines, become `; `), since reports, run logs and Nagios output are line based.
    pub fn new(name: impl Into<String>, status: Status, summary: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            summary: one_line(summary.into()),
            metrics: Vec::new(),
            gauges: Vec::new(),
        }
    }

    /// Adds a gauge for the textfile.
    pub fn with_gauge(mut self, gauge: Gauge) -> Check {
        self.gauges.push(gauge);
        self
    }

    /// Adds a metric.
    pub fn with_metric(mut self, metric: Metric) -> Check {
        self.metrics.push(metric);
        self
    }
}

/// Unit of a [`Metric`], as Nagios perfdata spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A plain number.
    None,
    /// Percent, 0 to 100.
    Percent,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// A continuous counter.
    Counter,
}

impl Unit {
    fn perfdata_suffix(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Percent => "%",
            Unit::Seconds => "s",
            Unit::Bytes => "B",
            Unit::Counter => "c",
        }
    }
}

/// A measured number with its unit and, where one applies, its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Perfdata label, e.g. `latency` or `disk_/var`.
    pub label: String,
    /// The value.
    pub value: f64,
    /// The unit.
    pub unit: Unit,
    /// Warning threshold, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<f64>,
    /// Critical threshold, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<f64>,
    /// The thresholds are floors: a value below them is worse (days left, cache hit ratio).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lower_is_worse: bool,
}

impl Metric {
    /// A metric without thresholds.
    pub fn new(label: impl Into<String>, value: f64, unit: Unit) -> Metric {
        Metric { label: label.into(), value, unit, warn: None, crit: None, lower_is_worse: false }
    }

    /// Sets the thresholds the value was judged against.
    pub fn with_thresholds(mut self, warn: f64, crit: f64) -> Metric {
        self.warn = Some(warn);
        self.crit = Some(crit);
        self
    }

    /// Sets thresholds that are floors, where lower is worse: below `warn` is Warn, below `crit`
    /// is Crit (`warn` at or above `crit`).
    pub fn with_floor_thresholds(self, warn: f64, crit: f64) -> Metric {
        Metric { lower_is_worse: true, ..self.with_thresholds(warn, crit) }
    }

    /// Nagios perfdata form: `'label'=value[unit];[warn];[crit]`, floors in range syntax
    /// (`;30:;7:`, alert below), as the monitoring-plugins guidelines write them.
    pub fn perfdata(&self) -> String {
        let mut out = String::new();
        let label = self.label.replace('\'', "\"");
        let _ = write!(out, "'{label}'={}{}", trim_float(self.value), self.unit.perfdata_suffix());
        if self.warn.is_some() || self.crit.is_some() {
            let floor = if self.lower_is_worse { ":" } else { "" };
            let show = |v: Option<f64>| v.map(|v| format!("{}{floor}", trim_float(v))).unwrap_or_default();
            let _ = write!(out, ";{};{}", show(self.warn), show(self.crit));
        }
        out
    }
}

fn one_line(text: String) -> String {
    if !text.contains(['\n', '\r']) {
        return text;
    }
    text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// What a task found and did. Every task's report embeds one as `findings` (flattened into its
/// JSON), so flows, binaries and services that embed the crates read any task the same way.
///
/// ```
/// use kyb_core::{Check, Findings, Report, Status, TaskReport};
/// use std::time::Duration;
///
/// let mut found = Findings::from_checks(vec![Check::new("disk /", Status::Warn, "85% used")]);
/// found.actions.push("would remove /tmp/a (3 days idle)".into());
/// assert_eq!(found.status(), Status::Warn);
/// let task = TaskReport::from_report("system", found, Duration::ZERO);
/// assert_eq!((task.status, task.actions.len()), (Status::Warn, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// One finding per thing looked at, each with its status.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Changes made, one line each; in a dry run, the changes that would be made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Files written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PathBuf>,
    /// What the reader needs to weigh the checks, e.g. how much history the counts cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The task's own one-line summary (`restored ... in 812 ms`); without one, the summary names
    /// the checks that are not Ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
}

impl Findings {
    /// Findings of `checks` alone.
    pub fn from_checks(checks: Vec<Check>) -> Findings {
        Findings { checks, ..Findings::default() }
    }

    /// The worst status of the checks (Ok without any).
    pub fn status(&self) -> Status {
        Status::worst(self.checks.iter().map(|c| c.status))
    }
}

/// A task's report: its own fields plus the [`Findings`] every task has. Implement it with
/// [`impl_report!`](crate::impl_report) for a struct with a `findings: Findings` field.
pub trait Report {
    /// What the task found and did.
    fn findings(&self) -> &Findings;
    /// The findings, taken out of the report.
    fn into_findings(self) -> Findings;
}

impl Report for Findings {
    fn findings(&self) -> &Findings {
        self
    }

    fn into_findings(self) -> Findings {
        self
    }
}

/// Implements [`Report`] for structs that hold their findings in a `findings` field.
#[macro_export]
macro_rules! impl_report {
    ($($report:ty),+ $(,)?) => {$(
        impl $crate::Report for $report {
            fn findings(&self) -> &$crate::Findings {
                &self.findings
            }

            fn into_findings(self) -> $crate::Findings {
                self.findings
            }
        }
    )+};
}

/// The outcome of one task of a flow: its findings, the worst of their statuses, and a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task name, e.g. `health`.
    pub name: String,
    /// Worst status of the checks (or of the task itself when it could not run).
    pub status: Status,
    /// One line for the report's task table.
    pub summary: String,
    /// Wall time of the task.
    pub duration_ms: u64,
    /// The individual checks.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Files the task wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PathBuf>,
    /// Changes the task made, one line each; in a dry run, the changes it would make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// What the reader needs to weigh the checks, e.g. how much history the counts cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl TaskReport {
    /// A report whose status is the worst of `checks` and whose summary names the checks that are
    /// not Ok (or counts them when all are).
    pub fn from_checks(name: impl Into<String>, checks: Vec<Check>, took: Duration) -> TaskReport {
        TaskReport::from_report(name, Findings::from_checks(checks), took)
    }

    /// The task report of a crate's report: its findings, their worst status, and the task's
    /// headline as summary, or else the checks that are not Ok (counted when all are).
    pub fn from_report(name: impl Into<String>, report: impl Report, took: Duration) -> TaskReport {
        let Findings { checks, actions, artifacts, notes, headline } = report.into_findings();
        let status = Status::worst(checks.iter().map(|c| c.status));
        let summary = match headline {
            Some(line) => one_line(line),
            None => summarize(&checks),
        };
        TaskReport {
            name: name.into(),
            status,
            summary,
            duration_ms: duration_ms(took),
            checks,
            artifacts,
            actions,
            notes,
        }
    }

    /// A task whose config section is absent: **Ok**, one `check` saying `why` (e.g. `no [app]
    /// configured`), and `why` as the summary. A flow runs what is configured, so a section left
    /// out is not a failure; this is the one status every entry point gives it. (A binary asked
    /// for one thing that is not configured refuses instead: exit 2, or UNKNOWN for the Nagios
    /// ones.)
    pub fn not_configured(name: impl Into<String>, check: &str, why: &str, took: Duration) -> TaskReport {
        let mut t = TaskReport::from_checks(name, vec![Check::new(check, Status::Ok, why)], took);
        t.summary = why.to_owned();
        t
    }

    /// A report for a task that could not run at all: Unknown, with the reason as summary.
    pub fn failed(name: impl Into<String>, reason: impl Into<String>, took: Duration) -> TaskReport {
        TaskReport {
            name: name.into(),
            status: Status::Unknown,
            summary: one_line(reason.into()),
            duration_ms: duration_ms(took),
            checks: Vec::new(),
            artifacts: Vec::new(),
            actions: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// The checks that are not Ok, one after another; or how many checks there were when all are.
fn summarize(checks: &[Check]) -> String {
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| format!("{} {}: {}", c.name, c.status, c.summary))
        .collect();
    if checks.is_empty() {
        "nothing to check".to_owned()
    } else if bad.is_empty() {
        match checks.len() {
            1 => "1 check ok".to_owned(),
            n => format!("{n} of {n} checks ok"),
        }
    } else {
        bad.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdata_format() {
        let m = Metric::new("latency", 0.0125, Unit::Seconds).with_thresholds(0.5, 1.0);
        assert_eq!(m.perfdata(), "'latency'=0.0125s;0.5;1");
        assert_eq!(Metric::new("up", 3.0, Unit::None).perfdata(), "'up'=3");
        // Lower is worse: the monitoring-plugins range syntax, alert below the value.
        let days = Metric::new("days_left", 12.5, Unit::None).with_floor_thresholds(30.0, 7.0);
        assert_eq!(days.perfdata(), "'days_left'=12.5;30:;7:");
        let json = serde_json::to_value(&days).unwrap();
        assert_eq!(json["lower_is_worse"], true);
        assert!(serde_json::to_value(&m).unwrap().get("lower_is_worse").is_none(), "left out when false");
    }

    #[test]
    fn not_configured_is_ok_and_says_what_is_missing() {
        let t = TaskReport::not_configured(
            "monitoring",
            "monitoring",
            "no [monitoring] URLs configured",
            Duration::ZERO,
        );
        assert_eq!((t.status, t.summary.as_str()), (Status::Ok, "no [monitoring] URLs configured"));
        assert_eq!((t.checks.len(), t.checks[0].status), (1, Status::Ok));
    }

    #[test]
    fn a_report_keeps_its_findings_and_its_headline() {
        let mut found = Findings::from_checks(vec![Check::new("restore", Status::Ok, "8 tables")]);
        found.artifacts.push(PathBuf::from("/b/x.dump"));
        found.notes.push("scratch database dropped".into());
        found.headline = Some("restored x.dump\nin 812 ms".into());
        let t = TaskReport::from_report("restore-drill", found.clone(), Duration::ZERO);
        assert_eq!((t.status, t.summary.as_str()), (Status::Ok, "restored x.dump; in 812 ms"));
        assert_eq!((t.artifacts, t.notes), (found.artifacts.clone(), found.notes.clone()));
        // In a crate's report the findings sit at the top level of its JSON.
        #[derive(Serialize)]
        struct Drill {
            restore_ms: u64,
            #[serde(flatten)]
            findings: Findings,
        }
        let json = serde_json::to_value(Drill { restore_ms: 812, findings: found }).unwrap();
        assert_eq!(
            (json["restore_ms"].as_u64(), json["checks"][0]["name"].as_str()),
            (Some(812), Some("restore"))
        );
        assert_eq!(json["headline"], "restored x.dump\nin 812 ms");
    }

    #[test]
    fn summaries_stay_on_one_line() {
        let c = Check::new("postgres", Status::Crit, "db error: FATAL: no\nDETAIL: role x\r\nHINT: try y\n");
        assert_eq!(c.summary, "db error: FATAL: no; DETAIL: role x; HINT: try y");
    }

    #[test]
    fn summary_names_what_is_wrong() {
        let checks =
            vec![Check::new("app", Status::Crit, "HTTP 500"), Check::new("redis", Status::Ok, "PONG")];
        let r = TaskReport::from_checks("health", checks, Duration::from_millis(3));
        assert_eq!(r.status, Status::Crit);
        assert_eq!(r.summary, "app CRIT: HTTP 500");
        let ok = TaskReport::from_checks("x", vec![Check::new("a", Status::Ok, "")], Duration::ZERO);
        assert_eq!(ok.summary, "1 check ok");
    }
}
