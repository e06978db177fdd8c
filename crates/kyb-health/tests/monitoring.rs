//! The monitoring-stack probes and the performance analysis against fake servers on loopback.

use kyb_core::{RunCtx, Status, WindowState};
use kyb_health::*;
use kyb_testkit::{FakeApp, HealthMode, MetricsMode, MonitorMode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn targets(base: &str, unit: Option<&str>) -> Vec<MonitorTarget> {
    [Component::Prometheus, Component::Grafana, Component::Alertmanager]
        .into_iter()
        .map(|component| MonitorTarget {
            component,
            base_url: base.to_owned(),
            unit: unit.map(str::to_owned),
        })
        .collect()
}

fn cfg(base: &str) -> MonitoringConfig {
    MonitoringConfig {
        targets: targets(base, None),
        timeout_ms: 1_000,
        max_redirects: 3,
        restart: false,
        systemctl: PathBuf::from("systemctl"),
    }
}

/// A run now, inside a maintenance window.
fn ctx() -> RunCtx {
    RunCtx::new(time::OffsetDateTime::now_utc())
}

async fn check(cfg: &MonitoringConfig, ctx: &RunCtx) -> kyb_core::Findings {
    let Ok(r) = check_monitoring(cfg, ctx).await;
    r.findings
}

#[tokio::test]
async fn a_healthy_stack_reports_retention_and_tsdb_size() {
    let fake = FakeApp::start_monitoring(MonitorMode::Healthy).await;
    let r = check(&cfg(&fake.url("")), &ctx()).await;
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["prometheus", "prometheus tsdb", "grafana", "alertmanager"]);
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{:#?}", r.checks);
    let tsdb = &r.checks[1].summary;
    assert!(tsdb.contains("retention 15d") && tsdb.contains("1.5 GiB in blocks"), "{tsdb}");
    assert!(r.actions.is_empty());
}

#[tokio::test]
async fn unavailable_and_hung_components_are_crit_with_the_reason_and_no_hang() {
    let fake = FakeApp::start_monitoring(MonitorMode::Unavailable).await;
    let r = check(&cfg(&fake.url("")), &ctx()).await;
    assert_eq!(r.checks.len(), 3, "{:#?}", r.checks);
    for c in &r.checks {
        assert_eq!(c.status, Status::Crit, "{c:?}");
        assert!(c.summary.contains("HTTP 503"), "{c:?}");
    }

    let hung = FakeApp::start_monitoring(MonitorMode::Hang).await;
    let started = Instant::now();
    let r = check(&cfg(&hung.url("")), &ctx()).await;
    assert!(started.elapsed() < Duration::from_secs(3), "probes run concurrently under their deadline");
    assert!(
        r.checks.iter().all(|c| c.status == Status::Crit && c.summary.contains("within 1000 ms")),
        "{:#?}",
        r.checks
    );
}

#[tokio::test]
async fn a_down_component_is_started_only_when_asked_inside_the_window() {
    let fake = FakeApp::start_monitoring(MonitorMode::Unavailable).await;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    // A stand-in systemctl that records its arguments and "starts" the stack.
    let script = dir.path().join("systemctl");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = MonitoringConfig {
        targets: targets(&fake.url(""), Some("prometheus")),
        restart: true,
        systemctl: script.clone(),
        ..cfg(&fake.url(""))
    };
    c.targets.truncate(1);

    let r = check(&c, &ctx().with_dry_run(true)).await;
    assert_eq!(r.actions, [format!("would run {} start prometheus", script.display())]);
    assert!(!calls.exists(), "a dry run started something");

    let closed = WindowState::Closed { windows: "Sun 02:00-06:00".into(), next_open: None };
    let r = check(&c, &ctx().with_window(closed.clone())).await;
    assert!(r.checks[0].summary.contains("outside the maintenance window"), "{:?}", r.checks[0]);
    assert!(r.actions.is_empty() && !calls.exists());

    let r = check(&MonitoringConfig { restart: false, ..c.clone() }, &ctx()).await;
    assert!(r.actions.is_empty() && !calls.exists(), "restart is off by default");

    // An emergency may start it outside the windows. Started, but the fake stays down: still
    // Crit, and the run is recorded.
    let r = check(&c, &ctx().with_window(closed).with_emergency(true)).await;
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "start prometheus\n");
    assert_eq!(r.checks[0].status, Status::Crit);
    assert!(r.actions[0].ends_with("start prometheus: ok"), "{:?}", r.actions);
    assert!(r.checks[0].summary.contains("still down"), "{:?}", r.checks[0]);

    // A start that works: the component is back, a Warn saying it was down.
    let port = fake.addr().port();
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\necho \"$@\" >> {}\nexec 3<>/dev/tcp/127.0.0.1/{port}\n\
             printf 'GET /_fake/start HTTP/1.0\\r\\n\\r\\n' >&3\ncat <&3 >/dev/null\n",
            calls.display()
        ),
    )
    .unwrap();
    let r = check(&c, &ctx()).await;
    assert_eq!(r.checks[0].status, Status::Warn, "{:?}", r.checks[0]);
    assert!(r.checks[0].summary.starts_with("was down (HTTP 503"), "{:?}", r.checks[0]);
}

#[tokio::test]
async fn the_weekly_analysis_of_the_fake_app() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let sc = ScrapeConfig {
        url: app.url("/metrics"),
        timeout_ms: 2_000,
        max_body_bytes: 1 << 22,
        max_redirects: 3,
    };
    let first = scrape(&sc).await.unwrap();
    let second = scrape(&sc).await.unwrap();
    let week_ago = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    let r =
        analyze_performance(&PerfConfig::default(), &second.exposition, Some((&first.exposition, week_ago)));
    // Six endpoints, the slowest first; counts are the growth between the scrapes.
    assert_eq!(r.endpoints.len(), 6);
    assert!(r.endpoints.windows(2).all(|w| w[0].p95_s >= w[1].p95_s));
    assert!(r.total_requests > 0.0);
    let rate = 100.0 * r.error_requests / r.total_requests;
    assert!((rate - 1.0).abs() < 0.05, "the fake answers 1% 5xx: {rate}");
    assert_eq!(r.findings.checks.iter().filter(|c| c.name.starts_with("endpoint ")).count(), 6);

    app.set_metrics(MetricsMode::ServerError);
    let err = scrape(&sc).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}

#[tokio::test]
async fn the_weekly_task_counts_from_last_weeks_snapshot_or_says_why_not() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let scrape = ScrapeConfig {
        url: app.url("/metrics"),
        timeout_ms: 10_000,
        max_body_bytes: 1 << 22,
        max_redirects: 3,
    };
    let task = |max_snapshot_bytes| PerformanceTask {
        scrape: scrape.clone(),
        perf: PerfConfig::default(),
        reports_dir: reports.clone(),
        max_snapshot_bytes,
    };
    let now = time::OffsetDateTime::now_utc();
    let week_ago = RunCtx::new(now - time::Duration::days(7));
    let weekly = async |t: &PerformanceTask| {
        let Ok(r) = performance(t, &RunCtx::new(now)).await;
        r
    };
    // The daily flow's snapshot, taken a week ago.
    let snapshot_a_week_ago = async |max_snapshot_bytes| {
        for e in std::fs::read_dir(&reports).into_iter().flatten().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        let cfg = SnapshotConfig {
            metrics_url: scrape.url.clone(),
            reports_dir: reports.clone(),
            timeout_ms: 10_000,
            max_body_bytes: 1 << 22,
            max_snapshot_bytes,
            max_redirects: 3,
        };
        snapshot_metrics(&cfg, &week_ago).await.unwrap().path.unwrap()
    };

    let r = weekly(&task(8 << 20)).await;
    assert_eq!(r.findings.notes, ["no snapshot from about a week ago: counts run since the app started"]);
    assert_eq!(r.since, None);
    assert!(r.total_requests > 0.0 && r.findings.status() != Status::Crit, "{:#?}", r.findings);

    let path = snapshot_a_week_ago(8 << 20).await;
    let r = weekly(&task(8 << 20)).await;
    assert_eq!(r.findings.notes, [format!("counts are the change since {}", path.display())]);
    assert!(r.since.is_some_and(|t| (t - week_ago.now).abs() < time::Duration::seconds(1)), "{:?}", r.since);

    // The fake app's /metrics is about 16 KiB: a 4 KiB cap cuts it.
    let path = snapshot_a_week_ago(4096).await;
    let r = weekly(&task(4096)).await;
    let cut = format!(
        "the snapshot from about a week ago ({}) was cut at [app] max_snapshot_bytes: counts run since the app started",
        path.display()
    );
    assert_eq!((r.findings.notes, r.since), (vec![cut], None));

    // A FIFO in its place is no baseline, and no hang.
    std::fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    let r = tokio::time::timeout(Duration::from_secs(60), weekly(&task(4096))).await.expect("no hang");
    let [note] = r.findings.notes.as_slice() else { panic!("{:?}", r.findings.notes) };
    assert!(note.starts_with("the snapshot from about a week ago cannot be used ("), "{note}");
    assert!(note.contains("FIFO") && note.ends_with("counts run since the app started"), "{note}");

    // No scrape, nothing to count: one Crit check saying why.
    app.set_metrics(MetricsMode::ServerError);
    let r = weekly(&task(4096)).await;
    let [c] = r.findings.checks.as_slice() else { panic!("{:#?}", r.findings) };
    assert_eq!((c.name.as_str(), c.status), ("metrics", Status::Crit), "{c:?}");
    assert!(c.summary.contains("HTTP 500"), "{}", c.summary);
    assert!(r.findings.notes.is_empty() && r.endpoints.is_empty());
}
