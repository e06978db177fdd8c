//! A snapshot of the app's `/metrics`, saved into the reports directory and checked for
//! malformed lines. A scrape with no valid sample is not saved, and a snapshot is never larger
//! than its cap: a `/metrics` that streams garbage must not fill the disk a day at a time.

use crate::HealthError;
use crate::scrape::{ScrapeConfig, scrape};
use kyb_core::error_chain as chain;
use kyb_core::fs::{atomic_write, unused_path};
use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit};
use std::path::PathBuf;
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
    /// Bytes read at most by the other scrapes of this endpoint (the analyses); the snapshot
    /// reads at most `max_snapshot_bytes`.
    pub max_body_bytes: u64,
    /// Size cap of a snapshot file; a larger scrape is saved cut at a line end, with a Warn.
    pub max_snapshot_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
}

impl SnapshotConfig {
    /// How the analyses scrape the same endpoint: up to `max_body_bytes`, not the snapshot cap.
    pub fn scrape(&self) -> ScrapeConfig {
        ScrapeConfig {
            url: self.metrics_url.clone(),
            timeout_ms: self.timeout_ms,
            max_body_bytes: self.max_body_bytes,
            max_redirects: self.max_redirects,
        }
    }
}

/// The last line of a snapshot that was cut at the cap; the weekly analysis does not take such a
/// file as its baseline, since the series after the cut are missing from it.
pub const SNAPSHOT_CUT_MARKER: &str = "# kyb-maint: snapshot cut at max_snapshot_bytes";

/// What [`snapshot_metrics`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotReport {
    /// The file written (or, in a dry run, the file that would be).
    pub path: Option<PathBuf>,
    /// Samples parsed.
    pub samples: usize,
    /// Malformed lines, as `line N: reason`.
    pub problems: Vec<String>,
    /// One `metrics snapshot` check: what was saved (or would be), cut or not, and the problems;
    /// or why nothing was. The snapshot file, once written, is the one artifact.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(SnapshotReport);

/// Scrapes `/metrics` and saves the text as `app-metrics-YYYYMMDD-HHMMSS.prom`. The snapshot is
/// saved even when some lines are malformed (those are reported), but not when no line is a
/// valid sample (Crit). A scrape larger than `max_snapshot_bytes` is saved cut at the last line
/// end that fits, ending with [`SNAPSHOT_CUT_MARKER`] (Warn). The file is named after `ctx.now`;
/// a dry run scrapes and parses but writes nothing. `Err` only when the file cannot be written.
pub async fn snapshot_metrics(cfg: &SnapshotConfig, ctx: &RunCtx) -> Result<SnapshotReport, HealthError> {
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    let cap = cfg.max_snapshot_bytes;
    let sc = ScrapeConfig {
        url: cfg.metrics_url.clone(),
        timeout_ms: cfg.timeout_ms,
        max_body_bytes: cap,
        max_redirects: cfg.max_redirects,
    };
    let fetched = match scrape(&sc).await {
        Ok(f) => f,
        Err(e) => return Ok(failed(chain(&e))),
    };
    let marker = format!("{SNAPSHOT_CUT_MARKER} ({cap} bytes); the series after this point are missing\n");
    let (body, parsed) = if fetched.truncated {
        // Cut at a line end with room for the marker: a torn last line would be a broken sample.
        let room = fetched.body.len().saturating_sub(marker.len());
        let end = fetched.body[..room].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let kept = &fetched.body[..end];
        let mut body = Vec::with_capacity(end + marker.len());
        body.extend_from_slice(kept);
        if end > 0 {
            body.extend_from_slice(marker.as_bytes());
        }
        (bytes::Bytes::from(body), kyb_prom::parse(&String::from_utf8_lossy(kept)))
    } else {
        (fetched.body.clone(), fetched.exposition)
    };
    let mut problems: Vec<String> = parsed.errors.iter().map(|e| excerpt(&e.to_string())).collect();
    if parsed.samples.is_empty() {
        let size = kyb_core::human_bytes(fetched.body.len() as u64);
        let read = if fetched.truncated {
            format!("the first {size} (it sends more than the [app] max_snapshot_bytes cap)")
        } else {
            format!("the {size} it sent")
        };
        let mut why = format!(
            "not saved: no valid sample in {read} from {} ({} malformed line(s))",
            cfg.metrics_url,
            parsed.errors.len()
        );
        if let Some(first) = problems.first() {
            why.push_str(&format!("; first: {first}"));
        }
        let check = Check::new("metrics snapshot", Status::Crit, why)
            .with_metric(Metric::new("samples", 0.0, Unit::None))
            .with_metric(Metric::new("malformed_lines", parsed.errors.len() as f64, Unit::None));
        return Ok(SnapshotReport {
            path: None,
            samples: 0,
            problems,
            findings: Findings::from_checks(vec![check]),
        });
    }
    if fetched.truncated {
        // The cut is the news: it goes first.
        let saved = kyb_core::human_bytes(body.len() as u64);
        let cut = format!(
            "larger than the {} cap ([app] max_snapshot_bytes): saved the first {saved}, cut at a line end",
            kyb_core::human_bytes(cap)
        );
        problems.insert(0, cut);
    }
    let stamp = now
        .format(format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let path = unused_path(&cfg.reports_dir, &format!("app-metrics-{stamp}"), ".prom");
    if !dry_run {
        std::fs::create_dir_all(&cfg.reports_dir)
            .map_err(|source| HealthError::CreateDir { path: cfg.reports_dir.clone(), source })?;
        atomic_write(&path, &body, 0o640)
            .map_err(|source| HealthError::Write { path: path.clone(), source })?;
    }
    let verb = if dry_run { "would save" } else { "saved" };
    let mut summary =
        format!("{verb} {} samples ({} bytes) to {}", parsed.samples.len(), body.len(), path.display());
    let status = if problems.is_empty() {
        Status::Ok
    } else {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        summary.push_str(&format!("; {} problem(s): {}", problems.len(), shown.join("; ")));
        Status::Warn
    };
    let check = Check::new("metrics snapshot", status, summary)
        .with_metric(Metric::new("samples", parsed.samples.len() as f64, Unit::None))
        .with_metric(Metric::new("malformed_lines", parsed.errors.len() as f64, Unit::None))
        .with_metric(Metric::new("size", body.len() as f64, Unit::Bytes));
    let mut findings = Findings::from_checks(vec![check]);
    if !dry_run {
        findings.artifacts.push(path.clone());
    }
    Ok(SnapshotReport { path: Some(path), samples: parsed.samples.len(), problems, findings })
}

/// A parse problem short enough for a report line: garbage can make very long lines.
fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(120).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > 120 {
        out.push('…');
    }
    out
}

fn failed(reason: String) -> SnapshotReport {
    SnapshotReport {
        path: None,
        samples: 0,
        problems: Vec::new(),
        findings: Findings::from_checks(vec![Check::new(
            "metrics snapshot",
            Status::Crit,
            format!("not saved: {reason}"),
        )]),
    }
}
