//! What the app's `/metrics` says, as task reports: the weekly performance analysis and the
//! model checks. Shared by the flows and `kyb-mlcheck`.

use crate::backup::not_configured;
use crate::config::Config;
use kyb_core::{Check, Status, TaskReport, error_chain};
use kyb_health::{ScrapeConfig, Scraped, SnapshotConfig};
use std::time::Instant;
use time::OffsetDateTime;

fn scrape_config(s: &SnapshotConfig) -> ScrapeConfig {
    ScrapeConfig {
        url: s.metrics_url.clone(),
        timeout_ms: s.timeout_ms,
        max_body_bytes: s.max_body_bytes,
        max_redirects: s.max_redirects,
    }
}

/// The app's snapshot settings and a fresh scrape; or the task's report when there is no `[app]`
/// (not configured) or the scrape failed (Crit, with the reason).
async fn scrape<'a>(
    name: &str,
    cfg: &'a Config,
    clock: Instant,
) -> Result<(&'a SnapshotConfig, Scraped), TaskReport> {
    let Some(snap) = &cfg.snapshot else {
        return Err(not_configured(name, "metrics", "no [app] configured", clock));
    };
    let scraped = kyb_health::scrape(&scrape_config(snap)).await.map_err(|e| {
        let check = Check::new("metrics", Status::Crit, error_chain(&e));
        TaskReport::from_checks(name, vec![check], clock.elapsed())
    })?;
    Ok((snap, scraped))
}

/// Response times, percentiles, volume and 5xx rate; over the week when the daily flow saved a
/// snapshot about a week ago.
pub async fn performance(name: &str, cfg: &Config, now: OffsetDateTime) -> TaskReport {
    let clock = Instant::now();
    let (snap, scraped) = match scrape(name, cfg, clock).await {
        Ok(s) => s,
        Err(t) => return t,
    };
    let mut cut = None;
    let mut unreadable = None;
    let previous = kyb_health::previous_snapshot(&snap.reports_dir, now).and_then(|(path, at)| {
        // A snapshot is never larger than the cap (plus its cut marker): anything else in its
        // place, a FIFO or an old oversized file, is no baseline rather than a hang.
        let limit = snap.max_snapshot_bytes.saturating_add(64 << 10);
        let text = match kyb_core::fs::read_regular(&path, limit) {
            Ok((text, _)) => text,
            Err(e) => {
                unreadable = Some(format!("{}: {}", path.display(), error_chain(&e)));
                return None;
            }
        };
        // Series missing from a cut snapshot would count from zero: no baseline is better.
        let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(256)..]);
        if tail.contains(kyb_health::SNAPSHOT_CUT_MARKER) {
            cut = Some(path);
            return None;
        }
        Some((kyb_prom::parse(&String::from_utf8_lossy(&text)), at, path))
    });
    let r = kyb_health::analyze_performance(
        &cfg.performance,
        &scraped.exposition,
        previous.as_ref().map(|(e, at, _)| (e, *at)),
    );
    let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
    t.notes.push(match (&previous, &cut) {
        (Some((_, _, path)), _) => format!("counts are the change since {}", path.display()),
        (None, None) if unreadable.is_some() => format!(
            "the snapshot from about a week ago cannot be used ({}): counts run since the app started",
            unreadable.unwrap_or_default()
        ),
        (None, Some(path)) => format!(
            "the snapshot from about a week ago ({}) was cut at [app] max_snapshot_bytes: counts run since the app started",
            path.display()
        ),
        (None, None) => "no snapshot from about a week ago: counts run since the app started".to_owned(),
    });
    t
}

/// Accuracy per model against its thresholds, its trend, usage and latency.
pub async fn mlcheck(name: &str, cfg: &Config, now: OffsetDateTime, dry_run: bool) -> TaskReport {
    let clock = Instant::now();
    let (_, scraped) = match scrape(name, cfg, clock).await {
        Ok(s) => s,
        Err(t) => return t,
    };
    let mut ml = cfg.ml.clone();
    ml.dry_run = dry_run;
    let r = kyb_mlcheck::check(&ml, &scraped.exposition, now);
    let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
    if dry_run {
        if let Some(h) = &ml.history {
            t.actions.push(format!("would append this run's accuracies to {}", h.display()));
        }
    } else {
        t.artifacts.extend(r.history_written);
    }
    t
}
