//! Database size history and the disk-full forecast: one size sample per run, a least-squares
//! growth line over recent samples, and the days left on the data disk at that growth.

use crate::session::{DbConfig, Session};
use crate::{DbMaintConfig, DbMaintError};
use kyb_core::{Check, Findings, Gauge, Metric, PgTimeout, RunCtx, Status, Unit, error_chain, human_bytes};
use serde::Serialize;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The history table's schema, as an ordered list of idempotent statements. A later version
/// appends steps (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS ...`) and never edits earlier ones, so
/// any older table is brought up to date by running the whole list.
const SCHEMA_STEPS: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS kyb_maint",
    "CREATE TABLE IF NOT EXISTS kyb_maint.db_size_history (\
         recorded_at timestamptz NOT NULL, \
         database name NOT NULL, \
         size_bytes bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS db_size_history_database_recorded_at \
         ON kyb_maint.db_size_history (database, recorded_at)",
];

/// Advisory lock key serialising the schema steps: concurrent `CREATE ... IF NOT EXISTS` can
/// still fail with a unique violation in the catalogs. Not [`crate::LOCK_KEY`], so recording a
/// sample never waits behind a long VACUUM.
const SCHEMA_LOCK_KEY: i64 = 0x6b79_625f_6361_7061;

/// Header of the trend CSV, written when the file is new.
const CSV_HEADER: &str = "recorded_at,size_bytes\n";

/// Mode of a new trend CSV.
const CSV_MODE: u32 = 0o640;

/// A fit needs samples at least this far apart: minutes of noise say nothing about growth.
const MIN_SPAN_S: f64 = 3600.0;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// Where the history goes and how the forecast is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    /// Where the runbook-compatible `database-size-trend.csv` is appended (one
    /// `<RFC 3339 UTC time>,<bytes>` line per run; header `recorded_at,size_bytes` written when
    /// the file is new). None = no CSV.
    pub trend_csv: Option<PathBuf>,
    /// A path on the filesystem that holds the server's data directory, for free space. None =
    /// ask the server for `data_directory` and use it only when the server is on this machine
    /// (loopback host or unix-socket directory) and the path exists here; otherwise the forecast
    /// is Unknown.
    pub data_disk: Option<PathBuf>,
    /// History used for the growth fit, in days.
    pub fit_days: u32,
    /// Warn when the disk fills in this many days or fewer.
    pub days_left_warn: f64,
    /// Crit when the disk fills in this many days or fewer.
    pub days_left_crit: f64,
}

/// The size, its growth and when the disk fills.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    /// The database measured.
    pub database: String,
    /// Its size now (`pg_database_size`).
    pub size_bytes: i64,
    /// Samples in the fit window, this run's included.
    pub samples: usize,
    /// Fitted growth; None without enough history.
    pub growth_bytes_per_day: Option<f64>,
    /// Space available to unprivileged writers on the data disk, when known.
    pub disk_free_bytes: Option<u64>,
    /// Size of the data disk, when known.
    pub disk_total_bytes: Option<u64>,
    /// Days until the free space is used up at the fitted growth; None when not growing or unknown.
    pub days_until_full: Option<f64>,
    /// The day the disk fills at that growth.
    pub full_on: Option<time::Date>,
    /// `database size`, `growth`, `disk forecast`, and `trend csv` when writing it failed; the
    /// files written (the trend CSV); in a dry run, as actions, what a run would record.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(CapacityReport);

/// One size measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    /// Unix time, seconds.
    at_s: f64,
    size_bytes: i64,
}

/// Free space on the data disk, or why it is not known.
enum Disk {
    Known {
        path: PathBuf,
        free_bytes: u64,
        total_bytes: u64,
    },
    /// The server is on another host and no `data_disk` is set: nothing to measure here, by
    /// design (a pod, an app host), so not a failure.
    Elsewhere(String),
    Unknown(String),
}

/// Records the database size at `ctx.now` into `kyb_maint.db_size_history` (and the trend CSV),
/// fits its growth over the last `fit_days` and forecasts when the data disk fills. A dry run
/// reads the history if there is one and records nothing.
pub async fn capacity(cfg: &DbMaintConfig, ctx: &RunCtx) -> Result<CapacityReport, DbMaintError> {
    let (c, now, dry_run) = (&cfg.capacity, ctx.now, ctx.dry_run);
    let cfg = &cfg.db;
    let mut session = Session::connect(cfg).await?;
    let row = session
        .query(
            cfg,
            "measuring the database size",
            "SELECT current_database()::text, pg_database_size(current_database())",
            &[],
        )
        .await?;
    let database: String = row[0].get(0);
    let size_bytes: i64 = row[0].get(1);

    let has_table = if dry_run {
        let row = session
            .query(
                cfg,
                "looking for the size history",
                "SELECT to_regclass('kyb_maint.db_size_history') IS NOT NULL",
                &[],
            )
            .await?;
        row[0].get::<_, bool>(0)
    } else {
        record(&mut session, cfg, now, &database, size_bytes).await?;
        true
    };
    let mut history =
        if has_table { read_history(&session, cfg, c, now, &database).await? } else { Vec::new() };
    if dry_run {
        history.push(Sample { at_s: unix_s(now), size_bytes });
    }

    let mut report = CapacityReport {
        database: database.clone(),
        size_bytes,
        samples: history.len(),
        growth_bytes_per_day: fit_growth_bytes_per_day(&history),
        disk_free_bytes: None,
        disk_total_bytes: None,
        days_until_full: None,
        full_on: None,
        findings: Findings::default(),
    };
    report.findings.checks.push(
        Check::new(
            "database size",
            Status::Ok,
            format!(
                "{database} is {} ({size_bytes} bytes)",
                human_bytes(u64::try_from(size_bytes).unwrap_or(0))
            ),
        )
        .with_metric(Metric::new("size_bytes", size_bytes as f64, Unit::Bytes)),
    );
    report.findings.checks.push(growth_check(report.growth_bytes_per_day, report.samples, c.fit_days));

    let disk = disk(&session, cfg, c).await;
    if let Disk::Known { free_bytes, total_bytes, .. } = &disk {
        report.disk_free_bytes = Some(*free_bytes);
        report.disk_total_bytes = Some(*total_bytes);
    }
    let forecast = forecast_check(&disk, report.growth_bytes_per_day, c, now);
    report.days_until_full = forecast.days_until_full;
    report.full_on = forecast.full_on;
    report.findings.checks.push(forecast.check);

    if dry_run {
        let actions = &mut report.findings.actions;
        actions.push("would record the size in kyb_maint.db_size_history".to_owned());
        if let Some(csv) = &c.trend_csv {
            actions.push(format!("would append a line to {}", csv.display()));
        }
    } else if let Some(path) = &c.trend_csv {
        match append_csv(path, now, size_bytes) {
            Ok(()) => report.findings.artifacts.push(path.clone()),
            Err(e) => report.findings.checks.push(Check::new(
                "trend csv",
                Status::Crit,
                format!(
                    "cannot append to {}: {} (the size is still recorded in kyb_maint.db_size_history)",
                    path.display(),
                    error_chain(&e)
                ),
            )),
        }
    }
    Ok(report)
}

/// Brings the schema up to date and inserts the sample, in one transaction under
/// [`SCHEMA_LOCK_KEY`] so two runs at once neither fail nor wait on each other's DDL for long.
async fn record(
    session: &mut Session,
    cfg: &DbConfig,
    now: OffsetDateTime,
    database: &str,
    size_bytes: i64,
) -> Result<(), DbMaintError> {
    let target = session.target.as_str();
    let tx = deadline(cfg, target, "starting the history transaction", session.client.transaction()).await?;
    // The session's lock_timeout is tuned for skipping busy tables; here the only waits are
    // another run's few statements, which must be waited for, not failed on.
    let lock_timeout = format!("{}ms", cfg.connect_timeout_ms);
    deadline(
        cfg,
        target,
        "setting the history lock timeout",
        tx.execute("SELECT set_config('lock_timeout', $1, true)", &[&lock_timeout]),
    )
    .await?;
    deadline(
        cfg,
        target,
        "taking the history schema lock",
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK_KEY]),
    )
    .await?;
    // Every run checks the schema (a later version may add to it), so the role needs CREATE on
    // the database and to own the table, even when nothing is left to create.
    for step in SCHEMA_STEPS {
        let what = "creating the size history table";
        deadline(cfg, target, what, tx.batch_execute(step)).await.map_err(|e| match e {
            DbMaintError::Query { what, target, source }
                if source.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                let t = &cfg.postgres;
                let remedy = format!(
                    "the role needs CREATE on the database and to own kyb_maint.db_size_history \
                     (GRANT CREATE ON DATABASE \"{}\" TO \"{}\", and let this role's first run create the table)",
                    t.dbname.replace('"', "\"\""),
                    t.user.replace('"', "\"\"")
                );
                DbMaintError::Privilege { what, target, remedy, source }
            }
            other => other,
        })?;
    }
    deadline(
        cfg,
        target,
        "recording the database size",
        tx.execute(
            "INSERT INTO kyb_maint.db_size_history (recorded_at, database, size_bytes) VALUES ($1, $2, $3)",
            &[&now, &database, &size_bytes],
        ),
    )
    .await?;
    deadline(cfg, target, "committing the size history", tx.commit()).await
}

/// This database's samples of the last `fit_days`.
async fn read_history(
    session: &Session,
    cfg: &DbConfig,
    c: &CapacityConfig,
    now: OffsetDateTime,
    database: &str,
) -> Result<Vec<Sample>, DbMaintError> {
    let since = now - time::Duration::days(i64::from(c.fit_days));
    let rows = session
        .query(
            cfg,
            "reading the size history",
            "SELECT extract(epoch FROM recorded_at)::float8, size_bytes FROM kyb_maint.db_size_history \
             WHERE database = $1 AND recorded_at >= $2 ORDER BY recorded_at",
            &[&database, &since],
        )
        .await?;
    Ok(rows.iter().map(|r| Sample { at_s: r.get(0), size_bytes: r.get(1) }).collect())
}

/// Least-squares slope of size over time, in bytes per day; None with fewer than two samples
/// or when they span less than [`MIN_SPAN_S`].
fn fit_growth_bytes_per_day(samples: &[Sample]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (min_s, max_s) = samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(s.at_s), hi.max(s.at_s)));
    if max_s - min_s < MIN_SPAN_S {
        return None;
    }
    let n = samples.len() as f64;
    // Centred on the means: Unix seconds squared would lose the precision the slope needs.
    let mean_days = samples.iter().map(|s| s.at_s / SECONDS_PER_DAY).sum::<f64>() / n;
    let mean_bytes = samples.iter().map(|s| s.size_bytes as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for s in samples {
        let dx = s.at_s / SECONDS_PER_DAY - mean_days;
        sxy += dx * (s.size_bytes as f64 - mean_bytes);
        sxx += dx * dx;
    }
    Some(sxy / sxx)
}

fn growth_check(growth_bytes_per_day: Option<f64>, samples: usize, fit_days: u32) -> Check {
    match growth_bytes_per_day {
        None => Check::new("growth", Status::Ok, format!("not enough history yet ({samples} samples)")),
        Some(g) => Check::new(
            "growth",
            Status::Ok,
            format!("{}/day over {samples} samples in the last {fit_days} days", signed_human(g)),
        )
        .with_metric(Metric::new("growth_bytes_per_day", g, Unit::None)),
    }
}

struct Forecast {
    check: Check,
    days_until_full: Option<f64>,
    full_on: Option<time::Date>,
}

fn forecast_check(disk: &Disk, growth: Option<f64>, c: &CapacityConfig, now: OffsetDateTime) -> Forecast {
    let plain = |status, summary: String| Forecast {
        check: Check::new("disk forecast", status, summary),
        days_until_full: None,
        full_on: None,
    };
    let (path, free_bytes) = match disk {
        Disk::Unknown(why) => return plain(Status::Unknown, why.clone()),
        Disk::Elsewhere(why) => return plain(Status::Ok, why.clone()),
        Disk::Known { path, free_bytes, .. } => (path, *free_bytes),
    };
    let free = format!("{} free on {}", human_bytes(free_bytes), path.display());
    let free_metric = Metric::new("disk_free_bytes", free_bytes as f64, Unit::Bytes);
    let growth = match growth {
        None => {
            let f = plain(Status::Ok, format!("no forecast until there is more history; {free}"));
            return Forecast { check: f.check.with_metric(free_metric), ..f };
        }
        Some(g) if g <= 0.0 => {
            let f = plain(Status::Ok, format!("not growing ({}/day); {free}", signed_human(g)));
            return Forecast { check: f.check.with_metric(free_metric), ..f };
        }
        Some(g) => g,
    };
    let days = free_bytes as f64 / growth;
    // Lower is worse here, the opposite of `Thresholds`.
    let status = if days <= c.days_left_crit {
        Status::Crit
    } else if days <= c.days_left_warn {
        Status::Warn
    } else {
        Status::Ok
    };
    // Beyond ~2700 years `time` cannot name the day; such a date would mean nothing anyway.
    let full_on = (days < 1_000_000.0)
        .then(|| now.checked_add(time::Duration::seconds_f64(days * SECONDS_PER_DAY)))
        .flatten()
        .map(|t| t.date());
    let when = full_on.map_or_else(|| "not within a thousand years".to_owned(), |d| format!("on {d}"));
    let summary = format!("full in {days:.0} days ({when}) at {}/day; {free}", signed_human(growth));
    Forecast {
        check: Check::new("disk forecast", status, summary)
            .with_metric(
                Metric::new("days_until_full", days, Unit::None)
                    .with_floor_thresholds(c.days_left_warn, c.days_left_crit),
            )
            .with_metric(free_metric)
            .with_gauge(Gauge::new("kyb_maint_database_disk_seconds_left", (days * 86_400.0).round())),
        days_until_full: Some(days),
        full_on,
    }
}

/// Free space on `data_disk`, or on the server's data directory when the server is local.
async fn disk(session: &Session, cfg: &DbConfig, c: &CapacityConfig) -> Disk {
    let path = match &c.data_disk {
        Some(p) => p.clone(),
        None => {
            let host = &cfg.postgres.host;
            if !is_local_host(host) {
                return Disk::Elsewhere(format!(
                    "not measured: the server at {host} is not on this machine; set [dbmaint] \
                     data_disk to a path on the filesystem that holds its data directory for a forecast"
                ));
            }
            let dir = match session
                .query(cfg, "reading data_directory", "SELECT current_setting('data_directory')", &[])
                .await
            {
                Ok(rows) => PathBuf::from(rows[0].get::<_, String>(0)),
                Err(e) => {
                    return Disk::Unknown(format!(
                        "cannot read the server's data_directory ({}): set [dbmaint] data_disk",
                        error_chain(&e)
                    ));
                }
            };
            if !dir.exists() {
                return Disk::Unknown(format!(
                    "the server's data directory {} is not visible here: set [dbmaint] data_disk",
                    dir.display()
                ));
            }
            dir
        }
    };
    // statvfs on a hung network mount blocks: keep it off the runtime and under the deadline.
    let probe = path.clone();
    let step = Duration::from_millis(cfg.connect_timeout_ms);
    match tokio::time::timeout(step, tokio::task::spawn_blocking(move || rustix::fs::statvfs(&probe))).await {
        Ok(Ok(Ok(st))) => Disk::Known {
            path,
            free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        },
        Ok(Ok(Err(e))) => Disk::Unknown(format!(
            "cannot read free space of {}: {}",
            path.display(),
            error_chain(&std::io::Error::from(e))
        )),
        Ok(Err(e)) => Disk::Unknown(format!("cannot read free space of {}: {e}", path.display())),
        Err(_) => Disk::Unknown(format!(
            "free space of {} not known within {} ms",
            path.display(),
            cfg.connect_timeout_ms
        )),
    }
}

/// Whether `host` names this machine: a loopback address, `localhost`, or a unix-socket
/// directory.
fn is_local_host(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Appends `<time>,<bytes>` to the trend CSV, writing the header first when the file is new.
fn append_csv(path: &Path, now: OffsetDateTime, size_bytes: i64) -> std::io::Result<()> {
    let at = now
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(std::io::Error::other)?
        .format(&Rfc3339)
        .map_err(std::io::Error::other)?;
    let line = format!("{at},{size_bytes}\n");
    match kyb_core::fs::create_new(path, CSV_MODE) {
        Ok(mut file) => {
            // A run that finds the file between our create and our write appends after the
            // header, not over it.
            rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::APPEND)?;
            file.write_all(CSV_HEADER.as_bytes())?;
            file.write_all(line.as_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // One write per line: O_APPEND keeps concurrent runs' lines whole.
            kyb_core::fs::open_append(path, CSV_MODE)?.write_all(line.as_bytes())
        }
        Err(e) => Err(e),
    }
}

/// Runs a database step under the connect deadline.
async fn deadline<T>(
    cfg: &DbConfig,
    target: &str,
    what: &'static str,
    step: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbMaintError> {
    tokio::time::timeout(Duration::from_millis(cfg.connect_timeout_ms), step)
        .await
        .map_err(|_| {
            DbMaintError::Timeout(PgTimeout {
                what,
                target: target.to_owned(),
                timeout_ms: cfg.connect_timeout_ms,
            })
        })?
        .map_err(|source| DbMaintError::Query { what, target: target.to_owned(), source })
}

fn unix_s(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// `1.5 MiB` or `-1.5 MiB`.
fn signed_human(bytes: f64) -> String {
    let magnitude = human_bytes(bytes.abs().round() as u64);
    if bytes < 0.0 { format!("-{magnitude}") } else { magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: f64, size_bytes: i64) -> Sample {
        Sample { at_s, size_bytes }
    }

    #[test]
    fn fit_needs_two_samples_an_hour_apart() {
        assert_eq!(fit_growth_bytes_per_day(&[]), None);
        assert_eq!(fit_growth_bytes_per_day(&[sample(0.0, 1)]), None);
        assert_eq!(fit_growth_bytes_per_day(&[sample(0.0, 1), sample(3599.0, 2)]), None);
        let g = fit_growth_bytes_per_day(&[sample(0.0, 0), sample(3600.0, 100)]).unwrap();
        assert!((g - 2400.0).abs() < 1e-6, "{g}");
    }

    #[test]
    fn fit_is_exact_on_a_line_at_unix_scale() {
        let start = 1.7e9;
        let samples: Vec<_> = (0..30)
            .map(|d| {
                sample(start + f64::from(d) * SECONDS_PER_DAY, 5_000_000_000 + i64::from(d) * 10_485_760)
            })
            .collect();
        let g = fit_growth_bytes_per_day(&samples).unwrap();
        assert!((g - 10_485_760.0).abs() < 1e-3, "{g}");
        let shrinking: Vec<_> = samples.iter().map(|s| sample(-s.at_s, s.size_bytes)).collect();
        assert!(fit_growth_bytes_per_day(&shrinking).unwrap() < 0.0);
    }

    #[test]
    fn local_hosts() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "/var/run/postgresql"]
        {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["db.example.com", "10.0.0.5", "::2", "", "localhost.example.com", "128.0.0.1"] {
            assert!(!is_local_host(h), "{h}");
        }
    }

    fn cfg(warn: f64, crit: f64) -> CapacityConfig {
        CapacityConfig {
            trend_csv: None,
            data_disk: None,
            fit_days: 90,
            days_left_warn: warn,
            days_left_crit: crit,
        }
    }

    #[test]
    fn forecast_statuses() {
        let now = time::macros::datetime!(2025-01-01 00:00 UTC);
        let disk = Disk::Known { path: "/data".into(), free_bytes: 1000, total_bytes: 2000 };
        let f = forecast_check(&disk, Some(10.0), &cfg(90.0, 30.0), now);
        assert_eq!(f.check.status, Status::Ok);
        assert_eq!(f.days_until_full, Some(100.0));
        assert_eq!(f.full_on, Some(time::macros::date!(2025 - 04 - 11)));
        assert!(f.check.summary.contains("2025-04-11"), "{}", f.check.summary);
        assert_eq!(forecast_check(&disk, Some(10.0), &cfg(100.0, 30.0), now).check.status, Status::Warn);
        assert_eq!(forecast_check(&disk, Some(10.0), &cfg(200.0, 100.0), now).check.status, Status::Crit);
        let flat = forecast_check(&disk, Some(0.0), &cfg(90.0, 30.0), now);
        assert_eq!(flat.check.status, Status::Ok);
        assert!(flat.check.summary.starts_with("not growing"), "{}", flat.check.summary);
        let tiny = forecast_check(&disk, Some(1e-12), &cfg(90.0, 30.0), now);
        assert_eq!(tiny.full_on, None);
        assert_eq!(tiny.check.status, Status::Ok);
        let unknown = forecast_check(&Disk::Unknown("set it".into()), Some(10.0), &cfg(90.0, 30.0), now);
        assert_eq!(unknown.check.status, Status::Unknown);
        // A server on another host, with no data_disk to measure, is not a failure.
        let elsewhere =
            forecast_check(&Disk::Elsewhere("not measured".into()), Some(10.0), &cfg(90.0, 30.0), now);
        assert_eq!((elsewhere.check.status, elsewhere.days_until_full), (Status::Ok, None));
    }
}
