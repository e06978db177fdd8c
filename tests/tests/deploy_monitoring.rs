//! The shipped alert rules, their promtool tests and the Grafana dashboard, checked against the metrics.

use kyb_e2e::text;
use std::path::{Path, PathBuf};

/// Every metric kyb-maint and its binaries write (docs/operations.md, "Prometheus").
const METRICS: &[&str] = &[
    "kyb_maint_flow_status",
    "kyb_maint_flow_last_run_timestamp_seconds",
    "kyb_maint_flow_last_success_timestamp_seconds",
    "kyb_maint_flow_duration_seconds",
    "kyb_maint_flow_failed_tasks",
    "kyb_maint_task_status",
    "kyb_maint_task_duration_seconds",
    "kyb_maint_disk_used_ratio",
    "kyb_maint_database_disk_seconds_left",
    "kyb_maint_backup_age_seconds",
    "kyb_maint_backup_max_age_seconds",
    "kyb_maint_backup_size_bytes",
    "kyb_maint_restore_drill_seconds",
    "kyb_maint_certificate_seconds_left",
    "kyb_maint_model_accuracy",
    "kyb_maint_model_accuracy_threshold",
    "kyb_maint_endpoint_p95_seconds",
    "kyb_maint_sequence_used_ratio_max",
    "kyb_maint_forecast_seconds_left",
];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs promtool in `dir`; never skipped, since a rules file it has not read is not checked.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let out =
        std::process::Command::new("promtool").args(args).current_dir(dir).output().unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian `prometheus`, or run `cargo xtask test`")
        });
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "promtool {}: {said}", args.join(" "));
    said
}

/// The `kyb_maint_*` names in a PromQL expression (or any text).
fn metric_names(expr: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("kyb_maint_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// The alert names of the rules file, in order.
fn alerts() -> Vec<String> {
    let rules = read(&deploy("prometheus/kyb-maint.rules.yml"));
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert:")).map(|n| n.trim().to_owned()).collect()
}

/// The rules file is valid, and lints clean.
#[test]
fn promtool_accepts_the_rules() {
    let said = promtool(
        &deploy("prometheus"),
        &["check", "rules", "--lint=all", "--lint-fatal", "kyb-maint.rules.yml"],
    );
    assert!(said.contains(&format!("SUCCESS: {} rules found", alerts().len())), "{said}");
}

/// The rule tests pass (rule_files is relative to the test file's directory).
#[test]
fn the_rule_tests_pass() {
    let said = promtool(&deploy("prometheus"), &["test", "rules", "kyb-maint.rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Each alert has a test case where it fires and one where it stays quiet.
#[test]
fn every_alert_has_a_firing_and_a_quiet_test() {
    let tests = read(&deploy("prometheus/kyb-maint.rules.test.yml"));
    let (mut firing, mut quiet) = (Vec::new(), Vec::new());
    let mut alertname = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            alertname = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = alertname.take().expect("exp_alerts before its alertname");
            if expected.trim() == "[]" { quiet.push(name) } else { firing.push(name) }
        }
    }
    let alerts = alerts();
    assert!(alerts.len() >= 9, "{alerts:?}");
    for alert in &alerts {
        assert!(firing.contains(alert), "no test where {alert} fires");
        assert!(quiet.contains(alert), "no test where {alert} stays quiet");
    }
    for name in firing.iter().chain(&quiet) {
        assert!(alerts.contains(name), "the tests name {name}, which is no alert");
    }
}

/// The rules and the list above name only metrics that kyb-flows writes.
#[test]
fn the_rules_use_metrics_that_are_written() {
    let writer = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/kyb-flows/src/textfile.rs"));
    for metric in METRICS {
        assert!(writer.contains(&format!("\"{metric}\"")), "kyb-flows does not write {metric}");
    }
    let rules = read(&deploy("prometheus/kyb-maint.rules.yml"));
    for name in metric_names(&rules) {
        assert!(METRICS.contains(&name), "the rules use {name}, which is not written");
    }
}

/// Each panel has a title, the datasource variable and a unit; together they query every metric, no other.
#[test]
fn the_dashboard_shows_every_metric_and_no_other() {
    let path = deploy("grafana/kyb-maint.dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vars = dash["templating"]["list"].as_array().expect("no templating");
    let var =
        |name: &str| vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no variable {name}"));
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["instance", "flow"] {
        let query = var(name)["definition"].as_str().unwrap_or_default();
        assert!(
            query.starts_with("label_values(") && query.ends_with(&format!(", {name})")),
            "{name}: {query}"
        );
    }

    // Rows may hold their panels (when collapsed).
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for p in dash["panels"].as_array().expect("no panels") {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    let mut shown = std::collections::BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        if p["type"] == "row" {
            continue;
        }
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
        assert!(!unit.is_empty(), "{title} has no unit");
        let targets = p["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{title}: no targets"));
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{title}: a target without expr"));
            for name in metric_names(expr) {
                assert!(METRICS.contains(&name), "{title} queries {name}, which is not written");
                shown.insert(name);
            }
        }
    }
    let missing: Vec<_> = METRICS.iter().filter(|m| !shown.contains(*m)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}
