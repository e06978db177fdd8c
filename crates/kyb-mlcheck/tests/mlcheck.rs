//! The model checks against the fake app's `/metrics`, and the accuracy history.

use kyb_core::{RunCtx, Status};
use kyb_health::{ScrapeConfig, scrape};
use kyb_mlcheck::*;
use kyb_testkit::{FakeApp, HealthMode, MetricsMode};
use time::OffsetDateTime;

async fn scraped(app: &FakeApp) -> kyb_prom::Exposition {
    let sc = ScrapeConfig {
        url: app.url("/metrics"),
        timeout_ms: 2_000,
        max_body_bytes: 1 << 22,
        max_redirects: 3,
    };
    scrape(&sc).await.unwrap().exposition
}

/// The default config with a history file.
fn with_history(path: std::path::PathBuf) -> MlConfig {
    let mut cfg = MlConfig::default();
    cfg.history = Some(path);
    cfg
}

/// A run at `now` that changes things.
fn at(now: OffsetDateTime) -> RunCtx {
    RunCtx::new(now)
}

/// A run now that changes things.
fn now() -> RunCtx {
    at(OffsetDateTime::now_utc())
}

/// A dry run at `now`.
fn dry(now: OffsetDateTime) -> RunCtx {
    RunCtx::new(now).with_dry_run(true)
}

/// The default config judging only `models`.
fn judging(models: Vec<ModelThresholds>) -> MlConfig {
    let mut cfg = MlConfig::default();
    cfg.models = models;
    cfg
}

fn status<'a>(r: &'a MlReport, name: &str) -> (Status, &'a str) {
    let checks = &r.findings.checks;
    let c = checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:#?}"));
    (c.status, c.summary.as_str())
}

#[tokio::test]
async fn healthy_models_are_ok_with_their_share_of_requests() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let r = check(&MlConfig::default(), &scraped(&app).await, &now());
    assert_eq!(status(&r, "accuracy bert").0, Status::Ok);
    assert_eq!(status(&r, "accuracy distilbert").0, Status::Ok);
    let (s, summary) = status(&r, "usage distilbert");
    assert_eq!(s, Status::Ok);
    // 87k of 139k requests.
    assert!(summary.contains("62.6%"), "{summary}");
    let shares: f64 = r.models.iter().filter_map(|m| m.share_pct).sum();
    assert!((shares - 100.0).abs() < 1e-9);
    // Each configured model's accuracy and its warn_below, as gauges labelled with the model.
    let gauges: Vec<_> = r.findings.checks.iter().flat_map(|c| &c.gauges).collect();
    let named: Vec<(&str, &str, f64)> =
        gauges.iter().map(|g| (g.name.as_str(), g.labels[0].1.as_str(), g.value)).collect();
    assert_eq!(named.len(), 4, "{named:?}");
    assert_eq!((named[0].0, named[0].1), ("kyb_maint_model_accuracy", "bert"));
    assert_eq!(named[1], ("kyb_maint_model_accuracy_threshold", "bert", 0.85));
    assert_eq!((named[2].0, named[2].1), ("kyb_maint_model_accuracy", "distilbert"));
    assert_eq!(named[3], ("kyb_maint_model_accuracy_threshold", "distilbert", 0.80));
    assert!([named[0].2, named[2].2].iter().all(|v| (0.0..=1.0).contains(v)));
}

#[tokio::test]
async fn bert_at_0_84_warns_or_is_crit_per_its_thresholds() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    app.set_metrics(MetricsMode::BertAccuracy(840));
    let scrape = scraped(&app).await;
    let r = check(&MlConfig::default(), &scrape, &now());
    let (s, summary) = status(&r, "accuracy bert");
    assert_eq!(s, Status::Warn, "{summary}");
    assert!(summary.contains("0.840") && summary.contains("warn below 0.85"), "{summary}");
    let strict =
        judging(vec![ModelThresholds { model: "bert".into(), warn_below: 0.90, crit_below: Some(0.85) }]);
    assert_eq!(status(&check(&strict, &scrape, &now()), "accuracy bert").0, Status::Crit);
    // distilbert is not configured there: listed, without a threshold.
    let r = check(&strict, &scrape, &now());
    let (s, summary) = status(&r, "accuracy distilbert");
    assert_eq!(s, Status::Ok);
    assert!(summary.contains("no threshold configured"), "{summary}");
}

#[tokio::test]
async fn a_model_missing_from_the_scrape_is_unknown_never_ok() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    app.set_metrics(MetricsMode::WithoutDistilbert);
    let r = check(&MlConfig::default(), &scraped(&app).await, &now());
    let (s, summary) = status(&r, "accuracy distilbert");
    assert_eq!(s, Status::Unknown);
    assert!(summary.contains("not reporting"), "{summary}");
    assert_eq!(status(&r, "usage distilbert").0, Status::Unknown);
    assert_eq!(status(&r, "accuracy bert").0, Status::Ok);
}

#[test]
fn a_drop_beyond_the_limit_warns_and_history_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("ml-accuracy-history.jsonl");
    let cfg = with_history(history.clone());
    let t0 = time::macros::datetime!(2026-11-01 02:00 UTC);
    let acc = |acc: f64| kyb_prom::parse(&format!("kyb_ml_model_accuracy{{model=\"bert\"}} {acc}\n"));
    let first = check(&cfg, &acc(0.93), &at(t0));
    assert_eq!(first.findings.artifacts, [history.as_path()]);
    assert!(first.findings.actions.is_empty(), "{:?}", first.findings.actions);
    assert!(first.findings.checks.iter().all(|c| !c.name.starts_with("trend")), "no trend without history");
    // A week later, 1.5 points down: within the 2-point limit.
    let r = check(&cfg, &acc(0.915), &at(t0 + time::Duration::days(7)));
    let (s, summary) = status(&r, "trend bert");
    assert_eq!(s, Status::Ok, "{summary}");
    assert!(summary.contains("down 1.5 points since 2026-11-01"), "{summary}");
    // Two more weeks: 3 points below the oldest record in the window.
    let r = check(&cfg, &acc(0.90), &at(t0 + time::Duration::days(21)));
    assert_eq!(status(&r, "trend bert").0, Status::Warn);
    // A dry run reads the history and appends nothing.
    let lines = std::fs::read_to_string(&history).unwrap().lines().count();
    let r = check(&cfg, &acc(0.90), &dry(t0 + time::Duration::days(22)));
    assert!(r.findings.artifacts.is_empty(), "{:?}", r.findings.artifacts);
    let plan = format!("would append this run's accuracies to {}", history.display());
    assert_eq!(r.findings.actions, [plan]);
    assert_eq!(std::fs::read_to_string(&history).unwrap().lines().count(), lines);
    // Records older than trend_days no longer count: the baseline moves up.
    let r = check(&cfg, &acc(0.90), &at(t0 + time::Duration::days(40)));
    let (_, summary) = status(&r, "trend bert");
    assert!(!summary.contains("since 2026-11-01"), "{summary}");
}

#[test]
fn an_unwritable_history_is_crit_and_a_torn_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    std::fs::write(
        &history,
        "{\"at\":\"2026-11-01T02:00:00Z\",\"model\":\"bert\",\"accuracy\":0.95}\n{\"at\":\"2026-11-0",
    )
    .unwrap();
    let cfg = with_history(history.clone());
    let scrape = kyb_prom::parse("kyb_ml_model_accuracy{model=\"bert\"} 0.9\n");
    let r = check(&cfg, &scrape, &dry(time::macros::datetime!(2026-11-08 02:00 UTC)));
    assert_eq!(status(&r, "trend bert").0, Status::Warn, "5 points down from the one good line");
    let cfg = with_history(dir.path().join("missing/dir/h.jsonl"));
    let r = check(&cfg, &scrape, &now());
    assert_eq!(status(&r, "history").0, Status::Crit);
}

#[test]
fn latency_is_reported_when_the_app_exports_it() {
    let scrape = kyb_prom::parse(
        "kyb_ml_model_accuracy{model=\"bert\"} 0.9\n\
         kyb_ml_model_requests_total{model=\"bert\"} 100\n\
         kyb_ml_model_latency_seconds_bucket{model=\"bert\",le=\"0.05\"} 50\n\
         kyb_ml_model_latency_seconds_bucket{model=\"bert\",le=\"0.2\"} 90\n\
         kyb_ml_model_latency_seconds_bucket{model=\"bert\",le=\"1\"} 100\n\
         kyb_ml_model_latency_seconds_bucket{model=\"bert\",le=\"+Inf\"} 100\n",
    );
    let cfg = judging(vec![ModelThresholds { model: "bert".into(), warn_below: 0.85, crit_below: None }]);
    let r = check(&cfg, &scrape, &now());
    let (s, summary) = status(&r, "latency bert");
    assert_eq!(s, Status::Ok);
    // p50 at the 0.05 bound; p95 halfway through the 0.2-1 bucket.
    assert_eq!(summary, "p50 50 ms, p95 600 ms");
    assert!((r.models[0].latency_p95_s.unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(status(&r, "usage bert").1, "100 requests, 100.0% of all models'");
}

#[tokio::test]
async fn each_version_of_a_model_is_judged_on_its_own_never_added() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    app.set_metrics(MetricsMode::ModelVersions);
    let r = check(&MlConfig::default(), &scraped(&app).await, &now());
    let (s, summary) = status(&r, "accuracy bert{version=\"1\"}");
    assert_eq!(s, Status::Ok, "{summary}");
    assert!(summary.starts_with("0.912 "), "{summary}");
    let (s, summary) = status(&r, "accuracy bert{version=\"2\"}");
    assert_eq!(s, Status::Warn, "the failing version is not hidden: {summary}");
    assert!(summary.starts_with("0.710 (warn below 0.85)"), "{summary}");
    let checks = &r.findings.checks;
    assert!(checks.iter().all(|c| c.name != "accuracy bert"), "no summed row: {checks:#?}");
    assert!(checks.iter().all(|c| !c.summary.contains("1.62")), "{checks:#?}");
    let bert = r.models.iter().find(|m| m.model == "bert").unwrap();
    assert_eq!(bert.series.len(), 2);
    // Requests are a counter: the model's usage is still its total.
    assert_eq!(status(&r, "usage bert").0, Status::Ok);
    assert_eq!(status(&r, "accuracy distilbert").0, Status::Ok);
}

#[tokio::test]
async fn a_nan_accuracy_says_so_and_one_above_1_is_flagged() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    app.set_metrics(MetricsMode::BertAccuracyNan);
    let r = check(&MlConfig::default(), &scraped(&app).await, &now());
    let (s, summary) = status(&r, "accuracy bert");
    assert_eq!(s, Status::Unknown);
    assert!(summary.contains("reports NaN") && !summary.contains("not reporting"), "{summary}");
    assert_eq!(status(&r, "usage bert").0, Status::Ok, "the model is reporting");

    app.set_metrics(MetricsMode::BertAccuracy(1600));
    let r = check(&MlConfig::default(), &scraped(&app).await, &now());
    let (s, summary) = status(&r, "accuracy bert");
    assert_eq!(s, Status::Unknown, "{summary}");
    assert!(summary.contains("reports 1.6, outside 0 to 1"), "{summary}");
    // Neither reaches the history.
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_history(dir.path().join("h.jsonl"));
    check(&cfg, &scraped(&app).await, &now());
    let text = std::fs::read_to_string(dir.path().join("h.jsonl")).unwrap();
    assert!(!text.contains("\"bert\"") && text.contains("\"distilbert\""), "{text}");
}

#[test]
fn each_series_has_its_own_trend() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_history(dir.path().join("h.jsonl"));
    let t0 = time::macros::datetime!(2026-11-01 02:00 UTC);
    let acc = |v1: f64, v2: f64| {
        kyb_prom::parse(&format!(
            "kyb_ml_model_accuracy{{model=\"bert\",version=\"1\"}} {v1}\n\
             kyb_ml_model_accuracy{{model=\"bert\",version=\"2\"}} {v2}\n"
        ))
    };
    check(&cfg, &acc(0.90, 0.95), &at(t0));
    let r = check(&cfg, &acc(0.90, 0.91), &at(t0 + time::Duration::days(7)));
    assert_eq!(status(&r, "trend bert{version=\"1\"}").0, Status::Ok);
    let (s, summary) = status(&r, "trend bert{version=\"2\"}");
    assert_eq!(s, Status::Warn, "{summary}");
    assert!(summary.contains("down 4.0 points"), "{summary}");
    // A record from before series were told apart has no labels and is no series' baseline.
    std::fs::write(
        dir.path().join("old.jsonl"),
        "{\"at\":\"2026-11-01T02:00:00Z\",\"model\":\"bert\",\"accuracy\":0.99}\n",
    )
    .unwrap();
    let old = with_history(dir.path().join("old.jsonl"));
    let r = check(&old, &acc(0.90, 0.91), &dry(t0 + time::Duration::days(7)));
    let checks = &r.findings.checks;
    assert!(checks.iter().all(|c| !c.name.starts_with("trend bert")), "{checks:#?}");
}

#[tokio::test]
async fn the_task_scrapes_the_app_and_records_or_plans_the_history() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("ml-accuracy-history.jsonl");
    let cfg = ModelCheck {
        scrape: ScrapeConfig {
            url: app.url("/metrics"),
            timeout_ms: 2_000,
            max_body_bytes: 1 << 22,
            max_redirects: 3,
        },
        ml: with_history(history.clone()),
    };
    let t0 = OffsetDateTime::now_utc();

    // A dry run reads and judges, appends nothing, and says what it would append.
    let Ok(r) = check_models(&cfg, &dry(t0)).await;
    assert_eq!(status(&r, "accuracy bert").0, Status::Ok);
    assert_eq!(status(&r, "usage distilbert").0, Status::Ok);
    let plan = format!("would append this run's accuracies to {}", history.display());
    assert_eq!((r.findings.actions, r.findings.artifacts.len()), (vec![plan], 0));
    assert!(!history.exists());

    // A run appends, and the history file is its artifact.
    let Ok(r) = check_models(&cfg, &at(t0)).await;
    assert_eq!(r.findings.artifacts, [history.as_path()]);
    assert!(r.findings.actions.is_empty(), "{:?}", r.findings.actions);
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("\"bert\"") && text.contains("\"distilbert\""), "{text}");

    // No scrape, nothing to judge: one Crit check saying why, and nothing appended.
    app.set_metrics(MetricsMode::ServerError);
    let Ok(r) = check_models(&cfg, &at(t0 + time::Duration::days(1))).await;
    let [c] = r.findings.checks.as_slice() else { panic!("{:#?}", r.findings) };
    assert_eq!((c.name.as_str(), c.status), ("metrics", Status::Crit), "{c:?}");
    assert!(c.summary.contains("HTTP 500"), "{}", c.summary);
    assert!(r.models.is_empty() && r.findings.artifacts.is_empty());
    assert_eq!(std::fs::read_to_string(&history).unwrap(), text);
}
