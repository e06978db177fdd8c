//! A snapshot of the app's `/metrics`, saved into the reports directory and checked for
//! malformed lines.

use crate::HealthError;
use crate::scrape::{ScrapeConfig, scrape};
use kyb_core::error_chain as chain;
use kyb_core::fs::{atomic_write, unused_path};
use kyb_core::{Check, Metric, Status, Unit};
use std::path::PathBuf;
use time::OffsetDateTime;
use time::macros::format_description;

/// Where to scrape and where to save.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotConfig {
    /// Full URL of the metrics endpoint.
    pub metrics_url: String,
    /// Directory the snapshot file goes into (created if missing).
    pub reports_dir: PathBuf,
    /// Deadline for the scrape.
    pub timeout_ms: u64,
    /// Bytes read at most.
    pub max_body_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Scrape and parse, but write nothing.
    pub dry_run: bool,
}

/// What [`snapshot_metrics`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotReport {
    /// The file written (or, in a dry run, the file that would be).
    pub path: Option<PathBuf>,
    /// Samples parsed.
    pub samples: usize,
    /// Malformed lines, as `line N: reason`.
    pub problems: Vec<String>,
    /// The check for the task report.
    pub check: Check,
}

/// Scrapes `/metrics` and saves the text as `app-metrics-YYYYMMDD-HHMMSS.prom`. The snapshot is
/// saved even when some lines are malformed; those are reported. `Err` only when the file cannot
/// be written.
pub async fn snapshot_metrics(
    cfg: &SnapshotConfig,
    now: OffsetDateTime,
) -> Result<SnapshotReport, HealthError> {
    let sc = ScrapeConfig {
        url: cfg.metrics_url.clone(),
        timeout_ms: cfg.timeout_ms,
        max_body_bytes: cfg.max_body_bytes,
        max_redirects: cfg.max_redirects,
    };
    let fetched = match scrape(&sc).await {
        Ok(f) => f,
        Err(e) => return Ok(failed(chain(&e))),
    };
    let parsed = &fetched.exposition;
    let mut problems: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
    if fetched.truncated {
        problems.push(format!("scrape larger than {} bytes; saved only that much", cfg.max_body_bytes));
    }
    let stamp = now
        .format(format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let path = unused_path(&cfg.reports_dir, &format!("app-metrics-{stamp}"), ".prom");
    if !cfg.dry_run {
        std::fs::create_dir_all(&cfg.reports_dir)
            .map_err(|source| HealthError::CreateDir { path: cfg.reports_dir.clone(), source })?;
        atomic_write(&path, &fetched.body, 0o640)
            .map_err(|source| HealthError::Write { path: path.clone(), source })?;
    }
    let verb = if cfg.dry_run { "would save" } else { "saved" };
    let mut summary = format!(
        "{verb} {} samples ({} bytes) to {}",
        parsed.samples.len(),
        fetched.body.len(),
        path.display()
    );
    let status = if problems.is_empty() {
        Status::Ok
    } else {
        summary.push_str(&format!(
            "; {} problem(s): {}",
            problems.len(),
            problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
        Status::Warn
    };
    let check = Check::new("metrics snapshot", status, summary)
        .with_metric(Metric::new("samples", parsed.samples.len() as f64, Unit::None))
        .with_metric(Metric::new("malformed_lines", parsed.errors.len() as f64, Unit::None));
    Ok(SnapshotReport { path: Some(path), samples: parsed.samples.len(), problems, check })
}

fn failed(reason: String) -> SnapshotReport {
    SnapshotReport {
        path: None,
        samples: 0,
        problems: Vec::new(),
        check: Check::new("metrics snapshot", Status::Crit, format!("not saved: {reason}")),
    }
}
