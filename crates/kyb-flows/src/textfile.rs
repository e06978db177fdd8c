//! A flow report as Prometheus metrics, for node_exporter's textfile collector.

use crate::report::FlowReport;
use kyb_prom::{Family, MetricKind, Sample, render_textfile};

/// The report as text format 0.0.4: status and duration of the flow, each task and each check
/// (status as 0 ok, 1 warn, 2 crit, 3 unknown, the Nagios codes), and the run's start time.
pub fn render(report: &FlowReport) -> String {
    let flow = || ("flow".to_owned(), report.flow.clone());
    let gauge = |name: &str, help: &str| Family {
        name: name.to_owned(),
        kind: MetricKind::Gauge,
        help: Some(help.to_owned()),
        unit: None,
    };
    let families = vec![
        gauge("kyb_maint_flow_status", "Worst task status of the last run: 0 ok, 1 warn, 2 crit, 3 unknown."),
        gauge("kyb_maint_flow_last_run_timestamp_seconds", "Start of the last run, Unix time."),
        gauge("kyb_maint_flow_duration_seconds", "Wall time of the last run."),
        gauge("kyb_maint_flow_failed_tasks", "Tasks of the last run that ended crit or unknown."),
        gauge(
            "kyb_maint_task_status",
            "Status of each task in the last run: 0 ok, 1 warn, 2 crit, 3 unknown.",
        ),
        gauge("kyb_maint_task_duration_seconds", "Wall time of each task in the last run."),
        gauge(
            "kyb_maint_check_status",
            "Status of each check in the last run: 0 ok, 1 warn, 2 crit, 3 unknown.",
        ),
    ];
    let sample = |name: &str, labels: Vec<(String, String)>, value: f64| Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms: None,
        line: 0,
    };
    let mut samples = vec![
        sample("kyb_maint_flow_status", vec![flow()], f64::from(report.status.nagios_code())),
        sample(
            "kyb_maint_flow_last_run_timestamp_seconds",
            vec![flow()],
            report.started_at.unix_timestamp() as f64,
        ),
        sample("kyb_maint_flow_duration_seconds", vec![flow()], report.duration_ms as f64 / 1000.0),
        sample("kyb_maint_flow_failed_tasks", vec![flow()], report.failed_tasks as f64),
    ];
    for t in &report.tasks {
        let task = || vec![flow(), ("task".to_owned(), t.name.clone())];
        samples.push(sample("kyb_maint_task_status", task(), f64::from(t.status.nagios_code())));
        samples.push(sample("kyb_maint_task_duration_seconds", task(), t.duration_ms as f64 / 1000.0));
        for c in &t.checks {
            let mut labels = task();
            labels.push(("check".to_owned(), c.name.clone()));
            samples.push(sample("kyb_maint_check_status", labels, f64::from(c.status.nagios_code())));
        }
    }
    render_textfile(&families, &samples)
}

/// Writes [`render`]'s output to `path` atomically (mode 0644, for node_exporter).
pub fn write(path: &std::path::Path, report: &FlowReport) -> Result<(), kyb_core::fs::FsError> {
    kyb_prom::write_textfile(path, &render(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyb_core::{Check, Status, TaskReport};
    use std::time::Duration;

    #[test]
    fn report_metrics_parse_back() {
        let report = FlowReport {
            flow: "daily".into(),
            host: "h".into(),
            status: Status::Warn,
            started_at: time::macros::datetime!(2026-11-26 02:00:00 UTC),
            duration_ms: 1500,
            dry_run: false,
            failed_tasks: 0,
            tasks: vec![TaskReport::from_checks(
                "system",
                vec![Check::new("disk /var \"x\"", Status::Warn, "85% used")],
                Duration::from_millis(250),
            )],
            report_files: vec![],
        };
        let text = render(&report);
        let parsed = kyb_prom::parse_strict(&text).unwrap();
        let value = |name: &str| parsed.samples.iter().find(|s| s.name == name).unwrap().value;
        assert_eq!(value("kyb_maint_flow_status"), 1.0);
        assert_eq!(value("kyb_maint_flow_last_run_timestamp_seconds"), 1_795_658_400.0);
        assert_eq!(value("kyb_maint_flow_duration_seconds"), 1.5);
        let check = parsed.samples.iter().find(|s| s.name == "kyb_maint_check_status").unwrap();
        assert_eq!(check.label("check"), Some("disk /var \"x\""));
        assert_eq!(check.label("task"), Some("system"));
        assert!(!text.contains("1795658400000"), "no timestamps in textfile output");
    }
}
