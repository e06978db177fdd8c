//! The health gate against a real HTTP server (the fake app) and a real supervised process, and
//! the systemd manager against a stand-in `systemctl`.

use kyb_core::config::TimeoutMs;
use kyb_testkit::{FakeApp, HealthMode};
use kyb_update::{GateConfig, ServiceManager, health_gate};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn sleeper(dir: &std::path::Path) -> ServiceManager {
    ServiceManager::Process {
        command: vec!["sleep".into(), "60".into()],
        pid_file: dir.join("svc.pid"),
        log_file: None,
        stop_timeout_ms: TimeoutMs::ms(5_000),
    }
}

fn gate(app: &FakeApp, deadline_ms: u64) -> GateConfig {
    let mut g = GateConfig::default();
    g.url = app.url("/health");
    g.probe_timeout_ms = 300;
    g.first_backoff_ms = 20;
    g.max_backoff_ms = 200;
    g.deadline_ms = deadline_ms;
    g.successes = 3;
    g.check_version = true;
    g
}

#[tokio::test]
async fn k_consecutive_successes_pass_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let app = FakeApp::start(HealthMode::Healthy).await;
    let svc = sleeper(dir.path());
    svc.start().await.unwrap();
    let g = health_gate(&gate(&app, 5_000), &svc, None).await;
    svc.stop().await.unwrap();
    assert!(g.passed, "{g:?}");
    assert_eq!(g.probes, 3);
}

#[tokio::test]
async fn an_unhealthy_or_hung_service_fails_at_the_deadline_with_the_last_reason() {
    let dir = tempfile::tempdir().unwrap();
    let svc = sleeper(dir.path());
    svc.start().await.unwrap();
    for (mode, says) in [
        (HealthMode::Unhealthy, "app reports status \"unhealthy\" (database: failing: connection refused)"),
        (HealthMode::ServerError, "HTTP 500"),
        (HealthMode::Hang, "no answer within"),
    ] {
        let app = FakeApp::start(mode).await;
        let started = Instant::now();
        let g = health_gate(&gate(&app, 1_500), &svc, None).await;
        assert!(!g.passed, "{g:?}");
        assert!(g.detail.contains(says) && g.detail.contains("0 of 3"), "{}", g.detail);
        assert!(g.probes >= 2, "it kept probing with backoff: {g:?}");
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "the deadline holds: {:?}",
            started.elapsed()
        );
    }
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn another_version_answering_does_not_pass_for_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    // The fake app reports version "1.8.3".
    let app = FakeApp::start(HealthMode::Healthy).await;
    let svc = sleeper(dir.path());
    svc.start().await.unwrap();
    let g = health_gate(&gate(&app, 1_000), &svc, Some("2.0.0")).await;
    assert!(!g.passed && g.detail.contains("reports version 1.8.3, not 2.0.0"), "{g:?}");
    let g = health_gate(&gate(&app, 3_000), &svc, Some("v1.8.3")).await;
    assert!(g.passed, "the same version passes: {g:?}");
    let mut unchecked = gate(&app, 3_000);
    unchecked.check_version = false;
    assert!(health_gate(&unchecked, &svc, Some("2.0.0")).await.passed);
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn a_flapping_service_needs_its_successes_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let app = FakeApp::start(HealthMode::Unhealthy).await;
    let svc = sleeper(dir.path());
    svc.start().await.unwrap();
    let cfg = gate(&app, 5_000);
    let (g, ()) = tokio::join!(health_gate(&cfg, &svc, None), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.set_health(HealthMode::Healthy);
    });
    svc.stop().await.unwrap();
    assert!(g.passed, "{g:?}");
    assert!(g.probes >= 4, "failures first, then three successes: {g:?}");
}

#[tokio::test]
async fn a_restart_or_an_exit_during_the_gate_fails_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = FakeApp::start(HealthMode::Healthy).await;
    let svc = sleeper(dir.path());
    svc.start().await.unwrap();
    // Successes are spaced out, so the restart lands inside the gate.
    let mut cfg = gate(&app, 10_000);
    cfg.first_backoff_ms = 400;
    cfg.successes = 5;
    let (g, ()) = tokio::join!(health_gate(&cfg, &svc, None), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        svc.stop().await.unwrap();
        svc.start().await.unwrap();
    });
    assert!(!g.passed, "{g:?}");
    assert!(g.detail.contains("restarted during the gate"), "{}", g.detail);

    let started = Instant::now();
    let (g, ()) = tokio::join!(health_gate(&cfg, &svc, None), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        svc.stop().await.unwrap();
    });
    assert!(!g.passed && g.detail.contains("exited during the gate"), "{}", g.detail);
    assert!(started.elapsed() < Duration::from_secs(3), "not held to the deadline");
    let g = health_gate(&cfg, &svc, None).await;
    assert_eq!(g.detail, "the service is not running");
}

#[tokio::test]
async fn systemd_is_driven_through_systemctl() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let script = dir.path().join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = show ]; then\n  printf 'MainPID=4242\\nActiveState=active\\nExecMainStartTimestampMonotonic=99\\n'\nfi\n\
             if [ \"$1\" = start ] && [ \"$2\" = broken.service ]; then echo 'Job for broken.service failed' >&2; exit 1; fi\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = ServiceManager::Systemd {
        unit: "kyb-platform.service".into(),
        systemctl: script.clone(),
        timeout_ms: TimeoutMs::ms(5_000),
    };
    svc.stop().await.unwrap();
    svc.start().await.unwrap();
    let i = svc.instance().await.unwrap().unwrap();
    assert_eq!((i.pid, i.started), (4242, 99));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        "stop kyb-platform.service\nstart kyb-platform.service\nshow kyb-platform.service -p MainPID -p ActiveState -p ExecMainStartTimestampMonotonic\n"
    );
    let broken = ServiceManager::Systemd {
        unit: "broken.service".into(),
        systemctl: script,
        timeout_ms: TimeoutMs::ms(5_000),
    };
    let err = broken.start().await.unwrap_err().to_string();
    assert!(err.contains("start broken.service") && err.contains("Job for broken.service failed"), "{err}");
}
