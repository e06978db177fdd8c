//! Probes against a real app, PostgreSQL and Redis.

use kyb_core::{RunCtx, Secret, Status, Thresholds};
use kyb_health::*;
use kyb_testkit::{FakeApp, HealthMode, MetricsMode, fresh_database, redis};
use std::time::{Duration, Instant};

fn app_cfg(url: String, timeout_ms: u64) -> AppConfig {
    AppConfig {
        health_url: url,
        timeout_ms,
        max_body_bytes: 1024 * 1024,
        max_redirects: 5,
        latency_ms: Thresholds::new(500.0, 2_000.0),
    }
}

/// A run now that changes things.
fn ctx() -> RunCtx {
    RunCtx::new(time::OffsetDateTime::now_utc())
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

mod app {
    use super::*;

    #[tokio::test]
    async fn healthy_is_ok() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let c = check_app(&app_cfg(app.url("/health"), 2_000)).await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.summary.starts_with("HTTP 200 in"), "{}", c.summary);
        assert_eq!(c.metrics[0].label, "latency");
    }

    #[tokio::test]
    async fn unhealthy_body_is_crit_with_the_failing_check() {
        let app = FakeApp::start(HealthMode::Unhealthy).await;
        let c = check_app(&app_cfg(app.url("/health"), 2_000)).await;
        assert_eq!(c.status, Status::Crit);
        assert!(
            c.summary.contains("\"unhealthy\"") && c.summary.contains("database: failing"),
            "{}",
            c.summary
        );
    }

    #[tokio::test]
    async fn server_error_is_crit() {
        let app = FakeApp::start(HealthMode::ServerError).await;
        let c = check_app(&app_cfg(app.url("/health"), 2_000)).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("HTTP 500"), "{}", c.summary);
    }

    #[tokio::test]
    async fn hang_is_cut_off_by_the_deadline() {
        let app = FakeApp::start(HealthMode::Hang).await;
        let started = Instant::now();
        let c = check_app(&app_cfg(app.url("/health"), 300)).await;
        let took = started.elapsed();
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("no response") && c.summary.contains("300 ms"), "{}", c.summary);
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1_300), "took {took:?}");
    }

    #[tokio::test]
    async fn non_json_body_is_a_warning_that_says_so() {
        let app = FakeApp::start(HealthMode::NotJson).await;
        let c = check_app(&app_cfg(app.url("/health"), 2_000)).await;
        assert_eq!(c.status, Status::Warn);
        assert!(c.summary.contains("body is not JSON") && c.summary.contains("<html>"), "{}", c.summary);
    }

    #[tokio::test]
    async fn huge_body_is_cut_at_the_limit() {
        let app = FakeApp::start(HealthMode::HugeBody { size_bytes: 100 * 1024 * 1024 }).await;
        let c = check_app(&app_cfg(app.url("/health"), 10_000)).await;
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.summary.contains("body larger than 1048576 bytes"), "{}", c.summary);
        let size = c.metrics.iter().find(|m| m.label == "size").unwrap();
        assert_eq!(size.value, 1_048_576.0);
    }

    #[tokio::test]
    async fn redirect_loop_stops_at_the_limit() {
        let app = FakeApp::start(HealthMode::RedirectLoop).await;
        let c = check_app(&app_cfg(app.url("/health"), 2_000)).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("more than 5 redirects"), "{}", c.summary);
    }

    #[tokio::test]
    async fn unsupported_scheme_is_unknown() {
        for url in ["ftp://127.0.0.1/health", "https://127.0.0.1/health", "not a url"] {
            let c = check_app(&app_cfg(url.to_owned(), 2_000)).await;
            assert_eq!(c.status, Status::Unknown, "{url}: {c:?}");
        }
        let c = check_app(&app_cfg("gopher://x/".into(), 2_000)).await;
        assert!(c.summary.contains("unsupported URL scheme `gopher`"), "{}", c.summary);
    }

    #[tokio::test]
    async fn slow_answer_trips_latency_thresholds() {
        let app = FakeApp::start(HealthMode::Slow(Duration::from_millis(150))).await;
        let mut cfg = app_cfg(app.url("/health"), 2_000);
        cfg.latency_ms = Thresholds::new(100.0, 1_000.0);
        let c = check_app(&cfg).await;
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.summary.contains("slow"), "{}", c.summary);
    }

    #[tokio::test]
    async fn refused_connection_is_crit() {
        let c = check_app(&app_cfg(format!("http://127.0.0.1:{}/health", dead_port()), 2_000)).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("cannot connect"), "{}", c.summary);
    }
}

mod postgres {
    use super::*;

    fn cfg(db: &kyb_testkit::TestDb) -> PostgresConfig {
        PostgresConfig {
            host: db.host.clone(),
            port: db.port,
            user: db.user.clone(),
            password: db.password.clone().map(Secret::new),
            dbname: db.dbname.clone(),
            timeout_ms: 3_000,
        }
    }

    #[tokio::test]
    async fn select_one_reports_the_server_version() {
        let db = fresh_database("pgprobe").await;
        let c = check_postgres(&cfg(&db)).await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.summary.contains("SELECT 1 ok") && c.summary.contains("PostgreSQL 1"), "{}", c.summary);
    }

    #[tokio::test]
    async fn wrong_port_is_crit_with_the_reason() {
        let db = fresh_database("pgdown").await;
        let port = dead_port();
        let c = check_postgres(&PostgresConfig { port, ..cfg(&db) }).await;
        assert_eq!(c.status, Status::Crit);
        let s = &c.summary;
        assert!(
            s.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused")),
            "{s}"
        );
        assert!(s.contains("check that PostgreSQL is running"), "{s}");
        assert!(!s.contains("Error occurred"), "the pool's own words: {s}");
    }

    #[tokio::test]
    async fn a_missing_database_is_named() {
        let db = fresh_database("pgnodb").await;
        let c = check_postgres(&PostgresConfig { dbname: "no_such_db".into(), ..cfg(&db) }).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("database \"no_such_db\" does not exist"), "{}", c.summary);
        assert!(c.summary.contains("check the configured dbname"), "{}", c.summary);
    }

    #[tokio::test]
    async fn unknown_host_is_crit_quickly() {
        let db = fresh_database("pghost").await;
        let started = Instant::now();
        let c = check_postgres(&PostgresConfig { host: "no-such-host.invalid".into(), ..cfg(&db) }).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("no-such-host.invalid"), "{}", c.summary);
        // The resolver's own answer, not the 3 s deadline, ends the probe.
        assert!(c.summary.contains("lookup"), "{}", c.summary);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn wrong_password_is_crit_and_not_echoed() {
        let db = fresh_database("pgpass").await;
        let c =
            check_postgres(&PostgresConfig { password: Some(Secret::new("wrong-pw-123")), ..cfg(&db) }).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("password authentication failed"), "{}", c.summary);
        assert!(c.summary.contains("check the configured password"), "{}", c.summary);
        assert!(!c.summary.contains("wrong-pw-123"));
    }
}

mod redis_probe {
    use super::*;

    fn cfg() -> RedisConfig {
        let r = redis();
        RedisConfig {
            host: r.host,
            port: r.port,
            username: None,
            password: r.password.map(Secret::new),
            timeout_ms: 3_000,
        }
    }

    #[tokio::test]
    async fn ping_reports_the_server_version() {
        let c = check_redis(&cfg()).await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.summary.contains("PING ok") && c.summary.contains("Redis "), "{}", c.summary);
    }

    #[tokio::test]
    async fn wrong_password_is_crit_with_the_reason() {
        let c = check_redis(&RedisConfig { password: Some(Secret::new("not-the-password")), ..cfg() }).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.contains("WRONGPASS"), "{}", c.summary);
        assert!(!c.summary.contains("not-the-password"));
    }

    #[tokio::test]
    async fn down_is_crit() {
        let started = Instant::now();
        let c = check_redis(&RedisConfig { port: dead_port(), timeout_ms: 1_000, ..cfg() }).await;
        assert_eq!(c.status, Status::Crit);
        assert!(c.summary.to_lowercase().contains("refused"), "{}", c.summary);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn check_all_runs_probes_concurrently_and_keeps_going() {
    let app = FakeApp::start(HealthMode::Hang).await;
    let db = fresh_database("all").await;
    let cfg = HealthConfig {
        app: Some(app_cfg(app.url("/health"), 800)),
        postgres: Some(PostgresConfig {
            host: "127.0.0.1".into(),
            port: dead_port(),
            user: db.user.clone(),
            password: None,
            dbname: db.dbname.clone(),
            timeout_ms: 800,
        }),
        redis: Some(redis_probe_cfg()),
    };
    let started = Instant::now();
    let Ok(report) = check_all(&cfg, &ctx()).await;
    assert!(started.elapsed() < Duration::from_millis(1_500), "took {:?}", started.elapsed());
    let statuses: Vec<_> = report.findings.checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(statuses, [("app", Status::Crit), ("postgres", Status::Crit), ("redis", Status::Ok)]);
    assert_eq!(report.status, Status::Crit);
}

fn redis_probe_cfg() -> RedisConfig {
    let r = redis();
    RedisConfig {
        host: r.host,
        port: r.port,
        username: None,
        password: r.password.map(Secret::new),
        timeout_ms: 3_000,
    }
}

mod system {
    use super::*;

    fn cfg() -> SystemConfig {
        let mut cfg = SystemConfig::default();
        cfg.cpu_sample_ms = 100;
        cfg
    }

    #[tokio::test]
    async fn real_numbers_from_this_machine() {
        let r = system_metrics(&cfg(), &ctx()).await.unwrap();
        assert!(r.cpus >= 1);
        assert!((0.0..=100.0).contains(&r.cpu_pct));
        assert!(r.memory_total_bytes > 0 && r.memory_available_bytes <= r.memory_total_bytes);
        assert!(r.disks.iter().any(|d| d.mount_point == std::path::Path::new("/")), "{:?}", r.disks);
        assert!(!r.disks.iter().any(|d| d.fs_type == "proc" || d.fs_type == "sysfs"));
        for name in ["cpu", "memory", "load", "uptime", "disk /"] {
            assert!(r.findings.checks.iter().any(|c| c.name == name), "missing {name}");
        }
    }

    #[tokio::test]
    async fn thresholds_turn_usage_into_status() {
        let mut disk = cfg();
        disk.disk_pct = Thresholds::new(0.0, 100.5);
        let r = system_metrics(&disk, &ctx()).await.unwrap();
        let root = r.findings.checks.iter().find(|c| c.name == "disk /").unwrap();
        assert_eq!(root.status, Status::Warn, "{root:?}");
        let mut memory = cfg();
        memory.memory_pct = Thresholds::new(0.0, 0.0);
        let r = system_metrics(&memory, &ctx()).await.unwrap();
        assert_eq!(r.findings.checks.iter().find(|c| c.name == "memory").unwrap().status, Status::Crit);
    }
}

mod snapshot {
    use super::*;

    fn cfg(url: String, dir: &std::path::Path) -> SnapshotConfig {
        SnapshotConfig {
            metrics_url: url,
            reports_dir: dir.join("reports"),
            timeout_ms: 2_000,
            max_body_bytes: 8 * 1024 * 1024,
            max_snapshot_bytes: 8 * 1024 * 1024,
            max_redirects: 5,
        }
    }

    fn at_now() -> RunCtx {
        RunCtx::new(time::macros::datetime!(2026-11-26 02:00:05 UTC))
    }

    /// The one check of a snapshot report.
    fn check(r: &SnapshotReport) -> &kyb_core::Check {
        let [c] = r.findings.checks.as_slice() else { panic!("not one check: {r:#?}") };
        c
    }

    #[tokio::test]
    async fn saves_the_scrape() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(app.url("/metrics"), dir.path()), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Ok, "{:?}", check(&r));
        let path = r.path.clone().unwrap();
        assert_eq!(path, dir.path().join("reports/app-metrics-20261126-020005.prom"));
        assert_eq!(r.findings.artifacts, [path.as_path()], "the file written is the artifact");
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(saved.contains("kyb_ml_model_accuracy{model=\"distilbert\"}"));
        assert!(r.samples > 100, "{}", r.samples);
    }

    #[tokio::test]
    async fn malformed_lines_are_reported_and_the_snapshot_still_saved() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        app.set_metrics(MetricsMode::Malformed);
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(app.url("/metrics"), dir.path()), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Warn);
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        assert!(r.problems[0].starts_with("line "), "{:?}", r.problems);
        let saved = std::fs::read_to_string(r.path.unwrap()).unwrap();
        assert!(saved.contains("this line is not a sample"), "saved verbatim");
    }

    #[tokio::test]
    async fn dry_run_writes_nothing() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let ctx = at_now().with_dry_run(true);
        let r = snapshot_metrics(&cfg(app.url("/metrics"), dir.path()), &ctx).await.unwrap();
        assert!(check(&r).summary.starts_with("would save"), "{}", check(&r).summary);
        assert!(!dir.path().join("reports").exists());
        assert!(r.findings.artifacts.is_empty(), "{:?}", r.findings.artifacts);
    }

    #[tokio::test]
    async fn unreachable_app_is_crit_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/metrics", dead_port());
        let r = snapshot_metrics(&cfg(url, dir.path()), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Crit);
        assert!(r.path.is_none() && !dir.path().join("reports").exists());
        assert!(r.findings.artifacts.is_empty());
    }
}
