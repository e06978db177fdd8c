//! ML model checks from one `/metrics` scrape: each model's accuracy against its own thresholds,
//! its trend against earlier runs, its share of the requests, and its latency when exported.
//!
//! Any number of models: the configured ones are judged (a configured model with no accuracy
//! series is Unknown, never Ok), and models the scrape shows without a threshold are listed.
//! Each accuracy series (the model plus its other labels, such as a `version`) is judged on its
//! own; a value that is NaN or outside 0 to 1 is Unknown, with the reason.
//! Accuracy is recorded in a JSON-lines history file, so the next run can tell how far it fell.
//!
//! [`check_models`] is the task: it scrapes the app's `/metrics` and judges what it read with
//! [`check`], which judges a scrape already parsed.
//!
//! ```no_run
//! use kyb_mlcheck::{MlConfig, ModelCheck, check_models};
//! # async fn demo() {
//! let cfg = ModelCheck {
//!     scrape: kyb_health::ScrapeConfig {
//!         url: "http://127.0.0.1:8080/metrics".into(),
//!         timeout_ms: 5_000,
//!         max_body_bytes: 64 << 20,
//!         max_redirects: 5,
//!     },
//!     ml: MlConfig::default(),
//! };
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
//! let Ok(report) = check_models(&cfg, &ctx).await;
//! for c in &report.findings.checks {
//!     println!("{} {}: {}", c.status, c.name, c.summary);
//! }
//! # }
//! ```
//!
//! ```
//! use kyb_mlcheck::{MlConfig, check};
//! let scrape = kyb_prom::parse(
//!     "kyb_ml_model_accuracy{model=\"bert\"} 0.84\nkyb_ml_model_accuracy{model=\"distilbert\"} 0.86\n",
//! );
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
//! let report = check(&MlConfig::default(), &scrape, &ctx);
//! let bert = report.findings.checks.iter().find(|c| c.name == "accuracy bert").unwrap();
//! assert_eq!(bert.status, kyb_core::Status::Warn);
//! ```
//!
//! [`MlConfig`] is also the `[ml]` config section:
//!
//! ```
//! use kyb_mlcheck::MlConfig;
//! use std::path::Path;
//!
//! let mut cfg: MlConfig = toml::from_str(
//!     "history = \"ml.jsonl\"\ntrend_days = 14\n\n[[models]]\nname = \"bert\"\nwarn_below = 0.9\n",
//! )
//! .unwrap();
//! cfg.resolve_paths(Path::new("/etc/kyb-maint"));
//! cfg.validate().unwrap();
//! assert_eq!(cfg.history.as_deref(), Some(Path::new("/etc/kyb-maint/ml.jsonl")));
//! assert_eq!(cfg.models.len(), 1);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod history;

use kyb_core::config::{FieldError, resolve_path};
use kyb_core::{Check, Findings, Gauge, Metric, RunCtx, Status, Unit, error_chain};
use kyb_health::ScrapeConfig;
use kyb_prom::{Exposition, Matcher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

pub use history::Record;

/// One `[[ml.models]]` entry: a model's accuracy levels. Below `warn_below` is Warn, below
/// `crit_below` Crit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelThresholds {
    /// The model's label value, e.g. `bert`; not empty, each model once.
    #[serde(rename = "name")]
    pub model: String,
    /// Accuracy below this warns, 0 to 1.
    pub warn_below: f64,
    /// Accuracy below this is Crit, 0 to 1 and not above `warn_below`. Left out: never Crit on
    /// accuracy alone.
    #[serde(default)]
    pub crit_below: Option<f64>,
}

/// `[ml]`: the model checks of the weekly flow and `kyb-mlcheck`, from the app's `/metrics`:
/// each model's accuracy against its levels, its trend against earlier runs, its share of the
/// requests, and its latency when exported.
///
/// ```toml
/// [[ml.models]]
/// name = "bert"
/// warn_below = 0.85
/// crit_below = 0.80
///
/// [[ml.models]]
/// name = "distilbert"
/// warn_below = 0.80
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MlConfig {
    /// The models to judge, one `[[ml.models]]` entry each. Left out, the runbook's two apply:
    /// bert warns below 0.85, distilbert below 0.80. Given entries replace them; models the
    /// scrape shows without an entry are listed with no threshold.
    pub models: Vec<ModelThresholds>,
    /// Gauge of accuracy per model, 0 to 1: a Prometheus metric name.
    pub accuracy_metric: String,
    /// Counter of inference requests per model: a Prometheus metric name.
    pub requests_metric: String,
    /// Histogram of inference latency per model, in seconds (reported when exported): a
    /// Prometheus metric name.
    pub latency_metric: String,
    /// The label naming the model.
    pub model_label: String,
    /// JSON-lines file of earlier runs' accuracies, for the trend; a relative path is relative
    /// to the config file's directory. Left out, kyb-maint keeps it in `[paths]
    /// maintenance_dir` as `ml-accuracy-history.jsonl` (to the library, None means no trend).
    pub history: Option<PathBuf>,
    /// Warn when accuracy fell by more than this many percentage points over `trend_days`; 0 or
    /// more.
    pub max_drop_points: f64,
    /// How far back the trend looks, in days: the oldest run in this window is compared with
    /// this one.
    #[schemars(range(min = 1, max = 3650))]
    pub trend_days: u32,
}

impl Default for MlConfig {
    /// The runbook's models and levels: bert at least 0.85, distilbert at least 0.80.
    fn default() -> MlConfig {
        MlConfig {
            models: vec![
                ModelThresholds { model: "bert".into(), warn_below: 0.85, crit_below: None },
                ModelThresholds { model: "distilbert".into(), warn_below: 0.80, crit_below: None },
            ],
            accuracy_metric: "kyb_ml_model_accuracy".into(),
            requests_metric: "kyb_ml_model_requests_total".into(),
            latency_metric: "kyb_ml_model_latency_seconds".into(),
            model_label: "model".into(),
            history: None,
            max_drop_points: 2.0,
            trend_days: 30,
        }
    }
}

impl MlConfig {
    /// Checks what the types do not: metric and label names, the trend's window and drop, and
    /// each model named once with levels from 0 to 1, crit not above warn.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, name) in [
            ("accuracy_metric", &self.accuracy_metric),
            ("requests_metric", &self.requests_metric),
            ("latency_metric", &self.latency_metric),
        ] {
            if !kyb_prom::is_metric_name(name) {
                return Err(FieldError::new(key, format!("`{name}` is not a metric name")));
            }
        }
        if !kyb_prom::is_label_name(&self.model_label) {
            return Err(FieldError::new(
                "model_label",
                format!("`{}` is not a label name", self.model_label),
            ));
        }
        if !(self.max_drop_points.is_finite() && self.max_drop_points >= 0.0) {
            return Err(FieldError::new("max_drop_points", "must be a number of points, 0 or more"));
        }
        if self.trend_days == 0 || self.trend_days > 3650 {
            return Err(FieldError::new(
                "trend_days",
                format!("must be between 1 and 3650, got {}", self.trend_days),
            ));
        }
        let level = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        for (i, m) in self.models.iter().enumerate() {
            if m.model.is_empty() || self.models[..i].iter().any(|o| o.model == m.model) {
                return Err(FieldError::new(
                    "models",
                    format!("model names must be given once and not be empty: `{}`", m.model),
                ));
            }
            if !level(m.warn_below) || !m.crit_below.is_none_or(level) {
                return Err(FieldError::new(
                    "models",
                    format!("accuracy levels of `{}` must be between 0 and 1", m.model),
                ));
            }
            if m.crit_below.is_some_and(|c| c > m.warn_below) {
                return Err(FieldError::new(
                    "models",
                    format!("crit_below of `{}` must not be above warn_below", m.model),
                ));
            }
        }
        Ok(())
    }

    /// Makes a relative `history` absolute against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        self.history = self.history.take().map(|p| resolve_path(base, &p));
    }
}

/// The model check task: where the app's `/metrics` is, and how to judge its models.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCheck {
    /// The scrape of the app's `/metrics`.
    pub scrape: ScrapeConfig,
    /// The models, their levels and the accuracy history.
    pub ml: MlConfig,
}

/// One accuracy series of a model: a model may export several, told apart by their other labels
/// (a `version`, a `dataset`), and each is judged on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesAccuracy {
    /// The labels other than the model label, by name; empty for a model's one plain series.
    pub labels: BTreeMap<String, String>,
    /// The value as exported: NaN or outside 0 to 1 when the exporter is wrong (null in JSON).
    pub value: f64,
    /// The oldest valid accuracy of this series in the trend window, and when; in JSON
    /// `{"at": RFC 3339, "accuracy": ..}`, as the history records it.
    #[serde(serialize_with = "baseline_json")]
    pub baseline: Option<(OffsetDateTime, f64)>,
}

fn baseline_json<S: serde::Serializer>(b: &Option<(OffsetDateTime, f64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Then {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        accuracy: f64,
    }
    b.map(|(at, accuracy)| Then { at, accuracy }).serialize(s)
}

impl SeriesAccuracy {
    /// The value, when it is an accuracy (a number from 0 to 1).
    pub fn valid(&self) -> Option<f64> {
        (0.0..=1.0).contains(&self.value).then_some(self.value)
    }
}

/// What was seen of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// Its name.
    pub model: String,
    /// Its accuracy series, each judged on its own; empty when it exports none.
    pub series: Vec<SeriesAccuracy>,
    /// Inference requests so far: the total of its request counters.
    pub requests: Option<f64>,
    /// Its share of all models' requests, in percent.
    pub share_pct: Option<f64>,
    /// Median latency, seconds, when a latency histogram is exported.
    pub latency_p50_s: Option<f64>,
    /// 95th percentile latency, seconds.
    pub latency_p95_s: Option<f64>,
}

/// The models and the checks made of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MlReport {
    /// One entry per model, configured ones first; none when the scrape failed.
    pub models: Vec<ModelReport>,
    /// `accuracy <model>`, `trend <model>`, `usage <model>`, `latency <model>`, and `history`
    /// when the history file could not be read or written. A model with labelled accuracy series
    /// has one `accuracy` and `trend` check per series, named with its labels:
    /// `accuracy bert{version="2"}`. Only `metrics` when the scrape failed. The history file is
    /// the artifact when records were appended; a dry run's action says it would be.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(MlReport);

/// The weekly model check: scrapes the app's `/metrics` and judges it with [`check`], appending
/// to the history unless `ctx` is a dry run. The scrape failing is a Crit `metrics` check, so the
/// task itself never fails.
pub async fn check_models(cfg: &ModelCheck, ctx: &RunCtx) -> Result<MlReport, Infallible> {
    let scraped = match kyb_health::scrape(&cfg.scrape).await {
        Ok(s) => s,
        Err(e) => {
            let check = Check::new("metrics", Status::Crit, error_chain(&e));
            return Ok(MlReport { models: Vec::new(), findings: Findings::from_checks(vec![check]) });
        }
    };
    let (ml, ctx) = (cfg.ml.clone(), ctx.clone());
    // The history is read and appended to: off the runtime's threads.
    match tokio::task::spawn_blocking(move || check(&ml, &scraped.exposition, &ctx)).await {
        Ok(report) => Ok(report),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Judges the models in `scrape` at `ctx.now` and, unless `ctx` is a dry run, appends their
/// accuracies to the history.
///
/// Accuracy is a gauge: each series is judged alone, never added to its siblings. Request
/// counters are added up per model, which is what a model's usage is.
pub fn check(cfg: &MlConfig, scrape: &Exposition, ctx: &RunCtx) -> MlReport {
    let now = ctx.now;
    let label = cfg.model_label.as_str();
    // Configured models first, then any others the scrape shows.
    let mut names: Vec<String> = cfg.models.iter().map(|m| m.model.clone()).collect();
    let seen: BTreeSet<String> = kyb_prom::select(&scrape.samples, &cfg.accuracy_metric, &[])
        .chain(kyb_prom::select(&scrape.samples, &cfg.requests_metric, &[]))
        .filter_map(|s| s.label(label).map(str::to_owned))
        .filter(|m| !m.is_empty())
        .collect();
    names.extend(seen.into_iter().filter(|m| !cfg.models.iter().any(|c| &c.model == m)));

    let total_requests: f64 = kyb_prom::select(&scrape.samples, &cfg.requests_metric, &[])
        .map(|s| s.value)
        .filter(|v| v.is_finite())
        .sum();
    let (past, history_problem) = match &cfg.history {
        Some(path) => match history::read(path) {
            Ok(records) => (records, None),
            Err(e) => (Vec::new(), Some(format!("cannot read {}: {e}; no trend this run", path.display()))),
        },
        None => (Vec::new(), None),
    };
    let since = now - time::Duration::days(i64::from(cfg.trend_days));

    let mut models = Vec::new();
    let mut checks = Vec::new();
    for name in &names {
        let thresholds = cfg.models.iter().find(|m| &m.model == name);
        let m = [Matcher::eq(label, name)];
        let mut series: Vec<SeriesAccuracy> = Vec::new();
        for s in kyb_prom::select(&scrape.samples, &cfg.accuracy_metric, &m) {
            // Empty values count as absent, as Prometheus stores them.
            let labels: BTreeMap<String, String> = s
                .labels
                .iter()
                .filter(|(n, v)| n != label && !v.is_empty())
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            // A repeated series (an exporter bug Prometheus would refuse) is judged once.
            if series.iter().any(|x| x.labels == labels) {
                continue;
            }
            let baseline = past
                .iter()
                .filter(|r| &r.model == name && r.labels == labels)
                .filter(|r| r.at >= since && r.at < now && (0.0..=1.0).contains(&r.accuracy))
                .min_by_key(|r| r.at)
                .map(|r| (r.at, r.accuracy));
            series.push(SeriesAccuracy { labels, value: s.value, baseline });
        }
        if series.is_empty() {
            checks.push(Check::new(
                format!("accuracy {name}"),
                Status::Unknown,
                format!(
                    "no {}{{{label}=\"{name}\"}} value in the scrape: the model is not reporting",
                    cfg.accuracy_metric
                ),
            ));
        }
        for s in &series {
            checks.push(accuracy_check(cfg, name, s, thresholds));
            if let Some(check) = trend_check(cfg, name, s) {
                checks.push(check);
            }
        }

        let requests: Option<f64> = {
            let values: Vec<f64> =
                kyb_prom::select(&scrape.samples, &cfg.requests_metric, &m).map(|s| s.value).collect();
            (!values.is_empty()).then(|| values.iter().filter(|v| v.is_finite()).sum())
        };
        let share_pct = requests.filter(|_| total_requests > 0.0).map(|r| 100.0 * r / total_requests);
        checks.push(match (requests, share_pct) {
            (Some(r), Some(share)) => Check::new(
                format!("usage {name}"),
                Status::Ok,
                format!("{r:.0} requests, {share:.1}% of all models'"),
            )
            .with_metric(Metric::new(format!("requests_{name}"), r, Unit::Counter)),
            (Some(r), None) => Check::new(format!("usage {name}"), Status::Ok, format!("{r:.0} requests")),
            (None, _) => Check::new(
                format!("usage {name}"),
                Status::Unknown,
                format!("no {}{{{label}=\"{name}\"}} series in the scrape", cfg.requests_metric),
            ),
        });

        // Buckets are counters: adding a model's series per bound is what `sum by (le)` does.
        let q = |q: f64| {
            kyb_prom::histogram_quantile_by(q, &scrape.samples, &cfg.latency_metric, &m, &[])
                .into_values()
                .next()
                .filter(|v| v.is_finite())
        };
        let (p50, p95) = (q(0.5), q(0.95));
        if let (Some(p50), Some(p95)) = (p50, p95) {
            checks.push(
                Check::new(
                    format!("latency {name}"),
                    Status::Ok,
                    format!("p50 {:.0} ms, p95 {:.0} ms", p50 * 1000.0, p95 * 1000.0),
                )
                .with_metric(Metric::new(
                    format!("latency_p95_{name}"),
                    round(p95, 6),
                    Unit::Seconds,
                )),
            );
        }
        models.push(ModelReport {
            model: name.clone(),
            series,
            requests,
            share_pct,
            latency_p50_s: p50,
            latency_p95_s: p95,
        });
    }

    if let Some(problem) = history_problem {
        checks.push(Check::new("history", Status::Warn, problem));
    }
    let mut found = Findings::default();
    match &cfg.history {
        Some(path) if ctx.dry_run => {
            found.actions.push(format!("would append this run's accuracies to {}", path.display()));
        }
        Some(path) => {
            let records: Vec<Record> = models
                .iter()
                .flat_map(|m| {
                    m.series.iter().filter_map(|s| {
                        Some(Record {
                            at: now,
                            model: m.model.clone(),
                            labels: s.labels.clone(),
                            accuracy: s.valid()?,
                        })
                    })
                })
                .collect();
            match history::append(path, &records) {
                Ok(()) if !records.is_empty() => found.artifacts.push(path.clone()),
                Ok(()) => {}
                Err(e) => checks.push(Check::new(
                    "history",
                    Status::Crit,
                    format!(
                        "cannot append to {}: {e}; the next run has no trend from this one",
                        path.display()
                    ),
                )),
            }
        }
        None => {}
    }
    found.checks = checks;
    MlReport { models, findings: found }
}

/// `bert` for a plain series, `bert{version="2"}` for a labelled one.
fn series_name(model: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return model.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{model}{{{}}}", inner.join(","))
}

fn accuracy_check(cfg: &MlConfig, model: &str, s: &SeriesAccuracy, t: Option<&ModelThresholds>) -> Check {
    let name = series_name(model, &s.labels);
    let check_name = format!("accuracy {name}");
    let mut selector = s.labels.clone();
    selector.insert(cfg.model_label.clone(), model.to_owned());
    let selector = series_name(&cfg.accuracy_metric, &selector);
    let acc = s.value;
    if acc.is_nan() {
        return Check::new(
            check_name,
            Status::Unknown,
            format!("{selector} reports NaN: no accuracy to judge"),
        );
    }
    if s.valid().is_none() {
        return Check::new(
            check_name,
            Status::Unknown,
            format!(
                "{selector} reports {acc}, outside 0 to 1: not an accuracy; check how the app \
                 exports it (a percentage, or series added together?)"
            ),
        )
        .with_metric(Metric::new(format!("accuracy_{name}"), acc, Unit::None));
    }
    let metric = Metric::new(format!("accuracy_{name}"), acc, Unit::None);
    let gauge = Gauge::new("kyb_maint_model_accuracy", acc).label("model", name.clone());
    let Some(t) = t else {
        return Check::new(check_name, Status::Ok, format!("{acc:.3} (no threshold configured)"))
            .with_metric(metric)
            .with_gauge(gauge);
    };
    let status = match t.crit_below {
        Some(crit) if acc < crit => Status::Crit,
        _ if acc < t.warn_below => Status::Warn,
        _ => Status::Ok,
    };
    let levels = match t.crit_below {
        Some(crit) => format!("warn below {}, crit below {crit}", t.warn_below),
        None => format!("warn below {}", t.warn_below),
    };
    let advice = if status == Status::Ok { "" } else { "; consider retraining" };
    let metric = Metric { warn: Some(t.warn_below), crit: t.crit_below, lower_is_worse: true, ..metric };
    // The threshold beside the accuracy, so an alert rule compares the two.
    let threshold = Gauge::new("kyb_maint_model_accuracy_threshold", t.warn_below).label("model", name);
    Check::new(check_name, status, format!("{acc:.3} ({levels}){advice}"))
        .with_metric(metric)
        .with_gauge(gauge)
        .with_gauge(threshold)
}

fn trend_check(cfg: &MlConfig, model: &str, s: &SeriesAccuracy) -> Option<Check> {
    let (now_acc, (at, then)) = (s.valid()?, s.baseline?);
    let name = series_name(model, &s.labels);
    let drop = (then - now_acc) * 100.0;
    let status = if drop > cfg.max_drop_points { Status::Warn } else { Status::Ok };
    let day = at.date();
    let summary = if drop > 0.0 {
        format!(
            "down {drop:.1} points since {day} ({then:.3} then, {now_acc:.3} now; warn above {})",
            cfg.max_drop_points
        )
    } else {
        format!("not down since {day} ({then:.3} then, {now_acc:.3} now)")
    };
    Some(Check::new(format!("trend {name}"), status, summary).with_metric(Metric::new(
        format!("accuracy_drop_{name}"),
        round(drop, 2),
        Unit::None,
    )))
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> MlConfig {
        toml::from_str(text).unwrap()
    }

    fn model(name: &str, warn_below: f64, crit_below: Option<f64>) -> ModelThresholds {
        ModelThresholds { model: name.into(), warn_below, crit_below }
    }

    #[test]
    fn defaults_are_the_runbooks() {
        let cfg = section("");
        assert_eq!(cfg, MlConfig::default());
        assert_eq!(cfg.models, [model("bert", 0.85, None), model("distilbert", 0.80, None)]);
        assert_eq!(cfg.accuracy_metric, "kyb_ml_model_accuracy");
        assert_eq!(cfg.requests_metric, "kyb_ml_model_requests_total");
        assert_eq!(cfg.latency_metric, "kyb_ml_model_latency_seconds");
        assert_eq!(cfg.model_label, "model");
        assert_eq!(cfg.history, None);
        assert_eq!((cfg.max_drop_points, cfg.trend_days), (2.0, 30));
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn given_models_replace_the_defaults() {
        assert_eq!(section("models = []").models, []);
        let cfg = section("[[models]]\nname = \"gpt\"\nwarn_below = 0.7\n");
        assert_eq!(cfg.models, [model("gpt", 0.7, None)]);
    }

    #[test]
    fn a_full_section_round_trips() {
        let text = r#"
            accuracy_metric = "app_accuracy"
            requests_metric = "app_requests_total"
            latency_metric = "app_latency_seconds"
            model_label = "name"
            history = "/var/lib/kyb-maint/ml.jsonl"
            max_drop_points = 1.5
            trend_days = 7

            [[models]]
            name = "bert"
            warn_below = 0.85
            crit_below = 0.8

            [[models]]
            name = "distilbert"
            warn_below = 0.8
        "#;
        let cfg = section(text);
        assert_eq!(cfg.models, [model("bert", 0.85, Some(0.8)), model("distilbert", 0.8, None)]);
        assert_eq!(
            (cfg.accuracy_metric.as_str(), cfg.requests_metric.as_str(), cfg.latency_metric.as_str()),
            ("app_accuracy", "app_requests_total", "app_latency_seconds")
        );
        assert_eq!(cfg.model_label, "name");
        assert_eq!(cfg.history.as_deref(), Some(Path::new("/var/lib/kyb-maint/ml.jsonl")));
        assert_eq!((cfg.max_drop_points, cfg.trend_days), (1.5, 7));
        let again: MlConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn unknown_keys_and_incomplete_models_are_refused() {
        for (text, what) in [
            ("trend_day = 3", "unknown field `trend_day`"),
            ("dry_run = true", "unknown field `dry_run`"),
            ("[[models]]\nmodel = \"bert\"\nwarn_below = 0.8", "unknown field `model`"),
            ("[[models]]\nwarn_below = 0.8", "missing field `name`"),
            ("[[models]]\nname = \"bert\"", "missing field `warn_below`"),
        ] {
            let err = toml::from_str::<MlConfig>(text).unwrap_err();
            assert!(err.message().contains(what), "{text}: {err}");
        }
    }

    #[test]
    fn checks_name_their_key() {
        let cases = [
            ("accuracy_metric = \"1acc\"", "accuracy_metric", "`1acc` is not a metric name"),
            ("requests_metric = \"req-total\"", "requests_metric", "`req-total` is not a metric name"),
            ("latency_metric = \"\"", "latency_metric", "`` is not a metric name"),
            ("model_label = \"a:b\"", "model_label", "`a:b` is not a label name"),
            ("max_drop_points = -0.5", "max_drop_points", "must be a number of points, 0 or more"),
            ("max_drop_points = inf", "max_drop_points", "must be a number of points, 0 or more"),
            ("trend_days = 0", "trend_days", "must be between 1 and 3650, got 0"),
            ("trend_days = 3651", "trend_days", "must be between 1 and 3650, got 3651"),
            (
                "[[models]]\nname = \"\"\nwarn_below = 0.8",
                "models",
                "model names must be given once and not be empty: ``",
            ),
            (
                "[[models]]\nname = \"a\"\nwarn_below = 0.8\n[[models]]\nname = \"a\"\nwarn_below = 0.7",
                "models",
                "model names must be given once and not be empty: `a`",
            ),
            (
                "[[models]]\nname = \"a\"\nwarn_below = 85.0",
                "models",
                "accuracy levels of `a` must be between 0 and 1",
            ),
            (
                "[[models]]\nname = \"a\"\nwarn_below = 0.8\ncrit_below = -0.1",
                "models",
                "accuracy levels of `a` must be between 0 and 1",
            ),
            (
                "[[models]]\nname = \"a\"\nwarn_below = nan",
                "models",
                "accuracy levels of `a` must be between 0 and 1",
            ),
            (
                "[[models]]\nname = \"a\"\nwarn_below = 0.8\ncrit_below = 0.9",
                "models",
                "crit_below of `a` must not be above warn_below",
            ),
        ];
        for (text, key, message) in cases {
            assert_eq!(section(text).validate(), Err(FieldError::new(key, message)), "{text}");
        }
        let edges = section(
            "trend_days = 3650\nmax_drop_points = 0.0\n[[models]]\nname = \"a\"\nwarn_below = 1.0\ncrit_below = 0.0",
        );
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn a_relative_history_resolves_against_the_config_dir() {
        let base = Path::new("/etc/kyb-maint");
        let mut cfg = section("history = \"state/ml.jsonl\"");
        cfg.resolve_paths(base);
        assert_eq!(cfg.history.as_deref(), Some(Path::new("/etc/kyb-maint/state/ml.jsonl")));
        let mut cfg = section("history = \"/var/lib/ml.jsonl\"");
        cfg.resolve_paths(base);
        assert_eq!(cfg.history.as_deref(), Some(Path::new("/var/lib/ml.jsonl")));
        let mut cfg = MlConfig::default();
        cfg.resolve_paths(base);
        assert_eq!(cfg.history, None, "no history is filled in here");
    }
}
