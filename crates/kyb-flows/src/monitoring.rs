//! The monitoring stack (Prometheus, Grafana, Alertmanager) as a task report.

use crate::backup::not_configured;
use crate::config::Config;
use kyb_core::TaskReport;
use std::time::Instant;
use time::OffsetDateTime;

/// Prometheus, Grafana and Alertmanager; a component that is down is started when `[monitoring]
/// restart` is on and a maintenance window is open (or `emergency`).
pub async fn monitoring(
    name: &str,
    cfg: &Config,
    now: OffsetDateTime,
    dry_run: bool,
    emergency: bool,
) -> TaskReport {
    let clock = Instant::now();
    let Some(m) = &cfg.monitoring else {
        return not_configured(name, "monitoring", "no [monitoring] URLs configured", clock);
    };
    let mc = kyb_health::MonitoringConfig {
        dry_run,
        window_open: emergency || cfg.window.is_open(now),
        ..m.clone()
    };
    let r = kyb_health::check_monitoring(&mc).await;
    let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
    t.actions = r.actions;
    t
}
