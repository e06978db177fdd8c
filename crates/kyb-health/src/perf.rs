//! The weekly performance analysis: response times, percentiles per endpoint, request volume and
//! the 5xx rate, from one scrape, as a delta over the week when last week's snapshot is at hand.

use crate::scrape::{ScrapeConfig, scrape};
use crate::snapshot::SNAPSHOT_CUT_MARKER;
use kyb_core::config::FieldError;
use kyb_core::{Check, Findings, Gauge, Metric, RunCtx, Status, Thresholds, Unit, error_chain};
use kyb_prom::{Exposition, Sample};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// `[performance]`: the weekly performance analysis of the app's `/metrics` (where `[app]` says):
/// mean response time, the percentiles of each endpoint, request volume and the share of 5xx
/// answers, counted over the week when last week's snapshot is at hand.
///
/// The metric and label names are the app's; the levels are `{ warn = .., crit = .. }` tables
/// where a value at or above `warn` is Warn, at or above `crit` is Crit.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PerfConfig {
    /// The counter of requests, labelled with the endpoint and the HTTP status.
    pub requests_metric: String,
    /// The histogram of request durations, in seconds, labelled with the endpoint.
    pub duration_metric: String,
    /// The label naming the endpoint. When the histogram has no such label, `endpoint`, `path`,
    /// `route`, `handler` and `uri` are tried in that order (Warn, naming the one used); with
    /// none of them there are no per-endpoint rows (Warn, listing the labels it has).
    pub endpoint_label: String,
    /// The label holding the HTTP status code. When absent, `status`, `code`, `status_code` and
    /// `http_status` are tried the same way; with none of them the error rate is Unknown.
    pub status_label: String,
    /// Levels of the mean response time over all requests, in milliseconds.
    pub avg_ms: Thresholds,
    /// Levels of an endpoint's 95th percentile response time, in milliseconds.
    pub p95_ms: Thresholds,
    /// Levels of the share of requests answered 5xx, in percent.
    pub error_rate_pct: Thresholds,
    /// How many of the slowest endpoints (by p95) get a row and a textfile series, 1 to 100.
    /// It caps the series an app with many routes adds to Prometheus.
    pub endpoint_limit: usize,
}

impl Default for PerfConfig {
    fn default() -> PerfConfig {
        PerfConfig {
            requests_metric: "kyb_http_requests_total".into(),
            duration_metric: "kyb_http_request_duration_seconds".into(),
            endpoint_label: "endpoint".into(),
            status_label: "status".into(),
            avg_ms: Thresholds::new(500.0, 2000.0),
            p95_ms: Thresholds::new(1000.0, 5000.0),
            error_rate_pct: Thresholds::new(1.0, 5.0),
            endpoint_limit: 10,
        }
    }
}

impl PerfConfig {
    /// Checks what the types do not: the three levels, and that the metric and label names are
    /// Prometheus names.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, t) in
            [("avg_ms", self.avg_ms), ("p95_ms", self.p95_ms), ("error_rate_pct", self.error_rate_pct)]
        {
            t.validate().map_err(|e| FieldError::new(key, e.to_string()))?;
        }
        if !(1..=100).contains(&self.endpoint_limit) {
            let why = format!("must be between 1 and 100, got {}", self.endpoint_limit);
            return Err(FieldError::new("endpoint_limit", why));
        }
        for (key, name) in
            [("requests_metric", &self.requests_metric), ("duration_metric", &self.duration_metric)]
        {
            if !kyb_prom::is_metric_name(name) {
                return Err(FieldError::new(key, format!("`{name}` is not a metric name")));
            }
        }
        for (key, name) in [("endpoint_label", &self.endpoint_label), ("status_label", &self.status_label)] {
            if !kyb_prom::is_label_name(name) {
                return Err(FieldError::new(key, format!("`{name}` is not a label name")));
            }
        }
        Ok(())
    }
}

/// One endpoint's latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointLatency {
    /// The endpoint label value.
    pub endpoint: String,
    /// Requests measured.
    pub requests: f64,
    /// Mean, seconds.
    pub avg_s: f64,
    /// Median, seconds.
    pub p50_s: f64,
    /// 95th percentile, seconds.
    pub p95_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
}

/// What the analysis found. When the [`performance`] task's scrape failed there is nothing to
/// count: the figures are zero, NaN and empty, and its one check, `metrics`, says why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfReport {
    /// The counts are the change since this time (last week's snapshot); None: since the app
    /// started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Requests counted.
    pub total_requests: f64,
    /// Of which answered 5xx.
    pub error_requests: f64,
    /// Mean response time, seconds (NaN without requests; null in JSON).
    pub avg_s: f64,
    /// Every endpoint, slowest p95 first; empty when no endpoint label was found.
    pub endpoints: Vec<EndpointLatency>,
    /// The label the endpoints were read from: the configured one, or the common name found in
    /// its place; None when the histogram has neither.
    pub endpoint_label: Option<String>,
    /// The label the status codes were read from, likewise.
    pub status_label: Option<String>,
    /// `requests`, `error rate`, `response time`, `endpoint label` and `status label` when the
    /// configured one is absent, then one `endpoint <name>` per slowest ten. The [`performance`]
    /// task adds a note saying what the counts run from (last week's snapshot, or why not).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(PerfReport);

/// Label names apps commonly give the endpoint, tried in this order.
const ENDPOINT_LABELS: [&str; 5] = ["endpoint", "path", "route", "handler", "uri"];
/// Label names apps commonly give the HTTP status code, tried in this order.
const STATUS_LABELS: [&str; 4] = ["status", "code", "status_code", "http_status"];

/// Which label a per-label figure is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelChoice {
    /// The configured label is on the series.
    Configured,
    /// It is not; this common name is.
    Fallback(String),
    /// Neither it nor any common name is; the labels the series do have.
    Missing(Vec<String>),
}

/// The label of `samples` to read: `configured` when any sample has it (with a value), else the
/// first of `common` that one has.
fn choose_label<'a>(
    samples: impl IntoIterator<Item = &'a Sample>,
    configured: &str,
    common: &[&str],
) -> LabelChoice {
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for s in samples {
        present.extend(s.labels.iter().filter(|(_, v)| !v.is_empty()).map(|(n, _)| n.as_str()));
    }
    if present.contains(configured) {
        return LabelChoice::Configured;
    }
    match common.iter().find(|c| present.contains(**c)) {
        Some(c) => LabelChoice::Fallback((*c).to_owned()),
        None => LabelChoice::Missing(present.into_iter().filter(|n| *n != "le").map(str::to_owned).collect()),
    }
}

/// Analyses `now`; with `previous` (a scrape and its time), over the interval between them.
/// Counters that went down (the app restarted) count from zero.
pub fn analyze_performance(
    cfg: &PerfConfig,
    now: &Exposition,
    previous: Option<(&Exposition, OffsetDateTime)>,
) -> PerfReport {
    let samples = match previous {
        Some((prev, _)) => delta(&now.samples, &prev.samples),
        None => now.samples.clone(),
    };
    let since = previous.map(|(_, t)| t);
    let requests: Vec<&Sample> = kyb_prom::select(&samples, &cfg.requests_metric, &[]).collect();
    let total: f64 = requests.iter().map(|s| s.value).sum();
    let status_choice = choose_label(requests.iter().copied(), &cfg.status_label, &STATUS_LABELS);
    let status_label = chosen(&status_choice, &cfg.status_label);
    let errors: f64 = requests
        .iter()
        .filter(|s| {
            status_label
                .as_deref()
                .and_then(|l| s.label(l))
                .is_some_and(|c| c.len() == 3 && c.starts_with('5'))
        })
        .map(|s| s.value)
        .sum();
    let sum_name = format!("{}_sum", cfg.duration_metric);
    let count_name = format!("{}_count", cfg.duration_metric);
    let bucket_name = format!("{}_bucket", cfg.duration_metric);
    let histogram = samples.iter().filter(|s| s.name == count_name || s.name == bucket_name);
    let endpoint_choice = choose_label(histogram, &cfg.endpoint_label, &ENDPOINT_LABELS);
    let endpoint_label = chosen(&endpoint_choice, &cfg.endpoint_label);
    let by: Vec<&str> = endpoint_label.as_deref().into_iter().collect();
    let sums = kyb_prom::sum_by(kyb_prom::select(&samples, &sum_name, &[]), &by);
    let counts = kyb_prom::sum_by(kyb_prom::select(&samples, &count_name, &[]), &by);
    let (all_sum, all_count): (f64, f64) = (sums.values().sum(), counts.values().sum());
    let avg_s = if all_count > 0.0 { all_sum / all_count } else { f64::NAN };
    let quantile = |q| kyb_prom::histogram_quantile_by(q, &samples, &cfg.duration_metric, &[], &by);
    let (p50, p95, p99) = (quantile(0.5), quantile(0.95), quantile(0.99));
    let mut endpoints: Vec<EndpointLatency> = counts
        .iter()
        .filter(|(_, n)| **n > 0.0 && endpoint_label.is_some())
        .map(|(group, n)| EndpointLatency {
            endpoint: match group[0].as_str() {
                "" => format!("(no {} label)", by[0]),
                name => name.to_owned(),
            },
            requests: *n,
            avg_s: sums.get(group).copied().unwrap_or(f64::NAN) / n,
            p50_s: p50.get(group).copied().unwrap_or(f64::NAN),
            p95_s: p95.get(group).copied().unwrap_or(f64::NAN),
            p99_s: p99.get(group).copied().unwrap_or(f64::NAN),
        })
        .collect();
    endpoints.sort_by(|a, b| b.p95_s.total_cmp(&a.p95_s).then_with(|| a.endpoint.cmp(&b.endpoint)));

    let window = since.map_or_else(|| "since the app started".to_owned(), |t| format!("since {}", t.date()));
    let mut checks = Vec::new();
    checks.push(if requests.is_empty() {
        Check::new("requests", Status::Unknown, format!("no {} series in the scrape", cfg.requests_metric))
    } else {
        Check::new("requests", Status::Ok, format!("{total:.0} requests {window}")).with_metric(Metric::new(
            "requests",
            total,
            Unit::Counter,
        ))
    });
    if total > 0.0 && status_label.is_none() {
        checks.push(Check::new(
            "error rate",
            Status::Unknown,
            format!(
                "cannot tell 5xx answers apart: {}",
                label_problem(&status_choice, &cfg.status_label, &cfg.requests_metric, "status_label")
            ),
        ));
    } else if total > 0.0 {
        let rate = 100.0 * errors / total;
        let summary = format!("{rate:.2}% answered 5xx ({errors:.0} of {total:.0}) {window}");
        let metric = Metric::new("error_rate", round(rate, 3), Unit::Percent);
        checks.push(judged("error rate", &cfg.error_rate_pct, rate, summary, metric, 1.0));
    }
    checks.push(if avg_s.is_nan() {
        Check::new(
            "response time",
            Status::Unknown,
            format!("no {} histogram in the scrape", cfg.duration_metric),
        )
    } else {
        let ms = avg_s * 1000.0;
        let summary = format!("mean {ms:.1} ms over {all_count:.0} requests {window}");
        let metric = Metric::new("response_time_avg", round(avg_s, 6), Unit::Seconds);
        judged("response time", &cfg.avg_ms, ms, summary, metric, 1000.0)
    });
    // A missing status label already makes the error rate Unknown, saying why.
    if matches!(status_choice, LabelChoice::Fallback(_)) {
        let problem = label_problem(&status_choice, &cfg.status_label, &cfg.requests_metric, "status_label");
        checks.push(Check::new("status label", Status::Warn, problem));
    }
    if all_count > 0.0 && endpoint_choice != LabelChoice::Configured {
        let problem =
            label_problem(&endpoint_choice, &cfg.endpoint_label, &cfg.duration_metric, "endpoint_label");
        checks.push(Check::new("endpoint label", Status::Warn, problem));
    }
    for e in endpoints.iter().take(cfg.endpoint_limit) {
        let ms = |s: f64| s * 1000.0;
        let summary = format!(
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, mean {:.0} ms over {:.0} requests",
            ms(e.p50_s),
            ms(e.p95_s),
            ms(e.p99_s),
            ms(e.avg_s),
            e.requests
        );
        let p95 = Metric::new(format!("p95 {}", e.endpoint), round(e.p95_s, 6), Unit::Seconds);
        checks.push(
            judged(format!("endpoint {}", e.endpoint), &cfg.p95_ms, ms(e.p95_s), summary, p95, 1000.0)
                .with_gauge(
                    Gauge::new("kyb_maint_endpoint_p95_seconds", e.p95_s).label("endpoint", &e.endpoint),
                )
                .with_metric(Metric::new(format!("mean {}", e.endpoint), round(e.avg_s, 6), Unit::Seconds))
                .with_metric(Metric::new(format!("p50 {}", e.endpoint), round(e.p50_s, 6), Unit::Seconds))
                .with_metric(Metric::new(format!("p99 {}", e.endpoint), round(e.p99_s, 6), Unit::Seconds))
                .with_metric(Metric::new(format!("requests {}", e.endpoint), e.requests, Unit::Counter)),
        );
        // A histogram without _sum has no mean: no number rather than a NaN (null in JSON).
        if let Some(c) = checks.last_mut() {
            c.metrics.retain(|m| m.value.is_finite());
        }
    }
    PerfReport {
        since,
        total_requests: total,
        error_requests: errors,
        avg_s,
        endpoints,
        endpoint_label,
        status_label,
        findings: Findings::from_checks(checks),
    }
}

fn chosen(choice: &LabelChoice, configured: &str) -> Option<String> {
    match choice {
        LabelChoice::Configured => Some(configured.to_owned()),
        LabelChoice::Fallback(name) => Some(name.clone()),
        LabelChoice::Missing(_) => None,
    }
}

/// What is wrong with a label choice that is not the configured label, and what to set.
fn label_problem(choice: &LabelChoice, configured: &str, metric: &str, key: &str) -> String {
    match choice {
        LabelChoice::Configured => String::new(),
        LabelChoice::Fallback(name) => format!(
            "{metric} has no `{configured}` label; read `{name}` instead: set [performance] {key} = \"{name}\""
        ),
        LabelChoice::Missing(have) => {
            let have = if have.is_empty() { "none".to_owned() } else { have.join(", ") };
            format!(
                "{metric} has no `{configured}` label, nor a common one in its place; its labels: {have}; \
                 set [performance] {key} to the one the app uses"
            )
        }
    }
}

/// Each cumulative series of `now` less its value in `prev` (same name and labels); a series
/// new since, or one that went down (a restart), counts from zero. Gauges are not deltas, but
/// the analysis reads only counters and histograms.
fn delta(now: &[Sample], prev: &[Sample]) -> Vec<Sample> {
    let key = |s: &Sample| {
        let mut labels: Vec<(String, String)> = s.labels.clone();
        labels.sort();
        (s.name.clone(), labels)
    };
    let before: HashMap<_, f64> = prev.iter().map(|s| (key(s), s.value)).collect();
    now.iter()
        .map(|s| {
            let was = before.get(&key(s)).copied().unwrap_or(0.0);
            let value = if s.value >= was { s.value - was } else { s.value };
            Sample { value, ..s.clone() }
        })
        .collect()
}

/// The snapshot (`app-metrics-YYYYMMDD-HHMMSS.prom`, as the daily flow saves them) in `dir`
/// taken closest to a week before `now`, among those 6 to 8 days old.
pub fn previous_snapshot(dir: &Path, now: OffsetDateTime) -> Option<(PathBuf, OffsetDateTime)> {
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let target = now - time::Duration::days(7);
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = name.strip_prefix("app-metrics-")?.strip_suffix(".prom")?;
            // unused_path may add a `-N` suffix to a name taken twice in one second.
            let stamp = stamp.get(..15)?;
            let at = time::PrimitiveDateTime::parse(stamp, &format).ok()?.assume_utc();
            let off = (at - target).abs();
            (off <= time::Duration::days(1)).then(|| (e.path(), at, off))
        })
        .min_by_key(|(_, _, off)| *off)
        .map(|(p, at, _)| (p, at))
}

/// A check of `value` judged by `levels`, carrying `metric` with the same levels in the metric's
/// unit (`per_metric_unit` level units make one: 1000 for levels in ms on a metric in seconds).
fn judged(
    name: impl Into<String>,
    levels: &Thresholds,
    value: f64,
    summary: String,
    metric: Metric,
    per_metric_unit: f64,
) -> Check {
    let metric = metric.with_thresholds(levels.warn / per_metric_unit, levels.crit / per_metric_unit);
    Check::new(name, levels.classify(value), summary).with_metric(metric)
}

/// The weekly performance task: where the app's `/metrics` is, the levels, and where the daily
/// snapshots are (the one nearest a week back is the baseline).
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceTask {
    /// The scrape of the app's `/metrics`.
    pub scrape: ScrapeConfig,
    /// Metric and label names, and the levels.
    pub perf: PerfConfig,
    /// Where the daily flow saves its snapshots.
    pub reports_dir: PathBuf,
    /// The snapshots' size cap: a file larger than that (and its cut marker) is not a snapshot,
    /// and is not read.
    pub max_snapshot_bytes: u64,
}

/// Scrapes `/metrics` and analyses it over the week since the snapshot nearest a week before
/// `ctx.now`; without a usable one, over the time since the app started. A note says which, and
/// why a snapshot that is there cannot be used (cut at its cap, not a regular file, too large).
/// It only reads, so a dry run is the same run. The scrape failing is a Crit `metrics` check, so
/// the task itself never fails.
pub async fn performance(cfg: &PerformanceTask, ctx: &RunCtx) -> Result<PerfReport, Infallible> {
    let scraped = match scrape(&cfg.scrape).await {
        Ok(s) => s,
        Err(e) => {
            let check = Check::new("metrics", Status::Crit, error_chain(&e));
            return Ok(PerfReport {
                since: None,
                total_requests: 0.0,
                error_requests: 0.0,
                avg_s: f64::NAN,
                endpoints: Vec::new(),
                endpoint_label: None,
                status_label: None,
                findings: Findings::from_checks(vec![check]),
            });
        }
    };
    let (dir, cap, now) = (cfg.reports_dir.clone(), cfg.max_snapshot_bytes, ctx.now);
    // A directory listing, a file read and a parse of up to the cap: off the runtime's threads.
    let baseline = match tokio::task::spawn_blocking(move || baseline(&dir, cap, now)).await {
        Ok(b) => b,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let previous = match &baseline {
        Baseline::Found { exposition, at, .. } => Some((exposition, *at)),
        _ => None,
    };
    let mut report = analyze_performance(&cfg.perf, &scraped.exposition, previous);
    report.findings.notes.push(match baseline {
        Baseline::Found { path, .. } => format!("counts are the change since {}", path.display()),
        Baseline::Unreadable(why) => format!(
            "the snapshot from about a week ago cannot be used ({why}): counts run since the app started"
        ),
        Baseline::Cut(path) => format!(
            "the snapshot from about a week ago ({}) was cut at [app] max_snapshot_bytes: counts run since the app started",
            path.display()
        ),
        Baseline::Missing => "no snapshot from about a week ago: counts run since the app started".to_owned(),
    });
    Ok(report)
}

/// What the week's counts run from.
enum Baseline {
    /// The snapshot nearest a week back, parsed, and when it was taken.
    Found { path: PathBuf, at: OffsetDateTime, exposition: Exposition },
    /// No snapshot 6 to 8 days old.
    Missing,
    /// The snapshot was cut at its cap: series missing from it would count from zero.
    Cut(PathBuf),
    /// The snapshot cannot be read: the path and why.
    Unreadable(String),
}

fn baseline(dir: &Path, max_snapshot_bytes: u64, now: OffsetDateTime) -> Baseline {
    let Some((path, at)) = previous_snapshot(dir, now) else { return Baseline::Missing };
    // A snapshot is never larger than the cap (plus its cut marker): anything else in its place,
    // a FIFO or an old oversized file, is no baseline rather than a hang.
    let limit = max_snapshot_bytes.saturating_add(64 << 10);
    let text = match kyb_core::fs::read_regular(&path, limit) {
        Ok((text, _)) => text,
        Err(e) => return Baseline::Unreadable(format!("{}: {}", path.display(), error_chain(&e))),
    };
    let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(256)..]);
    if tail.contains(SNAPSHOT_CUT_MARKER) {
        return Baseline::Cut(path);
    }
    Baseline::Found { exposition: kyb_prom::parse(&String::from_utf8_lossy(&text)), at, path }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_of_traffic_is_the_difference_and_a_restart_counts_from_zero() {
        let prev = kyb_prom::parse(
            "kyb_http_requests_total{endpoint=\"/a\",status=\"200\"} 900\n\
             kyb_http_requests_total{endpoint=\"/a\",status=\"500\"} 100\n\
             kyb_http_request_duration_seconds_bucket{endpoint=\"/a\",le=\"0.1\"} 1000\n\
             kyb_http_request_duration_seconds_bucket{endpoint=\"/a\",le=\"+Inf\"} 1000\n\
             kyb_http_request_duration_seconds_sum{endpoint=\"/a\"} 50\n\
             kyb_http_request_duration_seconds_count{endpoint=\"/a\"} 1000\n",
        );
        let now = kyb_prom::parse(
            "kyb_http_requests_total{endpoint=\"/a\",status=\"200\"} 1890\n\
             kyb_http_requests_total{endpoint=\"/a\",status=\"500\"} 110\n\
             kyb_http_request_duration_seconds_bucket{endpoint=\"/a\",le=\"0.1\"} 1000\n\
             kyb_http_request_duration_seconds_bucket{endpoint=\"/a\",le=\"+Inf\"} 2000\n\
             kyb_http_request_duration_seconds_sum{endpoint=\"/a\"} 550\n\
             kyb_http_request_duration_seconds_count{endpoint=\"/a\"} 2000\n",
        );
        let week_ago = time::macros::datetime!(2026-11-19 02:00 UTC);
        let r = analyze_performance(&PerfConfig::default(), &now, Some((&prev, week_ago)));
        assert_eq!(r.total_requests, 1000.0);
        assert_eq!(r.error_requests, 10.0);
        assert!((r.avg_s - 0.5).abs() < 1e-12, "500 s over 1000 requests");
        // All of this week's requests fell above 0.1 s: the p95 is the highest finite bound.
        assert_eq!(r.endpoints[0].p95_s, 0.1);
        let err = r.findings.checks.iter().find(|c| c.name == "error rate").unwrap();
        assert_eq!(err.status, Status::Warn, "1% of requests: {err:?}");
        assert!(err.summary.contains("since 2026-11-19"), "{}", err.summary);
        // The counters went down: the app restarted, so the new values count whole.
        let r = analyze_performance(&PerfConfig::default(), &prev, Some((&now, week_ago)));
        assert_eq!(r.total_requests, 1000.0);
    }

    #[test]
    fn without_the_metrics_the_rows_are_unknown() {
        let r = analyze_performance(&PerfConfig::default(), &kyb_prom::parse("up 1\n"), None);
        let unknown: Vec<&str> = r
            .findings
            .checks
            .iter()
            .filter(|c| c.status == Status::Unknown)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(unknown, ["requests", "response time"]);
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample::new(name, labels, value)
    }

    proptest::proptest! {
        /// Whatever labels an app puts on its histogram, the endpoints are read from the
        /// configured label when any series has it, else from the first common name present,
        /// else from none, and no endpoint is ever nameless.
        #[test]
        fn the_endpoint_label_is_the_configured_one_else_the_first_common_one_present(
            series in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["endpoint", "path", "route", "handler", "uri", "method", "x"]),
                        "[a-z/]{0,2}",
                    ),
                    0..4,
                ),
                1..6,
            ),
            configured in proptest::sample::select(vec!["endpoint", "path", "uri", "method", "zz"]),
        ) {
            let metric = "kyb_http_request_duration_seconds";
            let mut samples = Vec::new();
            for labels in &series {
                let labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
                for (le, n) in [("0.1", 5.0), ("+Inf", 10.0)] {
                    let mut with_le = labels.clone();
                    with_le.push(("le", le));
                    samples.push(sample(&format!("{metric}_bucket"), &with_le, n));
                }
                samples.push(sample(&format!("{metric}_sum"), &labels, 1.0));
                samples.push(sample(&format!("{metric}_count"), &labels, 10.0));
            }
            let present = |name: &str| {
                samples.iter().any(|s| s.labels.iter().any(|(n, v)| n == name && !v.is_empty()))
            };
            let choice = choose_label(&samples, configured, &ENDPOINT_LABELS);
            match &choice {
                LabelChoice::Configured => proptest::prop_assert!(present(configured)),
                LabelChoice::Fallback(name) => {
                    proptest::prop_assert!(!present(configured) && present(name));
                    let earlier = ENDPOINT_LABELS.iter().take_while(|c| *c != name);
                    proptest::prop_assert!(earlier.clone().all(|c| !present(c)), "{name}");
                }
                LabelChoice::Missing(have) => {
                    proptest::prop_assert!(!present(configured));
                    proptest::prop_assert!(ENDPOINT_LABELS.iter().all(|c| !present(c)));
                    proptest::prop_assert!(!have.iter().any(|h| h == "le"));
                }
            }
            let cfg = PerfConfig { endpoint_label: configured.to_owned(), ..PerfConfig::default() };
            let r = analyze_performance(&cfg, &Exposition { samples, ..Exposition::default() }, None);
            proptest::prop_assert_eq!(r.endpoints.is_empty(), matches!(choice, LabelChoice::Missing(_)));
            proptest::prop_assert!(r.endpoints.iter().all(|e| !e.endpoint.is_empty()));
            let warned = r.findings.checks.iter().any(|c| c.name == "endpoint label" && c.status == Status::Warn);
            proptest::prop_assert_eq!(warned, choice != LabelChoice::Configured);
        }
    }

    fn section(text: &str) -> PerfConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_section_defaults_are_the_documented_ones() {
        let p = section("");
        assert_eq!(p, PerfConfig::default());
        assert_eq!(p.requests_metric, "kyb_http_requests_total");
        assert_eq!(p.duration_metric, "kyb_http_request_duration_seconds");
        assert_eq!((p.endpoint_label.as_str(), p.status_label.as_str()), ("endpoint", "status"));
        assert_eq!(p.avg_ms, Thresholds::new(500.0, 2000.0));
        assert_eq!(p.p95_ms, Thresholds::new(1000.0, 5000.0));
        assert_eq!(p.error_rate_pct, Thresholds::new(1.0, 5.0));
        p.validate().unwrap();
    }

    #[test]
    fn every_key_of_the_section_reads_and_round_trips() {
        let p = section(
            "requests_metric = \"http_requests_total\"\n\
             duration_metric = \"http_request_duration_seconds\"\n\
             endpoint_label = \"route\"\nstatus_label = \"code\"\n\
             avg_ms = { warn = 100, crit = 200 }\np95_ms = { warn = 300, crit = 400 }\n\
             error_rate_pct = { warn = 0.5, crit = 2 }\n",
        );
        assert_eq!(p.requests_metric, "http_requests_total");
        assert_eq!(p.duration_metric, "http_request_duration_seconds");
        assert_eq!((p.endpoint_label.as_str(), p.status_label.as_str()), ("route", "code"));
        assert_eq!(p.avg_ms, Thresholds::new(100.0, 200.0));
        assert_eq!(p.p95_ms, Thresholds::new(300.0, 400.0));
        assert_eq!(p.error_rate_pct, Thresholds::new(0.5, 2.0));
        assert_eq!(section(&toml::to_string(&p).unwrap()), p);
        assert!(toml::from_str::<PerfConfig>("p99_ms = { warn = 1, crit = 2 }").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        for (text, key, message) in [
            ("avg_ms = { warn = 3, crit = 2 }", "avg_ms", "warn (3) must not be above crit (2)"),
            ("p95_ms = { warn = 3, crit = 2 }", "p95_ms", "warn (3) must not be above crit (2)"),
            (
                "error_rate_pct = { warn = 3, crit = 2 }",
                "error_rate_pct",
                "warn (3) must not be above crit (2)",
            ),
            ("requests_metric = \"1x\"", "requests_metric", "`1x` is not a metric name"),
            ("duration_metric = \"a-b\"", "duration_metric", "`a-b` is not a metric name"),
            ("endpoint_label = \"a:b\"", "endpoint_label", "`a:b` is not a label name"),
            ("status_label = \"a-b\"", "status_label", "`a-b` is not a label name"),
        ] {
            assert_eq!(section(text).validate(), Err(FieldError::new(key, message)), "{text}");
        }
    }

    #[test]
    fn the_previous_snapshot_is_the_one_nearest_a_week_back() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "app-metrics-20261119-020000.prom",
            "app-metrics-20261118-020000.prom",
            "app-metrics-20261125-020000.prom",
            "app-metrics-20261119-020000-1.prom",
            "other.prom",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let now = time::macros::datetime!(2026-11-26 03:00 UTC);
        let (path, at) = previous_snapshot(dir.path(), now).unwrap();
        assert!(
            path.ends_with("app-metrics-20261119-020000.prom")
                || path.ends_with("app-metrics-20261119-020000-1.prom")
        );
        assert_eq!(at, time::macros::datetime!(2026-11-19 02:00 UTC));
        assert!(previous_snapshot(dir.path(), time::macros::datetime!(2026-12-20 00:00 UTC)).is_none());
    }
}
