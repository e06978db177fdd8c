//! Against a real Alertmanager and Pushgateway: alerts fire and resolve, metrics land in their
//! group, and an endpoint that is down or hung costs at most the timeout.

use kyb_alert::{AlertingConfig, Group, RunOutcome, notify, push, pushed_value};
use kyb_core::{Check, RunCtx, Status, TaskReport};
use kyb_testkit::PromServer;
use std::time::{Duration, Instant};

fn config(text: &str) -> AlertingConfig {
    let cfg: AlertingConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    cfg
}

fn task(name: &str, status: Status) -> TaskReport {
    TaskReport::from_checks(
        name,
        vec![Check::new(name, status, "app down: connection refused")],
        Duration::ZERO,
    )
}

async fn run_with(cfg: &AlertingConfig, tasks: &[TaskReport]) -> kyb_alert::AlertReport {
    let now = time::OffsetDateTime::now_utc();
    let run =
        RunOutcome { flow: "daily", host: "web-1", started_at: now, hold: time::Duration::hours(26), tasks };
    notify(cfg, &run, &RunCtx::new(now)).await
}

/// The alerts Alertmanager reports as active for the flow, as (task, labels) pairs.
fn active(am: &PromServer) -> Vec<serde_json::Value> {
    let body = am.get("/api/v2/alerts?filter=alertname%3D%22KybMaintTaskFailed%22&active=true");
    serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .into_iter()
        .filter(|a| a["status"]["state"] == "active" || a["status"]["state"] == "unprocessed")
        .collect()
}

#[tokio::test]
async fn a_failed_task_fires_and_the_next_healthy_run_resolves_it() {
    let am = PromServer::alertmanager();
    let cfg = config(&format!("alertmanager_urls = [\"{}\"]", am.url()));
    let report = run_with(&cfg, &[task("health", Status::Crit), task("system", Status::Warn)]).await;
    assert_eq!(report.findings.checks[0].status, Status::Ok, "{report:?}");
    assert_eq!(report.firing, ["health"]);
    let alerts = active(&am);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(
        (&labels["flow"], &labels["task"], &labels["host"], &labels["severity"]),
        (&"daily".into(), &"health".into(), &"web-1".into(), &"critical".into())
    );
    let summary = alerts[0]["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("health CRIT on web-1 (daily run)"), "{summary}");

    // Sent again by the next failing run, it stays one alert.
    run_with(&cfg, &[task("health", Status::Unknown)]).await;
    assert_eq!(active(&am).len(), 1);

    let report = run_with(&cfg, &[task("health", Status::Ok)]).await;
    assert_eq!((report.firing.len(), report.resolved.as_slice()), (0, ["health".to_owned()].as_slice()));
    assert_eq!(active(&am), Vec::<serde_json::Value>::new(), "resolved");
}

#[tokio::test]
async fn an_alertmanager_down_or_hung_is_a_warn_within_the_timeout() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = config(&format!(
        "alertmanager_urls = [\"http://{}\", \"http://127.0.0.1:{down}\"]\ntimeout_ms = 300",
        hung.local_addr().unwrap()
    ));
    let clock = Instant::now();
    let report = run_with(&cfg, &[task("health", Status::Crit)]).await;
    assert!(clock.elapsed() < Duration::from_secs(5), "took {:?}", clock.elapsed());
    let said: Vec<_> = report.findings.checks.iter().map(|c| (c.status, c.summary.as_str())).collect();
    assert_eq!(said[0], (Status::Warn, "alerts not delivered: no answer within 300 ms"), "{said:?}");
    assert_eq!(said[1].0, Status::Warn);
    assert!(said[1].1.starts_with("alerts not delivered: cannot connect to 127.0.0.1:"), "{said:?}");
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_says_what_it_would() {
    let am = PromServer::alertmanager();
    let cfg = config(&format!("alertmanager_urls = [\"{}\"]", am.url()));
    let now = time::OffsetDateTime::now_utc();
    let tasks = [task("health", Status::Crit)];
    let run = RunOutcome {
        flow: "daily",
        host: "web-1",
        started_at: now,
        hold: time::Duration::hours(26),
        tasks: &tasks,
    };
    let report = notify(&cfg, &run, &RunCtx::new(now).with_dry_run(true)).await;
    assert!(report.findings.actions[0].starts_with("would send 1 firing alert(s) to http://"), "{report:?}");
    assert!(active(&am).is_empty());
}

#[tokio::test]
async fn pushed_metrics_land_in_the_hosts_flow_group() {
    let pg = PromServer::pushgateway();
    let cfg = config(&format!("pushgateway_url = \"{}\"", pg.url()));
    let group = Group { instance: "web-1", flow: "daily" };
    assert_eq!(pushed_value(&cfg, group, "kyb_maint_flow_status").await.unwrap(), None);
    let metrics = "# TYPE kyb_maint_flow_status gauge\nkyb_maint_flow_status{flow=\"daily\"} 2\n";
    push(&cfg, group, metrics).await.unwrap();
    let other = Group { instance: "web-2", flow: "daily" };
    push(&cfg, other, &metrics.replace("} 2", "} 0")).await.unwrap();
    let text = pg.get("/metrics");
    assert!(
        text.contains(r#"kyb_maint_flow_status{flow="daily",instance="web-1",job="kyb-maint"} 2"#),
        "{text}"
    );
    assert_eq!(pushed_value(&cfg, group, "kyb_maint_flow_status").await.unwrap(), Some(2.0));
    assert_eq!(pushed_value(&cfg, other, "kyb_maint_flow_status").await.unwrap(), Some(0.0));
    // A body the Pushgateway refuses is an error that says why.
    let err = push(&cfg, group, "kyb_maint_flow_status{flow=\"weekly\"} 1\n").await.unwrap_err();
    assert!(kyb_core::error_chain(&err).contains("400"), "{err}");
}
