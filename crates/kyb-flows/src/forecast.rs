//! Days left for every finite resource, from the run history: each disk, the sequences, the
//! transaction IDs, each certificate and each model's accuracy against its threshold. A
//! Theil-Sen line through the last `fit_days` of a series says when it reaches its limit;
//! under `[forecast] warn_days` / `crit_days` that is a Warn / Crit finding, and each forecast
//! is a `kyb_maint_forecast_seconds_left{resource, name}` gauge (seconds: Prometheus's base unit).

use crate::history::HistoryConfig;
use kyb_core::fit::{Point, Trend, theil_sen};
use kyb_core::{Check, Gauge, Metric, Status, TaskReport, Unit, error_chain};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use time::OffsetDateTime;

/// The name of the task that reports the forecasts.
pub const TASK: &str = "forecast";

/// Transaction IDs run out at 2^31 past the oldest unfrozen one.
const XID_LIMIT: f64 = 2_147_483_648.0;

/// `[forecast]`: when a resource's days left are worth a look.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastSection {
    /// Fewer days left than this is Warn (1 to 3650).
    #[schemars(range(min = 1, max = 3650))]
    pub warn_days: u32,
    /// Fewer days left than this is Crit; at most `warn_days`.
    #[schemars(range(min = 1, max = 3650))]
    pub crit_days: u32,
    /// Days of history each line is fitted over (1 to 3650).
    #[schemars(range(min = 1, max = 3650))]
    pub fit_days: u32,
}

impl Default for ForecastSection {
    fn default() -> ForecastSection {
        ForecastSection { warn_days: 30, crit_days: 7, fit_days: 90 }
    }
}

impl ForecastSection {
    /// Refuses days outside 1 to 3650, and `crit_days` over `warn_days`.
    pub fn validate(&self) -> Result<(), kyb_core::config::FieldError> {
        use kyb_core::config::FieldError;
        for (key, days) in
            [("warn_days", self.warn_days), ("crit_days", self.crit_days), ("fit_days", self.fit_days)]
        {
            if !(1..=3650).contains(&days) {
                return Err(FieldError::new(key, format!("must be between 1 and 3650 days, got {days}")));
            }
        }
        if self.crit_days > self.warn_days {
            let why = format!("must be at most warn_days ({}): fewer days left is worse", self.warn_days);
            return Err(FieldError::new("crit_days", why));
        }
        Ok(())
    }
}

/// What the forecasts read and how they are judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastConfig {
    /// The run history they read.
    pub history: HistoryConfig,
    /// The levels and the fit window.
    pub levels: ForecastSection,
    /// `[paths] backup_dir`, whose disk gets a check of its own.
    pub backup_dir: Option<PathBuf>,
}

/// One series read back from the history.
#[derive(Debug, Clone, Default)]
struct Series {
    points: Vec<Point>,
}

/// The forecasts of `host` (disks and certificates are per host; the database's and the
/// models' series come from any host) as of `now`.
pub(crate) async fn forecast(cfg: &ForecastConfig, host: &str, now: OffsetDateTime) -> TaskReport {
    let clock = Instant::now();
    tracing::info!(task = TASK, "task started");
    let mut task = match read(cfg, host).await {
        Ok(rows) => TaskReport::from_checks(TASK, judge(cfg, &rows, now), clock.elapsed()),
        Err(e) => TaskReport::from_checks(
            TASK,
            vec![Check::new(
                "history",
                Status::Unknown,
                format!("cannot read the run history: {}", error_chain(&e)),
            )],
            clock.elapsed(),
        ),
    };
    if task.checks.is_empty() {
        task.summary = "nothing to forecast yet: the history holds no series".into();
    }
    task
}

/// The series, keyed by (resource, name), oldest point first.
type Rows = BTreeMap<(String, String), Series>;

async fn read(cfg: &ForecastConfig, host: &str) -> Result<Rows, crate::history::HistoryError> {
    let rows = crate::history::series(
        &cfg.history,
        "SELECT m.task, m.name, coalesce(m.labels->>'mount', m.labels->>'certificate', m.labels->>'model', c.name), \
                extract(epoch FROM r.started_at)::float8, m.value \
         FROM kyb_maint.metrics m \
         JOIN kyb_maint.runs r ON r.id = m.run_id \
         JOIN kyb_maint.check_results c ON c.run_id = m.run_id AND c.task = m.task AND c.position = m.position \
         WHERE r.started_at >= now() - make_interval(days => $1) \
           AND ((m.task = 'system' AND m.name = 'kyb_maint_disk_used_ratio' AND r.host = $2) \
             OR (m.task = 'certificates' AND m.name = 'kyb_maint_certificate_seconds_left' AND r.host = $2) \
             OR (m.task = 'db-sequences' AND m.name = 'kyb_maint_sequence_used_ratio_max') \
             OR (m.task = 'db-wraparound' AND m.name = 'xid_age') \
             OR (m.task = 'ml-models' AND m.name IN ('kyb_maint_model_accuracy', 'kyb_maint_model_accuracy_threshold'))) \
         ORDER BY r.started_at",
        &[&i32::try_from(cfg.levels.fit_days).unwrap_or(i32::MAX), &host],
    )
    .await?;
    let mut out = Rows::new();
    for (task, metric, name, at_s, value) in rows {
        let resource = match (task.as_str(), metric.as_str()) {
            ("system", _) => "disk",
            ("certificates", _) => "certificate",
            ("db-sequences", _) => "sequence",
            ("db-wraparound", _) => "transaction-ids",
            (_, "kyb_maint_model_accuracy_threshold") => "model-threshold",
            _ => "model",
        };
        let name = if resource == "sequence" { "fullest".to_owned() } else { name };
        out.entry((resource.to_owned(), name)).or_default().points.push(Point { at_s, value });
    }
    Ok(out)
}

/// A check and a gauge per series.
fn judge(cfg: &ForecastConfig, rows: &Rows, now: OffsetDateTime) -> Vec<Check> {
    let now_s = now.unix_timestamp() as f64;
    let mut checks = Vec::new();
    for ((resource, name), series) in rows {
        let (trend, days, what) = match resource.as_str() {
            "disk" => {
                let t = theil_sen(&series.points);
                (t, t.and_then(|t| t.days_until_above(1.0, now_s)), "full")
            }
            "sequence" => {
                let t = theil_sen(&series.points);
                (t, t.and_then(|t| t.days_until_above(1.0, now_s)), "used up")
            }
            "transaction-ids" => {
                let t = theil_sen(&series.points);
                (t, t.and_then(|t| t.days_until_above(XID_LIMIT, now_s)), "at wraparound")
            }
            "certificate" => {
                // The time left falls as time passes: the last reading, less the time since, is exact.
                let Some(last) = series.points.last() else { continue };
                let left = (last.value - (now_s - last.at_s)) / 86_400.0;
                checks.push(check(cfg, resource, name, None, Some(left.max(0.0)), "expired"));
                continue;
            }
            "model" => {
                let floor = rows
                    .get(&("model-threshold".to_owned(), name.clone()))
                    .and_then(|s| s.points.last())
                    .map(|p| p.value);
                let Some(floor) = floor else { continue };
                let t = theil_sen(&series.points);
                (t, t.and_then(|t| t.days_until_below(floor, now_s)), "below its threshold")
            }
            _ => continue,
        };
        checks.push(check(cfg, resource, name, trend.map(|t| (t, series.points.len())), days, what));
    }
    if let Some(dir) = &cfg.backup_dir
        && let Some(mount) = mount_of(dir, rows)
        && let Some(disk) = checks.iter().find(|c| c.name == format!("disk {mount}"))
    {
        let mut c = disk.clone();
        c.name = "backup directory disk".into();
        c.summary = format!("{} (its disk, {mount}): {}", dir.display(), c.summary);
        c.gauges.clear();
        checks.push(c);
    }
    checks
}

/// The mount of `dir` among the disks in the history: the longest that holds it.
fn mount_of(dir: &Path, rows: &Rows) -> Option<String> {
    rows.keys()
        .filter(|(resource, mount)| resource == "disk" && dir.starts_with(mount))
        .map(|(_, mount)| mount.clone())
        .max_by_key(String::len)
}

fn check(
    cfg: &ForecastConfig,
    resource: &str,
    name: &str,
    fit: Option<(Trend, usize)>,
    days: Option<f64>,
    what: &str,
) -> Check {
    let label = if resource == "sequence" { resource.to_owned() } else { format!("{resource} {name}") };
    let levels = &cfg.levels;
    let fitted = match fit {
        Some((t, _)) => format!(", {} over {} points", t.method, t.points),
        None => String::new(),
    };
    let (status, summary) = match (days, fit) {
        (Some(d), _) => {
            let status = if d < f64::from(levels.crit_days) {
                Status::Crit
            } else if d < f64::from(levels.warn_days) {
                Status::Warn
            } else {
                Status::Ok
            };
            let when = if d <= 0.0 { format!("{what} now") } else { format!("{what} in {d:.1} days") };
            (status, format!("{when}{fitted}"))
        }
        (None, Some(_)) => (Status::Ok, format!("not heading to {what}{fitted}")),
        (None, None) => (
            Status::Ok,
            format!("not enough history yet (fewer than {} points over an hour)", kyb_core::fit::MIN_POINTS),
        ),
    };
    let mut c = Check::new(label, status, summary);
    if let Some(d) = days {
        let metric = Metric::new("days_left", (d * 10.0).round() / 10.0, Unit::None);
        c = c.with_metric(Metric {
            warn: Some(f64::from(levels.warn_days)),
            crit: Some(f64::from(levels.crit_days)),
            lower_is_worse: true,
            ..metric
        });
        c = c.with_gauge(
            Gauge::new("kyb_maint_forecast_seconds_left", (d * 86_400.0).round())
                .label("resource", resource)
                .label("name", name),
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ForecastConfig {
        ForecastConfig {
            history: HistoryConfig {
                postgres: kyb_core::PgTarget {
                    host: "h".into(),
                    port: 5432,
                    user: "u".into(),
                    password: None,
                    dbname: "d".into(),
                },
                timeout_ms: 1000,
                keep_days: 400,
                spool: PathBuf::from("/nonexistent"),
            },
            levels: ForecastSection::default(),
            backup_dir: Some(PathBuf::from("/backups/database")),
        }
    }

    fn daily(from: f64, per_day: f64, days: usize, end_s: f64) -> Series {
        let points = (0..days)
            .map(|i| Point {
                at_s: end_s - (days - 1 - i) as f64 * 86_400.0,
                value: from + per_day * i as f64,
            })
            .collect();
        Series { points }
    }

    #[test]
    fn each_resource_is_judged_against_its_limit() {
        let now = time::macros::datetime!(2026-12-02 02:00 UTC);
        let now_s = now.unix_timestamp() as f64;
        let mut rows = Rows::new();
        // 0.90 full, +1%/day: 10 days left, Warn.
        rows.insert(("disk".into(), "/backups".into()), daily(0.81, 0.01, 10, now_s));
        // Flat: not heading anywhere.
        rows.insert(("disk".into(), "/".into()), daily(0.40, 0.0, 10, now_s));
        // Two points only: not enough history.
        rows.insert(("disk".into(), "/var".into()), daily(0.40, 0.01, 2, now_s));
        // 5 days left on a certificate read 1 day ago: 4 days, Crit.
        rows.insert(
            ("certificate".into(), "/etc/ssl/a.pem".into()),
            daily(5.0 * 86_400.0, 0.0, 1, now_s - 86_400.0),
        );
        rows.insert(("model".into(), "bert".into()), daily(0.95, -0.002, 10, now_s));
        rows.insert(("model-threshold".into(), "bert".into()), daily(0.85, 0.0, 10, now_s));
        let checks = judge(&cfg(), &rows, now);
        let find = |name: &str| {
            checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name}: {checks:#?}"))
        };
        let full = find("disk /backups");
        assert_eq!(full.status, Status::Warn, "{full:?}");
        assert!(full.summary.starts_with("full in 10.0 days, Theil-Sen over 10 points"), "{}", full.summary);
        assert_eq!(
            full.gauges[0].labels,
            [("resource".into(), "disk".into()), ("name".into(), "/backups".into())]
        );
        assert_eq!(find("disk /").summary, "not heading to full, Theil-Sen over 10 points");
        assert!(find("disk /var").summary.starts_with("not enough history"), "{checks:?}");
        assert!(find("disk /var").gauges.is_empty());
        let cert = find("certificate /etc/ssl/a.pem");
        assert_eq!((cert.status, cert.summary.as_str()), (Status::Crit, "expired in 4.0 days"));
        // 0.932 now, -0.002/day: 41 days to 0.85.
        let bert = find("model bert");
        assert_eq!(bert.status, Status::Ok, "{bert:?}");
        assert!(bert.summary.starts_with("below its threshold in 41.0 days"), "{}", bert.summary);
        // The backup directory sits on /backups.
        let backup = find("backup directory disk");
        assert_eq!(backup.status, Status::Warn);
        assert!(
            backup.summary.starts_with("/backups/database (its disk, /backups): full in"),
            "{}",
            backup.summary
        );
        assert!(backup.gauges.is_empty(), "the disk's gauge is not written twice");
    }

    #[test]
    fn levels_are_checked() {
        assert!(ForecastSection::default().validate().is_ok());
        let bad = ForecastSection { crit_days: 40, ..ForecastSection::default() };
        assert_eq!(bad.validate().unwrap_err().key, "crit_days");
        let bad = ForecastSection { fit_days: 0, ..ForecastSection::default() };
        assert_eq!(bad.validate().unwrap_err().key, "fit_days");
    }
}
