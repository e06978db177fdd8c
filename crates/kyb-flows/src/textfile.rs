//! A flow report as Prometheus metrics, for node_exporter's textfile collector.

use crate::report::FlowReport;
use kyb_prom::{Family, MetricKind, Sample, render_textfile};

/// The gauges tasks report (see [`kyb_core::Gauge`]), with what each means.
const GAUGES: &[(&str, &str)] = &[
    ("kyb_maint_disk_used_ratio", "Used share of each mounted filesystem, 0 to 1."),
    (
        "kyb_maint_database_disk_seconds_left",
        "Time until the database's data disk is full at its fitted growth.",
    ),
    ("kyb_maint_backup_age_seconds", "Age of the backup the last verification looked at."),
    (
        "kyb_maint_backup_max_age_seconds",
        "The age above which that backup is too old ([backup] max_age_hours).",
    ),
    ("kyb_maint_backup_size_bytes", "Size of that backup's dump file."),
    ("kyb_maint_restore_drill_seconds", "Restore time of the last restore drill."),
    ("kyb_maint_certificate_seconds_left", "Time until each certificate expires; negative once it has."),
    ("kyb_maint_model_accuracy", "Accuracy each ML model reports, 0 to 1."),
    ("kyb_maint_model_accuracy_threshold", "The accuracy below which each model is Warn (warn_below)."),
    ("kyb_maint_endpoint_p95_seconds", "95th-percentile response time of the slowest endpoints."),
    ("kyb_maint_sequence_used_ratio_max", "Share of its range the fullest sequence has used, 0 to 1."),
    (
        "kyb_maint_forecast_seconds_left",
        "Time until a resource reaches its limit, fitted over the run history (daily).",
    ),
];

/// The gauge that carries the start of the last run that succeeded.
pub const LAST_SUCCESS: &str = "kyb_maint_flow_last_success_timestamp_seconds";

/// The report as text format 0.0.4: status and duration of the flow and of each task (status as
/// 0 ok, 1 warn, 2 crit, 3 unknown, the Nagios codes), the run's start, the start of the last
/// run that succeeded (ok or warn; `last_success` carries an earlier one over a failed run), and
/// the measured values the tasks give as gauges. Labels are the flow, the task and the gauges'
/// own bounded ones: never a check's name, which may hold a path or an index name.
pub fn render(report: &FlowReport, last_success: Option<f64>) -> String {
    let flow = || ("flow".to_owned(), report.flow.clone());
    let gauge = |name: &str, help: &str| Family {
        name: name.to_owned(),
        kind: MetricKind::Gauge,
        help: Some(help.to_owned()),
        unit: None,
    };
    let mut families = vec![
        gauge("kyb_maint_flow_status", "Worst task status of the last run: 0 ok, 1 warn, 2 crit, 3 unknown."),
        gauge("kyb_maint_flow_last_run_timestamp_seconds", "Start of the last run, Unix time."),
        gauge(LAST_SUCCESS, "Start of the last run that ended ok or warn, Unix time."),
        gauge("kyb_maint_flow_duration_seconds", "Wall time of the last run."),
        gauge("kyb_maint_flow_failed_tasks", "Tasks of the last run that ended crit or unknown."),
        gauge(
            "kyb_maint_task_status",
            "Status of each task in the last run: 0 ok, 1 warn, 2 crit, 3 unknown.",
        ),
        gauge("kyb_maint_task_duration_seconds", "Wall time of each task in the last run."),
    ];
    let sample = |name: &str, labels: Vec<(String, String)>, value: f64| Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms: None,
        line: 0,
    };
    let started = report.started_at.unix_timestamp() as f64;
    let succeeded = report.status <= kyb_core::Status::Warn;
    let mut samples = vec![
        sample("kyb_maint_flow_status", vec![flow()], f64::from(report.status.nagios_code())),
        sample("kyb_maint_flow_last_run_timestamp_seconds", vec![flow()], started),
        sample("kyb_maint_flow_duration_seconds", vec![flow()], report.duration_ms as f64 / 1000.0),
        sample("kyb_maint_flow_failed_tasks", vec![flow()], report.failed_tasks as f64),
    ];
    if let Some(at) = if succeeded { Some(started) } else { last_success } {
        samples.push(sample(LAST_SUCCESS, vec![flow()], at));
    }
    for t in &report.tasks {
        let task = || vec![flow(), ("task".to_owned(), t.name.clone())];
        samples.push(sample("kyb_maint_task_status", task(), f64::from(t.status.nagios_code())));
        samples.push(sample("kyb_maint_task_duration_seconds", task(), t.duration_ms as f64 / 1000.0));
    }
    let gauges = report.tasks.iter().flat_map(|t| &t.checks).flat_map(|c| &c.gauges);
    for g in gauges {
        let labels: Vec<(String, String)> = std::iter::once(flow()).chain(g.labels.iter().cloned()).collect();
        // One series per name and labels: a second one would make the whole file unreadable.
        if samples.iter().any(|s| s.name == g.name && s.labels == labels) {
            continue;
        }
        if !families.iter().any(|f| f.name == g.name) {
            let help = GAUGES
                .iter()
                .find(|(name, _)| *name == g.name)
                .map_or("A value kyb-maint measured.", |(_, h)| h);
            families.push(gauge(&g.name, help));
        }
        samples.push(sample(&g.name, labels, g.value));
    }
    render_textfile(&families, &samples)
}

/// Writes [`render`]'s output to `path` atomically (mode 0644, for node_exporter). The last
/// success a failed run has not replaced is read back from the file it replaces.
pub fn write(path: &std::path::Path, report: &FlowReport) -> Result<(), kyb_core::fs::FsError> {
    let last_success = std::fs::read_to_string(path).ok().and_then(|old| {
        kyb_prom::parse(&old)
            .samples
            .into_iter()
            .find(|s| s.name == LAST_SUCCESS && s.label("flow") == Some(report.flow.as_str()))
            .map(|s| s.value)
    });
    kyb_prom::write_textfile(path, &render(report, last_success))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyb_core::{Check, Gauge, Status, TaskReport};
    use std::time::Duration;

    #[test]
    fn report_metrics_parse_back() {
        let report =
            FlowReport {
                flow: "daily".into(),
                host: "h".into(),
                status: Status::Warn,
                started_at: time::macros::datetime!(2026-11-26 02:00:00 UTC),
                duration_ms: 1500,
                dry_run: false,
                failed_tasks: 0,
                tasks: vec![TaskReport::from_checks(
                    "system",
                    vec![Check::new("disk /var \"x\"", Status::Warn, "85% used").with_gauge(
                        Gauge::new("kyb_maint_disk_used_ratio", 0.85).label("mount", "/var \"x\""),
                    )],
                    Duration::from_millis(250),
                )],
                report_files: vec![],
            };
        let text = render(&report, None);
        let parsed = kyb_prom::parse_strict(&text).unwrap();
        let value = |name: &str| parsed.samples.iter().find(|s| s.name == name).unwrap().value;
        assert_eq!(value("kyb_maint_flow_status"), 1.0);
        assert_eq!(value("kyb_maint_flow_last_run_timestamp_seconds"), 1_795_658_400.0);
        assert_eq!(value(LAST_SUCCESS), 1_795_658_400.0, "a warn run succeeded");
        assert_eq!(value("kyb_maint_flow_duration_seconds"), 1.5);
        let disk = parsed.samples.iter().find(|s| s.name == "kyb_maint_disk_used_ratio").unwrap();
        assert_eq!(
            (disk.label("flow"), disk.label("mount"), disk.value),
            (Some("daily"), Some("/var \"x\""), 0.85)
        );
        // A check's name (a path, an index) is never a label: the series stay bounded.
        assert!(parsed.samples.iter().all(|s| s.label("check").is_none()), "{text}");
        assert!(text.contains("# HELP kyb_maint_disk_used_ratio Used share"), "{text}");
        assert!(!text.contains("1795658400000"), "no timestamps in textfile output");
    }

    /// A failed run keeps the last success of the run before it; the next good run moves it on.
    #[test]
    fn the_last_success_survives_a_failed_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyb-maint-daily.prom");
        let run = |status: Status, at: time::OffsetDateTime| FlowReport {
            flow: "daily".into(),
            host: "h".into(),
            status,
            started_at: at,
            duration_ms: 10,
            dry_run: false,
            failed_tasks: usize::from(status >= Status::Crit),
            tasks: vec![],
            report_files: vec![],
        };
        let last_success = || {
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = kyb_prom::parse_strict(&text).unwrap();
            parsed.samples.iter().find(|s| s.name == LAST_SUCCESS).map(|s| s.value)
        };
        write(&path, &run(Status::Crit, time::macros::datetime!(2026-11-25 02:00 UTC))).unwrap();
        assert_eq!(last_success(), None, "never succeeded yet");
        write(&path, &run(Status::Ok, time::macros::datetime!(2026-11-26 02:00 UTC))).unwrap();
        assert_eq!(last_success(), Some(1_795_658_400.0));
        write(&path, &run(Status::Unknown, time::macros::datetime!(2026-11-27 02:00 UTC))).unwrap();
        assert_eq!(last_success(), Some(1_795_658_400.0), "the failed run keeps it");
        write(&path, &run(Status::Warn, time::macros::datetime!(2026-11-28 02:00 UTC))).unwrap();
        assert_eq!(last_success(), Some(1_795_831_200.0));
    }
}
