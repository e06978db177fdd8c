//! The monitoring-stack probes and the performance analysis against fake servers on loopback.

use kyb_core::Status;
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
        window_open: true,
        dry_run: false,
    }
}

#[tokio::test]
async fn a_healthy_stack_reports_retention_and_tsdb_size() {
    let fake = FakeApp::start_monitoring(MonitorMode::Healthy).await;
    let r = check_monitoring(&cfg(&fake.url(""))).await;
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
    let r = check_monitoring(&cfg(&fake.url(""))).await;
    assert_eq!(r.checks.len(), 3, "{:#?}", r.checks);
    for c in &r.checks {
        assert_eq!(c.status, Status::Crit, "{c:?}");
        assert!(c.summary.contains("HTTP 503"), "{c:?}");
    }

    let hung = FakeApp::start_monitoring(MonitorMode::Hang).await;
    let started = Instant::now();
    let r = check_monitoring(&cfg(&hung.url(""))).await;
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
        dry_run: true,
        ..cfg(&fake.url(""))
    };
    c.targets.truncate(1);

    let r = check_monitoring(&c).await;
    assert_eq!(r.actions, [format!("would run {} start prometheus", script.display())]);
    assert!(!calls.exists(), "a dry run started something");

    let r = check_monitoring(&MonitoringConfig { dry_run: false, window_open: false, ..c.clone() }).await;
    assert!(r.checks[0].summary.contains("outside the maintenance window"), "{:?}", r.checks[0]);
    assert!(!calls.exists());

    let r = check_monitoring(&MonitoringConfig { restart: false, dry_run: false, ..c.clone() }).await;
    assert!(r.actions.is_empty() && !calls.exists(), "restart is off by default");

    // Started, but the fake stays down: still Crit, and the run is recorded.
    let r = check_monitoring(&MonitoringConfig { dry_run: false, ..c.clone() }).await;
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
    let r = check_monitoring(&MonitoringConfig { dry_run: false, ..c.clone() }).await;
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
    assert_eq!(r.checks.iter().filter(|c| c.name.starts_with("endpoint ")).count(), 6);

    app.set_metrics(MetricsMode::ServerError);
    let err = scrape(&sc).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}
